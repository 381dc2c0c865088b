// Package bundle writes stored module versions out of gofer for networks that no upstream
// reaches: a bundle is a directory, or a tar file of one, in the module download layout
// (<escaped module>/@v/{list,<version>.info,<version>.mod,<version>.zip}), which the go command
// reads as it is with GOPROXY=file:///path, and, beside them, the checksum database's proofs
// of every version (sumdb/<name>/...), with which it verifies them with GOSUMDB set and no
// network. Export streams every file from storage, checking
// it against its record's SHA-256 on the way, so a bundle of several GiB never sits in memory
// and never carries bytes other than those gofer verified and stored. It never writes outside
// the path it is given, and a failed export leaves nothing at that path.
package bundle

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/warm"
)

// Summary counts what an export wrote.
type Summary struct {
	Versions int   // versions written, whole or .mod alone
	Zips     int   // of which with their zip
	Bytes    int64 // bytes of module files written
	Proven   int   // versions whose checksum database proofs were written
}

// Stores are what an export reads: the blob and metadata stores, and the checksum database
// whose proofs go with the versions (nil: none).
type Stores struct {
	Blobs storage.Blobs
	Meta  storage.Metadata
	SumDB Prover
}

// Prover writes the checksum database's proofs of versions (sumdb.Checker.Proofs): the files
// under sumdb/<name>/ that let the go command verify them with GOSUMDB set and nothing else
// reachable.
type Prover interface {
	Proofs(ctx context.Context, versions []module.Version, put func(name string, data []byte) error) (int, error)
}

// Export writes the versions of list (warm list entries: whole, or the .info and .mod alone,
// warm.ModOnly) from the stores to out: a tar file when out ends in ".tar", a directory
// otherwise, with the checksum database's proofs of every version when st.SumDB is set. out
// must not exist; the bundle is written beside it and renamed into place once complete. A
// version that is not stored (or, whole, not with its zip) fails the export before anything is
// written, naming every such version. progress, if not nil, is called after each version.
func Export(ctx context.Context, st Stores, list []module.Version, out string, progress func(Summary)) (Summary, error) {
	blobs, meta := st.Blobs, st.Meta
	list = warm.Normalize(slices.Clone(list))
	recs := make([]gofer.Version, len(list))
	var missing []string
	for i, e := range list {
		v, modOnly := warm.ModOnly(e)
		rec, err := meta.Get(ctx, v.Path, v.Version)
		switch {
		case errors.Is(err, gofer.ErrNotFound) || (err == nil && !modOnly && !rec.HasZip()):
			missing = append(missing, e.String())
		case err != nil:
			return Summary{}, fmt.Errorf("reading the record of %s: %w", e, err)
		}
		recs[i] = rec
	}
	if len(missing) > 0 {
		return Summary{}, fmt.Errorf("%d versions are not stored (whole): %s", len(missing), strings.Join(missing, ", "))
	}
	if _, err := os.Lstat(out); err == nil {
		return Summary{}, fmt.Errorf("%s exists already", out)
	}
	partial := out + ".partial"
	if err := os.RemoveAll(partial); err != nil {
		return Summary{}, err
	}
	var w writer
	var err error
	if strings.HasSuffix(out, ".tar") {
		w, err = newTarWriter(partial)
	} else {
		w, err = dirWriter(partial), os.Mkdir(partial, 0o755)
	}
	if err != nil {
		return Summary{}, err
	}
	sum, err := export(ctx, blobs, list, recs, w, progress)
	if err == nil && st.SumDB != nil {
		versions := make([]module.Version, len(list))
		for i, e := range list {
			versions[i], _ = warm.ModOnly(e)
		}
		sum.Proven, err = st.SumDB.Proofs(ctx, versions, func(name string, data []byte) error {
			return w.write(name, int64(len(data)), bytes.NewReader(data))
		})
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(partial, out)
	}
	if err != nil {
		os.RemoveAll(partial)
		return Summary{}, err
	}
	return sum, nil
}

