package fakeproxy

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/modfile"
)

// goCmd runs the real go command in a temporary directory outside any module, with proxyURL as
// its only GOPROXY and a module cache of its own, and returns its stdout.
func goCmd(t *testing.T, proxyURL string, args ...string) ([]byte, error) {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed: %v", err)
	}
	cmd := exec.Command(goBin, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(),
		"GOPROXY="+proxyURL,
		"GOSUMDB=off",
		"GOFLAGS=-modcacherw",
		"GOMODCACHE="+t.TempDir(),
		"GOTOOLCHAIN=local",
		"GONOSUMDB=",
		"GOPRIVATE=",
		"GONOPROXY=",
		"GOWORK=off",
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Logf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out, err
}

// download is what `go mod download -json` prints for one module.
type download struct {
	Version, Error, Sum, GoModSum, Dir string
}

// goDownload runs `go mod download -json query`; the go command prints the JSON with an Error
// field on failure too.
func goDownload(t *testing.T, proxyURL, query string) (download, error) {
	t.Helper()
	out, err := goCmd(t, proxyURL, "mod", "download", "-json", query)
	var d download
	if jerr := json.Unmarshal(out, &d); jerr != nil {
		t.Fatalf("go mod download -json %s: decoding %q: %v", query, out, jerr)
	}
	return d, err
}

func get(t *testing.T, rawURL string) (status int, ctype, body string) {
	t.Helper()
	resp, err := http.Get(rawURL)
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", rawURL, err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

func TestGoModDownload(t *testing.T) {
	p := New()
	proxyURL := p.Start(t)
	for i, tc := range []struct {
		query       string
		wantVersion string
		wantRequest string // an escaped URL path the go command must have asked for
		file, text  string // a file of the extracted module and a piece of its text
	}{
		0: {"example.com/hello@v1.0.0", "v1.0.0", "/example.com/hello/@v/v1.0.0.zip", "hello.go", `"hello, v1.0.0"`},
		1: {"example.com/hello@v1.1.0", "v1.1.0", "/example.com/hello/@v/v1.1.0.zip", "hello.go", "func Name()"},
		2: {"example.com/dep@v0.1.0", "v0.1.0", "/example.com/dep/@v/v0.1.0.zip", "dep.go", "return 42"},
		3: {"example.com/hello/v2@v2.0.0", "v2.0.0", "/example.com/hello/v2/@v/v2.0.0.zip", "go.mod", "module example.com/hello/v2"},
		4: {"github.com/Upper/Case@v1.0.0", "v1.0.0", "/github.com/!upper/!case/@v/v1.0.0.zip", "case.go", "package Case"},
		5: {"example.com/hello@latest", "v1.1.0", "/example.com/hello/@v/list", "hello.go", `"hello, v1.1.0"`},
		6: {"example.com/hello@master", "v1.1.0", "/example.com/hello/@v/master.info", "hello.go", `"hello, v1.1.0"`},
		7: {"example.com/hello@v1.0", "v1.0.0", "/example.com/hello/@v/v1.0.0.zip", "hello.go", `"hello, v1.0.0"`},
	} {
		t.Run(tc.query, func(t *testing.T) {
			t.Parallel()
			d, err := goDownload(t, proxyURL, tc.query)
			if err != nil || d.Error != "" {
				t.Fatalf("%d: go mod download %s: %v: %s", i, tc.query, err, d.Error)
			}
			if d.Version != tc.wantVersion {
				t.Errorf("%d: Version = %q, want %q", i, d.Version, tc.wantVersion)
			}
			if !strings.HasPrefix(d.Sum, "h1:") || !strings.HasPrefix(d.GoModSum, "h1:") {
				t.Errorf("%d: Sum = %q, GoModSum = %q, want h1: hashes", i, d.Sum, d.GoModSum)
			}
			b, err := os.ReadFile(filepath.Join(d.Dir, tc.file))
			if err != nil || !strings.Contains(string(b), tc.text) {
				t.Errorf("%d: %s = %q, %v; want it to contain %q", i, tc.file, b, err, tc.text)
			}
			if p.Requests(tc.wantRequest) == 0 {
				t.Errorf("%d: no request for %s; log: %q", i, tc.wantRequest, p.Log())
			}
		})
	}
}

func TestGoListVersions(t *testing.T) {
	p := New()
	proxyURL := p.Start(t)
	versions := func() []string {
		t.Helper()
		out, err := goCmd(t, proxyURL, "list", "-m", "-versions", "-json", "example.com/hello")
		if err != nil {
			t.Fatalf("go list: %v", err)
		}
		var m struct{ Versions []string }
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("go list: decoding %q: %v", out, err)
		}
		return m.Versions
	}
	if got, want := versions(), []string{"v1.0.0", "v1.1.0"}; !slices.Equal(got, want) {
		t.Errorf("Versions = %q, want %q", got, want)
	}
	p.Add("example.com/hello", "v1.2.0", map[string]string{"go.mod": "module example.com/hello\n\ngo 1.21\n"})
	p.Hide("example.com/hello", "v1.0.0")
	if got, want := versions(), []string{"v1.1.0", "v1.2.0"}; !slices.Equal(got, want) {
		t.Errorf("after Add v1.2.0 and Hide v1.0.0: Versions = %q, want %q", got, want)
	}
}

