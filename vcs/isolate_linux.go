package vcs

import (
	"fmt"
	"net"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/goferproxy/gofer/egress"
)

// isolated starts a command in a network namespace of its own, whose only reachable address
// is that of an egress proxy for policy listening inside it: start gets the proxy's URL, sets
// it in the command's environment and starts the command. The namespace is made on a thread
// of its own (locked, and left to die with its goroutine: it never serves other goroutines
// again); the command, forked from that thread, starts in it, and the proxy's socket, made
// there, stays the way in. Making the namespace needs CAP_SYS_ADMIN: without it isolated
// returns errNoNamespace and starts nothing.
func isolated(policy *egress.Policy, start func(proxyURL string) error) (*egress.Proxy, error) {
	type result struct {
		proxy *egress.Proxy
		err   error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			done <- result{err: fmt.Errorf("%w: %v", errNoNamespace, err)}
			return
		}
		if err := loopbackUp(); err != nil {
			done <- result{err: fmt.Errorf("vcs: bringing up the loopback of a new network namespace: %v", err)}
			return
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			done <- result{err: err}
			return
		}
		proxy := policy.Serve(l)
		if err := start(proxy.URL); err != nil {
			proxy.Close()
			done <- result{err: err}
			return
		}
		done <- result{proxy: proxy}
	}()
	r := <-done
	return r.proxy, r.err
}

// loopbackUp brings up lo in the calling thread's network namespace, where it starts down.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	ifr.SetUint16(unix.IFF_UP | unix.IFF_LOOPBACK | unix.IFF_RUNNING)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
