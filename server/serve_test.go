package server_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/internal/teststores"
	"github.com/goferproxy/gofer/rules"
	"github.com/goferproxy/gofer/server"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/storage/storagetest"
	"github.com/goferproxy/gofer/workflows"
)

// countingBlobs counts the blobs opened, by key.
type countingBlobs struct {
	storage.Blobs
	mu    sync.Mutex
	opens map[string]int
}

func (c *countingBlobs) Open(ctx context.Context, key string) (storage.Reader, int64, error) {
	c.mu.Lock()
	c.opens[key]++
	c.mu.Unlock()
	return c.Blobs.Open(ctx, key)
}

func (c *countingBlobs) count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.opens[key]
}

// A zip of at most MaxHeldZip bytes is read at its first hit (not when the .mod alone is asked
// for) and served from memory from then on, like .info and .mod: GET, HEAD, a Range and
// If-None-Match get the usual answers, and no later hit reads a blob. A bigger zip is opened
// on every hit.
func TestSmallZipServedFromMemory(t *testing.T) {
	disk, meta := teststores.Open(t, "")
	blobs := &countingBlobs{Blobs: disk, opens: map[string]int{}}
	srv := httptest.NewServer(server.New(server.Config{Blobs: blobs, Meta: meta, Temporal: noTemporal{t}}))
	defer srv.Close()
	for _, c := range []struct {
		version  string
		zipSize  int
		streamed bool
	}{
		{"v1.0.0", server.MaxHeldZip, false},
		{"v1.1.0", server.MaxHeldZip + 1, true},
	} {
		zip := storeVersion(t, disk, meta, c.version, c.zipSize)["zip"]
		key := storagetest.Key(t, benchPath, c.version, "zip")
		etag := `"` + sha256hex(zip) + `"`
		resp, err := http.Get(srv.URL + "/" + storagetest.Key(t, benchPath, c.version, "mod"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if n := blobs.count(key); resp.StatusCode != 200 || n != 0 {
			t.Errorf("%s: .mod answered %d and read the zip %d times, want 200 and none", c.version, resp.StatusCode, n)
		}
		hits := []struct {
			method, header, value string
			status                int
			body                  []byte
			length                string // Content-Length
		}{
			{"GET", "", "", 200, zip, strconv.Itoa(len(zip))}, // the first loads the version
			{"GET", "", "", 200, zip, strconv.Itoa(len(zip))},
			{"HEAD", "", "", 200, nil, strconv.Itoa(len(zip))},
			{"GET", "Range", "bytes=100-199", 206, zip[100:200], "100"},
			{"GET", "If-None-Match", etag, 304, nil, ""},
		}
		for _, h := range hits {
			req, _ := http.NewRequest(h.method, srv.URL+"/"+key, nil)
			if h.header != "" {
				req.Header.Set(h.header, h.value)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != h.status || !bytes.Equal(body, h.body) || resp.Header.Get("Content-Length") != h.length || resp.Header.Get("ETag") != etag {
				t.Errorf("%s %s %s %s: %d, %d bytes, Content-Length %q, ETag %s", c.version, h.method, h.header, h.value, resp.StatusCode, len(body), resp.Header.Get("Content-Length"), resp.Header.Get("ETag"))
			}
		}
		want := 1 // at the first hit
		if c.streamed {
			want = len(hits)
		}
		if got := blobs.count(key); got != want {
			t.Errorf("%s: the %d-byte zip was opened %d times in %d hits, want %d", c.version, len(zip), got, len(hits), want)
		}
	}
}

// The request log and the bytes metric count every body byte, a zip sent from a file on disk
// (around gin's writer, for sendfile) as much as one held in memory.
func TestRequestLogCountsBodyBytes(t *testing.T) {
	disk, meta := teststores.Open(t, "")
	core, logs := observer.New(zap.InfoLevel)
	srv := server.New(server.Config{Blobs: disk, Meta: meta, Temporal: noTemporal{t}, Log: zap.New(core)})
	for _, c := range []struct {
		version string
		zipSize int
	}{
		{"v1.0.0", server.MaxHeldZip},
		{"v1.1.0", server.MaxHeldZip + 1},
	} {
		files := storeVersion(t, disk, meta, c.version, c.zipSize)
		for _, ext := range []string{"info", "mod", "zip", "zip"} {
			w := httptest.NewRecorder()
			srv.ServeHTTP(w, httptest.NewRequest("GET", "/"+storagetest.Key(t, benchPath, c.version, ext), nil))
			all := logs.TakeAll()
			if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), files[ext]) || len(all) != 1 {
				t.Fatalf("%s %s: %d, %d bytes, %d log lines", c.version, ext, w.Code, w.Body.Len(), len(all))
			}
			if got := all[0].ContextMap()["bytes"]; got != int64(len(files[ext])) {
				t.Errorf("%s %s: logged %v bytes, sent %d", c.version, ext, got, len(files[ext]))
			}
		}
	}
}

// slowBlobs is a store whose reads take a while, as a distant one's do.
type slowBlobs struct{ *countingBlobs }

func (s slowBlobs) Open(ctx context.Context, key string) (storage.Reader, int64, error) {
	time.Sleep(100 * time.Millisecond)
	return s.countingBlobs.Open(ctx, key)
}

// Many requests at once for a stored version that is not in memory, as when a fetch that they
// all waited for ends, share one read of its files.
func TestConcurrentFirstHitsShareOneRead(t *testing.T) {
	disk, meta := teststores.Open(t, "")
	blobs := &countingBlobs{Blobs: disk, opens: map[string]int{}}
	files := storeVersion(t, disk, meta, benchVersion, 30<<10)
	srv := server.New(server.Config{Blobs: slowBlobs{blobs}, Meta: meta, Temporal: noTemporal{t}})
	const n = 50
	var wg sync.WaitGroup
	for _, ext := range []string{"info", "zip"} {
		key := storagetest.Key(t, benchPath, benchVersion, ext)
		for range n {
			wg.Go(func() {
				w := httptest.NewRecorder()
				srv.ServeHTTP(w, httptest.NewRequest("GET", "/"+key, nil))
				if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), files[ext]) {
					t.Errorf("%s: %d, %d bytes", ext, w.Code, w.Body.Len())
				}
			})
		}
	}
	wg.Wait()
	for _, ext := range []string{"info", "mod", "zip"} {
		if got := blobs.count(storagetest.Key(t, benchPath, benchVersion, ext)); got > n/10 {
			t.Errorf("%d concurrent requests read the %s %d times", n, ext, got)
		}
	}
}

