package translate

// Scenario tests: testdata/*.txtar, each with
//
//	-- config --      node: <node>                 the node translated for
//	                  show: routes clusters ...    outputs compared (default: all)
//	                  trustBundle: true            pass a trust bundle root
//	-- input.yaml --  Kubernetes objects
//	-- want/<output>.json --  the expected resources, protojson
//
// go test ./control-plane/internal/translate/ -update rewrites the want
// sections from the current output.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"flag"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
)

var update = flag.Bool("update", false, "rewrite the want sections of testdata/*.txtar")

// outputs names the resource types a scenario can show, in file order.
var outputs = []struct {
	name string
	typ  resource.Type
}{
	{"workloads", WorkloadType},
	{"services", ServiceType},
	{"listeners", resource.ListenerType},
	{"routes", resource.RouteType},
	{"clusters", resource.ClusterType},
	{"endpoints", resource.EndpointType},
	{"trustbundle", TrustBundleType},
}

type archiveFile struct {
	name string
	data []byte
}

type archive struct {
	comment []byte
	files   []archiveFile
}

func (a *archive) file(name string) ([]byte, bool) {
	for _, f := range a.files {
		if f.name == name {
			return f.data, true
		}
	}
	return nil, false
}

// parseArchive reads the txtar format: a comment, then files introduced
// by "-- name --" lines.
func parseArchive(data []byte) *archive {
	a := &archive{}
	cur := &a.comment
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		t := strings.TrimRight(string(line), "\r\n")
		if strings.HasPrefix(t, "-- ") && strings.HasSuffix(t, " --") && len(t) > 6 {
			a.files = append(a.files, archiveFile{name: strings.TrimSpace(t[3 : len(t)-3])})
			cur = &a.files[len(a.files)-1].data
			continue
		}
		*cur = append(*cur, line...)
	}
	return a
}

func (a *archive) format() []byte {
	var b bytes.Buffer
	b.Write(a.comment)
	for _, f := range a.files {
		b.WriteString("-- " + f.name + " --\n")
		b.Write(f.data)
		if len(f.data) > 0 && f.data[len(f.data)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// marshalResources renders resources as an indented JSON array of
// protojson objects (field names as in the .proto files). protojson's
// own spacing is deliberately unstable, so it is compacted and
// re-indented.
func marshalResources(t testing.TB, l []types.Resource) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteString("[")
	for i, r := range l {
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(r)
		if err != nil {
			t.Fatalf("protojson: %v", err)
		}
		if i > 0 {
			buf.WriteString(",")
		}
		if err := json.Compact(&buf, b); err != nil {
			t.Fatalf("compact: %v", err)
		}
	}
	buf.WriteString("]")
	var out bytes.Buffer
	if err := json.Indent(&out, buf.Bytes(), "", "  "); err != nil {
		t.Fatalf("indent: %v", err)
	}
	out.WriteByte('\n')
	return out.Bytes()
}

// testRoot is a real, deterministic root certificate: Ed25519 signatures
// do not depend on randomness.
func testRoot(t testing.TB) []byte {
	t.Helper()
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "weft test root"},
		NotBefore:             time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

type scenario struct {
	path string
	arc  *archive
	node string
	opts Options
	show []string
}

func loadScenarios(t *testing.T) []*scenario {
	t.Helper()
	paths, err := filepath.Glob("testdata/*.txtar")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	var out []*scenario
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sc := &scenario{path: p, arc: parseArchive(data)}
		cfgData, ok := sc.arc.file("config")
		if !ok {
			t.Fatalf("%s: no config section", p)
		}
		cfg := splitFields(cfgData)
		sc.node = cfg["node"]
		if cfg["trustBundle"] == "true" {
			sc.opts.TrustBundleRoots = [][]byte{testRoot(t)}
		}
		if s := cfg["show"]; s != "" {
			sc.show = strings.Fields(s)
		} else {
			for _, o := range outputs {
				sc.show = append(sc.show, o.name)
			}
		}
		out = append(out, sc)
	}
	return out
}

func (sc *scenario) translate(t *testing.T) Resources {
	t.Helper()
	in, ok := sc.arc.file("input.yaml")
	if !ok {
		t.Fatalf("%s: no input.yaml section", sc.path)
	}
	snap, err := loadYAML(in)
	if err != nil {
		t.Fatalf("%s: %v", sc.path, err)
	}
	return Node(snap, sc.node, sc.opts)
}

func TestScenarios(t *testing.T) {
	for _, sc := range loadScenarios(t) {
		t.Run(strings.TrimSuffix(filepath.Base(sc.path), ".txtar"), func(t *testing.T) {
			res := sc.translate(t)
			got := map[string][]byte{}
			for _, o := range outputs {
				got["want/"+o.name+".json"] = marshalResources(t, res[o.typ])
			}
			if *update {
				var files []archiveFile
				for _, f := range sc.arc.files {
					if !strings.HasPrefix(f.name, "want/") {
						files = append(files, f)
					}
				}
				for _, name := range sc.show {
					files = append(files, archiveFile{name: "want/" + name + ".json", data: got["want/"+name+".json"]})
				}
				sc.arc.files = files
				if err := os.WriteFile(sc.path, sc.arc.format(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			for _, name := range sc.show {
				key := "want/" + name + ".json"
				g, ok := got[key]
				if !ok {
					t.Fatalf("show: unknown output %q", name)
				}
				want, ok := sc.arc.file(key)
				if !ok {
					t.Errorf("%s: no %s section (run with -update)", sc.path, key)
					continue
				}
				if d := cmp.Diff(string(want), string(g)); d != "" {
					t.Errorf("%s: %s differs (-want +got):\n%s", sc.path, key, d)
				}
			}
		})
	}
}
