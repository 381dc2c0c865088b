package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// reader streams one object. Read continues the body of the last GET for as long as reads are
// sequential; Seek only moves an offset, so that http.ServeContent's Seek(0, SeekEnd) and
// Seek(0, SeekStart) (it measures the size) keep the body Open fetched. Only a Read at an
// offset the body is not at closes it and GETs "bytes=<offset>-". ReadAt makes its own ranged
// GET for exactly its window, and so never disturbs Read and can run in parallel.
//
// Every GET after Open's carries If-Match with the ETag Open saw, so that a blob deleted and
// stored again while it is read cannot mix old and new bytes in one stream.
type reader struct {
	s      *Store
	ctx    context.Context // Open's: the reader lives within the request that opened it
	key    string
	obj    string
	etag   *string
	size   int64
	closed atomic.Bool

	mu      sync.Mutex // guards what follows, for Read, Seek and Close
	off     int64      // where the next Read reads
	body    io.ReadCloser
	bodyOff int64 // where body's next byte comes from
}

var errClosed = errors.New("s3: read of a closed blob reader")

func (r *reader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed.Load() {
		return 0, errClosed
	}
	if r.off >= r.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if r.body == nil || r.bodyOff != r.off {
		r.drop()
		body, err := r.get(r.off, -1)
		if err != nil {
			return 0, err
		}
		r.body, r.bodyOff = body, r.off
	}
	// Never past the size Open reported, which the server has sent as Content-Length.
	p = p[:min(int64(len(p)), r.size-r.off)]
	n, err := r.body.Read(p)
	r.off += int64(n)
	r.bodyOff += int64(n)
	switch {
	case err == io.EOF && r.off < r.size:
		r.drop()
		err = r.s.fail("read", r.key, fmt.Errorf("the object ended at %d of %d bytes: %w", r.off, r.size, io.ErrUnexpectedEOF))
	case err == io.EOF:
		r.drop()
	case err != nil:
		// The next Read starts a new GET at the offset reached: a caller may retry.
		r.drop()
		err = r.s.fail("read", r.key, err)
	case r.off == r.size:
		r.drop() // returns the connection now rather than at Close
	}
	return n, err
}

// drop closes the current body, if any; r.mu must be held.
func (r *reader) drop() error {
	if r.body == nil {
		return nil
	}
	err := r.body.Close()
	r.body = nil
	return err
}

func (r *reader) Seek(offset int64, whence int) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size
	default:
		return 0, fmt.Errorf("s3: seek %q: invalid whence %d", r.key, whence)
	}
	if offset < 0 {
		return 0, fmt.Errorf("s3: seek %q: negative position %d", r.key, offset)
	}
	r.off = offset
	return offset, nil
}

// ReadAt reads len(p) bytes at off in one ranged GET; like any io.ReaderAt, it returns io.EOF
// with fewer bytes when the blob ends within the window.
func (r *reader) ReadAt(p []byte, off int64) (int, error) {
	if r.closed.Load() {
		return 0, errClosed
	}
	if off < 0 {
		return 0, fmt.Errorf("s3: read %q: negative offset %d", r.key, off)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	want := min(int64(len(p)), r.size-off)
	body, err := r.get(off, off+want-1)
	if err != nil {
		return 0, err
	}
	defer body.Close()
	n, err := io.ReadFull(body, p[:want])
	if err != nil {
		return n, r.s.fail("read", r.key, err)
	}
	if want < int64(len(p)) {
		return n, io.EOF
	}
	return n, nil
}

// get GETs the bytes from first to last (-1: to the end) of the object Open saw.
func (r *reader) get(first, last int64) (io.ReadCloser, error) {
	rng := fmt.Sprintf("bytes=%d-", first)
	if last >= 0 {
		rng += fmt.Sprint(last)
	}
	out, err := r.s.client.GetObject(r.ctx, &awss3.GetObjectInput{Bucket: &r.s.bucket, Key: &r.obj, Range: &rng, IfMatch: r.etag})
	if err != nil {
		if status(err) == 412 {
			err = fmt.Errorf("the blob was replaced since it was opened: %w", err)
		}
		return nil, r.s.fail("read", r.key, err)
	}
	return out.Body, nil
}

func (r *reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed.Swap(true) {
		return nil
	}
	return r.drop()
}
