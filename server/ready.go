package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/server/httperr"
	"github.com/goferproxy/gofer/storage"
)

const (
	// readyTimeout bounds each check of GET /readyz, so that a dependency that hangs (a
	// stopped MongoDB behind a slow network, say) fails its check instead of holding the probe.
	readyTimeout = 3 * time.Second
	// readyGrace is how long a check whose time is up may still take to return its own error,
	// which says more than "no answer".
	readyGrace = 250 * time.Millisecond
	// probeKey and probe{Path,Version} name a blob and a record that never exist: asking for
	// them exercises a store end to end and changes nothing.
	probeKey     = "_readyz/probe"
	probePath    = "readyz.invalid"
	probeVersion = "v0.0.0"
)

// ReadyCheck is one dependency GET /readyz checks: Check returns nil while Name is usable.
type ReadyCheck struct {
	Name  string
	Check func(ctx context.Context) error
}

// HealthChecker asks a Temporal frontend whether it serves; a client.Client is one, lazy or not.
type HealthChecker interface {
	CheckHealth(ctx context.Context, request *client.CheckHealthRequest) (*client.CheckHealthResponse, error)
}

// Checks returns the standard checks of a gofer front end, named "storage", "metadata" and
// "temporal" (left out when temporal is nil). Each asks its dependency something that needs an
// answer from it: an absent blob, an absent record, the frontend's health. "Not found" is an
// answer, so it passes; any other error fails the check.
func Checks(blobs storage.Blobs, meta storage.Metadata, temporal HealthChecker) []ReadyCheck {
	checks := []ReadyCheck{
		{Name: "storage", Check: func(ctx context.Context) error {
			r, _, err := blobs.Open(ctx, probeKey)
			if errors.Is(err, gofer.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			return r.Close() // someone stored a blob there; the store answered all the same
		}},
		{Name: "metadata", Check: func(ctx context.Context) error {
			_, err := meta.Get(ctx, probePath, probeVersion)
			if err == nil || errors.Is(err, gofer.ErrNotFound) {
				return nil
			}
			return err
		}},
	}
	if temporal != nil {
		checks = append(checks, ReadyCheck{Name: "temporal", Check: func(ctx context.Context) error {
			_, err := temporal.CheckHealth(ctx, &client.CheckHealthRequest{})
			return err
		}})
	}
	return checks
}

// ready answers GET and HEAD /readyz: it runs every check of cfg.Ready at once, each within
// readyTimeout, and answers 200 if all pass and 503 with Retry-After if any fails, with one
// line per check in the order of cfg.Ready, "name: ok" or "name: failing". /readyz is open
// (probes carry no credentials), so a failure's detail, which names addresses, goes to the log
// only. With no checks it answers as /healthz does.
func (s *Server) ready(c *gin.Context) {
	checks := s.cfg.Ready
	if len(checks) == 0 {
		health(c)
		return
	}
	ctx := c.Request.Context()
	errs := make([]error, len(checks))
	var wg sync.WaitGroup
	for i, rc := range checks {
		wg.Go(func() { errs[i] = runCheck(ctx, rc) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return // the client is gone
	}

	status := http.StatusOK
	var body strings.Builder
	for i, rc := range checks {
		line := "ok"
		if errs[i] != nil {
			status = http.StatusServiceUnavailable
			line = "failing"
			s.cfg.Log.Warn("readiness check failed", zap.String("check", rc.Name), zap.Error(errs[i]))
		}
		fmt.Fprintf(&body, "%s: %s\n", rc.Name, line)
	}
	if c.Request.Method == http.MethodHead {
		body.Reset()
	}
	httperr.Text(c.Writer, status, body.String())
}

// runCheck runs rc within readyTimeout. A check that ignores its context is not waited for
// beyond readyGrace: it is reported as unanswered and left to return on its own.
func runCheck(ctx context.Context, rc ReadyCheck) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	done := make(chan error, 1) // buffered: a late check must not block forever on the send
	go func() { done <- rc.Check(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	select {
	case err := <-done:
		return err
	case <-time.After(readyGrace):
		return fmt.Errorf("no answer within %v: %w", readyTimeout, ctx.Err())
	}
}
