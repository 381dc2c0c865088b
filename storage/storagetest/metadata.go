package storagetest

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/module"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/storage"
)

// TestMetadata runs the storage.Metadata conformance suite. newStore must return an empty store
// for every call; the suite closes every store it gets, so newStore must not register a Close
// of its own (it may clean up files or databases after it).
func TestMetadata(t *testing.T, newStore func(t *testing.T) storage.Metadata) {
	open := func(t *testing.T) storage.Metadata {
		s := newStore(t)
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	}
	t.Run("InsertGet", func(t *testing.T) { testInsertGet(t, open(t)) })
	t.Run("GetMissing", func(t *testing.T) { testGetMissing(t, open(t)) })
	t.Run("InsertExisting", func(t *testing.T) { testInsertExisting(t, open(t)) })
	t.Run("Versions", func(t *testing.T) { testVersions(t, open(t)) })
	t.Run("Catalog", func(t *testing.T) { testCatalog(t, open(t)) })
	t.Run("ConcurrentInsert", func(t *testing.T) { testConcurrentInsert(t, open(t)) })
	t.Run("ZipLater", func(t *testing.T) { testZipLater(t, open(t)) })
	t.Run("Index", func(t *testing.T) { testIndex(t, open(t)) })
	t.Run("IndexWhileStoring", func(t *testing.T) { testIndexWhileStoring(t, open(t)) })
	t.Run("Close", func(t *testing.T) {
		s := newStore(t)
		mustInsert(t, s, Record("example.com/close", "v1.0.0", 1))
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
}

// Record returns a version record with every field set and distinct for each seed, so that a
// store that drops, swaps or rounds any field fails the comparison. Times carry milliseconds
// in UTC, the precision MongoDB keeps.
func Record(path, version string, seed int) gofer.Version {
	base := time.Date(2024, time.March, 9, 10, 11, 12, 345_000_000, time.UTC)
	return gofer.Version{
		Path:       path,
		Version:    version,
		Time:       base.Add(time.Duration(seed) * time.Millisecond),
		Info:       gofer.File{Size: int64(100 + seed), SHA256: fmt.Sprintf("%064x", 1000+seed)},
		Mod:        gofer.File{Size: int64(200 + seed), SHA256: fmt.Sprintf("%064x", 2000+seed)},
		Zip:        gofer.File{Size: int64(300<<20 + seed), SHA256: fmt.Sprintf("%064x", 3000+seed)},
		ZipHash:    fmt.Sprintf("h1:zip%d=", seed),
		ModHash:    fmt.Sprintf("h1:mod%d=", seed),
		Source:     fmt.Sprintf("https://proxy%d.example/", seed),
		VerifiedBy: fmt.Sprintf("sum.example/%d", seed),
		FetchedAt:  base.Add(time.Duration(seed)*time.Hour + 7*time.Millisecond),
		WorkflowID: fmt.Sprintf("fetch:%s@%s", path, version),
		RunID:      fmt.Sprintf("run-%d", seed),
	}
}

// sameVersion compares records with time.Time.Equal, because a store may hand back the same
// instant in another Location value.
func sameVersion(a, b gofer.Version) bool {
	if !a.Time.Equal(b.Time) || !a.FetchedAt.Equal(b.FetchedAt) {
		return false
	}
	a.Time, a.FetchedAt, b.Time, b.FetchedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return a == b
}

func mustInsert(t *testing.T, s storage.Metadata, v gofer.Version) {
	t.Helper()
	if err := s.Insert(t.Context(), v); err != nil {
		t.Fatalf("Insert(%s@%s): %v", v.Path, v.Version, err)
	}
}

func wantRecord(t *testing.T, s storage.Metadata, want gofer.Version) {
	t.Helper()
	got, err := s.Get(t.Context(), want.Path, want.Version)
	if err != nil {
		t.Errorf("Get(%s, %s): %v", want.Path, want.Version, err)
		return
	}
	if !sameVersion(got, want) {
		t.Errorf("Get(%s, %s) =\n%+v\nwant\n%+v", want.Path, want.Version, got, want)
	}
}

func wantNoRecord(t *testing.T, s storage.Metadata, path, version string) {
	t.Helper()
	v, err := s.Get(t.Context(), path, version)
	if !errors.Is(err, gofer.ErrNotFound) {
		t.Errorf("Get(%s, %s) = %+v, %v; want an error matching gofer.ErrNotFound", path, version, v, err)
	}
}

func wantVersions(t *testing.T, s storage.Metadata, path string, want ...string) {
	t.Helper()
	got, err := s.Versions(t.Context(), path)
	if err != nil {
		t.Errorf("Versions(%s): %v", path, err)
		return
	}
	// The order is unspecified, duplicates are not.
	got = slices.Sorted(slices.Values(got))
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		t.Errorf("Versions(%s) = %q, want %q (in any order)", path, got, want)
	}
}

func testInsertGet(t *testing.T, s storage.Metadata) {
	// Records that share a path or a version with another must each come back as themselves.
	recs := []gofer.Version{
		Record("example.com/get", "v1.0.0", 1),
		Record("example.com/get", "v1.1.0", 2),
		Record("example.com/get/v2", "v2.0.0+incompatible", 3),
		Record("example.com/other", "v1.0.0", 4),
		Record("github.com/Azure/sdk", "v0.0.0-20240101120000-abcdefabcdef", 5),
	}
	for _, v := range recs {
		mustInsert(t, s, v)
	}
	for _, v := range recs {
		wantRecord(t, s, v)
	}
}

func testGetMissing(t *testing.T, s storage.Metadata) {
	wantNoRecord(t, s, "example.com/a", "v1.0.0")
	mustInsert(t, s, Record("example.com/a", "v1.0.0", 1))
	wantNoRecord(t, s, "example.com/a", "v1.0.1")
	wantNoRecord(t, s, "example.com/ab", "v1.0.0")
	wantNoRecord(t, s, "example.com/A", "v1.0.0") // module paths are case-sensitive
	wantNoRecord(t, s, "example.com", "v1.0.0")
	wantNoRecord(t, s, "example.com/a/v2", "v1.0.0")
}

func testInsertExisting(t *testing.T, s storage.Metadata) {
	first := Record("example.com/existing", "v1.0.0", 1)
	mustInsert(t, s, first)
	for _, second := range []gofer.Version{Record(first.Path, first.Version, 2), first} {
		err := s.Insert(t.Context(), second)
		if !errors.Is(err, gofer.ErrExists) {
			t.Errorf("second Insert(%s@%s) = %v, want an error matching gofer.ErrExists", second.Path, second.Version, err)
		}
		wantRecord(t, s, first)
	}
	wantVersions(t, s, first.Path, first.Version)
}

func testVersions(t *testing.T, s storage.Metadata) {
	stored := map[string][]string{
		"example.com":      {"v0.1.0"},
		"example.com/a":    {"v1.0.0", "v1.1.0", "v2.0.0+incompatible", "v1.2.0-pre.1"},
		"example.com/ab":   {"v1.0.0", "v9.9.9"},
		"example.com/a/v2": {"v2.0.0"},
		"example.com/a-b":  {"v1.5.0"},
		"example.com/A":    {"v3.0.0"},
	}
	seed := 0
	for path, versions := range stored {
		for _, v := range versions {
			seed++
			mustInsert(t, s, Record(path, v, seed))
		}
	}
	for path, versions := range stored {
		wantVersions(t, s, path, versions...)
	}
	for _, unknown := range []string{"example.com/zz", "example.com/a/", "example.com/a/v", "example.co", "example.com/a/v2/v3"} {
		wantVersions(t, s, unknown)
	}
}

func catalog(t *testing.T, s storage.Metadata, after module.Version, limit int) []module.Version {
	t.Helper()
	list, err := s.Catalog(t.Context(), after, limit)
	if err != nil {
		t.Fatalf("Catalog(%v, %d): %v", after, limit, err)
	}
	if len(list) > limit {
		t.Errorf("Catalog(%v, %d) returned %d versions", after, limit, len(list))
	}
	return list
}

// WantCatalog pages through the whole catalog of s with each of limits, and fails t unless
// each paging lists want, in order.
func WantCatalog(t *testing.T, s storage.Metadata, want []module.Version, limits ...int) {
	t.Helper()
	for _, limit := range limits {
		var got []module.Version
		after := module.Version{}
		for range len(want) + 1 { // bounded, in case a store never runs out
			page := catalog(t, s, after, limit)
			if len(page) == 0 {
				break
			}
			got = append(got, page...)
			after = page[len(page)-1]
		}
		if !slices.Equal(got, want) {
			t.Errorf("Catalog in pages of %d =\n%v\nwant\n%v", limit, got, want)
		}
	}
}

func testCatalog(t *testing.T, s storage.Metadata) {
	if list := catalog(t, s, module.Version{}, 10); len(list) != 0 {
		t.Errorf("Catalog of an empty store = %v, want none", list)
	}
	// In catalog order: byte order of paths, where a path comes before every path it is a
	// prefix of, whatever byte follows; then byte order of versions, not semver order.
	want := []module.Version{
		{Path: "example.com", Version: "v0.1.0"},
		{Path: "example.com/A", Version: "v3.0.0"},
		{Path: "example.com/a", Version: "v1.0.0"},
		{Path: "example.com/a", Version: "v1.10.0"},
		{Path: "example.com/a", Version: "v1.2.0"},
		{Path: "example.com/a", Version: "v2.0.0+incompatible"},
		{Path: "example.com/a-b", Version: "v1.0.0"},
		{Path: "example.com/a/b", Version: "v0.1.0"},
		{Path: "example.com/a/b", Version: "v0.1.1"},
		{Path: "example.com/a/b/c", Version: "v1.0.0"},
		{Path: "example.com/a/b2", Version: "v1.0.0"},
		{Path: "example.com/ab", Version: "v1.0.0"},
		{Path: "golang.org/x/mod", Version: "v0.20.0"},
	}
	for i := range want { // backwards, so that insertion order is no help
		v := want[len(want)-1-i]
		mustInsert(t, s, Record(v.Path, v.Version, i))
	}
	if got := catalog(t, s, module.Version{}, 100); !slices.Equal(got, want) {
		t.Errorf("Catalog(from the start, 100) =\n%v\nwant\n%v", got, want)
	}
	WantCatalog(t, s, want, 1, 2, len(want))
	// The pair to start after need not be stored.
	for _, after := range []module.Version{
		want[len(want)-1],
		{Path: "example.com/a", Version: "v1.10.0"},
		{Path: "example.com/a", Version: "v1.5.0"},
		{Path: "example.com/a/b"},
		{Path: "example.com/a/a", Version: "v9.0.0"},
		{Path: "example.com/a/b/c", Version: "v2.0.0"},
		{Path: "example.com/a/", Version: "v1.0.0"},
		{Path: "example.com/b"},
		{Path: "zz"},
	} {
		var rest []module.Version
		for _, v := range want {
			if cmp.Or(cmp.Compare(v.Path, after.Path), cmp.Compare(v.Version, after.Version)) > 0 {
				rest = append(rest, v)
			}
		}
		if got := catalog(t, s, after, 100); !slices.Equal(got, rest) {
			t.Errorf("Catalog(after %v, 100) =\n%v\nwant\n%v", after, got, rest)
		}
	}
}

func testConcurrentInsert(t *testing.T, s storage.Metadata) {
	const n = 20
	ctx := t.Context()
	const path = "example.com/race"

	// Every goroutine races for one version; the record of each differs, so the stored one
	// tells who won.
	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = s.Insert(ctx, Record(path, "v1.0.0", i))
		})
	}
	close(start)
	wg.Wait()
	winner := oneWinner(t, "Insert", errs)
	wantRecord(t, s, Record(path, "v1.0.0", winner))

	// Distinct versions inserted at once must all be kept: no insert may lose another.
	want := []string{"v1.0.0"}
	start = make(chan struct{})
	for i := range n {
		v := fmt.Sprintf("v1.1.%d", i)
		want = append(want, v)
		wg.Go(func() {
			<-start
			errs[i] = s.Insert(ctx, Record(path, v, 100+i))
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Insert(%s@v1.1.%d) alongside other versions: %v", path, i, err)
		}
	}
	wantVersions(t, s, path, want...)
	for i := range n {
		wantRecord(t, s, Record(path, fmt.Sprintf("v1.1.%d", i), 100+i))
	}
}

