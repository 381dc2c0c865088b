package e2e

import (
	"archive/tar"
	"context"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/goferproxy/gofer/bundle"
	"github.com/goferproxy/gofer/internal/fakeproxy"
	"github.com/goferproxy/gofer/sumdb"
	"github.com/goferproxy/gofer/warm"
)

// readLines is the lines of the file name.
func readLines(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// A project's go.sum chooses what gofer exports; the go command then downloads and verifies
// the whole project from the bundle alone (GOPROXY=file://, nothing else reachable): with its
// go.sum, and without it, from the checksum database's proofs in the bundle (GOSUMDB set to
// the test database's key), which catch an altered zip. It lists a module's versions from the
// bundle too. The tar form holds the same files.
func TestExportByGoSum(t *testing.T) {
	up, db, upURL, parsed := sumdbUpstream(t)
	checker := &sumdb.Checker{DB: parsed}
	g := startGofer(t, upURL, options{sumdb: checker})
	addModules(up, "exported", 3, 2)
	up.Add("example.com/exported/dep", "v1.0.0", map[string]string{"go.mod": "module example.com/exported/dep\n", "d.go": "package dep\n"})
	up.Add("example.com/exported/m0", "v1.1.0", map[string]string{
		"go.mod": "module example.com/exported/m0\n\ngo 1.21\n\nrequire example.com/exported/dep v1.0.0\n", "m.go": "package m\n"})

	project := t.TempDir()
	for name, body := range map[string]string{
		"go.mod":  "module example.com/project\n\ngo 1.21\n\nrequire (\n\texample.com/exported/m0 v1.1.0\n\texample.com/exported/m1 v1.0.1\n\texample.com/exported/m2 v1.0.0\n)\n",
		"main.go": "package main\n\nimport (\n\t_ \"example.com/exported/m0\"\n\t_ \"example.com/exported/m1\"\n\t_ \"example.com/exported/m2\"\n)\n\nfunc main() {}\n",
	} {
		if err := os.WriteFile(filepath.Join(project, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tidy := goCommand(g.URL, t.TempDir(), "mod", "tidy")
	tidy.Dir = project
	if out, err := tidy.CombinedOutput(); err != nil {
		t.Fatalf("go mod tidy through gofer: %v\n%s", err, out)
	}
	list, err := warm.ReadGoSum(filepath.Join(project, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "bundle")
	st := bundle.Stores{Blobs: g.blobs, Meta: g.meta, SumDB: checker}
	sum, err := bundle.Export(ctx, st, list, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Versions != len(warm.Normalize(list)) || sum.Zips != 3 || sum.Proven != sum.Versions {
		t.Errorf("exported %+v of %d go.sum versions; want the 3 required ones with their zips", sum, len(list))
	}

	// Offline: the bundle is the only proxy, and every byte is checked against go.sum.
	run := func(project string, args ...string) (string, error) {
		cmd := goCommand("file://"+filepath.ToSlash(dir), t.TempDir(), args...)
		cmd.Env = append(cmd.Env, "GOSUMDB="+db.VerifierKey(), "GOFLAGS=-mod=mod")
		cmd.Dir = project
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	offline := func(args ...string) string {
		t.Helper()
		out, err := run(project, args...)
		if err != nil {
			t.Fatalf("go %s from the bundle: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	offline("mod", "download")
	offline("build", "./...")

	// Without go.sum, the go command checks every version against the checksum database, whose
	// proofs it reads from the bundle alone, and writes the same go.sum.
	bare := t.TempDir()
	for _, name := range []string{"go.mod", "main.go"} {
		b, _ := os.ReadFile(filepath.Join(project, name))
		os.WriteFile(filepath.Join(bare, name), b, 0o644)
	}
	if out, err := run(bare, "build", "./..."); err != nil {
		t.Fatalf("go build without go.sum, from the bundle and its proofs: %v\n%s", err, out)
	}
	if got, want := readLines(t, filepath.Join(bare, "go.sum")), readLines(t, filepath.Join(project, "go.sum")); !slices.Equal(got, want) {
		t.Errorf("go.sum from the bundle's proofs:\n%q\nwant\n%q", got, want)
	}
	// An altered zip is caught by the proofs.
	zip := filepath.Join(dir, "example.com/exported/m1/@v/v1.0.1.zip")
	orig, _ := os.ReadFile(zip)
	altered := fakeproxy.RawZip(map[string]string{"example.com/exported/m1@v1.0.1/go.mod": "module example.com/exported/m1\n", "example.com/exported/m1@v1.0.1/m.go": "package m\n// altered\n"})
	os.WriteFile(zip, altered, 0o644)
	os.Remove(filepath.Join(bare, "go.sum"))
	if out, err := run(bare, "mod", "download", "example.com/exported/m1"); err == nil || !strings.Contains(out, "checksum mismatch") {
		t.Errorf("an altered zip in the bundle: %v\n%s\nwant a checksum mismatch", err, out)
	}
	os.WriteFile(zip, orig, 0o644)
	if out := offline("list", "-m", "-versions", "example.com/exported/m0"); strings.TrimSpace(out) != "example.com/exported/m0 v1.1.0" {
		t.Errorf("go list -m -versions from the bundle: %q, want the exported version alone", out)
	}

	// The tar holds the same files, byte for byte.
	tarFile := filepath.Join(t.TempDir(), "bundle.tar")
	if _, err := bundle.Export(ctx, st, list, tarFile, nil); err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			want[filepath.ToSlash(rel)], err = os.ReadFile(p)
		}
		return err
	})
	f, err := os.Open(tarFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := map[string][]byte{}
	for tr := tar.NewReader(f); ; {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			got[h.Name], _ = io.ReadAll(tr)
		}
	}
	names := slices.Sorted(maps.Keys(want))
	if len(got) != len(want) || len(want) == 0 {
		t.Errorf("tar holds %d files, the directory %d (%q)", len(got), len(want), names)
	}
	for n, b := range want {
		if string(got[n]) != string(b) {
			t.Errorf("tar's %s differs from the directory's", n)
		}
	}
}
