package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"go.uber.org/zap"
	"golang.org/x/mod/module"

	"github.com/goferproxy/gofer/bundle"
	"github.com/goferproxy/gofer/warm"
)

// exportCmd writes stored versions as a bundle (`gofer export --out PATH [FILE]`): those a
// go.sum, go.mod or module@version list FILE names, or else those stored in a time range, of
// the modules a pattern matches. It reads the stores itself, so it needs their settings, and,
// with the embedded metadata store, a gofer that is stopped (its database is locked).
func exportCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var out, since, until, patterns string
	var goerr error
	s, rest, err := parseStoreSettings("export", args, func(s *settings, e *envFlags) {
		goerr = s.checksumFlags(e)
		fs := e.fs
		fs.StringVar(&out, "out", "", "the bundle to write: a directory, or a tar file if it ends in .tar; it must not exist")
		fs.StringVar(&since, "since", "", "without FILE: versions stored at or after this RFC 3339 time")
		fs.StringVar(&until, "until", "", "without FILE: versions stored before this RFC 3339 time")
		fs.StringVar(&patterns, "modules", "", "without FILE: versions of the modules these comma-separated globs match (GOPRIVATE's syntax)")
	})
	if err != nil {
		return err
	}
	if s.sumdb == "" {
		return fmt.Errorf("no checksum database: set GOFER_SUMDB (off for a bundle without proofs), or install the go command so that `go env` answers (%v)", goerr)
	}
	if out == "" || len(rest) > 1 || (len(rest) == 1 && since+until+patterns != "") {
		return errors.New("usage: gofer export --out PATH FILE (a go.sum, go.mod or module@version list), or gofer export --out PATH [--since T] [--until T] [--modules PATTERNS]")
	}
	var from, to time.Time
	for _, t := range []struct {
		flag, value string
		to          *time.Time
	}{{"since", since, &from}, {"until", until, &to}} {
		if t.value == "" {
			continue
		}
		if *t.to, err = time.Parse(time.RFC3339Nano, t.value); err != nil {
			return fmt.Errorf("--%s: want an RFC 3339 time, such as 2026-12-01T00:00:00Z", t.flag)
		}
	}
	_, _, checker, err := checksums(s, zap.NewNop())
	if err != nil {
		return err
	}
	blobs, err := openBlobs(ctx, s, zap.NewNop())
	if err != nil {
		return err
	}
	st := bundle.Stores{Blobs: blobs}
	if checker.DB != nil {
		checker.Blobs, st.SumDB = blobs, checker
	}
	meta, err := openMetadata(ctx, s)
	if err != nil {
		return err
	}
	defer meta.Close()
	st.Meta = meta
	var list []module.Version
	if len(rest) == 1 {
		list, err = warm.ReadGoSum(rest[0])
	} else {
		if !from.IsZero() {
			from = from.Add(-1) // --since is inclusive, the index's since exclusive
		}
		list, err = bundle.Stored(ctx, meta, from, to, patterns)
	}
	if err != nil {
		return err
	}
	last := time.Now()
	sum, err := bundle.Export(ctx, st, list, out, func(p bundle.Summary) {
		if time.Since(last) > time.Second {
			last = time.Now()
			fmt.Fprintf(stderr, "%d of %d versions written (%d bytes)\n", p.Versions, len(list), p.Bytes)
		}
	})
	if err != nil {
		return err
	}
	abs, _ := filepath.Abs(out)
	fmt.Fprintf(stdout, "%s: %d versions (%d with their zips), %d bytes, %d with the checksum database's proofs; use it with GOPROXY=file://%s\n",
		out, sum.Versions, sum.Zips, sum.Bytes, sum.Proven, filepath.ToSlash(abs))
	return nil
}
