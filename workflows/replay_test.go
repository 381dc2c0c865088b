package workflows_test

import (
	"testing"

	"go.temporal.io/sdk/worker"

	"github.com/goferproxy/gofer/workflows"
)

// The workflows still replay the histories of real runs, recorded from a Temporal dev server
// with `go test ./e2e -run 'TestRetriesThroughUpstreamErrors|TestScrubReportsCorruptBlob|TestWarmAndLiveMissesShareFetches' -record`:
//   - fetch_history.json: a fetch from before outcomes were published (a download retried
//     three times through 503s, then verify, commit and discard);
//   - fetch_outcome_history.json: a fetch that publishes its outcome, source and memo;
//   - scrub_history.json: a scrub of a store with a corrupted blob;
//   - warm_history.json: a warm of 20 versions racing live requests for them.
//
// A failure here means a change to workflow code would break workflows running at deploy time:
// version the change (workflow.GetVersion) instead.
func TestReplayRecordedHistories(t *testing.T) {
	for _, file := range []string{"fetch_history.json", "fetch_outcome_history.json", "scrub_history.json", "warm_history.json"} {
		t.Run(file, func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflow(workflows.Fetch)
			r.RegisterWorkflow(workflows.Scrub)
			r.RegisterWorkflow(workflows.Warm)
			r.RegisterWorkflow(workflows.Watch)
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, "testdata/"+file); err != nil {
				t.Fatal(err)
			}
		})
	}
}
