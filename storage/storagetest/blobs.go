package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/storage"
)

// TestBlobs runs the storage.Blobs conformance suite. newStore must return an empty store for
// every call; each subtest uses a fresh one, so a failure in one cannot hide or cause another.
func TestBlobs(t *testing.T, newStore func(t *testing.T) storage.Blobs) {
	t.Run("PutOpen", func(t *testing.T) { testPutOpen(t, newStore(t)) })
	t.Run("OpenMissing", func(t *testing.T) { testOpenMissing(t, newStore(t)) })
	t.Run("PutExisting", func(t *testing.T) { testPutExisting(t, newStore(t)) })
	t.Run("FailedPut", func(t *testing.T) { testFailedPut(t, newStore(t)) })
	t.Run("Reader", func(t *testing.T) { testReader(t, newStore(t)) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, newStore(t)) })
	t.Run("Keys", func(t *testing.T) { testKeys(t, newStore(t)) })
	t.Run("Large", func(t *testing.T) { testLarge(t, newStore(t)) })
	t.Run("Walk", func(t *testing.T) { testWalk(t, newStore(t)) })
	t.Run("ConcurrentPut", func(t *testing.T) {
		t.Run("SameBytes", func(t *testing.T) { testConcurrentPut(t, newStore(t), true) })
		t.Run("DifferentBytes", func(t *testing.T) { testConcurrentPut(t, newStore(t), false) })
	})
}

// readBlob opens key and reads it whole. It checks that the size Open reports is the number
// of bytes the reader yields, because the server sends that size as Content-Length. Errors
// after Open are flattened (%v) so that they can never be mistaken for gofer.ErrNotFound.
func readBlob(ctx context.Context, s storage.Blobs, key string) ([]byte, error) {
	r, size, err := s.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(r)
	cerr := r.Close()
	if err != nil {
		return nil, fmt.Errorf("read %s: %v", key, err)
	}
	if cerr != nil {
		return nil, fmt.Errorf("close %s: %v", key, cerr)
	}
	if int64(len(b)) != size {
		return b, fmt.Errorf("open %s reported size %d, but the reader yielded %d bytes", key, size, len(b))
	}
	return b, nil
}

func mustPut(t *testing.T, s storage.Blobs, key string, b []byte) {
	t.Helper()
	if err := s.Put(t.Context(), key, reader(b)); err != nil {
		t.Fatalf("Put(%s, %d bytes): %v", key, len(b), err)
	}
}

// wantBlob checks that key holds exactly want.
func wantBlob(t *testing.T, s storage.Blobs, key string, want []byte) {
	t.Helper()
	got, err := readBlob(t.Context(), s, key)
	if err != nil {
		t.Errorf("reading %s: %v", key, err)
		return
	}
	if d := diff(got, want); d != "" {
		t.Errorf("blob %s: %s", key, d)
	}
}

// wantNotFound checks that Open of key fails with gofer.ErrNotFound.
func wantNotFound(t *testing.T, s storage.Blobs, key string) {
	t.Helper()
	r, size, err := s.Open(t.Context(), key)
	if err == nil {
		r.Close()
		t.Errorf("Open(%s) = %d bytes, want an error matching gofer.ErrNotFound", key, size)
		return
	}
	if !errors.Is(err, gofer.ErrNotFound) {
		t.Errorf("Open(%s) error = %v, want one matching gofer.ErrNotFound", key, err)
	}
}

func testPutOpen(t *testing.T, s storage.Blobs) {
	small := RandomBytes(1, 100)
	odd := RandomBytes(2, 3001)
	tests := []struct {
		name string
		want []byte
		r    io.Reader
	}{
		{"empty", nil, reader(nil)},
		{"small", small, reader(small)},
		// The last bytes arrive together with io.EOF, which a careless copy loop drops.
		{"data with EOF", odd, iotest.DataErrReader(reader(odd))},
		{"short reads", odd, iotest.HalfReader(reader(odd))},
		{"one byte reads", odd, iotest.OneByteReader(reader(odd))},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := Key(t, "example.com/putopen", fmt.Sprintf("v1.0.%d", i), "zip")
			if err := s.Put(t.Context(), key, tt.r); err != nil {
				t.Fatalf("Put(%s): %v", key, err)
			}
			wantBlob(t, s, key, tt.want)
		})
	}
}

