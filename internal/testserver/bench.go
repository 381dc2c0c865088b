package testserver

import (
	"io"
	"net/http"
	"testing"
)

// GetParallel is the loop of a hit benchmark: b's parallel goroutines GET url with c until b.N
// requests are done, and each answer must be a 200 of size bytes. It resets b's timer first and
// reports the requests per second.
func GetParallel(b *testing.B, c *http.Client, url string, size int64) {
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || n != size {
				b.Errorf("%s: status %d, %d bytes, want 200 and %d", url, resp.StatusCode, n, size)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