// testZipLater stores versions the way a fetch of the .mod alone does, then their zips.
func testZipLater(t *testing.T, s storage.Metadata) {
	ctx := t.Context()
	full := Record("example.com/zip", "v1.0.0", 1)
	mod := full
	mod.Zip, mod.ZipHash = gofer.File{}, ""
	zip := Record("example.com/zip", "v1.0.0", 2).ZipOnly()
	mustInsert(t, s, mod)
	wantRecord(t, s, mod)
	if v, _ := s.Get(ctx, mod.Path, mod.Version); v.HasZip() {
		t.Errorf("a record inserted without a zip has one: %+v", v)
	}
	if err := s.InsertZip(ctx, zip); err != nil {
		t.Fatalf("InsertZip: %v", err)
	}
	// The zip's fields come from its record; those of the fetch stay the version's.
	wantRecord(t, s, mod.WithZip(zip))
	again := Record("example.com/zip", "v1.0.0", 3).ZipOnly()
	if err := s.InsertZip(ctx, again); !errors.Is(err, gofer.ErrExists) {
		t.Errorf("a second InsertZip = %v, want an error matching gofer.ErrExists", err)
	}
	wantRecord(t, s, mod.WithZip(zip))
	wantVersions(t, s, "example.com/zip", "v1.0.0")
	if got, err := s.GetZip(ctx, zip.Path, zip.Version); err != nil || !sameVersion(got, zip) {
		t.Errorf("GetZip = %+v, %v; want %+v", got, err, zip)
	}
	if _, err := s.GetZip(ctx, "example.com/zip", "v1.2.0"); !errors.Is(err, gofer.ErrNotFound) {
		t.Errorf("GetZip of a version without a zip record = %v, want an error matching gofer.ErrNotFound", err)
	}

	// A zip recorded before its version's record does not make the version stored.
	early := Record("example.com/zip", "v1.1.0", 4)
	if err := s.InsertZip(ctx, early.ZipOnly()); err != nil {
		t.Fatalf("InsertZip: %v", err)
	}
	wantNoRecord(t, s, early.Path, early.Version)
	wantVersions(t, s, "example.com/zip", "v1.0.0")
	later := early
	later.Zip, later.ZipHash = gofer.File{}, ""
	mustInsert(t, s, later)
	wantRecord(t, s, early)

	// A record stored whole is served whole, whatever a zip record says.
	whole := Record("example.com/zip", "v1.2.0", 5)
	mustInsert(t, s, whole)
	if err := s.InsertZip(ctx, Record("example.com/zip", "v1.2.0", 6).ZipOnly()); err != nil {
		t.Fatalf("InsertZip: %v", err)
	}
	wantRecord(t, s, whole)
}

