package vcs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goferproxy/gofer"
)

func TestClassify(t *testing.T) {
	f := &Fetcher{}
	dir := "/tmp/gofer-vcs-123"
	const what = "example.com/m.git@v1.0.0"
	for i, tc := range []struct {
		msg  string
		want error
	}{
		0:  {"example.com/m.git@v1.0.0: invalid version: unknown revision v1.0.0", gofer.ErrNotFound},
		1:  {"example.com/m.git@v1.0.0: invalid version: git ls-remote -q origin in /tmp/gofer-vcs-123/modcache/cache/vcs/abc: exit status 128:\n\tfatal: could not read Username for 'https://example.com': terminal prompts disabled\nConfirm the import path was typed correctly.\nIf this is a private repository, see https://golang.org/doc/faq#git_https for additional information.", gofer.ErrNotFound},
		2:  {"example.com/m.git@v1.0.0: invalid version: git ls-remote -q origin in /tmp/gofer-vcs-123/x: exit status 128:\n\tremote: Repository not found.\n\tfatal: repository 'https://example.com/m/' not found", gofer.ErrNotFound},
		3:  {"example.com/m.git@v1.0.0: invalid version: git ls-remote -q origin in /tmp/gofer-vcs-123/x: exit status 128:\n\tfatal: Authentication failed for 'https://example.com/m/'", gofer.ErrNotFound},
		4:  {"go: example.com/m@latest: no matching versions for query \"latest\"", gofer.ErrNotFound},
		5:  {"example.com/m@v1.0.0: unrecognized import path \"example.com/m\": reading https://example.com/m?go-get=1: 404 Not Found", gofer.ErrNotFound},
		6:  {"example.com/m.git@v1.0.0: invalid version: git fetch -f origin in /tmp/gofer-vcs-123/x: exit status 128:\n\tfatal: unable to access 'https://example.com/m/': Failed to connect to example.com port 443 after 0 ms: Couldn't connect to server", gofer.ErrUnavailable},
		7:  {"example.com/m.git@v1.0.0: invalid version: git ls-remote -q origin: exit status 128:\n\tfatal: unable to access 'https://example.com/m/': Could not resolve host: example.com", gofer.ErrUnavailable},
		8:  {"example.com/m.git@v1.0.0: invalid version: git fetch: exit status 128:\n\tfatal: unable to access 'https://example.com/m/': The requested URL returned error: 503", gofer.ErrUnavailable},
		9:  {"example.com/m.git@v1.0.0: invalid version: git fetch: exit status 128:\n\terror: RPC failed; curl 52 Empty reply from server\n\tfatal: expected flush after ref listing", gofer.ErrUnavailable},
		11: {"go: something nobody has seen before", gofer.ErrUnavailable},
		// The go command finds no repository root for the path (cmd/go/internal/vcs,
		// RepoRootForImportPath): "does not exist" to it (modfetch.lookupDirect), whatever the
		// cause, network errors of the ?go-get=1 lookup included.
		10: {"example.com/m@v1.0.0: unrecognized import path \"example.com/m\": https fetch: Get \"https://example.com/m?go-get=1\": dial tcp 10.0.0.1:443: i/o timeout", gofer.ErrNotFound},
		12: {"example.com/m@v1.0.0: unrecognized import path \"example.com/m\": https fetch: Get \"https://example.com/m?go-get=1\": dial tcp: lookup example.com on 10.255.255.53:53: no such host", gofer.ErrNotFound},
		13: {"example.com/m@v1.0.0: unrecognized import path \"example.com/m\": reading https://example.com/m?go-get=1: 503 Service Unavailable", gofer.ErrNotFound},
		14: {"example.com/m@v1.0.0: unrecognized import path \"example.com/m\": parse https://example.com/m?go-get=1: no go-import meta tags ()", gofer.ErrNotFound},
		15: {"example.com/m@v1.8.0: invalid github.com import path \"github.com\"", gofer.ErrNotFound},
		16: {"example.com/m@v1.0.0: no modules on example.net", gofer.ErrNotFound},
		17: {"example.com/m@v1.0.0: rsc.io is not a module", gofer.ErrNotFound},
		18: {"example.com/m@v1.0.0: \"//\" not allowed in import path", gofer.ErrNotFound},
		19: {"example.com/m@v1.0.0: import path does not begin with hostname", gofer.ErrNotFound},
		20: {"example.com/m@v1.0.0: unknown version control system \"cvs\"", gofer.ErrNotFound},
		21: {"example.com/m@v1.0.0: invalid version control suffix in example.com/ path", gofer.ErrNotFound},
		22: {"example.com/m@v1.0.0: GOVCS disallows using hg for public example.com/m; see 'go help vcs'", gofer.ErrNotFound},
		// Once the root is known, the same network errors are outages of its host.
		23: {"example.com/m@v1.0.0: invalid version: git ls-remote -q origin: exit status 128:\n\tfatal: unable to access 'https://example.com/m/': Failed to connect to example.com port 443: Connection timed out", gofer.ErrUnavailable},
		24: {"example.com/m@v1.0.0: lookup example.com/m: git ls-remote -q https://example.com/m: exit status 128: fatal: unable to access: Could not resolve host: example.com", gofer.ErrUnavailable},
	} {
		err := f.classify(context.Background(), dir, what, tc.msg)
		if !errors.Is(err, tc.want) {
			t.Errorf("%d: %q: got %v, want %v", i, tc.msg, err, tc.want)
		}
		msg := err.Error()
		if strings.Contains(msg, "\n") || strings.Contains(msg, dir) || strings.Contains(msg, "Confirm the import path") {
			t.Errorf("%d: message not cleaned to one line: %q", i, msg)
		}
		if strings.Contains(msg, "10.255.255.53") {
			t.Errorf("%d: message names the name server: %q", i, msg)
		}
		if !strings.HasPrefix(msg, "example.com/m") {
			t.Errorf("%d: message does not start with the module: %q", i, msg)
		}
	}
}

