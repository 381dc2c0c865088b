package sumdb

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/goferproxy/gofer"
)

// get fetches a protocol path ("/latest", "/lookup/...", "/tile/...") from the database. It is
// the one way to the database, for the client (ReadRemote) and for ServeHTTP alike, so that
// concurrent askers of one path share one request. Errors: gofer.ErrNotFound for 404 and 410
// (the go command's "does not exist"), gofer.ErrUnavailable for anything else.
func (c *Checker) get(ctx context.Context, path string) ([]byte, error) {
	c.init()
	ch := c.flight.DoChan(path, func() (any, error) {
		// Detached from the first caller, whose answer every waiting caller shares; bounded
		// on its own.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
		defer cancel()
		return c.getOnce(ctx, path)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.([]byte), nil
	case <-ctx.Done():
		return nil, gofer.Errorf(gofer.ErrUnavailable, "checksum database %s: %s: %w", c.DB.Name, path, ctx.Err())
	}
}

func (c *Checker) getOnce(ctx context.Context, path string) ([]byte, error) {
	base, err := c.DB.base(ctx, c.hc)
	if err != nil {
		return nil, err
	}
	u := redact(base + path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return nil, gofer.Errorf(gofer.ErrUnavailable, "GET %s: %w", u, err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // names the URL unredacted
		}
		return nil, gofer.Errorf(gofer.ErrUnavailable, "GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBlob+1))
	if err != nil {
		return nil, gofer.Errorf(gofer.ErrUnavailable, "GET %s: reading: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		reason := strings.TrimSpace(string(body[:min(len(body), 200)]))
		reason, _, _ = strings.Cut(reason, "\n")
		kind := gofer.ErrUnavailable
		switch {
		case resp.StatusCode == http.StatusBadRequest:
			kind = gofer.ErrNotFound // the database will never have what it calls a bad request
		case (resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone) &&
			!strings.Contains(strings.ToLower(string(body)), "fetch timed out"):
			kind = gofer.ErrNotFound
		}
		return nil, gofer.Errorf(kind, "GET %s: %s: %s", u, resp.Status, reason)
	}
	if len(body) > maxBlob {
		return nil, gofer.Errorf(gofer.ErrUnavailable, "GET %s: answer over %d bytes", u, maxBlob)
	}
	return body, nil
}

// cachedTile returns a stored (hence authenticated) hash tile, or the prefix of its stored full
// tile: a partial tile is the start of the full one.
func (c *Checker) cachedTile(ctx context.Context, t tlog.Tile) ([]byte, bool) {
	if data, err := readBlob(ctx, c.blobs(), protoKey(c.DB.Name, "/"+t.Path())); err == nil && len(data) == t.W*tlog.HashSize {
		return data, true
	}
	full := t
	full.W = 1 << t.H
	if full != t {
		if data, err := readBlob(ctx, c.blobs(), protoKey(c.DB.Name, "/"+full.Path())); err == nil && len(data) == full.W*tlog.HashSize {
			return data[:t.W*tlog.HashSize], true
		}
	}
	return nil, false
}

// authenticTile reports whether data, the database's answer for hash tile t, holds the hashes
// of the newest tree gofer has verified. Only then may it be stored: a tile that is stored is
// trusted by every later reader, and a wrong one could never be replaced. A tile beyond that
// tree cannot be checked yet; it is served (the go command checks it) but not stored.
func (c *Checker) authenticTile(ctx context.Context, t tlog.Tile, data []byte) bool {
	if c.securityErr() != nil {
		return false // the trees gofer holds may be the forked ones
	}
	tree, ok := c.knownTree(ctx)
	if !ok {
		return false
	}
	level := t.L * t.H
	first := t.N << t.H
	if first+int64(t.W) > tree.N>>level {
		return false
	}
	indexes := make([]int64, t.W)
	for i := range indexes {
		indexes[i] = tlog.StoredHashIndex(level, first+int64(i))
	}
	hashes, err := tlog.TileHashReader(tree, &tileReader{c: c, ctx: ctx, tile: t, data: data}).ReadHashes(indexes)
	if err != nil {
		c.log().Debug("sumdb: tile not authenticated", zap.String("tile", t.Path()), zap.Error(err))
		return false
	}
	for i, h := range hashes {
		if string(h[:]) != string(data[i*tlog.HashSize:(i+1)*tlog.HashSize]) {
			return false
		}
	}
	return true
}

// tileReader reads the tiles that authenticate a candidate tile: the candidate itself, stored
// tiles, else the database's. tlog authenticates all of them against the tree before it calls
// SaveTiles, so those may be stored.
type tileReader struct {
	c    *Checker
	ctx  context.Context
	tile tlog.Tile
	data []byte
}

func (r *tileReader) Height() int { return r.tile.H }

func (r *tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		if t == r.tile {
			out[i] = r.data
			continue
		}
		if data, ok := r.c.cachedTile(r.ctx, t); ok {
			out[i] = data
			continue
		}
		data, err := r.c.get(r.ctx, "/"+t.Path())
		if err != nil {
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}

func (r *tileReader) SaveTiles(tiles []tlog.Tile, data [][]byte) {
	for i, t := range tiles {
		if err := putBlob(r.ctx, r.c.blobs(), protoKey(r.c.DB.Name, "/"+t.Path()), data[i]); err != nil {
			r.c.log().Warn("sumdb: caching tile", zap.String("tile", t.Path()), zap.Error(err))
		}
	}
}

func tileErr(name string, t tlog.Tile, n int) error {
	return gofer.Errorf(gofer.ErrUnavailable, "checksum database %s: tile %s has %d bytes, want %d", name, t.Path(), n, t.W*tlog.HashSize)
}
