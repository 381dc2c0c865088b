package sumdb

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// serve sends one request to h and returns the status, content type and body.
func serve(t *testing.T, h http.Handler, method, path string) (int, http.Header, string) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, path, nil))
	body, _ := io.ReadAll(w.Result().Body)
	return w.Code, w.Result().Header, string(body)
}

const sumdbPath = "/sumdb/" + testName

func TestServeRouting(t *testing.T) {
	e := newEnv(t)
	c := e.checker()
	for i, tc := range []struct {
		method, path string
		want         int
	}{
		0:  {"GET", sumdbPath + "/supported", 200},
		1:  {"HEAD", sumdbPath + "/supported", 200},
		2:  {"GET", "/sumdb/other.gofer.test/supported", 404},
		3:  {"GET", "/sumdb/" + testName + "x/supported", 404},
		4:  {"GET", sumdbPath + "/other", 404},
		5:  {"GET", sumdbPath + "/lookup/example.com/hello", 404},
		6:  {"GET", sumdbPath + "/lookup/example.com/Hello@v1.0.0", 404}, // not escaped
		7:  {"GET", sumdbPath + "/lookup/example.com/hello@v1.0", 404},   // not canonical
		8:  {"GET", sumdbPath + "/lookup/example.com/hello@master", 404},
		9:  {"GET", sumdbPath + "/tile/8/0/abc", 404},
		10: {"GET", sumdbPath + "/tile/8/0/001.p/0", 404},
		11: {"GET", sumdbPath + "/tile/8/0/1", 404}, // not the canonical spelling of 8/0/001
		12: {"POST", sumdbPath + "/latest", 405},
		13: {"GET", "/other/" + testName + "/supported", 404},
	} {
		if got, _, body := serve(t, c, tc.method, tc.path); got != tc.want {
			t.Errorf("%d: %s %s = %d %q, want %d", i, tc.method, tc.path, got, body, tc.want)
		}
	}
	if reqs := e.db.Requests(); len(reqs) != 0 {
		t.Errorf("bad paths reached the database: %q", reqs)
	}
	var off Checker
	if got, _, _ := serve(t, &off, "GET", sumdbPath+"/supported"); got != 404 {
		t.Errorf("supported with GOSUMDB=off = %d, want 404", got)
	}
}

func TestServeLookup(t *testing.T) {
	e := newEnv(t)
	c := e.checker()
	c.NoSumDB = "example.com/hello/v2"
	zipHash, _ := goSum(t, e.proxy, "example.com/hello", "v1.0.0")
	lookup := sumdbPath + "/lookup/example.com/hello@v1.0.0"

	status, h, body := serve(t, c, "GET", lookup)
	if status != 200 || h.Get("Content-Type") != textPlain || !strings.Contains(body, "example.com/hello v1.0.0 "+zipHash+"\n") {
		t.Fatalf("GET lookup = %d %q %q", status, h.Get("Content-Type"), body)
	}
	if _, _, rest, err := tlog.ParseRecord([]byte(body)); err != nil {
		t.Errorf("lookup answer is not a record: %v", err)
	} else if _, err := c.openTree(rest); err != nil {
		t.Errorf("lookup answer has no signed tree head: %v", err)
	}
	if status, _, body := serve(t, c, "GET", sumdbPath+"/lookup/example.com/hello@v1.9.9"); status != 404 || !strings.Contains(body, "not in the checksum database") {
		t.Errorf("GET lookup of an unknown version = %d %q, want 404", status, body)
	}
	if status, _, body := serve(t, c, "GET", sumdbPath+"/lookup/example.com/hello/v2@v2.0.0"); status != 404 || !strings.Contains(body, "private") {
		t.Errorf("GET lookup of a private module = %d %q, want 404", status, body)
	}
	for _, r := range e.db.Requests() {
		if strings.Contains(r, "hello/v2") {
			t.Errorf("the database was asked %s, a private module", r)
		}
	}

	// A database that calls a lookup a bad request will never answer it: not found, not 503.
	e.db.Fail(http.StatusBadRequest)
	if status, _, body := serve(t, c, "GET", sumdbPath+"/lookup/example.com/hello@v1.0.9"); status != 404 {
		t.Errorf("GET lookup the database answers 400 = %d %q, want 404", status, body)
	}
	e.db.Fail(0)

	// Stored: answered the same with the database down.
	e.db.Close()
	if status2, _, body2 := serve(t, c, "GET", lookup); status2 != 200 || body2 != body {
		t.Errorf("GET lookup with the database down = %d %q, want the stored answer", status2, body2)
	}
	// Also by a new Checker over the same store, which has nothing in memory.
	if status2, _, body2 := serve(t, e.checker(), "GET", lookup); status2 != 200 || body2 != body {
		t.Errorf("GET lookup from a new Checker with the database down = %d %q, want the stored answer", status2, body2)
	}
	status, h, body = serve(t, c, "GET", sumdbPath+"/lookup/example.com/hello@v1.1.0")
	if status != 503 || h.Get("Retry-After") == "" {
		t.Errorf("GET an unstored lookup with the database down = %d %q (Retry-After %q), want 503 with Retry-After", status, body, h.Get("Retry-After"))
	}
}

