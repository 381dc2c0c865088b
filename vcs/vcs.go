// Package vcs fetches module versions straight from version control, for the "direct" entry of
// gofer's upstream list and for private modules, by running the go command itself with
// GOPROXY=direct in a module cache of its own per download. It must never let gofer's own
// environment reach the go command (credentials come only from the Fetcher's fields), never
// leave a download on disk past its short keep window, and never put a credential into an error.
package vcs

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode"

	"golang.org/x/mod/module"
	"golang.org/x/sync/singleflight"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/egress"
)

// Source is the source every answer of a Fetcher names: the go command's word for fetching
// from version control.
const Source = "direct"

// Fetcher fetches from version control with the go command. Its zero value fetches anonymously
// (public repositories only) with the go command on PATH. Its methods are safe for concurrent
// use; call Close when done with it to remove what it keeps at once (otherwise each download is
// removed when its keep window ends).
//
// The go command and git run with an environment built from scratch: PATH from gofer's
// environment, HOME set to an empty directory of the download's own (so no ~/.netrc,
// ~/.gitconfig, ~/.git-credentials or go env file of the host is read by accident), and the
// credentials of the fields below, which are the only ones used. OpenSSH finds its ~/.ssh from
// the password database, not HOME: say which key and known_hosts file to use in GitSSHCommand.
// The go command runs with GOPROXY=direct, GOSUMDB=off and GOPRIVATE=* (gofer's own checksum
// policy applies later, and no module is named to a checksum database here), GOVCS=*:git,
// GOTOOLCHAIN=local, GIT_TERMINAL_PROMPT=0, and a module cache, GOPATH and TMPDIR of the
// download's own, removed after it.
//
// The go command and git reach the network only through an HTTP proxy of the run's own that
// applies Egress (HTTPS_PROXY, HTTP_PROXY): a connection it refuses makes the fetch not found,
// at once. Where Linux allows it (CAP_SYS_ADMIN) and ssh is not used, they run in a network
// namespace that holds nothing but that proxy (see start and CheckIsolation), since the go
// command connects to loopback addresses without its proxy. git may not use ssh unless
// GitSSHCommand is set, nor git:// at all (protocol.<name>.allow=never); and a module path
// whose host is an IP address Egress refuses is not looked up.
type Fetcher struct {
	// GoCommand is the go command to run; empty means "go", looked up on PATH.
	GoCommand string
	// NetrcFile is a netrc file holding the credentials of the VCS hosts (and of the servers of
	// ?go-get=1 lookups); it is passed as NETRC to the go command and as HOME/.netrc to git.
	// Empty means no netrc.
	NetrcFile string
	// GitConfig is the git configuration every git command reads (GIT_CONFIG_GLOBAL): credential
	// helpers, url.<base>.insteadOf rewrites, http.extraHeader. The system configuration is
	// never read (GIT_CONFIG_NOSYSTEM=1). Empty means none.
	GitConfig string
	// GitSSHCommand is GIT_SSH_COMMAND, such as "ssh -i /keys/id -o UserKnownHostsFile=/keys/known_hosts";
	// it should name a key file rather than contain a secret, as it is not scrubbed from
	// errors. Empty means the go command's default, ssh in batch mode.
	GitSSHCommand string
	// Env holds more NAME=value variables for the go command and git, such as HTTPS_PROXY or
	// GOVCS; they override the Fetcher's own. Nil means none.
	Env []string
	// TempDir is where each download gets a directory of its own (module cache, GOPATH, HOME,
	// TMPDIR); it must not be inside a Go module. Empty means os.TempDir().
	TempDir string
	// Keep is how long a downloaded version stays on disk for the next Info, Mod or Zip of it
	// (a fetch asks for all three at once); zero means one minute.
	Keep time.Duration
	// Timeout bounds one run of the go command; zero means ten minutes.
	Timeout time.Duration
	// Egress is where the go command and git may connect; nil means public addresses only.
	Egress *egress.Policy

	flight singleflight.Group
	mu     sync.Mutex
	kept   map[string]*download // by path@version
}

// download is one version downloaded into a directory of its own. It is removed once its keep
// window is over and nobody reads from it.
type download struct {
	dir            string
	version        string
	info, mod, zip string // the files in the module cache
	users          int    // readers holding it (under Fetcher.mu)
	expired        bool   // out of Fetcher.kept: removed when users drops to 0
	timer          *time.Timer
}

