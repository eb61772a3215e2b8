package translate

import (
	"sort"
	"strconv"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	xdsv1 "github.com/weftmesh/weft/api/xds/v1"
	"github.com/weftmesh/weft/control-plane/internal/model"
)

// ConsumerRouteSeparator joins a Service port's listener name and a
// namespace into the name of that namespace's consumer RouteConfiguration:
// "<listener>|consumer|<namespace>". The node proxy reads the same
// convention.
const ConsumerRouteSeparator = "|consumer|"

// attachRoutes finds, for every Service port, the routes whose parentRefs
// select it: a parentRef of kind Service (group "" or core), with no port
// and no sectionName, or with the port's number or name. Routes in the
// Service's namespace are producer routes (out); routes in another
// namespace are GAMMA consumer routes (consumer, by the route's
// namespace): they apply only to clients in their own namespace, for whom
// they replace the producer routes. Routes not Accepted for an
// unsupported filter are left out, as their status says.
func attachRoutes(ix *index) (out map[*portInfo][]*model.Route, consumer map[*portInfo]map[string][]*model.Route) {
	out = map[*portInfo][]*model.Route{}
	consumer = map[*portInfo]map[string][]*model.Route{}
	for _, key := range sortedKeys(ix.snap.Routes) {
		r := ix.snap.Routes[key]
		if hasUnsupportedFilters(r) {
			continue
		}
		for _, p := range r.Parents {
			if !p.IsService() {
				continue
			}
			ns := p.Namespace
			if ns == "" {
				ns = r.Namespace
			}
			si := ix.svcByKey[ns+"/"+p.Name]
			if si == nil {
				continue
			}
			for _, pi := range si.ports {
				if p.Port != 0 && p.Port != pi.port.Port || p.SectionName != "" && p.SectionName != pi.port.Name {
					continue
				}
				if ns == r.Namespace {
					if l := out[pi]; len(l) > 0 && l[len(l)-1] == r {
						continue // two parentRefs of r select the same port
					}
					out[pi] = append(out[pi], r)
					continue
				}
				if consumer[pi] == nil {
					consumer[pi] = map[string][]*model.Route{}
				}
				if l := consumer[pi][r.Namespace]; len(l) > 0 && l[len(l)-1] == r {
					continue
				}
				consumer[pi][r.Namespace] = append(consumer[pi][r.Namespace], r)
			}
		}
	}
	return out, consumer
}

func hasUnsupportedFilters(r *model.Route) bool {
	for _, rule := range r.Rules {
		if len(rule.UnsupportedFilters) > 0 {
			return true
		}
	}
	return false
}

// routeConfig is the RouteConfiguration of a Service port: one virtual
// host, the port's routes in Gateway API precedence order, or, when no
// route is attached, a default route sending everything to the port's own
// cluster. When routes are attached and none matches, Envoy (and the Weft
// proxy) answer 404, as Gateway API requires.
func (b *outboundBuilder) routeConfig(pi *portInfo, name string, attached []*model.Route) *routev3.RouteConfiguration {
	pol := b.ix.policyFor(pi)
	var routes []*routev3.Route
	if len(attached) == 0 {
		own := &model.RouteRule{Backends: []model.Backend{{
			Kind: "Service", Namespace: pi.svc.svc.Namespace, Name: pi.svc.svc.Name, Port: pi.port.Port, Weight: 1,
		}}}
		tmpl := b.ruleTemplate(pi, pol, pi.svc.svc.Namespace, own)
		routes = append(routes, withMatch(tmpl, "default", prefixMatch("/")))
	} else {
		routes = b.attachedRoutes(pi, pol, attached)
	}
	return &routev3.RouteConfiguration{
		Name: name,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    pi.listener,
			Domains: domains(pi),
			Routes:  routes,
		}},
	}
}

// routeEntry is one match of one rule of an attached route.
type routeEntry struct {
	r     *model.Route
	rule  int
	match int
	m     model.RouteMatch
}

