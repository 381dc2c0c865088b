package mongo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/internal/testserver"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/storage/storagetest"
)

// server is the FerretDB every test in this package shares; each test takes a database of
// its own from newDatabase.
var server *testserver.MongoServer

func TestMain(m *testing.M) {
	var err error
	server, err = testserver.Mongo()
	if err != nil {
		// Fail, not skip: the MongoDB store is part of what `make test` must prove.
		fmt.Fprintln(os.Stderr, "storage/mongo: starting FerretDB:", err)
		os.Exit(1)
	}
	code := m.Run()
	server.Close()
	os.Exit(code)
}

var databases atomic.Int64

func newDatabase() string {
	return fmt.Sprintf("gofer_test_%d", databases.Add(1))
}

func mustOpen(t *testing.T, database string) *Store {
	t.Helper()
	s, err := Open(t.Context(), server.URI, database)
	if err != nil {
		t.Fatalf("Open(%s, %s): %v", server.URI, database, err)
	}
	return s
}

func TestMetadata(t *testing.T) {
	storagetest.TestMetadata(t, func(t *testing.T) storage.Metadata {
		return mustOpen(t, newDatabase())
	})
}

// Get hands times back in UTC, not merely as the same instant, so that records print and
// compare with == as they were written.
func TestTimesUTC(t *testing.T) {
	s := mustOpen(t, newDatabase())
	defer s.Close()
	want := storagetest.Record("example.com/utc", "v1.0.0", 0)
	if err := s.Insert(t.Context(), want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(t.Context(), want.Path, want.Version)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("Get = %+v, want %+v", got, want)
	}
	if got.Time.Location() != time.UTC || got.FetchedAt.Location() != time.UTC {
		t.Errorf("Get returned times in %v and %v, want UTC", got.Time.Location(), got.FetchedAt.Location())
	}
}