func testOpenMissing(t *testing.T, s storage.Blobs) {
	const path, version = "example.com/missing", "v1.0.0"
	wantNotFound(t, s, Key(t, path, version, "info"))

	// A stored neighbour must not make its siblings, other versions or staged copies appear.
	mustPut(t, s, Key(t, path, version, "info"), RandomBytes(3, 10))
	wantNotFound(t, s, Key(t, path, version, "mod"))
	wantNotFound(t, s, Key(t, path, "v1.0.1", "info"))
	wantNotFound(t, s, Key(t, path+"/v2", "v2.0.0", "info"))
	wantNotFound(t, s, StagingKey(t, path, version, "run-1", "info"))
}

func testPutExisting(t *testing.T, s storage.Blobs) {
	tests := []struct {
		name  string
		first []byte
	}{
		// An empty blob exists too: a store that takes zero bytes for absence would let a
		// second Put replace it.
		{"empty", nil},
		{"non-empty", RandomBytes(4, 4096)},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := Key(t, "example.com/existing", fmt.Sprintf("v1.0.%d", i), "mod")
			mustPut(t, s, key, tt.first)

			for _, second := range [][]byte{RandomBytes(5, 5000), tt.first} {
				// The second Put must recognise the key before reading: a retried commit must
				// not stream a 500 MiB zip again only to be told it is already stored.
				r := &countingReader{r: bytes.NewReader(second)}
				err := s.Put(t.Context(), key, r)
				if !errors.Is(err, gofer.ErrExists) {
					t.Errorf("second Put(%s) of %d bytes: error = %v, want one matching gofer.ErrExists", key, len(second), err)
				}
				if r.n != 0 {
					t.Errorf("second Put(%s) read %d bytes of its reader, want 0", key, r.n)
				}
				wantBlob(t, s, key, tt.first)
			}
		})
	}
}

func testFailedPut(t *testing.T, s storage.Blobs) {
	errRead := errors.New("storagetest: upstream connection reset")
	data := RandomBytes(6, 4<<20)
	for i, failAfter := range []int{0, 1000, 3 << 20} {
		t.Run(fmt.Sprintf("after %d bytes", failAfter), func(t *testing.T) {
			key := StagingKey(t, "example.com/failed", "v1.0.0", fmt.Sprintf("run-%d", i), "zip")
			r := io.MultiReader(bytes.NewReader(data[:failAfter]), iotest.ErrReader(errRead))
			err := s.Put(t.Context(), key, plainReader{r})
			if err == nil {
				t.Fatalf("Put(%s) with a reader failing after %d bytes succeeded", key, failAfter)
			}
			if errors.Is(err, gofer.ErrExists) {
				t.Errorf("Put(%s) with a failing reader: error = %v, which claims the key is taken", key, err)
			}
			wantNotFound(t, s, key)

			// The failed attempt must not hold the key: the retry has to be able to store it.
			mustPut(t, s, key, data)
			wantBlob(t, s, key, data)
		})
	}
}

