package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/zap/zaptest"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/internal/testserver"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/storage/storagetest"
)

// server is one versitygw for the whole package; each test uses buckets or prefixes of its own.
var server *testserver.S3Server

func TestMain(m *testing.M) {
	var err error
	server, err = testserver.S3()
	if err != nil {
		// Not a skip: the S3 store is only tested here, and a silent skip would pass it untested.
		fmt.Fprintf(os.Stderr, "storage/s3: cannot start versitygw: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	server.Close()
	os.Exit(code)
}

var buckets atomic.Int64

// newBucket names a bucket no test has used.
func newBucket() string { return fmt.Sprintf("gofer-test-%d", buckets.Add(1)) }

func testConfig(t *testing.T, bucket string) Config {
	return Config{
		Endpoint: server.Endpoint, Region: server.Region, Bucket: bucket, ForcePathStyle: true,
		AccessKey: server.AccessKey, SecretKey: server.SecretKey, CreateBucket: true,
		Log: zaptest.NewLogger(t),
	}
}

func newStore(t *testing.T, cfg Config) *Store {
	t.Helper()
	s, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New(bucket %q, prefix %q): %v", cfg.Bucket, cfg.Prefix, err)
	}
	return s
}

func TestBlobs(t *testing.T) {
	storagetest.TestBlobs(t, func(t *testing.T) storage.Blobs { return newStore(t, testConfig(t, newBucket())) })
}

// TestBlobsPrefix runs the suite on stores that share one bucket under different prefixes.
// Each store's prefix is a string prefix of every earlier one's ("x/xx" of "x/xxx"), so a
// store that matched objects by the bare prefix, not the prefix and "/", would see keys of
// others, which the suite's walk of an empty store catches.
func TestBlobsPrefix(t *testing.T) {
	bucket := newBucket()
	var n atomic.Int64
	storagetest.TestBlobs(t, func(t *testing.T) storage.Blobs {
		cfg := testConfig(t, bucket)
		// Slashes around a prefix are ignored.
		cfg.Prefix = "/shared/" + strings.Repeat("x", 30-int(n.Add(1))) + "/"
		return newStore(t, cfg)
	})
}

func TestPrefixLayout(t *testing.T) {
	cfg := testConfig(t, newBucket())
	cfg.Prefix = "gofer/blobs"
	s := newStore(t, cfg)
	key := storagetest.Key(t, "github.com/Azure/sdk", "v1.0.0", "mod")
	if err := s.Put(t.Context(), key, strings.NewReader("module github.com/Azure/sdk\n")); err != nil {
		t.Fatal(err)
	}
	// Operators find the blob under the prefix, in the go command's own layout.
	want := "gofer/blobs/github.com/!azure/sdk/@v/v1.0.0.mod"
	if _, err := s.client.HeadObject(t.Context(), &awss3.HeadObjectInput{Bucket: &cfg.Bucket, Key: &want}); err != nil {
		t.Errorf("HeadObject(%s): %v", want, err)
	}
	var keys []string
	if err := s.Walk(t.Context(), "", "", func(k string, _ int64) error { keys = append(keys, k); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != key {
		t.Errorf("Walk = %q, want [%q] (the prefix stripped, and no probe objects left)", keys, key)
	}
}

// TestMultipart stores blobs around and beyond one part, which go up as multipart uploads.
func TestMultipart(t *testing.T) {
	s := newStore(t, testConfig(t, newBucket()))
	data := storagetest.RandomBytes(1, 40<<20)
	for i, size := range []int{partSize, partSize + 1, 2 * partSize, 40 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			ctx := t.Context()
			key := storagetest.Key(t, "example.com/big", fmt.Sprintf("v1.0.%d", i), "zip")
			want := data[:size]

			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			if err := s.Put(ctx, key, storagetest.Stream(iotest.HalfReader(bytes.NewReader(want)))); err != nil {
				t.Fatalf("Put(%d bytes): %v", size, err)
			}
			runtime.ReadMemStats(&after)
			// Everything the Put allocated, garbage included: well below the blob's size when
			// one part at a time is held, and at least twice a large blob's size otherwise.
			if alloc := after.TotalAlloc - before.TotalAlloc; size > partSize && alloc > partSize+partSize/2 {
				t.Errorf("Put of %d bytes allocated %d bytes, want about one part (%d)", size, alloc, partSize)
			} else {
				t.Logf("Put of %d bytes allocated %d bytes", size, alloc)
			}

			r, n, err := s.Open(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if n != int64(size) {
				t.Errorf("Open size = %d, want %d", n, size)
			}
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("ReadAll = %d bytes, %v; want the %d bytes put", len(got), err, size)
			}
			tail := make([]byte, 1000)
			if m, err := r.ReadAt(tail, int64(size-500)); m != 500 || err != io.EOF || !bytes.Equal(tail[:m], want[size-500:]) {
				t.Errorf("ReadAt(1000 bytes, 500 before the end) = %d, %v; want the last 500 bytes and io.EOF", m, err)
			}
			if err := s.Put(ctx, key, storagetest.Stream(bytes.NewReader(want))); !errors.Is(err, gofer.ErrExists) {
				t.Errorf("second Put = %v, want ErrExists", err)
			}
		})
	}
}

// failingReader yields n bytes, then calls before (if any) and returns err.
type failingReader struct {
	r      io.Reader
	n      int64
	before func()
	err    error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		if f.before != nil {
			f.before()
		}
		return 0, f.err
	}
	m, err := f.r.Read(p[:min(int64(len(p)), f.n)])
	f.n -= int64(m)
	return m, err
}

