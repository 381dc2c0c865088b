package upstream_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/egress"
	"github.com/goferproxy/gofer/internal/kindtest"
	"github.com/goferproxy/gofer/internal/testserver"
	"github.com/goferproxy/gofer/upstream"
)

// serve starts a fake upstream on 127.0.0.1 that stops with the test.
func serve(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// status answers every request with code and body, and counts the requests.
func status(t *testing.T, code int, body string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(code)
		io.WriteString(w, body)
	})
	return srv, &hits
}

func parse(t *testing.T, goproxy string) *upstream.Chain {
	t.Helper()
	c, err := upstream.Parse(goproxy)
	if err != nil {
		t.Fatalf("Parse(%q): %v", goproxy, err)
	}
	return c
}

func TestParse(t *testing.T) {
	for i, tc := range []struct {
		in      string
		want    string // String() of the chain; "" means Parse must fail
		wantErr string // a part of the error when Parse must fail
	}{
		0:  {in: "https://proxy.example.com", want: "https://proxy.example.com"},
		1:  {in: "https://proxy.example.com/", want: "https://proxy.example.com"},
		2:  {in: "https://proxy.example.com/sub/path//", want: "https://proxy.example.com/sub/path"},
		3:  {in: "http://127.0.0.1:3000", want: "http://127.0.0.1:3000"},
		4:  {in: "proxy.example.com", want: "https://proxy.example.com"},
		5:  {in: "localhost:3000", want: "https://localhost:3000"},
		6:  {in: "proxy.example.com/goproxy/", want: "https://proxy.example.com/goproxy"},
		7:  {in: "off", want: "off"},
		8:  {in: "direct", want: "direct"},
		9:  {in: "a.example,b.example|c.example", want: "https://a.example,https://b.example|https://c.example"},
		10: {in: "a.example|b.example,c.example", want: "https://a.example|https://b.example,https://c.example"},
		11: {in: " https://a.example , https://b.example ", want: "https://a.example,https://b.example"},
		12: {in: "https://a.example,,https://b.example,", want: "https://a.example,https://b.example"},
		13: {in: "https://a.example,off", want: "https://a.example,off"},
		14: {in: "https://a.example|direct", want: "https://a.example|direct"},
		// off and direct end the list, as in the go command.
		15: {in: "off,https://a.example", want: "off"},
		16: {in: "https://a.example,direct,https://b.example", want: "https://a.example,direct"},
		17: {in: "https://user:secret@a.example", want: "https://a.example"}, // no user in messages or metrics
		18: {in: "", wantErr: "no proxy"},
		19: {in: " , | ", wantErr: "no proxy"},
		20: {in: "http://[::1", wantErr: "invalid GOPROXY URL"},
		21: {in: "ftp://proxy.example.com", wantErr: "scheme"},
		22: {in: "file:///var/goproxy", wantErr: "scheme"},
		23: {in: "https://", wantErr: "no host"},
		24: {in: "proxy", wantErr: "scheme"},        // a single word is not a host
		25: {in: "/var/goproxy", wantErr: "scheme"}, // a file path is not a URL
		26: {in: "https://a.example?token=x", wantErr: "query"},
		27: {in: "https://a.example#frag", wantErr: "query or fragment"},
		28: {in: "https://a.example,ftp://b.example", wantErr: "scheme"},
	} {
		c, err := upstream.Parse(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("%d: Parse(%q) = %q, want an error", i, tc.in, c)
			} else if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%d: Parse(%q) error %q, want it to mention %q", i, tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%d: Parse(%q): %v", i, tc.in, err)
			continue
		}
		if got := c.String(); got != tc.want {
			t.Errorf("%d: Parse(%q).String() = %q, want %q", i, tc.in, got, tc.want)
		}
	}
}

