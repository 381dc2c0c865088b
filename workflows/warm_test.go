package workflows_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
	"golang.org/x/mod/module"

	"github.com/goferproxy/gofer/activities"
	"github.com/goferproxy/gofer/storage/mem"
	"github.com/goferproxy/gofer/warm"
	"github.com/goferproxy/gofer/workflows"
)

// warmKey names a stored warm list, as the front end names one to Warm.
var warmKey = func() string {
	key, err := warm.PutList(context.Background(), mem.New(), []module.Version{{Path: "example.com/a", Version: "v1.0.0"}})
	if err != nil {
		panic(err)
	}
	return key
}()

// warmFixture runs Warm in the SDK's test environment with a fake WarmPage that answers page
// and a fake child Fetch that takes a minute of workflow time; the fetch of a version in fail
// ends as not found ("gone").
type warmFixture struct {
	env *testsuite.TestWorkflowEnvironment

	mu       sync.Mutex
	running  map[module.Version]int // fetches running now, by version
	most     int                    // the most versions fetched at once
	fetches  []string               // the fetches started, by workflow ID
	requests []activities.WarmPageRequest
}

func newWarmFixture(t *testing.T, page activities.WarmPage, fail ...module.Version) *warmFixture {
	t.Helper()
	f := &warmFixture{running: map[module.Version]int{}}
	var s testsuite.WorkflowTestSuite
	f.env = s.NewTestWorkflowEnvironment()
	f.env.RegisterWorkflow(workflows.Warm)
	// The fakes take the names of the real WarmPage activity and Fetch workflow. Registering
	// them by name, rather than mocking with OnActivity and OnWorkflow, keeps testify's mock
	// package out of gofer's direct dependencies.
	f.env.RegisterActivityWithOptions(func(_ context.Context, r activities.WarmPageRequest) (activities.WarmPage, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.requests = append(f.requests, r)
		return page, nil
	}, activity.RegisterOptions{Name: "WarmPage"})
	// The real WarmFetches, with a fake RunFetch that takes 50 ms.
	acts := &activities.Activities{RunFetch: func(ctx context.Context, path, version, files, _ string) error {
		v := module.Version{Path: path, Version: version}
		f.mu.Lock()
		f.running[v]++
		f.most = max(f.most, len(f.running))
		f.fetches = append(f.fetches, workflows.FetchID(path, version, files))
		f.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
		f.mu.Lock()
		if f.running[v]--; f.running[v] == 0 {
			delete(f.running, v)
		}
		f.mu.Unlock()
		if slices.Contains(fail, v) {
			return temporal.NewNonRetryableApplicationError("gone", "NotFound", nil)
		}
		return nil
	}}
	f.env.RegisterActivityWithOptions(acts.WarmFetches, activity.RegisterOptions{Name: "WarmFetches"})
	return f
}

// query asks the warm for its progress.
func (f *warmFixture) query(t *testing.T) workflows.WarmProgress {
	t.Helper()
	res, err := f.env.QueryWorkflow(workflows.ProgressQuery)
	if err != nil {
		t.Fatalf("progress query: %v", err)
	}
	var p workflows.WarmProgress
	if err := res.Get(&p); err != nil {
		t.Fatal(err)
	}
	return p
}

func versions(n int) []module.Version {
	var vs []module.Version
	for i := range n {
		vs = append(vs, module.Version{Path: "example.com/m" + strconv.Itoa(i), Version: "v1.0.0"})
	}
	return vs
}

func TestWarmCountsEveryVersion(t *testing.T) {
	missing := versions(3)
	f := newWarmFixture(t, activities.WarmPage{Missing: missing, Cached: 2, Next: 5, Total: 5}, missing[1])
	f.env.ExecuteWorkflow(workflows.Warm, workflows.WarmRequest{List: warmKey, Concurrency: 1})
	if !f.env.IsWorkflowCompleted() {
		t.Fatal("warm did not complete")
	}
	if err := f.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var got workflows.WarmProgress
	if err := f.env.GetWorkflowResult(&got); err != nil {
		t.Fatal(err)
	}
	want := workflows.WarmProgress{Total: 5, Done: 5, Cached: 2, Fetched: 2, Failed: 1}
	failures := got.Failures
	got.Failures = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("result %+v, want %+v", got, want)
	}
	if len(failures) != 1 || failures[0].Module != missing[1].Path || failures[0].Version != missing[1].Version ||
		!strings.Contains(failures[0].Reason, "gone") {
		t.Errorf("failures %+v, want %s failed as gone", failures, missing[1])
	}
	if len(f.requests) != 1 || f.requests[0].List != warmKey || f.requests[0].Offset != 0 || f.requests[0].Size <= 0 {
		t.Errorf("WarmPage requests %+v, want one of %s from offset 0", f.requests, warmKey)
	}

	if after := f.query(t); after.Done != 5 || after.Failed != 1 || len(after.Failures) != 1 {
		t.Errorf("progress after the warm: %+v, want the result", after)
	}
}

