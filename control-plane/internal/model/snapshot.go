package model

import "time"

// Snapshot is the whole mesh configuration at one moment: what the sources
// saw, converted to plain data. A Snapshot is never modified after a source
// publishes it; a change produces a new one. Maps are keyed "namespace/name".
type Snapshot struct {
	Namespaces            map[string]*Namespace
	Pods                  map[string]*Pod
	Services              map[string]*Service
	EndpointSlices        map[string]*EndpointSlice
	Routes                map[string]*Route // HTTPRoute and GRPCRoute; key "kind/namespace/name"
	TrafficPolicies       map[string]*TrafficPolicy
	AuthorizationPolicies map[string]*AuthorizationPolicy
}

// NewSnapshot returns an empty snapshot with every map allocated.
func NewSnapshot() *Snapshot {
	return &Snapshot{
		Namespaces:            map[string]*Namespace{},
		Pods:                  map[string]*Pod{},
		Services:              map[string]*Service{},
		EndpointSlices:        map[string]*EndpointSlice{},
		Routes:                map[string]*Route{},
		TrafficPolicies:       map[string]*TrafficPolicy{},
		AuthorizationPolicies: map[string]*AuthorizationPolicy{},
	}
}

// ObjectMeta is what every object carries that the mesh uses.
type ObjectMeta struct {
	Namespace   string
	Name        string
	UID         string
	Generation  int64
	Created     time.Time
	Labels      map[string]string
	Annotations map[string]string
}

// Key returns "namespace/name".
func (m *ObjectMeta) Key() string { return m.Namespace + "/" + m.Name }

// Service is a Kubernetes Service.
type Service struct {
	ObjectMeta
	// ClusterIPs are the virtual IPs; empty for a headless Service.
	ClusterIPs []string
	// Type is ClusterIP, NodePort, LoadBalancer or ExternalName.
	Type     string
	Ports    []ServicePort
	Selector map[string]string
}

// ServicePort is one port of a Service.
type ServicePort struct {
	Name     string
	Port     int32
	Protocol string // TCP, UDP or SCTP
	// AppProtocol is the port's appProtocol ("http", "http2", "grpc",
	// "kubernetes.io/h2c", ...) or "".
	AppProtocol string
	// TargetPort is the pod port number, or 0 when TargetPortName names a
	// container port instead.
	TargetPort     int32
	TargetPortName string
}

// EndpointSlice lists a Service's endpoints (derived from the selector in
// local mode when no slice is given).
type EndpointSlice struct {
	ObjectMeta
	// Service is the name of the owning Service (same namespace).
	Service   string
	Ports     []EndpointPort
	Endpoints []Endpoint
}

// EndpointPort names the pod port a Service port resolves to.
type EndpointPort struct {
	Name        string
	Port        int32
	Protocol    string
	AppProtocol string
}

// Endpoint is one backend address.
type Endpoint struct {
	Addresses []string
	// Ready is the endpoint's readiness condition (serving and not
	// terminating).
	Ready    bool
	NodeName string
	// Pod is "namespace/name" of the target pod, or "" when the endpoint is
	// not a pod.
	Pod string
}

// RouteKind is HTTPRoute or GRPCRoute.
type RouteKind string

// Route kinds.
const (
	HTTPRoute RouteKind = "HTTPRoute"
	GRPCRoute RouteKind = "GRPCRoute"
)

// Route is a Gateway API HTTPRoute or GRPCRoute.
type Route struct {
	ObjectMeta
	Kind RouteKind
	// Parents are spec.parentRefs in order (Index is the position, so status
	// can be written against the ref exactly as the user wrote it).
	Parents   []ParentRef
	Hostnames []string
	Rules     []RouteRule
}

// RouteKey returns "kind/namespace/name", the key of Snapshot.Routes.
func RouteKey(kind RouteKind, namespace, name string) string {
	return string(kind) + "/" + namespace + "/" + name
}

// ParentRef is one spec.parentRefs entry.
type ParentRef struct {
	Index       int
	Group       string // "" or "core" for a Service
	Kind        string // "Service" for GAMMA; others are not ours
	Namespace   string // defaulted to the route's namespace
	Name        string
	SectionName string
	Port        int32 // 0 when unset
}

