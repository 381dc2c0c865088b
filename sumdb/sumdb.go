// Package sumdb is gofer's side of the Go checksum database: it parses a GOSUMDB value, checks
// the go.sum hashes of every module version gofer fetches against the database with a verified
// tree head persisted in gofer's blob store (so a rollback or fork is noticed across restarts),
// and proxies the database's /sumdb/<name>/ protocol to the go command. It must never send the
// name of a module that matches the private patterns (GONOSUMDB, GOPRIVATE) to the database,
// never accept a version the database has not vouched for through a signed, consistent tree,
// never store a tile or lookup it has not authenticated, and never hard-code a database or proxy
// host: every name, key and URL comes from the GOSUMDB value and the upstream list it is given.
package sumdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/note"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/egress"
)

// Database is one checksum database, as a GOSUMDB value names it. Create it with ParseGOSUMDB,
// or directly when name, key and URL are all known (tests do).
type Database struct {
	// Name is the database's name, host[/path], as its key states it.
	Name string
	// Key is the database's verifier key, "name+hash+key" in golang.org/x/mod/sumdb/note form.
	Key string
	// URL is where the database is asked, without a trailing slash. Empty means: find it on
	// first use as the go command does, through the upstream proxies given to ParseGOSUMDB (the
	// first that answers <base>/sumdb/<name>/supported with 200 proxies it), else
	// https://<name>. The answer is kept for the life of the Database.
	URL string

	upstreams []string

	mu       sync.Mutex
	resolved string
}

// ParseGOSUMDB parses a GOSUMDB value with the go command's syntax: "off" (no database: nil,
// nil), "name+hash+key", or "name+hash+key url". A bare "name" (optionally with a URL) is
// accepted only for a database the go command itself knows, whose key gofer reads from the go
// command's own table in $(go env GOROOT)/src/cmd/go/internal/modfetch: gofer carries no key
// of its own. upstreams are the upstream GOPROXY entries in order (base URLs, or "off" and
// "direct", which end the search); they are consulted only when the value gives no URL, and
// only on first use, so ParseGOSUMDB never touches the network.
func ParseGOSUMDB(value string, upstreams []string) (*Database, error) {
	return parseGOSUMDB(value, upstreams, goroot)
}

func parseGOSUMDB(value string, upstreams []string, goroot func() (string, error)) (*Database, error) {
	value = strings.TrimSpace(value)
	if value == "off" {
		return nil, nil
	}
	fields := strings.Fields(value)
	switch {
	case len(fields) == 0:
		return nil, errors.New("GOSUMDB is empty: set it to off, name+key or name+key url")
	case len(fields) > 2:
		return nil, fmt.Errorf("invalid GOSUMDB %q: too many fields", value)
	}
	key := fields[0]
	// A note name cannot contain '+', so a value without one can only be a bare name.
	if !strings.Contains(key, "+") {
		known, knownURL, err := knownKey(key, goroot)
		if err != nil {
			return nil, err
		}
		key = known
		if len(fields) == 1 && knownURL != "" {
			fields = append(fields, knownURL)
		}
	}
	verifier, err := note.NewVerifier(key)
	if err != nil {
		return nil, fmt.Errorf("invalid GOSUMDB %q: %v", value, err)
	}
	name := verifier.Name()
	if !validName(name) {
		return nil, fmt.Errorf("invalid GOSUMDB %q: database name %q is not host[/path]", value, name)
	}
	db := &Database{Name: name, Key: key, upstreams: slices.Clone(upstreams)}
	if len(fields) == 2 {
		if db.URL, err = parseURL(fields[1]); err != nil {
			return nil, fmt.Errorf("invalid GOSUMDB %q: %v", value, err)
		}
	}
	return db, nil
}

// validName reports whether name is host[/path] and nothing more, as the go command requires:
// it becomes part of URLs and of blob keys, so nothing in it may be reinterpreted.
func validName(name string) bool {
	u, err := url.Parse("https://" + name)
	return err == nil && u.Host != "" && u.User == nil && u.RawQuery == "" && !u.ForceQuery &&
		u.Fragment == "" && u.RawPath == "" && !strings.HasSuffix(name, "/") &&
		u.Host+u.Path == name && !strings.Contains(name, "..")
}

func parseURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "", err
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("URL %q: scheme must be http or https", u.Redacted())
	case u.Host == "":
		return "", fmt.Errorf("URL %q: no host", u.Redacted())
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		// Protocol paths are appended to the URL; a query or fragment would swallow them.
		return "", fmt.Errorf("URL %q: query or fragment not allowed", u.Redacted())
	}
	return strings.TrimRight(raw, "/"), nil
}