func TestClassify(t *testing.T) {
	long := strings.Repeat("x", 300)
	for i, tc := range []struct {
		code       int
		body       string
		wantKind   string
		wantReason string // the message must end with ": "+wantReason, when not ""
	}{
		0:  {400, "bad request: invalid version\n", "not found", "bad request: invalid version"},
		1:  {403, "forbidden", "not found", "forbidden"},
		2:  {404, "not found: unknown revision v9.9.9", "not found", "not found: unknown revision v9.9.9"},
		3:  {410, "gone", "not found", "gone"},
		4:  {404, "not found: Fetch Timed Out", "unavailable", "not found: Fetch Timed Out"},
		5:  {410, "FETCH TIMED OUT", "unavailable", "FETCH TIMED OUT"},
		6:  {404, "not found: example.com/m@v1.0.0: something\nfetch timed out after 30s", "unavailable", "not found: example.com/m@v1.0.0: something"},
		7:  {400, "fetch timed out", "not found", "fetch timed out"}, // only 404 and 410 have the exception
		8:  {403, "fetch timed out", "not found", "fetch timed out"},
		9:  {500, "internal error", "unavailable", "internal error"},
		10: {502, "", "unavailable", ""},
		11: {503, "try later", "unavailable", "try later"},
		12: {504, "", "unavailable", ""},
		13: {429, "slow down", "unavailable", "slow down"},
		14: {401, "unauthorized", "unavailable", "unauthorized"},
		15: {418, "", "unavailable", ""},
		16: {204, "", "unavailable", ""}, // only a 200 is an answer
		17: {404, "line one\nline two", "not found", "line one"},
		18: {404, "\n\n   padded reason  \r\nsecond", "not found", "padded reason"},
		19: {404, long, "not found", long[:200]},
	} {
		srv, _ := status(t, tc.code, tc.body)
		_, _, err := parse(t, srv.URL).Info(context.Background(), "example.com/m", "v1.0.0")
		if got := kindtest.Name(err); got != tc.wantKind {
			t.Errorf("%d: %d %q: kind %s (%v), want %s", i, tc.code, tc.body, got, err, tc.wantKind)
			continue
		}
		msg := err.Error()
		wantURL := srv.URL + "/example.com/m/@v/v1.0.0.info"
		wantStatus := strconv.Itoa(tc.code) + " " + http.StatusText(tc.code)
		if !strings.Contains(msg, wantURL) || !strings.Contains(msg, wantStatus) {
			t.Errorf("%d: error %q does not name %s and %q", i, msg, wantURL, wantStatus)
		}
		if tc.wantReason != "" && !strings.HasSuffix(msg, ": "+tc.wantReason) {
			t.Errorf("%d: error %q, want it to end with the reason %q", i, msg, tc.wantReason)
		}
		if tc.wantReason == "" && !strings.HasSuffix(msg, wantStatus) {
			t.Errorf("%d: error %q, want it to end with the status", i, msg)
		}
	}
}

func TestTransportErrors(t *testing.T) {
	ctx := context.Background()

	t.Run("connection refused", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		_, _, err := parse(t, srv.URL).Info(ctx, "example.com/m", "v1.0.0")
		if !errors.Is(err, gofer.ErrUnavailable) || !strings.Contains(err.Error(), srv.URL) {
			t.Fatalf("err = %v (%s), want unavailable naming %s", err, kindtest.Name(err), srv.URL)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		})
		c := parse(t, srv.URL)
		c.Client = &http.Client{Timeout: 50 * time.Millisecond}
		_, _, err := c.Info(ctx, "example.com/m", "v1.0.0")
		if !errors.Is(err, gofer.ErrUnavailable) {
			t.Fatalf("err = %v (%s), want unavailable", err, kindtest.Name(err))
		}
	})

	// The walk stops at a cancelled context: neither the next URL nor a later off or direct
	// entry may replace the context's error.
	for i, next := range []string{"url", "off", "direct"} {
		t.Run("context cancelled then "+next, func(t *testing.T) {
			arrived := make(chan struct{}, 1)
			a := serve(t, func(w http.ResponseWriter, r *http.Request) {
				arrived <- struct{}{}
				<-r.Context().Done()
			})
			b, bHits := status(t, 200, "{}")
			spec := []string{a.URL + "|" + b.URL, a.URL + "|off", a.URL + "|direct"}[i]
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			go func() {
				<-arrived
				cancel()
			}()
			_, _, err := parse(t, spec).Info(ctx, "example.com/m", "v1.0.0")
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			if errors.Is(err, gofer.ErrNotFound) || errors.Is(err, gofer.ErrInvalid) {
				t.Errorf("err = %v, classified as %s", err, kindtest.Name(err))
			}
			if n := bHits.Load(); n != 0 {
				t.Errorf("the next entry got %d requests after cancellation", n)
			}
		})
	}
}