func TestOpenUnreachable(t *testing.T) {
	port, err := testserver.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	host := fmt.Sprintf("127.0.0.1:%d", port)
	start := time.Now()
	s, err := Open(t.Context(), "mongodb://gofer:s3cr3t-pw@"+host+"/", "gofer")
	if err == nil {
		s.Close()
		t.Fatal("Open of a closed port succeeded")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Open of a closed port took %v, want a failure within 10s", d)
	}
	if !errors.Is(err, gofer.ErrUnavailable) {
		t.Errorf("Open error = %v, want one matching gofer.ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), host) {
		t.Errorf("Open error = %q, want it to name %s", err, host)
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("Open error = %q reveals the password", err)
	}
}

func TestOpenInvalidURI(t *testing.T) {
	uri := "mongodb://gofer:s3cr3t-pw@127.0.0.1:1/?connectTimeoutMS=soon"
	s, err := Open(t.Context(), uri, "gofer")
	if err == nil {
		s.Close()
		t.Fatal("Open with an invalid URI succeeded")
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("Open error = %q reveals the password", err)
	}
	if !strings.Contains(err.Error(), "connectTimeoutMS") {
		t.Errorf("Open error = %q, want it to say what is wrong", err)
	}
}

func TestRedact(t *testing.T) {
	for i, c := range []struct{ uri, want string }{
		{"mongodb://127.0.0.1:27017/", "mongodb://127.0.0.1:27017/"},
		{"mongodb://user@h/", "mongodb://user@h/"},
		{"mongodb://user:pw@h1:1,h2:2/db?x=1", "mongodb://user:xxxxx@h1:1,h2:2/db?x=1"},
		{"mongodb+srv://user:p%40ss@cluster.example/", "mongodb+srv://user:xxxxx@cluster.example/"},
		{"mongodb://user:pw@h?authSource=a@b", "mongodb://user:xxxxx@h?authSource=a@b"},
	} {
		if got := redact(c.uri); got != c.want {
			t.Errorf("%d: redact(%q) = %q, want %q", i, c.uri, got, c.want)
		}
	}
}

// The unique index is what makes Insert insert-once; without it the concurrency tests could
// still pass by luck.
func TestIndex(t *testing.T) {
	s := mustOpen(t, newDatabase())
	defer s.Close()
	specs, err := s.coll.Indexes().ListSpecifications(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := bson.D{{Key: "path", Value: int32(1)}, {Key: "version", Value: int32(1)}}
	for _, spec := range specs {
		if spec.Name != indexName {
			continue
		}
		var keys bson.D
		if err := bson.Unmarshal(spec.KeysDocument, &keys); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(keys) != fmt.Sprint(want) {
			t.Errorf("index %s has keys %v, want %v", spec.Name, keys, want)
		}
		if spec.Unique == nil || !*spec.Unique {
			t.Errorf("index %s is not unique", spec.Name)
		}
		return
	}
	t.Errorf("no index %s among %+v", indexName, specs)
}

// Every replica opens the same database at start, so index creation must be idempotent, and
// records written through one Store are seen and guarded through another.
func TestOpenTwice(t *testing.T) {
	db := newDatabase()
	a := mustOpen(t, db)
	defer a.Close()
	b := mustOpen(t, db)
	defer b.Close()
	ctx := t.Context()
	v := storagetest.Record("example.com/twice", "v1.0.0", 0)
	if err := a.Insert(ctx, v); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, v.Path, v.Version); err != nil || got != v {
		t.Errorf("Get through the second Store = %+v, %v; want %+v", got, err, v)
	}
	if err := b.Insert(ctx, v); !errors.Is(err, gofer.ErrExists) {
		t.Errorf("Insert through the second Store = %v, want ErrExists", err)
	}
}

// Twenty replicas committing one version at once through their own connections leave exactly
// one document, counted on the server rather than through the Store.
func TestConcurrentInsertOneDocument(t *testing.T) {
	const n = 20
	db := newDatabase()
	stores := make([]*Store, n)
	for i := range stores {
		stores[i] = mustOpen(t, db)
		defer stores[i].Close()
	}
	ctx := t.Context()
	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() {
			<-start
			v := storagetest.Record("example.com/race", "v1.0.0", 0)
			v.RunID = fmt.Sprintf("run-%d", i)
			errs[i] = s.Insert(ctx, v)
		})
	}
	close(start)
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, gofer.ErrExists):
			t.Errorf("Insert %d: %v, want nil or ErrExists", i, err)
		}
	}
	if won != 1 {
		t.Errorf("%d inserts succeeded, want exactly 1", won)
	}
	count, err := stores[0].coll.CountDocuments(ctx, bson.D{{Key: "path", Value: "example.com/race"}, {Key: "version", Value: "v1.0.0"}})
	if err != nil {
		t.Fatal(err)
	}
	if count != 1 {
		t.Errorf("%d documents for example.com/race@v1.0.0, want 1", count)
	}
}

func TestInsertInvalid(t *testing.T) {
	s := mustOpen(t, newDatabase())
	defer s.Close()
	for _, v := range []gofer.Version{storagetest.Record("", "v1.0.0", 0), storagetest.Record("example.com/a", "", 0)} {
		if err := s.Insert(t.Context(), v); !errors.Is(err, gofer.ErrInvalid) {
			t.Errorf("Insert(%q@%q) = %v, want an error matching gofer.ErrInvalid", v.Path, v.Version, err)
		}
	}
}

