// Package fakeproxy is an in-test fake upstream GOPROXY: it serves small generated modules
// (embedded txtar files under testdata/, plus any a test adds) over the module proxy protocol on
// 127.0.0.1, and lets a test break it on purpose (failing, slow, lying or vanishing answers) to
// pin how gofer behaves when its upstream misbehaves. It exists only for tests: it must never be
// imported by non-test code, never listen beyond the loopback interface, and never stand in for
// a real upstream.
package fakeproxy

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// Proxy is a fake GOPROXY. Create it with New; all methods are safe for concurrent use, also
// while the server is running, and changes apply to the next request.
type Proxy struct {
	mu       sync.Mutex
	mods     map[string]map[string]*entry // module path → canonical version → files
	hidden   map[string]bool              // "path@version" answering 404
	fails    map[string]*failure          // escaped URL path → injected failure
	delay    time.Duration
	rate     int            // bytes per second of a body; 0: no limit
	requests map[string]int // escaped URL path → requests received
	log      []string       // escaped URL paths in arrival order
	srv      *httptest.Server
	stop     chan struct{}           // closed by Close, so delayed handlers return at once
	sumdbs   map[string]http.Handler // checksum database name → handler (ServeSumDB)
}

// entry holds the bytes served for one module version; a nil field answers 404.
type entry struct {
	info, mod, zip []byte
}

type failure struct {
	left   int // requests still to fail; negative means until Heal
	status int
}

// New returns a Proxy serving every module version under testdata/. It panics if the embedded
// testdata is malformed, which only a change to this package can cause.
func New() *Proxy {
	p := &Proxy{
		mods:     make(map[string]map[string]*entry),
		hidden:   make(map[string]bool),
		fails:    make(map[string]*failure),
		requests: make(map[string]int),
	}
	if err := p.loadTestdata(); err != nil {
		panic("fakeproxy: " + err.Error())
	}
	return p
}

// Start serves p on a random port of 127.0.0.1 until Close or the end of the test, and returns
// the base URL to use as GOPROXY. Calling Start again after Close serves on a new port; calling
// it while p is serving fails the test.
func (p *Proxy) Start(t testing.TB) string {
	t.Helper()
	p.mu.Lock()
	if p.srv != nil {
		p.mu.Unlock()
		t.Fatal("fakeproxy: Start called while already serving")
	}
	// httptest.NewServer listens on 127.0.0.1 with a random port.
	p.srv = httptest.NewServer(http.HandlerFunc(p.serveHTTP))
	p.stop = make(chan struct{})
	url := p.srv.URL
	p.mu.Unlock()
	t.Cleanup(p.Close)
	return url
}

// Close stops the server: its listener is closed, so new connections are refused, and it
// returns once in-flight requests have ended (delayed ones end at once). Closing a Proxy that is
// not serving does nothing.
func (p *Proxy) Close() {
	p.mu.Lock()
	srv, stop := p.srv, p.stop
	p.srv, p.stop = nil, nil
	p.mu.Unlock()
	if srv == nil {
		return
	}
	close(stop)
	srv.Close()
}

// Add serves a generated module version: files maps slash-separated paths inside the module to
// their contents and must include "go.mod", which is served as the .mod file as it is (so it may
// name another module). The zip is built with golang.org/x/mod/zip and the .info time is a fixed
// date. Add replaces an existing version and un-hides it. It panics if files cannot make a
// module zip (a bad path or version, a missing go.mod, a file name the zip rules refuse), since
// that is a mistake in the test.
func (p *Proxy) Add(path, version string, files map[string]string) {
	e, err := build(path, version, defaultTime, files)
	if err != nil {
		panic(fmt.Sprintf("fakeproxy: Add(%q, %q): %v", path, version, err))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.put(path, version, e)
}

// SetFile replaces the bytes served for one file of a module version, ext being "info", "mod"
// or "zip", so that a test can serve wrong bytes (see RawZip). A nil body makes that file answer
// 404. If the version does not exist it is created with only this file, and it is listed. It
// panics on any other ext.
func (p *Proxy) SetFile(path, version, ext string, body []byte) {
	if body != nil {
		body = append([]byte{}, body...)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.mods[path][version]
	if e == nil {
		e = &entry{}
		p.put(path, version, e)
	}
	switch ext {
	case "info":
		e.info = body
	case "mod":
		e.mod = body
	case "zip":
		e.zip = body
	default:
		panic(fmt.Sprintf("fakeproxy: SetFile(%q, %q, %q): ext is not info, mod or zip", path, version, ext))
	}
}

// put stores e as path@version and un-hides it; p.mu must be held.
func (p *Proxy) put(path, version string, e *entry) {
	if p.mods[path] == nil {
		p.mods[path] = make(map[string]*entry)
	}
	p.mods[path][version] = e
	delete(p.hidden, path+"@"+version)
}

// Hide makes a module version vanish, as if the upstream had lost it: its files answer 404 and
// it leaves the list, @latest and query resolution. Add brings it back.
func (p *Proxy) Hide(path, version string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hidden[path+"@"+version] = true
}

// Fail makes the next n requests for urlPath, the exact escaped path of a request such as
// "/github.com/!upper/!case/@v/v1.0.0.zip", answer status with the body "injected failure". A
// negative n fails every request until Heal. A later Fail for the same path replaces this one.
func (p *Proxy) Fail(urlPath string, n int, status int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n == 0 {
		delete(p.fails, urlPath)
		return
	}
	p.fails[urlPath] = &failure{left: n, status: status}
}

// Heal cancels any failure injected for urlPath by Fail.
func (p *Proxy) Heal(urlPath string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.fails, urlPath)
}

// Delay holds every response, injected failures included, for d before answering; zero turns
// the delay off. A delayed request ends early if its client goes away or p is closed.
func (p *Proxy) Delay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = d
}

// Throttle sends every body at bytesPerSecond, in small writes, as a slow upstream does; zero
// turns the limit off.
func (p *Proxy) Throttle(bytesPerSecond int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rate = bytesPerSecond
}

// Requests reports how many requests p has received for the exact escaped URL path urlPath,
// failed ones included.
func (p *Proxy) Requests(urlPath string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests[urlPath]
}

// Log returns the escaped URL path of every request p has received, in arrival order.
func (p *Proxy) Log() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.log...)
}
