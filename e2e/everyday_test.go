package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/goferproxy/gofer/internal/fakeproxy"
	"github.com/goferproxy/gofer/internal/fakesumdb"
	"github.com/goferproxy/gofer/sumdb"
	"github.com/goferproxy/gofer/vcs"
)

// everydayModules adds to up the modules of everyday commands: a library with two packages, a
// module of commands, and a command in a nested module (the gopls shape: tools.gofer.test/x holds
// tools.gofer.test/x/nested as a module of its own). Their host resolves nowhere, so that the
// direct entry's lookup of every path prefix that is no module fails as it does for real
// prefixes such as golang.org or github.com/spf13.
func everydayModules(up *fakeproxy.Proxy) {
	up.Add("lib.gofer.test/text", "v1.2.0", map[string]string{
		"go.mod":         "module lib.gofer.test/text\n\ngo 1.21\n",
		"lang/lang.go":   "package lang\n\n// Tag is a language tag.\nfunc Tag() string { return \"en\" }\n",
		"width/width.go": "package width\n\n// Narrow is a narrow width.\nfunc Narrow() int { return 1 }\n",
	})
	up.Add("tools.gofer.test/x", "v0.20.0", map[string]string{
		"go.mod":            "module tools.gofer.test/x\n\ngo 1.21\n\nrequire lib.gofer.test/text v1.2.0\n",
		"cmd/greet/main.go": "package main\n\nimport (\n\t\"fmt\"\n\n\t\"lib.gofer.test/text/lang\"\n)\n\nfunc main() { fmt.Println(\"greet\", lang.Tag()) }\n",
		"internal/x/x.go":   "package x\n",
	})
	up.Add("tools.gofer.test/x/nested", "v0.5.0", map[string]string{
		"go.mod":  "module tools.gofer.test/x/nested\n\ngo 1.21\n",
		"main.go": "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"nested v0.5.0\") }\n",
	})
}

// session runs go commands against one GOPROXY in a module cache of its own, and records what
// each printed and left behind, for comparison with another session.
type session struct {
	t              testing.TB
	goproxy, gobin string
	cache          string
	out            map[string]string
	times          map[string]time.Duration // how long each command took, by name
	// env, NAME=value, overrides goCommand's defaults in the commands run.
	env []string
}

// newSession is a session against goproxy, in a fresh module cache and GOBIN.
func newSession(t testing.TB, goproxy string) *session {
	return &session{t: t, goproxy: goproxy, gobin: t.TempDir(), cache: t.TempDir(), out: map[string]string{}}
}

// run runs the go command with args in dir and records its output (its lines sorted) under name.
func (s *session) run(dir, name string, args ...string) {
	s.t.Helper()
	cmd := goCommand(s.goproxy, s.cache, args...)
	cmd.Dir = dir
	cmd.Env = append(append(cmd.Env, "GOBIN="+s.gobin), s.env...)
	start := time.Now()
	b, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("go %s (GOPROXY=%s): %v\n%s", strings.Join(args, " "), s.goproxy, err, b)
	}
	took := time.Since(start)
	s.t.Logf("go %s: %v", strings.Join(args, " "), took.Round(time.Millisecond))
	if s.times != nil {
		s.times[name] = took
	}
	// The go command looks packages up concurrently, so its lines come in any order.
	lines := strings.Split(string(b), "\n")
	slices.Sort(lines)
	s.out[name] = strings.Join(lines, "\n")
}

// module makes a fresh module named path, with files, and returns its directory.
func (s *session) module(path string, files map[string]string) string {
	s.t.Helper()
	dir := s.t.TempDir()
	s.run(dir, "init "+path, "mod", "init", path)
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			s.t.Fatal(err)
		}
	}
	return dir
}

// files records dir's go.mod and go.sum under name.
func (s *session) files(dir, name string) {
	s.t.Helper()
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil && !os.IsNotExist(err) {
			s.t.Fatal(err)
		}
		s.out[name+" "+f] = string(b)
	}
}

