package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/goferproxy/gofer/internal/fakeproxy"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/storage/disk"
	"github.com/goferproxy/gofer/storage/storagetest"
	"github.com/goferproxy/gofer/worker"
	"github.com/goferproxy/gofer/workflows"
)

// A zip corrupted where it is stored, on disk or in S3 (its file under versitygw's posix root),
// is reported by the scrub with the checksum alarm; nothing is deleted or changed.
func TestScrubReportsCorruptBlob(t *testing.T) {
	for _, kind := range []string{"disk", "s3"} {
		t.Run(kind, func(t *testing.T) {
			var o options
			var root string // where the store keeps the file of a key
			switch kind {
			case "disk":
				root = filepath.Join(t.TempDir(), "blobs")
				blobs, err := disk.New(root)
				if err != nil {
					t.Fatal(err)
				}
				o.blobs = blobs
			case "s3":
				blobs, bucket := s3Store(t)
				o.blobs, root = blobs, filepath.Join(s3Server.Root, bucket)
			}
			up := fakeproxy.New()
			g := startGofer(t, up.Start(t), o)
			for _, pv := range []string{"example.com/hello@v1.0.0", "github.com/Upper/Case@v1.0.0"} {
				if _, err := download(t, g.URL, pv); err != nil {
					t.Fatal(err)
				}
			}
			ctx := context.Background()
			rec, err := g.meta.Get(ctx, "example.com/hello", "v1.0.0")
			if err != nil {
				t.Fatal(err)
			}
			key := storagetest.Key(t, "example.com/hello", "v1.0.0", "zip")
			file := filepath.Join(root, filepath.FromSlash(key))
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0xff
			if err := os.WriteFile(file, b, 0o644); err != nil {
				t.Fatal(err)
			}
			keys := blobKeys(t, g)

			run, err := g.temporal.ExecuteWorkflow(ctx, workflows.ScrubOptions("scrub:"+kind), workflows.Scrub, workflows.ScrubRequest{})
			if err != nil {
				t.Fatal(err)
			}
			var rep workflows.ScrubReport
			if err := run.Get(ctx, &rep); err != nil {
				t.Fatal(err)
			}
			if rep.Versions != 2 || rep.Files != 5 || rep.MismatchCount != 1 || len(rep.Mismatches) != 1 {
				t.Fatalf("report %+v, want 2 versions, 5 good files, 1 mismatch", rep)
			}
			if m := rep.Mismatches[0]; m.Path != "example.com/hello" || m.Version != "v1.0.0" || m.File != "zip" || !strings.Contains(m.Problem, rec.Zip.SHA256) {
				t.Errorf("mismatch %+v, want the zip of example.com/hello@v1.0.0 against its recorded sha256", m)
			}
			if *record && kind == "disk" {
				recordHistory(t, g, "scrub:disk", "../workflows/testdata/scrub_history.json")
			}
			if n := g.alarms(t, "scrub-mismatch"); n != 1 {
				t.Errorf("%d scrub-mismatch alarms, want 1", n)
			}

			// Nothing deleted, nothing repaired.
			if after := blobKeys(t, g); !slices.Equal(after, keys) {
				t.Errorf("blobs before the scrub %v, after %v", keys, after)
			}
			r, _, err := g.blobs.Open(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			var stored bytes.Buffer
			_, err = stored.ReadFrom(r)
			r.Close()
			if err != nil || !bytes.Equal(stored.Bytes(), b) {
				t.Errorf("the store no longer holds the corrupted zip (err %v)", err)
			}
			if now, err := g.meta.Get(ctx, "example.com/hello", "v1.0.0"); err != nil || now != rec {
				t.Errorf("record after the scrub %+v (err %v), want %+v", now, err, rec)
			}
		})
	}
}

// blobKeys lists every blob key of g's store but those of staged files.
func blobKeys(t *testing.T, g *proxy) []string {
	t.Helper()
	var keys []string
	if err := g.blobs.Walk(context.Background(), "", "", func(key string, _ int64) error {
		// Staged files are their fetch's to discard, which may end after the client's answer.
		if !strings.HasPrefix(key, storage.Staging) {
			keys = append(keys, key)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

// EnsureScrubSchedule creates the schedule, updates its interval in place, can be called again
// with the same interval, and deletes it for an interval of 0 (twice without error); what the
// schedule starts is a scrub the workers run.
func TestScrubSchedule(t *testing.T) {
	up := fakeproxy.New()
	g := startGofer(t, up.Start(t), options{})
	if _, err := download(t, g.URL, "example.com/hello@v1.0.0"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h := g.temporal.ScheduleClient().GetHandle(ctx, worker.ScrubScheduleID)
	every := func() time.Duration {
		t.Helper()
		d, err := h.Describe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Schedule.Spec.Intervals) != 1 || d.Schedule.Policy.Overlap != enumspb.SCHEDULE_OVERLAP_POLICY_SKIP {
			t.Errorf("schedule spec %+v, policy %+v", d.Schedule.Spec, d.Schedule.Policy)
			return 0
		}
		return d.Schedule.Spec.Intervals[0].Every
	}
	for _, d := range []time.Duration{time.Hour, 2 * time.Hour, 2 * time.Hour} {
		if err := worker.EnsureScrubSchedule(ctx, g.temporal, d); err != nil {
			t.Fatal(err)
		}
		if got := every(); got != d {
			t.Errorf("schedule every %v, want %v", got, d)
		}
	}

	// The schedule's action is a scrub the workers can run.
	if err := h.Trigger(ctx, client.ScheduleTriggerOptions{}); err != nil {
		t.Fatal(err)
	}
	var done []string
	for deadline := time.Now().Add(30 * time.Second); len(done) == 0 && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		resp, err := g.temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: g.ns, Query: `WorkflowType = "Scrub" AND ExecutionStatus = "Completed"`})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range resp.GetExecutions() {
			done = append(done, e.GetExecution().GetWorkflowId())
		}
	}
	if len(done) != 1 || !strings.HasPrefix(done[0], worker.ScrubScheduleID) {
		t.Fatalf("completed scrubs %v, want one started by the schedule", done)
	}
	var rep workflows.ScrubReport
	if err := g.temporal.GetWorkflow(ctx, done[0], "").Get(ctx, &rep); err != nil || rep.Versions != 1 || rep.MismatchCount != 0 {
		t.Errorf("scheduled scrub: report %+v, err %v; want 1 version, no mismatch", rep, err)
	}

	for range 2 {
		if err := worker.EnsureScrubSchedule(ctx, g.temporal, 0); err != nil {
			t.Fatal(err)
		}
	}
	var notFound *serviceerror.NotFound
	if _, err := h.Describe(ctx); !errors.As(err, &notFound) {
		t.Errorf("describe after deleting: %v, want not found", err)
	}
}
