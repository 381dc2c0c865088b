package testserver

import (
	"testing"
)

// Each server starts, stops (its port refuses connections), and starts again on the same port.
func TestStartStopRestart(t *testing.T) {
	s3, err := S3()
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	mongo, err := Mongo()
	if err != nil {
		t.Fatal(err)
	}
	defer mongo.Close()
	for _, c := range []struct {
		p    *Process
		addr string
	}{{s3.Process, s3.Endpoint[len("http://"):]}, {mongo.Process, mongo.URI[len("mongodb://") : len(mongo.URI)-1]}} {
		if err := listening(c.addr); err != nil {
			t.Fatalf("%s: %v", c.p.name, err)
		}
		c.p.Stop()
		if err := listening(c.addr); err == nil {
			t.Fatalf("%s still listening after Stop", c.p.name)
		}
		if err := c.p.Start(); err != nil {
			t.Fatal(err)
		}
		if err := listening(c.addr); err != nil {
			t.Fatalf("%s after restart: %v", c.p.name, err)
		}
	}
}
