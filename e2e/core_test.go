package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/activities"
	"github.com/goferproxy/gofer/internal/fakeproxy"
	"github.com/goferproxy/gofer/internal/testserver"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/storage/embedded"
	"github.com/goferproxy/gofer/storage/storagetest"
	"github.com/goferproxy/gofer/workflows"
)

// The go command downloads through gofer exactly what it gets from the upstream directly, and
// a second download into a fresh module cache works with the upstream gone.
func TestDownloadThenServeWithoutUpstream(t *testing.T) {
	up := fakeproxy.New()
	upURL := up.Start(t)
	g := startGofer(t, upURL, options{})

	for _, pv := range []string{"example.com/hello@v1.0.0", "github.com/Upper/Case@v1.0.0", "example.com/hello/v2@v2.0.0"} {
		direct, err := download(t, upURL, pv)
		if err != nil {
			t.Fatal(err)
		}
		first, err := download(t, g.URL, pv)
		if err != nil {
			t.Fatal(err)
		}
		if first.Sum != direct.Sum || first.GoModSum != direct.GoModSum {
			t.Errorf("%s through gofer: %s %s; direct: %s %s", pv, first.Sum, first.GoModSum, direct.Sum, direct.GoModSum)
		}
	}
	up.Close()
	for _, pv := range []string{"example.com/hello@v1.0.0", "github.com/Upper/Case@v1.0.0", "example.com/hello/v2@v2.0.0"} {
		if _, err := download(t, g.URL, pv); err != nil {
			t.Errorf("with the upstream stopped: %v", err)
		}
	}
	// An operator finds each fetch in the Temporal UI by its search attributes.
	query := `GoModule = "github.com/Upper/Case" AND GoVersion = "v1.0.0"`
	var found []string
	for deadline := time.Now().Add(10 * time.Second); len(found) == 0 && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		resp, err := g.temporal.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Namespace: g.ns, Query: query})
		if err != nil {
			t.Fatal(err)
		}
		found = found[:0]
		for _, e := range resp.GetExecutions() {
			found = append(found, e.GetExecution().GetWorkflowId())
		}
	}
	slices.Sort(found)
	want := []string{workflows.FetchID("github.com/Upper/Case", "v1.0.0", activities.FilesMod), workflows.FetchID("github.com/Upper/Case", "v1.0.0", activities.FilesZip)}
	if !slices.Equal(found, want) {
		t.Errorf("workflows matching %s: %v, want the fetches of the .mod and the zip, %v", query, found, want)
	}
}

