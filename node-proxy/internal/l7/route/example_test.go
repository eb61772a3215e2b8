package route_test

import (
	"fmt"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/node-proxy/internal/l7/route"
)

func Example() {
	// A 90/10 canary, as translate emits it for an HTTPRoute on "echo".
	rc := &routev3.RouteConfiguration{
		Name: "echo.demo.svc.cluster.local:80",
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    "echo.demo.svc.cluster.local:80",
			Domains: []string{"echo.demo.svc.cluster.local", "echo", "*"},
			Routes: []*routev3.Route{{
				Name:  "HTTPRoute/demo/echo/rule/0/match/0",
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
						Clusters: []*routev3.WeightedCluster_ClusterWeight{
							{Name: "outbound|80||echo-v1.demo.svc.cluster.local", Weight: wrapperspb.UInt32(90)},
							{Name: "outbound|80||echo-v2.demo.svc.cluster.local", Weight: wrapperspb.UInt32(10)},
						},
					}},
					Timeout: durationpb.New(0),
				}},
			}},
		}},
	}
	tbl, err := route.Compile(rc)
	if err != nil {
		fmt.Println(err)
		return
	}
	rt, ok := tbl.Match(&route.Request{Method: "GET", Path: "/hello", Host: "echo"})
	fmt.Println(rt.Name, ok)
	fmt.Println(rt.Pick(89).Cluster)
	fmt.Println(rt.Pick(90).Cluster)
	// Output:
	// HTTPRoute/demo/echo/rule/0/match/0 true
	// outbound|80||echo-v1.demo.svc.cluster.local
	// outbound|80||echo-v2.demo.svc.cluster.local
}