func TestFallThrough(t *testing.T) {
	const refused = -1 // an entry whose server is gone
	for i, tc := range []struct {
		codes    []int
		seps     string // separator after each entry but the last
		wantKind string
		wantFrom int   // entry whose URL is the source, or which the error names
		wantHits []int // requests per entry
	}{
		0:  {[]int{404, 200}, ",", "nil", 1, []int{1, 1}},
		1:  {[]int{410, 200}, ",", "nil", 1, []int{1, 1}},
		2:  {[]int{403, 200}, ",", "nil", 1, []int{1, 1}},
		3:  {[]int{400, 200}, ",", "nil", 1, []int{1, 1}},
		4:  {[]int{503, 200}, ",", "unavailable", 0, []int{1, 0}},
		5:  {[]int{429, 200}, ",", "unavailable", 0, []int{1, 0}},
		6:  {[]int{refused, 200}, ",", "unavailable", 0, []int{0, 0}},
		7:  {[]int{503, 200}, "|", "nil", 1, []int{1, 1}},
		8:  {[]int{404, 200}, "|", "nil", 1, []int{1, 1}},
		9:  {[]int{refused, 200}, "|", "nil", 1, []int{0, 1}},
		10: {[]int{200, 200}, ",", "nil", 0, []int{1, 0}},
		11: {[]int{404, 404}, ",", "not found", 1, []int{1, 1}},
		12: {[]int{503, 404}, "|", "unavailable", 0, []int{1, 1}}, // a down entry outranks a missing version
		13: {[]int{404, 503}, ",", "unavailable", 1, []int{1, 1}},
		14: {[]int{404, 503, 200}, ",|", "nil", 2, []int{1, 1, 1}},
		15: {[]int{503, 503, 200}, "|,", "unavailable", 0, []int{1, 1, 0}},
		16: {[]int{404, 404, 404}, ",,", "not found", 2, []int{1, 1, 1}},
	} {
		var urls []string
		var hits []*atomic.Int32
		var spec strings.Builder
		for j, code := range tc.codes {
			var srv *httptest.Server
			var n *atomic.Int32
			if code == refused {
				srv, n = httptest.NewServer(http.NotFoundHandler()), new(atomic.Int32)
				srv.Close()
			} else {
				srv, n = status(t, code, fmt.Sprintf("entry %d", j))
			}
			urls, hits = append(urls, srv.URL), append(hits, n)
			if j > 0 {
				spec.WriteByte(tc.seps[j-1])
			}
			spec.WriteString(srv.URL)
		}
		body, source, err := parse(t, spec.String()).Info(context.Background(), "example.com/m", "v1.0.0")
		if got := kindtest.Name(err); got != tc.wantKind {
			t.Errorf("%d: kind %s (%v), want %s", i, got, err, tc.wantKind)
			continue
		}
		if err == nil {
			if source != urls[tc.wantFrom] || string(body) != fmt.Sprintf("entry %d", tc.wantFrom) {
				t.Errorf("%d: answer %q from %s, want entry %d from %s", i, body, source, tc.wantFrom, urls[tc.wantFrom])
			}
		} else if !strings.Contains(err.Error(), urls[tc.wantFrom]) || source != "" {
			t.Errorf("%d: error %q (source %q), want the error of entry %d (%s)", i, err, source, tc.wantFrom, urls[tc.wantFrom])
		}
		for j, n := range hits {
			if got := int(n.Load()); got != tc.wantHits[j] {
				t.Errorf("%d: entry %d got %d requests, want %d", i, j, got, tc.wantHits[j])
			}
		}
	}
}

