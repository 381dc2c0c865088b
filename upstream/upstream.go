// Package upstream is gofer's client for upstream GOPROXY servers: it parses a GOPROXY value
// with the go command's syntax, fetches @v/list, @latest, .info, .mod and .zip files over HTTP
// in-process, walks the entries in order with the go command's fall-through rules, and turns
// every failure into exactly one of gofer's error kinds. The "direct" entry is delegated to the
// Source given as Chain.Direct. It must never run the go command itself, never hard-code a
// host (every URL comes from the GOPROXY value it is given), and never hold a zip in memory.
package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"golang.org/x/mod/module"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/egress"
)

// maxSmall bounds the metadata files (.info, @v/list, @latest), which are tiny in practice:
// 1 MiB bounds the memory a misbehaving upstream can make us spend on them. A .mod and a .zip
// are bounded by the go command's own limits, gofer.MaxModSize and gofer.MaxZipSize.
const maxSmall = 1 << 20

// Chain is a parsed GOPROXY list. Its methods are safe for concurrent use.
type Chain struct {
	// Client sends every request. Nil means a client built on first use and kept by this
	// Chain, with Egress's transport (egress.Policy.Transport: timeouts on every step before
	// the body, none on the body, because zips are large and streamed: bound a whole
	// download with the context instead), following at most maxRedirects redirects.
	Client *http.Client
	// Egress is where the default client may connect besides the entries' hosts, which are
	// allowed because they are configured:
	// a redirect to anywhere else is refused as the policy says. Nil means public addresses
	// only. Set it before the first request.
	Egress *egress.Policy
	// Direct answers for the "direct" entry (fetching from version control), with the same
	// fall-through rules as any entry. Nil means that entry answers not found: direct fetches
	// are not configured.
	Direct Source
	// Meter makes the counter of failed requests, ErrorsMetric; nil counts nothing. Set it
	// before the first request.
	Meter metric.Meter

	entries []entry

	defaultOnce   sync.Once
	defaultClient *http.Client
	errorsOnce    sync.Once
	errorCount    metric.Int64Counter
}

// ErrorsMetric counts the entries' failed answers, by kind (not_found, invalid, unavailable)
// and entry: its position in the list ("1" for the first) or "direct", so that an open
// /metrics names no host of the operator's.
const ErrorsMetric = "gofer.upstream.errors"

// errorKinds are ErrorsMetric's kind labels.
var errorKinds = gofer.Names{NotFound: "not_found", Invalid: "invalid", Unavailable: "unavailable"}

// countError counts err, the failure of entry e.
func (c *Chain) countError(ctx context.Context, e entry, err error) {
	c.errorsOnce.Do(func() {
		m := c.Meter
		if m == nil {
			m = noop.Meter{}
		}
		// An error here only comes from a malformed name and leaves a no-op instrument.
		c.errorCount, _ = m.Int64Counter(ErrorsMetric, metric.WithDescription("failed upstream requests, by kind and entry"))
	})
	c.errorCount.Add(ctx, 1, metric.WithAttributes(attribute.String("kind", errorKinds.Of(err)), attribute.String("entry", e.label)))
}

// Source answers the download protocol for any module path: a Chain of proxies, or a fetcher
// from version control (the direct entry of a Chain, or the fetcher of private modules). Its
// methods mean what Chain's mean, and return the base URL (or "direct") that answered. Its
// errors must already be of gofer's kinds (anything else counts as unavailable).
type Source interface {
	List(ctx context.Context, path string) ([]byte, string, error)
	Latest(ctx context.Context, path string) ([]byte, string, error)
	Info(ctx context.Context, path, query string) ([]byte, string, error)
	Mod(ctx context.Context, path, version string) ([]byte, string, error)
	Zip(ctx context.Context, path, version string) (io.ReadCloser, string, error)
}

type entryKind int

const (
	proxyEntry entryKind = iota
	offEntry
	directEntry
)

type entry struct {
	kind entryKind
	url  *url.URL // proxyEntry only; path without trailing slash
	// source is url without its userinfo: it names the entry in errors, metrics and the
	// recorded source of a version, none of which may carry a user or password from the
	// GOPROXY value.
	source string
	// label names the entry in metrics: its position in the list, from 1, or "direct".
	label string
	// orElse is true when the separator after this entry was '|': fall through on any error,
	// not only on not found.
	orElse bool
}

