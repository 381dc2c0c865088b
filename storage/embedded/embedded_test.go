package embedded

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/mod/module"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/storage/storagetest"
)

func TestMetadata(t *testing.T) {
	storagetest.TestMetadata(t, func(t *testing.T) storage.Metadata {
		// A missing parent directory, as on the first start with an empty data directory.
		path := filepath.Join(t.TempDir(), "data", "meta.db")
		s, err := Open(path)
		if err != nil {
			t.Fatalf("Open(%s): %v", path, err)
		}
		return s
	})
}

func mustOpen(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	return s
}

func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	ctx := t.Context()
	want := []gofer.Version{storagetest.Record("example.com/a", "v1.0.0", 0), storagetest.Record("example.com/a", "v1.1.0", 0)}

	s := mustOpen(t, path)
	for _, v := range want {
		if err := s.Insert(ctx, v); err != nil {
			t.Fatalf("Insert: %v", err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = mustOpen(t, path)
	defer s.Close()
	for _, v := range want {
		got, err := s.Get(ctx, v.Path, v.Version)
		if err != nil || !got.Time.Equal(v.Time) || !got.FetchedAt.Equal(v.FetchedAt) || got.Zip != v.Zip || got.RunID != v.RunID {
			t.Errorf("after reopen, Get(%s, %s) = %+v, %v; want %+v", v.Path, v.Version, got, err, v)
		}
	}
	versions, err := s.Versions(ctx, "example.com/a")
	slices.Sort(versions)
	if err != nil || !slices.Equal(versions, []string{"v1.0.0", "v1.1.0"}) {
		t.Errorf("after reopen, Versions = %q, %v", versions, err)
	}
	// Insert-once holds across restarts too.
	if err := s.Insert(ctx, storagetest.Record("example.com/a", "v1.0.0", 0)); !errors.Is(err, gofer.ErrExists) {
		t.Errorf("Insert of a record stored before reopening = %v, want ErrExists", err)
	}
}

func TestLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	s := mustOpen(t, path)
	// The lock is per open file, so a second open in this process stands in for a second
	// process; a short timeout keeps the test fast.
	start := time.Now()
	_, err := open(path, 100*time.Millisecond)
	if err == nil {
		t.Fatal("a second Open of a locked database succeeded")
	}
	if want := fmt.Sprintf("metadata database %s is locked by another process", path); err.Error() != want {
		t.Errorf("second Open error = %q, want %q", err, want)
	}
	if !errors.Is(err, gofer.ErrUnavailable) {
		t.Errorf("second Open error = %v, want one matching gofer.ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second Open took %v", d)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Once the holder is gone the database opens again.
	s2, err := open(path, 100*time.Millisecond)
	if err != nil {
		t.Fatalf("Open after the holder closed: %v", err)
	}
	s2.Close()
}

// TestFormat pins the file format: one bucket "versions", keys path@version, JSON values. An
// upgrade that changes it would hide every stored version.
func TestFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	s := mustOpen(t, path)
	v := storagetest.Record("github.com/Azure/sdk", "v2.0.0+incompatible", 0)
	if err := s.Insert(t.Context(), v); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("versions"))
		if b == nil {
			return errors.New(`no bucket "versions"`)
		}
		val := b.Get([]byte("github.com/Azure/sdk@v2.0.0+incompatible"))
		if val == nil {
			return errors.New(`no key "github.com/Azure/sdk@v2.0.0+incompatible"`)
		}
		var got gofer.Version
		if err := json.Unmarshal(val, &got); err != nil {
			return err
		}
		if got.Path != v.Path || got.Version != v.Version || !got.Time.Equal(v.Time) || got.ZipHash != v.ZipHash {
			return fmt.Errorf("stored %+v, want %+v", got, v)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func TestInsertInvalid(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "meta.db"))
	defer s.Close()
	ctx := t.Context()
	// "example.com/a@v1" with version "x" would share its key prefix with example.com/a.
	for _, v := range []gofer.Version{
		storagetest.Record("example.com/a@v1", "x", 0),
		storagetest.Record("", "v1.0.0", 0),
		storagetest.Record("example.com/a", "", 0),
	} {
		if err := s.Insert(ctx, v); !errors.Is(err, gofer.ErrInvalid) {
			t.Errorf("Insert(%q@%q) = %v, want an error matching gofer.ErrInvalid", v.Path, v.Version, err)
		}
	}
	if vs, err := s.Versions(ctx, "example.com/a"); err != nil || len(vs) != 0 {
		t.Errorf("Versions(example.com/a) = %q, %v; want none", vs, err)
	}
	if _, err := s.Get(ctx, "example.com/a@v1", "x"); !errors.Is(err, gofer.ErrNotFound) {
		t.Errorf("Get of a path with @ = %v, want ErrNotFound", err)
	}
}

// TestCatalogOrder pages through every path of up to three bytes from bytes on both sides of
// "@", the key separator, so that every way a path can extend another is listed: the catalog
// must still come in byte order of paths.
func TestCatalogOrder(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "meta.db"))
	defer s.Close()
	const alphabet = "-/Aa"
	paths := []string{""}
	var want []module.Version
	for range 3 {
		var longer []string
		for _, p := range paths {
			for _, b := range alphabet {
				longer = append(longer, p+string(b))
			}
		}
		paths = longer
		for _, p := range paths {
			for _, v := range []string{"v1", "v2"} {
				if err := s.Insert(t.Context(), storagetest.Record(p, v, 0)); err != nil {
					t.Fatal(err)
				}
				want = append(want, module.Version{Path: p, Version: v})
			}
		}
	}
	slices.SortFunc(want, func(a, b module.Version) int {
		return cmp.Or(strings.Compare(a.Path, b.Path), strings.Compare(a.Version, b.Version))
	})
	storagetest.WantCatalog(t, s, want, 1, 3, 64)
}

// A database made before the store kept the order of inserts gets it at Open, by the
// records' fetch times; the versions inserted afterwards follow them.
func TestIndexOfOlderDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	older, old := storagetest.Record("example.com/old", "v1.0.0", 2), storagetest.Record("example.com/old", "v1.1.0", 1)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(bucket)
		for _, v := range []gofer.Version{older, old} {
			val, _ := json.Marshal(v)
			err = cmp.Or(err, b.Put(key(v.Path, v.Version), val))
		}
		return err
	})
	if err := cmp.Or(err, db.Close()); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, path)
	defer s.Close()
	if err := s.Insert(t.Context(), storagetest.Record("example.com/new", "v1.0.0", 3)); err != nil {
		t.Fatal(err)
	}
	list, err := s.Index(t.Context(), time.Time{}, 10)
	want := []storage.Stored{{Path: "example.com/old", Version: "v1.1.0", Timestamp: old.FetchedAt}, {Path: "example.com/old", Version: "v1.0.0", Timestamp: older.FetchedAt}}
	if err != nil || len(list) != 3 || !slices.Equal(list[:2], want) || list[2].Path != "example.com/new" {
		t.Fatalf("Index = %v, %v; want %v and then example.com/new@v1.0.0", list, err, want)
	}
}
