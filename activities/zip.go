package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/upstream"
	"github.com/goferproxy/gofer/workflows/fetcherr"
)

// DefaultLocalZipLimit is the largest zip FetchZip brings unless Activities.LocalZipLimit says
// otherwise: most module zips are far smaller, and one this size downloads in seconds.
const DefaultLocalZipLimit = 16 << 20

// FetchZip brings the job's zip alone in one local activity, if it is small and quick: it
// downloads it into a temporary file of its own, checks it as Verify does, and commits it as
// Commit does (commitZip). Nothing is staged, so nothing is left to discard: the whole fetch
// is one workflow task, as FetchMod's is. A zip over LocalZipLimit, or still arriving after
// ProgressEvery, fails it with fetcherr.ErrNotLocal, and the workflow fetches that one through
// staging, with a download that heartbeats and reports its progress: a local activity can do
// neither (what it would report stays out of its workflow's history until its workflow task
// ends, and a request waits for a fetch only as long as that history grows). A zip stored
// already is returned as it is, without a download.
func (a *Activities) FetchZip(ctx context.Context, j Job) (gofer.Version, error) {
	rec, err := a.fetchZip(ctx, j)
	return a.done(ctx, rec, err)
}

func (a *Activities) fetchZip(ctx context.Context, j Job) (gofer.Version, error) {
	rec, up, private, err := a.unlessStored(ctx, j, a.storedZip)
	if up == nil {
		return rec, err
	}
	var got atomic.Bool
	got.Store(rec.ModHash != "") // the version's .mod is stored: an upstream answered for it
	tmp, err := os.CreateTemp("", "gofer-*.zip")
	if err != nil {
		return gofer.Version{}, storage.Failure(err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	a.instruments().downloads.Add(ctx, 1)
	s, err := a.downloadZip(ctx, up, j, tmp, &got)
	a.instruments().downloads.Add(ctx, -1)
	if err != nil {
		return gofer.Version{}, answeredIf(&got, err)
	}
	s.Private = private
	v := Verified{Staged: s}
	if v.ZipHash, v.VerifiedBy, err = a.checkZip(ctx, j, private, tmp.Name(), ""); err != nil {
		return gofer.Version{}, err
	}
	return a.commitZip(ctx, a.record(ctx, v), func() (io.ReadCloser, error) { return os.Open(tmp.Name()) })
}

// downloadZip downloads the zip of j from up into the local file dst, unless it is over the
// local limit (as declared by the upstream, which saves downloading its start twice, or as
// read) or still arriving after ProgressEvery: then it is to go through staging.
func (a *Activities) downloadZip(ctx context.Context, up upstream.Source, j Job, dst *os.File, got *atomic.Bool) (Staged, error) {
	s := Staged{Job: j}
	limit := a.localZipLimit()
	zctx, slow := a.quick(ctx, fmt.Sprintf("the zip of %s@%s", j.Path, j.Version))
	defer slow(nil)
	zip, source, err := up.Zip(zctx, j.Path, j.Version)
	if err != nil {
		return s, slow(err)
	}
	got.Store(true)
	defer zip.Close()
	s.Source = source
	if z, ok := zip.(interface{ Size() int64 }); ok && z.Size() > limit {
		return s, fetcherr.MarkNotLocal(gofer.Errorf(gofer.ErrUnavailable, "the zip of %s@%s is %d bytes, over %d: fetching it through staging", j.Path, j.Version, z.Size(), limit))
	}
	m := &meter{r: io.LimitReader(zip, limit+1), h: sha256.New()}
	if _, err := io.Copy(dst, m); err != nil {
		if m.err != nil {
			return s, slow(m.err) // the upstream's failure, already classified
		}
		return s, storage.Failure(err)
	}
	if m.size > limit {
		return s, fetcherr.MarkNotLocal(gofer.Errorf(gofer.ErrUnavailable, "the zip of %s@%s is over %d bytes: fetching it through staging", j.Path, j.Version, limit))
	}
	s.Zip = gofer.File{Size: m.size, SHA256: hex.EncodeToString(m.h.Sum(nil))}
	return s, nil
}

func (a *Activities) localZipLimit() int64 {
	if a.LocalZipLimit > 0 {
		return a.LocalZipLimit
	}
	return DefaultLocalZipLimit
}

// modStored reports whether the version of j is stored (its .mod, at least): an upstream
// answered for it, so a zip it cannot give now is worth waiting for.
func (a *Activities) modStored(ctx context.Context, j Job) bool {
	_, err := a.Meta.Get(ctx, j.Path, j.Version)
	return err == nil
}
