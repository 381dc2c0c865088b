package sumdb

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	xsumdb "golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/internal/fakeproxy"
	"github.com/goferproxy/gofer/internal/fakesumdb"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/storage/disk"
)

// env is a fake upstream, a test database that records the upstream's hashes, and a disk store.
type env struct {
	proxy *fakeproxy.Proxy
	db    *fakesumdb.DB
	dbURL string
	blobs storage.Blobs
	logs  *observer.ObservedLogs
}

func newEnv(t *testing.T) *env {
	t.Helper()
	p := fakeproxy.New()
	db := fakesumdb.New(testName, p.GoSum)
	blobs, err := disk.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &env{proxy: p, db: db, dbURL: db.Start(t), blobs: blobs}
}

// checker returns a new Checker of e's database over e's store; its logs go to e.logs.
func (e *env) checker() *Checker {
	core, logs := observer.New(zapcore.DebugLevel)
	e.logs = logs
	return &Checker{
		DB:    &Database{Name: e.db.Name(), Key: e.db.VerifierKey(), URL: e.dbURL},
		Blobs: e.blobs,
		Log:   zap.New(core),
	}
}

// goSum returns the h1: hashes of the zip and go.mod p serves for path@version.
func goSum(t *testing.T, p *fakeproxy.Proxy, path, version string) (zipHash, modHash string) {
	t.Helper()
	sum, err := p.GoSum(path, version)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(sum)), "\n") {
		f := strings.Fields(line)
		switch f[1] {
		case version:
			zipHash = f[2]
		case version + "/go.mod":
			modHash = f[2]
		}
	}
	if zipHash == "" || modHash == "" {
		t.Fatalf("GoSum(%s, %s) = %q", path, version, sum)
	}
	return zipHash, modHash
}

// fakeHash is an h1: hash of nothing the tests serve.
func fakeHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return "h1:" + base64.StdEncoding.EncodeToString(h[:])
}

