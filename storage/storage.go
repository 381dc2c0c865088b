// Package storage declares the two stores gofer keeps module versions in, blobs (the .info,
// .mod and .zip files) and metadata (one insert-once record per version), the key layout of
// blobs, and the one kind of their failures (Failure). Implementations live in subpackages and all pass the suites in storage/storagetest.
// Nothing here may make a version visible: only a metadata insert does that.
package storage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/mod/module"

	"github.com/goferproxy/gofer"
)

// Reader reads one stored blob; it seeks and reads at offsets so that it can serve HTTP range
// requests and zip.CheckZip without reading the blob into memory.
type Reader interface {
	io.ReadSeekCloser
	io.ReaderAt
}

// Blobs stores immutable files under string keys. A store may also implement server.Presigner,
// as the S3 store does: with server.Config.ZipRedirect set, the server then answers a GET of a
// .zip with a redirect to a short-lived URL of its blob in the store, instead of streaming it.
type Blobs interface {
	// Put stores the bytes of r under key, unless key already holds a blob: then it reads
	// nothing more and returns an error matching gofer.ErrExists. A Put that fails leaves no
	// blob under key.
	Put(ctx context.Context, key string, r io.Reader) error
	// Open returns a reader for the blob under key and its size, or an error matching
	// gofer.ErrNotFound.
	Open(ctx context.Context, key string) (Reader, int64, error)
	// Delete removes the blob under key; deleting a missing blob is not an error.
	Delete(ctx context.Context, key string) error
	// Walk calls fn with the key and size of every blob whose key starts with prefix ("" for
	// all) and sorts after after ("" for all), in lexical order of keys, and stops at fn's
	// first error, which it returns. after lets a long walk go on where it stopped without
	// listing again what it already saw.
	Walk(ctx context.Context, prefix, after string, fn func(key string, size int64) error) error
}

// Metadata stores, insert-once, one record per module version and, for a version whose
// record was inserted without its zip (its .info and .mod were fetched alone), one record of
// its zip.
type Metadata interface {
	// Insert stores v, or returns an error matching gofer.ErrExists if a record for
	// (v.Path, v.Version) is already stored; the stored record is never changed.
	Insert(ctx context.Context, v gofer.Version) error
	// InsertZip stores z, the record of the zip of (z.Path, z.Version) (gofer.Version.ZipOnly),
	// or returns an error matching gofer.ErrExists if one is already stored.
	InsertZip(ctx context.Context, z gofer.Version) error
	// Get returns the record of path@version, or an error matching gofer.ErrNotFound: with its
	// zip's fields taken from the zip's record if the version's own has none (WithZip), or
	// without them (HasZip false) while the zip is not stored.
	Get(ctx context.Context, path, version string) (gofer.Version, error)
	// GetZip returns the record InsertZip stored for path@version, or an error matching
	// gofer.ErrNotFound; it knows nothing of zips stored in their version's own record.
	GetZip(ctx context.Context, path, version string) (gofer.Version, error)
	// Versions lists the stored versions of path, in no particular order.
	Versions(ctx context.Context, path string) ([]string, error)
	// Catalog lists stored versions ordered by path, then version (byte order, not semver), at
	// most limit of them, starting after the pair after (the zero module.Version: from the start).
	Catalog(ctx context.Context, after module.Version, limit int) ([]module.Version, error)
	// Index lists stored versions in the order their records were inserted (InsertZip adds
	// nothing), each with the time the store gave its insert: at most limit of those stored
	// after since (the zero time: from the start), oldest first, versions of the same time in
	// an order of the store's own. Its order is final: a version inserted after Index returned
	// is never listed before one it returned (a store whose writers cannot order their inserts
	// holds its newest back until they are), so that paging on from the last time returned
	// loses and repeats nothing, but at a tie (see IndexPage).
	Index(ctx context.Context, since time.Time, limit int) ([]Stored, error)
	// Close releases the store.
	Close() error
}

// Stored is one version in the order of its store: what GET /index answers for it, field for
// field.
type Stored struct {
	Path      string
	Version   string
	Timestamp time.Time // when its record was inserted, as the store keeps it
}

// IndexPage is m's Index, at most limit versions stored after since, cut so that it does not
// end inside a tie: the next page, from the last Timestamp, then starts at the first version
// after it. Only a store with more than limit versions of one time could cut a tie; then the
// page is limit of them. more says whether m holds versions after the page: a cut page may
// be shorter than limit and still not be the last.
func IndexPage(ctx context.Context, m Metadata, since time.Time, limit int) (page []Stored, more bool, err error) {
	page, err = m.Index(ctx, since, limit+1)
	if err != nil || len(page) <= limit {
		return page, false, err
	}
	end := limit
	for end > 0 && page[end-1].Timestamp.Equal(page[limit].Timestamp) {
		end--
	}
	if end == 0 {
		end = limit
	}
	return page[:end], true, nil
}

