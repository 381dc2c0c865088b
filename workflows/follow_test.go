package workflows_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
	"golang.org/x/mod/module"

	"github.com/goferproxy/gofer/activities"
	"github.com/goferproxy/gofer/workflows"
)

// followFixture runs Follow in the SDK's test environment over a fake index of n versions,
// one second apart from t0, a page of at most limit at a time, with every third version stored
// already; it records what the fakes of ReadFeed and WarmFetches were asked.
type followFixture struct {
	env     *testsuite.TestWorkflowEnvironment
	reads   []activities.FeedRequest
	fetches []activities.WarmFetchesRequest
}

var t0 = time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)

func newFollowFixture(n int) *followFixture {
	f := &followFixture{}
	var s testsuite.WorkflowTestSuite
	f.env = s.NewTestWorkflowEnvironment()
	f.env.RegisterWorkflow(workflows.Follow)
	f.env.RegisterActivityWithOptions(func(_ context.Context, r activities.FeedRequest) (activities.FeedPage, error) {
		f.reads = append(f.reads, r)
		p := activities.FeedPage{Next: r.Since}
		for i := range n {
			ts := t0.Add(time.Duration(i) * time.Second)
			if !ts.After(r.Since) || p.Listed == r.Limit {
				continue
			}
			p.Listed++
			p.Matched++
			p.Next = ts
			if i%3 == 0 {
				p.Cached++
			} else {
				p.Missing = append(p.Missing, module.Version{Path: fmt.Sprintf("example.com/m%d", i), Version: "v1.0.0"})
			}
		}
		return p, nil
	}, activity.RegisterOptions{Name: "ReadFeed"})
	f.env.RegisterActivityWithOptions(func(_ context.Context, r activities.WarmFetchesRequest) (activities.WarmFetchesResult, error) {
		f.fetches = append(f.fetches, r)
		return activities.WarmFetchesResult{Fetched: len(r.Versions)}, nil
	}, activity.RegisterOptions{Name: "WarmFetches"})
	return f
}

// A follow starts from the last run's cursor, reads the index a page at a time, fetches each
// page's missing versions from the followed proxy, continues as new with its cursor and
// progress after ten pages, and ends, with the cursor as its result, at an empty page.
func TestFollowPagesAndCursor(t *testing.T) {
	f := newFollowFixture(5000)
	last := workflows.FollowProgress{Since: t0.Add(99 * time.Second), Patterns: "example.com/*"} // versions 0 to 99 read before
	last.Fetched = 7
	f.env.SetLastCompletionResult(last)
	f.env.ExecuteWorkflow(workflows.Follow, workflows.FollowRequest{Feed: "https://central.example", Patterns: "example.com/*", Concurrency: 4})
	var cont *workflow.ContinueAsNewError
	if err := f.env.GetWorkflowError(); !errors.As(err, &cont) {
		t.Fatalf("after ten pages: %v, want continue-as-new", err)
	}
	if len(f.reads) != 10 || f.reads[0].Since != last.Since || f.reads[0].Limit != 200 || f.reads[0].Patterns != "example.com/*" || f.reads[9].Since != t0.Add(1899*time.Second) {
		t.Errorf("reads %+v", f.reads)
	}
	for _, r := range f.fetches {
		if r.From != "https://central.example" || r.Concurrency != 4 || len(r.Versions) == 0 {
			t.Errorf("fetches asked %+v", r)
		}
	}
	var next workflows.FollowRequest
	if err := converter.GetDefaultDataConverter().FromPayloads(cont.Input, &next); err != nil {
		t.Fatal(err)
	}
	p := next.Progress
	if !next.Continued || next.Feed != "https://central.example" || !p.Since.Equal(t0.Add(2099*time.Second)) ||
		p.Listed != 2000 || p.Total != 2000 || p.Done != 2000 || p.Fetched+p.Cached != 2000 || p.Fetched == 0 {
		t.Errorf("continued with %+v", next)
	}

	// The continued run goes on from its request, not from the last run's result.
	f2 := newFollowFixture(2300)
	f2.env.SetLastCompletionResult(last)
	f2.env.ExecuteWorkflow(workflows.Follow, next)
	var done workflows.FollowProgress
	if err := f2.env.GetWorkflowResult(&done); err != nil {
		t.Fatal(err)
	}
	if !f2.reads[0].Since.Equal(p.Since) || !done.Since.Equal(t0.Add(2299*time.Second)) || done.Listed != 2200 || done.Total != 2200 || done.Done != 2200 {
		t.Errorf("the last run read from %s and ended with %+v", f2.reads[0].Since, done)
	}

	// A first run reads from the start, and so does a run for other patterns than the last's.
	f3 := newFollowFixture(3)
	f3.env.ExecuteWorkflow(workflows.Follow, workflows.FollowRequest{Feed: "https://central.example"})
	if err := f3.env.GetWorkflowResult(&done); err != nil || !f3.reads[0].Since.IsZero() || done.Listed != 3 || !done.Since.Equal(t0.Add(2*time.Second)) {
		t.Errorf("a first run: read from %s, ended with %+v, %v", f3.reads[0].Since, done, err)
	}
	f4 := newFollowFixture(3)
	f4.env.SetLastCompletionResult(last)
	f4.env.ExecuteWorkflow(workflows.Follow, workflows.FollowRequest{Feed: "https://central.example", Patterns: "example.com/*,golang.org/x/*"})
	if err := f4.env.GetWorkflowResult(&done); err != nil || !f4.reads[0].Since.IsZero() || done.Patterns != "example.com/*,golang.org/x/*" {
		t.Errorf("a run for other patterns: read from %s, ended with %+v, %v", f4.reads[0].Since, done, err)
	}
}
