package worker

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	"golang.org/x/mod/module"

	"github.com/goferproxy/gofer/activities"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/workflows"
)

// WatchSchedulePrefix starts the ID of every watchlist schedule; the rest is the entry's pattern,
// or "gosum:" and the go.sum file's name.
const WatchSchedulePrefix = "gofer-watch:"

// DefaultWatchEvery is how often a watchlist entry runs unless the watchlist says otherwise.
const DefaultWatchEvery = time.Hour

// WatchEntry is one line of a watchlist: a module pattern and its rule, or a go.sum file whose
// every version is kept stored, and how often it runs.
type WatchEntry struct {
	Watch activities.Watch // when GoSum is empty
	GoSum string
	Every time.Duration
}

// ScheduleID is the ID of the entry's schedule.
func (e WatchEntry) ScheduleID() string {
	if e.GoSum != "" {
		return WatchSchedulePrefix + "gosum:" + e.GoSum
	}
	return WatchSchedulePrefix + e.Watch.Pattern
}

// ParseWatchlist reads a watchlist: one entry a line, "<pattern> latest", "<pattern> all",
// "<pattern> all >= <version>" or "gosum <file>", each optionally followed by "every <duration>";
// a line "every <duration>" sets the interval of the entries below it (default 1h). # starts a
// comment. Patterns use GOPRIVATE's glob syntax. Errors name the line.
func ParseWatchlist(r io.Reader) ([]WatchEntry, error) {
	var entries []WatchEntry
	seen := map[string]int{}
	every := DefaultWatchEvery
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		lineEvery := every
		if k := len(f); k >= 2 && f[k-2] == "every" {
			d, err := time.ParseDuration(f[k-1])
			if err != nil || d < time.Second {
				return nil, fmt.Errorf("watchlist line %d: every %q: want a duration of 1s or more", n, f[k-1])
			}
			lineEvery, f = d, f[:k-2]
		}
		if len(f) == 0 {
			every = lineEvery
			continue
		}
		e := WatchEntry{Every: lineEvery}
		switch {
		case f[0] == "gosum" && len(f) == 2:
			e.GoSum = f[1]
		case len(f) >= 2:
			rule, err := activities.ParseWatchRule(strings.Join(f[1:], " "))
			if err != nil {
				return nil, fmt.Errorf("watchlist line %d: %v", n, err)
			}
			if err := checkPattern(f[0]); err != nil {
				return nil, fmt.Errorf("watchlist line %d: %v", n, err)
			}
			e.Watch = activities.Watch{Pattern: f[0], Rule: rule}
		default:
			return nil, fmt.Errorf(`watchlist line %d: want "<pattern> <rule>", "gosum <file>" or "every <duration>"`, n)
		}
		if m, ok := seen[e.ScheduleID()]; ok {
			return nil, fmt.Errorf("watchlist line %d: already listed on line %d", n, m)
		}
		seen[e.ScheduleID()] = n
		entries = append(entries, e)
	}
	return entries, sc.Err()
}

// checkPattern accepts a module path, or a glob of one whose wildcards are whole elements' parts.
func checkPattern(p string) error {
	if strings.ContainsAny(p, "*?[\\") {
		if strings.Trim(p, "/") != p || strings.Contains(p, "//") {
			return fmt.Errorf("pattern %q: malformed", p)
		}
		return nil
	}
	if err := module.CheckPath(p); err != nil {
		return fmt.Errorf("pattern %q: %v", p, err)
	}
	return nil
}

// EnsureWatchSchedules makes the watchlist schedules exactly entries: it creates or updates one
// schedule per entry and deletes every other schedule whose ID starts with WatchSchedulePrefix.
// A go.sum entry's file is read now and stored as a warm list, so a changed file takes effect at
// the next start. Every worker of a deployment should have the same watchlist.
func EnsureWatchSchedules(ctx context.Context, c client.Client, blobs storage.Blobs, entries []WatchEntry, concurrency int) error {
	want := map[string]bool{}
	for _, e := range entries {
		id := e.ScheduleID()
		want[id] = true
		action := &client.ScheduleWorkflowAction{ID: id, TaskQueue: workflows.TaskQueue}
		if e.GoSum != "" {
			list, err := readGoSum(e.GoSum)
			if err != nil {
				return err
			}
			key, err := activities.PutWarmList(ctx, blobs, list)
			if err != nil {
				return fmt.Errorf("storing the versions of %s: %w", e.GoSum, err)
			}
			action.Workflow = workflows.Warm
			action.Args = []any{workflows.WarmRequest{List: key, Concurrency: concurrency}}
			action.StaticSummary = fmt.Sprintf("keep the %d versions of %s stored", len(list), e.GoSum)
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

func readGoSum(name string) ([]module.Version, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("watchlist: %w", err)
	}
	list, err := activities.ParseWarmList(data)
	if err != nil {
		return nil, fmt.Errorf("watchlist: %s: %w", name, err)
	}
	return list, nil
}
