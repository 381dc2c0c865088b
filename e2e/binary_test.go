package e2e

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goferproxy/gofer/docs"
	"github.com/goferproxy/gofer/internal/fakeproxy"
	"github.com/goferproxy/gofer/internal/fakesumdb"
	"github.com/goferproxy/gofer/internal/testserver"
)

// buildGofer builds cmd/gofer into a temporary directory.
func buildGofer(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gofer")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/gofer").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// process is a gofer binary running as a separate process.
type process struct {
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan error
}

// startProcess runs `gofer args...` with the GOFER_* settings in env, stops it at cleanup, and,
// for a front end (listen != ""), waits until /healthz answers.
func startProcess(t testing.TB, bin, listen string, env []string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(bin, args...), out: &bytes.Buffer{}, done: make(chan error, 1)}
	p.cmd.Env = append(os.Environ(), env...)
	if listen != "" {
		p.cmd.Env = append(p.cmd.Env, "GOFER_LISTEN="+listen)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	for deadline := time.Now().Add(30 * time.Second); listen != ""; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get("http://" + listen + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gofer %v did not come up:\n%s", args, p.out)
		}
	}
	return p
}

// stop sends SIGINT and reports how the process ended.
func (p *process) stop(t *testing.T) error {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		return err
	case <-time.After(15 * time.Second):
		t.Fatalf("still running 15s after SIGINT:\n%s", p.out)
		return nil
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	port, err := testserver.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// `gofer serve` serves at most GOFER_MAX_CONNECTIONS connections at once: one more waits to be
// accepted until another closes.
func TestConnectionCap(t *testing.T) {
	addr := freeAddr(t)
	startProcess(t, buildGofer(t), addr, []string{
		"GOFER_DATA_DIR=" + t.TempDir(), "GOFER_UPSTREAM=off", "GOFER_SUMDB=off", "GOFER_MAX_CONNECTIONS=2",
		"GOFER_TEMPORAL_ADDRESS=" + temporalAddress, "GOFER_TEMPORAL_NAMESPACE=" + namespace(t)}, "serve")
	http.DefaultClient.CloseIdleConnections() // the start-up probe's
	health := func(c net.Conn, wait time.Duration) error {
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: gofer\r\n\r\n"); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(wait))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	var held []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	for _, c := range held[:2] {
		if err := health(c, 5*time.Second); err != nil {
			t.Fatalf("one of the first two connections: %v", err)
		}
	}
	if err := health(held[2], time.Second); err == nil {
		t.Fatal("a third connection was served while two were open")
	}
	held[0].Close()
	held[2].SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(held[2]), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the third connection once one closed: %v %v", resp, err)
	}
	resp.Body.Close()
}

// `gofer serve`, configured only by GOFER_* variables, serves the go command, keeps serving
// with the upstream gone, and stops cleanly on SIGINT.
func TestGoferServe(t *testing.T) {
	up := fakeproxy.New()
	addr := freeAddr(t)
	p := startProcess(t, buildGofer(t), addr, []string{
		"GOFER_DATA_DIR=" + t.TempDir(), "GOFER_UPSTREAM=" + up.Start(t),
		"GOFER_TEMPORAL_ADDRESS=" + temporalAddress, "GOFER_TEMPORAL_NAMESPACE=" + namespace(t),
		"GOFER_FETCH_WAIT=30s", "GOFER_SUMDB=off"}, "serve")
	url := "http://" + addr
	first, err := download(t, url, "example.com/dep@v0.1.0")
	if err != nil {
		t.Fatal(err)
	}
	up.Close()
	second, err := download(t, url, "example.com/dep@v0.1.0")
	if err != nil {
		t.Fatalf("with the upstream stopped: %v", err)
	}
	if first.Sum != second.Sum {
		t.Errorf("sum changed from %s to %s", first.Sum, second.Sum)
	}
	if err := p.stop(t); err != nil {
		t.Errorf("gofer serve exited with %v after SIGINT:\n%s", err, p.out)
	}
}