// Each method asks for its own file, returns the body and names the entry that answered.
func TestMethods(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		io.WriteString(w, "body of "+r.URL.Path)
	})
	miss, _ := status(t, 404, "not here")
	base := srv.URL + "/prefix"
	c := parse(t, miss.URL+","+base+"/")
	ctx := context.Background()
	zip := func(ctx context.Context, path, version string) ([]byte, string, error) {
		rc, source, err := c.Zip(ctx, path, version)
		if err != nil {
			return nil, source, err
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		return b, source, err
	}
	for i, tc := range []struct {
		call     func() ([]byte, string, error)
		wantPath string
	}{
		0: {func() ([]byte, string, error) { return c.List(ctx, "example.com/m") }, "/prefix/example.com/m/@v/list"},
		1: {func() ([]byte, string, error) { return c.Latest(ctx, "example.com/m") }, "/prefix/example.com/m/@latest"},
		2: {func() ([]byte, string, error) { return c.Info(ctx, "example.com/m", "main") }, "/prefix/example.com/m/@v/main.info"},
		3: {func() ([]byte, string, error) { return c.Mod(ctx, "example.com/m", "v1.2.3") }, "/prefix/example.com/m/@v/v1.2.3.mod"},
		4: {func() ([]byte, string, error) { return zip(ctx, "example.com/m", "v1.2.3") }, "/prefix/example.com/m/@v/v1.2.3.zip"},
		5: {func() ([]byte, string, error) { return c.Info(ctx, "github.com/Upper/Case", "v1.0.0") }, "/prefix/github.com/!upper/!case/@v/v1.0.0.info"},
		6: {func() ([]byte, string, error) { return c.Mod(ctx, "example.com/m", "v1.0.0-RC1") }, "/prefix/example.com/m/@v/v1.0.0-!r!c1.mod"},
		7: {func() ([]byte, string, error) { return zip(ctx, "example.com/M", "v2.0.0+incompatible") }, "/prefix/example.com/!m/@v/v2.0.0+incompatible.zip"},
		// '#' and '%' are legal in a query; they must reach the upstream inside the path.
		8: {func() ([]byte, string, error) { return c.Info(ctx, "example.com/m", "fix#1%2") }, "/prefix/example.com/m/@v/fix#1%2.info"},
	} {
		mu.Lock()
		paths = nil
		mu.Unlock()
		body, source, err := tc.call()
		if err != nil {
			t.Errorf("%d: %v", i, err)
			continue
		}
		mu.Lock()
		got := paths
		mu.Unlock()
		if len(got) != 1 || got[0] != tc.wantPath {
			t.Errorf("%d: requested %q, want [%s]", i, got, tc.wantPath)
		}
		if want := "body of " + tc.wantPath; string(body) != want {
			t.Errorf("%d: body %q, want %q", i, body, want)
		}
		if source != base {
			t.Errorf("%d: source %q, want %q", i, source, base)
		}
	}
}

// An escaped character in the GOPROXY path stays escaped: "/a%2Fb" is one element, not two.
func TestEscapedBase(t *testing.T) {
	uris := make(chan string, 1)
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		uris <- r.RequestURI
		io.WriteString(w, "{}")
	})
	_, source, err := parse(t, srv.URL+"/a%2Fb/").Info(context.Background(), "example.com/m", "v1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if uri, want := <-uris, "/a%2Fb/example.com/m/@v/v1.0.0.info"; uri != want {
		t.Errorf("request URI %q, want %q", uri, want)
	}
	if want := srv.URL + "/a%2Fb"; source != want {
		t.Errorf("source %q, want %q", source, want)
	}
}

// A path or version that cannot be escaped cannot exist: not found, and no request.
func TestUnescapable(t *testing.T) {
	srv, hits := status(t, 200, "{}")
	c := parse(t, srv.URL)
	ctx := context.Background()
	for i, call := range []func() error{
		0: func() error { _, _, err := c.List(ctx, "not a module path"); return err },
		1: func() error { _, _, err := c.Latest(ctx, "-bad.example/m"); return err },
		2: func() error { _, _, err := c.Info(ctx, "example.com/m", "feature/x"); return err },
		3: func() error { _, _, err := c.Mod(ctx, "example.com/m", "v1.0.0!"); return err },
		4: func() error { _, _, err := c.Zip(ctx, "example.com/m", ""); return err },
	} {
		if err := call(); !errors.Is(err, gofer.ErrNotFound) {
			t.Errorf("%d: err = %v (%s), want not found", i, err, kindtest.Name(err))
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("%d requests sent for unescapable paths", n)
	}
}

// The password in the GOPROXY value is sent, but never appears in a source or an error.
func TestCredentials(t *testing.T) {
	type auth struct {
		user, pass string
		ok         bool
	}
	auths := make(chan auth, 1)
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		var a auth
		a.user, a.pass, a.ok = r.BasicAuth()
		auths <- a
		http.Error(w, "private", http.StatusServiceUnavailable)
	})
	withAuth := strings.Replace(srv.URL, "http://", "http://gofer:s3cret@", 1)
	c := parse(t, withAuth)
	if strings.Contains(c.String(), "s3cret") {
		t.Errorf("String() = %q shows the password", c)
	}
	_, _, err := c.Info(context.Background(), "example.com/m", "v1.0.0")
	if a := <-auths; !a.ok || a.user != "gofer" || a.pass != "s3cret" {
		t.Errorf("basic auth = %+v, want the credentials of the URL", a)
	}
	if err == nil || strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "gofer") || !strings.Contains(err.Error(), srv.URL) {
		t.Errorf("err = %v, want an error naming the URL without its userinfo", err)
	}

	srv2 := serve(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "{}") })
	_, source, err := parse(t, strings.Replace(srv2.URL, "http://", "http://gofer:s3cret@", 1)).Info(context.Background(), "example.com/m", "v1.0.0")
	if err != nil || source != srv2.URL {
		t.Errorf("source %q, %v; want the URL without its userinfo", source, err)
	}
}

