package fakeproxy

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/goferproxy/gofer/internal/fakesumdb"
)

func TestGoSum(t *testing.T) {
	p := New()
	proxyURL := p.Start(t)
	for i, m := range []struct{ path, version string }{
		{"example.com/hello", "v1.0.0"},
		{"github.com/Upper/Case", "v1.0.0"},
		{"example.com/hello/v2", "v2.0.0"},
	} {
		// What the go command computes from the same bytes.
		d, err := goDownload(t, proxyURL, m.path+"@"+m.version)
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		want := fmt.Sprintf("%s %s %s\n%s %s/go.mod %s\n", m.path, m.version, d.Sum, m.path, m.version, d.GoModSum)
		if got, err := p.GoSum(m.path, m.version); err != nil || string(got) != want {
			t.Errorf("%d: GoSum(%s@%s) = %q, %v; want %q", i, m.path, m.version, got, err, want)
		}
	}
	// Other bytes, other hashes.
	before, _ := p.GoSum("example.com/dep", "v0.1.0")
	p.Add("example.com/dep", "v0.1.0", map[string]string{"go.mod": "module example.com/dep\n", "dep.go": "package dep\n"})
	if after, err := p.GoSum("example.com/dep", "v0.1.0"); err != nil || bytes.Equal(after, before) {
		t.Errorf("GoSum after Add with other files = %q, %v; want other hashes than %q", after, err, before)
	}
	for _, v := range []string{"v9.9.9", "v0.2.0"} {
		if _, err := p.GoSum("example.com/dep", v); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("GoSum of an unknown version %s: %v, want fs.ErrNotExist", v, err)
		}
	}
}

func TestServeSumDB(t *testing.T) {
	p := New()
	db := fakesumdb.New("sum.gofer.test", p.GoSum)
	p.ServeSumDB(db.Name(), db.Handler())
	proxyURL := p.Start(t)

	if status, _, _ := get(t, proxyURL+"/sumdb/sum.gofer.test/supported"); status != 200 {
		t.Errorf("supported = %d, want 200", status)
	}
	if status, _, _ := get(t, proxyURL+"/sumdb/other.gofer.test/supported"); status != 404 {
		t.Errorf("supported for another database = %d, want 404", status)
	}

	// The go command finds the database through the proxy and verifies against it.
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed: %v", err)
	}
	cmd := exec.Command(goBin, "mod", "download", "-json", "example.com/hello@v1.1.0")
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "GOPROXY="+proxyURL, "GOSUMDB="+db.VerifierKey(), "GOPATH="+t.TempDir(),
		"GOMODCACHE="+t.TempDir(), "GOFLAGS=-modcacherw", "GOTOOLCHAIN=local", "GONOSUMDB=", "GOPRIVATE=", "GONOPROXY=", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go mod download through the proxied database: %v\n%s", err, out)
	}
	if !slices.Contains(db.Requests(), "/lookup/example.com/hello@v1.1.0") {
		t.Errorf("the database got %q, want the lookup without the /sumdb/<name> prefix", db.Requests())
	}
	if p.Requests("/sumdb/sum.gofer.test/lookup/example.com/hello@v1.1.0") != 1 {
		t.Errorf("the proxy's log lacks the lookup: %q", p.Log())
	}

	// Injected failures apply, and a nil handler stops proxying.
	p.Fail("/sumdb/sum.gofer.test/latest", 1, http.StatusBadGateway)
	if status, _, _ := get(t, proxyURL+"/sumdb/sum.gofer.test/latest"); status != http.StatusBadGateway {
		t.Errorf("latest with an injected failure = %d", status)
	}
	if status, _, body := get(t, proxyURL+"/sumdb/sum.gofer.test/latest"); status != 200 || !strings.HasPrefix(body, "go.sum database tree\n") {
		t.Errorf("latest = %d %q", status, body)
	}
	p.ServeSumDB(db.Name(), nil)
	if status, _, _ := get(t, proxyURL+"/sumdb/sum.gofer.test/supported"); status != 404 {
		t.Errorf("supported after ServeSumDB(nil) = %d, want 404", status)
	}
}
