package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goferproxy/gofer/activities"
	"github.com/goferproxy/gofer/internal/fakeproxy"
	"github.com/goferproxy/gofer/internal/teststores"
	"github.com/goferproxy/gofer/storage/storagetest"
	"github.com/goferproxy/gofer/upstream"
	"github.com/goferproxy/gofer/worker"
	"github.com/goferproxy/gofer/workflows"
)

// `gofer scrub` runs a scrub on the workers of its namespace, prints the report and the run's
// path in the Temporal UI, and fails when the scrub found a mismatch.
func TestScrubCommand(t *testing.T) {
	c := devTemporal(t)
	dir := t.TempDir()
	blobs, meta := teststores.Open(t, dir)
	chain, err := upstream.Parse(fakeproxy.New().Start(t))
	if err != nil {
		t.Fatal(err)
	}
	w := worker.New(c, &activities.Activities{Upstream: chain, Blobs: blobs, Meta: meta})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ctx := context.Background()
	req := workflows.FetchRequest{Path: "example.com/hello", Version: "v1.0.0"}
	run, err := c.ExecuteWorkflow(ctx, workflows.FetchOptions(req), workflows.Fetch, req)
	if err == nil {
		err = run.Get(ctx, nil)
	}
	if err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	if err := scrubCmd(ctx, nil, &out); err != nil {
		t.Fatalf("scrub of a clean store: %v\n%s", err, &out)
	}
	if !strings.Contains(out.String(), "1 versions checked: 3 files") || !strings.Contains(out.String(), "/namespaces/"+os.Getenv("GOFER_TEMPORAL_NAMESPACE")+"/workflows/scrub:") {
		t.Errorf("scrub printed:\n%s", &out)
	}

	zip := filepath.Join(dir, "blobs", filepath.FromSlash(storagetest.Key(t, "example.com/hello", "v1.0.0", "zip")))
	b, err := os.ReadFile(zip)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(zip, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err = scrubCmd(ctx, nil, &out)
	if err == nil || !strings.Contains(err.Error(), "1 mismatches") {
		t.Errorf("scrub of a damaged store: err = %v, want 1 mismatch", err)
	}
	if !strings.Contains(out.String(), "\nexample.com/hello@v1.0.0 zip: ") {
		t.Errorf("scrub printed no line for the damaged zip:\n%s", &out)
	}
	if _, err := os.Stat(zip); err != nil {
		t.Errorf("the damaged zip is gone: %v", err)
	}
}