func testReader(t *testing.T, s storage.Blobs) {
	const size = 100_000
	data := RandomBytes(7, size)
	key := Key(t, "example.com/reader", "v1.0.0", "zip")
	mustPut(t, s, key, data)

	r, n, err := s.Open(t.Context(), key)
	if err != nil {
		t.Fatalf("Open(%s): %v", key, err)
	}
	defer func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	if n != size {
		t.Fatalf("Open(%s) size = %d, want %d", key, n, size)
	}

	seekRead := func(offset int64, whence int, wantPos int64, length int) {
		t.Helper()
		pos, err := r.Seek(offset, whence)
		if err != nil || pos != wantPos {
			t.Errorf("Seek(%d, %d) = %d, %v; want %d, nil", offset, whence, pos, err, wantPos)
			return
		}
		buf := make([]byte, length)
		if _, err := io.ReadFull(r, buf); err != nil {
			t.Errorf("after Seek(%d, %d): ReadFull(%d bytes): %v", offset, whence, length, err)
			return
		}
		if d := diff(buf, data[wantPos:wantPos+int64(length)]); d != "" {
			t.Errorf("after Seek(%d, %d): %s", offset, whence, d)
		}
	}
	seekRead(1234, io.SeekStart, 1234, 1000)
	seekRead(500, io.SeekCurrent, 2734, 100) // from 2234, where the last read ended
	seekRead(-10, io.SeekEnd, size-10, 10)   // the last bytes, as a range request "bytes=-10"
	seekRead(0, io.SeekStart, 0, size)       // back to the start after reaching the end
	seekRead(-size, io.SeekEnd, 0, 1)        // the first byte, from the end

	if pos, err := r.Seek(0, io.SeekEnd); err != nil || pos != size {
		t.Errorf("Seek(0, SeekEnd) = %d, %v; want %d, nil", pos, err, size)
	}
	if n, err := r.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("Read at the end = %d, %v; want 0, io.EOF", n, err)
	}
	if _, err := r.Seek(-1, io.SeekStart); err == nil {
		t.Errorf("Seek(-1, SeekStart) succeeded, want an error (io.Seeker: before the start is an error)")
	}

	readAt := []struct {
		off    int64
		length int
		want   int  // bytes ReadAt must return
		eof    bool // whether io.EOF is required (a short read must say why)
	}{
		{0, 10, 10, false},
		{4096, 5000, 5000, false},
		{size - 10, 10, 10, false}, // ending exactly at the end: nil or io.EOF are both allowed
		{size - 5, 10, 5, true},
		{size, 1, 0, true},
		{size + 1000, 1, 0, true},
	}
	for _, tt := range readAt {
		buf := make([]byte, tt.length)
		n, err := r.ReadAt(buf, tt.off)
		switch {
		case n != tt.want:
			t.Errorf("ReadAt(%d bytes, %d) = %d bytes, %v; want %d bytes", tt.length, tt.off, n, err, tt.want)
		case tt.eof && err != io.EOF:
			t.Errorf("ReadAt(%d bytes, %d) = %d bytes, %v; want io.EOF", tt.length, tt.off, n, err)
		case !tt.eof && err != nil && err != io.EOF:
			t.Errorf("ReadAt(%d bytes, %d) = %d bytes, %v; want nil error", tt.length, tt.off, n, err)
		case n > 0:
			if d := diff(buf[:n], data[tt.off:tt.off+int64(n)]); d != "" {
				t.Errorf("ReadAt(%d bytes, %d): %s", tt.length, tt.off, d)
			}
		}
	}

	// io.ReaderAt: ReadAt neither affects nor is affected by the seek offset.
	if _, err := r.Seek(50, io.SeekStart); err != nil {
		t.Fatalf("Seek(50, SeekStart): %v", err)
	}
	if _, err := r.ReadAt(make([]byte, 1000), 70_000); err != nil {
		t.Errorf("ReadAt(1000 bytes, 70000): %v", err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Errorf("Read after ReadAt: %v", err)
	} else if d := diff(buf, data[50:60]); d != "" {
		t.Errorf("Read after Seek(50) and a ReadAt elsewhere: %s", d)
	}

	// io.ReaderAt: clients may call ReadAt in parallel on one reader.
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			buf := make([]byte, 777)
			for i := range 50 {
				off := int64((g*50+i)*997) % (size - int64(len(buf)))
				n, err := r.ReadAt(buf, off)
				if n != len(buf) || (err != nil && err != io.EOF) {
					t.Errorf("parallel ReadAt(%d bytes, %d) = %d, %v", len(buf), off, n, err)
					return
				}
				if d := diff(buf, data[off:off+int64(len(buf))]); d != "" {
					t.Errorf("parallel ReadAt(%d bytes, %d): %s", len(buf), off, d)
					return
				}
			}
		})
	}
	wg.Wait()
}

