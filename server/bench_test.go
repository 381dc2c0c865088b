package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/server"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/storage/disk"
	"github.com/goferproxy/gofer/storage/embedded"
)

// noTemporal fails the benchmark if the hit path ever tries to start a workflow.
type noTemporal struct{ b *testing.B }

func (n noTemporal) ExecuteWorkflow(context.Context, client.StartWorkflowOptions, any, ...any) (client.WorkflowRun, error) {
	n.b.Fatal("the hit path started a workflow")
	return nil, nil
}

// BenchmarkHit measures cache hits on .info, .mod and a 30 KB .zip of a stored version, served
// by gofer and, as the baseline in the same run, by net/http.FileServer over the very same
// files. Both run over real loopback HTTP with 32 concurrent clients. Compare req/s per file.
func BenchmarkHit(b *testing.B) {
	const path, version = "example.com/bench", "v1.0.0"
	dir := b.TempDir()
	blobs, err := disk.New(filepath.Join(dir, "blobs"))
	if err != nil {
		b.Fatal(err)
	}
	meta, err := embedded.Open(filepath.Join(dir, "meta.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer meta.Close()
	zip := make([]byte, 30<<10)
	rand.Read(zip)
	files := map[string][]byte{
		"info": []byte(`{"Version":"v1.0.0","Time":"2024-01-01T00:00:00Z"}`),
		"mod":  []byte("module example.com/bench\n\ngo 1.21\n"),
		"zip":  zip,
	}
	rec := gofer.Version{Path: path, Version: version}
	for ext, data := range files {
		if err := blobs.Put(context.Background(), storage.Key(path, version, ext), bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		sum := sha256.Sum256(data)
		f := gofer.File{Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
		switch ext {
		case "info":
			rec.Info = f
		case "mod":
			rec.Mod = f
		case "zip":
			rec.Zip = f
		}
	}
	if err := meta.Insert(context.Background(), rec); err != nil {
		b.Fatal(err)
	}

	targets := []struct {
		name    string
		handler http.Handler
	}{
		{"fileserver", http.FileServer(http.Dir(filepath.Join(dir, "blobs")))},
		{"gofer", server.New(server.Config{Blobs: blobs, Meta: meta, Temporal: noTemporal{b}})},
	}
	for _, ext := range []string{"info", "mod", "zip"} {
		for _, target := range targets {
			b.Run(ext+"/"+target.name, func(b *testing.B) {
				srv := httptest.NewServer(target.handler)
				defer srv.Close()
				tr := &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 32}
				defer tr.CloseIdleConnections()
				c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
				url := srv.URL + "/" + storage.Key(path, version, ext)
				b.SetParallelism(32 / runtime.GOMAXPROCS(0)) // 32 clients in all
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						resp, err := c.Get(url)
						if err != nil {
							b.Error(err)
							return
						}
						n, _ := io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 200 || n != int64(len(files[ext])) {
							b.Errorf("%s: status %d, %d bytes", url, resp.StatusCode, n)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			})
		}
	}
}