// sameThroughGofer runs script straight against up, then through a gofer whose upstream list is
// "<up>,direct" (the default shape: its direct entry is the real version control fetcher, which
// cannot resolve the prefixes that are no module) and through one whose list is "<up>" alone.
// Each command must work and print and leave behind what it did straight from up; no fetch
// workflow may be left running. It returns what the straight run recorded. db, if not nil, is a
// checksum database that up serves and each gofer checks against and serves.
func sameThroughGofer(t *testing.T, up *fakeproxy.Proxy, db *fakesumdb.DB, script func(*session)) map[string]string {
	if db != nil {
		up.ServeSumDB(db.Name(), db.Handler())
	}
	upURL := up.Start(t)
	fetcher := &vcs.Fetcher{TempDir: t.TempDir()}
	t.Cleanup(func() { fetcher.Close() })
	results := func(t *testing.T, goproxy string) map[string]string {
		s := newSession(t, goproxy)
		script(s)
		return s.out
	}
	want := results(t, upURL)
	for name, list := range map[string]string{"proxy,direct": upURL + ",direct", "proxy": upURL} {
		t.Run(name, func(t *testing.T) {
			o := options{direct: fetcher}
			if db != nil {
				parsed, err := sumdb.ParseGOSUMDB(db.VerifierKey(), []string{upURL})
				if err != nil {
					t.Fatal(err)
				}
				o.sumdb = &sumdb.Checker{DB: parsed}
			}
			g := startGofer(t, list, o)
			got := results(t, g.URL)
			for name, w := range want {
				if got[name] != w {
					t.Errorf("%s through gofer:\n%s\nstraight from the upstream:\n%s", name, got[name], w)
				}
			}
			// A fetch may still be cleaning up its staged files just after its answer.
			var running []string
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				resp, err := g.temporal.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
					Namespace: g.ns, Query: "ExecutionStatus = 'Running'"})
				if err != nil {
					t.Fatal(err)
				}
				running = running[:0]
				for _, e := range resp.GetExecutions() {
					running = append(running, e.GetExecution().GetWorkflowId())
				}
				if len(running) == 0 || time.Now().After(deadline) {
					break
				}
			}
			if len(running) != 0 {
				t.Errorf("fetch workflows still running 20s after the commands: %v", running)
			}
			// The request log of a probe's not found says which entry said what.
			named := false
			for _, e := range g.logs.FilterMessage("request").All() {
				msg, _ := e.ContextMap()["error"].(string)
				status, _ := e.ContextMap()["status"].(int64)
				if status == http.StatusNotFound && strings.Contains(msg, "GET "+upURL+"/") &&
					strings.Contains(msg, "; direct: ") == strings.HasSuffix(list, ",direct") {
					named = true
				}
			}
			if !named {
				t.Errorf("no request log line of a not found names the upstream entries (%s) and what they said", list)
			}
		})
	}
	return want
}

// findPackages runs the everyday commands that find a module from a package path by asking for
// each prefix of it, on everydayModules.
func findPackages(s *session) {
	get := s.module("example.com/client", nil)
	s.run(get, "get", "get", "lib.gofer.test/text/lang@v1.2.0", "lib.gofer.test/text/width@v1.2.0", "tools.gofer.test/x/cmd/greet@v0.20.0")
	s.files(get, "get")

	tidy := s.module("example.com/tidy", map[string]string{"main.go": "package main\n\nimport (\n\t\"lib.gofer.test/text/lang\"\n\t\"lib.gofer.test/text/width\"\n)\n\nfunc main() { println(lang.Tag(), width.Narrow()) }\n"})
	s.run(tidy, "tidy", "mod", "tidy")
	s.files(tidy, "tidy")

	elsewhere := s.t.TempDir()
	s.run(elsewhere, "install", "install", "tools.gofer.test/x/cmd/greet@v0.20.0")
	s.run(elsewhere, "install nested", "install", "tools.gofer.test/x/nested@v0.5.0")
	for _, bin := range []string{"greet", "nested"} {
		if _, err := os.Stat(filepath.Join(s.gobin, bin)); err != nil {
			s.t.Errorf("go install left no %s: %v", bin, err)
		}
	}
	s.run(elsewhere, "run", "run", "tools.gofer.test/x/cmd/greet@v0.20.0")
}

