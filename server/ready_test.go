package server_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/internal/testserver"
	"github.com/goferproxy/gofer/internal/teststores"
	"github.com/goferproxy/gofer/server"
	"github.com/goferproxy/gofer/storage"
)

// readyz serves one /readyz request with method on a Server with these checks.
func readyz(t *testing.T, method string, checks ...server.ReadyCheck) *httptest.ResponseRecorder {
	t.Helper()
	w, _ := readyzLogged(t, method, checks...)
	return w
}

// readyzLogged is readyz, with the server's log.
func readyzLogged(t *testing.T, method string, checks ...server.ReadyCheck) (*httptest.ResponseRecorder, *observer.ObservedLogs) {
	t.Helper()
	blobs, meta := teststores.Open(t, "")
	core, logs := observer.New(zap.WarnLevel)
	srv := server.New(server.Config{Blobs: blobs, Meta: meta, Temporal: noTemporal{t}, Ready: checks, Log: zap.New(core)})
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, httptest.NewRequest(method, "/readyz", nil))
	return w, logs
}

func check(name string, err error) server.ReadyCheck {
	return server.ReadyCheck{Name: name, Check: func(context.Context) error { return err }}
}

func TestReadyAllOK(t *testing.T) {
	checks := []server.ReadyCheck{check("storage", nil), check("metadata", nil), check("temporal", nil)}
	w := readyz(t, "GET", checks...)
	if w.Code != http.StatusOK || w.Body.String() != "storage: ok\nmetadata: ok\ntemporal: ok\n" {
		t.Errorf("GET /readyz: %d %q, want 200 with every check ok", w.Code, w.Body)
	}
	h := w.Header()
	if h.Get("Retry-After") != "" || h.Get("Cache-Control") != "no-store" || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		t.Errorf("GET /readyz headers: %v", h)
	}
	if w := readyz(t, "HEAD", checks...); w.Code != http.StatusOK || w.Body.Len() != 0 {
		t.Errorf("HEAD /readyz: %d %q, want 200 and no body", w.Code, w.Body)
	}
}

func TestReadyOneFails(t *testing.T) {
	checks := []server.ReadyCheck{
		check("storage", nil),
		check("metadata", errors.New("mongo: get: server selection error\nconnection refused")),
		check("temporal", nil),
	}
	w, logs := readyzLogged(t, "GET", checks...)
	// /readyz is open: the body names the component, the log says why.
	want := "storage: ok\nmetadata: failing\ntemporal: ok\n"
	if w.Code != http.StatusServiceUnavailable || w.Body.String() != want {
		t.Errorf("GET /readyz: %d %q, want 503 %q", w.Code, w.Body, want)
	}
	if l := logs.FilterField(zap.String("check", "metadata")).All(); len(l) != 1 || !strings.Contains(fmt.Sprint(l[0].ContextMap()["error"]), "connection refused") {
		t.Errorf("the log of the failing check: %v, want its error", l)
	}
	if h := w.Header(); h.Get("Retry-After") == "" || h.Get("Cache-Control") != "no-store" {
		t.Errorf("GET /readyz headers: %v, want Retry-After and no-store", h)
	}
	w = readyz(t, "HEAD", checks...)
	if w.Code != http.StatusServiceUnavailable || w.Body.Len() != 0 || w.Header().Get("Retry-After") == "" {
		t.Errorf("HEAD /readyz: %d %q %v, want 503 with Retry-After and no body", w.Code, w.Body, w.Header())
	}
}

// Checks that hang end with their timeout, all at once rather than one after another, and a
// check that ignores its context does not hold the answer either.
func TestReadyCheckTimesOut(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	blocks := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	start := time.Now()
	w, logs := readyzLogged(t, "GET",
		server.ReadyCheck{Name: "metadata", Check: blocks},
		check("storage", nil),
		server.ReadyCheck{Name: "temporal", Check: blocks},
		server.ReadyCheck{Name: "deaf", Check: func(context.Context) error { <-release; return nil }},
	)
	elapsed := time.Since(start)
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz with hanging checks: %d %q, want 503", w.Code, w.Body)
	}
	lines := strings.Split(strings.TrimSuffix(w.Body.String(), "\n"), "\n")
	if len(lines) != 4 || lines[0] != "metadata: failing" || lines[1] != "storage: ok" || lines[2] != "temporal: failing" || lines[3] != "deaf: failing" {
		t.Errorf("body:\n%s", w.Body)
	}
	if l := logs.FilterField(zap.String("check", "deaf")).All(); len(l) != 1 || !strings.Contains(fmt.Sprint(l[0].ContextMap()["error"]), "no answer within 3s") {
		t.Errorf("the log of the check that ignores its context: %v", l)
	}
	if elapsed < 3*time.Second || elapsed > 5*time.Second {
		t.Errorf("answered after %v, want about 3s (each check's timeout, run concurrently)", elapsed)
	}
}

