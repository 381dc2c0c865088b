// Package server is gofer's HTTP front end: the GOPROXY download protocol on gin. A request for
// a stored version is answered from storage and memory alone; only a miss starts (or joins) the
// Temporal fetch workflow of that version and waits for it. This package writes nothing to
// storage but the warm lists posted to its admin API (warm.PutList: never a module's files,
// which only the fetch workflows store; the /sumdb/ handler it mounts keeps what it has
// verified), and it never talks to Temporal or the upstream on the hit path.
package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/rules"
	"github.com/goferproxy/gofer/server/httperr"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/upstream"
)

// Upstream answers the queries, the files of passthrough modules, and where a redirect-mode
// miss is sent (URL): an upstream.Chain.
type Upstream interface {
	upstream.Source
	URL(path, version, ext string) (string, error)
}

// Presigner makes short-lived URLs that let a client GET a blob straight from the store.
type Presigner interface {
	PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error)
}

// Starter starts (or joins) workflows; a Temporal client.Client is one.
type Starter interface {
	ExecuteWorkflow(ctx context.Context, options client.StartWorkflowOptions, workflow any, args ...any) (client.WorkflowRun, error)
}

// Config holds what a Server needs. Blobs, Meta, Upstream and Temporal are required.
type Config struct {
	Blobs    storage.Blobs
	Meta     storage.Metadata
	Upstream Upstream
	Temporal Starter
	// Commits, if set, is told by the worker in this process of the fetches it has stored, so
	// that the requests waiting for them are answered before their workflows end.
	Commits *Commits
	// FetchWait is how long a request waits for a fetch that does not move before answering 503
	// (see await); zero means 1m.
	FetchWait time.Duration
	// MaxFetches bounds the fetches this front end waits for at once (one per version that
	// requests wait for); a miss that would start one more answers 503 with Retry-After.
	// Zero means 256.
	MaxFetches int
	// CacheBytes bounds the in-memory cache of metadata, .info, .mod and zips of at most 64 KiB;
	// zero means 32 MiB.
	CacheBytes int64
	// MutableTTL is how long upstream answers to @v/list, @latest and branch queries are
	// reused; zero means 1m, negative means never.
	MutableTTL time.Duration
	// NotFoundTTL is how long a fetch that ended not found or invalid is remembered, so that
	// requests for that version are answered without another fetch; zero means 1m, negative
	// means never.
	NotFoundTTL time.Duration
	// Direct answers the queries of the modules that Rules mark private, from version control:
	// their names never go to the upstream proxies. Nil: such queries are not found.
	Direct upstream.Source
	// Rules route requests per module (exclude, passthrough, download modes); nil routes every
	// module the default way: stored, download mode sync.
	Rules *rules.Live
	// PassthroughWithoutTemporal answers a miss whose fetch cannot start (Temporal out of reach)
	// from the upstream, streamed and not stored, instead of 503.
	PassthroughWithoutTemporal bool
	// Metrics serves GET /metrics (Prometheus text format); nil answers 404 there.
	Metrics http.Handler
	// Meter makes the request, cache and byte counters /metrics shows; nil counts nothing.
	Meter metric.Meter
	// Tracer traces every request (otelgin); nil or a no-op provider traces nothing, at no cost.
	Tracer trace.TracerProvider
	// Ready are the dependencies GET /readyz checks; none: /readyz answers as /healthz does.
	Ready []ReadyCheck
	// SumDB serves /sumdb/<name>/... (the checksum database proxy protocol) for the configured
	// database; nil answers 404 there, as for a proxy that proxies no database.
	SumDB http.Handler
	// StallTimeout is how long a client may take to accept each MiB of a response it is sent;
	// one that stalls longer is cut off. Zero means 1m.
	StallTimeout time.Duration
	// ZipRedirect, when positive and Blobs can presign URLs, answers .zip requests with a
	// redirect to a presigned URL valid this long instead of streaming the zip; zero streams.
	ZipRedirect time.Duration
	// IndexPrivate lists the stored versions of the modules that Rules mark private in GET
	// /index too; false leaves them out.
	IndexPrivate bool
	// Admin configures the admin API; with no token it is off (404).
	Admin Admin
	// Auth, if not nil, is who may use the proxy endpoints (the GOPROXY protocol, /sumdb/,
	// /catalog and /index); nil leaves them open. /healthz and /metrics stay open.
	Auth *Credentials
	// Log receives errors the client cannot see; nil logs nothing.
	Log *zap.Logger
}

