// Package e2e tests gofer end to end: a real Temporal dev server, real disk and embedded
// stores, a fake upstream GOPROXY, and the real go command as the client.
package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/goferproxy/gofer/activities"
	"github.com/goferproxy/gofer/app"
	"github.com/goferproxy/gofer/internal/testserver"
	"github.com/goferproxy/gofer/rules"
	"github.com/goferproxy/gofer/server"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/storage/disk"
	"github.com/goferproxy/gofer/storage/embedded"
	"github.com/goferproxy/gofer/storage/mongo"
	"github.com/goferproxy/gofer/storage/s3"
	"github.com/goferproxy/gofer/sumdb"
	"github.com/goferproxy/gofer/upstream"
	"github.com/goferproxy/gofer/warm"
)

var record = flag.Bool("record", false, "rewrite the workflow histories under workflows/testdata from real runs")

// The real servers every test shares; each test uses a namespace, bucket and database of its own.
var (
	temporalServer  *testserver.TemporalServer
	temporalAddress string
	s3Server        *testserver.S3Server
	mongoServer     *testserver.MongoServer
	nextNamespace   atomic.Int32
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dev, err := testserver.Temporal()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer dev.Close()
	temporalServer, temporalAddress = dev, dev.Address
	if s3Server, err = testserver.S3(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer s3Server.Close()
	if mongoServer, err = testserver.Mongo(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer mongoServer.Close()
	return m.Run()
}

// namespace hands each test a namespace of its own, so workflow IDs never collide across tests.
func namespace(t testing.TB) string {
	n := int(nextNamespace.Add(1)) - 1
	if n >= testserver.Namespaces {
		t.Fatalf("more than %d e2e tests: raise testserver.Namespaces", testserver.Namespaces)
	}
	return testserver.Namespace(n)
}

// proxy is one in-process gofer (front end and worker) wired like `gofer serve`.
type proxy struct {
	URL      string
	blobs    storage.Blobs
	meta     storage.Metadata
	temporal client.Client
	address  string // of the Temporal server
	ns       string
	upstream *upstream.Chain
	starts   atomic.Int32 // ExecuteWorkflow calls through the process's client (the front end's, in tests that warm nothing)
	metrics  *sdkmetric.ManualReader
	logs     *observer.ObservedLogs
	cfg      app.Config // of the process startGofer started
	stop     func()     // stops that process (at most once, whatever calls it)
}

// countingStarts counts the workflow starts (or joins) asked of a Temporal client.
type countingStarts struct {
	interceptor.ClientInterceptorBase
	n *atomic.Int32
}

func (c *countingStarts) InterceptClient(next interceptor.ClientOutboundInterceptor) interceptor.ClientOutboundInterceptor {
	return &countingStartsOut{ClientOutboundInterceptorBase: interceptor.ClientOutboundInterceptorBase{Next: next}, n: c.n}
}

type countingStartsOut struct {
	interceptor.ClientOutboundInterceptorBase
	n *atomic.Int32
}

func (c *countingStartsOut) ExecuteWorkflow(ctx context.Context, in *interceptor.ClientExecuteWorkflowInput) (client.WorkflowRun, error) {
	c.n.Add(1)
	return c.Next.ExecuteWorkflow(ctx, in)
}

type options struct {
	fetchWait time.Duration
	// progressEvery spaces the downloads' progress reports (activities.ProgressEvery).
	progressEvery time.Duration
	// localZipLimit is the largest zip fetched in one local activity (activities.LocalZipLimit).
	localZipLimit int64
	mutableTTL    time.Duration
	zipRedirect   time.Duration
	// temporal replaces the shared Temporal server's address (to stop a server of its own).
	temporal string
	// blobs and meta replace the default disk and embedded stores (to use S3 and MongoDB, or
	// to put a fault between the stores and gofer).
	blobs storage.Blobs
	meta  storage.Metadata
	// sumdb checks fetched versions against a checksum database and serves /sumdb/ (its Blobs
	// are set to gofer's); nil checks none.
	sumdb *sumdb.Checker
	// direct answers the "direct" entry of the upstream list (fetches from version control);
	// nil leaves that entry unsupported.
	direct upstream.Source
	// rules route modules (private ones to direct, which must then also serve their queries).
	rules *rules.Live
	// admin is the admin API's token; empty turns the admin API off.
	admin string
	// auth is who may use the proxy endpoints; nil leaves them open.
	auth *server.Credentials
	// watchlist is the worker's watchlist (GOFER_WATCHLIST's format).
	watchlist string
	// tracer traces the front end's requests and, through Temporal's tracing interceptor,
	// the workflow starts, workflows and activities, as `gofer serve` does; nil traces nothing.
	tracer *sdktrace.TracerProvider
}

// uiBase is the Temporal UI address the test front ends link to.
const uiBase = "http://ui.test"

func startGofer(t testing.TB, upstreamURL string, o options) *proxy {
	t.Helper()
	dir := t.TempDir()
	blobs, meta := o.blobs, o.meta
	var err error
	if blobs == nil {
		if blobs, err = disk.New(filepath.Join(dir, "blobs")); err != nil {
			t.Fatal(err)
		}
	}
	if meta == nil {
		if meta, err = embedded.Open(filepath.Join(dir, "metadata.db")); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { meta.Close() }) // after the process's own cleanup, which uses it
	chain, err := upstream.Parse(upstreamURL)
	if err != nil {
		t.Fatal(err)
	}
	chain.Direct = o.direct
	g := &proxy{blobs: blobs, meta: meta, address: cmp.Or(o.temporal, temporalAddress), ns: namespace(t), upstream: chain, metrics: sdkmetric.NewManualReader()}
	core, logs := observer.New(zap.InfoLevel)
	g.logs = logs
	cfg := app.Config{Blobs: blobs, Meta: meta, Upstream: chain, Private: o.direct, SumDB: o.sumdb, Rules: o.rules,
		Temporal: client.Options{HostPort: g.address, Namespace: g.ns, Interceptors: []interceptor.ClientInterceptor{&countingStarts{n: &g.starts}}},
		Log:      zap.New(zapcore.NewTee(zaptest.NewLogger(t).Core(), core)),
		Meter:    sdkmetric.NewMeterProvider(sdkmetric.WithReader(g.metrics)).Meter("gofer"),
		Worker:   true, ProgressEvery: o.progressEvery, LocalZipLimit: o.localZipLimit, WarmConcurrency: 16,
		Server: &server.Config{FetchWait: o.fetchWait, MutableTTL: o.mutableTTL, ZipRedirect: o.zipRedirect,
			Admin: server.Admin{Token: o.admin, UI: uiBase}, Auth: o.auth}}
	if o.tracer != nil { // not a nil *sdktrace.TracerProvider: nil is the global one
		cfg.Tracer = o.tracer
	}
	if cfg.Watches, err = warm.ParseWatchlist(strings.NewReader(o.watchlist)); err != nil {
		t.Fatal(err)
	}
	g.cfg = cfg
	g.URL, g.stop = g.start(t, cfg)
	return g
}

// restart stops g's process, as a deploy does, and starts it again over the same stores and
// namespace, on a port of its own: g.URL and g.temporal are then the new process's.
func (g *proxy) restart(t testing.TB) {
	t.Helper()
	g.stop()
	g.temporal = nil
	g.URL, g.stop = g.start(t, g.cfg)
}

// start runs the gofer process cfg assembles, serving on a port of its own, until the test
// ends or stop is called, and returns its URL; g.temporal is its Temporal client if g has none
// yet.
func (g *proxy) start(t testing.TB, cfg app.Config) (url string, stop func()) {
	t.Helper()
	p, err := app.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	stop = sync.OnceFunc(p.Close)
	t.Cleanup(stop)
	if g.temporal == nil {
		g.temporal = p.Temporal
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(context.Background(), l)
	return "http://" + l.Addr().String(), stop
}

// alarms is how many checksum alarms with this reason g's worker has counted.
func (g *proxy) alarms(t *testing.T, reason string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := g.metrics.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == activities.AlarmMetric {
				for _, dp := range sum.DataPoints {
					if v, _ := dp.Attributes.Value("reason"); v.AsString() == reason {
						n += dp.Value
					}
				}
			}
		}
	}
	return n
}

// frontEnd starts one more front end (no worker) over g's stores and namespace, with a cache of
// its own, and returns its URL.
func (g *proxy) frontEnd(t *testing.T, fetchWait time.Duration) string {
	t.Helper()
	return g.frontEndWith(t, server.Config{FetchWait: fetchWait})
}

// frontEndWith is frontEnd with more settings in cfg (its stores, upstream and Temporal are g's).
func (g *proxy) frontEndWith(t *testing.T, cfg server.Config) string {
	t.Helper()
	url, _ := g.start(t, app.Config{Blobs: g.blobs, Meta: g.meta, Upstream: g.upstream,
		Temporal: client.Options{HostPort: g.address, Namespace: g.ns}, Server: &cfg})
	return url
}

// goCommand is the go command with GOPROXY=goproxy, no checksum database (the fake modules are
// in none yet) and the module cache modcache.
func goCommand(goproxy, modcache string, args ...string) *exec.Cmd {
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(),
		"GOPROXY="+goproxy, "GOSUMDB=off", "GONOSUMDB=", "GOPRIVATE=", "GONOPROXY=",
		"GOFLAGS=-modcacherw", "GOMODCACHE="+modcache, "GOTOOLCHAIN=local", "GOWORK=off",
		// The checksum database state (GOPATH/pkg/sumdb) belongs to one test's database.
		"GOPATH="+filepath.Join(modcache, "gopath"))
	return cmd
}