// knownKey returns the verifier key the go command holds for the bare database name, and for
// a name the go command treats as an alias of a known database, the URL it uses for it.
func knownKey(name string, goroot func() (string, error)) (key, url string, err error) {
	noKey := func(why error) error {
		return fmt.Errorf("GOSUMDB=%s has no key: set GOFER_SUMDB to name+key (%v)", name, why)
	}
	root, err := goroot()
	if err != nil {
		return "", "", noKey(err)
	}
	dir := filepath.Join(root, "src", "cmd", "go", "internal", "modfetch")
	table, err := os.ReadFile(filepath.Join(dir, "key.go"))
	if err != nil {
		return "", "", noKey(fmt.Errorf("the go command's sources are missing: %v", err))
	}
	if key := findKey(table, name); key != "" {
		return key, "", nil
	}
	// The go command maps an alias (a mirror of a known database) to "name url" in its
	// dialling code rather than in the table; read that mapping the same way.
	if src, err := os.ReadFile(filepath.Join(dir, "sumdb.go")); err == nil {
		alias := regexp.MustCompile(`gosumdb == "` + regexp.QuoteMeta(name) + `"\s*\{\s*gosumdb = "([^"]*)"`)
		if m := alias.FindSubmatch(src); m != nil {
			if f := strings.Fields(string(m[1])); len(f) == 2 {
				if key := findKey(table, f[0]); key != "" {
					return key, f[1], nil
				}
			}
		}
	}
	return "", "", noKey(fmt.Errorf("the go command knows no database of that name"))
}

// findKey finds the string literal "name+<hex8>+<base64>" in the go command's key table.
func findKey(table []byte, name string) string {
	re := regexp.MustCompile(`"(` + regexp.QuoteMeta(name) + `\+[0-9a-f]{8}\+[A-Za-z0-9+/]+=*)"`)
	if m := re.FindSubmatch(table); m != nil {
		return string(m[1])
	}
	return ""
}

// goroot finds the go command's GOROOT: `go env GOROOT`, else $GOROOT. GOTOOLCHAIN=local and a
// neutral directory keep the go command from switching toolchains, which could download one.
func goroot() (string, error) {
	cmd := exec.Command("go", "env", "GOROOT")
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local")
	out, err := cmd.Output()
	if root := strings.TrimSpace(string(out)); err == nil && root != "" {
		return root, nil
	}
	if root := os.Getenv("GOROOT"); root != "" {
		return root, nil
	}
	return "", fmt.Errorf("cannot find GOROOT: go env GOROOT: %v", err)
}

// hosts returns the host:port of every URL d may be asked at: its URL, else the upstreams' and
// https://<name>'s.
func (d *Database) hosts() []string {
	if d == nil {
		return nil
	}
	urls := []string{d.URL}
	if d.URL == "" {
		urls = append([]string{"https://" + d.Name}, d.upstreams...)
	}
	var out []string
	for _, raw := range urls {
		if raw == "" || raw == "off" || raw == "direct" {
			continue
		}
		if !strings.Contains(raw, "://") {
			raw = "https://" + raw // GOPROXY's rule for a bare host
		}
		if u, err := url.Parse(raw); err == nil && u.Host != "" {
			out = append(out, egress.HostPort(u))
		}
	}
	return out
}

// base returns the database's URL (see Database.URL). A proxy that answers "supported" with
// anything but 200, 404 or 410, or cannot be reached, makes the database unavailable for now,
// as in the go command, rather than skipped: falling back to another route because a proxy is
// down would send requests where the operator may not want them. Such a failure is not kept.
func (d *Database) base(ctx context.Context, hc *http.Client) (string, error) {
	if d.URL != "" {
		return d.URL, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.resolved != "" {
		return d.resolved, nil
	}
	for _, up := range d.upstreams {
		up = strings.TrimSpace(up)
		if up == "off" || up == "direct" {
			break
		}
		if up == "" {
			continue
		}
		if !strings.Contains(up, "://") {
			up = "https://" + up // GOPROXY's rule for a bare host
		}
		base := strings.TrimRight(up, "/") + "/sumdb/" + d.Name
		status, err := probe(ctx, hc, base+"/supported")
		switch {
		case err != nil:
			return "", gofer.Errorf(gofer.ErrUnavailable, "checksum database %s: asking %s/supported: %w", d.Name, redact(base), err)
		case status == http.StatusOK:
			d.resolved = base
			return base, nil
		case status == http.StatusNotFound || status == http.StatusGone:
			continue
		default:
			return "", gofer.Errorf(gofer.ErrUnavailable, "checksum database %s: %s/supported answered %d", d.Name, redact(base), status)
		}
	}
	d.resolved = "https://" + d.Name
	return d.resolved, nil
}

func probe(ctx context.Context, hc *http.Client, u string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // the URL is named by the caller, redacted
		}
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10)) // lets the connection be reused
	return resp.StatusCode, nil
}

// redact hides a password a proxy URL may carry, so that it reaches no log or error.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
