package app

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/log"
	"go.uber.org/zap"
)

// TemporalLogger sends the Temporal SDK's log lines through l, so that gofer has one log.
func TemporalLogger(l *zap.Logger) log.Logger {
	return temporalLogger{l.Named("temporal").WithOptions(zap.AddCallerSkip(1)).Sugar()}
}

type temporalLogger struct{ s *zap.SugaredLogger }

func (t temporalLogger) Debug(msg string, kv ...any) { t.s.Debugw(msg, kv...) }
func (t temporalLogger) Info(msg string, kv ...any)  { t.s.Infow(msg, kv...) }
func (t temporalLogger) Warn(msg string, kv ...any)  { t.s.Warnw(msg, kv...) }
func (t temporalLogger) Error(msg string, kv ...any) { t.s.Errorw(msg, kv...) }

// temporalMetrics sends the Temporal SDK's metrics, and those workflows record (fetch outcomes
// and durations), to meter.
func temporalMetrics(meter metric.Meter, log *zap.Logger) client.MetricsHandler {
	return temporalotel.NewMetricsHandler(temporalotel.MetricsHandlerOptions{Meter: meter,
		OnError: func(err error) { log.Warn("a Temporal metric could not be recorded", zap.Error(err)) }})
}

// tracingInterceptor traces workflow starts, workflows and activities with tp (nil: the global
// provider), so that a fetch continues the trace of the request that started it; the workers
// built on the client use it too. Trace context crosses Temporal in the header the contrib
// package defaults to (W3C trace context and baggage), whatever the global propagator is.
func tracingInterceptor(tp trace.TracerProvider) (interceptor.ClientInterceptor, error) {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return temporalotel.NewTracingInterceptor(temporalotel.TracerOptions{Tracer: tp.Tracer("gofer")})
}
