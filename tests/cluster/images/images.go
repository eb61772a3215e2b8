// Package images builds container images for the test cluster without a
// registry or a container builder: static Go binaries (CGO_ENABLED=0, or they
// cannot start in an image with no libc) are packed into a single-layer image
// on top of an empty base, and the image is written as a docker-style tarball
// that `ctr images import` and `docker load` accept.
//
// [Pack] packs files into an image tarball; [Build] compiles Weft's commands
// and packs them into the images the Helm chart (charts/weft) and the
// end-to-end tests run:
//
//	weft/weft-control-plane:TAG  entrypoint weft-control-plane
//	weft/weft-node-proxy:TAG     entrypoint weft-node-proxy; weft-cni on PATH too
//	weft/weft-echo:TAG           entrypoint weft-echo (tests/apps/echo)
//	weft/pause:TAG               the pod sandbox image (./pause)
//
// Binaries go to /usr/local/bin, which is on the image's PATH, so a pod's
// `command:` can name any of them (the chart's install-cni container runs
// `weft-cni install ...` in the node-proxy image).
package images

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// BinDir is where Build puts binaries inside an image.
const BinDir = "/usr/local/bin"

// DefaultPath is the PATH of every image built here.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// File is one regular file of an image.
type File struct {
	// Path is the absolute path inside the image, e.g. /usr/local/bin/weft-echo.
	// Its parent directories are created with mode 0755.
	Path string
	// Source is the host file to copy.
	Source string
	// Mode is the file's permission bits; zero means 0755.
	Mode fs.FileMode
}

// Spec describes an image to pack.
type Spec struct {
	// Ref names the image, e.g. "weft/weft-echo:0.1.0". A reference without a
	// registry means Docker Hub to every runtime, which is also what the
	// kubelet resolves an unqualified pod image to, so the two match.
	Ref string
	// Files go into the single layer, owned by root (uid and gid 0).
	Files []File
	// Entrypoint is the image's ENTRYPOINT; a pod's `command:` replaces it
	// and `args:` are appended to it.
	Entrypoint []string
	// Env is the image's environment; nil means just PATH=DefaultPath.
	Env []string
	// Arch is the image's architecture; empty means runtime.GOARCH.
	Arch string
}

// epoch is the modification time of every layer entry, so that packing the
// same files twice gives the same layer digest.
var epoch = time.Unix(0, 0).UTC()

// Pack writes the image that spec describes to the tarball out.
func Pack(spec Spec, out string) error {
	ref, err := name.NewTag(spec.Ref)
	if err != nil {
		return fmt.Errorf("image reference %q: %w", spec.Ref, err)
	}
	layerTar, err := layerTarball(spec.Files)
	if err != nil {
		return fmt.Errorf("image %s: %w", spec.Ref, err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return fmt.Errorf("image %s: layer: %w", spec.Ref, err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return fmt.Errorf("image %s: append layer: %w", spec.Ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("image %s: config: %w", spec.Ref, err)
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = spec.Arch
	if cf.Architecture == "" {
		cf.Architecture = runtime.GOARCH
	}
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Entrypoint = spec.Entrypoint
	cf.Config.Env = spec.Env
	if cf.Config.Env == nil {
		cf.Config.Env = []string{"PATH=" + DefaultPath}
	}
	cf.Config.WorkingDir = "/"
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return fmt.Errorf("image %s: set config: %w", spec.Ref, err)
	}
	tmp := out + ".tmp"
	if err := tarball.WriteToFile(tmp, ref, img); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("image %s: write %s: %w", spec.Ref, out, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("image %s: %w", spec.Ref, err)
	}
	return nil
}

// layerTarball returns an uncompressed tar holding files, their parent
// directories and /tmp (mode 1777, as programs expect a writable TMPDIR).
func layerTarball(files []File) ([]byte, error) {
	dirs := map[string]fs.FileMode{"tmp": 0o1777}
	var names []string
	seen := map[string]bool{}
	for _, f := range files {
		p := strings.TrimPrefix(path.Clean(f.Path), "/")
		if !path.IsAbs(f.Path) || p == "" || p == "." {
			return nil, fmt.Errorf("file %q: want an absolute path", f.Path)
		}
		if seen[p] {
			return nil, fmt.Errorf("file %q listed twice", f.Path)
		}
		seen[p] = true
		names = append(names, p)
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if _, ok := dirs[d]; !ok {
				dirs[d] = 0o755
			}
		}
	}
	dirNames := make([]string, 0, len(dirs))
	for d := range dirs {
		dirNames = append(dirNames, d)
	}
	sort.Strings(dirNames) // a parent sorts before its children

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range dirNames {
		if err := tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeDir, Name: d + "/", Mode: int64(dirs[d]), ModTime: epoch, Format: tar.FormatPAX,
		}); err != nil {
			return nil, err
		}
	}
	for i, f := range files {
		if err := addFile(tw, names[i], f); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func addFile(tw *tar.Writer, name string, f File) error {
	src, err := os.Open(f.Source)
	if err != nil {
		return err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", f.Source)
	}
	mode := f.Mode.Perm()
	if mode == 0 {
		mode = 0o755
	}
	if err := tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg, Name: name, Size: st.Size(), Mode: int64(mode), ModTime: epoch, Format: tar.FormatPAX,
	}); err != nil {
		return err
	}
	if _, err := io.Copy(tw, src); err != nil {
		return fmt.Errorf("%s: %w", f.Source, err)
	}
	return nil
}
