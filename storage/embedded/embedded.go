// Package embedded implements storage.Metadata in a single bbolt file, the zero-setup default
// for metadata. Each record is written once, in one transaction that first checks its key is
// free; the package must never update or overwrite a stored record, since its insertion is what
// makes a version visible.
package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"golang.org/x/mod/module"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/storage"
)

var _ storage.Metadata = (*Store)(nil)

// lockTimeout bounds the wait for the file lock: a second gofer on the same data directory
// should fail at start with a clear reason, not hang.
const lockTimeout = 5 * time.Second

// The records of versions, those of zips committed after their version's record, and the
// versions in the order their records were inserted (storedKey, with no value).
var bucket, zips, order = []byte("versions"), []byte("zips"), []byte("stored")

// Store is a Metadata store in one bbolt file. Create it with Open.
type Store struct {
	db *bolt.DB
}

// Open opens or creates the database at path, creating its directory if missing.
func Open(path string) (*Store, error) {
	return open(path, lockTimeout)
}

func open(path string, timeout time.Duration) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("embedded: open %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		// Unavailable: the other process may exit, and then a retry succeeds.
		return nil, gofer.Errorf(gofer.ErrUnavailable, "metadata database %s is locked by another process", path)
	} else if err != nil {
		return nil, fmt.Errorf("embedded: open %s: %w", path, err)
	}
	// Created here once, so that every later transaction can rely on the buckets.
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		if err == nil {
			_, err = tx.CreateBucketIfNotExists(zips)
		}
		if err == nil && tx.Bucket(order) == nil {
			err = orderStored(tx)
		}
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("embedded: open %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// key is path@version; no module path contains "@", so the records of one path are exactly
// the keys that start with path@.
func key(path, version string) []byte {
	return []byte(path + "@" + version)
}

// storedKey is the key of path@version in the order bucket: the time of its insert, in
// nanoseconds since 1970 and big-endian so that keys sort by it, then path@version.
func storedKey(ns uint64, path, version string) []byte {
	return append(binary.BigEndian.AppendUint64(nil, ns), key(path, version)...)
}

// orderStored makes the order bucket of a database whose records were inserted before it
// existed, by their fetch times, and fills it: in one transaction, so that it is whole or
// not there.
func orderStored(tx *bolt.Tx) error {
	b, err := tx.CreateBucket(order)
	if err != nil {
		return err
	}
	return tx.Bucket(bucket).ForEach(func(_, val []byte) error {
		var v gofer.Version
		if err := json.Unmarshal(val, &v); err != nil {
			return err
		}
		return b.Put(storedKey(uint64(max(v.FetchedAt.UnixNano(), 0)), v.Path, v.Version), nil)
	})
}

// Insert stores v unless a record for its path and version exists.
func (s *Store) Insert(ctx context.Context, v gofer.Version) error {
	return s.insert(ctx, bucket, "insert", v)
}

// InsertZip stores z unless a record of the zip of its path and version exists.
func (s *Store) InsertZip(ctx context.Context, z gofer.Version) error {
	return s.insert(ctx, zips, "insert zip", z)
}

func (s *Store) insert(ctx context.Context, into []byte, op string, v gofer.Version) error {
	// A path with "@" would make its records show up among the versions of another path.
	if v.Path == "" || v.Version == "" || strings.Contains(v.Path, "@") {
		return gofer.Errorf(gofer.ErrInvalid, "embedded: %s %q@%q: not a module path and version", op, v.Path, v.Version)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("embedded: %s %s@%s: %w", op, v.Path, v.Version, err)
	}
	val, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("embedded: %s %s@%s: %w", op, v.Path, v.Version, err)
	}
	k := key(v.Path, v.Version)
	// bbolt runs one Update at a time, so the check and the put cannot interleave with
	// another Insert.
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(into)
		if b.Get(k) != nil {
			return gofer.ErrExists
		}
		if err := b.Put(k, val); err != nil || !bytes.Equal(into, bucket) {
			return err
		}
		// Its time, taken inside the one write transaction there is at a time, follows every
		// other insert's: the order of the times is the order of the inserts.
		ns := uint64(time.Now().UnixNano())
		if last, _ := tx.Bucket(order).Cursor().Last(); last != nil {
			ns = max(ns, binary.BigEndian.Uint64(last)+1)
		}
		return tx.Bucket(order).Put(storedKey(ns, v.Path, v.Version), nil)
	})
	if err != nil {
		return fmt.Errorf("embedded: %s %s@%s: %w", op, v.Path, v.Version, err)
	}
	return nil
}

// Get returns the record of path@version.
func (s *Store) Get(ctx context.Context, path, version string) (gofer.Version, error) {
	if err := ctx.Err(); err != nil {
		return gofer.Version{}, fmt.Errorf("embedded: get %s@%s: %w", path, version, err)
	}
	// A path containing "@" could otherwise find a record of another path.
	if strings.Contains(path, "@") {
		return gofer.Version{}, fmt.Errorf("embedded: get %s@%s: %w", path, version, gofer.ErrNotFound)
	}
	var v gofer.Version
	err := s.db.View(func(tx *bolt.Tx) error {
		k := key(path, version)
		val := tx.Bucket(bucket).Get(k)
		if val == nil {
			return gofer.ErrNotFound
		}
		// The value is only valid inside the transaction; Unmarshal copies what it keeps.
		if err := json.Unmarshal(val, &v); err != nil || v.HasZip() {
			return err
		}
		if val := tx.Bucket(zips).Get(k); val != nil {
			var z gofer.Version
			if err := json.Unmarshal(val, &z); err != nil {
				return err
			}
			v = v.WithZip(z)
		}
		return nil
	})
	if err != nil {
		return gofer.Version{}, fmt.Errorf("embedded: get %s@%s: %w", path, version, err)
	}
	return v, nil
}

