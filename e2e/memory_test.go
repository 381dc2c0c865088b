package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/storage/storagetest"
)

// storeVersion writes a version with a zip of size random bytes straight into blobs and meta,
// as a committed fetch would have, and returns the zip.
func storeVersion(t testing.TB, blobs storage.Blobs, meta storage.Metadata, path, version string, size int) []byte {
	t.Helper()
	ctx := context.Background()
	zip := make([]byte, size)
	rand.Read(zip)
	files := map[string][]byte{
		"info": []byte(`{"Version":"` + version + `"}`),
		"mod":  []byte("module " + path + "\n"),
		"zip":  zip,
	}
	rec := gofer.Version{Path: path, Version: version}
	for ext, data := range files {
		if err := blobs.Put(ctx, storagetest.Key(t, path, version, ext), bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		f := gofer.File{Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
		switch ext {
		case "info":
			rec.Info = f
		case "mod":
			rec.Mod = f
		default:
			rec.Zip, rec.ZipHash = f, "h1:"+f.SHA256 // a whole version
		}
	}
	if err := meta.Insert(ctx, rec); err != nil {
		t.Fatal(err)
	}
	return zip
}

// rss is the resident set size of process pid, in bytes.
func rss(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// Zips stream from S3 through a front end: 8 clients downloading a 100 MB zip at once raise the
// front end's RSS by less than 32 MiB (the zip is never held in memory).
func TestZipStreamsFromS3InBoundedMemory(t *testing.T) {
	blobs, bucket := s3Store(t)
	meta, db := mongoStore(t)
	defer meta.Close()
	zip := storeVersion(t, blobs, meta, "example.com/big", "v1.0.0", 100<<20)
	addr := freeAddr(t)
	p := startProcess(t, buildGofer(t), addr, append(sharedStores(t, bucket, db), "GOFER_UPSTREAM=off"), "serve", "--worker=false")
	url := "http://" + addr + "/example.com/big/@v/v1.0.0.zip"
	fetch := func() []byte {
		resp, err := http.Get(url)
		if err != nil {
			t.Error(err)
			return nil
		}
		defer resp.Body.Close()
		h := sha256.New()
		io.Copy(h, resp.Body)
		return h.Sum(nil)
	}
	want := sha256.Sum256(zip)
	if got := fetch(); !bytes.Equal(got, want[:]) { // warms the process up
		t.Fatal("the zip came back different")
	}
	before := rss(t, p.cmd.Process.Pid)
	done, peakc := make(chan struct{}), make(chan int64)
	go func() {
		peak := before
		for {
			select {
			case <-done:
				peakc <- peak
				return
			case <-time.After(20 * time.Millisecond):
				peak = max(peak, rss(t, p.cmd.Process.Pid))
			}
		}
	}()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got := fetch(); !bytes.Equal(got, want[:]) {
				t.Error("a concurrent download came back different")
			}
		}()
	}
	wg.Wait()
	close(done)
	peak := <-peakc
	t.Logf("front end RSS: %d MiB before, %d MiB at peak during 8 concurrent 100 MB downloads", before>>20, peak>>20)
	if peak-before >= 32<<20 {
		t.Errorf("RSS grew by %d MiB, want < 32 MiB", (peak-before)>>20)
	}
}
