package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"time"

	"go.temporal.io/sdk/activity"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/storage"
)

// Commit publishes a verified version: it copies every staged file to its final key
// (put-if-absent), and only then inserts the metadata record, which is what makes the version
// (or, for a job of the zip alone, its zip) visible. A crash at any point before the insert
// leaves nothing visible, and a retry finishes the job by reusing whatever blobs the crashed
// attempt stored.
func (a *Activities) Commit(ctx context.Context, v Verified) (gofer.Version, error) {
	rec, err := a.commit(ctx, v)
	return a.done(ctx, rec, err)
}

func (a *Activities) commit(ctx context.Context, v Verified) (gofer.Version, error) {
	rec := a.record(ctx, v)
	openZip, err := a.staged(ctx, v.Staged, "zip")
	if err != nil {
		return rec, err
	}
	if v.Job.Files == FilesZip {
		return a.commitZip(ctx, rec, openZip)
	}
	// A fetch of all three files, recorded before they were fetched apart, commits them as
	// the two fetches do, the .mod first: either may have been stored apart since it began.
	mod := rec
	mod.Zip, mod.ZipHash = gofer.File{}, ""
	stored, err := a.Meta.Get(ctx, rec.Path, rec.Version)
	switch {
	case err == nil && stored.HasZip():
		return a.keep(ctx, stored, rec), nil
	case err == nil:
		stored = a.keep(ctx, stored, mod)
	case errors.Is(err, gofer.ErrNotFound):
		if stored, err = a.commitVersion(ctx, mod, []string{"info", "mod"}, func(ext string) error { return a.promote(ctx, v.Staged, ext) }); err != nil {
			return rec, err
		}
	default:
		return rec, storage.Failure(err)
	}
	zip, err := a.commitZip(ctx, rec, openZip)
	if err != nil {
		return rec, err
	}
	return stored.WithZip(zip), nil
}

// record is the metadata record of v, fetched by the running activity's workflow run.
func (a *Activities) record(ctx context.Context, v Verified) gofer.Version {
	info := activity.GetInfo(ctx)
	return gofer.Version{
		Path: v.Job.Path, Version: v.Job.Version, Time: v.Time,
		Info: v.Info, Mod: v.Mod, Zip: v.Zip,
		ZipHash: v.ZipHash, ModHash: v.ModHash,
		Source:     v.Source,
		VerifiedBy: v.VerifiedBy,
		FetchedAt:  time.Now().UTC().Truncate(time.Millisecond),
		WorkflowID: info.WorkflowExecution.ID,
		RunID:      info.WorkflowExecution.RunID,
	}
}

// commitVersion stores rec's files, a version the caller found not stored (place puts each of
// files under its final key, all at once, and classifies its errors), and then inserts rec; if
// another fetch got there first, its record wins.
func (a *Activities) commitVersion(ctx context.Context, rec gofer.Version, files []string, place func(ext string) error) (gofer.Version, error) {
	var g errgroup.Group
	for _, ext := range files {
		g.Go(func() error { return place(ext) })
	}
	if err := g.Wait(); err != nil {
		return rec, err
	}
	return a.insert(ctx, rec, a.Meta.Insert, a.Meta.Get)
}

// insert inserts rec with insert, the commit; if a record is there already (another fetch got
// there first), the one get reads is kept (see keep).
func (a *Activities) insert(ctx context.Context, rec gofer.Version, insert func(context.Context, gofer.Version) error,
	get func(ctx context.Context, path, version string) (gofer.Version, error)) (gofer.Version, error) {
	err := insert(ctx, rec)
	if !errors.Is(err, gofer.ErrExists) {
		return rec, storage.Failure(err)
	}
	stored, err := get(ctx, rec.Path, rec.Version)
	if err != nil {
		return rec, storage.Failure(err)
	}
	return a.keep(ctx, stored, rec), nil
}

