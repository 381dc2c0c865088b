package server_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/goferproxy/gofer/internal/teststores"
	"github.com/goferproxy/gofer/server"
	"github.com/goferproxy/gofer/storage/storagetest"
)

// serveStalling serves a store holding a zipSize zip of benchPath@benchVersion with the given
// StallTimeout, through the server's own HTTPServer, and returns its address and the zip's URL path.
func serveStalling(t *testing.T, stall time.Duration) (string, string) {
	t.Helper()
	disk, meta := teststores.Open(t, "")
	storeVersion(t, disk, meta, benchVersion, zipSize)
	srv := server.New(server.Config{Blobs: disk, Meta: meta, Upstream: &upstreamInfo{}, Temporal: fetchStarter{}, StallTimeout: stall})
	hs := srv.HTTPServer()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	return l.Addr().String(), "/" + storagetest.Key(t, benchPath, benchVersion, "zip")
}

// zipSize is more than the kernel buffers between a server and a client on loopback hold
// (a few MiB each way), so that the server's writes wait for the client.
const zipSize = 12 << 20

// dialSmall connects with a small receive buffer, so that a client that reads slowly soon
// holds up the server's writes.
func dialSmall(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	tc := c.(*net.TCPConn)
	tc.SetReadBuffer(64 << 10)
	t.Cleanup(func() { tc.Close() })
	return tc
}

// A client that stops reading a large zip is cut off once it has taken nothing for the
// StallTimeout; one that reads slowly but steadily gets the whole zip, however long it takes
// in all: the deadline is per chunk, not per response.
func TestStalledClientIsCutOff(t *testing.T) {
	const stall = 2 * time.Second
	addr, path := serveStalling(t, stall)

	stalled := dialSmall(t, addr)
	fmt.Fprintf(stalled, "GET %s HTTP/1.1\r\nHost: gofer\r\n\r\n", path)
	time.Sleep(3 * stall)
	stalled.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _ := io.Copy(io.Discard, stalled)
	if n >= zipSize {
		t.Errorf("a client that stalled for %v received all %d bytes: it was not cut off", 3*stall, n)
	}

	steady := dialSmall(t, addr)
	fmt.Fprintf(steady, "GET %s HTTP/1.1\r\nHost: gofer\r\nConnection: close\r\n\r\n", path)
	steady.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(steady), nil)
	if err != nil {
		t.Fatal(err)
	}
	start, got := time.Now(), int64(0)
	buf := make([]byte, 256<<10)
	for {
		k, err := io.ReadFull(resp.Body, buf)
		got += int64(k)
		if err != nil {
			break
		}
		time.Sleep(stall / 20) // 256 KiB every 100 ms: each MiB well within the stall timeout, the zip in about 5 s
	}
	if took := time.Since(start); got != zipSize || took < 2*stall {
		t.Errorf("a slow, steady client got %d of %d bytes in %v", got, zipSize, took)
	}
}

// The HTTPServer closes a keep-alive connection that waits too long for its next request, and
// bounds how long a request may take to arrive.
func TestHTTPServerTimeouts(t *testing.T) {
	disk, meta := teststores.Open(t, "")
	hs := server.New(server.Config{Blobs: disk, Meta: meta, Upstream: &upstreamInfo{}, Temporal: fetchStarter{}, Admin: server.Admin{Token: "t"}}).HTTPServer()
	if hs.ReadHeaderTimeout <= 0 || hs.ReadTimeout <= 0 || hs.IdleTimeout <= 0 || hs.IdleTimeout > 2*time.Minute || hs.WriteTimeout != 0 {
		t.Errorf("timeouts: header %v, read %v, idle %v, write %v; want all but write set (a response may wait for a fetch), idle at most 2m",
			hs.ReadHeaderTimeout, hs.ReadTimeout, hs.IdleTimeout, hs.WriteTimeout)
	}
	// A body that trickles in is cut off at the read timeout.
	hs.ReadTimeout = 300 * time.Millisecond
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(l)
	defer hs.Close()
	c := dialSmall(t, l.Addr().String())
	fmt.Fprintf(c, "POST /admin/warm HTTP/1.1\r\nHost: gofer\r\nAuthorization: Bearer t\r\nContent-Length: 1000\r\n\r\n")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 20 {
			if _, err := c.Write([]byte("x")); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	// Without a read timeout the server would wait for the rest of the body as long as it trickles.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	rest, _ := io.ReadAll(c)
	<-done
	if !strings.HasPrefix(string(rest), "HTTP/1.1 400") || !strings.Contains(string(rest), "reading the body") {
		t.Errorf("a body that trickles in for longer than the read timeout: %q, want 400 at the timeout", rest)
	}
}
