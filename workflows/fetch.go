// Package workflows holds gofer's Temporal workflows and how they are started. Fetch brings files
// of one module version (its .info and .mod, or its zip) from the upstream into storage; its
// workflow ID (FetchID) is the lock that makes it the only fetch of those files across every
// replica. Scrub checks every stored version; Warm fetches the versions of a warm list,
// Watch those a watchlist entry wants, and Follow those another proxy's index lists.
// FetchOptions, WarmOptions and ScrubOptions are their start options, and workflows/fetcherr
// reads their errors. Workflow code here never does I/O
// itself (activities do), must stay deterministic (no clocks or randomness outside the workflow
// API), must carry references, never file contents, and must still replay the histories
// recorded in testdata: a change of what a workflow does is versioned with workflow.GetVersion.
package workflows

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/activities"
	"github.com/goferproxy/gofer/workflows/fetcherr"
)

// TaskQueue is the task queue of every gofer workflow and activity.
const TaskQueue = "gofer"

// Search attributes every fetch carries, so that operators can filter fetches in the Temporal
// UI (GoModule = "example.com/m", FetchOutcome = "invalid"). A namespace must have them
// registered as Keyword. GoModule and GoVersion are set when the fetch starts; FetchSource (the
// upstream that served the zip, or "direct" for version control) and FetchOutcome (one of the
// Outcome constants) when it ends.
var (
	GoModule     = temporal.NewSearchAttributeKeyKeyword("GoModule")
	GoVersion    = temporal.NewSearchAttributeKeyKeyword("GoVersion")
	FetchSource  = temporal.NewSearchAttributeKeyKeyword("FetchSource")
	FetchOutcome = temporal.NewSearchAttributeKeyKeyword("FetchOutcome")
)

// SearchAttributes are the names of the search attributes above, all of type Keyword.
var SearchAttributes = []string{GoModule.GetName(), GoVersion.GetName(), FetchSource.GetName(), FetchOutcome.GetName()}

// Metrics of fetches, by outcome (the FetchOutcome values), through the worker's Temporal metrics
// handler: how many ended, and how long each took from its start. (The OpenTelemetry bridge of
// the Temporal SDK makes counters up-down counters, which Prometheus shows without a _total
// suffix and as gauges: the name carries the suffix itself; the value only ever grows.)
const (
	FetchesMetric       = "gofer_fetches_total"
	FetchDurationMetric = "gofer_fetch_duration"
)

// Values of FetchOutcome.
const (
	OutcomeStored        = "stored"         // this fetch stored the version
	OutcomeAlreadyStored = "already-stored" // another fetch had stored it; this one kept that
	OutcomeNotFound      = "not-found"      // the upstream does not have it
	OutcomeInvalid       = "invalid"        // refused: checksum, zip or go.mod checks
	OutcomeUnavailable   = "unavailable"    // out of retries (or cancelled) with the upstream or storage down
)

// FetchRequest names the version to fetch; both fields must already be valid (module.Check).
type FetchRequest struct {
	Path    string
	Version string
	// Known says that something other than the request vouches for the version: it is on a
	// warm list or a watchlist, or a private rule routes it. Only then does the download
	// retry through outages for hours from the start; otherwise it retries for minutes, and
	// for hours only once an upstream has answered for the version. A request an anonymous
	// client sends can never set it.
	Known bool
	// Files says which files of the version the fetch brings: activities.FilesMod, the .info
	// and .mod (what a client asking for either waits for), or activities.FilesZip, the zip.
	// Fetches recorded before the two were fetched apart have "": all three, in one fetch.
	Files string
	// From names the followed proxy a follow fetches the version from (activities.Job.From);
	// empty: the upstream. A request an anonymous client sends can never set it.
	From string
}

// maxID is the longest workflow ID gofer makes; Temporal refuses IDs over 1,000 bytes by default.
const maxID = 900

// FetchID is the workflow ID of the fetch of files (FetchRequest.Files) of path@version:
// "fetch:<path>@<version>.mod" or "fetch:<path>@<version>.zip" (and, for fetches recorded
// before files were fetched apart, "fetch:<path>@<version>"), or, for a path too long for
// that, its first bytes and "#" and the SHA-256 of the rest.
func FetchID(path, version, files string) string {
	name := path + "@" + version
	if files != "" {
		name += "." + files
	}
	id := "fetch:" + name
	if len(id) <= maxID {
		return id
	}
	sum := sha256.Sum256([]byte(name))
	return id[:maxID-1-2*len(sum)] + "#" + hex.EncodeToString(sum[:])
}

