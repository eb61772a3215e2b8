// Package nodeauth finds which node proxy is calling on port 15012: the
// identity API and the xDS server both accept only callers that present a
// node SVID, and both check it the same way, here. Each turns a Failure into
// its own refusal (gRPC code, metric reason, message).
package nodeauth

import (
	"context"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/weftmesh/weft/certs"
)

// Kind says why a caller is not an authenticated node proxy.
type Kind int

const (
	// NoPeer: the context carries no peer information.
	NoPeer Kind = iota + 1
	// NoCert: no TLS, or TLS without a client certificate.
	NoCert
	// BadCert: the chain does not verify against the bundle in force now.
	BadCert
	// NotANode: a valid SVID, but not spiffe://<td>/weft/node/<node>.
	NotANode
)

// Failure is why Node refused a caller.
type Failure struct {
	Kind Kind
	Err  error // for BadCert: the verification error; for NotANode: names the ID
}

func (f *Failure) Error() string { return f.Err.Error() }

// Node returns the node name in the caller's SVID. The TLS handshake
// verified the chain already; it is verified again against bundle, which
// may have changed since the connection opened.
func Node(ctx context.Context, bundle x509bundle.Source) (string, *Failure) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", &Failure{Kind: NoPeer, Err: fmt.Errorf("no peer information")}
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return "", &Failure{Kind: NoCert, Err: fmt.Errorf("no client certificate")}
	}
	id, _, err := x509svid.Verify(info.State.PeerCertificates, bundle)
	if err != nil {
		return "", &Failure{Kind: BadCert, Err: err}
	}
	node, ok := certs.NodeFromID(id)
	if !ok {
		return "", &Failure{Kind: NotANode, Err: fmt.Errorf("caller %s is not a node proxy", id)}
	}
	return node, nil
}
