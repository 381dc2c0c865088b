package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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

// reqInfo is what the handlers learn about a request, for its log line, its metrics and its span.
type reqInfo struct {
	endpoint   string // list, latest, info, mod, zip, query, or the route
	module     string
	version    string
	cache      string // cacheHit, cacheMiss, or "" for what is not a stored file
	workflowID string // the fetch the request started or joined
	runID      string
	err        string // why the request failed
	sent       int64  // body bytes sent around gin's writer (by sendfile)
}

type reqInfoKey struct{}

// info returns the reqInfo of ctx's request; a request the middleware did not see gets a
// throwaway one.
func info(ctx context.Context) *reqInfo {
	if i, ok := ctx.Value(reqInfoKey{}).(*reqInfo); ok {
		return i
	}
	return &reqInfo{}
}

// instruments are the request metrics.
type instruments struct {
	requests metric.Int64Counter
	duration metric.Float64Histogram
	bytes    metric.Int64Counter
	cache    metric.Int64Counter
	fetching metric.Int64UpDownCounter // fetches waited for
	refused  metric.Int64Counter       // misses refused at MaxFetches
}

func newInstruments(m metric.Meter) instruments {
	if m == nil {
		m = noop.Meter{}
	}
	var in instruments
	// Errors here only come from malformed names and leave a no-op instrument.
	in.requests, _ = m.Int64Counter("gofer.http.requests", metric.WithDescription("HTTP requests by endpoint and status"))
	in.duration, _ = m.Float64Histogram("gofer.http.request.duration", metric.WithUnit("s"),
		metric.WithDescription("time to answer an HTTP request, by endpoint"),
		metric.WithExplicitBucketBoundaries(0.001, 0.005, 0.025, 0.1, 0.5, 1, 5, 15, 60))
	in.bytes, _ = m.Int64Counter("gofer.http.response.bytes", metric.WithUnit("By"), metric.WithDescription("bytes of response bodies, by endpoint"))
	in.fetching, _ = m.Int64UpDownCounter("gofer.fetches.waiting", metric.WithDescription("fetches this front end is waiting for, for the requests that missed (at most GOFER_MAX_FETCHES)"))
	in.refused, _ = m.Int64Counter("gofer.fetches.refused", metric.WithDescription("misses answered 503 because GOFER_MAX_FETCHES fetches were being waited for"))
	in.cache, _ = m.Int64Counter("gofer.cache.requests", metric.WithDescription("requests for a version's .info, .mod or .zip, by kind and result (hit: stored; miss: fetched, or not found)"))
	return in
}

// observe is the first middleware: it gives the request an ID (its X-Request-ID, if sane, else a
// new one) and, once answered, logs one line and counts it. With a tracer, tracing follows.
func (s *Server) observe() []gin.HandlerFunc {
	first := func(c *gin.Context) {
		start := time.Now()
		// The canonical key, set and read directly: no key to canonicalize per request.
		id := requestID(c.Request.Header.Get("X-Request-Id"))
		c.Writer.Header()["X-Request-Id"] = []string{id}
		ri := &reqInfo{}
		c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), reqInfoKey{}, ri))
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
		// Checked first: with the log off, the fields are never made (they weigh 0.8 KB).
		if ce := s.requests.Check(zap.InfoLevel, "request"); ce != nil {
			ce.Write(zap.String("method", c.Request.Method), zap.String("path", c.Request.URL.Path),
				zap.Int("status", status), zap.Int("bytes", size), zap.Duration("duration", elapsed),
				zap.String("cache", ri.cache), zap.String("module", ri.module), zap.String("version", ri.version),
				zap.String("workflow_id", ri.workflowID), zap.String("run_id", ri.runID), zap.String("request_id", id),
				zap.String("error", ri.err))
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

// count records a request's metrics. The attribute sets are made once per endpoint, status and
// cache result and then reused: building them is most of what a metric costs.
func (s *Server) count(ctx context.Context, ri *reqInfo, status, size int, elapsed time.Duration) {
	key := attrKey{ri.endpoint, status, ri.cache}
	v, ok := s.attrs.Load(key)
	if !ok {
		ep := attribute.String("endpoint", ri.endpoint)
		endpoint := metric.WithAttributeSet(attribute.NewSet(ep))
		a := attrSets{
			request:  []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(ep, attribute.Int("status", status)))},
			duration: []metric.RecordOption{endpoint},
			bytes:    []metric.AddOption{endpoint},
		}
		if ri.cache != "" {
			a.cache = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("kind", ri.endpoint), attribute.String("result", ri.cache)))}
		}
		v, _ = s.attrs.LoadOrStore(key, a)
	}
	a := v.(attrSets)
	s.in.requests.Add(ctx, 1, a.request...)
	s.in.duration.Record(ctx, elapsed.Seconds(), a.duration...)
	s.in.bytes.Add(ctx, int64(size), a.bytes...)
	if a.cache != nil {
		s.in.cache.Add(ctx, 1, a.cache...)
	}
}

type attrKey struct {
	endpoint string
	status   int
	cache    string
}

// attrSets are the options of one kind of request's measurements, made once (a variadic call
// with a fresh slice would allocate at every request).
type attrSets struct {
	request, bytes, cache []metric.AddOption
	duration              []metric.RecordOption
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
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
