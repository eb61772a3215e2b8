package route

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// FaultFilterName keys the fault filter's per-route configuration in
// typed_per_filter_config.
const FaultFilterName = "envoy.filters.http.fault"

// DefaultTimeout is Envoy's route timeout when route.timeout is unset.
// translate always sets it (0s: no timeout).
const DefaultTimeout = 15 * time.Second

// Table is a compiled RouteConfiguration. It is immutable and safe for
// concurrent use; build a new one for each RDS update.
type Table struct {
	name   string
	vhosts []vhost
	byHost map[string]*vhost // lower-cased exact domains
	star   *vhost            // the virtual host with domain "*", nil if none
	only   *vhost            // set when every Host goes to one virtual host
}

type vhost struct {
	name   string
	routes []compiled
}

// Request is what routes match on. Strings are as on the wire: Path is
// the request path without the query (not decoded, not normalized),
// RawQuery the part after '?', Host the Host header or :authority.
type Request struct {
	Method   string
	Path     string
	RawQuery string
	Host     string
	// Header holds the request headers with canonical keys, as net/http
	// builds them (the Host header is in Host, not here). nil: no headers.
	Header http.Header
}

// FromHTTP returns the Request of an incoming *http.Request.
func FromHTTP(r *http.Request) Request {
	return Request{Method: r.Method, Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery, Host: r.Host, Header: r.Header}
}

// Backend is one upstream cluster of a route.
type Backend struct {
	Cluster string // "outbound|<port>||<host>" or "invalid|..." (answer 500)
	Weight  uint32 // relative weight; 1 for a single cluster
	// RequestHeaders and ResponseHeaders, when the backend has header
	// changes of its own (a backendRef filter), are the route's changes
	// followed by the backend's; see Route.RequestMods.
	RequestHeaders, ResponseHeaders HeaderMods
	ownMods                         bool
}

// Route is what a matched request gets. Routes are shared by all
// requests: read-only.
type Route struct {
	// Name is translate's "<Kind>/<ns>/<name>/rule/<i>/match/<j>", or
	// "default" for a port with no route attached. One Gateway API match
	// may compile into several Envoy routes of the same name (a path
	// prefix is an exact path plus a "/"-ended prefix).
	Name string
	// Backends are the weighted clusters in configured order; empty when
	// DirectStatus is set. Use Pick to choose one.
	Backends []Backend
	// DirectStatus, when non-zero, is the status to answer with instead of
	// forwarding (translate: 500 when no backend of the rule resolves).
	DirectStatus int
	// Redirect, when set, is answered instead of forwarding (an HTTPRoute
	// RequestRedirect filter); see Location.
	Redirect *Redirect
	// Rewrite, when set, changes the forwarded request (a URLRewrite
	// filter): its Host (also in RequestHeaders) and path; see
	// RewritePath.
	Rewrite *Rewrite
	// Timeout bounds the whole request including retries; 0 means none.
	// Unset in the config means DefaultTimeout, as in Envoy.
	Timeout time.Duration
	// IdleTimeout is the stream idle timeout; 0 means the listener's.
	IdleTimeout time.Duration
	// RetryPolicy is kept raw for retry.NewPolicy (it holds the per-try
	// timeout); nil: no retries.
	RetryPolicy *routev3.RetryPolicy
	// RequestHeaders and ResponseHeaders are the header changes to apply
	// before forwarding and before answering.
	RequestHeaders, ResponseHeaders HeaderMods
	// Fault is the fault filter's per-route config, nil if none.
	Fault *faultv3.HTTPFault

	cum   []uint64 // cumulative weights of Backends
	total uint64
	// The path match, for a redirect's prefix rewrite: the matched prefix,
	// or the whole path for an exact match.
	matchKind  pathKind
	matchValue string
}

