// Command benchrun is `make bench`'s hit-path comparison: it serves the same three generated
// module versions (a 30 KB, a 3 MB and a 9 MB zip) from nginx, from net/http.FileServer, from
// the bare net/http and gin servers (the ceilings of gofer's stack: the files in memory and
// nothing done per request), from gofer on its disk and embedded stores (request log off, and
// on as in production) and from gofer on S3 (versitygw) and MongoDB (FerretDB), loads each with
// wrk on this machine, and writes a Markdown table of the medians, with the ratios to nginx and
// to the bare gin server and the targets checked against them. It is a measuring tool
// run by `make bench` (scripts/bench.sh): it must never listen beyond 127.0.0.1, and must stop
// every process it starts and remove its temporary directory when it ends, fails or is
// interrupted.
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"

	"github.com/goferproxy/gofer/internal/testserver"
)

func main() {
	out := flag.String("out", "BENCHMARKS-results.md", "file the Markdown report is written to (it is printed too)")
	duration := flag.Duration("duration", 5*time.Second, "length of each wrk run (whole seconds)")
	quick := flag.Bool("quick", false, "1s wrk runs, for a quick look (overrides -duration)")
	serve := flag.String("serve", "", "internal: only serve -root on -listen as this server: fileserver, nethttp or gin")
	root := flag.String("root", "", "internal: the directory of -serve")
	listen := flag.String("listen", "", "internal: the address of -serve")
	flag.Parse()
	if *serve != "" {
		if err := serveSelf(*serve, *root, *listen); err != nil {
			fmt.Fprintln(os.Stderr, "benchrun -serve:", err)
			os.Exit(1)
		}
		return
	}
	if *quick {
		*duration = time.Second
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, *out, *duration)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchrun:", err)
		os.Exit(1)
	}
}

// modVersion is one generated module version and the bytes of its three files.
type modVersion struct {
	path, version string
	files         map[string][]byte // by extension: info, mod, zip
}

// key is the GOPROXY path of one file, without the leading slash.
func (m modVersion) key(ext string) string {
	p, _ := module.EscapePath(m.path)
	v, _ := module.EscapeVersion(m.version)
	return p + "/@v/" + v + "." + ext
}

// benchFile is one URL path every server is loaded with, such as small.zip.
type benchFile struct {
	label, key string
	size       int
}

// target is one server under test.
type target struct {
	name string
	base string // http://127.0.0.1:port
	proc *proc
}