// indexWait bounds how long the index tests wait for a version to be listed: a store may hold
// its newest versions back until their order is final (the MongoDB store's settle).
const indexWait = 30 * time.Second

// pageIndex pages through s's index with storage.IndexPage from since, limit at a time, as a
// client of GET /index does, and returns what it read and the time to go on from.
func pageIndex(t *testing.T, s storage.Metadata, since time.Time, limit int) ([]storage.Stored, time.Time) {
	t.Helper()
	var all []storage.Stored
	for {
		page, more, err := storage.IndexPage(t.Context(), s, since, limit)
		if err != nil {
			t.Fatalf("IndexPage(since %s, %d): %v", since.Format(time.RFC3339Nano), limit, err)
		}
		if len(page) > limit {
			t.Fatalf("IndexPage(since %s, %d) listed %d versions", since.Format(time.RFC3339Nano), limit, len(page))
		}
		for _, e := range page {
			// Versions of one time may share a page, so since moves on after it.
			if !e.Timestamp.After(since) {
				t.Fatalf("IndexPage(since %s) listed %s@%s of %s, not after it", since.Format(time.RFC3339Nano), e.Path, e.Version, e.Timestamp.Format(time.RFC3339Nano))
			}
			if n := len(all); n > 0 && e.Timestamp.Before(all[n-1].Timestamp) {
				t.Fatalf("index lists %s@%s (%s) after %s@%s (%s)", e.Path, e.Version, e.Timestamp.Format(time.RFC3339Nano), all[n-1].Path, all[n-1].Version, all[n-1].Timestamp.Format(time.RFC3339Nano))
			}
			all = append(all, e)
		}
		if len(page) > 0 {
			since = page[len(page)-1].Timestamp
		}
		if !more {
			return all, since
		}
	}
}

