package main

import (
	"fmt"

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
