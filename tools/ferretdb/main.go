// Command ferretdb runs FerretDB (the MongoDB wire protocol over SQLite) for gofer's tests and
// local runs. It embeds FerretDB's own embeddable package, because `go install` of FerretDB's
// command panics on a version file that only its release builds have. It lives in a module of its
// own so that FerretDB's dependencies never enter gofer's go.mod. Telemetry is always off.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "host:port to serve the MongoDB wire protocol on")
	dir := flag.String("sqlite-dir", "./data/ferretdb", "directory of the SQLite databases")
	flag.Parse()
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Handler:   "sqlite",
		SQLiteURL: "file:" + *dir + "/",
		Logger:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintln(os.Stderr, "ferretdb serving on", *listen)
	f.Run(ctx)
}
