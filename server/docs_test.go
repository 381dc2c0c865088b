package server

import (
	"net/http"
	"slices"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/goferproxy/gofer/docs"
)

// The endpoints table of docs/api.md is every route the server registers, with the admin API
// on and off, and nothing else.
func TestEndpointsTableIsTheRoutes(t *testing.T) {
	gin.SetMode(gin.ReleaseMode) // as New does
	anyRoutes := gin.New()
	anyRoutes.Any("/", func(*gin.Context) {})
	var every []string // the methods gin's Any registers, which the table calls ANY
	for _, r := range anyRoutes.Routes() {
		every = append(every, r.Method)
	}
	slices.Sort(every)

	registered := map[docs.Route]bool{}
	for _, token := range []string{"token", ""} {
		s := New(Config{Metrics: http.NotFoundHandler(), Admin: Admin{Token: token}})
		e, ok := s.handler.(*gin.Engine)
		if !ok {
			t.Fatalf("the server's handler is a %T, not gin's engine", s.handler)
		}
		methods := map[string][]string{} // by path
		for _, r := range e.Routes() {
			methods[r.Path] = append(methods[r.Path], r.Method)
		}
		for path, ms := range methods {
			if slices.Sort(ms); slices.Equal(ms, every) {
				ms = []string{"ANY"}
			}
			for _, m := range ms {
				registered[docs.Route{Method: m, Path: path}] = true
			}
		}
	}

	documented, err := docs.Routes()
	if err != nil {
		t.Fatal(err)
	}
	listed := map[docs.Route]bool{}
	for _, r := range documented {
		switch {
		case listed[r]:
			t.Errorf("docs/api.md lists %s %s twice", r.Method, r.Path)
		case !registered[r]:
			t.Errorf("docs/api.md lists %s %s, which the server does not register", r.Method, r.Path)
		}
		listed[r] = true
	}
	for r := range registered {
		if !listed[r] {
			t.Errorf("docs/api.md misses %s %s, which the server registers", r.Method, r.Path)
		}
	}
}
