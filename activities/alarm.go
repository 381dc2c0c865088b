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
	a.log().Error("checksum alarm: "+msg, append(fields, zap.String("reason", reason))...)
	a.alarms().Add(ctx, 1, metric.WithAttributes(attribute.String("reason", reason)))
}

func (a *Activities) alarms() metric.Int64Counter {
	a.instrumentsOnce.Do(func() {
		m := a.Meter
		if m == nil {
			m = noop.Meter{}
		}
		c, err := m.Int64Counter(AlarmMetric, metric.WithDescription("checksum alarms: content that differs from the checksum database or from the stored version"))
		if err != nil {
			c = noop.Int64Counter{}
		}
		a.alarmCounter = c
	})
	return a.alarmCounter
}
