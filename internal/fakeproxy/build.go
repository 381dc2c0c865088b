package fakeproxy

import (
	"archive/zip"
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"
	"golang.org/x/tools/txtar"
)

// testdata holds one txtar file per module version. The comment section has "module: <path>",
// "version: <version>" and optionally "time: <RFC 3339>"; the files are the module's files.
//
//go:embed testdata/*.txtar
var testdata embed.FS

// defaultTime is the .info time of a version that states none: fixed, so every run serves the
// same bytes.
var defaultTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// txtarModule is one module version parsed from a testdata file.
type txtarModule struct {
	path, version string
	time          time.Time
	files         map[string]string
}

func (p *Proxy) loadTestdata() error {
	names, err := fs.Glob(testdata, "testdata/*.txtar")
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return errors.New("no testdata/*.txtar")
	}
	for _, name := range names {
		m, err := readTxtar(name)
		if err != nil {
			return err
		}
		e, err := build(m.path, m.version, m.time, m.files)
		if err != nil {
			return fmt.Errorf("%s: %v", name, err)
		}
		p.put(m.path, m.version, e)
	}
	return nil
}

// readTxtar parses the embedded testdata file name.
func readTxtar(name string) (txtarModule, error) {
	data, err := testdata.ReadFile(name)
	if err != nil {
		return txtarModule{}, err
	}
	ar := txtar.Parse(data)
	m := txtarModule{time: defaultTime, files: make(map[string]string)}
	for line := range strings.Lines(string(ar.Comment)) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			return m, fmt.Errorf("%s: comment line %q is not key: value", name, line)
		}
		value = strings.TrimSpace(value)
		switch key {
		case "module":
			m.path = value
		case "version":
			m.version = value
		case "time":
			if m.time, err = time.Parse(time.RFC3339, value); err != nil {
				return m, fmt.Errorf("%s: %v", name, err)
			}
		default:
			return m, fmt.Errorf("%s: unknown comment key %q", name, key)
		}
	}
	if m.path == "" || m.version == "" {
		return m, fmt.Errorf("%s: the comment needs both a module: and a version: line", name)
	}
	for _, f := range ar.Files {
		m.files[f.Name] = string(f.Data)
	}
	return m, nil
}

// build makes the three files of path@version from the module's files.
func build(path, version string, t time.Time, files map[string]string) (*entry, error) {
	gomod, ok := files["go.mod"]
	if !ok {
		return nil, errors.New("files have no go.mod")
	}
	info, err := json.Marshal(struct {
		Version string
		Time    time.Time
	}{version, t.UTC()})
	if err != nil {
		return nil, err
	}
	var zf []modzip.File
	for _, name := range slices.Sorted(maps.Keys(files)) {
		zf = append(zf, memFile{name, files[name]})
	}
	var buf bytes.Buffer
	if err := modzip.Create(&buf, module.Version{Path: path, Version: version}, zf); err != nil {
		return nil, err
	}
	return &entry{info: info, mod: []byte(gomod), zip: buf.Bytes()}, nil
}

// RawZip returns a zip archive holding exactly the given files under exactly the given names,
// with none of the module zip rules, for crafting bad zips to serve with SetFile.
func RawZip(files map[string]string) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		w, err := zw.Create(name)
		if err == nil {
			_, err = io.WriteString(w, files[name])
		}
		if err != nil {
			panic(fmt.Sprintf("fakeproxy: RawZip: %s: %v", name, err))
		}
	}
	if err := zw.Close(); err != nil {
		panic("fakeproxy: RawZip: " + err.Error())
	}
	return buf.Bytes()
}

// memFile is a module file held in memory, in the form golang.org/x/mod/zip.Create reads.
type memFile struct {
	path, data string
}

func (f memFile) Path() string                 { return f.path }
func (f memFile) Lstat() (fs.FileInfo, error)  { return memInfo(f), nil }
func (f memFile) Open() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(f.data)), nil }

// memInfo describes a memFile as a regular file with no modification time.
type memInfo memFile

func (i memInfo) Name() string       { return i.path[strings.LastIndex(i.path, "/")+1:] }
func (i memInfo) Size() int64        { return int64(len(i.data)) }
func (i memInfo) Mode() fs.FileMode  { return 0o644 }
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return false }
func (i memInfo) Sys() any           { return nil }