// Every setting of docs/settings.md (which a test of cmd/gofer holds to the code) is in the
// --help of each command that takes it, with its variable and default; a default the table
// says comes from the go command is what `go env` says; and no command's --help has a setting
// the table does not give that command.
func TestServeHelpDocumentsSettings(t *testing.T) {
	bin := buildGofer(t)
	rows, err := docs.Settings()
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]map[string]docs.Setting{} // by command, then flag
	for _, r := range rows {
		for _, c := range r.Commands {
			if documented[c] == nil {
				documented[c] = map[string]docs.Setting{}
			}
			documented[c][r.Flag] = r
		}
	}
	usage, err := exec.Command(bin, "help").Output()
	if err != nil {
		t.Fatal(err)
	}
	cmds := regexp.MustCompile(`(?m)^  gofer (\w+)`).FindAllStringSubmatch(string(usage), -1)
	if len(cmds) == 0 {
		t.Fatalf("gofer help names no commands:\n%s", usage)
	}
	seen := map[string]bool{}
	for _, m := range cmds {
		cmd := m[1]
		if seen[cmd] {
			continue // gofer gc has two lines
		}
		seen[cmd] = true
		out, _ := exec.Command(bin, cmd, "--help").CombinedOutput()
		helped := map[string]bool{}
		for _, h := range helpSetting.FindAllStringSubmatch(string(out), -1) {
			flag, env, def := h[1], h[2], h[3]
			helped[flag] = true
			r, ok := documented[cmd][flag]
			if !ok {
				t.Errorf("gofer %s --help has -%s (env %s), which docs/settings.md does not give gofer %s", cmd, flag, env, cmd)
				continue
			}
			want := r.Default
			if names := r.GoEnv(); names != nil {
				want = goEnvFirst(t, names)
			}
			if env != r.Env || def != want {
				t.Errorf("gofer %s --help: -%s is env %s, default %q; docs/settings.md says env %s, default %q (%s)", cmd, flag, env, def, r.Env, want, r.Default)
			}
		}
		for flag, r := range documented[cmd] {
			if !helped[flag] {
				t.Errorf("gofer %s --help does not document -%s (%s):\n%s", cmd, flag, r.Env, out)
			}
		}
	}
	for cmd := range documented {
		if !seen[cmd] {
			t.Errorf("docs/settings.md has settings of gofer %s, which gofer help does not name", cmd)
		}
	}
}

// helpSetting is a flag in a --help and the "(env GOFER_X; default ...)" line that ends its text.
var helpSetting = regexp.MustCompile(`(?m)^  -(\S+).*\n(?:    \t.*\n)*?    \t\(env (\w+); default (.*)\)$`)

// goEnvFirst returns the first of the go command's settings names that is set.
func goEnvFirst(t *testing.T, names []string) string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"env"}, names...)...).Output()
	if err != nil {
		t.Fatal(err)
	}
	for v := range strings.Lines(string(out)) {
		if v = strings.TrimSuffix(v, "\n"); v != "" {
			return v
		}
	}
	return ""
}

// `gofer serve` finds the checksum database named by GOFER_SUMDB through its upstream's
// /sumdb/<name>/, as the go command does, refuses a version the database disagrees with, and
// counts the alarm on /metrics.
func TestGoferServeChecksumDatabase(t *testing.T) {
	up := fakeproxy.New()
	db := fakesumdb.New("sum.gofer.test", up.GoSum)
	up.ServeSumDB(db.Name(), db.Handler())
	db.SetRecord("example.com/hello", "v1.1.0", []byte(
		"example.com/hello v1.1.0 h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"+
			"example.com/hello v1.1.0/go.mod h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"))
	addr := freeAddr(t)
	startProcess(t, buildGofer(t), addr, []string{
		"GOFER_DATA_DIR=" + t.TempDir(), "GOFER_UPSTREAM=" + up.Start(t),
		"GOFER_TEMPORAL_ADDRESS=" + temporalAddress, "GOFER_TEMPORAL_NAMESPACE=" + namespace(t),
		"GOFER_SUMDB=" + db.VerifierKey(), "GOFER_NOSUMDB="}, "serve")
	url := "http://" + addr
	if _, err := download(t, url, "example.com/hello@v1.0.0", "GOSUMDB="+db.VerifierKey()); err != nil {
		t.Fatal(err)
	}
	if code, _, body := testserver.Get(t, "GET", url+"/example.com/hello/@v/v1.1.0.zip"); code != http.StatusGone {
		t.Errorf("a version the database disagrees with: %d %q, want 410", code, body)
	}
	_, _, metrics := testserver.Get(t, "GET", url+"/metrics")
	var alarms string
	for _, line := range strings.Split(string(metrics), "\n") {
		if strings.HasPrefix(line, "gofer_checksum_alarms_total{") && strings.Contains(line, `reason="sumdb-mismatch"`) {
			alarms = line
		}
	}
	// Both hashes are lies: the fetch of the .mod refuses its own, and the zip is not fetched.
	if !strings.HasSuffix(alarms, " 1") {
		t.Errorf("/metrics has not counted one sumdb-mismatch alarm: %q", alarms)
	}
}
