package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"go.uber.org/zap"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/workflows/fetcherr"
)

// Watch is one watchlist entry: the modules Pattern names (itself, unless it has wildcards,
// and every stored module it matches, with GOPRIVATE's glob syntax) and which of their versions
// to keep stored.
type Watch struct {
	Pattern string
	Rule    WatchRule
}

// WatchRule says which versions of a watched module to keep stored: the one @latest names, or
// every listed version at or above Since (all of them when Since is empty).
type WatchRule struct {
	Latest bool
	Since  string
}

// ParseWatchRule reads "latest", "all" or "all >= v1.2.0".
func ParseWatchRule(s string) (WatchRule, error) {
	f := strings.Fields(s)
	switch {
	case len(f) == 1 && f[0] == "latest":
		return WatchRule{Latest: true}, nil
	case len(f) == 1 && f[0] == "all":
		return WatchRule{}, nil
	case len(f) == 3 && f[0] == "all" && f[1] == ">=" && semver.IsValid(f[2]) && semver.Canonical(f[2]) == f[2]:
		return WatchRule{Since: f[2]}, nil
	}
	return WatchRule{}, fmt.Errorf(`rule %q: want "latest", "all" or "all >= <canonical version>"`, s)
}

func (r WatchRule) String() string {
	switch {
	case r.Latest:
		return "latest"
	case r.Since != "":
		return "all >= " + r.Since
	}
	return "all"
}

// WarmList names a stored warm list.
type WarmList struct {
	Key   string // empty when the list is empty
	Total int
}

// Resolve finds the versions the watch w wants, asking the upstream (version control for
// private modules) for the current list or @latest of every watched module, and stores them as a
// warm list. A module the upstream does not know is skipped and logged.
func (a *Activities) Resolve(ctx context.Context, w Watch) (WarmList, error) {
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
	list = normalize(list)
	key, err := PutWarmList(ctx, a.Blobs, list)
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
			return nil, storageErr(err)
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
func (a *Activities) wanted(ctx context.Context, path string, rule WatchRule) ([]string, error) {
	up, _, err := a.source(path)
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
