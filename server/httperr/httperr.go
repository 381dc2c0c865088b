// Package httperr answers an HTTP request that failed: it is the one map from gofer's error
// kinds to HTTP statuses, and the one writer of gofer's plain-text status answers (errors, 405s,
// 401 challenges, readiness), for the module proxy, the checksum-database proxy and gofer's own
// API alike. It never decides what kind an
// error is (its maker did, with gofer.Errorf) and never tells a client more than
// gofer.PublicReason does.
package httperr

import (
	"context"
	"errors"
	"net/http"

	"github.com/goferproxy/gofer"
)

// RetryAfter is the Retry-After of every 503, in seconds.
const RetryAfter = "10"

// Status is err's one HTTP status: not found → 404 and invalid content → 410 (both are "does
// not exist" to the go command, and let a GOPROXY=a,b client fall through to b), excluded by
// the rules → 403, a malformed request to gofer's API → 400, one too large → 413, and
// everything else, which may heal, → 503.
func Status(err error) int {
	switch {
	case errors.Is(err, gofer.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, gofer.ErrInvalid):
		return http.StatusGone
	case errors.Is(err, gofer.ErrExcluded):
		return http.StatusForbidden
	case errors.Is(err, gofer.ErrBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, gofer.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusServiceUnavailable
}

// Write answers err with its Status and its reason, as gofer.PublicReason tells it, on one
// line; it writes nothing for a client that has gone (context.Canceled).
func Write(w http.ResponseWriter, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	Text(w, Status(err), gofer.PublicReason(err)+"\n")
}

// Text answers status with body as plain text that no client caches or sniffs; a 503 says
// when to retry. The body is written as it is: it must say nothing a client may not know.
func Text(w http.ResponseWriter, status int, body string) {
	h := w.Header()
	h.Del("ETag")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if status == http.StatusServiceUnavailable {
		h.Set("Retry-After", RetryAfter)
	}
	w.WriteHeader(status)
	w.Write([]byte(body))
}