// Redirect is an Envoy RedirectAction: empty fields keep the request's
// value.
type Redirect struct {
	Scheme string // "http" or "https"; empty: the request's
	Host   string // empty: the request's host, without its port
	Port   uint32 // 0: the request's port, or none when Scheme is set
	// Path replaces the whole path; PrefixRewrite replaces the prefix the
	// route matched (at most one is set).
	Path, PrefixRewrite string
	Status              int // 301, 302, 303, 307 or 308
}

// Rewrite is a RouteAction's URL rewrite: empty fields keep the request's.
type Rewrite struct {
	Host string
	// Path replaces the whole path; PrefixRewrite the matched prefix.
	Path, PrefixRewrite string
}

// RewritePath is the path the request req is forwarded with, and whether
// it changed.
func (r *Route) RewritePath(req *Request) (string, bool) {
	if r == nil || r.Rewrite == nil || (r.Rewrite.Path == "" && r.Rewrite.PrefixRewrite == "") {
		return req.Path, false
	}
	return r.newPath(req.Path, r.Rewrite.Path, r.Rewrite.PrefixRewrite), true
}

// newPath replaces path whole (full) or the prefix the route matched
// (prefix); with neither it is unchanged.
func (r *Route) newPath(path, full, prefix string) string {
	switch {
	case full != "":
		return full
	case prefix != "" && r.matchKind == pathExact:
		return prefix
	case prefix != "" && (r.matchKind == pathPrefix || r.matchKind == pathSeparated) && len(path) >= len(r.matchValue):
		return prefix + path[len(r.matchValue):]
	}
	return path
}

// Location is the Location header of the redirect of a request r that
// arrived as scheme (http for the plaintext an application sends): the
// Gateway API rules. The query is kept.
func (r *Route) Location(req *Request, scheme string) string {
	rd := r.Redirect
	host, port := splitHostPort(req.Host)
	if rd.Host != "" {
		host = rd.Host
	}
	switch {
	case rd.Port != 0:
		port = strconv.FormatUint(uint64(rd.Port), 10)
	case rd.Scheme != "":
		port = "" // the new scheme's well-known port
	}
	if rd.Scheme != "" {
		scheme = rd.Scheme
	}
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	path := r.newPath(req.Path, rd.Path, rd.PrefixRewrite)
	var b strings.Builder
	b.WriteString(scheme)
	b.WriteString("://")
	if strings.IndexByte(host, ':') >= 0 { // IPv6
		b.WriteString("[" + host + "]")
	} else {
		b.WriteString(host)
	}
	if port != "" {
		b.WriteString(":" + port)
	}
	b.WriteString(path)
	if req.RawQuery != "" {
		b.WriteString("?" + req.RawQuery)
	}
	return b.String()
}

