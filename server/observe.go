package server

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/contrib/instrumentation/github.com/gin-gonic/gin/otelgin"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap"
)

// Cache results of a request for a version's file.
const (
	cacheHit  = "hit"  // served from what was stored
	cacheMiss = "miss" // not stored when asked: a fetch was started or joined (or the mode said no)
)

// reqInfo is what the handlers learn about a request, for its log line, its metrics and its
// span. It is also the request's context, the one value it adds to its parent's being itself:
// one allocation where a context.WithValue would be another.
type reqInfo struct {
	context.Context
	id         [1]string // the X-Request-Id header's value
	endpoint   string    // list, latest, info, mod, zip, query, or the route
	module     string
	version    string
	cache      string // cacheHit, cacheMiss, or "" for what is not a stored file
	workflowID string // the fetch the request started or joined
	runID      string
	err        string // why the request failed
	sent       int64  // body bytes sent around gin's writer (by sendfile)
}

type reqInfoKey struct{}

func (ri *reqInfo) Value(key any) any {
	if key == (reqInfoKey{}) {
		return ri
	}
	return ri.Context.Value(key)
}

// info returns the reqInfo of ctx's request; a request the middleware did not see gets a
// throwaway one.
func info(ctx context.Context) *reqInfo {
	if i, ok := ctx.Value(reqInfoKey{}).(*reqInfo); ok {
		return i
	}
	return &reqInfo{}
}

// instruments are the request metrics. The request, byte and cache counts are tallies, read
// at each collection: adding to an SDK counter looks its attribute set up on every request.
type instruments struct {
	duration metric.Float64Histogram
	fetching metric.Int64UpDownCounter // fetches waited for
	refused  metric.Int64Counter       // misses refused at MaxFetches
	tallies  tallies
}

func newInstruments(m metric.Meter) *instruments {
	if m == nil {
		m = noop.Meter{}
	}
	in := &instruments{}
	// Errors here only come from malformed names and leave a no-op instrument.
	requests, _ := m.Int64ObservableCounter("gofer.http.requests", metric.WithDescription("HTTP requests by endpoint and status"))
	in.duration, _ = m.Float64Histogram("gofer.http.request.duration", metric.WithUnit("s"),
		metric.WithDescription("time to answer an HTTP request, by endpoint"),
		metric.WithExplicitBucketBoundaries(0.001, 0.005, 0.025, 0.1, 0.5, 1, 5, 15, 60))
	bytes, _ := m.Int64ObservableCounter("gofer.http.response.bytes", metric.WithUnit("By"), metric.WithDescription("bytes of response bodies, by endpoint"))
	in.fetching, _ = m.Int64UpDownCounter("gofer.fetches.waiting", metric.WithDescription("fetches this front end is waiting for, for the requests that missed (at most GOFER_MAX_FETCHES)"))
	in.refused, _ = m.Int64Counter("gofer.fetches.refused", metric.WithDescription("misses answered 503 because GOFER_MAX_FETCHES fetches were being waited for"))
	cache, _ := m.Int64ObservableCounter("gofer.cache.requests", metric.WithDescription("requests for a version's .info, .mod or .zip, by kind and result (hit: stored; miss: fetched, or not found)"))
	in.tallies.instruments = [...]metric.Int64Observable{requests, bytes, cache}
	m.RegisterCallback(in.tallies.observe, requests, bytes, cache)
	return in
}

