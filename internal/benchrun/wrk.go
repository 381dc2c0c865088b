package main

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// wrkResult is what one wrk run measured.
type wrkResult struct {
	reqPerSec   float64
	bytesPerSec float64 // wrk's Transfer/sec: bodies and headers
	p50, p99    float64 // latency percentiles, ms
	non2xx      int     // responses other than 2xx and 3xx
	sockErrors  int     // connect, read, write and timeout errors together
}

// runWrk loads url with 2 threads and 32 connections for d (whole seconds, at least one).
func runWrk(ctx context.Context, url string, d time.Duration) (wrkResult, error) {
	secs := max(1, int(d.Seconds()))
	out, err := exec.CommandContext(ctx, "wrk", "-t2", "-c32", fmt.Sprintf("-d%ds", secs), "--latency", url).CombinedOutput()
	if ctx.Err() != nil {
		return wrkResult{}, ctx.Err()
	}
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %v\n%s", url, err, out)
	}
	r, err := parseWrk(string(out))
	if err != nil {
		return r, fmt.Errorf("wrk %s: %v\n%s", url, err, out)
	}
	return r, nil
}

// parseWrk reads the summary wrk prints with --latency.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	var seen struct{ req, transfer, p50, p99 bool }
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		var err error
		switch {
		case f[0] == "Requests/sec:":
			r.reqPerSec, err = strconv.ParseFloat(f[1], 64)
			seen.req = true
		case f[0] == "Transfer/sec:":
			r.bytesPerSec, err = parseBytes(f[1])
			seen.transfer = true
		case f[0] == "50%":
			r.p50, err = parseMillis(f[1])
			seen.p50 = true
		case f[0] == "99%":
			r.p99, err = parseMillis(f[1])
			seen.p99 = true
		case strings.HasPrefix(line, "  Non-2xx or 3xx responses:"):
			r.non2xx, err = strconv.Atoi(f[len(f)-1])
		case f[0] == "Socket" && f[1] == "errors:":
			// Socket errors: connect 0, read 0, write 0, timeout 0
			for i := 3; i < len(f); i += 2 {
				n, e := strconv.Atoi(strings.TrimSuffix(f[i], ","))
				if e != nil {
					err = e
				}
				r.sockErrors += n
			}
		}
		if err != nil {
			return r, fmt.Errorf("line %q: %v", strings.TrimSpace(line), err)
		}
	}
	if !seen.req || !seen.transfer || !seen.p50 || !seen.p99 {
		return r, fmt.Errorf("no Requests/sec, Transfer/sec, 50%% or 99%% line (was --latency given?)")
	}
	return r, nil
}

// parseMillis converts a wrk duration ("381.00us", "1.10ms", "2.00s", "1.50m") to milliseconds.
func parseMillis(s string) (float64, error) {
	for _, u := range []struct {
		suffix string
		ms     float64
	}{{"us", 1e-3}, {"ms", 1}, {"s", 1e3}, {"m", 60e3}, {"h", 3600e3}} {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			return v * u.ms, err
		}
	}
	return 0, fmt.Errorf("%q: unknown time unit", s)
}

// parseBytes converts a wrk size ("483.26KB", "0.90GB", "12.00B"; binary multiples) to bytes.
func parseBytes(s string) (float64, error) {
	num, ok := strings.CutSuffix(s, "B")
	if !ok || num == "" {
		return 0, fmt.Errorf("%q: not a size in bytes", s)
	}
	mult := 1.0
	if i := strings.IndexByte("KMGTP", num[len(num)-1]); i >= 0 {
		num = num[:len(num)-1]
		for range i + 1 {
			mult *= 1024
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	return v * mult, err
}