// Server serves the GOPROXY protocol. Create it with New.
type Server struct {
	cfg      Config
	versions *lru[*entry]
	mutable  *ttl[[]byte]
	failed   *ttl[error]        // fetches that ended not found or invalid
	fetches  singleflight.Group // misses of one version in this process share one wait
	waiting  atomic.Int64       // fetches waited for (at most cfg.MaxFetches)
	queries  singleflight.Group // likewise for upstream queries
	loads    singleflight.Group // and for reads of a stored version (path@version) or small zip (its key) into memory
	handler  http.Handler
	in       *instruments
	parsed   *parsedRequests
	// scope starts every Cache-Control: "public, ", or "private, " when the proxy requires
	// credentials, so that no shared cache hands a private module to someone else.
	scope string
	// cacheControl maps immutable and shortLived to their header values, with scope.
	cacheControl map[string][]string
	copyBufs     sync.Pool // of *[32 << 10]byte, for readFromWriter
	// requests writes the request log: Log without the caller, which is always observe's
	// and would cost each request a stack walk.
	requests  *zap.Logger
	logFields sync.Pool // of *[]zap.Field, for the request log's lines
}

// New returns a Server for cfg.
func New(cfg Config) *Server {
	if cfg.FetchWait == 0 {
		cfg.FetchWait = time.Minute
	}
	if cfg.CacheBytes == 0 {
		cfg.CacheBytes = 32 << 20
	}
	if cfg.MaxFetches == 0 {
		cfg.MaxFetches = 256
	}
	if cfg.StallTimeout == 0 {
		cfg.StallTimeout = time.Minute
	}
	if cfg.MutableTTL == 0 {
		cfg.MutableTTL = time.Minute
	}
	if cfg.NotFoundTTL == 0 {
		cfg.NotFoundTTL = time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Admin.WarmConcurrency <= 0 {
		cfg.Admin.WarmConcurrency = 8
	}
	s := &Server{cfg: cfg, versions: newLRU[*entry](cfg.CacheBytes), mutable: newTTL[[]byte](cfg.MutableTTL), failed: newTTL[error](cfg.NotFoundTTL), parsed: newParsedRequests()}
	s.requests = cfg.Log.WithOptions(zap.WithCaller(false))
	s.copyBufs.New = func() any { return new([32 << 10]byte) }
	s.logFields.New = func() any { return new([]zap.Field) }
	s.scope = "public, "
	var auth []gin.HandlerFunc
	if cfg.Auth != nil {
		s.scope = "private, "
		auth = append(auth, cfg.Auth.middleware())
	}
	s.cacheControl = map[string][]string{immutable: headerValue(s.scope + immutable), shortLived: headerValue(s.scope + shortLived)}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	s.in = newInstruments(cfg.Meter)
	r.Use(append(s.observe(), gin.Recovery())...)
	r.GET("/healthz", health)
	r.HEAD("/healthz", health)
	r.GET("/readyz", s.ready)
	r.HEAD("/readyz", s.ready)
	if cfg.Metrics != nil {
		r.GET("/metrics", s.withDeadline, gin.WrapH(cfg.Metrics))
	}
	s.adminRoutes(r)
	// No module path starts with "sumdb/" or is "catalog" or "index": its first element has
	// no dot.
	proxy := r.Group("", auth...)
	proxy.GET("/catalog", s.withDeadline, s.catalog)
	proxy.HEAD("/catalog", s.withDeadline, s.catalog)
	proxy.GET("/index", s.withDeadline, s.index)
	proxy.HEAD("/index", s.withDeadline, s.index)
	proxy.GET("/sumdb/*rest", s.sumdb)
	proxy.HEAD("/sumdb/*rest", s.sumdb)
	r.NoRoute(append(auth, s.proxy)...)
	s.handler = r
	return s
}

// ServeHTTP serves the GOPROXY protocol and /healthz.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Timeouts of the connections an HTTPServer serves. A request must arrive whole in
// readTimeout (the largest body gofer takes is a 16 MiB warm list), and a connection that waits
// for its next request is closed after idleTimeout. A response has no deadline as a whole,
// since a request may wait for a fetch and a 500 MiB zip to a slow client may rightly take
// long; instead every body larger than the socket's buffers take at once is written under
// deadlines of Config.StallTimeout, renewed with each chunk (readFromWriter, withDeadline), so
// that a client that takes nothing holds its connection for StallTimeout at most.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = time.Minute
	idleTimeout       = time.Minute
)