func TestOffAndDirect(t *testing.T) {
	ctx := context.Background()
	notFound, nfHits := status(t, 404, "no")
	down, _ := status(t, 503, "down")
	const offMsg = "module lookup disabled by GOPROXY=off"
	const directMsg = "direct (VCS) fetches are not configured"
	for i, tc := range []struct {
		goproxy  string
		wantKind string
		wantMsg  string
	}{
		0: {"off", "not found", offMsg},
		1: {"direct", "not found", directMsg},
		2: {notFound.URL + ",off", "not found", offMsg},
		3: {notFound.URL + ",direct", "not found", directMsg},
		4: {down.URL + "|direct", "unavailable", down.URL}, // retry the proxy that is down
		5: {down.URL + ",off", "unavailable", down.URL},    // a 503 does not fall through ','
	} {
		c := parse(t, tc.goproxy)
		calls := []func() error{
			func() error { _, _, err := c.List(ctx, "example.com/m"); return err },
			func() error { _, _, err := c.Latest(ctx, "example.com/m"); return err },
			func() error { _, _, err := c.Info(ctx, "example.com/m", "v1.0.0"); return err },
			func() error { _, _, err := c.Mod(ctx, "example.com/m", "v1.0.0"); return err },
			func() error { _, _, err := c.Zip(ctx, "example.com/m", "v1.0.0"); return err },
		}
		for j, call := range calls {
			err := call()
			if got := kindtest.Name(err); got != tc.wantKind || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("%d.%d: %q: err = %v (%s), want %s mentioning %q", i, j, tc.goproxy, err, got, tc.wantKind, tc.wantMsg)
			}
		}
	}
	if n := nfHits.Load(); n != 10 {
		t.Errorf("the entry before off/direct got %d requests, want 10", n)
	}
}

func TestSizeCaps(t *testing.T) {
	const MiB = 1 << 20
	ctx := context.Background()
	// size bytes, with a Content-Length or chunked (the limit must hold without one).
	server := func(t *testing.T, size int, chunked bool) *httptest.Server {
		body := bytes.Repeat([]byte("x"), size)
		return serve(t, func(w http.ResponseWriter, r *http.Request) {
			if chunked {
				w.Write(body[:1])
				w.(http.Flusher).Flush()
				w.Write(body[1:])
				return
			}
			w.Header().Set("Content-Length", strconv.Itoa(size))
			w.Write(body)
		})
	}
	for i, tc := range []struct {
		method  string
		size    int
		chunked bool
		wantErr bool
	}{
		0:  {"list", MiB, false, false},
		1:  {"list", MiB, true, false},
		2:  {"list", MiB + 1, false, true},
		3:  {"list", MiB + 1, true, true},
		4:  {"latest", MiB + 1, true, true},
		5:  {"info", MiB, true, false},
		6:  {"info", MiB + 1, false, true},
		7:  {"info", MiB + 1, true, true},
		8:  {"mod", MiB + 1, true, false}, // .mod has the go command's larger limit
		9:  {"mod", 16 * MiB, true, false},
		10: {"mod", 16 * MiB, false, false},
		11: {"mod", 16*MiB + 1, false, true},
		12: {"mod", 16*MiB + 1, true, true},
	} {
		srv := server(t, tc.size, tc.chunked)
		c := parse(t, srv.URL)
		var body []byte
		var err error
		switch tc.method {
		case "list":
			body, _, err = c.List(ctx, "example.com/m")
		case "latest":
			body, _, err = c.Latest(ctx, "example.com/m")
		case "info":
			body, _, err = c.Info(ctx, "example.com/m", "v1.0.0")
		case "mod":
			body, _, err = c.Mod(ctx, "example.com/m", "v1.0.0")
		}
		switch {
		case tc.wantErr && !errors.Is(err, gofer.ErrInvalid):
			t.Errorf("%d: %s of %d bytes: err = %v (%s), want invalid", i, tc.method, tc.size, err, kindtest.Name(err))
		case tc.wantErr && body != nil:
			t.Errorf("%d: %s of %d bytes: returned %d bytes with the error", i, tc.method, tc.size, len(body))
		case !tc.wantErr && (err != nil || len(body) != tc.size):
			t.Errorf("%d: %s of %d bytes: got %d bytes, %v", i, tc.method, tc.size, len(body), err)
		}
	}

	// Too large is invalid, not not found: a ',' does not fall through it.
	next, nextHits := status(t, 200, "{}")
	_, _, err := parse(t, server(t, MiB+1, true).URL+","+next.URL).Info(ctx, "example.com/m", "v1.0.0")
	if !errors.Is(err, gofer.ErrInvalid) || nextHits.Load() != 0 {
		t.Errorf("err = %v, next entry hit %d times; want invalid and no fall-through", err, nextHits.Load())
	}
}

