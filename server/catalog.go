package server

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"
	"golang.org/x/mod/module"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/server/httperr"
)

// The bounds of a catalog page.
const (
	defaultCatalogLimit = 1000
	maxCatalogLimit     = 10000
)

// catalogPage is the JSON answer of GET /catalog.
type catalogPage struct {
	Modules []catalogEntry `json:"modules"`
	// Next is the token of the following page, empty on the last one.
	Next string `json:"next,omitempty"`
}

type catalogEntry struct {
	Module  string `json:"module"`
	Version string `json:"version"`
}

// catalog serves GET /catalog?limit=N&token=T: up to limit stored versions (default 1000, at
// most 10000) ordered by path, then version, starting after the version that token names.
// A full page carries the token of the next one; a page that is not full is the last. The
// token is path@version in unpadded base64url: opaque to clients, but stateless, so that a
// listing can go on across replicas and restarts.
func (s *Server) catalog(c *gin.Context) {
	w := c.Writer
	limit, err := pageLimit(c, defaultCatalogLimit, maxCatalogLimit)
	if err != nil {
		httperr.Write(w, err)
		return
	}
	var after module.Version
	if token := c.Query("token"); token != "" {
		var ok bool
		if after, ok = parseCatalogToken(token); !ok {
			httperr.Write(w, gofer.Errorf(gofer.ErrBadRequest, "token is not one this server handed out"))
			return
		}
	}
	ctx := c.Request.Context()
	list, err := s.cfg.Meta.Catalog(ctx, after, limit)
	if err != nil {
		if ctx.Err() != nil {
			return // the client is gone
		}
		s.cfg.Log.Info("catalog failed", zap.String("after", after.String()), zap.Error(err))
		httperr.Write(w, gofer.Errorf(gofer.ErrUnavailable, "catalog: %w", err))
		return
	}
	page := catalogPage{Modules: make([]catalogEntry, len(list))}
	for i, v := range list {
		page.Modules[i] = catalogEntry{Module: v.Path, Version: v.Version}
	}
	if len(list) == limit {
		last := list[len(list)-1]
		page.Next = base64.RawURLEncoding.EncodeToString([]byte(last.Path + "@" + last.Version))
	}
	body, err := json.Marshal(page)
	if err != nil {
		httperr.Write(w, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Data(http.StatusOK, "application/json", body)
}

// pageLimit checks the query of a listing (GET /catalog, /index) and returns its limit: def
// when it has none, else an integer from 1 to most.
func pageLimit(c *gin.Context, def, most int) (int, error) {
	if _, err := url.ParseQuery(c.Request.URL.RawQuery); err != nil {
		return 0, gofer.Errorf(gofer.ErrBadRequest, "malformed query: %w", err)
	}
	q := c.Query("limit")
	if q == "" {
		return def, nil
	}
	n, err := strconv.Atoi(q)
	if err != nil || n < 1 || n > most {
		return 0, gofer.Errorf(gofer.ErrBadRequest, "limit must be an integer from 1 to %d", most)
	}
	return n, nil
}

// parseCatalogToken returns the version a page token names, and false for a token that does
// not name a valid one.
func parseCatalogToken(token string) (module.Version, bool) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return module.Version{}, false
	}
	path, version, _ := strings.Cut(string(b), "@")
	if module.Check(path, version) != nil {
		return module.Version{}, false
	}
	return module.Version{Path: path, Version: version}, true
}
