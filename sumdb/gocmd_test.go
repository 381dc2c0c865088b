package sumdb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/goferproxy/gofer"
)

// front is a stand-in for gofer's server: /sumdb/ to a Checker, the rest to the fake upstream.
type front struct {
	mu  sync.Mutex
	log []string
	mux *http.ServeMux
}

func startFront(t *testing.T, c *Checker, upstream string) (*front, string) {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	f := &front{mux: http.NewServeMux()}
	f.mux.Handle("/sumdb/", c)
	f.mux.Handle("/", httputil.NewSingleHostReverseProxy(u))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.log = append(f.log, r.URL.Path)
		f.mu.Unlock()
		f.mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func (f *front) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.log)
}

// goModDownload runs `go mod download -json query` with goproxy as the only route to modules
// and to the checksum database gosumdb, in fresh caches, and returns what it printed.
func goModDownload(t *testing.T, goproxy, gosumdb, query string) (out []byte, stderr string, err error) {
	t.Helper()
	goBin, lerr := exec.LookPath("go")
	if lerr != nil {
		t.Fatalf("the go command is needed: %v", lerr)
	}
	cmd := exec.Command(goBin, "mod", "download", "-json", query)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(),
		"GOPROXY="+goproxy,
		"GOSUMDB="+gosumdb,
		"GOPATH="+t.TempDir(), // the go command's own verified tree head lives here
		"GOMODCACHE="+t.TempDir(),
		"GOFLAGS=-modcacherw",
		"GOTOOLCHAIN=local",
		"GONOSUMDB=",
		"GOPRIVATE=",
		"GONOPROXY=",
		"GONOSUMCHECK=",
		"GOINSECURE=",
		"GOWORK=off",
	)
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	out, err = cmd.Output()
	return out, errBuf.String(), err
}

func TestGoCommand(t *testing.T) {
	e := newEnv(t)
	upstream := e.proxy.Start(t)
	c := e.checker()
	f, goproxy := startFront(t, c, upstream)

	t.Run("verified", func(t *testing.T) {
		out, stderr, err := goModDownload(t, goproxy, e.db.VerifierKey(), "example.com/hello@v1.0.0")
		var d struct{ Version, Sum, GoModSum, Error string }
		if jerr := json.Unmarshal(out, &d); err != nil || jerr != nil || d.Error != "" {
			t.Fatalf("go mod download: %v, %v, %q\n%s", err, jerr, d.Error, stderr)
		}
		zipHash, modHash := goSum(t, e.proxy, "example.com/hello", "v1.0.0")
		if d.Sum != zipHash || d.GoModSum != modHash {
			t.Errorf("go mod download: Sum %q, GoModSum %q; want %q, %q", d.Sum, d.GoModSum, zipHash, modHash)
		}
		// The go command asked gofer's endpoints, and gofer asked the database.
		got := strings.Join(f.requests(), " ")
		for _, want := range []string{sumdbPath + "/supported", sumdbPath + "/lookup/example.com/hello@v1.0.0", sumdbPath + "/tile/8/0/"} {
			if !strings.Contains(got, want) {
				t.Errorf("the go command did not ask %s; it asked %s", want, got)
			}
		}
		if !slices.Contains(e.db.Requests(), "/lookup/example.com/hello@v1.0.0") {
			t.Errorf("the database got no lookup; it got %q", e.db.Requests())
		}
	})

	t.Run("lying database", func(t *testing.T) {
		// The database vouches for another zip of dep than the upstream serves.
		_, modHash := goSum(t, e.proxy, "example.com/dep", "v0.1.0")
		e.db.SetRecord("example.com/dep", "v0.1.0",
			[]byte("example.com/dep v0.1.0 "+fakeHash("other zip")+"\nexample.com/dep v0.1.0/go.mod "+modHash+"\n"))
		out, stderr, err := goModDownload(t, goproxy, e.db.VerifierKey(), "example.com/dep@v0.1.0")
		all := string(out) + stderr
		// The lie reached the go command through gofer, and the go command refused.
		if err == nil || !(strings.Contains(all, "SECURITY ERROR") || strings.Contains(all, "verifying")) || !strings.Contains(all, fakeHash("other zip")) {
			t.Errorf("go mod download with a lying database: %v\n%s", err, all)
		}
		// gofer refuses the upstream's bytes for the same reason.
		zipHash, _ := goSum(t, e.proxy, "example.com/dep", "v0.1.0")
		if _, err := c.Check(context.Background(), "example.com/dep", "v0.1.0", zipHash, modHash); !errors.Is(err, gofer.ErrInvalid) {
			t.Errorf("Check with a lying database: %v, want ErrInvalid", err)
		}
	})
}