// Every answer carries a request ID: the client's X-Request-ID if it is sane, else a new one,
// the same as in the request's log line.
func TestRequestID(t *testing.T) {
	disk, meta := teststores.Open(t, "")
	core, logs := observer.New(zap.InfoLevel)
	srv := server.New(server.Config{Blobs: disk, Meta: meta, Temporal: noTemporal{t}, Log: zap.New(core)})
	seen := map[string]bool{}
	for _, c := range []struct{ sent, want string }{
		{"build-42.a_b", "build-42.a_b"},
		{"", ""},
		{"", ""},
		{"bad id\x01", ""},
		{strings.Repeat("x", 65), ""},
	} {
		req := httptest.NewRequest("GET", "/healthz", nil)
		if c.sent != "" {
			req.Header.Set("X-Request-ID", c.sent)
		}
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		got := w.Header().Get("X-Request-ID")
		logged := logs.TakeAll()
		if len(logged) != 1 || logged[0].ContextMap()["request_id"] != got {
			t.Fatalf("%q: answered ID %q, logged %v", c.sent, got, logged)
		}
		if c.want != "" && got != c.want || c.want == "" && (len(got) != 16 || seen[got]) {
			t.Errorf("sent %q, answered %q", c.sent, got)
		}
		seen[got] = true
	}
}

// stuckMeta's Get waits for its context, as a read from a store that does not answer does.
type stuckMeta struct{ storage.Metadata }

func (stuckMeta) Get(ctx context.Context, _, _ string) (gofer.Version, error) {
	<-ctx.Done()
	return gofer.Version{}, ctx.Err()
}