// The zip limit is the go command's 500 MiB; a declared length above it fails before any
// byte is read, and one at the limit is accepted.
func TestZipLimit(t *testing.T) {
	const limit = 500 << 20
	for i, tc := range []struct {
		length  int
		wantErr bool
	}{
		0: {limit, false},
		1: {limit + 1, true},
	} {
		srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
			// Declare the length but send nothing: only the header is checked.
			w.Header().Set("Content-Length", strconv.Itoa(tc.length))
			w.WriteHeader(200)
		})
		rc, _, err := parse(t, srv.URL).Zip(context.Background(), "example.com/m", "v1.0.0")
		if tc.wantErr {
			if !errors.Is(err, gofer.ErrInvalid) {
				t.Errorf("%d: err = %v (%s), want invalid", i, err, kindtest.Name(err))
			}
			continue
		}
		if err != nil {
			t.Errorf("%d: %v", i, err)
			continue
		}
		// The body ends early: a failed read is classified like a failed request.
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if !errors.Is(err, gofer.ErrUnavailable) {
			t.Errorf("%d: reading a truncated zip: err = %v (%s), want unavailable", i, err, kindtest.Name(err))
		}
	}
}

// Zip must hand back the body while the upstream is still sending it: the server sends the
// first chunk and waits until the test has read it before it sends the rest.
func TestZipStreams(t *testing.T) {
	first := bytes.Repeat([]byte("a"), 64<<10)
	rest := bytes.Repeat([]byte("b"), 256<<10)
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write(first)
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Write(rest)
	})
	t.Cleanup(unblock) // runs before srv.Close, so a failed test does not hang the server

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type result struct {
		rc     io.ReadCloser
		source string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		rc, source, err := parse(t, srv.URL).Zip(ctx, "example.com/m", "v1.0.0")
		done <- result{rc, source, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Zip did not return while the upstream was still sending: it buffers the body")
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	defer res.rc.Close()
	if res.source != srv.URL {
		t.Errorf("source %q, want %q", res.source, srv.URL)
	}
	got := make([]byte, len(first))
	if _, err := io.ReadFull(res.rc, got); err != nil || !bytes.Equal(got, first) {
		t.Fatalf("first chunk: %v", err)
	}
	unblock()
	tail, err := io.ReadAll(res.rc)
	if err != nil || !bytes.Equal(tail, rest) {
		t.Fatalf("rest: %d bytes, %v; want %d bytes", len(tail), err, len(rest))
	}
}

// Cancelling the context while a zip is being read ends the read with the context's error.
func TestZipCancel(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write(make([]byte, 1024))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	// The timeout only keeps a Zip that buffers from hanging the test.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc, _, err := parse(t, srv.URL).Zip(ctx, "example.com/m", "v1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	cancel()
	_, err = io.Copy(io.Discard, rc)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// A Client set on the Chain sends every request.
func TestClientUsed(t *testing.T) {
	srv, _ := status(t, 200, "{}")
	var calls atomic.Int32
	c := parse(t, srv.URL)
	c.Client = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		calls.Add(1)
		return http.DefaultTransport.RoundTrip(r)
	})}
	if _, _, err := c.Info(context.Background(), "example.com/m", "v1.0.0"); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 {
		t.Fatalf("custom client got %d requests, want 1", calls.Load())
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestEntries(t *testing.T) {
	c, err := upstream.Parse("https://a.example/p/,http://u:pw@b.example|direct")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(c.Entries(), " ")
	if want := "https://a.example/p http://u:pw@b.example direct"; got != want {
		t.Errorf("Entries() = %q, want %q", got, want)
	}
}

func TestURL(t *testing.T) {
	c, err := upstream.Parse("https://u:pw@a.example/p/,direct")
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.URL("github.com/Upper/Case", "v1.0.0-RC1", "zip")
	if want := "https://a.example/p/github.com/!upper/!case/@v/v1.0.0-!r!c1.zip"; err != nil || got != want {
		t.Errorf("URL = %q, %v; want %q", got, err, want)
	}
	d, _ := upstream.Parse("direct")
	if _, err := d.URL("example.com/m", "v1.0.0", "zip"); err == nil {
		t.Error("a redirect with no proxy entry")
	}
}

// An upstream may redirect, but only where the egress policy allows, and not forever: a
// redirect to an internal address (here another loopback address) makes no connection, and is
// not found from that entry, as is a redirect loop; neither is retried.
func TestRedirects(t *testing.T) {
	trap, err := testserver.Listen("127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer trap.Close()
	var hops atomic.Int32
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/inside/"):
			http.Redirect(w, r, "http://"+trap.Addrs()[0]+"/x", http.StatusFound)
		case strings.HasPrefix(r.URL.Path, "/loop/"):
			hops.Add(1)
			http.Redirect(w, r, r.URL.Path, http.StatusFound)
		case strings.HasPrefix(r.URL.Path, "/here/"):
			http.Redirect(w, r, "/ok"+r.URL.Path, http.StatusFound)
		default:
			io.WriteString(w, `{"Version":"v1.0.0"}`)
		}
	})
	ctx := context.Background()
	for _, base := range []string{"/inside", "/loop"} {
		_, _, err := parse(t, srv.URL+base).Info(ctx, "example.com/m", "v1.0.0")
		if !errors.Is(err, gofer.ErrNotFound) {
			t.Errorf("%s: %v, want not found", base, err)
		}
	}
	if seen := trap.Seen(); len(seen) != 0 {
		t.Errorf("a redirect reached an internal address: %v", seen)
	}
	if n := hops.Load(); n > 6 {
		t.Errorf("followed a redirect loop %d times", n)
	}
	// A redirect to the configured host itself is followed.
	if _, _, err := parse(t, srv.URL+"/here").Info(ctx, "example.com/m", "v1.0.0"); err != nil {
		t.Errorf("a redirect within the upstream: %v", err)
	}
	// So is one the policy allows.
	c := parse(t, srv.URL+"/inside")
	c.Egress, _ = egress.Parse("127.0.0.2")
	c.Info(ctx, "example.com/m", "v1.0.0")
	if len(trap.Seen()) != 1 {
		t.Errorf("a redirect to an allowed address: %d connections, want 1", len(trap.Seen()))
	}
}

