package meshcfg_test

import (
	"net/netip"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/node-proxy/internal/meshcfg"
)

// FuzzBuild feeds arbitrary bytes as the value of one resource of each
// type, under an arbitrary name, next to nothing else: Build must never
// panic, and returns either a Config or an error. A Config it returns must
// be usable.
//
//	go test -run='^$' -fuzz=FuzzBuild -fuzztime=30s ./node-proxy/internal/meshcfg/
func FuzzBuild(f *testing.F) {
	marshal := func(m proto.Message) []byte {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	// Seeds: the real resources of the test mesh, then nothing, then
	// garbage.
	good := meshResources(f, testRoots(f))
	f.Add("shop/web-a",
		good[meshcfg.ServiceType]["shop/web"].GetValue(),
		good[meshcfg.ClusterType][webCluster].GetValue(),
		good[meshcfg.EndpointType][webCluster].GetValue(),
		good[meshcfg.WorkloadType]["shop/web-a"].GetValue(),
		good[meshcfg.TrustBundleType]["cluster.local"].GetValue())
	f.Add("data/db",
		marshal(dbService()),
		good[meshcfg.ClusterType][invalidCluster].GetValue(),
		good[meshcfg.EndpointType][dbCluster].GetValue(),
		marshal(workloadFrontend()),
		[]byte(nil))
	f.Add("", []byte{}, []byte{}, []byte{}, []byte{}, []byte{})
	f.Add("\xff", []byte{0xff}, []byte{0x0a, 0xff}, []byte{0x12, 0x02, 0x0a}, []byte{0x62, 0x00}, []byte{0x1a, 0x01, 0x30})

	f.Fuzz(func(t *testing.T, name string, svc, cluster, cla, workload, bundle []byte) {
		res := meshcfg.Resources{}
		for typ, v := range map[string][]byte{
			meshcfg.ServiceType:     svc,
			meshcfg.ClusterType:     cluster,
			meshcfg.EndpointType:    cla,
			meshcfg.WorkloadType:    workload,
			meshcfg.TrustBundleType: bundle,
		} {
			res[typ] = map[string]*anypb.Any{name: {TypeUrl: typ, Value: v}}
		}
		c, err := meshcfg.Build(res, 1)
		if (c == nil) == (err == nil) {
			t.Fatalf("Build: got Config %v and error %v, want exactly one", c, err)
		}
		if c == nil {
			return
		}
		_ = c.Bundle()
		_ = c.TrustDomain()
		for _, w := range c.Workloads() {
			for _, a := range w.Addrs {
				if got, ok := c.LocalAddr(a); !ok || got != w {
					t.Errorf("LocalAddr(%s): got %v, %v, want workload %s", a, got, ok, w.GetName())
				}
			}
			_ = w.Authorize(tcp("", 8080))
			_ = w.Authorize(httpReq(frontID, 8080, "GET", "/"))
		}
		if cl, ok := c.Cluster(name); ok {
			for range cl.Endpoints {
				if e, ok := cl.Pick(); !ok || !e.Addr.IsValid() {
					t.Errorf("Pick: got %v, %v, want a valid endpoint", e, ok)
				}
			}
		}
		_, _ = c.Service(netip.MustParseAddrPort("10.96.0.10:80"))
	})
}
