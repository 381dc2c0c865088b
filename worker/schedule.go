package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/goferproxy/gofer/workflows"
)

// ScrubScheduleID is the ID of the Temporal Schedule that runs the scrub.
const ScrubScheduleID = "gofer-scrub"

// catchup is how late a scheduled run missed while Temporal was down may still start; an older
// one is dropped, since the next interval comes anyway.
const catchup = 5 * time.Minute

// EnsureScrubSchedule makes the schedule ScrubScheduleID run workflows.Scrub every every,
// creating it or updating it to this interval, and deletes it when every is 0. Every replica
// may call it at start: the result is the same however often it runs.
func EnsureScrubSchedule(ctx context.Context, c client.Client, every time.Duration) error {
	if every < 0 {
		return fmt.Errorf("scrub interval %v: want 0 (no scheduled scrub) or more", every)
	}
	if every == 0 {
		return deleteSchedule(ctx, c, ScrubScheduleID)
	}
	return ensureSchedule(ctx, c, ScrubScheduleID, every, &client.ScheduleWorkflowAction{
		ID:            ScrubScheduleID,
		Workflow:      workflows.Scrub,
		Args:          []any{workflows.ScrubRequest{}},
		TaskQueue:     workflows.TaskQueue,
		StaticSummary: "scheduled scrub of every stored version",
	})
}

// ensureSchedule creates the schedule id, or updates it, to start action every every. A run
// still going when the next is due makes that one skip (overlap policy SKIP).
func ensureSchedule(ctx context.Context, c client.Client, id string, every time.Duration, action *client.ScheduleWorkflowAction) error {
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every}}}
	_, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID: id, Spec: spec, Action: action,
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, CatchupWindow: catchup,
	})
	if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		if err != nil {
			return fmt.Errorf("creating the schedule %s: %w", id, err)
		}
		return nil
	}
	err = c.ScheduleClient().GetHandle(ctx, id).Update(ctx, client.ScheduleUpdateOptions{DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
		s := in.Description.Schedule
		s.Spec, s.Action = &spec, action
		s.Policy = &client.SchedulePolicies{Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, CatchupWindow: catchup}
		return &client.ScheduleUpdate{Schedule: &s}, nil
	}})
	if err != nil {
		return fmt.Errorf("updating the schedule %s: %w", id, err)
	}
	return nil
}

// deleteSchedule deletes the schedule id, if there is one.
func deleteSchedule(ctx context.Context, c client.Client, id string) error {
	var notFound *serviceerror.NotFound
	if err := c.ScheduleClient().GetHandle(ctx, id).Delete(ctx); err != nil && !errors.As(err, &notFound) {
		return fmt.Errorf("deleting the schedule %s: %w", id, err)
	}
	return nil
}
