package activities

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash"
	"io"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"
	"go.uber.org/zap"
	"golang.org/x/mod/module"
	"golang.org/x/sync/errgroup"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/upstream"
	"github.com/goferproxy/gofer/workflows/fetcherr"
)

// heartbeatEvery spaces heartbeats unless Activities.ProgressEvery says otherwise; the
// workflow's heartbeat timeout is a minute.
const heartbeatEvery = 10 * time.Second

// Download streams the job's files (Job.Files: the zip, or, for fetches recorded before the
// .info and .mod were fetched apart, all three) from the upstream into staging, hashing them
// on the way (the upstream client enforces the go command's size limits). It heartbeats all
// along, with the bytes of zip received so far, so that a stalled download is noticed and
// retried; each attempt stages under keys of its own.
func (a *Activities) Download(ctx context.Context, j Job) (Staged, error) {
	s := Staged{Job: j, Attempt: j.AttemptOffset + activity.GetInfo(ctx).Attempt}
	if err := module.Check(j.Path, j.Version); err != nil {
		return s, fetcherr.Encode(gofer.Errorf(gofer.ErrNotFound, "%w", err))
	}
	a.instruments().downloads.Add(ctx, 1)
	defer a.instruments().downloads.Add(ctx, -1)
	var received atomic.Int64 // zip bytes so far, reported by the heartbeats
	reported := int64(0)
	stop := heartbeat(ctx, cmp.Or(a.ProgressEvery, heartbeatEvery), func() any {
		if n := received.Load(); n > reported {
			a.report(ctx, Progress{Received: n})
			reported = n
		}
		return received.Load()
	})
	defer stop()
	var got atomic.Bool // an upstream answered for the version
	err := a.downloadFiles(ctx, &s, &received, &got)
	return s, fetcherr.Encode(answeredIf(&got, err))
}

// answeredIf marks err answered if it is unavailable and got says that an upstream answered
// for the version on the way.
func answeredIf(got *atomic.Bool, err error) error {
	if err != nil && got.Load() && gofer.Kind(err) == gofer.ErrUnavailable {
		return fetcherr.MarkAnswered(err)
	}
	return err
}

// downloadFiles fetches the files at once: the upstream's latency is paid once, not three
// times. The first failure is the one reported (a cancelled one would only say so), and
// cancels the zip; the small files are let finish, so that an unavailable zip is marked
// answered whenever the upstream did answer for the version's .info or .mod (or, for a zip
// fetched alone, whenever the version's .mod is stored).
func (a *Activities) downloadFiles(ctx context.Context, s *Staged, received *atomic.Int64, got *atomic.Bool) error {
	j := s.Job
	// Decided once: Verify follows what Download did, whatever a reload of the rules says later.
	up, private, err := a.source(j.Path, j.From)
	s.Private = private
	if err != nil {
		return err
	}
	if j.Files == FilesZip && a.modStored(ctx, j) {
		got.Store(true)
	}
	g, zctx := errgroup.WithContext(ctx)
	if j.Files != FilesZip {
		g.Go(func() error {
			info, mod, t, _, err := small(ctx, up, j, got)
			if err != nil {
				return err
			}
			s.Time = t
			if s.Info, err = a.stage(ctx, s, "info", bytes.NewReader(info), nil); err != nil {
				return err
			}
			s.Mod, err = a.stage(ctx, s, "mod", bytes.NewReader(mod), nil)
			return err
		})
	}
	g.Go(func() error {
		zip, source, err := up.Zip(zctx, j.Path, j.Version)
		if err != nil {
			return err
		}
		got.Store(true)
		defer zip.Close()
		s.Source = source
		s.Zip, err = a.stage(zctx, s, "zip", zip, received)
		return err
	})
	return g.Wait()
}

// small downloads the .info and .mod of j from up at once, and checks the .info; it returns
// the version's time from it, and the upstream that served the .mod.
func small(ctx context.Context, up upstream.Source, j Job, got *atomic.Bool) (info, mod []byte, t time.Time, source string, err error) {
	var g errgroup.Group
	g.Go(func() error {
		var err error
		if info, _, err = up.Info(ctx, j.Path, j.Version); err != nil {
			return err
		}
		got.Store(true)
		t, err = checkInfo(info, j.Version)
		return err
	})
	g.Go(func() error {
		var err error
		if mod, source, err = up.Mod(ctx, j.Path, j.Version); err != nil {
			return err
		}
		got.Store(true)
		return nil
	})
	err = g.Wait()
	return info, mod, t, source, err
}

