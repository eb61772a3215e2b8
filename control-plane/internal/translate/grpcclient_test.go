package translate

// A proxyless gRPC-Go client (the xds:/// resolver) fed by go-control-plane
// over ADS with the resources Node produces, calling real gRPC servers:
// the proof that the Listener, RouteConfiguration, Cluster and
// ClusterLoadAssignment shapes are ones gRPC accepts and acts on (method
// routing, weighted split, header match, missing backend, fault abort,
// retry, request timeout).

import (
	"context"
	"fmt"
	"net"
	"path"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/weftmesh/weft/control-plane/internal/model"
)

// echoBackend is a gRPC server answering any method: it names itself in
// the "backend" response header; "Flaky" fails every other call with
// UNAVAILABLE, "Slow" takes three seconds.
func echoBackend(t *testing.T, name string) int32 {
	t.Helper()
	var flaky atomic.Int64
	srv := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		method, _ := grpc.MethodFromServerStream(stream)
		if err := stream.RecvMsg(&emptypb.Empty{}); err != nil {
			return err
		}
		switch path.Base(method) {
		case "Flaky":
			// Before any header: a response with headers commits the call
			// and gRPC never retries it.
			if flaky.Add(1)%2 == 1 {
				return status.Error(codes.Unavailable, "flaky")
			}
		case "Slow":
			select {
			case <-time.After(3 * time.Second):
			case <-stream.Context().Done():
				return stream.Context().Err()
			}
		}
		if err := stream.SetHeader(metadata.Pairs("backend", name)); err != nil {
			return err
		}
		return stream.SendMsg(&emptypb.Empty{})
	}))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return int32(lis.Addr().(*net.TCPAddr).Port)
}

// grpcMesh is: Services echo (the one clients call), echo-v1 and echo-v2
// (one backend each), broken (echo-v1's pod behind a 100% abort), and a
// GRPCRoute on echo.
func grpcMesh(v1Port, v2Port int32) *model.Snapshot {
	s := model.NewSnapshot()
	s.Namespaces["demo"] = &model.Namespace{Name: "demo", Annotations: map[string]string{model.MeshKey: model.MeshEnabled}}
	for _, p := range []struct{ name, version string }{{"echo-v1-0", "v1"}, {"echo-v2-0", "v2"}} {
		pod := &model.Pod{Namespace: "demo", Name: p.name, NodeName: "node-a", IP: "127.0.0.1",
			Labels: map[string]string{"app": "echo", "version": p.version}}
		s.Pods[pod.Key()] = pod
	}
	addService := func(name string, ip string, target int32, pod string) {
		svc := &model.Service{ObjectMeta: model.ObjectMeta{Namespace: "demo", Name: name}, ClusterIPs: []string{ip},
			Ports: []model.ServicePort{{Name: "grpc", Port: 8080, Protocol: "TCP", AppProtocol: "grpc", TargetPort: target}}}
		s.Services[svc.Key()] = svc
		es := &model.EndpointSlice{ObjectMeta: model.ObjectMeta{Namespace: "demo", Name: name + "-x"}, Service: name,
			Ports: []model.EndpointPort{{Name: "grpc", Port: target, Protocol: "TCP"}}}
		if pod != "" {
			es.Endpoints = []model.Endpoint{{Addresses: []string{"127.0.0.1"}, Ready: true, NodeName: "node-a", Pod: "demo/" + pod}}
		}
		s.EndpointSlices[es.Key()] = es
	}
	addService("echo", "10.96.0.10", 8080, "")
	addService("echo-v1", "10.96.0.11", v1Port, "echo-v1-0")
	addService("echo-v2", "10.96.0.12", v2Port, "echo-v2-0")
	addService("broken", "10.96.0.13", v1Port, "echo-v1-0")

	be := func(name string, weight int32) model.Backend {
		return model.Backend{Kind: "Service", Name: name, Port: 8080, Weight: weight}
	}
	method := func(m string) []model.RouteMatch {
		return []model.RouteMatch{{GRPCService: "weft.test.Echo", GRPCMethod: m, GRPCType: model.MatchExact}}
	}
	r := &model.Route{
		ObjectMeta: model.ObjectMeta{Namespace: "demo", Name: "echo"},
		Kind:       model.GRPCRoute,
		Parents:    []model.ParentRef{{Kind: "Service", Namespace: "demo", Name: "echo"}},
		Rules: []model.RouteRule{
			{Matches: method("Canary"), Backends: []model.Backend{be("echo-v2", 1)}},
			{Matches: method("Split"), Backends: []model.Backend{be("echo-v1", 1), be("echo-v2", 1)}},
			{Matches: method("Half"), Backends: []model.Backend{be("echo-v1", 1), be("echo-missing", 1)}},
			{Matches: method("Missing"), Backends: []model.Backend{be("echo-missing", 1)}},
			// Same service as the catch-all below, plus a header: it wins.
			{Matches: []model.RouteMatch{{GRPCService: "weft.test.Echo", GRPCType: model.MatchExact,
				Headers: []model.HeaderMatch{{Name: "X-Canary", Type: model.MatchExact, Value: "true"}}}},
				Backends: []model.Backend{be("echo-v2", 1)}},
			{Matches: []model.RouteMatch{{GRPCService: "weft.test.Echo", GRPCType: model.MatchExact}}, Backends: []model.Backend{be("echo-v1", 1)}},
		},
	}
	s.Routes[model.RouteKey(r.Kind, r.Namespace, r.Name)] = r
	for _, tp := range []*model.TrafficPolicy{
		{ObjectMeta: model.ObjectMeta{Namespace: "demo", Name: "echo"},
			Targets:  []model.PolicyTarget{{Kind: "Service", Name: "echo"}},
			Retry:    &model.RetryPolicy{Attempts: 3, RetryOn: []string{"unavailable"}},
			Timeouts: &model.TimeoutPolicy{Request: time.Second}},
		{ObjectMeta: model.ObjectMeta{Namespace: "demo", Name: "broken"},
			Targets: []model.PolicyTarget{{Kind: "Service", Name: "broken"}},
			Faults:  &model.FaultPolicy{AbortPercent: 100, AbortGRPCCode: int32(codes.ResourceExhausted)}},
	} {
		s.TrafficPolicies[tp.Key()] = tp
	}
	return s
}