// goModule is what `go mod download -json` and `go list -m -json` print about one module.
type goModule struct {
	Path, Version, Query string
	Versions             []string
	Time                 *time.Time
	Info, GoMod, Zip     string
	Origin               json.RawMessage
	Error                string
}

// Info returns the .info of path at query (a canonical version, or anything the go command
// resolves: a branch, a tag, a commit hash, a version prefix). The version is downloaded whole
// and kept for the Mod and Zip calls that usually follow.
func (f *Fetcher) Info(ctx context.Context, path, query string) ([]byte, string, error) {
	if err := checkQuery(path, query); err != nil {
		return nil, "", err
	}
	d, err := f.get(ctx, path, query)
	if err != nil {
		return nil, "", err
	}
	defer f.release(d)
	data, err := readFile(d.info, 1<<20, path+"@"+d.version+" .info")
	return data, Source, err
}

// Mod returns the go.mod of path at version, which must be canonical.
func (f *Fetcher) Mod(ctx context.Context, path, version string) ([]byte, string, error) {
	if err := checkVersion(path, version); err != nil {
		return nil, "", err
	}
	d, err := f.get(ctx, path, version)
	if err != nil {
		return nil, "", err
	}
	defer f.release(d)
	data, err := readFile(d.mod, gofer.MaxModSize, path+"@"+version+" .mod")
	return data, Source, err
}

// Zip opens the module zip of path at version, which must be canonical. The caller must close
// it; the download's directory is removed after the last reader is closed and its keep window
// is over.
func (f *Fetcher) Zip(ctx context.Context, path, version string) (io.ReadCloser, string, error) {
	if err := checkVersion(path, version); err != nil {
		return nil, "", err
	}
	d, err := f.get(ctx, path, version)
	if err != nil {
		return nil, "", err
	}
	file, err := os.Open(d.zip)
	if err == nil {
		var fi os.FileInfo
		if fi, err = file.Stat(); err == nil && fi.Size() > gofer.MaxZipSize {
			file.Close()
			f.release(d)
			return nil, "", gofer.Errorf(gofer.ErrInvalid, "%s@%s: zip larger than %d bytes", path, version, gofer.MaxZipSize)
		}
	}
	if err != nil {
		f.release(d)
		return nil, "", gofer.Errorf(gofer.ErrUnavailable, "%s@%s: reading the downloaded zip: %w", path, version, err)
	}
	return &zipFile{File: file, release: func() { f.release(d) }}, Source, nil
}

type zipFile struct {
	*os.File
	once    sync.Once
	release func()
}

func (z *zipFile) Close() error {
	err := z.File.Close()
	z.once.Do(z.release)
	return err
}

// List returns path's tagged versions, one per line, in the format of @v/list.
func (f *Fetcher) List(ctx context.Context, path string) ([]byte, string, error) {
	if err := module.CheckPath(path); err != nil {
		return nil, "", gofer.Errorf(gofer.ErrNotFound, "%w", err)
	}
	m, err := f.list(ctx, path, "list", "-m", "-versions", "-json", path)
	if err != nil {
		return nil, "", err
	}
	var b strings.Builder
	for _, v := range m.Versions {
		b.WriteString(v + "\n")
	}
	return []byte(b.String()), Source, nil
}

// Latest returns path's @latest: the .info of the version the go command picks as latest.
func (f *Fetcher) Latest(ctx context.Context, path string) ([]byte, string, error) {
	if err := module.CheckPath(path); err != nil {
		return nil, "", gofer.Errorf(gofer.ErrNotFound, "%w", err)
	}
	m, err := f.list(ctx, path+"@latest", "list", "-m", "-json", path+"@latest")
	if err != nil {
		return nil, "", err
	}
	if module.CanonicalVersion(m.Version) != m.Version || m.Version == "" {
		return nil, "", gofer.Errorf(gofer.ErrInvalid, "%s@latest: the go command answered version %q", path, m.Version)
	}
	data, err := json.Marshal(struct {
		Version string
		Time    *time.Time      `json:",omitempty"`
		Origin  json.RawMessage `json:",omitempty"`
	}{m.Version, m.Time, m.Origin})
	return data, Source, err
}

