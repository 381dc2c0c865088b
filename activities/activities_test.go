package activities_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/activities"
	"github.com/goferproxy/gofer/internal/teststores"
	"github.com/goferproxy/gofer/storage/storagetest"
	"github.com/goferproxy/gofer/upstream"
	"github.com/goferproxy/gofer/workflows/fetcherr"
)

// fakeUpstream serves fixed .info and .mod and a zip reader that a test builds.
type fakeUpstream struct{ zip func() io.Reader }

func (fakeUpstream) List(context.Context, string) ([]byte, string, error) { return nil, "test", nil }
func (fakeUpstream) Latest(context.Context, string) ([]byte, string, error) {
	return []byte(`{"Version":"v1.0.0"}`), "test", nil
}
func (fakeUpstream) Info(_ context.Context, _, v string) ([]byte, string, error) {
	return []byte(`{"Version":"` + v + `"}`), "test", nil
}
func (fakeUpstream) Mod(context.Context, string, string) ([]byte, string, error) {
	return []byte("module example.com/m\n"), "test", nil
}
func (u fakeUpstream) Zip(context.Context, string, string) (io.ReadCloser, string, error) {
	return io.NopCloser(u.zip()), "test", nil
}

// failAfter yields n bytes, then err.
type failAfter struct {
	n   int
	err error
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, f.err
	}
	n := min(len(p), f.n)
	f.n -= n
	return n, nil
}

func newActivities(t *testing.T, up upstream.Source) (*activities.Activities, *observer.ObservedLogs) {
	t.Helper()
	blobs, meta := teststores.Open(t, "")
	core, logs := observer.New(zap.InfoLevel)
	return &activities.Activities{Upstream: up, Blobs: blobs, Meta: meta, Log: zap.New(core)}, logs
}

func env(a *activities.Activities) *testsuite.TestActivityEnvironment {
	var s testsuite.WorkflowTestSuite
	e := s.NewTestActivityEnvironment()
	e.RegisterActivity(a)
	return e
}

// errorType is the Temporal error type of an activity failure and whether it is retryable.
func errorType(t *testing.T, err error) (string, bool) {
	t.Helper()
	var app *temporal.ApplicationError
	if !errors.As(err, &app) {
		t.Fatalf("not an application error: %v", err)
	}
	return app.Type(), !app.NonRetryable()
}

// The upstream's own classification of a failed zip read survives staging: a zip over the size
// limit is invalid and final, a broken connection is unavailable and retried, marked answered
// since the zip had begun to arrive.
func TestDownloadKeepsTheUpstreamErrorKind(t *testing.T) {
	for i, c := range []struct {
		err       error
		wantType  string
		wantRetry bool
	}{
		0: {gofer.Errorf(gofer.ErrInvalid, "zip is larger than 524288000 bytes"), "Invalid", false},
		1: {gofer.Errorf(gofer.ErrUnavailable, "connection reset"), "UnavailableAnswered", true},
	} {
		a, _ := newActivities(t, fakeUpstream{zip: func() io.Reader { return &failAfter{n: 1 << 20, err: c.err} }})
		_, err := env(a).ExecuteActivity(a.Download, activities.Job{Path: "example.com/m", Version: "v1.0.0", RunID: "r"})
		typ, retry := errorType(t, err)
		if typ != c.wantType || retry != c.wantRetry || !strings.Contains(err.Error(), c.err.Error()) {
			t.Errorf("%d: %v: type %s retryable %v, want %s %v", i, err, typ, retry, c.wantType, c.wantRetry)
		}
	}
}

// A staged file that has gone missing says nothing about the module: Verify fails retryably,
// never as "not found" (which would tell clients the version does not exist).
func TestVerifyWithoutStagedFilesIsRetryable(t *testing.T) {
	a, _ := newActivities(t, nil)
	_, err := env(a).ExecuteActivity(a.Verify, activities.Staged{Job: activities.Job{Path: "example.com/m", Version: "v1.0.0", RunID: "gone"}, Attempt: 1})
	if typ, retry := errorType(t, err); typ != "Unavailable" || !retry {
		t.Errorf("%v: type %s retryable %v, want a retryable Unavailable", err, typ, retry)
	}
}

