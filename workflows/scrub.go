package workflows

import (
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/goferproxy/gofer/activities"
)

// MaxListedMismatches bounds ScrubReport.Mismatches, so that even a badly damaged store gives a
// report far below Temporal's payload limit; MismatchCount still counts every one.
const MaxListedMismatches = 100

// DefaultPagesPerRun is how many pages one run of Scrub checks before it continues as new,
// which keeps every run's history short however many versions are stored.
const DefaultPagesPerRun = 100

// ScrubRequest configures a scrub; the zero value scrubs everything with the defaults.
type ScrubRequest struct {
	// PageSize bounds the versions one page activity checks; 0 means
	// activities.DefaultScrubPageSize.
	PageSize int
	// PagesPerRun is how many pages a run checks before it continues as new; 0 means
	// DefaultPagesPerRun.
	PagesPerRun int
	// Cursor and Report carry a scrub across continue-as-new: the blob key the next page
	// starts after, and what the earlier runs found. A new scrub leaves both zero.
	Cursor string
	Report ScrubReport
}

// ScrubReport is the result of a scrub.
type ScrubReport struct {
	Versions   int   // versions checked against their records
	Files      int   // blobs re-hashed that matched their records
	Bytes      int64 // bytes of those blobs
	Unrecorded int   // versions with blobs but no record, not checked (see gofer gc)
	Pages      int
	// MismatchCount counts every mismatch; Mismatches lists the first MaxListedMismatches.
	MismatchCount int
	Mismatches    []activities.Mismatch
}

func (r *ScrubReport) add(p activities.ScrubPageResult) {
	r.Versions += p.Versions
	r.Files += p.Files
	r.Bytes += p.Bytes
	r.Unrecorded += p.Unrecorded
	r.Pages++
	r.MismatchCount += len(p.Mismatches)
	for _, m := range p.Mismatches {
		if len(r.Mismatches) < MaxListedMismatches {
			r.Mismatches = append(r.Mismatches, m)
		}
	}
}

// ScrubOptions are the start options of an on-demand scrub with workflow ID id.
func ScrubOptions(id string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{ID: id, TaskQueue: TaskQueue, StaticSummary: "scrub every stored version"}
}

// scrubPage re-hashes up to a page of versions: it heartbeats at every blob, so a worker that
// dies mid-page is noticed within the heartbeat timeout and the retry resumes where it was.
// It retries through storage and checksum-database outages for hours; after that the scrub
// fails, and the next scheduled one starts over.
var scrubPage = workflow.ActivityOptions{
	StartToCloseTimeout:    30 * time.Minute,
	ScheduleToCloseTimeout: 6 * time.Hour,
	HeartbeatTimeout:       2 * time.Minute,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:    time.Second,
		BackoffCoefficient: 2,
		MaximumInterval:    5 * time.Minute,
	},
}

// Scrub checks every stored version, a page at a time, against its record and the checksum
// database, and reports what differs; each difference also raises the checksum alarm. It
// deletes and changes nothing: what to do about a damaged version is an operator's call.
func Scrub(ctx workflow.Context, r ScrubRequest) (ScrubReport, error) {
	var a *activities.Activities
	perRun := r.PagesPerRun
	if perRun <= 0 {
		perRun = DefaultPagesPerRun
	}
	report, cursor := r.Report, r.Cursor
	actx := workflow.WithActivityOptions(ctx, scrubPage)
	for range perRun {
		var page activities.ScrubPageResult
		req := activities.ScrubPageRequest{After: cursor, Versions: r.PageSize}
		if err := workflow.ExecuteActivity(actx, a.ScrubPage, req).Get(ctx, &page); err != nil {
			return report, err
		}
		report.add(page)
		cursor = page.Cursor
		if page.Done {
			return report, nil
		}
	}
	next := r
	next.Cursor, next.Report = cursor, report
	return report, workflow.NewContinueAsNewError(ctx, Scrub, next)
}
