package convert

import (
	"regexp"
	"slices"
	"strings"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/control-plane/internal/model"
)

var retryOnValues = []string{"5xx", "gateway-error", "reset", "connect-failure", "retriable-status-codes",
	"cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"}

// grpcCodes maps canonical gRPC status names to their numbers.
var grpcCodes = map[string]int32{
	"CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4, "NOT_FOUND": 5,
	"ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8, "FAILED_PRECONDITION": 9,
	"ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12, "INTERNAL": 13, "UNAVAILABLE": 14,
	"DATA_LOSS": 15, "UNAUTHENTICATED": 16,
}

// GRPCCode returns the number of a canonical gRPC status name such as
// "UNAVAILABLE" (14). OK (0) is not a valid abort status and is not
// accepted.
func GRPCCode(name string) (int32, bool) {
	code, ok := grpcCodes[name]
	return code, ok
}

// TrafficPolicy converts a TrafficPolicy and applies the defaults of
// api/v1alpha1: retryOn model.DefaultRetryOn, backoff base 25ms and max ten times
// the base, retry budget 20% plus 10 per second, load balancer P2CPeakEWMA
// when loadBalancer is given without an algorithm, outlier detection
// interval 10s, base ejection 30s and at most 50% ejected.
func TrafficPolicy(p *v1alpha1.TrafficPolicy) (*model.TrafficPolicy, error) {
	c := newChecker("TrafficPolicy", p.Namespace, p.Name)
	s := &p.Spec
	out := &model.TrafficPolicy{ObjectMeta: objectMeta(&p.ObjectMeta), Targets: targets(c, s.TargetRefs)}
	if len(s.TargetRefs) == 0 {
		c.addf("spec.targetRefs", "at least one target is required")
	}
	if s.Retry == nil && s.Timeouts == nil && s.Faults == nil && s.LoadBalancer == nil && s.OutlierDetection == nil && s.ConnectionLimits == nil {
		c.addf("spec", "a TrafficPolicy must set at least one of retry, timeouts, faults, loadBalancer, outlierDetection or connectionLimits")
	}
	if s.Retry != nil {
		out.Retry = retryPolicy(c, s.Retry)
	}
	if t := s.Timeouts; t != nil {
		if t.Request == nil && t.Idle == nil {
			c.addf("spec.timeouts", "timeouts must set request, idle or both")
		}
		out.Timeouts = &model.TimeoutPolicy{
			Request: c.duration("spec.timeouts.request", (*string)(t.Request)),
			Idle:    c.duration("spec.timeouts.idle", (*string)(t.Idle)),
		}
		if r := s.Retry; r != nil && r.PerTryTimeout != nil && t.Request != nil && out.Retry.PerTryTimeout > out.Timeouts.Request {
			c.addf("spec", "retry.perTryTimeout must not be longer than timeouts.request")
		}
	}
	if s.Faults != nil {
		out.Faults = faultPolicy(c, s.Faults)
	}
	if lb := s.LoadBalancer; lb != nil {
		switch a := model.LoadBalancerAlgorithm(lb.Algorithm); a {
		case "":
			out.LoadBalancer = model.LBP2CPeakEWMA
		case model.LBP2CPeakEWMA, model.LBRoundRobin, model.LBLeastRequest:
			out.LoadBalancer = a
		default:
			c.addf("spec.loadBalancer.algorithm", "%q is not one of P2CPeakEWMA, RoundRobin, LeastRequest", a)
		}
	}
	if s.OutlierDetection != nil {
		out.OutlierDetection = outlierDetection(c, s.OutlierDetection)
	}
	if l := s.ConnectionLimits; l != nil {
		if l.MaxConnections == nil && l.MaxPendingRequests == nil && l.MaxRequests == nil {
			c.addf("spec.connectionLimits", "connectionLimits must set at least one of maxConnections, maxPendingRequests or maxRequests")
		}
		out.ConnectionLimits = &model.ConnectionLimits{
			MaxConnections:     minInt(c, "spec.connectionLimits.maxConnections", l.MaxConnections, 1),
			MaxPendingRequests: minInt(c, "spec.connectionLimits.maxPendingRequests", l.MaxPendingRequests, 0),
			MaxRequests:        minInt(c, "spec.connectionLimits.maxRequests", l.MaxRequests, 1),
		}
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	return out, nil
}

func retryPolicy(c *checker, r *v1alpha1.RetryPolicy) *model.RetryPolicy {
	const path = "spec.retry"
	c.intRange(path+".attempts", int64(r.Attempts), 0, 10)
	out := &model.RetryPolicy{
		Attempts:           r.Attempts,
		PerTryTimeout:      c.duration(path+".perTryTimeout", (*string)(r.PerTryTimeout)),
		BackoffBase:        model.DefaultBackoffBase,
		BudgetPercent:      model.DefaultBudgetPercent,
		BudgetMinPerSecond: model.DefaultBudgetMinPerSecond,
	}
	c.maxItems(path+".retryOn", len(r.RetryOn), 16)
	c.maxItems(path+".retriableStatusCodes", len(r.RetriableStatusCodes), 16)
	for i, on := range r.RetryOn {
		if !slices.Contains(retryOnValues, string(on)) {
			c.addf(idx(path+".retryOn", i), "%q is not one of %s", on, strings.Join(retryOnValues, ", "))
		}
		out.RetryOn = append(out.RetryOn, string(on))
	}
	if len(r.RetryOn) == 0 {
		out.RetryOn = slices.Clone(model.DefaultRetryOn)
	}
	for i, code := range r.RetriableStatusCodes {
		c.intRange(idx(path+".retriableStatusCodes", i), int64(code), 100, 599)
	}
	out.RetriableStatusCodes = slices.Clone(r.RetriableStatusCodes)
	if len(r.RetriableStatusCodes) > 0 && !slices.Contains(r.RetryOn, "retriable-status-codes") {
		c.addf(path, "retriableStatusCodes needs 'retriable-status-codes' in retryOn")
	}
	if slices.Contains(r.RetryOn, "retriable-status-codes") && len(r.RetriableStatusCodes) == 0 {
		c.addf(path, "retryOn 'retriable-status-codes' needs retriableStatusCodes")
	}
	if b := r.Backoff; b != nil && b.BaseInterval != nil {
		out.BackoffBase = c.duration(path+".backoff.baseInterval", (*string)(b.BaseInterval))
	}
	out.BackoffMax = model.DefaultBackoffMaxFactor * out.BackoffBase
	if b := r.Backoff; b != nil && b.MaxInterval != nil {
		out.BackoffMax = c.duration(path+".backoff.maxInterval", (*string)(b.MaxInterval))
		if b.BaseInterval != nil && out.BackoffMax < out.BackoffBase {
			c.addf(path+".backoff", "backoff.maxInterval must not be shorter than backoff.baseInterval")
		}
	}
	if b := r.Budget; b != nil {
		if b.Percent != nil {
			c.intRange(path+".budget.percent", int64(*b.Percent), 0, 100)
			out.BudgetPercent = int32(*b.Percent)
		}
		if v := b.MinRetriesPerSecond; v != nil {
			c.intRange(path+".budget.minRetriesPerSecond", int64(*v), 0, 10000)
			out.BudgetMinPerSecond = *v
		}
	}
	return out
}

func faultPolicy(c *checker, f *v1alpha1.FaultPolicy) *model.FaultPolicy {
	const path = "spec.faults"
	out := &model.FaultPolicy{}
	if f.Delay == nil && f.Abort == nil {
		c.addf(path, "faults must set delay, abort or both")
	}
	if d := f.Delay; d != nil {
		if d.FixedDelay == "" {
			c.addf(path+".delay.fixedDelay", "required")
		} else {
			out.Delay = c.duration(path+".delay.fixedDelay", (*string)(&d.FixedDelay))
		}
		c.intRange(path+".delay.percentage", int64(d.Percentage), 0, 100)
		out.DelayPercent = int32(d.Percentage)
	}
	if a := f.Abort; a != nil {
		c.intRange(path+".abort.percentage", int64(a.Percentage), 0, 100)
		out.AbortPercent = int32(a.Percentage)
		if (a.HTTPStatus == nil) == (a.GRPCStatus == nil) {
			c.addf(path+".abort", "abort must set exactly one of httpStatus or grpcStatus")
		}
		if a.HTTPStatus != nil {
			c.intRange(path+".abort.httpStatus", int64(*a.HTTPStatus), 200, 599)
			out.AbortHTTP = *a.HTTPStatus
		}
		if a.GRPCStatus != nil {
			code, ok := GRPCCode(string(*a.GRPCStatus))
			if !ok {
				c.addf(path+".abort.grpcStatus", "%q is not a gRPC status name such as UNAVAILABLE or DEADLINE_EXCEEDED", *a.GRPCStatus)
			}
			out.AbortGRPCCode = code
		}
	}
	return out
}

func outlierDetection(c *checker, o *v1alpha1.OutlierDetection) *model.OutlierDetection {
	const path = "spec.outlierDetection"
	if o.Consecutive5xxErrors == nil && o.ConsecutiveGatewayErrors == nil {
		c.addf(path, "outlierDetection needs consecutive5xxErrors or consecutiveGatewayErrors")
	}
	out := &model.OutlierDetection{
		Consecutive5xx:           minInt(c, path+".consecutive5xxErrors", o.Consecutive5xxErrors, 1),
		ConsecutiveGatewayErrors: minInt(c, path+".consecutiveGatewayErrors", o.ConsecutiveGatewayErrors, 1),
		Interval:                 model.DefaultOutlierInterval,
		BaseEjectionTime:         model.DefaultBaseEjectionTime,
		MaxEjectionPercent:       model.DefaultMaxEjectionPercent,
	}
	if o.Interval != nil {
		out.Interval = c.duration(path+".interval", (*string)(o.Interval))
	}
	if o.BaseEjectionTime != nil {
		out.BaseEjectionTime = c.duration(path+".baseEjectionTime", (*string)(o.BaseEjectionTime))
	}
	if o.MaxEjectionPercent != nil {
		c.intRange(path+".maxEjectionPercent", int64(*o.MaxEjectionPercent), 0, 100)
		out.MaxEjectionPercent = int32(*o.MaxEjectionPercent)
	}
	return out
}

// minInt returns *v (0 when nil) and checks it is at least lo.
func minInt(c *checker, path string, v *int32, lo int32) int32 {
	if v == nil {
		return 0
	}
	if *v < lo {
		c.addf(path, "%d is less than the minimum %d", *v, lo)
	}
	return *v
}

// targets converts targetRefs: group defaults to "", kind to Service, and
// only Services are allowed.
func targets(c *checker, refs []v1alpha1.ServiceTargetRef) []model.PolicyTarget {
	var out []model.PolicyTarget
	c.maxItems("spec.targetRefs", len(refs), 16)
	for i, r := range refs {
		path := idx("spec.targetRefs", i)
		t := model.PolicyTarget{Index: i, Group: r.Group, Kind: r.Kind, Name: r.Name, SectionName: r.SectionName}
		if t.Kind == "" {
			t.Kind = "Service"
		}
		if t.Kind != "Service" || (t.Group != "" && t.Group != "core") {
			c.addf(path, "targetRefs must point to a Service (group \"\" or \"core\", kind Service), not group %q kind %q", t.Group, t.Kind)
		}
		switch {
		case t.Name == "":
			c.addf(path+".name", "required")
		case len(t.Name) > 63 || !serviceName.MatchString(t.Name):
			c.addf(path+".name", "%q is not a Service name (a DNS-1035 label: lower case letters, digits and '-', starting with a letter)", t.Name)
		}
		if t.SectionName != "" && (len(t.SectionName) > 63 || !portName.MatchString(t.SectionName)) {
			c.addf(path+".sectionName", "%q is not a port name (lower case letters, digits and '-')", t.SectionName)
		}
		out = append(out, t)
	}
	return out
}

// Patterns of the AuthorizationPolicy and target schemas.
var (
	serviceName    = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)
	portName       = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	spiffePattern  = regexp.MustCompile(`^spiffe://([*]|[^/*]+(/[^*]*)?[*]?)$`)
	namespaceName  = portName
	methodPattern  = regexp.MustCompile(`^[A-Z]+(-[A-Z]+)*$`)
	authzPathMatch = regexp.MustCompile(`^/[^*]*[*]?$`)
)

