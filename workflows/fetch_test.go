package workflows_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/activities"
	"github.com/goferproxy/gofer/internal/fakeproxy"
	"github.com/goferproxy/gofer/internal/teststores"
	"github.com/goferproxy/gofer/storage/disk"
	"github.com/goferproxy/gofer/storage/embedded"
	"github.com/goferproxy/gofer/storage/storagetest"
	"github.com/goferproxy/gofer/upstream"
	"github.com/goferproxy/gofer/workflows"
	"github.com/goferproxy/gofer/workflows/fetcherr"
)

// fixture runs the fetch workflow in the SDK's test environment with the real activities, a
// fake upstream and real disk and embedded stores.
type fixture struct {
	proxy *fakeproxy.Proxy
	blobs *disk.Store
	meta  *embedded.Store
	chain *upstream.Chain
	env   *testsuite.TestWorkflowEnvironment
	// localZipLimit and progressEvery are the activities' LocalZipLimit and ProgressEvery.
	localZipLimit int64
	progressEvery time.Duration
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{proxy: fakeproxy.New()}
	var err error
	if f.chain, err = upstream.Parse(f.proxy.Start(t)); err != nil {
		t.Fatal(err)
	}
	f.blobs, f.meta = teststores.Open(t, "")
	f.renew()
	return f
}

// renew gives f a fresh test environment, for a further fetch with the same stores and upstream.
func (f *fixture) renew() {
	var s testsuite.WorkflowTestSuite
	f.env = s.NewTestWorkflowEnvironment()
	f.env.RegisterWorkflow(workflows.Fetch)
	f.env.RegisterActivity(&activities.Activities{Upstream: f.chain, Blobs: f.blobs, Meta: f.meta, LocalZipLimit: f.localZipLimit, ProgressEvery: f.progressEvery})
}

func (f *fixture) fetch(t *testing.T, path, version string) (gofer.Version, error) {
	t.Helper()
	return f.fetchRequest(t, workflows.FetchRequest{Path: path, Version: version})
}

func (f *fixture) fetchRequest(t *testing.T, r workflows.FetchRequest) (gofer.Version, error) {
	t.Helper()
	f.env.ExecuteWorkflow(workflows.Fetch, r)
	if !f.env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	var rec gofer.Version
	if err := f.env.GetWorkflowError(); err != nil {
		return rec, fetcherr.Decode(err)
	}
	if err := f.env.GetWorkflowResult(&rec); err != nil {
		t.Fatal(err)
	}
	return rec, nil
}

// assertNothingStored checks that no record, no final blob and no staged blob is left.
func (f *fixture) assertNothingStored(t *testing.T, path, version string) {
	t.Helper()
	ctx := context.Background()
	if _, err := f.meta.Get(ctx, path, version); !errors.Is(err, gofer.ErrNotFound) {
		t.Errorf("metadata of %s@%s: err = %v, want not found", path, version, err)
	}
	for _, ext := range []string{"info", "mod", "zip"} {
		key := storagetest.Key(t, path, version, ext)
		if r, _, err := f.blobs.Open(ctx, key); err == nil {
			r.Close()
			t.Errorf("blob %s exists", key)
		}
	}
	f.assertNothingStaged(t, path, version)
}

