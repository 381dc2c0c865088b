package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/module"
)

// realProjects are the projects of the cold-project issue, at versions whose go.mod this
// machine's Go accepts.
var realProjects = []struct{ name, module string }{
	{"fzf", "github.com/junegunn/fzf@v0.65.2"},
	{"hugo", "github.com/gohugoio/hugo@v0.165.0"},
}

// BenchmarkRealProjects is BenchmarkColdProject against the real upstream: `go mod download all`
// of each project of realProjects, with the go.sum it commits, into a fresh module cache,
// straight from the go command's own GOPROXY, and through `gofer serve` on its defaults (the
// go command's GOPROXY and GOSUMDB), cold (empty storage) and hot. It then measures what a
// background zip fetch after every .mod fetch would cost: the zips of the versions the project
// needs only as .mod files, fetched through the same gofer 16 at a time, against the zips it
// builds. Opt-in (GOFER_REAL_UPSTREAM=1): it talks to the real upstream and checksum database.
// Run it once: -benchtime 1x.
func BenchmarkRealProjects(b *testing.B) {
	if os.Getenv("GOFER_REAL_UPSTREAM") != "1" {
		b.Skip("talks to the go command's GOPROXY and GOSUMDB: set GOFER_REAL_UPSTREAM=1 to run it")
	}
	out, err := exec.Command("go", "env", "GOPROXY").Output()
	if err != nil {
		b.Fatal(err)
	}
	upstream := strings.TrimSpace(string(out))
	bin := buildGofer(b)
	for b.Loop() {
		for _, p := range realProjects {
			gomod, gosum := realProject(b, p.module)
			direct := downloadAll(b, upstream, gomod, gosum)
			addr := freeAddr(b)
			startProcess(b, bin, addr, []string{"GOFER_DATA_DIR=" + b.TempDir(),
				"GOFER_TEMPORAL_ADDRESS=" + temporalAddress, "GOFER_TEMPORAL_NAMESPACE=" + namespace(b)}, "serve")
			url := "http://" + addr
			cold := downloadAll(b, url, gomod, gosum)
			hot := downloadAll(b, url, gomod, gosum)
			b.ReportMetric(direct.Seconds(), p.name+"-direct-s")
			b.ReportMetric(cold.Seconds()/direct.Seconds(), p.name+"-cold-x")
			b.ReportMetric(hot.Seconds()/direct.Seconds(), p.name+"-hot-x")

			built, modOnly := buildList(b, url, gomod, gosum)
			b.ReportMetric(float64(len(built)), p.name+"-zips")
			b.ReportMetric(float64(len(modOnly)), p.name+"-mod-only")
			builtBytes, _ := fetchZips(b, url, built)
			start := time.Now()
			extraBytes, failed := fetchZips(b, url, modOnly)
			b.ReportMetric(time.Since(start).Seconds(), p.name+"-background-zips-s")
			b.ReportMetric(float64(builtBytes)/1e6, p.name+"-zips-MB")
			b.ReportMetric(float64(extraBytes)/1e6, p.name+"-background-zips-MB")
			b.ReportMetric(float64(failed), p.name+"-background-zips-failed")
		}
	}
}

// realProject is the go.mod and go.sum of module (path@version), from the go command's GOPROXY.
func realProject(tb testing.TB, module string) (gomod, gosum []byte) {
	tb.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", module)
	cmd.Env = append(os.Environ(), "GOMODCACHE="+tb.TempDir(), "GOFLAGS=-modcacherw")
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("go mod download %s: %v\n%s", module, err, out)
	}
	var m struct{ Dir string }
	if err := json.Unmarshal(out, &m); err != nil {
		tb.Fatal(err)
	}
	if gomod, err = os.ReadFile(filepath.Join(m.Dir, "go.mod")); err == nil {
		gosum, err = os.ReadFile(filepath.Join(m.Dir, "go.sum"))
	}
	if err != nil {
		tb.Fatal(err)
	}
	return gomod, gosum
}

// buildList is the project of gomod and gosum's build list (go list -m all through goproxy, the
// modules whose zips go mod download all fetches; many have no line in gosum), and the versions
// gosum has a /go.mod hash of that are not in it, needed only as .mod files; each as
// path@version.
func buildList(tb testing.TB, goproxy string, gomod, gosum []byte) (built, modOnly []string) {
	tb.Helper()
	cmd := goCommand(goproxy, tb.TempDir(), "list", "-m", "-f", "{{if .Version}}{{.Path}}@{{.Version}}{{end}}", "all")
	cmd.Dir = writeProject(tb, gomod, gosum)
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("go list -m all: %v\n%s", err, out)
	}
	built = strings.Fields(string(out))
	for _, line := range strings.Split(strings.TrimSpace(string(gosum)), "\n") {
		f := strings.Fields(line)
		if v, mod := strings.CutSuffix(f[1], "/go.mod"); mod && !slices.Contains(built, f[0]+"@"+v) {
			modOnly = append(modOnly, f[0]+"@"+v)
		}
	}
	return built, modOnly
}

// fetchZips GETs the zip of every path@version of versions from the proxy at url, 16 at a time,
// and returns the bytes received and how many requests failed.
func fetchZips(tb testing.TB, url string, versions []string) (bytes int64, failed int) {
	var n, bad atomic.Int64
	parallel(16, versions, func(pv string) {
		path, version, _ := strings.Cut(pv, "@")
		escaped, err := module.EscapePath(path)
		var resp *http.Response
		if err == nil {
			resp, err = http.Get(url + "/" + escaped + "/@v/" + version + ".zip")
		}
		if err != nil {
			tb.Logf("%s.zip: %v", pv, err)
			bad.Add(1)
			return
		}
		defer resp.Body.Close()
		got, err := io.Copy(io.Discard, resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			tb.Logf("%s.zip: %d %v", pv, resp.StatusCode, err)
			bad.Add(1)
			return
		}
		n.Add(got)
	})
	return n.Load(), int(bad.Load())
}