// download is `go mod download -json path@version` into a fresh module cache; env, NAME=value,
// overrides the defaults of goCommand.
func download(t *testing.T, goproxy, pathVersion string, env ...string) (moduleJSON, error) {
	t.Helper()
	cmd := goCommand(goproxy, t.TempDir(), "mod", "download", "-json", pathVersion)
	cmd.Env = append(cmd.Env, env...)
	cmd.Dir = t.TempDir()
	b, err := cmd.CombinedOutput()
	out := string(b)
	var m moduleJSON
	if jerr := json.Unmarshal([]byte(out), &m); jerr != nil && err == nil {
		t.Fatalf("go mod download output: %v\n%s", jerr, out)
	}
	if err == nil && m.Error != "" {
		err = fmt.Errorf("%s", m.Error)
	}
	if err != nil {
		return m, fmt.Errorf("go mod download %s: %v\n%s", pathVersion, err, out)
	}
	return m, nil
}

type moduleJSON struct {
	Path, Version, Error, Info, GoMod, Zip, Sum, GoModSum string
}

// workflowCount counts the workflows ever started in g's namespace.
func (g *proxy) workflowCount(t *testing.T) int64 {
	t.Helper()
	resp, err := g.temporal.CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{Namespace: g.ns})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetCount()
}

