package vcs

import (
	"bufio"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/goferproxy/gofer"
)

// Markers of the go command's and git's messages, lower case. An outage marker wins over a
// not-found one: "invalid version: ... Could not resolve host" is a DNS failure of a repository
// host that was already known, and may heal. Before either, noRoot decides.
var (
	// noRoot matches the failures of the go command to find the repository root of a path
	// (cmd/go/internal/vcs, RepoRootForImportPath), whatever caused them, a network error of the
	// ?go-get=1 lookup included. The go command's lookupDirect reports each of them as "does not
	// exist" (notExistError), and so must gofer: the go command probes every prefix of an import
	// path, most of them are no module, and an outage on one fails the command. "no secure
	// protocol found" is the one failure of this kind whose repository is known (from a .git
	// qualifier); classify asks git about it instead.
	noRoot = regexp.MustCompile(`unrecognized import path "|invalid \S+ import path "|` +
		`not allowed in import path|import path does not begin with hostname|no modules on |` +
		`\S+ is not a module|unknown version control system|invalid version control suffix|govcs disallows`)
	outageMarkers = []string{
		"timed out", "timeout", "deadline exceeded",
		"connection refused", "couldn't connect to server", "failed to connect to",
		"could not resolve host", "no such host", "temporary failure in name resolution",
		"network is unreachable", "no route to host", "connection reset", "broken pipe",
		"empty reply from server", "rpc failed", "early eof", "unexpected disconnect",
		"remote end hung up unexpectedly", "transfer closed", "unexpected eof",
		"recv failure", "send failure", "tls handshake", "ssl_connect", "gnutls", "http/2 stream",
		"returned error: 5", "returned error: 429", "500 internal server error", "502 bad gateway",
		"503 service unavailable", "504 gateway timeout", "429 too many requests",
	}
	notFoundMarkers = []string{
		"unknown revision", "not found", "no matching versions", "unrecognized import path",
		"invalid version", "malformed module path", "invalid module path", "module declares its path",
		"404 not found", "410 gone", "403 forbidden", "401 unauthorized",
		"returned error: 404", "returned error: 410", "returned error: 403", "returned error: 401",
		"terminal prompts disabled", "authentication failed", "could not read username",
		"could not read password", "permission denied", "host key verification failed",
		"could not read from remote repository", "disabled by govcs", "no secure protocol found",
		"does not contain package", "bad revision",
	}
	// authMarkers say that the failure was about credentials, which deserves a hint.
	authMarkers = []string{"terminal prompts disabled", "authentication failed", "could not read username",
		"could not read password", "returned error: 401", "401 unauthorized", "permission denied (publickey"}
	// noise is the go command's advice after a failed git command, the same every time.
	noise = []string{
		"Confirm the import path was typed correctly.",
		"If this is a private repository, see https://golang.org/doc/faq#git_https for additional information.",
	}
	userinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.\-]*://)[^/?#\s@'"]+@`)
	// resolver is the address of the name server in a failed lookup ("lookup h on 10.0.0.2:53:"),
	// which says nothing to a client about its module and something about our network.
	resolver = regexp.MustCompile(`(lookup \S+) on \S+:\d+:`)
)

// classify is the one place where a failure of the go command becomes an error kind:
//   - no repository root could be found for the path (see noRoot); the repository, revision
//     or version does not exist, the path cannot be a module, or the host refused the
//     credentials (or asked for some we do not have): gofer.ErrNotFound, so that a
//     GOPROXY=a,b client falls through and the fetch is not retried;
//   - a timeout, a refused or reset connection, a failed name lookup, a 5xx, and anything that
//     matches no marker: gofer.ErrUnavailable, retried.
//
// A VCS-qualified path (host/repo.git) makes the go command probe the repository's schemes and
// report only "no secure protocol found for repository" whatever went wrong: then diagnose asks
// git itself, once, and its answer decides.
//
// The message is one line: the go command's, with the download's directory and its boilerplate
// advice cut, every URL's userinfo and every secret of NetrcFile and GitConfig replaced by xxxxx.
func (f *Fetcher) classify(ctx context.Context, dir, what, msg string) error {
	transient := false
	if strings.Contains(msg, "no secure protocol found") {
		var diag string
		diag, transient = f.diagnose(ctx, dir, what)
		msg = strings.TrimSpace(msg) + ": " + diag
	}
	msg = f.scrub(oneLine(msg, dir))
	if path, _, _ := strings.Cut(what, "@"); !strings.HasPrefix(msg, path) {
		msg = what + ": " + msg
	}
	if transient {
		return gofer.Errorf(gofer.ErrUnavailable, "%s", msg)
	}
	lower := strings.ToLower(msg)
	if noRoot.MatchString(lower) {
		return gofer.Errorf(gofer.ErrNotFound, "%s", msg)
	}
	for _, m := range outageMarkers {
		if strings.Contains(lower, m) {
			return gofer.Errorf(gofer.ErrUnavailable, "%s", msg)
		}
	}
	for _, m := range notFoundMarkers {
		if strings.Contains(lower, m) {
			if slices.ContainsFunc(authMarkers, func(m string) bool { return strings.Contains(lower, m) }) {
				msg += " (the host wants credentials that this proxy does not have, or refused the ones it has)"
			}
			return gofer.Errorf(gofer.ErrNotFound, "%s", msg)
		}
	}
	return gofer.Errorf(gofer.ErrUnavailable, "%s", msg)
}

