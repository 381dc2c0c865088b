package fakeproxy

import (
	"archive/zip"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strings"

	"golang.org/x/mod/sumdb/dirhash"
)

// GoSum returns the two go.sum lines of path@version as served now, the zip's and the go.mod's
// ("path version h1:..." and "path version/go.mod h1:..."), hashed with dirhash from the
// bytes p serves, as the go command hashes what it downloads. It is the natural source of
// records for a test checksum database (fakesumdb.New(name, p.GoSum)). A version p does not
// hold, or holds without a zip or go.mod, is an error matching fs.ErrNotExist; a hidden version
// still counts, as a database never forgets a version its upstream lost.
func (p *Proxy) GoSum(path, version string) ([]byte, error) {
	p.mu.Lock()
	e := p.mods[path][version]
	var zipData, mod []byte
	if e != nil {
		zipData, mod = e.zip, e.mod
	}
	p.mu.Unlock()
	if zipData == nil || mod == nil {
		return nil, &fs.PathError{Op: "gosum", Path: path + "@" + version, Err: fs.ErrNotExist}
	}
	zr, err := zip.NewReader(bytes.NewReader(zipData), int64(len(zipData)))
	if err != nil {
		return nil, fmt.Errorf("fakeproxy: GoSum(%q, %q): %v", path, version, err)
	}
	var names []string
	files := make(map[string]*zip.File)
	for _, f := range zr.File {
		names = append(names, f.Name)
		files[f.Name] = f
	}
	zipHash, err := dirhash.Hash1(names, func(name string) (io.ReadCloser, error) { return files[name].Open() })
	if err != nil {
		return nil, fmt.Errorf("fakeproxy: GoSum(%q, %q): %v", path, version, err)
	}
	modHash, err := dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(mod)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("fakeproxy: GoSum(%q, %q): %v", path, version, err)
	}
	return fmt.Appendf(nil, "%s %s %s\n%s %s/go.mod %s\n", path, version, zipHash, path, version, modHash), nil
}

// ServeSumDB makes p proxy the checksum database name, as a GOPROXY may: /sumdb/<name>/supported
// answers 200, and any other /sumdb/<name>/<rest> is handed to h as /<rest> (the paths
// golang.org/x/mod/sumdb's server serves: /latest, /lookup/..., /tile/...). A nil h stops
// proxying name. Such requests are logged and can be failed (Fail) like any other.
func (p *Proxy) ServeSumDB(name string, h http.Handler) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if h == nil {
		delete(p.sumdbs, name)
		return
	}
	if p.sumdbs == nil {
		p.sumdbs = make(map[string]http.Handler)
	}
	p.sumdbs[name] = h
}

// sumdb returns the handler and the path it must see for a request to a proxied checksum
// database, if urlPath is one; p.mu must be held.
func (p *Proxy) sumdb(urlPath string) (http.Handler, string, bool) {
	rest, ok := strings.CutPrefix(urlPath, "/sumdb/")
	if !ok {
		return nil, "", false
	}
	for name, h := range p.sumdbs {
		if sub, ok := strings.CutPrefix(rest, name+"/"); ok {
			return h, "/" + sub, true
		}
	}
	return nil, "", false
}

// serveSumDB answers a request for a proxied checksum database, sub being its path there.
func serveSumDB(w http.ResponseWriter, r *http.Request, h http.Handler, sub string) {
	if sub == "/supported" {
		w.Header().Set("Content-Type", textPlain)
		w.WriteHeader(http.StatusOK)
		return
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path = sub
	r2.URL.RawPath = ""
	r2.RequestURI = ""
	h.ServeHTTP(w, r2)
}