func TestServeTile(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	c := e.checker()
	other := e.checker()
	other.Blobs = nil // a store of its own, in memory
	check := func(c *Checker, path, version string) {
		t.Helper()
		z, m := goSum(t, e.proxy, path, version)
		if _, err := c.Check(ctx, path, version, z, m); err != nil {
			t.Fatal(err)
		}
	}
	// Records 0 and 1 through another store; record 2 through c, whose store then holds only
	// the tile that proved it (000.p/3); record 3 through the other again.
	check(other, "example.com/hello", "v1.0.0")
	check(other, "example.com/hello", "v1.1.0")
	check(c, "example.com/dep", "v0.1.0")
	check(other, "github.com/Upper/Case", "v1.0.0")
	tileKey := func(tile string) string { return protoKey(testName, "/tile/8/0/"+tile) }
	if _, _, err := e.blobs.Open(ctx, tileKey("000.p/3")); err != nil {
		t.Fatalf("the tile that proved record 2 is not stored: %v", err)
	}
	if _, _, err := e.blobs.Open(ctx, tileKey("000.p/2")); err == nil {
		t.Fatal("tile 000.p/2 is stored before anyone asked for it")
	}

	// Within c's verified tree: fetched, authenticated, stored.
	tile2 := sumdbPath + "/tile/8/0/000.p/2"
	status, h, body2 := serve(t, c, "GET", tile2)
	if status != 200 || h.Get("Content-Type") != binary || len(body2) != 2*tlog.HashSize || h.Get("Cache-Control") != immutable {
		t.Fatalf("GET %s = %d %q, %d bytes, Cache-Control %q", tile2, status, h.Get("Content-Type"), len(body2), h.Get("Cache-Control"))
	}
	if stored, err := readBlob(ctx, e.blobs, tileKey("000.p/2")); err != nil || string(stored) != body2 {
		t.Errorf("tile 000.p/2 stored: %v; want the bytes served", err)
	}
	// Beyond it: served, but not stored, since gofer cannot vouch for it yet.
	tile4 := sumdbPath + "/tile/8/0/000.p/4"
	status, h, body4 := serve(t, c, "GET", tile4)
	if status != 200 || len(body4) != 4*tlog.HashSize || h.Get("Cache-Control") == immutable {
		t.Fatalf("GET %s = %d, %d bytes, Cache-Control %q", tile4, status, len(body4), h.Get("Cache-Control"))
	}
	if body4[:len(body2)] != body2 {
		t.Errorf("tile 000.p/4 does not extend tile 000.p/2")
	}
	if _, _, err := e.blobs.Open(ctx, tileKey("000.p/4")); err == nil {
		t.Error("tile 000.p/4, beyond the verified tree, was stored")
	}
	// Past the database's tree: its 404.
	if status, _, _ := serve(t, c, "GET", sumdbPath+"/tile/8/0/000.p/9"); status != 404 {
		t.Errorf("GET a tile past the tree = %d, want 404", status)
	}
	// A data tile is passed through.
	if status, _, data := serve(t, c, "GET", sumdbPath+"/tile/8/data/000.p/1"); status != 200 || !strings.Contains(data, "example.com/hello v1.0.0 ") {
		t.Errorf("GET a data tile = %d %q", status, data)
	}

	e.db.Close()
	for _, tile := range []string{"000.p/2", "000.p/3"} {
		status, h, got := serve(t, c, "GET", sumdbPath+"/tile/8/0/"+tile)
		if status != 200 || h.Get("Cache-Control") != immutable || got != body4[:len(got)] {
			t.Errorf("GET %s with the database down = %d (Cache-Control %q), want the stored tile", tile, status, h.Get("Cache-Control"))
		}
	}
	if status, h, _ := serve(t, c, "GET", tile4); status != 503 || h.Get("Retry-After") == "" {
		t.Errorf("GET an unstored tile with the database down = %d (Retry-After %q), want 503", status, h.Get("Retry-After"))
	}
}

func TestServeLatest(t *testing.T) {
	e := newEnv(t)
	c := e.checker()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return now }
	latest := sumdbPath + "/latest"

	status, h, body := serve(t, c, "GET", latest)
	if status != 200 || h.Get("Content-Type") != textPlain {
		t.Fatalf("GET latest = %d %q %q", status, h.Get("Content-Type"), body)
	}
	if tree, err := c.openTree([]byte(body)); err != nil || tree.N != 0 {
		t.Fatalf("latest = %v, %v; want the signed empty tree", tree, err)
	}
	// Reused for a minute: the database is not asked again.
	n := len(e.db.Requests())
	if status, _, b := serve(t, c, "GET", latest); status != 200 || b != body || len(e.db.Requests()) != n {
		t.Errorf("GET latest again = %d, %d more requests to the database; want the cached answer", status, len(e.db.Requests())-n)
	}
	// Then asked again.
	zipHash, modHash := goSum(t, e.proxy, "example.com/hello", "v1.0.0")
	if _, err := c.Check(context.Background(), "example.com/hello", "v1.0.0", zipHash, modHash); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * latestTTL)
	status, _, body = serve(t, c, "GET", latest)
	if tree, err := c.openTree([]byte(body)); status != 200 || err != nil || tree.N != 1 {
		t.Fatalf("GET latest after it expired = %d, %v, %v; want the tree of size 1", status, tree, err)
	}
	// With the database down, the last good answer, however old.
	e.db.Close()
	now = now.Add(time.Hour)
	if status, _, b := serve(t, c, "GET", latest); status != 200 || b != body {
		t.Errorf("GET latest with the database down = %d %q, want the last answer", status, b)
	}
	// A new Checker has no answer in memory: the newest head gofer verified.
	if status, _, b := serve(t, e.checker(), "GET", latest); status != 200 || b != body {
		t.Errorf("GET latest from a new Checker with the database down = %d %q, want the persisted head", status, b)
	}
	// Nothing at all: 503.
	fresh := e.checker()
	fresh.Blobs = nil
	if status, h, _ := serve(t, fresh, "GET", latest); status != 503 || h.Get("Retry-After") == "" {
		t.Errorf("GET latest with nothing to answer from = %d (Retry-After %q), want 503", status, h.Get("Retry-After"))
	}
}
