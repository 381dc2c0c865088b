package upstream

import (
	"net/http"
	"testing"
	"time"
)

// The default client bounds the steps before the first byte but never the whole download.
func TestDefaultClient(t *testing.T) {
	c, err := Parse("https://proxy.example.com")
	if err != nil {
		t.Fatal(err)
	}
	cl := c.client()
	if cl == nil || cl != c.client() {
		t.Fatal("the default client is not built once and kept")
	}
	if cl.Timeout != 0 {
		t.Errorf("overall timeout %v, want none: zips are streamed", cl.Timeout)
	}
	tr, ok := cl.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("transport %T, want *http.Transport", cl.Transport)
	}
	if tr.DialContext == nil || tr.TLSHandshakeTimeout != 10*time.Second || tr.ResponseHeaderTimeout != 30*time.Second {
		t.Errorf("dial set %v, TLS handshake %v, response header %v; want a dialer, 10s, 30s",
			tr.DialContext != nil, tr.TLSHandshakeTimeout, tr.ResponseHeaderTimeout)
	}
	if tr.Proxy == nil {
		t.Error("HTTPS_PROXY from the environment is ignored")
	}
}
