package meshcfg_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/proto"

	xdsv1 "github.com/weftmesh/weft/api/xds/v1"
	"github.com/weftmesh/weft/node-proxy/internal/meshcfg"
)

const (
	allowAction = xdsv1.AuthorizationAction_AUTHORIZATION_ACTION_ALLOW
	denyAction  = xdsv1.AuthorizationAction_AUTHORIZATION_ACTION_DENY
	nodeID      = "spiffe://cluster.local/weft/node/node-b"
	shoppingID  = "spiffe://cluster.local/ns/shopping/sa/frontend"
)

func policy(name string, action xdsv1.AuthorizationAction, rules ...*xdsv1.AuthorizationRule) *xdsv1.Authorization {
	return &xdsv1.Authorization{Policy: name, Action: action, Rules: rules}
}

// onPorts returns a copy of az limited to ports.
func onPorts(az *xdsv1.Authorization, ports ...uint32) *xdsv1.Authorization {
	c := proto.CloneOf(az)
	c.Ports = ports
	return c
}

func rule(from []*xdsv1.AuthorizationSource, to ...*xdsv1.AuthorizationOperation) *xdsv1.AuthorizationRule {
	return &xdsv1.AuthorizationRule{From: from, To: to}
}

func from(srcs ...*xdsv1.AuthorizationSource) []*xdsv1.AuthorizationSource { return srcs }

func ids(m ...*xdsv1.StringMatch) *xdsv1.AuthorizationSource {
	return &xdsv1.AuthorizationSource{Identities: m}
}

func namespaces(ns ...string) *xdsv1.AuthorizationSource {
	return &xdsv1.AuthorizationSource{Namespaces: ns}
}

func exact(v string) *xdsv1.StringMatch  { return &xdsv1.StringMatch{Value: v} }
func prefix(v string) *xdsv1.StringMatch { return &xdsv1.StringMatch{Value: v, Prefix: true} }

func toPorts(p ...uint32) *xdsv1.AuthorizationOperation {
	return &xdsv1.AuthorizationOperation{Ports: p}
}

func toMethods(m ...string) *xdsv1.AuthorizationOperation {
	return &xdsv1.AuthorizationOperation{Methods: m}
}

func toPaths(p ...*xdsv1.StringMatch) *xdsv1.AuthorizationOperation {
	return &xdsv1.AuthorizationOperation{Paths: p}
}

// tcp is a connection from peer ("" for plaintext) to port.
func tcp(peer string, port uint32) meshcfg.Request {
	r := meshcfg.Request{Port: port}
	if peer != "" {
		r.Peer = spiffeid.RequireFromString(peer)
	}
	return r
}

// httpReq is a request from peer ("" for plaintext) to port.
func httpReq(peer string, port uint32, method, path string) meshcfg.Request {
	r := tcp(peer, port)
	r.HTTP, r.Method, r.Path = true, method, path
	return r
}

func denied(policy string, action xdsv1.AuthorizationAction) *meshcfg.DenyError {
	return &meshcfg.DenyError{Policy: policy, Action: action}
}

// noAllow is the refusal when ALLOW policies apply and none matches.
var noAllow = &meshcfg.DenyError{}