func (b *outboundBuilder) attachedRoutes(pi *portInfo, pol effectivePolicy, attached []*model.Route) []*routev3.Route {
	var entries []routeEntry
	for _, r := range attached {
		for i := range r.Rules {
			matches := r.Rules[i].Matches
			if len(matches) == 0 {
				matches = []model.RouteMatch{{}} // no matches: match everything
			}
			for j, m := range matches {
				entries = append(entries, routeEntry{r, i, j, m})
			}
		}
	}
	sort.SliceStable(entries, func(i, j int) bool { return precedes(&entries[i], &entries[j]) })

	type ruleKey struct {
		r    *model.Route
		rule int
	}
	templates := map[ruleKey]*routev3.Route{}
	var out []*routev3.Route
	for _, e := range entries {
		k := ruleKey{e.r, e.rule}
		tmpl, ok := templates[k]
		if !ok {
			tmpl = b.ruleTemplate(pi, pol, e.r.Namespace, &e.r.Rules[e.rule])
			templates[k] = tmpl
		}
		name := string(e.r.Kind) + "/" + e.r.Namespace + "/" + e.r.Name +
			"/rule/" + strconv.Itoa(e.rule) + "/match/" + strconv.Itoa(e.match)
		var ms []*routev3.RouteMatch
		if e.r.Kind == model.GRPCRoute {
			ms = []*routev3.RouteMatch{grpcRouteMatch(e.m)}
		} else {
			ms = httpRouteMatches(e.m)
		}
		for _, m := range ms {
			out = append(out, withMatch(tmpl, name, m))
		}
	}
	return out
}

// withMatch copies a rule's template route with a name and a match. The
// copies share the template's action and header lists (read-only).
func withMatch(tmpl *routev3.Route, name string, m *routev3.RouteMatch) *routev3.Route {
	action := tmpl.Action
	// A prefix_rewrite (redirect or URL rewrite) replaces the matched
	// prefix. A Gateway API path prefix "/a" compiles into the exact path
	// "/a" and the prefix "/a/": the second must keep the "/" it matched
	// ("/a/x" with replacement "/b" becomes "/b/x", not "/bx").
	if m.GetPrefix() != "" {
		switch a := action.(type) {
		case *routev3.Route_Redirect:
			if pr, ok := a.Redirect.GetPathRewriteSpecifier().(*routev3.RedirectAction_PrefixRewrite); ok && !strings.HasSuffix(pr.PrefixRewrite, "/") {
				c := proto.Clone(a.Redirect).(*routev3.RedirectAction)
				c.PathRewriteSpecifier = &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: pr.PrefixRewrite + "/"}
				action = &routev3.Route_Redirect{Redirect: c}
			}
		case *routev3.Route_Route:
			if pr := a.Route.GetPrefixRewrite(); pr != "" && !strings.HasSuffix(pr, "/") {
				c := proto.Clone(a.Route).(*routev3.RouteAction)
				c.PrefixRewrite = pr + "/"
				action = &routev3.Route_Route{Route: c}
			}
		}
	}
	return &routev3.Route{
		Name:                    name,
		Match:                   m,
		Action:                  action,
		TypedPerFilterConfig:    tmpl.TypedPerFilterConfig,
		RequestHeadersToAdd:     tmpl.RequestHeadersToAdd,
		RequestHeadersToRemove:  tmpl.RequestHeadersToRemove,
		ResponseHeadersToAdd:    tmpl.ResponseHeadersToAdd,
		ResponseHeadersToRemove: tmpl.ResponseHeadersToRemove,
	}
}

