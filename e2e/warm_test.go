package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/activities"
	"github.com/goferproxy/gofer/internal/fakeproxy"
	"github.com/goferproxy/gofer/internal/testserver"
	"github.com/goferproxy/gofer/server"
	"github.com/goferproxy/gofer/warm"
	"github.com/goferproxy/gofer/worker"
	"github.com/goferproxy/gofer/workflows"
)

const adminToken = "s3cret-admin-token"

// addModules serves modules example.com/<name>/m<i>, versions v1.0.0 to v1.0.<perModule-1>,
// and returns their module@version names.
func addModules(up *fakeproxy.Proxy, name string, modules, perModule int) []string {
	var names []string
	for i := range modules {
		path := fmt.Sprintf("example.com/%s/m%d", name, i)
		for j := range perModule {
			v := fmt.Sprintf("v1.0.%d", j)
			up.Add(path, v, map[string]string{
				"go.mod": "module " + path + "\n\ngo 1.21\n",
				"m.go":   fmt.Sprintf("package m\n\nconst V = %d\n", j),
			})
			names = append(names, path+"@"+v)
		}
	}
	return names
}

// adminCall sends an admin request with token (none if empty) and decodes a 2xx answer into out.
func adminCall(t testing.TB, method, url, token, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 && out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

// `gofer warm` with a go.sum of 40 versions stores every one of them; then, with the upstream
// gone, the go command downloads all of them through gofer into a fresh module cache, with
// exactly the hashes of the go.sum.
func TestWarmFromGoSum(t *testing.T) {
	up := fakeproxy.New()
	g := startGofer(t, up.Start(t), options{admin: adminToken})
	names := addModules(up, "warm", 8, 5)
	var gosum bytes.Buffer
	for _, pv := range names {
		path, v, _ := strings.Cut(pv, "@")
		lines, err := up.GoSum(path, v)
		if err != nil {
			t.Fatal(err)
		}
		gosum.Write(lines)
	}
	file := filepath.Join(t.TempDir(), "go.sum")
	if err := os.WriteFile(file, gosum.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(buildGofer(t), "warm", "--url", g.URL, file)
	cmd.Env = append(os.Environ(), "GOFER_ADMIN_TOKEN="+adminToken)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("gofer warm: %v\n%s", err, out)
	}
	for _, want := range []string{"40 module versions", "completed: 40 of 40 done: 40 fetched, 0 already cached, 0 failed", uiBase + "/namespaces/" + g.ns + "/workflows/warm:"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("gofer warm printed no %q:\n%s", want, out)
		}
	}
	for _, pv := range names {
		path, v, _ := strings.Cut(pv, "@")
		if _, err := g.meta.Get(context.Background(), path, v); err != nil {
			t.Errorf("%s not stored after the warm: %v", pv, err)
		}
	}

	up.Close()
	cmd = goCommand(g.URL, t.TempDir(), append([]string{"mod", "download", "-json"}, names...)...)
	cmd.Dir = t.TempDir()
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("go mod download through gofer without the upstream: %v\n%s", err, out)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	n := 0
	for ; dec.More(); n++ {
		var m moduleJSON
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		if m.Error != "" || !bytes.Contains(gosum.Bytes(), []byte(m.Path+" "+m.Version+" "+m.Sum+"\n")) {
			t.Errorf("%s@%s: sum %q, error %q; not as in the go.sum", m.Path, m.Version, m.Sum, m.Error)
		}
	}
	if n != len(names) {
		t.Errorf("go mod download reported %d modules, want %d", n, len(names))
	}
}

// A warm and live requests for the same missing versions, at the same time, download each
// version from the upstream once: they share the fetch workflows.
func TestWarmAndLiveMissesShareFetches(t *testing.T) {
	up := fakeproxy.New()
	g := startGofer(t, up.Start(t), options{admin: adminToken})
	names := addModules(up, "shared", 4, 5)
	up.Delay(200 * time.Millisecond)

	var wg sync.WaitGroup
	errs := make(chan error, 2*len(names))
	for _, pv := range names {
		path, v, _ := strings.Cut(pv, "@")
		for range 2 {
			wg.Go(func() {
				resp, err := http.Get(g.URL + "/" + path + "/@v/" + v + ".zip")
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("%s: %s", pv, resp.Status)
					}
				}
				errs <- err
			})
		}
	}
	var started server.WarmStarted
	if code := adminCall(t, http.MethodPost, g.URL+"/admin/warm", adminToken, strings.Join(names, "\n"), &started); code != http.StatusAccepted {
		t.Fatalf("POST /admin/warm: %d", code)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	st := awaitWarm(t, g, started.ID)
	p := st.Progress
	if st.Status != "Completed" || p.Total != len(names) || p.Fetched+p.Cached != len(names) || p.Failed != 0 {
		t.Errorf("warm ended %s with %+v", st.Status, p)
	}
	for _, pv := range names {
		path, v, _ := strings.Cut(pv, "@")
		if n := up.Requests("/" + path + "/@v/" + v + ".zip"); n != 1 {
			t.Errorf("%s: %d upstream zip downloads, want 1", pv, n)
		}
	}
	if *record {
		recordHistory(t, g, started.ID, "../workflows/testdata/warm_history.json")
	}
}

