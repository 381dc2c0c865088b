package server

import (
	"context"
	"errors"
	"io"
	"maps"
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
	rec   gofer.Version
	info  []byte
	mod   []byte
	zip   atomic.Pointer[[]byte] // set at the zip's first hit, if it is held
	etags map[string][]string    // ETag header values by kind: the quoted SHA-256 of the file
}

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
		e := &entry{rec: hot.rec.WithZip(z), info: hot.info, mod: hot.mod, etags: maps.Clone(hot.etags)}
		e.etags["zip"] = headerValue(`"` + z.Zip.SHA256 + `"`)
		s.versions.add(key, e, int64(len(key)+len(e.info)+len(e.mod))+512)
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
		e := &entry{rec: rec, etags: map[string][]string{
			"info": headerValue(`"` + rec.Info.SHA256 + `"`),
			"mod":  headerValue(`"` + rec.Mod.SHA256 + `"`),
			"zip":  headerValue(`"` + rec.Zip.SHA256 + `"`),
		}}
		info, err := storage.Key(path, version, "info")
		if err != nil {
			return nil, err
		}
		mod, err := storage.Key(path, version, "mod")
		if err != nil {
			return nil, err
		}
		if e.info, err = s.readBlob(ctx, info); err != nil {
			return nil, err
		}
		if e.mod, err = s.readBlob(ctx, mod); err != nil {
			return nil, err
		}
		s.versions.add(key, e, int64(len(key)+len(e.info)+len(e.mod))+512)
		return e, nil
	})
}

// heldZip is the zip of e, at most maxHeldZip bytes: read from the blob store at its first
// hit (concurrent first hits share the read), then kept in e, which weighs that much more in
// the cache from then on.
func (s *Server) heldZip(ctx context.Context, e *entry, key string) ([]byte, error) {
	if zip := e.zip.Load(); zip != nil {
		return *zip, nil
	}
	return share(ctx, &s.loads, key, loadWait, func(ctx context.Context) ([]byte, error) {
		if zip := e.zip.Load(); zip != nil {
			return *zip, nil // held by a read that ended as this one began
		}
		zip, err := s.readBlob(ctx, key)
		if err == nil && s.versions.grow(e.rec.Path+"@"+e.rec.Version, e, int64(len(zip))) {
			e.zip.Store(&zip)
		}
		return zip, err
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
