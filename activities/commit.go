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

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/storage"
)

// Commit publishes a verified version: it copies every staged file to its final key
// (put-if-absent), and only then inserts the metadata record, which is what makes the version
// visible. A crash at any point before the insert leaves nothing visible, and a retry finishes
// the job by reusing whatever blobs the crashed attempt stored.
func (a *Activities) Commit(ctx context.Context, v Verified) (gofer.Version, error) {
	rec, err := a.commit(ctx, v)
	return rec, encode(err)
}

func (a *Activities) commit(ctx context.Context, v Verified) (gofer.Version, error) {
	j := v.Job
	info := activity.GetInfo(ctx)
	rec := gofer.Version{
		Path: j.Path, Version: j.Version, Time: v.Time,
		Info: v.Info, Mod: v.Mod, Zip: v.Zip,
		ZipHash: v.ZipHash, ModHash: v.ModHash,
		Source:     v.Source,
		VerifiedBy: v.VerifiedBy,
		FetchedAt:  time.Now().UTC().Truncate(time.Millisecond),
		WorkflowID: info.WorkflowExecution.ID,
		RunID:      info.WorkflowExecution.RunID,
	}
	if stored, err := a.Meta.Get(ctx, j.Path, j.Version); err == nil {
		return a.keep(ctx, stored, rec), nil
	} else if !errors.Is(err, gofer.ErrNotFound) {
		return rec, storageErr(err)
	}
	for _, ext := range exts {
		if err := a.promote(ctx, v.Staged, ext); err != nil {
			return rec, storageErr(err)
		}
	}
	err := a.Meta.Insert(ctx, rec)
	if errors.Is(err, gofer.ErrExists) {
		stored, err := a.Meta.Get(ctx, j.Path, j.Version)
		if err != nil {
			return rec, storageErr(err)
		}
		return a.keep(ctx, stored, rec), nil
	}
	return rec, storageErr(err)
}

// keep returns the stored record of a version fetched again; the stored one always wins, and
// different content for the same version is an alarm, since module versions are immutable.
func (a *Activities) keep(ctx context.Context, stored, fetched gofer.Version) gofer.Version {
	if stored.ZipHash != fetched.ZipHash || stored.ModHash != fetched.ModHash {
		a.alarm(ctx, "stored-mismatch", "upstream content differs from the stored version; keeping the stored one",
			zap.String("module", stored.Path), zap.String("version", stored.Version),
			zap.String("storedZipHash", stored.ZipHash), zap.String("fetchedZipHash", fetched.ZipHash),
			zap.String("storedModHash", stored.ModHash), zap.String("fetchedModHash", fetched.ModHash))
	}
	return stored
}

// promote copies one staged file to its final key. A blob already there was left by an earlier
// attempt that never inserted its metadata, so nobody can have seen it: the same bytes are
// reused, different ones are replaced.
func (a *Activities) promote(ctx context.Context, s Staged, ext string) error {
	key := storage.Key(s.Job.Path, s.Job.Version, ext)
	err := a.copy(ctx, s.key(ext), key)
	if !errors.Is(err, gofer.ErrExists) {
		return err
	}
	if sum, err := a.sha256(ctx, key); err != nil || sum == s.file(ext).SHA256 {
		return err
	}
	if err := a.Blobs.Delete(ctx, key); err != nil {
		return err
	}
	return a.copy(ctx, s.key(ext), key)
}

func (a *Activities) copy(ctx context.Context, from, to string) error {
	r, _, err := a.Blobs.Open(ctx, from)
	if err != nil {
		return err
	}
	defer r.Close()
	return a.Blobs.Put(ctx, to, r)
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
