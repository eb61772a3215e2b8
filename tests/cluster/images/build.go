package images

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// Image is one image Build makes from the commands of this module.
type Image struct {
	// Repo is the image's repository, e.g. "weft/weft-echo".
	Repo string
	// Packages are the Go packages (relative to the module root, "./...")
	// of the commands the image holds, each installed as BinDir/<last path
	// element>.
	Packages []string
	// Entrypoint is the binary (a last path element of Packages) the image
	// runs.
	Entrypoint string
}

// PauseRepo is the repository of the sandbox image; the cluster names
// PauseRepo:TAG as containerd's sandbox image.
const PauseRepo = "weft/pause"

// Weft lists the images of Weft and its tests, as the chart (charts/weft)
// and the end-to-end tests name them.
func Weft() []Image {
	return []Image{
		{Repo: "weft/weft-control-plane", Packages: []string{"./control-plane/cmd/weft-control-plane"}, Entrypoint: "weft-control-plane"},
		{Repo: "weft/weft-node-proxy", Packages: []string{"./node-proxy/cmd/weft-node-proxy", "./node-proxy/cmd/weft-cni"}, Entrypoint: "weft-node-proxy"},
		{Repo: "weft/weft-echo", Packages: []string{"./tests/apps/echo/cmd/weft-echo"}, Entrypoint: "weft-echo"},
		{Repo: PauseRepo, Packages: []string{"./tests/cluster/images/pause"}, Entrypoint: "pause"},
	}
}

// BuildOptions configures Build.
type BuildOptions struct {
	// ModuleDir is the root of this Go module (where go.mod is).
	ModuleDir string
	// OutDir receives one tarball per image, named after the repository's
	// last element (weft-echo.tar); it is created if missing.
	OutDir string
	// Tag is the tag of every image; empty means the chart's appVersion
	// (see ChartAppVersion).
	Tag string
	// Images are the images to build; nil means Weft().
	Images []Image
	// Go is the go command; empty means "go" on PATH.
	Go string
}

// Built is an image tarball Build wrote.
type Built struct {
	Ref     string // e.g. weft/weft-echo:0.1.0
	Tarball string // path of the image tarball
}

// Build compiles the commands of opts.Images as static linux binaries (one
// `go build`, CGO_ENABLED=0) and packs each image into a tarball in
// opts.OutDir.
func Build(ctx context.Context, opts BuildOptions) ([]Built, error) {
	if opts.ModuleDir == "" || opts.OutDir == "" {
		return nil, errors.New("build images: ModuleDir and OutDir are required")
	}
	imgs := opts.Images
	if imgs == nil {
		imgs = Weft()
	}
	tag := opts.Tag
	if tag == "" {
		var err error
		if tag, err = ChartAppVersion(opts.ModuleDir); err != nil {
			return nil, err
		}
	}
	goCmd := opts.Go
	if goCmd == "" {
		goCmd = "go"
	}
	if err := os.MkdirAll(opts.OutDir, 0o755); err != nil {
		return nil, err
	}
	binDir, err := os.MkdirTemp(opts.OutDir, ".bin-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(binDir)

	var pkgs []string
	seen := map[string]bool{}
	for _, img := range imgs {
		for _, p := range img.Packages {
			if !seen[p] {
				seen[p] = true
				pkgs = append(pkgs, p)
			}
		}
	}
	args := append([]string{"build", "-trimpath", "-ldflags=-s -w", "-o", binDir + "/"}, pkgs...)
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = opts.ModuleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOTOOLCHAIN=local")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go build %s: %w\n%s", strings.Join(pkgs, " "), err, stderr.Bytes())
	}

	var built []Built
	for _, img := range imgs {
		spec := Spec{Ref: img.Repo + ":" + tag, Entrypoint: []string{path.Join(BinDir, img.Entrypoint)}}
		for _, p := range img.Packages {
			bin := path.Base(p)
			spec.Files = append(spec.Files, File{Path: path.Join(BinDir, bin), Source: filepath.Join(binDir, bin), Mode: 0o755})
		}
		out := filepath.Join(opts.OutDir, path.Base(img.Repo)+".tar")
		if err := Pack(spec, out); err != nil {
			return nil, err
		}
		built = append(built, Built{Ref: spec.Ref, Tarball: out})
	}
	return built, nil
}

// ChartAppVersion returns appVersion from charts/weft/Chart.yaml under
// moduleDir: the tag the chart gives its images when none is set.
func ChartAppVersion(moduleDir string) (string, error) {
	p := filepath.Join(moduleDir, "charts", "weft", "Chart.yaml")
	f, err := os.Open(p)
	if err != nil {
		return "", fmt.Errorf("chart appVersion: %w", err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "appVersion:"); ok {
			v = strings.Trim(strings.TrimSpace(v), `"'`)
			if v != "" {
				return v, nil
			}
		}
	}
	if err := s.Err(); err != nil {
		return "", fmt.Errorf("chart appVersion: %w", err)
	}
	return "", fmt.Errorf("chart appVersion: none in %s", p)
}
