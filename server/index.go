package server

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/rules"
	"github.com/goferproxy/gofer/server/httperr"
	"github.com/goferproxy/gofer/storage"
)

// maxIndexLimit is the default and the largest number of versions one GET /index answers.
const maxIndexLimit = 2000

// index serves GET /index?since=T&limit=N as the public module index does: the versions this
// proxy stored after the RFC 3339 time T (default: from the start), in the order it stored
// them, at most N (default and at most 2000), one JSON object a line, {"Path", "Version",
// "Timestamp"}. A client pages on with since set to the last Timestamp it was given, and has
// read everything when a page is empty. A page holds fewer than N only at the end, or where
// versions stored at one instant (a store that keeps milliseconds) would straddle its end;
// only more than N of one instant are split (IndexPage), and those after the first N missed.
// Versions of excluded modules are left out, and those of private ones unless
// Config.IndexPrivate.
func (s *Server) index(c *gin.Context) {
	w := c.Writer
	limit, err := pageLimit(c, maxIndexLimit, maxIndexLimit)
	if err != nil {
		httperr.Write(w, err)
		return
	}
	var since time.Time
	if q := c.Query("since"); q != "" {
		if since, err = time.Parse(time.RFC3339Nano, q); err != nil {
			httperr.Write(w, gofer.Errorf(gofer.ErrBadRequest, "since must be an RFC 3339 time, such as 2019-04-10T19:08:52.997264Z"))
			return
		}
	}
	ctx := c.Request.Context()
	var list []storage.Stored
	// Pages of the store until limit versions are listed or the store has no more: the
	// versions left out must not make a page look like the last. A store page never ends
	// inside a tie (IndexPage), and neither does the answer: since, the last Timestamp a
	// client read, must not leave a version of that same time unread.
	for {
		page, more, err := storage.IndexPage(ctx, s.cfg.Meta, since, limit)
		if err != nil {
			if ctx.Err() != nil {
				return // the client is gone, or the request's deadline passed
			}
			s.cfg.Log.Info("index failed", zap.Time("since", since), zap.Error(err))
			httperr.Write(w, gofer.Errorf(gofer.ErrUnavailable, "index: %w", err))
			return
		}
		kept := page[:0:0]
		for _, e := range page {
			if rule := s.cfg.Rules.Match(e.Path).Rule; rule != rules.Exclude && (rule != rules.Private || s.cfg.IndexPrivate) {
				kept = append(kept, e)
			}
		}
		if room := limit - len(list); len(kept) > room {
			end := room
			for end > 0 && kept[end-1].Timestamp.Equal(kept[end].Timestamp) {
				end--
			}
			list = append(list, kept[:end]...)
			break
		}
		list = append(list, kept...)
		if !more || len(list) == limit {
			break
		}
		since = page[len(page)-1].Timestamp
	}
	var body []byte
	for _, e := range list {
		line, err := json.Marshal(e)
		if err != nil {
			httperr.Write(w, err)
			return
		}
		body = append(append(body, line...), '\n')
	}
	c.Header("Cache-Control", "no-store")
	c.Data(http.StatusOK, "application/json", body)
}
