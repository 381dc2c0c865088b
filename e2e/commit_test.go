package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/goferproxy/gofer/activities"
	"github.com/goferproxy/gofer/internal/fakeproxy"
	"github.com/goferproxy/gofer/server"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/upstream"
)

// noFetch makes a front end answer a miss "not found" instead of fetching (a fetch that fails
// as not found), so it shows only what is committed, and a 503 can only mean a committed version
// with a blob missing.
type noFetch struct{}

func (noFetch) ExecuteWorkflow(context.Context, client.StartWorkflowOptions, any, ...any) (client.WorkflowRun, error) {
	return notFoundRun{}, nil
}

type notFoundRun struct{ client.WorkflowRun }

func (notFoundRun) GetID() string    { return "fetch:not-in-this-test" }
func (notFoundRun) GetRunID() string { return "" }

func (notFoundRun) Get(context.Context, any) error {
	return temporal.NewNonRetryableApplicationError("not fetched in this test", "NotFound", nil)
}

// 20 goroutines commit the same verified version at once on S3 and MongoDB: exactly one
// metadata document and one set of blobs result, and readers polling all the while see either
// nothing or the whole version, never a part of it.
func TestConcurrentCommitsOnS3AndMongo(t *testing.T) {
	up := fakeproxy.New()
	chain, err := upstream.Parse(up.Start(t))
	if err != nil {
		t.Fatal(err)
	}
	blobs, _ := s3Store(t)
	meta, _ := mongoStore(t)
	defer meta.Close()
	a := &activities.Activities{Upstream: chain, Blobs: blobs, Meta: meta}
	var suite testsuite.WorkflowTestSuite
	activity := func(fn any, arg any, result any) {
		env := suite.NewTestActivityEnvironment()
		env.RegisterActivity(a)
		v, err := env.ExecuteActivity(fn, arg)
		if err != nil {
			t.Error(err)
			return
		}
		if err := v.Get(result); err != nil {
			t.Error(err)
		}
	}
	var staged activities.Staged
	activity(a.Download, activities.Job{Path: "example.com/hello", Version: "v1.0.0", RunID: "run"}, &staged)
	var verified activities.Verified
	activity(a.Verify, staged, &verified)
	want, _, err := chain.Zip(context.Background(), "example.com/hello", "v1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	wantZip, _ := io.ReadAll(want)
	want.Close()

	// Its upstream knows no module either: a miss is not found, whichever answers first.
	off, err := upstream.Parse("off")
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(server.New(server.Config{Blobs: blobs, Meta: meta, Upstream: off, Temporal: noFetch{}}))
	defer front.Close()
	stop := make(chan struct{})
	var seen, whole atomic.Int32
	var readers sync.WaitGroup
	for _, ext := range []string{"info", "mod", "zip", "zip"} {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := http.Get(front.URL + "/example.com/hello/@v/v1.0.0." + ext)
				if err != nil {
					t.Error(err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				seen.Add(1)
				switch {
				case resp.StatusCode == 200 && (ext != "zip" || bytes.Equal(b, wantZip)):
					whole.Add(1)
				case resp.StatusCode == 404: // nothing committed yet
				default:
					t.Errorf("a reader of .%s saw %d with %d bytes: part of a version", ext, resp.StatusCode, len(b))
				}
			}
		}()
	}
	var commits sync.WaitGroup
	for range 20 {
		commits.Add(1)
		go func() {
			defer commits.Done()
			var rec struct{ ZipHash string }
			activity(a.Commit, verified, &rec)
			if rec.ZipHash != verified.ZipHash {
				t.Errorf("a commit returned zip hash %q, want %q", rec.ZipHash, verified.ZipHash)
			}
		}()
	}
	commits.Wait()
	close(stop)
	readers.Wait()
	if whole.Load() == 0 {
		// The readers must at least see the committed version after the commits.
		resp, err := http.Get(front.URL + "/example.com/hello/@v/v1.0.0.zip")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("the committed version is not served: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	t.Logf("readers made %d requests during the commits, %d saw the whole version", seen.Load(), whole.Load())

	versions, err := meta.Versions(context.Background(), "example.com/hello")
	if err != nil || len(versions) != 1 {
		t.Errorf("metadata versions %v, %v; want exactly one", versions, err)
	}
	var final []string
	blobs.Walk(context.Background(), "", "", func(key string, _ int64) error {
		if _, _, _, ok := storage.ParseKey(key); ok {
			final = append(final, key)
		}
		return nil
	})
	if len(final) != 3 {
		t.Errorf("final blobs %v, want one .info, .mod and .zip", final)
	}
}