// Parse parses a GOPROXY value as the go command does. Entries are separated by ',' (the
// next entry is tried only when this one answers not found) or '|' (the next entry is tried
// after any error). An entry is an http or https URL, a bare host such as proxy.example.com
// (https:// is implied), "off" (every lookup fails as not found) or "direct" (the Chain's
// Direct answers; without one, every lookup fails as not found). As in the go command, "off"
// and "direct" end the
// list and later entries are ignored. Trailing slashes are trimmed. An empty list, a URL of
// another scheme, without a host, or with a query or fragment is an error.
func Parse(goproxy string) (*Chain, error) {
	var entries []entry
	rest := goproxy
	for rest != "" {
		raw, orElse := rest, false
		if i := strings.IndexAny(rest, ",|"); i >= 0 {
			raw, orElse, rest = rest[:i], rest[i] == '|', rest[i+1:]
		} else {
			rest = ""
		}
		raw = strings.TrimSpace(raw)
		switch raw {
		case "":
			continue
		case "off":
			entries = append(entries, entry{kind: offEntry, source: "off", label: "off"})
			rest = ""
			continue
		case "direct":
			entries = append(entries, entry{kind: directEntry, source: "direct", label: "direct"})
			rest = ""
			continue
		}
		u, err := parseURL(raw)
		if err != nil {
			return nil, err
		}
		entries = append(entries, entry{kind: proxyEntry, url: u, source: withoutUser(*u), label: strconv.Itoa(len(entries) + 1), orElse: orElse})
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("GOPROXY %q lists no proxy", goproxy)
	}
	return &Chain{entries: entries}, nil
}

// withoutUser is u without its userinfo, to name it where no credential may appear.
func withoutUser(u url.URL) string {
	u.User = nil
	return u.String()
}

func parseURL(raw string) (*url.URL, error) {
	// The go command's rule: a single word is reserved for built-in entries, anything with
	// ":/" must be a complete URL, and anything else that looks like a host gets https://.
	if strings.ContainsAny(raw, ".:/") && !strings.Contains(raw, ":/") && !strings.HasPrefix(raw, "/") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid GOPROXY URL: %v", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("invalid GOPROXY URL %q: scheme must be http or https", u.Redacted())
	case u.Opaque != "" || u.Host == "":
		return nil, fmt.Errorf("invalid GOPROXY URL %q: no host", u.Redacted())
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		// Request paths are appended to the URL's path; a query or fragment would end up
		// in the wrong place.
		return nil, fmt.Errorf("invalid GOPROXY URL %q: query or fragment not allowed", u.Redacted())
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = strings.TrimRight(u.RawPath, "/")
	return u, nil
}

// Entries returns the entries in order: proxy base URLs (credentials included, for the requests
// that must carry them), "off" and "direct".
func (c *Chain) Entries() []string {
	var out []string
	for _, e := range c.entries {
		if e.kind == proxyEntry {
			out = append(out, e.url.String())
		} else {
			out = append(out, e.source)
		}
	}
	return out
}

// String returns the parsed list in GOPROXY syntax, without users and passwords.
func (c *Chain) String() string {
	var b strings.Builder
	for i, e := range c.entries {
		if i > 0 {
			if c.entries[i-1].orElse {
				b.WriteByte('|')
			} else {
				b.WriteByte(',')
			}
		}
		b.WriteString(e.source)
	}
	return b.String()
}

// List returns the body of path's @v/list and the base URL of the entry that answered
// ("direct" for the direct entry, as for every method).
func (c *Chain) List(ctx context.Context, path string) ([]byte, string, error) {
	return c.small(ctx, path, path, "@v/list", maxSmall, func(d Source) ([]byte, string, error) { return d.List(ctx, path) })
}

// Latest returns the body of path's @latest and the base URL of the entry that answered.
func (c *Chain) Latest(ctx context.Context, path string) ([]byte, string, error) {
	return c.small(ctx, path, path, "@latest", maxSmall, func(d Source) ([]byte, string, error) { return d.Latest(ctx, path) })
}

// Info returns the .info of path at query, which may be a canonical version or anything the
// upstream resolves (a branch, a commit), and the base URL of the entry that answered.
func (c *Chain) Info(ctx context.Context, path, query string) ([]byte, string, error) {
	file, err := versionFile(path, query, ".info")
	if err != nil {
		return nil, "", err
	}
	return c.small(ctx, path+"@"+query, path, file, maxSmall, func(d Source) ([]byte, string, error) { return d.Info(ctx, path, query) })
}

// Mod returns the go.mod of path at version and the base URL of the entry that answered.
func (c *Chain) Mod(ctx context.Context, path, version string) ([]byte, string, error) {
	file, err := versionFile(path, version, ".mod")
	if err != nil {
		return nil, "", err
	}
	return c.small(ctx, path+"@"+version, path, file, gofer.MaxModSize, func(d Source) ([]byte, string, error) { return d.Mod(ctx, path, version) })
}

