package e2e

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/goferproxy/gofer/internal/testserver"
	"github.com/goferproxy/gofer/internal/teststores"
	"github.com/goferproxy/gofer/server"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/storage/embedded"
)

// BenchmarkZipHit measures zip cache hits (a 1 MiB zip, 8 concurrent clients over loopback)
// from the disk store, streamed from S3 (versitygw) through gofer, and answered with a redirect
// to a presigned S3 URL that the client follows; disk is the baseline of the same run.
func BenchmarkZipHit(b *testing.B) {
	const size = 1 << 20
	dir := b.TempDir()
	diskBlobs, diskMeta := teststores.Open(b, dir)
	storeVersion(b, diskBlobs, diskMeta, "example.com/bench", "v1.0.0", size)
	s3Blobs, _ := s3Store(b)
	s3Meta, err := embedded.Open(filepath.Join(dir, "meta-s3.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s3Meta.Close()
	storeVersion(b, s3Blobs, s3Meta, "example.com/bench", "v1.0.0", size)

	for _, c := range []struct {
		name     string
		blobs    storage.Blobs
		meta     storage.Metadata
		redirect time.Duration
	}{
		{"disk", diskBlobs, diskMeta, 0},
		{"s3-streamed", s3Blobs, s3Meta, 0},
		{"s3-redirect", s3Blobs, s3Meta, 10 * time.Minute},
	} {
		b.Run(c.name, func(b *testing.B) {
			srv := httptest.NewServer(server.New(server.Config{Blobs: c.blobs, Meta: c.meta, ZipRedirect: c.redirect}))
			defer srv.Close()
			tr := &http.Transport{MaxIdleConnsPerHost: 16}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			url := srv.URL + "/example.com/bench/@v/v1.0.0.zip"
			b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0))) // 8 clients on this 2-core machine
			b.SetBytes(size)
			testserver.GetParallel(b, client, url, size)
		})
	}
}
