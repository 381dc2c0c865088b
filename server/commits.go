package server

import "sync"

// Commits tells a front end's waits that a fetch run by a worker in the same process has stored
// what it fetched, as soon as it has: sooner than the end of its workflow, which is what a wait
// watches for otherwise (a fetch of a zip still discards its staged files after its commit, and
// every fetch then publishes its outcome, each a round trip through Temporal). A front end
// without a worker of its own waits for the workflow alone. The zero value is ready for use.
type Commits struct {
	waits sync.Map // workflow ID → chan struct{}
}

// Done reports that the fetch with workflow ID id has stored its files, or found them stored
// (activities.Activities.Committed).
func (c *Commits) Done(id string) {
	if ch, ok := c.waits.LoadAndDelete(id); ok {
		close(ch.(chan struct{}))
	}
}

// wait returns a channel that Done(id) closes (nil, which never is, for a nil c), and stop,
// which ends the wait.
func (c *Commits) wait(id string) (done <-chan struct{}, stop func()) {
	if c == nil {
		return nil, func() {}
	}
	ch := make(chan struct{})
	c.waits.Store(id, ch)
	return ch, func() { c.waits.CompareAndDelete(id, ch) }
}
