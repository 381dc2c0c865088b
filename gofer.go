// Package gofer holds the domain of the gofer module proxy: the record of a stored module
// version, the limits of what is stored (MaxModSize, MaxZipSize), the kinds of error that
// cross every boundary (not found, invalid, unavailable, and those of gofer's own API), how
// each audience names them (Names), and how an error is told to a client (PublicReason). It
// must never depend on how versions are fetched, stored or served.
package gofer

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

// The error kinds. Wrap one of them (fmt.Errorf("...: %w", gofer.ErrNotFound)) and test with
// errors.Is; the server maps each kind to one HTTP status, and activities turn each kind into a
// retryable or non-retryable Temporal error, both in exactly one place.
var (
	// ErrNotFound: the module or version does not exist, or cannot exist (a malformed path).
	ErrNotFound = errors.New("not found")
	// ErrInvalid: the content exists but breaks a rule (bad zip, wrong go.mod path, bad hash)
	// and is never stored.
	ErrInvalid = errors.New("invalid")
	// ErrUnavailable: a dependency failed in a way that may heal (5xx, timeout, storage down).
	ErrUnavailable = errors.New("unavailable")
	// ErrExcluded: the module is excluded by the proxy's rules and is never fetched or served.
	ErrExcluded = errors.New("excluded")
	// ErrBadRequest: a request to gofer's own API (admin, catalog) is malformed; nothing was done.
	ErrBadRequest = errors.New("bad request")
	// ErrTooLarge: a request to gofer's own API is larger than it takes; nothing was done.
	ErrTooLarge = errors.New("too large")
	// ErrExists is returned by insert-once and put-if-absent stores when the key is taken.
	ErrExists = errors.New("already exists")
)

// Errorf wraps kind with a reason formatted as fmt.Errorf formats it, %w included:
// Errorf(ErrUnavailable, "fetch %s: %w", v, err). The error is of kind alone: the kinds of
// a wrapped cause are hidden, so that a cause's kind can be replaced (a missing blob that a
// record names is unavailable, not not found), and so is a context.Canceled, because a
// cancellation given a kind is a failure of that kind, not a caller that gave up (which
// gofer answers with nothing: no HTTP answer, no typed Temporal error). Everything else of
// the cause stays visible to errors.Is and errors.As (a deadline, a *net.OpError).
func Errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, err: fmt.Errorf(format, args...)}
}

type kindError struct {
	kind, err error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, cause{e.err}} }

// cause is the error a kindError was made from, seen through it without its kinds.
type cause struct{ err error }

func (c cause) Error() string { return c.err.Error() }
func (c cause) Is(target error) bool {
	return !isKind(target) && target != context.Canceled && errors.Is(c.err, target)
}
func (c cause) As(target any) bool { return errors.As(c.err, target) }
func isKind(err error) bool        { return slices.Contains(kinds, err) }

var kinds = []error{ErrNotFound, ErrInvalid, ErrUnavailable, ErrExcluded, ErrBadRequest, ErrTooLarge, ErrExists}

// Kind reports which of ErrNotFound, ErrInvalid and ErrUnavailable err is. Anything
// unclassified counts as ErrUnavailable: an unknown failure may heal, and retrying it is the
// safe answer.
func Kind(err error) error {
	for _, k := range []error{ErrNotFound, ErrInvalid, ErrUnavailable} {
		if errors.Is(err, k) {
			return k
		}
	}
	return ErrUnavailable
}

// Names spells the three kinds Kind tells apart for one audience: a Temporal error type, a
// search attribute's value, a metric's label. Which kind an error is, is decided by Kind
// alone; each audience keeps its own spelling, which may be in recorded histories or in
// operators' queries and so never changes.
type Names struct{ NotFound, Invalid, Unavailable string }

// Of is the name of err's kind.
func (n Names) Of(err error) string {
	switch Kind(err) {
	case ErrNotFound:
		return n.NotFound
	case ErrInvalid:
		return n.Invalid
	}
	return n.Unavailable
}

// Kind is the kind that name names: ErrUnavailable for a name that is neither NotFound nor
// Invalid.
func (n Names) Kind(name string) error {
	switch name {
	case n.NotFound:
		return ErrNotFound
	case n.Invalid:
		return ErrInvalid
	}
	return ErrUnavailable
}

