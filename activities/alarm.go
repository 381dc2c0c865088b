package activities

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.uber.org/zap"
)

// AlarmMetric counts checksum alarms: content that differs from what the checksum database or
// the stored record says. Operators alert on any increase.
const AlarmMetric = "gofer.checksum.alarms"

// alarm logs a checksum alarm at error level and counts it under AlarmMetric, with the
// attribute "reason" (sumdb-mismatch, stored-mismatch, scrub-mismatch, ...).
func (a *Activities) alarm(ctx context.Context, reason, msg string, fields ...zap.Field) {
	a.log(ctx).Error("checksum alarm: "+msg, append(fields, zap.String("reason", reason))...)
	a.instruments().alarms.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", reason)))
}

// instruments are the activities' metrics.
type instruments struct {
	alarms    metric.Int64Counter
	downloads metric.Int64UpDownCounter // in flight in this worker
}

func (a *Activities) instruments() *instruments {
	a.instrumentsOnce.Do(func() {
		m := a.Meter
		if m == nil {
			m = noop.Meter{}
		}
		// Errors here only come from malformed names and leave a no-op instrument.
		a.in.alarms, _ = m.Int64Counter(AlarmMetric, metric.WithDescription("checksum alarms: content that differs from the checksum database or from the stored version"))
		a.in.downloads, _ = m.Int64UpDownCounter("gofer.fetch.downloads", metric.WithDescription("downloads from the upstream in flight in this worker"))
	})
	return &a.in
}
