package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/goferproxy/gofer/activities"
)

// FollowRequest is what a watchlist "follow" schedule runs: the followed proxy's feed name (a
// key of the worker's activities.Activities.Follows: its URL without userinfo, never its
// credentials), the modules followed (GOPRIVATE's syntax; empty: every module) and how many
// versions may be fetched at once. Continued and Progress carry a run across continue-as-new.
type FollowRequest struct {
	Feed        string
	Patterns    string
	Concurrency int
	Continued   bool
	Progress    FollowProgress
}

// FollowProgress counts what a follow run did so far, like a warm's (Total counts the versions
// that matched); it is also a run's result, whose Since the next scheduled run starts from,
// unless it followed other Patterns.
type FollowProgress struct {
	Since    time.Time `json:"since"`    // the Timestamp of the last version read
	Patterns string    `json:"patterns"` // of the run
	Listed   int       `json:"listed"`   // versions the index listed, matching or not
	WarmProgress
}

func (p FollowProgress) String() string {
	return fmt.Sprintf("read the index up to %s (%d listed): %s", p.Since.Format(time.RFC3339Nano), p.Listed, p.WarmProgress)
}

const (
	// feedPage is how many versions of a followed index one page reads and fetches.
	feedPage = 200
	// feedPages is how many pages one follow run takes on before it continues as new.
	feedPages = 10
)

// Follow reads the index of a followed proxy from where the last run stopped, a page at a
// time, and fetches every version it lists that matches and is not stored, from that proxy,
// through the fetch workflows requests and warms start (a running one is joined, a stored
// version fetched again never), Concurrency at a time. The cursor (FollowProgress.Since)
// moves past a page only once its fetches ended, however each ended; it is carried across
// continue-as-new and is the run's result, which the schedule hands its next run
// (workflow.GetLastCompletionResult): a worker's restart or a failed run loses no version of
// the index, and repeats none of its fetches. A version that cannot be fetched is counted with
// its reason and does not stop the others. The progress is served by the ProgressQuery query
// and shown as the workflow's current details.
func Follow(ctx workflow.Context, r FollowRequest) (FollowProgress, error) {
	p := r.Progress
	if !r.Continued {
		// A run for other patterns (the entry was changed) starts from the start: versions
		// behind its cursor that it did not follow then may match now.
		p = FollowProgress{Patterns: r.Patterns}
		var last FollowProgress
		if workflow.HasLastCompletionResult(ctx) {
			if err := workflow.GetLastCompletionResult(ctx, &last); err != nil {
				return p, err
			}
		}
		if last.Patterns == r.Patterns {
			p.Since = last.Since
		}
	}
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (FollowProgress, error) { return p, nil }); err != nil {
		return p, err
	}
	var a *activities.Activities
	for range feedPages {
		var page activities.FeedPage
		o := lookup
		o.Summary = "read the index of " + r.Feed
		req := activities.FeedRequest{Feed: r.Feed, Patterns: r.Patterns, Since: p.Since, Limit: feedPage}
		if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, o), a.ReadFeed, req).Get(ctx, &page); err != nil {
			return p, err
		}
		if page.Listed == 0 {
			return p, nil
		}
		p.Listed += page.Listed
		p.Total += page.Matched
		p.Done += page.Cached
		p.Cached += page.Cached
		workflow.SetCurrentDetails(ctx, p.String())
		if len(page.Missing) > 0 {
			var res activities.WarmFetchesResult
			o := await
			o.Summary = fmt.Sprintf("fetch the %d new versions of this page from %s", len(page.Missing), r.Feed)
			req := activities.WarmFetchesRequest{Versions: page.Missing, Concurrency: r.Concurrency, From: r.Feed}
			if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, o), a.WarmFetches, req).Get(ctx, &res); err != nil {
				return p, err
			}
			p.fetched(len(page.Missing), res)
		}
		p.Since = page.Next
		workflow.SetCurrentDetails(ctx, p.String())
	}
	next := r
	next.Continued, next.Progress = true, p
	return p, workflow.NewContinueAsNewError(ctx, Follow, next)
}