// The everyday commands that find a module from a package path by asking for each prefix of it:
// go get of packages, go install and go run pkg@version of a command and of a command in a
// nested module, go mod tidy of imports.
func TestEverydayCommands(t *testing.T) {
	up := fakeproxy.New()
	everydayModules(up)
	want := sameThroughGofer(t, up, nil, findPackages)
	if got := want["run"]; strings.TrimSpace(got) != "greet en" {
		t.Errorf("go run straight from the fake upstream printed %q", got)
	}
	if !strings.Contains(want["tidy go.mod"], "require lib.gofer.test/text v1.2.0") {
		t.Errorf("go mod tidy straight from the fake upstream wrote:\n%s", want["tidy go.mod"])
	}
}

// queryModules adds to up a library with a retracted version and a deprecated module.
func queryModules(up *fakeproxy.Proxy) {
	lib := func(version, extra string) map[string]string {
		return map[string]string{
			"go.mod":       "module lib.gofer.test/text\n\ngo 1.21\n" + extra,
			"lang/lang.go": "package lang\n\n// Version is this package's version.\nconst Version = \"" + version + "\"\n",
		}
	}
	up.Add("lib.gofer.test/text", "v1.2.0", lib("v1.2.0", ""))
	up.Add("lib.gofer.test/text", "v1.2.1", lib("v1.2.1", ""))
	up.Add("lib.gofer.test/text", "v1.3.0", lib("v1.3.0", "\nretract v1.2.1 // broken\n"))
	up.Add("tools.gofer.test/old", "v1.0.0", map[string]string{
		"go.mod": "// Deprecated: use tools.gofer.test/x instead.\nmodule tools.gofer.test/old\n\ngo 1.21\n",
		"old.go": "package old\n",
	})
	// A module without tags whose @latest is not found: the go command takes the newest
	// pseudo-version of its list as latest, as for golang.org/x/exp.
	up.Add("tools.gofer.test/untagged", "v0.0.0-20240102030405-abcdefabcdef", map[string]string{
		"go.mod":      "module tools.gofer.test/untagged\n\ngo 1.21\n",
		"untagged.go": "package untagged\n",
	})
	up.Fail("/tools.gofer.test/untagged/@latest", -1, http.StatusNotFound)
}

// queries runs the commands that ask for lists, @latest and queries, on queryModules.
func queries(s *session) {
	dir := s.module("example.com/queries", nil)
	s.run(dir, "versions", "list", "-m", "-versions", "lib.gofer.test/text")
	s.run(dir, "retracted", "list", "-m", "-retracted", "-versions", "lib.gofer.test/text")
	s.run(dir, "prefix", "get", "lib.gofer.test/text@v1.2")
	s.files(dir, "prefix")
	s.run(dir, "list -u", "list", "-m", "-u", "all")
	s.run(dir, "get -u", "get", "-u", "lib.gofer.test/text")
	s.files(dir, "get -u")
	s.run(dir, "get retracted", "get", "lib.gofer.test/text@v1.2.1")
	s.run(dir, "latest", "get", "lib.gofer.test/text@latest")
	s.run(dir, "branch", "get", "lib.gofer.test/text@master")
	s.run(dir, "deprecated", "get", "tools.gofer.test/old@latest")
	s.run(dir, "untagged", "get", "tools.gofer.test/untagged")
	fresh := s.module("example.com/commit", nil) // nothing required yet: the commit is asked for
	s.run(fresh, "commit", "get", "tools.gofer.test/untagged@abcdefabcdef")
	s.files(fresh, "commit")
	s.files(dir, "end")
}

