package server

import (
	"context"
	"errors"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/rules"
	"github.com/goferproxy/gofer/workflows"
	"github.com/goferproxy/gofer/workflows/fetcherr"
)

// busyError is a miss refused because MaxFetches fetches are being waited for.
type busyError struct{ error }

func (e *busyError) Unwrap() error { return e.error }

// noFetchError is a miss that could not even start its fetch: Temporal is out of reach.
type noFetchError struct{ error }

func (e *noFetchError) Unwrap() error { return e.error }

// fetchAll fetches files (activities.FilesMod, FilesZip) of path@version in that order: a zip
// only once its version's .mod is stored, so that a version whose .mod is refused (not found,
// or not what the checksum database vouches for) costs no zip download and stores nothing. The
// go command asks for a version's .mod before its zip, so the order costs it no time.
func (s *Server) fetchAll(ctx context.Context, path, version string, files []string) error {
	for _, f := range files {
		run, err := s.fetch(ctx, path, version, f)
		// Every request that waited, not only the one that started a fetch, names it: the
		// last, the zip's for a zip.
		if run != nil {
			ri := info(ctx)
			ri.workflowID, ri.runID = run.GetID(), run.GetRunID()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// fetch starts or joins the fetch workflow of files of path@version and waits for it, at most
// FetchWait. Concurrent misses of one version in this process share one wait; across
// processes, the workflow ID makes them share one fetch. At most MaxFetches waits run at once:
// beyond, a miss of another version is unavailable at once, and starts nothing.
func (s *Server) fetch(ctx context.Context, path, version, files string) (client.WorkflowRun, error) {
	key := path + "@" + version
	id := workflows.FetchID(path, version, files)
	if err, ok := s.failed.get(id); ok {
		return nil, err
	}
	// The wait belongs to every request that joined it, not to the one that started it.
	return share(ctx, &s.fetches, id, maxFetchWait, func(wctx context.Context) (client.WorkflowRun, error) {
		if s.waiting.Add(1) > int64(s.cfg.MaxFetches) {
			s.waiting.Add(-1)
			s.in.refused.Add(wctx, 1)
			return nil, &busyError{gofer.Errorf(gofer.ErrUnavailable, "%s is not cached, and this proxy is fetching %d versions already, its most; retry later", key, s.cfg.MaxFetches)}
		}
		s.in.fetching.Add(wctx, 1)
		defer func() {
			s.waiting.Add(-1)
			s.in.fetching.Add(wctx, -1)
		}()
		committed, stop := s.cfg.Commits.wait(id)
		defer stop()
		run, err := s.start(wctx, path, version, files)
		if err != nil {
			return nil, &noFetchError{gofer.Errorf(gofer.ErrUnavailable, "starting the fetch of %s@%s: %w", path, version, err)}
		}
		done, err := s.await(wctx, run, key, committed)
		if !done {
			return run, err
		}
		// A load of the version that started before the fetch stored it may still be running:
		// the requests that waited must not join it and read "not stored".
		s.loads.Forget(key)
		s.loads.Forget(key + zipRecord)
		err = fetcherr.Decode(err)
		if errors.Is(err, gofer.ErrNotFound) || errors.Is(err, gofer.ErrInvalid) {
			s.failed.put(id, err)
		}
		return run, err
	})
}

// maxFetchWait bounds a wait for a fetch that keeps moving: the time limit of its download.
const maxFetchWait = 30 * time.Minute

// historian is the part of a Temporal client that tells how far a workflow has got; a Starter
// without it has its fetches waited for FetchWait exactly.
type historian interface {
	DescribeWorkflow(ctx context.Context, workflowID, runID string) (*client.WorkflowExecutionDescription, error)
}

// await waits for run's outcome and returns it (nil, or the workflow's error) with done true,
// or, with done false, the error telling why there is none yet. A close of committed (see
// Commits) is the outcome nil, at once. It waits FetchWait, and on for as long
// as the fetch moves, within ctx: every half FetchWait it looks at the length of the fetch's
// history, which grows while its download receives the zip (each stretch is reported) and
// with each step the fetch ends or begins, and it stops when a look finds no growth since the
// one before. So a large zip from a slow upstream is waited for, and a fetch that is stuck is
// not waited for longer than before.
func (s *Server) await(ctx context.Context, run client.WorkflowRun, key string, committed <-chan struct{}) (done bool, err error) {
	start, half, seen := time.Now(), s.cfg.FetchWait/2, int64(-1)
	for {
		wctx, cancel := context.WithTimeout(ctx, half)
		got := make(chan error, 1)
		go func() { got <- run.Get(wctx, nil) }()
		select {
		case err = <-got:
		case <-committed:
			cancel()
			return true, nil
		}
		dl, _ := wctx.Deadline()
		cancel()
		if outcome(err) {
			return true, err
		}
		// No outcome, only why this wait ended: its deadline, which Temporal's client may
		// report first in words of its own (a deadline, a cancelled stream), or Temporal out
		// of reach.
		if time.Until(dl) > time.Second && ctx.Err() == nil {
			s.cfg.Log.Warn("waiting for a fetch", zap.String("fetch", key), zap.Error(err))
			return false, gofer.Errorf(gofer.ErrUnavailable, "the fetch of %s has no outcome yet (Temporal did not answer); retry later", key)
		}
		n := int64(-1)
		if h, ok := s.cfg.Temporal.(historian); ok && ctx.Err() == nil {
			if d, err := h.DescribeWorkflow(ctx, run.GetID(), run.GetRunID()); err == nil {
				n = int64(d.HistoryLength)
			}
		}
		if seen >= 0 && n <= seen || n < 0 && time.Since(start) >= s.cfg.FetchWait || ctx.Err() != nil {
			waited := s.cfg.FetchWait // what the client was promised, unless it waited much longer
			if e := time.Since(start); e > 2*s.cfg.FetchWait {
				waited = e.Round(time.Second)
			}
			return false, gofer.Errorf(gofer.ErrUnavailable, "the fetch of %s is still running after %s; retry later", key, waited)
		}
		seen = n
	}
}

// outcome reports whether err, from WorkflowRun.Get, is the fetch's outcome: nil, or the
// workflow's failure (which Temporal's client wraps in a WorkflowExecutionError), rather than
// why the wait for it ended.
func outcome(err error) bool {
	var wee *temporal.WorkflowExecutionError
	var app *temporal.ApplicationError
	return err == nil || errors.As(err, &wee) || errors.As(err, &app)
}

// fetchUnlessMissing is fetch, but answers not found as soon as the upstream says that
// path@version does not exist. To find the module of a package the go command asks for every
// prefix of its path, most of which are no module, and it waits for each answer: a not found must
// cost the upstream's own answer time, not that of a fetch workflow too. The upstream's .info is
// asked alongside the fetch (and remembered like any query), so a version that exists waits for
// its fetch no longer than before, and an outage still waits for the fetch's retries.
func (s *Server) fetchUnlessMissing(ctx context.Context, path, version string, files []string) error {
	probed, fetched := make(chan error, 1), make(chan error, 1)
	go func() {
		_, err := s.upstreamInfo(ctx, path, version)
		probed <- err
	}()
	go func() { fetched <- s.fetchAll(ctx, path, version, files) }()
	select {
	case err := <-fetched:
		// Refused for want of a slot: the upstream may still say that nothing is there, which
		// the go command needs to hear (a 503 for a prefix of a package path fails it).
		if busy := (*busyError)(nil); errors.As(err, &busy) {
			if perr := <-probed; errors.Is(perr, gofer.ErrNotFound) {
				return perr
			}
		}
		return err
	case err := <-probed:
		if errors.Is(err, gofer.ErrNotFound) {
			return err
		}
		return <-fetched
	}
}

// startFetch starts (or joins) the fetch of files of path@version without waiting for it; a
// failure to start is only logged, since the client has its answer already.
func (s *Server) startFetch(ctx context.Context, path, version, files string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := s.start(ctx, path, version, files); err != nil {
		s.cfg.Log.Warn("starting an async fetch", zap.String("module", path), zap.String("version", version), zap.String("files", files), zap.Error(err))
	}
}

// start starts the fetch workflow of files of path@version, or joins the one running. A private
// rule vouches for the version (workflows.FetchRequest.Known); a request alone never does.
func (s *Server) start(ctx context.Context, path, version, files string) (client.WorkflowRun, error) {
	req := workflows.FetchRequest{Path: path, Version: version, Known: s.cfg.Rules.Match(path).Rule == rules.Private, Files: files}
	return s.cfg.Temporal.ExecuteWorkflow(ctx, workflows.FetchOptions(req), workflows.Fetch, req)
}
