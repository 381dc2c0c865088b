package workflows_test

import (
	"testing"

	"go.temporal.io/sdk/worker"

	"github.com/goferproxy/gofer/workflows"
)

// The workflows still replay the histories of real runs from a Temporal dev server. These are
// rewritten from runs of the current code by
// `go test ./e2e -run 'TestRetriesThroughUpstreamErrors|TestScrubReportsCorruptBlob|TestWarmAndLiveMissesShareFetches' -record`:
//   - fetch_bounded_history.json: a fetch that nothing vouches for (its download bounded to
//     minutes), whose zip fails with 503 while its .info and .mod arrive: the first failure
//     sends it on to a second Download with the long retries, which succeeds at its third
//     attempt; then it verifies and commits in local activities, discards and publishes its
//     outcome;
//   - scrub_history.json: a scrub of a store with a corrupted blob;
//   - warm_history.json: a warm of 20 versions racing live requests for them.
//
// These were recorded from earlier versions of Fetch and are kept as they are, for the runs
// such a version may have left behind:
//   - fetch_history.json: from before outcomes were published (a download retried three times
//     through 503s, then verify, commit and discard as activities);
//   - fetch_outcome_history.json: verify, commit and discard as activities, then the outcome,
//     source and memo published;
//   - fetch_local_history.json: from before downloads were bounded (the download retried three
//     times through 503s, then verify and commit as local activities, discard, the outcome).
//
// A failure here means a change to workflow code would break workflows running at deploy time:
// version the change (workflow.GetVersion) instead.
func TestReplayRecordedHistories(t *testing.T) {
	for _, file := range []string{"fetch_history.json", "fetch_outcome_history.json", "fetch_local_history.json", "fetch_bounded_history.json", "scrub_history.json", "warm_history.json"} {
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
