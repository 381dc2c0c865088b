package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/server"
	"github.com/goferproxy/gofer/sumdb"
	"github.com/goferproxy/gofer/worker"
	"github.com/goferproxy/gofer/workflows"
)

// countingFront serves target through a reverse proxy that counts the GET requests of each
// path and holds each zip for delay, so that a follow's fetches take a while; it answers 503
// for the paths in down.
type countingFront struct {
	URL      string
	srv      *httptest.Server
	mu       sync.Mutex
	requests map[string]int
	down     map[string]bool
}

func newCountingFront(t *testing.T, target string, delay time.Duration) *countingFront {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	f := &countingFront{requests: map[string]int{}, down: map[string]bool{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests[r.URL.Path]++
		down := f.down[r.URL.Path]
		f.mu.Unlock()
		if down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		if strings.HasSuffix(r.URL.Path, ".zip") {
			time.Sleep(delay)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	f.URL = f.srv.URL
	return f
}

// count is how many requests were for paths with the suffix, and how many distinct paths.
func (f *countingFront) count(suffix string) (requests, paths int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for p, n := range f.requests {
		if strings.HasSuffix(p, suffix) {
			requests, paths = requests+n, paths+1
		}
	}
	return requests, paths
}

// B follows A: A's upstream is the fake one, B's is A, and B's watchlist follows A (through a
// front that counts what B asks of it) for example.com/followed/*. Every version A stored
// appears in B within the schedule's first run, fetched from A and checked against the
// checksum database like any fetch, although B's worker is restarted in the middle of that run,
// and no version is fetched twice; later runs go on from where the last one stopped; B serves
// the versions to the go command with A stopped. A keeps its versions on disk and in the
// embedded store, B in S3 and MongoDB.
func TestFollow(t *testing.T) {
	up, db, upURL, parsed := sumdbUpstream(t)
	a := startGofer(t, upURL, options{admin: adminToken, sumdb: &sumdb.Checker{DB: parsed}})
	followed := addModules(up, "followed", 6, 10)
	other := addModules(up, "other", 1, 3)
	var started server.WarmStarted
	if code := adminCall(t, http.MethodPost, a.URL+"/admin/warm", adminToken, strings.Join(append(other, followed...), "\n"), &started); code != http.StatusAccepted {
		t.Fatalf("POST /admin/warm: %d", code)
	}
	if st := awaitWarm(t, a, started.ID); st.Status != "Completed" || st.Progress.Fetched != len(followed)+len(other) {
		t.Fatalf("A's warm ended %s with %+v", st.Status, st.Progress)
	}

	front := newCountingFront(t, a.URL, 300*time.Millisecond)
	followURL := strings.Replace(front.URL, "http://", "http://follower:s3cret@", 1) // userinfo is never shown
	blobs, _ := s3Store(t)
	meta, _ := mongoStore(t)
	b := startGofer(t, a.URL, options{blobs: blobs, meta: meta, sumdb: &sumdb.Checker{DB: parsed},
		watchlist: "follow " + followURL + " example.com/followed/* every 2s\n"})
	ctx := context.Background()
	id := worker.WatchSchedulePrefix + "follow:" + front.URL
	desc, err := b.temporal.ScheduleClient().GetHandle(ctx, id).Describe(ctx)
	if err != nil {
		t.Fatalf("schedule %s: %v", id, err)
	}
	if args := fmt.Sprint(desc.Schedule.Action.(*client.ScheduleWorkflowAction).Args); strings.Contains(args, "s3cret") {
		t.Errorf("the schedule's arguments show the follow's password: %s", args)
	}

	// Restart B's worker while the first run's fetches are under way.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if n, _ := front.count(".zip"); n >= 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("B fetched no zips from A within a minute")
		}
	}
	b.restart(t)

	// One run of the schedule stored them all, and read A's index to its end. (The fetches
	// the stopped worker ran go on at the next attempt, after the heartbeat timeout.)
	first := awaitFollowRun(t, b, id, func(p workflows.FollowProgress) bool { return p.Fetched > 0 })
	for _, pv := range followed {
		path, v, _ := strings.Cut(pv, "@")
		if rec, err := b.meta.Get(ctx, path, v); err != nil || !rec.HasZip() || rec.VerifiedBy != "sumdb "+db.Name() {
			t.Errorf("B's %s: zip %v, verified by %q (%v); want the zip, checked by the test database", pv, rec.HasZip(), rec.VerifiedBy, err)
		}
	}
	p := first.Progress
	if p.Total != len(followed) || p.Fetched != len(followed) || p.Failed != 0 || p.Listed != len(followed)+len(other) {
		t.Errorf("first follow run: %+v; want %d listed, %d fetched", p, len(followed)+len(other), len(followed))
	}
	for _, pv := range other {
		path, v, _ := strings.Cut(pv, "@")
		if _, err := b.meta.Get(ctx, path, v); err == nil || gofer.Kind(err) != gofer.ErrNotFound {
			t.Errorf("B stored %s, which it does not follow (%v)", pv, err)
		}
	}
	// Each version was fetched once: one fetch of its .mod and one of its zip, however the
	// restart fell; only a download in flight at the restart may have been asked again.
	if n := fetchRuns(t, b); n != 2*int64(len(followed)) {
		t.Errorf("B ran %d fetches, want %d", n, 2*len(followed))
	}
	if zips, paths := front.count(".zip"); paths != len(followed) || zips > len(followed)+16 {
		t.Errorf("B asked A for %d zips of %d versions, want the %d followed ones, each about once", zips, paths, len(followed))
	}

	// A version A stores later comes with a later run, which reads the index from where the
	// last one stopped; its zip, which A fails to serve to the follow, comes from B's upstream
	// instead.
	const later = "example.com/followed/m0@v1.1.0"
	up.Add("example.com/followed/m0", "v1.1.0", map[string]string{"go.mod": "module example.com/followed/m0\n"})
	front.mu.Lock()
	front.down["/example.com/followed/m0/@v/v1.1.0.zip"] = true
	front.mu.Unlock()
	if _, err := download(t, a.URL, later, "GOSUMDB="+db.VerifierKey()); err != nil {
		t.Fatal(err)
	}
	awaitStored(t, b, "example.com/followed/m0", "v1.1.0")
	run := awaitFollowRun(t, b, id, func(p workflows.FollowProgress) bool { return p.Fetched > 0 && p.Since.After(first.Progress.Since) })
	if run.Progress.Listed != 1 || run.Progress.Fetched != 1 {
		t.Errorf("the run that stored %s: %+v, want it to list and fetch that version alone", later, run.Progress)
	}
	front.mu.Lock()
	asked := front.requests["/example.com/followed/m0/@v/v1.1.0.zip"]
	front.mu.Unlock()
	if rec, err := b.meta.Get(ctx, "example.com/followed/m0", "v1.1.0"); err != nil || !rec.HasZip() || asked == 0 {
		t.Errorf("%s: zip stored %v (%v) after the followed front was asked for it %d times and failed; want it from B's upstream", later, rec.HasZip(), err, asked)
	}

	// With A gone, B serves what it follows.
	a.stop()
	front.srv.Close()
	for _, pv := range []string{followed[0], followed[len(followed)-1], later} {
		if _, err := download(t, b.URL, pv, "GOSUMDB="+db.VerifierKey()); err != nil {
			t.Error(err)
		}
	}
	if *record {
		recordHistory(t, b, first.WorkflowID, "../workflows/testdata/follow_history.json")
	}
}

// followRun is one ended run of a follow schedule.
type followRun struct {
	WorkflowID string
	Progress   workflows.FollowProgress
}

// awaitFollowRun waits for a run of the schedule id, among its recent ones, to have completed
// with progress that ok accepts, and returns it.
func awaitFollowRun(t *testing.T, g *proxy, id string, ok func(workflows.FollowProgress) bool) followRun {
	t.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		desc, err := g.temporal.ScheduleClient().GetHandle(ctx, id).Describe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, action := range desc.Info.RecentActions {
			wf := action.StartWorkflowResult
			run, err := g.temporal.DescribeWorkflow(ctx, wf.WorkflowID, "")
			if err != nil || run.Status != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
				continue
			}
			var p workflows.FollowProgress
			if err := g.temporal.GetWorkflow(ctx, wf.WorkflowID, "").Get(ctx, &p); err == nil && ok(p) {
				return followRun{WorkflowID: wf.WorkflowID, Progress: p}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("schedule %s: no such run among %d recent ones", id, len(desc.Info.RecentActions))
		}
	}
}

// fetchRuns counts the fetch workflow runs of g's namespace.
func fetchRuns(t *testing.T, g *proxy) int64 {
	t.Helper()
	resp, err := g.temporal.CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{
		Namespace: g.ns, Query: "WorkflowType = 'Fetch'"})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetCount()
}