// splitHostPort splits a Host header into host and port ("" if none).
func splitHostPort(h string) (host, port string) {
	if strings.HasPrefix(h, "[") {
		if i := strings.Index(h, "]"); i > 0 {
			host, rest := h[1:i], h[i+1:]
			return host, strings.TrimPrefix(rest, ":")
		}
		return h, ""
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.IndexByte(h, ':') == i {
		return h[:i], h[i+1:]
	}
	return h, ""
}

// Pick chooses a backend with probability proportional to its weight:
// the backend whose cumulative weight range holds rnd % total. A uniform
// rnd (rand.Uint64) gives the configured split; rnd 0, 1, 2, ... gives it
// exactly over any multiple of the total weight. The zero Backend when
// there is none (DirectStatus). No allocation.
func (r *Route) Pick(rnd uint64) Backend {
	if b := r.PickBackend(rnd); b != nil {
		return *b
	}
	return Backend{}
}

// PickBackend is Pick returning the chosen backend itself (nil when there
// is none). No allocation.
func (r *Route) PickBackend(rnd uint64) *Backend {
	switch len(r.Backends) {
	case 0:
		return nil
	case 1:
		return &r.Backends[0]
	}
	x := rnd % r.total
	if len(r.cum) <= 8 {
		for i, c := range r.cum {
			if x < c {
				return &r.Backends[i]
			}
		}
	}
	lo, hi := 0, len(r.cum)-1
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if x < r.cum[m] {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return &r.Backends[lo]
}

// RequestMods are the request header changes for a request routed by r
// to b (b may be nil): the backend's merged ones when it has its own,
// else the route's; nil when there are none.
func (r *Route) RequestMods(b *Backend) *HeaderMods {
	switch {
	case r == nil:
		return nil
	case b != nil && b.ownMods:
		return &b.RequestHeaders
	case r == nil || r.RequestHeaders.Empty():
		return nil
	}
	return &r.RequestHeaders
}

// ResponseMods is RequestMods for the response.
func (r *Route) ResponseMods(b *Backend) *HeaderMods {
	switch {
	case r == nil: // an interim (1xx) response, or no route
		return nil
	case b != nil && b.ownMods:
		return &b.ResponseHeaders
	case r == nil || r.ResponseHeaders.Empty():
		return nil
	}
	return &r.ResponseHeaders
}

// Match returns the first route of the Host's virtual host that matches
// r, in configured order. false: no virtual host or no route matches, and
// the proxy answers 404. It allocates only for a header present several
// times, escaped query parameters, a ":path" matcher on a request with a
// query, or a Host with upper-case letters in a multi-host table.
func (t *Table) Match(r *Request) (*Route, bool) {
	vh := t.only
	if vh == nil {
		vh = t.lookupHost(r.Host)
		if vh == nil {
			return nil, false
		}
	}
	for i := range vh.routes {
		if c := &vh.routes[i]; c.matches(r) {
			return c.route, true
		}
	}
	return nil, false
}

// Name is the RouteConfiguration's name.
func (t *Table) Name() string { return t.name }

func (t *Table) lookupHost(host string) *vhost {
	if vh, ok := t.byHost[host]; ok {
		return vh
	}
	if hasUpper(host) {
		if vh, ok := t.byHost[strings.ToLower(host)]; ok {
			return vh
		}
	}
	return t.star
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// Compile compiles a RouteConfiguration as translate emits it. Anything
// it cannot honour (a field translate never sets, a regular expression Go
// cannot compile, a wildcard domain other than "*") is an error naming
// the virtual host and route, never silently ignored.
func Compile(rc *routev3.RouteConfiguration) (*Table, error) {
	if rc == nil {
		return nil, fmt.Errorf("route configuration: nil")
	}
	if err := onlyFields(rc, "name", "virtual_hosts", "validate_clusters"); err != nil {
		return nil, fmt.Errorf("route configuration %q: %w", rc.GetName(), err)
	}
	t := &Table{name: rc.GetName(), byHost: map[string]*vhost{}, vhosts: make([]vhost, len(rc.GetVirtualHosts()))}
	for i, vc := range rc.GetVirtualHosts() {
		vh := &t.vhosts[i]
		vh.name = vc.GetName()
		if err := compileVhost(t, vh, vc); err != nil {
			return nil, fmt.Errorf("route configuration %q: virtual host %q: %w", rc.GetName(), vc.GetName(), err)
		}
	}
	if len(t.vhosts) == 1 && t.star == &t.vhosts[0] {
		t.only = t.star
	}
	return t, nil
}

func compileVhost(t *Table, vh *vhost, vc *routev3.VirtualHost) error {
	if err := onlyFields(vc, "name", "domains", "routes"); err != nil {
		return err
	}
	for _, d := range vc.GetDomains() {
		switch {
		case d == "*":
			if t.star != nil {
				return fmt.Errorf("domain \"*\" also in virtual host %q", t.star.name)
			}
			t.star = vh
		case strings.Contains(d, "*"):
			return fmt.Errorf("domain %q: wildcard domains other than \"*\" are not supported", d)
		default:
			d = strings.ToLower(d)
			if o, dup := t.byHost[d]; dup {
				return fmt.Errorf("domain %q also in virtual host %q", d, o.name)
			}
			t.byHost[d] = vh
		}
	}
	vh.routes = make([]compiled, len(vc.GetRoutes()))
	for i, rt := range vc.GetRoutes() {
		if err := compileRoute(&vh.routes[i], rt); err != nil {
			return fmt.Errorf("route %d %q: %w", i, rt.GetName(), err)
		}
	}
	return nil
}

func compileRoute(c *compiled, rt *routev3.Route) error {
	if err := onlyFields(rt, "name", "match", "route", "direct_response", "redirect", "typed_per_filter_config",
		"request_headers_to_add", "request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove",
		"metadata"); err != nil {
		return err
	}
	r := &Route{Name: rt.GetName()}
	if err := compileMatch(c, rt.GetMatch()); err != nil {
		return err
	}
	r.matchKind, r.matchValue = c.path.kind, c.path.value
	switch a := rt.GetAction().(type) {
	case *routev3.Route_Route:
		if err := compileAction(r, a.Route); err != nil {
			return err
		}
	case *routev3.Route_DirectResponse:
		if err := onlyFields(a.DirectResponse, "status"); err != nil {
			return fmt.Errorf("direct_response: %w", err)
		}
		s := a.DirectResponse.GetStatus()
		if s < 200 || s > 599 {
			return fmt.Errorf("direct_response: status %d outside 200-599", s)
		}
		r.DirectStatus = int(s)
	case *routev3.Route_Redirect:
		rd, err := compileRedirect(a.Redirect)
		if err != nil {
			return fmt.Errorf("redirect: %w", err)
		}
		r.Redirect = rd
	default:
		return fmt.Errorf("no route, direct_response or redirect action")
	}
	var err error
	if r.RequestHeaders, err = compileHeaderMods(rt.GetRequestHeadersToAdd(), rt.GetRequestHeadersToRemove()); err != nil {
		return fmt.Errorf("request headers: %w", err)
	}
	if r.Rewrite != nil && r.Rewrite.Host != "" {
		r.RequestHeaders.Ops = append(r.RequestHeaders.Ops, HeaderOp{Name: "Host", Value: r.Rewrite.Host,
			Action: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD})
	}
	if r.ResponseHeaders, err = compileHeaderMods(rt.GetResponseHeadersToAdd(), rt.GetResponseHeadersToRemove()); err != nil {
		return fmt.Errorf("response headers: %w", err)
	}
	// A backend's own changes apply after the route's (the more specific
	// one wins a conflicting set).
	for i := range r.Backends {
		b := &r.Backends[i]
		if b.ownMods {
			b.RequestHeaders = mergeMods(r.RequestHeaders, b.RequestHeaders)
			b.ResponseHeaders = mergeMods(r.ResponseHeaders, b.ResponseHeaders)
		}
	}
	for name, cfg := range rt.GetTypedPerFilterConfig() {
		if name != FaultFilterName {
			return fmt.Errorf("typed_per_filter_config %q: only %q is supported", name, FaultFilterName)
		}
		cfgAny := cfg
		if fc := new(routev3.FilterConfig); cfg.MessageIs(fc) {
			if err := cfg.UnmarshalTo(fc); err != nil {
				return fmt.Errorf("typed_per_filter_config %q: %w", name, err)
			}
			cfgAny = fc.GetConfig()
		}
		f := new(faultv3.HTTPFault)
		if err := cfgAny.UnmarshalTo(f); err != nil {
			return fmt.Errorf("typed_per_filter_config %q: %w", name, err)
		}
		r.Fault = f
	}
	c.route = r
	return nil
}

func compileAction(r *Route, a *routev3.RouteAction) error {
	if err := onlyFields(a, "cluster", "weighted_clusters", "timeout", "idle_timeout", "retry_policy", "max_stream_duration",
		"prefix_rewrite", "regex_rewrite", "host_rewrite_literal"); err != nil {
		return fmt.Errorf("route action: %w", err)
	}
	if err := compileRewrite(r, a); err != nil {
		return err
	}
	switch cs := a.GetClusterSpecifier().(type) {
	case *routev3.RouteAction_Cluster:
		if cs.Cluster == "" {
			return fmt.Errorf("route action: empty cluster")
		}
		r.Backends = []Backend{{Cluster: cs.Cluster, Weight: 1}}
	case *routev3.RouteAction_WeightedClusters:
		if err := onlyFields(cs.WeightedClusters, "clusters"); err != nil {
			return fmt.Errorf("weighted_clusters: %w", err)
		}
		for _, cw := range cs.WeightedClusters.GetClusters() {
			if err := onlyFields(cw, "name", "weight", "request_headers_to_add", "request_headers_to_remove",
				"response_headers_to_add", "response_headers_to_remove"); err != nil {
				return fmt.Errorf("weighted_clusters %q: %w", cw.GetName(), err)
			}
			if cw.GetName() == "" {
				return fmt.Errorf("weighted_clusters: empty cluster name")
			}
			b := Backend{Cluster: cw.GetName(), Weight: cw.GetWeight().GetValue()}
			var err error
			if b.RequestHeaders, err = compileHeaderMods(cw.GetRequestHeadersToAdd(), cw.GetRequestHeadersToRemove()); err != nil {
				return fmt.Errorf("weighted_clusters %q request headers: %w", cw.GetName(), err)
			}
			if b.ResponseHeaders, err = compileHeaderMods(cw.GetResponseHeadersToAdd(), cw.GetResponseHeadersToRemove()); err != nil {
				return fmt.Errorf("weighted_clusters %q response headers: %w", cw.GetName(), err)
			}
			b.ownMods = !b.RequestHeaders.Empty() || !b.ResponseHeaders.Empty()
			r.Backends = append(r.Backends, b)
		}
	default:
		return fmt.Errorf("route action: no cluster or weighted_clusters")
	}
	for _, b := range r.Backends {
		r.total += uint64(b.Weight)
		r.cum = append(r.cum, r.total)
	}
	if r.total == 0 {
		return fmt.Errorf("weighted_clusters: total weight is 0")
	}
	r.Timeout = DefaultTimeout
	if a.GetTimeout() != nil {
		r.Timeout = a.GetTimeout().AsDuration()
	}
	r.IdleTimeout = a.GetIdleTimeout().AsDuration()
	if r.Timeout < 0 || r.IdleTimeout < 0 {
		return fmt.Errorf("route action: negative timeout")
	}
	r.RetryPolicy = a.GetRetryPolicy()
	return nil
}

// HeaderMods are the header changes of a route, in Envoy's order:
// Remove first, then Ops in order.
type HeaderMods struct {
	Ops    []HeaderOp
	Remove []string // canonical header names
}

// HeaderOp adds or sets one header.
type HeaderOp struct {
	Name   string // canonical header name
	Value  string // literal: Envoy's %VAR% substitution is not done
	Action corev3.HeaderValueOption_HeaderAppendAction
	// KeepEmpty adds the header even when Value is empty (Envoy skips it).
	KeepEmpty bool
}

// Empty reports whether m changes nothing.
func (m *HeaderMods) Empty() bool { return len(m.Ops) == 0 && len(m.Remove) == 0 }

// Apply changes h (canonical keys, as net/http builds them).
func (m *HeaderMods) Apply(h http.Header) {
	for _, k := range m.Remove {
		delete(h, k)
	}
	for _, op := range m.Ops {
		if op.Value == "" && !op.KeepEmpty {
			continue
		}
		_, exists := h[op.Name]
		switch op.Action {
		case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
			h[op.Name] = append(h[op.Name], op.Value)
		case corev3.HeaderValueOption_ADD_IF_ABSENT:
			if !exists {
				h[op.Name] = []string{op.Value}
			}
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
			h[op.Name] = []string{op.Value}
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
			if exists {
				h[op.Name] = []string{op.Value}
			}
		}
	}
}

func compileHeaderMods(add []*corev3.HeaderValueOption, remove []string) (HeaderMods, error) {
	var m HeaderMods
	for _, name := range remove {
		if err := modifiable(name); err != nil {
			return m, err
		}
		m.Remove = append(m.Remove, http.CanonicalHeaderKey(name))
	}
	for _, o := range add {
		if err := onlyFields(o, "header", "append_action", "keep_empty_value", "append"); err != nil {
			return m, err
		}
		hv := o.GetHeader()
		if err := onlyFields(hv, "key", "value", "raw_value"); err != nil {
			return m, err
		}
		if err := modifiable(hv.GetKey()); err != nil {
			return m, err
		}
		op := HeaderOp{Name: http.CanonicalHeaderKey(hv.GetKey()), Value: hv.GetValue(), Action: o.GetAppendAction(), KeepEmpty: o.GetKeepEmptyValue()}
		if op.Value == "" && len(hv.GetRawValue()) > 0 {
			op.Value = string(hv.GetRawValue())
		}
		if o.GetAppend() != nil { // deprecated bool form
			if o.GetAppendAction() != corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD {
				return m, fmt.Errorf("header %q: both append and append_action", hv.GetKey())
			}
			if !o.GetAppend().GetValue() {
				op.Action = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
			}
		}
		if _, ok := corev3.HeaderValueOption_HeaderAppendAction_name[int32(op.Action)]; !ok {
			return m, fmt.Errorf("header %q: unknown append_action %d", hv.GetKey(), op.Action)
		}
		m.Ops = append(m.Ops, op)
	}
	return m, nil
}

func modifiable(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty header name")
	case strings.HasPrefix(name, ":") || strings.EqualFold(name, "host"):
		return fmt.Errorf("header %q: changing pseudo-headers or Host is not supported", name)
	}
	return nil
}

// onlyFields fails when m has a populated field not in allowed: a
// setting translate never emits and this package would otherwise ignore.
func onlyFields(m proto.Message, allowed ...string) error {
	var bad []string
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if !slices.Contains(allowed, string(fd.Name())) {
			bad = append(bad, string(fd.Name()))
		}
		return true
	})
	if len(bad) > 0 {
		return fmt.Errorf("unsupported %s field(s): %s", m.ProtoReflect().Descriptor().Name(), strings.Join(bad, ", "))
	}
	return nil
}

