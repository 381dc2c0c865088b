package e2e

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goferproxy/gofer/internal/fakeproxy"
	"github.com/goferproxy/gofer/server"
)

// With credentials configured, the proxy endpoints answer only clients that present them. The
// go command, which sends credentials over https only, gets them from a netrc file (GOAUTH's
// default) and is refused without one. What gofer serves then is marked private, for no shared
// cache to keep.
func TestProxyAuth(t *testing.T) {
	creds, err := server.ParseCredentials(strings.NewReader("basic alice wonder-land\nbearer ci-token\n"))
	if err != nil {
		t.Fatal(err)
	}
	up := fakeproxy.New()
	g := startGofer(t, up.Start(t), options{})
	const path = "example.com/guarded"
	up.Add(path, "v1.0.0", map[string]string{"go.mod": "module " + path + "\n"})
	ts := httptest.NewTLSServer(server.New(server.Config{Blobs: g.blobs, Meta: g.meta, Upstream: g.upstream, Temporal: g.temporal, Auth: creds}))
	defer ts.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	// The go command matches a netrc machine against the URL's host and port.
	netrc := filepath.Join(dir, "netrc")
	if err := os.WriteFile(netrc, []byte("machine "+strings.TrimPrefix(ts.URL, "https://")+" login alice password wonder-land\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	if _, err := download(t, ts.URL, path+"@v1.0.0", "SSL_CERT_FILE="+ca, "NETRC="+filepath.Join(dir, "none")); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("download without credentials: %v, want a 401", err)
	}
	if n := g.workflowCount(t); n != 0 {
		t.Errorf("%d fetches started for a client without credentials", n)
	}
	if _, err := download(t, ts.URL, path+"@v1.0.0", "SSL_CERT_FILE="+ca, "NETRC="+netrc); err != nil {
		t.Fatalf("download with the netrc: %v", err)
	}

	c := ts.Client()
	for _, r := range []struct {
		url, auth string
		want      int
	}{
		{"/" + path + "/@v/v1.0.0.mod", "Bearer ci-token", http.StatusOK},
		{"/catalog", "Bearer ci-token", http.StatusOK},
		{"/" + path + "/@v/v1.0.0.mod", "Bearer ci-token2", http.StatusUnauthorized},
		{"/" + path + "/@v/v1.0.0.mod", "", http.StatusUnauthorized},
		{"/catalog", "", http.StatusUnauthorized},
		{"/sumdb/sum.golang.org/supported", "", http.StatusUnauthorized},
		{"/healthz", "", http.StatusOK},
	} {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			req, _ := http.NewRequest(method, ts.URL+r.url, nil)
			if r.auth != "" {
				req.Header.Set("Authorization", r.auth)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != r.want {
				t.Errorf("%s %s with %q: %d, want %d", method, r.url, r.auth, resp.StatusCode, r.want)
			}
			// No shared cache may keep what needs credentials.
			if cc := resp.Header.Get("Cache-Control"); resp.StatusCode == http.StatusOK && r.url != "/healthz" && !strings.HasPrefix(cc, "private") && cc != "no-store" {
				t.Errorf("%s %s: Cache-Control %q, want private or no-store", method, r.url, cc)
			}
		}
	}
}