func TestCheck(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	c := e.checker()
	zip100, mod100 := goSum(t, e.proxy, "example.com/hello", "v1.0.0")
	zip110, mod110 := goSum(t, e.proxy, "example.com/hello", "v1.1.0")
	lieZip := fakeHash("lie")
	// The database vouches for other bytes of dep than the upstream serves.
	zipDep, modDep := goSum(t, e.proxy, "example.com/dep", "v0.1.0")
	e.db.SetRecord("example.com/dep", "v0.1.0", []byte("example.com/dep v0.1.0 "+lieZip+"\nexample.com/dep v0.1.0/go.mod "+modDep+"\n"))

	for i, tc := range []struct {
		path, version, zipHash, modHash string
		wantKind                        error    // nil: success
		wantMsg                         []string // pieces of the error
	}{
		0: {"example.com/hello", "v1.0.0", zip100, mod100, nil, nil},
		1: {"example.com/hello", "v1.1.0", zip110, mod110, nil, nil},
		2: {"github.com/Upper/Case", "v1.0.0", "", "", nil, nil}, // hashes filled in below
		3: {"example.com/hello", "v1.0.0", zip110, mod100, gofer.ErrInvalid,
			[]string{"checksum mismatch for example.com/hello@v1.0.0 zip", "downloaded " + zip110, "checksum database " + zip100}},
		4: {"example.com/hello", "v1.0.0", zip100, fakeHash("mod"), gofer.ErrInvalid,
			[]string{"example.com/hello@v1.0.0 go.mod", "downloaded " + fakeHash("mod"), "checksum database " + mod100}},
		5: {"example.com/hello", "v1.9.9", zip100, mod100, gofer.ErrInvalid,
			[]string{"example.com/hello@v1.9.9", "not in the checksum database " + testName}},
		6: {"example.com/dep", "v0.1.0", zipDep, modDep, gofer.ErrInvalid,
			[]string{"zip: downloaded " + zipDep, "checksum database " + lieZip}},
		// A fetch of the .mod alone, or of the zip alone, checks the hash it has.
		7:  {"example.com/hello", "v1.0.0", "", mod100, nil, nil},
		8:  {"example.com/hello", "v1.0.0", zip110, "", gofer.ErrInvalid, []string{"checksum mismatch for example.com/hello@v1.0.0 zip"}},
		9:  {"example.com/hello", "v1.0.0", "", fakeHash("mod"), gofer.ErrInvalid, []string{"example.com/hello@v1.0.0 go.mod"}},
		10: {"example.com/hello", "v1.9.9", "", mod100, gofer.ErrInvalid, []string{"not in the checksum database"}},
	} {
		if i == 2 {
			tc.zipHash, tc.modHash = goSum(t, e.proxy, tc.path, tc.version)
		}
		by, err := c.Check(ctx, tc.path, tc.version, tc.zipHash, tc.modHash)
		if tc.wantKind == nil {
			if err != nil || by != "sumdb "+testName {
				t.Errorf("%d: Check(%s@%s) = %q, %v; want %q", i, tc.path, tc.version, by, err, "sumdb "+testName)
			}
			continue
		}
		if !errors.Is(err, tc.wantKind) || gofer.Kind(err) != tc.wantKind {
			t.Errorf("%d: Check(%s@%s) = %q, %v; want an error of kind %v", i, tc.path, tc.version, by, err, tc.wantKind)
			continue
		}
		for _, piece := range tc.wantMsg {
			if !strings.Contains(err.Error(), piece) {
				t.Errorf("%d: Check(%s@%s) error %q does not contain %q", i, tc.path, tc.version, err, piece)
			}
		}
	}
	// Every answer came from the database itself.
	reqs := strings.Join(e.db.Requests(), " ")
	for _, want := range []string{"/lookup/example.com/hello@v1.0.0", "/lookup/github.com/!upper/!case@v1.0.0", "/lookup/example.com/hello@v1.9.9", "/tile/8/0/"} {
		if !strings.Contains(reqs, want) {
			t.Errorf("the database got no request for %s; got %s", want, reqs)
		}
	}

	lines, err := c.Lines(ctx, "example.com/hello", "v1.1.0")
	if err != nil || len(lines) != 2 || lines[0] != "example.com/hello v1.1.0 "+zip110 || lines[1] != "example.com/hello v1.1.0/go.mod "+mod110 {
		t.Errorf("Lines = %q, %v", lines, err)
	}
	if _, err := c.Lines(ctx, "example.com/hello", "v1.9.9"); !errors.Is(err, gofer.ErrNotFound) {
		t.Errorf("Lines of an unknown version: %v, want ErrNotFound", err)
	}
}

func TestCheckOffAndPrivate(t *testing.T) {
	ctx := context.Background()
	var off Checker
	if by, err := off.Check(ctx, "example.com/hello", "v1.0.0", "h1:x", "h1:y"); by != "none (GOSUMDB=off)" || err != nil {
		t.Errorf("Check with no database = %q, %v", by, err)
	}

	e := newEnv(t)
	c := e.checker()
	c.NoSumDB = "example.com/private,*.corp.gofer.test"
	for i, path := range []string{"example.com/private", "example.com/private/sub", "git.corp.gofer.test/team/mod"} {
		if by, err := c.Check(ctx, path, "v1.0.0", "h1:x", "h1:y"); by != "none (GONOSUMDB)" || err != nil {
			t.Errorf("%d: Check(%s) = %q, %v; want none (GONOSUMDB)", i, path, by, err)
		}
		if lines, err := c.Lines(ctx, path, "v1.0.0"); lines != nil || err != nil {
			t.Errorf("%d: Lines(%s) = %q, %v; want nothing", i, path, lines, err)
		}
	}
	// A public module next to them is still checked, so the database was reachable all along.
	if by, err := c.Check(ctx, "example.com/privateer", "v1.0.0", fakeHash("z"), fakeHash("m")); gofer.Kind(err) != gofer.ErrInvalid || by != "" {
		t.Errorf("Check(example.com/privateer) = %q, %v; want it looked up (and unknown)", by, err)
	}
	reqs := e.db.Requests()
	if len(reqs) == 0 {
		t.Fatal("the database got no request at all")
	}
	for _, r := range reqs {
		if strings.Contains(r, "private/") || strings.Contains(r, "private@") || strings.Contains(r, "corp") {
			t.Errorf("the database was asked %s, which names a private module", r)
		}
	}
}

