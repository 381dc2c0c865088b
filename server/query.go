package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/rules"
	"github.com/goferproxy/gofer/upstream"
)

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
		s.serveHeld(w, r, "latest", shortLived, held{data: up})
		return nil
	}
	stored, serr := s.cfg.Meta.Versions(ctx, path)
	if serr != nil {
		return gofer.Errorf(gofer.ErrUnavailable, "upstream: %w; stored versions: %w", err, serr)
	}
	if len(stored) == 0 {
		return err
	}
	e, verr := s.version(ctx, versionKey(path, gofer.Latest(stored)), rules.None, false)
	if verr != nil {
		return err
	}
	s.serveHeld(w, r, "latest", shortLived, e.info.mutable())
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
		s.serveHeld(w, r, "info", shortLived, held{data: up})
		return nil
	}
	e, err := s.version(ctx, versionKey(path, version), act.Mode, false)
	if err != nil {
		return err
	}
	s.serveHeld(w, r, "info", shortLived, e.info.mutable())
	return nil
}
