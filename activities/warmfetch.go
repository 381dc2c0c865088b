package activities

import (
	"cmp"
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"go.temporal.io/sdk/temporal"
	"golang.org/x/mod/module"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/warm"
	"github.com/goferproxy/gofer/workflows/fetcherr"
)

// WarmFetchesRequest is one page of a warm: the entries of its list that are not stored yet
// (warm.ModOnly says which name the .info and .mod alone), fetched Concurrency at a time,
// from the followed proxy From (Job.From; empty: the upstream).
type WarmFetchesRequest struct {
	Versions    []module.Version
	Concurrency int
	From        string
}

// WarmFetchesResult says how a page of a warm went: how many entries were fetched (or joined),
// and those that failed, at most MaxWarmFailures of them, with their reasons.
type WarmFetchesResult struct {
	Fetched  int
	Failed   int
	Failures []WarmFailure
}

// WarmFailure is a version a warm could not fetch, and why.
type WarmFailure struct {
	Module  string `json:"module"`
	Version string `json:"version"`
	Reason  string `json:"reason"`
}

// MaxWarmFailures bounds the failures a warm keeps with their reasons.
const MaxWarmFailures = 100

// WarmFetches fetches every entry of r through a.RunFetch, the fetch workflows a request would
// start (a running one is joined): the .mod's, and for a whole version the zip's too, at once.
// It heartbeats how many entries are done. Each entry's outcome is its own: a failed fetch is
// counted and the others go on; a fetch that Temporal could not start or report on fails the
// page, to be retried. Run again (a retry after a worker stopped), it redoes the page:
// a fetch that succeeded returns at once.
func (a *Activities) WarmFetches(ctx context.Context, r WarmFetchesRequest) (WarmFetchesResult, error) {
	if a.RunFetch == nil {
		return WarmFetchesResult{}, fetcherr.Encode(errors.New("no way to run fetches (Activities.RunFetch)"))
	}
	var res WarmFetchesResult
	var fatal error // Temporal could not be asked: the page is retried
	var mu sync.Mutex
	var done atomic.Int64
	stop := heartbeat(ctx, heartbeatEvery, func() any { return done.Load() })
	defer stop()
	sem := make(chan struct{}, max(r.Concurrency, 1))
	var wg sync.WaitGroup
	for _, entry := range r.Versions {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return res, ctx.Err()
		}
		wg.Go(func() {
			defer func() { <-sem }()
			err := a.warmOne(ctx, entry, r.From)
			done.Add(1)
			mu.Lock()
			defer mu.Unlock()
			// A fetch's outcome is its workflow's failure (or its activity's, within it); any
			// other error says only that Temporal did not answer.
			var ended *temporal.WorkflowExecutionError
			var app *temporal.ApplicationError
			if err != nil && !errors.As(err, &ended) && !errors.As(err, &app) {
				fatal = cmp.Or(fatal, err)
				return
			}
			if err == nil {
				res.Fetched++
				return
			}
			res.Failed++
			if len(res.Failures) < MaxWarmFailures {
				v, _ := warm.ModOnly(entry)
				res.Failures = append(res.Failures, WarmFailure{Module: v.Path, Version: v.Version, Reason: fetcherr.Decode(err).Error()})
			}
		})
	}
	wg.Wait()
	if fatal != nil && ctx.Err() == nil {
		return res, fetcherr.Encode(gofer.Errorf(gofer.ErrUnavailable, "running the fetches: %w", fatal))
	}
	return res, ctx.Err()
}

// warmOne runs the fetches of one warm list entry at once, from from, and fails if either does.
func (a *Activities) warmOne(ctx context.Context, entry module.Version, from string) error {
	v, modOnly := warm.ModOnly(entry)
	if modOnly {
		return a.RunFetch(ctx, v.Path, v.Version, FilesMod, from)
	}
	zip := make(chan error, 1)
	go func() { zip <- a.RunFetch(ctx, v.Path, v.Version, FilesZip, from) }()
	return errors.Join(a.RunFetch(ctx, v.Path, v.Version, FilesMod, from), <-zip)
}