// HTTPServer returns the http.Server to serve s with, its timeouts set.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{Handler: s, ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout, IdleTimeout: idleTimeout}
}

func health(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	c.String(http.StatusOK, "ok\n")
}

func (s *Server) sumdb(c *gin.Context) {
	if s.cfg.SumDB == nil {
		httperr.Write(c.Writer, gofer.Errorf(gofer.ErrNotFound, "no checksum database is proxied here"))
		return
	}
	s.cfg.SumDB.ServeHTTP(c.Writer, c.Request)
}

func (s *Server) proxy(c *gin.Context) {
	w, r := c.Writer, c.Request
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		httperr.Text(w, http.StatusMethodNotAllowed, "method not allowed\n")
		return
	}
	req, err := s.parsed.parse(r.URL.Path)
	if err != nil {
		httperr.Write(w, err)
		return
	}
	ctx := r.Context()
	ri := info(ctx)
	ri.endpoint, ri.module, ri.version = req.kind, req.path, req.version
	if req.kind == "info" && !req.canonical() {
		ri.endpoint = "query"
	}
	act := s.cfg.Rules.Match(req.path)
	switch {
	case act.Rule == rules.Exclude:
		err = gofer.Errorf(gofer.ErrExcluded, "%s is excluded by this proxy's rules", req.path)
	case req.kind == "list":
		err = s.serveList(ctx, w, r, req.path)
	case req.kind == "latest":
		err = s.serveLatest(ctx, w, r, req.path)
	case !req.canonical(): // an .info query for a branch or commit
		err = s.serveQuery(ctx, w, r, req.path, req.version, act)
	case act.Rule == rules.Passthrough:
		err = s.passthrough(ctx, w, r, req)
	default:
		err = s.serveFile(ctx, w, r, req, act.Mode)
	}
	if err != nil {
		ri.err = err.Error() // for the request's log line
		httperr.Write(w, err)
	}
}

// content types by request kind.
var contentTypes = map[string][]string{
	"list":   headerValue("text/plain; charset=utf-8"),
	"latest": headerValue("application/json"),
	"info":   headerValue("application/json"),
	"mod":    headerValue("text/plain; charset=utf-8"),
	"zip":    headerValue("application/zip"),
}

// Cache-Control of canonical versions, which never change, and of mutable answers.
const (
	immutable  = "max-age=31536000, immutable"
	shortLived = "max-age=60"
)

// serveContent answers with body, honouring HEAD, Range and conditional requests. etag is the
// header's value as etag made it, or nil.
func (s *Server) serveContent(w http.ResponseWriter, r *http.Request, kind, cacheControl string, etag []string, body io.ReadSeeker) {
	s.describe(w.Header(), kind, cacheControl, etag)
	if gw, ok := w.(gin.ResponseWriter); ok {
		w = readFromWriter{gw, &s.copyBufs, &info(r.Context()).sent, s.cfg.StallTimeout}
	}
	http.ServeContent(w, r, "", time.Time{}, body)
}

// serveHeld answers with f as serveContent would. A plain GET or HEAD (no range, no
// condition), nearly every hit, is answered as http.ServeContent answers it, without its checks
// of headers that are not there; a body over heldChunk goes out under one write deadline of
// StallTimeout, since a held body is at most maxHeldZip bytes.
func (s *Server) serveHeld(w http.ResponseWriter, r *http.Request, kind, cacheControl string, f held) {
	if !plain(r.Header) {
		s.serveContent(w, r, kind, cacheControl, f.etag, bytes.NewReader(f.data))
		return
	}
	h := w.Header()
	s.describe(h, kind, cacheControl, f.etag)
	if f.length == nil {
		f.length = headerValue(strconv.Itoa(len(f.data)))
	}
	h["Accept-Ranges"] = acceptRanges
	h["Content-Length"] = f.length
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	if len(f.data) > heldChunk {
		rc := http.NewResponseController(w)
		rc.SetWriteDeadline(time.Now().Add(s.cfg.StallTimeout))
		defer rc.SetWriteDeadline(time.Time{}) // the connection's next response starts without one
	}
	w.Write(f.data)
}

