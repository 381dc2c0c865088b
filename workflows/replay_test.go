package workflows_test

import (
	"testing"

	"go.temporal.io/sdk/worker"

	"github.com/goferproxy/gofer/workflows"
)

// The fetch workflow still replays the history of a real run (a download retried three times
// through 503s, then verify, commit and discard), recorded from a Temporal dev server with
// `go test ./e2e -run TestRetriesThroughUpstreamErrors -record`. A failure here means a change
// to workflow code would break fetches running at deploy time: version the change instead.
func TestReplayRecordedFetch(t *testing.T) {
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflow(workflows.Fetch)
	if err := r.ReplayWorkflowHistoryFromJSONFile(nil, "testdata/fetch_history.json"); err != nil {
		t.Fatal(err)
	}
}
