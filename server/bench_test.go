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
	"strconv"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"go.temporal.io/sdk/client"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/internal/logging"
	"github.com/goferproxy/gofer/internal/testserver"
	"github.com/goferproxy/gofer/internal/teststores"
	"github.com/goferproxy/gofer/server"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/storage/storagetest"
)

// noTemporal fails the test if the hit path ever tries to start a workflow.
type noTemporal struct{ tb testing.TB }

func (n noTemporal) ExecuteWorkflow(context.Context, client.StartWorkflowOptions, any, ...any) (client.WorkflowRun, error) {
	n.tb.Fatal("the hit path started a workflow")
	return nil, nil
}

const benchPath, benchVersion = "example.com/bench", "v1.0.0"

// storedVersion stores example.com/bench@v1.0.0 (a 30 KB zip) straight into disk and embedded
// stores, as a committed fetch would have, and returns the stores, the files and the blob
// directory.
func storedVersion(tb testing.TB) (storage.Blobs, storage.Metadata, map[string][]byte, string) {
	dir := tb.TempDir()
	blobs, meta := teststores.Open(tb, dir)
	files := storeVersion(tb, blobs, meta, benchVersion, 30<<10)
	return blobs, meta, files, filepath.Join(dir, "blobs")
}

// storeVersion stores example.com/bench@version with a random zip of zipSize bytes, as a
// committed fetch would have, and returns its files by extension.
func storeVersion(tb testing.TB, blobs storage.Blobs, meta storage.Metadata, version string, zipSize int) map[string][]byte {
	zip := make([]byte, zipSize)
	rand.Read(zip)
	files := map[string][]byte{
		"info": []byte(`{"Version":"` + version + `","Time":"2024-01-01T00:00:00Z"}`),
		"mod":  []byte("module example.com/bench\n\ngo 1.21\n"),
		"zip":  zip,
	}
	rec := gofer.Version{Path: benchPath, Version: version}
	for ext, data := range files {
		if err := blobs.Put(context.Background(), storagetest.Key(tb, benchPath, version, ext), bytes.NewReader(data)); err != nil {
			tb.Fatal(err)
		}
		f := gofer.File{Size: int64(len(data)), SHA256: sha256hex(data)}
		switch ext {
		case "info":
			rec.Info = f
		case "mod":
			rec.Mod = f
		case "zip":
			rec.Zip, rec.ZipHash = f, "h1:"+f.SHA256 // a whole version
		}
	}
	if err := meta.Insert(context.Background(), rec); err != nil {
		tb.Fatal(err)
	}
	return files
}

func sha256hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// BenchmarkHit measures cache hits on .info, .mod and a 30 KB .zip of a stored version, served
// by gofer and, as the baseline in the same run, by net/http.FileServer over the very same
// files. Both run over real loopback HTTP with 32 concurrent clients. Compare req/s per file.
func BenchmarkHit(b *testing.B) {
	blobs, meta, files, root := storedVersion(b)
	targets := []struct {
		name    string
		handler http.Handler
	}{
		{"fileserver", http.FileServer(http.Dir(root))},
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
				url := srv.URL + "/" + storagetest.Key(b, benchPath, benchVersion, ext)
				b.SetParallelism(32 / runtime.GOMAXPROCS(0)) // 32 clients in all
				b.ReportAllocs()
				testserver.GetParallel(b, c, url, int64(len(files[ext])))
			})
		}
	}
}

