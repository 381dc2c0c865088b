package activities_test

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/goferproxy/gofer/activities"
)

// craft builds a zip from entries, each written by its own function.
func craft(t *testing.T, entries ...func(*zip.Writer) error) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	for _, e := range entries {
		if err := e(w); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func file(name, body string) func(*zip.Writer) error {
	return func(w *zip.Writer) error {
		f, err := w.Create(name)
		if err == nil {
			_, err = io.WriteString(f, body)
		}
		return err
	}
}

func symlink(name, target string) func(*zip.Writer) error {
	return func(w *zip.Writer) error {
		h := &zip.FileHeader{Name: name, Method: zip.Store}
		h.SetMode(os.ModeSymlink | 0o777)
		f, err := w.CreateHeader(h)
		if err == nil {
			_, err = io.WriteString(f, target)
		}
		return err
	}
}

// bomb is an entry that declares declared bytes but inflates to actual bytes of zeros.
func bomb(name string, declared, actual uint64) func(*zip.Writer) error {
	return func(w *zip.Writer) error {
		var deflated bytes.Buffer
		fw, _ := flate.NewWriter(&deflated, flate.BestCompression)
		zeros := make([]byte, 1<<20)
		for n := uint64(0); n < actual; n += uint64(len(zeros)) {
			fw.Write(zeros[:min(uint64(len(zeros)), actual-n)])
		}
		fw.Close()
		f, err := w.CreateRaw(&zip.FileHeader{Name: name, Method: zip.Deflate,
			CompressedSize64: uint64(deflated.Len()), UncompressedSize64: declared})
		if err == nil {
			_, err = f.Write(deflated.Bytes())
		}
		return err
	}
}

// Crafted zips are refused as invalid (final, no retry); a zip bomb is caught while it streams
// through the hash (archive/zip stops at the declared size), and the allocation check guards
// against a future change that would buffer a whole file instead.
func TestCraftedZipsAreRefused(t *testing.T) {
	const p = "example.com/m@v1.0.0/"
	gomod := file(p+"go.mod", "module example.com/m\n")
	for i, c := range []struct {
		name   string
		zip    func(t *testing.T) []byte
		reason string
	}{
		0: {"file outside the module", func(t *testing.T) []byte { return craft(t, gomod, file("evil/x.go", "package x")) }, "evil/x.go"},
		1: {"symlink", func(t *testing.T) []byte { return craft(t, gomod, symlink(p+"link", "/etc/passwd")) }, "link"},
		2: {"case-insensitive collision", func(t *testing.T) []byte {
			return craft(t, gomod, file(p+"a.go", "package m"), file(p+"A.go", "package m"))
		}, "a.go"},
		3: {"dot-dot element", func(t *testing.T) []byte { return craft(t, gomod, file(p+"../x.go", "package m")) }, "x.go"},
		4: {"go.mod over 16 MiB", func(t *testing.T) []byte {
			return craft(t, file(p+"go.mod", "module example.com/m\n"+strings.Repeat("//\n", 6<<20)))
		}, "go.mod"},
		5: {"declared over 500 MiB", func(t *testing.T) []byte { return craft(t, gomod, bomb(p+"big.go", 600<<20, 1<<20)) }, "too large"},
		6: {"bomb: declares 1 KiB, inflates to 256 MiB", func(t *testing.T) []byte { return craft(t, gomod, bomb(p+"bomb.go", 1<<10, 256<<20)) }, "hashing zip"},
		7: {"not a zip", func(*testing.T) []byte { return []byte("PK\x03\x04 not really") }, "bad module zip"},
	} {
		body := c.zip(t)
		a, _ := newActivities(t, fakeUpstream{zip: func() io.Reader { return bytes.NewReader(body) }})
		e := env(a)
		res, err := e.ExecuteActivity(a.Download, activities.Job{Path: "example.com/m", Version: "v1.0.0", RunID: "r"})
		if err != nil {
			t.Fatalf("%d: download: %v", i, err)
		}
		var staged activities.Staged
		res.Get(&staged)
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err = e.ExecuteActivity(a.Verify, staged)
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Errorf("%d: %s: accepted", i, c.name)
			continue
		}
		if typ, retry := errorType(t, err); typ != "Invalid" || retry || !strings.Contains(err.Error(), c.reason) {
			t.Errorf("%d: %s: %v (type %s, retryable %v), want a final Invalid naming %q", i, c.name, err, typ, retry, c.reason)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
			t.Errorf("%d: %s: verifying allocated %d MiB", i, c.name, grew>>20)
		}
	}
}
