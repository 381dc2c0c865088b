package main

import (
	"go.temporal.io/sdk/log"
	"go.uber.org/zap"
)

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
