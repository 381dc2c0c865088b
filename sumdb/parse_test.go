package sumdb

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/internal/fakeproxy"
	"github.com/goferproxy/gofer/internal/fakesumdb"
)

// testName is the test databases' name: under .test, which resolves nowhere.
const testName = "sum.gofer.test"

// fakeGOROOT writes a GOROOT holding only the go command's key table (listing testName with
// a fresh key) and its alias mapping (aliasName to testName at aliasURL), as Go's sources do.
func fakeGOROOT(t *testing.T, aliasName, aliasURL string) (root, key string) {
	t.Helper()
	_, vkey, err := note.GenerateKey(rand.Reader, testName)
	if err != nil {
		t.Fatal(err)
	}
	root = t.TempDir()
	dir := filepath.Join(root, "src", "cmd", "go", "internal", "modfetch")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	table := "package modfetch\n\nvar knownGOSUMDB = map[string]string{\n\t\"" + testName + "\": \"" + vkey + "\",\n}\n"
	dial := "package modfetch\n\nfunc dbDial() {\n\tgosumdb := cfg.GOSUMDB\n\tif gosumdb == \"" + aliasName + "\" {\n\t\tgosumdb = \"" + testName + " " + aliasURL + "\"\n\t}\n}\n"
	for name, text := range map[string]string{"key.go": table, "sumdb.go": dial} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root, vkey
}

func TestParseGOSUMDB(t *testing.T) {
	const alias, aliasURL = "mirror.gofer.test", "https://mirror.gofer.test/db"
	root, knownKey := fakeGOROOT(t, alias, aliasURL)
	goroot := func() (string, error) { return root, nil }
	_, otherKey, err := note.GenerateKey(rand.Reader, "other.gofer.test/db")
	if err != nil {
		t.Fatal(err)
	}
	_, badNameKey, err := note.GenerateKey(rand.Reader, "sum.gofer.test?x")
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		value   string
		goroot  func() (string, error) // nil: the fake GOROOT
		want    *Database              // nil with wantErr "": GOSUMDB=off
		wantErr string                 // a piece of the error
	}{
		0:  {value: "off"},
		1:  {value: " off ", want: nil},
		2:  {value: otherKey, want: &Database{Name: "other.gofer.test/db", Key: otherKey}},
		3:  {value: otherKey + " http://127.0.0.1:8/db/", want: &Database{Name: "other.gofer.test/db", Key: otherKey, URL: "http://127.0.0.1:8/db"}},
		4:  {value: testName, want: &Database{Name: testName, Key: knownKey}},
		5:  {value: testName + " https://elsewhere.gofer.test", want: &Database{Name: testName, Key: knownKey, URL: "https://elsewhere.gofer.test"}},
		6:  {value: alias, want: &Database{Name: testName, Key: knownKey, URL: aliasURL}},
		7:  {value: "unknown.gofer.test", wantErr: "GOSUMDB=unknown.gofer.test has no key: set GOFER_SUMDB to name+key"},
		8:  {value: testName, goroot: func() (string, error) { return t.TempDir(), nil }, wantErr: "GOSUMDB=" + testName + " has no key: set GOFER_SUMDB to name+key"},
		9:  {value: testName, goroot: func() (string, error) { return "", errors.New("no go") }, wantErr: "has no key"},
		10: {value: testName + "+00000000+AAAA", wantErr: "invalid GOSUMDB"},
		11: {value: strings.Replace(otherKey, "+", "+0", 1), wantErr: "invalid GOSUMDB"},
		12: {value: otherKey + " ftp://127.0.0.1/db", wantErr: "scheme must be http or https"},
		13: {value: otherKey + " http://127.0.0.1/db?x=1", wantErr: "query or fragment"},
		14: {value: otherKey + " http://127.0.0.1/db extra", wantErr: "too many fields"},
		15: {value: "", wantErr: "GOSUMDB is empty"},
		16: {value: badNameKey, wantErr: "is not host[/path]"},
	} {
		g := tc.goroot
		if g == nil {
			g = goroot
		}
		got, err := parseGOSUMDB(tc.value, []string{"http://127.0.0.1:9"}, g)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%d: ParseGOSUMDB(%q) error = %v, want one containing %q", i, tc.value, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%d: ParseGOSUMDB(%q): %v", i, tc.value, err)
			continue
		}
		if (got == nil) != (tc.want == nil) {
			t.Errorf("%d: ParseGOSUMDB(%q) = %+v, want %+v", i, tc.value, got, tc.want)
			continue
		}
		if got == nil {
			continue
		}
		if got.Name != tc.want.Name || got.Key != tc.want.Key || got.URL != tc.want.URL {
			t.Errorf("%d: ParseGOSUMDB(%q) = {%q %q %q}, want {%q %q %q}", i, tc.value,
				got.Name, got.Key, got.URL, tc.want.Name, tc.want.Key, tc.want.URL)
		}
		if _, err := note.NewVerifier(got.Key); err != nil {
			t.Errorf("%d: key %q does not parse: %v", i, got.Key, err)
		}
	}
}

