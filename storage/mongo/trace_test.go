package mongo

import (
	"context"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/goferproxy/gofer/storage/storagetest"
)

// Each command is a client span under its caller's span, named after the command and the
// collection, with neither documents nor filters in it; a failed command records its error name.
func TestCommandSpans(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	db := newDatabase()
	s := mustOpen(t, db) // before the provider is set: the monitor must use the later one
	defer s.Close()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(noop.NewTracerProvider()) })

	ctx, parent := tp.Tracer("test").Start(context.Background(), "request")
	if err := s.Insert(ctx, storagetest.Record("example.com/secret-module", "v1.0.0", 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "example.com/secret-module", "v1.0.0"); err != nil {
		t.Fatal(err)
	}
	// Not a command any server knows.
	s.client.Database(db).RunCommand(ctx, bson.D{{Key: "goferNoSuchCommand", Value: 1}})
	parent.End()

	byName := map[string]tracetest.SpanStub{}
	for _, span := range exp.GetSpans() {
		byName[span.Name] = span
		for _, a := range span.Attributes {
			if strings.Contains(a.Value.String(), "secret-module") {
				t.Errorf("span %q: %s = %q holds a document's content", span.Name, a.Key, a.Value.String())
			}
		}
	}
	for _, name := range []string{"mongodb insert versions", "mongodb find versions"} {
		span, ok := byName[name]
		if !ok {
			t.Errorf("no span %q in %v", name, names(exp.GetSpans()))
			continue
		}
		if span.Parent.SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("span %q is not a child of its caller's span", name)
		}
		attrs := map[string]string{}
		for _, a := range span.Attributes {
			attrs[string(a.Key)] = a.Value.String()
		}
		op := strings.Fields(name)[1]
		if attrs["db.system.name"] != "mongodb" || attrs["db.operation.name"] != op || attrs["db.namespace"] != db || attrs["db.collection.name"] != "versions" {
			t.Errorf("span %q attributes %v", name, attrs)
		}
	}
	failed, ok := byName["mongodb goferNoSuchCommand"]
	if !ok || failed.Status.Code != codes.Error || !strings.Contains(failed.Status.Description, "(59)") {
		t.Errorf("span of an unknown command: %+v, want an error status naming code 59 (CommandNotFound)", failed.Status)
	}
}

func names(spans tracetest.SpanStubs) []string {
	var n []string
	for _, s := range spans {
		n = append(n, s.Name)
	}
	return n
}
