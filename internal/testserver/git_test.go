package testserver

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The git server asks for credentials, serves a clone with them, refuses connections while
// stopped and serves again, on the same port, once started.
func TestGitServer(t *testing.T) {
	s, err := Git("u", "pw")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Module("a/m.git", "git.gofer.test/a/m.git", "v1.0.0", "v1.0.1"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(s.URL + "/a/m.git/info/refs?service=git-upload-pack")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without credentials: %s, want 401", resp.Status)
	}
	dir := t.TempDir()
	lsRemote := func() (string, error) {
		u := strings.Replace(s.URL, "http://", "http://u:pw@", 1) + "/a/m.git"
		cmd := exec.Command("git", "ls-remote", "--tags", u)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0"}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := lsRemote()
	if err != nil || !strings.Contains(out, "refs/tags/v1.0.0") || !strings.Contains(out, "refs/tags/v1.0.1") {
		t.Fatalf("ls-remote: %v\n%s", err, out)
	}
	s.Stop()
	if err := listening(s.Host); err == nil {
		t.Fatal("still listening after Stop")
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if out, err := lsRemote(); err != nil {
		t.Fatalf("ls-remote after the restart: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(s.Root, "a/m.git", "HEAD")); err != nil {
		t.Errorf("no bare repository under Root: %v", err)
	}
}