// uploads lists the multipart uploads in progress in the store's bucket.
func uploads(t *testing.T, s *Store) []string {
	t.Helper()
	out, err := s.client.ListMultipartUploads(t.Context(), &awss3.ListMultipartUploadsInput{Bucket: &s.bucket})
	if err != nil {
		t.Fatalf("ListMultipartUploads: %v", err)
	}
	var keys []string
	for _, u := range out.Uploads {
		keys = append(keys, aws.ToString(u.Key)+" "+aws.ToString(u.UploadId))
	}
	return keys
}

// TestFailedMultipart checks that a large Put that fails midway, for its reader or its
// context, leaves neither an object nor the parts it uploaded.
func TestFailedMultipart(t *testing.T) {
	s := newStore(t, testConfig(t, newBucket()))
	errReset := errors.New("upstream connection reset")
	tests := []struct {
		name string
		put  func(key string) error
		want error
	}{
		{"reader fails", func(key string) error {
			r := &failingReader{r: bytes.NewReader(storagetest.RandomBytes(2, 40<<20)), n: 20 << 20, err: errReset}
			return s.Put(t.Context(), key, r)
		}, errReset},
		{"context cancelled", func(key string) error {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			// After 20 MiB the reader cancels the Put's context and would go on.
			r := &failingReader{r: bytes.NewReader(storagetest.RandomBytes(3, 40<<20)), n: 20 << 20, before: cancel}
			return s.Put(ctx, key, r)
		}, context.Canceled},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := storagetest.StagingKey(t, "example.com/failed", "v1.0.0", fmt.Sprint("run-", i), "zip")
			err := tt.put(key)
			if !errors.Is(err, tt.want) || errors.Is(err, gofer.ErrExists) {
				t.Errorf("Put failing after 20 MiB = %v, want an error matching %v (and not ErrExists)", err, tt.want)
			}
			if _, _, err := s.Open(t.Context(), key); !errors.Is(err, gofer.ErrNotFound) {
				t.Errorf("Open after the failed Put = %v, want ErrNotFound", err)
			}
			if u := uploads(t, s); len(u) != 0 {
				t.Errorf("multipart uploads left after the failed Put: %q", u)
			}
		})
	}
}