// precedes orders route matches the Gateway API way. GRPCRoute matches
// come before HTTPRoute ones (they are paths of the form /service/method,
// more specific than what HTTPRoutes usually say). Then:
//
//	HTTPRoute: exact path; regular expression (longer first); path
//	prefix, longer first; a method match; more header matches; more
//	query parameter matches.
//	GRPCRoute: exact before regular expression; longer service; longer
//	method; more header matches.
//
// Ties: the oldest route, then "namespace/name", then rule order, then
// match order. Gateway API leaves regular expressions to implementations;
// Weft ranks them after exact paths and before prefixes, so a catch-all
// prefix never hides them.
func precedes(a, b *routeEntry) bool {
	ag, bg := a.r.Kind == model.GRPCRoute, b.r.Kind == model.GRPCRoute
	if ag != bg {
		return ag
	}
	var c int
	if ag {
		c = compareGRPC(a.m, b.m)
	} else {
		c = compareHTTP(a.m, b.m)
	}
	if c != 0 {
		return c < 0
	}
	if a.r != b.r {
		return olderFirst(&a.r.ObjectMeta, &b.r.ObjectMeta)
	}
	if a.rule != b.rule {
		return a.rule < b.rule
	}
	return a.match < b.match
}

// Path ranks, best first.
const (
	rankExact = iota
	rankRegex
	rankPrefix
)

func httpPathRank(m model.RouteMatch) (rank, length int) {
	p := m.Path
	if p == nil {
		return rankPrefix, 1
	}
	switch p.Type {
	case model.MatchExact:
		return rankExact, len(p.Value)
	case model.MatchRegularExpression:
		return rankRegex, len(p.Value)
	}
	return rankPrefix, len(normalizePrefix(p.Value))
}

// compareHTTP is negative when a has precedence over b.
func compareHTTP(a, b model.RouteMatch) int {
	ar, al := httpPathRank(a)
	br, bl := httpPathRank(b)
	switch {
	case ar != br:
		return ar - br
	case al != bl:
		return bl - al
	case (a.Method != "") != (b.Method != ""):
		if a.Method != "" {
			return -1
		}
		return 1
	}
	if ah, bh := len(uniqueHeaders(a.Headers, true)), len(uniqueHeaders(b.Headers, true)); ah != bh {
		return bh - ah
	}
	return len(uniqueHeaders(b.QueryParams, false)) - len(uniqueHeaders(a.QueryParams, false))
}

// compareGRPC is negative when a has precedence over b.
func compareGRPC(a, b model.RouteMatch) int {
	ar, br := a.GRPCType == model.MatchRegularExpression, b.GRPCType == model.MatchRegularExpression
	switch {
	case ar != br:
		if br {
			return -1
		}
		return 1
	case len(a.GRPCService) != len(b.GRPCService):
		return len(b.GRPCService) - len(a.GRPCService)
	case len(a.GRPCMethod) != len(b.GRPCMethod):
		return len(b.GRPCMethod) - len(a.GRPCMethod)
	}
	return len(uniqueHeaders(b.Headers, true)) - len(uniqueHeaders(a.Headers, true))
}

// domains are the names a client may use for the Service port, with and
// without the port, then the VIPs, then "*": the RouteConfiguration is
// chosen by destination (listener), so a Host header the list does not
// name (an external name, a trailing dot) still reaches the Service.
func domains(pi *portInfo) []string {
	svc := pi.svc.svc
	port := pi.port.Port
	names := []string{
		pi.svc.host,
		svc.Name + "." + svc.Namespace + ".svc",
		svc.Name + "." + svc.Namespace,
		svc.Name,
	}
	out := make([]string, 0, 2*len(names)+4)
	for _, n := range names {
		out = append(out, hostPort(n, port), n)
	}
	for _, ip := range vips(svc) {
		h := ip.String()
		if ip.Is6() {
			h = "[" + h + "]"
		}
		out = append(out, hostPort(ip.String(), port), h)
	}
	return append(out, "*")
}

