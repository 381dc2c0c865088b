package activities

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"golang.org/x/mod/module"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/upstream"
)

// FetchMod brings the job's .info and .mod alone: it downloads both at once, checks them the
// way the go command would (the .info names the version, the .mod declares the module path,
// and its go.sum hash is the checksum database's, unless the module is private), stores them
// and inserts the version's record, without a zip (gofer.Version.HasZip). The go command needs
// the .mod of every version in its module graph but the zip of only those it builds, so a
// client asking for a .mod waits for nothing bigger. Both files are small (the upstream client
// bounds them), so they are held in memory: nothing is staged, and there is nothing to discard
// after. A version stored already is returned as it is, without a download.
func (a *Activities) FetchMod(ctx context.Context, j Job) (gofer.Version, error) {
	rec, err := a.fetchMod(ctx, j)
	return a.done(ctx, rec, err)
}

func (a *Activities) fetchMod(ctx context.Context, j Job) (gofer.Version, error) {
	rec, up, private, err := a.unlessStored(ctx, j, a.Meta.Get)
	if up == nil {
		return rec, err
	}
	a.lookAhead(ctx, j, private)
	a.instruments().downloads.Add(ctx, 1)
	var got atomic.Bool
	qctx, slow := a.quick(ctx, fmt.Sprintf("the .info and .mod of %s@%s", j.Path, j.Version))
	stop := heartbeat(ctx, cmp.Or(a.ProgressEvery, heartbeatEvery), func() any { return nil })
	info, mod, t, source, err := small(qctx, up, j, &got)
	stop()
	err = slow(err)
	a.instruments().downloads.Add(ctx, -1)
	if err != nil {
		return gofer.Version{}, answeredIf(&got, err)
	}
	v := Verified{Staged: Staged{Job: j, Private: private, Source: source, Time: t, Info: file(info), Mod: file(mod)}}
	if v.ModHash, err = checkMod(mod, j.Path); err != nil {
		return gofer.Version{}, err
	}
	if v.VerifiedBy, err = a.checkSums(ctx, j, private, "", v.ModHash); err != nil {
		return gofer.Version{}, err
	}
	data := map[string][]byte{"info": info, "mod": mod}
	return a.commitVersion(ctx, a.record(ctx, v), []string{"info", "mod"}, func(ext string) error {
		key, err := storage.Key(j.Path, j.Version, ext)
		if err != nil {
			return err
		}
		return storage.Failure(a.place(ctx, key, v.file(ext).SHA256, func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(data[ext])), nil
		}))
	})
}

// unlessStored checks that j names a module version, and returns its record as stored (what
// stored reads: the version's record, or its zip's) and a nil up, or, if it is not stored,
// where it is to be fetched from, with what stored read all the same (for a zip, the
// version's record without one, when its .mod is stored).
func (a *Activities) unlessStored(ctx context.Context, j Job, stored func(ctx context.Context, path, version string) (gofer.Version, error)) (rec gofer.Version, up upstream.Source, private bool, err error) {
	if err := module.Check(j.Path, j.Version); err != nil {
		return rec, nil, false, gofer.Errorf(gofer.ErrNotFound, "%w", err)
	}
	if rec, err = stored(ctx, j.Path, j.Version); err == nil {
		return rec, nil, false, nil
	} else if !errors.Is(err, gofer.ErrNotFound) {
		return rec, nil, false, storage.Failure(err)
	}
	if up, private, err = a.source(j.Path, j.From); err != nil {
		return gofer.Version{}, nil, private, err
	}
	return rec, up, private, nil
}

// lookAhead starts the checksum database's lookup of j while its files download, so that the
// check after them (checkSums, which compares the hashes) finds the database's answer at hand or
// on its way, instead of waiting one round trip or more for it then (the database's client
// keeps what it looked up and joins a lookup in flight). The look-ahead compares nothing, and
// its errors are the check's to report.
func (a *Activities) lookAhead(ctx context.Context, j Job, private bool) {
	if private || a.SumDB == nil {
		return // a private module is never named to the database
	}
	go a.SumDB.Check(ctx, j.Path, j.Version, "", "")
}

// file describes data.
func file(data []byte) gofer.File {
	sum := sha256.Sum256(data)
	return gofer.File{Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
}
