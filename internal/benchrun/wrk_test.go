package main

import (
	"math"
	"testing"
)

// Outputs captured from wrk 4.1.0 (Debian's) with --latency.
const (
	wrkZip = `Running 2s test @ http://127.0.0.1:18097/big.zip
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   104.96ms  107.65ms 671.69ms   90.20%
    Req/Sec    62.12     28.42   121.00     72.50%
  Latency Distribution
     50%   76.37ms
     75%  138.10ms
     90%  205.59ms
     99%  582.85ms
  253 requests in 2.05s, 2.18GB read
Requests/sec:    123.47
Transfer/sec:      1.06GB
`
	wrk404 = `Running 1s test @ http://127.0.0.1:18099/missing
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.88ms    3.25ms  22.82ms   82.30%
    Req/Sec     0.96k   190.56     1.17k    60.00%
  Latency Distribution
     50%    4.30ms
     75%    6.12ms
     90%    8.40ms
     99%   19.46ms
  955 requests in 1.00s, 484.96KB read
  Non-2xx or 3xx responses: 955
Requests/sec:    951.65
Transfer/sec:    483.26KB
`
)

func TestParseWrk(t *testing.T) {
	for i, c := range []struct {
		out  string
		want wrkResult
	}{
		0: {wrkZip, wrkResult{reqPerSec: 123.47, bytesPerSec: 1.06 * (1 << 30), p50: 76.37, p99: 582.85}},
		1: {wrk404, wrkResult{reqPerSec: 951.65, bytesPerSec: 483.26 * (1 << 10), p50: 4.30, p99: 19.46, non2xx: 955}},
	} {
		got, err := parseWrk(c.out)
		if err != nil {
			t.Errorf("%d: %v", i, err)
			continue
		}
		if !near(got.reqPerSec, c.want.reqPerSec) || !near(got.bytesPerSec, c.want.bytesPerSec) ||
			!near(got.p50, c.want.p50) || !near(got.p99, c.want.p99) ||
			got.non2xx != c.want.non2xx || got.sockErrors != c.want.sockErrors {
			t.Errorf("%d: got %+v, want %+v", i, got, c.want)
		}
	}
}

// A run without --latency has no percentiles: an error, not zeros in the table.
func TestParseWrkNeedsLatency(t *testing.T) {
	out := `Running 1s test @ http://127.0.0.1:8080/
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   635.91us    0.89ms  12.92ms   93.69%
    Req/Sec    28.63k     2.16k   34.66k    72.00%
  56961 requests in 1.00s, 4.51GB read
Requests/sec:  56961.31
Transfer/sec:      4.51GB
`
	if r, err := parseWrk(out); err == nil {
		t.Errorf("parsed %+v, want an error", r)
	}
}

func TestParseUnits(t *testing.T) {
	for s, want := range map[string]float64{"381.00us": 0.381, "1.10ms": 1.1, "2.00s": 2000, "1.50m": 90000} {
		if got, err := parseMillis(s); err != nil || !near(got, want) {
			t.Errorf("parseMillis(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for s, want := range map[string]float64{"12.00B": 12, "1.50KB": 1536, "28.53MB": 28.53 * (1 << 20), "0.90GB": 0.9 * (1 << 30)} {
		if got, err := parseBytes(s); err != nil || !near(got, want) {
			t.Errorf("parseBytes(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"B", "12", "3.0XB"} {
		if got, err := parseBytes(s); err == nil {
			t.Errorf("parseBytes(%q) = %v, want an error", s, got)
		}
	}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }
