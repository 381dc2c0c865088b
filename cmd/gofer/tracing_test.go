package main

import (
	"cmp"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace/noop"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/protobuf/proto"
)

// otelVars are the variables setupTracing reads; each test starts with all of them unset (the
// SDK, like setupTracing, takes empty for unset).
var otelVars = []string{
	"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
	"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
	"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
	"OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
	"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES",
}

// cleanOTel unsets the OTEL_* variables for t and restores OpenTelemetry's global state after it.
func cleanOTel(t *testing.T) {
	t.Helper()
	for _, v := range otelVars {
		t.Setenv(v, "")
	}
	t.Cleanup(func() {
		otel.SetTracerProvider(noop.NewTracerProvider())
		otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) {}))
	})
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// Tracing stays off, with a no-op provider, unless an endpoint is set and nothing turns it off.
func TestTracingOff(t *testing.T) {
	for i, env := range [][]string{
		{},
		{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER", "none"},
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:4318/v1/traces", "OTEL_SDK_DISABLED", "TRUE"},
	} {
		cleanOTel(t)
		for j := 0; j+1 < len(env); j += 2 {
			t.Setenv(env[j], env[j+1])
		}
		tp, shutdown, err := setupTracing(context.Background(), zap.NewNop())
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		if _, ok := tp.(noop.TracerProvider); !ok {
			t.Errorf("%d: provider %T, want the no-op one", i, tp)
		}
		if err := shutdown(context.Background()); err != nil {
			t.Errorf("%d: shutdown: %v", i, err)
		}
	}
}

// A setting that cannot work fails the start, naming the variable.
func TestTracingBadSettings(t *testing.T) {
	for i, c := range []struct {
		env  []string
		want string
	}{
		{[]string{"OTEL_EXPORTER_OTLP_ENDPOINT", "127.0.0.1:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{[]string{"OTEL_EXPORTER_OTLP_PROTOCOL", "thrift"}, "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{[]string{"OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http"}, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"},
		{[]string{"OTEL_TRACES_EXPORTER", "zipkin"}, "OTEL_TRACES_EXPORTER"},
		{[]string{"OTEL_TRACES_SAMPLER", "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG", "10%"}, "OTEL_TRACES_SAMPLER_ARG"},
		{[]string{"OTEL_TRACES_SAMPLER", "ratio"}, "OTEL_TRACES_SAMPLER"},
	} {
		cleanOTel(t)
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
		for j := 0; j+1 < len(c.env); j += 2 {
			t.Setenv(c.env[j], c.env[j+1])
		}
		_, _, err := setupTracing(context.Background(), zap.NewNop())
		if err == nil || !strings.Contains(err.Error(), c.want+"=") && !strings.Contains(err.Error(), c.want+" ") {
			t.Errorf("%d: error %v, want one naming %s", i, err, c.want)
		}
	}
}

// Spans reach an OTLP/HTTP collector at OTEL_EXPORTER_OTLP_ENDPOINT, from the service named by
// OTEL_SERVICE_NAME, or "gofer".
func TestTraceExport(t *testing.T) {
	for i, service := range []string{"", "gofer-eu"} {
		cleanOTel(t)
		got := make(chan *coltracepb.ExportTraceServiceRequest, 10)
		collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			var req coltracepb.ExportTraceServiceRequest
			if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
				http.Error(w, "not an OTLP trace export", http.StatusBadRequest)
				return
			}
			got <- &req
		}))
		t.Cleanup(collector.Close)
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
		t.Setenv("OTEL_SERVICE_NAME", service)
		tp, shutdown, err := setupTracing(context.Background(), zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		_, span := otel.Tracer("test").Start(context.Background(), "work") // the global provider
		span.End()
		if err := tp.(*sdktrace.TracerProvider).ForceFlush(context.Background()); err != nil {
			t.Fatalf("%d: flush: %v", i, err)
		}
		shutdown(context.Background())
		req := <-got
		var name, spanName string
		for _, rs := range req.ResourceSpans {
			for _, a := range rs.Resource.Attributes {
				if a.Key == "service.name" {
					name = a.Value.GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					spanName = s.Name
				}
			}
		}
		if want := cmp.Or(service, "gofer"); name != want || spanName != "work" {
			t.Errorf("%d: exported span %q of service %q, want \"work\" of %q", i, spanName, name, want)
		}
	}
}

// With a collector that is not there, gofer logs one clear warning however many exports fail,
// and shutting down takes no longer than its deadline.
func TestTraceExportFailureWarnsOnce(t *testing.T) {
	for _, protocol := range []string{"http/protobuf", "grpc"} {
		t.Run(strings.ReplaceAll(protocol, "/", "-"), func(t *testing.T) {
			cleanOTel(t)
			addr := closedPort(t)
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+addr)
			t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
			t.Setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
			t.Setenv("OTEL_TRACES_SAMPLER_ARG", "1")
			// The exports that outlive a deadline (gRPC retries until its own) end soon too.
			t.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1000")
			t.Setenv("OTEL_BSP_EXPORT_TIMEOUT", "1000")
			core, logs := observer.New(zapcore.InfoLevel)
			tp, shutdown, err := setupTracing(context.Background(), zap.New(core))
			if err != nil {
				t.Fatal(err)
			}
			endpoint := "http://" + addr
			if protocol != "grpc" {
				endpoint += "/v1/traces"
			}
			if n := logs.FilterMessage("tracing on").FilterField(zap.String("endpoint", endpoint)).FilterField(zap.String("sampler", "parentbased_traceidratio 1")).Len(); n != 1 {
				t.Errorf("%d start lines naming %s and the sampler, want 1: %v", n, endpoint, logs.All())
			}
			sdk, ok := tp.(*sdktrace.TracerProvider)
			if !ok {
				t.Fatalf("provider %T, want the SDK's", tp)
			}
			for range 3 {
				for range 5 {
					_, span := tp.Tracer("test").Start(context.Background(), "work")
					span.End()
				}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				if err := sdk.ForceFlush(ctx); err == nil {
					t.Error("flush to a closed port succeeded")
				}
				cancel()
			}
			_, span := tp.Tracer("test").Start(context.Background(), "last")
			span.End()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			start := time.Now()
			if err := shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("shutdown: %v", err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("shutdown took %v with a 2s deadline", d)
			}
			// The last export may end just after shutdown returns.
			time.Sleep(1500 * time.Millisecond)
			if n := logs.FilterMessageSnippet(addr).Len(); n != 1 {
				t.Errorf("%d lines name %s in their message, want only the warning", n, addr)
			}
			warnings := logs.FilterLevelExact(zapcore.WarnLevel)
			want := "trace export to " + endpoint + " failing: "
			if warnings.Len() != 1 || !strings.HasPrefix(warnings.All()[0].Message, want) ||
				!strings.HasSuffix(warnings.All()[0].Message, "; gofer goes on serving without traces") {
				t.Errorf("warnings %v, want one %q...", warnings.All(), want)
			}
		})
	}
}

