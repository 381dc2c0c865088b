// Package kindtest names the kind of an error for tests. Unlike gofer.Kind, it tells an error
// that nobody classified from an unavailable one, so that a test that wants "unavailable"
// fails on an error that is only counted as unavailable. It is for tests only.
package kindtest

import (
	"errors"

	"github.com/goferproxy/gofer"
)

// Name is "nil", "not found", "invalid", "unavailable" or "unclassified".
func Name(err error) string {
	switch {
	case err == nil:
		return "nil"
	case errors.Is(err, gofer.ErrNotFound):
		return "not found"
	case errors.Is(err, gofer.ErrInvalid):
		return "invalid"
	case errors.Is(err, gofer.ErrUnavailable):
		return "unavailable"
	}
	return "unclassified"
}
