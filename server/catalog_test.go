package server_test

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/internal/testserver"
	"github.com/goferproxy/gofer/internal/teststores"
	"github.com/goferproxy/gofer/server"
)

type catalogEntry struct {
	Module  string `json:"module"`
	Version string `json:"version"`
}

// catalogServer serves a Server over stores in t.TempDir() that hold every pair of paths and
// versions; it returns the pairs in catalog order.
func catalogServer(t *testing.T, paths, versions []string) (*httptest.Server, []catalogEntry) {
	t.Helper()
	blobs, meta := teststores.Open(t, "")
	var want []catalogEntry
	for _, p := range paths {
		for _, v := range versions {
			if err := meta.Insert(t.Context(), gofer.Version{Path: p, Version: v}); err != nil {
				t.Fatal(err)
			}
			want = append(want, catalogEntry{p, v})
		}
	}
	slices.SortFunc(want, func(a, b catalogEntry) int {
		return cmp.Or(strings.Compare(a.Module, b.Module), strings.Compare(a.Version, b.Version))
	})
	srv := httptest.NewServer(server.New(server.Config{Blobs: blobs, Meta: meta, Temporal: noTemporal{t}}))
	t.Cleanup(srv.Close)
	return srv, want
}

// Following next from the first page lists every stored version once, in order of path (where
// "example.com/a" comes before "example.com/a/b" and that before "example.com/ab"), then
// version; only full pages carry a next token.
func TestCatalogPages(t *testing.T) {
	srv, want := catalogServer(t,
		[]string{"example.com/ab", "example.com/a/b", "example.com/a", "example.com/a-b", "golang.org/x/mod"},
		[]string{"v1.0.0", "v1.1.0", "v1.10.0", "v1.2.0", "v2.0.0+incompatible"})
	// 25 versions: pages of 10 end with a short one, pages of 5 with an empty one, and the
	// default limit takes them all at once.
	for _, limit := range []int{10, 5, 0} {
		query := ""
		if limit > 0 {
			query = "limit=" + strconv.Itoa(limit)
		}
		var got []catalogEntry
		url := srv.URL + "/catalog?" + query
		for range len(want) + 1 { // bounded, in case next never ends
			status, header, body := testserver.Get(t, "GET", url)
			if status != http.StatusOK {
				t.Fatalf("GET %s: %d %s", url, status, body)
			}
			if ct, cc := header.Get("Content-Type"), header.Get("Cache-Control"); ct != "application/json" || cc != "no-store" {
				t.Errorf("GET %s: Content-Type %q, Cache-Control %q", url, ct, cc)
			}
			var page struct {
				Modules []catalogEntry `json:"modules"`
				Next    string         `json:"next"`
			}
			if err := json.Unmarshal(body, &page); err != nil || page.Modules == nil {
				t.Fatalf("GET %s: %s: %v", url, body, err)
			}
			got = append(got, page.Modules...)
			if full := len(page.Modules) == limit; full != (page.Next != "") {
				t.Errorf("GET %s: %d modules with next %q", url, len(page.Modules), page.Next)
			}
			if page.Next == "" {
				break
			}
			url = srv.URL + "/catalog?" + query + "&token=" + page.Next
		}
		if !slices.Equal(got, want) {
			t.Errorf("catalog in pages of %d =\n%v\nwant\n%v", limit, got, want)
		}
	}
}

func TestCatalogBadRequest(t *testing.T) {
	srv, _ := catalogServer(t, []string{"example.com/a"}, []string{"v1.0.0"})
	token := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, query := range []string{
		"limit=0",
		"limit=-1",
		"limit=abc",
		"limit=10001",
		"token=garbage",
		"token=garbage!",
		"token=" + token("example.com/a"),       // no version
		"token=" + token("example.com/a@1.0.0"), // not a version
		"token=" + token("example.com/a/v2@v1.0.0"),    // major version of another path
		"token=" + token("Example@v1.0.0"),             // not a module path
		"token=" + token("example.com/a@v1.0.0") + "=", // padded
		"token=%%%", // not even a query
		"limit=%zz",
	} {
		status, _, body := testserver.Get(t, "GET", srv.URL+"/catalog?"+query)
		if status != http.StatusBadRequest || strings.Count(string(body), "\n") != 1 {
			t.Errorf("GET /catalog?%s: %d %q, want 400 and one line", query, status, body)
		}
	}
	// The largest limit and a token for a version that is not stored are fine.
	for _, query := range []string{"limit=10000", "token=" + token("example.com/0@v1.0.0")} {
		if status, _, body := testserver.Get(t, "GET", srv.URL+"/catalog?"+query); status != http.StatusOK || !strings.Contains(string(body), `"example.com/a"`) {
			t.Errorf("GET /catalog?%s: %d %s", query, status, body)
		}
	}
}

// A store that fails answers 503 to the listings, as every unavailable dependency does.
func TestListingsStoreDown(t *testing.T) {
	blobs, meta := teststores.Open(t, "")
	meta.Close()
	srv := httptest.NewServer(server.New(server.Config{Blobs: blobs, Meta: meta, Temporal: noTemporal{t}}))
	defer srv.Close()
	for _, path := range []string{"/catalog", "/index"} {
		if status, _, body := testserver.Get(t, "GET", srv.URL+path); status != http.StatusServiceUnavailable {
			t.Errorf("GET %s from a closed store: %d %s, want 503", path, status, body)
		}
	}
}
