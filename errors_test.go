package gofer_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/goferproxy/gofer"
)

// An error body tells the client the reason, not gofer's network.
func TestPublicReason(t *testing.T) {
	for i, c := range []struct{ in, want string }{
		0: {"GET https://proxy.example/m/@v/v1.0.0.info: read tcp 10.0.0.5:34400->10.0.0.9:443: read: connection reset by peer",
			"GET https://proxy.example/m/@v/v1.0.0.info: read tcp (connection): read: connection reset by peer"},
		1: {"dial tcp: lookup git.corp on 10.255.255.53:53: no such host", "dial tcp: lookup git.corp: no such host"},
		2: {"dial tcp 169.254.169.254:80: connect: connection refused", "dial tcp (address): connect: connection refused"},
		3: {"dial tcp [fd00:ec2::254]:80: i/o timeout", "dial tcp (address): i/o timeout"},
		4: {"connecting to fd00:ec2::254 failed", "connecting to (address) failed"},
		5: {"GET https://bob:secret@athens.corp/m/@v/list: 503", "GET https://athens.corp/m/@v/list: 503"},
		6: {"example.com/m@v1.2.3: unknown revision v1.2.3\nsecond line", "example.com/m@v1.2.3: unknown revision v1.2.3 second line"},
		7: {"time 2026-12-02T17:23:54Z is not canonical h1:abc=", "time 2026-12-02T17:23:54Z is not canonical h1:abc="},
	} {
		if got := gofer.PublicReason(errors.New(c.in)); got != c.want {
			t.Errorf("%d: gofer.PublicReason(%q)\n = %q\nwant %q", i, c.in, got, c.want)
		}
	}
}

// An error made by Errorf is of its kind alone, and keeps its cause for errors.Is and As.
func TestErrorfKeepsCauseNotItsKind(t *testing.T) {
	opErr := &net.OpError{Op: "dial", Net: "tcp", Err: io.ErrUnexpectedEOF}
	notFound := gofer.Errorf(gofer.ErrNotFound, "blob m/@v/v1.0.0.zip: %w", opErr)
	err := gofer.Errorf(gofer.ErrUnavailable, "zip of m@v1.0.0 named by its record: %w", notFound)
	if got := gofer.Kind(err); got != gofer.ErrUnavailable {
		t.Errorf("Kind = %v, want unavailable: the outer kind replaces the cause's", got)
	}
	for _, kind := range []error{gofer.ErrNotFound, gofer.ErrInvalid, gofer.ErrExists} {
		if errors.Is(err, kind) {
			t.Errorf("errors.Is(err, %v): a cause's kind shows through", kind)
		}
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Error("the cause's cause is lost to errors.Is")
	}
	var got *net.OpError
	if !errors.As(err, &got) || got != opErr {
		t.Error("the cause is lost to errors.As")
	}
	if !errors.Is(gofer.Errorf(gofer.ErrUnavailable, "storage: %w", context.DeadlineExceeded), context.DeadlineExceeded) {
		t.Error("a deadline is lost to errors.Is")
	}
	// A cancellation given a kind is a failure of that kind: not answered as a client gone.
	if errors.Is(gofer.Errorf(gofer.ErrUnavailable, "storage: %w", context.Canceled), context.Canceled) {
		t.Error("a classified cancellation is still context.Canceled")
	}
	if want := "zip of m@v1.0.0 named by its record: blob m/@v/v1.0.0.zip: dial tcp: unexpected EOF"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err, want)
	}
}

func TestNames(t *testing.T) {
	names := gofer.Names{NotFound: "nf", Invalid: "inv", Unavailable: "down"}
	for i, c := range []struct {
		err  error
		name string
	}{
		0: {gofer.Errorf(gofer.ErrNotFound, "x"), "nf"},
		1: {gofer.Errorf(gofer.ErrInvalid, "x"), "inv"},
		2: {gofer.Errorf(gofer.ErrUnavailable, "x"), "down"},
		3: {errors.New("unclassified"), "down"},
	} {
		if got := names.Of(c.err); got != c.name {
			t.Errorf("%d: Of(%v) = %q, want %q", i, c.err, got, c.name)
		}
		if got, want := names.Kind(c.name), gofer.Kind(c.err); got != want {
			t.Errorf("%d: Kind(%q) = %v, want %v", i, c.name, got, want)
		}
	}
	if got := names.Kind("other"); got != gofer.ErrUnavailable {
		t.Errorf("Kind(other) = %v, want unavailable", got)
	}
}
