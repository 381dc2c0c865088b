// Package app assembles one gofer process from its parts: given the stores, the upstream, the
// checksum database and the rules, it connects to Temporal, runs a worker (registering the
// namespace's search attributes before it starts, and gofer's schedules once it has) and
// builds the front end, wired to each other as `gofer serve` runs them. The binary (cmd/gofer) and the end-to-end tests build
// gofer with it, so that the tests exercise the wiring users run. It never reads settings or
// the environment, never opens or closes a store (its caller does both), and decides nothing
// that a package it wires decides.
package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/goferproxy/gofer/activities"
	"github.com/goferproxy/gofer/rules"
	"github.com/goferproxy/gofer/server"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/sumdb"
	"github.com/goferproxy/gofer/upstream"
	"github.com/goferproxy/gofer/warm"
	"github.com/goferproxy/gofer/worker"
)

// Config holds the parts of one gofer process. Blobs, Meta and Upstream are required.
type Config struct {
	Blobs storage.Blobs
	Meta  storage.Metadata
	// Upstream is the upstream list; its Direct (the "direct" entry), Egress and Client are the
	// caller's to set. New sets its Meter, unless set, to Meter.
	Upstream *upstream.Chain
	// Private fetches the modules that Rules mark private, from version control, with the
	// operator's credentials; their names never reach Upstream. Nil: they cannot be fetched.
	Private upstream.Source
	// SumDB checks every fetched version and serves /sumdb/; nil checks none. New sets its
	// Blobs to Blobs and, unless set, its Private to the modules that Rules mark private, so
	// that their names never reach the checksum database.
	SumDB *sumdb.Checker
	// Rules route modules; nil routes every module the default way.
	Rules *rules.Live

	// Temporal is the client's HostPort, Namespace and any Interceptors of the caller's; New
	// sets the logger and the metrics handler and adds the tracing interceptor. The client is
	// lazy: a front end without a worker starts, and serves hits, while Temporal is out of
	// reach (a worker must register its search attributes first, so New fails then).
	Temporal client.Options
	// Log receives every log line, Temporal's included; nil logs nothing.
	Log *zap.Logger
	// Meter counts what gofer and Temporal's SDK count; nil counts nothing.
	Meter metric.Meter
	// Tracer traces requests, and (through Temporal's tracing interceptor) the workflow
	// starts, workflows and activities they cause; nil: the global provider.
	Tracer trace.TracerProvider

	// Worker runs a worker in this process (as `gofer serve` does by default).
	Worker bool
	// ProgressEvery and LocalZipLimit tune the worker's fetches (activities.Activities).
	ProgressEvery time.Duration
	LocalZipLimit int64
	// ScrubEvery is how often the scrub schedule runs; zero removes it.
	ScrubEvery time.Duration
	// Watches are the watchlist's entries, kept by schedules of their own. The proxies its
	// "follow" entries name are reached with Upstream's Client and Egress, and their fetches
	// fall through to Upstream.
	Watches []warm.WatchEntry
	// WarmConcurrency is how many versions a warm fetches at once; zero means 8.
	WarmConcurrency int

	// Server holds the front end's own settings (waits, caches, download modes, the admin
	// token and UI, who may use the proxy, /metrics); New sets the rest from the fields above:
	// its stores, upstream, Direct (Private), Temporal client, Commits (from the worker in this
	// process), checksum database, rules, log, meter, tracer, the admin API's Temporal client,
	// namespace and warm concurrency and, unless set, its readiness checks. Nil: no front end
	// (`gofer worker`).
	Server *server.Config
}

// Gofer is one running gofer process: a worker, a front end, or both.
type Gofer struct {
	// Temporal is the process's Temporal client.
	Temporal client.Client
	worker   sdkworker.Worker
	http     *http.Server
}

