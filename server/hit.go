package server

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/storage"
)

// entry is a stored version as the hit path keeps it in memory: its record, its .info and .mod,
// and, from its first hit, its zip if that is at most maxHeldZip bytes; a bigger zip streams
// from the blob store.
type entry struct {
	rec     gofer.Version
	info    held
	mod     held
	zipETag []string             // the ETag header's value for the zip
	zip     atomic.Pointer[held] // set at the zip's first hit, if it is held
}

// held is a body held in memory and the values of the headers that describe it, made once, so
// that a hit allocates none of them.
type held struct {
	data   []byte
	etag   []string // the quoted SHA-256 of data; nil for what may change, which has none
	length []string // Content-Length; serveHeld makes it if it is nil
}

func newHeld(data []byte, sha256 string) held {
	return held{data: data, etag: etag(sha256), length: headerValue(strconv.Itoa(len(data)))}
}

// mutable is h as the answer to a query (@latest, a branch), which may change: without an ETag.
func (h held) mutable() held {
	h.etag = nil
	return h
}

// etag is the ETag header's value for a file of this SHA-256.
func etag(sha256 string) []string { return headerValue(`"` + sha256 + `"`) }

// maxHeldZip is the largest zip an entry holds. Up to about this size, a hit costs opening the
// blob (an open and a stat on disk, a whole GET on S3) more than moving its bytes; a bigger
// zip's hit is bound by its transfer, which streaming does well. Zips are read at their first
// hit, not with the .info and .mod: the go command asks for the .mod alone of many versions.
const maxHeldZip = 64 << 10

// stored is the stored version key (path@version), as load reads it, or, given the entry hot
// that memory holds of it (without its zip), that entry with its zip if the zip is stored now.
func (s *Server) stored(ctx context.Context, key string, hot *entry) (*entry, error) {
	path, version, _ := strings.Cut(key, "@")
	if hot == nil {
		return s.load(ctx, key, path, version)
	}
	return share(ctx, &s.loads, key+zipRecord, loadWait, func(ctx context.Context) (*entry, error) {
		z, err := s.cfg.Meta.GetZip(ctx, path, version)
		if errors.Is(err, gofer.ErrNotFound) {
			return hot, nil
		} else if err != nil {
			return nil, gofer.Errorf(gofer.ErrUnavailable, "metadata of the zip of %s: %w", key, err)
		}
		e := &entry{rec: hot.rec.WithZip(z), info: hot.info, mod: hot.mod, zipETag: etag(z.Zip.SHA256)}
		s.versions.add(key, e, e.weight(key))
		return e, nil
	})
}

// zipRecord is added to a version's key to name the reads of its zip's record.
const zipRecord = "#zip"

// load reads the stored version path@version (its record, .info and .mod) into memory, or
// fails with gofer.ErrNotFound if it is not stored. Concurrent loads of one version, such as
// every request that waited for its fetch, share one read.
func (s *Server) load(ctx context.Context, key, path, version string) (*entry, error) {
	return share(ctx, &s.loads, key, loadWait, func(ctx context.Context) (*entry, error) {
		rec, err := s.cfg.Meta.Get(ctx, path, version)
		if errors.Is(err, gofer.ErrNotFound) {
			return nil, err
		} else if err != nil {
			return nil, gofer.Errorf(gofer.ErrUnavailable, "metadata of %s: %w", key, err)
		}
		info, err := storage.Key(path, version, "info")
		if err != nil {
			return nil, err
		}
		mod, err := storage.Key(path, version, "mod")
		if err != nil {
			return nil, err
		}
		infoData, err := s.readBlob(ctx, info)
		if err != nil {
			return nil, err
		}
		modData, err := s.readBlob(ctx, mod)
		if err != nil {
			return nil, err
		}
		e := &entry{rec: rec, info: newHeld(infoData, rec.Info.SHA256), mod: newHeld(modData, rec.Mod.SHA256), zipETag: etag(rec.Zip.SHA256)}
		s.versions.add(key, e, e.weight(key))
		return e, nil
	})
}

// weight is what e (without its zip), stored as key, weighs in the cache.
func (e *entry) weight(key string) int64 {
	return int64(len(key)+len(e.info.data)+len(e.mod.data)) + 512
}

// heldZip is the zip of e, at most maxHeldZip bytes: read from the blob store at its first
// hit (concurrent first hits share the read), then kept in e, which weighs that much more in
// the cache from then on.
func (s *Server) heldZip(ctx context.Context, e *entry) (held, error) {
	if zip := e.zip.Load(); zip != nil {
		return *zip, nil
	}
	key, err := storage.Key(e.rec.Path, e.rec.Version, "zip")
	if err != nil {
		return held{}, err
	}
	return share(ctx, &s.loads, key, loadWait, func(ctx context.Context) (held, error) {
		if zip := e.zip.Load(); zip != nil {
			return *zip, nil // held by a read that ended as this one began
		}
		data, err := s.readBlob(ctx, key)
		if err != nil {
			return held{}, err
		}
		zip := held{data: data, etag: e.zipETag, length: headerValue(strconv.Itoa(len(data)))}
		if s.versions.grow(versionKey(e.rec.Path, e.rec.Version), e, int64(len(data))) {
			e.zip.Store(&zip)
		}
		return zip, nil
	})
}

// loadWait bounds a read of a stored version's small files into memory.
const loadWait = 30 * time.Second

func (s *Server) readBlob(ctx context.Context, key string) ([]byte, error) {
	r, _, err := s.cfg.Blobs.Open(ctx, key)
	if err != nil {
		return nil, gofer.Errorf(gofer.ErrUnavailable, "reading %s: %w", key, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r) // stored files were size-checked when they were fetched
	if err != nil {
		return nil, gofer.Errorf(gofer.ErrUnavailable, "reading %s: %w", key, err)
	}
	return b, nil
}