func TestGitRepo(t *testing.T) {
	for path, want := range map[string]string{
		"git.gofer.test/private/mod.git":     "git.gofer.test/private/mod",
		"git.gofer.test/private/mod.git/v2":  "git.gofer.test/private/mod",
		"example.com/a.git/b.git":            "example.com/a",
		"example.com/x/y":                    "",
		"example.com/.git/x":                 "",
		"example.com/x.gitlab/y":             "",
		"example.com:8443/team/repo.git/sub": "example.com:8443/team/repo",
	} {
		got, ok := gitRepo(path)
		if got != want || ok != (want != "") {
			t.Errorf("gitRepo(%q) = %q, %v; want %q", path, got, ok, want)
		}
	}
}

// No credential of the netrc or the git config, nor any URL's userinfo, survives in a message;
// short logins (names, not secrets) are left alone so that messages stay readable.
func TestScrub(t *testing.T) {
	dir := t.TempDir()
	netrc := filepath.Join(dir, "netrc")
	if err := os.WriteFile(netrc, []byte(`machine git.gofer.test login gofer password netrc-pw-1
machine api.example.com
  login ghp_0123456789abcdefghij
  password x-oauth-basic
`), 0o600); err != nil {
		t.Fatal(err)
	}
	gitconfig := filepath.Join(dir, "gitconfig")
	if err := os.WriteFile(gitconfig, []byte(`[url "https://bot:url-pw-2@mirror.example.com/"]
	insteadOf = https://example.com/
[http "https://example.com/"]
	extraHeader = Authorization: Basic aGVhZGVyLXNlY3JldC0z
[credential]
	helper = "!f() { echo username=bot; echo password=helper-pw-4; }; f"
[gitlab]
	token = glpat-token-5
`), 0o600); err != nil {
		t.Fatal(err)
	}
	f := &Fetcher{NetrcFile: netrc, GitConfig: gitconfig}
	secrets := []string{"netrc-pw-1", "ghp_0123456789abcdefghij", "x-oauth-basic", "url-pw-2", "aGVhZGVyLXNlY3JldC0z", "helper-pw-4", "glpat-token-5"}
	msg := "git.gofer.test/m.git@v1.0.0: fatal: could not read Password for 'https://gofer@git.gofer.test': " +
		strings.Join(secrets, " ") + " https://ghp_0123456789abcdefghij@api.example.com/x https://bot:tok%40en@mirror.example.com/ -H 'Authorization: Basic aGVhZGVyLXNlY3JldC0z'"
	got := f.scrub(msg)
	for _, s := range append(secrets, "bot:", "tok%40en") {
		if strings.Contains(got, s) {
			t.Errorf("scrubbed message holds %q: %s", s, got)
		}
	}
	if !strings.HasPrefix(got, "git.gofer.test/m.git@v1.0.0: fatal: could not read Password for 'https://xxxxx@git.gofer.test'") {
		t.Errorf("scrubbed message mangled: %s", got)
	}
}
