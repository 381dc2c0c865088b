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
	"github.com/goferproxy/gofer/internal/fakeproxy"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/workflows"
)

// stopS3AtCommit stops the S3 server when the first blob is written under a final key, so that
// S3 goes down in the middle of a commit.
type stopS3AtCommit struct {
	storage.Blobs
	once sync.Once
}

func (s *stopS3AtCommit) Put(ctx context.Context, key string, r io.Reader) error {
	if _, _, _, final := storage.ParseKey(key); final {
		s.once.Do(s3Server.Stop)
	}
	return s.Blobs.Put(ctx, key, r)
}

// S3 goes down in the middle of a commit: the commit retries, the version is visible only once
// S3 is back, and the retry reuses the download.
func TestS3OutageDuringCommit(t *testing.T) {
	up := fakeproxy.New()
	blobs, _ := s3Store(t)
	meta, _ := mongoStore(t)
	t.Cleanup(func() { s3Server.Start() }) // in case the test fails while S3 is down
	g := startGofer(t, up.Start(t), options{fetchWait: 5 * time.Second, blobs: &stopS3AtCommit{Blobs: blobs}, meta: meta})

	code, hdr, body := get(t, "GET", g.URL+"/example.com/hello/@v/v1.0.0.info")
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Fatalf("with S3 down mid-commit: %d %q, want 503 with Retry-After", code, body)
	}
	if _, err := meta.Get(context.Background(), "example.com/hello", "v1.0.0"); !errors.Is(err, gofer.ErrNotFound) {
		t.Fatalf("metadata visible before the blobs are stored: %v", err)
	}
	if err := s3Server.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := download(t, g.frontEnd(t, time.Minute), "example.com/hello@v1.0.0"); err != nil {
		t.Fatalf("after S3 came back: %v", err)
	}
	if n := up.Requests("/example.com/hello/@v/v1.0.0.zip"); n != 1 {
		t.Errorf("%d upstream zip downloads; the commit retry should reuse the staged one", n)
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
	if code, _, _ := get(t, "GET", hot+".info"); code != 200 { // now hot in fe's memory
		t.Fatalf("warming: %d", code)
	}

	mongoServer.Stop()
	for _, ext := range []string{".info", ".mod", ".zip"} {
		if code, _, body := get(t, "GET", hot+ext); code != 200 {
			t.Errorf("hot %s with MongoDB down: %d %q", ext, code, body)
		}
	}
	for _, url := range []string{
		fe + "/example.com/dep/@v/v0.1.0.info",   // stored, but not in fe's memory
		fe + "/example.com/hello/@v/v1.1.0.info", // not stored at all
	} {
		code, hdr, body := get(t, "GET", url)
		if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
			t.Errorf("%s with MongoDB down: %d %q, want 503 with Retry-After", url, code, body)
		}
	}
	// A fetch that runs while MongoDB is down cannot commit, and keeps trying.
	req := workflows.FetchRequest{Path: "example.com/hello", Version: "v1.1.0"}
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
}
