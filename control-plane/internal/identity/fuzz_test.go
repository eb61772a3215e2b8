package identity

import (
	"context"
	"crypto/tls"
	"testing"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"

	identityv1 "github.com/weftmesh/weft/api/identity/v1"
	"github.com/weftmesh/weft/certs"
	"github.com/weftmesh/weft/certs/certstest"
	"github.com/weftmesh/weft/control-plane/internal/model"
)

// FuzzSignWorkload sends arbitrary signing requests (as wire bytes) from
// node-a. Nothing may panic, and whatever is signed must be the service
// account identity of an enrolled pod scheduled on node-a.
func FuzzSignWorkload(f *testing.F) {
	key, _ := certs.NewKey()
	csr, _ := certs.NewCSR(key)
	for _, ref := range []*identityv1.PodRef{
		{Namespace: "shop", Name: "cart"}, {Namespace: "shop", Name: "remote"},
		{Namespace: "plain", Name: "web"}, {Namespace: "shop", Name: "cart", Uid: "u-cart"}, {},
	} {
		b, _ := proto.Marshal(&identityv1.SignWorkloadRequest{Csr: csr, Pod: ref})
		f.Add(b)
	}
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	ca, m := certstest.NewCA(f, nil, certs.Options{})
	svc, err := NewService(Config{Authority: NewAuthority(ca, m), Nodes: joinTokens, Pods: testPods})
	if err != nil {
		f.Fatal(err)
	}
	nodeChain := certstest.NodeSVID(f, ca, "node-a").Certificates
	ctx := peer.NewContext(context.Background(), &peer.Peer{
		AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{PeerCertificates: nodeChain}}})
	f.Fuzz(func(t *testing.T, wire []byte) {
		var req identityv1.SignWorkloadRequest
		if proto.Unmarshal(wire, &req) != nil {
			return
		}
		resp, err := svc.SignWorkload(ctx, &req)
		if err != nil {
			return
		}
		pod, ns, lookupErr := testPods.Pod(ctx, req.GetPod().GetNamespace(), req.GetPod().GetName())
		if lookupErr != nil || pod.NodeName != "node-a" || model.EnrollmentOf(ns, pod) != model.Enrolled {
			t.Fatalf("signed %s for pod %v that node-a may not have", resp.GetSpiffeId(), req.GetPod())
		}
		want, _ := certs.WorkloadID(certstest.TrustDomain, pod.Namespace, pod.ServiceAccount)
		chain, err := certs.ParseDERChain(resp.GetCertChain())
		if err != nil || len(chain[0].URIs) != 1 || chain[0].URIs[0].String() != want.String() || resp.GetSpiffeId() != want.String() {
			t.Fatalf("signed %v, want exactly %s", chain[0].URIs, want)
		}
	})
}

// FuzzBootstrapNode sends arbitrary bootstrap requests: nothing may panic
// and nothing is signed without node-a's or node-b's join token for that node.
func FuzzBootstrapNode(f *testing.F) {
	key, _ := certs.NewKey()
	csr, _ := certs.NewCSR(key)
	for _, r := range []*identityv1.BootstrapNodeRequest{
		{Node: "node-a", Csr: csr, Credential: &identityv1.BootstrapNodeRequest_JoinToken{JoinToken: joinTokens["node-a"]}},
		{Node: "node-a", Csr: csr, Credential: &identityv1.BootstrapNodeRequest_JoinToken{JoinToken: "x"}},
		{Node: "../x", Csr: csr},
		{Node: "node-b", Csr: csr[:10], Credential: &identityv1.BootstrapNodeRequest_KubernetesToken{KubernetesToken: "a.b.c"}},
	} {
		b, _ := proto.Marshal(r)
		f.Add(b)
	}
	ca, m := certstest.NewCA(f, nil, certs.Options{})
	svc, err := NewService(Config{Authority: NewAuthority(ca, m), Nodes: joinTokens, Pods: testPods})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, wire []byte) {
		var req identityv1.BootstrapNodeRequest
		if proto.Unmarshal(wire, &req) != nil {
			return
		}
		resp, err := svc.BootstrapNode(context.Background(), &req)
		if err != nil {
			return
		}
		if joinTokens[req.GetNode()] != req.GetJoinToken() {
			t.Fatalf("node SVID %s issued without the node's join token", resp.GetSpiffeId())
		}
	})
}
