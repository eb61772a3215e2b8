package route

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// compiled is one route of a virtual host: its match and its Route.
type compiled struct {
	path    pathMatch
	headers []headerMatch
	query   []queryMatch
	route   *Route
}

func (c *compiled) matches(r *Request) bool {
	if !c.path.matches(r.Path) {
		return false
	}
	for i := range c.headers {
		if !c.headers[i].matches(r) {
			return false
		}
	}
	for i := range c.query {
		if !c.query[i].matches(r.RawQuery) {
			return false
		}
	}
	return true
}

type pathKind uint8

const (
	pathPrefix    pathKind = iota // prefix
	pathExact                     // path
	pathSeparated                 // path_separated_prefix
	pathRegex                     // safe_regex, whole path
)

type pathMatch struct {
	kind  pathKind
	value string
	fold  bool // case_sensitive: false
	re    *regexp.Regexp
}

func (p *pathMatch) matches(path string) bool {
	switch p.kind {
	case pathPrefix:
		return hasPrefix(path, p.value, p.fold)
	case pathExact:
		return equal(path, p.value, p.fold)
	case pathSeparated:
		return hasPrefix(path, p.value, p.fold) && (len(path) == len(p.value) || path[len(p.value)] == '/')
	default:
		return p.re.MatchString(path)
	}
}

func equal(s, v string, fold bool) bool {
	if fold {
		return strings.EqualFold(s, v)
	}
	return s == v
}

func hasPrefix(s, p string, fold bool) bool {
	return len(s) >= len(p) && equal(s[:len(p)], p, fold)
}

func compileMatch(c *compiled, m *routev3.RouteMatch) error {
	if m == nil {
		return fmt.Errorf("no match")
	}
	if err := onlyFields(m, "prefix", "path", "safe_regex", "path_separated_prefix", "case_sensitive", "headers", "query_parameters"); err != nil {
		return err
	}
	p := &c.path
	p.fold = m.GetCaseSensitive() != nil && !m.GetCaseSensitive().GetValue()
	switch ps := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		p.kind, p.value = pathPrefix, ps.Prefix
	case *routev3.RouteMatch_Path:
		p.kind, p.value = pathExact, ps.Path
	case *routev3.RouteMatch_PathSeparatedPrefix:
		if v := ps.PathSeparatedPrefix; v == "" || v[0] != '/' || strings.HasSuffix(v, "/") || strings.ContainsAny(v, "?#") {
			return fmt.Errorf("path_separated_prefix %q: must start with \"/\", not end with it, and have no ? or #", v)
		}
		p.kind, p.value = pathSeparated, ps.PathSeparatedPrefix
	case *routev3.RouteMatch_SafeRegex:
		re, err := compileRegex(ps.SafeRegex, p.fold)
		if err != nil {
			return fmt.Errorf("path: %w", err)
		}
		p.kind, p.re = pathRegex, re
	default:
		return fmt.Errorf("no supported path specifier (prefix, path, path_separated_prefix, safe_regex)")
	}
	for _, h := range m.GetHeaders() {
		hm, err := compileHeader(h)
		if err != nil {
			return fmt.Errorf("header %q: %w", h.GetName(), err)
		}
		c.headers = append(c.headers, hm)
	}
	for _, q := range m.GetQueryParameters() {
		qm, err := compileQuery(q)
		if err != nil {
			return fmt.Errorf("query parameter %q: %w", q.GetName(), err)
		}
		c.query = append(c.query, qm)
	}
	return nil
}

// compileRegex compiles an RE2 regular expression that must match the
// whole input, as Envoy's safe_regex does.
func compileRegex(m *matcherv3.RegexMatcher, fold bool) (*regexp.Regexp, error) {
	if err := onlyFields(m, "regex", "google_re2"); err != nil {
		return nil, err
	}
	flags := ""
	if fold {
		flags = "(?i)"
	}
	re, err := regexp.Compile(flags + "^(?:" + m.GetRegex() + ")$")
	if err != nil {
		return nil, fmt.Errorf("safe_regex %q: %w", m.GetRegex(), err)
	}
	return re, nil
}

type strKind uint8

const (
	strExact strKind = iota
	strPrefix
	strSuffix
	strContains
	strRegex
)

type stringMatch struct {
	kind  strKind
	value string
	fold  bool
	re    *regexp.Regexp
}

func (s *stringMatch) matches(v string) bool {
	switch s.kind {
	case strExact:
		return equal(v, s.value, s.fold)
	case strPrefix:
		return hasPrefix(v, s.value, s.fold)
	case strSuffix:
		return len(v) >= len(s.value) && equal(v[len(v)-len(s.value):], s.value, s.fold)
	case strContains:
		if !s.fold {
			return strings.Contains(v, s.value)
		}
		for i := 0; i+len(s.value) <= len(v); i++ {
			if strings.EqualFold(v[i:i+len(s.value)], s.value) {
				return true
			}
		}
		return false
	default:
		return s.re.MatchString(v)
	}
}

