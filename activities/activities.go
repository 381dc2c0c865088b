// Package activities holds the steps of a fetch: download a module version from the upstream
// into staging, verify it, and commit it to storage. Every activity is idempotent, takes and
// returns small references (never file contents: Temporal history has a 2 MB payload limit), and
// reports failures as typed Temporal errors so that only an unavailable dependency is retried.
// Nothing here ever makes unverified bytes visible: only Commit's metadata insert publishes.
package activities

import (
	"context"
	"io"
	"time"

	"go.uber.org/zap"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/storage"
)

// Upstream is where versions are downloaded from; each call returns the base URL that answered.
type Upstream interface {
	Info(ctx context.Context, path, query string) ([]byte, string, error)
	Mod(ctx context.Context, path, version string) ([]byte, string, error)
	Zip(ctx context.Context, path, version string) (io.ReadCloser, string, error)
}

// Activities carries the dependencies of the fetch activities; register one value with a worker.
type Activities struct {
	Upstream Upstream
	Blobs    storage.Blobs
	Meta     storage.Metadata
	// Log receives alarms and cleanup failures; nil logs nothing.
	Log *zap.Logger
}

// Job names one fetch run: the version and the workflow run that stages its files.
type Job struct {
	Path    string
	Version string
	RunID   string
}

func (j Job) stagingKey(ext string) string {
	return storage.StagingKey(j.Path, j.Version, j.RunID, ext)
}

// Staged describes a job's downloaded, not yet verified, files.
type Staged struct {
	Job    Job
	Source string    // the upstream base URL that served the zip
	Time   time.Time // the version's time, from its .info
	Info   gofer.File
	Mod    gofer.File
	Zip    gofer.File
}

// Verified is a staged version that passed every check, with its go.sum hashes.
type Verified struct {
	Staged
	ZipHash string
	ModHash string
}

// exts are the files of a module version, in the order they are fetched and committed.
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

func (a *Activities) log() *zap.Logger {
	if a.Log == nil {
		return zap.NewNop()
	}
	return a.Log
}

// Discard deletes a job's staged files. The fetch workflow runs it at the end of every run,
// whatever the outcome, so staging never outlives the run that wrote it.
func (a *Activities) Discard(ctx context.Context, j Job) error {
	for _, ext := range exts {
		if err := a.Blobs.Delete(ctx, j.stagingKey(ext)); err != nil {
			return encode(err)
		}
	}
	return nil
}
