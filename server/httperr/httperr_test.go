package httperr_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/server/httperr"
)

func TestWrite(t *testing.T) {
	for i, c := range []struct {
		err        error
		status     int
		retryAfter string
	}{
		0: {gofer.Errorf(gofer.ErrNotFound, "m@v1.0.0: unknown revision"), 404, ""},
		1: {gofer.Errorf(gofer.ErrInvalid, "m@v1.0.0: checksum mismatch"), 410, ""},
		2: {gofer.Errorf(gofer.ErrExcluded, "m is excluded"), 403, ""},
		3: {gofer.Errorf(gofer.ErrBadRequest, "bad body"), 400, ""},
		4: {gofer.Errorf(gofer.ErrTooLarge, "too many versions"), 413, ""},
		5: {gofer.Errorf(gofer.ErrUnavailable, "dial tcp 10.0.0.9:443: refused"), 503, httperr.RetryAfter},
		6: {fmt.Errorf("unclassified"), 503, httperr.RetryAfter},
	} {
		w := httptest.NewRecorder()
		w.Header().Set("ETag", `"abc"`)
		httperr.Write(w, c.err)
		h := w.Result().Header
		if w.Code != c.status || h.Get("Retry-After") != c.retryAfter || h.Get("ETag") != "" ||
			h.Get("Content-Type") != "text/plain; charset=utf-8" || h.Get("Cache-Control") != "no-store" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%d: Write(%v): %d %v", i, c.err, w.Code, h)
		}
		if want := gofer.PublicReason(c.err) + "\n"; w.Body.String() != want {
			t.Errorf("%d: body %q, want %q", i, w.Body, want)
		}
	}
}

// A client that has gone is not answered.
func TestWriteCanceled(t *testing.T) {
	w := httptest.NewRecorder()
	httperr.Write(w, fmt.Errorf("waiting: %w", context.Canceled))
	if w.Body.Len() != 0 || w.Header().Get("Content-Type") != "" {
		t.Errorf("wrote %d %q to a client that has gone", w.Code, w.Body)
	}
}
