// Package disk implements storage.Blobs with files under one root directory, the zero-setup
// default for blobs. A blob gets its final name only once its bytes are complete and synced, so
// a crash or a failed Put can leave stray temporary files but never a partial blob; and it must
// never write to, truncate or replace a file that already holds a final name.
package disk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/storage"
)

var _ storage.Blobs = (*Store)(nil)

// Store keeps the blob of key at filepath.Join(root, filepath.FromSlash(key)), so that the
// root holds the go command's own download layout. Create it with New.
type Store struct {
	root string
}

// New returns a Store under root, creating root if it is missing.
func New(root string) (*Store, error) {
	// An absolute root keeps every key where it was put, even if the process changes directory.
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("disk: root %s: %w", root, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("disk: create root: %w", err)
	}
	return &Store{root: abs}, nil
}

// path maps key to its file. Keys come from storage.Key, but a key that could name a file
// outside root is refused here rather than trusted, since escaping root would let one bad key
// overwrite anything the process can write.
func (s *Store) path(op, key string) (string, error) {
	rel := filepath.FromSlash(key)
	ok := key != "" && filepath.IsLocal(rel)
	for elem := range strings.SplitSeq(rel, string(filepath.Separator)) {
		// IsLocal accepts "a/../b"; a key is a name, not a path to be resolved.
		ok = ok && elem != ".."
	}
	if !ok {
		return "", gofer.Errorf(gofer.ErrInvalid, "disk: %s %q: a key must be a relative slash-separated path without .. elements", op, key)
	}
	return filepath.Join(s.root, rel), nil
}

// Put stores r under key. The bytes go to a temporary file beside the final name, are synced,
// and are then hard-linked to the final name: unlike rename, link fails when the name exists,
// so of racing Puts exactly one wins and a stored blob is never replaced.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) error {
	name, err := s.path("put", key)
	if err != nil {
		return err
	}
	// Checked before reading r, so that a retried commit does not copy a whole zip again only
	// to find the blob already stored. The link below still settles races.
	if _, err := os.Lstat(name); err == nil {
		return fmt.Errorf("disk: put %q: %w", key, gofer.ErrExists)
	} else if !notExist(err) {
		return fmt.Errorf("disk: put %q: %w", key, err)
	}
	dir := filepath.Dir(name)
	if err := s.mkdirs(dir); err != nil {
		return fmt.Errorf("disk: put %q: %w", key, err)
	}

	// The leading dot keeps temporary files apart from keys: no escaped module path, version
	// or run ID starts with one.
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return fmt.Errorf("disk: put %q: %w", key, err)
	}
	defer func() {
		// Both fail harmlessly once the file has been closed and removed on success.
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
	}()
	if _, err := io.Copy(tmp, storage.ContextReader(ctx, r)); err != nil {
		return fmt.Errorf("disk: put %q: write: %w", key, err)
	}
	// CreateTemp makes the file private; blobs are public module content, readable by a
	// second process serving the same root.
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("disk: put %q: %w", key, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("disk: put %q: %w", key, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("disk: put %q: %w", key, err)
	}
	if err := os.Link(tmp.Name(), name); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("disk: put %q: %w", key, gofer.ErrExists)
		}
		return fmt.Errorf("disk: put %q: %w", key, err)
	}
	if err := os.Remove(tmp.Name()); err != nil {
		return fmt.Errorf("disk: put %q: remove temporary file: %w", key, err)
	}
	// Until the directory is synced, a crash may lose the new name even though the bytes are
	// on disk. Past the link the blob is complete and visible, so it stays if this fails: the
	// caller's retry then gets ErrExists.
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("disk: put %q: blob stored, but syncing its directory failed: %w", key, err)
	}
	return nil
}

// Open returns the file of key. Local reads are quick and cannot be interrupted, so the context
// is not consulted.
func (s *Store) Open(_ context.Context, key string) (storage.Reader, int64, error) {
	name, err := s.path("open", key)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(name)
	if notExist(err) {
		return nil, 0, fmt.Errorf("disk: open %q: %w", key, gofer.ErrNotFound)
	} else if err != nil {
		return nil, 0, fmt.Errorf("disk: open %q: %w", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("disk: open %q: %w", key, err)
	}
	// A key that names a directory of other keys holds no blob.
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("disk: open %q: %w", key, gofer.ErrNotFound)
	}
	return f, fi.Size(), nil
}