// The commands that ask for lists, @latest and queries: go list -m -versions (with and without
// retracted versions), go get of a semver prefix, @latest, a branch and a commit, of a module
// without tags, go list -m -u all, go get
// -u, the warning on go get of a retracted version and the notice of a deprecated module.
func TestEverydayQueries(t *testing.T) {
	up := fakeproxy.New()
	queryModules(up)
	want := sameThroughGofer(t, up, nil, queries)
	for name, sub := range map[string]string{
		"versions":      "lib.gofer.test/text v1.2.0 v1.3.0",
		"retracted":     "lib.gofer.test/text v1.2.0 v1.2.1 v1.3.0",
		"prefix go.mod": "require lib.gofer.test/text v1.2.0",
		"list -u":       "lib.gofer.test/text v1.2.0 [v1.3.0]",
		"get -u go.mod": "require lib.gofer.test/text v1.3.0",
		"get retracted": "retracted by module author",
		"deprecated":    "is deprecated: use tools.gofer.test/x instead",
		"end go.mod":    "tools.gofer.test/untagged v0.0.0-20240102030405-abcdefabcdef",
		"commit go.mod": "tools.gofer.test/untagged v0.0.0-20240102030405-abcdefabcdef",
	} {
		if !strings.Contains(want[name], sub) {
			t.Errorf("%s straight from the fake upstream: %q, want it to say %q", name, want[name], sub)
		}
	}
	// Straight and through each gofer, the commit was resolved by the upstream.
	if n := up.Requests("/tools.gofer.test/untagged/@v/abcdefabcdef.info"); n < 3 {
		t.Errorf("the commit query reached the upstream %d times, want 3", n)
	}
}

// A toolchain download through GOTOOLCHAIN: the go command fetches golang.org/toolchain at
// v0.0.1-go<version>.<goos>-<goarch> through GOPROXY and runs its bin/go. In a go.work workspace
// whose modules need a module of the upstream, go list -m all and a build work too.
func TestEverydayToolchainAndWorkspace(t *testing.T) {
	up := fakeproxy.New()
	everydayModules(up)
	toolchain := "v0.0.1-go1.99.0." + runtime.GOOS + "-" + runtime.GOARCH
	up.Add("golang.org/toolchain", toolchain, map[string]string{
		"go.mod":          "module golang.org/toolchain\n",
		"pkg/tool/README": "the tools of the test toolchain\n",
		"lib/README":      "the libraries of the test toolchain\n",
		"bin/gofmt":       "#!/bin/sh\ncat\n",
		"bin/go":          "#!/bin/sh\necho go version go1.99.0 " + runtime.GOOS + "/" + runtime.GOARCH + " from the test toolchain\n",
	})
	db := fakesumdb.New("sum.gofer.test", up.GoSum)
	want := sameThroughGofer(t, up, db, func(s *session) {
		dir := s.t.TempDir()
		// The go command downloads toolchains only when a checksum database vouches for them.
		s.env = []string{"GOTOOLCHAIN=go1.99.0", "GOSUMDB=" + db.VerifierKey()}
		s.run(dir, "toolchain", "version")
		s.env = []string{"GOWORK=" + filepath.Join(dir, "go.work")}
		for _, m := range []string{"a", "b"} {
			if err := os.Mkdir(filepath.Join(dir, m), 0o755); err != nil {
				s.t.Fatal(err)
			}
			s.run(filepath.Join(dir, m), "init "+m, "mod", "init", "example.com/"+m)
		}
		if err := os.WriteFile(filepath.Join(dir, "a", "a.go"), []byte("package a\n\nimport \"lib.gofer.test/text/lang\"\n\nvar Tag = lang.Tag()\n"), 0o644); err != nil {
			s.t.Fatal(err)
		}
		s.run(dir, "work init", "work", "init", "./a", "./b")
		s.run(filepath.Join(dir, "a"), "get", "get", "lib.gofer.test/text@v1.2.0")
		s.run(dir, "work list", "list", "-m", "all")
		s.run(dir, "work build", "build", "example.com/a")
	})
	if !strings.Contains(want["toolchain"], "go1.99.0 "+runtime.GOOS+"/"+runtime.GOARCH+" from the test toolchain") {
		t.Errorf("GOTOOLCHAIN=go1.99.0 go version straight from the fake upstream printed %q", want["toolchain"])
	}
	if !strings.Contains(want["work list"], "lib.gofer.test/text v1.2.0") {
		t.Errorf("go list -m all in the workspace printed %q", want["work list"])
	}
}
