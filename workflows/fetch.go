// Package workflows holds gofer's Temporal workflows. Fetch brings one module version from the
// upstream into storage; its workflow ID is the lock that makes it the only fetch of that
// version across every replica. Workflow code here must stay deterministic (no I/O, clocks or
// randomness outside the workflow API) and must carry references, never file contents.
package workflows

import (
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/activities"
)

// TaskQueue is the task queue of every gofer workflow and activity.
const TaskQueue = "gofer"

// Search attributes every fetch carries, so that operators can filter fetches in the Temporal
// UI (GoModule = "example.com/m"). A namespace must have them registered as Keyword.
var (
	GoModule  = temporal.NewSearchAttributeKeyKeyword("GoModule")
	GoVersion = temporal.NewSearchAttributeKeyKeyword("GoVersion")
)

// FetchRequest names the version to fetch; both fields must already be valid (module.Check).
type FetchRequest struct {
	Path    string
	Version string
}

// FetchID is the workflow ID of the fetch of path@version.
func FetchID(path, version string) string { return "fetch:" + path + "@" + version }

// FetchOptions are the start options of the fetch of r. Conflict policy USE_EXISTING makes a
// second start join the running fetch. Reuse policy ALLOW_DUPLICATE_FAILED_ONLY lets a failed
// fetch (not found, invalid, or out of retries) be tried again by a later request, while a start
// after a successful fetch returns that run, whose result is already in storage.
func FetchOptions(r FetchRequest) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                       FetchID(r.Path, r.Version),
		TaskQueue:                TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
		TypedSearchAttributes:    temporal.NewSearchAttributes(GoModule.ValueSet(r.Path), GoVersion.ValueSet(r.Version)),
		StaticSummary:            "fetch " + r.Path + "@" + r.Version,
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
	// cleanup deletes staged files: it must not hold a finished fetch (and every request
	// waiting for it) open for long, and a leftover is only wasted space.
	cleanup = workflow.ActivityOptions{
		StartToCloseTimeout:    time.Minute,
		ScheduleToCloseTimeout: 5 * time.Minute,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 5},
	}
	// storage works on staged blobs: hashing a 500 MiB zip takes seconds, not minutes.
	storage = workflow.ActivityOptions{
		StartToCloseTimeout:    10 * time.Minute,
		ScheduleToCloseTimeout: 6 * time.Hour,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Minute,
		},
	}
)

// Fetch downloads r into staging, verifies it, commits it, and always discards what it staged.
// Its result is the stored record (the one already stored, if another fetch got there first).
func Fetch(ctx workflow.Context, r FetchRequest) (gofer.Version, error) {
	var a *activities.Activities
	job := activities.Job{Path: r.Path, Version: r.Version, RunID: workflow.GetInfo(ctx).WorkflowExecution.RunID}
	rec, err := fetch(ctx, a, job)
	// Staged files are never used by another run, whatever the outcome of this one, even a
	// cancellation: hence a context that outlives this one's.
	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	dctx = workflow.WithActivityOptions(dctx, cleanup)
	if derr := workflow.ExecuteActivity(dctx, a.Discard, job).Get(dctx, nil); derr != nil {
		workflow.GetLogger(ctx).Warn("discarding staged files failed", "error", derr)
	}
	return rec, err
}

func fetch(ctx workflow.Context, a *activities.Activities, job activities.Job) (gofer.Version, error) {
	var staged activities.Staged
	dctx := workflow.WithActivityOptions(ctx, download)
	if err := workflow.ExecuteActivity(dctx, a.Download, job).Get(ctx, &staged); err != nil {
		return gofer.Version{}, err
	}
	sctx := workflow.WithActivityOptions(ctx, storage)
	var verified activities.Verified
	if err := workflow.ExecuteActivity(sctx, a.Verify, staged).Get(ctx, &verified); err != nil {
		return gofer.Version{}, err
	}
	var rec gofer.Version
	err := workflow.ExecuteActivity(sctx, a.Commit, verified).Get(ctx, &rec)
	return rec, err
}