// serveADS serves res for node over ADS on a local port.
func serveADS(t *testing.T, node string, res Resources) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	snap, err := cachev3.NewSnapshot("1", res.Envoy())
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Consistent(); err != nil {
		t.Fatal(err)
	}
	// ads=false: in ADS mode the snapshot cache answers a request only
	// when it names every resource of the type, which a gRPC client (it
	// asks for the listener it dials) never does.
	cache := cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil)
	if err := cache.SetSnapshot(ctx, node, snap); err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, serverv3.NewServer(ctx, cache, nil))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	return lis.Addr().String()
}

func TestProxylessGRPCClient(t *testing.T) {
	v1, v2 := echoBackend(t, "v1"), echoBackend(t, "v2")
	res := Node(grpcMesh(v1, v2), "node-a", Options{})
	ads := serveADS(t, "node-a", res)

	bootstrap := fmt.Sprintf(`{
		"xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
		"node": {"id": "node-a"}
	}`, ads)
	resolver, err := xds.NewXDSResolverWithConfigForTesting([]byte(bootstrap))
	if err != nil {
		t.Fatal(err)
	}
	dial := func(target string) *grpc.ClientConn {
		conn, err := grpc.NewClient(target, grpc.WithResolvers(resolver), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	echo := dial("xds:///echo.demo.svc.cluster.local:8080")

	// call invokes a method and returns the backend that answered.
	call := func(conn *grpc.ClientConn, method string, waitForReady bool, md ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ctx = metadata.AppendToOutgoingContext(ctx, md...)
		var hdr metadata.MD
		err := conn.Invoke(ctx, "/weft.test.Echo/"+method, &emptypb.Empty{}, &emptypb.Empty{},
			grpc.Header(&hdr), grpc.WaitForReady(waitForReady))
		return strings.Join(hdr.Get("backend"), ","), err
	}
	// The first call waits for the xDS resources to arrive.
	if b, err := call(echo, "Hello", true); err != nil || b != "v1" {
		t.Fatalf("Hello: got backend %q, err %v; want v1", b, err)
	}

	t.Run("method routes to its backend", func(t *testing.T) {
		if b, err := call(echo, "Canary", true); err != nil || b != "v2" {
			t.Errorf("Canary: got %q, %v; want v2", b, err)
		}
	})
	t.Run("header match", func(t *testing.T) {
		if b, err := call(echo, "Hello", true, "x-canary", "true"); err != nil || b != "v2" {
			t.Errorf("Hello with x-canary: got %q, %v; want v2", b, err)
		}
	})
	t.Run("weighted split reaches both", func(t *testing.T) {
		seen := map[string]int{}
		for i := 0; i < 200; i++ {
			b, err := call(echo, "Split", true)
			if err != nil {
				t.Fatalf("Split: %v", err)
			}
			seen[b]++
		}
		if seen["v1"] == 0 || seen["v2"] == 0 {
			t.Errorf("Split: got %v, want both v1 and v2", seen)
		}
	})
	t.Run("missing backend fails its share only", func(t *testing.T) {
		ok, failed := 0, 0
		for i := 0; i < 40; i++ { // failures are retried (with backoff) first

			b, err := call(echo, "Half", false)
			switch {
			case err == nil && b == "v1":
				ok++
			case status.Code(err) == codes.Unavailable:
				failed++
			default:
				t.Fatalf("Half: got %q, %v", b, err)
			}
		}
		if ok == 0 || failed == 0 {
			t.Errorf("Half: %d answered, %d failed; want some of each", ok, failed)
		}
	})
	t.Run("all backends missing fails", func(t *testing.T) {
		if _, err := call(echo, "Missing", false); status.Code(err) != codes.Unavailable {
			t.Errorf("Missing: got %v, want UNAVAILABLE", err)
		}
	})
	t.Run("unmatched method fails", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := echo.Invoke(ctx, "/other.Service/Call", &emptypb.Empty{}, &emptypb.Empty{})
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "no matched route") {
			t.Errorf("other.Service: got %v, want UNAVAILABLE no matched route", err)
		}
	})
	t.Run("retries hide a flaky backend", func(t *testing.T) {
		for i := 0; i < 20; i++ {
			if _, err := call(echo, "Flaky", true); err != nil {
				t.Fatalf("Flaky call %d: %v", i, err)
			}
		}
	})
	t.Run("request timeout", func(t *testing.T) {
		start := time.Now()
		_, err := call(echo, "Slow", true)
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("Slow: got %v, want DEADLINE_EXCEEDED", err)
		}
		if d := time.Since(start); d > 2500*time.Millisecond {
			t.Errorf("Slow: took %v, want about 1s", d)
		}
	})
	t.Run("fault abort", func(t *testing.T) {
		broken := dial("xds:///broken.demo.svc.cluster.local:8080")
		_, err := call(broken, "Hello", true)
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "fault injection") {
			t.Errorf("broken: got %v, want RESOURCE_EXHAUSTED from fault injection", err)
		}
	})
}
