package server

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/goferproxy/gofer/server/httperr"
)

// requireToken guards the admin API: it lets through only requests with "Authorization: Bearer
// <token>". Both sides are compared as SHA-256 digests in constant time, so neither the content
// nor the length of the token leaks through timing. The token is never logged. The caller
// installs it only when a token is configured (without one the admin API is not registered);
// an empty token is a programming error and panics.
func requireToken(token string) gin.HandlerFunc {
	if token == "" {
		panic("server: requireToken with an empty token")
	}
	want := sha256.Sum256([]byte(token))
	return func(c *gin.Context) {
		got, ok := bearerToken(c.Request)
		if sum := sha256.Sum256([]byte(got)); !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			unauthorized(c, `Bearer realm="gofer admin"`, "missing or wrong admin token")
			return
		}
		c.Next()
	}
}

// Credentials are who may use the proxy endpoints: basic-auth users and bearer tokens. Only
// SHA-256 digests are kept, never the plain secrets. Create them with ParseCredentials.
type Credentials struct {
	basic  []basicEntry
	bearer []secretDigest
}

type secretDigest = [sha256.Size]byte

type basicEntry struct{ user, password secretDigest }

// ParseCredentials reads a credentials file: one entry a line, "basic <user> <password>" or
// "bearer <token>"; blank lines and lines starting with # are ignored. A user name cannot hold
// a ':' (basic auth ends the name at the first one) and may be listed once. Errors name the
// line but echo none of its words, any of which may be a secret. A file without entries is
// an error.
func ParseCredentials(r io.Reader) (*Credentials, error) {
	c := new(Credentials)
	users := make(map[secretDigest]int) // line of each user
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch {
		case f[0] == "basic" && len(f) == 3:
			if strings.Contains(f[1], ":") {
				return nil, fmt.Errorf("credentials line %d: user name contains ':'", n)
			}
			e := basicEntry{sha256.Sum256([]byte(f[1])), sha256.Sum256([]byte(f[2]))}
			if prev, ok := users[e.user]; ok {
				return nil, fmt.Errorf("credentials line %d: user already listed on line %d", n, prev)
			}
			users[e.user] = n
			c.basic = append(c.basic, e)
		case f[0] == "bearer" && len(f) == 2:
			c.bearer = append(c.bearer, sha256.Sum256([]byte(f[1])))
		default:
			return nil, fmt.Errorf(`credentials line %d: want "basic <user> <password>" or "bearer <token>"`, n)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	if len(c.basic)+len(c.bearer) == 0 {
		return nil, errors.New("credentials: no credentials")
	}
	return c, nil
}

// middleware lets through requests that carry a listed basic-auth user and password or a
// listed bearer token, and answers the rest 401 with a Basic challenge, which the go command
// answers with its GOAUTH or .netrc credentials. c must not be nil: the caller installs the
// middleware only when credentials are configured.
func (c *Credentials) middleware() gin.HandlerFunc {
	if c == nil {
		panic("server: middleware of nil Credentials")
	}
	return func(ctx *gin.Context) {
		if !c.allow(ctx.Request) {
			unauthorized(ctx, `Basic realm="gofer"`, "authentication required")
			return
		}
		ctx.Next()
	}
}

// allow compares the request's secrets with every entry of their kind, without stopping at a
// match, so that the time taken says nothing about which user exists or which entry matched.
func (c *Credentials) allow(r *http.Request) bool {
	match := 0
	if user, password, ok := r.BasicAuth(); ok {
		u, p := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(password))
		for _, e := range c.basic {
			match |= subtle.ConstantTimeCompare(u[:], e.user[:]) & subtle.ConstantTimeCompare(p[:], e.password[:])
		}
	} else if token, ok := bearerToken(r); ok {
		t := sha256.Sum256([]byte(token))
		for _, e := range c.bearer {
			match |= subtle.ConstantTimeCompare(t[:], e[:])
		}
	}
	return match == 1
}

// bearerToken returns the token of an "Authorization: Bearer <token>" header; the scheme is
// case-insensitive. An empty token is no token.
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimLeft(token, " ")
	return token, ok && strings.EqualFold(scheme, "Bearer") && token != ""
}

// unauthorized aborts with 401, the challenge, and msg as one line of plain text.
func unauthorized(c *gin.Context, challenge, msg string) {
	c.Writer.Header().Set("WWW-Authenticate", challenge)
	c.Abort()
	httperr.Text(c.Writer, http.StatusUnauthorized, msg+"\n")
}