// assertNothingStaged checks that the run left no staged file behind.
func (f *fixture) assertNothingStaged(t *testing.T, path, version string) {
	t.Helper()
	err := f.blobs.Walk(context.Background(), "_staging/", "", func(key string, _ int64) error {
		t.Errorf("staged blob %s left behind", key)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestFetchStoresVersion(t *testing.T) {
	f := newFixture(t)
	rec, err := f.fetch(t, "example.com/hello", "v1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	stored, err := f.meta.Get(context.Background(), "example.com/hello", "v1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if stored != rec {
		t.Errorf("stored record %+v, workflow result %+v", stored, rec)
	}
	if rec.ZipHash[:3] != "h1:" || rec.ModHash[:3] != "h1:" || rec.Zip.Size == 0 || rec.Time.IsZero() {
		t.Errorf("incomplete record %+v", rec)
	}
	for _, ext := range []string{"info", "mod", "zip"} {
		r, size, err := f.blobs.Open(context.Background(), storagetest.Key(t, "example.com/hello", "v1.0.0", ext))
		if err != nil {
			t.Fatalf("final %s blob: %v", ext, err)
		}
		r.Close()
		if ext == "zip" && size != rec.Zip.Size {
			t.Errorf("zip size %d, record says %d", size, rec.Zip.Size)
		}
	}
	f.assertNothingStaged(t, "example.com/hello", "v1.0.0")
}

func TestFetchRetriesUnavailableUpstream(t *testing.T) {
	f := newFixture(t)
	zip := "/example.com/hello/@v/v1.0.0.zip"
	f.proxy.Fail(zip, 3, 503)
	if _, err := f.fetch(t, "example.com/hello", "v1.0.0"); err != nil {
		t.Fatal(err)
	}
	if n := f.proxy.Requests(zip); n != 4 {
		t.Errorf("upstream saw %d zip requests, want 3 failures and 1 success", n)
	}
}

// A fetch retries through an outage for hours only when something vouches for the version: a
// warm list or private rule (Known), or an upstream that answered for it. A version nothing
// vouches for, on an upstream that only ever fails, costs minutes of retries.
func TestFetchRetryHorizon(t *testing.T) {
	const path, version = "example.com/hello", "v1.0.0"
	base := "/" + path + "/@v/" + version
	for _, c := range []struct {
		name    string
		known   bool
		failing []string // files that answer 503 forever
		long    bool     // retried with the download's policy of hours
	}{
		{"nothing answers", false, []string{"info", "mod", "zip"}, false},
		{"nothing answers, known", true, []string{"info", "mod", "zip"}, true},
		{"the zip fails, the .info and .mod answer", false, []string{"zip"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			for _, ext := range c.failing {
				f.proxy.Fail(base+"."+ext, -1, 503)
			}
			start := f.env.Now()
			_, err := f.fetchRequest(t, workflows.FetchRequest{Path: path, Version: version, Known: c.known})
			if !errors.Is(err, gofer.ErrUnavailable) {
				t.Fatalf("err = %v, want unavailable", err)
			}
			// The test environment stops an unlimited retry policy after 10 attempts, which at
			// the download's backoff take 8.5 minutes; the probe's 8 take about 2.
			n, took := f.proxy.Requests(base+".info"), f.env.Now().Sub(start) // every attempt asks for the .info, whatever fails first
			if c.long && (n < 10 || took < 8*time.Minute) {
				t.Errorf("%d attempts over %s, want the retries of hours", n, took)
			}
			if !c.long && (n > 8 || took > 3*time.Minute) {
				t.Errorf("%d attempts over %s, want at most 8 within minutes", n, took)
			}
			// An answered failure is not retried by the probe: one attempt, then the 10 of the
			// download's policy.
			if len(c.failing) == 1 && n != 11 {
				t.Errorf("%d attempts, want 1 of the probe and 10 of the download", n)
			}
			f.assertNothingStored(t, path, version)
		})
	}
}

func TestFetchNotFoundIsFinal(t *testing.T) {
	for i, status := range []int{404, 410, 403} {
		f := newFixture(t)
		info := "/example.com/hello/@v/v1.0.0.info"
		f.proxy.Fail(info, -1, status)
		_, err := f.fetch(t, "example.com/hello", "v1.0.0")
		if !errors.Is(err, gofer.ErrNotFound) {
			t.Errorf("%d: status %d: err = %v, want not found", i, status, err)
		}
		if n := f.proxy.Requests(info); n != 1 {
			t.Errorf("%d: status %d: %d upstream requests, want 1 (no retry)", i, status, n)
		}
		f.assertNothingStored(t, "example.com/hello", "v1.0.0")
	}
}

func TestFetchRefusesInvalidContent(t *testing.T) {
	const path, version = "example.com/bad", "v1.0.0"
	cases := []struct {
		name  string
		files map[string][]byte
	}{
		{"go.mod in zip names another module", map[string][]byte{
			"zip": fakeproxy.RawZip(map[string]string{path + "@" + version + "/go.mod": "module example.com/other\n"}),
		}},
		{"zip holds a file outside the module", map[string][]byte{
			"zip": fakeproxy.RawZip(map[string]string{path + "@" + version + "/go.mod": "module example.com/bad\n", "evil.go": "package evil\n"}),
		}},
		{".mod names another module", map[string][]byte{"mod": []byte("module example.com/other\n")}},
		{".info names another version", map[string][]byte{"info": []byte(`{"Version":"v1.0.1"}`)}},
	}
	for i, c := range cases {
		f := newFixture(t)
		f.proxy.Add(path, version, map[string]string{"go.mod": "module example.com/bad\n\ngo 1.21\n", "bad.go": "package bad\n"})
		for ext, body := range c.files {
			f.proxy.SetFile(path, version, ext, body)
		}
		_, err := f.fetch(t, path, version)
		if !errors.Is(err, gofer.ErrInvalid) {
			t.Errorf("%d: %s: err = %v, want invalid", i, c.name, err)
		}
		f.assertNothingStored(t, path, version)
	}
}

// Every fetch's workflow ID is one Temporal takes (at most 1,000 bytes), and a different one
// per version and files, however long the module path.
func TestFetchID(t *testing.T) {
	long := "example.com/" + strings.Repeat("a/", 500) + "m"
	seen := map[string]bool{}
	for _, c := range []struct{ path, version string }{
		{"example.com/m", "v1.0.0"},
		{"example.com/m", "v1.0.0-x.mod"},
		{long, "v1.0.0"},
		{long, "v1.0.1"},
		{long + "x", "v1.0.0"},
	} {
		for _, files := range []string{activities.FilesMod, activities.FilesZip} {
			id := workflows.FetchID(c.path, c.version, files)
			if len(id) > 1000 {
				t.Errorf("FetchID of a %d-byte path is %d bytes", len(c.path), len(id))
			}
			if seen[id] {
				t.Errorf("two fetches share the workflow ID %s", id)
			}
			seen[id] = true
		}
	}
	for files, want := range map[string]string{
		activities.FilesMod: "fetch:example.com/m@v1.0.0.mod",
		activities.FilesZip: "fetch:example.com/m@v1.0.0.zip",
		"":                  "fetch:example.com/m@v1.0.0", // recorded before files were fetched apart
	} {
		if got := workflows.FetchID("example.com/m", "v1.0.0", files); got != want {
			t.Errorf("FetchID(%q) of a short path = %s, want %s", files, got, want)
		}
	}
}

// A fetch of the .mod stores the version's .info and .mod and its record, without a zip and
// without asking for one; a fetch of the zip then stores the zip and its record, and the
// version is whole.
func TestFetchModThenZip(t *testing.T) {
	f := newFixture(t)
	const path, version = "example.com/hello", "v1.0.0"
	rec, err := f.fetchRequest(t, workflows.FetchRequest{Path: path, Version: version, Files: activities.FilesMod})
	if err != nil {
		t.Fatal(err)
	}
	if rec.HasZip() || rec.ModHash[:3] != "h1:" || rec.Info.Size == 0 || rec.Time.IsZero() {
		t.Errorf("record of the .mod alone: %+v", rec)
	}
	if n := f.proxy.Requests("/" + path + "/@v/" + version + ".zip"); n != 0 {
		t.Errorf("the fetch of the .mod asked for the zip %d times", n)
	}
	if stored, err := f.meta.Get(context.Background(), path, version); err != nil || stored != rec {
		t.Errorf("stored %+v, %v; want %+v", stored, err, rec)
	}
	if r, _, err := f.blobs.Open(context.Background(), storagetest.Key(t, path, version, "zip")); err == nil {
		r.Close()
		t.Error("a zip blob is stored")
	}

	f.renew()
	zip, err := f.fetchRequest(t, workflows.FetchRequest{Path: path, Version: version, Files: activities.FilesZip})
	if err != nil {
		t.Fatal(err)
	}
	if !zip.HasZip() || zip.Zip.Size == 0 || zip.ModHash != "" {
		t.Errorf("record of the zip: %+v", zip)
	}
	for _, ext := range []string{"info", "mod"} {
		if n := f.proxy.Requests("/" + path + "/@v/" + version + "." + ext); n != 1 {
			t.Errorf("the %s was asked for %d times, want once", ext, n)
		}
	}
	stored, err := f.meta.Get(context.Background(), path, version)
	if err != nil || stored != rec.WithZip(zip) {
		t.Errorf("stored %+v, %v; want %+v", stored, err, rec.WithZip(zip))
	}
	f.assertNothingStaged(t, path, version)

	// Fetched again, each finds itself stored and keeps what is.
	f.renew()
	again, err := f.fetchRequest(t, workflows.FetchRequest{Path: path, Version: version, Files: activities.FilesMod})
	if err != nil || again != stored {
		t.Errorf("a second fetch of the .mod: %+v, %v; want %+v", again, err, stored)
	}
	f.renew()
	if again, err := f.fetchRequest(t, workflows.FetchRequest{Path: path, Version: version, Files: activities.FilesZip}); err != nil || again != zip {
		t.Errorf("a second fetch of the zip: %+v, %v; want %+v", again, err, zip)
	}
}

// A bad zip fails the zip's fetch and leaves the .mod's record as it was; a bad .mod fails
// the .mod's fetch, stores nothing, and is never answered by asking for the zip.
func TestFetchFilesFailApart(t *testing.T) {
	f := newFixture(t)
	const path, version = "example.com/hello", "v1.0.0"
	f.proxy.SetFile(path, version, "zip", []byte("not a zip"))
	if _, err := f.fetchRequest(t, workflows.FetchRequest{Path: path, Version: version, Files: activities.FilesMod}); err != nil {
		t.Fatal(err)
	}
	f.renew()
	if _, err := f.fetchRequest(t, workflows.FetchRequest{Path: path, Version: version, Files: activities.FilesZip}); !errors.Is(err, gofer.ErrInvalid) {
		t.Errorf("fetch of a bad zip: %v, want invalid", err)
	}
	if rec, err := f.meta.Get(context.Background(), path, version); err != nil || rec.HasZip() {
		t.Errorf("after a bad zip: %+v, %v; want the record of the .mod alone", rec, err)
	}
	f.assertNothingStaged(t, path, version)

	f.proxy.SetFile(path, "v1.1.0", "mod", []byte("module example.com/other\n"))
	f.renew()
	if _, err := f.fetchRequest(t, workflows.FetchRequest{Path: path, Version: "v1.1.0", Files: activities.FilesMod}); !errors.Is(err, gofer.ErrInvalid) {
		t.Errorf("fetch of a .mod of another module: %v, want invalid", err)
	}
	f.assertNothingStored(t, path, "v1.1.0")
}

// A zip over the worker's local limit is refused by FetchZip and fetched through staging
// instead: stored whole, with nothing left staged. One within it is downloaded once.
func TestFetchBigZipNotLocal(t *testing.T) {
	f := newFixture(t)
	const path = "example.com/hello"
	for i, limit := range []int64{0, 1} {
		version := fmt.Sprintf("v1.%d.0", i) // the fake upstream has v1.0.0 and v1.1.0
		zip := "/" + path + "/@v/" + version + ".zip"
		f.localZipLimit = limit
		f.renew()
		rec, err := f.fetchRequest(t, workflows.FetchRequest{Path: path, Version: version, Files: activities.FilesZip})
		if err != nil || !rec.HasZip() {
			t.Fatalf("limit %d: %+v, %v", limit, rec, err)
		}
		want := 1
		if limit == 1 {
			want = 2 // FetchZip's, cut short, and staging's
		}
		if n := f.proxy.Requests(zip); n != want {
			t.Errorf("limit %d: the zip was asked for %d times, want %d", limit, n, want)
		}
		if stored, err := f.meta.GetZip(context.Background(), path, version); err != nil || stored.ZipHash != rec.ZipHash {
			t.Errorf("limit %d: stored %+v, %v", limit, stored, err)
		}
		f.assertNothingStaged(t, path, version)
	}
}

// An upstream too slow for a local activity: FetchMod gives up its local run after one
// progress interval and the fetch runs it again as a regular activity, which stores the
// version.
func TestFetchModFromSlowUpstream(t *testing.T) {
	f := newFixture(t)
	f.progressEvery = 100 * time.Millisecond
	f.renew()
	f.proxy.Delay(300 * time.Millisecond)
	rec, err := f.fetchRequest(t, workflows.FetchRequest{Path: "example.com/hello", Version: "v1.0.0", Files: activities.FilesMod})
	if err != nil || rec.ModHash == "" {
		t.Fatalf("%+v, %v", rec, err)
	}
	if n := f.proxy.Requests("/example.com/hello/@v/v1.0.0.mod"); n != 2 {
		t.Errorf("the .mod was asked for %d times, want 2: the local run's, cut short, and the activity's", n)
	}
}
