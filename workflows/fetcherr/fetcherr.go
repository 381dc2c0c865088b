// Package fetcherr is the codec between gofer's error kinds and the Temporal application errors
// that carry them through workflow histories: an activity returns its failure through Encode
// (or Final), and a workflow, or whoever waits for one, reads it back with Decode, and with
// NotLocal and Answered the two marks that a fetch workflow acts on. Its error type strings
// ("NotFound", "Invalid", "Unavailable", "UnavailableAnswered", "NotLocal") are in recorded
// histories and never change. It only translates: which kind an error is, gofer.Kind decides,
// and what is done about it, the workflows do; it never depends on activities, workflows or
// stores.
package fetcherr

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

// MarkNotLocal marks err, the unavailable error of a local FetchMod or FetchZip, as saying that
// its files are to be fetched another way: Encode gives it the type ErrNotLocal.
func MarkNotLocal(err error) error { return notLocal{err} }

// NotLocal reports whether err, the error of a local FetchMod or FetchZip, says that its
// files are to be fetched another way.
func NotLocal(err error) bool {
	var app *temporal.ApplicationError
	return errors.As(err, &app) && app.Type() == ErrNotLocal
}

// answered marks an unavailable error of a download that an upstream answered for.
type answered struct{ error }

func (e answered) Unwrap() error { return e.error }

// MarkAnswered marks err, the unavailable error of a download, as one that an upstream answered
// for: Encode gives it the type ErrAnswered.
func MarkAnswered(err error) error { return answered{err} }

// Answered reports whether err, the error of a Download, says that an upstream answered for
// the version (a file of it arrived) before something else failed: the version exists, and
// retrying for long is worth it.
func Answered(err error) bool {
	var app *temporal.ApplicationError
	return errors.As(err, &app) && app.Type() == ErrAnswered
}

// Encode turns a gofer error into the Temporal error an activity returns: not found and
// invalid are final, everything else is retried.
func Encode(err error) error {
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

// Final turns a gofer error into a Temporal error of its kind's type that is never retried,
// whatever its kind: the error of an activity that waited for a fetch that has ended, whose
// outcome waiting again would only see again.
func Final(err error) error {
	return temporal.NewNonRetryableApplicationError(err.Error(), errorTypes.Of(err), nil)
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
