package dir

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftmesh/weft/control-plane/internal/model"
)

const good = `# the shop
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  annotations:
    weftmesh.io/mesh: enabled
---
apiVersion: v1
kind: Pod
metadata:
  name: cart
  namespace: shop
spec:
  nodeName: node-a
  serviceAccountName: cart
  containers: [{name: app, image: echo}]
status:
  podIP: 10.1.0.2
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ignored}
`

// write replaces dir/name atomically (a temporary file renamed into
// place), as an editor or `kubectl`-style tool does, so that a reload never
// sees it half-written.
func write(t *testing.T, dir, name, content string) {
	t.Helper()
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

func TestLoadAndLookup(t *testing.T) {
	d := t.TempDir()
	write(t, d, "shop.yaml", good)
	s, err := New(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, ns, err := s.Pod(context.Background(), "shop", "cart")
	if err != nil {
		t.Fatal(err)
	}
	if p.NodeName != "node-a" || p.IP != "10.1.0.2" || p.ServiceAccount != "cart" || p.UID == "" {
		t.Errorf("pod = %+v", p)
	}
	if model.EnrollmentOf(ns, p) != model.Enrolled {
		t.Errorf("pod not enrolled; namespace = %+v", ns)
	}
	if _, _, err := s.Pod(context.Background(), "shop", "nope"); !errors.Is(err, model.ErrNotFound) {
		t.Errorf("missing pod: %v, want ErrNotFound", err)
	}
}

func TestBrokenFileKeepsLastGoodState(t *testing.T) {
	d := t.TempDir()
	write(t, d, "shop.yaml", good)
	s, err := New(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Line 28 of the new file has a tab where YAML wants spaces.
	broken := strings.Replace(good, "  nodeName: node-a", "  nodeName: node-b", 1) +
		"---\napiVersion: v1\nkind: Pod\nmetadata:\n\tname: bad\n"
	write(t, d, "shop.yaml", broken)
	changed, err := s.Reload()
	if err == nil || changed {
		t.Fatalf("Reload of a broken file = %v, %v; want an error and no change", changed, err)
	}
	if !strings.Contains(err.Error(), "shop.yaml:28") {
		t.Errorf("error %q does not name shop.yaml:28", err)
	}
	p, _, err := s.Pod(context.Background(), "shop", "cart")
	if err != nil || p.NodeName != "node-a" {
		t.Fatalf("after a broken reload pod = %+v, %v; want the last good state (node-a)", p, err)
	}
	// Fixing the file applies the change.
	write(t, d, "shop.yaml", strings.Replace(good, "  nodeName: node-a", "  nodeName: node-b", 1))
	if changed, err := s.Reload(); err != nil || !changed {
		t.Fatalf("Reload after the fix = %v, %v", changed, err)
	}
	if p, _, _ := s.Pod(context.Background(), "shop", "cart"); p.NodeName != "node-b" {
		t.Errorf("after the fix pod is on %s, want node-b", p.NodeName)
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct{ name, content, want string }{
		{"unknown field", "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {nodeNme: x}\n", `x.yaml:1: error unmarshaling JSON: while decoding JSON: json: unknown field "nodeNme"`},
		{"no kind", "apiVersion: v1\nmetadata: {name: a}\n", "no apiVersion or kind"},
		{"duplicate pod", "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\n", "x.yaml:5: Pod default/a defined twice (first at "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := t.TempDir()
			write(t, d, "x.yaml", tc.content)
			_, err := New(d, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