// ruleTemplate builds what every Envoy route of one rule shares: the
// action (clusters, timeout, retries), the fault injection and the header
// changes. Route-level settings come from the TrafficPolicies of the
// parent Service port (the one the client called), with the rule's own
// Gateway API timeouts and retry taking precedence.
func (b *outboundBuilder) ruleTemplate(pi *portInfo, pol effectivePolicy, routeNS string, rule *model.RouteRule) *routev3.Route {
	tmpl := &routev3.Route{}
	tmpl.RequestHeadersToAdd, tmpl.RequestHeadersToRemove = headerOps(rule.RequestHeaders)
	tmpl.ResponseHeadersToAdd, tmpl.ResponseHeadersToRemove = headerOps(rule.ResponseHeaders)
	if rd := rule.Redirect; rd != nil {
		tmpl.Action = &routev3.Route_Redirect{Redirect: redirectAction(rd)}
		return tmpl
	}

	wcs := b.resolveBackends(pi, routeNS, rule.Backends)
	if !anyValid(wcs) {
		// No backend, only zero weights, or nothing that resolves:
		// Gateway API wants a 500.
		tmpl.Action = &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 500}}
		return tmpl
	}
	action := &routev3.RouteAction{}
	if len(wcs) == 1 && !wcs[0].hasHeaders() {
		action.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: wcs[0].name}
	} else {
		wc := &routev3.WeightedCluster{}
		for _, w := range wcs {
			cw := &routev3.WeightedCluster_ClusterWeight{Name: w.name, Weight: u32(w.weight)}
			cw.RequestHeadersToAdd, cw.RequestHeadersToRemove = headerOps(w.reqHeaders)
			cw.ResponseHeadersToAdd, cw.ResponseHeadersToRemove = headerOps(w.respHeaders)
			wc.Clusters = append(wc.Clusters, cw)
		}
		action.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}
	}
	for _, w := range wcs {
		if w.invalid != nil {
			b.addInvalid(w.name, w.invalid)
		}
	}
	if rw := rule.Rewrite; rw != nil {
		if rw.Hostname != "" {
			action.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: rw.Hostname}
		}
		switch {
		case rw.ReplaceFullPath != nil:
			action.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{Pattern: &matcherv3.RegexMatcher{Regex: FullPathPattern},
				Substitution: *rw.ReplaceFullPath}
		case rw.ReplacePrefixMatch != nil:
			action.PrefixRewrite = prefixReplacement(*rw.ReplacePrefixMatch)
		}
	}
	applyTimeoutsAndRetry(action, pol, rule)
	if action.RetryPolicy != nil {
		bud := budgetOf(pol.Retry)
		for _, w := range wcs {
			if w.invalid == nil {
				b.addBudget(w.name, bud)
			}
		}
	}
	tmpl.Action = &routev3.Route_Route{Route: action}
	if f := faultConfig(pol.Faults); f != nil {
		tmpl.TypedPerFilterConfig = map[string]*anypb.Any{faultFilterName: f}
	}
	return tmpl
}

// weightedCluster is one resolved backendRef.
type weightedCluster struct {
	name    string
	weight  uint32
	invalid *xdsv1.ClusterMetadata // set when the backend does not resolve
	// the backendRef's own header changes (filters), nil when none
	reqHeaders, respHeaders *model.HeaderModifier
}

func (w *weightedCluster) hasHeaders() bool { return w.reqHeaders != nil || w.respHeaders != nil }

func anyValid(wcs []weightedCluster) bool {
	for _, w := range wcs {
		if w.invalid == nil {
			return true
		}
	}
	return false
}

