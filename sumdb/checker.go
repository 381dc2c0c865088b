package sumdb

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/mod/module"
	xsumdb "golang.org/x/mod/sumdb"
	"golang.org/x/sync/singleflight"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/egress"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/storage/mem"
)

const (
	// fetchTimeout bounds one request to the database (its answers are small), and one step
	// of the client's storage work, which has no context of its own.
	fetchTimeout = 30 * time.Second
	// generationLookups is how many lookups one xsumdb.Client serves before it is replaced.
	// The client keeps every record and tile it has read, failures included, for its whole
	// life; that suits a short go command, not a server, so gofer starts a fresh client (which
	// picks the tree head and tiles up from the blob store) after this many lookups or any
	// failure.
	generationLookups = 1000
)

// Checker checks module versions against one checksum database and serves that database's
// proxy protocol (ServeHTTP). Its methods are safe for concurrent use; it must not be copied
// after first use.
type Checker struct {
	// DB is the database. Nil means GOSUMDB=off: Check vouches for nothing and says so, and
	// ServeHTTP answers 404 to everything.
	DB *Database
	// NoSumDB is a comma-separated list of module path patterns (GONOSUMDB, or GOPRIVATE when
	// that is unset, with module.MatchPrefixPatterns semantics). A matching module is never
	// looked up and its name is never sent to the database.
	NoSumDB string
	// Private, if not nil, marks more modules as private, as NoSumDB does: for rules that can
	// change while gofer runs.
	Private func(path string) bool
	// Blobs persists verified tree heads, tiles and lookups, shared by every Checker (and every
	// replica) over the same store, under keys starting "_sumdb/". Nil keeps them in memory:
	// a rollback of the database across restarts then goes unnoticed.
	Blobs storage.Blobs
	// Client sends every request to the database and to the upstream proxies. Nil means a
	// client with a 30s timeout per request that connects as Egress allows, the database's
	// and the upstreams' hosts allowed because they are configured.
	Client *http.Client
	// Egress is where the default client may connect besides the configured hosts (a
	// redirect); nil means public addresses only.
	Egress *egress.Policy
	// Log receives security errors (error), storage trouble (warn) and the client's notes
	// (debug). Nil logs nothing.
	Log *zap.Logger

	initOnce sync.Once
	mem      storage.Blobs
	hc       *http.Client

	mu       sync.Mutex
	gen      *generation
	security string // the first security error: once set, nothing is vouched for again

	head   head
	flight singleflight.Group

	latestMu   sync.Mutex
	latestMsg  []byte
	latestTime time.Time

	now        func() time.Time // tests move the clock
	maxLookups int64            // generationLookups unless a test sets it
}

func (c *Checker) init() {
	c.initOnce.Do(func() {
		c.mem = mem.New()
		c.hc = c.Client
		if c.hc == nil {
			c.hc = &http.Client{Timeout: fetchTimeout, Transport: c.Egress.With(c.DB.hosts()...).Transport()}
		}
		if c.now == nil {
			c.now = time.Now
		}
		if c.maxLookups == 0 {
			c.maxLookups = generationLookups
		}
	})
}

func (c *Checker) blobs() storage.Blobs {
	c.init()
	if c.Blobs != nil {
		return c.Blobs
	}
	return c.mem
}

func (c *Checker) log() *zap.Logger {
	if c.Log == nil {
		return zap.NewNop()
	}
	return c.Log
}

func (c *Checker) private(path string) bool {
	return module.MatchPrefixPatterns(c.NoSumDB, path) || (c.Private != nil && c.Private(path))
}