func TestCheckUnavailable(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	c := e.checker()
	zipHash, modHash := goSum(t, e.proxy, "example.com/hello", "v1.0.0")

	e.db.Fail(http.StatusServiceUnavailable)
	if by, err := c.Check(ctx, "example.com/hello", "v1.0.0", zipHash, modHash); gofer.Kind(err) != gofer.ErrUnavailable || by != "" {
		t.Errorf("Check with the database answering 503 = %q, %v; want ErrUnavailable", by, err)
	}
	// The failure is not remembered: the next check succeeds once the database is back.
	e.db.Fail(0)
	if by, err := c.Check(ctx, "example.com/hello", "v1.0.0", zipHash, modHash); err != nil {
		t.Errorf("Check after the database healed = %q, %v", by, err)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	zip2, mod2 := goSum(t, e.proxy, "example.com/hello", "v1.1.0")
	if _, err := c.Check(cancelled, "example.com/hello", "v1.1.0", zip2, mod2); gofer.Kind(err) != gofer.ErrUnavailable {
		t.Errorf("Check with a cancelled context: %v; want ErrUnavailable", err)
	}

	e.db.Close()
	if by, err := c.Check(ctx, "example.com/hello", "v1.1.0", zip2, mod2); gofer.Kind(err) != gofer.ErrUnavailable || by != "" {
		t.Errorf("Check with the database down = %q, %v; want ErrUnavailable", by, err)
	}
}

// heads lists the tree sizes of the persisted tree heads.
func heads(t *testing.T, b storage.Blobs) []string {
	t.Helper()
	var keys []string
	err := b.Walk(context.Background(), latestPrefix(testName), "", func(key string, _ int64) error {
		keys = append(keys, strings.TrimPrefix(key, latestPrefix(testName)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestTreeHeadPersisted(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	zip100, mod100 := goSum(t, e.proxy, "example.com/hello", "v1.0.0")
	if _, err := e.checker().Check(ctx, "example.com/hello", "v1.0.0", zip100, mod100); err != nil {
		t.Fatal(err)
	}
	if got := heads(t, e.blobs); len(got) != 1 || got[0] != "00000000000000000001" {
		t.Fatalf("tree heads after one lookup: %q, want [00000000000000000001]", got)
	}

	// A new Checker over the same store starts from that head and extends it.
	c := e.checker()
	g, err := c.generation()
	if err != nil {
		t.Fatal(err)
	}
	msg, err := g.ReadConfig(testName + "/latest")
	if err != nil {
		t.Fatal(err)
	}
	if tree, err := c.openTree(msg); err != nil || tree.N != 1 {
		t.Errorf("a new Checker's first tree head: %v, %v; want the persisted tree of size 1", tree, err)
	}
	zip110, mod110 := goSum(t, e.proxy, "example.com/hello", "v1.1.0")
	if _, err := c.Check(ctx, "example.com/hello", "v1.1.0", zip110, mod110); err != nil {
		t.Fatal(err)
	}
	// The newer head replaces the older one, which it was verified to extend.
	if got := heads(t, e.blobs); len(got) != 1 || got[0] != "00000000000000000002" {
		t.Errorf("tree heads after a second lookup: %q, want only size 2", got)
	}

	// Compare-and-swap: writing over anything but the newest head is a conflict.
	if err := g.WriteConfig(testName+"/latest", msg, e.db.SignTree(tlog.Tree{N: 5})); !errors.Is(err, xsumdb.ErrWriteConflict) {
		t.Errorf("WriteConfig from a stale head: %v, want ErrWriteConflict", err)
	}
}

func TestRollback(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	// gofer once verified a tree of 1000 records; the database now serves a tree of one.
	key := latestKey(testName, 1000)
	if err := e.blobs.Put(ctx, key, strings.NewReader(string(e.db.SignTree(tlog.Tree{N: 1000, Hash: tlog.RecordHash([]byte("x\n"))})))); err != nil {
		t.Fatal(err)
	}
	c := e.checker()
	zipHash, modHash := goSum(t, e.proxy, "example.com/hello", "v1.0.0")
	by, err := c.Check(ctx, "example.com/hello", "v1.0.0", zipHash, modHash)
	if err == nil || gofer.Kind(err) != gofer.ErrUnavailable {
		t.Fatalf("Check against a database rolled back from a tree gofer verified = %q, %v; want ErrUnavailable", by, err)
	}
	// The bigger head stays the newest: nothing smaller was written over it.
	if got := heads(t, e.blobs); len(got) != 1 {
		t.Errorf("tree heads: %q, want only the one of size 1000", got)
	}
}

func TestFork(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	zip100, mod100 := goSum(t, e.proxy, "example.com/hello", "v1.0.0")
	if _, err := e.checker().Check(ctx, "example.com/hello", "v1.0.0", zip100, mod100); err != nil {
		t.Fatal(err)
	}

	// The same name and key, another history: dep is its first record.
	fork := e.db.Fork(e.proxy.GoSum)
	forkURL := fork.Start(t)
	resp, err := http.Get(forkURL + "/lookup/example.com/dep@v0.1.0")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	e.dbURL = forkURL
	c := e.checker()
	zip110, mod110 := goSum(t, e.proxy, "example.com/hello", "v1.1.0")
	by, err := c.Check(ctx, "example.com/hello", "v1.1.0", zip110, mod110)
	if gofer.Kind(err) != gofer.ErrUnavailable || !strings.Contains(err.Error(), "SECURITY ERROR") {
		t.Fatalf("Check against a forked database = %q, %v; want ErrUnavailable naming the SECURITY ERROR", by, err)
	}
	if got := e.logs.FilterLevelExact(zapcore.ErrorLevel).FilterMessageSnippet("misbehaved").All(); len(got) != 1 {
		t.Errorf("error logs about the fork: %d, want 1; all logs: %v", len(got), e.logs.All())
	}
	// Remembered: not even a version verified before is vouched for any more.
	if by, err := c.Check(ctx, "example.com/hello", "v1.0.0", zip100, mod100); gofer.Kind(err) != gofer.ErrUnavailable {
		t.Errorf("Check after the fork = %q, %v; want ErrUnavailable", by, err)
	}

	// Control: with nothing verified before, the fork's history is as good as any.
	fresh := &Checker{DB: &Database{Name: testName, Key: e.db.VerifierKey(), URL: forkURL}}
	if by, err := fresh.Check(ctx, "example.com/hello", "v1.1.0", zip110, mod110); err != nil {
		t.Errorf("Check on the fork with no history = %q, %v", by, err)
	}
}

func TestClientReplaced(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	c := e.checker()
	c.maxLookups = 2
	var gens []*generation
	for _, v := range []string{"v1.0.0", "v1.1.0", "v1.0.0", "v1.1.0"} {
		g, err := c.generation()
		if err != nil {
			t.Fatal(err)
		}
		gens = append(gens, g)
		z, m := goSum(t, e.proxy, "example.com/hello", v)
		if by, err := c.Check(ctx, "example.com/hello", v, z, m); err != nil {
			t.Fatalf("Check(%s) = %q, %v", v, by, err)
		}
	}
	if gens[0] != gens[1] || gens[1] == gens[2] || gens[2] != gens[3] {
		t.Errorf("clients used: %p, want one client per two lookups", gens)
	}
	// The new client starts from what the old one stored: nothing is fetched again.
	if n := strings.Count(strings.Join(e.db.Requests(), " "), "/lookup/"); n != 2 {
		t.Errorf("the database got %d lookups, want 2: %q", n, e.db.Requests())
	}
}
