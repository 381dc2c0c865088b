package sumdb

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/server/httperr"
)

const (
	// latestTTL is how long an answer to /latest is reused: the tree head changes all the
	// time, but a minute-old one is as valid, only shorter.
	latestTTL = time.Minute

	textPlain = "text/plain; charset=utf-8"
	binary    = "application/octet-stream"
	immutable = "public, max-age=31536000, immutable"
)

// ServeHTTP serves the checksum database proxy protocol for the configured database, at the
// paths the go command asks once GOPROXY's /sumdb/<name>/supported answers 200; mount it at
// "/sumdb/" without stripping the prefix:
//
//   - /sumdb/<name>/supported: 200.
//   - /sumdb/<name>/latest: the database's signed tree head, reused for a minute; the last
//     good one (else the newest gofer has verified) when the database fails.
//   - /sumdb/<name>/lookup/<module>@<version>: served from the lookups gofer has authenticated,
//     else looked up (and authenticated, and stored) through gofer's own client. A private
//     module (NoSumDB) is answered 404 and the database never hears of it.
//   - /sumdb/<name>/tile/...: hash tiles from the store; a missing one is fetched, served,
//     and stored if it authenticates against the newest tree gofer has verified. Data tiles
//     are passed through.
//
// Any other name or path is 404; a database that fails with nothing stored to answer from is
// 503 with Retry-After: errors are answered as httperr answers every error of gofer's. The go
// command checks everything it receives itself; what gofer stores, it has checked first.
func (c *Checker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		httperr.Text(w, http.StatusMethodNotAllowed, "method not allowed\n")
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/sumdb/")
	if !ok || c.DB == nil {
		httperr.Write(w, notFound("no checksum database is served here"))
		return
	}
	sub, ok := strings.CutPrefix(rest, c.DB.Name+"/")
	if !ok {
		httperr.Write(w, notFound("only the checksum database %s is served here", c.DB.Name))
		return
	}
	c.init()
	ctx := r.Context()
	switch {
	case sub == "supported":
		writeBody(w, textPlain, "", nil)
	case sub == "latest":
		c.serveLatest(ctx, w)
	case strings.HasPrefix(sub, "lookup/"):
		c.serveLookup(ctx, w, strings.TrimPrefix(sub, "lookup/"))
	case strings.HasPrefix(sub, "tile/"):
		c.serveTile(ctx, w, sub)
	default:
		httperr.Write(w, notFound("%s", r.URL.Path))
	}
}

func (c *Checker) serveLatest(ctx context.Context, w http.ResponseWriter) {
	c.latestMu.Lock()
	last, at := c.latestMsg, c.latestTime
	c.latestMu.Unlock()
	if last != nil && c.now().Sub(at) < latestTTL {
		writeBody(w, textPlain, "no-cache", last)
		return
	}
	data, err := c.get(ctx, "/latest")
	if err == nil {
		// Only a head signed by the database's key is worth keeping (an error page with a 200
		// is not).
		if _, terr := c.openTree(data); terr != nil {
			err = gofer.Errorf(gofer.ErrUnavailable, "checksum database %s: /latest: %w", c.DB.Name, terr)
		}
	}
	if err == nil {
		c.latestMu.Lock()
		c.latestMsg, c.latestTime = data, c.now()
		c.latestMu.Unlock()
		writeBody(w, textPlain, "no-cache", data)
		return
	}
	c.log().Warn("sumdb: /latest", zap.Error(err))
	if last == nil {
		// After a restart: the newest head gofer verified is older, but signed and valid.
		if _, ok := c.knownTree(ctx); ok {
			last = c.headMsg()
		}
	}
	if last != nil {
		writeBody(w, textPlain, "no-cache", last)
		return
	}
	httperr.Write(w, gofer.Errorf(gofer.ErrUnavailable, "%w", err))
}

func (c *Checker) serveLookup(ctx context.Context, w http.ResponseWriter, mod string) {
	escPath, escVers, _ := strings.Cut(mod, "@")
	path, perr := module.UnescapePath(escPath)
	vers, verr := module.UnescapeVersion(escVers)
	// Only the canonical spelling, so that one version has one blob.
	if perr != nil || verr != nil || checkVersion(path, vers) != nil || lookupPath(path, vers) != "/lookup/"+mod {
		httperr.Write(w, notFound("invalid module@version %s", mod))
		return
	}
	if c.private(path) {
		httperr.Write(w, notFound("%s is private (GONOSUMDB): the checksum database is not asked", path))
		return
	}
	key := protoKey(c.DB.Name, "/lookup/"+mod)
	if data, err := readBlob(ctx, c.blobs(), key); err == nil {
		writeBody(w, textPlain, "", data)
		return
	}
	// Through the client, which authenticates the answer and stores it under key.
	if _, err := c.Lines(ctx, path, vers); err != nil {
		httperr.Write(w, err)
		return
	}
	data, err := readBlob(ctx, c.blobs(), key)
	if err != nil {
		httperr.Write(w, gofer.Errorf(gofer.ErrUnavailable, "checksum database %s: lookup of %s@%s verified but not stored: %w", c.DB.Name, path, vers, err))
		return
	}
	writeBody(w, textPlain, "", data)
}

func (c *Checker) serveTile(ctx context.Context, w http.ResponseWriter, sub string) {
	t, err := tlog.ParseTilePath(sub)
	if err != nil || t.Path() != sub {
		httperr.Write(w, notFound("invalid tile %s", sub))
		return
	}
	if t.L < 0 {
		// A data tile: neither gofer nor the go command needs one to verify anything, so it
		// is passed through, and never stored unchecked.
		data, err := c.get(ctx, "/"+sub)
		if err != nil {
			httperr.Write(w, err)
			return
		}
		writeBody(w, binary, "", data)
		return
	}
	if data, ok := c.cachedTile(ctx, t); ok {
		writeBody(w, binary, immutable, data)
		return
	}
	data, err := c.get(ctx, "/"+sub)
	if err != nil {
		httperr.Write(w, err)
		return
	}
	if len(data) != t.W*tlog.HashSize {
		httperr.Write(w, tileErr(c.DB.Name, t, len(data)))
		return
	}
	if !c.authenticTile(ctx, t, data) {
		writeBody(w, binary, "no-cache", data)
		return
	}
	if err := putBlob(ctx, c.blobs(), protoKey(c.DB.Name, "/"+sub), data); err != nil {
		c.log().Warn("sumdb: caching tile", zap.String("tile", sub), zap.Error(err))
	}
	writeBody(w, binary, immutable, data)
}

func writeBody(w http.ResponseWriter, ctype, cacheControl string, data []byte) {
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Content-Length", fmt.Sprint(len(data)))
	if cacheControl != "" {
		h.Set("Cache-Control", cacheControl)
	}
	w.WriteHeader(http.StatusOK)
	w.Write(data)
}

// notFound is the error of a request for something that is not served here.
func notFound(format string, args ...any) error {
	return gofer.Errorf(gofer.ErrNotFound, "not found: "+format, args...)
}
