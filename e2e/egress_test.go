package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/goferproxy/gofer/activities"
	"github.com/goferproxy/gofer/internal/fakeproxy"
	"github.com/goferproxy/gofer/internal/testserver"
	"github.com/goferproxy/gofer/vcs"
	"github.com/goferproxy/gofer/workflows"
)

// A client cannot make gofer connect into its own network: with the default upstream shape
// ("<proxy>,direct") and no GOFER_ALLOW_HOSTS, paths that name loopback addresses by https,
// http, ssh and git ports, as plain and .git-qualified module paths, get a 404 or 403 whose body
// holds no address, every fetch they start ends at once instead of retrying, and nothing
// connects to the traps listening on those addresses.
func TestRequestsCannotSteerConnections(t *testing.T) {
	var addrs []string
	for _, host := range []string{"127.0.0.1", "127.0.0.2"} {
		for _, port := range []string{"443", "80", "22", "9418"} {
			addrs = append(addrs, host+":"+port)
		}
	}
	trap, err := testserver.Listen(addrs...)
	if err != nil {
		t.Fatal(err)
	}
	defer trap.Close()
	up := fakeproxy.New()
	fetcher := &vcs.Fetcher{TempDir: t.TempDir()}
	t.Cleanup(func() { fetcher.Close() })
	g := startGofer(t, up.Start(t)+",direct", options{direct: fetcher, fetchWait: 2 * time.Minute})

	type fetch struct{ path, version string }
	var fetches []fetch
	for _, p := range []string{
		"127.0.0.1/x/@v/list", "127.0.0.2/x/@latest", "127.0.0.2/x/@v/master.info",
		"127.0.0.1/x/@v/v1.0.0.info", "127.0.0.2/x/y/@v/v1.0.0.mod",
		"127.0.0.1/x.git/@v/list", "127.0.0.2/x.git/@v/v1.0.0.mod", "127.0.0.1/x.git/sub/@v/v1.0.0.zip",
	} {
		status, _, body := testserver.Get(t, "GET", g.URL+"/"+p)
		if status != 404 && status != 403 {
			t.Errorf("GET /%s = %d %q, want 404 or 403", p, status, body)
		}
		if s := string(body); strings.Contains(s, "->") || strings.Contains(s, ":443") || strings.Contains(s, ":22") {
			t.Errorf("GET /%s: the body tells a connection: %q", p, s)
		}
		if path, file, ok := strings.Cut(p, "/@v/"); ok && strings.HasPrefix(file, "v1.") {
			fetches = append(fetches, fetch{path, file[:strings.LastIndex(file, ".")]})
		}
	}
	for _, f := range fetches {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := g.temporal.GetWorkflow(ctx, workflows.FetchID(f.path, f.version, activities.FilesMod), "").Get(ctx, nil)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("the fetch of %s@%s is still running a minute later: it retries", f.path, f.version)
		}
	}
	if seen := trap.Seen(); len(seen) != 0 {
		t.Errorf("connections made for paths a client named: %v", seen)
	}
}
