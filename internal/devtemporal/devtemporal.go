// Package devtemporal starts a real Temporal dev server (the Temporal CLI's start-dev) for
// tests: on free 127.0.0.1 ports, with a temporary database and gofer's search attributes, and
// stops it afterwards. It is for tests only and never starts anything that outlives them.
package devtemporal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
)

// Server is a running dev server.
type Server struct {
	// Address is the gRPC host:port to dial.
	Address string
	cmd     *exec.Cmd
	dir     string
	out     *bytes.Buffer
	done    chan struct{}
}

// Binary finds the Temporal CLI: $GOFER_TEMPORAL_BIN, or bin/temporal at the module root.
func Binary() (string, error) {
	if p := os.Getenv("GOFER_TEMPORAL_BIN"); p != "" {
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, "bin", "temporal")
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("the Temporal CLI is missing at %s: run `make tools` (or `make test`, which builds it once per machine)", p)
			}
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("devtemporal: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Namespaces is how many isolated namespaces Start creates, named by Namespace(i), so that tests
// sharing one server never see each other's workflow IDs.
const Namespaces = 40

// Namespace is the name of the i-th test namespace.
func Namespace(i int) string { return fmt.Sprintf("test-%d", i) }

// Start starts a dev server and waits until it answers, at most a minute.
func Start() (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "gofer-temporal-*")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Address: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir, out: &bytes.Buffer{}, done: make(chan struct{})}
	args := []string{"server", "start-dev",
		"--ip", "127.0.0.1", "--port", strconv.Itoa(port), "--headless",
		"--db-filename", filepath.Join(dir, "temporal.db"),
		"--search-attribute", "GoModule=Keyword", "--search-attribute", "GoVersion=Keyword",
		"--log-level", "error"}
	for i := range Namespaces {
		args = append(args, "--namespace", Namespace(i))
	}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	if err := s.wait(time.Minute); err != nil {
		s.Stop()
		return nil, fmt.Errorf("temporal dev server did not come up: %v\n%s", err, s.out)
	}
	return s, nil
}

func (s *Server) wait(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		c, err := client.Dial(client.Options{HostPort: s.Address, Logger: quiet{}})
		if err == nil {
			_, err = c.CheckHealth(context.Background(), nil)
			c.Close()
			if err == nil {
				return nil
			}
		}
		select {
		case <-s.done:
			return errors.New("the process exited")
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return err
		}
	}
}

// Stop kills the server and its process group and removes its database.
func (s *Server) Stop() {
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
	os.RemoveAll(s.dir)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// quiet drops the SDK's log lines while polling for the server.
type quiet struct{}

func (quiet) Debug(string, ...any) {}
func (quiet) Info(string, ...any)  {}
func (quiet) Warn(string, ...any)  {}
func (quiet) Error(string, ...any) {}
