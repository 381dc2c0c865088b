package activities_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/module"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/activities"
	"github.com/goferproxy/gofer/rules"
	"github.com/goferproxy/gofer/storage/storagetest"
	"github.com/goferproxy/gofer/upstream"
)

// ReadFeed reads a page of a followed proxy's index and sorts it: what matches the patterns,
// is a canonical module version and is not excluded is either stored (whole) or to fetch; the
// cursor moves to the page's last time, and an empty page ends the feed. A page out of order
// is refused, and a feed the worker does not follow is not found.
func TestReadFeed(t *testing.T) {
	var query string
	body := `{"Path":"example.com/a","Version":"v1.0.0","Timestamp":"2026-12-06T01:00:00Z"}
{"Path":"example.com/b","Version":"v1.0.0","Timestamp":"2026-12-06T01:00:01Z"}
{"Path":"example.com/c","Version":"v1.1.0","Timestamp":"2026-12-06T01:00:01Z"}
{"Path":"example.com/gone","Version":"v1.0.0","Timestamp":"2026-12-06T01:00:02Z"}
{"Path":"example.com/pass","Version":"v1.0.0","Timestamp":"2026-12-06T01:00:02Z"}
{"Path":"other.org/x","Version":"v1.0.0","Timestamp":"2026-12-06T01:00:03Z"}
{"Path":"example.com/bad","Version":"v1.0","Timestamp":"2026-12-06T01:00:04Z"}
{"Path":"example.com/x/../y","Version":"v1.0.0","Timestamp":"2026-12-06T01:00:05Z"}
`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		query = r.URL.RawQuery
		io.WriteString(w, body)
	}))
	defer srv.Close()
	chain, err := upstream.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	rulesFile := filepath.Join(t.TempDir(), "rules")
	if err := os.WriteFile(rulesFile, []byte("example.com/gone exclude\nexample.com/pass passthrough\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a, logs := newActivities(t, nil)
	if a.Rules, err = rules.NewLive(rulesFile); err != nil {
		t.Fatal(err)
	}
	a.Follows = map[string]*upstream.Chain{"https://central.example": chain}
	if err := a.Meta.Insert(t.Context(), storagetest.Record("example.com/a", "v1.0.0", 1)); err != nil {
		t.Fatal(err)
	}
	modOnly := storagetest.Record("example.com/b", "v1.0.0", 2)
	modOnly.Zip, modOnly.ZipHash = gofer.File{}, ""
	if err := a.Meta.Insert(t.Context(), modOnly); err != nil {
		t.Fatal(err)
	}
	e := env(a)
	since := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	req := activities.FeedRequest{Feed: "https://central.example", Patterns: "example.com/*", Since: since, Limit: 50}
	v, err := e.ExecuteActivity(a.ReadFeed, req)
	if err != nil {
		t.Fatal(err)
	}
	var p activities.FeedPage
	if err := v.Get(&p); err != nil {
		t.Fatal(err)
	}
	missing := []module.Version{{Path: "example.com/b", Version: "v1.0.0"}, {Path: "example.com/c", Version: "v1.1.0"}}
	if p.Listed != 8 || p.Matched != 3 || p.Cached != 1 || !slices.Equal(p.Missing, missing) ||
		!p.Next.Equal(time.Date(2026, 12, 6, 1, 0, 5, 0, time.UTC)) {
		t.Errorf("page %+v", p)
	}
	if query != "limit=50&since=2026-12-06T00%3A00%3A00Z" {
		t.Errorf("query %q", query)
	}
	if n := logs.FilterMessage("followed index lists no module version").Len(); n != 2 {
		t.Errorf("%d versions logged as malformed, want 2", n)
	}

	body = ""
	if v, err = e.ExecuteActivity(a.ReadFeed, req); err != nil {
		t.Fatal(err)
	}
	if err := v.Get(&p); err != nil || !p.Next.Equal(since) || p.Listed != 0 {
		t.Errorf("empty page %+v, %v", p, err)
	}

	// A proxy whose since is inclusive lists the version at since again: it is skipped, and a
	// page of it alone ends the index (Listed 0), as an empty one does.
	body = `{"Path":"example.com/c","Version":"v1.0.0","Timestamp":"2026-12-06T00:00:00Z"}` + "\n"
	if v, err = e.ExecuteActivity(a.ReadFeed, req); err != nil {
		t.Fatal(err)
	}
	if err := v.Get(&p); err != nil || p.Listed != 0 || !p.Next.Equal(since) {
		t.Errorf("a page of the version at since alone: %+v, %v", p, err)
	}

	body = `{"Path":"example.com/c","Version":"v1.0.0","Timestamp":"2026-12-06T00:00:00Z"}` + "\n" +
		`{"Path":"example.com/` + strings.Repeat("x", 1001) + `","Version":"v1.0.0","Timestamp":"2026-12-06T00:00:01Z"}` + "\n"
	if v, err = e.ExecuteActivity(a.ReadFeed, req); err != nil {
		t.Fatal(err)
	}
	if err := v.Get(&p); err != nil || p.Listed != 1 || p.Matched != 0 || !p.Next.Equal(since.Add(time.Second)) {
		t.Errorf("a page of the version at since and a path too long: %+v, %v", p, err)
	}

	for _, bad := range []string{
		`{"Path":"example.com/a","Version":"v1.0.0","Timestamp":"2026-12-06T01:00:01Z"}` + "\n" +
			`{"Path":"example.com/c","Version":"v1.0.0","Timestamp":"2026-12-06T01:00:00Z"}` + "\n", // back in time
		`{"Path":"example.com/a","Version":"v1.0.0","Timestamp":"9999-12-31T23:59:59Z"}` + "\n", // in the future
		"<html>",
	} {
		body = bad
		_, err := e.ExecuteActivity(a.ReadFeed, req)
		if kind, retry := errorType(t, err); kind != "Invalid" || retry {
			t.Errorf("page %q: %s (retry %v), want Invalid", bad, kind, retry)
		}
	}
	req.Feed = "https://unknown.example"
	_, err = e.ExecuteActivity(a.ReadFeed, req)
	if kind, retry := errorType(t, err); kind != "Unavailable" || !retry {
		t.Errorf("a feed not followed: %s (retry %v), want Unavailable: a worker with an older watchlist", kind, retry)
	}
}