// New connects to Temporal, starts the worker if c.Worker and builds the front end if c.Server
// is set; Serve serves it, Close stops everything New started.
func New(ctx context.Context, c Config) (*Gofer, error) {
	if c.Log == nil {
		c.Log = zap.NewNop()
	}
	if c.Meter == nil {
		c.Meter = noop.Meter{}
	}
	if c.WarmConcurrency == 0 {
		c.WarmConcurrency = 8
	}
	if c.Upstream.Meter == nil { // a Chain's Meter is set once, before its first request
		c.Upstream.Meter = c.Meter
	}
	if c.SumDB != nil {
		c.SumDB.Blobs = c.Blobs
		if c.SumDB.Private == nil {
			rs := c.Rules
			c.SumDB.Private = func(path string) bool { return rs.Match(path).Rule == rules.Private }
		}
	}
	opts := c.Temporal
	opts.Logger = TemporalLogger(c.Log)
	opts.MetricsHandler = temporalMetrics(c.Meter, c.Log)
	ti, err := tracingInterceptor(c.Tracer)
	if err != nil {
		return nil, err
	}
	opts.Interceptors = append(slices.Clip(opts.Interceptors), ti)
	tc, err := client.NewLazyClient(opts)
	if err != nil {
		return nil, err
	}
	g := &Gofer{Temporal: tc}

	var commits *server.Commits
	if c.Worker {
		commits = &server.Commits{}
		// A nil *sumdb.Checker must stay a nil interface: the activities check nothing then.
		var checker activities.SumChecker
		if c.SumDB != nil {
			checker = c.SumDB
		}
		follows, err := followed(c)
		if err != nil {
			tc.Close()
			return nil, err
		}
		g.worker = worker.New(tc, &activities.Activities{Upstream: c.Upstream, Follows: follows, Direct: c.Private, Blobs: c.Blobs, Meta: c.Meta,
			SumDB: checker, Rules: c.Rules, Log: c.Log, Meter: c.Meter, Temporal: tc, Committed: commits.Done,
			ProgressEvery: c.ProgressEvery, LocalZipLimit: c.LocalZipLimit})
		if err := startWorker(ctx, c, tc, g.worker); err != nil {
			tc.Close()
			return nil, fmt.Errorf("%w (Temporal at %s, namespace %q)", err, opts.HostPort, opts.Namespace)
		}
	}
	if c.Server != nil {
		s := *c.Server
		s.Blobs, s.Meta, s.Upstream, s.Temporal, s.Commits = c.Blobs, c.Meta, c.Upstream, tc, commits
		s.Rules, s.Log, s.Meter, s.Tracer = c.Rules, c.Log, c.Meter, c.Tracer
		s.Direct = c.Private
		if c.SumDB != nil {
			s.SumDB = c.SumDB
		}
		s.Admin.Temporal, s.Admin.Namespace, s.Admin.WarmConcurrency = tc, opts.Namespace, c.WarmConcurrency
		if s.Ready == nil {
			s.Ready = server.Checks(c.Blobs, c.Meta, tc)
		}
		g.http = server.New(s).HTTPServer()
	}
	return g, nil
}

// followed is the client of every proxy c.Watches follows, by its feed name: its index, and
// its versions, or else, whatever it fails with, the upstream's (a request that joins a follow's
// fetch must not wait for a followed proxy that is down).
func followed(c Config) (map[string]*upstream.Chain, error) {
	follows := map[string]*upstream.Chain{}
	for _, e := range c.Watches {
		if e.Follow.URL == "" {
			continue
		}
		chain, err := upstream.Parse(e.Follow.URL)
		if err != nil { // not from warm.ParseWatchlist; the error could show the URL's user
			return nil, fmt.Errorf("follow %s: not the URL of a proxy", e.Follow.Feed())
		}
		chain.Client, chain.Egress = c.Upstream.Client, c.Upstream.Egress
		follows[e.Follow.Feed()] = chain.OrElse(c.Upstream)
	}
	return follows, nil
}

// startWorker registers the namespace's search attributes, starts w, then makes its schedules
// ready.
func startWorker(ctx context.Context, c Config, tc client.Client, w sdkworker.Worker) error {
	if err := worker.EnsureSearchAttributes(ctx, tc, c.Temporal.Namespace); err != nil {
		return err
	}
	if err := w.Start(); err != nil {
		return fmt.Errorf("starting the worker: %w", err)
	}
	if err := worker.EnsureScrubSchedule(ctx, tc, c.ScrubEvery); err != nil {
		w.Stop()
		return err
	}
	if err := worker.EnsureWatchSchedules(ctx, tc, c.Blobs, c.Watches, c.WarmConcurrency); err != nil {
		w.Stop()
		return err
	}
	return nil
}

// Serve serves the front end on l until ctx ends, then lets the requests in flight finish for
// up to ten seconds. Without a front end it only waits for ctx.
func (g *Gofer) Serve(ctx context.Context, l net.Listener) error {
	if g.http == nil {
		<-ctx.Done()
		return nil
	}
	errc := make(chan error, 1)
	go func() { errc <- g.http.Serve(l) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil // Close
		}
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return g.http.Shutdown(shutdown)
}

// Close stops the front end at once (its connections too), then the worker and the Temporal
// client. It leaves the stores open.
func (g *Gofer) Close() {
	if g.http != nil {
		g.http.Close()
	}
	if g.worker != nil {
		g.worker.Stop()
	}
	g.Temporal.Close()
}
