package workflows_test

import (
	"testing"

	"go.temporal.io/sdk/worker"

	"github.com/goferproxy/gofer/workflows"
)

// The workflows still replay the histories of real runs from a Temporal dev server. These are
// rewritten from runs of the current code by
// `go test ./e2e -run 'TestRetriesThroughUpstreamErrors|TestS3OutageDuringCommit|TestSlowModIsFetchedByAnActivity|TestScrubReportsCorruptBlob|TestWarmAndLiveMissesShareFetches|TestFollow' -record`:
//   - fetch_mod_history.json: the fetch of a version's .info and .mod, whose .mod fails with 503
//     twice: FetchMod, a local activity, retried, then the outcome published;
//   - fetch_mod_slow_history.json: the same from an upstream slower than one progress
//     interval: the local FetchMod gives up, and FetchMod runs as an activity of its own;
//   - fetch_zip_history.json: the fetch of a version's zip, which nothing vouches for (bounded
//     to minutes), failing with 503 three times: FetchZip, a local activity, retried, then the
//     outcome published;
//   - fetch_zip_large_history.json: the fetch of a zip over the worker's local limit: FetchZip
//     refuses it as too big, and it is downloaded into staging, verified and committed (local
//     activities; the commit retried through an S3 outage), discarded, and its outcome published;
//   - scrub_history.json: a scrub of a store with a corrupted blob;
//   - warm_history.json: a warm of 20 versions racing live requests for them (one WarmFetches
//     activity for the page);
//   - follow_history.json: a follow's first scheduled run over an index of 63 versions, 60 of
//     them matching: ReadFeed, WarmFetches (retried after the worker was restarted during it),
//     then ReadFeed of an empty page.
//
// These were recorded from earlier versions of Fetch and Warm and are kept as they are, for the
// runs such a version may have left behind:
//   - fetch_history.json: from before outcomes were published (a download retried three times
//     through 503s, then verify, commit and discard as activities);
//   - fetch_outcome_history.json: verify, commit and discard as activities, then the outcome,
//     source and memo published;
//   - fetch_local_history.json: from before downloads were bounded (the download retried three
//     times through 503s, then verify and commit as local activities, discard, the outcome);
//   - fetch_bounded_history.json: from before the .info and .mod were fetched apart from the
//     zip: a fetch of all three, bounded, whose zip fails with 503 while its .info and .mod
//     arrive, which sends it on to a second Download with the long retries;
//   - fetch_zip_staged_history.json: from before FetchZip: a zip fetched alone, failing with
//     503 three times, then downloaded into staging, verified and committed, discarded;
//   - warm_whole_history.json: a warm from before then, fetching each version whole;
//   - warm_split_history.json: a warm from before a page's fetches were one activity: each
//     version's .mod and zip fetched as child workflows, joined through AwaitFetch.
//
// A failure here means a change to workflow code would break workflows running at deploy time:
// version the change (workflow.GetVersion) instead.
func TestReplayRecordedHistories(t *testing.T) {
	for _, file := range []string{"fetch_history.json", "fetch_outcome_history.json", "fetch_local_history.json", "fetch_bounded_history.json",
		"fetch_mod_history.json", "fetch_mod_slow_history.json", "fetch_zip_history.json", "fetch_zip_large_history.json", "fetch_zip_staged_history.json", "scrub_history.json", "warm_history.json", "warm_whole_history.json", "warm_split_history.json", "follow_history.json"} {
		t.Run(file, func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflow(workflows.Fetch)
			r.RegisterWorkflow(workflows.Scrub)
			r.RegisterWorkflow(workflows.Warm)
			r.RegisterWorkflow(workflows.Watch)
			r.RegisterWorkflow(workflows.Follow)
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, "testdata/"+file); err != nil {
				t.Fatal(err)
			}
		})
	}
}
