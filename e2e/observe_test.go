package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goferproxy/gofer/internal/fakeproxy"
	"github.com/goferproxy/gofer/internal/testserver"
)

// `gofer serve` with a trace exporter pointed at a closed port serves hits and misses as usual,
// logs one clear line about the exporter, and counts on /metrics exactly the hits, misses and
// fetch outcomes of the requests it got; every request has a JSON log line with its cache result.
func TestGoferServeObservability(t *testing.T) {
	up := fakeproxy.New()
	addr := freeAddr(t)
	closed := freeAddr(t) // nothing listens there
	p := startProcess(t, buildGofer(t), addr, []string{
		"GOFER_DATA_DIR=" + t.TempDir(), "GOFER_UPSTREAM=" + up.Start(t),
		"GOFER_TEMPORAL_ADDRESS=" + temporalAddress, "GOFER_TEMPORAL_NAMESPACE=" + namespace(t),
		"GOFER_SUMDB=off", "GOFER_LOG_FORMAT=json",
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + closed, "OTEL_BSP_SCHEDULE_DELAY=100", "OTEL_EXPORTER_OTLP_TIMEOUT=500"}, "serve")
	url := "http://" + addr

	// A miss (.info), a hit (.mod) and a miss (.zip: the .info and .mod were fetched alone), by
	// the go command; then a version that does not exist: a miss whose fetch ends not found.
	if _, err := download(t, url, "example.com/dep@v0.1.0"); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := testserver.Get(t, http.MethodGet, url+"/example.com/dep/@v/v0.9.9.info"); code != http.StatusNotFound {
		t.Fatalf("missing version: %d", code)
	}
	time.Sleep(2 * time.Second) // several export attempts fail meanwhile

	_, _, body := testserver.Get(t, http.MethodGet, url+"/metrics")
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"gofer_cache_requests_total", []string{`kind="info"`, `result="miss"`}, 2},
		{"gofer_cache_requests_total", []string{`kind="info"`, `result="hit"`}, 0},
		{"gofer_cache_requests_total", []string{`kind="mod"`, `result="hit"`}, 1},
		{"gofer_cache_requests_total", []string{`kind="zip"`, `result="miss"`}, 1},
		{"gofer_fetches_total", []string{`outcome="stored"`}, 2},
		{"gofer_fetches_total", []string{`outcome="not-found"`}, 1},
		{"gofer_http_requests_total", []string{`endpoint="zip"`, `status="200"`}, 1},
		{"gofer_http_requests_total", []string{`endpoint="info"`, `status="404"`}, 1},
	} {
		if got := metricValue(body, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for _, name := range []string{"gofer_http_response_bytes_total", "gofer_http_request_duration_seconds_count", "gofer_upstream_errors_total"} {
		if metricValue(body, name) == 0 {
			t.Errorf("no %s on /metrics", name)
		}
	}
	if !regexp.MustCompile(`(?m)^temporal_\w+`).Match(body) {
		t.Errorf("no Temporal SDK metrics on /metrics")
	}

	if err := p.stop(t); err != nil {
		t.Errorf("gofer serve exited with %v after SIGINT", err)
	}
	exporterLines, zipLines := 0, 0
	sc := bufio.NewScanner(bytes.NewReader(p.out.Bytes()))
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			t.Errorf("not a JSON log line: %s", sc.Text())
			continue
		}
		if strings.Contains(fmt.Sprint(line["msg"]), closed) || strings.Contains(fmt.Sprint(line["error"]), closed) {
			exporterLines++
		}
		if line["msg"] == "request" && line["path"] == "/example.com/dep/@v/v0.1.0.zip" {
			zipLines++
			if line["cache"] != "miss" || line["module"] != "example.com/dep" || line["request_id"] == "" || line["workflow_id"] != "fetch:example.com/dep@v0.1.0.zip" {
				t.Errorf("request log line %v", line)
			}
		}
	}
	if exporterLines != 1 || zipLines != 1 {
		t.Errorf("%d log lines about the exporter at %s and %d about the zip request, want 1 and 1:\n%s", exporterLines, closed, zipLines, p.out)
	}
}

// metricValue sums the samples of metric name whose labels include every one of labels, in a
// Prometheus text exposition.
func metricValue(exposition []byte, name string, labels ...string) float64 {
	var sum float64
	for _, line := range strings.Split(string(exposition), "\n") {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if i := strings.LastIndexByte(line, ' '); ok && i > 0 {
			v, _ := strconv.ParseFloat(line[i+1:], 64)
			sum += v
		}
	}
	return sum
}