// indexUntil pages through s's index from the start until it has listed n versions or
// indexWait has passed, and returns them.
func indexUntil(t *testing.T, s storage.Metadata, n, limit int) []storage.Stored {
	t.Helper()
	var all []storage.Stored
	var since time.Time
	for deadline := time.Now().Add(indexWait); len(all) < n && time.Now().Before(deadline); {
		var more []storage.Stored
		more, since = pageIndex(t, s, since, limit)
		all = append(all, more...)
		if len(all) < n {
			time.Sleep(50 * time.Millisecond)
		}
	}
	return all
}

// indexed is the versions an index listing names, as path@version, failing on a repeat.
func indexed(t *testing.T, list []storage.Stored) []string {
	t.Helper()
	seen := map[string]bool{}
	var names []string
	for _, e := range list {
		name := e.Path + "@" + e.Version
		if seen[name] {
			t.Errorf("index lists %s twice", name)
		}
		seen[name] = true
		names = append(names, name)
	}
	return names
}

func testIndex(t *testing.T, s storage.Metadata) {
	ctx := t.Context()
	if list, err := s.Index(ctx, time.Time{}, 10); err != nil || len(list) != 0 {
		t.Fatalf("Index of an empty store = %v, %v; want nothing", list, err)
	}
	// Inserted one after another, with a pause (the MongoDB store keeps milliseconds), so the
	// order is known; a zip's record and a refused second insert add nothing.
	var want []string
	before := time.Now()
	for i, v := range []string{"v1.0.0", "v1.1.0", "v0.9.0", "v2.0.0"} {
		r := Record("example.com/index", v, i)
		r.ZipHash, r.Zip = "", gofer.File{}
		mustInsert(t, s, r)
		want = append(want, r.Path+"@"+r.Version)
		time.Sleep(2 * time.Millisecond)
	}
	full := Record("example.com/index", "v1.0.0", 0)
	if err := s.InsertZip(ctx, full.ZipOnly()); err != nil {
		t.Fatalf("InsertZip: %v", err)
	}
	if err := s.Insert(ctx, Record("example.com/index", "v1.1.0", 9)); !errors.Is(err, gofer.ErrExists) {
		t.Fatalf("second Insert: %v", err)
	}
	after := time.Now()
	for _, limit := range []int{1, 2, 3, 10} {
		list := indexUntil(t, s, len(want), limit)
		if got := indexed(t, list); !slices.Equal(got, want) {
			t.Errorf("index, %d a page = %q, want %q", limit, got, want)
		}
		for _, e := range list {
			// Within a millisecond either side: MongoDB keeps milliseconds.
			if e.Timestamp.Before(before.Truncate(time.Millisecond)) || e.Timestamp.After(after.Add(time.Millisecond)) {
				t.Errorf("%s@%s stored at %s, not between %s and %s", e.Path, e.Version, e.Timestamp.Format(time.RFC3339Nano), before.Format(time.RFC3339Nano), after.Format(time.RFC3339Nano))
			}
		}
	}
	list := indexUntil(t, s, len(want), 10)
	if len(list) != len(want) {
		t.Fatalf("index = %v", list)
	}
	// From each listed time, exactly the versions after it.
	for i, e := range list {
		got, _ := pageIndex(t, s, e.Timestamp, 10)
		if names := indexed(t, got); !slices.Equal(names, want[i+1:]) {
			t.Errorf("index since %s = %q, want %q", e.Timestamp.Format(time.RFC3339Nano), names, want[i+1:])
		}
	}
	if got, _ := pageIndex(t, s, after.Add(time.Hour), 10); len(got) != 0 {
		t.Errorf("index since an hour from now = %v, want nothing", got)
	}
	if got, _ := pageIndex(t, s, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), 10); len(got) != 0 {
		t.Errorf("index since the year 9999 = %v, want nothing", got)
	}
	if got, _ := pageIndex(t, s, time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), 10); len(got) != len(want) {
		t.Errorf("index since the year 1 = %v, want all %d", got, len(want))
	}
}

