package gofer_test

import (
	"errors"
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