// TestParseGOSUMDBKnown reads a well-known database's key from the real go command's sources,
// finding its name there independently, so that no host is written here.
func TestParseGOSUMDBKnown(t *testing.T) {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	table, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "src/cmd/go/internal/modfetch/key.go"))
	if err != nil {
		t.Skipf("the go command's sources are not installed: %v", err)
	}
	m := regexp.MustCompile(`"([^"+\s]+)":\s*"([^"]+)"`).FindSubmatch(table)
	if m == nil {
		t.Fatalf("no database in the go command's key table:\n%s", table)
	}
	name, want := string(m[1]), string(m[2])
	db, err := ParseGOSUMDB(name, nil)
	if err != nil {
		t.Fatalf("ParseGOSUMDB(%q): %v", name, err)
	}
	if db.Name != name || db.Key != want || db.URL != "" {
		t.Errorf("ParseGOSUMDB(%q) = {%q %q %q}, want {%q %q \"\"}", name, db.Name, db.Key, db.URL, name, want)
	}
	v, err := note.NewVerifier(db.Key)
	if err != nil || v.Name() != name {
		t.Errorf("key %q: verifier %v, %v; want one named %q", db.Key, v, err, name)
	}
}

// statusServer answers every request with status and counts the requests per path.
type statusServer struct {
	status int
	mu     sync.Mutex
	hits   map[string]int
}

func startStatusServer(t *testing.T, status int) (*statusServer, string) {
	s := &statusServer{status: status, hits: make(map[string]int)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path]++
		s.mu.Unlock()
		w.WriteHeader(s.status)
	}))
	t.Cleanup(srv.Close)
	return s, srv.URL
}

func (s *statusServer) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

func TestResolveURL(t *testing.T) {
	ctx := context.Background()
	p := fakeproxy.New()
	db := fakesumdb.New(testName, p.GoSum)
	p.ServeSumDB(testName, db.Handler())
	proxyURL := p.Start(t)
	missing, missingURL := startStatusServer(t, http.StatusNotFound)
	gone, goneURL := startStatusServer(t, http.StatusGone)
	supported := "/sumdb/" + testName + "/supported"

	for i, tc := range []struct {
		upstreams []string
		want      string
	}{
		0: {[]string{missingURL, goneURL, proxyURL + "/", "direct"}, proxyURL + "/sumdb/" + testName},
		1: {[]string{missingURL}, "https://" + testName},
		2: {nil, "https://" + testName},
		3: {[]string{missingURL, "off", proxyURL}, "https://" + testName},
		4: {[]string{"direct", proxyURL}, "https://" + testName},
	} {
		before := p.Requests(supported)
		d, err := ParseGOSUMDB(db.VerifierKey(), tc.upstreams)
		if err != nil {
			t.Fatal(err)
		}
		got, err := d.base(ctx, http.DefaultClient)
		if err != nil || got != tc.want {
			t.Errorf("%d: URL through %q = %q, %v; want %q", i, tc.upstreams, got, err, tc.want)
		}
		// Found once, then kept.
		if again, _ := d.base(ctx, http.DefaultClient); again != got {
			t.Errorf("%d: second resolution = %q, want %q", i, again, got)
		}
		if n, want := p.Requests(supported)-before, strings.Count(tc.want, proxyURL); n != want {
			t.Errorf("%d: the proxy was asked %d times whether it proxies the database, want %d", i, n, want)
		}
	}
	if missing.count(supported) == 0 || gone.count(supported) == 0 {
		t.Errorf("404 and 410 proxies asked %d, %d times; want them asked first", missing.count(supported), gone.count(supported))
	}

	// A proxy that fails makes the database unavailable, and the failure is not kept.
	p.Fail(supported, 1, http.StatusBadGateway)
	d, err := ParseGOSUMDB(db.VerifierKey(), []string{proxyURL})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := d.base(ctx, http.DefaultClient); !errors.Is(err, gofer.ErrUnavailable) {
		t.Errorf("URL through a failing proxy = %q, %v; want ErrUnavailable", got, err)
	}
	if got, err := d.base(ctx, http.DefaultClient); got != proxyURL+"/sumdb/"+testName || err != nil {
		t.Errorf("URL after the proxy healed = %q, %v; want the proxy's", got, err)
	}

	// The URL found is the one used: a Checker with no URL reaches the database through the
	// proxy.
	c := &Checker{DB: d}
	zipHash, modHash := goSum(t, p, "example.com/hello", "v1.0.0")
	if by, err := c.Check(ctx, "example.com/hello", "v1.0.0", zipHash, modHash); err != nil || by != "sumdb "+testName {
		t.Errorf("Check through the proxied database = %q, %v", by, err)
	}
	if n := p.Requests("/sumdb/" + testName + "/lookup/example.com/hello@v1.0.0"); n != 1 {
		t.Errorf("the proxy got %d lookups, want 1; log %q", n, p.Log())
	}

	// An explicit URL is used as it is, with nothing asked.
	d = &Database{Name: testName, Key: db.VerifierKey(), URL: "http://127.0.0.1:9/db", upstreams: []string{missingURL}}
	before := missing.count(supported)
	if got, err := d.base(ctx, http.DefaultClient); got != d.URL || err != nil || missing.count(supported) != before {
		t.Errorf("explicit URL: %q, %v, %d probes; want %q, no probe", got, err, missing.count(supported)-before, d.URL)
	}
}
