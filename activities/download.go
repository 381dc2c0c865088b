package activities

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash"
	"io"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/goferproxy/gofer"
)

// The go command's own limits (cmd/go/internal/modfetch): bigger files are refused.
const (
	MaxZipSize = 500 << 20
	MaxModSize = 16 << 20
	maxInfo    = 1 << 20
)

// heartbeatEvery spaces the progress heartbeats of a long zip download.
const heartbeatEvery = 5 * time.Second

// Download streams the job's .info, .mod and .zip from the upstream into staging, hashing and
// size-checking them on the way. A retry starts over: staged files are replaced, never appended.
func (a *Activities) Download(ctx context.Context, j Job) (Staged, error) {
	s, err := a.download(ctx, j)
	return s, encode(err)
}

func (a *Activities) download(ctx context.Context, j Job) (Staged, error) {
	s := Staged{Job: j}
	info, _, err := a.Upstream.Info(ctx, j.Path, j.Version)
	if err != nil {
		return s, err
	}
	if s.Time, err = checkInfo(info, j.Version); err != nil {
		return s, err
	}
	if s.Info, err = a.stage(ctx, j, "info", bytes.NewReader(info), maxInfo, nil); err != nil {
		return s, err
	}
	mod, _, err := a.Upstream.Mod(ctx, j.Path, j.Version)
	if err != nil {
		return s, err
	}
	if s.Mod, err = a.stage(ctx, j, "mod", bytes.NewReader(mod), MaxModSize, nil); err != nil {
		return s, err
	}
	zip, source, err := a.Upstream.Zip(ctx, j.Path, j.Version)
	if err != nil {
		return s, err
	}
	defer zip.Close()
	s.Source = source
	s.Zip, err = a.stage(ctx, j, "zip", zip, MaxZipSize, func(n int64) {
		activity.RecordHeartbeat(ctx, n)
	})
	return s, err
}

// checkInfo refuses an .info that is not JSON naming exactly the requested version.
func checkInfo(data []byte, version string) (time.Time, error) {
	var info struct {
		Version string
		Time    time.Time
	}
	if err := json.Unmarshal(data, &info); err != nil {
		return time.Time{}, gofer.Errorf(gofer.ErrInvalid, "malformed .info for %s: %v", version, err)
	}
	if info.Version != version {
		return time.Time{}, gofer.Errorf(gofer.ErrInvalid, ".info names version %q, not %q", info.Version, version)
	}
	return info.Time.UTC().Truncate(time.Millisecond), nil
}

// stage replaces the job's staged ext file with r, which must hold at most limit bytes.
func (a *Activities) stage(ctx context.Context, j Job, ext string, r io.Reader, limit int64, progress func(int64)) (gofer.File, error) {
	key := j.stagingKey(ext)
	if err := a.Blobs.Delete(ctx, key); err != nil {
		return gofer.File{}, err
	}
	m := &meter{r: r, limit: limit, name: j.Path + "@" + j.Version + "." + ext, h: sha256.New(), progress: progress}
	if err := a.Blobs.Put(ctx, key, m); err != nil {
		if m.err != nil {
			return gofer.File{}, m.err // the reader's own failure says more than the store's wrap
		}
		return gofer.File{}, err
	}
	return gofer.File{Size: m.n, SHA256: hex.EncodeToString(m.h.Sum(nil))}, nil
}

// meter counts, hashes and limits what is read through it, and reports progress now and then.
type meter struct {
	r        io.Reader
	limit    int64
	name     string // for errors: path@version.ext
	h        hash.Hash
	n        int64
	err      error
	progress func(int64)
	last     time.Time
}

func (m *meter) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	m.h.Write(p[:n])
	m.n += int64(n)
	if m.n > m.limit {
		m.err = gofer.Errorf(gofer.ErrInvalid, "%s is larger than the limit of %d bytes", m.name, m.limit)
		return n, m.err
	}
	if err != nil && !errors.Is(err, io.EOF) {
		m.err = gofer.Errorf(gofer.ErrUnavailable, "reading %s from upstream: %v", m.name, err)
		return n, m.err
	}
	if m.progress != nil && time.Since(m.last) > heartbeatEvery {
		m.last = time.Now()
		m.progress(m.n)
	}
	return n, err
}