// errSlow is why a local FetchMod or FetchZip stops a download still running after one
// progress interval.
var errSlow = errors.New("still arriving after one progress interval")

// quick bounds the downloads of a local activity to one progress interval: it returns their
// context, and slow, which turns the error of a download cut short by that bound into the
// error that sends what, the files, another way (fetcherr.MarkNotLocal), and ends the bound.
// In a regular activity the context is ctx and slow changes nothing.
func (a *Activities) quick(ctx context.Context, what string) (context.Context, func(error) error) {
	if !activity.IsActivity(ctx) || !activity.GetInfo(ctx).IsLocalActivity {
		return ctx, func(err error) error { return err }
	}
	qctx, cancel := context.WithTimeoutCause(ctx, cmp.Or(a.ProgressEvery, heartbeatEvery), errSlow)
	return qctx, func(err error) error {
		defer cancel()
		if err != nil && context.Cause(qctx) == errSlow && ctx.Err() == nil {
			return fetcherr.MarkNotLocal(gofer.Errorf(gofer.ErrUnavailable, "%s: %w: fetching it with an activity of its own", what, errSlow))
		}
		return err
	}
}

// report sends p to the workflow of the running activity, for operators to see; a report
// that does not arrive changes nothing.
func (a *Activities) report(ctx context.Context, p Progress) {
	if a.Temporal == nil {
		return
	}
	info := activity.GetInfo(ctx)
	if err := a.Temporal.SignalWorkflow(ctx, info.WorkflowExecution.ID, info.WorkflowExecution.RunID, ProgressSignal, p); err != nil {
		a.log(ctx).Debug("progress report not sent", zap.String("workflow", info.WorkflowExecution.ID), zap.Error(err))
	}
}

// ProgressSignal is the signal that carries a Progress to a fetch workflow.
const ProgressSignal = "progress"

// heartbeat records a heartbeat with details() every interval until stop is called.
func heartbeat(ctx context.Context, every time.Duration, details func() any) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx, details())
			}
		}
	}()
	return func() { close(done) }
}

// checkInfo refuses an .info that is not JSON naming exactly the requested version.
func checkInfo(data []byte, version string) (time.Time, error) {
	var info struct {
		Version string
		Time    time.Time
	}
	if err := json.Unmarshal(data, &info); err != nil {
		return time.Time{}, gofer.Errorf(gofer.ErrInvalid, "malformed .info for %s: %w", version, err)
	}
	if info.Version != version {
		return time.Time{}, gofer.Errorf(gofer.ErrInvalid, ".info names version %q, not %q", info.Version, version)
	}
	return info.Time.UTC().Truncate(time.Millisecond), nil
}

// stage stores r as the staged file ext of s, hashing it; progress, if not nil, counts the
// bytes as they come.
func (a *Activities) stage(ctx context.Context, s *Staged, ext string, r io.Reader, progress *atomic.Int64) (gofer.File, error) {
	key, err := s.key(ext)
	if err != nil {
		return gofer.File{}, err
	}
	m := &meter{r: r, h: sha256.New(), progress: progress}
	if err := a.Blobs.Put(ctx, key, m); err != nil {
		if m.err != nil {
			return gofer.File{}, m.err // the upstream's failure, already classified
		}
		return gofer.File{}, storage.Failure(err)
	}
	return gofer.File{Size: m.size, SHA256: hex.EncodeToString(m.h.Sum(nil))}, nil
}

// meter counts and hashes what is read through it, and keeps the reader's own error.
type meter struct {
	r        io.Reader
	h        hash.Hash
	size     int64
	progress *atomic.Int64
	err      error
}

func (m *meter) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	m.h.Write(p[:n])
	m.size += int64(n)
	if m.progress != nil {
		m.progress.Add(int64(n))
	}
	if err != nil && err != io.EOF {
		m.err = err
	}
	return n, err
}
