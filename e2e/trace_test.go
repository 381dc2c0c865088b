package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/goferproxy/gofer/activities"
	"github.com/goferproxy/gofer/internal/fakeproxy"
	"github.com/goferproxy/gofer/internal/testserver"
	"github.com/goferproxy/gofer/workflows"
)

// A miss is one trace: the request, the workflow starts, the workflows, each activity, and under
// them the calls to the upstream, S3 and MongoDB. Tracing S3 calls leaves presigned URLs usable.
func TestOneTracePerMiss(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	// The upstream, S3 and MongoDB clients trace through the global provider, as in `gofer serve`.
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() {
		otel.SetTracerProvider(noop.NewTracerProvider())
		otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
		tp.Shutdown(context.Background())
	})
	blobs, _ := s3Store(t)
	meta, _ := mongoStore(t)
	up := fakeproxy.New()
	// A version of its own, missing even when the test runs again on the same bucket and database.
	version := fmt.Sprintf("v1.0.%d", time.Now().UnixNano())
	up.Add("example.com/traced", version, map[string]string{"go.mod": "module example.com/traced\n", "traced.go": "package traced\n"})
	g := startGofer(t, up.Start(t), options{tracer: tp, blobs: blobs, meta: meta, zipRedirect: 5 * time.Minute})

	// A zip that misses fetches the version's .mod and its zip.
	if code, _, body := testserver.Get(t, http.MethodGet, g.URL+"/example.com/traced/@v/"+version+".zip"); code != http.StatusOK {
		t.Fatalf("GET .zip: %d %s", code, body)
	}

	var serverSpan tracetest.SpanStub
	for _, s := range spans.GetSpans() {
		if s.SpanKind == trace.SpanKindServer && strings.HasSuffix(s.InstrumentationScope.Name, "otelgin") {
			serverSpan = s
		}
	}
	if !serverSpan.SpanContext.IsValid() {
		t.Fatalf("no HTTP server span among %v", spanNames(spans.GetSpans()))
	}
	id := serverSpan.SpanContext.TraceID()
	want := []string{"StartWorkflow:Fetch", "RunWorkflow:Fetch", "RunActivity:FetchMod", "RunActivity:FetchZip"}
	// Worker spans are exported as they end, and a workflow's ends after the answer.
	var inTrace, elsewhere []string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		inTrace, elsewhere = inTrace[:0], elsewhere[:0]
		for _, s := range spans.GetSpans() {
			if s.SpanContext.TraceID() == id {
				inTrace = append(inTrace, s.Name)
			} else {
				elsewhere = append(elsewhere, s.Name)
			}
		}
		all := !slices.ContainsFunc(want, func(n string) bool { return !slices.Contains(inTrace, n) })
		if all || time.Now().After(deadline) {
			break
		}
	}
	for _, name := range want {
		if !slices.Contains(inTrace, name) {
			t.Errorf("no span %q in the request's trace", name)
		}
		if slices.Contains(elsewhere, name) {
			t.Errorf("span %q in another trace too", name)
		}
	}
	// The clients' spans: otelhttp's for the upstream, otelaws's for S3, our monitor's for MongoDB.
	for _, prefix := range []string{"HTTP GET", "S3.PutObject", "S3.GetObject", "mongodb insert versions", "mongodb find versions"} {
		if !slices.ContainsFunc(inTrace, func(n string) bool { return strings.HasPrefix(n, prefix) }) {
			t.Errorf("no span %q in the request's trace", prefix)
		}
	}
	// The trace context travels in headers, never signed into a presigned URL, which a client
	// without it could then not use.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(g.URL + "/example.com/traced/@v/" + version + ".zip")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || strings.Contains(strings.ToLower(loc), "traceparent") {
		t.Errorf("zip GET: %d to %q, want a redirect to a presigned URL without the trace context", resp.StatusCode, loc)
	} else if code, _, body := testserver.Get(t, http.MethodGet, loc); code != http.StatusOK || len(body) == 0 {
		t.Errorf("presigned URL: %d, %d bytes", code, len(body))
	}
	if t.Failed() {
		t.Logf("the request's trace: %v\nother spans: %v", inTrace, elsewhere)
	}

	// Requests that join a fetch another one started name that fetch on their own spans.
	joined := version + "-joined"
	up.Add("example.com/traced", joined, map[string]string{"go.mod": "module example.com/traced\n", "traced.go": "package traced\n"})
	up.Delay(300 * time.Millisecond)
	spans.Reset()
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { testserver.Get(t, http.MethodGet, g.URL+"/example.com/traced/@v/"+joined+".mod") })
	}
	wg.Wait()
	runs := map[string]int{}
	for _, s := range spans.GetSpans() {
		if s.SpanKind != trace.SpanKindServer || !strings.HasSuffix(s.InstrumentationScope.Name, "otelgin") {
			continue
		}
		attrs := map[attribute.Key]string{}
		for _, a := range s.Attributes {
			attrs[a.Key] = a.Value.AsString()
		}
		if attrs["gofer.workflow_id"] != workflows.FetchID("example.com/traced", joined, activities.FilesMod) || attrs["gofer.run_id"] == "" {
			t.Errorf("server span %s without the fetch it waited for: %v", s.Name, attrs)
		}
		runs[attrs["gofer.run_id"]]++
	}
	if len(runs) != 1 || runs[""] != 0 || slices.Collect(maps.Values(runs))[0] != 3 {
		t.Errorf("3 concurrent requests name the runs %v, want one run named by all", runs)
	}
}

func spanNames(spans tracetest.SpanStubs) []string {
	var names []string
	for _, s := range spans {
		names = append(names, s.Name)
	}
	return names
}
