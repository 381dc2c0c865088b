package e2e

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goferproxy/gofer/internal/fakeproxy"
	"github.com/goferproxy/gofer/server"
)

// upstreamLatency is the fake upstream's fixed delay on every request in the miss benchmarks.
const upstreamLatency = 20 * time.Millisecond

// fetchFiles GETs the files exts (by default the .info, .mod and .zip, in the go command's
// order) of path@version from base, one after the other, and returns the time from the first
// request to the last byte.
func fetchFiles(tb testing.TB, c *http.Client, base, path, version string, exts ...string) time.Duration {
	if len(exts) == 0 {
		exts = []string{"info", "mod", "zip"}
	}
	start := time.Now()
	for _, ext := range exts {
		resp, err := c.Get(base + "/" + path + "/@v/" + version + "." + ext)
		if err != nil {
			tb.Fatal(err)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			tb.Fatalf("%s@%s.%s: %d %v", path, version, ext, resp.StatusCode, err)
		}
	}
	return time.Since(start)
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(p*float64(len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkMissPath measures the miss path against a fake upstream that takes 20 ms to answer
// each request (run it once: -benchtime 1x):
//   - miss: each of 20 versions fetched through gofer (.info, .mod, .zip, first request to last
//     byte) against the same files fetched straight from the upstream; reports the overhead at
//     p50 and p90 (target: p50 ≤ 50 ms);
//   - warm: 500 versions warmed with concurrency 16 against 16 parallel direct fetches of the
//     same files (target: ≤ 1.5×);
//   - herd: 1,000 concurrent requests for one missing version against one fetch of another
//     (target: one upstream download; p99 within 100 ms of the single fetch); then the same
//     herd again once the version is stored, whose p99 is what the hits alone cost.
func BenchmarkMissPath(b *testing.B) {
	up := fakeproxy.New()
	base := up.Start(b)
	g := startGofer(b, base, options{admin: adminToken, fetchWait: 2 * time.Minute})
	names := addModules(up, "miss", 20, 1)
	warmNames := addModules(up, "warm500", 50, 10)
	herd := addModules(up, "herd", 2, 1)
	up.Delay(upstreamLatency)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1100, MaxConnsPerHost: 1100}}

	for b.Loop() {
		var overhead []time.Duration
		for _, pv := range names {
			path, v, _ := strings.Cut(pv, "@")
			direct := fetchFiles(b, c, base, path, v)
			through := fetchFiles(b, c, g.URL, path, v)
			overhead = append(overhead, through-direct)
		}
		b.ReportMetric(ms(percentile(overhead, 0.5)), "miss-overhead-p50-ms")
		b.ReportMetric(ms(percentile(overhead, 0.9)), "miss-overhead-p90-ms")

		start := time.Now()
		parallel(16, warmNames, func(pv string) {
			path, v, _ := strings.Cut(pv, "@")
			fetchFiles(b, c, base, path, v)
		})
		direct := time.Since(start)
		var started server.WarmStarted
		start = time.Now()
		if code := adminCall(b, http.MethodPost, g.URL+"/admin/warm", adminToken, strings.Join(warmNames, "\n"), &started); code != http.StatusAccepted {
			b.Fatalf("POST /admin/warm: %d", code)
		}
		st := awaitWarm(b, g, started.ID)
		warm := time.Since(start)
		if st.Progress.Fetched != len(warmNames) {
			b.Fatalf("warm: %+v", st.Progress)
		}
		b.ReportMetric(direct.Seconds(), "warm-direct-s")
		b.ReportMetric(warm.Seconds(), "warm-gofer-s")
		b.ReportMetric(warm.Seconds()/direct.Seconds(), "warm-ratio")

		single := fetchFiles(b, c, g.URL, strings.Split(herd[0], "@")[0], "v1.0.0")
		path := strings.Split(herd[1], "@")[0]
		herdP99 := func() time.Duration {
			c.CloseIdleConnections() // each client connects anew, as a fresh build would
			var mu sync.Mutex
			var times []time.Duration
			parallel(1000, slices.Repeat([]string{path}, 1000), func(path string) {
				d := fetchFiles(b, c, g.URL, path, "v1.0.0")
				mu.Lock()
				times = append(times, d)
				mu.Unlock()
			})
			return percentile(times, 0.99)
		}
		missing := herdP99()
		if n := up.Requests("/" + path + "/@v/v1.0.0.zip"); n != 1 {
			b.Errorf("1,000 concurrent requests: %d upstream zip downloads, want 1", n)
		}
		stored := herdP99() // the same herd once the version is stored and hot: hits only
		b.ReportMetric(ms(single), "herd-single-ms")
		b.ReportMetric(ms(missing), "herd-p99-ms")
		b.ReportMetric(ms(stored), "herd-hit-p99-ms")
	}
}

// parallel calls f on every item, n at a time, and waits.
func parallel(n int, items []string, f func(string)) {
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for _, it := range items {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f(it)
		})
	}
	wg.Wait()
}