// A request whose client has gone stops waiting for a read of the store that does not answer.
func TestGoneRequestStopsWaitingForTheStore(t *testing.T) {
	disk, meta := teststores.Open(t, "")
	srv := server.New(server.Config{Blobs: disk, Meta: stuckMeta{meta}, Temporal: noTemporal{t}})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	key := storagetest.Key(t, benchPath, benchVersion, "info")
	go func() {
		srv.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/"+key, nil).WithContext(ctx))
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Error("the handler still runs 5 s after its request was cancelled")
	}
}

// committingMeta hides the version until the fetch has committed it. The read it is told to
// hold takes whether the version is committed as it starts, and answers once released: a slow
// read that began before the commit.
type committingMeta struct {
	storage.Metadata
	committed atomic.Bool
	hold      atomic.Bool
	held      chan struct{}
	release   chan struct{}
}

func (m *committingMeta) Get(ctx context.Context, path, version string) (gofer.Version, error) {
	committed := m.committed.Load()
	if m.hold.CompareAndSwap(true, false) {
		close(m.held)
		<-m.release
	}
	if !committed {
		return gofer.Version{}, gofer.Errorf(gofer.ErrNotFound, "not stored")
	}
	return m.Metadata.Get(ctx, path, version)
}

// fetchRun is a fetch that ends, committing the version, when done is closed; a later start
// gets the same run, as one after a successful fetch does.
type fetchRun struct {
	client.WorkflowRun
	meta    *committingMeta
	once    sync.Once
	waiting chan struct{}
	done    chan struct{}
}

func (r *fetchRun) GetID() string    { return "fetch" }
func (r *fetchRun) GetRunID() string { return "run" }
func (r *fetchRun) Get(ctx context.Context, _ any) error {
	r.once.Do(func() { close(r.waiting) })
	select {
	case <-r.done:
	case <-ctx.Done(): // the waiter gave up (FetchWait); the fetch goes on
		return ctx.Err()
	}
	r.meta.committed.Store(true)
	return nil
}

type fetchStarter struct{ run *fetchRun }

func (s fetchStarter) ExecuteWorkflow(context.Context, client.StartWorkflowOptions, any, ...any) (client.WorkflowRun, error) {
	return s.run, nil
}

// A request that waited for a fetch reads the version after the fetch stored it, even while a
// read of it that began before the commit (another request's) is still running.
func TestRequestAfterFetchReadsWhatItStored(t *testing.T) {
	disk, meta := teststores.Open(t, "")
	storeVersion(t, disk, meta, benchVersion, 1000)
	m := &committingMeta{Metadata: meta, held: make(chan struct{}), release: make(chan struct{})}
	run := &fetchRun{meta: m, waiting: make(chan struct{}), done: make(chan struct{})}
	srv := server.New(server.Config{Blobs: disk, Meta: m, Upstream: &upstreamInfo{}, Temporal: fetchStarter{run}})
	codes := make(chan int, 2)
	serve := func() {
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, httptest.NewRequest("GET", "/"+storagetest.Key(t, benchPath, benchVersion, "info"), nil))
		codes <- w.Code
	}
	go serve() // misses and waits for the fetch
	<-run.waiting
	m.hold.Store(true)
	go serve() // its read begins before the commit, and is slow
	<-m.held
	close(run.done) // the fetch commits and ends: the first request reads the version again
	time.Sleep(100 * time.Millisecond)
	close(m.release)
	for range 2 {
		if code := <-codes; code != http.StatusOK {
			t.Errorf("a request answered %d after the fetch stored the version", code)
		}
	}
}

// upstreamInfo answers .info queries: with err, or with benchVersion's .info when err is nil.
type upstreamInfo struct {
	server.Upstream
	err   error
	asked atomic.Int32
}

func (u *upstreamInfo) Info(context.Context, string, string) ([]byte, string, error) {
	u.asked.Add(1)
	if u.err != nil {
		return nil, "", u.err
	}
	return []byte(`{"Version":"` + benchVersion + `"}`), "test", nil
}

