package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/goferproxy/gofer"
)

// retryAfter is the Retry-After of a 503, in seconds.
const retryAfter = "10"

// writeError answers err with its one status, chosen here and nowhere else: not found → 404 and
// invalid content → 410 (both let a GOPROXY=a,b client fall through to b), excluded by the
// rules → 403, a malformed API request → 400, one too large → 413, everything else → 503 with Retry-After. The body
// is one line of plain text with the reason, told as gofer.PublicReason tells it.
func writeError(w http.ResponseWriter, err error) {
	status := http.StatusServiceUnavailable
	switch {
	case errors.Is(err, context.Canceled):
		return // the client is gone
	case errors.Is(err, gofer.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, gofer.ErrInvalid):
		status = http.StatusGone
	case errors.Is(err, gofer.ErrExcluded):
		status = http.StatusForbidden
	case errors.Is(err, gofer.ErrBadRequest):
		status = http.StatusBadRequest
	case errors.Is(err, gofer.ErrTooLarge):
		status = http.StatusRequestEntityTooLarge
	default:
		w.Header().Set("Retry-After", retryAfter)
	}
	h := w.Header()
	h.Del("ETag")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write([]byte(gofer.PublicReason(err) + "\n"))
}
