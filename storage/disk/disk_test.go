package disk

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/storage/storagetest"
)

func newStore(t *testing.T, root string) *Store {
	t.Helper()
	s, err := New(root)
	if err != nil {
		t.Fatalf("New(%s): %v", root, err)
	}
	return s
}

func TestBlobs(t *testing.T) {
	storagetest.TestBlobs(t, func(t *testing.T) storage.Blobs { return newStore(t, t.TempDir()) })
}

// files lists the regular files under root, slash-separated and relative to it.
func files(t *testing.T, root string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			names = append(names, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestNewCreatesRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "data", "blobs")
	s := newStore(t, root)
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		t.Fatalf("New did not create root %s: %v", root, err)
	}
	key := storagetest.Key(t, "example.com/m", "v1.0.0", "mod")
	if err := s.Put(t.Context(), key, strings.NewReader("module example.com/m\n")); err != nil {
		t.Fatalf("Put into a created root: %v", err)
	}
}

func TestNewRootIsFile(t *testing.T) {
	root := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(root, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(root); err == nil {
		t.Errorf("New(%s) on a regular file succeeded", root)
	}
}

// TestLayout pins the file of a key: operators back up and inspect the root, and it is the
// go command's own download layout.
func TestLayout(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, root)
	key := storagetest.Key(t, "github.com/Azure/sdk", "v2.0.0+incompatible", "zip")
	data := []byte("zip bytes")
	if err := s.Put(t.Context(), key, bytes.NewReader(data)); err != nil {
		t.Fatalf("Put(%s): %v", key, err)
	}
	name := filepath.Join(root, "github.com", "!azure", "sdk", "@v", "v2.0.0+incompatible.zip")
	got, err := os.ReadFile(name)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("ReadFile(%s) = %q, %v; want %q", name, got, err, data)
	}
	if got, want := files(t, root), []string{key}; !equal(got, want) {
		t.Errorf("files under root = %q, want %q", got, want)
	}
}

func equal(a, b []string) bool {
	return strings.Join(a, "\n") == strings.Join(b, "\n")
}

func TestInvalidKeys(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	s := newStore(t, root)
	ctx := t.Context()
	for _, key := range []string{"", "/etc/passwd", "../x", "a/../../x", "a/../b", "a/..", "..", "a//../x"} {
		r := iotest.ErrReader(errors.New("read"))
		if err := s.Put(ctx, key, r); !errors.Is(err, gofer.ErrInvalid) {
			t.Errorf("Put(%q) = %v, want an error matching gofer.ErrInvalid", key, err)
		}
		if _, _, err := s.Open(ctx, key); !errors.Is(err, gofer.ErrInvalid) {
			t.Errorf("Open(%q) = %v, want an error matching gofer.ErrInvalid", key, err)
		}
		if err := s.Delete(ctx, key); !errors.Is(err, gofer.ErrInvalid) {
			t.Errorf("Delete(%q) = %v, want an error matching gofer.ErrInvalid", key, err)
		}
	}
	if got := files(t, parent); len(got) != 0 {
		t.Errorf("invalid keys created files %q", got)
	}
}

// TestNoTemporaryFilesLeft checks that neither a failed, a refused nor a successful Put leaves
// its temporary file behind.
func TestNoTemporaryFilesLeft(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, root)
	ctx := t.Context()
	key := storagetest.Key(t, "example.com/m", "v1.0.0", "zip")
	failing := io.MultiReader(strings.NewReader("partial"), iotest.ErrReader(errors.New("reset")))
	if err := s.Put(ctx, key, failing); err == nil {
		t.Fatal("Put with a failing reader succeeded")
	}
	if got := files(t, root); len(got) != 0 {
		t.Errorf("after a failed Put, files under root = %q, want none", got)
	}
	if err := s.Put(ctx, key, strings.NewReader("whole")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if err := s.Put(ctx, key, strings.NewReader("other")); !errors.Is(err, gofer.ErrExists) {
		t.Fatalf("second Put = %v, want ErrExists", err)
	}
	if got, want := files(t, root), []string{key}; !equal(got, want) {
		t.Errorf("files under root = %q, want %q", got, want)
	}
}

// cancelReader cancels its context after handing out its first bytes, as a commit abandoned
// midway through a download would.
type cancelReader struct {
	cancel context.CancelFunc
	r      io.Reader
}