// A miss of a version that the upstream says does not exist is answered not found at once,
// without waiting for its fetch (which would end not found too, later); a miss of one that
// exists waits for its fetch as before.
func TestMissingVersionIsNotWaitedFor(t *testing.T) {
	disk, meta := teststores.Open(t, "")
	m := &committingMeta{Metadata: meta, held: make(chan struct{}), release: make(chan struct{})}
	run := &fetchRun{meta: m, waiting: make(chan struct{}), done: make(chan struct{})}
	up := &upstreamInfo{err: gofer.Errorf(gofer.ErrNotFound, "GET http://upstream.test/x: 404 Not Found")}
	srv := server.New(server.Config{Blobs: disk, Meta: m, Upstream: up, Temporal: fetchStarter{run}, FetchWait: 5 * time.Second})
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, httptest.NewRequest("GET", "/"+storagetest.Key(t, benchPath, "v1.9.9", "info"), nil))
	if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "upstream.test") {
		t.Errorf("missing version: %d %q, want 404 naming the upstream's answer", w.Code, w.Body)
	}
	if up.asked.Load() != 1 {
		t.Errorf("upstream asked %d times, want once", up.asked.Load())
	}

	up.err = nil
	codes := make(chan int, 1)
	key := storagetest.Key(t, benchPath, "v1.0.1", "info")
	go func() {
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, httptest.NewRequest("GET", "/"+key, nil))
		codes <- w.Code
	}()
	<-run.waiting
	select {
	case code := <-codes:
		t.Fatalf("a version the upstream has was answered %d before its fetch ended", code)
	case <-time.After(200 * time.Millisecond):
	}
	close(run.done)
	<-codes
}

// blockedStarter starts fetches that end when release is closed, and records what it started.
type blockedStarter struct {
	release chan struct{}
	mu      sync.Mutex
	started []workflows.FetchRequest
}

func (s *blockedStarter) ExecuteWorkflow(_ context.Context, _ client.StartWorkflowOptions, _ any, args ...any) (client.WorkflowRun, error) {
	s.mu.Lock()
	s.started = append(s.started, args[0].(workflows.FetchRequest))
	s.mu.Unlock()
	return blockedRun{release: s.release}, nil
}

func (s *blockedStarter) requests() []workflows.FetchRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.started)
}

type blockedRun struct {
	client.WorkflowRun
	release chan struct{}
}

