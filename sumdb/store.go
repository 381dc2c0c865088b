package sumdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go.uber.org/zap"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"

	xsumdb "golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/storage"
)

// Blob layout, all under "_sumdb/<name>/" so that nothing here can collide with a module's
// files (no module path starts with "_"):
//
//	latest/<tree size, 20 digits>   one signed tree head per size, verified before it was written
//	tile/<H>/<L>/<N>[.p/<W>]        hash tiles, each authenticated against a verified tree head
//	lookup/<escaped path>@<version> lookup answers, each authenticated by gofer's client
//
// Tiles and lookups use the database's own protocol paths, so the served path after
// "/sumdb/" and the blob key after "_sumdb/" are the same string. Every blob is written
// put-if-absent and never replaced: a tree head of a given size, a tile and a record never
// change in an honest database, and a dishonest one must not be able to rewrite what gofer saw.
const blobPrefix = "_sumdb/"

// maxBlob bounds what is read back from a blob or from the database: lookups, tree heads and
// tiles are a few KiB (a full hash tile is 8 KiB, a data tile some tens of KiB).
const maxBlob = 1 << 20

func latestPrefix(name string) string { return blobPrefix + name + "/latest/" }

// latestKey zero-pads the size so that lexical order, the order of Walk, is numeric order.
func latestKey(name string, size int64) string {
	return fmt.Sprintf("%s%020d", latestPrefix(name), size)
}

// protoKey is the blob of a protocol path ("/tile/...", "/lookup/...") of database name.
func protoKey(name, path string) string { return blobPrefix + name + path }

func readBlob(ctx context.Context, b storage.Blobs, key string) ([]byte, error) {
	r, size, err := b.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if size > maxBlob {
		return nil, fmt.Errorf("blob %s: %d bytes, more than %d", key, size, maxBlob)
	}
	return io.ReadAll(io.LimitReader(r, maxBlob))
}

// putBlob stores data under key unless it is taken: for immutable content the first copy is
// as good as this one.
func putBlob(ctx context.Context, b storage.Blobs, key string, data []byte) error {
	err := b.Put(ctx, key, bytes.NewReader(data))
	if errors.Is(err, gofer.ErrExists) {
		return nil
	}
	return err
}

// head is the newest verified signed tree head this Checker knows: the newest persisted one
// when it last looked, or one its client has since written.
type head struct {
	mu     sync.Mutex
	loaded bool
	size   int64
	msg    []byte
}

// refreshHead loads the newest persisted tree head (the last key of a Walk) into c.head,
// unless c.head already holds a bigger one.
func (c *Checker) refreshHead(ctx context.Context) error {
	prefix := latestPrefix(c.DB.Name)
	last, lastSize := "", int64(-1)
	err := c.blobs().Walk(ctx, prefix, "", func(key string, _ int64) error {
		digits := strings.TrimPrefix(key, prefix)
		if n, err := strconv.ParseInt(digits, 10, 64); err == nil && len(digits) == 20 {
			last, lastSize = key, n
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading tree heads: %v", err)
	}
	var msg []byte
	if last != "" {
		if msg, err = readBlob(ctx, c.blobs(), last); err != nil {
			return fmt.Errorf("reading tree head: %v", err)
		}
	}
	c.head.mu.Lock()
	defer c.head.mu.Unlock()
	c.head.loaded = true
	if msg != nil && (c.head.msg == nil || lastSize > c.head.size) {
		c.head.size, c.head.msg = lastSize, msg
	}
	return nil
}

// writeHead is the client's WriteConfig of "<name>/latest": a compare-and-swap against the
// newest head this Checker knows, made insert-only by giving each tree size a blob of its own.
// Two heads of one size that differ mean the database showed two histories; the stored one
// is handed back to the client (as a write conflict), which then checks it against its own
// and reports the fork as a security error.
func (c *Checker) writeHead(ctx context.Context, old, new []byte) error {
	tree, err := c.openTree(new)
	if err != nil {
		return err
	}
	c.head.mu.Lock()
	defer c.head.mu.Unlock()
	if !bytes.Equal(c.head.msg, old) {
		return xsumdb.ErrWriteConflict
	}
	key := latestKey(c.DB.Name, tree.N)
	err = c.blobs().Put(ctx, key, bytes.NewReader(new))
	if errors.Is(err, gofer.ErrExists) {
		stored, rerr := readBlob(ctx, c.blobs(), key)
		if rerr != nil {
			return fmt.Errorf("reading tree head %s: %v", key, rerr)
		}
		if !bytes.Equal(stored, new) {
			c.head.size, c.head.msg = tree.N, stored
			return xsumdb.ErrWriteConflict
		}
	} else if err != nil {
		return fmt.Errorf("storing tree head: %v", err)
	}
	c.head.size, c.head.msg = tree.N, slices.Clone(new)
	c.pruneHeads(ctx, key)
	return nil
}

// pruneHeads deletes the stored tree heads older than newest: the newest was verified to extend
// them, so they prove nothing more, and keeping one blob per tree size would make every
// refreshHead walk longer for ever. A failure only leaves a blob for the next prune.
func (c *Checker) pruneHeads(ctx context.Context, newest string) {
	var old []string
	c.blobs().Walk(ctx, latestPrefix(c.DB.Name), "", func(key string, _ int64) error {
		if key < newest {
			old = append(old, key)
		}
		return nil
	})
	for _, key := range old {
		if err := c.blobs().Delete(ctx, key); err != nil {
			c.log().Warn("sumdb: pruning an old tree head", zap.String("key", key), zap.Error(err))
		}
	}
}

func (c *Checker) headMsg() []byte {
	c.head.mu.Lock()
	defer c.head.mu.Unlock()
	return slices.Clone(c.head.msg)
}

// knownTree returns the tree of the newest verified head, loading the persisted ones once if
// nothing has yet; ok is false when there is none.
func (c *Checker) knownTree(ctx context.Context) (tlog.Tree, bool) {
	c.head.mu.Lock()
	loaded := c.head.loaded
	c.head.mu.Unlock()
	if !loaded {
		if err := c.refreshHead(ctx); err != nil {
			c.log().Warn("sumdb: " + err.Error())
		}
	}
	msg := c.headMsg()
	if msg == nil {
		return tlog.Tree{}, false
	}
	tree, err := c.openTree(msg)
	return tree, err == nil
}

// openTree checks the signature of a signed tree head and returns its tree.
func (c *Checker) openTree(msg []byte) (tlog.Tree, error) {
	v, err := note.NewVerifier(c.DB.Key)
	if err != nil {
		return tlog.Tree{}, err
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return tlog.Tree{}, fmt.Errorf("tree head: %v", err)
	}
	return tlog.ParseTree([]byte(n.Text))
}