// Close removes every kept download that nobody is reading (the others go when their last
// reader closes). The Fetcher stays usable.
func (f *Fetcher) Close() error {
	f.mu.Lock()
	var idle []string
	for key, d := range f.kept {
		d.timer.Stop()
		delete(f.kept, key)
		d.expired = true
		if d.users == 0 {
			idle = append(idle, d.dir)
		}
	}
	f.mu.Unlock()
	for _, dir := range idle {
		os.RemoveAll(dir)
	}
	return nil
}

// list runs one go list -m command in a directory of its own and parses its output.
func (f *Fetcher) list(ctx context.Context, what string, args ...string) (*goModule, error) {
	dir, err := f.mkdir()
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var m goModule
	if err := f.run(ctx, dir, what, &m, args...); err != nil {
		return nil, err
	}
	return &m, nil
}

// get returns the download of path@query, holding it for the caller (release it when done):
// a kept one if the query is a version downloaded in the last keep window, else a new one,
// shared by every caller asking for the same path@query meanwhile. A shared download runs with
// the context of the caller that started it; if that one gives up, the others try again.
func (f *Fetcher) get(ctx context.Context, path, query string) (*download, error) {
	for range 3 {
		if module.CanonicalVersion(query) == query {
			f.mu.Lock()
			if d := f.kept[path+"@"+query]; d != nil {
				d.users++
				f.mu.Unlock()
				return d, nil
			}
			f.mu.Unlock()
		}
		v, err, _ := f.flight.Do(path+"@"+query, func() (any, error) { return f.download(ctx, path, query) })
		if err != nil {
			if ctx.Err() == nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
				continue // another caller's context ended
			}
			return nil, err
		}
		d := v.(*download)
		f.mu.Lock()
		if !d.expired {
			d.users++
			f.mu.Unlock()
			return d, nil
		}
		// Its keep window ended before this caller could take it (a very short Keep): again.
		f.mu.Unlock()
	}
	return nil, gofer.Errorf(gofer.ErrUnavailable, "%s@%s: the download was gone before it could be read, three times", path, query)
}

// download runs go mod download for path@query and keeps the result for the keep window.
func (f *Fetcher) download(ctx context.Context, path, query string) (*download, error) {
	dir, err := f.mkdir()
	if err != nil {
		return nil, err
	}
	var m goModule
	if err := f.run(ctx, dir, path+"@"+query, &m, "mod", "download", "-json", path+"@"+query); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if module.CanonicalVersion(m.Version) != m.Version || m.Info == "" || m.GoMod == "" || m.Zip == "" {
		os.RemoveAll(dir)
		return nil, gofer.Errorf(gofer.ErrUnavailable, "%s@%s: go mod download answered version %q without all its files", path, query, m.Version)
	}
	d := &download{dir: dir, version: m.Version, info: m.Info, mod: m.GoMod, zip: m.Zip}
	key := path + "@" + m.Version
	f.mu.Lock()
	if old := f.kept[key]; old != nil {
		// Another query resolved to the same version meanwhile: keep one copy.
		f.mu.Unlock()
		os.RemoveAll(dir)
		return old, nil
	}
	if f.kept == nil {
		f.kept = map[string]*download{}
	}
	f.kept[key] = d
	d.timer = time.AfterFunc(f.keep(), func() { f.expire(key, d) })
	f.mu.Unlock()
	return d, nil
}

func (f *Fetcher) expire(key string, d *download) {
	f.mu.Lock()
	if f.kept[key] == d {
		delete(f.kept, key)
	}
	d.expired = true
	idle := d.users == 0
	f.mu.Unlock()
	if idle {
		os.RemoveAll(d.dir)
	}
}

func (f *Fetcher) release(d *download) {
	f.mu.Lock()
	d.users--
	idle := d.expired && d.users == 0
	f.mu.Unlock()
	if idle {
		os.RemoveAll(d.dir)
	}
}

func (f *Fetcher) keep() time.Duration {
	if f.Keep > 0 {
		return f.Keep
	}
	return time.Minute
}