func testDelete(t *testing.T, s storage.Blobs) {
	ctx := t.Context()
	const path, version = "example.com/delete", "v1.0.0"
	info, mod := Key(t, path, version, "info"), Key(t, path, version, "mod")
	mustPut(t, s, info, RandomBytes(8, 100))
	modData := RandomBytes(9, 200)
	mustPut(t, s, mod, modData)

	if err := s.Delete(ctx, info); err != nil {
		t.Fatalf("Delete(%s) of a stored blob: %v", info, err)
	}
	wantNotFound(t, s, info)
	wantBlob(t, s, mod, modData)

	if err := s.Delete(ctx, info); err != nil {
		t.Errorf("Delete(%s) a second time: %v, want nil", info, err)
	}
	never := Key(t, path, "v9.9.9", "zip")
	if err := s.Delete(ctx, never); err != nil {
		t.Errorf("Delete(%s) of a key never stored: %v, want nil", never, err)
	}
	wantNotFound(t, s, never)

	// Deleting frees the key: a quarantined version must be storable again.
	again := RandomBytes(10, 300)
	mustPut(t, s, info, again)
	wantBlob(t, s, info, again)
}

func testKeys(t *testing.T, s storage.Blobs) {
	keys := []string{
		Key(t, "github.com/Azure/sdk", "v1.2.3", "info"), // github.com/!azure/sdk
		Key(t, "github.com/azure/sdk", "v1.2.3", "info"), // must not collide with the above
		Key(t, "github.com/Azure/sdk", "v2.0.0+incompatible", "mod"),
		Key(t, "github.com/Azure/sdk", "v2.0.0+incompatible", "zip"),
		Key(t, "example.com/UPPER/Case", "v1.0.0-RC.1", "info"), // upper case in the version too
		Key(t, "example.com/a", "v1.0.0", "zip"),
		Key(t, "example.com/ab", "v1.0.0", "zip"),
		Key(t, "example.com/a/v2", "v2.0.0", "zip"),
		Key(t, "gopkg.in/yaml.v3", "v3.0.1", "mod"),
		Key(t, "example.com/m", "v0.0.0-20240101120000-abcdefabcdef", "info"),
		Key(t, "example.com/t~i-l_d.e", "v1.0.0", "mod"),
		StagingKey(t, "github.com/Azure/sdk", "v2.0.0+incompatible", "0190b3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b", "zip"),
		StagingKey(t, "github.com/Azure/sdk", "v2.0.0+incompatible", "0190b3c4-5d6e-7f80-9a1b-2c3d4e5f6a7c", "zip"),
	}
	data := make(map[string][]byte)
	for i, key := range keys {
		data[key] = RandomBytes(uint64(1000+i), 64+i)
		mustPut(t, s, key, data[key])
	}
	for _, key := range keys {
		wantBlob(t, s, key, data[key])
	}

	if err := s.Delete(t.Context(), keys[0]); err != nil {
		t.Fatalf("Delete(%s): %v", keys[0], err)
	}
	wantNotFound(t, s, keys[0])
	for _, key := range keys[1:] {
		wantBlob(t, s, key, data[key])
	}
}

