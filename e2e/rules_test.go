package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goferproxy/gofer/internal/fakeproxy"
	"github.com/goferproxy/gofer/internal/testserver"
)

// Each rule and download mode of a GOFER_RULES file, through the real go command against the
// gofer binary, and a reload on SIGHUP.
func TestRulesAndModes(t *testing.T) {
	up := fakeproxy.New()
	for _, m := range []string{"example.com/asyncmod", "example.com/redir", "example.com/cacheonly"} {
		up.Add(m, "v1.0.0", map[string]string{"go.mod": "module " + m + "\n", "m.go": "package m\n"})
	}
	upURL := up.Start(t)
	data := t.TempDir()
	rulesFile := filepath.Join(t.TempDir(), "rules")
	write := func(text string) {
		if err := os.WriteFile(rulesFile, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`
example.com/hello/v2   exclude
example.com/dep        passthrough
example.com/asyncmod   async
example.com/redir      redirect
example.com/cacheonly  none
`)
	addr := freeAddr(t)
	p := startProcess(t, buildGofer(t), addr, []string{
		"GOFER_DATA_DIR=" + data, "GOFER_UPSTREAM=" + upURL, "GOFER_SUMDB=off", "GOFER_RULES=" + rulesFile,
		"GOFER_TEMPORAL_ADDRESS=" + temporalAddress, "GOFER_TEMPORAL_NAMESPACE=" + namespace(t)}, "serve")
	url := "http://" + addr
	stored := func(module string) bool {
		_, err := os.Stat(filepath.Join(data, "blobs", module))
		return err == nil
	}

	// exclude: 403 with a reason, and never fetched.
	if code, _, body := testserver.Get(t, "GET", url+"/example.com/hello/v2/@v/v2.0.0.info"); code != http.StatusForbidden || !strings.Contains(string(body), "excluded") {
		t.Errorf("excluded: %d %q", code, body)
	}
	if _, err := download(t, url, "example.com/hello/v2@v2.0.0"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("the go command got an excluded module: %v", err)
	}
	if n := up.Requests("/example.com/hello/v2/@v/v2.0.0.info"); n != 0 {
		t.Errorf("an excluded module reached the upstream %d times", n)
	}

	// passthrough: served from the upstream, nothing stored.
	if _, err := download(t, url, "example.com/dep@v0.1.0"); err != nil {
		t.Errorf("passthrough: %v", err)
	}
	if stored("example.com/dep") {
		t.Error("a passthrough module was stored")
	}

	// async: 404 at once, so a GOPROXY=gofer,upstream client falls through; then stored.
	if code, _, _ := testserver.Get(t, "GET", url+"/example.com/asyncmod/@v/v1.0.0.info"); code != http.StatusNotFound {
		t.Errorf("async miss: %d, want 404 at once", code)
	}
	if _, err := download(t, url+","+upURL, "example.com/asyncmod@v1.0.0"); err != nil {
		t.Errorf("async with fall-through: %v", err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if code, _, _ := testserver.Get(t, "GET", url+"/example.com/asyncmod/@v/v1.0.0.zip"); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the async fetch never made the version available")
		}
	}
	if _, err := download(t, url, "example.com/asyncmod@v1.0.0"); err != nil {
		t.Errorf("async, from the cache: %v", err)
	}

	// redirect: the client is sent to the upstream, nothing is stored.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(url + "/example.com/redir/@v/v1.0.0.zip")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != upURL+"/example.com/redir/@v/v1.0.0.zip" {
		t.Errorf("redirect: %d to %q", resp.StatusCode, loc)
	}
	if _, err := download(t, url, "example.com/redir@v1.0.0"); err != nil {
		t.Errorf("redirect: %v", err)
	}
	if stored("example.com/redir") {
		t.Error("a redirected module was stored")
	}

	// none: only what is stored; a miss is 404 and reaches nobody.
	if code, _, body := testserver.Get(t, "GET", url+"/example.com/cacheonly/@v/v1.0.0.info"); code != http.StatusNotFound || !strings.Contains(string(body), "none") {
		t.Errorf("mode none: %d %q", code, body)
	}
	if n := up.Requests("/example.com/cacheonly/@v/v1.0.0.info"); n != 0 {
		t.Errorf("mode none reached the upstream %d times", n)
	}

	// SIGHUP: a bad file keeps the rules in force; a good one replaces them.
	write("example.com/hello/v2 bogus\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(500 * time.Millisecond)
	if code, _, _ := testserver.Get(t, "GET", url+"/example.com/hello/v2/@v/v2.0.0.info"); code != http.StatusForbidden {
		t.Errorf("after a bad reload: %d, want the old rules (403)", code)
	}
	write("example.com/cacheonly none\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(500 * time.Millisecond)
	if _, err := download(t, url, "example.com/hello/v2@v2.0.0"); err != nil {
		t.Errorf("after the exclusion was lifted: %v", err)
	}
}
