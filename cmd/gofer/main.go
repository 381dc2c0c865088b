// Command gofer is the gofer module proxy: `gofer serve` runs the GOPROXY front end (and, by
// default, a worker in the same process), `gofer worker` runs a worker only, `gofer version`
// prints the build; gc, scrub and warm are an operator's tools. It reads the settings and the
// environment, opens the stores and clients they name, and hands them to package app, which
// assembles the process; it decides nothing a package decides.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
	"golang.org/x/net/netutil"

	"github.com/goferproxy/gofer/app"
	"github.com/goferproxy/gofer/egress"
	"github.com/goferproxy/gofer/internal/logging"
	"github.com/goferproxy/gofer/rules"
	"github.com/goferproxy/gofer/server"
	"github.com/goferproxy/gofer/sumdb"
	"github.com/goferproxy/gofer/upstream"
	"github.com/goferproxy/gofer/vcs"
	"github.com/goferproxy/gofer/warm"
)

const usage = `gofer is a Go module proxy (GOPROXY server) backed by Temporal.

Usage:
  gofer serve [flags]    serve the GOPROXY protocol (and run a worker, unless --worker=false)
  gofer worker [flags]   run a worker only
  gofer gc --dry-run     list blobs that no metadata record names (left by failed commits) and staged files
  gofer gc --remove-staged  remove the staged files of fetch runs that have ended
  gofer scrub [flags]    re-hash every stored version against its record and the checksum database
  gofer warm [flags] F   fetch every version a go.sum, go.mod or module@version list names, through a gofer
  gofer export --out P [F]  write stored versions (those F names, or by --since/--until/--modules) and their
                         checksum database proofs as a bundle, for GOPROXY=file://
  gofer version          print the version

Run "gofer serve --help" for the settings; each flag can also be set by its GOFER_* variable.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "gofer:", err)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], true)
	case "worker":
		return serve(ctx, args[1:], false)
	case "gc":
		return gc(ctx, args[1:], stdout)
	case "scrub":
		return scrubCmd(ctx, args[1:], stdout)
	case "warm":
		return warmCmd(ctx, args[1:], stdout, os.Stderr)
	case "export":
		return exportCmd(ctx, args[1:], stdout, os.Stderr)
	case "version":
		fmt.Fprintln(stdout, "gofer", version())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// checksums builds, from the settings, where gofer may connect, the upstream list (the
// checksum database may be proxied by its entries) and the checksum database's checker.
func checksums(s *settings, log *zap.Logger) (*egress.Policy, *upstream.Chain, *sumdb.Checker, error) {
	allow, err := egress.Parse(s.allowHosts)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("GOFER_ALLOW_HOSTS: %w", err)
	}
	chain, err := upstream.Parse(s.upstream)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("GOFER_UPSTREAM: %w", err)
	}
	chain.Egress = allow
	db, err := sumdb.ParseGOSUMDB(s.sumdb, chain.Entries())
	if err != nil {
		return nil, nil, nil, fmt.Errorf("GOFER_SUMDB: %w", err)
	}
	return allow, chain, &sumdb.Checker{DB: db, NoSumDB: s.noSumDB, Log: log, Egress: allow}, nil
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// serve runs the front end (frontEnd true, "gofer serve") or a worker alone ("gofer worker")
// until ctx ends.
func serve(ctx context.Context, args []string, frontEnd bool) error {
	name := "worker"
	if frontEnd {
		name = "serve"
	}
	s, err := parseSettings(name, args, frontEnd)
	if err != nil {
		return err
	}
	log, stopLog, err := logging.New(s.logFormat, s.logLevel, os.Stderr)
	if err != nil {
		return err
	}
	defer stopLog()

	allow, chain, checker, err := checksums(s, log)
	if err != nil {
		return err
	}
	if err := vcs.CheckIsolation(); err != nil {
		log.Warn("the go command and git run for version control are not isolated: a go-get page can make them connect to this host's loopback services (run gofer with CAP_SYS_ADMIN on Linux to isolate them)", zap.Error(err))
	}
	direct, private := fetchers(s, allow)
	defer direct.Close()
	defer private.Close()
	chain.Direct = direct
	blobs, err := openBlobs(ctx, s, log)
	if err != nil {
		return err
	}
	meta, err := openMetadata(ctx, s)
	if err != nil {
		return err
	}
	defer meta.Close()
	rs, err := rules.NewLive(s.rules)
	if err != nil {
		return fmt.Errorf("GOFER_RULES: %w", err)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP) // before anything else can send one
	defer signal.Stop(hup)
	go reloadOnHangup(ctx, hup, rs, log)
	metrics, meter, err := newMetrics()
	if err != nil {
		return err
	}
	tp, shutdownTracing, err := setupTracing(ctx, log)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shutdownTracing(sctx) // failures were logged by the exporter's error handler
	}()
	var watches []warm.WatchEntry
	if s.worker && s.watchlist != "" {
		if watches, err = parseFile("GOFER_WATCHLIST", s.watchlist, warm.ParseWatchlist); err != nil {
			return err
		}
	}
	cfg := app.Config{Blobs: blobs, Meta: meta, Upstream: chain, Private: private, SumDB: checker, Rules: rs,
		Temporal: client.Options{HostPort: s.temporalAddress, Namespace: s.namespace}, Log: log, Meter: meter, Tracer: tp,
		Worker: s.worker, ScrubEvery: s.scrubEvery, Watches: watches, WarmConcurrency: int(s.warmConcurrency)}
	if frontEnd {
		cfg.Server = &server.Config{FetchWait: s.fetchWait, MaxFetches: int(s.maxFetches), CacheBytes: s.cacheBytes, MutableTTL: s.mutableTTL,
			NotFoundTTL: s.notFoundTTL, ZipRedirect: s.zipRedirect, PassthroughWithoutTemporal: s.passthroughDown, IndexPrivate: s.indexPrivate, Metrics: metrics,
			Admin: server.Admin{Token: s.adminToken, UI: s.temporalUI}}
		if s.proxyAuth != "" {
			if cfg.Server.Auth, err = parseFile("GOFER_PROXY_AUTH", s.proxyAuth, server.ParseCredentials); err != nil {
				return err
			}
		}
	}
	g, err := app.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer g.Close()
	log.Info("gofer started", zap.String("upstream", chain.String()), zap.String("sumdb", s.sumdb),
		zap.String("nosumdb", s.noSumDB), zap.String("rules", s.rules), zap.String("temporal", s.temporalAddress),
		zap.String("data", s.dataDir), zap.Bool("frontEnd", frontEnd), zap.Bool("worker", s.worker))
	if !frontEnd {
		return g.Serve(ctx, nil)
	}
	l, err := net.Listen("tcp", s.listen)
	if err != nil {
		return err
	}
	log.Info("serving the GOPROXY protocol", zap.String("url", "http://"+l.Addr().String()))
	return g.Serve(ctx, netutil.LimitListener(l, int(s.maxConns)))
}

// fetchers returns the version control fetchers: direct for the "direct" entry of the upstream
// list, which fetches whatever module path a client names, and so only anonymously and only
// from public addresses, never over ssh; and private for the modules a private rule routes,
// which the operator chose: it has the credentials, GOFER_GIT_SSH_COMMAND and GOFER_ALLOW_HOSTS.
func fetchers(s *settings, allow *egress.Policy) (direct, private *vcs.Fetcher) {
	return &vcs.Fetcher{}, &vcs.Fetcher{NetrcFile: s.netrc, GitConfig: s.gitConfig, GitSSHCommand: s.gitSSHCommand, Egress: allow}
}

// parseFile parses the file that the setting names with parse; its errors name both.
func parseFile[T any](setting, name string, parse func(io.Reader) (T, error)) (T, error) {
	var v T
	f, err := os.Open(name)
	if err != nil {
		return v, fmt.Errorf("%s: %w", setting, err)
	}
	defer f.Close()
	if v, err = parse(f); err != nil {
		return v, fmt.Errorf("%s %s: %w", setting, name, err)
	}
	return v, nil
}

// reloadOnHangup reloads the rules on every SIGHUP until ctx ends; a bad file is logged and the
// rules in force stay.
func reloadOnHangup(ctx context.Context, hup <-chan os.Signal, rs *rules.Live, log *zap.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := rs.Reload(); err != nil {
				log.Error("rules not reloaded; the old ones stay in force", zap.Error(err))
			} else {
				log.Info("rules reloaded")
			}
		}
	}
}
