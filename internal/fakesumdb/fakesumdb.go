// Package fakesumdb is a local checksum database for gofer's tests: golang.org/x/mod/sumdb's
// server and test log, signing with a key pair made for the test, serving the go.sum lines a
// test supplies (the fake upstream's, normally) on 127.0.0.1. It records every path it is asked,
// so that a test can prove a private module's name never reached it, and it can be made to
// lie (other hashes for a version), fail, or fork (a second history under the same key). It
// exists only for tests: it must never be imported by non-test code, never listen beyond the
// loopback interface, and never stand in for a real database.
package fakesumdb

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	xsumdb "golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// DB is a fake checksum database. Create it with New; its methods are safe for concurrent use,
// also while it serves.
type DB struct {
	name       string
	skey, vkey string
	gosum      func(path, version string) ([]byte, error)
	handler    http.Handler
	verifiers  note.Verifiers

	mu       sync.Mutex
	records  map[string][]byte // "path@version" → go.sum lines to record instead of gosum's
	failWith int               // nonzero: every request answers this status
	requests []string
	srv      *httptest.Server
}

// New returns a database called name (host[/path], such as "sum.gofer.test") with a fresh key
// pair, recording for each version it is asked about the go.sum lines gosum returns: the
// "path version h1:..." and "path version/go.mod h1:..." lines, as a go.sum holds them. An
// error matching fs.ErrNotExist from gosum makes the lookup answer 404 (the database does not
// know the version); any other error answers 500. It panics if name is not a valid key name.
func New(name string, gosum func(path, version string) ([]byte, error)) *DB {
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		panic("fakesumdb: " + err.Error())
	}
	return newDB(name, skey, vkey, gosum)
}

func newDB(name, skey, vkey string, gosum func(path, version string) ([]byte, error)) *DB {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		panic("fakesumdb: " + err.Error())
	}
	d := &DB{name: name, skey: skey, vkey: vkey, gosum: gosum, verifiers: note.VerifierList(v), records: make(map[string][]byte)}
	d.handler = xsumdb.NewServer(&ops{TestServer: xsumdb.NewTestServer(skey, d.lookup), d: d})
	return d
}

// Fork returns a second database with the same name and key but a history of its own, built
// from gosum: what a compromised database, or one rolled back to another state, would show.
// A client that verified a tree of d must refuse it.
func (d *DB) Fork(gosum func(path, version string) ([]byte, error)) *DB {
	return newDB(d.name, d.skey, d.vkey, gosum)
}

// Name returns the database's name.
func (d *DB) Name() string { return d.name }

// VerifierKey returns the "name+hash+key" verifier key: the GOSUMDB value for this database.
func (d *DB) VerifierKey() string { return d.vkey }

// SetRecord makes the database record lines (go.sum lines) for path@version instead of what
// gosum returns, so that a test can make it vouch for other hashes. It has effect only if the
// version is not yet in the log: a record, once logged, never changes.
func (d *DB) SetRecord(path, version string, lines []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.records[path+"@"+version] = append([]byte(nil), lines...)
}

// Fail makes every request answer status (a 5xx, say) until Fail(0).
func (d *DB) Fail(status int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failWith = status
}

// SignTree returns a tree head for tree signed with the database's key: with a tree it never
// had, a test can fake what a rolled-back database would have shown before.
func (d *DB) SignTree(tree tlog.Tree) []byte {
	signer, err := note.NewSigner(d.skey)
	if err != nil {
		panic("fakesumdb: " + err.Error())
	}
	msg, err := note.Sign(&note.Note{Text: string(tlog.FormatTree(tree))}, signer)
	if err != nil {
		panic("fakesumdb: " + err.Error())
	}
	return msg
}

// Handler returns the database's protocol handler, which serves "/latest", "/lookup/..." and
// "/tile/..." at the root (not "/supported": that is a proxy's answer) and records every
// request, to mount it elsewhere (fakeproxy.Proxy.ServeSumDB does).
func (d *DB) Handler() http.Handler { return http.HandlerFunc(d.serveHTTP) }

func (d *DB) serveHTTP(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	d.requests = append(d.requests, r.URL.Path)
	status := d.failWith
	d.mu.Unlock()
	if status != 0 {
		http.Error(w, "injected failure", status)
		return
	}
	d.handler.ServeHTTP(w, r)
}

// Start serves d on a random port of 127.0.0.1 until Close or the end of the test, and returns
// its base URL. Start after Close serves on a new port; Start while serving fails the test.
func (d *DB) Start(t testing.TB) string {
	t.Helper()
	d.mu.Lock()
	if d.srv != nil {
		d.mu.Unlock()
		t.Fatal("fakesumdb: Start called while already serving")
	}
	d.srv = httptest.NewServer(d.Handler())
	url := d.srv.URL
	d.mu.Unlock()
	t.Cleanup(d.Close)
	return url
}

// Close stops serving: new connections are refused. Closing a DB that is not serving does
// nothing. The log is kept; Start serves it again.
func (d *DB) Close() {
	d.mu.Lock()
	srv := d.srv
	d.srv = nil
	d.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// Requests returns the path of every request the database received, in arrival order, as it
// saw them (escaped, such as "/lookup/github.com/!upper/!case@v1.0.0").
func (d *DB) Requests() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.requests...)
}

// lookup is the test log's source of records.
func (d *DB) lookup(path, version string) ([]byte, error) {
	d.mu.Lock()
	lines, ok := d.records[path+"@"+version]
	d.mu.Unlock()
	if ok {
		return lines, nil
	}
	lines, err := d.gosum(path, version)
	if errors.Is(err, fs.ErrNotExist) {
		// x/mod's server answers 404 only for errors os.IsNotExist recognises, which does not
		// look through fmt.Errorf wrapping.
		return nil, &fs.PathError{Op: "lookup", Path: path + "@" + version, Err: fs.ErrNotExist}
	}
	return lines, err
}

// ops is x/mod's test log with bounds: asked for records or tiles beyond its tree (as a client
// holding a bigger tree from a rollback will), it answers 404 instead of panicking.
type ops struct {
	*xsumdb.TestServer
	d *DB
}

func (o *ops) size(ctx context.Context) (int64, error) {
	msg, err := o.Signed(ctx)
	if err != nil {
		return 0, err
	}
	n, err := note.Open(msg, o.d.verifiers)
	if err != nil {
		return 0, err
	}
	tree, err := tlog.ParseTree([]byte(n.Text))
	return tree.N, err
}

func (o *ops) ReadRecords(ctx context.Context, id, n int64) ([][]byte, error) {
	size, err := o.size(ctx)
	if err != nil {
		return nil, err
	}
	if id < 0 || n < 0 || id+n > size {
		return nil, &fs.PathError{Op: "read", Path: fmt.Sprintf("records %d+%d", id, n), Err: fs.ErrNotExist}
	}
	return o.TestServer.ReadRecords(ctx, id, n)
}

func (o *ops) ReadTileData(ctx context.Context, t tlog.Tile) ([]byte, error) {
	size, err := o.size(ctx)
	if err != nil {
		return nil, err
	}
	// The tile's last hash, at level L·H, must exist in a tree of this size.
	if end := (t.N<<t.H + int64(t.W)) << (t.L * t.H); end > size {
		return nil, &fs.PathError{Op: "read", Path: t.Path(), Err: fs.ErrNotExist}
	}
	return o.TestServer.ReadTileData(ctx, t)
}