// describe sets the headers that describe a body of kind. Header values are shared, never
// rebuilt: a hit allocates as little as it can.
func (s *Server) describe(h http.Header, kind, cacheControl string, etag []string) {
	h["Content-Type"] = contentTypes[kind]
	h["Cache-Control"] = s.cacheControl[cacheControl]
	if etag != nil {
		h["Etag"] = etag
	}
}

var acceptRanges = headerValue("bytes")

// plain reports whether a request's headers ask for no range and set no condition, so that
// http.ServeContent would answer 200 with the whole body.
func plain(h http.Header) bool {
	for _, k := range [...]string{"Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
		if len(h[k]) > 0 {
			return false
		}
	}
	return true
}

// withDeadline puts the response of a handler that writes a body of any size (metrics, the
// catalog) under one write deadline of StallTimeout, lifted when it is done.
func (s *Server) withDeadline(c *gin.Context) {
	rc := http.NewResponseController(c.Writer)
	rc.SetWriteDeadline(time.Now().Add(s.cfg.StallTimeout))
	c.Next()
	rc.SetWriteDeadline(time.Time{})
}

// headerValue is v as a header's value, made once to be set on many responses.
func headerValue(v string) []string { return []string{v} }

// readFromWriter gives gin's writer an io.ReaderFrom. http.ServeContent copies every body
// through an io.LimitedReader, which hides what the body is from io.Copy. A file (a zip on
// disk) goes to the io.ReaderFrom of the net/http writer beneath, so that it goes out by
// sendfile instead of through a buffer, and its bytes are added to sent, since gin does not
// see them; any other body is copied through gin's writer with a pooled buffer, where io.Copy
// would allocate one per response. A body over heldChunk goes out a streamChunk at a time, each
// under a write deadline of stall from its start.
type readFromWriter struct {
	gin.ResponseWriter
	bufs  *sync.Pool
	sent  *int64
	stall time.Duration
}

// streamChunk is how much of a large body goes out under one write deadline; a body of at
// most heldChunk (an .info, most .mod files) fits the socket's buffers whatever the client
// does, and needs none.
const (
	streamChunk = 1 << 20
	heldChunk   = 8 << 10
)

func (w readFromWriter) ReadFrom(r io.Reader) (int64, error) {
	lr, ok := r.(*io.LimitedReader)
	if !ok || lr.N <= heldChunk {
		return w.copy(r)
	}
	rc := http.NewResponseController(w.ResponseWriter)
	defer rc.SetWriteDeadline(time.Time{}) // the connection's next response starts without one
	var total int64
	for lr.N > 0 {
		if err := rc.SetWriteDeadline(time.Now().Add(w.stall)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return total, err
		}
		chunk := &io.LimitedReader{R: lr.R, N: min(lr.N, streamChunk)}
		n, err := w.copy(chunk)
		total += n
		lr.N -= n
		if err != nil || n == 0 {
			return total, err
		}
	}
	return total, nil
}

// copy copies r, an *io.LimitedReader of a file by sendfile, anything else with a pooled buffer.
func (w readFromWriter) copy(r io.Reader) (int64, error) {
	if lr, ok := r.(*io.LimitedReader); ok {
		if _, ok := lr.R.(*os.File); ok {
			if u, ok := w.ResponseWriter.(interface{ Unwrap() http.ResponseWriter }); ok {
				w.WriteHeaderNow()
				n, err := io.Copy(u.Unwrap(), r)
				*w.sent += n
				return n, err
			}
		}
	}
	buf := w.bufs.Get().(*[32 << 10]byte)
	defer w.bufs.Put(buf)
	return io.CopyBuffer(w.ResponseWriter, r, buf[:])
}
