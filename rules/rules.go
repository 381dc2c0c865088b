// Package rules reads gofer's per-module rules: which modules are excluded, passed through
// without being stored, or private (fetched from version control, never named to the checksum
// database), and which download mode applies to a miss. A rules file is validated whole at load;
// a bad file is an error and never half-applied. Rules never decide anything about bytes: they
// only route requests.
package rules

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"

	"golang.org/x/mod/module"

	"github.com/goferproxy/gofer"
)

// The rules a module pattern can have; none means the module is proxied and stored as usual.
const (
	Exclude     = "exclude"     // 403 for every request, never fetched
	Passthrough = "passthrough" // fetched from the upstream and streamed to the client, never stored
	Private     = "private"     // fetched from version control, never looked up in the checksum database
)

// The download modes: what a request for a version that is not stored gets.
const (
	Sync     = "sync"     // start or join the fetch and wait for it, up to the fetch wait
	Async    = "async"    // start the fetch and answer 404 at once (a GOPROXY=a,b client goes on to b)
	Redirect = "redirect" // redirect to the upstream's URL for the file; store nothing
	None     = "none"     // serve only what is stored; a miss is 404
)

// Action is what applies to one module path.
type Action struct {
	Rule string // "", Exclude, Passthrough or Private
	Mode string // Sync, Async, Redirect or None
}

// Set is a parsed rules file. The zero value (or nil) applies mode sync and no rule to every
// module.
type Set struct {
	mode  string // the default mode
	lines []line
}

type line struct {
	pattern string
	Action
}

// Match returns the action of the first line whose pattern matches path (GOPRIVATE's glob
// syntax, matching path prefixes), with the default mode where the line sets none; a private
// module is never redirected (mode sync instead).
func (s *Set) Match(path string) Action {
	a := Action{Mode: Sync}
	if s == nil {
		return a
	}
	if s.mode != "" {
		a.Mode = s.mode
	}
	for _, l := range s.lines {
		if module.MatchPrefixPatterns(l.pattern, path) {
			if l.Rule != "" {
				a.Rule = l.Rule
			}
			if l.Mode != "" {
				a.Mode = l.Mode
			}
			break
		}
	}
	if a.Rule == Private && a.Mode == Redirect {
		// A redirect would send the client, and the private module's name, to the upstream.
		a.Mode = Sync
	}
	return a
}

// Parse reads a rules file: one rule per line, "#" starts a comment.
//
//	mode <mode>                  the default download mode (sync if the file sets none)
//	<pattern> <word>...          a module pattern and its rule and/or mode
//
// The first line whose pattern matches a module path applies. name names the file in errors.
func Parse(r io.Reader, name string) (*Set, error) {
	s := &Set{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		text, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(text)
		if len(f) == 0 {
			continue
		}
		errorf := func(format string, args ...any) error {
			return fmt.Errorf("%s:%d: %s", name, n, fmt.Sprintf(format, args...))
		}
		if f[0] == "mode" {
			if len(f) != 2 || !isMode(f[1]) {
				return nil, errorf("want \"mode sync|async|redirect|none\"")
			}
			if s.mode != "" {
				return nil, errorf("the default mode is set twice")
			}
			s.mode = f[1]
			continue
		}
		if len(f) < 2 {
			return nil, errorf("%q has no rule or mode: want \"<pattern> exclude|passthrough|private and/or sync|async|redirect|none\"", f[0])
		}
		l := line{pattern: f[0]}
		if err := checkPattern(l.pattern); err != nil {
			return nil, errorf("%v", err)
		}
		for _, w := range f[1:] {
			switch {
			case w == Exclude || w == Passthrough || w == Private:
				if l.Rule != "" {
					return nil, errorf("%s has two rules, %s and %s", l.pattern, l.Rule, w)
				}
				l.Rule = w
			case isMode(w):
				if l.Mode != "" {
					return nil, errorf("%s has two modes, %s and %s", l.pattern, l.Mode, w)
				}
				l.Mode = w
			default:
				return nil, errorf("unknown word %q: want exclude, passthrough, private, sync, async, redirect or none", w)
			}
		}
		if l.Rule == Exclude && l.Mode != "" {
			return nil, errorf("%s is excluded: a download mode means nothing for it", l.pattern)
		}
		s.lines = append(s.lines, l)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	return s, nil
}

func isMode(w string) bool { return w == Sync || w == Async || w == Redirect || w == None }

// checkPattern refuses a pattern no module path could match, which is a typo, not a rule.
func checkPattern(p string) error {
	if strings.ContainsAny(p, ",") {
		return fmt.Errorf("pattern %q: one pattern per line", p)
	}
	for _, elem := range strings.Split(p, "/") {
		if elem == "" {
			return fmt.Errorf("pattern %q has an empty path element", p)
		}
	}
	return nil
}

// Load reads the rules file at path; an empty path means no rules.
func Load(path string) (*Set, error) {
	if path == "" {
		return &Set{}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Parse(f, path)
}

// Live holds the rules in force; Reload replaces them whole, or not at all.
type Live struct {
	path string
	set  atomic.Pointer[Set]
}

// NewLive loads the rules at path (empty: none) and keeps them for reloading.
func NewLive(path string) (*Live, error) {
	l := &Live{path: path}
	return l, l.Reload()
}

// Reload reads the file again; on error the rules in force stay as they were.
func (l *Live) Reload() error {
	s, err := Load(l.path)
	if err != nil {
		return err
	}
	l.set.Store(s)
	return nil
}

// Match applies the rules in force (see Set.Match); a nil Live has none.
func (l *Live) Match(path string) Action {
	if l == nil {
		return (*Set)(nil).Match(path)
	}
	return l.set.Load().Match(path)
}

// NoDirect is the answer for a private module when there is no access to version control: not
// found, since no other source may be asked.
func NoDirect(path string) error {
	return gofer.Errorf(gofer.ErrNotFound, "%s is private, and this proxy has no access to version control", path)
}