// Routes returns every route of the table, in configured order.
func (t *Table) Routes() []*Route {
	var out []*Route
	for i := range t.vhosts {
		for j := range t.vhosts[i].routes {
			out = append(out, t.vhosts[i].routes[j].route)
		}
	}
	return out
}

// NeedsHeaders reports whether some route matches on a header other than
// the pseudo-headers, so Request.Header must be filled for Match; when
// false the caller may leave it nil and save building it.
func (t *Table) NeedsHeaders() bool {
	for i := range t.vhosts {
		for j := range t.vhosts[i].routes {
			for _, h := range t.vhosts[i].routes[j].headers {
				if h.pseudo == pseudoNone {
					return true
				}
			}
		}
	}
	return false
}

var redirectStatus = map[routev3.RedirectAction_RedirectResponseCode]int{
	routev3.RedirectAction_MOVED_PERMANENTLY:  301,
	routev3.RedirectAction_FOUND:              302,
	routev3.RedirectAction_SEE_OTHER:          303,
	routev3.RedirectAction_TEMPORARY_REDIRECT: 307,
	routev3.RedirectAction_PERMANENT_REDIRECT: 308,
}

// fullPathPattern is the only regex_rewrite pattern accepted: the whole
// path, as translate writes a URLRewrite ReplaceFullPath.
const fullPathPattern = "^/.*$"

