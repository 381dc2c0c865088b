package activities

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/mod/module"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/warm"
	"github.com/goferproxy/gofer/workflows/fetcherr"
)

// Temporal is the part of a Temporal client the activities use: a download reports its
// progress to its own workflow, and a warm run waits for fetches it did not start.
type Temporal interface {
	SignalWorkflow(ctx context.Context, workflowID, runID, signalName string, arg any) error
	GetWorkflow(ctx context.Context, workflowID, runID string) client.WorkflowRun
}

// Progress is what a running download reports to its workflow.
type Progress struct {
	Received int64 // zip bytes so far
}

// WarmPageRequest asks for the versions of a stored warm list from Offset on, at most Size.
type WarmPageRequest struct {
	List   string
	Offset int
	Size   int
}

// WarmPage is one page of a warm list: the versions not stored yet, and how many were.
type WarmPage struct {
	Missing []module.Version
	Cached  int
	Next    int // the offset of the next page; Total when this was the last
	Total   int
}

// WarmPage reads one page of the warm list r.List and sorts its versions into stored and missing.
func (a *Activities) WarmPage(ctx context.Context, r WarmPageRequest) (WarmPage, error) {
	list, err := warm.ReadList(ctx, a.Blobs, r.List)
	if err != nil {
		return WarmPage{}, fetcherr.Encode(err)
	}
	p := WarmPage{Total: len(list), Next: min(r.Offset+r.Size, len(list))}
	for _, v := range list[min(r.Offset, len(list)):p.Next] {
		w, mod := warm.ModOnly(v)
		rec, err := a.Meta.Get(ctx, w.Path, w.Version)
		switch {
		case err == nil && (mod || rec.HasZip()):
			p.Cached++
		case err == nil:
			p.Missing = append(p.Missing, v)
		case errors.Is(err, gofer.ErrNotFound):
			p.Missing = append(p.Missing, v)
		default:
			return WarmPage{}, fetcherr.Encode(storage.Failure(err))
		}
	}
	return p, nil
}

// AwaitFetch waits for the fetch workflow workflowID, which another request or warm run
// started, and returns its outcome: nil once the version is stored.
func (a *Activities) AwaitFetch(ctx context.Context, workflowID string) error {
	if a.Temporal == nil {
		return fetcherr.Encode(fmt.Errorf("no Temporal client to wait for %s with", workflowID))
	}
	stop := heartbeat(ctx, heartbeatEvery, func() any { return nil })
	defer stop()
	err := a.Temporal.GetWorkflow(ctx, workflowID, "").Get(ctx, nil)
	var ended *temporal.WorkflowExecutionError
	if errors.As(err, &ended) {
		// The fetch ended, and its outcome is final: waiting again would only see it again.
		return fetcherr.Final(fetcherr.Decode(err))
	}
	return fetcherr.Encode(err)
}