// Zip opens the zip of path at version and returns its body as a stream, with the base URL
// of the entry that answered; from a proxy, the stream's Size method tells the length the
// proxy declared (-1 for none). The caller must close it. Reading more than the go command's
// 500 MiB limit fails with gofer.ErrInvalid; other read failures are classified like request
// failures.
func (c *Chain) Zip(ctx context.Context, path, version string) (io.ReadCloser, string, error) {
	file, err := versionFile(path, version, ".zip")
	if err != nil {
		return nil, "", err
	}
	escPath, err := escapePath(path)
	if err != nil {
		return nil, "", err
	}
	var body io.ReadCloser
	source, err := c.try(ctx, path+"@"+version, func(base *url.URL) error {
		resp, u, err := c.get(ctx, base, escPath+"/"+file, "")
		if err != nil {
			return err
		}
		body, err = limitBody(ctx, u, resp, gofer.MaxZipSize)
		return err
	}, func(d Source) (err error) {
		body, _, err = d.Zip(ctx, path, version)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	return body, source, nil
}

// Indexed is one version of a proxy's GET /index.
type Indexed struct {
	Path      string
	Version   string
	Timestamp time.Time
}

// maxIndexLine bounds a line of GET /index on average: a path of up to 1,000 bytes, a version
// and a time.
const maxIndexLine = 1200

// Index reads one page of GET /index of the chain's first entry, as the public module index
// and gofer serve it: at most limit versions stored after since (the zero time: from the
// start), one JSON object a line. An index is one proxy's: no other entry is asked. A page that
// is not such lines, or of more than limit lines (or of more than limit times 1,200 bytes), is
// invalid.
func (c *Chain) Index(ctx context.Context, since time.Time, limit int) ([]Indexed, error) {
	if len(c.entries) == 0 || c.entries[0].kind != proxyEntry {
		return nil, gofer.Errorf(gofer.ErrNotFound, "index: the first GOPROXY entry is no proxy")
	}
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if !since.IsZero() {
		q.Set("since", since.UTC().Format(time.RFC3339Nano))
	}
	resp, u, err := c.get(ctx, c.entries[0].url, "index", q.Encode())
	if err != nil {
		return nil, err
	}
	body, err := limitBody(ctx, u, resp, int64(limit)*maxIndexLine)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	var list []Indexed
	for dec := json.NewDecoder(body); ; {
		var e Indexed
		err := dec.Decode(&e)
		switch {
		case errors.Is(err, io.EOF):
			return list, nil
		case err == nil && len(list) == limit:
			return nil, gofer.Errorf(gofer.ErrInvalid, "GET %s: more than the %d versions asked for", u, limit)
		case err == nil:
			list = append(list, e)
		case ctx.Err() != nil || errors.Is(err, gofer.ErrUnavailable) || errors.Is(err, gofer.ErrInvalid):
			return nil, err // the body's read, classified by limitedBody
		default:
			return nil, gofer.Errorf(gofer.ErrInvalid, "GET %s: not an index: %v", u, err)
		}
	}
}

// OrElse is c, each of its entries falling through on any error ('|'), then next: what c
// cannot answer, next does. It has c's Client, Egress and Meter, and next's Direct; set none
// of them on c or next afterwards.
func (c *Chain) OrElse(next *Chain) *Chain {
	entries := slices.Clone(c.entries)
	for i := range entries {
		entries[i].orElse = true
	}
	return &Chain{Client: c.Client, Egress: c.Egress, Meter: c.Meter, Direct: next.Direct, entries: append(entries, next.entries...)}
}

// small fetches one whole file of at most limit bytes; direct fetches it from c.Direct.
func (c *Chain) small(ctx context.Context, what, path, file string, limit int64, direct func(Source) ([]byte, string, error)) ([]byte, string, error) {
	escPath, err := escapePath(path)
	if err != nil {
		return nil, "", err
	}
	var data []byte
	source, err := c.try(ctx, what, func(base *url.URL) error {
		resp, u, err := c.get(ctx, base, escPath+"/"+file, "")
		if err != nil {
			return err
		}
		body, err := limitBody(ctx, u, resp, limit)
		if err != nil {
			return err
		}
		defer body.Close()
		data, err = io.ReadAll(body)
		return err
	}, func(d Source) (err error) {
		data, _, err = direct(d)
		if err == nil && int64(len(data)) > limit {
			err = gofer.Errorf(gofer.ErrInvalid, "%s: direct: %s larger than %d bytes", what, file, limit)
		}
		return err
	})
	if err != nil {
		return nil, "", err
	}
	return data, source, nil
}

// try walks the entries with the go command's rules: after a not-found error go on to the
// next entry; after any other error go on only if the separator was '|'. It returns the
// source of the entry that answered or, like the go command, the most telling error: the first
// that is not a not-found if there is one (a '|' entry that is down must be retried, not
// reported missing because a later entry lacks the version), else every entry's not-found
// answer, in order, each naming its entry ("direct: ..." for direct). A cancelled
// context stops the walk, so that a later off or direct entry cannot replace its error. A proxy
// entry is fetched with fetch, a direct one with direct when c.Direct is set.
func (c *Chain) try(ctx context.Context, what string, fetch func(base *url.URL) error, direct func(Source) error) (string, error) {
	if len(c.entries) == 0 {
		return "", gofer.Errorf(gofer.ErrNotFound, "%s: no GOPROXY entries", what)
	}
	var best error
	for _, e := range c.entries {
		var err error
		switch e.kind {
		case offEntry:
			err = gofer.Errorf(gofer.ErrNotFound, "%s: module lookup disabled by GOPROXY=off", what)
		case directEntry:
			if c.Direct == nil {
				err = gofer.Errorf(gofer.ErrNotFound, "%s: direct (VCS) fetches are not configured", what)
			} else if err = direct(c.Direct); err == nil {
				return e.source, nil
			}
		default:
			if err = fetch(e.url); err == nil {
				return e.source, nil
			}
		}
		if ctx.Err() != nil {
			return "", err
		}
		c.countError(ctx, e, err)
		if e.kind == directEntry {
			err = fmt.Errorf("direct: %w", err)
		}
		if best == nil || errors.Is(best, gofer.ErrNotFound) {
			if best != nil && errors.Is(err, gofer.ErrNotFound) {
				// Each entry's answer, so that a request log or a client says who said what.
				err = gofer.Errorf(gofer.ErrNotFound, "%w; %w", best, err)
			}
			best = err
		}
		if !e.orElse && !errors.Is(err, gofer.ErrNotFound) {
			break
		}
	}
	return "", best
}

// get sends GET base/rel?query, where rel is already escaped with the module rules, and
// returns the response only when it is a 200; the returned URL is without userinfo, for
// messages.
func (c *Chain) get(ctx context.Context, base *url.URL, rel, query string) (*http.Response, string, error) {
	target := *base
	target.Path, target.RawQuery = base.Path+"/"+rel, query
	// Escape rel like the go command does, so that a query such as "feature#1" reaches
	// the upstream as one path element; "/" stays a separator.
	segs := strings.Split(rel, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	target.RawPath = base.EscapedPath() + "/" + strings.Join(segs, "/")
	u := withoutUser(target)

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return nil, u, fmt.Errorf("GET %s: %w", u, err)
	}
	resp, err := c.client().Do(req)
	if err = classify(ctx, u, resp, err); err != nil {
		if resp != nil {
			resp.Body.Close()
		}
		return nil, u, err
	}
	return resp, u, nil
}

// classify is the one place where the outcome of an upstream request becomes an error kind,
// so that the server and the activities can map kinds without knowing HTTP:
//   - a cancelled or expired ctx: the ctx error, wrapped (errors.Is(err, context.Canceled)).
//   - a connection the egress policy refused, or too many redirects: gofer.ErrNotFound (the
//     upstream sent us where we do not go, and will again).
//   - err != nil (connection refused, reset, timeout, a failed body read): gofer.ErrUnavailable.
//   - 200: nil.
//   - 400, 403, 404, 410: gofer.ErrNotFound, the upstream's way of saying "not here", which
//     is what lets a ',' entry fall through. The first line of the body is the reason.
//   - 404 or 410 whose body says "fetch timed out" (any case): gofer.ErrUnavailable, because
//     proxy.golang.org answers so when its own fetch was too slow, and a retry may succeed.
//   - any other status (5xx, 429, ...): gofer.ErrUnavailable.
//
// Every message names the URL and, for a status, the status.
func classify(ctx context.Context, u string, resp *http.Response, err error) error {
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("GET %s: %w", u, ctxErr)
		}
		// The *url.Error from the client repeats the method and URL we already name.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		if errors.Is(err, egress.ErrDenied) || errors.Is(err, errTooManyRedirects) {
			return gofer.Errorf(gofer.ErrNotFound, "GET %s: %w", u, err)
		}
		return gofer.Errorf(gofer.ErrUnavailable, "GET %s: %w", u, err)
	}
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	// Enough to find the reason and the "fetch timed out" marker, however long the page.
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	kind := gofer.ErrUnavailable
	switch resp.StatusCode {
	case http.StatusNotFound, http.StatusGone:
		kind = gofer.ErrNotFound
		if strings.Contains(strings.ToLower(string(head)), "fetch timed out") {
			kind = gofer.ErrUnavailable
		}
	case http.StatusBadRequest, http.StatusForbidden:
		kind = gofer.ErrNotFound
	}
	status := resp.Status
	if status == "" {
		status = fmt.Sprint(resp.StatusCode)
	}
	if reason := firstLine(head, 200); reason != "" {
		return gofer.Errorf(kind, "GET %s: %s: %s", u, status, reason)
	}
	return gofer.Errorf(kind, "GET %s: %s", u, status)
}

