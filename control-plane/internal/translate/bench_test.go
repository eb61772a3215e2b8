package translate

import (
	"fmt"
	"testing"
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
		m.Node(nodes[i%len(nodes)])
		i++
	}
}