func testLarge(t *testing.T, s storage.Blobs) {
	// Around 5 MiB, the smallest S3 multipart part, where single and multipart uploads meet.
	for i, size := range []int{5<<20 - 1, 5 << 20, 5<<20 + 1} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			data := RandomBytes(uint64(20+i), size)
			key := Key(t, "example.com/large", fmt.Sprintf("v1.0.%d", i), "zip")
			if err := s.Put(t.Context(), key, iotest.HalfReader(reader(data))); err != nil {
				t.Fatalf("Put(%s, %d bytes): %v", key, size, err)
			}
			wantBlob(t, s, key, data)

			r, n, err := s.Open(t.Context(), key)
			if err != nil {
				t.Fatalf("Open(%s): %v", key, err)
			}
			defer r.Close()
			if n != int64(size) {
				t.Errorf("Open(%s) size = %d, want %d", key, n, size)
			}
			// zip.CheckZip starts with the directory at the end of the file.
			tail := make([]byte, 1000)
			if m, err := r.ReadAt(tail, int64(size-len(tail))); m != len(tail) || (err != nil && err != io.EOF) {
				t.Errorf("ReadAt(the last %d bytes) = %d, %v", len(tail), m, err)
			} else if d := diff(tail, data[size-len(tail):]); d != "" {
				t.Errorf("ReadAt(the last %d bytes): %s", len(tail), d)
			}
		})
	}
}

// testConcurrentPut races writers for one key while readers watch it. With same, every writer
// holds the same bytes (two replicas committing one version); otherwise each holds its own
// (an upstream that changed a version), and the store must keep exactly the winner's bytes.
func testConcurrentPut(t *testing.T, s storage.Blobs, same bool) {
	const writers, readers, size = 20, 4, 1 << 20
	ctx := t.Context()
	key := Key(t, "example.com/race", "v1.0.0", "zip")
	blobs := make([][]byte, writers)
	for i := range blobs {
		if same {
			blobs[i] = RandomBytes(30, size)
		} else {
			blobs[i] = RandomBytes(uint64(100+i), size)
		}
	}

	start := make(chan struct{})
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			<-start
			errs[i] = s.Put(ctx, key, &slowReader{b: blobs[i], chunk: 32 << 10, pause: 200 * time.Microsecond})
		})
	}

	// Readers record a hash of everything they manage to read; any of it that is not the
	// winner's blob was a partial or mixed blob made visible.
	var done atomic.Bool
	seen := make([]map[[32]byte]int, readers)
	var rwg sync.WaitGroup
	for j := range readers {
		seen[j] = make(map[[32]byte]int)
		rwg.Go(func() {
			<-start
			for !done.Load() {
				b, err := readBlob(ctx, s, key)
				if errors.Is(err, gofer.ErrNotFound) {
					runtime.Gosched()
					continue
				}
				if err != nil {
					t.Errorf("reader during concurrent Puts: %v", err)
					return
				}
				seen[j][sha256.Sum256(b)] = len(b)
			}
		})
	}
	close(start)
	wg.Wait()
	done.Store(true)
	rwg.Wait()

	winner := oneWinner(t, "Put", errs)
	want := blobs[winner]
	wantBlob(t, s, key, want)
	wantHash := sha256.Sum256(want)
	var good, bad int
	var badSizes []int
	for _, m := range seen {
		for h, n := range m {
			if h == wantHash {
				good++
				continue
			}
			bad++
			if len(badSizes) < 5 {
				badSizes = append(badSizes, n)
			}
		}
	}
	if bad > 0 {
		t.Errorf("readers saw %d blobs that are not the stored one (partial or mixed), of sizes %v and more; want only ErrNotFound or all %d bytes", bad, badSizes, size)
	}
	t.Logf("%d of %d readers saw the complete blob while the Puts raced", good, readers)
}

// oneWinner checks that exactly one of errs is nil and the rest match gofer.ErrExists, and
// returns the index of the success; it stops the test if there is none.
func oneWinner(t *testing.T, op string, errs []error) int {
	t.Helper()
	var winners []int
	for i, err := range errs {
		switch {
		case err == nil:
			winners = append(winners, i)
		case !errors.Is(err, gofer.ErrExists):
			t.Errorf("%s %d of %d: error = %v, want nil or one matching gofer.ErrExists", op, i, len(errs), err)
		}
	}
	if len(winners) == 0 {
		t.Fatalf("none of %d concurrent %ss succeeded, want exactly one", len(errs), op)
	}
	if len(winners) > 1 {
		t.Errorf("%d of %d concurrent %ss succeeded (%v), want exactly one", len(winners), len(errs), op, winners)
	}
	return winners[0]
}