// Delete removes the file of key. Directories are left in place: removing one could race with
// a Put that has just created it.
func (s *Store) Delete(_ context.Context, key string) error {
	name, err := s.path("delete", key)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(name)
	if notExist(err) {
		return nil
	} else if err != nil {
		return fmt.Errorf("disk: delete %q: %w", key, err)
	}
	if fi.IsDir() {
		return nil
	}
	if err := os.Remove(name); err != nil && !notExist(err) {
		return fmt.Errorf("disk: delete %q: %w", key, err)
	}
	// Otherwise a crash could bring back a blob that was deleted for being bad.
	if err := syncDir(filepath.Dir(name)); err != nil {
		return fmt.Errorf("disk: delete %q: %w", key, err)
	}
	return nil
}

// Walk reports the blobs under root whose keys start with prefix. It reads one directory at a
// time rather than listing the whole tree, and orders each directory's entries as their keys
// sort: a directory "a" stands for the keys "a/...", which sort after "a-b" and "a.b" because
// '-' and '.' are below '/'. filepath.WalkDir orders by name ("a" first), so it cannot be used.
func (s *Store) Walk(ctx context.Context, prefix, after string, fn func(key string, size int64) error) error {
	// Start in the deepest directory the prefix names in full; what follows its last slash
	// can still match several entries there ("example.com/a" matches "a", "a-b" and "ab").
	dir := prefix[:strings.LastIndex(prefix, "/")+1]
	if dir != "" {
		if _, err := s.path("walk", strings.TrimSuffix(dir, "/")); err != nil {
			// No key can start with a directory that no key can name.
			return nil
		}
	}
	return s.walkDir(ctx, dir, prefix, after, fn)
}

// walkDir walks the directory of keys that start with dir ("" or ending in "/").
func (s *Store) walkDir(ctx context.Context, dir, prefix, after string, fn func(key string, size int64) error) error {
	entries, err := os.ReadDir(filepath.Join(s.root, filepath.FromSlash(dir)))
	if err != nil {
		if dir != "" && notExist(err) {
			// Gone, or a blob where the prefix wants a directory: either way nothing to walk.
			return nil
		}
		return fmt.Errorf("disk: walk %q: %w", prefix, err)
	}
	type entry struct {
		fs.DirEntry
		key string // the key, or for a directory the prefix of its keys, with a trailing "/"
	}
	var es []entry
	for _, e := range entries {
		key := dir + e.Name()
		switch {
		case e.IsDir():
			key += "/"
			// Descend only where keys can match: the directory lies within the prefix, or the
			// prefix goes on inside it.
			if !strings.HasPrefix(key, prefix) && !strings.HasPrefix(prefix, key) {
				continue
			}
			// Every key in it sorts before after: nothing to read there.
			if key < after && !strings.HasPrefix(after, key) {
				continue
			}
		case !e.Type().IsRegular(), isTemp(e.Name()) && !strings.HasPrefix(key, storage.Staging), !strings.HasPrefix(key, prefix), key <= after:
			continue
		}
		es = append(es, entry{e, key})
	}
	slices.SortFunc(es, func(a, b entry) int { return strings.Compare(a.key, b.key) })
	for _, e := range es {
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.IsDir() {
			if err := s.walkDir(ctx, e.key, prefix, after, fn); err != nil {
				return err
			}
			continue
		}
		fi, err := e.Info()
		if notExist(err) {
			continue // deleted since the directory was read
		} else if err != nil {
			return fmt.Errorf("disk: walk %q: %w", prefix, err)
		}
		if err := fn(e.key, fi.Size()); err != nil {
			return err
		}
	}
	return nil
}

// isTemp reports whether name is one of Put's temporary files, which exist only until their
// blob is complete (or, after a crash, until someone removes them) and are not blobs. Walk
// skips them, except under storage.Staging: there they belong to a fetch run like its staged
// blobs, and the run's discard (which walks its staging prefix and deletes what it finds)
// removes them too, also those of an attempt that a crash cut short.
func isTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-")
}

// mkdirs creates dir and its missing parents, and syncs the parent of each directory it
// creates: a synced blob in a directory whose own entry was lost in a crash is lost as well.
func (s *Store) mkdirs(dir string) error {
	var missing []string
	for d := dir; d != s.root && d != filepath.Dir(d); d = filepath.Dir(d) {
		_, err := os.Stat(d)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		missing = append(missing, d)
	}
	if len(missing) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, d := range missing {
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

// syncDir makes the entries of dir durable.
func syncDir(dir string) error {
	// Windows cannot sync a directory handle, and its file systems journal entries anyway.
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// notExist reports whether err means the file is absent. ENOTDIR counts: a key below a name
// that is a file (not a directory) cannot hold a blob either.
func notExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}