var (
	// A client learns nothing of gofer's network from an error: not the addresses of a
	// connection ("read tcp 10.0.0.5:34400->10.0.0.9:443"), of a name server ("lookup h on
	// 10.0.0.2:53"), of any host, nor the userinfo of a URL.
	socketPair = regexp.MustCompile(`\S+:\d+->\S+:\d+`)
	nameServer = regexp.MustCompile(`(lookup \S+) on \S+:\d+`)
	ipAddress  = regexp.MustCompile(`\[[0-9A-Fa-f:.%]+\](:\d+)?|\b(\d{1,3}\.){3}\d{1,3}(:\d+)?\b|([0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|([0-9A-Fa-f]{1,4}(:[0-9A-Fa-f]{1,4})*)?::([0-9A-Fa-f]{1,4}(:[0-9A-Fa-f]{1,4})*)?`)
	urlUser    = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.\-]*://)[^/?#\s@'"]+@`)
)

// PublicReason is err's message as a client may read it: one line, with the addresses and URL
// userinfo that it may carry cut out. The whole message goes to the request log.
func PublicReason(err error) string {
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	msg = socketPair.ReplaceAllString(msg, "(connection)")
	msg = nameServer.ReplaceAllString(msg, "$1")
	msg = ipAddress.ReplaceAllString(msg, "(address)")
	return urlUser.ReplaceAllString(msg, "$1")
}

// The go command's own limits (modfetch.MaxGoMod, modfetch.MaxZipFile), which are the limits of
// what gofer stores: a file the go command would refuse is not worth downloading.
const (
	MaxModSize = 16 << 20  // .mod
	MaxZipSize = 500 << 20 // .zip
)

// File describes one stored file of a module version.
type File struct {
	Size   int64  `json:"size" bson:"size"`
	SHA256 string `json:"sha256" bson:"sha256"` // hex SHA-256 of the exact stored bytes
}

// Version is the metadata record of one stored module version. It is inserted once, after
// every blob of the version is stored, and never changed: its insertion is the commit.
type Version struct {
	Path       string    `json:"path" bson:"path"`       // module path, unescaped
	Version    string    `json:"version" bson:"version"` // canonical semantic version
	Time       time.Time `json:"time" bson:"time"`       // the version's time from its .info
	Info       File      `json:"info" bson:"info"`
	Mod        File      `json:"mod" bson:"mod"`
	Zip        File      `json:"zip" bson:"zip"`
	ZipHash    string    `json:"zipHash" bson:"zipHash"` // h1: hash of the zip, as in go.sum
	ModHash    string    `json:"modHash" bson:"modHash"` // h1: hash of the go.mod, as in go.sum
	Source     string    `json:"source" bson:"source"`   // upstream it was fetched from
	VerifiedBy string    `json:"verifiedBy" bson:"verifiedBy"`
	FetchedAt  time.Time `json:"fetchedAt" bson:"fetchedAt"`
	WorkflowID string    `json:"workflowID" bson:"workflowID"`
	RunID      string    `json:"runID" bson:"runID"`
}

// HasZip reports whether the record says the version's zip is stored. A version's .info and
// .mod are fetched and committed alone, without its zip, when a client asks for them alone;
// its zip is then committed later, in a record of its own (ZipOnly).
func (v Version) HasZip() bool { return v.ZipHash != "" }

// ZipOnly is the record of v's zip alone: its zip's fields and those of its fetch.
func (v Version) ZipOnly() Version {
	return Version{Path: v.Path, Version: v.Version, Zip: v.Zip, ZipHash: v.ZipHash, Source: v.Source, VerifiedBy: v.VerifiedBy,
		FetchedAt: v.FetchedAt, WorkflowID: v.WorkflowID, RunID: v.RunID}
}

// WithZip is v, a record without a zip, with the zip of z, its zip's record; the fetch's
// fields stay v's, those of the fetch of its .info and .mod.
func (v Version) WithZip(z Version) Version {
	v.Zip, v.ZipHash = z.Zip, z.ZipHash
	return v
}

// Latest is the version @latest means among vs (not empty), as the go command ranks them: the
// highest release, else the highest tagged prerelease, else the highest pseudo-version. It sorts vs.
func Latest(vs []string) string {
	semver.Sort(vs)
	rank := func(v string) int {
		switch {
		case module.IsPseudoVersion(v):
			return 0
		case semver.Prerelease(v) != "":
			return 1
		}
		return 2
	}
	best := vs[len(vs)-1]
	for _, v := range vs {
		if rank(v) >= rank(best) {
			best = v
		}
	}
	return best
}