// mkdir makes the directory of one run of the go command.
func (f *Fetcher) mkdir() (string, error) {
	dir, err := os.MkdirTemp(f.TempDir, "gofer-vcs-")
	if err != nil {
		return "", gofer.Errorf(gofer.ErrUnavailable, "vcs: %w", err)
	}
	for _, sub := range []string{"home", "tmp", "work"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			os.RemoveAll(dir)
			return "", gofer.Errorf(gofer.ErrUnavailable, "vcs: %w", err)
		}
	}
	if f.NetrcFile != "" {
		// git's libcurl reads $HOME/.netrc, not $NETRC.
		if err := os.Symlink(abs(f.NetrcFile), filepath.Join(dir, "home", ".netrc")); err != nil {
			os.RemoveAll(dir)
			return "", gofer.Errorf(gofer.ErrUnavailable, "vcs: %w", err)
		}
	}
	return dir, nil
}

// env is the whole environment of a go command run in dir whose connections go through the
// proxy at proxyURL.
func (f *Fetcher) env(dir, proxyURL string) []string {
	ssh := "never"
	if f.GitSSHCommand != "" {
		ssh = "always"
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + filepath.Join(dir, "home"),
		"TMPDIR=" + filepath.Join(dir, "tmp"),
		"GOMODCACHE=" + filepath.Join(dir, "modcache"),
		"GOPATH=" + filepath.Join(dir, "gopath"),
		"GOCACHE=" + filepath.Join(dir, "gocache"),
		"GOENV=off", "GOWORK=off", "GO111MODULE=on", "GOTOOLCHAIN=local", "GOFLAGS=-modcacherw",
		// Telemetry would write under HOME, from a child that outlives the download's directory.
		"GOTELEMETRY=off",
		// gofer's own checksum policy decides later; these lookups must never leave gofer.
		"GOPROXY=direct", "GOSUMDB=off", "GOPRIVATE=*", "GONOSUMDB=*", "GONOPROXY=*", "GOINSECURE=",
		// GOPRIVATE=* makes every module private, and private modules may use any VCS tool by
		// default: git only, whose transports gofer can hold to the egress proxy.
		"GOVCS=*:git",
		"GIT_TERMINAL_PROMPT=0", "GCM_INTERACTIVE=never", "GIT_CONFIG_NOSYSTEM=1",
		// libcurl reads http_proxy only in lower case; the go command reads either.
		"HTTPS_PROXY=" + proxyURL, "https_proxy=" + proxyURL, "HTTP_PROXY=" + proxyURL, "http_proxy=" + proxyURL,
		"ALL_PROXY=" + proxyURL, "NO_PROXY=", "no_proxy=",
		"GIT_CONFIG_COUNT=2", "GIT_CONFIG_KEY_0=protocol.git.allow", "GIT_CONFIG_VALUE_0=never",
		"GIT_CONFIG_KEY_1=protocol.ssh.allow", "GIT_CONFIG_VALUE_1=" + ssh,
	}
	// The commands run in dir: a relative file name would not name the same file there.
	if f.NetrcFile != "" {
		env = append(env, "NETRC="+abs(f.NetrcFile))
	}
	if f.GitConfig != "" {
		env = append(env, "GIT_CONFIG_GLOBAL="+abs(f.GitConfig))
	}
	if f.GitSSHCommand != "" {
		env = append(env, "GIT_SSH_COMMAND="+f.GitSSHCommand)
	}
	return append(env, f.Env...)
}

func abs(name string) string {
	if a, err := filepath.Abs(name); err == nil {
		return a
	}
	return name
}

