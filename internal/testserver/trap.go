package testserver

import (
	"errors"
	"fmt"
	"net"
	"sync"
)

// Trap listens on addresses that nothing should ever connect to, and records every connection
// it gets (closing it at once): the targets of a test that gofer makes no connection it should not.
type Trap struct {
	ls []net.Listener

	mu   sync.Mutex
	seen []string // "local <- remote", in order
}

// Listen starts a Trap on each of addrs (host:port). Ports below 1024 need root; a busy port
// is an error, as a test that could not listen could not see anything either.
func Listen(addrs ...string) (*Trap, error) {
	t := &Trap{}
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("trap on %s (ports below 1024 need root; Linux routes all of 127.0.0.0/8 to lo): %w", a, err)
		}
		t.ls = append(t.ls, l)
		go t.accept(l)
	}
	return t, nil
}

func (t *Trap) accept(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		t.mu.Lock()
		t.seen = append(t.seen, c.LocalAddr().String()+" <- "+c.RemoteAddr().String())
		t.mu.Unlock()
		c.Close()
	}
}

// Addrs returns the addresses the Trap listens on, in the order given.
func (t *Trap) Addrs() []string {
	var out []string
	for _, l := range t.ls {
		out = append(out, l.Addr().String())
	}
	return out
}

// Seen returns the connections the Trap got.
func (t *Trap) Seen() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.seen...)
}

// Close stops listening.
func (t *Trap) Close() error {
	var errs []error
	for _, l := range t.ls {
		errs = append(errs, l.Close())
	}
	return errors.Join(errs...)
}