func (c *cancelReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p[:min(len(p), 100)])
	c.cancel()
	return n, err
}

func TestPutCancelled(t *testing.T) {
	s := newStore(t, t.TempDir())
	ctx, cancel := context.WithCancel(t.Context())
	key := storagetest.Key(t, "example.com/m", "v1.0.0", "zip")
	r := &cancelReader{cancel: cancel, r: bytes.NewReader(make([]byte, 1<<20))}
	if err := s.Put(ctx, key, r); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context = %v, want context.Canceled", err)
	}
	if _, _, err := s.Open(t.Context(), key); !errors.Is(err, gofer.ErrNotFound) {
		t.Errorf("Open after a cancelled Put = %v, want ErrNotFound", err)
	}
}

// TestDirectoryKeys checks that a key naming a directory of other blobs, or a name below a
// blob, is treated as holding no blob rather than as an error or as a blob to delete.
func TestDirectoryKeys(t *testing.T) {
	s := newStore(t, t.TempDir())
	ctx := t.Context()
	key := storagetest.Key(t, "example.com/m", "v1.0.0", "zip")
	if err := s.Put(ctx, key, strings.NewReader("zip")); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"example.com/m/@v", "example.com/m", key + "/below"} {
		if _, _, err := s.Open(ctx, k); !errors.Is(err, gofer.ErrNotFound) {
			t.Errorf("Open(%s) = %v, want ErrNotFound", k, err)
		}
		if err := s.Delete(ctx, k); err != nil {
			t.Errorf("Delete(%s) = %v, want nil", k, err)
		}
	}
	r, _, err := s.Open(ctx, key)
	if err != nil {
		t.Fatalf("Open(%s) after deleting the names around it: %v", key, err)
	}
	r.Close()
}

// TestWalkSkipsTemporaryFiles checks that the temporary file of a Put cut short by a crash is
// not walked as a blob: gc would otherwise report it, and its name is no key.
func TestWalkSkipsTemporaryFiles(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, root)
	key := storagetest.Key(t, "example.com/m", "v1.0.0", "zip")
	if err := s.Put(t.Context(), key, strings.NewReader("zip")); err != nil {
		t.Fatal(err)
	}
	stray := filepath.Join(root, "example.com", "m", "@v", ".v1.0.1.zip.tmp-123456")
	if err := os.WriteFile(stray, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	var got []string
	err := s.Walk(t.Context(), "", "", func(key string, size int64) error {
		got = append(got, key)
		return nil
	})
	if err != nil || !equal(got, []string{key}) {
		t.Errorf("Walk = %q, %v; want %q, nil", got, err, []string{key})
	}
}

// TestStagedTemporaryFilesAreDiscarded checks that a temporary file a crash left among a fetch
// run's staged files is walked with them, and deleted as they are: a run's discard removes it.
func TestStagedTemporaryFilesAreDiscarded(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, root)
	staged := storagetest.StagingKey(t, "example.com/m", "v1.0.0", "run/2", "zip")
	if err := s.Put(t.Context(), staged, strings.NewReader("zip")); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, filepath.FromSlash(storagetest.StagingPrefix(t, "example.com/m", "v1.0.0", "run")))
	if err := os.WriteFile(filepath.Join(dir, ".1.zip.tmp-123456"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	var got []string
	err := s.Walk(t.Context(), storagetest.StagingPrefix(t, "example.com/m", "v1.0.0", "run"), "", func(key string, _ int64) error {
		got = append(got, key)
		return s.Delete(t.Context(), key)
	})
	if err != nil || len(got) != 2 {
		t.Fatalf("Walk of the run's staging prefix = %q, %v; want the staged blob and the temporary file", got, err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left in the run's staging directory after deleting what Walk found: %v", left)
	}
}

func TestWalkCancelled(t *testing.T) {
	s := newStore(t, t.TempDir())
	for _, v := range []string{"v1.0.0", "v1.0.1"} {
		if err := s.Put(t.Context(), storagetest.Key(t, "example.com/m", v, "zip"), strings.NewReader("zip")); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	calls := 0
	err := s.Walk(ctx, "", "", func(string, int64) error {
		calls++
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Errorf("Walk cancelled in its first callback = %v after %d calls, want context.Canceled after 1", err, calls)
	}
}