func run(ctx context.Context, out string, d time.Duration) error {
	tmp, err := os.MkdirTemp("", "gofer-bench-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	layout, mods, err := writeLayout(tmp)
	if err != nil {
		return err
	}
	small, medium, large := mods[0], mods[1], mods[2]
	files := []benchFile{
		{"small.info", small.key("info"), len(small.files["info"])},
		{"small.mod", small.key("mod"), len(small.files["mod"])},
		{"small.zip", small.key("zip"), len(small.files["zip"])},
		{"medium.zip", medium.key("zip"), len(medium.files["zip"])},
		{"large.zip", large.key("zip"), len(large.files["zip"])},
	}

	// The upstream both gofers fetch from: the layout itself, as a GOPROXY.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	upAddr := l.Addr().String()
	upstream := &http.Server{Handler: http.FileServer(http.Dir(layout))}
	go upstream.Serve(l)
	defer upstream.Close()

	logf("starting Temporal, versitygw and FerretDB...")
	temporal, err := testserver.Temporal()
	if err != nil {
		return err
	}
	defer temporal.Close()
	s3, err := testserver.S3()
	if err != nil {
		return err
	}
	defer s3.Close()
	mongo, err := testserver.Mongo()
	if err != nil {
		return err
	}
	defer mongo.Close()

	logf("starting nginx, FileServer and the two gofers...")
	var targets []*target
	defer func() {
		for _, t := range targets {
			t.proc.stop()
		}
	}()
	add := func(p *proc, base string, err error) error {
		if err == nil {
			targets = append(targets, &target{p.name, base, p})
		}
		return err
	}
	if err := add(startNginx(ctx, tmp, layout, small.key("info"))); err != nil {
		return err
	}
	for _, kind := range append([]string{"fileserver"}, bareKinds...) {
		if err := add(startSelf(ctx, kind, tmp, layout, small.key("info"))); err != nil {
			return err
		}
	}
	common := []string{"GOFER_UPSTREAM=http://" + upAddr, "GOFER_SUMDB=off", "GOFER_TEMPORAL_ADDRESS=" + temporal.Address}
	if err := add(startGofer(ctx, tmp, "gofer-disk", slices.Concat(common, []string{
		"GOFER_TEMPORAL_NAMESPACE=" + testserver.Namespace(0)}))); err != nil {
		return err
	}
	// The production default: a JSON line a request, at info level, to a file.
	if err := add(startGofer(ctx, tmp, "gofer-disk-log", slices.Concat(common, []string{
		"GOFER_TEMPORAL_NAMESPACE=" + testserver.Namespace(2), "GOFER_LOG_FORMAT=json", "GOFER_LOG_LEVEL=info"}))); err != nil {
		return err
	}
	if err := add(startGofer(ctx, tmp, "gofer-s3", slices.Concat(common, []string{
		"GOFER_TEMPORAL_NAMESPACE=" + testserver.Namespace(1),
		"GOFER_STORAGE=s3", "GOFER_S3_ENDPOINT=" + s3.Endpoint, "GOFER_S3_REGION=" + s3.Region,
		"GOFER_S3_BUCKET=gofer-bench", "GOFER_S3_FORCE_PATH_STYLE=true", "GOFER_S3_CREATE_BUCKET=true",
		"AWS_ACCESS_KEY_ID=" + s3.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s3.SecretKey,
		"GOFER_METADATA=mongo", "GOFER_MONGO_URI=" + mongo.URI}))); err != nil {
		return err
	}

	for _, t := range targets {
		logf("checking %s (for the gofers, fetching every file once)...", t.name)
		if err := check(ctx, t, mods); err != nil {
			return err
		}
	}

	cpuBefore, err := sampleCPU()
	if err != nil {
		return err
	}
	results, err := measure(ctx, targets, files, d)
	if err != nil {
		return err
	}
	cpuAfter, err := sampleCPU()
	if err != nil {
		return err
	}

	var mem []memRow
	for _, t := range targets {
		if t.name == "nginx" {
			continue // several processes: its master's RSS would say little
		}
		m, err := t.proc.memory()
		if err != nil {
			return err
		}
		mem = append(mem, m)
	}

	var names []string
	for _, t := range targets {
		names = append(names, t.name)
	}
	var report bytes.Buffer
	writeReport(&report, reportInput{
		command: "go run ./internal/benchrun " + strings.Join(os.Args[1:], " "),
		cpu:     [2]cpuSample{cpuBefore, cpuAfter},
		runTime: d, files: files, servers: names, results: results, mem: mem,
	})
	os.Stdout.Write(report.Bytes())
	if err := os.WriteFile(out, report.Bytes(), 0o644); err != nil {
		return err
	}
	logf("wrote %s", out)
	return nil
}

// measure runs wrk for d on every (file, target) pair, 4 times, the targets in the orders
// A B C D, D C B A, A B C D, D C B A, so that a drift of the machine over the run weighs on
// every server alike. The results are keyed by file label and target name.
func measure(ctx context.Context, targets []*target, files []benchFile, d time.Duration) (map[[2]string][]wrkResult, error) {
	results := make(map[[2]string][]wrkResult)
	total, n := 4*len(files)*len(targets), 0
	for round := range 4 {
		order := slices.Clone(targets)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, f := range files {
			for _, t := range order {
				r, err := runWrk(ctx, t.base+"/"+f.key, d)
				if err != nil {
					return nil, err
				}
				if r.non2xx > 0 {
					return nil, fmt.Errorf("%s %s: %d responses were not 2xx or 3xx", t.name, f.label, r.non2xx)
				}
				n++
				logf("[%d/%d] %-10s %-10s %10.0f req/s  p99 %.2f ms", n, total, t.name, f.label, r.reqPerSec, r.p99)
				key := [2]string{f.label, t.name}
				results[key] = append(results[key], r)
			}
		}
	}
	return results, nil
}

// writeLayout generates the three module versions (sources under tmp/src) and lays their files
// out in tmp/layout as a GOPROXY would serve them. The zips hold random data, so that they weigh
// what they hold; fixed seeds make every run serve the same bytes.
func writeLayout(tmp string) (layout string, mods []modVersion, err error) {
	layout = filepath.Join(tmp, "layout")
	for i, g := range []struct {
		name string
		size int
	}{{"small", 30_000}, {"medium", 3_000_000}, {"large", 9_000_000}} {
		m, err := generate(filepath.Join(tmp, "src"), g.name, g.size, uint64(i))
		if err != nil {
			return "", nil, fmt.Errorf("generate %s: %w", g.name, err)
		}
		for ext, data := range m.files {
			p := filepath.Join(layout, filepath.FromSlash(m.key(ext)))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return "", nil, err
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				return "", nil, err
			}
		}
		mods = append(mods, m)
	}
	return layout, mods, nil
}

