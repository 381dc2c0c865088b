package activities_test

import (
	"cmp"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/module"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/activities"
	"github.com/goferproxy/gofer/warm"
)

func mv(path, version string) module.Version { return module.Version{Path: path, Version: version} }

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
	key, err := warm.PutList(ctx, a.Blobs, list)
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
func resolve(t *testing.T, a *activities.Activities, w warm.Watch) ([]module.Version, error) {
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
		watch warm.Watch
		errs  map[string]error
		want  []module.Version
	}{
		0: {"wildcard, all >= v1.1.0", warm.Watch{Pattern: "example.com/x/*", Rule: warm.WatchRule{Since: "v1.1.0"}}, nil,
			[]module.Version{
				mv("example.com/x/a", "v1.1.0"), mv("example.com/x/a", "v1.2.0"), mv("example.com/x/a", "v1.2.0-pre"),
				mv("example.com/x/b", "v1.1.0"), mv("example.com/x/b", "v1.10.0"),
			}},
		1: {"a module not stored yet, latest", warm.Watch{Pattern: "example.com/new", Rule: warm.WatchRule{Latest: true}}, nil,
			[]module.Version{mv("example.com/new", "v0.3.0")}},
		2: {"a module the upstream does not know is skipped", warm.Watch{Pattern: "example.com/x/*", Rule: warm.WatchRule{}},
			map[string]error{"example.com/x/a": gofer.Errorf(gofer.ErrNotFound, "example.com/x/a: 404")},
			[]module.Version{mv("example.com/x/b", "v0.9.0"), mv("example.com/x/b", "v1.1.0"), mv("example.com/x/b", "v1.10.0")}},
		3: {"nothing found at all", warm.Watch{Pattern: "example.com/gone", Rule: warm.WatchRule{Latest: true}}, nil, nil},
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
	_, err := resolve(t, newWatchActivities(t, up), warm.Watch{Pattern: "example.com/x/*"})
	if typ, retry := errorType(t, err); typ != "Unavailable" || !retry {
		t.Errorf("%v: type %s retryable %v, want a retryable Unavailable", err, typ, retry)
	}
}