// Failure classifies a failure of a store, once for every caller: whatever it is (even a blob
// that is missing although a record or a staged fetch names it), it says nothing about the
// module, so it is unavailable and worth a retry. nil and gofer.ErrExists (a put-if-absent that
// found its key taken, which callers handle) are returned as they are.
func Failure(err error) error {
	if err == nil || errors.Is(err, gofer.ErrExists) {
		return err
	}
	return gofer.Errorf(gofer.ErrUnavailable, "storage: %w", err)
}

// Key is the blob key of one file of a stored version: the go command's own escaped layout,
// "<escaped path>/@v/<escaped version>.<ext>", with ext one of info, mod, zip. A path or
// version that cannot be escaped fails with an error matching gofer.ErrNotFound (see escape).
func Key(path, version, ext string) (string, error) {
	v, err := escape(path, version)
	if err != nil {
		return "", err
	}
	return v + "." + ext, nil
}

// ParseKey is the inverse of Key: it reports the module path, version and file extension a
// final blob key names, and false for any other key (a staged blob, say).
func ParseKey(key string) (path, version, ext string, ok bool) {
	i := strings.LastIndex(key, "/@v/")
	dot := strings.LastIndex(key, ".")
	if i < 0 || dot < i {
		return "", "", "", false
	}
	ext = key[dot+1:]
	if ext != "info" && ext != "mod" && ext != "zip" {
		return "", "", "", false
	}
	path, err := module.UnescapePath(key[:i])
	if err != nil {
		return "", "", "", false
	}
	version, err = module.UnescapeVersion(key[i+len("/@v/") : dot])
	if err != nil || module.Check(path, version) != nil {
		return "", "", "", false
	}
	if k, err := Key(path, version, ext); err != nil || k != key {
		return "", "", "", false
	}
	return path, version, ext, true
}

// Staging starts the key of every staged blob.
const Staging = "_staging/"

// StagingKey is where one download attempt keeps a file until it is verified and committed;
// staged blobs are never served. stage names the attempt, under StagingPrefix of its run, so
// that a late attempt can never overwrite what an earlier one had verified. It fails as Key does.
func StagingKey(path, version, stage, ext string) (string, error) {
	v, err := escape(path, version)
	if err != nil {
		return "", err
	}
	return Staging + v + "/" + stage + "." + ext, nil
}

// StagingPrefix is the prefix of every staged blob of one fetch run: stage names that start
// with runID + "/". It fails as Key does.
func StagingPrefix(path, version, runID string) (string, error) {
	v, err := escape(path, version)
	if err != nil {
		return "", err
	}
	return Staging + v + "/" + runID + "/", nil
}

// ParseStagingKey reports the module path, version and fetch run of a staged blob's key (any key
// under a StagingPrefix), and false for any other key.
func ParseStagingKey(key string) (path, version, runID string, ok bool) {
	rest, ok := strings.CutPrefix(key, Staging)
	i := strings.LastIndex(rest, "/@v/")
	if !ok || i < 0 {
		return "", "", "", false
	}
	vers, after, _ := strings.Cut(rest[i+len("/@v/"):], "/")
	runID, _, ok = strings.Cut(after, "/")
	path, perr := module.UnescapePath(rest[:i])
	version, verr := module.UnescapeVersion(vers)
	if !ok || runID == "" || perr != nil || verr != nil {
		return "", "", "", false
	}
	if prefix, err := StagingPrefix(path, version, runID); err != nil || !strings.HasPrefix(key, prefix) {
		return "", "", "", false
	}
	return path, version, runID, true
}

// escape is "<escaped path>/@v/<escaped version>". A path or version the go command cannot
// escape names no module version that can exist, so no blob can be stored under it: the
// error is gofer.ErrNotFound, what a client asking for it is told.
func escape(path, version string) (string, error) {
	p, perr := module.EscapePath(path)
	v, verr := module.EscapeVersion(version)
	if err := cmp.Or(perr, verr); err != nil {
		return "", fmt.Errorf("storage: no key for %s@%s: %w: %w", path, version, gofer.ErrNotFound, err)
	}
	return p + "/@v/" + v, nil
}

// ContextReader stops reading r once ctx is done, so that a store's long copy (a 500 MiB zip)
// ends with a cancelled commit instead of going on for nobody.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
