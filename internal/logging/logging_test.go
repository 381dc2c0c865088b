package logging

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// countingWriter counts the writes it is given.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

// A request log line a request is written in batches, not one write a line, and stop writes
// what is still waiting: every line arrives, whole and in order.
func TestLogLinesAreBatched(t *testing.T) {
	var out countingWriter
	log, stop, err := New("json", "info", &out)
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	for i := range n {
		log.Info("request", zap.Int("i", i), zap.String("path", "/example.com/m/@v/v1.0.0.info"))
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != n {
		t.Fatalf("%d lines, want %d", len(lines), n)
	}
	for i, line := range lines {
		var v struct {
			Msg string
			I   int
		}
		if err := json.Unmarshal([]byte(line), &v); err != nil || v.Msg != "request" || v.I != i {
			t.Fatalf("line %d: %q (%v)", i, line, err)
		}
	}
	if out.writes > n/10 {
		t.Errorf("%d lines took %d writes: not batched", n, out.writes)
	}
}

// The time of a line is encoded as zapcore.ISO8601TimeEncoder encodes it, whether its
// millisecond's text was made for an earlier line or not, in any location.
func TestLineTimeIsISO8601(t *testing.T) {
	east := time.FixedZone("east", 5*3600+30*60)
	base := time.Date(2026, 12, 5, 23, 59, 59, 998_700_000, time.UTC)
	var times []time.Time
	for _, d := range []time.Duration{0, 200 * time.Microsecond, time.Millisecond, 1500 * time.Microsecond, time.Hour} {
		times = append(times, base.Add(d), base.Add(d).In(east), base.Add(d), base.Add(d).Local())
	}
	encode := func(enc zapcore.TimeEncoder, at time.Time) string {
		var buf bytes.Buffer
		log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zapcore.EncoderConfig{EncodeTime: enc}), zapcore.AddSync(&buf), zap.InfoLevel))
		log.Info("", zap.Time("at", at))
		return buf.String()
	}
	iso := new(isoTime)
	for _, at := range times {
		if got, want := encode(iso.encode, at), encode(zapcore.ISO8601TimeEncoder, at); got != want {
			t.Errorf("%v: %s, want %s", at, got, want)
		}
	}
}
