package server

import (
	"hash/maphash"
	"strings"
	"sync/atomic"

	"golang.org/x/mod/module"

	"github.com/goferproxy/gofer"
)

// maxPathLen bounds a request path: no real module path and version come near it.
const maxPathLen = 1024

// request is one parsed download-protocol request.
type request struct {
	path    string // module path, unescaped and valid
	kind    string // "list", "latest", "info", "mod" or "zip"
	version string // for info, mod, zip: unescaped; canonical unless kind is info
	key     string // path@version (versionKey) if version is canonical, else ""
}

// canonical reports whether the request names a canonical version that can be stored as is.
func (r request) canonical() bool { return r.key != "" }

// parseRequest parses a URL path as the go command sends it:
// /<escaped module>/@v/list, /@v/<escaped version>.{info,mod,zip}, or /<escaped module>/@latest.
// Anything else cannot name a module version, so it is not found.
func parseRequest(urlPath string) (request, error) {
	if len(urlPath) > maxPathLen {
		return request{}, gofer.Errorf(gofer.ErrNotFound, "request path longer than %d bytes", maxPathLen)
	}
	p := strings.TrimPrefix(urlPath, "/")
	var r request
	var escMod, escVer string
	if m, ok := strings.CutSuffix(p, "/@latest"); ok {
		escMod, r.kind = m, "latest"
	} else if i := strings.LastIndex(p, "/@v/"); i >= 0 {
		escMod = p[:i]
		file := p[i+len("/@v/"):]
		if file == "list" {
			r.kind = "list"
		} else if dot := strings.LastIndex(file, "."); dot >= 0 {
			escVer, r.kind = file[:dot], file[dot+1:]
		}
	}
	switch r.kind {
	case "list", "latest", "info", "mod", "zip":
	default:
		return r, gofer.Errorf(gofer.ErrNotFound, "not a module proxy path: %s", urlPath)
	}
	var err error
	if r.path, err = unescapePath(escMod); err != nil {
		return r, gofer.Errorf(gofer.ErrNotFound, "invalid module path: %w", err)
	}
	if r.kind == "list" || r.kind == "latest" {
		return r, nil
	}
	// No version, branch, tag or commit starts with "-", which git would take for an option.
	if r.version, err = module.UnescapeVersion(escVer); err != nil || r.version == "" || strings.Contains(r.version, "/") || r.version[0] == '-' {
		return r, gofer.Errorf(gofer.ErrNotFound, "invalid version %q", escVer)
	}
	// The path passed module.CheckPath in unescapePath: of module.Check's rules, the version's
	// are left (a canonical version is a valid one).
	if module.CanonicalVersion(r.version) == r.version && majorOK(r.path, r.version) {
		r.key = versionKey(r.path, r.version)
	}
	// Only .info may ask for a query (a branch or a commit); the go command resolves it to a
	// canonical version before it asks for .mod or .zip.
	if r.kind != "info" && !r.canonical() {
		if err := module.Check(r.path, r.version); err != nil {
			return r, gofer.Errorf(gofer.ErrNotFound, "%w", err)
		}
		return r, gofer.Errorf(gofer.ErrNotFound, "version %s of %s is not canonical", r.version, r.path)
	}
	return r, nil
}

// versionKey is the key of path@version in memory.
func versionKey(path, version string) string { return path + "@" + version }

// majorOK is module.Check's last rule: version's major suits the /vN (or .vN) of path.
func majorOK(path, version string) bool {
	_, pathMajor, _ := module.SplitPathVersion(path)
	return module.CheckPathMajor(version, pathMajor) == nil
}

// unescapePath is module.UnescapePath without its copy for the usual path, which has no "!"
// and no upper case letter and so is its own unescaped form.
func unescapePath(esc string) (string, error) {
	if strings.ContainsFunc(esc, func(r rune) bool { return r == '!' || 'A' <= r && r <= 'Z' }) {
		return module.UnescapePath(esc)
	}
	return esc, module.CheckPath(esc)
}

// parsedRequests remembers what parseRequest made of the URL paths of canonical versions' files,
// so that a hot hit's path is checked once rather than at every request: a table of
// parsedSlots entries, each path in the slot its hash picks, so that a path whose slot another
// took is parsed again. Only valid paths are kept, at most maxPathLen bytes each.
type parsedRequests struct {
	seed  maphash.Seed
	slots [parsedSlots]atomic.Pointer[parsedRequest]
}

const parsedSlots = 1 << 11

type parsedRequest struct {
	urlPath string
	req     request
}

func newParsedRequests() *parsedRequests { return &parsedRequests{seed: maphash.MakeSeed()} }

// parse is parseRequest(urlPath).
func (p *parsedRequests) parse(urlPath string) (request, error) {
	slot := &p.slots[maphash.String(p.seed, urlPath)%parsedSlots]
	if e := slot.Load(); e != nil && e.urlPath == urlPath {
		return e.req, nil
	}
	r, err := parseRequest(urlPath)
	if err == nil && r.canonical() {
		slot.Store(&parsedRequest{strings.Clone(urlPath), r})
	}
	return r, err
}
