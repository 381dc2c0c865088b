package worker

import (
	"context"
	"fmt"
	"strings"

	"go.temporal.io/sdk/client"

	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/warm"
	"github.com/goferproxy/gofer/workflows"
)

// WatchSchedulePrefix starts the ID of every watchlist schedule; the rest is the entry's name
// (warm.WatchEntry.Name): its pattern, "gosum:" and the go.sum file's name, or "follow:" and
// the followed proxy's URL without userinfo.
const WatchSchedulePrefix = "gofer-watch:"

// scheduleID is the ID of the schedule of the watchlist entry e.
func scheduleID(e warm.WatchEntry) string { return WatchSchedulePrefix + e.Name() }

// EnsureWatchSchedules makes the watchlist schedules exactly entries: it creates or updates one
// schedule per entry and deletes every other schedule whose ID starts with WatchSchedulePrefix.
// A go.sum entry's file is read now and stored as a warm list, so a changed file takes effect at
// the next start. Every worker of a deployment should have the same watchlist.
func EnsureWatchSchedules(ctx context.Context, c client.Client, blobs storage.Blobs, entries []warm.WatchEntry, concurrency int) error {
	want := map[string]bool{}
	for _, e := range entries {
		id := scheduleID(e)
		want[id] = true
		action := &client.ScheduleWorkflowAction{ID: id, TaskQueue: workflows.TaskQueue}
		if e.GoSum != "" {
			list, err := warm.ReadGoSum(e.GoSum)
			if err != nil {
				return err
			}
			key, err := warm.PutList(ctx, blobs, list)
			if err != nil {
				return fmt.Errorf("storing the versions of %s: %w", e.GoSum, err)
			}
			action.Workflow = workflows.Warm
			action.Args = []any{workflows.WarmRequest{List: key, Concurrency: concurrency}}
			action.StaticSummary = fmt.Sprintf("keep the %d versions of %s stored", len(list), e.GoSum)
		} else if f := e.Follow; f.URL != "" {
			action.Workflow = workflows.Follow
			action.Args = []any{workflows.FollowRequest{Feed: f.Feed(), Patterns: f.Patterns, Concurrency: concurrency}}
			action.StaticSummary = "follow the index of " + f.Feed()
			if f.Patterns != "" {
				action.StaticSummary += " for " + f.Patterns
			}
		} else {
			action.Workflow = workflows.Watch
			action.Args = []any{workflows.WatchRequest{Watch: e.Watch, Concurrency: concurrency}}
			action.StaticSummary = "watch " + e.Watch.Pattern + ": " + e.Watch.Rule.String()
		}
		if err := ensureSchedule(ctx, c, id, e.Every, action); err != nil {
			return err
		}
	}
	it, err := c.ScheduleClient().List(ctx, client.ScheduleListOptions{PageSize: 100})
	if err != nil {
		return fmt.Errorf("listing the schedules: %w", err)
	}
	var stale []string
	for it.HasNext() {
		s, err := it.Next()
		if err != nil {
			return fmt.Errorf("listing the schedules: %w", err)
		}
		if strings.HasPrefix(s.ID, WatchSchedulePrefix) && !want[s.ID] {
			stale = append(stale, s.ID)
		}
	}
	for _, id := range stale {
		if err := deleteSchedule(ctx, c, id); err != nil {
			return err
		}
	}
	return nil
}