// TestAuthorize follows the evaluation documented on
// weft.xds.v1.Workload.authorization.
func TestAuthorize(t *testing.T) {
	allowShop := policy("shop/allow-shop", allowAction, rule(from(namespaces("shop"))))
	denyFront := policy("shop/deny-frontend", denyAction, rule(from(ids(exact(frontID)))))
	denyPOST := policy("shop/deny-post", denyAction, rule(nil, toMethods("POST")))
	allowGET := policy("shop/allow-get", allowAction, rule(nil, toMethods("GET", "HEAD")))
	allowAPI := policy("shop/allow-api", allowAction, rule(nil, toPaths(prefix("/api/"), exact("/healthz"))))
	allowPort := policy("shop/allow-8080", allowAction, rule(nil, toPorts(8080)))

	tests := []struct {
		name  string
		authz []*xdsv1.Authorization
		req   meshcfg.Request
		want  *meshcfg.DenyError // nil: accepted
	}{
		// No policy: accept.
		{"no policy, mTLS", nil, tcp(frontID, 8080), nil},
		{"no policy, plaintext", nil, tcp("", 8080), nil},
		{"no policy, HTTP", nil, httpReq("", 8080, "DELETE", "/"), nil},

		// DENY.
		{"DENY matches", []*xdsv1.Authorization{denyFront}, tcp(frontID, 8080), denied("shop/deny-frontend", denyAction)},
		{"DENY does not match", []*xdsv1.Authorization{denyFront}, tcp(adminID, 8080), nil},
		{"DENY with no rules denies nothing", []*xdsv1.Authorization{policy("shop/deny-none", denyAction)}, tcp(frontID, 8080), nil},
		{"DENY beats ALLOW listed first", []*xdsv1.Authorization{allowShop, denyFront}, tcp(frontID, 8080), denied("shop/deny-frontend", denyAction)},
		{"DENY beats ALLOW listed after", []*xdsv1.Authorization{denyFront, allowShop}, tcp(frontID, 8080), denied("shop/deny-frontend", denyAction)},
		{"first matching DENY decides", []*xdsv1.Authorization{
			policy("shop/deny-a", denyAction, rule(from(namespaces("shop")))),
			policy("shop/deny-b", denyAction, rule(from(namespaces("shop")))),
		}, tcp(frontID, 8080), denied("shop/deny-a", denyAction)},
		{"DENY not matching, ALLOW matching", []*xdsv1.Authorization{allowShop, denyFront}, tcp(webAID, 8080), nil},

		// ALLOW.
		{"ALLOW with no rules denies everything", []*xdsv1.Authorization{policy("shop/allow-none", allowAction)}, tcp(frontID, 8080), noAllow},
		{"ALLOW with no rules denies plaintext", []*xdsv1.Authorization{policy("shop/allow-none", allowAction)}, tcp("", 8080), noAllow},
		{"ALLOW matches", []*xdsv1.Authorization{allowShop}, tcp(frontID, 8080), nil},
		{"ALLOW present, unmatched", []*xdsv1.Authorization{allowShop}, tcp(adminID, 8080), noAllow},
		{"any ALLOW may match", []*xdsv1.Authorization{allowShop, policy("shop/allow-ops", allowAction, rule(from(namespaces("ops"))))}, tcp(adminID, 8080), nil},
		{"any rule may match", []*xdsv1.Authorization{policy("shop/allow", allowAction,
			rule(from(namespaces("shop"))), rule(from(ids(exact(adminID)))))}, tcp(adminID, 8080), nil},
		{"an ALLOW with no rules does not hide another", []*xdsv1.Authorization{policy("shop/allow-none", allowAction), allowShop}, tcp(frontID, 8080), nil},

		// Port-scoped policies.
		{"ALLOW on another port does not apply", []*xdsv1.Authorization{onPorts(policy("shop/allow-none", allowAction), 9090)}, tcp(adminID, 8080), nil},
		{"ALLOW on this port applies", []*xdsv1.Authorization{onPorts(policy("shop/allow-none", allowAction), 9090, 8080)}, tcp(adminID, 8080), noAllow},
		{"DENY on another port does not apply", []*xdsv1.Authorization{onPorts(denyFront, 9090)}, tcp(frontID, 8080), nil},
		{"DENY on this port applies", []*xdsv1.Authorization{onPorts(denyFront, 8080)}, tcp(frontID, 8080), denied("shop/deny-frontend", denyAction)},
		{"port-scoped ALLOW, other port has its own ALLOW", []*xdsv1.Authorization{onPorts(policy("shop/allow-none", allowAction), 9090), allowShop}, tcp(adminID, 8080), noAllow},

		// Identities.
		{"identity exact", []*xdsv1.Authorization{policy("p/a", allowAction, rule(from(ids(exact(frontID)))))}, tcp(frontID, 1), nil},
		{"identity exact is not a prefix", []*xdsv1.Authorization{policy("p/a", allowAction, rule(from(ids(exact("spiffe://cluster.local/ns/shop/sa/front")))))}, tcp(frontID, 1), noAllow},
		{"identity exact, other identity", []*xdsv1.Authorization{policy("p/a", allowAction, rule(from(ids(exact(frontID)))))}, tcp(webAID, 1), noAllow},
		{"identity prefix", []*xdsv1.Authorization{policy("p/a", allowAction, rule(from(ids(prefix("spiffe://cluster.local/ns/shop/")))))}, tcp(frontID, 1), nil},
		{"identity prefix, other namespace", []*xdsv1.Authorization{policy("p/a", allowAction, rule(from(ids(prefix("spiffe://cluster.local/ns/shop/")))))}, tcp(shoppingID, 1), noAllow},
		{"identity any of several", []*xdsv1.Authorization{policy("p/a", allowAction, rule(from(ids(exact(webAID), exact(adminID)))))}, tcp(adminID, 1), nil},
		{"any mesh identity (spiffe://*)", []*xdsv1.Authorization{policy("p/a", allowAction, rule(from(ids(prefix("spiffe://")))))}, tcp(nodeID, 1), nil},

		// Namespaces, from the SPIFFE ID.
		{"namespace", []*xdsv1.Authorization{allowShop}, tcp(webAID, 1), nil},
		{"namespace is compared whole", []*xdsv1.Authorization{allowShop}, tcp(shoppingID, 1), noAllow},
		{"namespace of an ID without /ns/", []*xdsv1.Authorization{allowShop}, tcp(nodeID, 1), noAllow},
		{"namespace any of several", []*xdsv1.Authorization{policy("p/a", allowAction, rule(from(namespaces("data", "ops"))))}, tcp(adminID, 1), nil},
		{"identity and namespace must both match", []*xdsv1.Authorization{policy("p/a", allowAction, rule(from(&xdsv1.AuthorizationSource{
			Identities: []*xdsv1.StringMatch{prefix("spiffe://cluster.local/ns/")}, Namespaces: []string{"ops"},
		})))}, tcp(frontID, 1), noAllow},
		{"any from entry may match", []*xdsv1.Authorization{policy("p/a", allowAction, rule(from(namespaces("ops"), ids(exact(frontID)))))}, tcp(frontID, 1), nil},

		// Plaintext (PERMISSIVE): only rules without `from` match it.
		{"plaintext vs ALLOW by namespace", []*xdsv1.Authorization{allowShop}, tcp("", 8080), noAllow},
		{"plaintext vs ALLOW by any identity", []*xdsv1.Authorization{policy("p/a", allowAction, rule(from(ids(prefix("spiffe://")))))}, tcp("", 8080), noAllow},
		{"plaintext vs ALLOW by identity prefix \"\"", []*xdsv1.Authorization{policy("p/a", allowAction, rule(from(ids(prefix("")))))}, tcp("", 8080), noAllow},
		{"plaintext vs ALLOW without from", []*xdsv1.Authorization{allowPort}, tcp("", 8080), nil},
		{"plaintext vs ALLOW with from and to", []*xdsv1.Authorization{policy("p/a", allowAction, rule(from(namespaces("shop")), toPorts(8080)))}, tcp("", 8080), noAllow},
		{"plaintext vs DENY by any identity", []*xdsv1.Authorization{policy("p/d", denyAction, rule(from(ids(prefix("spiffe://")))))}, tcp("", 8080), nil},
		{"plaintext vs DENY without from", []*xdsv1.Authorization{policy("p/d", denyAction, rule(nil, toPorts(8080)))}, tcp("", 8080), denied("p/d", denyAction)},

		// Operations: ports.
		{"to port", []*xdsv1.Authorization{allowPort}, tcp(frontID, 8080), nil},
		{"to other port", []*xdsv1.Authorization{allowPort}, tcp(frontID, 9090), noAllow},
		{"from and to both match", []*xdsv1.Authorization{policy("p/a", allowAction, rule(from(namespaces("shop")), toPorts(8080)))}, tcp(frontID, 8080), nil},
		{"from matches, to does not", []*xdsv1.Authorization{policy("p/a", allowAction, rule(from(namespaces("shop")), toPorts(8080)))}, tcp(frontID, 9090), noAllow},
		{"to matches, from does not", []*xdsv1.Authorization{policy("p/a", allowAction, rule(from(namespaces("shop")), toPorts(8080)))}, tcp(adminID, 8080), noAllow},
		{"any to entry may match", []*xdsv1.Authorization{policy("p/a", allowAction, rule(nil, toMethods("GET"), toPorts(9090)))}, tcp(frontID, 9090), nil},

		// Methods and paths only match HTTP.
		{"DENY by method does not deny TCP", []*xdsv1.Authorization{denyPOST}, tcp(frontID, 8080), nil},
		{"DENY by method denies that method", []*xdsv1.Authorization{denyPOST}, httpReq(frontID, 8080, "POST", "/"), denied("shop/deny-post", denyAction)},
		{"DENY by method, other method", []*xdsv1.Authorization{denyPOST}, httpReq(frontID, 8080, "GET", "/"), nil},
		{"DENY by path does not deny TCP", []*xdsv1.Authorization{policy("p/d", denyAction, rule(nil, toPaths(prefix("/"))))}, tcp(frontID, 8080), nil},
		{"ALLOW by method does not allow TCP", []*xdsv1.Authorization{allowGET}, tcp(frontID, 8080), noAllow},
		{"ALLOW by method allows that method", []*xdsv1.Authorization{allowGET}, httpReq(frontID, 8080, "HEAD", "/x"), nil},
		{"ALLOW by method, other method", []*xdsv1.Authorization{allowGET}, httpReq(frontID, 8080, "POST", "/x"), noAllow},
		{"methods are case sensitive", []*xdsv1.Authorization{allowGET}, httpReq(frontID, 8080, "get", "/x"), noAllow},
		{"ALLOW by path does not allow TCP", []*xdsv1.Authorization{allowAPI}, tcp(frontID, 8080), noAllow},
		{"path prefix", []*xdsv1.Authorization{allowAPI}, httpReq(frontID, 8080, "GET", "/api/v1/items"), nil},
		{"path prefix is not a segment match", []*xdsv1.Authorization{allowAPI}, httpReq(frontID, 8080, "GET", "/apix"), noAllow},
		{"path prefix, the prefix itself", []*xdsv1.Authorization{allowAPI}, httpReq(frontID, 8080, "GET", "/api/"), nil},
		{"path exact", []*xdsv1.Authorization{allowAPI}, httpReq(frontID, 8080, "GET", "/healthz"), nil},
		{"path exact, longer path", []*xdsv1.Authorization{allowAPI}, httpReq(frontID, 8080, "GET", "/healthz/x"), noAllow},
		{"method and path must both match", []*xdsv1.Authorization{policy("p/a", allowAction, rule(nil, &xdsv1.AuthorizationOperation{
			Methods: []string{"GET"}, Paths: []*xdsv1.StringMatch{prefix("/api/")},
		}))}, httpReq(frontID, 8080, "POST", "/api/x"), noAllow},
		{"ports match HTTP too", []*xdsv1.Authorization{allowPort}, httpReq("", 8080, "PUT", "/"), nil},
		{"HTTP vs ALLOW by TCP-only rule on another port", []*xdsv1.Authorization{allowPort}, httpReq(frontID, 9090, "GET", "/"), noAllow},

		// Unknown actions fail closed.
		{"unspecified action", []*xdsv1.Authorization{policy("shop/odd", xdsv1.AuthorizationAction_AUTHORIZATION_ACTION_UNSPECIFIED)},
			tcp(frontID, 8080), denied("shop/odd", xdsv1.AuthorizationAction_AUTHORIZATION_ACTION_UNSPECIFIED)},
		{"unknown action", []*xdsv1.Authorization{allowShop, policy("shop/odd", 3, rule(from(namespaces("nobody"))))},
			tcp(frontID, 8080), denied("shop/odd", 3)},
		{"unknown action after a matching DENY", []*xdsv1.Authorization{denyFront, policy("shop/odd", 3)},
			tcp(frontID, 8080), denied("shop/deny-frontend", denyAction)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &meshcfg.Workload{Workload: &xdsv1.Workload{Name: "shop/web-a", Authorization: tt.authz}}
			err := w.Authorize(tt.req)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Authorize(%+v): got %v, want accepted", tt.req, err)
				}
				return
			}
			var de *meshcfg.DenyError
			if !errors.As(err, &de) {
				t.Fatalf("Authorize(%+v): got %v (%T), want %+v", tt.req, err, err, tt.want)
			}
			if d := cmp.Diff(tt.want, de); d != "" {
				t.Errorf("Authorize(%+v) DenyError (-want +got):\n%s", tt.req, d)
			}
		})
	}
}

// Authorize on a Workload from Build sees the policies sent.
func TestAuthorizeBuiltWorkload(t *testing.T) {
	c := build(t, meshResources(t, nil))
	w, ok := c.Workload("shop/web-a")
	if !ok {
		t.Fatal(`Workload("shop/web-a"): got not found, want found`)
	}
	if err := w.Authorize(tcp(frontID, 8080)); err != nil {
		t.Errorf("Authorize(frontend): got %v, want accepted", err)
	}
	if err := w.Authorize(tcp(adminID, 8080)); err == nil {
		t.Error("Authorize(admin): got accepted, want denied")
	}
}

func TestDenyErrorMessage(t *testing.T) {
	tests := []struct {
		err  *meshcfg.DenyError
		want string
	}{
		{denied("shop/deny-frontend", denyAction), "denied by AuthorizationPolicy shop/deny-frontend"},
		{noAllow, "no ALLOW AuthorizationPolicy matches"},
		{denied("shop/odd", 3), "AuthorizationPolicy shop/odd has an action this proxy does not know"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); !strings.Contains(got, tt.want) {
			t.Errorf("%+v.Error(): got %q, want %q", *tt.err, got, tt.want)
		}
	}
}