// walked is one call of a Walk callback.
type walked struct {
	key  string
	size int64
}

// walk collects what Walk(prefix, "") reports.
func walk(ctx context.Context, s storage.Blobs, prefix string) ([]walked, error) {
	return walkAfter(ctx, s, prefix, "")
}

// walkAfter collects what Walk(prefix, after) reports.
func walkAfter(ctx context.Context, s storage.Blobs, prefix, after string) ([]walked, error) {
	var got []walked
	err := s.Walk(ctx, prefix, after, func(key string, size int64) error {
		got = append(got, walked{key, size})
		return nil
	})
	return got, err
}

func testWalk(t *testing.T, s storage.Blobs) {
	ctx := t.Context()
	for _, prefix := range []string{"", "example.com/", "_staging/"} {
		if got, err := walk(ctx, s, prefix); err != nil || len(got) != 0 {
			t.Errorf("Walk(%q) of an empty store = %v, %v; want nothing and nil", prefix, got, err)
		}
	}

	// Listed in an order that is not lexical, so that a store that walks in insertion order
	// fails. Several keys differ from a neighbour only after a path element that is a string
	// prefix of the neighbour's ("a" against "a-b", "a.b" and "ab"): the bytes '-' and '.' sort
	// before '/', so walking directory by directory (a, a-b, a.b) is not lexical order of keys.
	keys := []string{
		Key(t, "gopkg.in/yaml.v3", "v3.0.1", "mod"),
		Key(t, "example.com/a", "v1.0.0", "zip"),
		Key(t, "example.com/a", "v1.0.0", "info"),
		Key(t, "example.com/a", "v1.0.0", "mod"),
		Key(t, "example.com/a", "v1.10.0", "zip"),
		Key(t, "example.com/a", "v1.0.0-pre", "zip"),
		Key(t, "example.com/a/v2", "v2.0.0", "zip"),
		Key(t, "example.com/ab", "v1.0.0", "zip"),
		Key(t, "example.com/a-b", "v1.0.0", "zip"),
		Key(t, "example.com/a.b", "v1.0.0", "zip"),
		Key(t, "example.com/A", "v1.0.0", "zip"), // example.com/!a
		Key(t, "github.com/Azure/sdk", "v1.2.3", "info"),
		StagingKey(t, "example.com/a", "v1.0.0", "run-2", "zip"),
		StagingKey(t, "example.com/a", "v1.0.0", "run-1", "zip"),
		StagingKey(t, "example.com/a", "v1.0.0-pre", "run-1", "zip"),
	}
	var all []walked
	for i, key := range keys {
		size := 10 * i // the first is empty: an empty blob is a blob and is walked
		mustPut(t, s, key, RandomBytes(uint64(2000+i), size))
		all = append(all, walked{key, int64(size)})
	}
	slices.SortFunc(all, func(a, b walked) int { return strings.Compare(a.key, b.key) })
	filter := func(prefix string) []walked {
		var w []walked
		for _, e := range all {
			if strings.HasPrefix(e.key, prefix) {
				w = append(w, e)
			}
		}
		return w
	}
	check := func(prefix string, want []walked) {
		t.Helper()
		got, err := walk(ctx, s, prefix)
		if err != nil {
			t.Errorf("Walk(%q): %v", prefix, err)
			return
		}
		if !slices.Equal(got, want) {
			t.Errorf("Walk(%q) =\n\t%v\nwant (lexical order of keys, with sizes)\n\t%v", prefix, got, want)
		}
	}

	prefixes := []struct {
		prefix string
		n      int // how many keys it matches, so that a typo here cannot make a case vacuous
	}{
		{"", len(keys)},
		{"e", 10},
		{"example.com/", 10},
		{"example.com/a", 9}, // a string prefix, not a directory: a-b, a.b and ab match too
		{"example.com/a/", 6},
		{"example.com/a/@v/", 5},
		{"example.com/a/@v/v1.0.0.", 3},
		{"example.com/a/@v/v1.0.0.zip", 1},
		{"example.com/a/@v/v1.0.0.zip/", 0}, // below a blob
		{"example.com/a/@v/v1.0.0.zipx", 0},
		{"example.com/!", 1},
		{"_staging/", 3},
		{"_staging/example.com/a/@v/v1.0.0", 3},
		{"_staging/example.com/a/@v/v1.0.0/", 2},
		{"github.com/!azure/sdk/@v/v1.2.3.info", 1},
		{"nothing/", 0},
	}
	for _, p := range prefixes {
		want := filter(p.prefix)
		if len(want) != p.n {
			t.Fatalf("test table: prefix %q matches %d keys, not %d", p.prefix, len(want), p.n)
		}
		check(p.prefix, want)
	}

	// Walking on after a key: every key sorting after it, and nothing before, for every stored
	// key as the cursor (inside and across directories), and for cursors that are not keys.
	afters := []string{"", "_staging/example.com/a/@v/v1.0.0/run-2.", "example.com/a", "example.com/a/", "example.com/a/@v/v1.0.0.zip~", "zzz"}
	for _, e := range all {
		afters = append(afters, e.key)
	}
	for _, prefix := range []string{"", "example.com/", "example.com/a"} {
		for _, after := range afters {
			var want []walked
			for _, e := range filter(prefix) {
				if e.key > after {
					want = append(want, e)
				}
			}
			got, err := walkAfter(ctx, s, prefix, after)
			if err != nil || !slices.Equal(got, want) {
				t.Errorf("Walk(%q, after %q) = %v, %v\nwant %v", prefix, after, got, err, want)
			}
		}
	}

	// fn's error stops the walk and comes back from it.
	errStop := errors.New("storagetest: stop walking")
	calls := 0
	err := s.Walk(ctx, "", "", func(string, int64) error {
		calls++
		if calls == 3 {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) {
		t.Errorf("Walk whose fn fails at the 3rd key = %v, want fn's error", err)
	}
	if calls != 3 {
		t.Errorf("Walk called fn %d times after fn failed at the 3rd key, want 3", calls)
	}

	// A deleted blob and a failed Put leave nothing to walk.
	if err := s.Delete(ctx, all[0].key); err != nil {
		t.Fatalf("Delete(%s): %v", all[0].key, err)
	}
	all = all[1:]
	failed := StagingKey(t, "example.com/a", "v1.0.0", "run-3", "zip")
	r := io.MultiReader(bytes.NewReader(RandomBytes(2100, 1000)), iotest.ErrReader(errors.New("storagetest: reset")))
	if err := s.Put(ctx, failed, plainReader{r}); err == nil {
		t.Fatalf("Put(%s) with a failing reader succeeded", failed)
	}
	check("", all)

	// While a Put is in progress, a walk sees the blob whole or not at all: the gc that walks
	// the store must never find a half-written blob, or a temporary file, to judge.
	const size = 1 << 20
	key := Key(t, "example.com/walking", "v1.0.0", "zip")
	putErr := make(chan error, 1)
	go func() {
		putErr <- s.Put(ctx, key, &slowReader{b: RandomBytes(2200, size), chunk: 16 << 10, pause: time.Millisecond})
	}()
	with := slices.Clone(all)
	with = append(with, walked{key, size})
	slices.SortFunc(with, func(a, b walked) int { return strings.Compare(a.key, b.key) })
	walks := 0
	for done := false; !done; walks++ {
		select {
		case err := <-putErr:
			if err != nil {
				t.Fatalf("Put(%s): %v", key, err)
			}
			done = true
		default:
		}
		got, err := walk(ctx, s, "")
		if err != nil {
			t.Fatalf("Walk during a Put: %v", err)
		}
		if !slices.Equal(got, all) && !slices.Equal(got, with) {
			t.Fatalf("Walk during a Put of %s (%d bytes) =\n\t%v\nwant the stored blobs, with or without the whole new one", key, size, got)
		}
	}
	check("", with)
	t.Logf("%d walks while a Put was in progress", walks)
}