// export writes each version's files, then each module's list.
func export(ctx context.Context, blobs storage.Blobs, list []module.Version, recs []gofer.Version, w writer, progress func(Summary)) (Summary, error) {
	var sum Summary
	listed := map[string][]string{} // escaped path → its tagged versions in the bundle, whole
	for i, e := range list {
		v, modOnly := warm.ModOnly(e)
		files := map[string]gofer.File{"info": recs[i].Info, "mod": recs[i].Mod}
		if !modOnly {
			files["zip"] = recs[i].Zip
			sum.Zips++
		}
		for _, ext := range []string{"info", "mod", "zip"} {
			f, ok := files[ext]
			if !ok {
				continue
			}
			n, err := copyFile(ctx, blobs, w, v, ext, f)
			if err != nil {
				return sum, err
			}
			sum.Bytes += n
		}
		if !modOnly && !module.IsPseudoVersion(v.Version) {
			esc, _ := module.EscapePath(v.Path) // a stored path escapes
			if vs := listed[esc]; len(vs) == 0 || vs[len(vs)-1] != v.Version {
				listed[esc] = append(vs, v.Version)
			}
		}
		sum.Versions++
		if progress != nil {
			progress(sum)
		}
	}
	escs := make([]string, 0, len(listed))
	for esc := range listed {
		escs = append(escs, esc)
	}
	slices.Sort(escs)
	for _, esc := range escs {
		vs := listed[esc]
		semver.Sort(vs)
		body := strings.Join(vs, "\n") + "\n"
		if err := w.write(esc+"/@v/list", int64(len(body)), strings.NewReader(body)); err != nil {
			return sum, err
		}
	}
	return sum, nil
}

// copyFile writes the stored file ext of v to w, and fails unless its bytes are those its
// record names.
func copyFile(ctx context.Context, blobs storage.Blobs, w writer, v module.Version, ext string, f gofer.File) (int64, error) {
	key, err := storage.Key(v.Path, v.Version, ext)
	if err != nil {
		return 0, err
	}
	r, size, err := blobs.Open(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("%s@%s: opening its .%s: %w", v.Path, v.Version, ext, err)
	}
	defer r.Close()
	if size != f.Size {
		return 0, fmt.Errorf("%s@%s: its .%s is %d bytes, its record says %d", v.Path, v.Version, ext, size, f.Size)
	}
	h := sha256.New()
	if err := w.write(key, size, io.TeeReader(storage.ContextReader(ctx, r), h)); err != nil {
		return 0, fmt.Errorf("%s@%s: writing its .%s: %w", v.Path, v.Version, ext, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return 0, fmt.Errorf("%s@%s: its stored .%s has SHA-256 %s, its record says %s (run gofer scrub)", v.Path, v.Version, ext, got, f.SHA256)
	}
	return size, nil
}

// Stored lists the stored versions to export by time and module: those stored in [since,
// until) (zero times: from the start, to now) of the modules patterns matches (GOPRIVATE's
// syntax; empty: every module), whole when their zip is stored, else their .info and .mod.
func Stored(ctx context.Context, meta storage.Metadata, since, until time.Time, patterns string) ([]module.Version, error) {
	var list []module.Version
	for {
		page, more, err := storage.IndexPage(ctx, meta, since, 1000)
		if err != nil {
			return nil, err
		}
		for _, e := range page {
			if !until.IsZero() && !e.Timestamp.Before(until) {
				return list, nil
			}
			if patterns != "" && !module.MatchPrefixPatterns(patterns, e.Path) {
				continue
			}
			rec, err := meta.Get(ctx, e.Path, e.Version)
			if err != nil {
				return nil, fmt.Errorf("reading the record of %s@%s: %w", e.Path, e.Version, err)
			}
			v := module.Version{Path: e.Path, Version: e.Version}
			if !rec.HasZip() {
				v = warm.ModEntry(v)
			}
			list = append(list, v)
		}
		if !more {
			return list, nil
		}
		since = page[len(page)-1].Timestamp
	}
}

// writer is where a bundle's files go: each named by its slash-separated path in the bundle,
// with its size, its bytes read from r.
type writer interface {
	write(name string, size int64, r io.Reader) error
	Close() error
}

// dirWriter writes files under a directory.
type dirWriter string

func (d dirWriter) write(name string, size int64, r io.Reader) error {
	p := filepath.Join(string(d), filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != size {
		err = fmt.Errorf("%s: %d bytes, want %d", name, n, size)
	}
	return err
}

func (dirWriter) Close() error { return nil }

// tarWriter writes files as the entries of a tar file, their directories first.
type tarWriter struct {
	f    *os.File
	tw   *tar.Writer
	dirs map[string]bool
}

func newTarWriter(name string) (*tarWriter, error) {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	return &tarWriter{f: f, tw: tar.NewWriter(f), dirs: map[string]bool{}}, nil
}

// modTime is every entry's time: a bundle's bytes depend on its versions alone.
var modTime = time.Unix(0, 0)

func (t *tarWriter) write(name string, size int64, r io.Reader) error {
	for i := range len(name) {
		if dir := name[:i+1]; name[i] == '/' && !t.dirs[dir] {
			t.dirs[dir] = true
			if err := t.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: modTime, Format: tar.FormatPAX}); err != nil {
				return err
			}
		}
	}
	if err := t.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: modTime, Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err := io.Copy(t.tw, r) // the tar writer refuses more or fewer than size bytes
	return err
}

func (t *tarWriter) Close() error {
	err := t.tw.Close()
	if cerr := t.f.Close(); err == nil {
		err = cerr
	}
	return err
}