// A job naming a version that cannot exist, of which no blob key can be made, fails every
// activity that makes its keys as final not found, never as a storage failure to retry.
func TestImpossibleVersionIsNotFound(t *testing.T) {
	a, _ := newActivities(t, nil)
	s := activities.Staged{Job: activities.Job{Path: "example.com/m", Version: "v1.0.0!", RunID: "r"}, Attempt: 1}
	for i, c := range []struct {
		activity any
		arg      any
	}{
		0: {a.Verify, s},
		1: {a.Commit, activities.Verified{Staged: s}},
		2: {a.Discard, s.Job},
	} {
		_, err := env(a).ExecuteActivity(c.activity, c.arg)
		if typ, retry := errorType(t, err); typ != "NotFound" || retry || !strings.Contains(err.Error(), "v1.0.0!") {
			t.Errorf("%d: %v: type %s retryable %v, want a final NotFound naming the version", i, err, typ, retry)
		}
	}
}

// Committing a version that is already stored with other content keeps the stored record and
// raises the checksum alarm.
func TestCommitKeepsStoredVersionAndAlarms(t *testing.T) {
	a, logs := newActivities(t, nil)
	stored := gofer.Version{Path: "example.com/m", Version: "v1.0.0", ZipHash: "h1:stored=", ModHash: "h1:mod="}
	if err := a.Meta.Insert(context.Background(), stored); err != nil {
		t.Fatal(err)
	}
	v := activities.Verified{Staged: activities.Staged{Job: activities.Job{Path: "example.com/m", Version: "v1.0.0", RunID: "r"}},
		ZipHash: "h1:different=", ModHash: "h1:mod="}
	res, err := env(a).ExecuteActivity(a.Commit, v)
	if err != nil {
		t.Fatal(err)
	}
	var got gofer.Version
	if err := res.Get(&got); err != nil {
		t.Fatal(err)
	}
	if got.ZipHash != "h1:stored=" {
		t.Errorf("commit returned %s, want the stored record", got.ZipHash)
	}
	alarms := logs.FilterMessageSnippet("checksum alarm").All()
	if len(alarms) != 1 || alarms[0].ContextMap()["fetchedZipHash"] != "h1:different=" {
		t.Errorf("alarms logged: %v", alarms)
	}
}

// slowUpstream answers only once all three files have been asked for; then .info is not found
// and the zip waits for its request to be cancelled.
type slowUpstream struct {
	fakeUpstream
	asked     chan string
	all       chan struct{}
	cancelled chan struct{}
}

func (u *slowUpstream) wait(kind string) error {
	u.asked <- kind
	select {
	case <-u.all:
		return nil
	case <-time.After(10 * time.Second):
		return gofer.Errorf(gofer.ErrUnavailable, "%s: the other files were not asked for at the same time", kind)
	}
}

func (u *slowUpstream) Info(ctx context.Context, _, _ string) ([]byte, string, error) {
	if err := u.wait("info"); err != nil {
		return nil, "", err
	}
	return nil, "", gofer.Errorf(gofer.ErrNotFound, "no such version")
}

func (u *slowUpstream) Mod(ctx context.Context, p, v string) ([]byte, string, error) {
	if err := u.wait("mod"); err != nil {
		return nil, "", err
	}
	return u.fakeUpstream.Mod(ctx, p, v)
}

func (u *slowUpstream) Zip(ctx context.Context, _, _ string) (io.ReadCloser, string, error) {
	if err := u.wait("zip"); err != nil {
		return nil, "", err
	}
	<-ctx.Done()
	close(u.cancelled)
	return nil, "", gofer.Errorf(gofer.ErrUnavailable, "zip: %w", ctx.Err())
}

