package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// logFlush is how long a log line may wait in memory before it is written.
const logFlush = time.Second

// newLogger returns gofer's logger: format "json" (one JSON object a line, for production log
// pipelines) or "console" (for people), at level and above, on out; stop flushes it and
// stops its flushing. Lines are written in batches, at least every logFlush and whenever 256
// KiB are waiting, not one write a line: with the request log on, a write a request cost a
// cache hit a fifth of its rate (BENCHMARKS.md). A process that dies without stop loses at most
// the last logFlush of lines.
func newLogger(format, level string, out io.Writer) (log *zap.Logger, stop func() error, err error) {
	opts := []zap.Option{zap.AddCaller(), zap.ErrorOutput(zapcore.Lock(os.Stderr))}
	var enc zapcore.Encoder
	switch format {
	case "json":
		cfg := zap.NewProductionEncoderConfig()
		cfg.EncodeTime = zapcore.ISO8601TimeEncoder
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
