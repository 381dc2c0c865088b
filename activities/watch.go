package activities

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"go.uber.org/zap"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/warm"
	"github.com/goferproxy/gofer/workflows/fetcherr"
)

// WarmList names a stored warm list.
type WarmList struct {
	Key   string // empty when the list is empty
	Total int
}

// Resolve finds the versions the watch w wants, asking the upstream (version control for
// private modules) for the current list or @latest of every watched module, and stores them as a
// warm list. A module the upstream does not know is skipped and logged.
func (a *Activities) Resolve(ctx context.Context, w warm.Watch) (WarmList, error) {
	paths, err := a.watched(ctx, w.Pattern)
	if err != nil {
		return WarmList{}, fetcherr.Encode(err)
	}
	var list []module.Version
	for _, path := range paths {
		vs, err := a.wanted(ctx, path, w.Rule)
		if errors.Is(err, gofer.ErrNotFound) || errors.Is(err, gofer.ErrInvalid) {
			a.log(ctx).Warn("watched module skipped", zap.String("module", path), zap.Error(err))
			continue
		}
		if err != nil {
			return WarmList{}, fetcherr.Encode(err)
		}
		for _, v := range vs {
			list = append(list, module.Version{Path: path, Version: v})
		}
	}
	if len(list) == 0 {
		return WarmList{}, nil
	}
	list = warm.Normalize(list)
	key, err := warm.PutList(ctx, a.Blobs, list)
	return WarmList{Key: key, Total: len(list)}, fetcherr.Encode(err)
}

// watched lists the modules pattern names: itself when it has no wildcards, and the stored
// modules it matches.
func (a *Activities) watched(ctx context.Context, pattern string) ([]string, error) {
	var paths []string
	if !strings.ContainsAny(pattern, "*?[\\") {
		paths = append(paths, pattern)
	}
	after := module.Version{}
	for {
		page, err := a.Meta.Catalog(ctx, after, 1000)
		if err != nil {
			return nil, storage.Failure(err)
		}
		for _, v := range page {
			if v.Path != pattern && module.MatchPrefixPatterns(pattern, v.Path) && (len(paths) == 0 || paths[len(paths)-1] != v.Path) {
				paths = append(paths, v.Path)
			}
		}
		if len(page) < 1000 {
			return paths, nil
		}
		after = page[len(page)-1]
	}
}

// wanted lists the versions of path that rule wants. As the go command does, latest is the
// highest listed version, and @latest is asked only when the list is empty (a module with no
// tags, whose latest is a pseudo-version).
func (a *Activities) wanted(ctx context.Context, path string, rule warm.WatchRule) ([]string, error) {
	up, _, err := a.source(path, "")
	if err != nil {
		return nil, err
	}
	b, _, err := up.List(ctx, path)
	if err != nil {
		return nil, err
	}
	var vs []string
	for _, v := range strings.Fields(string(b)) {
		if module.Check(path, v) == nil && module.CanonicalVersion(v) == v && !module.IsPseudoVersion(v) &&
			(rule.Latest || rule.Since == "" || semver.Compare(v, rule.Since) >= 0) {
			vs = append(vs, v)
		}
	}
	switch {
	case !rule.Latest:
		return vs, nil
	case len(vs) > 0:
		return []string{gofer.Latest(vs)}, nil
	}
	b, _, err = up.Latest(ctx, path)
	if err != nil {
		return nil, err
	}
	var info struct{ Version string }
	if err := json.Unmarshal(b, &info); err != nil || module.Check(path, info.Version) != nil || module.CanonicalVersion(info.Version) != info.Version {
		return nil, gofer.Errorf(gofer.ErrInvalid, "@latest of %s names no canonical version", path)
	}
	return []string{info.Version}, nil
}
