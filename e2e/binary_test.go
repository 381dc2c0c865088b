package e2e

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goferproxy/gofer/internal/fakeproxy"
)

// buildGofer builds cmd/gofer into a temporary directory.
func buildGofer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gofer")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/gofer").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// `gofer serve`, configured only by GOFER_* variables, serves the go command, keeps serving
// with the upstream gone, and stops cleanly on SIGINT.
func TestGoferServe(t *testing.T) {
	bin := buildGofer(t)
	up := fakeproxy.New()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(),
		"GOFER_LISTEN="+addr, "GOFER_DATA_DIR="+t.TempDir(), "GOFER_UPSTREAM="+up.Start(t),
		"GOFER_TEMPORAL_ADDRESS="+temporalAddress, "GOFER_TEMPORAL_NAMESPACE="+namespace(t),
		"GOFER_FETCH_WAIT=30s")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	url := "http://" + addr
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(url + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gofer serve did not come up:\n%s", out.String())
		}
	}
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
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-done:
		done <- err // for the cleanup
		if err != nil {
			t.Errorf("gofer serve exited with %v after SIGINT:\n%s", err, out.String())
		}
	case <-time.After(15 * time.Second):
		t.Errorf("gofer serve still running 15s after SIGINT")
	}
}

// Every setting is documented in `gofer serve --help`, with its variable.
func TestServeHelpDocumentsSettings(t *testing.T) {
	out, _ := exec.Command(buildGofer(t), "serve", "--help").CombinedOutput()
	for _, env := range []string{"GOFER_LISTEN", "GOFER_DATA_DIR", "GOFER_TEMPORAL_ADDRESS", "GOFER_TEMPORAL_NAMESPACE", "GOFER_UPSTREAM", "GOFER_FETCH_WAIT", "GOFER_WORKER"} {
		if !strings.Contains(string(out), env) {
			t.Errorf("gofer serve --help does not mention %s:\n%s", env, out)
		}
	}
}
