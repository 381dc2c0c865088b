package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap"
)

// exportWarningEvery is how often, at most, a failing trace export is logged again.
const exportWarningEvery = 10 * time.Minute

// setupTracing configures tracing from the standard OTEL_* environment variables, which the
// OTLP exporter and the SDK read themselves: OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, _HEADERS,
// _PROTOCOL (http/protobuf, the default, http/json or grpc), _TIMEOUT, OTEL_SERVICE_NAME,
// OTEL_RESOURCE_ATTRIBUTES, OTEL_BSP_*, and OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG
// (sdktrace.NewTracerProvider applies those two itself; the default is parentbased_always_on).
//
// Without an endpoint, with OTEL_TRACES_EXPORTER=none or with OTEL_SDK_DISABLED=true, tracing
// is off: the provider is a no-op and nothing global changes. Otherwise the provider becomes
// the global one (which otelhttp, otelaws and the MongoDB monitor use) and W3C trace context
// the global propagator. A value that cannot work (an unknown protocol, exporter or sampler, an
// endpoint that is not a URL) is an error, so that a typo fails the start instead of silently
// tracing nothing or everything. A collector that is down or wrong is not an error: gofer
// serves on, and logs that exports fail once, then at most every ten minutes.
//
// The returned function flushes what is buffered and stops the exporter; bound it with ctx.
func setupTracing(ctx context.Context, log *zap.Logger) (trace.TracerProvider, func(context.Context) error, error) {
	off := func(context.Context) error { return nil }
	endpoint, traces := otelEnv("OTEL_EXPORTER_OTLP_ENDPOINT"), otelEnv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	exporter := strings.ToLower(otelEnv("OTEL_TRACES_EXPORTER"))
	if (endpoint == "" && traces == "") || exporter == "none" || strings.EqualFold(otelEnv("OTEL_SDK_DISABLED"), "true") {
		log.Info("tracing off")
		return noop.NewTracerProvider(), off, nil
	}
	if exporter != "" && exporter != "otlp" {
		return nil, nil, fmt.Errorf("OTEL_TRACES_EXPORTER=%s: gofer exports traces over OTLP (otlp) or not at all (none)", exporter)
	}
	protocolVar := "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	protocol := otelEnv(protocolVar)
	if protocol == "" {
		protocolVar = "OTEL_EXPORTER_OTLP_PROTOCOL"
		protocol = cmp.Or(otelEnv(protocolVar), "http/protobuf")
	}
	if protocol != "http/protobuf" && protocol != "http/json" && protocol != "grpc" {
		return nil, nil, fmt.Errorf("%s=%s: gofer exports traces over http/protobuf, http/json or grpc", protocolVar, protocol)
	}
	where, err := exportURL(protocol, endpoint, traces)
	if err != nil {
		return nil, nil, err
	}
	sampler, err := samplerFromEnv()
	if err != nil {
		return nil, nil, err
	}
	var exp sdktrace.SpanExporter
	if protocol == "grpc" {
		exp, err = otlptracegrpc.New(ctx)
	} else {
		exp, err = otlptracehttp.New(ctx) // it reads the protocol itself: protobuf or JSON
	}
	if err != nil {
		return nil, nil, fmt.Errorf("tracing: OTLP exporter to %s: %w", where, err)
	}
	// Later options win: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override "gofer".
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName("gofer")),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithFromEnv())
	if err != nil {
		exp.Shutdown(ctx)
		return nil, nil, fmt.Errorf("tracing: resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES): %w", err)
	}
	warn := newExportWarnings(log, where)
	otel.SetErrorHandler(warn)
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(watchedExporter{exp, warn}),
		sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	// The endpoint is a field, not in the message: the one line that names it in its message is
	// the warning that exports to it fail.
	log.Info("tracing on", zap.String("endpoint", where), zap.String("protocol", protocol), zap.String("sampler", sampler))
	return tp, tp.Shutdown, nil
}

