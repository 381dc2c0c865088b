package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/goferproxy/gofer/activities"
	"github.com/goferproxy/gofer/internal/fakeproxy"
	"github.com/goferproxy/gofer/internal/testserver"
	"github.com/goferproxy/gofer/workflows"
)

// A request waits for a fetch as long as its download moves: a zip that takes several
// GOFER_FETCH_WAITs to arrive from a slow upstream reaches the go command, which would fail on
// a 503. A fetch that does not move is answered 503 after GOFER_FETCH_WAIT, as before.
func TestSlowZipIsWaitedFor(t *testing.T) {
	const wait = 2 * time.Second
	up := fakeproxy.New()
	noise := make([]byte, 450<<10)
	rand.Read(noise)
	up.Add("example.com/big", "v1.0.0", map[string]string{
		"go.mod":   "module example.com/big\n\ngo 1.21\n",
		"data.txt": base64.StdEncoding.EncodeToString(noise), // about 600 KB, incompressible
	})
	g := startGofer(t, up.Start(t), options{fetchWait: wait, progressEvery: 200 * time.Millisecond})

	up.Delay(time.Minute) // stuck: nothing arrives
	start := time.Now()
	code, _, body := testserver.Get(t, "GET", g.URL+"/example.com/hello/@v/v1.0.0.mod")
	if took := time.Since(start); code != 503 || !strings.Contains(string(body), "still running") || took > 3*wait {
		t.Errorf("a fetch that does not move: %d %q after %v, want 503 still running after about %v", code, body, took, wait)
	}

	up.Delay(0)
	up.Throttle(100 << 10) // the zip takes about 6 s, three times the wait
	start = time.Now()
	m, err := download(t, g.URL, "example.com/big@v1.0.0")
	if err != nil {
		t.Fatalf("a zip that arrives slowly but steadily: %v", err)
	}
	if took := time.Since(start); took < 2*wait || m.Sum == "" {
		t.Errorf("downloaded in %v (sum %q): the upstream was not slow enough to test the wait", took, m.Sum)
	}
}

// A .mod whose upstream hangs is answered 503 after about GOFER_FETCH_WAIT, also when that is
// longer than the few seconds after which the SDK heartbeats a long local activity's workflow
// task (each heartbeat grows the history, which would read as progress): the fetch goes on
// with FetchMod as an activity of its own, whose retries the history does not show.
func TestStuckModIsNotWaitedForLong(t *testing.T) {
	const wait = 12 * time.Second
	up := fakeproxy.New()
	g := startGofer(t, up.Start(t), options{fetchWait: wait, progressEvery: time.Second})
	up.Delay(time.Minute)
	start := time.Now()
	code, _, body := testserver.Get(t, "GET", g.URL+"/example.com/hello/@v/v1.0.0.mod")
	if took := time.Since(start); code != 503 || took > wait+wait/2 {
		t.Errorf("a .mod fetch that does not move: %d %q after %v, want 503 after about %v", code, body, took, wait)
	}
}

// A .mod from an upstream slower than one progress interval is fetched all the same, by
// FetchMod as an activity of its own once the local one gives up.
func TestSlowModIsFetchedByAnActivity(t *testing.T) {
	up := fakeproxy.New()
	g := startGofer(t, up.Start(t), options{fetchWait: 30 * time.Second, progressEvery: time.Second})
	up.Delay(1500 * time.Millisecond)
	if code, _, body := testserver.Get(t, "GET", g.URL+"/example.com/hello/@v/v1.0.0.mod"); code != 200 || !strings.HasPrefix(string(body), "module example.com/hello") {
		t.Fatalf("a slow .mod: %d %q", code, body)
	}
	id := workflows.FetchID("example.com/hello", "v1.0.0", activities.FilesMod)
	if err := g.temporal.GetWorkflow(context.Background(), id, "").Get(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if n := up.Requests("/example.com/hello/@v/v1.0.0.mod"); n != 2 {
		t.Errorf("the upstream saw %d .mod requests, want 2: the local activity's, cut short, and the activity's", n)
	}
	if *record {
		recordHistory(t, g, id, "../workflows/testdata/fetch_mod_slow_history.json")
	}
}
