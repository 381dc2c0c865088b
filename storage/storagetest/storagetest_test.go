package storagetest_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/module"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/storage/storagetest"
)

// The suites are tested against in-memory stores: a correct one must pass, and each deliberately
// broken one must fail the subtest that guards the broken sentence of the contract. Without the
// second half, an assertion that can never fail would go unnoticed.

// bugEnv names the bug a re-executed test binary plants in the in-memory stores.
const bugEnv = "STORAGETEST_BUG"

func TestMemBlobs(t *testing.T) {
	storagetest.TestBlobs(t, func(*testing.T) storage.Blobs { return newMemBlobs("") })
}

func TestMemMetadata(t *testing.T) {
	storagetest.TestMetadata(t, func(*testing.T) storage.Metadata { return newMemMetadata("") })
}

func TestBuggyBlobs(t *testing.T) {
	bug := os.Getenv(bugEnv)
	if bug == "" {
		t.Skip("run by TestSuitesCatchBugs")
	}
	storagetest.TestBlobs(t, func(*testing.T) storage.Blobs { return newMemBlobs(bug) })
}

func TestBuggyMetadata(t *testing.T) {
	bug := os.Getenv(bugEnv)
	if bug == "" {
		t.Skip("run by TestSuitesCatchBugs")
	}
	storagetest.TestMetadata(t, func(*testing.T) storage.Metadata { return newMemMetadata(bug) })
}

func TestSuitesCatchBugs(t *testing.T) {
	if os.Getenv(bugEnv) != "" {
		t.Skip("already inside a re-executed binary")
	}
	tests := []struct {
		suite   string // Blobs or Metadata
		bug     string
		subtest string // the subtest that must fail
	}{
		{"Blobs", "size-off-by-one", "PutOpen"},
		{"Blobs", "drop-eof-data", "PutOpen"},
		{"Blobs", "missing-plain-error", "OpenMissing"},
		{"Blobs", "overwrite", "PutExisting"},
		{"Blobs", "reads-existing", "PutExisting"},
		{"Blobs", "empty-is-absent", "PutExisting"},
		{"Blobs", "keep-partial", "FailedPut"},
		{"Blobs", "failed-holds-key", "FailedPut"},
		{"Blobs", "readat-moves-offset", "Reader"},
		{"Blobs", "readat-short-nil", "Reader"},
		{"Blobs", "seek-end-ignored", "Reader"},
		{"Blobs", "delete-noop", "Delete"},
		{"Blobs", "delete-missing-error", "Delete"},
		{"Blobs", "strip-bang", "Keys"},
		{"Blobs", "base-name-only", "Keys"},
		{"Blobs", "truncate-5mib", "Large"},
		{"Blobs", "walk-unordered", "Walk"},
		{"Blobs", "walk-path-prefix", "Walk"},
		{"Blobs", "walk-no-stop", "Walk"},
		{"Blobs", "walk-size-zero", "Walk"},
		{"Blobs", "walk-ignore-after", "Walk"},
		{"Blobs", "keep-partial", "Walk"},
		{"Blobs", "visible-while-writing", "Walk"},
		{"Blobs", "racy-put", "ConcurrentPut/SameBytes"},
		{"Blobs", "racy-put", "ConcurrentPut/DifferentBytes"},
		{"Blobs", "visible-while-writing", "ConcurrentPut/SameBytes"},
		{"Metadata", "time-seconds", "InsertGet"},
		{"Metadata", "version-only-key", "InsertGet"},
		{"Metadata", "get-missing-zero", "GetMissing"},
		{"Metadata", "fold-case", "GetMissing"},
		{"Metadata", "insert-overwrites", "InsertExisting"},
		{"Metadata", "prefix-versions", "Versions"},
		{"Metadata", "versions-unknown-error", "Versions"},
		{"Metadata", "catalog-key-order", "Catalog"},
		{"Metadata", "catalog-includes-after", "Catalog"},
		{"Metadata", "racy-insert", "ConcurrentInsert"},
		{"Metadata", "lost-update", "ConcurrentInsert"},
		{"Metadata", "close-error", "Close"},
		{"Metadata", "zip-shadows", "ZipLater"},
		{"Metadata", "zip-overwrites", "ZipLater"},
		{"Metadata", "index-includes-since", "Index"},
		{"Metadata", "index-zip-too", "Index"},
		{"Metadata", "index-by-path", "Index"},
		{"Metadata", "index-time-before-commit", "IndexWhileStoring"},
	}
	for _, tt := range tests {
		t.Run(tt.suite+"/"+tt.bug+"/"+tt.subtest, func(t *testing.T) {
			t.Parallel()
			top := "TestBuggy" + tt.suite
			run := "^" + top + "$"
			for _, part := range strings.Split(tt.subtest, "/") {
				run += "/^" + part + "$"
			}
			cmd := exec.Command(os.Args[0], "-test.run="+run, "-test.v", "-test.count=1", "-test.timeout=2m")
			cmd.Env = append(os.Environ(), bugEnv+"="+tt.bug)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a store with bug %q:\n%s", tt.bug, out)
			}
			if want := "--- FAIL: " + top + "/" + tt.subtest; !bytes.Contains(out, []byte(want)) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		})
	}
}