// run runs the go command with args in dir and decodes the JSON it prints into m. A failure is
// classified (see classify); what names the request in errors.
func (f *Fetcher) run(ctx context.Context, dir, what string, m *goModule, args ...string) error {
	path, _, _ := strings.Cut(what, "@")
	host, _, _ := strings.Cut(path, "/")
	if a, err := netip.ParseAddr(host); err == nil && !f.Egress.Allows(a) {
		return gofer.Errorf(gofer.ErrNotFound, "%s: the module's host is an IP address %w", what, egress.ErrDenied)
	}
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(rctx, cmp.Or(f.GoCommand, "go"), args...)
	cmd.Dir = filepath.Join(dir, "work")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	killGroup(cmd)
	proxy, err := f.start(cmd, dir)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, ctx.Err())
		}
		return gofer.Errorf(gofer.ErrUnavailable, "%s: running the go command: %w", what, err)
	}
	defer proxy.Close()
	err = cmd.Wait()
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
	if rctx.Err() != nil {
		return gofer.Errorf(gofer.ErrUnavailable, "%s: the go command timed out after %s", what, timeout)
	}
	jerr := json.Unmarshal([]byte(stdout.String()), m)
	if err == nil && jerr == nil && m.Error == "" {
		return nil
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return gofer.Errorf(gofer.ErrUnavailable, "%s: running the go command: %w", what, err)
	}
	if host := proxy.Denied(); host != "" {
		// The go command's message would name the refused connection in its own words; this
		// says what happened, and a retry cannot change it.
		return gofer.Errorf(gofer.ErrNotFound, "%s: fetching it needs a connection to %s, which is %w", what, host, egress.ErrDenied)
	}
	msg := m.Error
	if msg == "" {
		msg = stderr.String()
	}
	if msg == "" {
		msg = fmt.Sprintf("go %s: %v", args[0], cmp.Or(err, jerr))
	}
	return f.classify(ctx, dir, what, msg)
}

// errNoNamespace is isolated's answer where it cannot make a network namespace.
var errNoNamespace = errors.New("no network namespace")

// CheckIsolation reports whether the go command and git can run in network namespaces of their
// own here (see start), and if not, why.
func CheckIsolation() error {
	proxy, err := isolated(nil, func(string) error { return nil })
	if err != nil {
		return err
	}
	return proxy.Close()
}

// start starts cmd, a go or git command of a download in dir, with its environment and its
// egress proxy, and returns the proxy (close it once cmd is done). Where it can (Linux, with
// CAP_SYS_ADMIN) and no ssh is to be used (ssh cannot go through the proxy), cmd runs in a
// network namespace of its own that holds nothing but the proxy, so that no connection it
// makes can go around it: the go command's own HTTP client connects to loopback addresses
// without its proxy. Otherwise the proxy listens on the host's 127.0.0.1, and cmd could reach
// the host's loopback services by naming them.
func (f *Fetcher) start(cmd *exec.Cmd, dir string) (*egress.Proxy, error) {
	if f.GitSSHCommand == "" {
		proxy, err := isolated(f.Egress, func(url string) error {
			cmd.Env = f.env(dir, url)
			return cmd.Start()
		})
		if !errors.Is(err, errNoNamespace) {
			return proxy, err
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	proxy := f.Egress.Serve(l)
	cmd.Env = f.env(dir, proxy.URL)
	if err := cmd.Start(); err != nil {
		proxy.Close()
		return nil, err
	}
	return proxy, nil
}

// checkQuery refuses what cannot name a module version: the go command would refuse it too,
// and nothing odd should reach its command line.
func checkQuery(path, query string) error {
	if err := module.CheckPath(path); err != nil {
		return gofer.Errorf(gofer.ErrNotFound, "%w", err)
	}
	if query == "" || strings.IndexFunc(query, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) >= 0 {
		return gofer.Errorf(gofer.ErrNotFound, "%s@%q: malformed version", path, query)
	}
	if _, err := module.EscapeVersion(query); err != nil {
		return gofer.Errorf(gofer.ErrNotFound, "%s@%s: %w", path, query, err)
	}
	return nil
}

func checkVersion(path, version string) error {
	if module.CanonicalVersion(version) != version {
		return gofer.Errorf(gofer.ErrNotFound, "%s@%s: not a canonical version", path, version)
	}
	if err := module.Check(path, version); err != nil {
		return gofer.Errorf(gofer.ErrNotFound, "%w", err)
	}
	return nil
}

// readFile reads a file of a download, refusing one larger than limit.
func readFile(name string, limit int64, what string) ([]byte, error) {
	file, err := os.Open(name)
	if err != nil {
		return nil, gofer.Errorf(gofer.ErrUnavailable, "%s: %w", what, err)
	}
	defer file.Close()
	data, err := io.ReadAll(io.LimitReader(file, limit+1))
	if err != nil {
		return nil, gofer.Errorf(gofer.ErrUnavailable, "%s: %w", what, err)
	}
	if int64(len(data)) > limit {
		return nil, gofer.Errorf(gofer.ErrInvalid, "%s: larger than %d bytes", what, limit)
	}
	return data, nil
}
