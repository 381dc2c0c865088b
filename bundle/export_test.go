package bundle_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/module"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/bundle"
	"github.com/goferproxy/gofer/internal/teststores"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/warm"
)

// put stores path@version with the files given (info, mod and, unless empty, zip) and a record
// that names their sizes and hashes, as a commit does.
func put(t *testing.T, blobs storage.Blobs, meta storage.Metadata, path, version, zip string) {
	t.Helper()
	ctx := context.Background()
	rec := gofer.Version{Path: path, Version: version}
	for _, f := range []struct {
		ext, body string
		file      *gofer.File
	}{{"info", `{"Version":"` + version + `"}`, &rec.Info}, {"mod", "module " + path + "\n", &rec.Mod}, {"zip", zip, &rec.Zip}} {
		if f.body == "" {
			continue
		}
		key, err := storage.Key(path, version, f.ext)
		if err != nil {
			t.Fatal(err)
		}
		if err := blobs.Put(ctx, key, strings.NewReader(f.body)); err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256([]byte(f.body))
		*f.file = gofer.File{Size: int64(len(f.body)), SHA256: hex.EncodeToString(h[:])}
	}
	rec.ModHash = "h1:mod"
	if zip != "" {
		rec.ZipHash = "h1:zip"
	}
	if err := meta.Insert(ctx, rec); err != nil {
		t.Fatal(err)
	}
}

// Export writes the layout the go command reads (a list of the whole, tagged versions), and
// refuses, leaving nothing at its path, a version not stored, a zip asked for but not stored,
// a path that exists, and a stored file whose bytes are not its record's.
func TestExport(t *testing.T) {
	blobs, meta := teststores.Open(t, "")
	put(t, blobs, meta, "example.com/Up", "v1.0.0", "zip a")
	put(t, blobs, meta, "example.com/Up", "v1.1.0", "zip b")
	put(t, blobs, meta, "example.com/Up", "v0.0.0-20260101000000-abcdefabcdef", "zip c")
	put(t, blobs, meta, "example.com/modonly", "v1.0.0", "")
	ctx := context.Background()
	v := func(path, version string) module.Version { return module.Version{Path: path, Version: version} }
	list := []module.Version{v("example.com/Up", "v1.1.0"), v("example.com/Up", "v1.0.0"), v("example.com/Up", "v0.0.0-20260101000000-abcdefabcdef"),
		warm.ModEntry(v("example.com/modonly", "v1.0.0")), warm.ModEntry(v("example.com/Up", "v1.0.0"))}
	out := filepath.Join(t.TempDir(), "b")
	sum, err := bundle.Export(ctx, bundle.Stores{Blobs: blobs, Meta: meta}, list, out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Versions != 4 || sum.Zips != 3 {
		t.Errorf("summary %+v, want 4 versions, 3 zips", sum)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(name)))
		if err != nil {
			t.Error(err)
		}
		return string(b)
	}
	if got := read("example.com/!up/@v/list"); got != "v1.0.0\nv1.1.0\n" {
		t.Errorf("list %q", got)
	}
	if got := read("example.com/!up/@v/v1.1.0.zip"); got != "zip b" {
		t.Errorf("zip %q", got)
	}
	read("example.com/modonly/@v/v1.0.0.mod")
	if _, err := os.Stat(filepath.Join(out, "example.com/modonly/@v/list")); err == nil {
		t.Error("a module exported without zips has a list")
	}
	if _, err := os.Stat(filepath.Join(out, "example.com/modonly/@v/v1.0.0.zip")); err == nil {
		t.Error("a zip not asked for was written")
	}

	for _, c := range []struct {
		name string
		list []module.Version
		out  string
		want string
	}{
		{"not stored", []module.Version{v("example.com/Up", "v1.0.0"), v("example.com/none", "v1.0.0"), v("example.com/modonly", "v1.0.0")}, "x.tar",
			"example.com/modonly@v1.0.0, example.com/none@v1.0.0"},
		{"exists", list, "", "exists"},
	} {
		dst := out
		if c.out != "" {
			dst = filepath.Join(t.TempDir(), c.out)
		}
		if _, err := bundle.Export(ctx, bundle.Stores{Blobs: blobs, Meta: meta}, c.list, dst, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}

	key, _ := storage.Key("example.com/Up", "v1.1.0", "zip")
	blobs.Delete(ctx, key)
	blobs.Put(ctx, key, strings.NewReader("zip B"))
	for _, name := range []string{"c", "c.tar"} {
		dst := filepath.Join(t.TempDir(), name)
		if _, err := bundle.Export(ctx, bundle.Stores{Blobs: blobs, Meta: meta}, list, dst, nil); err == nil || !strings.Contains(err.Error(), "SHA-256") {
			t.Errorf("a corrupted zip exported to %s: %v", name, err)
		}
		for _, p := range []string{dst, dst + ".partial"} {
			if _, err := os.Lstat(p); err == nil {
				t.Errorf("a failed export left %s", p)
			}
		}
	}

	// Stored selects by the time of the store and by module.
	all, err := bundle.Stored(ctx, meta, time.Time{}, time.Time{}, "")
	if err != nil || len(all) != 4 || all[3] != warm.ModEntry(v("example.com/modonly", "v1.0.0")) {
		t.Errorf("Stored = %v, %v", all, err)
	}
	if some, err := bundle.Stored(ctx, meta, time.Time{}, time.Now(), "example.com/modonly"); err != nil || len(some) != 1 {
		t.Errorf("Stored of a module = %v, %v", some, err)
	}
	if none, err := bundle.Stored(ctx, meta, time.Time{}, time.Now().Add(-time.Hour), ""); err != nil || len(none) != 0 {
		t.Errorf("Stored before any store = %v, %v", none, err)
	}
}
