package warm_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goferproxy/gofer/warm"
)

func TestParseWatchRule(t *testing.T) {
	for i, c := range []struct {
		in   string
		want warm.WatchRule
	}{
		0: {"latest", warm.WatchRule{Latest: true}},
		1: {"all", warm.WatchRule{}},
		2: {"all >= v1.2.0", warm.WatchRule{Since: "v1.2.0"}},
		3: {"all  >=  v1.2.0-rc.1", warm.WatchRule{Since: "v1.2.0-rc.1"}},
	} {
		got, err := warm.ParseWatchRule(c.in)
		if err != nil || got != c.want {
			t.Errorf("%d: %q: got %+v, err = %v; want %+v", i, c.in, got, err, c.want)
		}
		if err == nil && got.String() != strings.Join(strings.Fields(c.in), " ") {
			t.Errorf("%d: %q: String() = %q", i, c.in, got.String())
		}
	}
	for i, in := range []string{"all >= v1.2", "newest", "all > v1.0.0", "all >= latest", "latest all", ""} {
		if got, err := warm.ParseWatchRule(in); err == nil {
			t.Errorf("%d: %q: got %+v, want an error", i, in, got)
		}
	}
}

func TestParseWatchlist(t *testing.T) {
	const list = `# modules we depend on
example.com/a latest
example.com/x/* all >= v1.2.0 every 10m   # the x family

every 30m
example.com/b all
gosum deploy/go.sum
example.com/c latest every 2h
example.com/d latest
follow https://central.example/base/
follow http://ci:secret@10.0.0.7:3000 example.com/*,golang.org/x/* every 5m
every 1s
gosum other.sum every 45s
`
	want := []warm.WatchEntry{
		{Watch: warm.Watch{Pattern: "example.com/a", Rule: warm.WatchRule{Latest: true}}, Every: warm.DefaultWatchEvery},
		{Watch: warm.Watch{Pattern: "example.com/x/*", Rule: warm.WatchRule{Since: "v1.2.0"}}, Every: 10 * time.Minute},
		{Watch: warm.Watch{Pattern: "example.com/b"}, Every: 30 * time.Minute},
		{GoSum: "deploy/go.sum", Every: 30 * time.Minute},
		{Watch: warm.Watch{Pattern: "example.com/c", Rule: warm.WatchRule{Latest: true}}, Every: 2 * time.Hour},
		{Watch: warm.Watch{Pattern: "example.com/d", Rule: warm.WatchRule{Latest: true}}, Every: 30 * time.Minute},
		{Follow: warm.Follow{URL: "https://central.example/base/"}, Every: 30 * time.Minute},
		{Follow: warm.Follow{URL: "http://ci:secret@10.0.0.7:3000", Patterns: "example.com/*,golang.org/x/*"}, Every: 5 * time.Minute},
		{GoSum: "other.sum", Every: 45 * time.Second},
	}
	got, err := warm.ParseWatchlist(strings.NewReader(list))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", got, want)
	}
	names := []string{
		"example.com/a", "example.com/x/*", "example.com/b", "gosum:deploy/go.sum", "example.com/c", "example.com/d",
		"follow:https://central.example/base", "follow:http://10.0.0.7:3000", "gosum:other.sum",
	}
	for i, e := range got {
		if name := e.Name(); name != names[i] {
			t.Errorf("%d: name %q, want %q", i, name, names[i])
		}
	}

	if got, err := warm.ParseWatchlist(strings.NewReader("# nothing yet\n\nevery 5m\n")); err != nil || len(got) != 0 {
		t.Errorf("a watchlist without entries: %v, err = %v", got, err)
	}
}

func TestParseWatchlistErrors(t *testing.T) {
	for i, c := range []struct {
		name string
		list string
		want []string // substrings of the error
	}{
		0:  {"bad rule", "example.com/a latest\nexample.com/b newest\n", []string{"line 2", "newest"}},
		1:  {"non-canonical version", "example.com/a all >= v1.2\n", []string{"line 1"}},
		2:  {"bad duration", "\nexample.com/a latest every soon\n", []string{"line 2", "soon"}},
		3:  {"bad default duration", "every 5\nexample.com/a latest\n", []string{"line 1"}},
		4:  {"duration under a second", "# fast\nexample.com/a latest every 500ms\n", []string{"line 2"}},
		5:  {"negative duration", "every -1h\n", []string{"line 1"}},
		6:  {"duplicate pattern", "example.com/a latest\n# again\nexample.com/a all every 5m\n", []string{"line 3", "line 1"}},
		7:  {"duplicate go.sum", "gosum go.sum\ngosum go.sum every 1h\n", []string{"line 2", "line 1"}},
		8:  {"malformed module path", "example.com/a latest\nnodot/a latest\n", []string{"line 2", "nodot/a"}},
		9:  {"malformed glob", "example.com//* latest\n", []string{"line 1"}},
		10: {"a lone word", "example.com/a latest\nexample.com/b\n", []string{"line 2"}},
		11: {"every without a duration", "every\n", []string{"line 1"}},
		12: {"entry with only an interval", "example.com/a every 5m\n", []string{"line 1"}},
		13: {"follow of another scheme", "follow ftp://proxy.example\n", []string{"line 1", "ftp://proxy.example"}},
		14: {"follow with a query", "\nfollow https://proxy.example/?x=1\n", []string{"line 2"}},
		15: {"follow of a list", "follow https://a.example,https://b.example\n", []string{"line 1"}},
		16: {"follow without a host", "follow https:///base\n", []string{"line 1"}},
		17: {"follow twice", "follow https://a:b@proxy.example\nfollow https://proxy.example/ example.com/*\n", []string{"line 2", "line 1"}},
		18: {"follow of a bad pattern", "follow https://proxy.example example.com/*,nodot/a\n", []string{"line 1", "nodot/a"}},
		19: {"follow with two patterns", "follow https://proxy.example example.com/a example.com/b\n", []string{"line 1"}},
		20: {"follow's password never shown", "follow ftp://u:secret@proxy.example\n", []string{"line 1", `"ftp://proxy.example"`}},
		21: {"follow of a bare word", "follow direct\n", []string{"line 1"}},
		22: {"follow of a host alone", "follow proxy.example\n", []string{"line 1"}},
		23: {"follow with an empty query", "follow https://TOKEN@proxy.example/?\n", []string{"line 1", `"https://proxy.example?"`}},
	} {
		got, err := warm.ParseWatchlist(strings.NewReader(c.list))
		if err == nil {
			t.Errorf("%d: %s: got %+v, want an error", i, c.name, got)
			continue
		}
		if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "TOKEN") {
			t.Errorf("%d: %s: %q shows a password", i, c.name, err)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%d: %s: %q does not say %q", i, c.name, err, w)
			}
		}
	}
}
