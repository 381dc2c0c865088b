package testserver

import (
	"io"
	"net/http"
	"testing"
)

// Get sends a request with method to url, with the headers given as name, value pairs, and
// returns the answer's status, headers and body; a failure to send or read fails tb.
func Get(tb testing.TB, method, url string, header ...string) (int, http.Header, []byte) {
	tb.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}
