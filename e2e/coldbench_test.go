package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goferproxy/gofer/activities"
	"github.com/goferproxy/gofer/internal/fakeproxy"
	"github.com/goferproxy/gofer/internal/testserver"
	"github.com/goferproxy/gofer/server"
	"github.com/goferproxy/gofer/workflows"
)

// Shape of the cold project: coldModules modules of coldVersions versions each. Every version
// requires older versions of the next three modules, and the root requires the newest of every
// module, so the module graph holds most of the versions but the build list only the newest:
// the go command needs the .mod of every version in the graph and the zip of the newest alone
// (hugo's go.sum: 801 /go.mod lines, 288 zips).
const (
	coldModules  = 64
	coldVersions = 5
)

// coldProject adds to up a project of modules modules of versions versions each, in the shape
// above, and returns the root module's go.mod. The zips the build list needs have realistic
// sizes (mostly tens to hundreds of KB, one in twenty a few MB, of incompressible bytes); the
// others are small, since nobody asks for them.
func coldProject(up *fakeproxy.Proxy, modules, versions int) string {
	rng := rand.New(rand.NewPCG(15, 15))
	root := "module cold.gofer.test/root\n\ngo 1.16\n\nrequire (\n"
	for i := range modules {
		path := fmt.Sprintf("cold.gofer.test/m%02d", i)
		for k := range versions {
			gomod := "module " + path + "\n\ngo 1.16\n"
			var reqs []string
			for d := 1; d <= 3 && i+d < modules && k-d >= 0; d++ {
				reqs = append(reqs, fmt.Sprintf("\tcold.gofer.test/m%02d v1.%d.0\n", i+d, k-d))
			}
			if len(reqs) > 0 {
				gomod += "\nrequire (\n" + strings.Join(reqs, "") + ")\n"
			}
			size := 1 << 10
			if k == versions-1 {
				switch r := rng.IntN(20); {
				case r == 0:
					size = 2<<20 + rng.IntN(3<<20)
				case r < 4:
					size = 200<<10 + rng.IntN(800<<10)
				default:
					size = 20<<10 + rng.IntN(180<<10)
				}
			}
			data := make([]byte, size)
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
			up.Add(path, fmt.Sprintf("v1.%d.0", k), map[string]string{
				"go.mod":   gomod,
				"m.go":     fmt.Sprintf("package m%02d\n", i),
				"data.bin": string(data),
			})
		}
		root += fmt.Sprintf("\t%s v1.%d.0\n", path, versions-1)
	}
	return root + ")\n"
}

