package meshcfg

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	xdsv1 "github.com/weftmesh/weft/api/xds/v1"
)

// Request is what authorization looks at. For a TCP connection Method and
// Path are empty and HTTP is false.
type Request struct {
	// Peer is the caller's verified SPIFFE ID; zero for plaintext.
	Peer spiffeid.ID
	// Port is the destination pod port.
	Port uint32
	// HTTP is true for an HTTP request; Method and Path are then set.
	HTTP         bool
	Method, Path string
}

// DenyError says which policy refused a request.
type DenyError struct {
	// Policy is "namespace/name", or "" when no ALLOW policy matched.
	Policy string
	// Action is the action of the policy that decided.
	Action xdsv1.AuthorizationAction
}

func (e *DenyError) Error() string {
	switch {
	case e.Action == xdsv1.AuthorizationAction_AUTHORIZATION_ACTION_DENY:
		return fmt.Sprintf("denied by AuthorizationPolicy %s", e.Policy)
	case e.Policy == "":
		return "no ALLOW AuthorizationPolicy matches"
	default:
		return fmt.Sprintf("AuthorizationPolicy %s has an action this proxy does not know", e.Policy)
	}
}

// Authorize applies the workload's AuthorizationPolicies to r, as
// weft.xds.v1.Workload documents: a matching DENY refuses; otherwise, if
// any ALLOW applies to the port, one must match; otherwise accept. It
// returns nil or a *DenyError.
func (w *Workload) Authorize(r Request) error {
	anyAllow := false
	allowed := false
	for _, az := range w.GetAuthorization() {
		if len(az.GetPorts()) > 0 && !slices.Contains(az.GetPorts(), r.Port) {
			continue
		}
		switch az.GetAction() {
		case xdsv1.AuthorizationAction_AUTHORIZATION_ACTION_DENY:
			if matchesAny(az.GetRules(), r) {
				return &DenyError{Policy: az.GetPolicy(), Action: az.GetAction()}
			}
		case xdsv1.AuthorizationAction_AUTHORIZATION_ACTION_ALLOW:
			anyAllow = true
			if !allowed && matchesAny(az.GetRules(), r) {
				allowed = true
			}
		default:
			return &DenyError{Policy: az.GetPolicy(), Action: az.GetAction()}
		}
	}
	if anyAllow && !allowed {
		return &DenyError{}
	}
	return nil
}

func matchesAny(rules []*xdsv1.AuthorizationRule, r Request) bool {
	for _, rule := range rules {
		if matchesRule(rule, r) {
			return true
		}
	}
	return false
}

func matchesRule(rule *xdsv1.AuthorizationRule, r Request) bool {
	if len(rule.GetFrom()) > 0 && !slices.ContainsFunc(rule.GetFrom(), func(s *xdsv1.AuthorizationSource) bool { return matchesSource(s, r.Peer) }) {
		return false
	}
	if len(rule.GetTo()) > 0 && !slices.ContainsFunc(rule.GetTo(), func(o *xdsv1.AuthorizationOperation) bool { return matchesOperation(o, r) }) {
		return false
	}
	return true
}

func matchesSource(s *xdsv1.AuthorizationSource, peer spiffeid.ID) bool {
	if len(s.GetIdentities()) > 0 || len(s.GetNamespaces()) > 0 {
		if peer.IsZero() {
			return false // plaintext has no identity to match
		}
	}
	if len(s.GetIdentities()) > 0 && !slices.ContainsFunc(s.GetIdentities(), func(m *xdsv1.StringMatch) bool { return matchString(m, peer.String()) }) {
		return false
	}
	if len(s.GetNamespaces()) > 0 && !slices.Contains(s.GetNamespaces(), namespaceOf(peer)) {
		return false
	}
	return true
}

func matchesOperation(o *xdsv1.AuthorizationOperation, r Request) bool {
	if len(o.GetPorts()) > 0 && !slices.Contains(o.GetPorts(), r.Port) {
		return false
	}
	if len(o.GetMethods()) > 0 && (!r.HTTP || !slices.Contains(o.GetMethods(), r.Method)) {
		return false
	}
	if len(o.GetPaths()) > 0 && (!r.HTTP || !slices.ContainsFunc(o.GetPaths(), func(m *xdsv1.StringMatch) bool { return matchString(m, r.Path) })) {
		return false
	}
	return true
}

func matchString(m *xdsv1.StringMatch, s string) bool {
	if m.GetPrefix() {
		return strings.HasPrefix(s, m.GetValue())
	}
	return s == m.GetValue()
}