// An outage must read as unavailable, never as "not found" (which would send clients
// elsewhere) or "exists" (which would make a fetch believe it had committed), and the same
// Store must work again once the server is back, with its data.
func TestOutage(t *testing.T) {
	s := mustOpen(t, newDatabase())
	defer s.Close()
	stored := storagetest.Record("example.com/outage", "v1.0.0", 0)
	if err := s.Insert(t.Context(), stored); err != nil {
		t.Fatal(err)
	}

	server.Stop()
	restarted := false
	defer func() {
		// Later tests share the server.
		if !restarted {
			if err := server.Start(); err != nil {
				t.Errorf("restarting FerretDB: %v", err)
			}
		}
	}()

	// Bounded by the Store's own timeouts, not by the caller's context.
	const bound = 15 * time.Second
	var wg sync.WaitGroup
	for _, c := range []struct {
		name string
		call func(context.Context) error
	}{
		{"Get of a stored version", func(ctx context.Context) error {
			_, err := s.Get(ctx, stored.Path, stored.Version)
			return err
		}},
		{"Get of a missing version", func(ctx context.Context) error {
			_, err := s.Get(ctx, stored.Path, "v9.9.9")
			return err
		}},
		{"Insert of a stored version", func(ctx context.Context) error { return s.Insert(ctx, stored) }},
		{"Insert of a new version", func(ctx context.Context) error {
			return s.Insert(ctx, storagetest.Record(stored.Path, "v1.1.0", 0))
		}},
		{"Versions", func(ctx context.Context) error {
			_, err := s.Versions(ctx, stored.Path)
			return err
		}},
	} {
		// At once, since each waits out the server selection timeout.
		wg.Go(func() {
			start := time.Now()
			err := c.call(context.Background())
			if d := time.Since(start); d > bound {
				t.Errorf("%s during the outage took %v, want at most %v", c.name, d, bound)
			}
			if !errors.Is(err, gofer.ErrUnavailable) || errors.Is(err, gofer.ErrNotFound) || errors.Is(err, gofer.ErrExists) {
				t.Errorf("%s during the outage = %v, want an error matching only gofer.ErrUnavailable", c.name, err)
			}
		})
	}
	wg.Wait()
	// A caller's deadline shorter than the Store's own is honoured, and still unavailable.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	start := time.Now()
	_, err := s.Get(ctx, stored.Path, stored.Version)
	cancel()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Get with a 500ms deadline took %v", d)
	}
	if !errors.Is(err, gofer.ErrUnavailable) {
		t.Errorf("Get with an expired deadline = %v, want ErrUnavailable", err)
	}

	if err := server.Start(); err != nil {
		t.Fatalf("restarting FerretDB: %v", err)
	}
	restarted = true

	// The driver reconnects by itself; give it a few tries.
	deadline := time.Now().Add(30 * time.Second)
	var got gofer.Version
	for {
		got, err = s.Get(t.Context(), stored.Path, stored.Version)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("Get after the server came back: %v", err)
	}
	if got != stored {
		t.Errorf("Get after the outage = %+v, want %+v", got, stored)
	}
	if err := s.Insert(t.Context(), stored); !errors.Is(err, gofer.ErrExists) {
		t.Errorf("Insert of a stored version after the outage = %v, want ErrExists", err)
	}
	next := storagetest.Record(stored.Path, "v1.1.0", 0)
	if err := s.Insert(t.Context(), next); err != nil {
		t.Errorf("Insert of a new version after the outage: %v", err)
	}
	versions, err := s.Versions(t.Context(), stored.Path)
	slices.Sort(versions)
	if err != nil || !slices.Equal(versions, []string{"v1.0.0", "v1.1.0"}) {
		t.Errorf("Versions after the outage = %q, %v; want [v1.0.0 v1.1.0]", versions, err)
	}
}

// Versions whose documents were inserted before there was a storedAt are indexed first, by
// their fetch times, then the versions inserted since.
func TestIndexDocumentsWithoutStoredAt(t *testing.T) {
	s := mustOpen(t, newDatabase())
	defer s.Close()
	older, old := storagetest.Record("example.com/old", "v1.0.0", 2), storagetest.Record("example.com/old", "v1.1.0", 1)
	for _, v := range []gofer.Version{older, old} {
		if _, err := s.coll.InsertOne(t.Context(), v); err != nil { // as Insert did before
			t.Fatal(err)
		}
	}
	if err := s.Insert(t.Context(), storagetest.Record("example.com/new", "v1.0.0", 3)); err != nil {
		t.Fatal(err)
	}
	var list []storage.Stored
	for deadline := time.Now().Add(s.settle + 10*time.Second); len(list) < 3 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var err error
		if list, err = s.Index(t.Context(), time.Time{}, 10); err != nil {
			t.Fatal(err)
		}
	}
	want := []storage.Stored{{Path: "example.com/old", Version: "v1.1.0", Timestamp: old.FetchedAt}, {Path: "example.com/old", Version: "v1.0.0", Timestamp: older.FetchedAt}}
	if len(list) != 3 || !slices.Equal(list[:2], want) || list[2].Path != "example.com/new" {
		t.Fatalf("Index = %v, want %v and then example.com/new@v1.0.0", list, want)
	}
	// Paging on from the last of them reaches the new version.
	if rest, err := s.Index(t.Context(), want[1].Timestamp, 10); err != nil || len(rest) != 1 || rest[0] != list[2] {
		t.Errorf("Index since %s = %v, %v; want %v", want[1].Timestamp, rest, err, list[2:])
	}
}
