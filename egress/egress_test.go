package egress_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goferproxy/gofer/egress"
	"github.com/goferproxy/gofer/internal/testserver"
)

func TestAllows(t *testing.T) {
	allowed := must(egress.Parse("10.0.0.0/8, 192.168.7.7 git.corp.example"))
	for _, c := range []struct {
		addr            string
		byDefault, with bool
	}{
		{"8.8.8.8", true, true},
		{"2001:4860:4860::8888", true, true},
		{"64:ff9b::808:808", true, true}, // NAT64 of a public address
		{"127.0.0.1", false, false},
		{"127.1.2.3", false, false},
		{"::1", false, false},
		{"::ffff:127.0.0.1", false, false},
		{"64:ff9b::7f00:1", false, false}, // NAT64 of loopback
		{"169.254.169.254", false, false}, // cloud metadata
		{"fd00:ec2::254", false, false},   // cloud metadata over IPv6
		{"fe80::1", false, false},
		{"0.0.0.0", false, false},
		{"0.1.2.3", false, false},
		{"::", false, false},
		{"100.64.0.1", false, false},
		{"172.16.0.1", false, false},
		{"192.168.7.7", false, true},
		{"192.168.7.8", false, false},
		{"10.1.2.3", false, true},
		{"224.0.0.1", false, false},
		{"255.255.255.255", false, false},
		{"240.1.2.3", false, false},
		{"198.18.0.1", false, false},
		{"192.0.0.1", false, false},
		{"fec0::1", false, false},
		{"64:ff9b:1::a00:1", false, false},
		{"2002:7f00:1::1", false, false}, // 6to4 of loopback
		{"2002:808:808::1", true, true},  // 6to4 of a public address
	} {
		a := netip.MustParseAddr(c.addr)
		var none *egress.Policy
		if got := none.Allows(a); got != c.byDefault {
			t.Errorf("default policy allows %s: %v, want %v", c.addr, got, c.byDefault)
		}
		if got := allowed.Allows(a); got != c.with {
			t.Errorf("policy with 10.0.0.0/8 and 192.168.7.7 allows %s: %v, want %v", c.addr, got, c.with)
		}
	}
	for _, bad := range []string{"http://x", "a@b", "host:", "host:x", "[::1]"} {
		if _, err := egress.Parse(bad); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
}

// trap listens on addr and records the connections it gets.
func trap(t *testing.T, addr string) (string, *testserver.Trap) {
	t.Helper()
	tr, err := testserver.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr.Addrs()[0], tr
}

func TestDial(t *testing.T) {
	addr, conns := trap(t, "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(addr)
	d := &net.Dialer{Timeout: time.Second}
	ctx := context.Background()
	for _, target := range []string{addr, "localhost:" + port, "[::ffff:127.0.0.1]:" + port} {
		var none *egress.Policy
		c, err := none.Dial(d)(ctx, "tcp", target)
		if err == nil {
			c.Close()
			t.Errorf("dialled %s under the default policy", target)
		} else if !errors.Is(err, egress.ErrDenied) {
			t.Errorf("dialling %s: %v, want ErrDenied", target, err)
		}
	}
	if n := conns.Seen(); len(n) != 0 {
		t.Errorf("connections made through a denying dialer: %v", n)
	}
	for _, p := range []*egress.Policy{must(egress.Parse("127.0.0.0/8")), must(egress.Parse("localhost")), (*egress.Policy)(nil).With("LOCALHOST:" + port)} {
		c, err := p.Dial(d)(ctx, "tcp", "localhost:"+port)
		if err != nil {
			t.Errorf("an allowed dial failed: %v", err)
			continue
		}
		c.Close()
	}
	// A host allowed with one port is not allowed with another.
	if _, err := (*egress.Policy)(nil).With("localhost:1").Dial(d)(ctx, "tcp", "localhost:"+port); !errors.Is(err, egress.ErrDenied) {
		t.Errorf("localhost:%s with only localhost:1 allowed: %v, want ErrDenied", port, err)
	}
}

func TestProxy(t *testing.T) {
	// Targets on another loopback address, so that nothing on 127.0.0.1 can be confused with them.
	plainAddr, plainConns := trap(t, "127.0.0.2:0")
	tlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "secret") }))
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	var tlsConns atomic.Int64
	tlsSrv.Listener = l
	tlsSrv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			tlsConns.Add(1)
		}
	}
	tlsSrv.StartTLS()
	defer tlsSrv.Close()

	client := func(x *egress.Proxy) *http.Client {
		u, _ := url.Parse(x.URL)
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			Proxy: http.ProxyURL(u),
			// The test certificate names 127.0.0.1; this test is about the tunnel, not the name.
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		}}
	}

	var none *egress.Policy
	x := none.Serve(listen(t))
	defer x.Close()
	if x.Denied() != "" {
		t.Fatalf("Denied before any request: %q", x.Denied())
	}
	for _, u := range []string{"http://" + plainAddr + "/x", tlsSrv.URL + "/x"} {
		resp, err := client(x).Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("GET %s through the proxy: %s, want 403", u, resp.Status)
			}
		}
		// A refused CONNECT is an error of the client ("Forbidden"); either way nothing connected.
	}
	if len(plainConns.Seen()) != 0 || tlsConns.Load() != 0 {
		t.Errorf("the targets got %d and %d connections through a denying proxy", len(plainConns.Seen()), tlsConns.Load())
	}
	if d := x.Denied(); d != plainAddr {
		t.Errorf("Denied() = %q, want the first refused target %s", d, plainAddr)
	}

	allow := must(egress.Parse("127.0.0.2")).Serve(listen(t))
	defer allow.Close()
	resp, err := client(allow).Get(tlsSrv.URL + "/x")
	if err != nil {
		t.Fatalf("CONNECT to an allowed address: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "secret" || allow.Denied() != "" {
		t.Errorf("through an allowing proxy: %q, denied %q", body, allow.Denied())
	}
	resp, err = client(allow).Get("http://" + plainAddr + "/x")
	if err == nil {
		resp.Body.Close()
	}
	if n := len(plainConns.Seen()); n != 1 {
		t.Errorf("a plain http request to an allowed address made %d connections, want 1", n)
	}

	// Without the proxy's credentials, another process on the host gets nothing through it.
	u, _ := url.Parse(allow.URL)
	u.User = nil
	stranger := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(u)}}
	resp, err = stranger.Get("http://" + plainAddr + "/x")
	if err != nil || resp.StatusCode != http.StatusProxyAuthRequired {
		t.Errorf("a request without the proxy's credentials: %v %v, want 407", resp, err)
	} else {
		resp.Body.Close()
	}
	if _, err := stranger.Get(tlsSrv.URL + "/x"); err == nil {
		t.Error("a CONNECT without the proxy's credentials went through")
	}
	if n := len(plainConns.Seen()); n != 1 || tlsConns.Load() != 1 {
		t.Errorf("requests without credentials connected: %d plain, %d TLS connections in all, want 1 and 1", n, tlsConns.Load())
	}
}