// GetZip returns the record of the zip of path@version stored by InsertZip.
func (s *Store) GetZip(ctx context.Context, path, version string) (gofer.Version, error) {
	if err := ctx.Err(); err != nil {
		return gofer.Version{}, fmt.Errorf("embedded: get zip of %s@%s: %w", path, version, err)
	}
	var z gofer.Version
	err := s.db.View(func(tx *bolt.Tx) error {
		val := tx.Bucket(zips).Get(key(path, version))
		if val == nil {
			return gofer.ErrNotFound
		}
		return json.Unmarshal(val, &z)
	})
	if err != nil {
		return gofer.Version{}, fmt.Errorf("embedded: get zip of %s@%s: %w", path, version, err)
	}
	return z, nil
}

// Versions lists the stored versions of path.
func (s *Store) Versions(ctx context.Context, path string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("embedded: versions %s: %w", path, err)
	}
	if strings.Contains(path, "@") {
		return nil, nil // no module path has "@", so none has versions
	}
	prefix := []byte(path + "@")
	var versions []string
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			versions = append(versions, string(k[len(prefix):]))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: versions %s: %w", path, err)
	}
	return versions, nil
}

// Catalog lists stored versions ordered by path, then version.
//
// Keys do not sort in that order: where one path extends another by a byte below "@" ("a/b" and
// "a/b/c"), the longer path's keys sort first, as "a/b/c@" < "a/b@". The keys of one path are
// still contiguous and in version order, so Catalog reads each path's versions from one seek
// and finds the path after it with nextPath: a page costs a few seeks per path it lists.
func (s *Store) Catalog(ctx context.Context, after module.Version, limit int) ([]module.Version, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("embedded: catalog after %s@%s: %w", after.Path, after.Version, err)
	}
	if limit <= 0 {
		return nil, nil
	}
	var list []module.Version
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		path, version := after.Path, after.Version
		for {
			// A path with "@" has no versions, and its prefix could match another path's keys.
			if !strings.Contains(path, "@") {
				prefix, from := []byte(path+"@"), key(path, version)
				k, _ := c.Seek(from)
				if bytes.Equal(k, from) {
					k, _ = c.Next()
				}
				for ; k != nil && bytes.HasPrefix(k, prefix) && len(list) < limit; k, _ = c.Next() {
					list = append(list, module.Version{Path: path, Version: string(k[len(prefix):])})
				}
			}
			if len(list) == limit {
				return nil
			}
			var ok bool
			if path, ok = nextPath(c, path); !ok {
				return nil
			}
			version = ""
		}
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: catalog after %s@%s: %w", after.Path, after.Version, err)
	}
	return list, nil
}

// nextPath returns the least stored path greater than after, in byte order.
//
// It starts from the first key past after+"\x00", the least string greater than after, whose
// path p may still not be the answer. If p <= after, after extends p by a byte below "@", which
// is why p's keys sort past after's: nextPath skips them. Otherwise a stored path q with
// after < q < p sorts its keys past p's only if p extends q by a byte below "@", so the answer
// is the shortest such q, or p.
func nextPath(c *bolt.Cursor, after string) (string, bool) {
	k, _ := c.Seek([]byte(after + "\x00"))
	for k != nil {
		p, _, _ := strings.Cut(string(k), "@")
		if p <= after {
			k, _ = c.Seek([]byte(p + "A")) // "A" follows "@": past every key of p
			continue
		}
		for j := 1; j < len(p); j++ {
			if p[j] < '@' && p[:j] > after && stored(c, p[:j]) {
				return p[:j], true
			}
		}
		return p, true
	}
	return "", false
}

// stored reports whether path has a key.
func stored(c *bolt.Cursor, path string) bool {
	prefix := []byte(path + "@")
	k, _ := c.Seek(prefix)
	return bytes.HasPrefix(k, prefix)
}

// Index lists stored versions in the order of their inserts, whose times are all distinct.
func (s *Store) Index(ctx context.Context, since time.Time, limit int) ([]storage.Stored, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("embedded: index since %s: %w", since.Format(time.RFC3339Nano), err)
	}
	var list []storage.Stored
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(order).Cursor()
		var k []byte
		switch {
		case since.Before(time.Unix(0, 0)): // the zero time among them
			k, _ = c.First()
		case since.Before(time.Unix(0, math.MaxInt64)): // the last time a key can hold
			k, _ = c.Seek(binary.BigEndian.AppendUint64(nil, uint64(since.UnixNano())+1))
		}
		for ; k != nil && len(list) < limit; k, _ = c.Next() {
			path, version, _ := strings.Cut(string(k[8:]), "@")
			list = append(list, storage.Stored{Path: path, Version: version, Timestamp: time.Unix(0, int64(binary.BigEndian.Uint64(k))).UTC()})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: index since %s: %w", since.Format(time.RFC3339Nano), err)
	}
	return list, nil
}

// Close releases the file and its lock.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("embedded: close %s: %w", s.db.Path(), err)
	}
	return nil
}
