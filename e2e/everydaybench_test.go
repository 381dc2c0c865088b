package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/internal/fakeproxy"
	"github.com/goferproxy/gofer/vcs"
)

// BenchmarkEveryday measures the everyday commands of findPackages and queries against a fake
// upstream that takes 20 ms to answer each request (run it once: -benchtime 1x), with the
// upstream list "<proxy>,direct". Each command runs straight against the upstream, through a
// cold gofer (nothing stored) and through the same gofer hot (everything stored, a fresh module
// cache), one after another. It reports, per command, the direct time and the two ratios
// (targets: cold ≤ 1.5 × direct + 0.5 s, hot ≤ 1 ×), and the answer time of a probe for a path
// that is no module against the upstream list's own answer (the proxy's 404, then the direct
// entry's not found).
func BenchmarkEveryday(b *testing.B) {
	fetcher := &vcs.Fetcher{TempDir: b.TempDir()}
	b.Cleanup(func() { fetcher.Close() })
	for b.Loop() {
		for _, sc := range []struct {
			name    string
			modules func(*fakeproxy.Proxy)
			script  func(*session)
		}{
			{"find", everydayModules, findPackages},
			{"query", queryModules, queries},
		} {
			up := fakeproxy.New()
			sc.modules(up)
			upURL := up.Start(b)
			up.Delay(upstreamLatency)
			g := startGofer(b, upURL+",direct", options{direct: fetcher})
			times := func(goproxy string) map[string]time.Duration {
				s := newSession(b, goproxy)
				s.times = map[string]time.Duration{}
				sc.script(s)
				return s.times
			}
			direct, cold, hot := times(upURL), times(g.URL), times(g.URL)
			names := make([]string, 0, len(direct))
			for name := range direct {
				if strings.HasPrefix(name, "init ") {
					continue // go mod init asks nothing of a proxy
				}
				names = append(names, name)
			}
			slices.Sort(names)
			for _, name := range names {
				d := direct[name]
				metric := func(what string) string {
					return fmt.Sprintf("%s:%s-%s", sc.name, strings.ReplaceAll(name, " ", "_"), what)
				}
				b.ReportMetric(ms(d), metric("direct-ms"))
				b.ReportMetric(cold[name].Seconds()/d.Seconds(), metric("cold-x"))
				b.ReportMetric(hot[name].Seconds()/d.Seconds(), metric("hot-x"))
				if limit := d*3/2 + 500*time.Millisecond; cold[name] > limit {
					b.Errorf("%s %s: cold %v, more than 1.5 × direct %v + 0.5 s", sc.name, name, cold[name], d)
				}
			}
			if sc.name != "find" {
				continue
			}
			// A probe of a path prefix that is no module, at a version not asked for before.
			probe := func(base string) time.Duration {
				start := time.Now()
				resp, err := http.Get(base + "/tools.gofer.test/x/cmd/@v/v0.9.9.info")
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusGone {
					b.Fatalf("probe of a path that is no module: %d", resp.StatusCode)
				}
				return time.Since(start)
			}
			b.ReportMetric(ms(probe(upURL)), "probe-proxy-ms")
			// The whole upstream list's own answer: the proxy's 404, then the direct entry's.
			start := time.Now()
			if _, _, err := g.upstream.Info(context.Background(), "tools.gofer.test/x/cmd", "v0.9.8"); !errors.Is(err, gofer.ErrNotFound) {
				b.Fatalf("the upstream list's answer to a probe: %v", err)
			}
			b.ReportMetric(ms(time.Since(start)), "probe-list-ms")
			b.ReportMetric(ms(probe(g.URL)), "probe-gofer-ms")
		}
	}
}
