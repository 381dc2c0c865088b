package workflows_test

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
	"golang.org/x/mod/sumdb/dirhash"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/activities"
	"github.com/goferproxy/gofer/internal/fakeproxy"
	"github.com/goferproxy/gofer/storage/disk"
	"github.com/goferproxy/gofer/storage/embedded"
	"github.com/goferproxy/gofer/storage/storagetest"
	"github.com/goferproxy/gofer/upstream"
	"github.com/goferproxy/gofer/workflows"
)

// scrubFixture holds real disk and embedded stores and the activities that scrub them, with an
// in-memory metric reader for the alarms.
type scrubFixture struct {
	root    string // the disk store's root
	blobs   *disk.Store
	meta    *embedded.Store
	metrics *sdkmetric.ManualReader
	acts    *activities.Activities
	// verifiedBy is what store records as the versions' VerifiedBy; "" means a database did.
	verifiedBy string
}

func newScrubFixture(t *testing.T) *scrubFixture {
	t.Helper()
	dir := t.TempDir()
	f := &scrubFixture{root: filepath.Join(dir, "blobs"), metrics: sdkmetric.NewManualReader()}
	var err error
	if f.blobs, err = disk.New(f.root); err != nil {
		t.Fatal(err)
	}
	if f.meta, err = embedded.Open(filepath.Join(dir, "meta.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.meta.Close() })
	meter := sdkmetric.NewMeterProvider(sdkmetric.WithReader(f.metrics)).Meter("test")
	f.acts = &activities.Activities{Blobs: f.blobs, Meta: f.meta, Meter: meter}
	return f
}

// store commits path@version the way Commit leaves it: its three blobs, then a record with
// hashes computed here, independently of the code under test.
func (f *scrubFixture) store(t *testing.T, path, version string) gofer.Version {
	t.Helper()
	ctx := context.Background()
	mod := "module " + path + "\n"
	zip := fakeproxy.RawZip(map[string]string{
		path + "@" + version + "/go.mod": mod,
		path + "@" + version + "/x.go":   "package x // " + version + "\n",
	})
	info := fmt.Sprintf(`{"Version":%q,"Time":"2024-01-02T03:04:05Z"}`, version)
	zipFile := filepath.Join(t.TempDir(), "m.zip")
	if err := os.WriteFile(zipFile, zip, 0o644); err != nil {
		t.Fatal(err)
	}
	zipHash, err := dirhash.HashZip(zipFile, dirhash.Hash1)
	if err != nil {
		t.Fatal(err)
	}
	modHash, err := dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(mod)), nil })
	if err != nil {
		t.Fatal(err)
	}
	rec := gofer.Version{Path: path, Version: version, Time: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
		Info: sha(info), Mod: sha(mod), Zip: sha(string(zip)), ZipHash: zipHash, ModHash: modHash, VerifiedBy: cmp.Or(f.verifiedBy, "sumdb test")}
	for ext, body := range map[string]string{"info": info, "mod": mod, "zip": string(zip)} {
		if err := f.blobs.Put(ctx, storagetest.Key(t, path, version, ext), strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.meta.Insert(ctx, rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

func sha(s string) gofer.File {
	h := sha256.Sum256([]byte(s))
	return gofer.File{Size: int64(len(s)), SHA256: hex.EncodeToString(h[:])}
}

// file is where the disk store keeps the ext blob of path@version.
func (f *scrubFixture) file(t *testing.T, path, version, ext string) string {
	t.Helper()
	return filepath.Join(f.root, filepath.FromSlash(storagetest.Key(t, path, version, ext)))
}

// corrupt flips one byte in the middle of a stored blob, behind the store's back, and returns
// the corrupted bytes.
func (f *scrubFixture) corrupt(t *testing.T, path, version, ext string) []byte {
	t.Helper()
	name := f.file(t, path, version, ext)
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// keys lists every stored blob key.
func (f *scrubFixture) keys(t *testing.T) []string {
	t.Helper()
	var keys []string
	if err := f.blobs.Walk(context.Background(), "", "", func(key string, _ int64) error {
		keys = append(keys, key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

// scrub runs the Scrub workflow to its end in the test environment, following continue-as-new
// into a fresh environment as the server would, and returns the report and how many runs it
// took.
func (f *scrubFixture) scrub(t *testing.T, req workflows.ScrubRequest) (workflows.ScrubReport, int) {
	t.Helper()
	for runs := 1; runs <= 10; runs++ {
		var s testsuite.WorkflowTestSuite
		env := s.NewTestWorkflowEnvironment()
		env.RegisterWorkflow(workflows.Scrub)
		env.RegisterActivity(f.acts)
		env.ExecuteWorkflow(workflows.Scrub, req)
		if !env.IsWorkflowCompleted() {
			t.Fatal("scrub did not complete")
		}
		err := env.GetWorkflowError()
		var next *workflow.ContinueAsNewError
		if errors.As(err, &next) {
			if err := converter.GetDefaultDataConverter().FromPayloads(next.Input, &req); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var rep workflows.ScrubReport
		if err := env.GetWorkflowResult(&rep); err != nil {
			t.Fatal(err)
		}
		return rep, runs
	}
	t.Fatal("scrub still continuing as new after 10 runs")
	return workflows.ScrubReport{}, 0
}

// alarms is how many checksum alarms with reason were counted.
func (f *scrubFixture) alarms(t *testing.T, reason string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := f.metrics.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok || m.Name != activities.AlarmMetric {
				continue
			}
			for _, dp := range sum.DataPoints {
				if v, _ := dp.Attributes.Value("reason"); v.AsString() == reason {
					n += dp.Value
				}
			}
		}
	}
	return n
}

// Versions stored by real fetches scrub clean; staged blobs are ignored, and blobs without a
// record (a commit in flight) are counted, not reported.
func TestScrubCleanStore(t *testing.T) {
	f := newScrubFixture(t)
	up := fakeproxy.New()
	chain, err := upstream.Parse(up.Start(t))
	if err != nil {
		t.Fatal(err)
	}
	fetched := []string{"example.com/hello@v1.0.0", "example.com/hello@v1.1.0", "github.com/Upper/Case@v1.0.0", "example.com/hello/v2@v2.0.0"}
	for _, pv := range fetched {
		path, version, _ := strings.Cut(pv, "@")
		var s testsuite.WorkflowTestSuite
		env := s.NewTestWorkflowEnvironment()
		env.RegisterWorkflow(workflows.Fetch)
		env.RegisterActivity(&activities.Activities{Upstream: chain, Blobs: f.blobs, Meta: f.meta})
		env.ExecuteWorkflow(workflows.Fetch, workflows.FetchRequest{Path: path, Version: version})
		if err := env.GetWorkflowError(); err != nil {
			t.Fatalf("fetch %s: %v", pv, err)
		}
	}
	ctx := context.Background()
	if err := f.blobs.Put(ctx, storagetest.Key(t, "example.com/inflight", "v1.0.0", "info"), strings.NewReader("{}")); err != nil {
		t.Fatal(err)
	}
	if err := f.blobs.Put(ctx, storagetest.StagingKey(t, "example.com/hello", "v9.0.0", "run/1", "zip"), strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}

	rep, _ := f.scrub(t, workflows.ScrubRequest{PageSize: 2})
	if rep.Versions != len(fetched) || rep.Files != 3*len(fetched) || rep.Unrecorded != 1 || rep.MismatchCount != 0 || len(rep.Mismatches) != 0 {
		t.Errorf("report %+v, want %d versions, %d files, 1 unrecorded, no mismatch", rep, len(fetched), 3*len(fetched))
	}
	if rep.Bytes == 0 {
		t.Error("report counts no bytes")
	}
	if n := f.alarms(t, "scrub-mismatch"); n != 0 {
		t.Errorf("%d alarms on a clean store", n)
	}
}

// A zip byte flipped on disk is reported once, naming the zip, and raises the alarm; the scrub
// deletes and repairs nothing.
func TestScrubReportsCorruptZip(t *testing.T) {
	f := newScrubFixture(t)
	f.store(t, "example.com/a", "v1.0.0")
	rec := f.store(t, "example.com/b", "v1.0.0")
	f.store(t, "example.com/c", "v1.0.0")
	corrupted := f.corrupt(t, "example.com/b", "v1.0.0", "zip")
	keys := f.keys(t)

	rep, _ := f.scrub(t, workflows.ScrubRequest{})
	if rep.Versions != 3 || rep.MismatchCount != 1 || len(rep.Mismatches) != 1 {
		t.Fatalf("report %+v, want 3 versions and 1 mismatch", rep)
	}
	m := rep.Mismatches[0]
	if m.Path != "example.com/b" || m.Version != "v1.0.0" || m.File != "zip" || !strings.Contains(m.Problem, "sha256") {
		t.Errorf("mismatch %+v, want the zip of example.com/b@v1.0.0 with its sha256", m)
	}
	if n := f.alarms(t, "scrub-mismatch"); n != 1 {
		t.Errorf("%d scrub-mismatch alarms, want 1", n)
	}
	if after := f.keys(t); strings.Join(after, " ") != strings.Join(keys, " ") {
		t.Errorf("blobs before the scrub %v, after %v", keys, after)
	}
	if b, err := os.ReadFile(f.file(t, "example.com/b", "v1.0.0", "zip")); err != nil || string(b) != string(corrupted) {
		t.Errorf("the corrupted zip was changed or removed (err %v)", err)
	}
	if got, err := f.meta.Get(context.Background(), "example.com/b", "v1.0.0"); err != nil || got != rec {
		t.Errorf("record after the scrub %+v (err %v), want %+v", got, err, rec)
	}
}

// A blob missing under a stored record is a mismatch, whichever blob of the version the walk
// meets first.
func TestScrubReportsMissingBlobs(t *testing.T) {
	f := newScrubFixture(t)
	for _, p := range []string{"example.com/a", "example.com/b", "example.com/c"} {
		f.store(t, p, "v1.0.0")
	}
	gone := []struct{ path, ext string }{{"example.com/a", "mod"}, {"example.com/b", "info"}, {"example.com/c", "info"}, {"example.com/c", "mod"}}
	for _, g := range gone {
		if err := os.Remove(f.file(t, g.path, "v1.0.0", g.ext)); err != nil {
			t.Fatal(err)
		}
	}
	rep, _ := f.scrub(t, workflows.ScrubRequest{PageSize: 1})
	var got []string
	for _, m := range rep.Mismatches {
		got = append(got, m.Path+" "+m.File+" "+m.Problem)
	}
	want := "example.com/a mod missing, example.com/b info missing, example.com/c info missing, example.com/c mod missing"
	if strings.Join(got, ", ") != want || rep.Versions != 3 || rep.MismatchCount != 4 {
		t.Errorf("report %+v: mismatches %q, want %q in 3 versions", rep, got, want)
	}
	if n := f.alarms(t, "scrub-mismatch"); n != 4 {
		t.Errorf("%d alarms, want 4", n)
	}
}

// fakeSumDB disagrees with the recorded hashes of the versions in invalid, and cannot be
// reached the first unavailable times it is asked.
type fakeSumDB struct {
	invalid map[string]bool

	mu          sync.Mutex
	unavailable int
	asked       map[string]int
}

func (s *fakeSumDB) Check(_ context.Context, path, version, zipHash, modHash string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unavailable > 0 {
		s.unavailable--
		return "", gofer.Errorf(gofer.ErrUnavailable, "checksum database: 503")
	}
	s.asked[path+"@"+version]++
	if s.invalid[path+"@"+version] {
		return "", gofer.Errorf(gofer.ErrInvalid, "checksum database has other hashes than %s %s", zipHash, modHash)
	}
	return "test.sumdb", nil
}

// The checksum database is asked about every version it verified, with its recorded hashes (a
// private one never); a version it disagrees with is reported, and an outage of the database is
// retried, not reported.
func TestScrubChecksWithChecksumDatabase(t *testing.T) {
	f := newScrubFixture(t)
	for _, p := range []string{"example.com/a", "example.com/b", "example.com/c"} {
		f.store(t, p, "v1.0.0")
	}
	f.verifiedBy = "none (GONOSUMDB)" // a private module: never named to the database
	f.store(t, "example.com/private", "v1.0.0")
	db := &fakeSumDB{invalid: map[string]bool{"example.com/b@v1.0.0": true}, unavailable: 2, asked: map[string]int{}}
	f.acts.SumDB = db
	rep, _ := f.scrub(t, workflows.ScrubRequest{})
	if rep.Versions != 4 || rep.MismatchCount != 1 || len(rep.Mismatches) != 1 {
		t.Fatalf("report %+v, want 4 versions and 1 mismatch", rep)
	}
	if n := db.asked["example.com/private@v1.0.0"]; n != 0 {
		t.Errorf("the checksum database was asked about a private module %d times", n)
	}
	if m := rep.Mismatches[0]; m.Path != "example.com/b" || m.File != "sumdb" || !strings.Contains(m.Problem, "other hashes") {
		t.Errorf("mismatch %+v, want example.com/b against the checksum database", m)
	}
	for _, p := range []string{"example.com/a", "example.com/b", "example.com/c"} {
		if n := db.asked[p+"@v1.0.0"]; n != 1 {
			t.Errorf("checksum database answered about %s %d times, want 1", p, n)
		}
	}
	if n := f.alarms(t, "scrub-mismatch"); n != 1 {
		t.Errorf("%d alarms, want 1", n)
	}
}

// A scrub longer than one run continues as new with its cursor and report, and the report of
// the last run is complete; it lists at most MaxListedMismatches but counts them all.
func TestScrubContinuesAsNew(t *testing.T) {
	f := newScrubFixture(t)
	const n, damaged = 130, 105
	for i := range n {
		f.store(t, "example.com/many", fmt.Sprintf("v1.0.%d", i))
	}
	for i := range damaged {
		if err := os.Remove(f.file(t, "example.com/many", fmt.Sprintf("v1.0.%d", i), "info")); err != nil {
			t.Fatal(err)
		}
	}
	rep, runs := f.scrub(t, workflows.ScrubRequest{PageSize: 1})
	if runs != 2 {
		t.Errorf("%d runs, want 2 (%d pages of one version, %d pages a run)", runs, n, workflows.DefaultPagesPerRun)
	}
	if rep.Versions != n || rep.Pages != n || rep.MismatchCount != damaged || len(rep.Mismatches) != workflows.MaxListedMismatches {
		t.Errorf("report: %d versions in %d pages, %d mismatches (%d listed); want %d, %d, %d (%d)",
			rep.Versions, rep.Pages, rep.MismatchCount, len(rep.Mismatches), n, n, damaged, workflows.MaxListedMismatches)
	}
	seen := map[string]bool{}
	for _, m := range rep.Mismatches {
		if m.File != "info" || m.Problem != "missing" || seen[m.Version] {
			t.Errorf("unexpected or repeated mismatch %+v", m)
		}
		seen[m.Version] = true
	}
	if got := f.alarms(t, "scrub-mismatch"); got != damaged {
		t.Errorf("%d alarms, want %d", got, damaged)
	}
}

// A page retried after a worker restart resumes after the key it last heartbeated, with what it
// had found before: nothing before that key is checked (or reported) again.
func TestScrubPageResumesFromHeartbeat(t *testing.T) {
	f := newScrubFixture(t)
	for _, p := range []string{"example.com/a", "example.com/b", "example.com/c", "example.com/d"} {
		f.store(t, p, "v1.0.0")
	}
	// Damage before the heartbeated key, which the first attempt had found, and after it.
	f.corrupt(t, "example.com/a", "v1.0.0", "zip")
	f.corrupt(t, "example.com/c", "v1.0.0", "mod")
	found := activities.Mismatch{Path: "example.com/a", Version: "v1.0.0", File: "zip", Problem: "found by the first attempt"}
	// The first attempt had checked a and b, and was on b's mod when it died.
	heartbeat := activities.ScrubPageResult{Cursor: storagetest.Key(t, "example.com/b", "v1.0.0", "mod"), Versions: 2, Files: 5, Mismatches: []activities.Mismatch{found}}

	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(f.acts)
	env.SetHeartbeatDetails(heartbeat)
	val, err := env.ExecuteActivity(f.acts.ScrubPage, activities.ScrubPageRequest{Versions: 10})
	if err != nil {
		t.Fatal(err)
	}
	var res activities.ScrubPageResult
	if err := val.Get(&res); err != nil {
		t.Fatal(err)
	}
	if !res.Done || res.Versions != 4 || res.Files != 5+5 || len(res.Mismatches) != 2 {
		t.Fatalf("result %+v, want done, 4 versions, 10 files and 2 mismatches", res)
	}
	if res.Mismatches[0] != found || res.Mismatches[1].Path != "example.com/c" || res.Mismatches[1].File != "mod" {
		t.Errorf("mismatches %+v, want the carried one, then example.com/c's mod", res.Mismatches)
	}
	if n := f.alarms(t, "scrub-mismatch"); n != 1 {
		t.Errorf("%d alarms, want 1 (example.com/a's was raised by the first attempt)", n)
	}
	if want := storagetest.Key(t, "example.com/d", "v1.0.0", "zip"); res.Cursor != want {
		t.Errorf("cursor %q, want the last key %q", res.Cursor, want)
	}
}
