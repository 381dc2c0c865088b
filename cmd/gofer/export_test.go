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
)

// `gofer export` reads the stores its settings name and writes the versions a list names, or
// those a time range and a pattern choose; a wrong use or a bad time is an error that says how.
func TestExportCmd(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("GOFER_DATA_DIR", dir)
	t.Setenv("GOFER_SUMDB", "off") // bundles with proofs: e2e's TestExportByGoSum
	ctx := context.Background()
	blobs, meta := teststores.Open(t, dir)
	for _, path := range []string{"example.com/a", "example.com/b"} {
		for _, ext := range []string{"info", "mod"} {
			key := path + "/@v/v1.0.0." + ext
			if err := blobs.Put(ctx, key, strings.NewReader("")); err != nil {
				t.Fatal(err)
			}
		}
		// Empty files: their SHA-256 is that of nothing.
		empty := gofer.File{SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}
		if err := meta.Insert(ctx, gofer.Version{Path: path, Version: "v1.0.0", Info: empty, Mod: empty, ModHash: "h1:x"}); err != nil {
			t.Fatal(err)
		}
	}
	meta.Close() // the command opens the store itself, as it would a stopped gofer's
	list := filepath.Join(t.TempDir(), "list")
	os.WriteFile(list, []byte("example.com/a v1.0.0/go.mod h1:x\n"), 0o644)
	out := t.TempDir()
	for _, c := range []struct {
		args []string
		want string // in the output, or the error
		file string // written, in the bundle
	}{
		{[]string{"--out", out + "/1", list}, "1 versions (0 with their zips)", "example.com/a/@v/v1.0.0.mod"},
		{[]string{"--out", out + "/2", "--modules", "example.com/b"}, "1 versions", "example.com/b/@v/v1.0.0.info"},
		{[]string{"--out", out + "/3", "--since", "2000-01-01T00:00:00Z"}, "2 versions", "example.com/b/@v/v1.0.0.mod"},
		{[]string{"--out", out + "/4", "--until", "2000-01-01T00:00:00Z"}, "0 versions", ""},
		{[]string{list}, "usage: gofer export", ""},
		{[]string{"--out", out + "/5", "--modules", "x", list}, "usage: gofer export", ""},
		{[]string{"--out", out + "/6", "--since", "yesterday"}, "--since: want an RFC 3339 time", ""},
		{[]string{"--out", out + "/1", list}, "exists already", ""},
	} {
		var stdout bytes.Buffer
		err := exportCmd(ctx, c.args, &stdout, &bytes.Buffer{})
		if got := stdout.String() + errString(err); !strings.Contains(got, c.want) {
			t.Errorf("gofer export %s: %q, want %q", strings.Join(c.args, " "), got, c.want)
		}
		if c.file != "" {
			if _, err := os.Stat(filepath.Join(c.args[1], c.file)); err != nil {
				t.Errorf("gofer export %s: %v", strings.Join(c.args, " "), err)
			}
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
