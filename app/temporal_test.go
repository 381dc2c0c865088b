package app

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

func tracedWorkflow(ctx workflow.Context) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	return workflow.ExecuteActivity(ctx, tracedActivity).Get(ctx, nil)
}

func tracedActivity(context.Context) error { return nil }

// The tracing interceptor of the Temporal client also traces the workers built on it: a workflow and
// its activity are spans of the given provider, in one trace.
func TestTemporalInterceptors(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	i, err := tracingInterceptor(tp)
	if err != nil {
		t.Fatal(err)
	}
	wi, ok := i.(interceptor.WorkerInterceptor)
	if !ok {
		t.Fatalf("%T does not intercept workers", i)
	}
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{wi}})
	env.RegisterWorkflow(tracedWorkflow)
	env.RegisterActivity(tracedActivity)
	env.ExecuteWorkflow(tracedWorkflow)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	traces := map[string]string{}
	for _, s := range spans.GetSpans() {
		traces[s.Name] = s.SpanContext.TraceID().String()
	}
	run := traces["RunWorkflow:tracedWorkflow"]
	if run == "" || traces["StartActivity:tracedActivity"] != run || traces["RunActivity:tracedActivity"] != run {
		t.Errorf("spans by trace: %v, want RunWorkflow, StartActivity and RunActivity in one", traces)
	}
}