// `go get` in a module resolves @latest and the list through gofer, and a branch name is
// resolved to its canonical version.
func TestGoGetAndQueries(t *testing.T) {
	up := fakeproxy.New()
	g := startGofer(t, up.Start(t), options{})
	cache := t.TempDir()
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cmd := goCommand(g.URL, cache, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("mod", "init", "example.com/client")
	run("get", "example.com/hello")
	if out := run("list", "-m", "example.com/hello"); strings.TrimSpace(out) != "example.com/hello v1.1.0" {
		t.Errorf("go get chose %q, want the latest, v1.1.0", out)
	}
	if out := run("list", "-m", "-versions", "example.com/hello"); strings.TrimSpace(out) != "example.com/hello v1.0.0 v1.1.0" {
		t.Errorf("versions: %q", out)
	}
	m, err := download(t, g.URL, "example.com/hello@master")
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != "v1.1.0" {
		t.Errorf("master resolved to %s, want v1.1.0", m.Version)
	}
}

// @v/list merges the upstream's list with what is stored, and falls back to what is stored when
// the upstream is gone; @latest falls back to the highest stored version.
func TestListAndLatestFallBackToStorage(t *testing.T) {
	up := fakeproxy.New()
	g := startGofer(t, up.Start(t), options{mutableTTL: -1})
	if _, err := download(t, g.URL, "example.com/hello@v1.0.0"); err != nil {
		t.Fatal(err)
	}
	up.Hide("example.com/hello", "v1.0.0") // the upstream loses a version we have
	up.Add("example.com/hello", "v1.2.0", map[string]string{"go.mod": "module example.com/hello\n"})
	status, _, body := testserver.Get(t, "GET", g.URL+"/example.com/hello/@v/list")
	if status != 200 || string(body) != "v1.0.0\nv1.1.0\nv1.2.0\n" {
		t.Errorf("merged list: %d %q", status, body)
	}
	up.Close()
	status, _, body = testserver.Get(t, "GET", g.URL+"/example.com/hello/@v/list")
	if status != 200 || string(body) != "v1.0.0\n" {
		t.Errorf("list with the upstream gone: %d %q", status, body)
	}
	status, _, body = testserver.Get(t, "GET", g.URL+"/example.com/hello/@latest")
	if status != 200 || !strings.Contains(string(body), `"Version":"v1.0.0"`) {
		t.Errorf("latest with the upstream gone: %d %q", status, body)
	}
}

// getAll sends n GETs of url at once and returns their statuses and bodies (status 0 for one
// that failed, which fails t).
func getAll(t *testing.T, url string, n int) ([]int, [][]byte) {
	statuses, bodies := make([]int, n), make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, err := http.Get(url)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			statuses[i] = resp.StatusCode
			if bodies[i], err = io.ReadAll(resp.Body); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	return statuses, bodies
}

// 200 concurrent requests for a missing version cause one upstream download, and every
// response carries the same bytes.
func TestConcurrentMissesShareOneFetch(t *testing.T) {
	up := fakeproxy.New()
	up.Delay(200 * time.Millisecond) // keep the fetch in flight while the requests pile up
	g := startGofer(t, up.Start(t), options{})
	const n = 200
	url := g.URL + "/example.com/hello/@v/v1.1.0.zip"
	statuses, bodies := getAll(t, url, n)
	for i := range n {
		if statuses[i] != 200 || !bytes.Equal(bodies[i], bodies[0]) {
			t.Fatalf("response %d: status %d, %d bytes; response 0: %d bytes", i, statuses[i], len(bodies[i]), len(bodies[0]))
		}
	}
	if got := up.Requests("/example.com/hello/@v/v1.1.0.zip"); got != 1 {
		t.Errorf("upstream saw %d zip downloads, want 1", got)
	}
	// The requests in flight together share one wait in the front end; only stragglers that
	// missed it ask Temporal again (and join the finished run).
	if got := g.starts.Load(); got > n/10 {
		t.Errorf("the front end asked Temporal %d times for %d concurrent requests", got, n)
	}
	if len(bodies[0]) == 0 {
		t.Error("empty zip")
	}
}

// The upstream answers the zip 503 three times and the .mod twice, then succeeds: the fetches
// complete and the client gets the module. (The zip's fetch is bounded, as nothing vouches for
// the version, but eight attempts are enough; both fetches' retries are those of a local
// activity, FetchMod's and FetchZip's, inside their workflows' first tasks.)
func TestRetriesThroughUpstreamErrors(t *testing.T) {
	up := fakeproxy.New()
	zip, mod := "/example.com/hello/@v/v1.0.0.zip", "/example.com/hello/@v/v1.0.0.mod"
	up.Fail(zip, 3, 503)
	up.Fail(mod, 2, 503)
	g := startGofer(t, up.Start(t), options{})
	if _, err := download(t, g.URL, "example.com/hello@v1.0.0"); err != nil {
		t.Fatal(err)
	}
	if got := up.Requests(zip); got != 4 {
		t.Errorf("upstream saw %d zip requests, want 4", got)
	}
	if got := up.Requests(mod); got != 3 {
		t.Errorf("upstream saw %d .mod requests, want 3", got)
	}
	zipID, modID := workflows.FetchID("example.com/hello", "v1.0.0", activities.FilesZip), workflows.FetchID("example.com/hello", "v1.0.0", activities.FilesMod)
	for _, id := range []string{zipID, modID} {
		// The client was answered at the commit, before the workflow task that ran it ended.
		if err := g.temporal.GetWorkflow(context.Background(), id, "").Get(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		iter := g.temporal.GetWorkflowHistory(context.Background(), id, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		markers := 0
		for iter.HasNext() {
			ev, err := iter.Next()
			if err != nil {
				t.Fatal(err)
			}
			if ev.GetActivityTaskScheduledEventAttributes() != nil {
				t.Errorf("%s: activity %s scheduled; want one local activity alone", id, ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName())
			}
			if ev.GetMarkerRecordedEventAttributes() != nil {
				markers++
			}
		}
		if markers == 0 {
			t.Errorf("%s: no local activity recorded", id)
		}
	}
	if *record {
		recordHistory(t, g, zipID, "../workflows/testdata/fetch_zip_history.json")
		recordHistory(t, g, modID, "../workflows/testdata/fetch_mod_history.json")
	}
}

// Not found upstream (404, 410, 403) is a 404 or 410 from gofer with a one-line reason, and a
// client with GOPROXY=<gofer>,<second> falls through to the second proxy.
func TestNotFoundFallsThrough(t *testing.T) {
	up := fakeproxy.New()
	second := fakeproxy.New()
	secondURL := second.Start(t)
	g := startGofer(t, up.Start(t), options{})
	for i, status := range []int{404, 410, 403} {
		version := fmt.Sprintf("v1.0.%d", 10+i)
		files := map[string]string{"go.mod": "module example.com/gone\n", "gone.go": "package gone\n"}
		up.Add("example.com/gone", version, files)
		second.Add("example.com/gone", version, files)
		up.Fail("/example.com/gone/@v/"+version+".info", -1, status)

		code, _, body := testserver.Get(t, "GET", g.URL+"/example.com/gone/@v/"+version+".info")
		if code != 404 && code != 410 {
			t.Errorf("%d: upstream %d: gofer answered %d", i, status, code)
		}
		if lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n"); len(lines) != 1 || lines[0] == "" {
			t.Errorf("%d: reason is not one line: %q", i, body)
		}
		if _, err := download(t, g.URL+","+secondURL, "example.com/gone@"+version); err != nil {
			t.Errorf("%d: no fall-through: %v", i, err)
		}
		if second.Requests("/example.com/gone/@v/"+version+".zip") != 1 {
			t.Errorf("%d: the second proxy served no zip", i)
		}
	}
}

// Requests that cannot name a module version get 4xx and start no workflow.
func TestInvalidRequestsStartNothing(t *testing.T) {
	up := fakeproxy.New()
	g := startGofer(t, up.Start(t), options{})
	paths := []string{
		"/example.com/hello/@v/v1.0.0.tar",        // not a protocol file
		"/github.com/!upper!/case/@v/v1.0.0.info", // bad ! escape
		"/github.com/Upper/Case/@v/v1.0.0.info",   // unescaped upper case
		"/example.com/../etc/@v/v1.0.0.info",      // dot-dot element
		"/example.com/hello/@v/../../x.zip",       // dot-dot in the version
		"/example.com/hello/@v/master.zip",        // not a canonical version
		"/example.com/hello/@v/v1.0.zip",          // not canonical either
		"/example.com/hello/@v/v2.0.0.mod",        // wrong major version for the path
		"/example.com/hello/@v/v1.0.0.info/extra", // trailing junk
		"/" + strings.Repeat("a", 2000) + ".com/@v/v1.0.0.info",
		"/example.com/hello",               // no @v
		"/example.com/hello/@v/V1.0.0.zip", // upper-case version
	}
	for i, p := range paths {
		code, _, body := testserver.Get(t, "GET", g.URL+p)
		if code < 400 || code >= 500 {
			t.Errorf("%d: %s: %d %q, want 4xx", i, p, code, body)
		}
	}
	if code, h, _ := testserver.Get(t, "POST", g.URL+"/example.com/hello/@v/v1.0.0.info"); code != http.StatusMethodNotAllowed ||
		h.Get("Allow") != "GET, HEAD" || h.Get("Cache-Control") != "no-store" {
		t.Errorf("POST: %d %v, want 405 with Allow and no-store, as every plain-text answer", code, h)
	}
	if n := g.workflowCount(t); n != 0 {
		t.Errorf("%d workflows started by invalid requests", n)
	}
	if n := len(up.Log()); n != 0 {
		t.Errorf("invalid requests reached the upstream: %v", up.Log())
	}
}

// A zip that breaks the rules is refused with a reason, and nothing of it is stored: the
// version's .info and .mod, which are sound, are stored without it.
func TestInvalidContentIsNotStored(t *testing.T) {
	up := fakeproxy.New()
	g := startGofer(t, up.Start(t), options{})
	const path = "example.com/bad"
	cases := []struct {
		version string
		zip     map[string]string
		reason  string
	}{
		{"v1.0.0", map[string]string{path + "@v1.0.0/go.mod": "module example.com/other\n"}, "example.com/other"},
		{"v1.0.1", map[string]string{path + "@v1.0.1/go.mod": "module example.com/bad\n", "outside.go": "package x\n"}, "outside.go"},
	}
	for i, c := range cases {
		up.Add(path, c.version, map[string]string{"go.mod": "module example.com/bad\n", "bad.go": "package bad\n"})
		up.SetFile(path, c.version, "zip", fakeproxy.RawZip(c.zip))
		code, _, body := testserver.Get(t, "GET", g.URL+"/"+path+"/@v/"+c.version+".zip")
		if code != http.StatusGone || !strings.Contains(string(body), c.reason) {
			t.Errorf("%d: %d %q, want 410 naming %q", i, code, body, c.reason)
		}
		if rec, err := g.meta.Get(context.Background(), path, c.version); err != nil || rec.HasZip() {
			t.Errorf("%d: record %+v, %v; want one without a zip", i, rec, err)
		}
		if z, err := g.meta.GetZip(context.Background(), path, c.version); !errors.Is(err, gofer.ErrNotFound) {
			t.Errorf("%d: zip record stored: %+v, %v", i, z, err)
		}
		if r, _, err := g.blobs.Open(context.Background(), storagetest.Key(t, path, c.version, "zip")); err == nil {
			r.Close()
			t.Errorf("%d: zip blob stored", i)
		}
		if _, err := download(t, g.URL, path+"@"+c.version); err == nil {
			t.Errorf("%d: the go command got a refused version", i)
		}
	}
}

// failingInsert makes metadata inserts fail while broken is set: a fault between "blobs
// written" and "metadata inserted".
type failingInsert struct {
	storage.Metadata
	broken chan struct{} // closed when healed
}

func (f *failingInsert) Insert(ctx context.Context, v gofer.Version) error {
	select {
	case <-f.broken:
		return f.Metadata.Insert(ctx, v)
	default:
		return errors.New("injected fault: metadata store down")
	}
}

// A fault between the blobs and the metadata insert leaves no visible version; the next request
// after the fault heals completes the fetch.
func TestFaultBeforeCommitLeavesNothingVisible(t *testing.T) {
	up := fakeproxy.New()
	fault := &failingInsert{broken: make(chan struct{})}
	meta, err := embedded.Open(filepath.Join(t.TempDir(), "metadata.db"))
	if err != nil {
		t.Fatal(err)
	}
	fault.Metadata = meta
	g := startGofer(t, up.Start(t), options{
		fetchWait: 10 * time.Second, // longer than the commit's retry backoff once the fault heals
		meta:      fault,
	})
	const info = "/example.com/hello/@v/v1.0.0.info"
	code, hdr, body := testserver.Get(t, "GET", g.URL+info)
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Fatalf("during the fault: %d %q (Retry-After %q), want 503 with Retry-After", code, body, hdr.Get("Retry-After"))
	}
	// The blobs were written before the failing insert...
	if r, _, err := g.blobs.Open(context.Background(), storagetest.Key(t, "example.com/hello", "v1.0.0", "mod")); err != nil {
		t.Fatalf("the fault came before the blobs were written: %v", err)
	} else {
		r.Close()
	}
	// ...but nothing can see the version.
	if _, err := g.meta.Get(context.Background(), "example.com/hello", "v1.0.0"); !errors.Is(err, gofer.ErrNotFound) {
		t.Errorf("metadata visible during the fault: %v", err)
	}
	close(fault.broken)
	// The commit's next attempt comes at its backoff (up to 32 s by now): a client retries
	// after a 503, as the go command's user would.
	var m moduleJSON
	for try := 0; ; try++ {
		if m, err = download(t, g.URL, "example.com/hello@v1.0.0"); err == nil {
			break
		} else if try == 3 {
			t.Fatalf("after the fault healed: %v", err)
		}
	}
	if !strings.HasPrefix(m.Sum, "h1:") {
		t.Errorf("sum %q", m.Sum)
	}
	if got := up.Requests("/example.com/hello/@v/v1.0.0.zip"); got != 1 {
		t.Errorf("upstream saw %d zip downloads; the retried commit should reuse the staged fetch", got)
	}
}

// Stored versions carry a strong ETag and immutable caching; HEAD, Range and If-None-Match work.
func TestResponseHeaders(t *testing.T) {
	up := fakeproxy.New()
	g := startGofer(t, up.Start(t), options{})
	base := g.URL + "/example.com/hello/@v/v1.0.0"
	types := map[string]string{".info": "application/json", ".mod": "text/plain; charset=utf-8", ".zip": "application/zip"}
	for ext, ctype := range types {
		code, h, body := testserver.Get(t, "GET", base+ext)
		if code != 200 || h.Get("Content-Type") != ctype || h.Get("Cache-Control") != "public, max-age=31536000, immutable" {
			t.Errorf("%s: %d %v", ext, code, h)
		}
		etag := h.Get("ETag")
		if sum := sha256.Sum256(body); etag != `"`+hex.EncodeToString(sum[:])+`"` {
			t.Errorf("%s: ETag %q is not the strong SHA-256 of the body", ext, etag)
		}
		if code, _, _ := testserver.Get(t, "GET", base+ext, "If-None-Match", etag); code != http.StatusNotModified {
			t.Errorf("%s: If-None-Match: %d", ext, code)
		}
		code, h, head := testserver.Get(t, "HEAD", base+ext)
		if code != 200 || len(head) != 0 || h.Get("Content-Length") != fmt.Sprint(len(body)) {
			t.Errorf("%s: HEAD: %d, %d body bytes, Content-Length %q", ext, code, len(head), h.Get("Content-Length"))
		}
		if ext == ".zip" {
			code, _, part := testserver.Get(t, "GET", base+ext, "Range", "bytes=10-19")
			if code != http.StatusPartialContent || !bytes.Equal(part, body[10:20]) {
				t.Errorf("range: %d %q", code, part)
			}
		}
	}
	code, h, _ := testserver.Get(t, "GET", g.URL+"/example.com/hello/@v/list")
	if code != 200 || h.Get("Cache-Control") != "public, max-age=60" {
		t.Errorf("list: %d %v", code, h)
	}
	if code, _, body := testserver.Get(t, "GET", g.URL+"/healthz"); code != 200 {
		t.Errorf("healthz: %d %q", code, body)
	}
}

// A flood of requests for a version that does not exist costs one fetch, which asks the
// upstream for each of its files once at most: the not-found answer is remembered for
// GOFER_NOT_FOUND_TTL.
func TestNotFoundIsRemembered(t *testing.T) {
	up := fakeproxy.New()
	g := startGofer(t, up.Start(t), options{})
	url := g.URL + "/example.com/hello/@v/v1.9.9.info"
	for range 4 {
		statuses, _ := getAll(t, url, 25)
		for _, status := range statuses {
			if status != http.StatusNotFound {
				t.Errorf("status %d, want 404", status)
			}
		}
	}
	// One fetch asks for the three files at once; the first not found cancels the others,
	// which may or may not have reached the upstream by then. The first miss also asks the
	// upstream for the .info itself, alongside the fetch, so as not to wait for it.
	asked := 0
	for ext, most := range map[string]int{"info": 2, "mod": 1, "zip": 1} {
		n := up.Requests("/example.com/hello/@v/v1.9.9." + ext)
		if n > most {
			t.Errorf("100 requests for a missing version asked the upstream for its .%s %d times, want %d at most", ext, n, most)
		}
		asked += n
	}
	if asked == 0 {
		t.Error("100 requests for a missing version never reached the upstream")
	}
	if n := g.starts.Load(); n != 1 {
		t.Errorf("the front end asked Temporal for %d fetches, want 1", n)
	}
	// A query (a non-canonical version) that the upstream does not know is remembered too.
	for range 10 {
		testserver.Get(t, "GET", g.URL+"/example.com/hello/@v/nosuchbranch.info")
	}
	if n := up.Requests("/example.com/hello/@v/nosuchbranch.info"); n != 1 {
		t.Errorf("10 queries for an unknown branch cost %d upstream requests, want 1", n)
	}
}
