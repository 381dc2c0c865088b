package warm_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/module"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/internal/kindtest"
	"github.com/goferproxy/gofer/internal/teststores"
	"github.com/goferproxy/gofer/warm"
)

func mv(path, version string) module.Version { return module.Version{Path: path, Version: version} }

func TestParseList(t *testing.T) {
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
		got, err := warm.ParseList([]byte(c.body))
		if err != nil {
			t.Errorf("%d: %s: %v", i, c.name, err)
			continue
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%d: %s: got %v, want %v", i, c.name, got, c.want)
		}
	}
}

func TestParseListErrors(t *testing.T) {
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
		_, err := warm.ParseList([]byte(c.body))
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

func TestParseListLimit(t *testing.T) {
	body := func(n int) []byte {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "example.com/m@v1.0.%d\n", i)
		}
		return []byte(b.String())
	}
	list, err := warm.ParseList(body(warm.MaxList))
	if err != nil || len(list) != warm.MaxList {
		t.Fatalf("%d versions: %d parsed, err = %v; want all", warm.MaxList, len(list), err)
	}
	if _, err := warm.ParseList(body(warm.MaxList + 1)); !errors.Is(err, gofer.ErrInvalid) {
		t.Errorf("%d versions: err = %v, want invalid", warm.MaxList+1, err)
	}
}

// A stored list reads back sorted and without duplicates, under a key of its versions alone.
func TestPutList(t *testing.T) {
	ctx := context.Background()
	blobs, _ := teststores.Open(t, "")
	list := []module.Version{
		mv("example.com/a", "v1.0.0"), mv("example.com/a", "v1.1.0"), mv("example.com/b", "v1.0.0"),
		mv("example.com/c", "v1.0.0"), mv("example.com/d", "v1.0.0"),
	}
	key, err := warm.PutList(ctx, blobs, slices.Concat(list[3:], list[:3], list[1:2]))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := warm.ReadList(ctx, blobs, key); err != nil || !slices.Equal(got, list) {
		t.Errorf("read back %v, err = %v; want %v", got, err, list)
	}

	again, err := warm.PutList(ctx, blobs, list)
	if err != nil || again != key {
		t.Errorf("the same list stored again: key %q, err = %v; want %q", again, err, key)
	}
	other, err := warm.PutList(ctx, blobs, list[:4])
	if err != nil || other == key {
		t.Errorf("another list: key %q, err = %v; want a key other than %q", other, err, key)
	}
}

// A key that names no stored warm list is invalid, and says so.
func TestReadListUnknownKey(t *testing.T) {
	blobs, _ := teststores.Open(t, "")
	for i, c := range []struct{ key, want string }{
		0: {"_warm/" + strings.Repeat("0", 64), "is not stored"},
		1: {"example.com/a/@v/v1.0.0.zip", "is not a warm list"},
	} {
		_, err := warm.ReadList(context.Background(), blobs, c.key)
		if kindtest.Name(err) != "invalid" || !strings.Contains(fmt.Sprint(err), c.want) {
			t.Errorf("%d: %s: err = %v, want invalid: %s", i, c.key, err, c.want)
		}
	}
}
