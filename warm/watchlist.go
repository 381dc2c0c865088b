package warm

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	"github.com/goferproxy/gofer/upstream"
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

// DefaultWatchEvery is how often a watchlist entry runs unless the watchlist says otherwise.
const DefaultWatchEvery = time.Hour

// WatchEntry is one line of a watchlist: a module pattern and its rule, a go.sum file whose
// every version is kept stored, or another proxy to follow, and how often it runs.
type WatchEntry struct {
	Watch  Watch // when GoSum and Follow.URL are empty
	GoSum  string
	Follow Follow
	Every  time.Duration
}

// Follow is a "follow" entry: the proxy at URL (userinfo included, which is never shown),
// whose GET /index is read on from where the last run stopped, and whose new versions that
// Patterns matches (GOPRIVATE's syntax: comma-separated globs; empty: every module) are
// fetched from it.
type Follow struct {
	URL      string
	Patterns string
}

// Feed names the followed proxy where it may be shown and recorded (a schedule, a workflow's
// arguments): its URL without userinfo or trailing slashes.
func (f Follow) Feed() string {
	u, err := url.Parse(f.URL)
	if err != nil { // not from ParseWatchlist
		return ""
	}
	u.User = nil
	u.Path, u.RawPath = strings.TrimRight(u.Path, "/"), strings.TrimRight(u.RawPath, "/")
	return u.String()
}

// Name names the entry among those of a watchlist: its pattern, "gosum:" and the name of its
// go.sum file, or "follow:" and the followed proxy's Feed.
func (e WatchEntry) Name() string {
	switch {
	case e.GoSum != "":
		return "gosum:" + e.GoSum
	case e.Follow.URL != "":
		return "follow:" + e.Follow.Feed()
	}
	return e.Watch.Pattern
}

// ParseWatchlist reads a watchlist: one entry a line, "<pattern> latest", "<pattern> all",
// "<pattern> all >= <version>", "gosum <file>" or "follow <proxy URL> [<patterns>]", each
// optionally followed by "every <duration>";
// a line "every <duration>" sets the interval of the entries below it (default 1h). # starts a
// comment. Patterns use GOPRIVATE's glob syntax. Errors name the line.
func ParseWatchlist(r io.Reader) ([]WatchEntry, error) {
	var entries []WatchEntry
	seen := map[string]int{}
	every := DefaultWatchEvery
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		lineEvery := every
		if k := len(f); k >= 2 && f[k-2] == "every" {
			d, err := time.ParseDuration(f[k-1])
			if err != nil || d < time.Second {
				return nil, fmt.Errorf("watchlist line %d: every %q: want a duration of 1s or more", n, f[k-1])
			}
			lineEvery, f = d, f[:k-2]
		}
		if len(f) == 0 {
			every = lineEvery
			continue
		}
		e := WatchEntry{Every: lineEvery}
		switch {
		case f[0] == "gosum" && len(f) == 2:
			e.GoSum = f[1]
		case f[0] == "follow" && (len(f) == 2 || len(f) == 3):
			if err := checkFollowURL(f[1]); err != nil {
				return nil, fmt.Errorf("watchlist line %d: %v", n, err)
			}
			e.Follow.URL = f[1]
			if len(f) == 3 {
				for _, p := range strings.Split(f[2], ",") {
					if err := checkPattern(p); err != nil {
						return nil, fmt.Errorf("watchlist line %d: %v", n, err)
					}
				}
				e.Follow.Patterns = f[2]
			}
		case len(f) >= 2:
			rule, err := ParseWatchRule(strings.Join(f[1:], " "))
			if err != nil {
				return nil, fmt.Errorf("watchlist line %d: %v", n, err)
			}
			if err := checkPattern(f[0]); err != nil {
				return nil, fmt.Errorf("watchlist line %d: %v", n, err)
			}
			e.Watch = Watch{Pattern: f[0], Rule: rule}
		default:
			return nil, fmt.Errorf(`watchlist line %d: want "<pattern> <rule>", "gosum <file>", "follow <proxy URL> [<patterns>]" or "every <duration>"`, n)
		}
		if m, ok := seen[e.Name()]; ok {
			return nil, fmt.Errorf("watchlist line %d: already listed on line %d", n, m)
		}
		seen[e.Name()] = n
		entries = append(entries, e)
	}
	return entries, sc.Err()
}

// checkFollowURL accepts the URL of one proxy, as a GOPROXY list of it alone: http or https,
// a host, no query or fragment. Its error shows the URL without userinfo.
func checkFollowURL(raw string) error {
	_, err := upstream.Parse(raw)
	if err != nil || !strings.HasPrefix(raw, "http://") && !strings.HasPrefix(raw, "https://") || strings.ContainsAny(raw, ",|") {
		return fmt.Errorf("follow %q: want the http or https URL of a proxy, without a query", cmp.Or(Follow{URL: raw}.Feed(), "?"))
	}
	return nil
}

// checkPattern accepts a module path, or a glob of one whose wildcards are whole elements' parts.
func checkPattern(p string) error {
	if strings.ContainsAny(p, "*?[\\") {
		if strings.Trim(p, "/") != p || strings.Contains(p, "//") {
			return fmt.Errorf("pattern %q: malformed", p)
		}
		return nil
	}
	if err := module.CheckPath(p); err != nil {
		return fmt.Errorf("pattern %q: %v", p, err)
	}
	return nil
}

// ReadGoSum reads the versions of the go.sum file name that a watchlist's "gosum" entry names
// (or of any file ParseList reads), for the worker to store as a warm list.
func ReadGoSum(name string) ([]module.Version, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("watchlist: %w", err)
	}
	list, err := ParseList(data)
	if err != nil {
		return nil, fmt.Errorf("watchlist: %s: %w", name, err)
	}
	return list, nil
}
