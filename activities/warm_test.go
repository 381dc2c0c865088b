package activities_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/module"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/activities"
)

func mv(path, version string) module.Version { return module.Version{Path: path, Version: version} }

func TestParseWarmList(t *testing.T) {
	for i, c := range []struct {
		name string
		body string
		want []module.Version
	}{
		0: {"go.sum: a version counts once, its /go.mod line alone names its .mod alone", `example.com/b v1.0.0 h1:zip=
example.com/b v1.0.0/go.mod h1:mod=
example.com/a/sub v0.1.0/go.mod h1:mod=
example.com/a v1.1.0 h1:zip=
example.com/a v1.1.0/go.mod h1:mod=
example.com/a v1.0.0/go.mod h1:mod=
example.com/a v1.0.0/go.mod h1:mod=
`, []module.Version{mv("example.com/a", "v1.0.0/go.mod"), mv("example.com/a", "v1.1.0"), mv("example.com/a/sub", "v0.1.0/go.mod"), mv("example.com/b", "v1.0.0")}},
		1: {"go.mod: block and single-line requires", `module example.com/me

go 1.22

require example.com/single v1.2.3

require (
	example.com/b v1.0.0 // indirect
	example.com/a v0.1.0
)
`, []module.Version{mv("example.com/a", "v0.1.0"), mv("example.com/b", "v1.0.0"), mv("example.com/single", "v1.2.3")}},
		2: {"lines of module@version with blank lines and comments", `# what the build needs
example.com/b@v1.0.0

// and this one
   example.com/a@v1.2.0-pre   
example.com/b@v1.0.0
example.com/a@v1.0.0
`, []module.Version{mv("example.com/a", "v1.0.0"), mv("example.com/a", "v1.2.0-pre"), mv("example.com/b", "v1.0.0")}},
	} {
		got, err := activities.ParseWarmList([]byte(c.body))
		if err != nil {
			t.Errorf("%d: %s: %v", i, c.name, err)
			continue
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%d: %s: got %v, want %v", i, c.name, got, c.want)
		}
	}
}

func TestParseWarmListErrors(t *testing.T) {
	for i, c := range []struct {
		name string
		body string
		want []string // substrings of the error
	}{
		0:  {"version with only a major", "example.com/ok@v1.0.0\nexample.com/a@v1\n", []string{"line 2", "example.com/a@v1"}},
		1:  {"@latest", "\n# counted lines\nexample.com/a@latest\n", []string{"line 3", "example.com/a@latest"}},
		2:  {"@master", "example.com/a@master\n", []string{"line 1", "example.com/a@master"}},
		3:  {"malformed path", "example.com/ok@v1.0.0\n\nnodot/a@v1.0.0\n", []string{"line 3", "nodot/a"}},
		4:  {"neither go.sum line nor module@version", "example.com/ok@v1.0.0\nexample.com/a v1.0.0\n", []string{"line 2"}},
		5:  {"go.sum line with another hash", "example.com/a v1.0.0 h2:zip=\n", []string{"line 1"}},
		6:  {"go.mod with a version that is no version", "module example.com/me\n\nrequire example.com/a latest\n", []string{"go.mod:3"}},
		7:  {"empty body", "", nil},
		8:  {"only comments", "# nothing\n\n// here\n", nil},
		9:  {"go.mod with a short version", "module example.com/me\n\nrequire example.com/a v1.6\n", []string{"go.mod:3", "v1.6"}},
		10: {"go.mod block with a short version", "module example.com/me\n\nrequire (\n\texample.com/b v1.0.0 // indirect\n\texample.com/a v1 // x\n)\n", []string{"go.mod:5"}},
	} {
		_, err := activities.ParseWarmList([]byte(c.body))
		if !errors.Is(err, gofer.ErrInvalid) {
			t.Errorf("%d: %s: err = %v, want invalid", i, c.name, err)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%d: %s: %q does not say %q", i, c.name, err, w)
			}
		}
	}
}

func TestParseWarmListLimit(t *testing.T) {
	body := func(n int) []byte {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "example.com/m@v1.0.%d\n", i)
		}
		return []byte(b.String())
	}
	list, err := activities.ParseWarmList(body(activities.MaxWarmList))
	if err != nil || len(list) != activities.MaxWarmList {
		t.Fatalf("%d versions: %d parsed, err = %v; want all", activities.MaxWarmList, len(list), err)
	}
	if _, err := activities.ParseWarmList(body(activities.MaxWarmList + 1)); !errors.Is(err, gofer.ErrInvalid) {
		t.Errorf("%d versions: err = %v, want invalid", activities.MaxWarmList+1, err)
	}
}

