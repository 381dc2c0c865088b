package testserver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"go.temporal.io/sdk/client"

	"github.com/goferproxy/gofer/workflows"
)

// Namespaces is how many isolated namespaces Temporal creates, named by Namespace(i), so that
// tests sharing one server never see each other's workflow IDs.
const Namespaces = 60

// Namespace is the name of the i-th test namespace.
func Namespace(i int) string { return fmt.Sprintf("test-%d", i) }

// TemporalServer is a Temporal dev server with gofer's search attributes.
type TemporalServer struct {
	*Process
	Address string // gRPC host:port
}

// Temporal starts the Temporal CLI's dev server, headless, with a temporary database.
func Temporal() (*TemporalServer, error) {
	dir, err := os.MkdirTemp("", "gofer-temporal-*")
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	s := &TemporalServer{Address: hostPort(port)}
	args := []string{"server", "start-dev",
		"--ip", "127.0.0.1", "--port", strconv.Itoa(port), "--headless",
		"--db-filename", filepath.Join(dir, "temporal.db"),
		"--log-level", "error",
		// A test database need not survive a power cut; workflows and activities start
		// eagerly, as the README recommends for production servers.
		"--sqlite-pragma", "synchronous=OFF",
		"--dynamic-config-value", "system.enableActivityEagerExecution=true",
		"--dynamic-config-value", "system.enableEagerWorkflowStart=true"}
	for _, name := range workflows.SearchAttributes {
		args = append(args, "--search-attribute", name+"=Keyword")
	}
	for i := range Namespaces {
		args = append(args, "--namespace", Namespace(i))
	}
	s.Process, err = start("temporal", dir, args, s.healthy)
	return s, err
}

func (s *TemporalServer) healthy() error {
	c, err := client.Dial(client.Options{HostPort: s.Address, Logger: quiet{}})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.CheckHealth(context.Background(), nil)
	return err
}

// quiet drops the SDK's log lines while polling for the server.
type quiet struct{}

func (quiet) Debug(string, ...any) {}
func (quiet) Info(string, ...any)  {}
func (quiet) Warn(string, ...any)  {}
func (quiet) Error(string, ...any) {}
