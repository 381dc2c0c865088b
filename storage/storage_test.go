package storage

import (
	"errors"
	"strings"
	"testing"

	"github.com/goferproxy/gofer"
)

func TestParseKey(t *testing.T) {
	for i, c := range []struct {
		key                string
		path, version, ext string
		ok                 bool
	}{
		0: {"example.com/m/@v/v1.0.0.zip", "example.com/m", "v1.0.0", "zip", true},
		1: {"github.com/!azure/sdk/@v/v1.0.0-!r!c1.info", "github.com/Azure/sdk", "v1.0.0-RC1", "info", true},
		2: {"example.com/m/@v/v2.0.0.mod", "", "", "", false}, // the major version does not match the path
		3: {"example.com/m/@v/v2.0.0+incompatible.mod", "example.com/m", "v2.0.0+incompatible", "mod", true},
		4: {"_staging/example.com/m/@v/v1.0.0/run/1.zip", "", "", "", false},
		5: {"example.com/m/@v/v1.0.0.tar", "", "", "", false},
		6: {"example.com/m/@v/list", "", "", "", false},
		7: {"example.com/M/@v/v1.0.0.zip", "", "", "", false},
	} {
		path, version, ext, ok := ParseKey(c.key)
		if ok != c.ok || path != c.path || version != c.version || ext != c.ext {
			t.Errorf("%d: ParseKey(%q) = %q %q %q %v", i, c.key, path, version, ext, ok)
		}
		if !ok {
			continue
		}
		if key, err := Key(path, version, ext); err != nil || key != c.key {
			t.Errorf("%d: Key does not invert ParseKey: %q, %v", i, key, err)
		}
	}
}

func TestParseStagingKey(t *testing.T) {
	for i, c := range []struct {
		key                  string
		path, version, runID string
		ok                   bool
	}{
		0: {stagingKey(t, "example.com/m", "v1.0.0", "run-1/2", "zip"), "example.com/m", "v1.0.0", "run-1", true},
		1: {stagingKey(t, "github.com/Azure/sdk", "v1.0.0-RC1", "r/1", "info"), "github.com/Azure/sdk", "v1.0.0-RC1", "r", true},
		2: {"_staging/example.com/m/@v/v1.0.0/run/.1.zip.tmp-42", "example.com/m", "v1.0.0", "run", true},
		3: {"example.com/m/@v/v1.0.0.zip", "", "", "", false},
		4: {"_staging/example.com/m/@v/v1.0.0.zip", "", "", "", false},
		5: {"_staging/example.com/M/@v/v1.0.0/run/1.zip", "", "", "", false},
		6: {"_staging/example.com/m/@v/v1.0.0//1.zip", "", "", "", false},
	} {
		path, version, runID, ok := ParseStagingKey(c.key)
		if ok != c.ok || path != c.path || version != c.version || runID != c.runID {
			t.Errorf("%d: ParseStagingKey(%q) = %q %q %q %v", i, c.key, path, version, runID, ok)
		}
	}
}

func stagingKey(t *testing.T, path, version, stage, ext string) string {
	t.Helper()
	key, err := StagingKey(path, version, stage, ext)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// A path or version that cannot be escaped names nothing that can exist: every key of it is an
// error a client is told as not found, naming what was wrong, never a panic in the server.
func TestKeyOfInvalid(t *testing.T) {
	for i, c := range []struct{ path, version, bad string }{
		0: {"example.com/m", "v1.0.0!", "v1.0.0!"}, // '!' is the escape character
		1: {"example.com/m", "", `version ""`},
		2: {"example.com/m/", "v1.0.0", "example.com/m/"},
		3: {"-example.com/m", "v1.0.0", "-example.com/m"},
	} {
		keys := map[string]func() (string, error){
			"Key":           func() (string, error) { return Key(c.path, c.version, "zip") },
			"StagingKey":    func() (string, error) { return StagingKey(c.path, c.version, "run/1", "zip") },
			"StagingPrefix": func() (string, error) { return StagingPrefix(c.path, c.version, "run") },
		}
		for name, key := range keys {
			got, err := key()
			if !errors.Is(err, gofer.ErrNotFound) || !strings.Contains(err.Error(), c.bad) {
				t.Errorf("%d: %s(%q, %q) = %q, %v; want an error matching gofer.ErrNotFound that names %q", i, name, c.path, c.version, got, err, c.bad)
			}
		}
	}
}

// Any failure of a store is unavailable, a missing blob included; nil and a taken key pass.
func TestFailure(t *testing.T) {
	if err := Failure(nil); err != nil {
		t.Errorf("Failure(nil) = %v", err)
	}
	taken := errors.Join(errors.New("put m/@v/v1.0.0.zip"), gofer.ErrExists)
	if err := Failure(taken); err != taken {
		t.Errorf("Failure(%v) = %v, want it as it is", taken, err)
	}
	missing := errors.Join(errors.New("open m/@v/v1.0.0.zip"), gofer.ErrNotFound)
	if err := Failure(missing); gofer.Kind(err) != gofer.ErrUnavailable || errors.Is(err, gofer.ErrNotFound) {
		t.Errorf("Failure(%v) = %v, want unavailable and no longer not found", missing, err)
	}
}