// Failures are logged at most once per interval, with how many went unlogged, and a recovery once.
func TestExportWarningsRateLimit(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	w := newExportWarnings(zap.New(core), "http://collector:4318/v1/traces")
	now := time.Unix(1e9, 0)
	w.now = func() time.Time { return now }
	refused := errors.New("connection refused")
	for range 3 {
		w.exported(refused)
		now = now.Add(time.Minute)
	}
	w.Handle(reportedError{refused}) // the batch processor passing a logged failure on
	if logs.Len() != 1 {
		t.Fatalf("after 3 failures in 3 minutes: %v, want 1 line", logs.All())
	}
	now = now.Add(exportWarningEvery)
	w.exported(refused)
	if n := logs.Len(); n != 2 || logs.All()[1].ContextMap()["unloggedFailures"] != int64(2) {
		t.Fatalf("10 minutes later: %v, want a second line counting 2 unlogged failures", logs.All())
	}
	w.exported(nil)
	w.exported(nil)
	if n := logs.FilterMessageSnippet("works again").Len(); n != 1 {
		t.Errorf("%d recovery lines, want 1", n)
	}
	w.Handle(errors.New("something else"))
	w.Handle(errors.New("something else again"))
	if n := logs.FilterMessageSnippet("opentelemetry: something else").Len(); n != 1 {
		t.Errorf("%d lines for other errors, want 1", n)
	}
}
