// Package activities holds the steps of gofer's workflows, each a Temporal activity: a fetch's
// (Download into staging, Verify, Commit and Discard; FetchMod and FetchZip, which download,
// check and commit a version's small files, or a small zip, in one), a scrub's page
// (ScrubPage), a warm's (WarmPage, WarmFetches, AwaitFetch), a watch's (Resolve, which
// stores the versions a watchlist entry wants as a warm list) and a follow's (ReadFeed, a page
// of a followed proxy's index, then WarmFetches). Every activity is idempotent,
// takes and returns small references (never file contents: Temporal history has a 2 MB payload
// limit), and returns its failures encoded by workflows/fetcherr, so that only an unavailable
// dependency is retried. It never makes unverified bytes visible (only a commit's metadata
// insert publishes a version, once every check passed), never changes or deletes a published
// version (it deletes only what it staged, and blobs no record names yet), and never decides
// which steps run, nor their timeouts and retries: the workflows do.
package activities

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.temporal.io/sdk/activity"
	"go.uber.org/zap"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/rules"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/upstream"
	"github.com/goferproxy/gofer/workflows/fetcherr"
)

// Activities carries the dependencies of the fetch activities; register one value with a worker.
type Activities struct {
	// Upstream is where versions are downloaded from, and where watched modules' new versions
	// are found.
	Upstream upstream.Source
	Blobs    storage.Blobs
	Meta     storage.Metadata
	// Direct fetches modules from version control; the modules that rules mark private are
	// fetched with it, never from Upstream. Nil: private modules cannot be fetched.
	Direct upstream.Source
	// Follows are the proxies the watchlist follows, by their feed names (warm.Follow.Feed,
	// their URLs without userinfo): a follow reads the index of a chain's first entry, and its
	// fetches (Job.From) download from the chain.
	Follows map[string]*upstream.Chain
	// Rules say which modules are private; nil: none.
	Rules *rules.Live
	// SumDB checks hashes against the checksum database (never for private modules); nil
	// checks nothing (VerifiedBy records "none").
	SumDB SumChecker
	// Log receives alarms and cleanup failures; nil logs nothing.
	Log *zap.Logger
	// Meter makes the alarm counter (AlarmMetric); nil counts nothing.
	Meter metric.Meter
	// Temporal lets downloads report progress to their workflow and warm runs wait for
	// fetches they did not start; nil: no progress reports, and such waits fail.
	Temporal Temporal
	// RunFetch starts the fetch workflow of files (FilesMod, FilesZip) of path@version, vouched
	// for as a warm's (workflows.FetchRequest.Known) and downloaded from the followed proxy
	// from (Job.From), or joins the one running, and returns its outcome: what WarmFetches
	// runs. worker.New sets it.
	RunFetch func(ctx context.Context, path, version, files, from string) error
	// Committed, if set, is told the workflow ID of every fetch whose files are stored (or
	// were found stored), as soon as they are, before the workflow ends: a front end in the same
	// process answers the requests waiting for that fetch at once (server.Commits).
	Committed func(workflowID string)
	// ProgressEvery spaces a download's heartbeats and progress reports; a report is sent
	// only when more of the zip arrived since the last one, so a fetch's history grows while
	// its download moves, and only then (what a waiting request watches). Zero means 10s. It
	// is also how long a local FetchMod or FetchZip gives its files to arrive before they are
	// fetched another way (see fetcherr.ErrNotLocal).
	ProgressEvery time.Duration
	// LocalZipLimit is the largest zip FetchZip brings in one local activity; a bigger one is
	// fetched through staging. Zero means DefaultLocalZipLimit.
	LocalZipLimit int64

	instrumentsOnce sync.Once
	in              instruments
}

// SumChecker verifies the go.sum hashes of a module version against the checksum database.
type SumChecker interface {
	// Check returns how path@version was verified (for the record's VerifiedBy), an error of
	// kind gofer.ErrInvalid if the database holds other hashes (or none: a public version it
	// does not know), or gofer.ErrUnavailable if it cannot be asked now.
	Check(ctx context.Context, path, version, zipHash, modHash string) (verifiedBy string, err error)
}

