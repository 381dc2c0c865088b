// Package testserver starts the real servers gofer's tests run against (a Temporal dev server,
// versitygw for S3, FerretDB for MongoDB) from the pinned binaries in ./bin, and a git server
// (git-http-backend, from the system's git), on free 127.0.0.1 ports with temporary data, and
// stops them. It is for tests only: nothing it starts outlives the test process (each server
// dies with it, by Pdeathsig, or runs inside it).
package testserver

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Process is a running server; Stop and Start it again to simulate an outage (same port, same
// data).
type Process struct {
	name  string
	bin   string
	args  []string
	ready func() error
	dir   string // temporary data, removed by Close

	mu   sync.Mutex
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan struct{}
}

// Binary finds the pinned tool name: $GOFER_<NAME>_BIN, or bin/<name> at the module root.
func Binary(name string) (string, error) {
	if p := os.Getenv("GOFER_" + upper(name) + "_BIN"); p != "" {
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, "bin", name)
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("%s is missing at %s: run `make tools` (or `make test`, which builds it once per machine)", name, p)
			}
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testserver: no go.mod above the working directory")
		}
		dir = parent
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// start runs bin/name with args and waits, at most a minute, until ready answers nil.
func start(name, dir string, args []string, ready func() error) (*Process, error) {
	bin, err := Binary(name)
	if err != nil {
		return nil, err
	}
	p := &Process{name: name, bin: bin, args: args, ready: ready, dir: dir}
	if err := p.Start(); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Start (re)starts a stopped server and waits until it answers; it does nothing to a server
// that is running.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return nil
	}
	p.out = &bytes.Buffer{}
	p.cmd = exec.Command(p.bin, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		p.cmd = nil
		return err
	}
	done := make(chan struct{})
	p.done = done
	cmd := p.cmd
	go func() { cmd.Wait(); close(done) }()
	deadline := time.Now().Add(time.Minute)
	for {
		err := p.ready()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("%s exited at start:\n%s", p.name, p.out)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.kill()
			return fmt.Errorf("%s did not come up: %v\n%s", p.name, err, p.out)
		}
	}
}

// Stop kills the server (and anything it started); its data stays for a restart.
func (p *Process) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.kill()
}

func (p *Process) kill() {
	if p.cmd == nil {
		return
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	p.cmd = nil
}

// Close stops the server and removes its data.
func (p *Process) Close() {
	p.Stop()
	os.RemoveAll(p.dir)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// listening reports whether something accepts connections on addr.
func listening(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
