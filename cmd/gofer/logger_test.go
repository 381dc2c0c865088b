package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"go.uber.org/zap"
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
	log, stop, err := newLogger("json", "info", &out)
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
