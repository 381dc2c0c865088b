package vcs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/egress"
	"github.com/goferproxy/gofer/internal/kindtest"
	"github.com/goferproxy/gofer/internal/testserver"
	"github.com/goferproxy/gofer/upstream"
	"github.com/goferproxy/gofer/vcs"
)

const (
	modPath  = "git.gofer.test/private/mod.git"
	password = "s3cret-pw-4711"
)

// The Fetcher is what the "direct" entry of a Chain needs.
var _ upstream.Source = (*vcs.Fetcher)(nil)

// env is one git server holding modPath (v1.0.0, v1.1.0, and a branch dev one commit past
// v1.1.0), and the git config and netrc that reach it as https://git.gofer.test/.
type env struct {
	git       *testserver.GitServer
	gitconfig string
	netrc     string
	devHash   string         // the commit at the tip of dev
	allow     *egress.Policy // allows the git server, on loopback
}

func setup(t *testing.T) *env {
	t.Helper()
	git, err := testserver.Git("gofer", password)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(git.Close)
	repo, err := git.Module("private/mod.git", modPath, "v1.0.0", "v1.1.0")
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Branch("dev"); err != nil {
		t.Fatal(err)
	}
	dev, err := repo.Commit(map[string]string{"dev.go": "package mod\n\n// Dev is only on the branch dev.\nconst Dev = true\n"},
		time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	gitconfig, netrc, err := git.ClientConfig(t.TempDir(), "git.gofer.test")
	if err != nil {
		t.Fatal(err)
	}
	return &env{git: git, gitconfig: gitconfig, netrc: netrc, devHash: dev, allow: (*egress.Policy)(nil).With(git.Host)}
}

// fetcher is a Fetcher with e's credentials, downloading under a directory that the test
// checks is empty at its end.
func (e *env) fetcher(t *testing.T) *vcs.Fetcher {
	t.Helper()
	tmp := t.TempDir()
	f := &vcs.Fetcher{Egress: e.allow, NetrcFile: e.netrc, GitConfig: e.gitconfig, TempDir: tmp}
	t.Cleanup(func() {
		f.Close()
		if left, _ := os.ReadDir(tmp); len(left) != 0 {
			t.Errorf("%d downloads left on disk after Close", len(left))
		}
	})
	return f
}

// goDownload is `go mod download -json path@version` with GOPROXY=direct and e's credentials,
// as a developer would run it: the reference the Fetcher's answers are checked against.
func (e *env) goDownload(t *testing.T, pathVersion string) (m struct{ Version, Sum, GoModSum, Zip, Info string }) {
	t.Helper()
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(e.netrc, filepath.Join(home, ".netrc")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "mod", "download", "-json", pathVersion)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "GOPROXY=direct", "GOSUMDB=off",
		"GOPRIVATE=git.gofer.test", "GOFLAGS=-modcacherw", "GOMODCACHE=" + filepath.Join(dir, "modcache"),
		"GOPATH=" + filepath.Join(dir, "gopath"), "GOTOOLCHAIN=local", "GIT_TERMINAL_PROMPT=0",
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=" + e.gitconfig}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v\n%s", pathVersion, err, out)
	}
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// Info, Mod and Zip of a tag are the go command's own files, from one download: the zip is a
// valid module zip whose h1: hash is the one go mod download reports.
func TestTag(t *testing.T) {
	e := setup(t)
	f := e.fetcher(t)
	ctx := context.Background()
	info, source, err := f.Info(ctx, modPath, "v1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if source != "direct" {
		t.Errorf("source = %q, want direct", source)
	}
	var i struct {
		Version string
		Time    time.Time
		Origin  struct{ VCS, URL, Ref string }
	}
	if err := json.Unmarshal(info, &i); err != nil {
		t.Fatalf("info %s: %v", info, err)
	}
	if want := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC); i.Version != "v1.0.0" || !i.Time.Equal(want) {
		t.Errorf("info = %s, want v1.0.0 at %s", info, want)
	}
	if i.Origin.VCS != "git" || i.Origin.Ref != "refs/tags/v1.0.0" || strings.Contains(i.Origin.URL, "127.0.0.1") {
		t.Errorf("origin = %+v, want git, the tag, and the module's own URL", i.Origin)
	}
	requests := e.git.Requests()

	mod, _, err := f.Mod(ctx, modPath, "v1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if want := "module " + modPath + "\n\ngo 1.21\n"; string(mod) != want {
		t.Errorf("mod = %q, want %q", mod, want)
	}
	zipFile := filepath.Join(t.TempDir(), "v1.0.0.zip")
	zip, _, err := f.Zip(ctx, modPath, "v1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(zip)
	zip.Close()
	if err != nil {
		t.Fatal(err)
	}
	if n := e.git.Requests(); n != requests {
		t.Errorf("Mod and Zip sent %d requests to the git server, want 0: one download serves all three", n-requests)
	}
	if err := os.WriteFile(zipFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := modzip.CheckZip(module.Version{Path: modPath, Version: "v1.0.0"}, zipFile); err != nil {
		t.Errorf("CheckZip: %v", err)
	}
	h1, err := dirhash.HashZip(zipFile, dirhash.Hash1)
	if err != nil {
		t.Fatal(err)
	}
	ref := e.goDownload(t, modPath+"@v1.0.0")
	if h1 != ref.Sum {
		t.Errorf("zip hash %s, go mod download reports %s", h1, ref.Sum)
	}
	refInfo, err := os.ReadFile(ref.Info)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(info, refInfo) {
		t.Errorf("info = %s, go mod download wrote %s", info, refInfo)
	}
}

func TestListLatest(t *testing.T) {
	e := setup(t)
	f := e.fetcher(t)
	ctx := context.Background()
	list, source, err := f.List(ctx, modPath)
	if err != nil || source != "direct" {
		t.Fatalf("List: %q, %v", source, err)
	}
	if want := "v1.0.0\nv1.1.0\n"; string(list) != want {
		t.Errorf("List = %q, want %q", list, want)
	}
	latest, _, err := f.Latest(ctx, modPath)
	if err != nil {
		t.Fatal(err)
	}
	var l struct {
		Version string
		Time    time.Time
	}
	if err := json.Unmarshal(latest, &l); err != nil || l.Version != "v1.1.0" || !l.Time.Equal(time.Date(2024, 1, 2, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("Latest = %s (%v), want v1.1.0 of 2024-01-02", latest, err)
	}
}

// A branch resolves to the pseudo-version of its tip, and that version's files are then served
// from the same download.
func TestBranch(t *testing.T) {
	e := setup(t)
	f := e.fetcher(t)
	ctx := context.Background()
	info, _, err := f.Info(ctx, modPath, "dev")
	if err != nil {
		t.Fatal(err)
	}
	var i struct{ Version string }
	if err := json.Unmarshal(info, &i); err != nil {
		t.Fatal(err)
	}
	if want := "v1.1.1-0.20240201000000-" + e.devHash[:12]; i.Version != want {
		t.Fatalf("Info(dev).Version = %q, want %q", i.Version, want)
	}
	requests := e.git.Requests()
	zip, _, err := f.Zip(ctx, modPath, i.Version)
	if err != nil {
		t.Fatal(err)
	}
	zip.Close()
	if n := e.git.Requests(); n != requests {
		t.Errorf("Zip of the resolved version sent %d requests, want 0", n-requests)
	}
	if ref := e.goDownload(t, modPath+"@dev"); ref.Version != i.Version {
		t.Errorf("go mod download @dev resolves to %s, the Fetcher to %s", ref.Version, i.Version)
	}
}

// Concurrent requests for one version share one download.
func TestOneDownload(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	before := e.git.Requests()
	if _, _, err := e.fetcher(t).Info(ctx, modPath, "v1.0.0"); err != nil {
		t.Fatal(err)
	}
	one := e.git.Requests() - before

	f := e.fetcher(t)
	before = e.git.Requests()
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if _, _, err := f.Mod(ctx, modPath, "v1.0.0"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := e.git.Requests() - before; n != one {
		t.Errorf("10 concurrent Mod calls sent %d requests, one download sends %d", n, one)
	}
}

// A download is removed once its keep window is over, or when the last reader of its zip
// closes after that.
func TestCleanup(t *testing.T) {
	e := setup(t)
	tmp := t.TempDir()
	f := &vcs.Fetcher{Egress: e.allow, NetrcFile: e.netrc, GitConfig: e.gitconfig, TempDir: tmp, Keep: 200 * time.Millisecond}
	defer f.Close()
	ctx := context.Background()
	count := func() int {
		entries, err := os.ReadDir(tmp)
		if err != nil {
			t.Fatal(err)
		}
		return len(entries)
	}
	zip, _, err := f.Zip(ctx, modPath, "v1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Mod(ctx, modPath, "v1.1.0"); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 2 {
		t.Fatalf("%d downloads on disk, want 2", n)
	}
	time.Sleep(time.Second)
	if n := count(); n != 1 {
		t.Fatalf("after the keep window, %d downloads on disk, want 1 (the zip being read)", n)
	}
	if _, err := io.ReadAll(zip); err != nil {
		t.Fatal(err)
	}
	zip.Close()
	if n := count(); n != 0 {
		t.Fatalf("after the zip is closed, %d downloads on disk, want 0", n)
	}
	// Close removes what is kept at once.
	f.Keep = time.Hour
	if _, _, err := f.Info(ctx, modPath, "v1.0.0"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if n := count(); n != 0 {
		t.Fatalf("after Close, %d downloads on disk, want 0", n)
	}
	// List and Latest keep nothing; failures keep nothing.
	f.List(ctx, modPath)
	f.Latest(ctx, modPath)
	f.Info(ctx, modPath, "v9.9.9")
	if n := count(); n != 0 {
		t.Fatalf("after List, Latest and a failure, %d directories on disk, want 0", n)
	}
}

// What does not exist is not found, with the go command's reason.
func TestNotFound(t *testing.T) {
	e := setup(t)
	f := e.fetcher(t)
	ctx := context.Background()
	for i, tc := range []struct {
		call func() error
		want string
	}{
		0: {func() error { _, _, err := f.Info(ctx, modPath, "v9.9.9"); return err }, "unknown revision v9.9.9"},
		1: {func() error { _, _, err := f.Zip(ctx, modPath, "v1.9.9"); return err }, "unknown revision v1.9.9"},
		2: {func() error { _, _, err := f.Info(ctx, modPath, "no-such-branch"); return err }, "unknown revision no-such-branch"},
		3: {func() error { _, _, err := f.List(ctx, "git.gofer.test/private/other.git"); return err }, "not found"},
		4: {func() error { _, _, err := f.Mod(ctx, modPath, "v1.0"); return err }, "not a canonical version"},
		5: {func() error { _, _, err := f.Info(ctx, "-x/y", "v1.0.0"); return err }, "malformed module path"},
		6: {func() error { _, _, err := f.Info(ctx, modPath, "a b"); return err }, "malformed version"},
	} {
		err := tc.call()
		if kindtest.Name(err) != "not found" || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%d: err = %v (%s), want not found mentioning %q", i, err, kindtest.Name(err), tc.want)
		}
		if err != nil && strings.ContainsAny(err.Error(), "\n") {
			t.Errorf("%d: the message has more than one line: %q", i, err)
		}
	}
}

// Without credentials, or with a wrong password, a fetch is not found (retrying will not help)
// with a message that says why and holds no secret; a netrc in the host's HOME is not read.
func TestCredentials(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	dir := t.TempDir()
	wrongNetrc := filepath.Join(dir, "netrc")
	const wrong = "wrong-pw-0815"
	if err := os.WriteFile(wrongNetrc, []byte("machine 127.0.0.1 login gofer password "+wrong+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A git config that holds a wrong password in a URL, and a token in a header.
	const token = "tok-9a8b7c6d5e4f"
	wrongConfig := filepath.Join(dir, "gitconfig")
	conf := "[url \"http://gofer:" + wrong + "@" + e.git.Host + "/\"]\n\tinsteadOf = https://git.gofer.test/\n" +
		"[http]\n\textraHeader = X-Token: " + token + "\n"
	if err := os.WriteFile(wrongConfig, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	// The host's own HOME holds the right password: it must not be used.
	home := t.TempDir()
	if err := os.WriteFile(filepath.Join(home, ".netrc"), []byte("machine 127.0.0.1 login gofer password "+password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", home)
	t.Setenv("NETRC", filepath.Join(home, ".netrc"))
	t.Setenv("GIT_CONFIG_GLOBAL", e.gitconfig)

	for i, f := range []*vcs.Fetcher{
		0: {Egress: e.allow, GitConfig: e.gitconfig, TempDir: t.TempDir()},
		1: {Egress: e.allow, GitConfig: e.gitconfig, NetrcFile: wrongNetrc, TempDir: t.TempDir()},
		2: {Egress: e.allow, GitConfig: wrongConfig, TempDir: t.TempDir()},
	} {
		for j, call := range []func() error{
			func() error { _, _, err := f.Info(ctx, modPath, "v1.0.0"); return err },
			func() error { _, _, err := f.List(ctx, modPath); return err },
			func() error { _, _, err := f.Latest(ctx, modPath); return err },
		} {
			err := call()
			if kindtest.Name(err) != "not found" {
				t.Errorf("%d.%d: err = %v (%s), want not found", i, j, err, kindtest.Name(err))
				continue
			}
			msg := err.Error()
			t.Logf("%d.%d: %s", i, j, msg)
			for _, secret := range []string{password, wrong, token} {
				if strings.Contains(msg, secret) {
					t.Errorf("%d.%d: the error holds the secret %q: %s", i, j, secret, msg)
				}
			}
			if !strings.Contains(msg, "terminal prompts disabled") && !strings.Contains(msg, "Authentication failed") {
				t.Errorf("%d.%d: the error does not say the credentials failed: %s", i, j, msg)
			}
			if !strings.Contains(msg, modPath) {
				t.Errorf("%d.%d: the error does not name the module: %s", i, j, msg)
			}
		}
		f.Close()
	}
}

// A credential helper in the git config works as well as a netrc.
func TestCredentialHelper(t *testing.T) {
	e := setup(t)
	dir := t.TempDir()
	store := filepath.Join(dir, "credentials")
	if err := os.WriteFile(store, []byte("http://gofer:"+password+"@"+e.git.Host+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile(e.gitconfig)
	if err != nil {
		t.Fatal(err)
	}
	gitconfig := filepath.Join(dir, "gitconfig")
	conf = append(conf, "[credential]\n\thelper = store --file="+store+"\n"...)
	if err := os.WriteFile(gitconfig, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	f := &vcs.Fetcher{Egress: e.allow, GitConfig: gitconfig, TempDir: t.TempDir()}
	defer f.Close()
	if _, _, err := f.Info(context.Background(), modPath, "v1.1.0"); err != nil {
		t.Fatal(err)
	}
}

// A git server that is down, or that goes down in the middle of a fetch, is unavailable: worth
// a retry, which succeeds once it is back.
func TestOutage(t *testing.T) {
	e := setup(t)
	f := e.fetcher(t)
	ctx := context.Background()
	e.git.Stop()
	for j, call := range []func() error{
		func() error { _, _, err := f.Info(ctx, modPath, "v1.0.0"); return err },
		func() error { _, _, err := f.Zip(ctx, modPath, "v1.0.0"); return err },
		func() error { _, _, err := f.List(ctx, modPath); return err },
		func() error { _, _, err := f.Latest(ctx, modPath); return err },
	} {
		err := call()
		t.Logf("%d: %v", j, err)
		if kindtest.Name(err) != "unavailable" {
			t.Errorf("%d: server down: err = %v (%s), want unavailable", j, err, kindtest.Name(err))
		} else if strings.Contains(err.Error(), password) {
			t.Errorf("%d: the error holds the password: %v", j, err)
		}
	}
	if err := e.git.Start(); err != nil {
		t.Fatal(err)
	}
	// Cut off when git asks for the objects (after the refs were listed).
	var once sync.Once
	e.git.OnRequest(func(r *http.Request) {
		if r.Method != http.MethodPost {
			return
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if bytes.Contains(body, []byte("command=fetch")) {
			once.Do(e.git.Stop)
		}
	})
	_, _, err := f.Info(ctx, modPath, "v1.0.0")
	t.Logf("cut off: %v", err)
	if kindtest.Name(err) != "unavailable" {
		t.Errorf("server stopped in the middle of a fetch: err = %v (%s), want unavailable", err, kindtest.Name(err))
	}
	e.git.OnRequest(nil)
	if err := e.git.Start(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Info(ctx, modPath, "v1.0.0"); err != nil {
		t.Errorf("after the restart: %v", err)
	}
}

// Nothing of gofer's own go environment reaches the go command.
func TestEnvironment(t *testing.T) {
	e := setup(t)
	t.Setenv("GOPROXY", "http://127.0.0.1:1")
	t.Setenv("GOFLAGS", "-mod=vendor")
	t.Setenv("GONOSUMDB", "")
	t.Setenv("GOSUMDB", "sum.golang.org+bogus")
	t.Setenv("GIT_CONFIG_PARAMETERS", "'url.http://127.0.0.1:1/.insteadof'='https://git.gofer.test/'")
	f := e.fetcher(t)
	if _, _, err := f.Info(context.Background(), modPath, "v1.0.0"); err != nil {
		t.Fatal(err)
	}
	// A context that ends stops the go command.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := f.Info(ctx, modPath, "v1.1.0"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v, want context.Canceled", err)
	}
}

// A git server that hangs costs a fetch its Timeout, not more: the go command and its git
// children are killed, and the fetch is unavailable.
func TestTimeout(t *testing.T) {
	e := setup(t)
	hang := make(chan struct{})
	defer close(hang)
	e.git.OnRequest(func(*http.Request) { <-hang })
	tmp := t.TempDir()
	f := &vcs.Fetcher{Egress: e.allow, NetrcFile: e.netrc, GitConfig: e.gitconfig, TempDir: tmp, Timeout: 2 * time.Second}
	start := time.Now()
	_, _, err := f.Info(context.Background(), modPath, "v1.0.0")
	if kindtest.Name(err) != "unavailable" || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("err = %v (%s), want unavailable, timed out", err, kindtest.Name(err))
	}
	if d := time.Since(start); d > 6*time.Second {
		t.Errorf("a 2s timeout took %s: the go command's children were not killed", d)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("%d directories left after a timeout", len(left))
	}
}

// Relative names of the netrc and git config name files in gofer's working directory.
func TestRelativePaths(t *testing.T) {
	e := setup(t)
	t.Chdir(filepath.Dir(e.netrc))
	f := &vcs.Fetcher{Egress: e.allow, NetrcFile: filepath.Base(e.netrc), GitConfig: filepath.Base(e.gitconfig), TempDir: t.TempDir()}
	defer f.Close()
	if _, _, err := f.Info(context.Background(), modPath, "v1.0.0"); err != nil {
		t.Fatal(err)
	}
}

// A module path an anonymous client names makes no connection to an address the egress policy
// refuses: not by an IP address as its host (which the go command would dial without its proxy),
// not by a name that leads to one, and not over ssh, which no proxy could hold; each is not
// found at once. With GitSSHCommand set, ssh is the operator's to allow, and it is tried.
func TestEgress(t *testing.T) {
	trap, err := testserver.Listen("127.0.0.3:443", "127.0.0.3:80", "127.0.0.3:22", "127.0.0.3:9418")
	if err != nil {
		t.Fatal(err)
	}
	defer trap.Close()
	// evil.gofer.test stands for a name whose repository is on 127.0.0.3, by every scheme.
	gitconfig := filepath.Join(t.TempDir(), "gitconfig")
	var conf strings.Builder
	for _, scheme := range []string{"https", "http", "ssh", "git+ssh", "git"} {
		fmt.Fprintf(&conf, "[url \"%s://127.0.0.3/\"]\n\tinsteadOf = %s://evil.gofer.test/\n", scheme, scheme)
	}
	if err := os.WriteFile(gitconfig, []byte(conf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	f := &vcs.Fetcher{GitConfig: gitconfig, TempDir: t.TempDir()}
	defer f.Close()
	for _, path := range []string{"127.0.0.3/x", "127.0.0.3/x.git", "127.0.0.3/x/y", "evil.gofer.test/x.git", "evil.gofer.test/x.git/sub"} {
		for name, call := range map[string]func() error{
			"Info":   func() error { _, _, err := f.Info(ctx, path, "v1.0.0"); return err },
			"List":   func() error { _, _, err := f.List(ctx, path); return err },
			"Latest": func() error { _, _, err := f.Latest(ctx, path); return err },
		} {
			err := call()
			if !errors.Is(err, gofer.ErrNotFound) {
				t.Errorf("%s %s: %v, want not found", name, path, err)
			}
		}
	}
	if seen := trap.Seen(); len(seen) != 0 {
		t.Errorf("connections made for module paths a client named: %v", seen)
	}

	// The trap does see ssh when it is allowed: the assertion above could fail.
	ssh := &vcs.Fetcher{GitConfig: gitconfig, TempDir: t.TempDir(), GitSSHCommand: "ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o ConnectTimeout=5"}
	defer ssh.Close()
	if _, _, err := ssh.Info(ctx, "evil.gofer.test/x.git", "v1.0.0"); err == nil {
		t.Fatal("fetched from a trap")
	}
	if seen := trap.Seen(); !slices.ContainsFunc(seen, func(s string) bool { return strings.HasPrefix(s, "127.0.0.3:22 ") }) {
		t.Errorf("with GitSSHCommand set, ssh did not reach the trap (connections: %v)", seen)
	}
}

// The go command runs with telemetry off (its uploader would write into the download's HOME
// after the directory is gone), through the run's egress proxy, and with ssh refused to git.
func TestChildEnvironment(t *testing.T) {
	e := setup(t)
	dir := t.TempDir()
	envFile := filepath.Join(dir, "env")
	script := filepath.Join(dir, "go")
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(script, []byte("#!/bin/sh\nenv > "+envFile+"\nexec "+goCmd+" \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	f := e.fetcher(t)
	f.GoCommand = script
	if _, _, err := f.Info(context.Background(), modPath, "v1.0.0"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	env := strings.Split(string(data), "\n")
	for _, want := range []string{"GOTELEMETRY=off", "GIT_CONFIG_KEY_1=protocol.ssh.allow", "GIT_CONFIG_VALUE_1=never", "NO_PROXY="} {
		if !slices.Contains(env, want) {
			t.Errorf("the go command's environment lacks %s", want)
		}
	}
	if !slices.ContainsFunc(env, func(s string) bool {
		return strings.HasPrefix(s, "HTTPS_PROXY=http://gofer:") && strings.Contains(s, "@127.0.0.1:")
	}) {
		t.Error("the go command's HTTPS_PROXY is not the run's egress proxy")
	}
}

// The go command runs where it can reach nothing but its egress proxy: not even the host's
// loopback services, which its own HTTP client would connect to without a proxy if a go-get
// page named them. (Here a wrapper of the go command tries a trap on 127.0.0.1 itself, then
// fetches through the proxy as usual.) This needs Linux network namespaces (CAP_SYS_ADMIN).
func TestGoCommandCannotReachLoopback(t *testing.T) {
	if err := vcs.CheckIsolation(); err != nil {
		t.Fatalf("the go command cannot be isolated here (it needs Linux network namespaces, CAP_SYS_ADMIN): %v", err)
	}
	e := setup(t)
	trap, err := testserver.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer trap.Close()
	_, port, _ := strings.Cut(trap.Addrs()[0], ":")
	dir := t.TempDir()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "go")
	wrapper := "#!/bin/bash\n(exec 3<>/dev/tcp/127.0.0.1/" + port + ") 2>/dev/null\nexec " + goCmd + " \"$@\"\n"
	if err := os.WriteFile(script, []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	f := e.fetcher(t)
	f.GoCommand = script
	if _, _, err := f.Info(context.Background(), modPath, "v1.0.0"); err != nil {
		t.Fatalf("fetching through the proxy from inside the namespace: %v", err)
	}
	if seen := trap.Seen(); len(seen) != 0 {
		t.Errorf("the go command reached the host's loopback (%v): it does not run in a network namespace of its own; that needs Linux and CAP_SYS_ADMIN", seen)
	}
}
