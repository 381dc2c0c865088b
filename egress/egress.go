// Package egress decides where gofer may connect on behalf of a request, and enforces it at the
// moment a connection is made: a dialer for gofer's own HTTP clients (upstream proxies, the
// checksum database) and an HTTP proxy that the go command and git, run for direct fetches, must
// connect through. An anonymous client names module paths, and a module path names a host; this
// package is what keeps such a name from turning gofer into a port scanner of its own network.
//
// The check is on the address actually dialled, after name resolution, so a name that resolves
// to a public address when asked and to an internal one when connected to (DNS rebinding) gains
// nothing. It must never decide from a module path, a URL or any other string what an address
// will be.
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrDenied is wrapped by every error of a connection the policy refused.
var ErrDenied = errors.New("not allowed by gofer's egress policy (GOFER_ALLOW_HOSTS)")

// Policy says where connections may go. Every address is allowed except those of loopback,
// link-local (cloud metadata services among them), private, shared (100.64.0.0/10),
// unspecified, multicast and other non-global ranges, IPv4-mapped and NAT64 forms of them
// included; within those, the policy allows the networks and hosts it was given. A host
// (name or IP literal, with or without a port) is allowed as named: whatever it resolves to,
// because an operator named it. The nil Policy allows nothing more than the public addresses.
type Policy struct {
	hosts map[string]bool // lower-case "host" (any port) or "host:port"
	nets  []netip.Prefix
}

// Parse parses a list of allowed hosts and networks separated by commas or spaces: CIDR
// prefixes (10.0.0.0/8, fd00::/8), addresses (10.1.2.3), and hosts with or without a port
// (git.corp.example, athens.corp.example:3000).
func Parse(list string) (*Policy, error) {
	p := &Policy{hosts: map[string]bool{}}
	for _, f := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		if pfx, err := netip.ParsePrefix(f); err == nil {
			p.nets = append(p.nets, pfx.Masked())
			continue
		}
		if a, err := netip.ParseAddr(f); err == nil {
			p.nets = append(p.nets, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		host := f
		if h, port, err := net.SplitHostPort(f); err == nil {
			if port == "" || strings.Trim(port, "0123456789") != "" {
				return nil, fmt.Errorf("allowed host %q: bad port", f)
			}
			host = h
		}
		if host == "" || strings.ContainsAny(host, "/@[]") {
			return nil, fmt.Errorf("allowed host %q: want a host, host:port, address or CIDR prefix", f)
		}
		p.hosts[strings.ToLower(f)] = true
	}
	return p, nil
}

// With returns a copy of p that also allows each of hostports ("host" or "host:port") as
// named: the hosts of configured upstreams and checksum databases.
func (p *Policy) With(hostports ...string) *Policy {
	q := &Policy{hosts: map[string]bool{}}
	if p != nil {
		for h := range p.hosts {
			q.hosts[h] = true
		}
		q.nets = p.nets
	}
	for _, h := range hostports {
		if h != "" {
			q.hosts[strings.ToLower(h)] = true
		}
	}
	return q
}

// HostPort is the host:port a URL connects to, its scheme's default port filled in.
func HostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// named reports whether addr ("host:port", before resolution) is allowed as named.
func (p *Policy) named(addr string) bool {
	if p == nil {
		return false
	}
	addr = strings.ToLower(addr)
	host, _, err := net.SplitHostPort(addr)
	return p.hosts[addr] || err == nil && p.hosts[host]
}

// Allows reports whether a connection to the address a may be made.
func (p *Policy) Allows(a netip.Addr) bool {
	a = a.Unmap()
	if global(a) {
		return true
	}
	if p != nil {
		for _, n := range p.nets {
			if n.Contains(a) {
				return true
			}
		}
	}
	return false
}

// nonGlobal are the ranges that IsGlobalUnicast and IsPrivate leave out but no public host
// uses: shared address space (carrier NAT, some clusters' pods), "this network", the IETF
// protocol assignments, benchmarking, the reserved class E (some clusters' pods again), IPv6
// site-local and the local-use NAT64 prefix.
var nonGlobal = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("fec0::/10"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
}

// Prefixes whose addresses carry an IPv4 address that is reached in the end.
var (
	nat64  = netip.MustParsePrefix("64:ff9b::/96")
	sixTo4 = netip.MustParsePrefix("2002::/16")
)

// global reports whether a is a public unicast address.
func global(a netip.Addr) bool {
	b := a.As16()
	switch {
	case nat64.Contains(a):
		return global(netip.AddrFrom4([4]byte(b[12:])))
	case sixTo4.Contains(a):
		return global(netip.AddrFrom4([4]byte(b[2:6])))
	}
	if !a.IsGlobalUnicast() || a.IsPrivate() {
		return false
	}
	for _, p := range nonGlobal {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// DeniedError is a connection the policy refused; Addr is what was dialled, after resolution.
type DeniedError struct{ Addr string }

func (e *DeniedError) Error() string { return "connecting to " + e.Addr + ": " + ErrDenied.Error() }
func (e *DeniedError) Unwrap() error { return ErrDenied }

// Dial returns d's DialContext with the policy applied: a host allowed as named is dialled as
// d would; any other connection is refused, at connect time, unless its address is allowed.
// A dial fails with a DeniedError only when every address of the name was refused: when an
// allowed one was tried and failed, the failure is that one's kind (unreachable, say), not a
// refusal, whatever address the dialer happened to report.
func (p *Policy) Dial(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if p.named(addr) {
			return d.DialContext(ctx, network, addr)
		}
		var tried atomic.Bool // an allowed address was tried
		checked := *d
		checked.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !p.Allows(ap.Addr()) {
				return &DeniedError{Addr: address}
			}
			tried.Store(true)
			return nil
		}
		conn, err := checked.DialContext(ctx, network, addr)
		if err != nil && tried.Load() && errors.Is(err, ErrDenied) {
			err = &net.OpError{Op: "dial", Net: network, Err: fmt.Errorf("%s: no allowed address of it answered", addr)}
		}
		return conn, err
	}
}

// Transport returns an HTTP transport that connects as p allows and goes through the proxy of
// HTTPS_PROXY or HTTP_PROXY when one is set, as the go command does (the proxies' hosts are
// allowed: the operator named them). Dial and TLS handshake time out after 10s and response
// headers after 30s; there is no overall timeout, since zips are large and streamed.
func (p *Policy) Transport() *http.Transport {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           p.With(proxyHosts()...).Dial(dialer),
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// proxyHosts returns the host:port of the proxies that HTTPS_PROXY and HTTP_PROXY (either
// case) name.
func proxyHosts() []string {
	var out []string
	for _, name := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"} {
		v := os.Getenv(name)
		if v == "" {
			continue
		}
		if !strings.Contains(v, "://") {
			v = "http://" + v // net/http's rule for a bare host
		}
		if u, err := url.Parse(v); err == nil && u.Host != "" {
			out = append(out, HostPort(u))
		}
	}
	return out
}
