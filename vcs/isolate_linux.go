package vcs

import (
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/goferproxy/gofer/egress"
)

// isolated starts a command in a network namespace of its own, whose only reachable address
// is that of an egress proxy for policy listening inside it: start gets the proxy's URL, sets
// it in the command's environment and starts the command. The calling goroutine's thread is
// moved into a new namespace, and back once the command is started: the command, forked from
// that thread, starts in the new one, and the proxy's socket, made there, stays the way in.
// (The thread is not left to die instead: a child another goroutine once started from it
// with Pdeathsig would be killed with it.) Making the namespace needs CAP_SYS_ADMIN: without
// it isolated returns errNoNamespace and starts nothing.
func isolated(policy *egress.Policy, start func(proxyURL string) error) (*egress.Proxy, error) {
	runtime.LockOSThread()
	home, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("%w: %v", errNoNamespace, err)
	}
	defer home.Close()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("%w: %v", errNoNamespace, err)
	}
	proxy, err := inNamespace(policy, start)
	if err := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); err == nil {
		runtime.UnlockOSThread()
	} // else the thread stays locked, and ends with this goroutine: it is in the wrong namespace
	return proxy, err
}

// inNamespace starts the proxy and the command in the calling thread's new namespace.
func inNamespace(policy *egress.Policy, start func(proxyURL string) error) (*egress.Proxy, error) {
	if err := loopbackUp(); err != nil {
		return nil, fmt.Errorf("vcs: bringing up the loopback of a new network namespace: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	proxy := policy.Serve(l)
	if err := start(proxy.URL); err != nil {
		proxy.Close()
		return nil, err
	}
	return proxy, nil
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
