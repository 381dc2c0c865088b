package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/goferproxy/gofer/internal/fakeproxy"
)

// `go mod download all` of a project through a cold gofer: the go command gets every byte its
// go.sum (made straight from the upstream) expects, and gofer fetches from the upstream only
// what it was asked for: the .mod of every version in the module graph, the zip of those in the
// build list alone. A version needed only as a .mod is stored without a zip, one in the build
// list with it.
func TestGoModDownloadAllFetchesWhatItNeeds(t *testing.T) {
	up := fakeproxy.New()
	gomod := coldProject(up, 8, 3)
	upURL := up.Start(t)
	project, gosum := projectGoSum(t, upURL, gomod)
	g := startGofer(t, upURL, options{})
	before := map[string]int{} // the straight run's requests, by path
	for _, l := range up.Log() {
		before[l]++
	}
	// go.sum is read-only to this command (-mod=readonly): a byte that differs fails it.
	cmd := goCommand(g.URL, t.TempDir(), "mod", "download", "all")
	cmd.Dir = project
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go mod download all, through gofer: %v\n%s", err, out)
	}
	zips := map[string]bool{}
	var mods []string
	for _, line := range strings.Split(strings.TrimSpace(string(gosum)), "\n") {
		f := strings.Fields(line)
		if v, ok := strings.CutSuffix(f[1], "/go.mod"); ok {
			mods = append(mods, f[0]+"@"+v)
		} else {
			zips[f[0]+"@"+f[1]] = true
		}
	}
	if len(zips) != 8 || len(mods) <= 2*len(zips) {
		t.Fatalf("the project's go.sum names %d zips and %d .mod files, want 8 and many more", len(zips), len(mods))
	}
	for _, pv := range mods {
		path, version, _ := strings.Cut(pv, "@")
		zip := "/" + path + "/@v/" + version + ".zip"
		if n := up.Requests(zip) - before[zip]; n != 0 != zips[pv] || n > 1 {
			t.Errorf("%s: the upstream saw %d zip requests from gofer; the build list has it: %v", pv, n, zips[pv])
		}
		rec, err := g.meta.Get(context.Background(), path, version)
		if err != nil || rec.HasZip() != zips[pv] {
			t.Errorf("%s: stored %+v, %v; want a zip stored: %v", pv, rec, err, zips[pv])
		}
	}
}