func TestReadyNoChecks(t *testing.T) {
	if w := readyz(t, "GET"); w.Code != http.StatusOK || w.Body.String() != "ok\n" {
		t.Errorf("GET /readyz with no checks: %d %q, want 200 as /healthz", w.Code, w.Body)
	}
}

// healthChecker is a Temporal frontend that answers err.
type healthChecker struct{ err error }

func (h healthChecker) CheckHealth(context.Context, *client.CheckHealthRequest) (*client.CheckHealthResponse, error) {
	return &client.CheckHealthResponse{}, h.err
}

// blobsOpen is a blob store whose Open answers with r or err.
type blobsOpen struct {
	storage.Blobs
	r   storage.Reader
	err error
}

func (b blobsOpen) Open(context.Context, string) (storage.Reader, int64, error) {
	return b.r, 0, b.err
}

type closeCounter struct {
	storage.Reader
	closed int
}

func (c *closeCounter) Close() error { c.closed++; return nil }

func runChecks(ctx context.Context, checks []server.ReadyCheck) map[string]error {
	errs := map[string]error{}
	for _, c := range checks {
		errs[c.Name] = c.Check(ctx)
	}
	return errs
}

func TestChecks(t *testing.T) {
	ctx := t.Context()
	blobs, meta := teststores.Open(t, "")
	errs := runChecks(ctx, server.Checks(blobs, meta, healthChecker{}))
	if len(errs) != 3 || errs["storage"] != nil || errs["metadata"] != nil || errs["temporal"] != nil {
		t.Errorf("healthy stores and Temporal: %v, want storage, metadata and temporal passing", errs)
	}
	if checks := server.Checks(blobs, meta, nil); len(checks) != 2 {
		t.Errorf("no Temporal: %d checks, want storage and metadata", len(checks))
	}

	down := errors.New("connection refused")
	errs = runChecks(ctx, server.Checks(blobsOpen{err: down}, meta, healthChecker{down}))
	if !errors.Is(errs["storage"], down) || !errors.Is(errs["temporal"], down) || errs["metadata"] != nil {
		t.Errorf("storage and Temporal down: %v", errs)
	}
	notFound := gofer.Errorf(gofer.ErrNotFound, "no such blob")
	if err := runChecks(ctx, server.Checks(blobsOpen{err: notFound}, meta, nil))["storage"]; err != nil {
		t.Errorf("a store that answers not found: %v", err)
	}
	found := &closeCounter{}
	if err := runChecks(ctx, server.Checks(blobsOpen{r: found}, meta, nil))["storage"]; err != nil || found.closed != 1 {
		t.Errorf("a store that holds the probe blob: %v, closed %d times, want nil and closed once", err, found.closed)
	}

	meta.Close()
	if err := runChecks(ctx, server.Checks(blobs, meta, nil))["metadata"]; err == nil {
		t.Error("a closed metadata store passes its check")
	}
}

// A Server with the standard checks names the dependency that fails.
func TestReadyNamesFailingStore(t *testing.T) {
	blobs, meta := teststores.Open(t, "")
	meta.Close()
	srv := httptest.NewServer(server.New(server.Config{Blobs: blobs, Meta: meta, Temporal: noTemporal{t},
		Ready: server.Checks(blobs, meta, healthChecker{})}))
	defer srv.Close()
	status, _, body := testserver.Get(t, "GET", srv.URL+"/readyz")
	if status != http.StatusServiceUnavailable ||
		!strings.Contains(string(body), "storage: ok\n") ||
		!strings.Contains(string(body), "metadata: failing\n") ||
		!strings.Contains(string(body), "temporal: ok\n") {
		t.Errorf("GET /readyz with the metadata store closed: %d %q", status, body)
	}
	if status, _, body := testserver.Get(t, "HEAD", srv.URL+"/readyz"); status != http.StatusServiceUnavailable || len(body) != 0 {
		t.Errorf("HEAD /readyz: %d %q", status, body)
	}
	if status, _, body := testserver.Get(t, "GET", srv.URL+"/healthz"); status != http.StatusOK {
		t.Errorf("GET /healthz with the metadata store closed: %d %q, want 200 (liveness only)", status, body)
	}
}
