package egress

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"
)

// Proxy is an HTTP proxy on a loopback address that connects only where its policy allows: CONNECT
// tunnels (https) and plain http requests. Point HTTPS_PROXY and HTTP_PROXY of a child process
// at URL; what the policy refused is kept for Denied. Close it when the child is done. It
// serves only clients that know the random credentials in URL, so that no other process on the
// host can use it to reach what the policy allows.
type Proxy struct {
	// URL is the proxy's address with its credentials, http://gofer:<token>@127.0.0.1:<port>.
	URL string
	// auth is the Proxy-Authorization header value that the credentials of URL make.
	auth string

	dial      func(ctx context.Context, network, addr string) (net.Conn, error)
	srv       *http.Server
	transport *http.Transport

	mu     sync.Mutex
	denied string // the first refused host:port, as the client named it
	conns  map[net.Conn]bool
	closed bool
}

// Serve starts a Proxy for p on l, a TCP listener on a loopback address, which it closes when
// it is closed.
func (p *Policy) Serve(l net.Listener) *Proxy {
	dial := p.Dial(&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second})
	token := rand.Text()
	x := &Proxy{URL: "http://gofer:" + token + "@" + l.Addr().String(), dial: dial, conns: map[net.Conn]bool{},
		auth: "Basic " + base64.StdEncoding.EncodeToString([]byte("gofer:"+token))}
	x.transport = &http.Transport{DialContext: dial, ResponseHeaderTimeout: time.Minute, MaxIdleConns: 4}
	forward := &httputil.ReverseProxy{
		// A proxy request's URL is absolute; the outgoing request goes where it says.
		Rewrite:   func(*httputil.ProxyRequest) {},
		Transport: x.transport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			x.fail(w, r.URL.Host, err)
		},
	}
	x.srv = &http.Server{ReadHeaderTimeout: 30 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get("Proxy-Authorization")
		r.Header.Del("Proxy-Authorization") // never forwarded
		switch {
		case subtle.ConstantTimeCompare([]byte(got), []byte(x.auth)) != 1:
			w.Header().Set("Proxy-Authenticate", `Basic realm="gofer egress"`)
			http.Error(w, "proxy credentials required", http.StatusProxyAuthRequired)
		case r.Method == http.MethodConnect:
			x.tunnel(w, r)
		case r.URL.IsAbs() && r.URL.Scheme == "http":
			forward.ServeHTTP(w, r)
		default:
			http.Error(w, "this proxy forwards CONNECT and absolute http:// requests only", http.StatusBadRequest)
		}
	})}
	go x.srv.Serve(l)
	return x
}

// Denied returns the first host:port the policy refused, or "".
func (x *Proxy) Denied() string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.denied
}

// Close stops the proxy and cuts every tunnel it holds.
func (x *Proxy) Close() error {
	x.mu.Lock()
	x.closed = true
	for c := range x.conns {
		c.Close()
	}
	x.mu.Unlock()
	err := x.srv.Close()
	x.transport.CloseIdleConnections()
	return err
}

// fail answers a request whose connection failed: 403 if the policy refused it.
func (x *Proxy) fail(w http.ResponseWriter, hostport string, err error) {
	if errors.Is(err, ErrDenied) {
		x.mu.Lock()
		if x.denied == "" {
			x.denied = hostport
		}
		x.mu.Unlock()
		http.Error(w, ErrDenied.Error(), http.StatusForbidden)
		return
	}
	http.Error(w, "connecting failed", http.StatusBadGateway)
}

func (x *Proxy) tunnel(w http.ResponseWriter, r *http.Request) {
	up, err := x.dial(r.Context(), "tcp", r.Host)
	if err != nil {
		x.fail(w, r.Host, err)
		return
	}
	down, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		up.Close()
		return
	}
	if !x.track(up, down) {
		return
	}
	defer x.untrack(up, down)
	if _, err := io.WriteString(down, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		// What the client sent after its CONNECT and before our answer is in buf.
		io.Copy(up, buf)
		if tc, ok := up.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		close(done)
	}()
	io.Copy(down, up)
	down.Close()
	<-done
}

// track registers a tunnel's two connections for Close; false (both closed) if the proxy is
// already closed.
func (x *Proxy) track(cs ...net.Conn) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		x.conns[c] = true
	}
	return true
}

func (x *Proxy) untrack(cs ...net.Conn) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, c := range cs {
		c.Close()
		delete(x.conns, c)
	}
}
