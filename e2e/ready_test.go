package e2e

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goferproxy/gofer/internal/fakeproxy"
	"github.com/goferproxy/gofer/internal/testserver"
	"github.com/goferproxy/gofer/server"
	"github.com/goferproxy/gofer/storage/mongo"
)

// /readyz names the dependency that is down and recovers when it comes back, while /healthz,
// a liveness check, stays 200 throughout. The test stops a Temporal server and a FerretDB of
// its own, so that no other test ever meets them down.
func TestReadyz(t *testing.T) {
	dev, err := testserver.Temporal()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dev.Close)
	db, err := testserver.Mongo()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	meta, err := mongo.Open(context.Background(), db.URI, "readyz")
	if err != nil {
		t.Fatal(err)
	}
	up := fakeproxy.New()
	g := startGofer(t, up.Start(t), options{temporal: dev.Address, meta: meta})
	// Registered after startGofer, so it runs before startGofer's cleanup: if the test fails
	// while a server is down, the worker and the store still close against running servers.
	t.Cleanup(func() {
		dev.Start()
		db.Start()
	})
	fe := g.frontEndWith(t, server.Config{Ready: server.Checks(g.blobs, g.meta, g.temporal)})

	awaitReadyz(t, fe)
	dev.Stop()
	awaitReadyz(t, fe, "temporal")
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	awaitReadyz(t, fe)
	db.Stop()
	awaitReadyz(t, fe, "metadata")
	if err := db.Start(); err != nil {
		t.Fatal(err)
	}
	awaitReadyz(t, fe)
}

// awaitReadyz polls GET url/readyz until it reports exactly the checks down as failing (200
// when there are none, 503 with Retry-After otherwise) and every other check ok, and fails the
// test if that takes over 30 seconds. Each answer must come within a check's timeout, and
// /healthz must answer 200 all along.
func awaitReadyz(t *testing.T, url string, down ...string) {
	t.Helper()
	const within, slowest = 30 * time.Second, 5 * time.Second
	wantCode := http.StatusOK
	if len(down) > 0 {
		wantCode = http.StatusServiceUnavailable
	}
	var code int
	var body []byte
	for deadline := time.Now().Add(within); ; {
		start := time.Now()
		var hdr http.Header
		code, hdr, body = testserver.Get(t, "GET", url+"/readyz")
		if d := time.Since(start); d > slowest {
			t.Errorf("GET /readyz took %v, want under %v", d, slowest)
		}
		if code == wantCode && reports(string(body), down) && (code == http.StatusOK || hdr.Get("Retry-After") != "") {
			t.Logf("GET /readyz: %d\n%s", code, body)
			break
		}
		if hc, _, hb := testserver.Get(t, "GET", url+"/healthz"); hc != http.StatusOK {
			t.Errorf("GET /healthz: %d %q, want 200 whatever the dependencies", hc, hb)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /readyz with %v down: %d %q after %v, want %d naming exactly those", down, code, body, within, wantCode)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if hc, _, hb := testserver.Get(t, "GET", url+"/healthz"); hc != http.StatusOK {
		t.Errorf("GET /healthz: %d %q, want 200 whatever the dependencies", hc, hb)
	}
	if code, _, body := testserver.Get(t, "HEAD", url+"/readyz"); code != wantCode || len(body) != 0 {
		t.Errorf("HEAD /readyz with %v down: %d %q, want %d and no body", down, code, body, wantCode)
	}
}

// reports says whether body, one "name: ok" or "name: failing" line per check, has exactly the
// checks storage, metadata and temporal, in that order, with those in down failing.
func reports(body string, down []string) bool {
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	names := []string{"storage", "metadata", "temporal"}
	if len(lines) != len(names) {
		return false
	}
	for i, name := range names {
		status, ok := strings.CutPrefix(lines[i], name+": ")
		if !ok || (status == "ok") == slices.Contains(down, name) {
			return false
		}
	}
	return true
}
