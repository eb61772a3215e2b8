package xds

import (
	"context"
	"errors"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/control-plane/internal/nodeauth"
)

// Authenticator names the node proxy behind a stream from the stream's
// context, or refuses it. An error that is a *Refusal keeps its code and
// reason; any other error refuses the stream as Unauthenticated with reason
// "unauthenticated".
type Authenticator func(ctx context.Context) (node string, err error)

// Refusal is a stream the server closed because of who the caller is or
// what it claimed, with the gRPC code the caller receives and a reason that
// labels weft_xds_rejected_streams_total.
type Refusal struct {
	Code   codes.Code
	Reason string // metric label, snake_case, one of the Reason constants
	Msg    string // for the operator
}

func (r *Refusal) Error() string { return r.Msg }

// GRPCStatus makes the gRPC server send the refusal's code and message.
func (r *Refusal) GRPCStatus() *status.Status { return status.New(r.Code, r.Msg) }

func refuse(code codes.Code, reason, format string, args ...any) *Refusal {
	return &Refusal{Code: code, Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

// Reasons a stream is refused.
const (
	ReasonNoClientCert    = "no_client_certificate"  // no TLS, or TLS without a client certificate
	ReasonBadClientCert   = "bad_client_certificate" // does not verify against the trust bundle now
	ReasonNotANode        = "not_a_node"             // a valid SVID, but not spiffe://<td>/weft/node/<node>
	ReasonNodeMismatch    = "node_mismatch"          // node.id differs from the certificate's node
	ReasonUnauthenticated = "unauthenticated"        // an Authenticator failed with a plain error
)

// asRefusal turns any authentication error into a Refusal.
func asRefusal(err error) *Refusal {
	var r *Refusal
	if errors.As(err, &r) {
		return r
	}
	return refuse(codes.Unauthenticated, ReasonUnauthenticated, "%v", err)
}

// NodeFromPeer is the Authenticator of port 15012: the caller must have
// presented, in the TLS handshake, a certificate chain that verifies now
// against bundle (the handshake verified it already; the bundle may have
// changed since) and whose SPIFFE ID is a node proxy's,
// spiffe://<td>/weft/node/<node>. It returns <node>.
func NodeFromPeer(bundle x509bundle.Source) Authenticator {
	return func(ctx context.Context) (string, error) {
		node, f := nodeauth.Node(ctx, bundle)
		if f == nil {
			return node, nil
		}
		switch f.Kind {
		case nodeauth.NoPeer:
			return "", refuse(codes.Unauthenticated, ReasonNoClientCert, "no peer information")
		case nodeauth.NoCert:
			return "", refuse(codes.Unauthenticated, ReasonNoClientCert, "xDS needs a node SVID as TLS client certificate")
		case nodeauth.BadCert:
			return "", refuse(codes.Unauthenticated, ReasonBadClientCert, "client certificate not valid: %v", f.Err)
		default:
			return "", refuse(codes.PermissionDenied, ReasonNotANode, "%v", f.Err)
		}
	}
}
