package activities

import (
	"context"
	"errors"

	"go.temporal.io/sdk/temporal"

	"github.com/goferproxy/gofer"
)

// errorTypes are the Temporal error types of a failed fetch by its kind; only Unavailable
// and ErrAnswered are retried. They are in recorded histories: they never change.
var errorTypes = gofer.Names{NotFound: "NotFound", Invalid: "Invalid", Unavailable: "Unavailable"}

const (
	// ErrAnswered is the Temporal error type of a Download that was unavailable after an
	// upstream had answered for the version: it exists, and retrying for long is worth it.
	ErrAnswered = "UnavailableAnswered"
)

// ErrNotLocal is the Temporal error type of a FetchMod or FetchZip run as a local activity
// whose files are too slow (or, for a zip, too big) for one: final for that local activity,
// whose workflow fetches them another way, with an activity whose retries and heartbeats the
// workflow's history does not show (FetchMod as a regular activity; a zip through staging).
const ErrNotLocal = "NotLocal"

// notLocal marks the error of a local activity whose files are to be fetched another way.
type notLocal struct{ error }

func (e notLocal) Unwrap() error { return e.error }

// NotLocal reports whether err, the error of a local FetchMod or FetchZip, says that its
// files are to be fetched another way.
func NotLocal(err error) bool {
	var app *temporal.ApplicationError
	return errors.As(err, &app) && app.Type() == ErrNotLocal
}

// answered marks an unavailable error of a download that an upstream answered for.
type answered struct{ error }

func (e answered) Unwrap() error { return e.error }

// Answered reports whether err, the error of a Download, says that an upstream answered for
// the version (a file of it arrived) before something else failed: the version exists, and
// retrying for long is worth it.
func Answered(err error) bool {
	var app *temporal.ApplicationError
	return errors.As(err, &app) && app.Type() == ErrAnswered
}

// encode turns a gofer error into the Temporal error an activity returns: not found and
// invalid are final, everything else is retried.
func encode(err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	if t := errorTypes.Of(err); t != errorTypes.Unavailable {
		return temporal.NewNonRetryableApplicationError(err.Error(), t, nil)
	}
	if errors.As(err, new(notLocal)) {
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrNotLocal, nil)
	}
	if errors.As(err, new(answered)) {
		return temporal.NewApplicationError(err.Error(), ErrAnswered)
	}
	return temporal.NewApplicationError(err.Error(), errorTypes.Unavailable)
}

// Decode turns the error of a fetch workflow (or of one of its activities) back into a gofer
// error of the same kind, with the activity's one-line reason as its message.
func Decode(err error) error {
	var app *temporal.ApplicationError
	if !errors.As(err, &app) {
		if err == nil {
			return nil
		}
		return gofer.Errorf(gofer.ErrUnavailable, "fetch failed: %w", err)
	}
	return gofer.Errorf(errorTypes.Kind(app.Type()), "%s", app.Message())
}
