package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/goferproxy/gofer/app"
)

// settings are gofer's settings; each is a flag whose default comes from a GOFER_* variable.
type settings struct {
	listen          string
	dataDir         string
	temporalAddress string
	namespace       string
	upstream        string
	fetchWait       time.Duration
	maxFetches      int64
	maxConns        int64
	cacheBytes      int64
	mutableTTL      time.Duration
	notFoundTTL     time.Duration
	zipRedirect     time.Duration
	passthroughDown bool
	indexPrivate    bool
	worker          bool

	storage          string
	s3Endpoint       string
	s3Region         string
	s3Bucket         string
	s3Prefix         string
	s3ForcePathStyle bool
	s3CreateBucket   bool

	metadata      string
	mongoURI      string
	mongoDatabase string

	netrc         string
	gitConfig     string
	gitSSHCommand string
	allowHosts    string

	sumdb      string
	noSumDB    string
	scrubEvery time.Duration
	rules      string

	logFormat string
	logLevel  string

	warmConcurrency int64
	watchlist       string
	adminToken      string
	temporalUI      string
	proxyAuth       string
}

func parseSettings(cmd string, args []string, frontEnd bool) (*settings, error) {
	var s settings
	fs := flag.NewFlagSet("gofer "+cmd, flag.ContinueOnError)
	e := &envFlags{fs: fs}
	s.storeFlags(e)
	e.string(&s.temporalAddress, "temporal-address", "GOFER_TEMPORAL_ADDRESS", "127.0.0.1:7233", "host:port of the Temporal frontend")
	e.string(&s.namespace, "temporal-namespace", "GOFER_TEMPORAL_NAMESPACE", "default", "Temporal namespace; a worker registers the Keyword search attributes GoModule, GoVersion, FetchSource and FetchOutcome there if they are missing")
	e.string(&s.logFormat, "log-format", "GOFER_LOG_FORMAT", "console", "log format: json (one object a line, for production) or console (for people)")
	e.string(&s.logLevel, "log-level", "GOFER_LOG_LEVEL", "info", "lowest log level written: debug, info, warn or error")
	e.int64(&s.warmConcurrency, "warm-concurrency", "GOFER_WARM_CONCURRENCY", 8, "how many versions a warm (POST /admin/warm, gofer warm, a watchlist run) fetches at once")
	goerr := s.checksumFlags(e)
	e.string(&s.netrc, "netrc", "GOFER_NETRC", "", "netrc file with the credentials of version control hosts, for private modules (the direct entry fetches anonymously; the host's ~/.netrc is never read)")
	e.string(&s.gitConfig, "git-config", "GOFER_GIT_CONFIG", "", "git config for private modules (credential helpers, url.<base>.insteadOf, http.extraHeader); ~/.gitconfig and /etc/gitconfig are never read")
	e.string(&s.gitSSHCommand, "git-ssh-command", "GOFER_GIT_SSH_COMMAND", "", "GIT_SSH_COMMAND for private modules over ssh (without it git never uses ssh), e.g. ssh -i /keys/id -o UserKnownHostsFile=/keys/known_hosts (name a key file: the value is not scrubbed from errors)")
	e.string(&s.rules, "rules", "GOFER_RULES", "", "file of per-module rules (exclude, passthrough, private) and download modes (sync, async, redirect, none), reloaded on SIGHUP; empty: every module stored, mode sync")
	e.duration(&s.scrubEvery, "scrub-every", "GOFER_SCRUB_EVERY", 7*24*time.Hour, "how often the Temporal Schedule gofer-scrub re-hashes every stored version against its record and the checksum database (it reports, never deletes); 0 removes the schedule")
	e.string(&s.watchlist, "watchlist", "GOFER_WATCHLIST", "", `file of modules to keep fetched by Temporal Schedules ("<pattern> latest", "<pattern> all >= v1.2.0", "gosum <file>", "follow <proxy URL> [<patterns>]", "every <duration>"), applied at worker start; empty: no watchlist schedules`)
	if frontEnd {
		e.string(&s.listen, "listen", "GOFER_LISTEN", "127.0.0.1:3000", "host:port to serve the GOPROXY protocol on")
		e.duration(&s.fetchWait, "fetch-wait", "GOFER_FETCH_WAIT", time.Minute, "how long a request waits for a fetch that does not move before answering 503 (the fetch goes on); one whose download keeps receiving is waited for up to 30 minutes; a version the upstream says does not exist is not waited for")
		e.int64(&s.maxFetches, "max-fetches", "GOFER_MAX_FETCHES", 256, "the most fetches this front end waits for at once, for requests that missed; a miss of one more version answers 503 with Retry-After")
		e.int64(&s.maxConns, "max-connections", "GOFER_MAX_CONNECTIONS", 4096, "the most client connections served at once; more wait to be accepted")
		e.int64(&s.cacheBytes, "cache-bytes", "GOFER_CACHE_BYTES", 32<<20, "bytes of metadata, .info, .mod and zips of at most 64 KiB kept in memory for cache hits")
		e.duration(&s.mutableTTL, "mutable-ttl", "GOFER_MUTABLE_TTL", time.Minute, "how long upstream answers to @v/list, @latest and branch queries are reused")
		e.duration(&s.notFoundTTL, "not-found-ttl", "GOFER_NOT_FOUND_TTL", time.Minute, "how long a version whose fetch ended not found (or refused) is answered from memory without another fetch")
		e.bool(&s.passthroughDown, "passthrough-without-temporal", "GOFER_PASSTHROUGH_WITHOUT_TEMPORAL", false, "when Temporal is out of reach, answer misses from the upstream without storing them (otherwise 503)")
		e.bool(&s.indexPrivate, "index-private", "GOFER_INDEX_PRIVATE", false, "list the stored versions of private modules (rules) in GET /index too")
		e.duration(&s.zipRedirect, "zip-redirect", "GOFER_ZIP_REDIRECT", 0, "answer .zip requests with a redirect to a presigned URL valid this long (needs --storage=s3); 0 streams zips through gofer")
		e.bool(&s.worker, "worker", "GOFER_WORKER", true, "also run a worker in this process")
		e.string(&s.adminToken, "admin-token", "GOFER_ADMIN_TOKEN", "", "bearer token of the admin API under /admin (warm, fetches, schedules); empty turns the admin API off (set it by the variable, not the flag, to keep it out of ps)")
		e.string(&s.temporalUI, "temporal-ui", "GOFER_TEMPORAL_UI", "http://localhost:8233", "base URL of the Temporal Web UI, for the links the admin API answers with; empty gives no links")
		e.string(&s.proxyAuth, "proxy-auth", "GOFER_PROXY_AUTH", "", `file of the credentials the proxy endpoints require, one a line: "basic <user> <password>" or "bearer <token>"; empty: the proxy is open`)
	} else {
		s.worker = true
	}
	if e.err != nil {
		return nil, e.err
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if err := s.checkStores(); err != nil {
		return nil, err
	}
	switch {
	case s.zipRedirect > 0 && s.storage != "s3":
		return nil, fmt.Errorf("GOFER_ZIP_REDIRECT needs GOFER_STORAGE=s3: only S3 can presign URLs")
	case frontEnd && s.maxFetches < 1:
		return nil, fmt.Errorf("GOFER_MAX_FETCHES=%d: want at least 1", s.maxFetches)
	case frontEnd && s.maxConns < 1:
		return nil, fmt.Errorf("GOFER_MAX_CONNECTIONS=%d: want at least 1", s.maxConns)
	case s.warmConcurrency < 1 || s.warmConcurrency > 1000:
		return nil, fmt.Errorf("GOFER_WARM_CONCURRENCY=%d: want 1 to 1000", s.warmConcurrency)
	case s.zipRedirect > 7*24*time.Hour:
		return nil, fmt.Errorf("GOFER_ZIP_REDIRECT=%s: S3 presigned URLs last 7 days at most", s.zipRedirect)
	case (!frontEnd || !s.worker) && (s.metadata == "embedded" || s.storage == "disk"):
		// A separate front end and worker must see the same versions; the disk and embedded
		// stores belong to one process.
		return nil, fmt.Errorf("a front end without a worker, or a worker alone, needs shared stores: GOFER_STORAGE=s3 and GOFER_METADATA=mongo")
	}
	for name, p := range map[string]string{"GOFER_NETRC": s.netrc, "GOFER_GIT_CONFIG": s.gitConfig, "GOFER_WATCHLIST": s.watchlist, "GOFER_PROXY_AUTH": s.proxyAuth} {
		if p != "" {
			if _, err := os.Stat(p); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	if s.upstream == "" || s.sumdb == "" {
		return nil, fmt.Errorf("no upstream or checksum database: set GOFER_UPSTREAM and GOFER_SUMDB, or install the go command so that `go env` answers (%v)", goerr)
	}
	return &s, nil
}

// temporalSettings are where the operator's commands (gc, scrub) find Temporal.
type temporalSettings struct{ address, namespace string }

// flags defines them; purpose says what the command asks Temporal for.
func (t *temporalSettings) flags(e *envFlags, purpose string) {
	e.string(&t.address, "temporal-address", "GOFER_TEMPORAL_ADDRESS", "127.0.0.1:7233", "host:port of the Temporal frontend"+purpose)
	e.string(&t.namespace, "temporal-namespace", "GOFER_TEMPORAL_NAMESPACE", "default", "Temporal namespace of the gofer workers"+purpose)
}

// dial connects to Temporal; the command's own errors tell what failed.
func (t *temporalSettings) dial() (client.Client, error) {
	c, err := client.Dial(client.Options{HostPort: t.address, Namespace: t.namespace, Logger: app.TemporalLogger(zap.NewNop())})
	if err != nil {
		return nil, fmt.Errorf("dialing Temporal at %s: %w", t.address, err)
	}
	return c, nil
}

// storeFlags defines the settings of the blob and metadata stores.
// checksumFlags defines the settings of the checksum database and of the upstream through which
// it may be proxied, and of where their clients may connect; their defaults are the go
// command's, and the error says why it could not be asked.
func (s *settings) checksumFlags(e *envFlags) error {
	goenv, goerr := goEnv("GOPROXY", "GOSUMDB", "GONOSUMDB", "GOPRIVATE")
	e.goString(&s.upstream, "upstream", "GOFER_UPSTREAM", "upstream GOPROXY list, with the go command's syntax (a,b falls through on not found, a|b on any error; off; direct fetches from version control with the go command and git); the default is the go command's own (go env GOPROXY)", goenv, "GOPROXY")
	e.string(&s.allowHosts, "allow-hosts", "GOFER_ALLOW_HOSTS", "", "hosts (host or host:port), addresses and CIDR prefixes on loopback, link-local or private networks that private modules' fetches and the upstream and checksum-database clients may connect to, comma-separated, e.g. git.corp.example,10.20.0.0/16; the upstream proxies, the checksum database and HTTPS_PROXY are allowed by being configured; the direct entry reaches public addresses only")
	e.goString(&s.sumdb, "sumdb", "GOFER_SUMDB", "checksum database every fetched version is checked against, with GOSUMDB's syntax (name, name+key, name+key URL, or off); the default is the go command's (go env GOSUMDB)", goenv, "GOSUMDB")
	e.goString(&s.noSumDB, "nosumdb", "GOFER_NOSUMDB", "comma-separated glob patterns of private module paths, never looked up in the checksum database (GONOSUMDB's syntax); the default is go env GONOSUMDB, else GOPRIVATE", goenv, "GONOSUMDB", "GOPRIVATE")
	return goerr
}

func (s *settings) storeFlags(e *envFlags) {
	e.string(&s.dataDir, "data-dir", "GOFER_DATA_DIR", "./data", "directory of the disk blob store and the embedded metadata database")
	e.string(&s.storage, "storage", "GOFER_STORAGE", "disk", "where blobs live: disk (under the data directory) or s3")
	e.string(&s.s3Endpoint, "s3-endpoint", "GOFER_S3_ENDPOINT", "", "S3 API URL, for S3-compatible servers (empty: AWS S3 in the region); credentials come from the AWS default chain (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, profiles, instance roles)")
	e.string(&s.s3Region, "s3-region", "GOFER_S3_REGION", "", "S3 region (empty: the AWS configuration's, else us-east-1)")
	e.string(&s.s3Bucket, "s3-bucket", "GOFER_S3_BUCKET", "", "S3 bucket (required with --storage=s3)")
	e.string(&s.s3Prefix, "s3-prefix", "GOFER_S3_PREFIX", "", "prefix of every key in the bucket")
	e.bool(&s.s3ForcePathStyle, "s3-force-path-style", "GOFER_S3_FORCE_PATH_STYLE", false, "address the bucket as <endpoint>/<bucket> (MinIO and most S3-compatible servers)")
	e.bool(&s.s3CreateBucket, "s3-create-bucket", "GOFER_S3_CREATE_BUCKET", false, "create the bucket at start if it is missing (otherwise a missing bucket is a start-up error)")
	e.string(&s.metadata, "metadata", "GOFER_METADATA", "embedded", "where metadata lives: embedded (a database file under the data directory; one process only) or mongo")
	e.string(&s.mongoURI, "mongo-uri", "GOFER_MONGO_URI", "mongodb://127.0.0.1:27017", "MongoDB connection string, with --metadata=mongo")
	e.string(&s.mongoDatabase, "mongo-database", "GOFER_MONGO_DATABASE", "gofer", "MongoDB database, with --metadata=mongo")
}

func (s *settings) checkStores() error {
	switch {
	case s.storage != "disk" && s.storage != "s3":
		return fmt.Errorf("GOFER_STORAGE=%q: want disk or s3", s.storage)
	case s.metadata != "embedded" && s.metadata != "mongo":
		return fmt.Errorf("GOFER_METADATA=%q: want embedded or mongo", s.metadata)
	case s.storage == "s3" && s.s3Bucket == "":
		return fmt.Errorf("GOFER_STORAGE=s3 needs GOFER_S3_BUCKET")
	}
	return nil
}

// parseStoreSettings parses the store settings alone, plus the flags more defines, for
// commands that only work on storage.
func parseStoreSettings(cmd string, args []string, more func(*settings, *envFlags)) (*settings, []string, error) {
	var s settings
	fs := flag.NewFlagSet("gofer "+cmd, flag.ContinueOnError)
	e := &envFlags{fs: fs}
	s.storeFlags(e)
	more(&s, e)
	if e.err != nil {
		return nil, nil, e.err
	}
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	return &s, fs.Args(), s.checkStores()
}

// goEnv asks the go command for some of its settings, so that gofer's defaults are the go
// command's own (GOPROXY, GOSUMDB, ...) and no host is ever written into gofer. Without a go
// command the map is empty and the error says why.
func goEnv(names ...string) (map[string]string, error) {
	out, err := exec.Command("go", append([]string{"env", "-json"}, names...)...).Output()
	env := map[string]string{}
	if err == nil {
		err = json.Unmarshal(out, &env)
	}
	return env, err
}

// envFlags defines flags whose defaults come from environment variables, and keeps the first
// malformed variable as its error.
type envFlags struct {
	fs  *flag.FlagSet
	err error
}

func (e *envFlags) string(p *string, name, env, def, text string) {
	define(e, p, name, env, def, "", func(s string) (string, error) { return s, nil }, text)
}

// goString is string for a setting whose default is the go command's own: the first of the
// go command's settings names that goenv sets.
func (e *envFlags) goString(p *string, name, env, text string, goenv map[string]string, names ...string) {
	var def string
	for _, n := range names {
		if def = goenv[n]; def != "" {
			break
		}
	}
	define(e, p, name, env, def, "go env "+strings.Join(names, ", else "), func(s string) (string, error) { return s, nil }, text)
}

func (e *envFlags) duration(p *time.Duration, name, env string, def time.Duration, text string) {
	define(e, p, name, env, def, "", time.ParseDuration, text)
}

func (e *envFlags) int64(p *int64, name, env string, def int64, text string) {
	define(e, p, name, env, def, "", func(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) }, text)
}

func (e *envFlags) bool(p *bool, name, env string, def bool, text string) {
	define(e, p, name, env, def, "", strconv.ParseBool, text)
}

// define sets *p from env if it is set (else def), then lets the flag override it. from says
// where def comes from, for the settings list, when it is not a constant (empty: def itself).
func define[T any](e *envFlags, p *T, name, env string, def T, from string, parse func(string) (T, error), text string) {
	listing.record(e.fs, setting{flag: name, env: env, def: cmp.Or(from, fmt.Sprint(def)), text: text})
	*p = def
	if v, ok := os.LookupEnv(env); ok {
		x, err := parse(v)
		if err != nil && e.err == nil {
			e.err = fmt.Errorf("%s=%q: %v", env, v, err)
		}
		*p = x
	}
	text = fmt.Sprintf("%s\n(env %s; default %v)", text, env, def)
	set := func(s string) error {
		x, err := parse(s)
		*p = x
		return err
	}
	if _, isBool := any(def).(bool); isBool {
		e.fs.BoolFunc(name, text, set)
	} else {
		e.fs.Func(name, text, set)
	}
}

// A setting is one of a command's settings, as define defines it: a flag and the GOFER_*
// variable that sets its default.
type setting struct {
	cmd  string // the command: serve, worker, gc, scrub, warm
	flag string
	env  string
	def  string // the default as --help prints it, or where it comes from: "go env GOPROXY"
	text string // the help text
}

// listing collects the settings define defines while listSettings runs.
var listing settingList

type settingList struct {
	one sync.Mutex // held by listSettings
	mu  sync.Mutex // guards on and got
	on  bool
	got []setting
}

// record adds s, a setting of the command fs parses, while listSettings runs, and then
// silences the usage message fs prints for -h.
func (l *settingList) record(fs *flag.FlagSet, s setting) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.on {
		s.cmd = strings.TrimPrefix(fs.Name(), "gofer ")
		l.got = append(l.got, s)
		fs.SetOutput(io.Discard)
	}
}

// listSettings lists the settings of every command the usage message names, as define defines
// them: it runs each command with -h, which defines the command's flags and ends at their
// parse, before the command does anything.
func listSettings() ([]setting, error) {
	listing.one.Lock()
	defer listing.one.Unlock()
	listing.mu.Lock()
	listing.on, listing.got = true, nil
	listing.mu.Unlock()
	defer func() {
		listing.mu.Lock()
		listing.on = false
		listing.mu.Unlock()
	}()
	var cmds []string
	for _, m := range regexp.MustCompile(`(?m)^  gofer (\w+)`).FindAllStringSubmatch(usage, -1) {
		if !slices.Contains(cmds, m[1]) {
			cmds = append(cmds, m[1])
		}
	}
	for _, cmd := range cmds {
		if err := run(context.Background(), []string{cmd, "-h"}, io.Discard); err != nil && !errors.Is(err, flag.ErrHelp) {
			return nil, fmt.Errorf("gofer %s -h: %w", cmd, err)
		}
	}
	listing.mu.Lock()
	defer listing.mu.Unlock()
	var all []setting
	for _, s := range listing.got {
		if !slices.Contains(all, s) { // another goroutine may have defined a command's settings meanwhile
			all = append(all, s)
		}
	}
	return all, nil
}
