package mongo

import (
	"context"
	"errors"
	"strconv"
	"sync"

	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

const tracerName = "github.com/goferproxy/gofer/storage/mongo"

// commandSpans makes each command the driver sends a client span of the global tracer provider
// (looked up at each command, so that a provider set after Open is used). A span names the
// command, the database and the collection, and never holds the command or the reply, which
// carry documents (and, in authentication, secrets); a failure is recorded by its server error
// name and code, not its message, which for some errors (Unauthorized) quotes the command.
type commandSpans struct {
	spans sync.Map // spanKey → trace.Span, from Started to Succeeded or Failed
}

// spanKey is unique per command: request IDs come from one counter per process, and the
// connection makes the pair safe whatever the driver does with it.
type spanKey struct {
	conn string
	id   int64
}

func (c *commandSpans) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: c.started, Succeeded: c.succeeded, Failed: c.failed}
}

func (c *commandSpans) started(ctx context.Context, e *event.CommandStartedEvent) {
	name := "mongodb " + e.CommandName
	attrs := []attribute.KeyValue{
		semconv.DBSystemNameMongoDB,
		semconv.DBOperationName(e.CommandName),
		semconv.DBNamespace(e.DatabaseName),
	}
	if coll := collectionOf(e); coll != "" {
		name += " " + coll
		attrs = append(attrs, semconv.DBCollectionName(coll))
	}
	_, span := otel.Tracer(tracerName).Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	c.spans.Store(spanKey{e.ConnectionID, e.RequestID}, span)
}

func (c *commandSpans) succeeded(_ context.Context, e *event.CommandSucceededEvent) {
	if span, ok := c.spans.LoadAndDelete(spanKey{e.ConnectionID, e.RequestID}); ok {
		span.(trace.Span).End()
	}
}

func (c *commandSpans) failed(_ context.Context, e *event.CommandFailedEvent) {
	v, ok := c.spans.LoadAndDelete(spanKey{e.ConnectionID, e.RequestID})
	if !ok {
		return
	}
	span := v.(trace.Span)
	desc := "failed"
	var serr driver.Error
	switch {
	case errors.As(e.Failure, &serr):
		code := strconv.Itoa(int(serr.Code))
		desc = serr.Name + " (" + code + ")"
		span.SetAttributes(semconv.DBResponseStatusCode(code), semconv.ErrorTypeKey.String(code))
	case errors.Is(e.Failure, context.DeadlineExceeded):
		desc = "timed out"
		span.SetAttributes(semconv.ErrorTypeKey.String("timeout"))
	case errors.Is(e.Failure, context.Canceled):
		desc = "canceled"
		span.SetAttributes(semconv.ErrorTypeKey.String("canceled"))
	default:
		span.SetAttributes(semconv.ErrorTypeOther)
	}
	span.SetStatus(codes.Error, desc)
	span.End()
}

// collectionOf is the collection a command works on: the value of its first element (find,
// insert, createIndexes, ...) when that is a string, as the server reads it. Only that one
// value is read.
func collectionOf(e *event.CommandStartedEvent) string {
	first, err := e.Command.IndexErr(0)
	if err != nil {
		return ""
	}
	coll, ok := first.Value().StringValueOK()
	if !ok {
		return ""
	}
	return coll
}
