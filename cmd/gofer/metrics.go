package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// newMetrics returns gofer's meter and the handler that serves what it counts in Prometheus
// format, on a registry of gofer's own (no global state).
func newMetrics() (http.Handler, metric.Meter, error) {
	reg := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, nil, err
	}
	meter := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter)).Meter("github.com/goferproxy/gofer")
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), meter, nil
}