func compileString(m *matcherv3.StringMatcher) (stringMatch, error) {
	if err := onlyFields(m, "exact", "prefix", "suffix", "contains", "safe_regex", "ignore_case"); err != nil {
		return stringMatch{}, err
	}
	s := stringMatch{fold: m.GetIgnoreCase()}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		s.kind, s.value = strExact, p.Exact
	case *matcherv3.StringMatcher_Prefix:
		s.kind, s.value = strPrefix, p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		s.kind, s.value = strSuffix, p.Suffix
	case *matcherv3.StringMatcher_Contains:
		s.kind, s.value = strContains, p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := compileRegex(p.SafeRegex, false) // ignore_case does not apply to regexes (Envoy)
		if err != nil {
			return s, err
		}
		s.kind, s.re = strRegex, re
	default:
		return s, fmt.Errorf("string_match: no supported pattern (exact, prefix, suffix, contains, safe_regex)")
	}
	return s, nil
}

// pseudo says where a header matcher reads its value.
type pseudo uint8

const (
	pseudoNone      pseudo = iota // Request.Header
	pseudoMethod                  // :method
	pseudoAuthority               // :authority, host
	pseudoPath                    // :path (path and query)
)

type headerMatch struct {
	key            string // canonical http.Header key
	pseudo         pseudo
	present        bool // present_match's value
	isPresent      bool // a present_match (else sm)
	sm             stringMatch
	invert         bool
	missingAsEmpty bool
}

func compileHeader(h *routev3.HeaderMatcher) (headerMatch, error) {
	if err := onlyFields(h, "name", "string_match", "present_match", "invert_match", "treat_missing_header_as_empty"); err != nil {
		return headerMatch{}, err
	}
	hm := headerMatch{invert: h.GetInvertMatch(), missingAsEmpty: h.GetTreatMissingHeaderAsEmpty()}
	switch name := strings.ToLower(h.GetName()); name {
	case "":
		return hm, fmt.Errorf("empty name")
	case ":method":
		hm.pseudo = pseudoMethod
	case ":authority", "host":
		hm.pseudo = pseudoAuthority
	case ":path":
		hm.pseudo = pseudoPath
	default:
		if strings.HasPrefix(name, ":") {
			return hm, fmt.Errorf("pseudo-header not supported (only :method, :authority, :path)")
		}
		hm.key = http.CanonicalHeaderKey(name)
	}
	switch h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_StringMatch:
		sm, err := compileString(h.GetStringMatch())
		if err != nil {
			return hm, err
		}
		hm.sm = sm
	case *routev3.HeaderMatcher_PresentMatch:
		hm.isPresent, hm.present = true, h.GetPresentMatch()
	default:
		return hm, fmt.Errorf("no supported match (string_match, present_match)")
	}
	return hm, nil
}

// value returns the header's value; several values of one header are
// joined with ",", as Envoy does.
func (h *headerMatch) value(r *Request) (string, bool) {
	switch h.pseudo {
	case pseudoMethod:
		return r.Method, true
	case pseudoAuthority:
		return r.Host, r.Host != ""
	case pseudoPath:
		if r.RawQuery == "" {
			return r.Path, true
		}
		return r.Path + "?" + r.RawQuery, true
	}
	vs, ok := r.Header[h.key]
	switch {
	case !ok || len(vs) == 0:
		return "", false
	case len(vs) == 1:
		return vs[0], true
	}
	return strings.Join(vs, ","), true
}

// matches follows Envoy's HeaderUtility::matchHeaders, including its
// handling of a missing header under invert_match.
func (h *headerMatch) matches(r *Request) bool {
	v, ok := h.value(r)
	if !ok && !h.missingAsEmpty {
		if h.invert {
			return !h.isPresent
		}
		return h.isPresent && !h.present
	}
	var m bool
	if h.isPresent {
		m = h.present
	} else {
		m = h.sm.matches(v)
	}
	return m != h.invert
}

type queryMatch struct {
	name      string
	isPresent bool
	sm        stringMatch
}

func compileQuery(q *routev3.QueryParameterMatcher) (queryMatch, error) {
	if err := onlyFields(q, "name", "string_match", "present_match"); err != nil {
		return queryMatch{}, err
	}
	qm := queryMatch{name: q.GetName()}
	if qm.name == "" {
		return qm, fmt.Errorf("empty name")
	}
	switch q.GetQueryParameterMatchSpecifier().(type) {
	case *routev3.QueryParameterMatcher_StringMatch:
		sm, err := compileString(q.GetStringMatch())
		if err != nil {
			return qm, err
		}
		qm.sm = sm
	case *routev3.QueryParameterMatcher_PresentMatch:
		if !q.GetPresentMatch() {
			return qm, fmt.Errorf("present_match: false is not supported")
		}
		qm.isPresent = true
	default:
		return qm, fmt.Errorf("no supported match (string_match, present_match)")
	}
	return qm, nil
}

// matches tests the first parameter of that name (Gateway API: only the
// first is used). Names and values are percent-decoded ("+" stays "+", as
// in Envoy); escapes cost an allocation.
func (q *queryMatch) matches(raw string) bool {
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(kv, "=")
		if k != q.name && !(strings.IndexByte(k, '%') >= 0 && unescape(k) == q.name) {
			continue
		}
		if q.isPresent {
			return true
		}
		if strings.IndexByte(v, '%') >= 0 {
			v = unescape(v)
		}
		return q.sm.matches(v)
	}
	return false
}

// unescape percent-decodes s, or returns it as is when it is not valid.
func unescape(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}
