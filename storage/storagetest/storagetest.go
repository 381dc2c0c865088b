// Package storagetest holds the conformance suites that every storage.Blobs and
// storage.Metadata implementation runs from its own tests, so that disk, S3, memory, the
// embedded store and MongoDB are held to one reading of the contract in package storage, and
// the helpers their tests share (Record, Key, WantCatalog, ...). It imports testing
// and must therefore never be imported by non-test code, and it must never depend on any one
// implementation or reach behind the interfaces it checks.
package storagetest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/goferproxy/gofer/storage"
)

// RandomBytes returns n reproducible bytes that differ for every seed, so that a blob that is
// truncated, shifted or mixed with another never compares equal by accident.
func RandomBytes(seed uint64, n int) []byte {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

// Key is storage.Key of a path and version that tb knows to be valid; an error stops tb.
func Key(tb testing.TB, path, version, ext string) string {
	tb.Helper()
	return valid(tb)(storage.Key(path, version, ext))
}

// StagingKey is storage.StagingKey of a valid path and version, as Key is storage.Key.
func StagingKey(tb testing.TB, path, version, stage, ext string) string {
	tb.Helper()
	return valid(tb)(storage.StagingKey(path, version, stage, ext))
}

// StagingPrefix is storage.StagingPrefix of a valid path and version, as Key is storage.Key.
func StagingPrefix(tb testing.TB, path, version, runID string) string {
	tb.Helper()
	return valid(tb)(storage.StagingPrefix(path, version, runID))
}

// valid takes what a key function returns, so that one call can pass it on whole.
func valid(tb testing.TB) func(key string, err error) string {
	return func(key string, err error) string {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return key
	}
}

// Stream hides every method of r but Read, so that no implementation can come to depend on
// seeking, WriterTo or a known length: the commit path hands Put a network stream.
func Stream(r io.Reader) io.Reader { return plainReader{r} }

type plainReader struct{ r io.Reader }

func (p plainReader) Read(b []byte) (int, error) { return p.r.Read(b) }

func reader(b []byte) io.Reader { return Stream(bytes.NewReader(b)) }

// countingReader records how many bytes a Put consumed.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += n
	return n, err
}

// slowReader hands out its bytes in small chunks with a pause between them, so that a Put
// stays in progress long enough for concurrent readers to observe any intermediate state.
type slowReader struct {
	b     []byte
	chunk int
	pause time.Duration
}

func (s *slowReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	time.Sleep(s.pause)
	n := min(len(p), s.chunk, len(s.b))
	copy(p, s.b[:n])
	s.b = s.b[n:]
	return n, nil
}

// diff describes how got differs from want without printing megabytes of bytes.
func diff(got, want []byte) string {
	if bytes.Equal(got, want) {
		return ""
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	return fmt.Sprintf("got %d bytes, want %d; first difference at offset %d", len(got), len(want), i)
}
