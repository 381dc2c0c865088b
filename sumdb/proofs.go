package sumdb

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/goferproxy/gofer"
)

// tileHeight is the height of the tiles the go command asks for (its client's default).
const tileHeight = 8

// Proofs writes, through put, what the go command reads from a checksum database proxy to
// verify versions with nothing else reachable: "sumdb/<name>/supported", the lookup record of
// every version that is not private ("sumdb/<name>/lookup/<module>@<version>"), each under
// one and the same signed tree head (the newest of the records' own and the database's
// latest, each verified with the database's key), that head as "sumdb/<name>/latest", and
// the hash tiles ("sumdb/<name>/tile/...") that prove every record in that tree: the files a
// go command whose checksum database cache (GOPATH/pkg/sumdb) is empty, or holds that head,
// asks for. Every record is proven here, as the go command will prove it, before anything is
// written. Records, tiles and heads come from the store when gofer has them, else from the
// database, as ServeHTTP answers them. It returns how many versions it proved.
func (c *Checker) Proofs(ctx context.Context, versions []module.Version, put func(name string, data []byte) error) (int, error) {
	if c.DB == nil {
		return 0, errors.New("no checksum database to prove versions with (GOFER_SUMDB=off)")
	}
	type record struct {
		lookup string // the protocol path
		id     int64
		text   []byte
	}
	var records []record
	seen := map[string]bool{}
	heads := [][]byte{}
	for _, v := range versions {
		if c.private(v.Path) || checkVersion(v.Path, v.Version) != nil || seen[lookupPath(v.Path, v.Version)] {
			continue
		}
		p := lookupPath(v.Path, v.Version)
		seen[p] = true
		data, err := c.answer(ctx, p)
		if err != nil {
			return 0, fmt.Errorf("%s@%s: %w", v.Path, v.Version, err)
		}
		id, text, head, err := tlog.ParseRecord(data)
		if err != nil {
			return 0, gofer.Errorf(gofer.ErrInvalid, "%s@%s: the checksum database's record: %v", v.Path, v.Version, err)
		}
		records = append(records, record{p, id, text})
		heads = append(heads, head)
	}
	latest, err := c.answer(ctx, "/latest")
	if err != nil {
		return 0, err
	}
	var head []byte
	var tree tlog.Tree
	for _, h := range append(heads, latest) {
		t, err := c.openTree(h)
		if err != nil {
			return 0, gofer.Errorf(gofer.ErrInvalid, "checksum database %s: %v", c.DB.Name, err)
		}
		if head == nil || t.N > tree.N {
			head, tree = h, t
		}
	}
	tiles := &tileRecorder{c: c, ctx: ctx, data: map[string][]byte{}}
	for _, r := range records {
		if r.id >= tree.N {
			return 0, gofer.Errorf(gofer.ErrInvalid, "%s: record %d is not in the tree of size %d", r.lookup, r.id, tree.N)
		}
		hashes, err := tlog.TileHashReader(tree, tiles).ReadHashes([]int64{tlog.StoredHashIndex(0, r.id)})
		if err != nil {
			return 0, fmt.Errorf("%s: proving record %d: %w", r.lookup, r.id, err)
		}
		if hashes[0] != tlog.RecordHash(r.text) {
			return 0, gofer.Errorf(gofer.ErrInvalid, "%s: the record is not the one the tree holds", r.lookup)
		}
	}
	dir := "sumdb/" + c.DB.Name
	if err := put(dir+"/supported", nil); err != nil {
		return 0, err
	}
	if err := put(dir+"/latest", head); err != nil {
		return 0, err
	}
	for _, r := range records {
		msg, err := tlog.FormatRecord(r.id, r.text)
		if err != nil {
			return 0, err
		}
		if err := put(dir+r.lookup, append(msg, head...)); err != nil {
			return 0, err
		}
	}
	for _, name := range tiles.order {
		if err := put(dir+"/"+name, tiles.data[name]); err != nil {
			return 0, err
		}
	}
	return len(records), nil
}

// answer is what ServeHTTP answers for the protocol path p of the database: its body, or its
// error as gofer's kind.
func (c *Checker) answer(ctx context.Context, p string) ([]byte, error) {
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/sumdb/"+c.DB.Name+p, nil)
	w := httptest.NewRecorder()
	c.ServeHTTP(w, req)
	body := w.Body.Bytes()
	switch w.Code {
	case http.StatusOK:
		return body, nil
	case http.StatusNotFound, http.StatusGone:
		return nil, gofer.Errorf(gofer.ErrNotFound, "checksum database %s: %s: %s", c.DB.Name, p, strings.TrimSpace(string(body)))
	}
	return nil, gofer.Errorf(gofer.ErrUnavailable, "checksum database %s: %s: %d %s", c.DB.Name, p, w.Code, strings.TrimSpace(string(body)))
}

// tileRecorder reads tiles as the go command's client does, through answer, and keeps each
// one it read, in the order read.
type tileRecorder struct {
	c     *Checker
	ctx   context.Context
	data  map[string][]byte
	order []string
}

func (r *tileRecorder) Height() int { return tileHeight }

func (r *tileRecorder) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		name := t.Path()
		if data, ok := r.data[name]; ok {
			out[i] = data
			continue
		}
		data, err := r.c.answer(r.ctx, "/"+name)
		if err != nil {
			return nil, err
		}
		r.data[name], out[i] = data, data
		r.order = append(r.order, name)
	}
	return out, nil
}

func (r *tileRecorder) SaveTiles([]tlog.Tile, [][]byte) {}
