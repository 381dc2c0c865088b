package server

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/goferproxy/gofer"
)

func TestParseRequest(t *testing.T) {
	parsed := newParsedRequests()
	for i, c := range []struct {
		path string
		want request // zero: the path must be refused as not found
	}{
		0:  {"/example.com/m/@v/list", request{path: "example.com/m", kind: "list"}},
		1:  {"/example.com/m/@latest", request{path: "example.com/m", kind: "latest"}},
		2:  {"/example.com/m/@v/v1.2.3.info", request{"example.com/m", "info", "v1.2.3", "example.com/m@v1.2.3"}},
		3:  {"/example.com/m/@v/v1.2.3.mod", request{"example.com/m", "mod", "v1.2.3", "example.com/m@v1.2.3"}},
		4:  {"/example.com/m/@v/v1.2.3.zip", request{"example.com/m", "zip", "v1.2.3", "example.com/m@v1.2.3"}},
		5:  {"/github.com/!azure/sdk/@v/v1.0.0-!r!c1.zip", request{"github.com/Azure/sdk", "zip", "v1.0.0-RC1", "github.com/Azure/sdk@v1.0.0-RC1"}},
		6:  {"/example.com/m/@v/v2.0.0+incompatible.zip", request{"example.com/m", "zip", "v2.0.0+incompatible", "example.com/m@v2.0.0+incompatible"}},
		7:  {"/example.com/m/v2/@v/v2.1.0.mod", request{"example.com/m/v2", "mod", "v2.1.0", "example.com/m/v2@v2.1.0"}},
		8:  {"/example.com/m/@v/master.info", request{"example.com/m", "info", "master", ""}}, // a query, resolved upstream
		9:  {"/example.com/m/@v/v1.2.info", request{"example.com/m", "info", "v1.2", ""}},
		10: {"/example.com/m/@v/master.zip", request{}},
		11: {"/example.com/m/@v/v1.2.zip", request{}},
		12: {"/example.com/m/@v/v2.0.0.zip", request{}}, // major version does not match the path
		13: {"/example.com/m/v2/@v/v1.0.0.zip", request{}},
		14: {"/example.com/m/@v/v1.2.3.tar", request{}},
		15: {"/example.com/m/@v/", request{}},
		16: {"/example.com/m", request{}},
		17: {"/", request{}},
		18: {"/github.com/Azure/sdk/@v/list", request{}},   // upper case must be escaped
		19: {"/github.com/!!azure/sdk/@v/list", request{}}, // bad escape
		20: {"/example.com/../m/@v/list", request{}},
		21: {"/example.com/m/@v/../../../etc/passwd.info", request{}},
		22: {"/" + strings.Repeat("a/", 600) + "@v/list", request{}},
		23: {"/example.com/m/@v/V1.2.3.zip", request{}},
		24: {"/example.com/m/@v/v1.2.3.info/x", request{}},
		25: {"/nodot/m/@v/list", request{}}, // the first element of a module path has a dot
		26: {"/@v/list", request{}},
		27: {"/example.com/m/@v/-x.info", request{}}, // an option to git, not a version
		28: {"/example.com/m/@v/--upload-pack=x.info", request{}},
	} {
		// Each path is parsed, then parsed again as the server does, from what it remembers.
		for _, parse := range []func(string) (request, error){parseRequest, parsed.parse, parsed.parse} {
			got, err := parse(c.path)
			if c.want == (request{}) {
				if !errors.Is(err, gofer.ErrNotFound) {
					t.Errorf("%d: %s: got %+v, %v; want not found", i, c.path, got, err)
				}
				continue
			}
			if err != nil || got != c.want {
				t.Errorf("%d: %s: got %+v, %v; want %+v", i, c.path, got, err, c.want)
			}
		}
	}
}

// More paths than the remembered parses have slots share slots, and each still parses as itself.
func TestParsedRequestsShareSlots(t *testing.T) {
	parsed := newParsedRequests()
	for round := range 2 {
		for i := range 3 * parsedSlots {
			v := fmt.Sprintf("v1.0.%d", i)
			got, err := parsed.parse("/example.com/m/@v/" + v + ".mod")
			if want := (request{path: "example.com/m", kind: "mod", version: v, key: "example.com/m@" + v}); err != nil || got != want {
				t.Fatalf("round %d: %s: got %+v, %v; want %+v", round, v, got, err, want)
			}
		}
	}
}

func TestLRUEvictsLeastRecentlyUsed(t *testing.T) {
	c := newLRU[int](100)
	c.add("a", 1, 10)
	c.add("b", 2, 10)
	c.add("big", 3, 13) // over an eighth of the cache: not kept
	if _, ok := c.get("big"); ok {
		t.Error("kept a value bigger than an eighth of the cache")
	}
	c.get("a") // a is now more recent than b
	for i := range 9 {
		c.add(string(rune('c'+i)), i, 10)
	}
	if _, ok := c.get("b"); ok {
		t.Error("b should have been evicted first")
	}
	if v, ok := c.get("a"); !ok || v != 1 {
		t.Errorf("a = %v, %v; want 1, kept", v, ok)
	}
	if c.size > c.max {
		t.Errorf("size %d over max %d", c.size, c.max)
	}
}

// A value that grows past the bound evicts the least recently used values, and the cache
// accounts for what it grew by; a value grows only if it is still the one cached under its key
// and stays within an eighth of the bound.
func TestLRUGrow(t *testing.T) {
	c := newLRU[string](800) // a value weighs 100 at most
	for i := range 9 {
		k := strconv.Itoa(i)
		c.add(k, k, 88)
	}
	c.get("0") // "1" is now the least recently used
	for _, g := range []struct {
		key, val string
		n        int64
		grown    bool
		size     int64
	}{
		{"0", "0", 10, true, 714}, // 802 > 800: "1" goes
		{"0", "x", 1, false, 714}, // not the value cached under "0"
		{"0", "0", 3, false, 714}, // 101 > 100
		{"1", "1", 1, false, 714}, // no longer cached
		{"2", "2", 12, true, 726}, // 100
	} {
		if got := c.grow(g.key, g.val, g.n); got != g.grown || c.size != g.size {
			t.Errorf("grow(%s, %s, %d) = %v with size %d, want %v with %d", g.key, g.val, g.n, got, c.size, g.grown, g.size)
		}
	}
	if _, ok := c.get("1"); ok || len(c.items) != 8 {
		t.Errorf("%d values, \"1\" cached: %v; want 8 without it", len(c.items), ok)
	}
}