// generate builds module example.com/bench/<name>@v1.0.0 in srcDir/<name>: a go.mod and Go
// files holding randomBytes random bytes as base64 strings, which deflate back to about their
// random size, so the zip weighs about randomBytes.
func generate(srcDir, name string, randomBytes int, seed uint64) (modVersion, error) {
	m := modVersion{path: "example.com/bench/" + name, version: "v1.0.0", files: map[string][]byte{}}
	dir := filepath.Join(srcDir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return m, err
	}
	gomod := []byte("module " + m.path + "\n\ngo 1.21\n")
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), gomod, 0o644); err != nil {
		return m, err
	}
	rng := rand.New(rand.NewChaCha8([32]byte{byte(seed)}))
	const perFile = 1 << 20
	for i := 0; randomBytes > 0; i++ {
		chunk := make([]byte, min(perFile, randomBytes))
		randomBytes -= len(chunk)
		for j := range chunk {
			chunk[j] = byte(rng.Uint32())
		}
		src := fmt.Sprintf("package %s\n\nconst data%d = %q\n", name, i, base64.StdEncoding.EncodeToString(chunk))
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("data%d.go", i)), []byte(src), 0o644); err != nil {
			return m, err
		}
	}
	var zip bytes.Buffer
	if err := modzip.CreateFromDir(&zip, module.Version{Path: m.path, Version: m.version}, dir); err != nil {
		return m, err
	}
	m.files["info"] = []byte(`{"Version":"v1.0.0","Time":"2024-01-01T00:00:00Z"}`)
	m.files["mod"] = gomod
	m.files["zip"] = zip.Bytes()
	return m, nil
}

// check gets every file of every version from t once and compares it with the layout's bytes.
// For a gofer the first request of a version is a miss, answered once its fetch workflow has
// stored it; gofer may answer 503 while a fetch goes on, and is then asked again.
func check(ctx context.Context, t *target, mods []modVersion) error {
	client := &http.Client{Timeout: 2 * time.Minute}
	for _, m := range mods {
		for _, ext := range []string{"info", "mod", "zip"} {
			url := t.base + "/" + m.key(ext)
			var body []byte
			for attempt := 0; ; attempt++ {
				req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
				if err != nil {
					return err
				}
				resp, err := client.Do(req)
				if err != nil {
					return fmt.Errorf("%s: %w", t.name, err)
				}
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					return fmt.Errorf("%s: GET %s: %w", t.name, url, err)
				}
				if resp.StatusCode == http.StatusServiceUnavailable && attempt < 5 {
					continue
				}
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("%s: GET %s: %s: %s\n%s", t.name, url, resp.Status, body, tail(t.proc.log))
				}
				break
			}
			if !bytes.Equal(body, m.files[ext]) {
				return fmt.Errorf("%s: GET %s: %d bytes that differ from the %d bytes of the layout", t.name, url, len(body), len(m.files[ext]))
			}
		}
	}
	return nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "benchrun: "+format+"\n", args...)
}
