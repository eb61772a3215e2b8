package manager

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	identityv1 "github.com/weftmesh/weft/api/identity/v1"
	"github.com/weftmesh/weft/certs"
)

// Credential proves a node's identity at bootstrap. It is read again on
// every bootstrap, because Kubernetes rotates projected tokens in place.
type Credential func(req *identityv1.BootstrapNodeRequest) error

// JoinTokenFile reads a local-mode join token from path.
func JoinTokenFile(path string) Credential {
	return func(req *identityv1.BootstrapNodeRequest) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("join token: %w", err)
		}
		req.Credential = &identityv1.BootstrapNodeRequest_JoinToken{JoinToken: strings.TrimSpace(string(b))}
		return nil
	}
}

// KubernetesTokenFile reads a projected service-account token from path.
func KubernetesTokenFile(path string) Credential {
	return func(req *identityv1.BootstrapNodeRequest) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("service-account token: %w", err)
		}
		req.Credential = &identityv1.BootstrapNodeRequest_KubernetesToken{KubernetesToken: strings.TrimSpace(string(b))}
		return nil
	}
}

// GRPCSigner talks to the control plane's identity API. Bootstrap uses
// server-authenticated TLS; every other call is mutual TLS with the node
// SVID. The control plane must present spiffe://<td>/weft/control-plane.
type GRPCSigner struct {
	Addr       string
	Node       string
	Credential Credential
	// Bundle verifies the control plane; usually the Manager itself.
	Bundle x509bundle.Source
	// NodeSVID is presented on mutual-TLS calls; usually the Manager.
	NodeSVID    x509svid.Source
	TrustDomain spiffeid.TrustDomain

	mu   sync.Mutex // guards conn
	conn *grpc.ClientConn
}

var _ Signer = (*GRPCSigner)(nil)

func (g *GRPCSigner) authorizer() tlsconfig.Authorizer {
	return tlsconfig.AuthorizeID(certs.ControlPlaneID(g.TrustDomain))
}

// BootstrapNode implements Signer.
func (g *GRPCSigner) BootstrapNode(ctx context.Context, csr []byte) (*Issued, error) {
	cfg := tlsconfig.TLSClientConfig(g.Bundle, g.authorizer())
	cfg.MinVersion = tls.VersionTLS13
	conn, err := grpc.NewClient(g.Addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", g.Addr, err)
	}
	defer conn.Close()
	req := &identityv1.BootstrapNodeRequest{Node: g.Node, Csr: csr}
	if g.Credential == nil {
		return nil, errors.New("no node credential configured")
	}
	if err := g.Credential(req); err != nil {
		return nil, err
	}
	resp, err := identityv1.NewIdentityClient(conn).BootstrapNode(ctx, req)
	if err != nil {
		return nil, err
	}
	return g.issued(resp)
}

// SignWorkload implements Signer.
func (g *GRPCSigner) SignWorkload(ctx context.Context, csr []byte, pod PodRef) (*Issued, error) {
	conn, err := g.mtls()
	if err != nil {
		return nil, err
	}
	resp, err := identityv1.NewIdentityClient(conn).SignWorkload(ctx, &identityv1.SignWorkloadRequest{
		Csr: csr, Pod: &identityv1.PodRef{Namespace: pod.Namespace, Name: pod.Name, Uid: pod.UID}})
	if err != nil {
		return nil, err
	}
	return g.issued(resp)
}

// WatchBundle streams trust bundles into set until ctx ends, reconnecting
// with backoff (1s doubling to 30s).
func (g *GRPCSigner) WatchBundle(ctx context.Context, set func(*x509bundle.Bundle) error) {
	backoff := time.Second
	for ctx.Err() == nil {
		err := g.watchOnce(ctx, set, func() { backoff = time.Second })
		if ctx.Err() != nil {
			return
		}
		_ = err // the stream ends on any control-plane restart; retry quietly
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

func (g *GRPCSigner) watchOnce(ctx context.Context, set func(*x509bundle.Bundle) error, ok func()) error {
	conn, err := g.mtls()
	if err != nil {
		return err
	}
	stream, err := identityv1.NewIdentityClient(conn).WatchTrustBundle(ctx, &identityv1.WatchTrustBundleRequest{})
	if err != nil {
		return err
	}
	for {
		tb, err := stream.Recv()
		if err != nil {
			return err
		}
		ok()
		b, err := g.bundle(tb)
		if err != nil {
			return err
		}
		if err := set(b); err != nil {
			return err
		}
	}
}

// Close releases the mutual-TLS connection.
func (g *GRPCSigner) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.conn == nil {
		return nil
	}
	err := g.conn.Close()
	g.conn = nil
	return err
}

func (g *GRPCSigner) mtls() (*grpc.ClientConn, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.conn != nil {
		return g.conn, nil
	}
	// The config reads the node SVID and bundle at every handshake, so
	// renewals and root rotations apply to new connections.
	cfg := tlsconfig.MTLSClientConfig(g.NodeSVID, g.Bundle, g.authorizer())
	cfg.MinVersion = tls.VersionTLS13
	conn, err := grpc.NewClient(g.Addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", g.Addr, err)
	}
	g.conn = conn
	return conn, nil
}

func (g *GRPCSigner) issued(resp *identityv1.SVIDResponse) (*Issued, error) {
	chain, err := certs.ParseDERChain(resp.GetCertChain())
	if err != nil {
		return nil, err
	}
	b, err := g.bundle(resp.GetTrustBundle())
	if err != nil {
		return nil, err
	}
	return &Issued{Chain: chain, Bundle: b}, nil
}

func (g *GRPCSigner) bundle(tb *identityv1.TrustBundle) (*x509bundle.Bundle, error) {
	if tb.GetTrustDomain() != g.TrustDomain.Name() {
		return nil, fmt.Errorf("trust bundle for %q, want %q", tb.GetTrustDomain(), g.TrustDomain.Name())
	}
	return certs.BundleFromDER(g.TrustDomain, tb.GetRoots())
}
