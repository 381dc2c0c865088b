package main

import (
	"fmt"

	"go.temporal.io/sdk/log"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newLogger returns gofer's logger: format "json" (one JSON object a line, for production log
// pipelines) or "console" (for people), at level and above.
func newLogger(format, level string) (*zap.Logger, error) {
	var cfg zap.Config
	switch format {
	case "json":
		cfg = zap.NewProductionConfig()
		cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	case "console":
		cfg = zap.NewDevelopmentConfig()
	default:
		return nil, fmt.Errorf("GOFER_LOG_FORMAT=%q: want json or console", format)
	}
	lvl, err := zap.ParseAtomicLevel(level)
	if err != nil {
		return nil, fmt.Errorf("GOFER_LOG_LEVEL=%q: %v", level, err)
	}
	cfg.Level = lvl
	cfg.Sampling = nil // every line counts: alarms, fetch failures
	cfg.DisableStacktrace = true
	return cfg.Build()
}

// temporalLogger sends the Temporal SDK's log lines through zap, so that gofer has one log.
type temporalLogger struct{ s *zap.SugaredLogger }

var _ log.Logger = temporalLogger{}

func newTemporalLogger(l *zap.Logger) temporalLogger {
	return temporalLogger{l.Named("temporal").WithOptions(zap.AddCallerSkip(1)).Sugar()}
}

func (t temporalLogger) Debug(msg string, kv ...any) { t.s.Debugw(msg, kv...) }
func (t temporalLogger) Info(msg string, kv ...any)  { t.s.Infow(msg, kv...) }
func (t temporalLogger) Warn(msg string, kv ...any)  { t.s.Warnw(msg, kv...) }
func (t temporalLogger) Error(msg string, kv ...any) { t.s.Errorw(msg, kv...) }
