package workflows

import (
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
	"golang.org/x/mod/module"

	"github.com/goferproxy/gofer/activities"
	"github.com/goferproxy/gofer/warm"
	"github.com/goferproxy/gofer/workflows/fetcherr"
)

// ProgressQuery is the query that returns a running warm's WarmProgress.
const ProgressQuery = "progress"

// WarmRequest names a stored warm list (warm.PutList) and how many of its versions
// may be fetched at once. Offset and Progress carry a warm across continue-as-new.
type WarmRequest struct {
	List        string
	Concurrency int
	Offset      int
	Progress    WarmProgress
}

// WarmProgress counts what a warm did so far; it is also the result of a warm.
type WarmProgress struct {
	Total    int           `json:"total"`
	Done     int           `json:"done"`
	Fetched  int           `json:"fetched"` // fetched by this warm, or by a fetch it joined
	Cached   int           `json:"cached"`  // stored already
	Failed   int           `json:"failed"`
	Failures []WarmFailure `json:"failures,omitempty"` // the first activities.MaxWarmFailures failures
}

// WarmFailure is a version a warm could not fetch, and why.
type WarmFailure = activities.WarmFailure

func (p WarmProgress) String() string {
	return fmt.Sprintf("%d of %d done: %d fetched, %d already cached, %d failed", p.Done, p.Total, p.Fetched, p.Cached, p.Failed)
}

// fetched counts the outcome res of the fetches of n versions.
func (p *WarmProgress) fetched(n int, res activities.WarmFetchesResult) {
	p.Done += n
	p.Fetched += res.Fetched
	p.Failed += res.Failed
	p.Failures = append(p.Failures, res.Failures[:min(len(res.Failures), activities.MaxWarmFailures-len(p.Failures))]...)
}

const (
	// warmPage is how many versions one warm run takes on before it continues as new, which
	// keeps each run's history to a few thousand events.
	warmPage = 200
)

// WarmID is the workflow ID of the warm of the list stored under key: warming one list again
// while it runs joins that warm.
func WarmID(key string) string { return "warm:" + key[len(key)-16:] }

// WarmOptions are the start options of the warm of the list stored under key, which names n
// versions. Conflict policy USE_EXISTING makes a second start of the warm of one list join the
// running one (WarmID); reuse policy ALLOW_DUPLICATE lets a list be warmed again once its warm
// has ended, however it ended.
func WarmOptions(key string, n int) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                       WarmID(key),
		TaskQueue:                TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		StaticSummary:            fmt.Sprintf("warm %d module versions", n),
	}
}

var (
	// lookup reads the warm list and the metadata store.
	lookup = workflow.ActivityOptions{
		StartToCloseTimeout:    5 * time.Minute,
		ScheduleToCloseTimeout: 6 * time.Hour,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
	}
	// await waits for fetches (activities.WarmFetches, and AwaitFetch in warms recorded before
	// it); a fetch retries for at most six hours.
	await = workflow.ActivityOptions{
		StartToCloseTimeout: 7 * time.Hour,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
	}
)

// Warm fetches every version of a warm list that is not stored yet, at most r.Concurrency at a
// time, through the fetch workflows that live misses start too: a version being fetched for a
// request is joined, not fetched twice. A version that cannot be fetched is counted with its
// reason and does not stop the others. The progress is served by the ProgressQuery query and
// shown as the workflow's current details, page by page.
//
// A page's fetches are started and waited for by one activity (activities.WarmFetches), not
// as child workflows: a child costs its parent a workflow task or more at its start and at its
// end, and the parent's tasks run one at a time, which bounded a warm by the Temporal server's
// time per task rather than by the fetches. (Warms recorded before ran children, and replay so.)
func Warm(ctx workflow.Context, r WarmRequest) (WarmProgress, error) {
	p := r.Progress
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (WarmProgress, error) { return p, nil }); err != nil {
		return p, err
	}
	var a *activities.Activities
	var page activities.WarmPage
	req := activities.WarmPageRequest{List: r.List, Offset: r.Offset, Size: warmPage}
	lctx := workflow.WithActivityOptions(ctx, lookup)
	if err := workflow.ExecuteActivity(lctx, a.WarmPage, req).Get(ctx, &page); err != nil {
		return p, err
	}
	p.Total = page.Total
	p.Done += page.Cached
	p.Cached += page.Cached
	workflow.SetCurrentDetails(ctx, p.String())
	if workflow.GetVersion(ctx, "fetches", workflow.DefaultVersion, 1) == 1 {
		if len(page.Missing) > 0 {
			var res activities.WarmFetchesResult
			o := await
			o.Summary = fmt.Sprintf("fetch the %d versions of this page not stored yet", len(page.Missing))
			req := activities.WarmFetchesRequest{Versions: page.Missing, Concurrency: r.Concurrency}
			if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, o), a.WarmFetches, req).Get(ctx, &res); err != nil {
				return p, err
			}
			p.fetched(len(page.Missing), res)
			workflow.SetCurrentDetails(ctx, p.String())
		}
		return next(ctx, r, page, p)
	}
	// Warms recorded before a page's fetches were one activity ran each as child workflows.
	running := 0
	for _, v := range page.Missing {
		if err := workflow.Await(ctx, func() bool { return running < max(r.Concurrency, 1) }); err != nil {
			return p, err
		}
		running++
		workflow.Go(ctx, func(ctx workflow.Context) {
			defer func() { running-- }()
			err := warmOne(ctx, a, v)
			p.Done++
			if err == nil {
				p.Fetched++
			} else {
				p.Failed++
				if len(p.Failures) < activities.MaxWarmFailures {
					p.Failures = append(p.Failures, WarmFailure{Module: v.Path, Version: v.Version, Reason: fetcherr.Decode(err).Error()})
				}
			}
			workflow.SetCurrentDetails(ctx, p.String())
		})
	}
	if err := workflow.Await(ctx, func() bool { return running == 0 }); err != nil {
		return p, err
	}
	return next(ctx, r, page, p)
}

