package server

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// authEngine returns an engine that answers GET /x with 200 "ok" once mw lets the request through.
func authEngine(mw gin.HandlerFunc) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.GET("/x", mw, func(c *gin.Context) { c.String(http.StatusOK, "ok") })
	return r
}

// authGet serves GET /x with the given Authorization header ("" for none).
func authGet(h http.Handler, authorization string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, "/x", nil)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func basicHeader(user, password string) string {
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(user, password)
	return req.Header.Get("Authorization")
}

func TestRequireToken(t *testing.T) {
	const token = "s3cret-admin-token"
	h := authEngine(requireToken(token))
	for i, c := range []struct {
		authorization string
		want          int
	}{
		0: {"", http.StatusUnauthorized},
		1: {"Bearer wrong-admin-token!", http.StatusUnauthorized}, // same length
		2: {"Bearer " + token, http.StatusOK},
		3: {"bearer " + token, http.StatusOK}, // the scheme is case-insensitive
		4: {basicHeader("admin", token), http.StatusUnauthorized},
		5: {"Bearer " + token[:5], http.StatusUnauthorized},
		6: {"Bearer " + token + "x", http.StatusUnauthorized},
		7: {"Bearer ", http.StatusUnauthorized},
		8: {"Bearer", http.StatusUnauthorized},
		9: {token, http.StatusUnauthorized},
	} {
		wantAuth(t, i, h, c.authorization, c.want, `Bearer realm="gofer admin"`, "missing or wrong admin token\n")
	}
}

// wantAuth checks that h answers a request with this Authorization header want and, if want is
// 401, the challenge and body, uncached.
func wantAuth(t *testing.T, i int, h http.Handler, authorization string, want int, challenge, body string) {
	t.Helper()
	w := authGet(h, authorization)
	if w.Code != want {
		t.Errorf("%d: %q: got %d, want %d", i, authorization, w.Code, want)
	}
	if want != http.StatusUnauthorized {
		return
	}
	if got := w.Header().Get("WWW-Authenticate"); got != challenge {
		t.Errorf("%d: WWW-Authenticate %q, want %q", i, got, challenge)
	}
	if got := w.Header().Get("Cache-Control"); got != "no-store" {
		t.Errorf("%d: Cache-Control %q, want no-store", i, got)
	}
	if got := w.Body.String(); got != body {
		t.Errorf("%d: body %q, want %q", i, got, body)
	}
}

const credentialsFile = `# proxy users
basic alice wonderland
  basic bob builder#1

bearer ci-token-42
`

func TestCredentials(t *testing.T) {
	creds, err := ParseCredentials(strings.NewReader(credentialsFile))
	if err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprintf("%+v", *creds); strings.Contains(s, "wonderland") || strings.Contains(s, "ci-token-42") {
		t.Errorf("Credentials hold a plain secret: %s", s)
	}
	h := authEngine(creds.middleware())
	for i, c := range []struct {
		authorization string
		want          int
	}{
		0:  {basicHeader("alice", "wonderland"), http.StatusOK},
		1:  {basicHeader("bob", "builder#1"), http.StatusOK},
		2:  {basicHeader("alice", "builder#1"), http.StatusUnauthorized}, // another user's password
		3:  {basicHeader("alice", "wonderlan"), http.StatusUnauthorized},
		4:  {basicHeader("carol", "wonderland"), http.StatusUnauthorized},
		5:  {basicHeader("", ""), http.StatusUnauthorized},
		6:  {"Bearer ci-token-42", http.StatusOK},
		7:  {"Bearer ci-token-4", http.StatusUnauthorized},
		8:  {"Bearer wonderland", http.StatusUnauthorized}, // a password is no token
		9:  {basicHeader("ci-token-42", ""), http.StatusUnauthorized},
		10: {"", http.StatusUnauthorized},
	} {
		wantAuth(t, i, h, c.authorization, c.want, `Basic realm="gofer"`, "authentication required\n")
	}
}

// The go command sends basic auth as net/http does for a URL with user info.
func TestCredentialsFromURLUserinfo(t *testing.T) {
	creds, err := ParseCredentials(strings.NewReader(credentialsFile))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(authEngine(creds.middleware()))
	defer srv.Close()
	for i, c := range []struct {
		user *url.Userinfo
		want int
	}{
		0: {url.UserPassword("bob", "builder#1"), http.StatusOK},
		1: {url.UserPassword("bob", "builder"), http.StatusUnauthorized},
		2: {nil, http.StatusUnauthorized},
	} {
		u, err := url.Parse(srv.URL + "/x")
		if err != nil {
			t.Fatal(err)
		}
		u.User = c.user
		resp, err := srv.Client().Get(u.String())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%d: %s: got %d, want %d", i, u.Redacted(), resp.StatusCode, c.want)
		}
	}
}

func TestParseCredentialsErrors(t *testing.T) {
	for i, c := range []struct {
		file, want string
	}{
		0: {"# ok\nbasic onlyuser\n", "line 2"},
		1: {"basic alice pw\ntoken s3cret-x\n", "line 2"},
		2: {"\n\nbearer\n", "line 3"},
		3: {"bearer s3cret-a s3cret-b\n", "line 1"},
		4: {"s3cret-alone\n", "line 1"},
		5: {"basic al:ice s3cret-pw\n", "line 1"},
		6: {"basic alice s3cret-1\nbasic alice s3cret-2\n", "line 2: user already listed on line 1"},
		7: {"BASIC alice s3cret-pw\n", "line 1"},
		8: {"# only\n  # comments\n\n", "no credentials"},
		9: {"", "no credentials"},
	} {
		_, err := ParseCredentials(strings.NewReader(c.file))
		if err == nil {
			t.Errorf("%d: no error", i)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%d: %v, want %q", i, err, c.want)
		}
		if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "onlyuser") {
			t.Errorf("%d: error echoes a secret: %v", i, err)
		}
	}
}