// FetchOptions are the start options of the fetch of r. Conflict policy USE_EXISTING makes a
// second start join the running fetch. A new fetch starts eagerly on the starter's own worker
// where the server allows it (system.enableEagerWorkflowStart), saving a round trip. Reuse policy ALLOW_DUPLICATE_FAILED_ONLY lets a failed
// fetch (not found, invalid, or out of retries) be tried again by a later request, while a start
// after a successful fetch returns that run, whose result is already in storage.
func FetchOptions(r FetchRequest) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                       FetchID(r.Path, r.Version, r.Files),
		TaskQueue:                TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
		TypedSearchAttributes:    temporal.NewSearchAttributes(GoModule.ValueSet(r.Path), GoVersion.ValueSet(r.Version)),
		StaticSummary:            "fetch " + r.name(),
		EnableEagerStart:         true,
	}
}

// Activity option presets. Only the "Unavailable" error type is ever retried: activities mark
// not-found and invalid failures non-retryable themselves.
var (
	// download talks to the upstream: it heartbeats while a zip streams, and retries through
	// upstream outages with exponential backoff for hours.
	download = workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Minute,
		ScheduleToCloseTimeout: 6 * time.Hour,
		HeartbeatTimeout:       time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    5 * time.Minute,
		},
	}
	// probe is download for a version nothing vouches for yet: eight attempts over about two
	// minutes (each may still take as long as a download's), so that a request for a version
	// that exists nowhere, on an upstream or host that never answers, costs minutes of retries
	// and not hours. An attempt that an upstream answered for is not retried here: the fetch
	// goes on to download's retries at once.
	probe = workflow.ActivityOptions{
		StartToCloseTimeout: download.StartToCloseTimeout,
		HeartbeatTimeout:    download.HeartbeatTimeout,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        time.Minute,
			MaximumAttempts:        8,
			NonRetryableErrorTypes: []string{fetcherr.ErrAnswered},
		},
	}
	// cleanup deletes staged files: it must not hold a finished fetch (and every request
	// waiting for it) open for long, and a leftover is only wasted space.
	cleanup = workflow.ActivityOptions{
		StartToCloseTimeout:    time.Minute,
		ScheduleToCloseTimeout: 5 * time.Minute,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 5},
	}
	// stagedBlobs works on staged blobs: hashing a 500 MiB zip takes seconds, not minutes.
	stagedBlobs = workflow.ActivityOptions{
		StartToCloseTimeout:    10 * time.Minute,
		ScheduleToCloseTimeout: 6 * time.Hour,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Minute,
		},
	}
)

// name is what the fetch of r brings, for people: "path@version.mod", "path@version.zip", or
// "path@version" for all three.
func (r FetchRequest) name() string {
	if r.Files == "" {
		return r.Path + "@" + r.Version
	}
	return r.Path + "@" + r.Version + "." + r.Files
}

