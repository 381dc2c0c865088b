package e2e

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/internal/fakeproxy"
	"github.com/goferproxy/gofer/internal/fakesumdb"
	"github.com/goferproxy/gofer/internal/testserver"
	"github.com/goferproxy/gofer/storage/storagetest"
	"github.com/goferproxy/gofer/sumdb"
)

// withSumDB starts a fake upstream that also serves a local test checksum database at its
// /sumdb/<name>/ (as the public proxy serves the public one), and gofer checking against it.
func withSumDB(t *testing.T, noSumDB string) (*fakeproxy.Proxy, *fakesumdb.DB, *proxy) {
	t.Helper()
	up, db, upURL, parsed := sumdbUpstream(t)
	g := startGofer(t, upURL, options{sumdb: &sumdb.Checker{DB: parsed, NoSumDB: noSumDB}})
	return up, db, g
}

// sumdbUpstream starts a fake upstream that also serves a local test checksum database of its
// modules at /sumdb/<name>/, and returns them, the upstream's URL and the database as
// GOFER_SUMDB names it.
func sumdbUpstream(t *testing.T) (*fakeproxy.Proxy, *fakesumdb.DB, string, *sumdb.Database) {
	t.Helper()
	up := fakeproxy.New()
	db := fakesumdb.New("sum.gofer.test", up.GoSum)
	up.ServeSumDB(db.Name(), db.Handler())
	upURL := up.Start(t)
	parsed, err := sumdb.ParseGOSUMDB(db.VerifierKey(), []string{upURL})
	if err != nil {
		t.Fatal(err)
	}
	return up, db, upURL, parsed
}

// With GOPROXY=<gofer>, GOSUMDB=<test database> and no go.sum, the go command downloads and
// verifies modules through gofer alone (the database's name resolves nowhere): gofer checked
// them before storing, and serves the database's tiles and lookups at /sumdb/.
func TestGoVerifiesThroughGoferSumDB(t *testing.T) {
	_, db, g := withSumDB(t, "")
	for _, pv := range []string{"example.com/hello@v1.0.0", "github.com/Upper/Case@v1.0.0"} {
		if _, err := download(t, g.URL, pv, "GOSUMDB="+db.VerifierKey()); err != nil {
			t.Fatal(err)
		}
	}
	rec, err := g.meta.Get(context.Background(), "example.com/hello", "v1.0.0")
	if err != nil || rec.VerifiedBy != "sumdb "+db.Name() {
		t.Errorf("record verified by %q (%v), want the test database", rec.VerifiedBy, err)
	}
	if code, _, _ := testserver.Get(t, "GET", g.URL+"/sumdb/"+db.Name()+"/supported"); code != 200 {
		t.Errorf("supported: %d", code)
	}
	if code, _, _ := testserver.Get(t, "GET", g.URL+"/sumdb/sum.other.test/supported"); code != 404 {
		t.Errorf("supported for a database not configured: %d, want 404", code)
	}
}

