package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/weftmesh/weft/certs"
)

// watcher is one simulated node proxy: a delta ADS stream subscribed to
// every type, which records when the watched route first shows the weight
// it waits for.
type watcher struct {
	node    string
	conn    *grpc.ClientConn
	ready   atomic.Bool // got every subscribed type at least once
	types   map[string]bool
	mu      sync.Mutex // guards the fields below
	want    uint32     // weight of the canary backend to wait for
	seenAt  time.Time  // when want was first seen; zero until then
	current uint32
}

// types a node proxy subscribes to.
var subscribed = []string{resourcev3.ListenerType, resourcev3.RouteType, resourcev3.ClusterType, resourcev3.EndpointType}

func dialWatcher(ctx context.Context, addr, node string, ca *certs.CA) (*watcher, error) {
	key, err := certs.NewKey()
	if err != nil {
		return nil, err
	}
	der, _ := certs.NewCSR(key)
	csr, _ := certs.ParseCSR(der)
	id, err := certs.NodeID(ca.TrustDomain(), node)
	if err != nil {
		return nil, err
	}
	chain, err := ca.Sign(csr, id, 0)
	if err != nil {
		return nil, err
	}
	svid := &x509svid.SVID{ID: id, Certificates: chain, PrivateKey: key}
	tc := tlsconfig.MTLSClientConfig(svid, ca.Bundle(), tlsconfig.AuthorizeID(certs.ControlPlaneID(ca.TrustDomain())))
	tc.MinVersion = tls.VersionTLS13
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20)))
	if err != nil {
		return nil, err
	}
	return &watcher{node: node, conn: conn}, nil
}

// run keeps the stream open until ctx ends; route is the RouteConfiguration
// name to watch and canary the cluster whose weight is tracked.
func (w *watcher) run(ctx context.Context, route, canary string) error {
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(w.conn).DeltaAggregatedResources(ctx)
	if err != nil {
		return err
	}
	node := &corev3.Node{Id: w.node}
	for _, t := range subscribed {
		if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{Node: node, TypeUrl: t}); err != nil {
			return err
		}
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%s: %w", w.node, err)
		}
		now := time.Now()
		if w.types == nil {
			w.types = map[string]bool{}
		}
		w.types[resp.GetTypeUrl()] = true
		if len(w.types) == len(subscribed) {
			w.ready.Store(true)
		}
		if resp.GetTypeUrl() == resourcev3.RouteType {
			for _, r := range resp.GetResources() {
				if r.GetName() != route {
					continue
				}
				var rc routev3.RouteConfiguration
				if err := r.GetResource().UnmarshalTo(&rc); err != nil {
					return err
				}
				w.observe(canaryWeight(&rc, canary), now)
			}
		}
		if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{Node: node, TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()}); err != nil {
			return err
		}
	}
}

func (w *watcher) observe(weight uint32, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.current = weight
	if weight == w.want && w.seenAt.IsZero() {
		w.seenAt = at
	}
}

// expect starts waiting for weight.
func (w *watcher) expect(weight uint32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.want, w.seenAt = weight, time.Time{}
	if w.current == weight {
		w.seenAt = time.Now()
	}
}

func (w *watcher) seen() (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seenAt, !w.seenAt.IsZero()
}

// canaryWeight finds the weight of cluster canary in the first route that
// splits traffic.
func canaryWeight(rc *routev3.RouteConfiguration, canary string) uint32 {
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			for _, c := range r.GetRoute().GetWeightedClusters().GetClusters() {
				if c.GetName() == canary {
					return c.GetWeight().GetValue()
				}
			}
		}
	}
	return 0
}
