// Package embedded implements storage.Metadata in a single bbolt file, the zero-setup default
// for metadata. Each record is written once, in one transaction that first checks its key is
// free; the package must never update or overwrite a stored record, since its insertion is what
// makes a version visible.
package embedded

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/storage"
)

var _ storage.Metadata = (*Store)(nil)

// lockTimeout bounds the wait for the file lock: a second gofer on the same data directory
// should fail at start with a clear reason, not hang.
const lockTimeout = 5 * time.Second

var bucket = []byte("versions")

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
	// Created here once, so that every later transaction can rely on the bucket.
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
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

// Insert stores v unless a record for its path and version exists.
func (s *Store) Insert(ctx context.Context, v gofer.Version) error {
	// A path with "@" would make its records show up among the versions of another path.
	if v.Path == "" || v.Version == "" || strings.Contains(v.Path, "@") {
		return gofer.Errorf(gofer.ErrInvalid, "embedded: insert %q@%q: not a module path and version", v.Path, v.Version)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("embedded: insert %s@%s: %w", v.Path, v.Version, err)
	}
	val, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("embedded: insert %s@%s: %w", v.Path, v.Version, err)
	}
	k := key(v.Path, v.Version)
	// bbolt runs one Update at a time, so the check and the put cannot interleave with
	// another Insert.
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b.Get(k) != nil {
			return gofer.ErrExists
		}
		return b.Put(k, val)
	})
	if err != nil {
		return fmt.Errorf("embedded: insert %s@%s: %w", v.Path, v.Version, err)
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
		val := tx.Bucket(bucket).Get(key(path, version))
		if val == nil {
			return gofer.ErrNotFound
		}
		// The value is only valid inside the transaction; Unmarshal copies what it keeps.
		return json.Unmarshal(val, &v)
	})
	if err != nil {
		return gofer.Version{}, fmt.Errorf("embedded: get %s@%s: %w", path, version, err)
	}
	return v, nil
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

// Close releases the file and its lock.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("embedded: close %s: %w", s.db.Path(), err)
	}
	return nil
}