// Check compares the go.sum hashes of path@version (zipHash of the zip, modHash of the go.mod;
// an empty one is not compared, for a fetch of the .mod or the zip alone) with the database's
// and returns how the version was verified: "sumdb <name>", "none
// (GOSUMDB=off)" or "none (GONOSUMDB)". Other hashes in the database, or no record of a public
// version, are gofer.ErrInvalid; a database that cannot answer now, or one caught showing a
// forked or rolled-back history (ever, in this Checker's life), is gofer.ErrUnavailable.
func (c *Checker) Check(ctx context.Context, path, version, zipHash, modHash string) (string, error) {
	if c.DB == nil {
		return "none (GOSUMDB=off)", nil
	}
	if c.private(path) {
		return "none (GONOSUMDB)", nil
	}
	lines, err := c.Lines(ctx, path, version)
	if errors.Is(err, gofer.ErrNotFound) {
		return "", gofer.Errorf(gofer.ErrInvalid, "%w", err)
	}
	if err != nil {
		return "", err
	}
	for _, f := range []struct{ what, version, hash string }{
		{"zip", version, zipHash},
		{"go.mod", version + "/go.mod", modHash},
	} {
		if f.hash == "" {
			continue
		}
		prefix := path + " " + f.version + " "
		var known []string
		for _, l := range lines {
			if h, ok := strings.CutPrefix(l, prefix); ok {
				known = append(known, h)
			}
		}
		switch {
		case len(known) == 0:
			return "", gofer.Errorf(gofer.ErrInvalid, "checksum database %s has no %s hash for %s@%s", c.DB.Name, f.what, path, version)
		case !slices.Contains(known, f.hash):
			return "", gofer.Errorf(gofer.ErrInvalid, "checksum mismatch for %s@%s %s: downloaded %s, checksum database %s",
				path, version, f.what, f.hash, strings.Join(known, ", "))
		}
	}
	return "sumdb " + c.DB.Name, nil
}

// Lines returns the database's go.sum lines for path@version, the zip's and the go.mod's, once
// the client has authenticated them against a signed tree consistent with every tree head
// gofer has seen. It returns nil and no error when no database is consulted for path (GOSUMDB
// off, or path private), gofer.ErrNotFound when the database has no record of the version,
// and gofer.ErrUnavailable when it cannot answer or has misbehaved.
func (c *Checker) Lines(ctx context.Context, path, version string) ([]string, error) {
	if c.DB == nil || c.private(path) {
		return nil, nil
	}
	if err := checkVersion(path, version); err != nil {
		return nil, gofer.Errorf(gofer.ErrInvalid, "%w", err)
	}
	g, err := c.generation()
	if err != nil {
		return nil, err
	}
	// The client has no context: it runs on its own and is bounded by fetchTimeout per step,
	// while the caller may leave early.
	type result struct {
		lines []string
		err   error
	}
	done := make(chan result, 1)
	go func() {
		lines, err := g.client.Lookup(path, version)
		if err == nil {
			var mod []string
			mod, err = g.client.Lookup(path, version+"/go.mod")
			lines = append(lines, mod...)
		}
		done <- result{lines, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		return nil, gofer.Errorf(gofer.ErrUnavailable, "checksum database %s, looking up %s@%s: %w", c.DB.Name, path, version, ctx.Err())
	}
	if g.uses.Add(1) >= c.maxLookups {
		c.retire(g)
	}
	if r.err == nil {
		return r.lines, nil
	}
	if err := c.securityErr(); err != nil {
		c.retire(g)
		return nil, err
	}
	if e, ok := g.failed.Load(lookupPath(path, version)); ok && errors.Is(e.(error), gofer.ErrNotFound) {
		// The client remembers the answer, which is right for a while: a client's lifetime
		// (maxLookups) bounds how long, and a new client need not re-read the tree heads.
		return nil, gofer.Errorf(gofer.ErrNotFound, "%s@%s: not in the checksum database %s", path, version, c.DB.Name)
	}
	// The client remembers failures for good: a transient one needs a new client.
	c.retire(g)
	return nil, gofer.Errorf(gofer.ErrUnavailable, "checksum database %s: %w", c.DB.Name, r.err)
}

// checkVersion accepts what the database can hold: a valid module path at a canonical version.
func checkVersion(path, version string) error {
	if err := module.Check(path, version); err != nil {
		return err
	}
	if module.CanonicalVersion(version) != version {
		return fmt.Errorf("%s@%s: version is not canonical", path, version)
	}
	return nil
}

// lookupPath is the protocol path of a lookup; path and version must be valid.
func lookupPath(path, version string) string {
	ep, _ := module.EscapePath(path)
	ev, _ := module.EscapeVersion(version)
	return "/lookup/" + ep + "@" + ev
}

// generation returns the current client, starting one if there is none.
func (c *Checker) generation() (*generation, error) {
	c.init()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.security != "" {
		return nil, c.securityErrLocked()
	}
	if c.gen == nil {
		g := &generation{c: c}
		g.client = xsumdb.NewClient(g)
		if c.NoSumDB != "" {
			// Check and Lines already skip these; this is the client's own guard as well.
			g.client.SetGONOSUMDB(c.NoSumDB)
		}
		c.gen = g
	}
	return c.gen, nil
}

func (c *Checker) retire(g *generation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == g {
		c.gen = nil
	}
}

// securityError is the client's SecurityError: the database showed a tree that is not an
// extension of one gofer verified before. Nothing is vouched for again until an operator has
// looked and restarted gofer; the message holds the proof.
func (c *Checker) securityError(msg string) {
	c.log().Error("sumdb: checksum database misbehaved; refusing every check until restart",
		zap.String("database", c.DB.Name), zap.String("report", msg))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.security == "" {
		c.security = msg
	}
}

func (c *Checker) securityErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.security == "" {
		return nil
	}
	return c.securityErrLocked()
}

