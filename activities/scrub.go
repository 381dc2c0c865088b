package activities

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.temporal.io/sdk/activity"
	"go.uber.org/zap"
	"golang.org/x/mod/sumdb/dirhash"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/workflows/fetcherr"
)

// DefaultScrubPageSize is how many versions one ScrubPage checks when the request leaves it 0.
const DefaultScrubPageSize = 50

// ScrubPageRequest asks for one page of a scrub: the next versions in the lexical order of
// their blob keys.
type ScrubPageRequest struct {
	// After is the last blob key an earlier page processed (its Cursor); "" starts at the first.
	After string
	// Versions bounds the versions this page checks; 0 means DefaultScrubPageSize.
	Versions int
}

// Mismatch is one stored file that differs from its version's record, or a version whose
// record the checksum database disagrees with.
type Mismatch struct {
	Path    string
	Version string
	File    string // info, mod, zip, or sumdb for the checksum database
	Problem string // what differs: "missing", the hashes found and recorded, ...
}

func (m Mismatch) String() string {
	return m.Path + "@" + m.Version + " " + m.File + ": " + m.Problem
}

// ScrubPageResult is what one page found. It is also the page's heartbeat detail, so a retried
// page (after a worker restart, say) resumes after Cursor with what it had already found.
type ScrubPageResult struct {
	// Cursor is the last blob key processed: the After of the next page.
	Cursor string
	// Done reports that the walk went past the last stored blob.
	Done bool
	// Versions counts the versions checked against their records; Files and Bytes count the
	// blobs that matched theirs.
	Versions int
	Files    int
	Bytes    int64
	// Unrecorded counts versions with blobs but no record (a commit in flight, or what
	// `gofer gc --dry-run` lists): nothing can be checked against, and nothing is reported.
	Unrecorded int
	Mismatches []Mismatch
}

// errPageFull stops the walk of a page before its first version too many.
var errPageFull = errors.New("scrub page full")

// ScrubPage re-hashes the blobs of the next stored versions after r.After against their
// records (SHA-256 and size of each file, h1: hashes of the zip and the go.mod), asks the
// checksum database about each version's recorded h1: hashes when a SumDB is set, and raises
// the "scrub-mismatch" alarm for each difference, a missing blob included. It never changes or
// deletes a stored version (the checksum database client may cache tiles and tree heads). Storage errors and an unreachable checksum database are retryable; the
// retry resumes after the last key the page heartbeated.
//
// A version is checked where the walk meets its first blob, so one whose blobs straddle two
// pages is checked once. A version with a record but no blob at all is not seen: the walk
// follows the blobs, since the metadata stores cannot list every record.
func (a *Activities) ScrubPage(ctx context.Context, r ScrubPageRequest) (ScrubPageResult, error) {
	res, err := a.scrubPage(ctx, r)
	return res, fetcherr.Encode(err)
}

func (a *Activities) scrubPage(ctx context.Context, r ScrubPageRequest) (ScrubPageResult, error) {
	limit := r.Versions
	if limit <= 0 {
		limit = DefaultScrubPageSize
	}
	res := ScrubPageResult{Cursor: r.After}
	if activity.HasHeartbeatDetails(ctx) {
		var last ScrubPageResult
		if err := activity.GetHeartbeatDetails(ctx, &last); err == nil && last.Cursor > r.After {
			res = last
		}
	}
	start := res.Cursor
	seen := make(map[string]bool) // path@version of the versions this attempt met
	err := a.Blobs.Walk(ctx, "", start, func(key string, _ int64) error {
		if path, version, ext, ok := storage.ParseKey(key); ok && !seen[path+"@"+version] {
			seen[path+"@"+version] = true
			earlier, err := a.checkedEarlier(ctx, path, version, ext, start)
			if err != nil {
				return storage.Failure(err)
			}
			if !earlier {
				if res.Versions+res.Unrecorded >= limit {
					return errPageFull
				}
				if err := a.scrubVersion(ctx, path, version, &res); err != nil {
					return err
				}
			}
		}
		res.Cursor = key
		activity.RecordHeartbeat(ctx, res)
		return nil
	})
	switch {
	case errors.Is(err, errPageFull):
		return res, nil
	case ctx.Err() != nil:
		return res, ctx.Err()
	case err != nil && !errors.Is(err, gofer.ErrUnavailable):
		// The walk's own failure: scrubVersion classifies its errors itself.
		return res, storage.Failure(err)
	case err != nil:
		return res, err
	}
	res.Done = true
	return res, nil
}

// checkedEarlier reports whether path@version, met at its ext blob, was checked by an earlier
// page or attempt, which stopped at the key start: it was if one of its blobs that sort before
// ext lies at or before start. Blobs between start and here would have been met already.
func (a *Activities) checkedEarlier(ctx context.Context, path, version, ext, start string) (bool, error) {
	for _, e := range exts {
		if e == ext {
			break
		}
		key, err := storage.Key(path, version, e)
		if err != nil {
			return false, err
		}
		if key > start {
			continue
		}
		r, _, err := a.Blobs.Open(ctx, key)
		if err == nil {
			r.Close()
			return true, nil
		}
		if !errors.Is(err, gofer.ErrNotFound) {
			return false, err
		}
	}
	return false, nil
}