func compileRewrite(r *Route, a *routev3.RouteAction) error {
	host, prefix, re := a.GetHostRewriteLiteral(), a.GetPrefixRewrite(), a.GetRegexRewrite()
	if host == "" && prefix == "" && re == nil {
		return nil
	}
	rw := &Rewrite{Host: host, PrefixRewrite: prefix}
	if re != nil {
		if err := onlyFields(re, "pattern", "substitution"); err != nil {
			return fmt.Errorf("regex_rewrite: %w", err)
		}
		if re.GetPattern().GetRegex() != fullPathPattern || prefix != "" {
			return fmt.Errorf("regex_rewrite: only the pattern %q (replace the whole path), without prefix_rewrite", fullPathPattern)
		}
		rw.Path = re.GetSubstitution()
	}
	switch {
	case strings.ContainsAny(host, "/?#@ \t\r\n"):
		return fmt.Errorf("host_rewrite_literal %q", host)
	case (rw.Path != "" && rw.Path[0] != '/') || (prefix != "" && prefix[0] != '/') || strings.ContainsAny(rw.Path+prefix, "?# \t\r\n"):
		return fmt.Errorf("rewrite paths must start with / and hold no ?, # or whitespace")
	case re != nil && rw.Path == "":
		return fmt.Errorf("regex_rewrite: empty substitution")
	}
	r.Rewrite = rw
	return nil
}

