package identity

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"

	identityv1 "github.com/weftmesh/weft/api/identity/v1"
	"github.com/weftmesh/weft/certs"
	"github.com/weftmesh/weft/control-plane/internal/model"
	"github.com/weftmesh/weft/control-plane/internal/nodeauth"
)

// Pods looks pods up for authorization. Implementations: the Kubernetes
// API (source/kube) and the --config-dir files (source/dir).
type Pods interface {
	// Pod returns the pod and its namespace (nil when the namespace object
	// does not exist). A missing pod is an error wrapping model.ErrNotFound;
	// any other error means the answer is unknown right now.
	Pod(ctx context.Context, namespace, name string) (*model.Pod, *model.Namespace, error)
}

// Config wires a Service.
type Config struct {
	// Authority is the CA in force. Required.
	Authority *Authority
	// Nodes authenticates BootstrapNode callers. Required.
	Nodes NodeAuthenticator
	// Pods looks up the pods SignWorkload is asked about. Required.
	Pods Pods
	// Metrics counts requests; nil means not counted.
	Metrics *Metrics
	// Log receives one line per refusal; nil means slog.Default().
	Log *slog.Logger
	// NodeTTL and WorkloadTTL are SVID lifetimes; zero means the CA default
	// (24h).
	NodeTTL, WorkloadTTL time.Duration
}

// Service implements identityv1.IdentityServer.
type Service struct {
	identityv1.UnimplementedIdentityServer
	cfg Config
}

var _ identityv1.IdentityServer = (*Service)(nil)

