package server

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/activities"
	"github.com/goferproxy/gofer/rules"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/workflows"
)

// serveFile answers .info, .mod or .zip of a canonical version; a miss is handled as the
// download mode says.
func (s *Server) serveFile(ctx context.Context, w http.ResponseWriter, r *http.Request, req request, mode string) error {
	e, err := s.version(ctx, req.key, mode, req.kind == "zip")
	// A private module is never sent to the upstream proxies, even so.
	if err != nil && s.cfg.PassthroughWithoutTemporal && errors.As(err, new(*noFetchError)) && s.cfg.Rules.Match(req.path).Rule != rules.Private {
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
		s.serveHeld(w, r, "info", immutable, e.info)
	case "mod":
		s.serveHeld(w, r, "mod", immutable, e.mod)
	case "zip":
		presigner := s.presigner(r)
		if e.rec.Zip.Size <= maxHeldZip && presigner == nil {
			zip, err := s.heldZip(ctx, e)
			if err != nil {
				return err
			}
			s.serveHeld(w, r, "zip", immutable, zip)
			return nil
		}
		key, err := storage.Key(req.path, req.version, "zip")
		if err != nil {
			return err
		}
		if presigner != nil {
			url, err := presigner.PresignGet(ctx, key, s.cfg.ZipRedirect)
			if err != nil {
				return gofer.Errorf(gofer.ErrUnavailable, "presigning the zip of %s@%s: %w", req.path, req.version, err)
			}
			w.Header().Set("Cache-Control", "no-store") // the URL expires; the zip does not
			http.Redirect(w, r, url, http.StatusFound)
			return nil
		}
		zip, _, err := s.cfg.Blobs.Open(ctx, key)
		if err != nil {
			return gofer.Errorf(gofer.ErrUnavailable, "stored zip of %s@%s: %w", req.path, req.version, err)
		}
		defer zip.Close()
		s.serveContent(w, r, "zip", immutable, e.zipETag, zip)
	}
	return nil
}

// presigner is the blob store when r, a request for a zip, is answered with a redirect to a
// URL it presigns, else nil. A URL presigned for GET does not sign a HEAD: HEAD is answered here.
func (s *Server) presigner(r *http.Request) Presigner {
	if p, ok := s.cfg.Blobs.(Presigner); ok && s.cfg.ZipRedirect > 0 && r.Method == http.MethodGet {
		return p
	}
	return nil
}

// version returns the stored version of key (versionKey's path@version), with its zip if zip
// is set, from memory when it is hot. When it is not stored (or its zip is wanted and not
// stored: a version's .info and .mod are fetched alone, without the zip, for a client that
// asks for either), the download mode decides: sync fetches what is missing through its
// workflows and waits, async starts those fetches and answers not found at once, none and
// redirect answer not found.
func (s *Server) version(ctx context.Context, key, mode string, zip bool) (*entry, error) {
	hot, ok := s.versions.get(key)
	if ok && (!zip || hot.rec.HasZip()) {
		return hot, nil
	}
	e, err := s.stored(ctx, key, hot)
	if err == nil && (!zip || e.rec.HasZip()) || err != nil && !errors.Is(err, gofer.ErrNotFound) {
		return e, err
	}
	info(ctx).cache = cacheMiss
	path, version, _ := strings.Cut(key, "@")
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
