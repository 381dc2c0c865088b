package upstream

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// The default client bounds the steps before the first byte but never the whole download.
func TestDefaultClient(t *testing.T) {
	c, err := Parse("https://proxy.example.com")
	if err != nil {
		t.Fatal(err)
	}
	cl := c.client()
	if cl == nil || cl != c.client() {
		t.Fatal("the default client is not built once and kept")
	}
	if cl.Timeout != 0 {
		t.Errorf("overall timeout %v, want none: zips are streamed", cl.Timeout)
	}
	if _, ok := cl.Transport.(*otelhttp.Transport); !ok {
		t.Errorf("transport %T, want *otelhttp.Transport: upstream requests are not traced", cl.Transport)
	}
}

// Each upstream request of the default client is a client span of the global tracer provider,
// and the password of a GOPROXY entry is in none of its attributes.
func TestDefaultClientTraces(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(noop.NewTracerProvider()) })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pass, _ := r.BasicAuth(); pass != "s3cret" {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, `{"Version":"v1.0.0"}`)
	}))
	defer srv.Close()
	c, err := Parse(strings.Replace(srv.URL, "http://", "http://gofer:s3cret@", 1))
	if err != nil {
		t.Fatal(err)
	}
	ctx, parent := tp.Tracer("test").Start(context.Background(), "request")
	if _, _, err := c.Info(ctx, "example.com/m", "v1.0.0"); err != nil {
		t.Fatal(err)
	}
	parent.End()
	var found bool
	for _, s := range spans.GetSpans() {
		for _, a := range s.Attributes {
			if strings.Contains(a.Value.String(), "s3cret") {
				t.Errorf("span %q: %s = %q holds the password", s.Name, a.Key, a.Value.String())
			}
			if a.Key == "url.full" && a.Value.AsString() == srv.URL+"/example.com/m/@v/v1.0.0.info" {
				found = s.SpanKind == trace.SpanKindClient && s.Parent.SpanID() == parent.SpanContext().SpanID()
			}
		}
	}
	if !found {
		t.Errorf("no client span for the request under its caller's span: %v", spans.GetSpans())
	}
}