// awaitWarm polls GET /admin/warm/<id> until the warm has ended (at most 10 minutes: the
// miss-path benchmark warms 500 versions).
func awaitWarm(t testing.TB, g *proxy, id string) server.WarmStatus {
	t.Helper()
	deadline := time.Now().Add(10 * time.Minute)
	for {
		var st server.WarmStatus
		if code := adminCall(t, http.MethodGet, g.URL+"/admin/warm/"+id, adminToken, "", &st); code != http.StatusOK {
			t.Fatalf("GET /admin/warm/%s: %d", id, code)
		}
		if st.Status != "Running" {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("warm %s still running: %+v", id, st.Progress)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A watchlist entry becomes a schedule whose runs fetch what the upstream's @latest names: a
// version published later is fetched by a later run. Removing the entry removes the schedule.
func TestWatchlistSchedule(t *testing.T) {
	up := fakeproxy.New()
	g := startGofer(t, up.Start(t), options{})
	const path = "example.com/watched"
	up.Add(path, "v1.0.0", map[string]string{"go.mod": "module " + path + "\n"})
	entries, err := warm.ParseWatchlist(strings.NewReader(path + " latest every 2s\n"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := worker.EnsureWatchSchedules(ctx, g.temporal, g.blobs, entries, 4); err != nil {
		t.Fatal(err)
	}
	id := worker.WatchSchedulePrefix + path
	if _, err := g.temporal.ScheduleClient().GetHandle(ctx, id).Describe(ctx); err != nil {
		t.Fatalf("schedule %s: %v", id, err)
	}
	awaitStored(t, g, path, "v1.0.0")
	up.Add(path, "v1.1.0", map[string]string{"go.mod": "module " + path + "\n"})
	awaitStored(t, g, path, "v1.1.0")

	if err := worker.EnsureWatchSchedules(ctx, g.temporal, g.blobs, nil, 4); err != nil {
		t.Fatal(err)
	}
	var notFound *serviceerror.NotFound
	if _, err := g.temporal.ScheduleClient().GetHandle(ctx, id).Describe(ctx); !errors.As(err, &notFound) {
		t.Errorf("schedule %s after its entry was removed: %v, want not found", id, err)
	}
}

// awaitStored waits until path@version has a metadata record.
func awaitStored(t *testing.T, g *proxy, path, version string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := g.meta.Get(context.Background(), path, version)
		if err == nil {
			return
		}
		if !errors.Is(err, gofer.ErrNotFound) || time.Now().After(deadline) {
			t.Fatalf("%s@%s not stored: %v", path, version, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Fetches can be found through Temporal visibility by module, with their outcome and source, and
// carry their sizes and hashes in their memo; GET /admin/fetches shows the same.
func TestFetchVisibility(t *testing.T) {
	up := fakeproxy.New()
	upURL := up.Start(t)
	g := startGofer(t, upURL, options{admin: adminToken})
	const path = "example.com/visible"
	up.Add(path, "v1.0.0", map[string]string{"go.mod": "module " + path + "\n"})
	if _, err := download(t, g.URL, path+"@v1.0.0"); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := testserver.Get(t, http.MethodGet, g.URL+"/"+path+"/@v/v1.9.9.info"); code != http.StatusNotFound {
		t.Fatalf("missing version: %d", code)
	}

	outcomes := map[string]string{} // version → FetchOutcome
	deadline := time.Now().Add(30 * time.Second)
	for len(outcomes) < 2 || outcomes["v1.0.0"] == "" || outcomes["v1.9.9"] == "" {
		if time.Now().After(deadline) {
			t.Fatalf("visibility by GoModule: %v", outcomes)
		}
		time.Sleep(200 * time.Millisecond)
		resp, err := g.temporal.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: g.ns, Query: `GoModule = "` + path + `"`})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range resp.GetExecutions() {
			sa := e.GetSearchAttributes().GetIndexedFields()
			var version, outcome, source string
			dc := converter.GetDefaultDataConverter()
			dc.FromPayload(sa["GoVersion"], &version)
			dc.FromPayload(sa["FetchOutcome"], &outcome)
			dc.FromPayload(sa["FetchSource"], &source)
			outcomes[version] = outcome
			if version == "v1.0.0" && outcome != "" && source != upURL {
				t.Errorf("FetchSource %q, want %q", source, upURL)
			}
		}
	}
	if outcomes["v1.0.0"] != workflows.OutcomeStored || outcomes["v1.9.9"] != workflows.OutcomeNotFound {
		t.Errorf("FetchOutcome by version: %v", outcomes)
	}

	d, err := g.temporal.DescribeWorkflow(context.Background(), workflows.FetchID(path, "v1.0.0", activities.FilesZip), "")
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := g.meta.Get(context.Background(), path, "v1.0.0")
	var zipHash string
	if p := d.Memo.GetFields()["zipHash"]; p == nil || converter.GetDefaultDataConverter().FromPayload(p, &zipHash) != nil || zipHash != rec.ZipHash {
		t.Errorf("memo zipHash %q, want %q", zipHash, rec.ZipHash)
	}
	if summary, _ := d.GetStaticSummary(); summary != "fetch "+path+"@v1.0.0.zip" {
		t.Errorf("static summary %q", summary)
	}

	var fetches server.Fetches
	if code := adminCall(t, http.MethodGet, g.URL+"/admin/fetches?module="+path, adminToken, "", &fetches); code != http.StatusOK {
		t.Fatalf("GET /admin/fetches: %d", code)
	}
	// v1.0.0's .mod and zip, and v1.9.9's .mod.
	if strings.Join(fetches.Stored, " ") != "v1.0.0" || len(fetches.Fetches) != 3 {
		t.Errorf("GET /admin/fetches: %+v", fetches)
	}
	for _, f := range fetches.Fetches {
		if f.Outcome != outcomes[f.Version] || !strings.HasPrefix(f.URL, uiBase+"/namespaces/"+g.ns+"/workflows/fetch:") {
			t.Errorf("GET /admin/fetches entry %+v", f)
		}
	}
	if code := adminCall(t, http.MethodGet, g.URL+"/admin/fetches?module=Not..Valid", adminToken, "", nil); code != http.StatusBadRequest {
		t.Errorf("GET /admin/fetches of a malformed module: %d, want 400", code)
	}
}

// The admin API refuses requests without the right token, and starts nothing; with no token
// configured, it is not there at all.
func TestAdminNeedsToken(t *testing.T) {
	up := fakeproxy.New()
	upURL := up.Start(t)
	g := startGofer(t, upURL, options{admin: adminToken})
	names := addModules(up, "guarded", 1, 2)
	body := strings.Join(names, "\n")
	for _, token := range []string{"", "wrong", adminToken + "x", adminToken[:len(adminToken)-1]} {
		for _, r := range []struct{ method, path string }{
			{http.MethodPost, "/admin/warm"},
			{http.MethodGet, "/admin/warm/warm:0123456789abcdef"},
			{http.MethodGet, "/admin/fetches?module=example.com/guarded/m0"},
			{http.MethodGet, "/admin/schedules"},
		} {
			if code := adminCall(t, r.method, g.URL+r.path, token, body, nil); code != http.StatusUnauthorized {
				t.Errorf("%s %s with token %q: %d, want 401", r.method, r.path, token, code)
			}
		}
	}
	if n := g.workflowCount(t); n != 0 {
		t.Errorf("%d workflows started by refused admin requests", n)
	}
	if keys := blobKeys(t, g); len(keys) != 0 {
		t.Errorf("refused admin requests stored %v", keys)
	}
	if code := adminCall(t, http.MethodPost, g.URL+"/admin/warm", adminToken, "not a module list", nil); code != http.StatusBadRequest {
		t.Errorf("POST /admin/warm of a malformed list: %d, want 400", code)
	}
	if code := adminCall(t, http.MethodPost, g.URL+"/admin/warm", adminToken, strings.Repeat("x", 16<<20+1), nil); code != http.StatusRequestEntityTooLarge {
		t.Errorf("POST /admin/warm of a body over 16 MiB: %d, want 413", code)
	}
	var schedules []server.Schedule
	if code := adminCall(t, http.MethodGet, g.URL+"/admin/schedules", adminToken, "", &schedules); code != http.StatusOK {
		t.Errorf("GET /admin/schedules with the token: %d", code)
	}

	open := startGofer(t, upURL, options{})
	if code := adminCall(t, http.MethodPost, open.URL+"/admin/warm", "", body, nil); code != http.StatusNotFound {
		t.Errorf("POST /admin/warm with no admin token configured: %d, want 404", code)
	}
	if n := open.workflowCount(t); n != 0 {
		t.Errorf("%d workflows started with the admin API off", n)
	}
}
