package rules

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const example = `
# The default download mode.
mode async
example.com/forbidden        exclude
example.com/huge             passthrough  sync
git.corp.example             private      # fetched from VCS
github.com/flaky,x           async
`

func TestParseErrors(t *testing.T) {
	for i, c := range []struct{ text, want string }{
		0: {"mode fast\n", "f:1: want \"mode sync|async|redirect|none\""},
		1: {"mode sync\nmode async\n", "f:2: the default mode is set twice"},
		2: {"example.com/a\n", "has no rule or mode"},
		3: {"example.com/a exclude private\n", "two rules"},
		4: {"example.com/a sync async\n", "two modes"},
		5: {"example.com/a stored\n", `unknown word "stored"`},
		6: {"example.com/a exclude async\n", "a download mode means nothing"},
		7: {"example.com//a private\n", "empty path element"},
		8: {"a,b private\n", "one pattern per line"},
	} {
		_, err := Parse(strings.NewReader(c.text), "f")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%d: %q: %v, want an error with %q", i, c.text, err, c.want)
		}
	}
}

func TestMatch(t *testing.T) {
	s, err := Parse(strings.NewReader(strings.Replace(example, "github.com/flaky,x", "github.com/flaky", 1)), "example")
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		path string
		want Action
	}{
		0: {"example.com/forbidden", Action{Exclude, Async}},
		1: {"example.com/forbidden/sub", Action{Exclude, Async}},
		2: {"example.com/forbiddenx", Action{"", Async}}, // a prefix of path elements, not of bytes
		3: {"example.com/huge", Action{Passthrough, Sync}},
		4: {"git.corp.example/team/lib", Action{Private, Async}},
		5: {"github.com/flaky/x", Action{"", Async}},
		6: {"golang.org/x/text", Action{"", Async}},
	} {
		if got := s.Match(c.path); got != c.want {
			t.Errorf("%d: Match(%q) = %+v, want %+v", i, c.path, got, c.want)
		}
	}
	r, _ := Parse(strings.NewReader("mode redirect\ngit.corp.example private\n"), "r")
	if got := r.Match("git.corp.example/x"); got != (Action{Private, Sync}) {
		t.Errorf("a private module under mode redirect: %+v, want sync", got)
	}
	if got := (*Set)(nil).Match("a.example/b"); got != (Action{Mode: Sync}) {
		t.Errorf("no rules: %+v", got)
	}
}

// Reload replaces the rules whole, or keeps the old ones when the file is bad.
func TestLiveReload(t *testing.T) {
	file := filepath.Join(t.TempDir(), "rules")
	os.WriteFile(file, []byte("example.com/a exclude\n"), 0o644)
	l, err := NewLive(file)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(file, []byte("example.com/a passthrough\n"), 0o644)
	if err := l.Reload(); err != nil || l.Match("example.com/a").Rule != Passthrough {
		t.Fatalf("after a good reload: %v %+v", err, l.Match("example.com/a"))
	}
	os.WriteFile(file, []byte("example.com/a bogus\n"), 0o644)
	if err := l.Reload(); err == nil {
		t.Fatal("a bad file reloaded")
	}
	if l.Match("example.com/a").Rule != Passthrough {
		t.Error("a bad reload changed the rules in force")
	}
}
