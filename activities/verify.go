package activities

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"io"
	"os"

	"go.uber.org/zap"
	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/workflows/fetcherr"
)

// Verify checks a staged version the way the go command would before trusting it: the zip
// obeys the module zip rules (zip.CheckZip: every file under path@version/, no bad names or
// case-insensitive collisions, sizes within limits), the .mod (unless the job is the zip alone)
// and the zip's go.mod name the requested module path; it computes the go.sum (h1:) hashes of
// the zip and the .mod and checks them against the checksum database (unless the module is
// private). Invalid content is final.
func (a *Activities) Verify(ctx context.Context, s Staged) (Verified, error) {
	v, err := a.verify(ctx, s)
	return v, fetcherr.Encode(err)
}

func (a *Activities) verify(ctx context.Context, s Staged) (Verified, error) {
	j := s.Job
	v := Verified{Staged: s}
	if j.Files != FilesZip {
		mod, err := a.readStaged(ctx, s, "mod")
		if err != nil {
			return v, err
		}
		if v.ModHash, err = checkMod(mod, j.Path); err != nil {
			return v, err
		}
	}
	file, cleanup, err := a.localZip(ctx, s)
	if err != nil {
		return v, err
	}
	defer cleanup()
	v.ZipHash, v.VerifiedBy, err = a.checkZip(ctx, j, s.Private, file, v.ModHash)
	return v, err
}

// checkZip checks the zip of j in the local file: the module zip rules, its entries and its
// go.mod (checkZipEntries), and its go.sum hash, which it returns, against the checksum
// database's, with modHash (unless empty) and unless the module is private; and returns how
// the hashes were verified.
func (a *Activities) checkZip(ctx context.Context, j Job, private bool, file, modHash string) (zipHash, verifiedBy string, err error) {
	m := module.Version{Path: j.Path, Version: j.Version}
	if _, err := modzip.CheckZip(m, file); err != nil {
		return "", "", gofer.Errorf(gofer.ErrInvalid, "%s: bad module zip: %w", m, err)
	}
	if err := checkZipEntries(file, m); err != nil {
		return "", "", err
	}
	if zipHash, err = dirhash.HashZip(file, dirhash.Hash1); err != nil {
		return "", "", gofer.Errorf(gofer.ErrInvalid, "%s: hashing zip: %w", m, err)
	}
	verifiedBy, err = a.checkSums(ctx, j, private, zipHash, modHash)
	return zipHash, verifiedBy, err
}

// checkMod checks a .mod the way the go command would (it declares exactly path) and returns
// its go.sum hash.
func checkMod(mod []byte, path string) (string, error) {
	if err := checkModPath(mod, path, ".mod"); err != nil {
		return "", err
	}
	return dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(mod)), nil
	})
}

// checkSums checks the go.sum hashes of j (an empty one is not checked) against the checksum
// database, unless the module is private, and returns how they were verified.
func (a *Activities) checkSums(ctx context.Context, j Job, private bool, zipHash, modHash string) (string, error) {
	switch {
	case private:
		return "none (private)", nil // a private module is never named to the database
	case a.SumDB == nil:
		return "none", nil
	}
	by, err := a.SumDB.Check(ctx, j.Path, j.Version, zipHash, modHash)
	if errors.Is(err, gofer.ErrInvalid) {
		a.alarm(ctx, "sumdb-mismatch", "refusing content the checksum database does not vouch for",
			zap.String("module", j.Path), zap.String("version", j.Version),
			zap.String("zipHash", zipHash), zap.String("modHash", modHash), zap.Error(err))
	}
	return by, err
}

// checkModPath refuses a go.mod that does not declare exactly path; what names it in errors.
func checkModPath(data []byte, path, what string) error {
	f, err := modfile.ParseLax("go.mod", data, nil)
	if err != nil {
		return gofer.Errorf(gofer.ErrInvalid, "%s of %s does not parse: %w", what, path, err)
	}
	if f.Module == nil {
		return gofer.Errorf(gofer.ErrInvalid, "%s of %s has no module directive", what, path)
	}
	if got := f.Module.Mod.Path; got != path {
		return gofer.Errorf(gofer.ErrInvalid, "%s declares module %q, not %q", what, got, path)
	}
	return nil
}

// checkZipEntries refuses what zip.CheckZip lets through but gofer does not store: entries
// that are neither regular files nor directories (a symlink in a module zip is never
// legitimate), and a go.mod
// inside the zip (legacy modules have none) that declares another module.
func checkZipEntries(file string, m module.Version) error {
	zr, err := zip.OpenReader(file)
	if err != nil {
		return gofer.Errorf(gofer.ErrInvalid, "%s: bad zip: %w", m, err)
	}
	defer zr.Close()
	gomod := m.Path + "@" + m.Version + "/go.mod"
	for _, f := range zr.File {
		if !f.Mode().IsRegular() && !f.Mode().IsDir() { // the go command skips directory entries
			return gofer.Errorf(gofer.ErrInvalid, "%s: %s is not a regular file (%s)", m, f.Name, f.Mode().Type())
		}
		if f.Name != gomod {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return gofer.Errorf(gofer.ErrInvalid, "%s: reading go.mod in zip: %w", m, err)
		}
		data, err := io.ReadAll(io.LimitReader(rc, gofer.MaxModSize+1))
		rc.Close()
		if err != nil {
			return gofer.Errorf(gofer.ErrInvalid, "%s: reading go.mod in zip: %w", m, err)
		}
		if err := checkModPath(data, m.Path, "go.mod in zip"); err != nil {
			return err
		}
	}
	return nil
}

// readStaged reads the small staged file ext of s whole.
func (a *Activities) readStaged(ctx context.Context, s Staged, ext string) ([]byte, error) {
	key, err := s.key(ext)
	if err != nil {
		return nil, err
	}
	r, _, err := a.Blobs.Open(ctx, key)
	if err != nil {
		return nil, storage.Failure(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	return b, storage.Failure(err)
}

// localZip gives the staged zip of s as a local file (see localFile).
func (a *Activities) localZip(ctx context.Context, s Staged) (string, func(), error) {
	key, err := s.key("zip")
	if err != nil {
		return "", nil, err
	}
	r, _, err := a.Blobs.Open(ctx, key)
	if err != nil {
		return "", nil, storage.Failure(err)
	}
	defer r.Close()
	name, cleanup, err := localFile(r)
	return name, cleanup, storage.Failure(err)
}

// localFile gives a blob as a local file, because zip.CheckZip and dirhash.HashZip take file
// names: the blob itself when the store is on this disk, a temporary copy otherwise. The
// caller closes r after cleanup.
func localFile(r storage.Reader) (name string, cleanup func(), err error) {
	if f, ok := r.(*os.File); ok {
		return f.Name(), func() {}, nil
	}
	tmp, err := os.CreateTemp("", "gofer-*.zip")
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { tmp.Close(); os.Remove(tmp.Name()) }
	if _, err := io.Copy(tmp, r); err != nil {
		cleanup()
		return "", nil, err
	}
	return tmp.Name(), cleanup, nil
}