// commitZip stores the verified zip of rec that open reads and then inserts its record
// (gofer.Version.ZipOnly), unless the zip is stored already: then the stored one wins.
func (a *Activities) commitZip(ctx context.Context, rec gofer.Version, open func() (io.ReadCloser, error)) (gofer.Version, error) {
	if stored, err := a.storedZip(ctx, rec.Path, rec.Version); err == nil {
		return a.keep(ctx, stored, rec), nil
	} else if !errors.Is(err, gofer.ErrNotFound) {
		return rec, storage.Failure(err)
	}
	key, err := storage.Key(rec.Path, rec.Version, "zip")
	if err != nil {
		return rec, err
	}
	if err := a.place(ctx, key, rec.Zip.SHA256, open); err != nil {
		return rec, storage.Failure(err)
	}
	return a.insert(ctx, rec.ZipOnly(), a.Meta.InsertZip, a.Meta.GetZip)
}

// storedZip is the record of the stored zip of path@version: the version's (which has it if it
// was stored with the version, or merged from the zip's own), or the zip's own record, for a
// version whose .mod is not stored.
func (a *Activities) storedZip(ctx context.Context, path, version string) (gofer.Version, error) {
	rec, err := a.Meta.Get(ctx, path, version)
	switch {
	case errors.Is(err, gofer.ErrNotFound):
		return a.Meta.GetZip(ctx, path, version)
	case err == nil && !rec.HasZip():
		return rec, gofer.Errorf(gofer.ErrNotFound, "the zip of %s@%s is not stored", path, version)
	case err != nil:
		return rec, err
	}
	// Stored: in a record of its own, or with the version, before zips were fetched apart.
	if z, err := a.Meta.GetZip(ctx, path, version); !errors.Is(err, gofer.ErrNotFound) {
		return z, err
	}
	return rec.ZipOnly(), nil
}

// keep returns the stored record of a version (or zip) fetched again; the stored one always
// wins, and different content for the same version is an alarm, since module versions are
// immutable. Only the hashes the fetch has are compared.
func (a *Activities) keep(ctx context.Context, stored, fetched gofer.Version) gofer.Version {
	if fetched.ZipHash != "" && stored.ZipHash != fetched.ZipHash || fetched.ModHash != "" && stored.ModHash != fetched.ModHash {
		a.alarm(ctx, "stored-mismatch", "upstream content differs from the stored version; keeping the stored one",
			zap.String("module", stored.Path), zap.String("version", stored.Version),
			zap.String("storedZipHash", stored.ZipHash), zap.String("fetchedZipHash", fetched.ZipHash),
			zap.String("storedModHash", stored.ModHash), zap.String("fetchedModHash", fetched.ModHash))
	}
	return stored
}

// promote copies one staged file to its final key (see place).
func (a *Activities) promote(ctx context.Context, s Staged, ext string) error {
	key, err := storage.Key(s.Job.Path, s.Job.Version, ext)
	if err != nil {
		return err
	}
	open, err := a.staged(ctx, s, ext)
	if err != nil {
		return err
	}
	return storage.Failure(a.place(ctx, key, s.file(ext).SHA256, open))
}

// staged returns what opens the staged file ext of s. Its key is made at once, so that a
// version that cannot exist fails as not found, never as a storage failure that is retried.
func (a *Activities) staged(ctx context.Context, s Staged, ext string) (func() (io.ReadCloser, error), error) {
	key, err := s.key(ext)
	if err != nil {
		return nil, err
	}
	return func() (io.ReadCloser, error) {
		r, _, err := a.Blobs.Open(ctx, key)
		return r, err
	}, nil
}

// place stores the verified file that open reads, whose SHA-256 is sum, under its final key.
// A blob already there was left by an earlier attempt that never inserted its record, so
// nobody can have seen it: the same bytes are reused, different ones are replaced.
func (a *Activities) place(ctx context.Context, key, sum string, open func() (io.ReadCloser, error)) error {
	err := a.put(ctx, key, open)
	if !errors.Is(err, gofer.ErrExists) {
		return err
	}
	if stored, err := a.sha256(ctx, key); err != nil || stored == sum {
		return err
	}
	if err := a.Blobs.Delete(ctx, key); err != nil {
		return err
	}
	return a.put(ctx, key, open)
}

func (a *Activities) put(ctx context.Context, key string, open func() (io.ReadCloser, error)) error {
	r, err := open()
	if err != nil {
		return err
	}
	defer r.Close()
	return a.Blobs.Put(ctx, key, r)
}

func (a *Activities) sha256(ctx context.Context, key string) (string, error) {
	r, _, err := a.Blobs.Open(ctx, key)
	if err != nil {
		return "", err
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
