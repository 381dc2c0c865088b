package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"go.uber.org/zap"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/storage"
)

// gc lists blobs that no metadata record names: left behind by a commit that failed between its
// blobs and its metadata insert and was never retried. Deleting them is not offered: a blob
// without metadata may belong to a commit in flight right now, which would then publish a
// version whose blob is gone.
func gc(ctx context.Context, args []string, stdout io.Writer) error {
	var dryRun bool
	s, err := parseStoreSettings("gc", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&dryRun, "dry-run", false, "list the orphaned blobs (required: deleting them is not offered)")
	})
	if err != nil {
		return err
	}
	if !dryRun {
		return errors.New("gofer gc only lists orphaned blobs: run it with --dry-run")
	}
	blobs, err := openBlobs(ctx, s, zap.NewNop())
	if err != nil {
		return err
	}
	meta, err := openMetadata(ctx, s)
	if err != nil {
		return err
	}
	defer meta.Close()
	n, err := orphans(ctx, blobs, meta, func(key string, size int64) {
		fmt.Fprintf(stdout, "%s\t%d\n", key, size)
	})
	if err == nil {
		fmt.Fprintf(stdout, "%d orphaned blobs\n", n)
	}
	return err
}

// orphans calls found for every final blob whose version has no metadata record.
func orphans(ctx context.Context, blobs storage.Blobs, meta storage.Metadata, found func(key string, size int64)) (int, error) {
	n := 0
	err := blobs.Walk(ctx, "", "", func(key string, size int64) error {
		path, version, _, ok := storage.ParseKey(key)
		if !ok {
			return nil // staged files belong to their run, which discards them
		}
		_, err := meta.Get(ctx, path, version)
		if errors.Is(err, gofer.ErrNotFound) {
			n++
			found(key, size)
			return nil
		}
		return err
	})
	return n, err
}