// firstLine returns the first non-blank line of b, trimmed and cut to at most limit runes, so
// that an HTML error page cannot flood a log line.
func firstLine(b []byte, limit int) string {
	s := strings.TrimSpace(strings.ToValidUTF8(string(b), "\uFFFD"))
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	n := 0
	for i := range s {
		if n == limit {
			return s[:i]
		}
		n++
	}
	return s
}

// limitBody wraps the body of a 200 response so that reading more than limit bytes fails
// with gofer.ErrInvalid, and fails at once when the declared length is already too large.
func limitBody(ctx context.Context, u string, resp *http.Response, limit int64) (io.ReadCloser, error) {
	if resp.ContentLength > limit {
		resp.Body.Close()
		return nil, tooLarge(u, limit)
	}
	return &limitedBody{ctx: ctx, url: u, rc: resp.Body, limit: limit, left: limit, size: resp.ContentLength}, nil
}

func tooLarge(u string, limit int64) error {
	return gofer.Errorf(gofer.ErrInvalid, "GET %s: body larger than %d bytes", u, limit)
}

type limitedBody struct {
	ctx   context.Context
	url   string
	rc    io.ReadCloser
	limit int64
	left  int64 // bytes still allowed
	err   error // sticky, so that a second Read cannot slip past the limit
	size  int64 // the length the response declared, or -1
}

