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
	Listed  int
	Matched int // of Patterns, valid and not excluded by the rules: Missing and Cached
	Cached  int
	// Next is the Timestamp of the page's last version (Since for an empty page): where the
	// next page starts.
	Next time.Time
	// End is true when the page was empty: the index has nothing after Since yet.
	End bool
}

// ReadFeed reads a page of the index of the followed proxy r.Feed and sorts what it lists. A
// listed version that is no module version, or not canonical, is skipped and logged (the
// proxy is followed, not trusted); so are those of modules the rules exclude.
func (a *Activities) ReadFeed(ctx context.Context, r FeedRequest) (FeedPage, error) {
	c, err := a.followed(r.Feed)
	if err != nil {
		return FeedPage{}, fetcherr.Encode(err)
	}
	list, err := c.Index(ctx, r.Since, r.Limit)
	if err != nil {
		return FeedPage{}, fetcherr.Encode(err)
	}
	p := FeedPage{Listed: len(list), Next: r.Since, End: len(list) == 0}
	for _, e := range list {
		if e.Timestamp.Before(p.Next) || !e.Timestamp.After(r.Since) {
			return FeedPage{}, fetcherr.Encode(gofer.Errorf(gofer.ErrInvalid, "the index of %s lists %s@%s at %s, out of order", r.Feed, e.Path, e.Version, e.Timestamp))
		}
		p.Next = e.Timestamp
		if r.Patterns != "" && !module.MatchPrefixPatterns(r.Patterns, e.Path) {
			continue
		}
		if err := module.Check(e.Path, e.Version); err != nil || module.CanonicalVersion(e.Version) != e.Version {
			a.log(ctx).Warn("followed index lists no module version", zap.String("feed", r.Feed), zap.String("module", e.Path), zap.String("version", e.Version))
			continue
		}
		if a.Rules.Match(e.Path).Rule == rules.Exclude {
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
