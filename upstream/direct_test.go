package upstream_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/internal/kindtest"
	"github.com/goferproxy/gofer/upstream"
)

// fakeDirect answers every call with a body naming the call, or with err, and records the calls.
type fakeDirect struct {
	err  error
	body string // replaces the body when not empty

	mu    sync.Mutex
	calls []string
}

func (d *fakeDirect) answer(call string) ([]byte, string, error) {
	d.mu.Lock()
	d.calls = append(d.calls, call)
	d.mu.Unlock()
	if d.err != nil {
		return nil, "", d.err
	}
	if d.body != "" {
		return []byte(d.body), "vcs", nil
	}
	return []byte(call), "vcs", nil
}

func (d *fakeDirect) List(_ context.Context, path string) ([]byte, string, error) {
	return d.answer("list " + path)
}
func (d *fakeDirect) Latest(_ context.Context, path string) ([]byte, string, error) {
	return d.answer("latest " + path)
}
func (d *fakeDirect) Info(_ context.Context, path, query string) ([]byte, string, error) {
	return d.answer("info " + path + "@" + query)
}
func (d *fakeDirect) Mod(_ context.Context, path, version string) ([]byte, string, error) {
	return d.answer("mod " + path + "@" + version)
}
func (d *fakeDirect) Zip(_ context.Context, path, version string) (io.ReadCloser, string, error) {
	b, s, err := d.answer("zip " + path + "@" + version)
	if err != nil {
		return nil, "", err
	}
	return io.NopCloser(strings.NewReader(string(b))), s, nil
}

// calls runs the five methods of c and returns what each answered ("source: body") or its error.
func calls(c *upstream.Chain) []string {
	ctx := context.Background()
	var out []string
	add := func(b []byte, source string, err error) {
		if err != nil {
			out = append(out, fmt.Sprintf("error %s: %v", kindtest.Name(err), err))
			return
		}
		out = append(out, source+": "+string(b))
	}
	add(c.List(ctx, "example.com/m"))
	add(c.Latest(ctx, "example.com/m"))
	add(c.Info(ctx, "example.com/m", "main"))
	add(c.Mod(ctx, "example.com/m", "v1.0.0"))
	zip, source, err := c.Zip(ctx, "example.com/m", "v1.0.0")
	var b []byte
	if err == nil {
		b, err = io.ReadAll(zip)
		zip.Close()
	}
	add(b, source, err)
	return out
}

// The direct entry is answered by the Chain's Direct, with the fall-through rules of any entry,
// and the answers name "direct" as their source.
func TestDirect(t *testing.T) {
	notFound, _ := status(t, 404, "no")
	down, _ := status(t, 503, "down")
	answered := []string{
		"direct: list example.com/m",
		"direct: latest example.com/m",
		"direct: info example.com/m@main",
		"direct: mod example.com/m@v1.0.0",
		"direct: zip example.com/m@v1.0.0",
	}
	for i, tc := range []struct {
		goproxy string
		err     error // the Direct's answer
		want    []string
	}{
		0: {goproxy: "direct", want: answered},
		1: {goproxy: notFound.URL + ",direct", want: answered}, // 404 falls through ','
		2: {goproxy: down.URL + "|direct", want: answered},     // anything falls through '|'
		3: {goproxy: down.URL + ",direct"},                     // a 503 does not fall through ','
		4: {goproxy: "direct", err: gofer.Errorf(gofer.ErrNotFound, "unknown revision")},
		5: {goproxy: "direct", err: gofer.Errorf(gofer.ErrUnavailable, "connection refused")},
		6: {goproxy: "direct", err: errors.New("something odd")},
		// Every entry said not found: the answer names each entry and what it said.
		7: {goproxy: notFound.URL + ",direct", err: gofer.Errorf(gofer.ErrNotFound, "unknown revision")},
	} {
		c := parse(t, tc.goproxy)
		d := &fakeDirect{err: tc.err}
		c.Direct = d
		got := calls(c)
		for j, g := range got {
			switch {
			case tc.want != nil:
				if g != tc.want[j] {
					t.Errorf("%d.%d: %q: got %q, want %q", i, j, tc.goproxy, g, tc.want[j])
				}
			case tc.err != nil:
				prefix, suffix := "error "+kindtest.Name(tc.err)+": ", "direct: "+tc.err.Error()
				if tc.goproxy != "direct" {
					prefix += "GET " + notFound.URL + "/"
					suffix = ": no; " + suffix
				}
				if !strings.HasPrefix(g, prefix) || !strings.HasSuffix(g, suffix) {
					want := prefix + "..." + suffix
					t.Errorf("%d.%d: %q: got %q, want %q", i, j, tc.goproxy, g, want)
				}
			default:
				if !strings.HasPrefix(g, "error unavailable: ") || !strings.Contains(g, down.URL) {
					t.Errorf("%d.%d: %q: got %q, want the proxy's 503", i, j, tc.goproxy, g)
				}
			}
		}
		if wantCalls := 5; tc.want == nil && tc.err == nil {
			if len(d.calls) != 0 {
				t.Errorf("%d: Direct called %q past a ',' after a 503", i, d.calls)
			}
		} else if len(d.calls) != wantCalls {
			t.Errorf("%d: Direct got %d calls, want %d", i, len(d.calls), wantCalls)
		}
	}
}

// A Direct answer is held to the limits of a proxy's: an .info over 1 MiB is refused.
func TestDirectSizeCap(t *testing.T) {
	c := parse(t, "direct")
	c.Direct = &fakeDirect{body: strings.Repeat("x", 1<<20+1)}
	_, _, err := c.Info(context.Background(), "example.com/m", "v1.0.0")
	if !errors.Is(err, gofer.ErrInvalid) {
		t.Errorf("Info of 1 MiB + 1 byte: err = %v, want invalid", err)
	}
	c.Direct = &fakeDirect{body: strings.Repeat("x", 1<<20)}
	if _, _, err := c.Info(context.Background(), "example.com/m", "v1.0.0"); err != nil {
		t.Errorf("Info of 1 MiB: %v", err)
	}
}