func TestWarmConcurrency(t *testing.T) {
	for i, c := range []struct{ concurrency, want int }{
		0: {0, 1}, // unset: one at a time
		1: {1, 1},
		2: {3, 3},
	} {
		f := newWarmFixture(t, activities.WarmPage{Missing: versions(5), Next: 5, Total: 5})
		f.env.ExecuteWorkflow(workflows.Warm, workflows.WarmRequest{List: warmKey, Concurrency: c.concurrency})
		if err := f.env.GetWorkflowError(); err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		var got workflows.WarmProgress
		if err := f.env.GetWorkflowResult(&got); err != nil {
			t.Fatal(err)
		}
		if f.most != c.want || got.Fetched != 5 {
			t.Errorf("%d: concurrency %d: %d versions fetched at once, %d fetched; want %d at once, 5 fetched", i, c.concurrency, f.most, got.Fetched, c.want)
		}
	}
}

// A go.sum's /go.mod line warms the version's .info and .mod; a line of its zip, the zip too.
func TestWarmFetchesWhatGoSumNames(t *testing.T) {
	missing := []module.Version{{Path: "example.com/a", Version: "v1.0.0/go.mod"}, {Path: "example.com/b", Version: "v1.0.0"}}
	f := newWarmFixture(t, activities.WarmPage{Missing: missing, Next: 2, Total: 2})
	f.env.ExecuteWorkflow(workflows.Warm, workflows.WarmRequest{List: warmKey, Concurrency: 2})
	if err := f.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var got workflows.WarmProgress
	if err := f.env.GetWorkflowResult(&got); err != nil {
		t.Fatal(err)
	}
	slices.Sort(f.fetches)
	want := []string{"fetch:example.com/a@v1.0.0.mod", "fetch:example.com/b@v1.0.0.mod", "fetch:example.com/b@v1.0.0.zip"}
	if !slices.Equal(f.fetches, want) || got.Fetched != 2 {
		t.Errorf("fetches %q, %d fetched; want %q, 2 fetched", f.fetches, got.Fetched, want)
	}
}

func TestWarmContinuesAsNewAfterAPage(t *testing.T) {
	missing := versions(2)
	f := newWarmFixture(t, activities.WarmPage{Missing: missing, Cached: 1, Next: 3, Total: 10}, missing[0])
	prior := workflows.WarmProgress{Total: 10, Done: 4, Fetched: 3, Cached: 1}
	f.env.ExecuteWorkflow(workflows.Warm, workflows.WarmRequest{List: warmKey, Concurrency: 2, Offset: 0, Progress: prior})
	err := f.env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	if !errors.As(err, &can) {
		t.Fatalf("err = %v, want continue-as-new", err)
	}
	var next workflows.WarmRequest
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	want := workflows.WarmProgress{Total: 10, Done: 7, Fetched: 4, Cached: 2, Failed: 1}
	failures := next.Progress.Failures
	next.Progress.Failures = nil
	if next.List != warmKey || next.Concurrency != 2 || next.Offset != 3 || !reflect.DeepEqual(next.Progress, want) {
		t.Errorf("continues as %+v, want offset 3 and progress %+v", next, want)
	}
	if len(failures) != 1 || failures[0].Module != missing[0].Path || !strings.Contains(failures[0].Reason, "gone") {
		t.Errorf("failures carried on: %+v", failures)
	}
}

// Warming one list again joins its running warm, or, once it has ended, starts another.
func TestWarmOptions(t *testing.T) {
	o := workflows.WarmOptions(warmKey, 5)
	if o.ID != "warm:"+warmKey[len(warmKey)-16:] || o.ID != workflows.WarmID(warmKey) || o.TaskQueue != workflows.TaskQueue ||
		o.WorkflowIDConflictPolicy != enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING ||
		o.WorkflowIDReusePolicy != enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE || o.StaticSummary != "warm 5 module versions" {
		t.Errorf("start options %+v", o)
	}
}
