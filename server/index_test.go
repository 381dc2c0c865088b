package server_test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/internal/testserver"
	"github.com/goferproxy/gofer/internal/teststores"
	"github.com/goferproxy/gofer/rules"
	"github.com/goferproxy/gofer/server"
	"github.com/goferproxy/gofer/storage"
)

// indexServer serves a Server whose store holds, in this order, the versions named
// (path@version), with rules making example.com/private private and example.com/gone
// excluded.
func indexServer(t *testing.T, indexPrivate bool, stored ...string) *httptest.Server {
	t.Helper()
	_, meta := teststores.Open(t, "")
	for _, name := range stored {
		path, version, _ := strings.Cut(name, "@")
		if err := meta.Insert(t.Context(), gofer.Version{Path: path, Version: version}); err != nil {
			t.Fatal(err)
		}
	}
	return indexServerOf(t, meta, indexPrivate)
}

// indexServerOf serves a Server over the store meta, with indexServer's rules.
func indexServerOf(t *testing.T, meta storage.Metadata, indexPrivate bool) *httptest.Server {
	t.Helper()
	rulesFile := filepath.Join(t.TempDir(), "rules")
	if err := os.WriteFile(rulesFile, []byte("example.com/private private\nexample.com/gone exclude\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rs, err := rules.NewLive(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	blobs, _ := teststores.Open(t, "")
	srv := httptest.NewServer(server.New(server.Config{Blobs: blobs, Meta: meta, Temporal: noTemporal{t}, Rules: rs, IndexPrivate: indexPrivate}))
	t.Cleanup(srv.Close)
	return srv
}

// readIndex follows GET /index from the start, limit a page (0: the default), as a client
// does, until a page is empty, and returns the versions it read as path@version; it fails on a malformed answer.
func readIndex(t *testing.T, srv *httptest.Server, limit int) []string {
	t.Helper()
	var names []string
	since := ""
	for range 100 {
		q := url.Values{}
		if since != "" {
			q.Set("since", since)
		}
		if limit > 0 {
			q.Set("limit", fmt.Sprint(limit))
		}
		status, header, body := testserver.Get(t, "GET", srv.URL+"/index?"+q.Encode())
		if status != http.StatusOK || header.Get("Content-Type") != "application/json" || header.Get("Cache-Control") != "no-store" {
			t.Fatalf("GET /index?%s: %d %v %s", q.Encode(), status, header, body)
		}
		n := 0
		from, _ := time.Parse(time.RFC3339Nano, since)
		sc := bufio.NewScanner(bytes.NewReader(body))
		for sc.Scan() {
			var e struct{ Path, Version, Timestamp string }
			dec := json.NewDecoder(strings.NewReader(sc.Text()))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&e); err != nil || e.Path == "" || e.Version == "" {
				t.Fatalf("GET /index?%s: line %q: %v", q.Encode(), sc.Text(), err)
			}
			ts, err := time.Parse(time.RFC3339Nano, e.Timestamp)
			if prev, _ := time.Parse(time.RFC3339Nano, since); err != nil || !ts.After(from) || ts.Before(prev) {
				t.Fatalf("GET /index?%s: %s@%s at %q, not a time after since and the line before", q.Encode(), e.Path, e.Version, e.Timestamp)
			}
			names = append(names, e.Path+"@"+e.Version)
			since = e.Timestamp
			n++
		}
		if n > cmp.Or(limit, 2000) {
			t.Fatalf("GET /index?%s: %d versions", q.Encode(), n)
		}
		if n == 0 {
			return names
		}
	}
	t.Fatal("GET /index did not end")
	return nil
}

// Paging through /index lists every stored version once, in the order stored, whatever the
// page size; private versions only when IndexPrivate is set, excluded ones never, and a run of
// versions left out does not end the listing early.
func TestIndexPages(t *testing.T) {
	stored := []string{"example.com/b@v1.0.0", "example.com/private@v1.0.0", "example.com/private@v1.1.0",
		"example.com/private@v1.2.0", "example.com/gone@v1.0.0", "example.com/a@v1.0.0", "example.com/b@v0.9.0",
		"golang.org/x/mod@v0.1.0", "example.com/private/sub@v1.0.0", "example.com/a@v1.1.0"}
	var public, withPrivate []string
	for _, name := range stored {
		if !strings.HasPrefix(name, "example.com/gone@") {
			withPrivate = append(withPrivate, name)
			if !strings.HasPrefix(name, "example.com/private") {
				public = append(public, name)
			}
		}
	}
	for _, tc := range []struct {
		indexPrivate bool
		want         []string
	}{{false, public}, {true, withPrivate}} {
		srv := indexServer(t, tc.indexPrivate, stored...)
		for _, limit := range []int{1, 2, 3, 7, 0} {
			if got := readIndex(t, srv, limit); !slices.Equal(got, tc.want) {
				t.Errorf("IndexPrivate %v, %d a page: /index lists\n%q, want\n%q", tc.indexPrivate, limit, got, tc.want)
			}
		}
	}
	if got := readIndex(t, indexServer(t, false), 0); len(got) != 0 {
		t.Errorf("/index of an empty store = %q", got)
	}
}

// tiedIndex is a store whose index lists the versions of list at their times, ties included,
// as a store that keeps only milliseconds has them.
type tiedIndex struct {
	storage.Metadata
	list []storage.Stored
}

func (m tiedIndex) Index(_ context.Context, since time.Time, limit int) ([]storage.Stored, error) {
	var page []storage.Stored
	for _, e := range m.list {
		if e.Timestamp.After(since) && len(page) < limit {
			page = append(page, e)
		}
	}
	return page, nil
}

// Versions stored at one instant are never split across two pages, whichever versions around
// them are left out, so that paging from the last Timestamp misses none of them; a page cut
// short at such a tie is not the last.
func TestIndexTies(t *testing.T) {
	at := func(s int) time.Time { return time.Date(2026, 12, 6, 0, 0, s, 0, time.UTC) }
	var stored []storage.Stored
	var public []string
	for _, e := range []struct {
		name string
		at   int
	}{{"example.com/private@v1.0.0", 1}, {"example.com/a@v1.0.0", 2}, {"example.com/b@v1.0.0", 2},
		{"example.com/c@v1.0.0", 3}, {"example.com/private@v1.1.0", 4}, {"example.com/d@v1.0.0", 4},
		{"example.com/e@v1.0.0", 5}, {"example.com/f@v1.0.0", 5}, {"example.com/gone@v1.0.0", 5},
		{"example.com/g@v1.0.0", 6}, {"example.com/h@v1.0.0", 7}, {"example.com/i@v1.0.0", 7}} {
		path, version, _ := strings.Cut(e.name, "@")
		stored = append(stored, storage.Stored{Path: path, Version: version, Timestamp: at(e.at)})
		if !strings.Contains(e.name, "private") && !strings.Contains(e.name, "gone") {
			public = append(public, e.name)
		}
	}
	_, meta := teststores.Open(t, "")
	srv := indexServerOf(t, tiedIndex{meta, stored}, false)
	for _, limit := range []int{2, 3, 4, 5, 0} {
		if got := readIndex(t, srv, limit); !slices.Equal(got, public) {
			t.Errorf("%d a page: /index lists\n%q, want\n%q", limit, got, public)
		}
	}
}

// /index answers whatever the client's since and limit, but what it cannot read is a 400.
func TestIndexBadRequest(t *testing.T) {
	srv := indexServer(t, false, "example.com/a@v1.0.0")
	for _, query := range []string{"since=yesterday", "since=2024-01-01", "since=2024-01-01T00:00:00", "since=1712345678",
		"limit=0", "limit=-1", "limit=2001", "limit=abc", "limit=%zz", "since=%%%"} {
		status, _, body := testserver.Get(t, "GET", srv.URL+"/index?"+query)
		if status != http.StatusBadRequest || strings.Count(string(body), "\n") != 1 {
			t.Errorf("GET /index?%s: %d %q, want 400 and one line", query, status, body)
		}
	}
	for _, query := range []string{"limit=2000", "since=2000-01-01T00:00:00Z", "since=2000-01-01T00:00:00.123456789%2B02:00", "since=0001-01-01T00:00:00Z"} {
		if status, _, body := testserver.Get(t, "GET", srv.URL+"/index?"+query); status != http.StatusOK || !strings.Contains(string(body), `"example.com/a"`) {
			t.Errorf("GET /index?%s: %d %s", query, status, body)
		}
	}
	for _, query := range []string{"since=9999-12-31T23:59:59Z", "since=" + url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339Nano))} {
		if status, _, body := testserver.Get(t, "GET", srv.URL+"/index?"+query); status != http.StatusOK || len(body) != 0 {
			t.Errorf("GET /index?%s: %d %q, want 200 and nothing", query, status, body)
		}
	}
}
