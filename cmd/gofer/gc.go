package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/activities"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/workflows"
)

// gc lists what storage holds that nothing serves: final blobs that no metadata record names
// (left behind by a commit that failed between its blobs and its metadata insert and was never
// retried), and staged files, by fetch run. Deleting orphaned blobs is not offered: one may
// belong to a commit in flight right now, which would then publish a version whose blob is
// gone. Staged files belong to their run, which discards them when it ends; --remove-staged
// removes those of runs that Temporal says are no longer running (a run whose discard never
// happened, such as one that was terminated).
func gc(ctx context.Context, args []string, stdout io.Writer) error {
	var dryRun, removeStaged bool
	var tmp temporalSettings
	var terr error
	s, rest, err := parseStoreSettings("gc", args, func(_ *settings, e *envFlags) {
		fs := e.fs
		fs.BoolVar(&dryRun, "dry-run", false, "list the orphaned blobs and the staged files, and delete nothing")
		fs.BoolVar(&removeStaged, "remove-staged", false, "remove the staged files of fetch runs that are no longer running (asks Temporal)")
		tmp.flags(e, ", for --remove-staged")
		terr = e.err
	})
	if err == nil {
		err = terr
	}
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(rest, " "))
	}
	if dryRun == removeStaged {
		return errors.New("gofer gc lists orphaned blobs and staged files with --dry-run, or removes the staged files of ended fetch runs with --remove-staged: give one of them")
	}
	blobs, err := openBlobs(ctx, s, zap.NewNop())
	if err != nil {
		return err
	}
	if removeStaged {
		c, err := tmp.dial()
		if err != nil {
			return err
		}
		defer c.Close()
		return removeEnded(ctx, blobs, c, tmp.namespace, stdout)
	}
	meta, err := openMetadata(ctx, s)
	if err != nil {
		return err
	}
	defer meta.Close()
	n, err := orphans(ctx, blobs, meta, func(key string, size int64) {
		fmt.Fprintf(stdout, "%s\t%d\n", key, size)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d orphaned blobs\n", n)
	runs, err := stagedRuns(ctx, blobs)
	for _, r := range runs {
		fmt.Fprintf(stdout, "%s\t%d files\t%d bytes\n", r.prefix, len(r.keys), r.size)
	}
	if err == nil {
		fmt.Fprintf(stdout, "%d fetch runs with staged files (gofer gc --remove-staged removes those of runs that have ended)\n", len(runs))
	}
	return err
}

// orphans calls found for every final blob that no metadata record names: a file of a version
// with no record, or a zip that neither its version's record has nor a record of its own (a zip
// committed before its version's .mod) does.
func orphans(ctx context.Context, blobs storage.Blobs, meta storage.Metadata, found func(key string, size int64)) (int, error) {
	n := 0
	err := blobs.Walk(ctx, "", "", func(key string, size int64) error {
		path, version, ext, ok := storage.ParseKey(key)
		if !ok {
			return nil // staged files are listed by fetch run
		}
		rec, err := meta.Get(ctx, path, version)
		if ext == "zip" && errors.Is(err, gofer.ErrNotFound) {
			rec, err = meta.GetZip(ctx, path, version)
		}
		if errors.Is(err, gofer.ErrNotFound) || err == nil && ext == "zip" && !rec.HasZip() {
			n++
			found(key, size)
			return nil
		}
		return err
	})
	return n, err
}

// stagedRun is the staged files of one fetch run.
type stagedRun struct {
	path, version, runID string
	prefix               string // the storage.StagingPrefix of its files, what names it to operators
	keys                 []string
	size                 int64
}

// stagedRuns lists the staged files in storage by fetch run, in key order.
func stagedRuns(ctx context.Context, blobs storage.Blobs) ([]*stagedRun, error) {
	var runs []*stagedRun
	err := blobs.Walk(ctx, storage.Staging, "", func(key string, size int64) error {
		path, version, runID, ok := storage.ParseStagingKey(key)
		if !ok {
			return nil
		}
		if n := len(runs); n == 0 || runs[n-1].path != path || runs[n-1].version != version || runs[n-1].runID != runID {
			prefix, err := storage.StagingPrefix(path, version, runID)
			if err != nil {
				return err
			}
			runs = append(runs, &stagedRun{path: path, version: version, runID: runID, prefix: prefix})
		}
		r := runs[len(runs)-1]
		r.keys = append(r.keys, key)
		r.size += size
		return nil
	})
	return runs, err
}

// describe asks Temporal about runID ("" for the latest run) of the fetch that staged r's
// files: a fetch of the zip, or, recorded before files were fetched apart, of all three.
func describe(ctx context.Context, tc client.Client, r *stagedRun, runID string) (*client.WorkflowExecutionDescription, string, error) {
	id := workflows.FetchID(r.path, r.version, activities.FilesZip)
	d, err := tc.DescribeWorkflow(ctx, id, runID)
	if nf := (*serviceerror.NotFound)(nil); errors.As(err, &nf) {
		id = workflows.FetchID(r.path, r.version, "")
		d, err = tc.DescribeWorkflow(ctx, id, runID)
	}
	return d, id, err
}

// removeEnded deletes the staged files of every fetch run that is no longer running: closed,
// or unknown to Temporal (its history is past retention). A run Temporal cannot be asked about
// keeps its files, and nothing is removed when the namespace knows none of the fetches.
func removeEnded(ctx context.Context, blobs storage.Blobs, tc client.Client, namespace string, stdout io.Writer) error {
	runs, err := stagedRuns(ctx, blobs)
	if err != nil {
		return err
	}
	// A namespace that knows none of the runs is most likely the wrong one, where every run
	// would look ended.
	known := false
	for _, r := range runs {
		_, _, err := describe(ctx, tc, r, "")
		known = known || err == nil
	}
	if len(runs) > 0 && !known {
		return fmt.Errorf("the Temporal namespace %q knows none of the fetches with staged files: is it gofer's (GOFER_TEMPORAL_NAMESPACE)? nothing removed", namespace)
	}
	removed := 0
	for _, r := range runs {
		d, id, err := describe(ctx, tc, r, r.runID)
		var nf *serviceerror.NotFound
		switch {
		case errors.As(err, &nf):
		case err != nil:
			return fmt.Errorf("asking Temporal about %s: %w", id, err)
		case d.Status == enums.WORKFLOW_EXECUTION_STATUS_RUNNING:
			fmt.Fprintf(stdout, "%s\tkept: running\n", r.prefix)
			continue
		}
		for _, key := range r.keys {
			if err := blobs.Delete(ctx, key); err != nil {
				return err
			}
		}
		removed++
		fmt.Fprintf(stdout, "%s\tremoved %d files, %d bytes\n", r.prefix, len(r.keys), r.size)
	}
	fmt.Fprintf(stdout, "%d of %d fetch runs with staged files had ended; their files are removed\n", removed, len(runs))
	return nil
}