// TestConditionalWrites reports what the server does with If-None-Match and pins it for
// versitygw, which honours it on PutObject and CompleteMultipartUpload.
func TestConditionalWrites(t *testing.T) {
	s := newStore(t, testConfig(t, newBucket()))
	t.Logf("versitygw honours If-None-Match: * on PutObject: %v, on CompleteMultipartUpload: %v", s.conditionalPut, s.conditionalComplete)
	if !s.conditionalPut || !s.conditionalComplete {
		t.Errorf("probe found If-None-Match honoured on PutObject: %v, on CompleteMultipartUpload: %v; want both (versitygw v1.8.0 honours them)",
			s.conditionalPut, s.conditionalComplete)
	}

	// Past the HeadObject check, the conditional write alone must refuse a taken key: a
	// writer that lost the race learns it from the write itself.
	ctx := t.Context()
	key := storagetest.Key(t, "example.com/cond", "v1.0.0", "zip")
	obj := s.prefix + key
	for _, size := range []int{100, partSize + 100} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			defer s.Delete(ctx, key)
			first := storagetest.RandomBytes(4, size)
			err := s.Put(ctx, key, &failingReader{r: bytes.NewReader(storagetest.RandomBytes(5, size)), n: int64(size), err: io.EOF, before: func() {
				// The first writer finishes while the second is still reading its blob.
				if _, err := s.client.PutObject(ctx, &awss3.PutObjectInput{Bucket: &s.bucket, Key: &obj, Body: bytes.NewReader(first)}); err != nil {
					t.Errorf("PutObject: %v", err)
				}
			}})
			if !errors.Is(err, gofer.ErrExists) {
				t.Errorf("Put that lost the race = %v, want ErrExists", err)
			}
			b, _, err := readAll(t, s, key)
			if err != nil || !bytes.Equal(b, first) {
				t.Errorf("after the race the key holds %d bytes (%v), want the first writer's %d", len(b), err, size)
			}
			if u := uploads(t, s); len(u) != 0 {
				t.Errorf("multipart uploads left after the lost race: %q", u)
			}
		})
	}
}

// TestFallbackWithoutConditionalWrites runs Put as it does on a server that ignores
// If-None-Match: the HeadObject checks still refuse a key taken before the last request.
func TestFallbackWithoutConditionalWrites(t *testing.T) {
	s := newStore(t, testConfig(t, newBucket()))
	s.conditionalPut, s.conditionalComplete = false, false
	ctx := t.Context()
	key := storagetest.Key(t, "example.com/fallback", "v1.0.0", "zip")
	first := storagetest.RandomBytes(6, 100)
	if err := s.Put(ctx, key, bytes.NewReader(first)); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, key, bytes.NewReader(storagetest.RandomBytes(7, 100))); !errors.Is(err, gofer.ErrExists) {
		t.Errorf("Put of a taken key = %v, want ErrExists", err)
	}
	// A multipart Put checks again before completing.
	late := storagetest.Key(t, "example.com/fallback", "v1.0.1", "zip")
	lateObj := s.prefix + late
	err := s.Put(ctx, late, &failingReader{r: bytes.NewReader(storagetest.RandomBytes(8, partSize+100)), n: partSize + 100, err: io.EOF, before: func() {
		if _, err := s.client.PutObject(ctx, &awss3.PutObjectInput{Bucket: &s.bucket, Key: &lateObj, Body: bytes.NewReader(first)}); err != nil {
			t.Errorf("PutObject: %v", err)
		}
	}})
	if !errors.Is(err, gofer.ErrExists) {
		t.Errorf("multipart Put whose key was taken while it uploaded = %v, want ErrExists", err)
	}
	if b, _, err := readAll(t, s, late); err != nil || !bytes.Equal(b, first) {
		t.Errorf("the key holds %d bytes (%v), want the %d that took it", len(b), err, len(first))
	}
	if u := uploads(t, s); len(u) != 0 {
		t.Errorf("multipart uploads left: %q", u)
	}
}

func readAll(t *testing.T, s *Store, key string) ([]byte, int64, error) {
	t.Helper()
	r, n, err := s.Open(t.Context(), key)
	if err != nil {
		return nil, 0, err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	return b, n, err
}

func TestNewBucket(t *testing.T) {
	ctx := t.Context()
	cfg := testConfig(t, newBucket())
	cfg.CreateBucket = false
	_, err := New(ctx, cfg)
	if err == nil {
		t.Fatalf("New on a missing bucket without CreateBucket succeeded")
	}
	msg := fmt.Sprintf("bucket %q does not exist at %s; create it or set GOFER_S3_CREATE_BUCKET=true", cfg.Bucket, server.Endpoint)
	if !strings.Contains(err.Error(), msg) {
		t.Errorf("New on a missing bucket: %v\nwant the message %q", err, msg)
	}

	cfg.CreateBucket = true
	s := newStore(t, cfg)
	if _, err := s.client.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: &cfg.Bucket}); err != nil {
		t.Fatalf("New with CreateBucket did not create %s: %v", cfg.Bucket, err)
	}
	if err := s.Put(ctx, "k", strings.NewReader("v")); err != nil {
		t.Fatal(err)
	}
	// Both settings accept the bucket once it exists, and keep what it holds.
	for _, create := range []bool{false, true} {
		cfg.CreateBucket = create
		if b, _, err := readAll(t, newStore(t, cfg), "k"); err != nil || string(b) != "v" {
			t.Errorf("New(CreateBucket: %v) on an existing bucket: read %q, %v", create, b, err)
		}
	}
}