// BenchmarkColdProject measures what a team feels on day one: `go mod download all` of a
// project (the cold project above: 320 versions in its module graph, 64 zips in its build
// list) into a fresh module cache, with the go.sum the project commits, against a fake
// upstream that takes 20 ms to answer each request (run it once: -benchtime 1x). The go command
// runs straight against the upstream, through a cold gofer (nothing stored) and through the
// same gofer hot, with disk and embedded stores and with S3 and MongoDB; then `gofer warm` of
// the project's go.sum into a gofer with nothing stored. It reports the direct time, each
// ratio to it (targets: cold ≤ 1.3, hot ≤ 1.0, warm ≤ 1.5), what the fetches cost in Temporal
// (workflow history events and the time from start to close, per fetch of a .mod and of a zip),
// and the Temporal server's own rate of the cheapest fetches (temporalBound).
func BenchmarkColdProject(b *testing.B) {
	up := fakeproxy.New()
	gomod := coldProject(up, coldModules, coldVersions)
	lone := addModules(up, "lone", 20, 1)
	upURL := up.Start(b)
	up.Delay(upstreamLatency)
	// The go.sum the project would commit, made once (untimed) straight from the upstream.
	_, gosum := projectGoSum(b, upURL, gomod)
	modLines, zipLines := 0, 0
	for _, line := range strings.Split(strings.TrimSpace(string(gosum)), "\n") {
		if strings.Contains(line, "/go.mod ") {
			modLines++
		} else {
			zipLines++
		}
	}
	for b.Loop() {
		requests := len(up.Log())
		direct := downloadAll(b, upURL, []byte(gomod), gosum)
		b.ReportMetric(direct.Seconds(), "direct-s")
		b.ReportMetric(float64(len(up.Log())-requests), "direct-requests")
		b.ReportMetric(float64(modLines), "gosum-mod-lines")
		b.ReportMetric(float64(zipLines), "gosum-zip-lines")

		s3st, _ := s3Store(b)
		mongost, _ := mongoStore(b)
		for _, st := range []struct {
			name string
			o    options
		}{
			{"disk", options{}},
			{"s3", options{blobs: s3st, meta: mongost}},
		} {
			g := startGofer(b, upURL, st.o)
			loneMisses(b, st.name, upURL, g, lone)
			before := sampleCPU(b)
			cold := downloadAll(b, g.URL, []byte(gomod), gosum)
			for who, used := range sampleCPU(b) {
				if used -= before[who]; used > 0 {
					b.ReportMetric(used.Seconds()/cold.Seconds(), st.name+"-cold-cores-"+who)
				}
			}
			hot := downloadAll(b, g.URL, []byte(gomod), gosum)
			b.ReportMetric(cold.Seconds()/direct.Seconds(), st.name+"-cold-x")
			b.ReportMetric(hot.Seconds()/direct.Seconds(), st.name+"-hot-x")
			if st.name == "disk" {
				fetchCosts(b, g, string(gosum))
				temporalBound(b, g, string(gosum))
			}
		}

		g := startGofer(b, upURL, options{admin: adminToken})
		var started server.WarmStarted
		start := time.Now()
		if code := adminCall(b, http.MethodPost, g.URL+"/admin/warm", adminToken, string(gosum), &started); code != http.StatusAccepted {
			b.Fatalf("POST /admin/warm: %d", code)
		}
		st := awaitWarm(b, g, started.ID)
		warm := time.Since(start)
		if st.Progress.Fetched != modLines {
			b.Fatalf("warm: %+v, want %d versions fetched", st.Progress, modLines)
		}
		b.ReportMetric(warm.Seconds()/direct.Seconds(), "warm-x")
	}
}

// fetchCosts reports the mean history length and start-to-close time of g's fetches of the
// versions gosum names, by files.
func fetchCosts(b *testing.B, g *proxy, gosum string) {
	b.Helper()
	for _, files := range []string{activities.FilesMod, activities.FilesZip} {
		var events int64
		var took time.Duration
		n := 0
		for _, line := range strings.Split(strings.TrimSpace(gosum), "\n") {
			f := strings.Fields(line)
			version, mod := strings.CutSuffix(f[1], "/go.mod")
			if mod != (files == activities.FilesMod) {
				continue
			}
			d, err := g.temporal.DescribeWorkflow(context.Background(), workflows.FetchID(f[0], version, files), "")
			if err != nil {
				b.Fatal(err)
			}
			events += int64(d.HistoryLength)
			took += d.WorkflowCloseTime.Sub(d.WorkflowStartTime)
			n++
		}
		b.ReportMetric(float64(events)/float64(n), files+"-fetch-events")
		b.ReportMetric(ms(took/time.Duration(n)), files+"-fetch-ms")
	}
}

// loneMisses reports the bound of a cold run's requests: the median time of a .mod miss through
// g (whose stores are name), one request at a time, and of its zip's miss after it, each against the same request
// straight to the upstream at upURL, for the versions lone (path@version).
func loneMisses(b *testing.B, name, upURL string, g *proxy, lone []string) {
	b.Helper()
	c := &http.Client{}
	times := map[string][]time.Duration{}
	for _, pv := range lone {
		path, v, _ := strings.Cut(pv, "@")
		for _, ext := range []string{"mod", "zip"} {
			times[ext+"-direct"] = append(times[ext+"-direct"], fetchFiles(b, c, upURL, path, v, ext))
			times[ext] = append(times[ext], fetchFiles(b, c, g.URL, path, v, ext))
		}
	}
	for _, ext := range []string{"mod", "zip"} {
		miss, direct := percentile(times[ext], 0.5), percentile(times[ext+"-direct"], 0.5)
		b.ReportMetric(ms(miss), name+"-lone-"+ext+"-miss-ms")
		b.ReportMetric(ms(miss)/ms(direct), name+"-lone-"+ext+"-miss-x")
	}
}