// recordHistory writes the history of workflow id, as `temporal workflow show --output json`
// prints it, to file: the replay tests in workflows/ check that the workflow code still replays
// the histories of real runs.
func recordHistory(t *testing.T, g *proxy, id, file string) {
	t.Helper()
	bin, err := testserver.Binary("temporal")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "workflow", "show", "--address", temporalAddress, "--namespace", g.ns,
		"--workflow-id", id, "--output", "json").Output()
	if err != nil {
		t.Fatalf("temporal workflow show: %v", err)
	}
	if err := os.WriteFile(file, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// s3Store opens a fresh bucket on the shared S3 server.
func s3Store(t testing.TB) (*s3.Store, string) {
	t.Helper()
	bucket := "t" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	st, err := s3.New(context.Background(), s3.Config{Endpoint: s3Server.Endpoint, Region: s3Server.Region, Bucket: bucket,
		ForcePathStyle: true, CreateBucket: true, AccessKey: s3Server.AccessKey, SecretKey: s3Server.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	return st, bucket
}

// mongoStore opens a fresh database on the shared MongoDB server.
func mongoStore(t testing.TB) (*mongo.Store, string) {
	t.Helper()
	db := strings.ReplaceAll(t.Name(), "/", "_")
	st, err := mongo.Open(context.Background(), mongoServer.URI, db)
	if err != nil {
		t.Fatal(err)
	}
	return st, db
}