func compileRedirect(a *routev3.RedirectAction) (*Redirect, error) {
	if err := onlyFields(a, "scheme_redirect", "host_redirect", "port_redirect", "path_redirect", "prefix_rewrite", "response_code"); err != nil {
		return nil, err
	}
	rd := &Redirect{Scheme: a.GetSchemeRedirect(), Host: a.GetHostRedirect(), Port: a.GetPortRedirect(),
		Path: a.GetPathRedirect(), PrefixRewrite: a.GetPrefixRewrite(), Status: redirectStatus[a.GetResponseCode()]}
	switch {
	case rd.Status == 0:
		return nil, fmt.Errorf("response_code %v not supported", a.GetResponseCode())
	case rd.Scheme != "" && rd.Scheme != "http" && rd.Scheme != "https":
		return nil, fmt.Errorf("scheme_redirect %q: want http or https", rd.Scheme)
	case rd.Port > 65535:
		return nil, fmt.Errorf("port_redirect %d", rd.Port)
	case strings.ContainsAny(rd.Host, "/?#@ \r\n") || strings.ContainsAny(rd.Path+rd.PrefixRewrite, "?# \r\n"):
		return nil, fmt.Errorf("host_redirect %q or path %q has characters a Location cannot carry", rd.Host, rd.Path+rd.PrefixRewrite)
	case (rd.Path != "" && rd.Path[0] != '/') || (rd.PrefixRewrite != "" && rd.PrefixRewrite[0] != '/'):
		return nil, fmt.Errorf("redirect paths must start with /")
	}
	return rd, nil
}

// mergeMods is first's changes then second's, as one HeaderMods (Apply
// removes, then runs the ops): first's ops on a header that second sets
// (overwrites) or removes are dropped, so second wins.
func mergeMods(first, second HeaderMods) HeaderMods {
	drop := map[string]bool{}
	for _, name := range second.Remove {
		drop[name] = true
	}
	for _, op := range second.Ops {
		if op.Action == corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD || op.Action == corev3.HeaderValueOption_OVERWRITE_IF_EXISTS {
			drop[op.Name] = true
		}
	}
	out := HeaderMods{Remove: append(slices.Clone(first.Remove), second.Remove...)}
	for _, op := range first.Ops {
		if !drop[op.Name] {
			out.Ops = append(out.Ops, op)
		}
	}
	out.Ops = append(out.Ops, second.Ops...)
	return out
}