// IsService reports whether the parent is a Service (GAMMA).
func (p ParentRef) IsService() bool {
	return p.Kind == "Service" && (p.Group == "" || p.Group == "core")
}

// RouteRule is one rule of a route.
type RouteRule struct {
	Name     string
	Matches  []RouteMatch // empty means match everything
	Backends []Backend
	// RequestHeaders and ResponseHeaders come from RequestHeaderModifier and
	// ResponseHeaderModifier filters.
	RequestHeaders  *HeaderModifier
	ResponseHeaders *HeaderModifier
	// Redirect comes from a RequestRedirect filter: the rule answers with
	// a redirect instead of forwarding (its backends are not used).
	Redirect *RouteRedirect
	// Rewrite comes from a URLRewrite filter: the request is forwarded
	// with its Host or path replaced.
	Rewrite *RouteRewrite
	// UnsupportedFilters names filter types the mesh does not implement;
	// the route is then not Accepted for that reason.
	UnsupportedFilters []string
	Timeouts           *RouteTimeouts
	Retry              *RouteRetry
}

// RouteRedirect is a RequestRedirect filter. Empty fields keep the
// request's value (Port: the request's port, or the scheme's well-known
// one when Scheme is set).
type RouteRedirect struct {
	Scheme   string // "http" or "https"
	Hostname string
	Port     int32
	// ReplaceFullPath or ReplacePrefixMatch (the matched path prefix
	// replaced); at most one is set.
	ReplaceFullPath    *string
	ReplacePrefixMatch *string
	StatusCode         int // 301, 302 (default), 303, 307 or 308
}

// RouteRewrite is a URLRewrite filter; empty fields keep the request's.
type RouteRewrite struct {
	Hostname           string
	ReplaceFullPath    *string
	ReplacePrefixMatch *string
}

// MatchType is how a value is compared.
type MatchType string

// Match types.
const (
	MatchExact             MatchType = "Exact"
	MatchPathPrefix        MatchType = "PathPrefix"
	MatchRegularExpression MatchType = "RegularExpression"
)

// RouteMatch is one match; every set part must match.
type RouteMatch struct {
	// HTTP.
	Path        *StringMatch // Type Exact, PathPrefix or RegularExpression
	Headers     []HeaderMatch
	QueryParams []HeaderMatch
	Method      string
	// gRPC: service and method; either may be empty (matches any).
	GRPCService string
	GRPCMethod  string
	GRPCType    MatchType // Exact or RegularExpression
}

// StringMatch compares a string.
type StringMatch struct {
	Type  MatchType
	Value string
}

// HeaderMatch compares a named header or query parameter.
type HeaderMatch struct {
	Name  string
	Type  MatchType // Exact or RegularExpression
	Value string
}

// Backend is a weighted backendRef.
type Backend struct {
	Group     string
	Kind      string // "Service" unless the user said otherwise
	Namespace string
	Name      string
	Port      int32
	Weight    int32 // default 1
	// RequestHeaders and ResponseHeaders come from the backendRef's own
	// header modifier filters: applied after the rule's, for the requests
	// sent to this backend.
	RequestHeaders, ResponseHeaders *HeaderModifier
}

// HeaderModifier sets, adds and removes headers.
type HeaderModifier struct {
	Set    []Header
	Add    []Header
	Remove []string
}

// Header is a name and value.
type Header struct{ Name, Value string }

// RouteTimeouts are Gateway API rule timeouts; zero means unset.
type RouteTimeouts struct {
	Request        time.Duration
	BackendRequest time.Duration
}

// RouteRetry is the Gateway API rule retry (experimental channel).
type RouteRetry struct {
	Attempts int32
	Backoff  time.Duration
	Codes    []int32
}

// PolicyTarget is a targetRefs entry of a Weft policy.
type PolicyTarget struct {
	Index       int
	Group, Kind string
	Name        string // a Service in the policy's namespace
	SectionName string // a port name, or "" for all ports
}

