// Package warm holds the two formats that say what gofer stores ahead of requests. A warm list
// names module versions for a warm to fetch: ParseList reads one from a go.sum, a go.mod or
// lines of module@version, and PutList stores it in the blob store under _warm/ (one key per set
// of versions), where the warm's activities read it back (ReadList). A watchlist names the
// modules whose versions the worker's schedules keep stored (ParseWatchlist), and the go.sum
// files whose versions they keep stored (ReadGoSum). It only parses, stores and reads lists: it
// never fetches or warms anything (activities and workflows do), never schedules (worker does),
// and of the blob store it writes and reads warm lists alone.
package warm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/storage"
)

// MaxList bounds the versions one warm list may name.
const MaxList = 100_000

// prefix is where warm lists are stored in the blob store, under the hex SHA-256 of their
// content: the same list is stored once, and a key names one list forever.
const prefix = "_warm/"

// ParseList reads the versions a warm request names: a go.sum, a go.mod (its require
// directives), or lines of module@version. Every version must be canonical; blank lines and //
// or # comments are ignored. A go.sum line "path version/go.mod h1:..." names the .info and .mod
// of the version alone, as the go command needs them for its module graph, and stays so in the
// list (see ModOnly); every other line names the whole version. The result is sorted and has no
// duplicates, and no .mod-alone entry of a version it names whole.
func ParseList(data []byte) ([]module.Version, error) {
	var list []module.Version
	if looksLikeGoMod(data) {
		f, err := modfile.ParseLax("go.mod", data, nil)
		if err != nil {
			return nil, gofer.Errorf(gofer.ErrInvalid, "%w", err)
		}
		for _, r := range f.Require {
			// The go.mod parser completes a short version (v1 → v1.0.0), in its tokens too:
			// the file's own text must be canonical already.
			text, _, _ := strings.Cut(string(data[r.Syntax.Start.Byte:r.Syntax.End.Byte]), "//")
			f := strings.Fields(text)
			tok := f[len(f)-1]
			if err := checkCanonical(r.Mod.Path, tok); err != nil {
				return nil, gofer.Errorf(gofer.ErrInvalid, "go.mod:%d: %w", r.Syntax.Start.Line, err)
			}
			list = append(list, r.Mod)
		}
	} else {
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, 64<<10)
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "//") {
				continue
			}
			v, err := parseLine(line)
			if err == nil {
				err = checkCanonical(v.Path, v.Version)
			}
			if err != nil {
				return nil, gofer.Errorf(gofer.ErrInvalid, "line %d: %w", n, err)
			}
			list = append(list, v)
		}
		if err := sc.Err(); err != nil {
			return nil, gofer.Errorf(gofer.ErrInvalid, "%w", err)
		}
	}
	list = Normalize(list)
	switch {
	case len(list) == 0:
		return nil, gofer.Errorf(gofer.ErrInvalid, "no module versions named")
	case len(list) > MaxList:
		return nil, gofer.Errorf(gofer.ErrInvalid, "%d module versions named; at most %d at a time", len(list), MaxList)
	}
	return list, nil
}

func checkCanonical(path, version string) error {
	version = strings.TrimSuffix(version, modSuffix)
	if err := module.Check(path, version); err != nil || module.CanonicalVersion(version) != version {
		return fmt.Errorf("%s@%s is not a canonical module version", path, version)
	}
	return nil
}

// modSuffix marks a warm list entry that names a version's .info and .mod alone, as a go.sum
// line does.
const modSuffix = "/go.mod"

// ModOnly returns the version a warm list entry names, and whether it names its .info and .mod
// alone rather than the whole version.
func ModOnly(v module.Version) (module.Version, bool) {
	version, ok := strings.CutSuffix(v.Version, modSuffix)
	return module.Version{Path: v.Path, Version: version}, ok
}

// ModEntry is the warm list entry that names v's .info and .mod alone.
func ModEntry(v module.Version) module.Version {
	return module.Version{Path: v.Path, Version: v.Version + modSuffix}
}

// Normalize sorts list by path, then version, and drops duplicates, and the .mod-alone entries
// of versions it also names whole.
func Normalize(list []module.Version) []module.Version {
	whole := map[module.Version]bool{}
	for _, v := range list {
		if _, mod := ModOnly(v); !mod {
			whole[v] = true
		}
	}
	list = slices.DeleteFunc(list, func(v module.Version) bool {
		w, mod := ModOnly(v)
		return mod && whole[w]
	})
	slices.SortFunc(list, func(a, b module.Version) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		return strings.Compare(a.Version, b.Version)
	})
	return slices.Compact(list)
}

// looksLikeGoMod reports whether data is a go.mod file rather than a list: it has a module or
// require directive.
func looksLikeGoMod(data []byte) bool {
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && (f[0] == "module" || f[0] == "require" || f[0] == "require(") {
			return true
		}
	}
	return false
}

// parseLine reads one go.sum line ("path version[/go.mod] h1:...") or "path@version".
func parseLine(line string) (module.Version, error) {
	f := strings.Fields(line)
	switch {
	case len(f) == 3 && strings.HasPrefix(f[2], "h1:"):
		return module.Version{Path: f[0], Version: f[1]}, nil
	case len(f) == 1 && strings.Contains(f[0], "@"):
		path, version, _ := strings.Cut(f[0], "@")
		return module.Version{Path: path, Version: version}, nil
	}
	return module.Version{}, errors.New(`want a go.sum line or "module@version"`)
}

// PutList stores list in blobs, sorted and without duplicates (so one set of versions is
// one key, whatever its order), and returns its key. It sorts list in place.
func PutList(ctx context.Context, blobs storage.Blobs, list []module.Version) (string, error) {
	list = Normalize(list)
	var b strings.Builder
	for _, v := range list {
		b.WriteString(v.Path + " " + v.Version + "\n")
	}
	sum := sha256.Sum256([]byte(b.String()))
	key := prefix + hex.EncodeToString(sum[:])
	if err := blobs.Put(ctx, key, strings.NewReader(b.String())); err != nil && !errors.Is(err, gofer.ErrExists) {
		return "", storage.Failure(err)
	}
	return key, nil
}

// ReadList reads back the warm list that PutList stored in blobs under key. A key that names
// no stored warm list is invalid: it is not a list of this format, and waiting changes nothing.
func ReadList(ctx context.Context, blobs storage.Blobs, key string) ([]module.Version, error) {
	if !strings.HasPrefix(key, prefix) {
		return nil, gofer.Errorf(gofer.ErrInvalid, "%q is not a warm list", key)
	}
	r, _, err := blobs.Open(ctx, key)
	if errors.Is(err, gofer.ErrNotFound) {
		return nil, gofer.Errorf(gofer.ErrInvalid, "warm list %s is not stored", key)
	}
	if err != nil {
		return nil, storage.Failure(err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, storage.Failure(err)
	}
	var list []module.Version
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		path, version, ok := strings.Cut(line, " ")
		if !ok {
			return nil, gofer.Errorf(gofer.ErrInvalid, "warm list %s is corrupt", key)
		}
		list = append(list, module.Version{Path: path, Version: version})
	}
	return list, nil
}
