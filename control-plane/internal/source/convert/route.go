package convert

import (
	"slices"
	"strings"

	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/weftmesh/weft/control-plane/internal/model"
)

// Gateway API defaults and limits the schema applies.
const (
	gatewayGroup     = "gateway.networking.k8s.io"
	defaultBackend   = "Service"
	maxBackendWeight = 1000000
)

var httpMethods = []string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}

// HTTPRoute converts an HTTPRoute, applying the schema defaults: parentRef
// group gateway.networking.k8s.io and kind Gateway (so a Service parent
// must say group ""), parentRef and backendRef namespaces default to the
// route's, backendRef kind Service and weight 1, a route without rules
// gets one rule and a rule without matches one match, and a match without
// a path matches the path prefix "/". Filters other than the header
// modifiers, and filters on a single backendRef, are listed in
// UnsupportedFilters.
func HTTPRoute(r *gwapiv1.HTTPRoute) (*model.Route, error) {
	c := newChecker("HTTPRoute", r.Namespace, r.Name)
	out := &model.Route{
		ObjectMeta: objectMeta(&r.ObjectMeta),
		Kind:       model.HTTPRoute,
		Parents:    parents(c, r.Namespace, r.Spec.ParentRefs),
		Hostnames:  hostnames(r.Spec.Hostnames),
	}
	rules := r.Spec.Rules
	if len(rules) == 0 {
		rules = []gwapiv1.HTTPRouteRule{{}}
	}
	for i, rule := range rules {
		path := idx("spec.rules", i)
		mr := model.RouteRule{Name: deref(rule.Name)}
		matches := rule.Matches
		if len(matches) == 0 {
			matches = []gwapiv1.HTTPRouteMatch{{}}
		}
		for j, m := range matches {
			mr.Matches = append(mr.Matches, httpMatch(c, idx(path+".matches", j), m))
		}
		for j, f := range rule.Filters {
			fpath := idx(path+".filters", j)
			switch f.Type {
			case gwapiv1.HTTPRouteFilterRequestHeaderModifier:
				headerFilter(c, fpath, "requestHeaderModifier", f.RequestHeaderModifier, &mr.RequestHeaders)
			case gwapiv1.HTTPRouteFilterResponseHeaderModifier:
				headerFilter(c, fpath, "responseHeaderModifier", f.ResponseHeaderModifier, &mr.ResponseHeaders)
			case gwapiv1.HTTPRouteFilterRequestRedirect:
				redirectFilter(c, fpath, f.RequestRedirect, mr.Matches, &mr.Redirect)
			case gwapiv1.HTTPRouteFilterURLRewrite:
				rewriteFilter(c, fpath, f.URLRewrite, mr.Matches, &mr.Rewrite)
			case "":
				c.addf(fpath+".type", "required")
			default:
				mr.UnsupportedFilters = append(mr.UnsupportedFilters, string(f.Type))
			}
		}
		for j, b := range rule.BackendRefs {
			bpath := idx(path+".backendRefs", j)
			mb := backend(c, bpath, r.Namespace, b.BackendRef)
			for k, f := range b.Filters {
				fpath := idx(bpath+".filters", k)
				switch f.Type {
				case gwapiv1.HTTPRouteFilterRequestHeaderModifier:
					headerFilter(c, fpath, "requestHeaderModifier", f.RequestHeaderModifier, &mb.RequestHeaders)
				case gwapiv1.HTTPRouteFilterResponseHeaderModifier:
					headerFilter(c, fpath, "responseHeaderModifier", f.ResponseHeaderModifier, &mb.ResponseHeaders)
				default:
					mr.UnsupportedFilters = append(mr.UnsupportedFilters, "backendRef "+string(f.Type))
				}
			}
			mr.Backends = append(mr.Backends, mb)
		}
		if t := rule.Timeouts; t != nil {
			mr.Timeouts = &model.RouteTimeouts{
				Request:        c.duration(path+".timeouts.request", (*string)(t.Request)),
				BackendRequest: c.duration(path+".timeouts.backendRequest", (*string)(t.BackendRequest)),
			}
			if mr.Timeouts.Request != 0 && mr.Timeouts.BackendRequest > mr.Timeouts.Request {
				c.addf(path+".timeouts", "backendRequest timeout cannot be longer than request timeout")
			}
		}
		if rt := rule.Retry; rt != nil {
			mr.Retry = &model.RouteRetry{Backoff: c.duration(path+".retry.backoff", (*string)(rt.Backoff))}
			if rt.Attempts != nil {
				c.intRange(path+".retry.attempts", int64(*rt.Attempts), 1, 1<<31-1)
				mr.Retry.Attempts = int32(*rt.Attempts)
			}
			for k, code := range rt.Codes {
				c.intRange(idx(path+".retry.codes", k), int64(code), 400, 599)
				mr.Retry.Codes = append(mr.Retry.Codes, int32(code))
			}
		}
		out.Rules = append(out.Rules, mr)
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	return out, nil
}

func httpMatch(c *checker, path string, m gwapiv1.HTTPRouteMatch) model.RouteMatch {
	out := model.RouteMatch{Path: &model.StringMatch{Type: model.MatchPathPrefix, Value: "/"}}
	if p := m.Path; p != nil {
		if p.Type != nil {
			out.Path.Type = model.MatchType(*p.Type)
		}
		if p.Value != nil {
			out.Path.Value = *p.Value
		}
		switch out.Path.Type {
		case model.MatchExact, model.MatchPathPrefix:
			if !strings.HasPrefix(out.Path.Value, "/") {
				c.addf(path+".path.value", "%q must be an absolute path and start with '/' when type is %s", out.Path.Value, out.Path.Type)
			}
		case model.MatchRegularExpression:
		default:
			c.addf(path+".path.type", "%q is not one of Exact, PathPrefix, RegularExpression", out.Path.Type)
		}
	}
	for i, h := range m.Headers {
		out.Headers = append(out.Headers, headerMatch(c, idx(path+".headers", i), string(h.Name), (*string)(h.Type), h.Value))
	}
	for i, q := range m.QueryParams {
		out.QueryParams = append(out.QueryParams, headerMatch(c, idx(path+".queryParams", i), string(q.Name), (*string)(q.Type), q.Value))
	}
	if m.Method != nil {
		out.Method = string(*m.Method)
		if !slices.Contains(httpMethods, out.Method) {
			c.addf(path+".method", "%q is not one of %s", out.Method, strings.Join(httpMethods, ", "))
		}
	}
	return out
}

// headerMatch converts a header, query parameter or gRPC header match; the
// type defaults to Exact.
func headerMatch(c *checker, path, name string, typ *string, value string) model.HeaderMatch {
	out := model.HeaderMatch{Name: name, Type: model.MatchExact, Value: value}
	if typ != nil {
		out.Type = model.MatchType(*typ)
	}
	if out.Type != model.MatchExact && out.Type != model.MatchRegularExpression {
		c.addf(path+".type", "%q is not one of Exact, RegularExpression", out.Type)
	}
	c.required(path+".name", name)
	return out
}

// headerFilter fills *dst from a header modifier filter; each kind may
// appear once per rule.
func headerFilter(c *checker, path, field string, f *gwapiv1.HTTPHeaderFilter, dst **model.HeaderModifier) {
	if f == nil {
		c.addf(path+"."+field, "required when type is %s", strings.ToUpper(field[:1])+field[1:])
		return
	}
	if *dst != nil {
		c.addf(path+".type", "%s filter cannot be repeated", strings.ToUpper(field[:1])+field[1:])
		return
	}
	hm := &model.HeaderModifier{Remove: slices.Clone(f.Remove)}
	for i, h := range f.Set {
		c.required(idx(path+"."+field+".set", i)+".name", string(h.Name))
		hm.Set = append(hm.Set, model.Header{Name: string(h.Name), Value: h.Value})
	}
	for i, h := range f.Add {
		c.required(idx(path+"."+field+".add", i)+".name", string(h.Name))
		hm.Add = append(hm.Add, model.Header{Name: string(h.Name), Value: h.Value})
	}
	*dst = hm
}

// redirectFilter converts a RequestRedirect filter, checking what the
// schema's CEL rules check too (the directory source has no apiserver).
func redirectFilter(c *checker, path string, f *gwapiv1.HTTPRequestRedirectFilter, matches []model.RouteMatch, dst **model.RouteRedirect) {
	if f == nil {
		c.addf(path+".requestRedirect", "required when type is RequestRedirect")
		return
	}
	if *dst != nil {
		c.addf(path+".type", "RequestRedirect filter cannot be repeated")
		return
	}
	rd := &model.RouteRedirect{StatusCode: 302}
	if f.Scheme != nil {
		rd.Scheme = *f.Scheme
		if rd.Scheme != "http" && rd.Scheme != "https" {
			c.addf(path+".requestRedirect.scheme", "%q is not one of http, https", rd.Scheme)
		}
	}
	if f.Hostname != nil {
		rd.Hostname = string(*f.Hostname)
	}
	if f.Port != nil {
		c.intRange(path+".requestRedirect.port", int64(*f.Port), 1, 65535)
		rd.Port = int32(*f.Port)
	}
	if f.StatusCode != nil {
		rd.StatusCode = *f.StatusCode
		switch rd.StatusCode {
		case 301, 302, 303, 307, 308:
		default:
			c.addf(path+".requestRedirect.statusCode", "%d is not one of 301, 302, 303, 307, 308", rd.StatusCode)
		}
	}
	rd.ReplaceFullPath, rd.ReplacePrefixMatch = pathModifier(c, path+".requestRedirect.path", f.Path, matches)
	*dst = rd
}

// rewriteFilter converts a URLRewrite filter.
func rewriteFilter(c *checker, path string, f *gwapiv1.HTTPURLRewriteFilter, matches []model.RouteMatch, dst **model.RouteRewrite) {
	if f == nil {
		c.addf(path+".urlRewrite", "required when type is URLRewrite")
		return
	}
	if *dst != nil {
		c.addf(path+".type", "URLRewrite filter cannot be repeated")
		return
	}
	rw := &model.RouteRewrite{}
	if f.Hostname != nil {
		rw.Hostname = string(*f.Hostname)
	}
	rw.ReplaceFullPath, rw.ReplacePrefixMatch = pathModifier(c, path+".urlRewrite.path", f.Path, matches)
	*dst = rw
}

// pathModifier converts the path of a RequestRedirect or URLRewrite:
// ReplacePrefixMatch needs every match of the rule to be a path prefix.
func pathModifier(c *checker, path string, p *gwapiv1.HTTPPathModifier, matches []model.RouteMatch) (full, prefix *string) {
	if p == nil {
		return nil, nil
	}
	switch p.Type {
	case gwapiv1.FullPathHTTPPathModifier:
		if p.ReplaceFullPath == nil {
			c.addf(path+".replaceFullPath", "required when type is ReplaceFullPath")
		}
		return p.ReplaceFullPath, nil
	case gwapiv1.PrefixMatchHTTPPathModifier:
		if p.ReplacePrefixMatch == nil {
			c.addf(path+".replacePrefixMatch", "required when type is ReplacePrefixMatch")
		}
		for _, m := range matches {
			if m.Path == nil || m.Path.Type != model.MatchPathPrefix {
				c.addf(path, "ReplacePrefixMatch needs every match of the rule to have a PathPrefix path")
				break
			}
		}
		return nil, p.ReplacePrefixMatch
	default:
		c.addf(path+".type", "%q is not one of ReplaceFullPath, ReplacePrefixMatch", p.Type)
		return nil, nil
	}
}

func parents(c *checker, namespace string, refs []gwapiv1.ParentReference) []model.ParentRef {
	var out []model.ParentRef
	for i, p := range refs {
		path := idx("spec.parentRefs", i)
		mp := model.ParentRef{Index: i, Group: gatewayGroup, Kind: "Gateway", Namespace: namespace,
			Name: string(p.Name), SectionName: deref(p.SectionName)}
		if p.Group != nil {
			mp.Group = string(*p.Group)
		}
		if p.Kind != nil {
			mp.Kind = string(*p.Kind)
		}
		if p.Namespace != nil && *p.Namespace != "" {
			mp.Namespace = string(*p.Namespace)
		}
		if p.Port != nil {
			c.intRange(path+".port", int64(*p.Port), 1, 65535)
			mp.Port = *p.Port
		}
		c.required(path+".name", mp.Name)
		out = append(out, mp)
	}
	return out
}

func hostnames(hs []gwapiv1.Hostname) []string {
	var out []string
	for _, h := range hs {
		out = append(out, string(h))
	}
	return out
}

func backend(c *checker, path, namespace string, b gwapiv1.BackendRef) model.Backend {
	out := model.Backend{Kind: defaultBackend, Namespace: namespace, Name: string(b.Name), Weight: 1}
	if b.Group != nil {
		out.Group = string(*b.Group)
	}
	if b.Kind != nil {
		out.Kind = string(*b.Kind)
	}
	if b.Namespace != nil && *b.Namespace != "" {
		out.Namespace = string(*b.Namespace)
	}
	if b.Weight != nil {
		c.intRange(path+".weight", int64(*b.Weight), 0, maxBackendWeight)
		out.Weight = *b.Weight
	}
	c.required(path+".name", out.Name)
	switch {
	case b.Port != nil:
		c.intRange(path+".port", int64(*b.Port), 1, 65535)
		out.Port = *b.Port
	case out.Group == "" && out.Kind == "Service":
		c.addf(path+".port", "required for a Service backend")
	}
	return out
}

// GRPCRoute converts a GRPCRoute with the same defaults as HTTPRoute,
// except that a rule without matches matches every call (the GRPCRoute
// schema has no default match). A method match's type defaults to Exact,
// and an Exact match must name a service, a method or both.
func GRPCRoute(r *gwapiv1.GRPCRoute) (*model.Route, error) {
	c := newChecker("GRPCRoute", r.Namespace, r.Name)
	out := &model.Route{
		ObjectMeta: objectMeta(&r.ObjectMeta),
		Kind:       model.GRPCRoute,
		Parents:    parents(c, r.Namespace, r.Spec.ParentRefs),
		Hostnames:  hostnames(r.Spec.Hostnames),
	}
	for i, rule := range r.Spec.Rules {
		path := idx("spec.rules", i)
		mr := model.RouteRule{Name: deref(rule.Name)}
		for j, m := range rule.Matches {
			mr.Matches = append(mr.Matches, grpcMatch(c, idx(path+".matches", j), m))
		}
		for j, f := range rule.Filters {
			fpath := idx(path+".filters", j)
			switch f.Type {
			case gwapiv1.GRPCRouteFilterRequestHeaderModifier:
				headerFilter(c, fpath, "requestHeaderModifier", f.RequestHeaderModifier, &mr.RequestHeaders)
			case gwapiv1.GRPCRouteFilterResponseHeaderModifier:
				headerFilter(c, fpath, "responseHeaderModifier", f.ResponseHeaderModifier, &mr.ResponseHeaders)
			case "":
				c.addf(fpath+".type", "required")
			default:
				mr.UnsupportedFilters = append(mr.UnsupportedFilters, string(f.Type))
			}
		}
		for j, b := range rule.BackendRefs {
			mr.Backends = append(mr.Backends, backend(c, idx(path+".backendRefs", j), r.Namespace, b.BackendRef))
			for _, f := range b.Filters {
				mr.UnsupportedFilters = append(mr.UnsupportedFilters, "backendRef "+string(f.Type))
			}
		}
		out.Rules = append(out.Rules, mr)
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	return out, nil
}

func grpcMatch(c *checker, path string, m gwapiv1.GRPCRouteMatch) model.RouteMatch {
	var out model.RouteMatch
	if mm := m.Method; mm != nil {
		out.GRPCType = model.MatchExact
		if mm.Type != nil {
			out.GRPCType = model.MatchType(*mm.Type)
		}
		out.GRPCService, out.GRPCMethod = deref(mm.Service), deref(mm.Method)
		switch out.GRPCType {
		case model.MatchExact:
			if out.GRPCService == "" && out.GRPCMethod == "" {
				c.addf(path+".method", "one or both of service or method must be specified")
			}
		case model.MatchRegularExpression:
		default:
			c.addf(path+".method.type", "%q is not one of Exact, RegularExpression", out.GRPCType)
		}
	}
	for i, h := range m.Headers {
		out.Headers = append(out.Headers, headerMatch(c, idx(path+".headers", i), string(h.Name), (*string)(h.Type), h.Value))
	}
	return out
}
