package testserver

import (
	"os"
)

// MongoServer is FerretDB (MongoDB wire protocol over SQLite) on a temporary directory.
type MongoServer struct {
	*Process
	URI string // mongodb://127.0.0.1:port/
}

// Mongo starts FerretDB (built from tools/ferretdb).
func Mongo() (*MongoServer, error) {
	dir, err := os.MkdirTemp("", "gofer-mongo-*")
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	s := &MongoServer{URI: "mongodb://" + hostPort(port) + "/"}
	s.Process, err = start("ferretdb", dir, []string{"--listen", hostPort(port), "--sqlite-dir", dir},
		func() error { return listening(hostPort(port)) })
	return s, err
}
