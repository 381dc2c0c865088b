package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	enums "go.temporal.io/api/enums/v1"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/activities"
	"github.com/goferproxy/gofer/egress"
	"github.com/goferproxy/gofer/internal/testserver"
	"github.com/goferproxy/gofer/rules"
	"github.com/goferproxy/gofer/sumdb"
	"github.com/goferproxy/gofer/upstream"
	"github.com/goferproxy/gofer/vcs"
	"github.com/goferproxy/gofer/workflows"
)

const (
	vcsModule   = "git.gofer.test/private/mod.git"
	vcsOther    = "git.gofer.test/private/other.git"
	vcsPassword = "git-s3cret-2718"
	vcsWrong    = "wrong-s3cret-3141"
)

// A private module in a git repository behind basic auth, with the upstream list "direct": the
// go command gets it through gofer with the same hashes as straight from git; a gofer without
// the credentials (or with wrong ones) answers a clear not found that holds no secret; and a
// git server that goes down in the middle of the fetch and comes back 20 seconds later only
// delays the client, who gets the module.
func TestVCS(t *testing.T) {
	git := startPrivateGit(t, vcsModule, vcsOther)
	fetcher, gitconfig, netrc := git.fetcher, git.gitconfig, git.netrc
	direct := &countingDirect{Source: fetcher}
	g := startGofer(t, "direct", options{direct: direct, fetchWait: 3 * time.Minute})

	m, err := download(t, g.URL, vcsModule+"@v1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	ref := directDownload(t, gitconfig, netrc, vcsModule+"@v1.0.0")
	if m.Sum != ref.Sum || m.GoModSum != ref.GoModSum || m.Sum == "" {
		t.Errorf("through gofer: %s %s; straight from git: %s %s", m.Sum, m.GoModSum, ref.Sum, ref.GoModSum)
	}
	rec, err := g.meta.Get(context.Background(), vcsModule, "v1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Source != "direct" || rec.ZipHash != ref.Sum {
		t.Errorf("stored record: source %q, zip hash %s; want direct, %s", rec.Source, rec.ZipHash, ref.Sum)
	}

	t.Run("Credentials", func(t *testing.T) {
		// One gofer that fetches vcsModule without credentials and vcsOther with a wrong password.
		wrongNetrc := filepath.Join(t.TempDir(), "netrc")
		if err := os.WriteFile(wrongNetrc, []byte("machine 127.0.0.1 login gofer password "+vcsWrong+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		none := &vcs.Fetcher{GitConfig: gitconfig, TempDir: t.TempDir(), Egress: fetcher.Egress}
		wrong := &vcs.Fetcher{GitConfig: gitconfig, NetrcFile: wrongNetrc, TempDir: t.TempDir(), Egress: fetcher.Egress}
		defer none.Close()
		defer wrong.Close()
		g := startGofer(t, "direct", options{direct: byModule{vcsModule: none, vcsOther: wrong}})
		for _, path := range []string{vcsModule, vcsOther} {
			_, err := download(t, g.URL, path+"@v1.0.0")
			if err == nil {
				t.Fatalf("%s: downloaded without the right credentials", path)
			}
			msg := err.Error()
			t.Logf("%s without the right credentials: %s", path, msg)
			if !strings.Contains(msg, "404 Not Found") && !strings.Contains(msg, "410 Gone") {
				t.Errorf("%s: want a 404 or 410 from gofer, got:\n%s", path, msg)
			}
			if !strings.Contains(msg, "server response:") || !strings.Contains(msg, "terminal prompts disabled") {
				t.Errorf("%s: want gofer's reason (git asked for credentials it does not have), got:\n%s", path, msg)
			}
			if strings.Contains(msg, vcsPassword) || strings.Contains(msg, vcsWrong) {
				t.Errorf("%s: the client's error holds a password:\n%s", path, msg)
			}
			// Nor does the workflow history, or gofer's log.
			iter := g.temporal.GetWorkflowHistory(context.Background(), workflows.FetchID(path, "v1.0.0", activities.FilesMod), "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			events := 0
			for iter.HasNext() {
				ev, err := iter.Next()
				if err != nil {
					t.Fatal(err)
				}
				events++
				if s := ev.String(); strings.Contains(s, vcsPassword) || strings.Contains(s, vcsWrong) {
					t.Errorf("%s: the workflow history holds a password: %s", path, s)
				}
			}
			if events == 0 {
				t.Errorf("%s: no workflow history", path)
			}
		}
		for _, e := range g.logs.All() {
			if b, _ := json.Marshal(e.ContextMap()); bytes.Contains(b, []byte(vcsWrong)) || strings.Contains(e.Message, vcsWrong) {
				t.Errorf("gofer's log holds the password: %s %s", e.Message, b)
			}
		}
	})

	t.Run("Outage", func(t *testing.T) {
		// The git server goes down when git asks it for the objects of v1.1.0.
		stopped := make(chan time.Time, 1)
		var once sync.Once
		git.OnRequest(func(r *http.Request) {
			if r.Method != http.MethodPost {
				return
			}
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			if bytes.Contains(body, []byte("command=fetch")) {
				once.Do(func() {
					git.Stop()
					stopped <- time.Now()
				})
			}
		})
		defer git.OnRequest(nil)
		failures := direct.unavailable.Load()

		type result struct {
			m   moduleJSON
			err error
		}
		done := make(chan result, 1)
		go func() {
			cmd := goCommand(g.URL, t.TempDir(), "mod", "download", "-json", vcsModule+"@v1.1.0")
			cmd.Dir = t.TempDir()
			out, err := cmd.CombinedOutput()
			var m moduleJSON
			if jerr := json.Unmarshal(out, &m); err == nil && (jerr != nil || m.Error != "") {
				err = errors.New(string(out))
			} else if err != nil {
				err = errors.New(err.Error() + "\n" + string(out))
			}
			done <- result{m, err}
		}()
		var down time.Time
		select {
		case down = <-stopped:
		case r := <-done:
			t.Fatalf("the fetch ended before the git server went down: %+v", r)
		case <-time.After(time.Minute):
			t.Fatal("the fetch never reached the git server")
		}
		time.Sleep(time.Until(down.Add(20 * time.Second)))
		if direct.unavailable.Load() == failures {
			t.Error("no fetch failed while the git server was down")
		}
		if err := git.Start(); err != nil {
			t.Fatal(err)
		}
		t.Logf("git server down for %s; %d failed attempts meanwhile", time.Since(down).Round(time.Second), direct.unavailable.Load()-failures)
		select {
		case r := <-done:
			if r.err != nil {
				t.Fatalf("the client got no module: %v", r.err)
			}
			if ref := directDownload(t, gitconfig, netrc, vcsModule+"@v1.1.0"); r.m.Sum != ref.Sum {
				t.Errorf("through gofer: %s; straight from git: %s", r.m.Sum, ref.Sum)
			}
			t.Logf("the client got the module %s after the restart", time.Since(down.Add(20*time.Second)).Round(time.Second))
		case <-time.After(3 * time.Minute):
			t.Fatal("the client still waits 3 minutes after the git server came back")
		}
	})
}

// directDownload is `go mod download -json pathVersion` straight from git (GOPROXY=direct), with
// the git config and netrc given.
func directDownload(t *testing.T, gitconfig, netrc, pathVersion string) moduleJSON {
	t.Helper()
	home := t.TempDir()
	if err := os.Symlink(netrc, filepath.Join(home, ".netrc")); err != nil {
		t.Fatal(err)
	}
	m, err := download(t, "direct", pathVersion, "HOME="+home, "NETRC="+netrc, "GOPRIVATE=git.gofer.test",
		"GIT_CONFIG_GLOBAL="+gitconfig, "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// privateGit is a git server that holds modules under git.gofer.test behind basic auth, with
// what a client needs to reach it with the credentials.
type privateGit struct {
	*testserver.GitServer
	fetcher          *vcs.Fetcher // with the credentials, and allowed to connect to the server
	gitconfig, netrc string
}

// startPrivateGit starts a privateGit holding paths (in git.gofer.test/<repository>.git form),
// each tagged v1.0.0 and v1.1.0, and stops it when the test ends.
func startPrivateGit(t *testing.T, paths ...string) *privateGit {
	t.Helper()
	git, err := testserver.Git("gofer", vcsPassword)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(git.Close)
	for _, path := range paths {
		if _, err := git.Module(strings.TrimPrefix(path, "git.gofer.test/"), path, "v1.0.0", "v1.1.0"); err != nil {
			t.Fatal(err)
		}
	}
	p := &privateGit{GitServer: git}
	if p.gitconfig, p.netrc, err = git.ClientConfig(t.TempDir(), "git.gofer.test"); err != nil {
		t.Fatal(err)
	}
	p.fetcher = &vcs.Fetcher{NetrcFile: p.netrc, GitConfig: p.gitconfig, TempDir: t.TempDir(), Egress: (*egress.Policy)(nil).With(git.Host)}
	t.Cleanup(func() { p.fetcher.Close() })
	return p
}

// countingDirect counts the unavailable failures of a version control source.
type countingDirect struct {
	upstream.Source
	unavailable atomic.Int64
}

func (d *countingDirect) count(err error) {
	if err != nil && gofer.Kind(err) == gofer.ErrUnavailable {
		d.unavailable.Add(1)
	}
}

func (d *countingDirect) Info(ctx context.Context, path, query string) ([]byte, string, error) {
	b, s, err := d.Source.Info(ctx, path, query)
	d.count(err)
	return b, s, err
}

func (d *countingDirect) Mod(ctx context.Context, path, version string) ([]byte, string, error) {
	b, s, err := d.Source.Mod(ctx, path, version)
	d.count(err)
	return b, s, err
}

func (d *countingDirect) Zip(ctx context.Context, path, version string) (io.ReadCloser, string, error) {
	r, s, err := d.Source.Zip(ctx, path, version)
	d.count(err)
	return r, s, err
}

// byModule sends each module to a Direct of its own.
type byModule map[string]upstream.Source

func (b byModule) get(path string) (upstream.Source, error) {
	if d, ok := b[path]; ok {
		return d, nil
	}
	return nil, gofer.Errorf(gofer.ErrNotFound, "%s: no Direct for it in this test", path)
}

func (b byModule) List(ctx context.Context, path string) ([]byte, string, error) {
	d, err := b.get(path)
	if err != nil {
		return nil, "", err
	}
	return d.List(ctx, path)
}

func (b byModule) Latest(ctx context.Context, path string) ([]byte, string, error) {
	d, err := b.get(path)
	if err != nil {
		return nil, "", err
	}
	return d.Latest(ctx, path)
}

func (b byModule) Info(ctx context.Context, path, query string) ([]byte, string, error) {
	d, err := b.get(path)
	if err != nil {
		return nil, "", err
	}
	return d.Info(ctx, path, query)
}

func (b byModule) Mod(ctx context.Context, path, version string) ([]byte, string, error) {
	d, err := b.get(path)
	if err != nil {
		return nil, "", err
	}
	return d.Mod(ctx, path, version)
}

func (b byModule) Zip(ctx context.Context, path, version string) (io.ReadCloser, string, error) {
	d, err := b.get(path)
	if err != nil {
		return nil, "", err
	}
	return d.Zip(ctx, path, version)
}

// A module the rules mark private, with a proxy as the upstream: it is fetched from version
// control, its list and @latest come from version control too, and neither the upstream proxy
// nor the checksum database ever sees its name.
func TestPrivateRule(t *testing.T) {
	git := startPrivateGit(t, vcsModule)
	fetcher := git.fetcher
	rulesFile := filepath.Join(t.TempDir(), "rules")
	if err := os.WriteFile(rulesFile, []byte("git.gofer.test private\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rs, err := rules.NewLive(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	up, db, upURL, parsed := sumdbUpstream(t)
	// The checker is not told which modules are private: gofer tells it the rules' own.
	g := startGofer(t, upURL, options{direct: fetcher, rules: rs, sumdb: &sumdb.Checker{DB: parsed}, fetchWait: 3 * time.Minute})

	client := []string{"GOSUMDB=" + db.VerifierKey(), "GONOSUMDB=git.gofer.test"}
	if _, err := download(t, g.URL, vcsModule+"@v1.0.0", client...); err != nil {
		t.Fatal(err)
	}
	if m, err := download(t, g.URL, vcsModule+"@latest", client...); err != nil || m.Version != "v1.1.0" {
		t.Errorf("@latest of a private module: %+v %v, want v1.1.0", m, err)
	}
	if code, _, body := testserver.Get(t, "GET", g.URL+"/"+vcsModule+"/@v/list"); code != 200 || string(body) != "v1.0.0\nv1.1.0\n" {
		t.Errorf("list of a private module: %d %q", code, body)
	}
	if code, _, _ := testserver.Get(t, "GET", g.URL+"/sumdb/"+db.Name()+"/lookup/"+vcsModule+"@v1.0.0"); code != 404 {
		t.Errorf("a checksum-database lookup of a private module through gofer: %d, want 404", code)
	}
	rec, err := g.meta.Get(context.Background(), vcsModule, "v1.0.0")
	if err != nil || rec.VerifiedBy != "none (private)" || rec.Source != "direct" {
		t.Errorf("record: %+v %v", rec, err)
	}
	for _, p := range up.Log() {
		if strings.Contains(p, "gofer.test") && !strings.HasPrefix(p, "/sumdb/") {
			t.Errorf("the upstream proxy was asked %q", p)
		}
	}
	for _, p := range db.Requests() {
		if strings.Contains(p, "git.gofer.test") {
			t.Errorf("the checksum database was asked %q", p)
		}
	}
}
