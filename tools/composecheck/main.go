// Command composecheck validates a Compose file the way `docker compose config` does, with the
// compose-spec loader (schema, interpolation, consistency of services, volumes and networks),
// and prints the normalized project as JSON for gofer's tests to inspect. No Docker engine is
// needed. It lives in a module of its own so that compose-go never enters gofer's go.mod.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: composecheck docker-compose.yml")
		os.Exit(2)
	}
	opts, err := cli.NewProjectOptions([]string{os.Args[1]}, cli.WithOsEnv, cli.WithDotEnv, cli.WithConsistency(true))
	if err == nil {
		var p any
		if p, err = opts.LoadProject(context.Background()); err == nil {
			err = json.NewEncoder(os.Stdout).Encode(p)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "composecheck:", err)
		os.Exit(1)
	}
}