// NewService checks cfg and returns a Service.
func NewService(cfg Config) (*Service, error) {
	if cfg.Authority == nil || cfg.Nodes == nil || cfg.Pods == nil {
		return nil, errors.New("identity: Authority, Nodes and Pods are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Service{cfg: cfg}, nil
}

// BootstrapNode issues a node SVID to a caller that proves its node.
func (s *Service) BootstrapNode(ctx context.Context, req *identityv1.BootstrapNodeRequest) (*identityv1.SVIDResponse, error) {
	start := time.Now()
	resp, err := s.bootstrapNode(ctx, req)
	s.finish("BootstrapNode", start, err, "node", req.GetNode())
	if err != nil {
		return nil, asStatus(err)
	}
	return resp, nil
}

func (s *Service) bootstrapNode(ctx context.Context, req *identityv1.BootstrapNodeRequest) (*identityv1.SVIDResponse, error) {
	ca := s.cfg.Authority.CA()
	id, err := certs.NodeID(ca.TrustDomain(), req.GetNode())
	if err != nil || req.GetNode() == "" {
		return nil, Refuse(codes.InvalidArgument, ReasonBadRequest, "node name %q is not valid", req.GetNode())
	}
	csr, err := certs.ParseCSR(req.GetCsr())
	if err != nil {
		return nil, Refuse(codes.InvalidArgument, ReasonBadCSR, "%v", err)
	}
	if err := s.cfg.Nodes.AuthenticateNode(ctx, req); err != nil {
		return nil, err
	}
	return sign(ca, csr, id, s.cfg.NodeTTL)
}

// SignWorkload issues a workload SVID for a pod on the caller's node.
func (s *Service) SignWorkload(ctx context.Context, req *identityv1.SignWorkloadRequest) (*identityv1.SVIDResponse, error) {
	start := time.Now()
	resp, err := s.signWorkload(ctx, req)
	s.finish("SignWorkload", start, err, "pod", req.GetPod().GetNamespace()+"/"+req.GetPod().GetName())
	if err != nil {
		return nil, asStatus(err)
	}
	return resp, nil
}

func (s *Service) signWorkload(ctx context.Context, req *identityv1.SignWorkloadRequest) (*identityv1.SVIDResponse, error) {
	node, err := s.callerNode(ctx)
	if err != nil {
		return nil, err
	}
	ref := req.GetPod()
	if ref.GetNamespace() == "" || ref.GetName() == "" {
		return nil, Refuse(codes.InvalidArgument, ReasonBadRequest, "pod namespace and name are required")
	}
	csr, err := certs.ParseCSR(req.GetCsr())
	if err != nil {
		return nil, Refuse(codes.InvalidArgument, ReasonBadCSR, "%v", err)
	}
	id, err := s.authorizePod(ctx, node, ref)
	if err != nil {
		return nil, err
	}
	return sign(s.cfg.Authority.CA(), csr, id, s.cfg.WorkloadTTL)
}

// authorizePod decides whether node may hold the identity of the pod ref
// names, and returns that identity.
func (s *Service) authorizePod(ctx context.Context, node string, ref *identityv1.PodRef) (spiffeid.ID, error) {
	key := ref.GetNamespace() + "/" + ref.GetName()
	pod, ns, err := s.cfg.Pods.Pod(ctx, ref.GetNamespace(), ref.GetName())
	switch {
	case errors.Is(err, model.ErrNotFound):
		return spiffeid.ID{}, Refuse(codes.NotFound, ReasonPodNotFound, "pod %s not found", key)
	case err != nil:
		s.cfg.Log.Error("pod lookup failed", "pod", key, "err", err)
		return spiffeid.ID{}, Refuse(codes.Unavailable, ReasonUnavailable, "pod %s cannot be looked up now; retry", key)
	}
	if ref.GetUid() != "" && ref.GetUid() != pod.UID {
		return spiffeid.ID{}, Refuse(codes.NotFound, ReasonUIDMismatch, "pod %s with uid %s not found (it was replaced)", key, ref.GetUid())
	}
	if pod.NodeName != node {
		where := pod.NodeName
		if where == "" {
			where = "no node yet"
		}
		return spiffeid.ID{}, Refuse(codes.PermissionDenied, ReasonOtherNode,
			"pod %s is scheduled on %s, not on the caller's node %s", key, where, node)
	}
	switch e := model.EnrollmentOf(ns, pod); e {
	case model.Enrolled:
	case model.NamespaceNotEnrolled:
		return spiffeid.ID{}, Refuse(codes.FailedPrecondition, ReasonNotEnrolled,
			"pod %s is not in the mesh: namespace %s lacks %s=%s", key, ref.GetNamespace(), model.MeshKey, model.MeshEnabled)
	case model.PodOptedOut:
		return spiffeid.ID{}, Refuse(codes.FailedPrecondition, ReasonOptedOut,
			"pod %s opted out of the mesh with %s=%s", key, model.MeshKey, model.MeshDisabled)
	default:
		return spiffeid.ID{}, Refuse(codes.FailedPrecondition, ReasonHostNetwork,
			"pod %s uses the host network and is never enrolled", key)
	}
	id, err := certs.WorkloadID(s.cfg.Authority.TrustDomain(), pod.Namespace, pod.ServiceAccount)
	if err != nil {
		return spiffeid.ID{}, Refuse(codes.FailedPrecondition, ReasonNoServiceAcct, "pod %s: %v", key, err)
	}
	return id, nil
}

// WatchTrustBundle streams the trust bundle to a node proxy.
func (s *Service) WatchTrustBundle(_ *identityv1.WatchTrustBundleRequest, stream identityv1.Identity_WatchTrustBundleServer) error {
	ctx := stream.Context()
	if _, err := s.callerNode(ctx); err != nil {
		s.finish("WatchTrustBundle", time.Now(), err)
		return asStatus(err)
	}
	s.finish("WatchTrustBundle", time.Now(), nil)
	for {
		changed, ca := s.cfg.Authority.Changed()
		if err := stream.Send(BundleProto(ca)); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// callerNode returns the node of the caller's verified node SVID.
func (s *Service) callerNode(ctx context.Context) (string, error) {
	node, f := nodeauth.Node(ctx, s.cfg.Authority)
	if f == nil {
		return node, nil
	}
	switch f.Kind {
	case nodeauth.NoPeer:
		return "", Refuse(codes.Unauthenticated, ReasonNoClientCert, "no peer information")
	case nodeauth.NoCert:
		return "", Refuse(codes.Unauthenticated, ReasonNoClientCert, "a node SVID client certificate is required")
	case nodeauth.BadCert:
		return "", Refuse(codes.Unauthenticated, ReasonNoClientCert, "client certificate not valid: %v", f.Err)
	default:
		return "", Refuse(codes.PermissionDenied, ReasonNotANode, "%v", f.Err)
	}
}

func sign(ca *certs.CA, csr *x509.CertificateRequest, id spiffeid.ID, ttl time.Duration) (*identityv1.SVIDResponse, error) {
	chain, err := ca.Sign(csr, id, ttl)
	if err != nil {
		return nil, Refuse(codes.Internal, ReasonInternal, "signing failed")
	}
	return &identityv1.SVIDResponse{SpiffeId: id.String(), CertChain: certs.CertsDER(chain), TrustBundle: BundleProto(ca)}, nil
}

// BundleProto is the wire form of ca's trust bundle.
func BundleProto(ca *certs.CA) *identityv1.TrustBundle {
	return &identityv1.TrustBundle{TrustDomain: ca.TrustDomain().Name(), Roots: certs.BundleDER(ca.Bundle())}
}

func (s *Service) finish(rpc string, start time.Time, err error, attrs ...any) {
	result := reasonOf(err)
	s.cfg.Metrics.observe(rpc, result, time.Since(start))
	if err != nil {
		s.cfg.Log.Warn("identity request refused", append([]any{"rpc", rpc, "result", result, "err", err}, attrs...)...)
	}
}