func TestProtocol(t *testing.T) {
	p := New()
	proxyURL := p.Start(t)
	const (
		info100 = `{"Version":"v1.0.0","Time":"2024-01-02T03:04:05Z"}`
		info110 = `{"Version":"v1.1.0","Time":"2024-02-03T04:05:06Z"}`
	)
	for i, tc := range []struct {
		path       string
		wantStatus int
		wantType   string
		wantBody   string // exact body
	}{
		0:  {"/example.com/hello/@v/list", 200, textPlain, "v1.0.0\nv1.1.0\n"},
		1:  {"/github.com/!upper/!case/@v/list", 200, textPlain, "v1.0.0\n"},
		2:  {"/example.com/hello/@v/v1.0.0.info", 200, appJSON, info100},
		3:  {"/example.com/hello/@v/v1.0.0.mod", 200, textPlain, "module example.com/hello\n\ngo 1.21\n"},
		4:  {"/example.com/hello/@latest", 200, appJSON, info110},
		5:  {"/example.com/hello/@v/master.info", 200, appJSON, info110},
		6:  {"/example.com/hello/@v/v1.0.info", 200, appJSON, info100},
		7:  {"/example.com/hello/@v/v1.info", 200, appJSON, info110},
		8:  {"/example.com/hello/v2/@latest", 200, appJSON, `{"Version":"v2.0.0","Time":"2024-03-04T05:06:07Z"}`},
		9:  {"/example.com/dep/@v/v0.1.0.info", 200, appJSON, `{"Version":"v0.1.0","Time":"2023-12-01T00:00:00Z"}`},
		10: {"/example.com/hello/@v/v9.9.9.info", 404, textPlain, "not found: example.com/hello@v9.9.9: unknown version"},
		11: {"/example.com/hello/@v/main.info", 404, textPlain, "not found: example.com/hello@main: unknown version"},
		12: {"/example.com/hello/@v/master.zip", 404, textPlain, "not found: example.com/hello@master: unknown version"},
		13: {"/example.com/nope/@v/list", 404, textPlain, "not found: example.com/nope: unknown module"},
		14: {"/example.com/nope/@latest", 404, textPlain, "not found: example.com/nope: no versions"},
		15: {"/example.com/hello/@v/v1.0.0.txt", 404, textPlain, "not found: /example.com/hello/@v/v1.0.0.txt: not a module proxy path"},
		16: {"/", 404, textPlain, "not found: /: not a module proxy path"},
	} {
		status, ctype, body := get(t, proxyURL+tc.path)
		if status != tc.wantStatus || ctype != tc.wantType || body != tc.wantBody {
			t.Errorf("%d: GET %s = %d %q %q, want %d %q %q",
				i, tc.path, status, ctype, body, tc.wantStatus, tc.wantType, tc.wantBody)
		}
	}

	// An unescaped upper-case path is not a path the go command can send.
	if status, _, body := get(t, proxyURL+"/github.com/Upper/Case/@v/list"); status != 404 || !strings.HasPrefix(body, "not found: ") {
		t.Errorf("GET unescaped upper-case path = %d %q, want 404 not found", status, body)
	}

	status, ctype, body := get(t, proxyURL+"/github.com/!upper/!case/@v/v1.0.0.zip")
	if status != 200 || ctype != appZip {
		t.Fatalf("GET zip = %d %q", status, ctype)
	}
	zr, err := zip.NewReader(strings.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	// Inside the zip the module path is not escaped.
	want := []string{"github.com/Upper/Case@v1.0.0/case.go", "github.com/Upper/Case@v1.0.0/go.mod"}
	if !slices.Equal(names, want) {
		t.Errorf("zip names = %q, want %q", names, want)
	}
}

func TestFail(t *testing.T) {
	p := New()
	proxyURL := p.Start(t)
	const zipPath = "/example.com/hello/@v/v1.0.0.zip"
	p.Fail(zipPath, 2, http.StatusServiceUnavailable)
	for i, want := range []int{503, 503, 200, 200} {
		status, _, body := get(t, proxyURL+zipPath)
		if status != want {
			t.Errorf("request %d: status %d, want %d", i, status, want)
		}
		if status == 503 && body != "injected failure" {
			t.Errorf("request %d: body %q, want %q", i, body, "injected failure")
		}
	}
	if n := p.Requests(zipPath); n != 4 {
		t.Errorf("Requests(%s) = %d, want 4", zipPath, n)
	}
	if got := p.Requests("/example.com/hello/@v/v1.0.0.mod"); got != 0 {
		t.Errorf("Requests for an unrequested path = %d, want 0", got)
	}

	// Forever until Heal, seen by the go command.
	const infoPath = "/example.com/dep/@v/v0.1.0.info"
	p.Fail(infoPath, -1, http.StatusInternalServerError)
	for range 3 {
		if status, _, _ := get(t, proxyURL+infoPath); status != 500 {
			t.Fatalf("status %d while failing forever, want 500", status)
		}
	}
	if d, err := goDownload(t, proxyURL, "example.com/dep@v0.1.0"); err == nil || d.Error == "" {
		t.Errorf("go mod download succeeded through an injected failure: %+v", d)
	}
	p.Heal(infoPath)
	if d, err := goDownload(t, proxyURL, "example.com/dep@v0.1.0"); err != nil || !strings.HasPrefix(d.Sum, "h1:") {
		t.Errorf("go mod download after Heal: %v: %+v", err, d)
	}
	if n := p.Requests(infoPath); n < 5 {
		t.Errorf("Requests(%s) = %d, want at least 5", infoPath, n)
	}

	log := p.Log()
	if len(log) < 4 || !slices.Equal(log[:4], []string{zipPath, zipPath, zipPath, zipPath}) {
		t.Errorf("Log() starts %q, want the four zip requests", log)
	}
}

func TestHide(t *testing.T) {
	p := New()
	proxyURL := p.Start(t)
	p.Hide("example.com/hello", "v1.1.0")
	for _, ext := range []string{"info", "mod", "zip"} {
		path := "/example.com/hello/@v/v1.1.0." + ext
		if status, _, body := get(t, proxyURL+path); status != 404 || !strings.HasPrefix(body, "not found: ") {
			t.Errorf("GET %s = %d %q, want 404 not found", path, status, body)
		}
	}
	if _, _, body := get(t, proxyURL+"/example.com/hello/@v/list"); body != "v1.0.0\n" {
		t.Errorf("list = %q, want only v1.0.0", body)
	}
	if _, _, body := get(t, proxyURL+"/example.com/hello/@latest"); !strings.Contains(body, `"v1.0.0"`) {
		t.Errorf("@latest = %q, want v1.0.0", body)
	}
	if d, err := goDownload(t, proxyURL, "example.com/hello@v1.1.0"); err == nil || d.Error == "" {
		t.Errorf("go mod download of a hidden version succeeded: %+v", d)
	}
}

func TestSetFile(t *testing.T) {
	p := New()
	proxyURL := p.Start(t)

	// A zip with a file outside the module prefix: served byte for byte, refused by the go command.
	bad := RawZip(map[string]string{
		"example.com/hello@v1.0.0/go.mod": "module example.com/hello\n\ngo 1.21\n",
		"example.com/evil@v1.0.0/evil.go": "package evil\n",
	})
	p.SetFile("example.com/hello", "v1.0.0", "zip", bad)
	if status, ctype, body := get(t, proxyURL+"/example.com/hello/@v/v1.0.0.zip"); status != 200 || ctype != appZip || body != string(bad) {
		t.Errorf("GET replaced zip = %d %q, %d bytes; want 200 and the %d bytes set", status, ctype, len(body), len(bad))
	}
	if d, err := goDownload(t, proxyURL, "example.com/hello@v1.0.0"); err == nil || d.Error == "" {
		t.Errorf("go mod download accepted a zip with a file outside the module: %+v", d)
	}

	// A go.mod naming another module (go mod download does not check that; gofer must).
	const other = "module example.com/other\n\ngo 1.21\n"
	p.SetFile("example.com/dep", "v0.1.0", "mod", []byte(other))
	if status, ctype, body := get(t, proxyURL+"/example.com/dep/@v/v0.1.0.mod"); status != 200 || ctype != textPlain || body != other {
		t.Errorf("GET replaced .mod = %d %q %q, want 200 %q", status, ctype, body, other)
	}

	// nil removes one file; an unknown version is created with only the file set.
	p.SetFile("example.com/hello", "v1.1.0", "mod", nil)
	if status, _, body := get(t, proxyURL+"/example.com/hello/@v/v1.1.0.mod"); status != 404 || body != "not found: example.com/hello@v1.1.0: no .mod file" {
		t.Errorf("GET removed .mod = %d %q, want 404", status, body)
	}
	p.SetFile("example.com/hello", "v1.3.0", "info", []byte(`{"Version":"v1.3.0"}`))
	if _, _, body := get(t, proxyURL+"/example.com/hello/@v/list"); body != "v1.0.0\nv1.1.0\nv1.3.0\n" {
		t.Errorf("list after SetFile of a new version = %q", body)
	}
	if status, _, _ := get(t, proxyURL+"/example.com/hello/@v/v1.3.0.zip"); status != 404 {
		t.Errorf("GET zip never set = %d, want 404", status)
	}
}

func TestAdd(t *testing.T) {
	p := New()
	proxyURL := p.Start(t)
	p.Add("example.com/gen", "v0.0.1", map[string]string{
		"go.mod":     "module example.com/gen\n\ngo 1.21\n",
		"gen.go":     "package gen\n",
		"sub/sub.go": "package sub\n",
	})
	d, err := goDownload(t, proxyURL, "example.com/gen@v0.0.1")
	if err != nil || !strings.HasPrefix(d.Sum, "h1:") {
		t.Fatalf("go mod download of an added module: %v: %+v", err, d)
	}
	if _, err := os.Stat(filepath.Join(d.Dir, "sub", "sub.go")); err != nil {
		t.Errorf("added file missing from the download: %v", err)
	}

	defer func() {
		if recover() == nil {
			t.Error("Add without go.mod did not panic")
		}
	}()
	p.Add("example.com/gen", "v0.0.2", map[string]string{"gen.go": "package gen\n"})
}

func TestDelay(t *testing.T) {
	p := New()
	proxyURL := p.Start(t)
	const d = 300 * time.Millisecond
	p.Delay(d)
	start := time.Now()
	if status, _, _ := get(t, proxyURL+"/example.com/hello/@v/list"); status != 200 {
		t.Fatalf("status %d", status)
	}
	if took := time.Since(start); took < d {
		t.Errorf("delayed request took %v, want at least %v", took, d)
	}
}

func TestClose(t *testing.T) {
	p := New()
	proxyURL := p.Start(t)
	if status, _, _ := get(t, proxyURL+"/example.com/hello/@v/list"); status != 200 {
		t.Fatalf("status %d before Close", status)
	}

	// A request held by a long delay must not keep Close waiting, nor receive an answer.
	p.Delay(time.Hour)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.Get(proxyURL + "/example.com/hello/@v/list")
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	for p.Requests("/example.com/hello/@v/list") < 2 {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	p.Close()
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Close took %v with a delayed request in flight", took)
	}
	if err := <-errc; err == nil {
		t.Error("a request in flight at Close got an answer")
	}

	u, err := url.Parse(proxyURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err == nil {
		conn.Close()
		t.Fatal("dial after Close succeeded")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial after Close: %v, want connection refused", err)
	}
	p.Close() // a second Close does nothing

	// Start serves again on a new port.
	p.Delay(0)
	if status, _, _ := get(t, p.Start(t)+"/example.com/dep/@v/list"); status != 200 {
		t.Errorf("status %d after a new Start, want 200", status)
	}
}

// TestTestdata checks that each embedded file is named after the module version it holds and
// that its go.mod declares that module with go 1.21.
func TestTestdata(t *testing.T) {
	entries, err := testdata.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range entries {
		m, err := readTxtar("testdata/" + de.Name())
		if err != nil {
			t.Errorf("%s: %v", de.Name(), err)
			continue
		}
		if want := strings.ReplaceAll(m.path, "/", "_") + "_" + m.version + ".txtar"; de.Name() != want {
			t.Errorf("%s holds %s@%s; want it named %s", de.Name(), m.path, m.version, want)
		}
		f, err := modfile.Parse("go.mod", []byte(m.files["go.mod"]), nil)
		if err != nil {
			t.Errorf("%s: %v", de.Name(), err)
			continue
		}
		if f.Module == nil || f.Module.Mod.Path != m.path || f.Go == nil || f.Go.Version != "1.21" {
			t.Errorf("%s: go.mod declares %v, go %v; want module %s, go 1.21", de.Name(), f.Module, f.Go, m.path)
		}
	}
}