// Content that differs from the checksum database (the zip in one case, the go.mod in the other)
// is refused: nothing is stored, the alarm is logged and counted, and the go command's error
// names the reason.
func TestSumDBMismatchIsRefused(t *testing.T) {
	up, db, g := withSumDB(t, "")
	for i, c := range []struct{ version, wrong string }{
		{"v1.0.0", "zip"},
		{"v1.1.0", "go.mod"},
	} {
		lines, err := up.GoSum("example.com/hello", c.version)
		if err != nil {
			t.Fatal(err)
		}
		zipLine, modLine, _ := strings.Cut(strings.TrimSuffix(string(lines), "\n"), "\n")
		bad := "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
		if c.wrong == "zip" {
			zipLine = zipLine[:strings.LastIndex(zipLine, " ")+1] + bad
		} else {
			modLine = modLine[:strings.LastIndex(modLine, " ")+1] + bad
		}
		db.SetRecord("example.com/hello", c.version, []byte(zipLine+"\n"+modLine+"\n"))

		code, _, body := testserver.Get(t, "GET", g.URL+"/example.com/hello/@v/"+c.version+".zip")
		if code != http.StatusGone || !strings.Contains(string(body), "checksum mismatch") || !strings.Contains(string(body), bad) {
			t.Errorf("%d: %s differs: %d %q, want 410 naming the mismatch", i, c.wrong, code, body)
		}
		out, err := download(t, g.URL, "example.com/hello@"+c.version, "GOSUMDB="+db.VerifierKey())
		if err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
			t.Errorf("%d: the go command: %v %+v, want an error naming the checksum mismatch", i, err, out)
		}
		// What the database refuses is not stored: a version whose zip is refused keeps its
		// .mod, served alone; of one whose .mod is refused, the zip is not even downloaded.
		rec, err := g.meta.Get(context.Background(), "example.com/hello", c.version)
		refused := []string{"zip"}
		if c.wrong == "zip" && (err != nil || rec.HasZip()) {
			t.Errorf("%d: record %+v, %v; want the .mod's alone", i, rec, err)
		}
		if c.wrong == "go.mod" {
			refused = []string{"info", "mod", "zip"}
			if !errors.Is(err, gofer.ErrNotFound) {
				t.Errorf("%d: stored: %+v, %v", i, rec, err)
			}
			if z, err := g.meta.GetZip(context.Background(), "example.com/hello", c.version); !errors.Is(err, gofer.ErrNotFound) {
				t.Errorf("%d: the zip's record stored: %+v, %v", i, z, err)
			}
			if n := up.Requests("/example.com/hello/@v/" + c.version + ".zip"); n != 0 {
				t.Errorf("%d: the upstream saw %d zip requests for a version whose .mod was refused", i, n)
			}
		}
		for _, ext := range refused {
			if r, _, err := g.blobs.Open(context.Background(), storagetest.Key(t, "example.com/hello", c.version, ext)); err == nil {
				r.Close()
				t.Errorf("%d: %s blob stored", i, ext)
			}
		}
	}
	if n := g.alarms(t, "sumdb-mismatch"); n < 2 {
		t.Errorf("%d sumdb-mismatch alarms counted, want one per refused fetch", n)
	}
	if n := g.logs.FilterMessageSnippet("checksum alarm").Len(); n < 2 {
		t.Errorf("%d checksum alarms logged", n)
	}
}

// A private module's name never reaches the checksum database: not when gofer fetches it, and
// not when a client asks gofer's /sumdb/ for it.
func TestPrivateModulesStayPrivate(t *testing.T) {
	up, db, g := withSumDB(t, "example.com/private")
	up.Add("example.com/private/lib", "v1.0.0", map[string]string{"go.mod": "module example.com/private/lib\n", "lib.go": "package lib\n"})
	if _, err := download(t, g.URL, "example.com/private/lib@v1.0.0", "GOSUMDB="+db.VerifierKey(), "GONOSUMDB=example.com/private"); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := testserver.Get(t, "GET", g.URL+"/sumdb/"+db.Name()+"/lookup/example.com/private/lib@v1.0.0"); code != 404 {
		t.Errorf("lookup of a private module through gofer: %d, want 404", code)
	}
	rec, err := g.meta.Get(context.Background(), "example.com/private/lib", "v1.0.0")
	if err != nil || !strings.Contains(rec.VerifiedBy, "none") {
		t.Errorf("record verified by %q (%v)", rec.VerifiedBy, err)
	}
	// A public module still goes to the database, so the log below is not empty by accident.
	if _, err := download(t, g.URL, "example.com/hello@v1.0.0", "GOSUMDB="+db.VerifierKey(), "GONOSUMDB=example.com/private"); err != nil {
		t.Fatal(err)
	}
	reqs := db.Requests()
	if len(reqs) == 0 {
		t.Fatal("the database saw no request at all")
	}
	for _, r := range reqs {
		if strings.Contains(r, "private") {
			t.Errorf("the checksum database was asked %q", r)
		}
	}
}