// diagnose runs the probe the go command ran for the repository of what (module@query) over
// https, `git ls-remote https://<repo>`, and returns what git said; transient is true if the
// probe succeeds now.
func (f *Fetcher) diagnose(ctx context.Context, dir, what string) (diag string, transient bool) {
	path, _, _ := strings.Cut(what, "@")
	repo, ok := gitRepo(path)
	if !ok {
		return "no git repository to probe", false
	}
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(pctx, "git", "ls-remote", "-q", "https://"+repo)
	cmd.Dir = filepath.Join(dir, "work")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	killGroup(cmd)
	proxy, err := f.start(cmd, dir)
	if err == nil {
		err = cmd.Wait()
		proxy.Close()
	}
	switch {
	case pctx.Err() != nil:
		return fmt.Sprintf("git ls-remote https://%s: timed out", repo), false
	case err == nil:
		return fmt.Sprintf("git ls-remote https://%s answers now", repo), true
	}
	return fmt.Sprintf("git ls-remote https://%s: %v: %s", repo, err, out.String()), false
}

// gitRepo is the repository the go command derives from a VCS-qualified path: everything before
// the first path element (after the host) that ends in .git, without that suffix.
func gitRepo(path string) (string, bool) {
	elems := strings.Split(path, "/")
	for i := 1; i < len(elems); i++ {
		if name, ok := strings.CutSuffix(elems[i], ".git"); ok && name != "" {
			return strings.Join(append(slices.Clone(elems[:i]), name), "/"), true
		}
	}
	return "", false
}

// oneLine joins the lines of msg, without the go command's advice and with the download
// directory cut out, and shortens the result to at most 600 bytes.
func oneLine(msg, dir string) string {
	// "git ls-remote -q origin in <dir>/modcache/cache/vcs/<hash>" says nothing to a client.
	msg = regexp.MustCompile(` in `+regexp.QuoteMeta(dir)+`[^\s:]*`).ReplaceAllString(msg, "")
	msg = strings.ReplaceAll(msg, dir, "$WORK")
	var parts []string
	for _, line := range strings.Split(msg, "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "go: "))
		if line != "" && !slices.Contains(noise, line) {
			parts = append(parts, line)
		}
	}
	msg = strings.Join(parts, " ")
	if len(msg) > 600 {
		msg = strings.ToValidUTF8(msg[:600], "") + "..."
	}
	return msg
}

// scrub removes credentials from msg: the userinfo of every URL, and every secret that
// NetrcFile and GitConfig hold; and the name server of a failed lookup.
func (f *Fetcher) scrub(msg string) string {
	msg = userinfo.ReplaceAllString(msg, "${1}xxxxx@")
	msg = resolver.ReplaceAllString(msg, "${1}:")
	secrets := f.secrets()
	// Longest first, so that a secret containing another is replaced whole.
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	for _, s := range secrets {
		msg = strings.ReplaceAll(msg, s, "xxxxx")
	}
	return msg
}

// secrets reads the secrets of NetrcFile (passwords, accounts) and of GitConfig (passwords in
// URLs, the values of http.extraHeader and of keys naming a password, token or secret, and the
// password= values a credential helper prints). A login or username is an identity, not a
// secret, and scrubbing a short one would mangle messages (login gofer, host git.gofer.test); but
// some hosts take a token as the login, so one that is long enough to be a token is scrubbed.
func (f *Fetcher) secrets() []string {
	var out []string
	if f.NetrcFile != "" {
		if data, err := os.ReadFile(f.NetrcFile); err == nil {
			words := strings.Fields(string(data))
			for i := 0; i+1 < len(words); i++ {
				switch words[i] {
				case "password", "account":
					out = append(out, words[i+1])
				case "login":
					if tokenLike(words[i+1]) {
						out = append(out, words[i+1])
					}
				}
			}
		}
	}
	if f.GitConfig != "" {
		if data, err := os.ReadFile(f.GitConfig); err == nil {
			out = append(out, gitConfigSecrets(string(data))...)
		}
	}
	return slices.DeleteFunc(out, func(s string) bool { return s == "" })
}

var (
	anyURL     = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'"\]]+`)
	helperKV   = regexp.MustCompile(`(?i)(username|password|token|secret)=([^\s;'"&|]+)`)
	secretKeys = []string{"password", "token", "secret"}
)

func gitConfigSecrets(conf string) []string {
	var out []string
	for _, u := range anyURL.FindAllString(conf, -1) {
		if p, err := url.Parse(u); err == nil && p.User != nil {
			if tokenLike(p.User.Username()) {
				out = append(out, p.User.Username())
			}
			if pw, ok := p.User.Password(); ok {
				out = append(out, pw, url.QueryEscape(pw), url.PathEscape(pw))
			}
		}
	}
	sc := bufio.NewScanner(strings.NewReader(conf))
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		key = strings.ToLower(strings.TrimSpace(key))
		value = strings.Trim(strings.TrimSpace(value), `"`)
		switch {
		case strings.HasSuffix(key, "extraheader"):
			// "Authorization: Basic <token>": the header's value and each long word of it.
			if _, v, ok := strings.Cut(value, ":"); ok {
				value = strings.TrimSpace(v)
			}
			out = append(out, value)
			for _, w := range strings.Fields(value) {
				if len(w) >= 8 {
					out = append(out, w)
				}
			}
		case slices.ContainsFunc(secretKeys, func(s string) bool { return strings.Contains(key, s) }):
			out = append(out, value)
		}
		for _, m := range helperKV.FindAllStringSubmatch(value, -1) {
			if !strings.EqualFold(m[1], "username") || tokenLike(m[2]) {
				out = append(out, m[2])
			}
		}
	}
	return out
}

// tokenLike reports whether a login is long enough to be a token rather than a name.
func tokenLike(login string) bool { return len(login) >= 16 }
