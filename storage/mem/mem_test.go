package mem

import (
	"testing"

	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/storage/storagetest"
)

func TestBlobs(t *testing.T) {
	storagetest.TestBlobs(t, func(*testing.T) storage.Blobs { return New() })
}