// The error counter names an entry by its position in the list, never by its URL: /metrics is
// open, and an upstream's URL may hold a user and an internal host.
func TestErrorsMetricNamesEntriesByPosition(t *testing.T) {
	down, _ := status(t, 503, "down")
	missing, _ := status(t, 404, "no")
	c := parse(t, strings.Replace(missing.URL, "http://", "http://bob:s3cret@", 1)+"|"+down.URL+",direct")
	reader := sdkmetric.NewManualReader()
	c.Meter = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")
	c.Info(context.Background(), "example.com/m", "v1.0.0")
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == upstream.ErrorsMetric {
				for _, dp := range sum.DataPoints {
					entry, _ := dp.Attributes.Value("entry")
					kind, _ := dp.Attributes.Value("kind")
					got[entry.AsString()] = kind.AsString()
				}
			}
		}
	}
	if want := map[string]string{"1": "not_found", "2": "unavailable"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("errors by entry = %v, want %v", got, want)
	}
}

// A zip's stream tells the length the proxy declared, and -1 when it declared none.
func TestZipSize(t *testing.T) {
	for _, declared := range []bool{true, false} {
		srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
			if declared {
				w.Header().Set("Content-Length", "5")
			} else {
				w.(http.Flusher).Flush() // chunked: no length
			}
			io.WriteString(w, "12345")
		})
		c, err := upstream.Parse(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		rc, _, err := c.Zip(context.Background(), "example.com/m", "v1.0.0")
		if err != nil {
			t.Fatal(err)
		}
		want := int64(-1)
		if declared {
			want = 5
		}
		if z, ok := rc.(interface{ Size() int64 }); !ok || z.Size() != want {
			t.Errorf("declared %v: the stream's size %v (has Size: %v), want %d", declared, rc, ok, want)
		}
		rc.Close()
	}
}