// A stored version is served from storage alone, GET and HEAD of every file, with the strong
// ETag of its bytes: no Temporal (noTemporal fails the test) and no upstream (there is none).
func TestHitPathNeedsOnlyStorage(t *testing.T) {
	blobs, meta, files, _ := storedVersion(t)
	srv := httptest.NewServer(server.New(server.Config{Blobs: blobs, Meta: meta, Temporal: noTemporal{t}}))
	defer srv.Close()
	for _, ext := range []string{"info", "mod", "zip"} {
		url := srv.URL + "/" + storagetest.Key(t, benchPath, benchVersion, ext)
		for _, method := range []string{"GET", "HEAD"} {
			req, _ := http.NewRequest(method, url, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := files[ext]
			if method == "HEAD" {
				want = nil
			}
			if resp.StatusCode != 200 || !bytes.Equal(body, want) || resp.Header.Get("ETag") != `"`+sha256hex(files[ext])+`"` {
				t.Errorf("%s %s: %d, %d bytes, ETag %s", method, ext, resp.StatusCode, len(body), resp.Header.Get("ETag"))
			}
		}
	}
}

// BenchmarkHitHandler measures one cache hit inside the server alone (no network, no client):
// its time and its allocations per request, with the metrics gofer serve has, tracing off, and
// gofer's own logger (JSON, discarded) at info, the production default that writes a line a
// request (log-on), and at warn, which writes none (log-off): the difference is what one request
// log line costs. zip is held in memory; zip-streamed, the smallest zip that is not, is opened
// and streamed from the disk store on every hit.
func BenchmarkHitHandler(b *testing.B) {
	blobs, meta, files, _ := storedVersion(b)
	const streamedVersion = "v1.1.0"
	streamed := storeVersion(b, blobs, meta, streamedVersion, server.MaxHeldZip+1)
	meter := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader())).Meter("bench")
	for _, l := range []struct{ name, level string }{{"log-on", "info"}, {"log-off", "warn"}} {
		log, stop, err := logging.New("json", l.level, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { stop() })
		srv := server.New(server.Config{Blobs: blobs, Meta: meta, Temporal: noTemporal{b}, Log: log, Meter: meter, Tracer: tracenoop.NewTracerProvider()})
		for _, c := range []struct {
			name, version, ext string
			size               int
		}{
			{"info", benchVersion, "info", len(files["info"])},
			{"mod", benchVersion, "mod", len(files["mod"])},
			{"zip", benchVersion, "zip", len(files["zip"])},
			{"zip-streamed", streamedVersion, "zip", len(streamed["zip"])},
		} {
			b.Run(l.name+"/"+c.name, func(b *testing.B) {
				req := httptest.NewRequest(http.MethodGet, "/"+storagetest.Key(b, benchPath, c.version, c.ext), nil)
				w := &discardWriter{h: http.Header{}}
				srv.ServeHTTP(w, req) // warm the memory cache
				if w.status != http.StatusOK || w.n != c.size {
					b.Fatalf("%s: %d, %d bytes", c.name, w.status, w.n)
				}
				b.ReportAllocs()
				for b.Loop() {
					clear(w.h)
					w.status, w.n = 0, 0
					srv.ServeHTTP(w, req)
				}
			})
		}
	}
	// The ceiling: a gin engine with one catch-all route that writes the .info's bytes with a
	// hit's headers, and does nothing else.
	b.Run("bare-gin", func(b *testing.B) {
		gin.SetMode(gin.ReleaseMode)
		e := gin.New()
		header := http.Header{"Content-Type": {"application/json"}, "Cache-Control": {"public, max-age=31536000, immutable"},
			"Etag": {`"` + sha256hex(files["info"]) + `"`}, "Accept-Ranges": {"bytes"}, "X-Request-Id": {"0123456789abcdef"},
			"Content-Length": {strconv.Itoa(len(files["info"]))}}
		e.GET("/*path", func(c *gin.Context) {
			h := c.Writer.Header()
			for k, v := range header {
				h[k] = v
			}
			c.Writer.Write(files["info"])
		})
		req := httptest.NewRequest(http.MethodGet, "/"+storagetest.Key(b, benchPath, benchVersion, "info"), nil)
		w := &discardWriter{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			clear(w.h)
			w.status, w.n = 0, 0
			e.ServeHTTP(w, req)
		}
		if w.n != len(files["info"]) {
			b.Fatalf("bare gin wrote %d bytes", w.n)
		}
	})
}

// discardWriter is the cheapest http.ResponseWriter: it keeps the status and counts the bytes.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(s int)   { w.status = s }

// SetWriteDeadline is a no-op, as a connection's is, for http.ResponseController.
func (w *discardWriter) SetWriteDeadline(time.Time) error { return nil }
func (w *discardWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.n += len(p)
	return len(p), nil
}

// A hot .info answered by the plain path carries what http.ServeContent would send, and a
// request with a range or a condition still gets what ServeContent decides.
func TestSmallHitAsServeContent(t *testing.T) {
	blobs, meta, files, _ := storedVersion(t)
	srv := server.New(server.Config{Blobs: blobs, Meta: meta, Temporal: noTemporal{t}})
	url := "/" + storagetest.Key(t, benchPath, benchVersion, "info")
	info := files["info"]
	etag := `"` + sha256hex(info) + `"`
	for i, c := range []struct {
		method string
		header []string
		status int
		body   string
	}{
		0: {"GET", nil, 200, string(info)},
		1: {"HEAD", nil, 200, ""},
		2: {"GET", []string{"Range", "bytes=0-3"}, 206, string(info[:4])},
		3: {"GET", []string{"If-None-Match", etag}, 304, ""},
		4: {"GET", []string{"If-Match", `"other"`}, 412, ""},
	} {
		req := httptest.NewRequest(c.method, url, nil)
		for j := 0; j+1 < len(c.header); j += 2 {
			req.Header.Set(c.header[j], c.header[j+1])
		}
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		h := w.Result().Header
		if w.Code != c.status || w.Body.String() != c.body {
			t.Errorf("%d: %s %v: %d %q, want %d %q", i, c.method, c.header, w.Code, w.Body, c.status, c.body)
		}
		if c.status == 200 && (h.Get("Content-Length") != strconv.Itoa(len(info)) || h.Get("Accept-Ranges") != "bytes" || h.Get("ETag") != etag) {
			t.Errorf("%d: %s: headers %v", i, c.method, h)
		}
	}
}
