// Package mem implements storage.Blobs in memory, for a checksum-database checker run without
// a store (a sumdb.Checker given no Blobs) and for tests. It must never serve as gofer's blob
// store: it holds every blob in the process's memory, bounded by nothing, and loses them all
// when the process exits.
package mem

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/storage"
)

// Blobs is an in-memory storage.Blobs; make one with New.
type Blobs struct {
	mu sync.Mutex
	m  map[string][]byte // never changed in place: Open hands out readers of these slices
}

var _ storage.Blobs = (*Blobs)(nil)

// New returns an empty store.
func New() *Blobs { return &Blobs{m: make(map[string][]byte)} }

// Put is put-if-absent, like every store's. It looks for key before reading r, so that a
// blob already stored costs no read, and again after, since another Put may have won meanwhile.
func (s *Blobs) Put(_ context.Context, key string, r io.Reader) error {
	if s.has(key) {
		return fmt.Errorf("memory: put %q: %w", key, gofer.ErrExists)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, taken := s.m[key]; taken {
		return fmt.Errorf("memory: put %q: %w", key, gofer.ErrExists)
	}
	s.m[key] = data
	return nil
}

func (s *Blobs) has(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[key]
	return ok
}

// Open returns a reader of the blob under key.
func (s *Blobs) Open(_ context.Context, key string) (storage.Reader, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	data, ok := s.m[key]
	if !ok {
		return nil, 0, fmt.Errorf("memory: open %q: %w", key, gofer.ErrNotFound)
	}
	return reader{bytes.NewReader(data)}, int64(len(data)), nil
}

// reader is a bytes.Reader with nothing to close.
type reader struct{ *bytes.Reader }

func (reader) Close() error { return nil }

// Delete removes the blob under key, if there is one.
func (s *Blobs) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}

// Walk calls fn on the blobs as they were when it began: fn may Put and Delete, and is not
// called with the store locked.
func (s *Blobs) Walk(ctx context.Context, prefix, after string, fn func(key string, size int64) error) error {
	s.mu.Lock()
	var keys []string
	sizes := make(map[string]int64)
	for k, v := range s.m {
		if strings.HasPrefix(k, prefix) && k > after {
			keys = append(keys, k)
			sizes[k] = int64(len(v))
		}
	}
	s.mu.Unlock()
	slices.Sort(keys)
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(k, sizes[k]); err != nil {
			return err
		}
	}
	return nil
}
