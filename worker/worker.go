// Package worker assembles a Temporal worker that runs gofer's workflows and activities on the
// gofer task queue (New, which also lets warms run fetches through the worker's client), makes
// a namespace ready for them (EnsureSearchAttributes), and keeps gofer's Temporal Schedules as
// the settings say: the scrub's, and one per watchlist entry, a follow's included
// (EnsureWatchSchedules, which stores a "gosum" entry's versions as a warm list, through
// package warm). It only registers, prepares and schedules: it never parses a list (warm
// does), and never decides anything a workflow or activity decides.
package worker

import (
	"context"

	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/goferproxy/gofer/activities"
	"github.com/goferproxy/gofer/workflows"
)

// New returns a worker for every gofer workflow and the activities of a; start it with Run or
// Start and stop it with Stop. Unless a.RunFetch is set, New sets it to run fetches through c.
func New(c client.Client, a *activities.Activities) sdkworker.Worker {
	// Pollers scale with the work: with the SDK's fixed two of each, a warm of many versions
	// waits for pollers, not for the upstream. Activities run eagerly where the server allows
	// it (system.enableActivityEagerExecution), saving a round trip each.
	w := sdkworker.New(c, workflows.TaskQueue, sdkworker.Options{
		WorkflowTaskPollerBehavior: sdkworker.NewPollerBehaviorAutoscaling(sdkworker.PollerBehaviorAutoscalingOptions{}),
		ActivityTaskPollerBehavior: sdkworker.NewPollerBehaviorAutoscaling(sdkworker.PollerBehaviorAutoscalingOptions{}),
	})
	w.RegisterWorkflow(workflows.Fetch)
	w.RegisterWorkflow(workflows.Scrub)
	w.RegisterWorkflow(workflows.Warm)
	w.RegisterWorkflow(workflows.Watch)
	w.RegisterWorkflow(workflows.Follow)
	if a.RunFetch == nil {
		a.RunFetch = func(ctx context.Context, path, version, files, from string) error {
			req := workflows.FetchRequest{Path: path, Version: version, Known: true, Files: files, From: from}
			run, err := c.ExecuteWorkflow(ctx, workflows.FetchOptions(req), workflows.Fetch, req)
			if err != nil {
				return err
			}
			return run.Get(ctx, nil)
		}
	}
	w.RegisterActivity(a)
	return w
}
