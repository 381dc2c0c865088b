// Package teststores opens gofer's zero-setup stores, disk blobs and embedded metadata, for a
// test, laid out as `gofer serve` lays them out in its data directory.
package teststores

import (
	"path/filepath"
	"testing"

	"github.com/goferproxy/gofer/storage/disk"
	"github.com/goferproxy/gofer/storage/embedded"
)

// Open opens the blob store dir/blobs and the metadata store dir/metadata.db (dir "" means a
// new t.TempDir()); the metadata store is closed when the test ends (closing it earlier is fine).
func Open(tb testing.TB, dir string) (*disk.Store, *embedded.Store) {
	tb.Helper()
	if dir == "" {
		dir = tb.TempDir()
	}
	blobs, err := disk.New(filepath.Join(dir, "blobs"))
	if err != nil {
		tb.Fatal(err)
	}
	meta, err := embedded.Open(filepath.Join(dir, "metadata.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { meta.Close() })
	return blobs, meta
}
