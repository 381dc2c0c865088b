package activities

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"
	"golang.org/x/mod/module"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/rules"
	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/workflows/fetcherr"
)

// FeedRequest asks for a page of a followed proxy's index: at most Limit versions it stored
// after Since, of the modules Patterns matches (empty: every module).
type FeedRequest struct {
	Feed     string // a key of Activities.Follows
	Patterns string
	Since    time.Time
	Limit    int
}

// FeedPage is a page of a followed proxy's index, sorted: the versions to fetch, and how many
// were listed, matched and found stored already.
type FeedPage struct {
	Missing []module.Version
	Listed  int // after Since: none ends the index for now
	Matched int // of Patterns, valid and not excluded by the rules: Missing and Cached
	Cached  int
	// Next is the Timestamp of the page's last version (Since when none is listed): where
	// the next page starts.
	Next time.Time
}

const (
	// maxFeedPath bounds a module path a followed index may list; no real one comes near it.
	maxFeedPath = 1000
	// feedClockSkew is how far ahead of this worker's clock a followed index's times may be.
	feedClockSkew = time.Minute
)

// ReadFeed reads a page of the index of the followed proxy r.Feed and sorts what it lists. A
// listed version that is no module version, not canonical, or of a path over 1,000 bytes is
// skipped and logged (the proxy is followed, not trusted); so are those of modules the rules
// exclude or pass through, which gofer never stores. Versions listed at or before Since are
// skipped (a proxy whose since is inclusive lists them again); a page that goes back in time, or
// lists a time more than a minute ahead of this worker's clock (which would move the cursor past
// every version to come), is refused.
func (a *Activities) ReadFeed(ctx context.Context, r FeedRequest) (FeedPage, error) {
	c, err := a.followed(r.Feed)
	if err != nil {
		return FeedPage{}, fetcherr.Encode(err)
	}
	list, err := c.Index(ctx, r.Since, r.Limit)
	if err != nil {
		return FeedPage{}, fetcherr.Encode(err)
	}
	p := FeedPage{Next: r.Since}
	ahead := time.Now().Add(feedClockSkew)
	for _, e := range list {
		switch {
		case e.Timestamp.Before(p.Next):
			return FeedPage{}, fetcherr.Encode(gofer.Errorf(gofer.ErrInvalid, "the index of %s lists %s@%s at %s, before the version listed before it", r.Feed, e.Path, e.Version, e.Timestamp))
		case e.Timestamp.After(ahead):
			return FeedPage{}, fetcherr.Encode(gofer.Errorf(gofer.ErrInvalid, "the index of %s lists %s@%s at %s, in the future", r.Feed, e.Path, e.Version, e.Timestamp))
		case !e.Timestamp.After(r.Since):
			continue
		}
		p.Listed++
		p.Next = e.Timestamp
		if r.Patterns != "" && !module.MatchPrefixPatterns(r.Patterns, e.Path) {
			continue
		}
		if len(e.Path) > maxFeedPath || module.Check(e.Path, e.Version) != nil || module.CanonicalVersion(e.Version) != e.Version {
			a.log(ctx).Warn("followed index lists no module version", zap.String("feed", r.Feed), zap.String("module", e.Path[:min(len(e.Path), maxFeedPath)]), zap.String("version", e.Version))
			continue
		}
		if rule := a.Rules.Match(e.Path).Rule; rule == rules.Exclude || rule == rules.Passthrough {
			continue
		}
		p.Matched++
		rec, err := a.Meta.Get(ctx, e.Path, e.Version)
		switch {
		case err == nil && rec.HasZip():
			p.Cached++
		case err == nil || errors.Is(err, gofer.ErrNotFound):
			p.Missing = append(p.Missing, module.Version{Path: e.Path, Version: e.Version})
		default:
			return FeedPage{}, fetcherr.Encode(storage.Failure(err))
		}
	}
	return p, nil
}
