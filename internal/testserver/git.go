package testserver

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// httpBackend is git's smart-HTTP CGI program, from the Debian package git.
const httpBackend = "/usr/lib/git-core/git-http-backend"

// GitServer serves the bare repositories under a directory of its own over git's smart HTTP
// protocol (git-http-backend behind net/http/cgi) on 127.0.0.1, with basic auth. Stop and Start
// it to simulate an outage: same port, same repositories.
type GitServer struct {
	// URL is the server's base URL, http://127.0.0.1:<port>, without a trailing slash; the
	// repository <Root>/a/b.git is <URL>/a/b.git.
	URL string
	// Host is the host:port of URL.
	Host string
	// User and Password are the only credentials the server accepts.
	User, Password string
	// Root holds the bare repositories.
	Root string

	dir      string // temporary: Root, work trees, the isolated HOME of the git commands
	requests atomic.Int64
	hook     atomic.Pointer[func(*http.Request)]

	mu  sync.Mutex
	srv *http.Server
}

// Git starts a git server that accepts user and password. It needs git and git-http-backend (the
// Debian package git).
func Git(user, password string) (*GitServer, error) {
	if _, err := exec.LookPath("git"); err != nil {
		return nil, fmt.Errorf("git is not installed (Debian package git): %v", err)
	}
	if _, err := os.Stat(httpBackend); err != nil {
		return nil, fmt.Errorf("%s is missing: install the Debian package git (%v)", httpBackend, err)
	}
	dir, err := os.MkdirTemp("", "gofer-git-")
	if err != nil {
		return nil, err
	}
	s := &GitServer{User: user, Password: password, Root: filepath.Join(dir, "repos"), dir: dir}
	for _, d := range []string{s.Root, filepath.Join(dir, "home"), filepath.Join(dir, "work")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.Host = l.Addr().String()
	s.URL = "http://" + s.Host
	s.serve(l)
	return s, nil
}

func (s *GitServer) serve(l net.Listener) {
	backend := &cgi.Handler{
		Path:   httpBackend,
		Dir:    s.dir,
		Stderr: io.Discard, // "Not a git repository" for every probe of a missing one
		Env: []string{
			"GIT_PROJECT_ROOT=" + s.Root,
			"GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_NOSYSTEM=1",
			"HOME=" + filepath.Join(s.dir, "home"),
		},
	}
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if h := s.hook.Load(); h != nil {
			(*h)(r)
		}
		user, password, ok := r.BasicAuth()
		if !ok || !equal(user, s.User) || !equal(password, s.Password) {
			w.Header().Set("WWW-Authenticate", `Basic realm="gofer test git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(l)
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// Requests counts the HTTP requests the server has received, authenticated or not.
func (s *GitServer) Requests() int64 { return s.requests.Load() }

// OnRequest makes h see every request before it is answered (nil: none). h runs on the
// request's goroutine; it may call Stop, which cuts that request off too.
func (s *GitServer) OnRequest(h func(*http.Request)) {
	if h == nil {
		s.hook.Store(nil)
		return
	}
	s.hook.Store(&h)
}

// Stop closes the listener and every open connection: clients in the middle of a fetch see it
// cut off, new ones are refused. It does nothing to a stopped server.
func (s *GitServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		s.srv.Close()
		s.srv = nil
	}
}

// Start serves again on the same port after Stop; it does nothing to a running server.
func (s *GitServer) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return nil
	}
	l, err := net.Listen("tcp", s.Host)
	if err != nil {
		return err
	}
	s.serve(l)
	return nil
}

// Close stops the server and removes its repositories.
func (s *GitServer) Close() {
	s.Stop()
	os.RemoveAll(s.dir)
}

// ClientConfig writes, under dir, what a git client needs to reach this server as
// https://<host>/: a git config whose url.<URL>/.insteadOf maps https://<host>/ here, and a
// netrc file with the server's credentials. Point GIT_CONFIG_GLOBAL at gitconfig, and NETRC
// (the go command) or HOME/.netrc (git's libcurl) at netrc.
func (s *GitServer) ClientConfig(dir, host string) (gitconfig, netrc string, err error) {
	gitconfig, netrc = filepath.Join(dir, "gitconfig"), filepath.Join(dir, "netrc")
	conf := fmt.Sprintf("[url %q]\n\tinsteadOf = https://%s/\n", s.URL+"/", host)
	if err := os.WriteFile(gitconfig, []byte(conf), 0o600); err != nil {
		return "", "", err
	}
	rc := fmt.Sprintf("machine 127.0.0.1 login %s password %s\n", s.User, s.Password)
	if err := os.WriteFile(netrc, []byte(rc), 0o600); err != nil {
		return "", "", err
	}
	return gitconfig, netrc, nil
}

// GitRepo is a work tree whose commits and tags are pushed to a bare repository the server
// serves. Its commits have a fixed author and the dates given, so their hashes (and so the
// pseudo-versions naming them) are the same in every run.
type GitRepo struct {
	// Name is the repository's path under the server's root, such as "private/mod.git".
	Name string
	work string
	bare string
	env  []string
}

// NewRepo creates the empty bare repository Root/name and a work tree pushing to it.
func (s *GitServer) NewRepo(name string) (*GitRepo, error) {
	r := &GitRepo{
		Name: name,
		work: filepath.Join(s.dir, "work", name),
		bare: filepath.Join(s.Root, name),
		env: []string{
			"PATH=" + os.Getenv("PATH"),
			"HOME=" + filepath.Join(s.dir, "home"),
			"GIT_CONFIG_NOSYSTEM=1",
			"GIT_CONFIG_GLOBAL=/dev/null",
			"GIT_AUTHOR_NAME=gofer test", "GIT_AUTHOR_EMAIL=test@gofer.test",
			"GIT_COMMITTER_NAME=gofer test", "GIT_COMMITTER_EMAIL=test@gofer.test",
		},
	}
	if _, err := r.git(s.dir, nil, "init", "-q", "--bare", "-b", "main", r.bare); err != nil {
		return nil, err
	}
	if _, err := r.git(s.dir, nil, "init", "-q", "-b", "main", r.work); err != nil {
		return nil, err
	}
	if _, err := r.git(r.work, nil, "remote", "add", "origin", r.bare); err != nil {
		return nil, err
	}
	return r, nil
}

// Commit writes files (name → content, relative to the work tree) on the current branch, commits
// them all, dated when, pushes the branch, and returns the commit's hash.
func (r *GitRepo) Commit(files map[string]string, when time.Time) (string, error) {
	for name, content := range files {
		p := filepath.Join(r.work, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	date := when.UTC().Format(time.RFC3339)
	env := []string{"GIT_AUTHOR_DATE=" + date, "GIT_COMMITTER_DATE=" + date}
	if _, err := r.git(r.work, nil, "add", "-A"); err != nil {
		return "", err
	}
	if _, err := r.git(r.work, env, "commit", "-q", "-m", "commit at "+date); err != nil {
		return "", err
	}
	if _, err := r.git(r.work, nil, "push", "-q", "origin", "HEAD"); err != nil {
		return "", err
	}
	hash, err := r.git(r.work, nil, "rev-parse", "HEAD")
	return strings.TrimSpace(hash), err
}

// Tag tags the current commit (a lightweight tag) and pushes the tag.
func (r *GitRepo) Tag(tag string) error {
	if _, err := r.git(r.work, nil, "tag", tag); err != nil {
		return err
	}
	_, err := r.git(r.work, nil, "push", "-q", "origin", "refs/tags/"+tag)
	return err
}

// Branch switches the work tree to a new branch starting at the current commit; later commits
// are pushed to it.
func (r *GitRepo) Branch(name string) error {
	_, err := r.git(r.work, nil, "checkout", "-q", "-b", name)
	return err
}

// Module creates the repository name holding module path, with one commit per version (go.mod
// and a .go file whose constant names the version), each tagged with its version, a day apart
// from 2024-01-01.
func (s *GitServer) Module(name, path string, versions ...string) (*GitRepo, error) {
	r, err := s.NewRepo(name)
	if err != nil {
		return nil, err
	}
	day := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	for i, v := range versions {
		files := map[string]string{
			"go.mod": "module " + path + "\n\ngo 1.21\n",
			"mod.go": fmt.Sprintf("// Package mod is a test module.\npackage mod\n\n// Version is the tag of this commit.\nconst Version = %q\n", v),
		}
		if _, err := r.Commit(files, day.AddDate(0, 0, i)); err != nil {
			return nil, err
		}
		if err := r.Tag(v); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// git runs git with r's isolated environment plus env, in dir, and returns its output.
func (r *GitRepo) git(dir string, env []string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(append([]string{}, r.env...), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", errors.New("git " + strings.Join(args, " ") + ": " + err.Error() + "\n" + out.String())
	}
	return out.String(), nil
}
