// Package logging makes gofer's logger.
package logging

import (
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// logFlush is how long a log line may wait in memory before it is written.
const logFlush = time.Second

// New returns gofer's logger: format "json" (one JSON object a line, for production log
// pipelines) or "console" (for people), at level and above, on out; stop flushes it and
// stops its flushing. Lines are written in batches, at least every logFlush and whenever 256
// KiB are waiting, not one write a line: with the request log on, a write a request cost a
// cache hit a fifth of its rate (BENCHMARKS.md). A process that dies without stop loses at most
// the last logFlush of lines.
func New(format, level string, out io.Writer) (log *zap.Logger, stop func() error, err error) {
	opts := []zap.Option{zap.AddCaller(), zap.ErrorOutput(zapcore.Lock(os.Stderr))}
	var enc zapcore.Encoder
	switch format {
	case "json":
		cfg := zap.NewProductionEncoderConfig()
		cfg.EncodeTime = new(isoTime).encode
		enc = zapcore.NewJSONEncoder(cfg)
	case "console":
		enc = zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
		opts = append(opts, zap.Development())
	default:
		return nil, nil, fmt.Errorf("GOFER_LOG_FORMAT=%q: want json or console", format)
	}
	lvl, err := zap.ParseAtomicLevel(level)
	if err != nil {
		return nil, nil, fmt.Errorf("GOFER_LOG_LEVEL=%q: %v", level, err)
	}
	// Every line counts (alarms, fetch failures): no sampling; and no stack traces.
	ws := &zapcore.BufferedWriteSyncer{WS: zapcore.AddSync(out), FlushInterval: logFlush}
	return zap.New(zapcore.NewCore(enc, ws, lvl), opts...), ws.Stop, nil
}

// isoTime encodes a line's time as zapcore.ISO8601TimeEncoder does, formatting the text of each
// millisecond once: formatting it for every line cost a request log line a seventh of its time
// (BENCHMARKS.md), and lines come many to a millisecond under load.
type isoTime struct{ last atomic.Pointer[isoStamp] }

// isoStamp is one millisecond's text in one location.
type isoStamp struct {
	ms   int64
	loc  *time.Location
	text string
}

const iso8601 = "2006-01-02T15:04:05.000Z0700" // zapcore.ISO8601TimeEncoder's layout

func (c *isoTime) encode(t time.Time, enc zapcore.PrimitiveArrayEncoder) {
	ms := t.UnixMilli()
	s := c.last.Load()
	if s == nil || s.ms != ms || s.loc != t.Location() {
		s = &isoStamp{ms, t.Location(), t.Format(iso8601)}
		c.last.Store(s)
	}
	enc.AppendString(s.text)
}
