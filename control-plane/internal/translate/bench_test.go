package translate

import (
	"fmt"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/weftmesh/weft/control-plane/internal/model"
)

// The benchmarks translate a mesh of 10,000 pods on 1,000 nodes with 500
// Services (two ports each, an HTTPRoute each, a GRPCRoute on every
// fourth, a TrafficPolicy on every third):
//
//	go test ./control-plane/internal/translate/ -run '^$' -bench . -benchmem
const (
	benchPods     = 10000
	benchNodes    = 1000
	benchServices = 500
)

// BenchmarkNode is one call of Node: the whole mesh plus one node's
// Workloads.
func BenchmarkNode(b *testing.B) {
	s := synthSnapshot(benchPods, benchNodes, benchServices)
	b.ReportAllocs()
	var res Resources
	for b.Loop() {
		res = Node(s, "node-7", Options{})
	}
	n := 0
	for _, l := range res {
		n += len(l)
	}
	b.ReportMetric(float64(n), "resources/op")
}

// BenchmarkMeshNode is the cost per node once the Mesh is built: what a
// control plane pays for each further node of the same snapshot.
func BenchmarkMeshNode(b *testing.B) {
	m := NewMesh(synthSnapshot(benchPods, benchNodes, benchServices), Options{})
	nodes := make([]string, benchNodes)
	for i := range nodes {
		nodes[i] = fmt.Sprintf("node-%d", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i%len(nodes) == 0 { // a node's Workloads are translated once per Mesh (or longer)
			m.workloads = &workloadCache{byNode: map[string][]types.Resource{}}
		}
		m.Node(nodes[i%len(nodes)])
		i++
	}
}

// BenchmarkNextRouteChange is Mesh.Next after one HTTPRoute's weights
// changed, plus one node: what the control plane pays per change before
// pushing it.
func BenchmarkNextRouteChange(b *testing.B) {
	s := synthSnapshot(benchPods, benchNodes, benchServices)
	m := NewMesh(s, Options{})
	b.ReportAllocs()
	weight := int32(0)
	for b.Loop() {
		weight = weight%99 + 1
		s = clone(s)
		r := *s.Routes["HTTPRoute/ns-4/svc-4"]
		r.Rules = append([]model.RouteRule(nil), r.Rules...)
		r.Rules[0].Backends = []model.Backend{{Kind: "Service", Name: "svc-4", Port: 80, Weight: 100 - weight}, {Kind: "Service", Name: "svc-14", Port: 80, Weight: weight}}
		s.Routes["HTTPRoute/ns-4/svc-4"] = &r
		m = m.Next(s, Options{})
		m.Node("node-7")
	}
}
