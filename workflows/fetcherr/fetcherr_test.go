package fetcherr_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.temporal.io/sdk/temporal"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/internal/kindtest"
	"github.com/goferproxy/gofer/workflows/fetcherr"
)

// Every kind and mark is encoded as the type recorded histories hold, retried only when it is
// unavailable (answered or not), and decoded back to its kind with its reason.
func TestEncodeDecode(t *testing.T) {
	unavailable := gofer.Errorf(gofer.ErrUnavailable, "503 from the upstream")
	for i, c := range []struct {
		err       error
		wantType  string
		wantRetry bool
		wantKind  string
	}{
		0: {gofer.Errorf(gofer.ErrNotFound, "no such version"), "NotFound", false, "not found"},
		1: {gofer.Errorf(gofer.ErrInvalid, "bad zip"), "Invalid", false, "invalid"},
		2: {unavailable, "Unavailable", true, "unavailable"},
		3: {errors.New("nobody classified this"), "Unavailable", true, "unavailable"},
		4: {fetcherr.MarkAnswered(unavailable), "UnavailableAnswered", true, "unavailable"},
		5: {fetcherr.MarkNotLocal(unavailable), "NotLocal", false, "unavailable"},
		// A kind other than unavailable wins over a mark.
		6: {fetcherr.MarkAnswered(gofer.Errorf(gofer.ErrInvalid, "bad .mod")), "Invalid", false, "invalid"},
	} {
		enc := fetcherr.Encode(c.err)
		var app *temporal.ApplicationError
		if !errors.As(enc, &app) {
			t.Fatalf("%d: %v: not an application error", i, enc)
		}
		if app.Type() != c.wantType || app.NonRetryable() == c.wantRetry || app.Message() != c.err.Error() {
			t.Errorf("%d: %v: type %s retryable %v message %q, want %s %v %q", i, c.err, app.Type(), !app.NonRetryable(), app.Message(), c.wantType, c.wantRetry, c.err.Error())
		}
		if got := fetcherr.Answered(enc); got != (c.wantType == fetcherr.ErrAnswered) {
			t.Errorf("%d: Answered = %v", i, got)
		}
		if got := fetcherr.NotLocal(enc); got != (c.wantType == fetcherr.ErrNotLocal) {
			t.Errorf("%d: NotLocal = %v", i, got)
		}
		// What a workflow sees is the activity's error, wrapped.
		dec := fetcherr.Decode(fmt.Errorf("activity error: %w", enc))
		if kindtest.Name(dec) != c.wantKind || dec.Error() != c.err.Error() {
			t.Errorf("%d: decoded %q (%s), want %q (%s)", i, dec, kindtest.Name(dec), c.err, c.wantKind)
		}
	}
}

func TestEncodeLeavesNilAndCancellation(t *testing.T) {
	if err := fetcherr.Encode(nil); err != nil {
		t.Errorf("Encode(nil) = %v", err)
	}
	cancelled := fmt.Errorf("download: %w", context.Canceled)
	if err := fetcherr.Encode(cancelled); err != cancelled {
		t.Errorf("Encode(%v) = %v, want it as it is", cancelled, err)
	}
	// A cancellation given a kind (a storage call cut off) is that kind's failure, and its
	// mark still counts: a Download that an upstream answered is still UnavailableAnswered.
	classified := fetcherr.MarkAnswered(gofer.Errorf(gofer.ErrUnavailable, "storage: %w", context.Canceled))
	var app *temporal.ApplicationError
	if err := fetcherr.Encode(classified); !errors.As(err, &app) || app.Type() != fetcherr.ErrAnswered {
		t.Errorf("Encode(%v) = %#v, want an application error of type %s", classified, err, fetcherr.ErrAnswered)
	}
}

func TestDecodeWithoutApplicationError(t *testing.T) {
	if err := fetcherr.Decode(nil); err != nil {
		t.Errorf("Decode(nil) = %v", err)
	}
	err := fetcherr.Decode(errors.New("connection refused"))
	if kindtest.Name(err) != "unavailable" || err.Error() != "fetch failed: connection refused" {
		t.Errorf("Decode of a plain error = %q (%s), want an unavailable fetch failure", err, kindtest.Name(err))
	}
}

// Final keeps the kind's type, and is never retried, an unavailable error included.
func TestFinal(t *testing.T) {
	for i, c := range []struct {
		err      error
		wantType string
	}{
		0: {gofer.Errorf(gofer.ErrNotFound, "gone"), "NotFound"},
		1: {gofer.Errorf(gofer.ErrInvalid, "bad"), "Invalid"},
		2: {gofer.Errorf(gofer.ErrUnavailable, "out of retries"), "Unavailable"},
	} {
		var app *temporal.ApplicationError
		if err := fetcherr.Final(c.err); !errors.As(err, &app) || app.Type() != c.wantType || !app.NonRetryable() || app.Message() != c.err.Error() {
			t.Errorf("%d: Final(%v) = %v, want a final %s", i, c.err, err, c.wantType)
		}
	}
}
