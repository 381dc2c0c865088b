package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/app"
	"github.com/goferproxy/gofer/internal/testserver"
	"github.com/goferproxy/gofer/internal/teststores"
	"github.com/goferproxy/gofer/storage/storagetest"
	"github.com/goferproxy/gofer/workflows"
)

// `gofer gc --dry-run` lists exactly the final blobs that no metadata record names and the staged
// files by fetch run, and deletes nothing; without --dry-run or --remove-staged it refuses.
func TestGCListsOrphans(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("GOFER_DATA_DIR", dir)
	ctx := context.Background()
	blobs, meta := teststores.Open(t, dir)
	put := func(key string) {
		if err := blobs.Put(ctx, key, strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
	}
	for _, ext := range []string{"info", "mod", "zip"} {
		put(storagetest.Key(t, "example.com/kept", "v1.0.0", ext))
		put(storagetest.Key(t, "example.com/modonly", "v1.0.0", ext))
	}
	put(storagetest.Key(t, "example.com/orphan", "v1.0.0", "zip"))
	put(storagetest.Key(t, "example.com/ziponly", "v1.0.0", "zip"))
	put(storagetest.StagingKey(t, "example.com/kept", "v1.1.0", "run/1", "zip"))
	if err := meta.Insert(ctx, gofer.Version{Path: "example.com/kept", Version: "v1.0.0", ZipHash: "h1:x"}); err != nil {
		t.Fatal(err)
	}
	// A version whose .info and .mod were stored alone: its zip blob is no part of it.
	if err := meta.Insert(ctx, gofer.Version{Path: "example.com/modonly", Version: "v1.0.0", ModHash: "h1:y"}); err != nil {
		t.Fatal(err)
	}
	// A zip committed before its version's .mod: its own record names it.
	if err := meta.InsertZip(ctx, gofer.Version{Path: "example.com/ziponly", Version: "v1.0.0", ZipHash: "h1:z"}); err != nil {
		t.Fatal(err)
	}
	meta.Close() // gc opens it itself

	var out bytes.Buffer
	if err := run(ctx, []string{"gc", "--dry-run"}, &out); err != nil {
		t.Fatal(err)
	}
	want := "example.com/modonly/@v/v1.0.0.zip\t1\nexample.com/orphan/@v/v1.0.0.zip\t1\n2 orphaned blobs\n" +
		"_staging/example.com/kept/@v/v1.1.0/run/\t1 files\t1 bytes\n" +
		"1 fetch runs with staged files (gofer gc --remove-staged removes those of runs that have ended)\n"
	if out.String() != want {
		t.Errorf("gc printed %q, want %q", out.String(), want)
	}
	if _, err := os.Stat(filepath.Join(dir, "blobs", "example.com/orphan/@v/v1.0.0.zip")); err != nil {
		t.Errorf("gc --dry-run deleted the orphan: %v", err)
	}
	if err := run(ctx, []string{"gc"}, &out); err == nil || !strings.Contains(err.Error(), "--dry-run") || !strings.Contains(err.Error(), "--remove-staged") {
		t.Errorf("gc without --dry-run: %v", err)
	}
}

// `gofer gc --remove-staged` removes the staged files of fetch runs that have ended, or that
// Temporal no longer knows, and keeps those of a run still running; temporary files a crash left
// among them go too.
func TestGCRemovesStagedFilesOfEndedRuns(t *testing.T) {
	c := devTemporal(t)
	dir := t.TempDir()
	t.Setenv("GOFER_DATA_DIR", dir)
	ctx := context.Background()
	blobs, meta := teststores.Open(t, dir)
	meta.Close()

	// A fetch that stays running: no worker takes it.
	req := workflows.FetchRequest{Path: "example.com/running", Version: "v1.0.0"}
	running, err := c.ExecuteWorkflow(ctx, workflows.FetchOptions(req), workflows.Fetch, req)
	if err != nil {
		t.Fatal(err)
	}
	put := func(key string) {
		if err := blobs.Put(ctx, key, strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
	}
	keep := storagetest.StagingKey(t, req.Path, req.Version, running.GetRunID()+"/1", "zip")
	put(keep)
	gone := storagetest.StagingKey(t, "example.com/gone", "v1.0.0", "0b9b6a3e-0000-4000-8000-00000000dead/1", "zip")
	put(gone)
	stray := filepath.Join(dir, "blobs", filepath.FromSlash(storagetest.StagingPrefix(t, "example.com/gone", "v1.0.0", "0b9b6a3e-0000-4000-8000-00000000dead")), ".2.zip.tmp-42")
	if err := os.WriteFile(stray, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	// In a namespace that knows none of the fetches, every run would look ended: refused.
	if err := run(ctx, []string{"gc", "--remove-staged", "--temporal-namespace", testserver.Namespace(1)}, &out); err == nil {
		t.Errorf("gc --remove-staged in another namespace: no error\n%s", out.String())
	}
	if r, _, err := blobs.Open(ctx, gone); err != nil {
		t.Fatalf("gc --remove-staged in another namespace removed a staged file: %v", err)
	} else {
		r.Close()
	}
	if err := run(ctx, []string{"gc", "--remove-staged"}, &out); err != nil {
		t.Fatalf("gc --remove-staged: %v\n%s", err, out.String())
	}
	if r, _, err := blobs.Open(ctx, keep); err != nil {
		t.Errorf("the staged file of a running fetch was removed: %v", err)
	} else {
		r.Close()
	}
	if r, _, err := blobs.Open(ctx, gone); err == nil {
		r.Close()
		t.Error("the staged file of a run Temporal does not know was kept")
	}
	if _, err := os.Stat(stray); err == nil {
		t.Error("a crash's temporary file among an ended run's staged files was kept")
	}
	if !strings.Contains(out.String(), "1 of 2 fetch runs") {
		t.Errorf("gc printed:\n%s", out.String())
	}
}

// devTemporal starts a Temporal dev server for the test, points the GOFER_TEMPORAL_* variables
// at a namespace of it, and returns a client of that namespace; all stop with the test.
func devTemporal(t *testing.T) client.Client {
	t.Helper()
	dev, err := testserver.Temporal()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dev.Close)
	ns := testserver.Namespace(0)
	t.Setenv("GOFER_TEMPORAL_ADDRESS", dev.Address)
	t.Setenv("GOFER_TEMPORAL_NAMESPACE", ns)
	c, err := client.Dial(client.Options{HostPort: dev.Address, Namespace: ns, Logger: app.TemporalLogger(zap.NewNop())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}
