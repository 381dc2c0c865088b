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
	"github.com/goferproxy/gofer/warm"
)

// A project's go.sum chooses what gofer exports; the go command then downloads and verifies
// the whole project from the bundle alone (GOPROXY=file://, nothing else reachable), and lists
// a module's versions from it. The tar form holds the same files.
func TestExportByGoSum(t *testing.T) {
	up := fakeproxy.New()
	g := startGofer(t, up.Start(t), options{})
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
	sum, err := bundle.Export(ctx, g.blobs, g.meta, list, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Versions != len(warm.Normalize(list)) || sum.Zips != 3 {
		t.Errorf("exported %+v of %d go.sum versions; want the 3 required ones with their zips", sum, len(list))
	}

	// Offline: the bundle is the only proxy, and every byte is checked against go.sum.
	offline := func(args ...string) string {
		t.Helper()
		cmd := goCommand("file://"+filepath.ToSlash(dir), t.TempDir(), args...)
		cmd.Dir = project
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s from the bundle: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	offline("mod", "download")
	offline("build", "./...")
	if out := offline("list", "-m", "-versions", "example.com/exported/m0"); strings.TrimSpace(out) != "example.com/exported/m0 v1.1.0" {
		t.Errorf("go list -m -versions from the bundle: %q, want the exported version alone", out)
	}

	// The tar holds the same files, byte for byte.
	tarFile := filepath.Join(t.TempDir(), "bundle.tar")
	if _, err := bundle.Export(ctx, g.blobs, g.meta, list, tarFile, nil); err != nil {
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
