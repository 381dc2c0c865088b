package worker

import (
	"testing"

	"github.com/goferproxy/gofer/warm"
)

func TestScheduleID(t *testing.T) {
	for i, c := range []struct {
		entry warm.WatchEntry
		want  string
	}{
		0: {warm.WatchEntry{Watch: warm.Watch{Pattern: "example.com/x/*", Rule: warm.WatchRule{Since: "v1.2.0"}}}, "gofer-watch:example.com/x/*"},
		1: {warm.WatchEntry{GoSum: "deploy/go.sum"}, "gofer-watch:gosum:deploy/go.sum"},
	} {
		if id := scheduleID(c.entry); id != c.want {
			t.Errorf("%d: schedule ID %q, want %q", i, id, c.want)
		}
	}
}
