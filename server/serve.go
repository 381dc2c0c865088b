package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	"golang.org/x/sync/singleflight"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/activities"
	"github.com/goferproxy/gofer/rules"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/upstream"
	"github.com/goferproxy/gofer/workflows"
	"github.com/goferproxy/gofer/workflows/fetcherr"
)

// entry is a stored version as the hit path keeps it in memory: its record, its .info and .mod,
// and, from its first hit, its zip if that is at most maxHeldZip bytes; a bigger zip streams
// from the blob store.
type entry struct {
	rec   gofer.Version
	info  []byte
	mod   []byte
	zip   atomic.Pointer[[]byte] // set at the zip's first hit, if it is held
	etags map[string][]string    // ETag header values by kind: the quoted SHA-256 of the file
}

// maxHeldZip is the largest zip an entry holds. Up to about this size, a hit costs opening the
// blob (an open and a stat on disk, a whole GET on S3) more than moving its bytes; a bigger
// zip's hit is bound by its transfer, which streaming does well. Zips are read at their first
// hit, not with the .info and .mod: the go command asks for the .mod alone of many versions.
const maxHeldZip = 64 << 10

// busyError is a miss refused because MaxFetches fetches are being waited for.
type busyError struct{ error }

func (e *busyError) Unwrap() error { return e.error }

// noFetchError is a miss that could not even start its fetch: Temporal is out of reach.
type noFetchError struct{ error }

func (e *noFetchError) Unwrap() error { return e.error }

// serveFile answers .info, .mod or .zip of a canonical version; a miss is handled as the
// download mode says.
func (s *Server) serveFile(ctx context.Context, w http.ResponseWriter, r *http.Request, req request, mode string) error {
	e, err := s.version(ctx, req.path, req.version, mode, req.kind == "zip")
	var noFetch *noFetchError
	// A private module is never sent to the upstream proxies, even so.
	if errors.As(err, &noFetch) && s.cfg.PassthroughWithoutTemporal && s.cfg.Rules.Match(req.path).Rule != rules.Private {
		return s.passthrough(ctx, w, r, req)
	}
	if mode == rules.Redirect && errors.Is(err, gofer.ErrNotFound) {
		url, uerr := s.cfg.Upstream.URL(req.path, req.version, req.kind)
		if uerr != nil {
			return uerr
		}
		w.Header().Set("Cache-Control", "no-store") // stored later, it will be served from here
		http.Redirect(w, r, url, http.StatusFound)
		return nil
	}
	if err != nil {
		return err
	}
	switch req.kind {
	case "info":
		s.serveContent(w, r, "info", immutable, e.etags["info"], bytes.NewReader(e.info))
	case "mod":
		s.serveContent(w, r, "mod", immutable, e.etags["mod"], bytes.NewReader(e.mod))
	case "zip":
		key := storage.Key(req.path, req.version, "zip")
		// A URL presigned for GET does not sign a HEAD: HEAD is answered here.
		if p, ok := s.cfg.Blobs.(Presigner); ok && s.cfg.ZipRedirect > 0 && r.Method == http.MethodGet {
			url, err := p.PresignGet(ctx, key, s.cfg.ZipRedirect)
			if err != nil {
				return gofer.Errorf(gofer.ErrUnavailable, "presigning the zip of %s@%s: %w", req.path, req.version, err)
			}
			w.Header().Set("Cache-Control", "no-store") // the URL expires; the zip does not
			http.Redirect(w, r, url, http.StatusFound)
			return nil
		}
		if e.rec.Zip.Size <= maxHeldZip {
			zip, err := s.heldZip(ctx, e, key)
			if err != nil {
				return err
			}
			s.serveContent(w, r, "zip", immutable, e.etags["zip"], bytes.NewReader(zip))
			return nil
		}
		zip, _, err := s.cfg.Blobs.Open(ctx, key)
		if err != nil {
			return gofer.Errorf(gofer.ErrUnavailable, "stored zip of %s@%s: %w", req.path, req.version, err)
		}
		defer zip.Close()
		s.serveContent(w, r, "zip", immutable, e.etags["zip"], zip)
	}
	return nil
}