// listen is a listener on a free port of 127.0.0.1.
func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func must(p *egress.Policy, err error) *egress.Policy {
	if err != nil {
		panic(err)
	}
	return p
}

func TestTransport(t *testing.T) {
	t.Setenv("HTTPS_PROXY", "10.9.9.9:3128")
	tr := (*egress.Policy)(nil).Transport()
	if tr.DialContext == nil || tr.TLSHandshakeTimeout != 10*time.Second || tr.ResponseHeaderTimeout != 30*time.Second {
		t.Errorf("dial set %v, TLS handshake %v, response header %v; want a dialer, 10s, 30s",
			tr.DialContext != nil, tr.TLSHandshakeTimeout, tr.ResponseHeaderTimeout)
	}
	req, _ := http.NewRequest(http.MethodGet, "https://example.com/", nil)
	if u, err := tr.Proxy(req); err != nil || u == nil || u.Host != "10.9.9.9:3128" {
		t.Errorf("Proxy = %v, %v: HTTPS_PROXY from the environment is ignored", u, err)
	}
	// The proxy the operator named is allowed although it is private: the dial goes out (and
	// fails for want of a route here), rather than being refused.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := tr.DialContext(ctx, "tcp", "10.9.9.9:3128"); errors.Is(err, egress.ErrDenied) {
		t.Errorf("dialling the HTTPS_PROXY: %v", err)
	}
	if _, err := tr.DialContext(ctx, "tcp", "10.9.9.9:3129"); !errors.Is(err, egress.ErrDenied) {
		t.Errorf("dialling another port of the proxy's host: %v, want ErrDenied", err)
	}
}