func (blockedRun) GetID() string    { return "fetch" }
func (blockedRun) GetRunID() string { return "run" }
func (r blockedRun) Get(ctx context.Context, _ any) error {
	select {
	case <-r.release:
		return temporal.NewNonRetryableApplicationError("gone", "NotFound", nil)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// A front end waits for at most MaxFetches fetches at once: a miss of one more version is 503
// with Retry-After at once and starts nothing, and is counted; once the fetches end, misses
// start fetches again. A fetch a request starts is Known only when a private rule routes it.
func TestFetchesAreCapped(t *testing.T) {
	disk, meta := teststores.Open(t, "")
	rulesFile := filepath.Join(t.TempDir(), "rules")
	if err := os.WriteFile(rulesFile, []byte("example.com/private private\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rs, err := rules.NewLive(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	st := &blockedStarter{release: make(chan struct{})}
	reader := sdkmetric.NewManualReader()
	up := &upstreamInfo{}
	srv := server.New(server.Config{Blobs: disk, Meta: meta, Upstream: up, Temporal: st, MaxFetches: 2, FetchWait: time.Minute, Rules: rs,
		Direct: &upstreamInfo{}, Meter: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")})
	get := func(path, version string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, httptest.NewRequest("GET", "/"+storagetest.Key(t, path, version, "mod"), nil))
		return w
	}
	var wg sync.WaitGroup
	for _, path := range []string{"example.com/a", "example.com/private"} {
		wg.Go(func() { get(path, "v1.0.0") })
	}
	for len(st.requests()) < 2 {
		time.Sleep(10 * time.Millisecond)
	}
	// A miss refused at the cap is still answered not found when the upstream says so.
	up.err = gofer.Errorf(gofer.ErrNotFound, "GET http://upstream.test/x: 404 Not Found")
	if w := get("example.com/missing", "v1.0.0"); w.Code != http.StatusNotFound {
		t.Errorf("a miss at MaxFetches that the upstream does not have: %d %q, want 404", w.Code, w.Body)
	}
	up.err = nil
	w := get("example.com/c", "v1.0.0")
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "retry later") {
		t.Errorf("a third fetch at MaxFetches 2: %d %q (Retry-After %q), want 503 with Retry-After", w.Code, w.Body, w.Header().Get("Retry-After"))
	}
	if n := len(st.requests()); n != 2 {
		t.Errorf("%d fetches started, want 2", n)
	}
	if n := metricValue(t, reader, "gofer.fetches.refused"); n != 2 {
		t.Errorf("gofer.fetches.refused = %d, want 2", n)
	}
	if n := metricValue(t, reader, "gofer.fetches.waiting"); n != 2 {
		t.Errorf("gofer.fetches.waiting = %d, want 2", n)
	}
	close(st.release)
	wg.Wait()
	get("example.com/c", "v1.0.0")
	reqs := st.requests()
	if len(reqs) != 3 {
		t.Fatalf("after the fetches ended, %d fetches started in all, want 3", len(reqs))
	}
	for _, r := range reqs {
		if r.Known != (r.Path == "example.com/private") {
			t.Errorf("fetch of %s: Known %v", r.Path, r.Known)
		}
	}
}

// metricValue is the sum of the int64 data points of the metric name.
func metricValue(t *testing.T, r *sdkmetric.ManualReader, name string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == name {
				for _, dp := range sum.DataPoints {
					n += dp.Value
				}
			}
		}
	}
	return n
}

// failingRun is a fetch whose outcome cannot be read: Get fails with err once ctx is near its end.
type failingRun struct {
	client.WorkflowRun
	err error
}

func (failingRun) GetID() string    { return "fetch" }
func (failingRun) GetRunID() string { return "run" }
func (r failingRun) Get(ctx context.Context, _ any) error {
	dl, _ := ctx.Deadline()
	time.Sleep(time.Until(dl) - 50*time.Millisecond) // the client's stream ends just before the deadline
	return r.err
}

type failingStarter struct{ run failingRun }

func (s failingStarter) ExecuteWorkflow(context.Context, client.StartWorkflowOptions, any, ...any) (client.WorkflowRun, error) {
	return s.run, nil
}

// A wait that ends at FetchWait is answered "still running ... retry later", however Temporal's
// client words the end of its stream.
func TestWaitEndsStillRunning(t *testing.T) {
	disk, meta := teststores.Open(t, "")
	for _, err := range []error{context.DeadlineExceeded, errors.New("stream error: stream ID 5; CANCEL; received from peer")} {
		srv := server.New(server.Config{Blobs: disk, Meta: meta, Upstream: &upstreamInfo{}, Temporal: failingStarter{failingRun{err: err}}, FetchWait: 300 * time.Millisecond})
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, httptest.NewRequest("GET", "/"+storagetest.Key(t, benchPath, "v1.0.1", "mod"), nil))
		if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "still running after 300ms; retry later") {
			t.Errorf("wait ended by %q: %d %q, want 503 still running", err, w.Code, w.Body)
		}
	}
}

// latestUpstream answers @latest with body.
type latestUpstream struct {
	server.Upstream
	body string
}

func (u latestUpstream) Latest(context.Context, string) ([]byte, string, error) {
	return []byte(u.body), "test", nil
}

// An upstream's @latest is passed on only if it names a canonical version of the module, with
// an RFC 3339 time if any: anything else is refused, never served.
func TestLatestIsChecked(t *testing.T) {
	disk, meta := teststores.Open(t, "")
	for _, c := range []struct {
		body string
		ok   bool
	}{
		{`{"Version":"v1.2.0","Time":"2024-01-02T03:04:05Z"}`, true},
		{`{"Version":"v1.2.0"}`, true},
		{`{"Version":"v1.0.0\r\nX-Evil: 1"}`, false},
		{`{"Version":"v2.0.0"}`, false}, // not a version of a v0/v1 path
		{`{"Version":"v1.2"}`, false},
		{`{"Version":"v1.2.0","Time":"yesterday"}`, false},
		{`not json`, false},
	} {
		srv := server.New(server.Config{Blobs: disk, Meta: meta, Upstream: latestUpstream{body: c.body}, Temporal: fetchStarter{}})
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, httptest.NewRequest("GET", "/example.com/m/@latest", nil))
		if got := w.Code == http.StatusOK && w.Body.String() == c.body; got != c.ok {
			t.Errorf("@latest %q: %d %q, want passed on: %v", c.body, w.Code, w.Body, c.ok)
		}
	}
}