// Job names one fetch run: the version and the workflow run that stages its files.
type Job struct {
	Path    string
	Version string
	RunID   string
	// AttemptOffset is added to the attempt numbers that name staged files: a second Download
	// in one run stages under names of its own, past the first one's attempts.
	AttemptOffset int32
	// Files says which files of the version the job brings: FilesZip, the zip alone (FetchMod
	// brings the .info and .mod), or, in fetches recorded before those were fetched apart, ""
	// for all three.
	Files string
	// From is the feed name of the followed proxy to download from (a key of Follows), for
	// a follow's fetches; empty: the upstream.
	From string
}

// Values of Job.Files (and workflows.FetchRequest.Files).
const (
	FilesMod = "mod" // the .info and the .mod
	FilesZip = "zip" // the zip
)

// Staged describes the files one download attempt staged, not yet verified. Each attempt stages
// under keys of its own, so an attempt that outlives its timeout can never change what a later
// attempt staged and Verify approved.
type Staged struct {
	Job     Job
	Attempt int32
	Private bool      // fetched from version control: never looked up in the checksum database
	Source  string    // the upstream base URL that served the zip
	Time    time.Time // the version's time, from its .info
	Info    gofer.File
	Mod     gofer.File
	Zip     gofer.File
}

func (s Staged) key(ext string) (string, error) {
	return storage.StagingKey(s.Job.Path, s.Job.Version, fmt.Sprintf("%s/%d", s.Job.RunID, s.Attempt), ext)
}

// Verified is a staged version that passed every check, with its go.sum hashes.
type Verified struct {
	Staged
	ZipHash    string
	ModHash    string
	VerifiedBy string // how the hashes were checked: by which checksum database, or "none (why)"
}

// exts are the files of a module version, in the order they are committed.
var exts = []string{"info", "mod", "zip"}

func (s Staged) file(ext string) gofer.File {
	switch ext {
	case "info":
		return s.Info
	case "mod":
		return s.Mod
	}
	return s.Zip
}

// log is a.Log with, in an activity, the IDs of its workflow run and its name on every line.
func (a *Activities) log(ctx context.Context) *zap.Logger {
	if a.Log == nil {
		return zap.NewNop()
	}
	if !activity.IsActivity(ctx) {
		return a.Log
	}
	info := activity.GetInfo(ctx)
	return a.Log.With(zap.String("workflow_id", info.WorkflowExecution.ID), zap.String("run_id", info.WorkflowExecution.RunID),
		zap.String("activity", info.ActivityType.Name))
}

// Discard deletes every file the job's attempts staged. The fetch workflow runs it at the end
// of every run, whatever the outcome, so staging never outlives the run that wrote it.
func (a *Activities) Discard(ctx context.Context, j Job) error {
	prefix, err := storage.StagingPrefix(j.Path, j.Version, j.RunID)
	if err != nil {
		return fetcherr.Encode(err)
	}
	var keys []string
	err = a.Blobs.Walk(ctx, prefix, "", func(key string, _ int64) error {
		keys = append(keys, key)
		return nil
	})
	for _, key := range keys {
		if err == nil {
			err = a.Blobs.Delete(ctx, key)
		}
	}
	return fetcherr.Encode(storage.Failure(err))
}

// done ends an activity that commits: it tells a.Committed, if set, that the running
// activity's fetch has stored its files (or found them stored), and encodes its error.
func (a *Activities) done(ctx context.Context, rec gofer.Version, err error) (gofer.Version, error) {
	if err == nil && a.Committed != nil {
		a.Committed(activity.GetInfo(ctx).WorkflowExecution.ID)
	}
	return rec, fetcherr.Encode(err)
}

// source is where path is fetched from: version control for a private module, whatever from
// says, or else the followed proxy from names, or else the upstream.
func (a *Activities) source(path, from string) (up upstream.Source, private bool, err error) {
	if a.Rules.Match(path).Rule == rules.Private {
		if a.Direct == nil {
			return nil, true, rules.NoDirect(path)
		}
		return a.Direct, true, nil
	}
	if from == "" {
		return a.Upstream, false, nil
	}
	c, err := a.followed(from)
	if err != nil {
		return nil, false, err
	}
	return c, false, nil
}

// followed is the followed proxy feed names. One this worker's watchlist does not follow is
// unavailable, and retried: during a deploy that adds the entry, another worker may still run
// the old watchlist (an entry removed for good ends its schedule, and its fetches' retries).
func (a *Activities) followed(feed string) (*upstream.Chain, error) {
	c, ok := a.Follows[feed]
	if !ok {
		return nil, gofer.Errorf(gofer.ErrUnavailable, "%s is not followed by this worker's watchlist", feed)
	}
	return c, nil
}