// warmPage runs the WarmPage activity.
func warmPage(t *testing.T, a *activities.Activities, r activities.WarmPageRequest) (activities.WarmPage, error) {
	t.Helper()
	res, err := env(a).ExecuteActivity(a.WarmPage, r)
	var p activities.WarmPage
	if err == nil {
		err = res.Get(&p)
	}
	return p, err
}

func TestWarmPage(t *testing.T) {
	ctx := context.Background()
	a, _ := newActivities(t, nil)
	list := []module.Version{
		mv("example.com/a", "v1.0.0"), mv("example.com/a", "v1.1.0"), mv("example.com/b", "v1.0.0"),
		mv("example.com/c", "v1.0.0"), mv("example.com/d", "v1.0.0"),
	}
	key, err := activities.PutWarmList(ctx, a.Blobs, list)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []module.Version{list[1], list[4]} {
		if err := a.Meta.Insert(ctx, gofer.Version{Path: v.Path, Version: v.Version, ZipHash: "h1:zip=", ModHash: "h1:mod="}); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range []struct {
		offset int
		want   activities.WarmPage
	}{
		0: {0, activities.WarmPage{Missing: []module.Version{list[0], list[2]}, Cached: 1, Next: 3, Total: 5}},
		1: {3, activities.WarmPage{Missing: []module.Version{list[3]}, Cached: 1, Next: 5, Total: 5}},
	} {
		got, err := warmPage(t, a, activities.WarmPageRequest{List: key, Offset: c.offset, Size: 3})
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		if !slices.Equal(got.Missing, c.want.Missing) || got.Cached != c.want.Cached || got.Next != c.want.Next || got.Total != c.want.Total {
			t.Errorf("%d: offset %d: got %+v, want %+v", i, c.offset, got, c.want)
		}
	}

	again, err := activities.PutWarmList(ctx, a.Blobs, list)
	if err != nil || again != key {
		t.Errorf("the same list stored again: key %q, err = %v; want %q", again, err, key)
	}
	other, err := activities.PutWarmList(ctx, a.Blobs, list[:4])
	if err != nil || other == key {
		t.Errorf("another list: key %q, err = %v; want a key other than %q", other, err, key)
	}
}

func TestWarmPageUnknownListIsInvalid(t *testing.T) {
	a, _ := newActivities(t, nil)
	for i, key := range []string{"_warm/" + strings.Repeat("0", 64), "example.com/a/@v/v1.0.0.zip"} {
		_, err := warmPage(t, a, activities.WarmPageRequest{List: key, Size: 3})
		if typ, retry := errorType(t, err); typ != "Invalid" || retry {
			t.Errorf("%d: %s: %v: type %s retryable %v, want a final Invalid", i, key, err, typ, retry)
		}
	}
}

func TestParseWatchRule(t *testing.T) {
	for i, c := range []struct {
		in   string
		want activities.WatchRule
	}{
		0: {"latest", activities.WatchRule{Latest: true}},
		1: {"all", activities.WatchRule{}},
		2: {"all >= v1.2.0", activities.WatchRule{Since: "v1.2.0"}},
		3: {"all  >=  v1.2.0-rc.1", activities.WatchRule{Since: "v1.2.0-rc.1"}},
	} {
		got, err := activities.ParseWatchRule(c.in)
		if err != nil || got != c.want {
			t.Errorf("%d: %q: got %+v, err = %v; want %+v", i, c.in, got, err, c.want)
		}
		if err == nil && got.String() != strings.Join(strings.Fields(c.in), " ") {
			t.Errorf("%d: %q: String() = %q", i, c.in, got.String())
		}
	}
	for i, in := range []string{"all >= v1.2", "newest", "all > v1.0.0", "all >= latest", "latest all", ""} {
		if got, err := activities.ParseWatchRule(in); err == nil {
			t.Errorf("%d: %q: got %+v, want an error", i, in, got)
		}
	}
}

// watchUpstream answers List and Latest from maps; a path in errs fails with its error.
type watchUpstream struct {
	list   map[string]string
	latest map[string]string
	errs   map[string]error
}

func (u watchUpstream) List(_ context.Context, path string) ([]byte, string, error) {
	if err := u.errs[path]; err != nil {
		return nil, "", err
	}
	return []byte(u.list[path]), "test", nil
}

func (u watchUpstream) Latest(_ context.Context, path string) ([]byte, string, error) {
	if err := u.errs[path]; err != nil {
		return nil, "", err
	}
	v, ok := u.latest[path]
	if !ok {
		return nil, "", gofer.Errorf(gofer.ErrNotFound, "%s: no versions", path)
	}
	return []byte(`{"Version":"` + v + `","Time":"2024-01-02T03:04:05Z"}`), "test", nil
}

func (watchUpstream) Info(context.Context, string, string) ([]byte, string, error) {
	return nil, "", errors.New("watchUpstream: Info not expected")
}

func (watchUpstream) Mod(context.Context, string, string) ([]byte, string, error) {
	return nil, "", errors.New("watchUpstream: Mod not expected")
}

func (watchUpstream) Zip(context.Context, string, string) (io.ReadCloser, string, error) {
	return nil, "", errors.New("watchUpstream: Zip not expected")
}

// newWatchActivities returns activities over up whose metadata store holds a version of
// example.com/x/a, example.com/x/b and example.com/y.
func newWatchActivities(t *testing.T, up watchUpstream) *activities.Activities {
	t.Helper()
	a, _ := newActivities(t, up)
	for _, path := range []string{"example.com/x/a", "example.com/x/b", "example.com/y"} {
		if err := a.Meta.Insert(context.Background(), gofer.Version{Path: path, Version: "v0.0.1"}); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

// resolve runs the Resolve activity and reads back every version of the warm list it stored.
func resolve(t *testing.T, a *activities.Activities, w activities.Watch) ([]module.Version, error) {
	t.Helper()
	res, err := env(a).ExecuteActivity(a.Resolve, w)
	if err != nil {
		return nil, err
	}
	var list activities.WarmList
	if err := res.Get(&list); err != nil {
		t.Fatal(err)
	}
	if list.Total == 0 {
		if list.Key != "" {
			t.Errorf("empty warm list stored as %s", list.Key)
		}
		return nil, nil
	}
	p, err := warmPage(t, a, activities.WarmPageRequest{List: list.Key, Size: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if p.Total != list.Total || p.Cached != 0 {
		t.Errorf("Resolve says %d versions; the stored list has %d, %d of them cached", list.Total, p.Total, p.Cached)
	}
	slices.SortFunc(p.Missing, func(x, y module.Version) int {
		return cmp.Or(strings.Compare(x.Path, y.Path), strings.Compare(x.Version, y.Version))
	})
	return p.Missing, nil
}

func TestResolve(t *testing.T) {
	up := watchUpstream{
		list: map[string]string{
			// v1.1.0-rc.1 is below v1.1.0 in semver, v1.2.1-0.2020... is a pseudo-version above
			// it, v1.3 is not canonical.
			"example.com/x/a": "v1.0.0\nv1.1.0-rc.1\nv1.1.0\nv1.2.0-pre\nv1.2.0\nv1.2.1-0.20200101000000-abcdefabcdef\nv1.3\n",
			"example.com/x/b": "v0.9.0\nv1.10.0\nv1.1.0\n",
			"example.com/y":   "v1.5.0\n",
		},
		latest: map[string]string{"example.com/new": "v0.3.0"},
	}
	for i, c := range []struct {
		name  string
		watch activities.Watch
		errs  map[string]error
		want  []module.Version
	}{
		0: {"wildcard, all >= v1.1.0", activities.Watch{Pattern: "example.com/x/*", Rule: activities.WatchRule{Since: "v1.1.0"}}, nil,
			[]module.Version{
				mv("example.com/x/a", "v1.1.0"), mv("example.com/x/a", "v1.2.0"), mv("example.com/x/a", "v1.2.0-pre"),
				mv("example.com/x/b", "v1.1.0"), mv("example.com/x/b", "v1.10.0"),
			}},
		1: {"a module not stored yet, latest", activities.Watch{Pattern: "example.com/new", Rule: activities.WatchRule{Latest: true}}, nil,
			[]module.Version{mv("example.com/new", "v0.3.0")}},
		2: {"a module the upstream does not know is skipped", activities.Watch{Pattern: "example.com/x/*", Rule: activities.WatchRule{}},
			map[string]error{"example.com/x/a": gofer.Errorf(gofer.ErrNotFound, "example.com/x/a: 404")},
			[]module.Version{mv("example.com/x/b", "v0.9.0"), mv("example.com/x/b", "v1.1.0"), mv("example.com/x/b", "v1.10.0")}},
		3: {"nothing found at all", activities.Watch{Pattern: "example.com/gone", Rule: activities.WatchRule{Latest: true}}, nil, nil},
	} {
		up.errs = c.errs
		got, err := resolve(t, newWatchActivities(t, up), c.watch)
		if err != nil {
			t.Errorf("%d: %s: %v", i, c.name, err)
			continue
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%d: %s: got %v, want %v", i, c.name, got, c.want)
		}
	}
}

func TestResolveUnavailableUpstreamIsRetryable(t *testing.T) {
	up := watchUpstream{errs: map[string]error{"example.com/x/b": gofer.Errorf(gofer.ErrUnavailable, "example.com/x/b: 503")}}
	_, err := resolve(t, newWatchActivities(t, up), activities.Watch{Pattern: "example.com/x/*"})
	if typ, retry := errorType(t, err); typ != "Unavailable" || !retry {
		t.Errorf("%v: type %s retryable %v, want a retryable Unavailable", err, typ, retry)
	}
}