// observe is the first middleware: it gives the request an ID (its X-Request-ID, if sane, else a
// new one) and, once answered, logs one line and counts it. With a tracer, tracing follows.
func (s *Server) observe() []gin.HandlerFunc {
	first := func(c *gin.Context) {
		start := time.Now()
		// The canonical key, set and read directly: no key to canonicalize per request.
		id := requestID(c.Request.Header.Get("X-Request-Id"))
		ri := &reqInfo{Context: c.Request.Context(), id: [1]string{id}}
		c.Writer.Header()["X-Request-Id"] = ri.id[:]
		c.Request = c.Request.WithContext(ri)
		c.Next()

		status, size := c.Writer.Status(), max(c.Writer.Size(), 0)+int(ri.sent)
		if ri.endpoint == "" {
			ri.endpoint = c.FullPath()
			if ri.endpoint == "" {
				ri.endpoint = "other"
			}
		}
		switch ri.endpoint {
		case "info", "mod", "zip":
			if ri.cache == "" && status < 300 {
				ri.cache = cacheHit
			}
		default:
			// Only a version's files are hits or misses; a list, @latest or query that looked
			// a stored version up on the way is neither.
			ri.cache = ""
		}
		elapsed := time.Since(start)
		s.count(c.Request.Context(), ri, status, size, elapsed)
		// Checked first: with the log off, the fields are never made.
		if ce := s.requests.Check(zap.InfoLevel, "request"); ce != nil {
			fields := s.logFields.Get().(*[]zap.Field)
			f := append((*fields)[:0], zap.String("method", c.Request.Method), zap.String("path", c.Request.URL.Path),
				zap.Int("status", status), zap.Int("bytes", size), zap.Duration("duration", elapsed), zap.String("request_id", id))
			// What does not apply is left out: a hit has no workflow and no error.
			for _, o := range [...]struct{ key, value string }{{"cache", ri.cache}, {"module", ri.module}, {"version", ri.version},
				{"workflow_id", ri.workflowID}, {"run_id", ri.runID}, {"error", ri.err}} {
				if o.value != "" {
					f = append(f, zap.String(o.key, o.value))
				}
			}
			ce.Write(f...) // which encodes them before it returns
			clear(f)
			*fields = f[:0]
			s.logFields.Put(fields)
		}
	}
	if _, off := s.cfg.Tracer.(tracenoop.TracerProvider); off || s.cfg.Tracer == nil {
		return []gin.HandlerFunc{first}
	}
	tracing := otelgin.Middleware("gofer", otelgin.WithTracerProvider(s.cfg.Tracer),
		otelgin.WithSpanNameFormatter(func(c *gin.Context) string {
			if route := c.FullPath(); route != "" {
				return c.Request.Method + " " + route
			}
			return c.Request.Method + " module proxy" // the GOPROXY protocol has no gin route
		}))
	annotate := func(c *gin.Context) {
		c.Next()
		ri := info(c.Request.Context())
		span := trace.SpanFromContext(c.Request.Context())
		span.SetAttributes(attribute.String("gofer.request_id", c.Writer.Header().Get("X-Request-ID")))
		if ri.module != "" {
			span.SetAttributes(attribute.String("gofer.module", ri.module), attribute.String("gofer.version", ri.version), attribute.String("gofer.cache", ri.cache))
		}
		if ri.workflowID != "" {
			span.SetAttributes(attribute.String("gofer.workflow_id", ri.workflowID), attribute.String("gofer.run_id", ri.runID))
		}
	}
	return []gin.HandlerFunc{first, tracing, annotate}
}

// count records a request's metrics.
func (s *Server) count(ctx context.Context, ri *reqInfo, status, size int, elapsed time.Duration) {
	t := s.in.tallies.of(attrKey{ri.endpoint, status, ri.cache})
	t.requests.Add(1)
	t.bytes.Add(int64(size))
	if t.cache != nil {
		t.cache.Add(1)
	}
	s.in.duration.Record(ctx, elapsed.Seconds(), t.duration...)
}

// attrKey is one kind of request, as the metrics tell them apart.
type attrKey struct {
	endpoint string
	status   int
	cache    string
}

// tallies are the counts of requests (by endpoint and status), of their bytes (by endpoint)
// and of cache results (by kind and result), each made once per attribute set and then added
// to atomically; observe reports them all.
type tallies struct {
	instruments [3]metric.Int64Observable // requests, bytes, cache
	kinds       sync.Map                  // attrKey → *tally
	mu          sync.Mutex                // over made
	made        map[countKey]*tallyCount
}

// tally is what count adds to for one kind of request.
type tally struct {
	requests, bytes, cache *atomic.Int64 // cache is nil for what is not a version's file
	duration               []metric.RecordOption
}

// countKey is a count's instrument (its index) and attribute set.
type countKey struct {
	instrument int
	attrs      attribute.Distinct
}

type tallyCount struct {
	n     atomic.Int64
	attrs metric.ObserveOption
}

func (t *tallies) of(key attrKey) *tally {
	if v, ok := t.kinds.Load(key); ok {
		return v.(*tally)
	}
	ep := attribute.String("endpoint", key.endpoint)
	k := &tally{
		requests: t.count(0, attribute.NewSet(ep, attribute.Int("status", key.status))),
		bytes:    t.count(1, attribute.NewSet(ep)),
		duration: []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(ep))},
	}
	if key.cache != "" {
		k.cache = t.count(2, attribute.NewSet(attribute.String("kind", key.endpoint), attribute.String("result", key.cache)))
	}
	v, _ := t.kinds.LoadOrStore(key, k)
	return v.(*tally)
}

// count is the count of instrument i with attrs, made at its first use. Kinds of request share
// counts: every status of an endpoint adds to its bytes.
func (t *tallies) count(i int, attrs attribute.Set) *atomic.Int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.made == nil {
		t.made = map[countKey]*tallyCount{}
	}
	key := countKey{i, attrs.Equivalent()}
	c, ok := t.made[key]
	if !ok {
		c = &tallyCount{attrs: metric.WithAttributeSet(attrs)}
		t.made[key] = c
	}
	return &c.n
}

// observe reports every count.
func (t *tallies) observe(_ context.Context, o metric.Observer) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for key, c := range t.made {
		o.ObserveInt64(t.instruments[key.instrument], c.n.Load(), c.attrs)
	}
	return nil
}

// requestID is the client's request ID if it is short and plain, else a new random one.
func requestID(h string) string {
	if len(h) > 0 && len(h) <= 64 {
		ok := true
		for _, r := range h {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
				ok = false
				break
			}
		}
		if ok {
			return h
		}
	}
	// The runtime's generator, seeded from the system's: unique enough to find a request's
	// lines by, at a third of crypto/rand's cost (an ID need not be secret).
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], rand.Uint64())
	return hex.EncodeToString(b[:])
}