// sampleCPU is the CPU time used so far by each process a cold run shares the machine with:
// this one ("gofer": gofer, the fake upstream and the benchmark), the go commands it ran and
// waited for ("go"), and the Temporal, S3 and MongoDB servers.
func sampleCPU(b *testing.B) map[string]time.Duration {
	b.Helper()
	self, err := testserver.ReadProcCPU(os.Getpid())
	if err != nil {
		b.Fatal(err)
	}
	return map[string]time.Duration{"gofer": self.Own, "go": self.Children,
		"temporal": temporalServer.CPU(), "s3": s3Server.CPU(), "mongo": mongoServer.CPU()}
}

// temporalBound reports the Temporal server's own rate of fetch workflows here: 320 fetches of
// .mod files already stored (so each is FetchMod's lookup and nothing more: one workflow task),
// run 16 at a time under IDs of their own, as a warm runs its fetches; the time per fetch, and
// how many a second.
func temporalBound(b *testing.B, g *proxy, gosum string) {
	b.Helper()
	var mods []string
	for _, line := range strings.Split(strings.TrimSpace(gosum), "\n") {
		if f := strings.Fields(line); strings.HasSuffix(f[1], "/go.mod") {
			mods = append(mods, f[0]+"@"+strings.TrimSuffix(f[1], "/go.mod"))
		}
	}
	start := time.Now()
	parallel(16, slices.Repeat(mods, 2)[:320], func(pv string) {
		path, version, _ := strings.Cut(pv, "@")
		req := workflows.FetchRequest{Path: path, Version: version, Files: activities.FilesMod}
		o := workflows.FetchOptions(req)
		o.ID = fmt.Sprintf("bound:%s:%d", pv, time.Now().UnixNano())
		run, err := g.temporal.ExecuteWorkflow(context.Background(), o, workflows.Fetch, req)
		if err == nil {
			err = run.Get(context.Background(), nil)
		}
		if err != nil {
			b.Error(err)
		}
	})
	b.ReportMetric(320/time.Since(start).Seconds(), "temporal-stored-fetches-per-s")
}

// projectGoSum makes a project of gomod in a directory of its own, downloads its module graph
// straight from upURL to write the go.sum the project would commit, and returns both.
func projectGoSum(tb testing.TB, upURL, gomod string) (dir string, gosum []byte) {
	tb.Helper()
	dir = tb.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644); err != nil {
		tb.Fatal(err)
	}
	cmd := goCommand(upURL, tb.TempDir(), "mod", "download", "all")
	cmd.Dir = dir
	cmd.Env = append(cmd.Env, "GOFLAGS=-mod=mod -modcacherw")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go mod download all, straight: %v\n%s", err, out)
	}
	gosum, err := os.ReadFile(filepath.Join(dir, "go.sum"))
	if err != nil {
		tb.Fatal(err)
	}
	return dir, gosum
}

// downloadAll times `go mod download all` of the project of gomod and gosum (made read-only by
// the go command's default -mod=readonly: a byte that differs fails it) through goproxy, into a
// fresh module cache.
func downloadAll(tb testing.TB, goproxy string, gomod, gosum []byte) time.Duration {
	tb.Helper()
	cmd := goCommand(goproxy, tb.TempDir(), "mod", "download", "all")
	cmd.Dir = writeProject(tb, gomod, gosum)
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go mod download all (GOPROXY=%s): %v\n%s", goproxy, err, out)
	}
	return time.Since(start)
}

// writeProject writes a project of gomod and gosum into a directory of its own.
func writeProject(tb testing.TB, gomod, gosum []byte) string {
	tb.Helper()
	dir := tb.TempDir()
	for name, data := range map[string][]byte{"go.mod": gomod, "go.sum": gosum} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}