// Fetch brings the files of r into storage. The .info and .mod (FilesMod) are downloaded,
// checked and committed by one local activity (activities.FetchMod), in the first workflow
// task: they are small, and nothing is staged (from an upstream too slow for a local activity,
// by FetchMod as a regular activity). So is a zip (FilesZip) that is small and quick
// (activities.FetchZip), which the worker keeps in a temporary file of its own. Any other zip
// (and all three files in fetches recorded before they were fetched apart, and zips in
// fetches recorded before FetchZip) is downloaded into staging, verified, committed, and what
// was staged is always discarded. Fetch's result is the stored record (the
// one already stored, if another fetch got there first): the version's, or the zip's own. It
// records its outcome in search attributes and its sizes and hashes in its memo.
//
// Verify and commit are local activities, run by the worker inside the workflow task that
// follows the download: a round trip through the Temporal server each saved. Discard stays an
// activity of its own: it is scheduled only once the task that ran verify and commit has been
// recorded, so a task that fails to complete (a worker stopped mid-deploy) is replayed with its
// staged files still there for verify to read again. (Fetches recorded before this ran verify
// and commit as activities, and still replay so.)
func Fetch(ctx workflow.Context, r FetchRequest) (gofer.Version, error) {
	var a *activities.Activities
	job := activities.Job{Path: r.Path, Version: r.Version, RunID: workflow.GetInfo(ctx).WorkflowExecution.RunID, Files: r.Files, From: r.From}
	if r.Files == activities.FilesMod {
		rec, err := fetchIn(ctx, true, a.FetchMod, job, !r.Known)
		if fetcherr.NotLocal(err) {
			// Slow: as a regular activity, whose retries and heartbeats leave the history as it
			// is, so that a request waits for it no longer than it moves.
			workflow.SetCurrentDetails(ctx, "the upstream is slow: fetching the .info and .mod with an activity of its own")
			rec, err = fetchIn(ctx, false, a.FetchMod, job, !r.Known)
		}
		publish(ctx, rec, rec.Source, err)
		return rec, err
	}
	workflow.Go(ctx, func(ctx workflow.Context) { showProgress(ctx, r) })
	// Fetches of zips recorded before FetchZip went through staging whatever their size.
	if r.Files == activities.FilesZip && workflow.GetVersion(ctx, "fetchZip", workflow.DefaultVersion, 1) == 1 {
		rec, err := fetchIn(ctx, true, a.FetchZip, job, !r.Known)
		if !fetcherr.NotLocal(err) {
			publish(ctx, rec, rec.Source, err)
			return rec, err
		}
		workflow.SetCurrentDetails(ctx, "the zip is too big or too slow for one local activity: fetching it through staging")
	}
	local := workflow.GetVersion(ctx, "local", workflow.DefaultVersion, 1) == 1
	// Fetches recorded before downloads were bounded retried for hours whatever they were.
	bounded := !r.Known && workflow.GetVersion(ctx, "bounded", workflow.DefaultVersion, 1) == 1
	rec, source, err := fetch(ctx, a, job, local, bounded)
	// Staged files are never used by another run, whatever the outcome of this one, even a
	// cancellation: hence a context that outlives this one's.
	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	if derr := execute(dctx, false, withSummary(cleanup, "discard what was staged for", r), a.Discard, job).Get(dctx, nil); derr != nil {
		workflow.GetLogger(ctx).Warn("discarding staged files failed", "error", derr)
	}
	// Fetches recorded before outcomes were published end here, as they did.
	if workflow.GetVersion(dctx, "outcome", workflow.DefaultVersion, 1) == 1 {
		publish(dctx, rec, source, err)
	}
	return rec, err
}

// fetch downloads, verifies and commits job. A bounded download tries for minutes, then for
// hours only if an upstream answered for the version on the way (fetcherr.Answered).
func fetch(ctx workflow.Context, a *activities.Activities, job activities.Job, local, bounded bool) (rec gofer.Version, source string, err error) {
	r := FetchRequest{Path: job.Path, Version: job.Version, Files: job.Files}
	var staged activities.Staged
	workflow.SetCurrentDetails(ctx, "downloading")
	first := download
	if bounded {
		first = probe
	}
	err = execute(ctx, false, withSummary(first, "download", r), a.Download, job).Get(ctx, &staged)
	if bounded && fetcherr.Answered(err) {
		workflow.SetCurrentDetails(ctx, "downloading, for hours if need be: the upstream answered for this version")
		// Attempts of the probe staged under their own numbers; these stage past them.
		again := job
		again.AttemptOffset = probe.RetryPolicy.MaximumAttempts
		err = execute(ctx, false, withSummary(download, "download", r), a.Download, again).Get(ctx, &staged)
	}
	if err != nil {
		return rec, "", err
	}
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("verifying %s from %s", mb(staged.Zip.Size), staged.Source))
	var verified activities.Verified
	if err := execute(ctx, local, withSummary(stagedBlobs, "verify", r), a.Verify, staged).Get(ctx, &verified); err != nil {
		return rec, staged.Source, err
	}
	workflow.SetCurrentDetails(ctx, "storing")
	err = execute(ctx, local, withSummary(stagedBlobs, "commit", r), a.Commit, verified).Get(ctx, &rec)
	return rec, staged.Source, err
}

