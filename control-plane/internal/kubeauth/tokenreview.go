// Package kubeauth authenticates node proxies on Kubernetes: a node proxy
// sends its projected service-account token (audience "weft"); the token is
// checked with the TokenReview API, must belong to the node proxy's service
// account and be bound to a pod, and that pod must run on the node the proxy
// claims. A stolen token is thus only good for the node its pod runs on, and
// only while that pod exists.
package kubeauth

import (
	"context"
	"slices"
	"strings"

	authnv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"google.golang.org/grpc/codes"

	identityv1 "github.com/weftmesh/weft/api/identity/v1"
	"github.com/weftmesh/weft/control-plane/internal/identity"
)

// DefaultAudience is the audience node-proxy tokens must carry.
const DefaultAudience = "weft"

// Keys of TokenReview user.extra for pod-bound tokens.
const (
	extraPodName  = "authentication.kubernetes.io/pod-name"
	extraPodUID   = "authentication.kubernetes.io/pod-uid"
	extraNodeName = "authentication.kubernetes.io/node-name"
)

// TokenReview is an identity.NodeAuthenticator.
type TokenReview struct {
	Client kubernetes.Interface
	// Audience the token must be issued for; "" means DefaultAudience.
	Audience string
	// ServiceAccounts that may bootstrap node identities, as
	// "namespace/name" (the node-proxy DaemonSet's service account).
	ServiceAccounts []string
}

var _ identity.NodeAuthenticator = (*TokenReview)(nil)

// AuthenticateNode implements identity.NodeAuthenticator.
func (t *TokenReview) AuthenticateNode(ctx context.Context, req *identityv1.BootstrapNodeRequest) error {
	token := req.GetKubernetesToken()
	if token == "" {
		return identity.Refuse(codes.Unauthenticated, identity.ReasonBadCredential,
			"node %q: a Kubernetes service-account token is required", req.GetNode())
	}
	aud := t.Audience
	if aud == "" {
		aud = DefaultAudience
	}
	tr, err := t.Client.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{
		Spec: authnv1.TokenReviewSpec{Token: token, Audiences: []string{aud}}}, metav1.CreateOptions{})
	if err != nil {
		return identity.Refuse(codes.Unavailable, identity.ReasonUnavailable, "token review failed: %v", err)
	}
	st := tr.Status
	if !st.Authenticated || !slices.Contains(st.Audiences, aud) {
		msg := st.Error
		if msg == "" {
			msg = "not authenticated"
		}
		return identity.Refuse(codes.Unauthenticated, identity.ReasonBadCredential,
			"node %q: token not valid for audience %q: %s", req.GetNode(), aud, msg)
	}
	ns, sa, ok := serviceAccount(st.User.Username)
	if !ok || !slices.Contains(t.ServiceAccounts, ns+"/"+sa) {
		return identity.Refuse(codes.PermissionDenied, identity.ReasonSANotAllowed,
			"node %q: %s may not bootstrap node identities (allowed: %s)", req.GetNode(), st.User.Username, strings.Join(t.ServiceAccounts, ", "))
	}
	podName, podUID := first(st.User.Extra[extraPodName]), first(st.User.Extra[extraPodUID])
	if podName == "" {
		return identity.Refuse(codes.Unauthenticated, identity.ReasonBadCredential,
			"node %q: the token is not bound to a pod; use a projected service-account token", req.GetNode())
	}
	if n := first(st.User.Extra[extraNodeName]); n != "" && n != req.GetNode() {
		return identity.Refuse(codes.PermissionDenied, identity.ReasonNodeMismatch,
			"node %q: the token belongs to pod %s/%s on node %s", req.GetNode(), ns, podName, n)
	}
	pod, err := t.Client.CoreV1().Pods(ns).Get(ctx, podName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return identity.Refuse(codes.Unauthenticated, identity.ReasonBadCredential, "node %q: the token's pod %s/%s no longer exists", req.GetNode(), ns, podName)
	case err != nil:
		return identity.Refuse(codes.Unavailable, identity.ReasonUnavailable, "get pod %s/%s: %v", ns, podName, err)
	}
	if podUID != "" && string(pod.UID) != podUID {
		return identity.Refuse(codes.Unauthenticated, identity.ReasonBadCredential, "node %q: the token's pod %s/%s was replaced", req.GetNode(), ns, podName)
	}
	if pod.Spec.NodeName != req.GetNode() {
		return identity.Refuse(codes.PermissionDenied, identity.ReasonNodeMismatch,
			"node %q: the token belongs to pod %s/%s on node %q", req.GetNode(), ns, podName, pod.Spec.NodeName)
	}
	return nil
}

func serviceAccount(username string) (ns, name string, ok bool) {
	parts := strings.Split(username, ":")
	if len(parts) != 4 || parts[0] != "system" || parts[1] != "serviceaccount" {
		return "", "", false
	}
	return parts[2], parts[3], true
}

func first(v authnv1.ExtraValue) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}
