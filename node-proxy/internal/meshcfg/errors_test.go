package meshcfg_test

import (
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	xdsv1 "github.com/weftmesh/weft/api/xds/v1"
	"github.com/weftmesh/weft/node-proxy/internal/meshcfg"
)

// TestBuildErrors adds one unreadable resource to an otherwise good mesh:
// Build must return no Config and an error that names the resource and
// says what is wrong with it.
func TestBuildErrors(t *testing.T) {
	roots := testRoots(t)
	svc := func(edit func(*xdsv1.Service)) *anypb.Any {
		s := webService()
		edit(s)
		return mustAny(t, s)
	}
	wl := func(edit func(*xdsv1.Workload)) *anypb.Any {
		w := workloadWebA()
		edit(w)
		return mustAny(t, w)
	}
	cla := func(eps ...ep) *anypb.Any { return mustAny(t, loadAssignment(t, webCluster, eps...)) }
	tb := func(td string, roots ...[]byte) *anypb.Any {
		return mustAny(t, &xdsv1.TrustBundle{Name: td, TrustDomain: td, Roots: roots})
	}
	// withMeta is an endpoint whose typed metadata is m, whatever its type.
	withMeta := func(m proto.Message) *anypb.Any {
		c := loadAssignment(t, webCluster, ep{"10.244.1.5", 8080, nil})
		c.Endpoints[0].LbEndpoints[0].Metadata = &corev3.Metadata{TypedFilterMetadata: map[string]*anypb.Any{metaKey: mustAny(t, m)}}
		return mustAny(t, c)
	}

	tests := []struct {
		name string
		typ  string
		key  string // resource name
		res  *anypb.Any
		want []string // substrings of the error
	}{
		{"nil Any", meshcfg.ServiceType, "shop/web", nil,
			[]string{`service "shop/web"`, "empty resource"}},
		{"service of another type", meshcfg.ServiceType, "shop/web", mustAny(t, workloadWebA()),
			[]string{`service "shop/web"`, "weft.xds.v1.Workload"}},
		{"service bytes", meshcfg.ServiceType, "shop/web", &anypb.Any{TypeUrl: meshcfg.ServiceType, Value: []byte{0xff, 0xff}},
			[]string{`service "shop/web"`}},
		{"service address", meshcfg.ServiceType, "shop/web", svc(func(s *xdsv1.Service) { s.Addresses = []string{"10.96.0.300"} }),
			[]string{`service "shop/web"`, `address "10.96.0.300"`}},
		{"service address that is a name", meshcfg.ServiceType, "shop/web", svc(func(s *xdsv1.Service) { s.Addresses = []string{"web.shop"} }),
			[]string{`service "shop/web"`, `address "web.shop"`}},
		{"service port 0", meshcfg.ServiceType, "shop/web", svc(func(s *xdsv1.Service) { s.Ports[1].Port = 0 }),
			[]string{`service "shop/web"`, "port 0"}},
		{"service port too large", meshcfg.ServiceType, "shop/web", svc(func(s *xdsv1.Service) { s.Ports[0].Port = 65536 }),
			[]string{`service "shop/web"`, "port 65536"}},

		{"cluster of another type", meshcfg.ClusterType, webCluster, mustAny(t, webService()),
			[]string{`cluster "` + webCluster + `"`}},
		{"cluster bytes", meshcfg.ClusterType, webCluster, &anypb.Any{TypeUrl: meshcfg.ClusterType, Value: []byte{0x0a}},
			[]string{`cluster "` + webCluster + `"`}},
		{"cluster metadata of another type", meshcfg.ClusterType, webCluster, func() *anypb.Any {
			c := edsCluster(t, webCluster, nil)
			c.Metadata = weftMetadata(t, &xdsv1.EndpointMetadata{})
			return mustAny(t, c)
		}(), []string{`cluster "` + webCluster + `"`, "weft.xds.v1.EndpointMetadata"}},

		{"load assignment of another type", meshcfg.EndpointType, webCluster, mustAny(t, &clusterv3.Cluster{Name: webCluster}),
			[]string{`load assignment "` + webCluster + `"`}},
		{"endpoint address", meshcfg.EndpointType, webCluster, cla(ep{"10.244.1.500", 8080, nil}),
			[]string{`load assignment "` + webCluster + `"`, `"10.244.1.500"`}},
		{"endpoint port 0", meshcfg.EndpointType, webCluster, cla(ep{"10.244.1.5", 0, nil}),
			[]string{`load assignment "` + webCluster + `"`, "port 0"}},
		{"endpoint port too large", meshcfg.EndpointType, webCluster, cla(ep{"10.244.1.5", 70000, nil}),
			[]string{`load assignment "` + webCluster + `"`, "port 70000"}},
		{"endpoint without socket address", meshcfg.EndpointType, webCluster, mustAny(t, &endpointv3.ClusterLoadAssignment{
			ClusterName: webCluster,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: "/run/x.sock"}}},
				}},
			}}}},
		}), []string{`load assignment "` + webCluster + `"`, "not an IP address"}},
		{"HBONE endpoint without identity", meshcfg.EndpointType, webCluster,
			cla(ep{"10.244.1.5", 8080, hbone("shop/web-a", "web", testNode, "")}),
			[]string{`load assignment "` + webCluster + `"`, "10.244.1.5:8080", "HBONE without an identity"}},
		{"endpoint identity", meshcfg.EndpointType, webCluster,
			cla(ep{"10.244.1.5", 8080, hbone("shop/web-a", "web", testNode, "spiffe://Cluster.Local/ns/shop")}),
			[]string{`load assignment "` + webCluster + `"`, `identity "spiffe://Cluster.Local/ns/shop"`}},
		{"endpoint identity not a SPIFFE ID", meshcfg.EndpointType, webCluster,
			cla(ep{"10.244.1.5", 8080, hbone("shop/web-a", "web", testNode, "shop/web")}),
			[]string{`load assignment "` + webCluster + `"`, `identity "shop/web"`}},
		{"endpoint unknown tunnel", meshcfg.EndpointType, webCluster,
			cla(ep{"10.244.1.5", 8080, &xdsv1.EndpointMetadata{Identity: webAID, Tunnel: 7}}),
			[]string{`load assignment "` + webCluster + `"`, "unknown tunnel"}},
		{"endpoint metadata of another type", meshcfg.EndpointType, webCluster, withMeta(&xdsv1.ClusterMetadata{}),
			[]string{`load assignment "` + webCluster + `"`, "10.244.1.5:8080 metadata"}},

		{"workload of another type", meshcfg.WorkloadType, "shop/web-a", mustAny(t, webService()),
			[]string{`workload "shop/web-a"`}},
		{"workload name", meshcfg.WorkloadType, "shop/web-a", wl(func(w *xdsv1.Workload) { w.Name = "web-a" }),
			[]string{`workload "shop/web-a"`, `name "web-a" is not namespace/pod`}},
		{"workload name of another pod", meshcfg.WorkloadType, "shop/web-a", wl(func(w *xdsv1.Workload) { w.PodName = "web-b" }),
			[]string{`workload "shop/web-a"`, "is not namespace/pod"}},
		{"workload identity", meshcfg.WorkloadType, "shop/web-a", wl(func(w *xdsv1.Workload) { w.Identity = "spiffe://cluster.local/ns/shop/sa/web/" }),
			[]string{`workload "shop/web-a"`, `identity "spiffe://cluster.local/ns/shop/sa/web/"`}},
		{"workload without identity", meshcfg.WorkloadType, "shop/web-a", wl(func(w *xdsv1.Workload) { w.Identity = "" }),
			[]string{`workload "shop/web-a"`, `identity ""`}},
		{"workload address", meshcfg.WorkloadType, "shop/web-a", wl(func(w *xdsv1.Workload) { w.Addresses = []string{"10.244.1.5/32"} }),
			[]string{`workload "shop/web-a"`, `address "10.244.1.5/32"`}},
		{"unknown authorization action", meshcfg.WorkloadType, "shop/web-a", wl(func(w *xdsv1.Workload) {
			w.Authorization = append(w.Authorization, &xdsv1.Authorization{Policy: "shop/audit", Action: 3})
		}), []string{`workload "shop/web-a"`, "policy shop/audit", "unknown action"}},
		{"unspecified authorization action", meshcfg.WorkloadType, "shop/web-a", wl(func(w *xdsv1.Workload) {
			w.Authorization[0].Action = xdsv1.AuthorizationAction_AUTHORIZATION_ACTION_UNSPECIFIED
		}), []string{`workload "shop/web-a"`, "policy shop/allow-frontend", "unknown action"}},

		{"second trust bundle", meshcfg.TrustBundleType, "other.example", tb("other.example", roots...),
			[]string{`trust bundle "other.example"`, "second trust bundle"}},
		{"trust bundle of another type", meshcfg.TrustBundleType, "cluster.local", mustAny(t, webService()),
			[]string{`trust bundle "cluster.local"`}},
		{"trust bundle domain", meshcfg.TrustBundleType, "cluster.local", tb("Cluster.Local", roots...),
			[]string{`trust bundle "cluster.local"`, "trust domain"}},
		{"trust bundle without roots", meshcfg.TrustBundleType, "cluster.local", tb("cluster.local"),
			[]string{`trust bundle "cluster.local"`, "no roots"}},
		{"trust bundle with an empty root", meshcfg.TrustBundleType, "cluster.local", tb("cluster.local", []byte{}),
			[]string{`trust bundle "cluster.local"`, "no roots"}},
		{"trust bundle root not DER", meshcfg.TrustBundleType, "cluster.local", tb("cluster.local", []byte("-----BEGIN CERTIFICATE-----")),
			[]string{`trust bundle "cluster.local"`, "certificate"}},
		{"trust bundle root cut short", meshcfg.TrustBundleType, "cluster.local", tb("cluster.local", roots[0][:len(roots[0])-1]),
			[]string{`trust bundle "cluster.local"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := meshResources(t, roots)
			res[tt.typ][tt.key] = tt.res
			c, err := meshcfg.Build(res, 1)
			if c != nil {
				t.Errorf("Build: got a Config, want nil")
			}
			if err == nil {
				t.Fatalf("Build: got no error, want one containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Build: got error %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

// Every unreadable resource is reported, not only the first.
func TestBuildReportsEveryError(t *testing.T) {
	res := meshResources(t, testRoots(t))
	res[meshcfg.ServiceType]["shop/web"] = nil
	res[meshcfg.WorkloadType]["shop/web-a"] = &anypb.Any{TypeUrl: meshcfg.WorkloadType, Value: []byte{0xff}}
	res[meshcfg.EndpointType][dbCluster] = mustAny(t, loadAssignment(t, dbCluster, ep{"fd00::4", 5432, hbone("data/db-0", "db", "node-b", "")}))
	c, err := meshcfg.Build(res, 1)
	if c != nil {
		t.Errorf("Build: got a Config, want nil")
	}
	if err == nil {
		t.Fatal("Build: got no error, want three")
	}
	for _, w := range []string{`service "shop/web"`, `workload "shop/web-a"`, `load assignment "` + dbCluster + `"`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Build: got error %q, want it to contain %q", err, w)
		}
	}
}