// fetchIn runs fn (activities.FetchMod or FetchZip: download, check and commit in one), as a
// local activity if local is set: bounded, as a probe's attempts first, and then with a
// download's, if an upstream answered for the version.
func fetchIn(ctx workflow.Context, local bool, fn func(context.Context, activities.Job) (gofer.Version, error), job activities.Job, bounded bool) (gofer.Version, error) {
	r := FetchRequest{Path: job.Path, Version: job.Version, Files: job.Files}
	var rec gofer.Version
	first := download
	if bounded {
		first = probe
	}
	err := execute(ctx, local, withSummary(first, "download and store", r), fn, job).Get(ctx, &rec)
	if bounded && fetcherr.Answered(err) {
		workflow.SetCurrentDetails(ctx, "downloading, for hours if need be: the upstream answered for this version")
		err = execute(ctx, local, withSummary(download, "download and store", r), fn, job).Get(ctx, &rec)
	}
	return rec, err
}

// execute runs activity fn with options o, as a local activity if local is set.
func execute(ctx workflow.Context, local bool, o workflow.ActivityOptions, fn any, args ...any) workflow.Future {
	if !local {
		return workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, o), fn, args...)
	}
	lo := workflow.LocalActivityOptions{
		StartToCloseTimeout:    o.StartToCloseTimeout,
		ScheduleToCloseTimeout: o.ScheduleToCloseTimeout,
		RetryPolicy:            o.RetryPolicy,
		Summary:                o.Summary,
	}
	return workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, lo), fn, args...)
}

// withSummary is o with the one-line summary the Temporal UI shows for the activity.
func withSummary(o workflow.ActivityOptions, what string, r FetchRequest) workflow.ActivityOptions {
	o.Summary = what + " " + r.name()
	return o
}

// showProgress shows the progress reports of downloads as the workflow's current details, until
// the workflow ends.
func showProgress(ctx workflow.Context, r FetchRequest) {
	ch := workflow.GetSignalChannel(ctx, activities.ProgressSignal)
	for {
		var p activities.Progress
		ch.Receive(ctx, &p)
		workflow.SetCurrentDetails(ctx, fmt.Sprintf("downloading %s@%s: %s received", r.Path, r.Version, mb(p.Received)))
	}
}

// publish records the outcome of a fetch where operators look: search attributes to find it,
// current details and a memo to read it.
func publish(ctx workflow.Context, rec gofer.Version, source string, err error) {
	outcome := OutcomeStored
	switch {
	case err != nil:
		outcome = failedOutcomes.Of(fetcherr.Decode(err))
		workflow.SetCurrentDetails(ctx, outcome+": "+fetcherr.Decode(err).Error())
	case rec.RunID != workflow.GetInfo(ctx).WorkflowExecution.RunID:
		outcome = OutcomeAlreadyStored
	}
	if err == nil {
		memo := map[string]any{"verifiedBy": rec.VerifiedBy, "source": rec.Source}
		if rec.ModHash != "" {
			memo["info"], memo["mod"], memo["modHash"] = rec.Info, rec.Mod, rec.ModHash
			workflow.SetCurrentDetails(ctx, fmt.Sprintf("%s: .mod %s", outcome, rec.ModHash))
		}
		if rec.HasZip() {
			memo["zip"], memo["zipHash"] = rec.Zip, rec.ZipHash
			workflow.SetCurrentDetails(ctx, fmt.Sprintf("%s: zip %s, %s", outcome, mb(rec.Zip.Size), rec.ZipHash))
		}
		if merr := workflow.UpsertMemo(ctx, memo); merr != nil {
			workflow.GetLogger(ctx).Warn("recording the memo failed", "error", merr)
		}
	}
	// The workflow's metrics handler is replay-safe: a replay counts nothing twice.
	m := workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"outcome": outcome})
	m.Counter(FetchesMetric).Inc(1)
	m.Timer(FetchDurationMetric).Record(workflow.Now(ctx).Sub(workflow.GetInfo(ctx).WorkflowStartTime))
	updates := []temporal.SearchAttributeUpdate{FetchOutcome.ValueSet(outcome)}
	if source != "" {
		updates = append(updates, FetchSource.ValueSet(source))
	}
	if serr := workflow.UpsertTypedSearchAttributes(ctx, updates...); serr != nil {
		workflow.GetLogger(ctx).Warn("recording the outcome failed", "error", serr)
	}
}

// failedOutcomes are the FetchOutcomes of a fetch that failed, by the kind of its error.
var failedOutcomes = gofer.Names{NotFound: OutcomeNotFound, Invalid: OutcomeInvalid, Unavailable: OutcomeUnavailable}

// mb formats a byte count for people.
func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
