package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/goferproxy/gofer/internal/fakeproxy"
)

// Two front ends and two workers, separate processes sharing only Temporal, one S3 bucket and
// one MongoDB database: 500 concurrent requests over both front ends for 20 missing versions
// cause exactly one upstream zip download per version, and every response for a version has
// the same bytes.
func TestScaleOut(t *testing.T) {
	const versions, requests = 20, 500
	up := fakeproxy.New()
	for i := range versions {
		up.Add("example.com/scale", fmt.Sprintf("v1.0.%d", i), map[string]string{
			"go.mod":   "module example.com/scale\n\ngo 1.21\n",
			"scale.go": fmt.Sprintf("package scale\n\nconst N = %d\n", i),
		})
	}
	_, bucket := s3Store(t)
	meta, db := mongoStore(t)
	meta.Close()
	env := append(sharedStores(t, bucket, db), "GOFER_UPSTREAM="+up.Start(t), "GOFER_FETCH_WAIT=2m")
	bin := buildGofer(t)
	var fronts []string
	for range 2 {
		addr := freeAddr(t)
		startProcess(t, bin, addr, env, "serve", "--worker=false")
		fronts = append(fronts, "http://"+addr)
	}
	for range 2 {
		startProcess(t, bin, "", env, "worker")
	}

	bodies := make([][]byte, requests)
	var wg sync.WaitGroup
	for i := range requests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			url := fmt.Sprintf("%s/example.com/scale/@v/v1.0.%d.zip", fronts[i%2], i%versions)
			resp, err := http.Get(url)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 {
				t.Errorf("%s: %d %s", url, resp.StatusCode, b)
				return
			}
			bodies[i] = b
		}()
	}
	wg.Wait()
	for i := range requests {
		if first := bodies[i%versions]; len(first) == 0 || !bytes.Equal(bodies[i], first) {
			t.Fatalf("request %d: %d bytes differ from request %d's %d bytes", i, len(bodies[i]), i%versions, len(first))
		}
	}
	for v := range versions {
		if n := up.Requests(fmt.Sprintf("/example.com/scale/@v/v1.0.%d.zip", v)); n != 1 {
			t.Errorf("v1.0.%d: %d upstream zip downloads, want 1", v, n)
		}
	}
}

// sharedStores is the environment of a gofer process on the test S3 bucket and MongoDB
// database, with the test Temporal server and a namespace of its own.
func sharedStores(t *testing.T, bucket, db string) []string {
	return []string{
		"GOFER_TEMPORAL_ADDRESS=" + temporalAddress, "GOFER_TEMPORAL_NAMESPACE=" + namespace(t),
		"GOFER_STORAGE=s3", "GOFER_S3_ENDPOINT=" + s3Server.Endpoint, "GOFER_S3_REGION=" + s3Server.Region,
		"GOFER_S3_BUCKET=" + bucket, "GOFER_S3_FORCE_PATH_STYLE=true",
		"AWS_ACCESS_KEY_ID=" + s3Server.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s3Server.SecretKey,
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"GOFER_METADATA=mongo", "GOFER_MONGO_URI=" + mongoServer.URI, "GOFER_MONGO_DATABASE=" + db,
		"GOFER_DATA_DIR=" + t.TempDir(), "GOFER_SUMDB=off",
	}
}