func TestNewInvalid(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(*Config)
	}{
		{"no bucket", func(c *Config) { c.Bucket = "" }},
		{"access key alone", func(c *Config) { c.SecretKey = "" }},
		{"secret key alone", func(c *Config) { c.AccessKey = "" }},
		{"endpoint without scheme", func(c *Config) { c.Endpoint = strings.TrimPrefix(server.Endpoint, "http://") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, newBucket())
			tt.edit(&cfg)
			if _, err := New(t.Context(), cfg); !errors.Is(err, gofer.ErrInvalid) {
				t.Errorf("New = %v, want an error matching gofer.ErrInvalid", err)
			}
		})
	}
}

func TestNewUnreachable(t *testing.T) {
	port, err := testserver.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, newBucket())
	cfg.Endpoint = fmt.Sprintf("http://127.0.0.1:%d", port)
	_, err = New(t.Context(), cfg)
	if !errors.Is(err, gofer.ErrUnavailable) || !strings.Contains(err.Error(), cfg.Endpoint) {
		t.Errorf("New with nothing listening at the endpoint = %v, want an error matching ErrUnavailable naming %s", err, cfg.Endpoint)
	}
}

func TestPresignGet(t *testing.T) {
	ctx := t.Context()
	s := newStore(t, testConfig(t, newBucket()))
	key := storagetest.Key(t, "github.com/Azure/sdk", "v1.0.0+incompatible", "zip")
	data := storagetest.RandomBytes(9, 3<<20)
	if err := s.Put(ctx, key, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	u, err := s.PresignGet(ctx, key, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// A plain client with no credentials: the go command following the redirect.
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || err != nil || !bytes.Equal(got, data) {
		t.Errorf("GET %s = %s, %d bytes, %v; want 200 and the %d bytes put", u, resp.Status, len(got), err, len(data))
	}

	// The signature covers the key: the URL cannot be bent to another object.
	other := strings.Replace(u, ".zip?", ".mod?", 1)
	if other == u {
		t.Fatalf("presigned URL %s does not end its path in .zip", u)
	}
	if resp, err := http.Get(other); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET of a presigned URL edited to another key = %s, want 403", resp.Status)
	}

	for _, ttl := range []time.Duration{0, -time.Second, 8 * 24 * time.Hour} {
		if _, err := s.PresignGet(ctx, key, ttl); !errors.Is(err, gofer.ErrInvalid) {
			t.Errorf("PresignGet(ttl %v) = %v, want ErrInvalid", ttl, err)
		}
	}
}

// countingTransport records the GET requests a store makes.
type countingTransport struct {
	mu      sync.Mutex
	gets    []string // the Range header of each GET, "" for none
	ifMatch []string
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet {
		c.mu.Lock()
		c.gets = append(c.gets, req.Header.Get("Range"))
		c.ifMatch = append(c.ifMatch, req.Header.Get("If-Match"))
		c.mu.Unlock()
	}
	return http.DefaultTransport.RoundTrip(req)
}

func (c *countingTransport) take() (gets, ifMatch []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gets, ifMatch = c.gets, c.ifMatch
	c.gets, c.ifMatch = nil, nil
	return gets, ifMatch
}

// TestReaderRequests pins the requests behind the reader, which the server's streaming depends
// on: a whole read costs one GET even after http.ServeContent's two seeks, a move costs one
// ranged GET, and ReadAt asks for exactly its window.
func TestReaderRequests(t *testing.T) {
	ctx := t.Context()
	s := newStore(t, testConfig(t, newBucket()))
	const size = 1 << 20
	data := storagetest.RandomBytes(10, size)
	key := storagetest.Key(t, "example.com/requests", "v1.0.0", "zip")
	if err := s.Put(ctx, key, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	ct := &countingTransport{}
	s.client = awss3.New(s.client.Options(), func(o *awss3.Options) { o.HTTPClient = &http.Client{Transport: ct} })

	r, n, err := s.Open(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	check := func(what string, wantGets ...string) {
		t.Helper()
		gets, ifMatch := ct.take()
		if strings.Join(gets, ",") != strings.Join(wantGets, ",") {
			t.Errorf("%s: GET ranges %q, want %q", what, gets, wantGets)
		}
		for i, m := range ifMatch {
			if gets[i] != "" && m == "" {
				t.Errorf("%s: ranged GET %q without If-Match", what, gets[i])
			}
		}
	}
	check("Open", "")
	if end, err := r.Seek(0, io.SeekEnd); err != nil || end != n {
		t.Fatalf("Seek(0, SeekEnd) = %d, %v", end, err)
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(r); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("ReadAll after seeking to the end and back = %d bytes, %v", len(b), err)
	}
	check("seeking to the end and back, then reading all")

	buf := make([]byte, 1000)
	if _, err := r.Seek(5000, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := io.ReadFull(r, buf); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(buf, data[7000:8000]) {
		t.Errorf("sequential reads after a seek returned the wrong bytes")
	}
	check("three reads after a seek", "bytes=5000-")

	if _, err := r.ReadAt(buf, 100_000); err != nil || !bytes.Equal(buf, data[100_000:101_000]) {
		t.Errorf("ReadAt: %v", err)
	}
	if _, err := io.ReadFull(r, buf); err != nil || !bytes.Equal(buf, data[8000:9000]) {
		t.Errorf("Read after ReadAt: %v", err)
	}
	check("ReadAt, then Read where the last Read ended", "bytes=100000-100999")
}

// TestReplacedWhileReading checks that a reader never mixes the bytes of two blobs stored
// under one key: a blob deleted and stored again makes the reader fail instead.
func TestReplacedWhileReading(t *testing.T) {
	ctx := t.Context()
	s := newStore(t, testConfig(t, newBucket()))
	key := storagetest.Key(t, "example.com/replaced", "v1.0.0", "zip")
	if err := s.Put(ctx, key, bytes.NewReader(storagetest.RandomBytes(11, 10_000))); err != nil {
		t.Fatal(err)
	}
	r, _, err := s.Open(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := s.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, key, bytes.NewReader(storagetest.RandomBytes(12, 10_000))); err != nil {
		t.Fatal(err)
	}
	if n, err := r.ReadAt(make([]byte, 100), 5000); !errors.Is(err, gofer.ErrUnavailable) {
		t.Errorf("ReadAt after the blob was replaced = %d, %v; want an error matching ErrUnavailable", n, err)
	}
}

// TestOutage stops the server: every operation fails as unavailable, never as not found (which
// the proxy would answer with a 404 that clients take as final), and all work again once it is
// back.
func TestOutage(t *testing.T) {
	ctx := t.Context()
	s := newStore(t, testConfig(t, newBucket()))
	key := storagetest.Key(t, "example.com/outage", "v1.0.0", "zip")
	data := storagetest.RandomBytes(13, 100_000)
	if err := s.Put(ctx, key, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	open, _, err := s.Open(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()

	server.Stop()
	restarted := false
	defer func() {
		if !restarted {
			if err := server.Start(); err != nil {
				t.Errorf("restart: %v", err)
			}
		}
	}()
	missing := storagetest.Key(t, "example.com/outage", "v9.0.0", "zip")
	checks := map[string]error{}
	_, _, checks["Open of a stored blob"] = s.Open(ctx, key)
	_, _, checks["Open of a missing blob"] = s.Open(ctx, missing)
	checks["Put"] = s.Put(ctx, missing, bytes.NewReader(data))
	checks["Delete"] = s.Delete(ctx, missing)
	checks["Walk"] = s.Walk(ctx, "", "", func(string, int64) error { return nil })
	_, checks["ReadAt of an open reader"] = open.ReadAt(make([]byte, 10), 50_000)
	for what, err := range checks {
		if !errors.Is(err, gofer.ErrUnavailable) || errors.Is(err, gofer.ErrNotFound) {
			t.Errorf("%s while S3 is down = %v, want an error matching ErrUnavailable only", what, err)
		}
	}

	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	if b, _, err := readAll(t, s, key); err != nil || !bytes.Equal(b, data) {
		t.Errorf("Open after S3 is back = %d bytes, %v", len(b), err)
	}
	if err := s.Put(ctx, missing, bytes.NewReader(data)); err != nil {
		t.Errorf("Put after S3 is back: %v", err)
	}
	if b, _, err := readAll(t, s, missing); err != nil || !bytes.Equal(b, data) {
		t.Errorf("reading the blob put after S3 is back = %d bytes, %v", len(b), err)
	}
	if n, err := open.ReadAt(make([]byte, 10), 50_000); n != 10 || err != nil {
		t.Errorf("ReadAt of a reader opened before the outage = %d, %v", n, err)
	}
}