// version returns the stored version path@version, with its zip if zip is set, from memory
// when it is hot. When it is not stored (or its zip is wanted and not stored: a version's .info
// and .mod are fetched alone, without the zip, for a client that asks for either), the
// download mode decides: sync fetches what is missing through its workflows and waits, async
// starts those fetches and answers not found at once, none and redirect answer not found.
func (s *Server) version(ctx context.Context, path, version, mode string, zip bool) (*entry, error) {
	key := path + "@" + version
	hot, ok := s.versions.get(key)
	if ok && (!zip || hot.rec.HasZip()) {
		return hot, nil
	}
	e, err := s.stored(ctx, key, hot)
	if err == nil && (!zip || e.rec.HasZip()) || err != nil && !errors.Is(err, gofer.ErrNotFound) {
		return e, err
	}
	info(ctx).cache = cacheMiss
	var files []string
	if err != nil {
		files = append(files, activities.FilesMod)
	}
	if zip {
		files = append(files, activities.FilesZip)
	}
	for _, f := range files {
		if ferr, ok := s.failed.get(workflows.FetchID(path, version, f)); ok {
			return nil, ferr // a fetch of it ended not found or invalid a moment ago
		}
	}
	switch mode {
	case rules.Sync:
		if err := s.fetchUnlessMissing(ctx, path, version, files); err != nil {
			return nil, err
		}
	case rules.Async:
		s.startFetch(ctx, path, version, files[0]) // the .mod before the zip, as fetchAll; a retry starts the next
		return nil, gofer.Errorf(gofer.ErrNotFound, "%s is not cached yet; its fetch has started, retry later", key)
	default:
		return nil, gofer.Errorf(gofer.ErrNotFound, "%s is not cached, and the download mode here is %s", key, mode)
	}
	e, err = s.stored(ctx, key, hot)
	switch {
	case errors.Is(err, gofer.ErrNotFound):
		return nil, gofer.Errorf(gofer.ErrUnavailable, "metadata of %s: not found after its fetch", key)
	case err == nil && zip && !e.rec.HasZip():
		return nil, gofer.Errorf(gofer.ErrUnavailable, "metadata of %s: no zip after its fetch", key)
	}
	return e, err
}

// stored is the stored version key (path@version), as load reads it, or, given the entry hot
// that memory holds of it (without its zip), that entry with its zip if the zip is stored now.
func (s *Server) stored(ctx context.Context, key string, hot *entry) (*entry, error) {
	path, version, _ := strings.Cut(key, "@")
	if hot == nil {
		return s.load(ctx, key, path, version)
	}
	return share(ctx, &s.loads, key+zipRecord, loadWait, func(ctx context.Context) (*entry, error) {
		z, err := s.cfg.Meta.GetZip(ctx, path, version)
		if errors.Is(err, gofer.ErrNotFound) {
			return hot, nil
		} else if err != nil {
			return nil, gofer.Errorf(gofer.ErrUnavailable, "metadata of the zip of %s: %w", key, err)
		}
		e := &entry{rec: hot.rec.WithZip(z), info: hot.info, mod: hot.mod, etags: maps.Clone(hot.etags)}
		e.etags["zip"] = headerValue(`"` + z.Zip.SHA256 + `"`)
		s.versions.add(key, e, int64(len(key)+len(e.info)+len(e.mod))+512)
		return e, nil
	})
}

// zipRecord is added to a version's key to name the reads of its zip's record.
const zipRecord = "#zip"

// load reads the stored version path@version (its record, .info and .mod) into memory, or
// fails with gofer.ErrNotFound if it is not stored. Concurrent loads of one version, such as
// every request that waited for its fetch, share one read.
func (s *Server) load(ctx context.Context, key, path, version string) (*entry, error) {
	return share(ctx, &s.loads, key, loadWait, func(ctx context.Context) (*entry, error) {
		rec, err := s.cfg.Meta.Get(ctx, path, version)
		if errors.Is(err, gofer.ErrNotFound) {
			return nil, err
		} else if err != nil {
			return nil, gofer.Errorf(gofer.ErrUnavailable, "metadata of %s: %w", key, err)
		}
		e := &entry{rec: rec, etags: map[string][]string{
			"info": headerValue(`"` + rec.Info.SHA256 + `"`),
			"mod":  headerValue(`"` + rec.Mod.SHA256 + `"`),
			"zip":  headerValue(`"` + rec.Zip.SHA256 + `"`),
		}}
		if e.info, err = s.readBlob(ctx, storage.Key(path, version, "info")); err != nil {
			return nil, err
		}
		if e.mod, err = s.readBlob(ctx, storage.Key(path, version, "mod")); err != nil {
			return nil, err
		}
		s.versions.add(key, e, int64(len(key)+len(e.info)+len(e.mod))+512)
		return e, nil
	})
}

// heldZip is the zip of e, at most maxHeldZip bytes: read from the blob store at its first
// hit (concurrent first hits share the read), then kept in e, which weighs that much more in
// the cache from then on.
func (s *Server) heldZip(ctx context.Context, e *entry, key string) ([]byte, error) {
	if zip := e.zip.Load(); zip != nil {
		return *zip, nil
	}
	return share(ctx, &s.loads, key, loadWait, func(ctx context.Context) ([]byte, error) {
		if zip := e.zip.Load(); zip != nil {
			return *zip, nil // held by a read that ended as this one began
		}
		zip, err := s.readBlob(ctx, key)
		if err == nil && s.versions.grow(e.rec.Path+"@"+e.rec.Version, e, int64(len(zip))) {
			e.zip.Store(&zip)
		}
		return zip, err
	})
}

