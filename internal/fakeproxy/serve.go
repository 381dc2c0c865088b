package fakeproxy

import (
	"fmt"
	"net/http"
	pathpkg "path"
	"regexp"
	"strings"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

// answer is one response, decided under p.mu and written after it is released.
type answer struct {
	status int
	ctype  string
	body   []byte
}

const (
	textPlain = "text/plain; charset=utf-8"
	appJSON   = "application/json"
	appZip    = "application/zip"
)

func (p *Proxy) serveHTTP(w http.ResponseWriter, r *http.Request) {
	urlPath := r.URL.Path
	p.mu.Lock()
	p.log = append(p.log, urlPath)
	p.requests[urlPath]++
	var ans answer
	sumdb, sumdbPath, isSumDB := p.sumdb(urlPath)
	if f := p.fails[urlPath]; f != nil {
		isSumDB = false
		ans = answer{f.status, textPlain, []byte("injected failure")}
		if f.left > 0 {
			f.left--
			if f.left == 0 {
				delete(p.fails, urlPath)
			}
		}
	} else if !isSumDB {
		ans = p.answer(urlPath)
	}
	delay, rate, stop := p.delay, p.rate, p.stop
	p.mu.Unlock()

	if delay > 0 {
		timer := time.NewTimer(delay)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-r.Context().Done():
			return
		case <-stop:
			// Returning would send an empty 200; a closed upstream answers nothing.
			panic(http.ErrAbortHandler)
		}
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		ans = answer{http.StatusMethodNotAllowed, textPlain, []byte("method not allowed")}
	} else if isSumDB {
		serveSumDB(w, r, sumdb, sumdbPath)
		return
	}
	w.Header().Set("Content-Type", ans.ctype)
	w.Header().Set("Content-Length", fmt.Sprint(len(ans.body)))
	w.WriteHeader(ans.status)
	if rate <= 0 {
		w.Write(ans.body)
		return
	}
	// A tenth of a second's worth at a time.
	step := max(rate/10, 1)
	for body := ans.body; len(body) > 0; body = body[min(step, len(body)):] {
		if _, err := w.Write(body[:min(step, len(body))]); err != nil {
			return
		}
		w.(http.Flusher).Flush()
		select {
		case <-time.After(100 * time.Millisecond):
		case <-r.Context().Done():
			return
		case <-stop:
			panic(http.ErrAbortHandler)
		}
	}
}

// answer decides the response to the escaped URL path urlPath; p.mu must be held.
func (p *Proxy) answer(urlPath string) answer {
	rest := strings.TrimPrefix(urlPath, "/")
	if escPath, ok := strings.CutSuffix(rest, "/@latest"); ok {
		path, err := module.UnescapePath(escPath)
		if err != nil {
			return notFound("%v", err)
		}
		v := p.latest(path)
		if v == "" {
			return notFound("%s: no versions", path)
		}
		return p.file(path, v, ".info")
	}
	escPath, file, ok := strings.Cut(rest, "/@v/")
	if !ok {
		return notFound("%s: not a module proxy path", urlPath)
	}
	path, err := module.UnescapePath(escPath)
	if err != nil {
		return notFound("%v", err)
	}
	if p.mods[path] == nil {
		return notFound("%s: unknown module", path)
	}
	if file == "list" {
		var b strings.Builder
		for _, v := range p.listed(path) {
			b.WriteString(v + "\n")
		}
		return answer{http.StatusOK, textPlain, []byte(b.String())}
	}
	ext := pathpkg.Ext(file)
	version, err := module.UnescapeVersion(strings.TrimSuffix(file, ext))
	if err != nil {
		return notFound("%s: %v", path, err)
	}
	switch ext {
	case ".info":
		if v := p.resolve(path, version); v != "" {
			version = v
		}
		return p.file(path, version, ext)
	case ".mod", ".zip":
		return p.file(path, version, ext)
	}
	return notFound("%s: not a module proxy path", urlPath)
}

// file answers one file (ext ".info", ".mod" or ".zip") of path@version; p.mu must be held.
func (p *Proxy) file(path, version, ext string) answer {
	e := p.mods[path][version]
	if e == nil || p.hidden[path+"@"+version] {
		return notFound("%s@%s: unknown version", path, version)
	}
	var body []byte
	var ctype string
	switch ext {
	case ".info":
		body, ctype = e.info, appJSON
	case ".mod":
		body, ctype = e.mod, textPlain
	case ".zip":
		body, ctype = e.zip, appZip
	}
	if body == nil {
		return notFound("%s@%s: no %s file", path, version, ext)
	}
	return answer{http.StatusOK, ctype, body}
}

// listed returns the versions of path that are not hidden, in semver order; p.mu must be held.
func (p *Proxy) listed(path string) []string {
	var vs []string
	for v := range p.mods[path] {
		if !p.hidden[path+"@"+v] {
			vs = append(vs, v)
		}
	}
	semver.Sort(vs)
	return vs
}

// latest returns the highest listed release of path, or the highest listed pre-release if there
// is no release, as the go command chooses; "" if nothing is listed. p.mu must be held.
func (p *Proxy) latest(path string) string {
	vs := p.listed(path)
	for i := len(vs) - 1; i >= 0; i-- {
		if semver.Prerelease(vs[i]) == "" {
			return vs[i]
		}
	}
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// resolve maps a query that is not a listed version to one that is: "master" (standing for any
// branch a test needs) to the latest version, a commit hash prefix to the pseudo-version of that
// commit, and a semver prefix such as "v1.1" to the highest
// version it prefixes. It returns "" when nothing matches. p.mu must be held.
func (p *Proxy) resolve(path, query string) string {
	vs := p.listed(path)
	for _, v := range vs {
		if v == query {
			return v
		}
	}
	if query == "master" {
		return p.latest(path)
	}
	if commit.MatchString(query) {
		// A commit hash (or a prefix of one of 7 digits or more) names the pseudo-version of
		// that commit.
		for _, v := range vs {
			if module.IsPseudoVersion(v) {
				if rev, err := module.PseudoVersionRev(v); err == nil && strings.HasPrefix(rev, query) {
					return v
				}
			}
		}
		return ""
	}
	if !semver.IsValid(query) {
		return ""
	}
	canon := semver.Canonical(query)
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i] == canon || strings.HasPrefix(vs[i], query+".") {
			return vs[i]
		}
	}
	return ""
}

var commit = regexp.MustCompile(`^[0-9a-f]{7,40}$`)

func notFound(format string, args ...any) answer {
	return answer{http.StatusNotFound, textPlain, []byte("not found: " + fmt.Sprintf(format, args...))}
}