// testIndexWhileStoring pages through the index while versions are being inserted, as a
// follower reads a busy proxy's feed: at the end it must have read each version once.
func testIndexWhileStoring(t *testing.T, s storage.Metadata) {
	const writers, each, limit = 4, 40, 7
	var want []string
	var wg sync.WaitGroup
	for w := range writers {
		for i := range each {
			want = append(want, fmt.Sprintf("example.com/busy%d@v1.0.%d", w, i))
		}
		wg.Go(func() {
			for i := range each {
				if err := s.Insert(t.Context(), Record(fmt.Sprintf("example.com/busy%d", w), fmt.Sprintf("v1.0.%d", i), i)); err != nil {
					t.Errorf("Insert: %v", err)
					return
				}
			}
		})
	}
	var all []storage.Stored
	var since time.Time
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for deadline := time.Now().Add(indexWait); len(all) < len(want) && time.Now().Before(deadline); {
		var more []storage.Stored
		more, since = pageIndex(t, s, since, limit)
		all = append(all, more...)
		select {
		case <-done:
			time.Sleep(50 * time.Millisecond)
		default:
		}
	}
	<-done
	got := slices.Sorted(slices.Values(indexed(t, all)))
	if slices.Sort(want); !slices.Equal(got, want) {
		t.Errorf("paging while storing read %d versions, want the %d stored, each once (missing or extra: %q)", len(got), len(want), symmetricDiff(got, want))
	}
}

// symmetricDiff is what is in exactly one of the sorted lists a and b.
func symmetricDiff(a, b []string) []string {
	var d []string
	for _, x := range a {
		if _, ok := slices.BinarySearch(b, x); !ok {
			d = append(d, x)
		}
	}
	for _, x := range b {
		if _, ok := slices.BinarySearch(a, x); !ok {
			d = append(d, x)
		}
	}
	return d
}