// loadWait bounds a read of a stored version's small files into memory.
const loadWait = 30 * time.Second

func (s *Server) readBlob(ctx context.Context, key string) ([]byte, error) {
	r, _, err := s.cfg.Blobs.Open(ctx, key)
	if err != nil {
		return nil, gofer.Errorf(gofer.ErrUnavailable, "reading %s: %w", key, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r) // stored files were size-checked when they were fetched
	if err != nil {
		return nil, gofer.Errorf(gofer.ErrUnavailable, "reading %s: %w", key, err)
	}
	return b, nil
}

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

// share runs fn once for all the concurrent callers of g with the same key: in a context of its
// own, bounded by limit, so that the caller that started it going away fails no other; each
// caller stops waiting when its own ctx ends.
func share[T any](ctx context.Context, g *singleflight.Group, key string, limit time.Duration, fn func(context.Context) (T, error)) (T, error) {
	ch := g.DoChan(key, func() (any, error) {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), limit)
		defer cancel()
		return fn(sctx)
	})
	select {
	case res := <-ch:
		v, _ := res.Val.(T)
		return v, res.Err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// querier is where the queries about path go: version control for a private module, whose
// name must not reach the upstream proxies, the upstream otherwise.
func (s *Server) querier(path string) upstream.Source {
	if s.cfg.Rules.Match(path).Rule != rules.Private {
		return s.cfg.Upstream
	}
	if s.cfg.Direct == nil {
		return noDirect{}
	}
	return s.cfg.Direct
}

// noDirect answers every request about a private module when there is no version control
// access.
type noDirect struct{}

func (noDirect) List(_ context.Context, path string) ([]byte, string, error) {
	return nil, "", rules.NoDirect(path)
}
func (noDirect) Latest(_ context.Context, path string) ([]byte, string, error) {
	return nil, "", rules.NoDirect(path)
}
func (noDirect) Info(_ context.Context, path, _ string) ([]byte, string, error) {
	return nil, "", rules.NoDirect(path)
}
func (noDirect) Mod(_ context.Context, path, _ string) ([]byte, string, error) {
	return nil, "", rules.NoDirect(path)
}
func (noDirect) Zip(_ context.Context, path, _ string) (io.ReadCloser, string, error) {
	return nil, "", rules.NoDirect(path)
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

// passthrough answers a canonical .info, .mod or .zip straight from the upstream, streaming the
// zip, and stores nothing.
func (s *Server) passthrough(ctx context.Context, w http.ResponseWriter, r *http.Request, req request) error {
	var body io.Reader
	switch req.kind {
	case "info", "mod":
		get := s.cfg.Upstream.Mod
		if req.kind == "info" {
			get = s.cfg.Upstream.Info
		}
		b, _, err := get(ctx, req.path, req.version)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	case "zip":
		zip, _, err := s.cfg.Upstream.Zip(ctx, req.path, req.version)
		if err != nil {
			return err
		}
		defer zip.Close()
		body = zip
	}
	h := w.Header()
	h["Content-Type"] = contentTypes[req.kind]
	h["Cache-Control"] = s.cacheControl[shortLived]
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	// Past the status line, a failure can only cut the response short: the go command's
	// hash check rejects a truncated zip.
	if _, err := io.Copy(w, body); err != nil {
		s.cfg.Log.Info("passthrough cut short", zap.String("module", req.path), zap.String("version", req.version), zap.Error(err))
	}
	return nil
}

// upstream answers a mutable query from the short-lived cache or, once for all concurrent
// callers, from the upstream.
func (s *Server) upstream(ctx context.Context, key string, query func(context.Context) ([]byte, string, error)) ([]byte, error) {
	if b, ok := s.mutable.get(key); ok {
		return b, nil
	}
	if err, ok := s.failed.get(key); ok {
		return nil, err
	}
	// Bounded, so that a stalled upstream cannot keep list and @latest from falling back to
	// what is stored.
	return share(ctx, &s.queries, key, s.cfg.FetchWait, func(qctx context.Context) ([]byte, error) {
		b, _, err := query(qctx)
		switch {
		case err == nil:
			s.mutable.put(key, b)
		case errors.Is(err, gofer.ErrNotFound):
			s.failed.put(key, err)
		}
		return b, err
	})
}

// upstreamInfo is the upstream's .info of path at query (a version, a branch, a commit), from
// the short-lived cache or, once for all concurrent callers, from the upstream.
func (s *Server) upstreamInfo(ctx context.Context, path, query string) ([]byte, error) {
	return s.upstream(ctx, "info:"+path+"@"+query, func(ctx context.Context) ([]byte, string, error) {
		return s.querier(path).Info(ctx, path, query)
	})
}

// serveList answers @v/list: the upstream's list merged with the stored versions, or the stored
// versions alone when the upstream fails.
func (s *Server) serveList(ctx context.Context, w http.ResponseWriter, r *http.Request, path string) error {
	up, uerr := s.upstream(ctx, "list:"+path, func(ctx context.Context) ([]byte, string, error) {
		return s.querier(path).List(ctx, path)
	})
	stored, serr := s.cfg.Meta.Versions(ctx, path)
	if uerr != nil && serr != nil {
		// Stored versions may exist: not found would send the client elsewhere for good.
		return gofer.Errorf(gofer.ErrUnavailable, "upstream: %w; stored versions: %w", uerr, serr)
	}
	if uerr != nil && len(stored) == 0 {
		return uerr
	}
	set := map[string]bool{}
	// Pseudo-versions stay: the go command leaves them out of its lists, but when @latest is not
	// found it takes the newest of them as latest (modfetch's proxyRepo.latest), which is how a
	// module without tags, such as golang.org/x/exp, has a latest version at all.
	for _, v := range append(strings.Fields(string(up)), stored...) {
		if module.CanonicalVersion(v) == v && module.Check(path, v) == nil {
			set[v] = true
		}
	}
	list := make([]string, 0, len(set))
	for v := range set {
		list = append(list, v)
	}
	semver.Sort(list)
	var b strings.Builder
	for _, v := range list {
		b.WriteString(v + "\n")
	}
	s.serveContent(w, r, "list", shortLived, nil, strings.NewReader(b.String()))
	return nil
}

// serveLatest answers @latest from the upstream, or with the highest stored version when the
// upstream fails.
func (s *Server) serveLatest(ctx context.Context, w http.ResponseWriter, r *http.Request, path string) error {
	up, err := s.upstream(ctx, "latest:"+path, func(ctx context.Context) ([]byte, string, error) {
		data, source, err := s.querier(path).Latest(ctx, path)
		if err == nil {
			_, err = infoVersion(path, "latest", data)
		}
		return data, source, err
	})
	if err == nil {
		s.serveContent(w, r, "latest", shortLived, nil, bytes.NewReader(up))
		return nil
	}
	stored, serr := s.cfg.Meta.Versions(ctx, path)
	if serr != nil {
		return gofer.Errorf(gofer.ErrUnavailable, "upstream: %w; stored versions: %w", err, serr)
	}
	if len(stored) == 0 {
		return err
	}
	e, verr := s.version(ctx, path, gofer.Latest(stored), rules.None, false)
	if verr != nil {
		return err
	}
	s.serveContent(w, r, "latest", shortLived, nil, bytes.NewReader(e.info))
	return nil
}

// infoVersion is the version an upstream's .info (or @latest) for path@query names, which must
// be canonical for path, with a time in RFC 3339 if it has one: nothing else is passed on.
func infoVersion(path, query string, data []byte) (string, error) {
	var info struct {
		Version string
		Time    *time.Time
	}
	if err := json.Unmarshal(data, &info); err != nil {
		return "", gofer.Errorf(gofer.ErrInvalid, "upstream .info for %s@%s does not parse: %w", path, query, err)
	}
	if module.CanonicalVersion(info.Version) != info.Version || module.Check(path, info.Version) != nil {
		return "", gofer.Errorf(gofer.ErrInvalid, "upstream resolved %s@%s to %q, not a canonical version", path, query, info.Version)
	}
	return info.Version, nil
}

// serveQuery answers the .info of a non-canonical version (a branch, a commit prefix): the
// upstream resolves it to a canonical version, which is then fetched and served like any other.
func (s *Server) serveQuery(ctx context.Context, w http.ResponseWriter, r *http.Request, path, query string, act rules.Action) error {
	up, err := s.upstreamInfo(ctx, path, query)
	if err != nil {
		return err
	}
	version, err := infoVersion(path, query, up)
	if err != nil {
		return err
	}
	if act.Mode == rules.Redirect || act.Rule == rules.Passthrough {
		// The upstream's answer is what a redirect would give, and a passthrough module is
		// never stored.
		s.serveContent(w, r, "info", shortLived, nil, bytes.NewReader(up))
		return nil
	}
	e, err := s.version(ctx, path, version, act.Mode, false)
	if err != nil {
		return err
	}
	s.serveContent(w, r, "info", shortLived, nil, bytes.NewReader(e.info))
	return nil
}
