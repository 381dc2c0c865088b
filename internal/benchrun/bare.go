package main

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"github.com/gin-gonic/gin"
)

// The bare servers are the ceilings of the stack gofer runs on: every file of the layout held in
// memory and written with the headers a gofer hit carries (Content-Type, Cache-Control, a
// strong ETag, Accept-Ranges, X-Request-Id, Content-Length), with nothing else done per request:
// no path checks, no metrics, no log, no conditional or range handling. "nethttp" is a
// net/http handler; "gin" is the same handler behind one catch-all gin route, as gofer's
// front end is a gin engine.
var bareKinds = []string{"nethttp", "gin"}

// bareFile is one file of the layout and its headers, made once.
type bareFile struct {
	data   []byte
	header http.Header
}

// loadBare reads every file under root, keyed by its URL path.
func loadBare(root string) (map[string]bareFile, error) {
	files := map[string]bareFile{}
	err := filepath.WalkDir(root, func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, name)
		if err != nil {
			return err
		}
		ctype := map[string]string{".info": "application/json", ".mod": "text/plain; charset=utf-8", ".zip": "application/zip"}[filepath.Ext(name)]
		if ctype == "" {
			ctype = "text/plain; charset=utf-8" // @v/list
		}
		sum := sha256.Sum256(data)
		files["/"+filepath.ToSlash(rel)] = bareFile{data: data, header: http.Header{
			"Content-Type":   {ctype},
			"Cache-Control":  {"public, max-age=31536000, immutable"},
			"Etag":           {`"` + hex.EncodeToString(sum[:]) + `"`},
			"Accept-Ranges":  {"bytes"},
			"X-Request-Id":   {"0123456789abcdef"},
			"Content-Length": {strconv.Itoa(len(data))},
		}}
		return nil
	})
	return files, err
}

// serveBare is the bare server of kind over root's files, until killed.
func serveBare(kind, root, addr string) error {
	files, err := loadBare(root)
	if err != nil {
		return err
	}
	serve := func(w http.ResponseWriter, path string) {
		f, ok := files[path]
		if !ok {
			http.NotFound(w, nil)
			return
		}
		h := w.Header()
		for k, v := range f.header {
			h[k] = v
		}
		w.Write(f.data)
	}
	var handler http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { serve(w, r.URL.Path) })
	if kind == "gin" {
		gin.SetMode(gin.ReleaseMode)
		e := gin.New()
		e.GET("/*path", func(c *gin.Context) { serve(c.Writer, c.Request.URL.Path) })
		handler = e
	}
	return http.ListenAndServe(addr, handler)
}