// scrubVersion checks one version and adds what it found to res.
func (a *Activities) scrubVersion(ctx context.Context, path, version string, res *ScrubPageResult) error {
	rec, err := a.Meta.Get(ctx, path, version)
	if errors.Is(err, gofer.ErrNotFound) {
		res.Unrecorded++
		return nil
	} else if err != nil {
		return storage.Failure(err)
	}
	var found []Mismatch
	// The checksum database first: when it cannot answer, the page is retried, and nothing
	// found in this version has been reported twice.
	// Only versions stored as verified by a database are asked about again: a private one
	// (or one stored while GOSUMDB was off) must never be named to the database.
	if a.SumDB != nil && strings.HasPrefix(rec.VerifiedBy, "sumdb ") {
		_, err := a.SumDB.Check(ctx, rec.Path, rec.Version, rec.ZipHash, rec.ModHash)
		if errors.Is(err, gofer.ErrInvalid) {
			found = append(found, Mismatch{Path: path, Version: version, File: "sumdb", Problem: err.Error()})
		} else if err != nil {
			return gofer.Errorf(gofer.ErrUnavailable, "checksum database, for %s@%s: %w", path, version, err)
		}
	}
	for _, ext := range exts {
		if ext == "zip" && !rec.HasZip() {
			continue // its .info and .mod were fetched alone; a zip blob is no part of it yet
		}
		activity.RecordHeartbeat(ctx, *res)
		problems, size, err := a.scrubFile(ctx, rec, ext)
		if err != nil {
			return storage.Failure(err)
		}
		if problems != nil {
			found = append(found, Mismatch{Path: path, Version: version, File: ext, Problem: strings.Join(problems, "; ")})
			continue
		}
		res.Files++
		res.Bytes += size
	}
	res.Versions++
	for _, m := range found {
		a.alarm(ctx, "scrub-mismatch", "a stored version differs from its record or the checksum database",
			zap.String("module", m.Path), zap.String("version", m.Version), zap.String("file", m.File),
			zap.String("problem", m.Problem), zap.String("zipHash", rec.ZipHash), zap.String("modHash", rec.ModHash))
	}
	res.Mismatches = append(res.Mismatches, found...)
	return nil
}

// scrubFile re-hashes the ext blob of rec and returns what differs from the record (nil for
// nothing) and its size.
func (a *Activities) scrubFile(ctx context.Context, rec gofer.Version, ext string) ([]string, int64, error) {
	key, err := storage.Key(rec.Path, rec.Version, ext)
	if err != nil {
		return nil, 0, err
	}
	r, _, err := a.Blobs.Open(ctx, key)
	if errors.Is(err, gofer.ErrNotFound) {
		return []string{"missing"}, 0, nil
	} else if err != nil {
		return nil, 0, err
	}
	defer r.Close()
	switch ext {
	case "info":
		got, err := digest(r)
		return differs(got, rec.Info), got.Size, err
	case "mod":
		// Within the go command's limit, the whole go.mod is hashed; beyond it, the record
		// (made under that limit) cannot match anyway.
		data, err := io.ReadAll(io.LimitReader(r, gofer.MaxModSize+1))
		if err != nil {
			return nil, 0, err
		}
		got, _ := digest(bytes.NewReader(data))
		problems := differs(got, rec.Mod)
		h1, err := dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(data)), nil
		})
		if err != nil {
			return nil, 0, err
		}
		if h1 != rec.ModHash {
			problems = append(problems, fmt.Sprintf("h1 %s, record says %s", h1, rec.ModHash))
		}
		return problems, got.Size, nil
	}
	name, cleanup, err := localFile(r)
	if err != nil {
		return nil, 0, err
	}
	defer cleanup()
	f, err := os.Open(name)
	if err != nil {
		return nil, 0, err
	}
	got, err := digest(f)
	f.Close()
	if err != nil {
		return nil, 0, err
	}
	problems := differs(got, rec.Zip)
	// A damaged zip often fails to hash at all (a file's CRC-32 no longer matches).
	if h1, err := dirhash.HashZip(name, dirhash.Hash1); err != nil {
		problems = append(problems, fmt.Sprintf("does not hash: %v", err))
	} else if h1 != rec.ZipHash {
		problems = append(problems, fmt.Sprintf("h1 %s, record says %s", h1, rec.ZipHash))
	}
	return problems, got.Size, nil
}

// digest is the size and SHA-256 of what r yields.
func digest(r io.Reader) (gofer.File, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return gofer.File{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, err
}

// differs lists how got differs from the recorded want; nil if it does not.
func differs(got, want gofer.File) []string {
	var problems []string
	if got.Size != want.Size {
		problems = append(problems, fmt.Sprintf("size %d, record says %d", got.Size, want.Size))
	}
	if got.SHA256 != want.SHA256 {
		problems = append(problems, fmt.Sprintf("sha256 %s, record says %s", got.SHA256, want.SHA256))
	}
	return problems
}
