package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/goferproxy/gofer/internal/fakeproxy"
	"github.com/goferproxy/gofer/internal/testserver"
	"github.com/goferproxy/gofer/storage"
)

// Chaos: while 50 clients fetch 30 versions through a front end, the upstream fails for 20
// seconds, the worker is killed and restarted, and the Temporal server is restarted. Every client
// gets the right bytes or a clean retryable error (503), and every version ends up stored
// exactly once.
func TestChaos(t *testing.T) {
	const versions, clients, perClient = 30, 50, 6
	dev, err := testserver.Temporal()
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	up := fakeproxy.New()
	zipPath := func(v int) string { return fmt.Sprintf("/example.com/chaos/@v/v1.0.%d.zip", v) }
	for v := range versions {
		up.Add("example.com/chaos", fmt.Sprintf("v1.0.%d", v), map[string]string{
			"go.mod": "module example.com/chaos\n", "c.go": fmt.Sprintf("package chaos\n\nconst V = %d\n", v)})
		up.Fail(zipPath(v), -1, http.StatusServiceUnavailable) // the upstream is down
	}
	upURL := up.Start(t)
	blobs, bucket := s3Store(t)
	meta, db := mongoStore(t)
	defer meta.Close()
	env := append(sharedStores(t, bucket, db), "GOFER_UPSTREAM="+upURL, "GOFER_FETCH_WAIT=90s",
		"GOFER_TEMPORAL_ADDRESS="+dev.Address)
	bin := buildGofer(t)
	addr := freeAddr(t)
	startProcess(t, bin, addr, env, "serve", "--worker=false")
	worker := startProcess(t, bin, "", env, "worker")

	type result struct {
		v      int
		status int
		body   []byte
	}
	results := make(chan result, clients*perClient)
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 3 * time.Minute}
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perClient {
				v := (c*perClient + i) % versions
				resp, err := client.Get("http://" + addr + zipPath(v))
				if err != nil {
					t.Errorf("client %d: %v", c, err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				results <- result{v, resp.StatusCode, b}
			}
		}()
	}

	time.Sleep(3 * time.Second)
	worker.cmd.Process.Kill() // a worker dies mid-fetch...
	<-worker.done
	worker.done <- nil
	time.Sleep(2 * time.Second)
	startProcess(t, bin, "", env, "worker") // ...and another takes over
	time.Sleep(3 * time.Second)
	dev.Stop() // Temporal restarts
	time.Sleep(2 * time.Second)
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Second) // 20 seconds of upstream outage in all
	for v := range versions {
		up.Heal(zipPath(v))
	}
	wg.Wait()
	close(results)

	want := make([][]byte, versions)
	for v := range versions {
		_, _, want[v] = testserver.Get(t, "GET", upURL+zipPath(v))
	}
	ok, retryable := 0, 0
	for r := range results {
		switch {
		case r.status == 200 && bytes.Equal(r.body, want[r.v]):
			ok++
		case r.status == http.StatusServiceUnavailable:
			retryable++
		default:
			t.Errorf("v1.0.%d: status %d with %d bytes: neither the right bytes nor a clean retryable error", r.v, r.status, len(r.body))
		}
	}
	t.Logf("%d responses with the right bytes, %d retryable errors", ok, retryable)

	// Every version is (or, retried, becomes) available, stored exactly once.
	for v := range versions {
		if code, _, b := testserver.Get(t, "GET", "http://"+addr+zipPath(v)); code != 200 || !bytes.Equal(b, want[v]) {
			t.Errorf("v1.0.%d after the chaos: %d", v, code)
		}
	}
	vs, err := meta.Versions(context.Background(), "example.com/chaos")
	if err != nil || len(vs) != versions {
		t.Errorf("%d versions recorded (%v), want %d", len(vs), err, versions)
	}
	final := 0
	blobs.Walk(context.Background(), "example.com/chaos/", "", func(key string, _ int64) error {
		if _, _, _, ok := storage.ParseKey(key); ok {
			final++
		}
		return nil
	})
	if final != 3*versions {
		t.Errorf("%d final blobs, want %d", final, 3*versions)
	}
}
