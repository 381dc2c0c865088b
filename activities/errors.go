package activities

import (
	"context"
	"errors"

	"go.temporal.io/sdk/temporal"

	"github.com/goferproxy/gofer"
)

// Temporal error types of a failed fetch; only errUnavailable is retried.
const (
	errNotFound    = "NotFound"
	errInvalid     = "Invalid"
	errUnavailable = "Unavailable"
)

// encode turns a gofer error into the Temporal error an activity returns: not found and
// invalid are final, everything else is retried.
func encode(err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	if t := errorType(err); t != errUnavailable {
		return temporal.NewNonRetryableApplicationError(err.Error(), t, nil)
	}
	return temporal.NewApplicationError(err.Error(), errUnavailable)
}

// errorType is the Temporal error type of a gofer error's kind.
func errorType(err error) string {
	switch gofer.Kind(err) {
	case gofer.ErrNotFound:
		return errNotFound
	case gofer.ErrInvalid:
		return errInvalid
	}
	return errUnavailable
}

// Decode turns the error of a fetch workflow (or of one of its activities) back into a gofer
// error of the same kind, with the activity's one-line reason as its message.
func Decode(err error) error {
	var app *temporal.ApplicationError
	if !errors.As(err, &app) {
		if err == nil {
			return nil
		}
		return gofer.Errorf(gofer.ErrUnavailable, "fetch failed: %v", err)
	}
	switch app.Type() {
	case errNotFound:
		return gofer.Errorf(gofer.ErrNotFound, "%s", app.Message())
	case errInvalid:
		return gofer.Errorf(gofer.ErrInvalid, "%s", app.Message())
	}
	return gofer.Errorf(gofer.ErrUnavailable, "%s", app.Message())
}
