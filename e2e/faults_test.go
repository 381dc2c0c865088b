package e2e

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/activities"
	"github.com/goferproxy/gofer/internal/fakeproxy"
	"github.com/goferproxy/gofer/internal/testserver"
	"github.com/goferproxy/gofer/server"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/workflows"
)

// stopS3AtCommit stops the S3 server when the commit of a zip comes to it: S3 goes down in the
// middle of a commit.
type stopS3AtCommit struct {
	storage.Blobs
	once sync.Once
}

func (s *stopS3AtCommit) Put(ctx context.Context, key string, r io.Reader) error {
	if _, _, ext, final := storage.ParseKey(key); final && ext == "zip" {
		s.once.Do(s3Server.Stop)
	}
	return s.Blobs.Put(ctx, key, r)
}

// assertWhole checks that nothing is half-visible: every final blob belongs to a stored version
// (a zip, to one stored with its zip), and every stored version has all its blobs (two, for
// one whose .info and .mod were stored alone).
func assertWhole(t *testing.T, blobs storage.Blobs, meta storage.Metadata) {
	t.Helper()
	ctx := context.Background()
	versions := map[string]int{}
	want := map[string]int{}
	err := blobs.Walk(ctx, "", "", func(key string, _ int64) error {
		path, version, ext, ok := storage.ParseKey(key)
		if !ok {
			return nil
		}
		rec, err := meta.Get(ctx, path, version)
		switch {
		case err != nil:
			t.Errorf("blob %s has no metadata: %v", key, err)
		case ext == "zip" && !rec.HasZip():
			t.Errorf("blob %s has no zip record", key)
		}
		want[path+"@"+version] = 2
		if rec.HasZip() {
			want[path+"@"+version] = 3
		}
		versions[path+"@"+version]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for v, n := range versions {
		if n != want[v] {
			t.Errorf("%s has %d of its %d blobs", v, n, want[v])
		}
	}
}

// S3 goes down in the middle of a commit: the commit retries, the version is visible only once
// S3 is back, and the retry reuses the download. (The zip is over the worker's local limit, so
// it is fetched through staging, as a big one is.)
func TestS3OutageDuringCommit(t *testing.T) {
	up := fakeproxy.New()
	blobs, _ := s3Store(t)
	meta, _ := mongoStore(t)
	t.Cleanup(func() { s3Server.Start() }) // in case the test fails while S3 is down
	g := startGofer(t, up.Start(t), options{fetchWait: 5 * time.Second, blobs: &stopS3AtCommit{Blobs: blobs}, meta: meta, localZipLimit: 1})

	code, hdr, body := testserver.Get(t, "GET", g.URL+"/example.com/hello/@v/v1.0.0.zip")
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Fatalf("with S3 down mid-commit: %d %q, want 503 with Retry-After", code, body)
	}
	if z, err := meta.GetZip(context.Background(), "example.com/hello", "v1.0.0"); !errors.Is(err, gofer.ErrNotFound) {
		t.Fatalf("zip record visible before the zip is stored: %+v, %v", z, err)
	}
	if err := s3Server.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := download(t, g.frontEnd(t, time.Minute), "example.com/hello@v1.0.0"); err != nil {
		t.Fatalf("after S3 came back: %v", err)
	}
	if n := up.Requests("/example.com/hello/@v/v1.0.0.zip"); n != 2 {
		t.Errorf("%d upstream zip downloads, want 2 (FetchZip's, refused as too big, then staging's); the commit retry should reuse the staged one", n)
	}
	assertWhole(t, blobs, meta)
	if *record {
		recordHistory(t, g, workflows.FetchID("example.com/hello", "v1.0.0", activities.FilesZip), "../workflows/testdata/fetch_zip_large_history.json")
	}
}

// MongoDB goes down: versions hot in a front end's memory are still served, other requests get
// 503 with Retry-After, a fetch in flight retries its commit, and once MongoDB is back every
// version is whole.
func TestMongoOutage(t *testing.T) {
	up := fakeproxy.New()
	blobs, _ := s3Store(t)
	meta, _ := mongoStore(t)
	t.Cleanup(func() { mongoServer.Start() })
	g := startGofer(t, up.Start(t), options{blobs: blobs, meta: meta})
	for _, pv := range []string{"example.com/hello@v1.0.0", "example.com/dep@v0.1.0"} {
		if _, err := download(t, g.URL, pv); err != nil {
			t.Fatal(err)
		}
	}
	fe := g.frontEnd(t, 20*time.Second)
	hot := fe + "/example.com/hello/@v/v1.0.0"
	if code, _, _ := testserver.Get(t, "GET", hot+".info"); code != 200 { // now hot in fe's memory
		t.Fatalf("warming: %d", code)
	}

	mongoServer.Stop()
	for _, ext := range []string{".info", ".mod", ".zip"} {
		if code, _, body := testserver.Get(t, "GET", hot+ext); code != 200 {
			t.Errorf("hot %s with MongoDB down: %d %q", ext, code, body)
		}
	}
	for _, url := range []string{
		fe + "/example.com/dep/@v/v0.1.0.info",   // stored, but not in fe's memory
		fe + "/example.com/hello/@v/v1.1.0.info", // not stored at all
	} {
		code, hdr, body := testserver.Get(t, "GET", url)
		if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
			t.Errorf("%s with MongoDB down: %d %q, want 503 with Retry-After", url, code, body)
		}
	}
	// A fetch that runs while MongoDB is down cannot commit, and keeps trying.
	req := workflows.FetchRequest{Path: "example.com/hello", Version: "v1.1.0", Files: activities.FilesMod}
	run, err := g.temporal.ExecuteWorkflow(context.Background(), workflows.FetchOptions(req), workflows.Fetch, req)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	err = run.Get(ctx, nil)
	cancel()
	if err == nil {
		t.Fatal("the fetch committed while MongoDB was down")
	}

	if err := mongoServer.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := run.Get(ctx, nil); err != nil {
		t.Fatalf("the fetch did not complete once MongoDB was back: %v", err)
	}
	for _, pv := range []string{"example.com/dep@v0.1.0", "example.com/hello@v1.1.0"} {
		m, err := download(t, fe, pv)
		if err != nil {
			t.Errorf("after the outage: %v", err)
		} else if !strings.HasPrefix(m.Sum, "h1:") {
			t.Errorf("%s: sum %q", pv, m.Sum)
		}
	}
	assertWhole(t, blobs, meta)
}