// exportURL is where spans go, for messages: the exporter's own rule (the traces endpoint as
// it is, else the general one plus /v1/traces over HTTP), without a password or query.
func exportURL(protocol, endpoint, traces string) (string, error) {
	name, raw := "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", traces
	if raw == "" {
		name, raw = "OTEL_EXPORTER_OTLP_ENDPOINT", endpoint
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%s is not an http:// or https:// URL with a host", name)
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	if traces == "" && protocol != "grpc" {
		u = u.JoinPath("v1/traces")
	}
	return u.String(), nil
}

// samplerFromEnv checks OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG against what the SDK
// accepts (it falls back to sampling everything on a value it does not know) and describes the
// sampler for the log.
func samplerFromEnv() (string, error) {
	name, arg := strings.ToLower(otelEnv("OTEL_TRACES_SAMPLER")), otelEnv("OTEL_TRACES_SAMPLER_ARG")
	switch name {
	case "":
		return "parentbased_always_on", nil
	case "always_on", "always_off", "parentbased_always_on", "parentbased_always_off":
		return name, nil
	case "traceidratio", "parentbased_traceidratio":
		if arg == "" {
			return name + " 1", nil
		}
		if r, err := strconv.ParseFloat(arg, 64); err != nil || r < 0 || r > 1 {
			return "", fmt.Errorf("OTEL_TRACES_SAMPLER_ARG=%s: want a ratio from 0 to 1 for %s", arg, name)
		}
		return name + " " + arg, nil
	}
	return "", fmt.Errorf("OTEL_TRACES_SAMPLER=%s: want always_on, always_off, traceidratio or their parentbased_ forms", name)
}

// otelEnv reads a variable as the OpenTelemetry SDK does: trimmed, and empty meaning unset.
func otelEnv(name string) string { return strings.TrimSpace(os.Getenv(name)) }

// watchedExporter reports the outcome of every export, whichever path it took (a full batch,
// the timer, a flush, the last one at shutdown).
type watchedExporter struct {
	sdktrace.SpanExporter
	warn *exportWarnings
}

func (e watchedExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	e.warn.exported(err)
	if err != nil {
		return reportedError{err}
	}
	return nil
}

// reportedError is an export failure already logged; the error handler drops it when the batch
// processor hands it over again.
type reportedError struct{ err error }

func (e reportedError) Error() string { return e.err.Error() }
func (e reportedError) Unwrap() error { return e.err }

// exportWarnings logs failing exports, and any other error OpenTelemetry reports (it is the
// global error handler), so that a collector that is down for a day costs a few lines: the
// first failure at once, then at most one line per exportWarningEvery, and one line when
// exports work again after a failure was logged.
type exportWarnings struct {
	log      *zap.Logger
	endpoint string
	every    time.Duration
	now      func() time.Time

	mu     sync.Mutex
	warned bool // a failure was logged, and no export succeeded since
	export rateLimit
	other  rateLimit
}

type rateLimit struct {
	last   time.Time // of the last line; zero before the first
	missed int       // errors not logged since then
}

// allow says whether to log now, and how many errors went unlogged before this one.
func (r *rateLimit) allow(now time.Time, every time.Duration) (bool, int) {
	if !r.last.IsZero() && now.Sub(r.last) < every {
		r.missed++
		return false, 0
	}
	missed := r.missed
	r.last, r.missed = now, 0
	return true, missed
}

func newExportWarnings(log *zap.Logger, endpoint string) *exportWarnings {
	return &exportWarnings{log: log, endpoint: endpoint, every: exportWarningEvery, now: time.Now}
}

func (w *exportWarnings) exported(err error) {
	w.mu.Lock()
	if err == nil {
		recovered := w.warned
		w.warned = false
		w.mu.Unlock()
		if recovered {
			w.log.Info("trace export to " + w.endpoint + " works again")
		}
		return
	}
	ok, missed := w.export.allow(w.now(), w.every)
	w.warned = w.warned || ok
	w.mu.Unlock()
	if ok {
		// The exporter's errors start with "traces export: ", which the line says already.
		msg := strings.TrimPrefix(err.Error(), "traces export: ")
		w.log.Warn(fmt.Sprintf("trace export to %s failing: %s; gofer goes on serving without traces", w.endpoint, msg),
			missedField(missed)...)
	}
}

// Handle is the global OpenTelemetry error handler.
func (w *exportWarnings) Handle(err error) {
	if errors.As(err, new(reportedError)) {
		return
	}
	w.mu.Lock()
	ok, missed := w.other.allow(w.now(), w.every)
	w.mu.Unlock()
	if ok {
		w.log.Warn("opentelemetry: "+err.Error(), missedField(missed)...)
	}
}

func missedField(n int) []zap.Field {
	if n == 0 {
		return nil
	}
	return []zap.Field{zap.Int("unloggedFailures", n)}
}
