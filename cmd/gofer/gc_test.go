package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/internal/teststores"
	"github.com/goferproxy/gofer/storage"
)

// `gofer gc --dry-run` lists exactly the final blobs whose version has no metadata, and deletes
// nothing; without --dry-run it refuses.
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
		put(storage.Key("example.com/kept", "v1.0.0", ext))
	}
	put(storage.Key("example.com/orphan", "v1.0.0", "zip"))
	put(storage.StagingKey("example.com/kept", "v1.1.0", "run/1", "zip"))
	if err := meta.Insert(ctx, gofer.Version{Path: "example.com/kept", Version: "v1.0.0"}); err != nil {
		t.Fatal(err)
	}
	meta.Close() // gc opens it itself

	var out bytes.Buffer
	if err := run(ctx, []string{"gc", "--dry-run"}, &out); err != nil {
		t.Fatal(err)
	}
	if want := "example.com/orphan/@v/v1.0.0.zip\t1\n1 orphaned blobs\n"; out.String() != want {
		t.Errorf("gc printed %q, want %q", out.String(), want)
	}
	if _, err := os.Stat(filepath.Join(dir, "blobs", "example.com/orphan/@v/v1.0.0.zip")); err != nil {
		t.Errorf("gc --dry-run deleted the orphan: %v", err)
	}
	if err := run(ctx, []string{"gc"}, &out); err == nil || !strings.Contains(err.Error(), "--dry-run") {
		t.Errorf("gc without --dry-run: %v", err)
	}
}
