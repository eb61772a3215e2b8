package conformance

import (
	"bytes"
	"fmt"
	"io/fs"
	"regexp"
	"testing"
	"testing/fstest"

	"sigs.k8s.io/gateway-api/conformance"
)

// meshManifestsPath is where the rewritten mesh manifests live in the
// suite's ManifestFS. It differs from the upstream path: the suite
// concatenates files of the same name found in several file systems.
const meshManifestsPath = "weft/mesh-manifests.yaml"

// echoImage matches the image of the suite's echo Deployments, whatever
// registry the upstream names.
var echoImage = regexp.MustCompile(`image: \S*/echo-advanced:\S+`)

// meshManifests returns the suite's mesh/manifests.yaml, at
// meshManifestsPath, with the echo image replaced by image (imported into
// the cluster, never pulled).
func meshManifests(image string) (fs.FS, error) {
	raw, err := fs.ReadFile(&conformance.Manifests, "mesh/manifests.yaml")
	if err != nil {
		return nil, err
	}
	n := len(echoImage.FindAll(raw, -1))
	if n == 0 {
		return nil, fmt.Errorf("mesh/manifests.yaml names no echo-advanced image: the suite changed")
	}
	out := echoImage.ReplaceAll(raw, []byte("image: "+image))
	return fstest.MapFS{meshManifestsPath: {Data: out}}, nil
}

func TestMeshManifests(t *testing.T) {
	f, err := meshManifests("weft/gateway-echo-advanced:test")
	if err != nil {
		t.Fatal(err)
	}
	b, err := fs.ReadFile(f, meshManifestsPath)
	if err != nil {
		t.Fatal(err)
	}
	// echo-v1, echo-v2 and the consumer namespace's echo-v1.
	if got, want := bytes.Count(b, []byte("image: weft/gateway-echo-advanced:test")), 3; got != want {
		t.Errorf("rewrote %d images, want %d", got, want)
	}
	if echoImage.Match(b) {
		t.Errorf("an upstream echo-advanced image is left:\n%s", b)
	}
}