// Index reads a proxy's GET /index page with since and limit in the query; a page that is not
// JSON lines is invalid, and a failing proxy unavailable.
func TestIndex(t *testing.T) {
	var query string
	body := `{"Path":"example.com/a","Version":"v1.0.0","Timestamp":"2026-12-01T10:00:00.5Z"}
{"Path":"example.com/b","Version":"v0.1.0","Timestamp":"2026-12-01T10:00:01Z"}
`
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/base/index" {
			http.NotFound(w, r)
			return
		}
		query = r.URL.RawQuery
		io.WriteString(w, body)
	})
	c := parse(t, srv.URL+"/base")
	since := time.Date(2026, 12, 1, 9, 0, 0, 123, time.FixedZone("x", 3600))
	list, err := c.Index(t.Context(), since, 7)
	want := []upstream.Indexed{
		{Path: "example.com/a", Version: "v1.0.0", Timestamp: time.Date(2026, 12, 1, 10, 0, 0, 5e8, time.UTC)},
		{Path: "example.com/b", Version: "v0.1.0", Timestamp: time.Date(2026, 12, 1, 10, 0, 1, 0, time.UTC)},
	}
	if err != nil || len(list) != 2 || list[0].Path != want[0].Path || !list[0].Timestamp.Equal(want[0].Timestamp) || list[1].Version != want[1].Version || !list[1].Timestamp.Equal(want[1].Timestamp) {
		t.Fatalf("Index = %v, %v; want %v", list, err, want)
	}
	if want := "limit=7&since=2026-12-01T08%3A00%3A00.000000123Z"; query != want {
		t.Errorf("query %q, want %q", query, want)
	}
	if _, err := c.Index(t.Context(), time.Time{}, 5); err != nil || query != "limit=5" {
		t.Errorf("Index from the start: query %q, %v", query, err)
	}
	long := strings.Repeat(`{"Path":"example.com/a","Version":"v1.0.0","Timestamp":"2026-12-01T10:00:00Z"}`+"\n", 6)
	huge := `{"Path":"example.com/` + strings.Repeat("a", 6000) + `","Version":"v1.0.0","Timestamp":"2026-12-01T10:00:00Z"}`
	for _, bad := range []string{"<html>", `{"Path":"a","Version":"v1","Timestamp":"yesterday"}`, `{"Path":1}`, `{"Path":"a"`, long, huge} {
		body = bad
		if _, err := c.Index(t.Context(), time.Time{}, 5); !errors.Is(err, gofer.ErrInvalid) {
			t.Errorf("Index of %q: %v, want ErrInvalid", bad, err)
		}
	}
	down, _ := status(t, 503, "down")
	if _, err := parse(t, down.URL).Index(t.Context(), time.Time{}, 5); !errors.Is(err, gofer.ErrUnavailable) {
		t.Errorf("Index of a proxy answering 503: %v, want ErrUnavailable", err)
	}
}

// OrElse answers from the first chain, and from the next one whatever the first failed with;
// Index asks the first entry alone.
func TestOrElse(t *testing.T) {
	var indexed atomic.Int32
	good := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/index" {
			indexed.Add(1)
		}
		io.WriteString(w, "v1.0.0\n")
	})
	for _, code := range []int{404, 503, 500} {
		bad, hits := status(t, code, "no")
		c := parse(t, bad.URL).OrElse(parse(t, good.URL))
		body, source, err := c.List(t.Context(), "example.com/m")
		if err != nil || string(body) != "v1.0.0\n" || source != good.URL || hits.Load() != 1 {
			t.Errorf("first answering %d: %q from %s, %v (first asked %d times)", code, body, source, err, hits.Load())
		}
		if _, err := c.Index(t.Context(), time.Time{}, 5); err == nil || indexed.Load() != 0 {
			t.Errorf("first answering %d: Index %v, and the next chain's index asked %d times", code, err, indexed.Load())
		}
	}
	if _, err := parse(t, "off").Index(t.Context(), time.Time{}, 5); !errors.Is(err, gofer.ErrNotFound) {
		t.Errorf("Index of off: %v", err)
	}
}