func (c *Checker) securityErrLocked() error {
	first, _, _ := strings.Cut(strings.TrimSpace(c.security), "\n")
	return gofer.Errorf(gofer.ErrUnavailable,
		"checksum database %s: %s: it served a tree inconsistent with one verified before (fork or rollback); see the error log, fix, restart",
		c.DB.Name, first)
}

// generation is one xsumdb.Client and its operations (xsumdb.ClientOps).
type generation struct {
	c      *Checker
	client *xsumdb.Client
	uses   atomic.Int64
	failed sync.Map // protocol path → the error of its last failed fetch, to classify Lookup's

	headOnce sync.Once
	headErr  error
}

func opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), fetchTimeout)
}

func (g *generation) ReadRemote(path string) ([]byte, error) {
	ctx, cancel := opContext()
	defer cancel()
	data, err := g.c.get(ctx, path)
	if err != nil {
		g.failed.Store(path, err)
	}
	return data, err
}

func (g *generation) ReadConfig(file string) ([]byte, error) {
	c := g.c
	switch file {
	case "key":
		return []byte(c.DB.Key), nil
	case c.DB.Name + "/latest":
		// Once per client: picks up what other Checkers and replicas have verified since.
		g.headOnce.Do(func() {
			ctx, cancel := opContext()
			defer cancel()
			g.headErr = c.refreshHead(ctx)
		})
		if g.headErr != nil {
			return nil, g.headErr
		}
		return c.headMsg(), nil
	}
	return nil, fmt.Errorf("unknown config file %q", file)
}

func (g *generation) WriteConfig(file string, old, new []byte) error {
	if file != g.c.DB.Name+"/latest" {
		return fmt.Errorf("cannot write config file %q", file)
	}
	ctx, cancel := opContext()
	defer cancel()
	return g.c.writeHead(ctx, old, new)
}

// ReadCache and WriteCache hold what the client has authenticated: it writes a lookup or a
// tile only after checking it against a verified tree, and checks again whatever it reads.
func (g *generation) ReadCache(file string) ([]byte, error) {
	key, err := g.cacheKey(file)
	if err != nil {
		return nil, err
	}
	ctx, cancel := opContext()
	defer cancel()
	return readBlob(ctx, g.c.blobs(), key)
}

func (g *generation) WriteCache(file string, data []byte) {
	key, err := g.cacheKey(file)
	if err != nil {
		g.c.log().Warn("sumdb: "+err.Error(), zap.String("file", file))
		return
	}
	ctx, cancel := opContext()
	defer cancel()
	if err := putBlob(ctx, g.c.blobs(), key, data); err != nil {
		// Only a cost: the next client fetches it again.
		g.c.log().Warn("sumdb: caching", zap.String("key", key), zap.Error(err))
	}
}

// cacheKey maps a client cache file, "<name>/lookup/..." or "<name>/tile/...", to its blob.
func (g *generation) cacheKey(file string) (string, error) {
	rest, ok := strings.CutPrefix(file, g.c.DB.Name+"/")
	if !ok || !(strings.HasPrefix(rest, "lookup/") || strings.HasPrefix(rest, "tile/")) || strings.Contains(rest, "..") {
		return "", fmt.Errorf("unexpected cache file %q", file)
	}
	return protoKey(g.c.DB.Name, "/"+rest), nil
}

func (g *generation) Log(msg string) { g.c.log().Debug("sumdb: " + msg) }

func (g *generation) SecurityError(msg string) { g.c.securityError(msg) }