// next ends the warm r after page with progress p, or continues it as new with the next page.
func next(ctx workflow.Context, r WarmRequest, page activities.WarmPage, p WarmProgress) (WarmProgress, error) {
	if page.Next < page.Total {
		next := WarmRequest{List: r.List, Concurrency: r.Concurrency, Offset: page.Next, Progress: p}
		return p, workflow.NewContinueAsNewError(ctx, Warm, next)
	}
	return p, nil
}

// warmOne fetches v (an entry of a warm list: the whole version, or its .info and .mod alone,
// warm.ModOnly) through the fetches a request would start: the .mod's, and the zip's for
// a whole version, at once. (Warms recorded before files were fetched apart fetch each version
// in one fetch of all three.)
func warmOne(ctx workflow.Context, a *activities.Activities, v module.Version) error {
	if workflow.GetVersion(ctx, "split", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return warmFetch(ctx, a, FetchRequest{Path: v.Path, Version: v.Version, Known: true})
	}
	v, modOnly := warm.ModOnly(v)
	files := []string{activities.FilesMod}
	if !modOnly {
		files = append(files, activities.FilesZip)
	}
	errs := make([]error, len(files))
	running := len(files)
	for i, f := range files {
		workflow.Go(ctx, func(ctx workflow.Context) {
			defer func() { running-- }()
			errs[i] = warmFetch(ctx, a, FetchRequest{Path: v.Path, Version: v.Version, Known: true, Files: f})
		})
	}
	if err := workflow.Await(ctx, func() bool { return running == 0 }); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// warmFetch runs the fetch req as a child workflow with the fetch's own ID, or, when that fetch
// is running already (started by a request), waits for it.
func warmFetch(ctx workflow.Context, a *activities.Activities, req FetchRequest) error {
	o := FetchOptions(req)
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            o.ID,
		TaskQueue:             o.TaskQueue,
		WorkflowIDReusePolicy: o.WorkflowIDReusePolicy,
		TypedSearchAttributes: o.TypedSearchAttributes,
		StaticSummary:         o.StaticSummary,
		// Requests may be waiting for this fetch: it goes on if the warm is cancelled.
		ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON,
	})
	err := workflow.ExecuteChildWorkflow(cctx, Fetch, req).Get(ctx, nil)
	var started *temporal.ChildWorkflowExecutionAlreadyStartedError
	if errors.As(err, &started) {
		actx := workflow.WithActivityOptions(ctx, withSummary(await, "wait for the running fetch of", req))
		err = workflow.ExecuteActivity(actx, a.AwaitFetch, o.ID).Get(ctx, nil)
	}
	return err
}

// WatchRequest is what a watchlist schedule runs: one watchlist entry, and how many versions it
// may fetch at once.
type WatchRequest struct {
	Watch       warm.Watch
	Concurrency int
}

// Watch runs one watchlist entry: it asks the upstream for the versions the entry wants, then
// warms them in a child Warm, whose result is its own.
func Watch(ctx workflow.Context, r WatchRequest) (WarmProgress, error) {
	var a *activities.Activities
	var list activities.WarmList
	o := lookup
	o.Summary = "find the versions of " + r.Watch.Pattern + ": " + r.Watch.Rule.String()
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, o), a.Resolve, r.Watch).Get(ctx, &list); err != nil {
		return WarmProgress{}, err
	}
	if list.Total == 0 {
		return WarmProgress{}, nil
	}
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:    workflow.GetInfo(ctx).WorkflowExecution.ID + "/warm",
		TaskQueue:     TaskQueue,
		StaticSummary: fmt.Sprintf("warm %d versions for the watch %s", list.Total, r.Watch.Pattern),
	})
	var p WarmProgress
	err := workflow.ExecuteChildWorkflow(cctx, Warm, WarmRequest{List: list.Key, Concurrency: r.Concurrency}).Get(ctx, &p)
	return p, err
}