// With GOFER_ZIP_REDIRECT, a zip GET is answered with a redirect to a presigned S3 URL, which
// the go command follows to the same bytes; HEAD is answered by gofer itself.
func TestZipRedirectToPresignedURL(t *testing.T) {
	up := fakeproxy.New()
	upURL := up.Start(t)
	blobs, _ := s3Store(t)
	meta, _ := mongoStore(t)
	g := startGofer(t, upURL, options{blobs: blobs, meta: meta, zipRedirect: 5 * time.Minute})
	direct, err := download(t, upURL, "example.com/hello@v1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	through, err := download(t, g.URL, "example.com/hello@v1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if through.Sum != direct.Sum {
		t.Errorf("sum through the redirect %s, direct %s", through.Sum, direct.Sum)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(g.URL + "/example.com/hello/@v/v1.0.0.zip")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, s3Server.Endpoint+"/") {
		t.Errorf("zip GET: %d to %q, want 302 to the S3 endpoint", resp.StatusCode, loc)
	}
	if code, h, _ := testserver.Get(t, "HEAD", g.URL+"/example.com/hello/@v/v1.0.0.zip"); code != 200 || h.Get("Content-Length") == "" {
		t.Errorf("zip HEAD: %d %v", code, h)
	}
}

// With Temporal down, stored versions are still served (the hit path never needs it) and misses
// answer 503 with Retry-After; once Temporal is back, misses are fetched again.
func TestTemporalOutage(t *testing.T) {
	dev, err := testserver.Temporal()
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	up := fakeproxy.New()
	g := startGofer(t, up.Start(t), options{temporal: dev.Address, fetchWait: 5 * time.Second})
	t.Cleanup(func() { dev.Start() }) // let the worker stop cleanly
	if _, err := download(t, g.URL, "example.com/hello@v1.0.0"); err != nil {
		t.Fatal(err)
	}
	fe := g.frontEnd(t, 5*time.Second) // nothing in its memory: hits come from storage

	dev.Stop()
	for _, ext := range []string{".info", ".mod", ".zip"} {
		if code, _, body := testserver.Get(t, "GET", fe+"/example.com/hello/@v/v1.0.0"+ext); code != 200 {
			t.Errorf("stored %s with Temporal down: %d %q", ext, code, body)
		}
	}
	code, hdr, body := testserver.Get(t, "GET", fe+"/example.com/hello/@v/v1.1.0.info")
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Errorf("a miss with Temporal down: %d %q, want 503 with Retry-After", code, body)
	}
	// Or, if the settings say so, from the upstream without storing it.
	passthrough := g.frontEndWith(t, server.Config{FetchWait: 5 * time.Second, PassthroughWithoutTemporal: true})
	if _, err := download(t, passthrough, "example.com/dep@v0.1.0"); err != nil {
		t.Errorf("a passthrough miss with Temporal down: %v", err)
	}
	if _, err := g.meta.Get(context.Background(), "example.com/dep", "v0.1.0"); !errors.Is(err, gofer.ErrNotFound) {
		t.Errorf("the passthrough stored the version: %v", err)
	}

	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	// The dev server answers on its port a moment before it starts workflows again: a client
	// told 503 retries, as the go command's user would.
	back := g.frontEnd(t, time.Minute)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
		_, err := download(t, back, "example.com/hello@v1.1.0")
		if err == nil {
			break
		}
		if time.Now().After(deadline) || !strings.Contains(err.Error(), "503") {
			t.Fatalf("a miss once Temporal is back: %v", err)
		}
	}
}
