package s3

import (
	"io"
)

// part holds up to partSize bytes of a blob for one upload request. Its memory comes in chunks
// allocated as bytes arrive, so that a 200-byte .info costs a small chunk rather than a whole
// part, and a full part is never copied into a bigger buffer on the way. The chunks are reused
// for the next part of the same blob.
type part struct {
	chunks [][]byte
	n      int64 // bytes held, from the start of chunks[0]
}

const (
	firstChunk = 64 << 10
	chunkSize  = 1 << 20
)

// fill replaces the part's bytes with the next ones of r, up to partSize. more reports whether
// r goes on past a full part, which it finds out by reading one byte ahead.
func (p *part) fill(r *peekReader) (more bool, err error) {
	p.n = 0
	for i := 0; p.n < partSize; i++ {
		if i == len(p.chunks) {
			size := int64(chunkSize)
			if i == 0 {
				size = firstChunk
			}
			p.chunks = append(p.chunks, make([]byte, min(size, partSize-p.n)))
		}
		n, err := io.ReadFull(r, p.chunks[i])
		p.n += int64(n)
		switch err {
		case nil:
		case io.EOF, io.ErrUnexpectedEOF:
			return false, nil
		default:
			return false, err
		}
	}
	return r.more()
}

// ReadAt reads the part's bytes, for the SectionReader that is each request's body.
func (p *part) ReadAt(b []byte, off int64) (int, error) {
	if off >= p.n {
		return 0, io.EOF
	}
	want := len(b)
	b = b[:min(int64(len(b)), p.n-off)]
	n := 0
	for _, c := range p.chunks {
		if n == len(b) {
			break
		}
		if off >= int64(len(c)) {
			off -= int64(len(c))
			continue
		}
		n += copy(b[n:], c[off:])
		off = 0
	}
	if n < want {
		return n, io.EOF
	}
	return n, nil
}

// reader is the body of one request: seekable, so that the SDK can sign it and resend it on a
// retry.
func (p *part) reader() io.ReadSeeker {
	return io.NewSectionReader(p, 0, p.n)
}

// peekReader can read one byte ahead and hand it out again.
type peekReader struct {
	r    io.Reader
	b    [1]byte
	held bool
}

func (p *peekReader) Read(b []byte) (int, error) {
	if !p.held {
		return p.r.Read(b)
	}
	if len(b) == 0 {
		return 0, nil
	}
	b[0] = p.b[0]
	p.held = false
	return 1, nil
}

// more reports whether r has another byte, keeping it for the next Read.
func (p *peekReader) more() (bool, error) {
	if p.held {
		return true, nil
	}
	n, err := io.ReadFull(p.r, p.b[:])
	if n == 1 {
		p.held = true
		return true, nil
	}
	if err == io.EOF {
		return false, nil
	}
	return false, err
}
