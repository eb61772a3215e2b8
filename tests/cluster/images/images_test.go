package images

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// moduleDir is the root of this module, three levels up from this package.
func moduleDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d, "go.mod")); err != nil {
		t.Fatalf("module root: %v", err)
	}
	return d
}

type entry struct {
	Type byte
	Mode int64
	UID  int
	GID  int
	Size int64
}

// readImage reads the tarball at p back with go-containerregistry and returns
// the image's config and the entries of its only layer.
func readImage(t *testing.T, p, ref string) (entrypoint, env []string, osArch string, entries map[string]entry) {
	t.Helper()
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(p, &tag)
	if err != nil {
		t.Fatalf("read %s as %s: %v", p, ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("got %d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	entries = map[string]entry{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		entries[h.Name] = entry{Type: h.Typeflag, Mode: h.Mode, UID: h.Uid, GID: h.Gid, Size: h.Size}
	}
	return cf.Config.Entrypoint, cf.Config.Env, cf.OS + "/" + cf.Architecture, entries
}

func TestPackRealBinary(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "pause")
	build := exec.Command("go", "build", "-o", bin, "./pause")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOTOOLCHAIN=local")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./pause: %v\n%s", err, out)
	}
	st, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "pause.tar")
	spec := Spec{
		Ref:        "weft/pause:test",
		Entrypoint: []string{"/usr/local/bin/pause"},
		Files: []File{
			{Path: "/usr/local/bin/pause", Source: bin},
			{Path: "/etc/weft/readme", Source: bin, Mode: 0o644},
		},
	}
	if err := Pack(spec, out); err != nil {
		t.Fatal(err)
	}
	entrypoint, env, osArch, entries := readImage(t, out, spec.Ref)
	if diff := cmp.Diff([]string{"/usr/local/bin/pause"}, entrypoint); diff != "" {
		t.Errorf("entrypoint (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"PATH=" + DefaultPath}, env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	if want := "linux/" + runtime.GOARCH; osArch != want {
		t.Errorf("platform: got %s, want %s", osArch, want)
	}
	want := map[string]entry{
		"etc/":                {Type: tar.TypeDir, Mode: 0o755},
		"etc/weft/":           {Type: tar.TypeDir, Mode: 0o755},
		"tmp/":                {Type: tar.TypeDir, Mode: 0o1777},
		"usr/":                {Type: tar.TypeDir, Mode: 0o755},
		"usr/local/":          {Type: tar.TypeDir, Mode: 0o755},
		"usr/local/bin/":      {Type: tar.TypeDir, Mode: 0o755},
		"usr/local/bin/pause": {Type: tar.TypeReg, Mode: 0o755, Size: st.Size()},
		"etc/weft/readme":     {Type: tar.TypeReg, Mode: 0o644, Size: st.Size()},
	}
	if diff := cmp.Diff(want, entries); diff != "" {
		t.Errorf("layer entries (-want +got):\n%s", diff)
	}

	// The same input packs to the same image.
	out2 := filepath.Join(dir, "pause2.tar")
	if err := Pack(spec, out2); err != nil {
		t.Fatal(err)
	}
	if digest(t, out, spec.Ref) != digest(t, out2, spec.Ref) {
		t.Error("packing twice gave two image digests, want one")
	}
}

func digest(t *testing.T, p, ref string) string {
	t.Helper()
	tag, _ := name.NewTag(ref)
	img, err := tarball.ImageFromPath(p, &tag)
	if err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func TestPackRejects(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "f")
	if err := os.WriteFile(src, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		spec Spec
	}{
		{"relative path", Spec{Ref: "a/b:c", Files: []File{{Path: "usr/bin/f", Source: src}}}},
		{"twice", Spec{Ref: "a/b:c", Files: []File{{Path: "/f", Source: src}, {Path: "/f", Source: src}}}},
		{"missing source", Spec{Ref: "a/b:c", Files: []File{{Path: "/f", Source: filepath.Join(dir, "nope")}}}},
		{"directory source", Spec{Ref: "a/b:c", Files: []File{{Path: "/f", Source: dir}}}},
		{"bad reference", Spec{Ref: "UPPER/case:x", Files: []File{{Path: "/f", Source: src}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Pack(tc.spec, filepath.Join(dir, "out.tar")); err == nil {
				t.Error("Pack succeeded, want an error")
			}
		})
	}
}

// TestBuildWeft builds the real images (one go build of four commands) and
// checks what the chart relies on: the entrypoints, and weft-cni next to
// weft-node-proxy on PATH.
func TestBuildWeft(t *testing.T) {
	if testing.Short() {
		t.Skip("builds four commands; skipped with -short")
	}
	out := t.TempDir()
	built, err := Build(context.Background(), BuildOptions{ModuleDir: moduleDir(t), OutDir: out, Tag: "test"})
	if err != nil {
		t.Fatal(err)
	}
	type image struct {
		Entrypoint []string
		Binaries   []string
	}
	got := map[string]image{}
	for _, b := range built {
		entrypoint, _, _, entries := readImage(t, b.Tarball, b.Ref)
		img := image{Entrypoint: entrypoint}
		for n, e := range entries {
			if e.Type == tar.TypeReg {
				if e.Mode != 0o755 || e.UID != 0 || e.GID != 0 {
					t.Errorf("%s: %s: mode %o uid %d gid %d, want 755 0 0", b.Ref, n, e.Mode, e.UID, e.GID)
				}
				img.Binaries = append(img.Binaries, n)
			}
		}
		sort.Strings(img.Binaries)
		got[b.Ref] = img
	}
	want := map[string]image{
		"weft/weft-control-plane:test": {Entrypoint: []string{"/usr/local/bin/weft-control-plane"}, Binaries: []string{"usr/local/bin/weft-control-plane"}},
		"weft/weft-node-proxy:test":    {Entrypoint: []string{"/usr/local/bin/weft-node-proxy"}, Binaries: []string{"usr/local/bin/weft-cni", "usr/local/bin/weft-node-proxy"}},
		"weft/weft-echo:test":          {Entrypoint: []string{"/usr/local/bin/weft-echo"}, Binaries: []string{"usr/local/bin/weft-echo"}},
		"weft/pause:test":              {Entrypoint: []string{"/usr/local/bin/pause"}, Binaries: []string{"usr/local/bin/pause"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("images (-want +got):\n%s", diff)
	}
}

func TestChartAppVersion(t *testing.T) {
	v, err := ChartAppVersion(moduleDir(t))
	if err != nil {
		t.Fatal(err)
	}
	if v == "" {
		t.Fatal("empty appVersion")
	}
}