// memBlobs is a map of blobs; bug selects one way to break the contract.
type memBlobs struct {
	bug  string
	mu   sync.Mutex
	m    map[string][]byte
	held map[string]bool // keys claimed by failed Puts, for bug "failed-holds-key"
}

func newMemBlobs(bug string) *memBlobs {
	return &memBlobs{bug: bug, m: make(map[string][]byte), held: make(map[string]bool)}
}

func (s *memBlobs) key(k string) string {
	switch s.bug {
	case "strip-bang":
		return strings.ReplaceAll(k, "!", "")
	case "base-name-only":
		return path.Base(k)
	}
	return k
}

func (s *memBlobs) exists(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.taken(key)
}

// taken reports whether key holds a blob; s.mu must be held.
func (s *memBlobs) taken(key string) bool {
	b, ok := s.m[key]
	if s.bug == "empty-is-absent" && len(b) == 0 {
		return false
	}
	return ok || s.held[key]
}

func (s *memBlobs) Put(ctx context.Context, key string, r io.Reader) error {
	key = s.key(key)
	errExists := fmt.Errorf("put %s: %w", key, gofer.ErrExists)
	if s.bug == "visible-while-writing" {
		return s.putVisible(key, r)
	}
	if s.bug == "reads-existing" {
		b, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	if s.bug != "overwrite" && s.exists(key) {
		return errExists
	}
	var buf bytes.Buffer
	chunk := make([]byte, 32<<10)
	for {
		n, err := r.Read(chunk)
		if s.bug != "drop-eof-data" || err == nil {
			buf.Write(chunk[:n])
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			switch s.bug {
			case "keep-partial":
				s.mu.Lock()
				s.m[key] = buf.Bytes()
				s.mu.Unlock()
			case "failed-holds-key":
				s.mu.Lock()
				s.held[key] = true
				s.mu.Unlock()
			}
			return fmt.Errorf("put %s: %w", key, err)
		}
	}
	b := buf.Bytes()
	if s.bug == "truncate-5mib" && len(b) >= 5<<20 {
		b = b[:5<<20-1]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.taken(key) && s.bug != "overwrite" && s.bug != "racy-put" {
		return errExists
	}
	s.m[key] = b
	return nil
}

// putVisible claims the key first and then fills it in place, as a store writing straight to
// the final name would.
func (s *memBlobs) putVisible(key string, r io.Reader) error {
	s.mu.Lock()
	if _, ok := s.m[key]; ok {
		s.mu.Unlock()
		return fmt.Errorf("put %s: %w", key, gofer.ErrExists)
	}
	s.m[key] = []byte{}
	s.mu.Unlock()
	chunk := make([]byte, 32<<10)
	for {
		n, err := r.Read(chunk)
		s.mu.Lock()
		s.m[key] = append(bytes.Clone(s.m[key]), chunk[:n]...)
		s.mu.Unlock()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (s *memBlobs) Open(ctx context.Context, key string) (storage.Reader, int64, error) {
	key = s.key(key)
	s.mu.Lock()
	b, ok := s.m[key]
	s.mu.Unlock()
	if !ok {
		if s.bug == "missing-plain-error" {
			return nil, 0, errors.New("no such blob")
		}
		return nil, 0, fmt.Errorf("open %s: %w", key, gofer.ErrNotFound)
	}
	size := int64(len(b))
	if s.bug == "size-off-by-one" && size > 0 {
		size--
	}
	return &memReader{Reader: bytes.NewReader(b), bug: s.bug}, size, nil
}

func (s *memBlobs) Delete(ctx context.Context, key string) error {
	key = s.key(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[key]; !ok && s.bug == "delete-missing-error" {
		return fmt.Errorf("delete %s: %w", key, gofer.ErrNotFound)
	}
	if s.bug != "delete-noop" {
		delete(s.m, key)
	}
	return nil
}

func (s *memBlobs) Walk(ctx context.Context, prefix, after string, fn func(key string, size int64) error) error {
	type blob struct {
		key  string
		size int64
	}
	var blobs []blob
	s.mu.Lock()
	for k, b := range s.m {
		match := strings.HasPrefix(k, prefix) && (k > after || s.bug == "walk-ignore-after")
		if match && s.bug == "walk-path-prefix" && prefix != "" && !strings.HasSuffix(prefix, "/") {
			// Takes the last element of the prefix for a whole directory name, as a walk that
			// descends only into the directory the prefix names would: "a/b" misses "a/bc/x".
			dir := prefix[:strings.LastIndex(prefix, "/")+1]
			elem, below, _ := strings.Cut(k[len(dir):], "/")
			match = below == "" || elem == prefix[len(dir):]
		}
		if match {
			size := int64(len(b))
			if s.bug == "walk-size-zero" {
				size = 0
			}
			blobs = append(blobs, blob{k, size})
		}
	}
	s.mu.Unlock()
	if s.bug != "walk-unordered" {
		slices.SortFunc(blobs, func(a, b blob) int { return strings.Compare(a.key, b.key) })
	}
	var first error
	for _, b := range blobs {
		if err := fn(b.key, b.size); err != nil {
			if s.bug != "walk-no-stop" {
				return err
			}
			if first == nil {
				first = err
			}
		}
	}
	return first
}

type memReader struct {
	*bytes.Reader
	bug string
	mu  sync.Mutex // serialises the broken ReadAt, whose bug is in its results, not a data race
}

func (r *memReader) Close() error { return nil }

func (r *memReader) Seek(offset int64, whence int) (int64, error) {
	if r.bug == "seek-end-ignored" && whence == io.SeekEnd {
		whence = io.SeekStart
	}
	return r.Reader.Seek(offset, whence)
}

func (r *memReader) ReadAt(p []byte, off int64) (int, error) {
	switch r.bug {
	case "readat-moves-offset":
		r.mu.Lock()
		defer r.mu.Unlock()
		if _, err := r.Reader.Seek(off, io.SeekStart); err != nil {
			return 0, err
		}
		return io.ReadFull(r.Reader, p)
	case "readat-short-nil":
		n, err := r.Reader.ReadAt(p, off)
		if err == io.EOF {
			err = nil
		}
		return n, err
	}
	return r.Reader.ReadAt(p, off)
}

// memMetadata is a map of records; bug selects one way to break the contract.
type memMetadata struct {
	bug   string
	mu    sync.Mutex
	m     map[string]gofer.Version
	zips  map[string]gofer.Version
	order []storage.Stored // by Timestamp
}

// stored adds v to the order at t, or now.
func (s *memMetadata) stored(v gofer.Version, t time.Time) {
	if n := len(s.order); n > 0 && !t.After(s.order[n-1].Timestamp) {
		t = s.order[n-1].Timestamp.Add(1)
	}
	s.order = append(s.order, storage.Stored{Path: v.Path, Version: v.Version, Timestamp: t})
}

func (s *memMetadata) Index(ctx context.Context, since time.Time, limit int) ([]storage.Stored, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	order := slices.Clone(s.order)
	if s.bug == "index-by-path" {
		slices.SortStableFunc(order, func(a, b storage.Stored) int { return strings.Compare(a.Version, b.Version) })
	}
	var list []storage.Stored
	for _, e := range order {
		if len(list) < limit && (e.Timestamp.After(since) || s.bug == "index-includes-since" && e.Timestamp.Equal(since)) {
			list = append(list, e)
		}
	}
	return list, nil
}

func newMemMetadata(bug string) *memMetadata {
	return &memMetadata{bug: bug, m: make(map[string]gofer.Version), zips: make(map[string]gofer.Version)}
}

func (s *memMetadata) key(path, version string) string {
	switch s.bug {
	case "version-only-key":
		return version
	case "fold-case":
		return strings.ToLower(path) + "@" + version
	}
	return path + "@" + version
}

func (s *memMetadata) Insert(ctx context.Context, v gofer.Version) error {
	if s.bug == "time-seconds" {
		v.Time = v.Time.Truncate(time.Second)
	}
	k := s.key(v.Path, v.Version)
	now := time.Now()
	if s.bug == "index-time-before-commit" {
		// The time taken before the commit and no version held back: one that commits late
		// sorts before versions a reader has already been given.
		time.Sleep(time.Duration(rand.N(3000)) * time.Microsecond)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[k]
	switch s.bug {
	case "racy-insert":
		s.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		s.mu.Lock()
	case "lost-update":
		// Read-modify-write of the whole map, as a store keeping one document per module would.
		m := make(map[string]gofer.Version, len(s.m))
		for k, v := range s.m {
			m[k] = v
		}
		s.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		s.mu.Lock()
		if !ok {
			m[k] = v
			s.m = m
		}
		return nil
	}
	if ok && s.bug != "insert-overwrites" {
		return fmt.Errorf("insert %s: %w", k, gofer.ErrExists)
	}
	s.m[k] = v
	if s.bug == "index-time-before-commit" {
		s.order = append(s.order, storage.Stored{Path: v.Path, Version: v.Version, Timestamp: now})
		slices.SortStableFunc(s.order, func(a, b storage.Stored) int { return a.Timestamp.Compare(b.Timestamp) })
		return nil
	}
	s.stored(v, time.Now())
	return nil
}

func (s *memMetadata) Get(ctx context.Context, path, version string) (gofer.Version, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[s.key(path, version)]
	if !ok && s.bug != "get-missing-zero" {
		return gofer.Version{}, fmt.Errorf("get %s@%s: %w", path, version, gofer.ErrNotFound)
	}
	if z, ok := s.zips[s.key(path, version)]; ok && (!v.HasZip() || s.bug == "zip-shadows") {
		v = v.WithZip(z)
	}
	return v, nil
}

func (s *memMetadata) GetZip(ctx context.Context, path, version string) (gofer.Version, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	z, ok := s.zips[s.key(path, version)]
	if !ok {
		return gofer.Version{}, fmt.Errorf("get zip %s@%s: %w", path, version, gofer.ErrNotFound)
	}
	return z, nil
}

func (s *memMetadata) InsertZip(ctx context.Context, z gofer.Version) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.key(z.Path, z.Version)
	if _, ok := s.zips[k]; ok && s.bug != "zip-overwrites" {
		return fmt.Errorf("insert zip %s: %w", k, gofer.ErrExists)
	}
	s.zips[k] = z
	if s.bug == "index-zip-too" {
		s.stored(z, time.Now())
	}
	return nil
}

func (s *memMetadata) Versions(ctx context.Context, path string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var vs []string
	for _, v := range s.m {
		if v.Path == path || (s.bug == "prefix-versions" && strings.HasPrefix(v.Path, path)) {
			vs = append(vs, v.Version)
		}
	}
	if len(vs) == 0 && s.bug == "versions-unknown-error" {
		return nil, fmt.Errorf("versions %s: %w", path, gofer.ErrNotFound)
	}
	return vs, nil
}

func (s *memMetadata) Catalog(ctx context.Context, after module.Version, limit int) ([]module.Version, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Bug "catalog-key-order" sorts by the key path@version, which puts "a/b/c" before "a/b".
	order := func(a, b gofer.Version) int {
		return cmp.Or(strings.Compare(a.Path, b.Path), strings.Compare(a.Version, b.Version))
	}
	if s.bug == "catalog-key-order" {
		order = func(a, b gofer.Version) int { return strings.Compare(a.Path+"@"+a.Version, b.Path+"@"+b.Version) }
	}
	from := gofer.Version{Path: after.Path, Version: after.Version}
	var list []module.Version
	for _, v := range slices.SortedFunc(maps.Values(s.m), order) {
		c := order(v, from)
		if len(list) < limit && (c > 0 || c == 0 && s.bug == "catalog-includes-after") {
			list = append(list, module.Version{Path: v.Path, Version: v.Version})
		}
	}
	return list, nil
}

func (s *memMetadata) Close() error {
	if s.bug == "close-error" {
		return errors.New("close failed")
	}
	return nil
}