// resolveBackends turns backendRefs into clusters, in the order written,
// merging refs to the same cluster and dropping zero weights. A backendRef
// resolves when it is a Service in the route's namespace (ReferenceGrants
// are not read yet), or the parent Service itself, that has the port; an unset port means the parent's
// port number. One that does not resolve keeps its weight and points at
// an empty "invalid|..." cluster, so exactly its share of requests fails.
func (b *outboundBuilder) resolveBackends(parent *portInfo, routeNS string, refs []model.Backend) []weightedCluster {
	var out []weightedCluster
	for _, ref := range refs {
		if ref.Weight <= 0 {
			continue
		}
		ns := ref.Namespace
		if ns == "" {
			ns = routeNS
		}
		port := ref.Port
		if port == 0 {
			port = parent.port.Port
		}
		w := weightedCluster{weight: uint32(ref.Weight), reqHeaders: ref.RequestHeaders, respHeaders: ref.ResponseHeaders}
		var reason string
		switch si := b.lookupService(ns + "/" + ref.Name); {
		case !isServiceRef(ref.Group, ref.Kind):
			reason = "InvalidKind: " + ref.Kind + " is not a Service"
		case ns != routeNS && (ns != parent.svc.svc.Namespace || ref.Name != parent.svc.svc.Name):
			// A consumer route may send to its parent Service (that is
			// where the traffic was going); other Services in another
			// namespace need ReferenceGrants, which are not read yet.
			reason = "RefNotPermitted: Service " + ns + "/" + ref.Name + " is in another namespace than the route"
		case si == nil:
			reason = "BackendNotFound: Service " + ns + "/" + ref.Name + " not found"
		default:
			for _, p := range si.ports {
				if p.port.Port == port {
					w.name = p.cluster
				}
			}
			if w.name == "" {
				reason = "BackendNotFound: Service " + ns + "/" + ref.Name + " has no TCP port " + strconv.Itoa(int(port))
			}
		}
		if reason != "" {
			w.name = invalidClusterName(ref, ns, port, b.opts.ClusterDomain)
			w.invalid = &xdsv1.ClusterMetadata{Service: ns + "/" + ref.Name, Port: uint32(port), InvalidBackend: reason}
		}
		merged := false
		for i := range out {
			// Refs to the same cluster merge, unless one has header
			// changes of its own (they apply to its share only).
			if out[i].name == w.name && !out[i].hasHeaders() && !w.hasHeaders() {
				out[i].weight += w.weight
				merged = true
			}
		}
		if !merged {
			out = append(out, w)
		}
	}
	return out
}

// normalizePrefix drops the trailing "/" of a path prefix: Gateway API
// matches prefixes by whole path segments, so "/api/" and "/api" are the
// same match.
func normalizePrefix(p string) string {
	if p == "" {
		return "/"
	}
	if len(p) > 1 {
		p = strings.TrimRight(p, "/")
		if p == "" {
			p = "/"
		}
	}
	return p
}

// redirectCodes maps a RequestRedirect status to Envoy's enum.
var redirectCodes = map[int]routev3.RedirectAction_RedirectResponseCode{
	301: routev3.RedirectAction_MOVED_PERMANENTLY,
	302: routev3.RedirectAction_FOUND,
	303: routev3.RedirectAction_SEE_OTHER,
	307: routev3.RedirectAction_TEMPORARY_REDIRECT,
	308: routev3.RedirectAction_PERMANENT_REDIRECT,
}

// redirectAction converts a RequestRedirect filter. A prefix rewrite is
// adjusted per match by withMatch.
func redirectAction(rd *model.RouteRedirect) *routev3.RedirectAction {
	a := &routev3.RedirectAction{HostRedirect: rd.Hostname, PortRedirect: uint32(rd.Port), ResponseCode: redirectCodes[rd.StatusCode]}
	if rd.Scheme != "" {
		a.SchemeRewriteSpecifier = &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: rd.Scheme}
	}
	switch {
	case rd.ReplaceFullPath != nil:
		a.PathRewriteSpecifier = &routev3.RedirectAction_PathRedirect{PathRedirect: *rd.ReplaceFullPath}
	case rd.ReplacePrefixMatch != nil:
		a.PathRewriteSpecifier = &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: prefixReplacement(*rd.ReplacePrefixMatch)}
	}
	return a
}

// FullPathPattern is the regex_rewrite pattern of a URLRewrite
// ReplaceFullPath: the whole path, replaced by the substitution. The node
// proxy accepts only this pattern.
const FullPathPattern = "^/.*$"

// prefixReplacement is a ReplacePrefixMatch value as a prefix_rewrite: an
// empty one (allowed: "/foo/bar" with prefix "/foo" becomes "/bar") is "/",
// which also keeps the field set (proto3 drops an empty string).
func prefixReplacement(v string) string {
	if v == "" {
		return "/"
	}
	return v
}
