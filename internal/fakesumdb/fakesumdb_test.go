package fakesumdb

import (
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func gosum(path, version string) ([]byte, error) {
	if path != "example.com/m" {
		return nil, fmt.Errorf("gosum: %s: %w", path, fs.ErrNotExist)
	}
	return []byte(fmt.Sprintf("%s %s h1:zip-%s=\n%s %s/go.mod h1:mod-%s=\n", path, version, version, path, version, version)), nil
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// tree opens a signed tree head with the verifier key d publishes.
func tree(t *testing.T, d *DB, msg string) tlog.Tree {
	t.Helper()
	v, err := note.NewVerifier(d.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open([]byte(msg), note.VerifierList(v))
	if err != nil {
		t.Fatalf("opening %q: %v", msg, err)
	}
	tr, err := tlog.ParseTree([]byte(n.Text))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestDB(t *testing.T) {
	d := New("sum.gofer.test", gosum)
	if d.Name() != "sum.gofer.test" || !strings.HasPrefix(d.VerifierKey(), "sum.gofer.test+") {
		t.Errorf("Name %q, VerifierKey %q", d.Name(), d.VerifierKey())
	}
	url := d.Start(t)

	if status, body := get(t, url+"/lookup/example.com/m@v1.0.0"); status != 200 || !strings.Contains(body, "example.com/m v1.0.0 h1:zip-v1.0.0=\n") {
		t.Errorf("lookup = %d %q", status, body)
	}
	if status, body := get(t, url+"/lookup/example.com/other@v1.0.0"); status != 404 {
		t.Errorf("lookup of an unknown module = %d %q, want 404", status, body)
	}
	d.SetRecord("example.com/m", "v1.1.0", []byte("example.com/m v1.1.0 h1:lie=\n"))
	if status, body := get(t, url+"/lookup/example.com/m@v1.1.0"); status != 200 || !strings.Contains(body, "h1:lie=") {
		t.Errorf("lookup of a version with a set record = %d %q", status, body)
	}
	status, latest := get(t, url+"/latest")
	if status != 200 || tree(t, d, latest).N != 2 {
		t.Errorf("latest = %d %q, want the signed tree of the two records", status, latest)
	}
	if status, body := get(t, url+"/tile/8/0/000.p/2"); status != 200 || len(body) != 2*tlog.HashSize {
		t.Errorf("tile = %d, %d bytes", status, len(body))
	}
	// Beyond the tree: 404, not a panic.
	for _, p := range []string{"/tile/8/0/000.p/3", "/tile/8/0/000", "/tile/8/1/000.p/1", "/tile/8/data/000.p/3"} {
		if status, body := get(t, url+p); status != 404 {
			t.Errorf("%s = %d %q, want 404", p, status, body)
		}
	}

	d.Fail(http.StatusServiceUnavailable)
	if status, _ := get(t, url+"/latest"); status != 503 {
		t.Errorf("latest while failing = %d, want 503", status)
	}
	d.Fail(0)

	want := []string{"/lookup/example.com/m@v1.0.0", "/lookup/example.com/other@v1.0.0", "/lookup/example.com/m@v1.1.0", "/latest"}
	if got := d.Requests(); len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
		t.Errorf("Requests = %q, want it to start with %q", got, want)
	}

	// SignTree signs with the same key.
	if tr := tree(t, d, string(d.SignTree(tlog.Tree{N: 99}))); tr.N != 99 {
		t.Errorf("SignTree: tree %v", tr)
	}

	// A fork: the same key, another history.
	f := d.Fork(gosum)
	if f.VerifierKey() != d.VerifierKey() {
		t.Errorf("fork key %q, want %q", f.VerifierKey(), d.VerifierKey())
	}
	furl := f.Start(t)
	get(t, furl+"/lookup/example.com/m@v2.0.0+incompatible")
	get(t, furl+"/lookup/example.com/m@v1.0.0")
	_, flatest := get(t, furl+"/latest")
	if ft, dt := tree(t, f, flatest), tree(t, d, latest); ft.N != dt.N || ft.Hash == dt.Hash {
		t.Errorf("fork tree %v, original %v: want the same size, another hash", ft, dt)
	}

	d.Close()
	if _, err := http.Get(url + "/latest"); err == nil {
		t.Error("the database still answers after Close")
	}
}