// Size is the length the upstream declared for the body, or -1 if it declared none.
func (b *limitedBody) Size() int64 { return b.size }

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	// Ask for one byte more than allowed: getting it proves the body is too large.
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	if int64(n) > b.left {
		n, b.left = int(b.left), 0
		b.err = tooLarge(b.url, b.limit)
		return n, b.err
	}
	b.left -= int64(n)
	if err != nil && err != io.EOF {
		b.err = classify(b.ctx, b.url, nil, err)
		return n, b.err
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// escapePath and versionFile escape with the go command's rules; a path or version that
// cannot be escaped cannot exist upstream, so it is not found, not invalid.
func escapePath(path string) (string, error) {
	esc, err := module.EscapePath(path)
	if err != nil {
		return "", gofer.Errorf(gofer.ErrNotFound, "%w", err)
	}
	return esc, nil
}

func versionFile(path, version, ext string) (string, error) {
	esc, err := module.EscapeVersion(version)
	if err != nil {
		return "", gofer.Errorf(gofer.ErrNotFound, "%s@%s: %w", path, version, err)
	}
	return "@v/" + esc + ext, nil
}

func (c *Chain) client() *http.Client {
	if c.Client != nil {
		return c.Client
	}
	c.defaultOnce.Do(func() {
		var hosts []string
		for _, e := range c.entries {
			if e.kind == proxyEntry {
				hosts = append(hosts, egress.HostPort(e.url))
			}
		}
		c.defaultClient = newDefaultClient(c.Egress.With(hosts...))
	})
	return c.defaultClient
}

// maxRedirects is how many redirects one request follows; the go command follows 10, and no
// proxy needs more than one.
const maxRedirects = 5

var errTooManyRedirects = fmt.Errorf("more than %d redirects", maxRedirects)

// newDefaultClient bounds each step that can hang before any byte arrives, but not the body:
// a 500 MiB zip on a slow link may rightly take minutes, and the caller's context bounds it.
// Each request is a client span of the global tracer provider, whose url.full otelhttp records
// without the user and password a GOPROXY entry may hold.
func newDefaultClient(policy *egress.Policy) *http.Client {
	return &http.Client{
		Transport: otelhttp.NewTransport(policy.Transport()),
		CheckRedirect: func(_ *http.Request, via []*http.Request) error {
			if len(via) > maxRedirects {
				return errTooManyRedirects
			}
			return nil
		},
	}
}