// AuthorizationPolicy converts an AuthorizationPolicy.
func AuthorizationPolicy(p *v1alpha1.AuthorizationPolicy) (*model.AuthorizationPolicy, error) {
	c := newChecker("AuthorizationPolicy", p.Namespace, p.Name)
	s := &p.Spec
	out := &model.AuthorizationPolicy{ObjectMeta: objectMeta(&p.ObjectMeta), Targets: targets(c, s.TargetRefs),
		Action: model.AuthorizationAction(s.Action)}
	switch out.Action {
	case model.AuthzAllow, model.AuthzDeny:
	case "":
		c.addf("spec.action", "required: Allow or Deny")
	default:
		c.addf("spec.action", "%q is not one of Allow, Deny", out.Action)
	}
	c.maxItems("spec.rules", len(s.Rules), 32)
	for i, r := range s.Rules {
		path := idx("spec.rules", i)
		if len(r.From) == 0 && len(r.To) == 0 {
			c.addf(path, "a rule needs at least one from or to entry")
		}
		c.maxItems(path+".from", len(r.From), 8)
		c.maxItems(path+".to", len(r.To), 8)
		var mr model.AuthorizationRule
		for j, f := range r.From {
			fpath := idx(path+".from", j)
			if len(f.Identities) == 0 && len(f.Namespaces) == 0 {
				c.addf(fpath, "from entries need identities or namespaces")
			}
			c.maxItems(fpath+".identities", len(f.Identities), 32)
			c.maxItems(fpath+".namespaces", len(f.Namespaces), 32)
			for k, id := range f.Identities {
				if len(id) > 1024 || !spiffePattern.MatchString(id) {
					c.addf(idx(fpath+".identities", k), "%q: identities must be SPIFFE IDs such as spiffe://cluster.local/ns/shop/sa/frontend, with a * only at the end", id)
				}
			}
			for k, ns := range f.Namespaces {
				if len(ns) > 63 || !namespaceName.MatchString(ns) {
					c.addf(idx(fpath+".namespaces", k), "%q: namespaces must be namespace names: lower case, no wildcards", ns)
				}
			}
			mr.From = append(mr.From, model.AuthorizationSource{Identities: slices.Clone(f.Identities), Namespaces: slices.Clone(f.Namespaces)})
		}
		for j, t := range r.To {
			tpath := idx(path+".to", j)
			if len(t.Ports) == 0 && len(t.Methods) == 0 && len(t.Paths) == 0 {
				c.addf(tpath, "to entries need ports, methods or paths")
			}
			c.maxItems(tpath+".ports", len(t.Ports), 64)
			c.maxItems(tpath+".methods", len(t.Methods), 16)
			c.maxItems(tpath+".paths", len(t.Paths), 32)
			for k, port := range t.Ports {
				c.intRange(idx(tpath+".ports", k), int64(port), 1, 65535)
			}
			for k, m := range t.Methods {
				if len(m) > 32 || !methodPattern.MatchString(m) {
					c.addf(idx(tpath+".methods", k), "%q: methods must be upper-case HTTP methods such as GET or POST", m)
				}
			}
			for k, pth := range t.Paths {
				if len(pth) > 1024 || !authzPathMatch.MatchString(pth) {
					c.addf(idx(tpath+".paths", k), "%q: paths must start with / and may end with * (a prefix such as /api/*); a * is allowed only at the end", pth)
				}
			}
			mr.To = append(mr.To, model.AuthorizationOperation{Ports: slices.Clone(t.Ports),
				Methods: slices.Clone(t.Methods), Paths: slices.Clone(t.Paths)})
		}
		out.Rules = append(out.Rules, mr)
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	return out, nil
}
