package e2e

import (
	"bytes"
	"context"
	"testing"

	"github.com/goferproxy/gofer/internal/fakeproxy"
	"github.com/goferproxy/gofer/internal/testserver"
	"github.com/goferproxy/gofer/workflows"
)

// A stored version never changes: a second fetch of it (an operator's forced refresh, or a
// racing worker) that gets other bytes from the upstream keeps the stored bytes and raises the
// checksum alarm.
func TestRefetchWithOtherBytesKeepsTheStoredVersion(t *testing.T) {
	up := fakeproxy.New()
	g := startGofer(t, up.Start(t), options{})
	url := g.URL + "/example.com/hello/@v/v1.0.0.zip"
	_, _, original := testserver.Get(t, "GET", url)
	if len(original) == 0 {
		t.Fatal("no zip")
	}
	up.Add("example.com/hello", "v1.0.0", map[string]string{"go.mod": "module example.com/hello\n", "new.go": "package hello\n"})

	// A run under another workflow ID, as a forced refresh would start.
	req := workflows.FetchRequest{Path: "example.com/hello", Version: "v1.0.0"}
	opts := workflows.FetchOptions(req)
	opts.ID = "refresh:" + opts.ID
	run, err := g.temporal.ExecuteWorkflow(context.Background(), opts, workflows.Fetch, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Get(context.Background(), nil); err != nil {
		t.Fatalf("the refresh failed: %v", err)
	}
	if n := g.alarms(t, "stored-mismatch"); n != 1 {
		t.Errorf("%d stored-mismatch alarms, want 1", n)
	}
	if _, _, now := testserver.Get(t, "GET", g.frontEnd(t, 0)+"/example.com/hello/@v/v1.0.0.zip"); !bytes.Equal(now, original) {
		t.Error("the stored zip changed")
	}
}