// Download asks for the three files at once, so that a slow upstream's latency is paid once;
// the first failure ends the others early and is the one reported.
func TestDownloadFetchesTheFilesAtOnce(t *testing.T) {
	u := &slowUpstream{asked: make(chan string, 3), all: make(chan struct{}), cancelled: make(chan struct{})}
	go func() {
		for range 3 {
			<-u.asked
		}
		close(u.all)
	}()
	a, _ := newActivities(t, u)
	_, err := env(a).ExecuteActivity(a.Download, activities.Job{Path: "example.com/m", Version: "v1.0.0", RunID: "r"})
	if typ, retry := errorType(t, err); typ != "NotFound" || retry || !strings.Contains(err.Error(), "no such version") {
		t.Errorf("%v: type %s retryable %v, want the .info's NotFound, final", err, typ, retry)
	}
	select {
	case <-u.cancelled:
	default:
		t.Error("the zip's request was not cancelled when .info failed")
	}
}

// lookingUpstream answers a .mod only once the checksum database has been asked for the version.
type lookingUpstream struct {
	fakeUpstream
	looked chan struct{}
}

func (u lookingUpstream) Mod(ctx context.Context, p, v string) ([]byte, string, error) {
	select {
	case <-u.looked:
		return u.fakeUpstream.Mod(ctx, p, v)
	case <-time.After(5 * time.Second):
		return nil, "", gofer.Errorf(gofer.ErrUnavailable, "the checksum database was not asked while the .mod downloaded")
	}
}

// signallingDB vouches for every hash, and closes looked when first asked.
type signallingDB struct {
	once   sync.Once
	looked chan struct{}
	asked  atomic.Int32
}

func (d *signallingDB) Check(_ context.Context, _, _, _, _ string) (string, error) {
	d.asked.Add(1)
	d.once.Do(func() { close(d.looked) })
	return "sumdb test", nil
}

// FetchMod asks the checksum database while the .info and .mod download, not after: a round
// trip (or more, for its tiles) less on every .mod miss. The check that follows still runs.
func TestFetchModLooksUpWhileDownloading(t *testing.T) {
	looked := make(chan struct{})
	db := &signallingDB{looked: looked}
	a, _ := newActivities(t, lookingUpstream{looked: looked})
	a.SumDB = db
	v, err := env(a).ExecuteActivity(a.FetchMod, activities.Job{Path: "example.com/m", Version: "v1.0.0", RunID: "r", Files: activities.FilesMod})
	if err != nil {
		t.Fatal(err)
	}
	var rec gofer.Version
	if err := v.Get(&rec); err != nil || rec.VerifiedBy != "sumdb test" {
		t.Fatalf("stored %+v, %v; want it verified by the test database", rec, err)
	}
	if n := db.asked.Load(); n != 2 {
		t.Errorf("the database was asked %d times, want 2: the look-ahead and the check", n)
	}
}

// failingZip answers the .info and .mod but not the zip.
type failingZip struct{ fakeUpstream }

func (failingZip) Zip(context.Context, string, string) (io.ReadCloser, string, error) {
	return nil, "", gofer.Errorf(gofer.ErrUnavailable, "zip: upstream busy")
}

// A zip the upstream cannot give now is worth retrying for hours (answered) when the version's
// .mod is stored, and only for the probe's minutes when nothing says the version exists.
// Both ways of downloading a zip, Download into staging and FetchZip, do so.
func TestZipDownloadIsAnsweredOnceTheModIsStored(t *testing.T) {
	for _, name := range []string{"Download", "FetchZip"} {
		a, _ := newActivities(t, failingZip{})
		download := map[string]any{"Download": a.Download, "FetchZip": a.FetchZip}[name]
		job := activities.Job{Path: "example.com/m", Version: "v1.0.0", RunID: "r", Files: activities.FilesZip}
		_, err := env(a).ExecuteActivity(download, job)
		if typ, _ := errorType(t, err); fetcherr.Answered(err) || typ != "Unavailable" {
			t.Errorf("%s, nothing stored: %v (type %s), want Unavailable, not answered", name, err, typ)
		}
		if err := a.Meta.Insert(context.Background(), gofer.Version{Path: job.Path, Version: job.Version, ModHash: "h1:m"}); err != nil {
			t.Fatal(err)
		}
		_, err = env(a).ExecuteActivity(download, job)
		if !fetcherr.Answered(err) {
			t.Errorf("%s, the .mod stored: %v, want it answered", name, err)
		}
	}
}