// TrafficPolicy is the client-side behaviour for calls to Services.
type TrafficPolicy struct {
	ObjectMeta
	Targets          []PolicyTarget
	Retry            *RetryPolicy
	Timeouts         *TimeoutPolicy
	Faults           *FaultPolicy
	LoadBalancer     LoadBalancerAlgorithm // "" means the default (P2C peak EWMA)
	OutlierDetection *OutlierDetection
	ConnectionLimits *ConnectionLimits
}

// TrafficPolicy defaults, as documented on the CRD (api/v1alpha1). Sources
// fill them in when converting; the translator applies them to zero values
// of policies built by hand.
const (
	DefaultBackoffBase        = 25 * time.Millisecond
	DefaultBackoffMaxFactor   = 10 // BackoffMax = factor * BackoffBase
	DefaultBudgetPercent      = 20
	DefaultBudgetMinPerSecond = 10
	DefaultOutlierInterval    = 10 * time.Second
	DefaultBaseEjectionTime   = 30 * time.Second
	DefaultMaxEjectionPercent = 50
)

// DefaultRetryOn is the retryOn list of a retry policy that sets none:
// 5xx, gateway-error, reset and connect-failure for HTTP, and unavailable,
// which applies to gRPC status codes only. Do not modify it.
var DefaultRetryOn = []string{"5xx", "gateway-error", "reset", "connect-failure", "unavailable"}

// RetryPolicy: attempts are retries after the first try.
type RetryPolicy struct {
	Attempts             int32
	PerTryTimeout        time.Duration // 0 = unset
	RetryOn              []string
	RetriableStatusCodes []int32
	BackoffBase          time.Duration // 0 = default 25ms
	BackoffMax           time.Duration // 0 = 10 * base
	BudgetPercent        int32         // default 20
	BudgetMinPerSecond   int32         // default 10
}

// TimeoutPolicy bounds requests and idle connections; zero means unset.
type TimeoutPolicy struct {
	Request time.Duration
	Idle    time.Duration
}

// FaultPolicy injects faults.
type FaultPolicy struct {
	DelayPercent  int32 // 0-100; 0 = no delay
	Delay         time.Duration
	AbortPercent  int32 // 0-100; 0 = no abort
	AbortHTTP     int32 // HTTP status, or 0
	AbortGRPCCode int32 // gRPC code number (1-16), or 0 with AbortHTTP set
}

// LoadBalancerAlgorithm names an algorithm.
type LoadBalancerAlgorithm string

// Algorithms.
const (
	LBP2CPeakEWMA  LoadBalancerAlgorithm = "P2CPeakEWMA"
	LBRoundRobin   LoadBalancerAlgorithm = "RoundRobin"
	LBLeastRequest LoadBalancerAlgorithm = "LeastRequest"
)

// OutlierDetection ejects failing endpoints; zero values mean defaults.
type OutlierDetection struct {
	Consecutive5xx           int32
	ConsecutiveGatewayErrors int32
	Interval                 time.Duration
	BaseEjectionTime         time.Duration
	MaxEjectionPercent       int32
}

// ConnectionLimits; zero means unlimited.
type ConnectionLimits struct {
	MaxConnections     int32
	MaxPendingRequests int32
	MaxRequests        int32
}

// AuthorizationAction is Allow or Deny.
type AuthorizationAction string

// Actions.
const (
	AuthzAllow AuthorizationAction = "Allow"
	AuthzDeny  AuthorizationAction = "Deny"
)

// AuthorizationPolicy allows or denies traffic to the pods of its targets
// (or of its whole namespace when it has none).
type AuthorizationPolicy struct {
	ObjectMeta
	Targets []PolicyTarget
	Action  AuthorizationAction
	Rules   []AuthorizationRule
}

// AuthorizationRule matches when a From and a To entry match (an empty list
// matches anything).
type AuthorizationRule struct {
	From []AuthorizationSource
	To   []AuthorizationOperation
}

// AuthorizationSource matches callers.
type AuthorizationSource struct {
	Identities []string // SPIFFE IDs; trailing "*" is a prefix match
	Namespaces []string
}

// AuthorizationOperation matches operations.
type AuthorizationOperation struct {
	Ports   []int32
	Methods []string
	Paths   []string // exact, or prefix with trailing "*"
}