// A fetch of all three files recorded before they were fetched apart, committing a version
// whose .mod a fetch of its own stored meanwhile, keeps that record and commits the zip with a
// record of its own, as a fetch of the zip does: no alarm, and the zip served with the version.
func TestWholeCommitAfterModStoredApart(t *testing.T) {
	a, logs := newActivities(t, nil)
	ctx := context.Background()
	mod := gofer.Version{Path: "example.com/m", Version: "v1.0.0", ModHash: "h1:mod=", RunID: "mod-run"}
	if err := a.Meta.Insert(ctx, mod); err != nil {
		t.Fatal(err)
	}
	s := activities.Staged{Job: activities.Job{Path: "example.com/m", Version: "v1.0.0", RunID: "r"}, Attempt: 1}
	zipKey := storagetest.StagingKey(t, "example.com/m", "v1.0.0", "r/1", "zip")
	if err := a.Blobs.Put(ctx, zipKey, strings.NewReader("zip")); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("zip"))
	s.Zip = gofer.File{Size: 3, SHA256: hex.EncodeToString(sum[:])}
	res, err := env(a).ExecuteActivity(a.Commit, activities.Verified{Staged: s, ZipHash: "h1:zip=", ModHash: "h1:mod="})
	if err != nil {
		t.Fatal(err)
	}
	var got gofer.Version
	if err := res.Get(&got); err != nil {
		t.Fatal(err)
	}
	if got.RunID != "mod-run" || got.ZipHash != "h1:zip=" {
		t.Errorf("commit returned %+v, want the stored .mod's record with the zip", got)
	}
	if rec, err := a.Meta.Get(ctx, "example.com/m", "v1.0.0"); err != nil || rec.ZipHash != "h1:zip=" {
		t.Errorf("stored %+v, %v; want the version with its zip", rec, err)
	}
	if r, _, err := a.Blobs.Open(ctx, storagetest.Key(t, "example.com/m", "v1.0.0", "zip")); err != nil {
		t.Errorf("the zip blob: %v", err)
	} else {
		r.Close()
	}
	if n := logs.FilterMessageSnippet("checksum alarm").Len(); n != 0 {
		t.Errorf("%d alarms logged, want none", n)
	}
}

// sizedZip is a zip stream that declares its length and must not be read.
type sizedZip struct{ t *testing.T }

func (z sizedZip) Read([]byte) (int, error) {
	z.t.Error("a zip declared over the local limit was read")
	return 0, io.ErrUnexpectedEOF
}
func (sizedZip) Close() error { return nil }
func (sizedZip) Size() int64  { return 1 << 20 }

// FetchZip sends a zip the upstream declares over the local limit through staging without
// reading it.
func TestFetchZipDeclaredLargeGoesThroughStaging(t *testing.T) {
	a, _ := newActivities(t, declaringUpstream{zip: sizedZip{t}})
	a.LocalZipLimit = 1 << 10
	_, err := env(a).ExecuteActivity(a.FetchZip, activities.Job{Path: "example.com/m", Version: "v1.0.0", RunID: "r", Files: activities.FilesZip})
	if !fetcherr.NotLocal(err) {
		t.Errorf("%v, want the zip sent through staging", err)
	}
}

// declaringUpstream serves zip as every zip.
type declaringUpstream struct {
	fakeUpstream
	zip io.ReadCloser
}

func (u declaringUpstream) Zip(context.Context, string, string) (io.ReadCloser, string, error) {
	return u.zip, "test", nil
}
