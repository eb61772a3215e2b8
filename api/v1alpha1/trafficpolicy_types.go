package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TrafficPolicy sets how clients in the mesh call a Service: retries with a
// budget, timeouts, fault injection, load balancing, outlier detection and
// connection limits. It is applied by the node proxy of the calling pod.
//
// +genclient
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=weft,shortName=tp
// +kubebuilder:printcolumn:name="Targets",type=string,JSONPath=`.spec.targetRefs[*].name`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type TrafficPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   TrafficPolicySpec `json:"spec"`
	Status PolicyStatus      `json:"status,omitempty"`
}

// TrafficPolicyList is a list of TrafficPolicy.
//
// +kubebuilder:object:root=true
type TrafficPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TrafficPolicy `json:"items"`
}

// TrafficPolicySpec is the desired behaviour.
//
// +kubebuilder:validation:XValidation:rule="has(self.retry) || has(self.timeouts) || has(self.faults) || has(self.loadBalancer) || has(self.outlierDetection) || has(self.connectionLimits)",message="a TrafficPolicy must set at least one of retry, timeouts, faults, loadBalancer, outlierDetection or connectionLimits"
// +kubebuilder:validation:XValidation:rule="!(has(self.retry) && has(self.retry.perTryTimeout) && has(self.timeouts) && has(self.timeouts.request)) || duration(self.retry.perTryTimeout) <= duration(self.timeouts.request)",message="retry.perTryTimeout must not be longer than timeouts.request"
type TrafficPolicySpec struct {
	// TargetRefs are the Services (in this namespace) the policy applies to.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	TargetRefs []ServiceTargetRef `json:"targetRefs"`

	// Retry retries failed requests.
	// +optional
	Retry *RetryPolicy `json:"retry,omitempty"`
	// Timeouts bound requests.
	// +optional
	Timeouts *TimeoutPolicy `json:"timeouts,omitempty"`
	// Faults injects delays and errors, for testing resilience.
	// +optional
	Faults *FaultPolicy `json:"faults,omitempty"`
	// LoadBalancer chooses how endpoints are picked.
	// +optional
	LoadBalancer *LoadBalancerPolicy `json:"loadBalancer,omitempty"`
	// OutlierDetection ejects failing endpoints for a while.
	// +optional
	OutlierDetection *OutlierDetection `json:"outlierDetection,omitempty"`
	// ConnectionLimits bound the load one node proxy sends to the Service.
	// +optional
	ConnectionLimits *ConnectionLimits `json:"connectionLimits,omitempty"`
}

// RetryOn is a condition that makes a request retryable.
//
// +kubebuilder:validation:Enum="5xx";"gateway-error";"reset";"connect-failure";"retriable-status-codes";"cancelled";"deadline-exceeded";"internal";"resource-exhausted";"unavailable"
type RetryOn string

// RetryPolicy retries failed requests, within a budget.
//
// +kubebuilder:validation:XValidation:rule="!has(self.retriableStatusCodes) || (has(self.retryOn) && 'retriable-status-codes' in self.retryOn)",message="retriableStatusCodes needs 'retriable-status-codes' in retryOn"
// +kubebuilder:validation:XValidation:rule="!has(self.retryOn) || !('retriable-status-codes' in self.retryOn) || has(self.retriableStatusCodes)",message="retryOn 'retriable-status-codes' needs retriableStatusCodes"
type RetryPolicy struct {
	// Attempts is the number of retries after the first try, 0 to 10; 0
	// disables retries.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	Attempts int32 `json:"attempts"`
	// PerTryTimeout bounds each attempt; unset means only the request
	// timeout applies.
	// +optional
	PerTryTimeout *Duration `json:"perTryTimeout,omitempty"`
	// RetryOn lists the conditions that are retried. Default: 5xx,
	// gateway-error, reset, connect-failure; for gRPC also unavailable.
	// 5xx, gateway-error (502, 503, 504), reset and connect-failure apply
	// to HTTP; cancelled, deadline-exceeded, internal, resource-exhausted
	// and unavailable to gRPC status codes.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +listType=set
	// +optional
	RetryOn []RetryOn `json:"retryOn,omitempty"`
	// RetriableStatusCodes are HTTP statuses (100 to 599) to retry; they
	// are used only with, and required by, retriable-status-codes in
	// retryOn.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Minimum=100
	// +kubebuilder:validation:items:Maximum=599
	// +listType=set
	// +optional
	RetriableStatusCodes []int32 `json:"retriableStatusCodes,omitempty"`
	// Backoff between attempts: exponential with full jitter.
	// +optional
	Backoff *RetryBackoff `json:"backoff,omitempty"`
	// Budget caps retries so they never amplify an outage. Default: retries
	// may add 20% to the request rate, plus 10 per second.
	// +optional
	Budget *RetryBudget `json:"budget,omitempty"`
}

// RetryBackoff is exponential backoff with jitter.
//
// +kubebuilder:validation:XValidation:rule="!has(self.baseInterval) || !has(self.maxInterval) || duration(self.baseInterval) <= duration(self.maxInterval)",message="backoff.maxInterval must not be shorter than backoff.baseInterval"
type RetryBackoff struct {
	// BaseInterval is the first backoff; default 25ms.
	// +optional
	BaseInterval *Duration `json:"baseInterval,omitempty"`
	// MaxInterval caps the backoff; default 10 times the base.
	// +optional
	MaxInterval *Duration `json:"maxInterval,omitempty"`
}

// RetryBudget bounds retries relative to requests.
type RetryBudget struct {
	// Percent of requests that may be retried, over a 10-second window.
	// +kubebuilder:default=20
	// +optional
	Percent *Percent `json:"percent,omitempty"`
	// MinRetriesPerSecond are always allowed, so low-traffic services can
	// retry; 0 to 10000.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	// +kubebuilder:default=10
	// +optional
	MinRetriesPerSecond *int32 `json:"minRetriesPerSecond,omitempty"`
}

// TimeoutPolicy bounds requests.
//
// +kubebuilder:validation:XValidation:rule="has(self.request) || has(self.idle)",message="timeouts must set request, idle or both"
type TimeoutPolicy struct {
	// Request bounds a whole request, retries included.
	// +optional
	Request *Duration `json:"request,omitempty"`
	// Idle closes a connection (TCP) or stream with no traffic for this
	// long.
	// +optional
	Idle *Duration `json:"idle,omitempty"`
}

// FaultPolicy injects faults into a share of requests.
//
// +kubebuilder:validation:XValidation:rule="has(self.delay) || has(self.abort)",message="faults must set delay, abort or both"
type FaultPolicy struct {
	// Delay holds requests back before forwarding them.
	// +optional
	Delay *FaultDelay `json:"delay,omitempty"`
	// Abort answers requests with an error instead of forwarding them.
	// +optional
	Abort *FaultAbort `json:"abort,omitempty"`
}

// FaultDelay delays a percentage of requests by a fixed time.
type FaultDelay struct {
	// FixedDelay is how long a delayed request waits.
	FixedDelay Duration `json:"fixedDelay"`
	// Percentage of requests delayed.
	Percentage Percent `json:"percentage"`
}

// GRPCStatus is a canonical gRPC status code name.
//
// +kubebuilder:validation:Enum=CANCELLED;UNKNOWN;INVALID_ARGUMENT;DEADLINE_EXCEEDED;NOT_FOUND;ALREADY_EXISTS;PERMISSION_DENIED;RESOURCE_EXHAUSTED;FAILED_PRECONDITION;ABORTED;OUT_OF_RANGE;UNIMPLEMENTED;INTERNAL;UNAVAILABLE;DATA_LOSS;UNAUTHENTICATED
type GRPCStatus string

// FaultAbort fails a percentage of requests, with an HTTP status or, for
// gRPC, a gRPC status.
//
// +kubebuilder:validation:XValidation:rule="has(self.httpStatus) != has(self.grpcStatus)",message="abort must set exactly one of httpStatus or grpcStatus"
type FaultAbort struct {
	// HTTPStatus answered to aborted HTTP requests.
	// +kubebuilder:validation:Minimum=200
	// +kubebuilder:validation:Maximum=599
	// +optional
	HTTPStatus *int32 `json:"httpStatus,omitempty"`
	// GRPCStatus answered to aborted gRPC calls.
	// +optional
	GRPCStatus *GRPCStatus `json:"grpcStatus,omitempty"`
	// Percentage of requests aborted.
	Percentage Percent `json:"percentage"`
}

// LoadBalancerAlgorithm names a way to pick endpoints.
//
// +kubebuilder:validation:Enum=P2CPeakEWMA;RoundRobin;LeastRequest
type LoadBalancerAlgorithm string

// Load-balancing algorithms.
const (
	// P2CPeakEWMA picks the better of two random endpoints by peak-EWMA
	// latency times outstanding requests (the default).
	P2CPeakEWMA LoadBalancerAlgorithm = "P2CPeakEWMA"
	// RoundRobin takes endpoints in turn.
	RoundRobin LoadBalancerAlgorithm = "RoundRobin"
	// LeastRequest picks the better of two random endpoints by outstanding
	// requests.
	LeastRequest LoadBalancerAlgorithm = "LeastRequest"
)

// LoadBalancerPolicy selects the algorithm.
type LoadBalancerPolicy struct {
	// Algorithm; default P2CPeakEWMA.
	// +kubebuilder:default=P2CPeakEWMA
	Algorithm LoadBalancerAlgorithm `json:"algorithm"`
}

// OutlierDetection ejects endpoints that fail in a row.
//
// +kubebuilder:validation:XValidation:rule="has(self.consecutive5xxErrors) || has(self.consecutiveGatewayErrors)",message="outlierDetection needs consecutive5xxErrors or consecutiveGatewayErrors"
type OutlierDetection struct {
	// Consecutive5xxErrors ejects an endpoint after this many 5xx in a row.
	// +kubebuilder:validation:Minimum=1
	// +optional
	Consecutive5xxErrors *int32 `json:"consecutive5xxErrors,omitempty"`
	// ConsecutiveGatewayErrors ejects after this many 502/503/504 or
	// connection failures in a row.
	// +kubebuilder:validation:Minimum=1
	// +optional
	ConsecutiveGatewayErrors *int32 `json:"consecutiveGatewayErrors,omitempty"`
	// Interval between ejection sweeps; default 10s.
	// +optional
	Interval *Duration `json:"interval,omitempty"`
	// BaseEjectionTime is the first ejection's length, multiplied by the
	// number of times the endpoint was ejected; default 30s.
	// +optional
	BaseEjectionTime *Duration `json:"baseEjectionTime,omitempty"`
	// MaxEjectionPercent of endpoints that may be ejected at once;
	// default 50.
	// +optional
	MaxEjectionPercent *Percent `json:"maxEjectionPercent,omitempty"`
}

// ConnectionLimits bound what one node proxy sends to a Service.
//
// +kubebuilder:validation:XValidation:rule="has(self.maxConnections) || has(self.maxPendingRequests) || has(self.maxRequests)",message="connectionLimits must set at least one of maxConnections, maxPendingRequests or maxRequests"
type ConnectionLimits struct {
	// MaxConnections to the Service's endpoints (TCP, or HBONE streams).
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxConnections *int32 `json:"maxConnections,omitempty"`
	// MaxPendingRequests waiting for a connection; more are refused with 503.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxPendingRequests *int32 `json:"maxPendingRequests,omitempty"`
	// MaxRequests in flight at once.
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxRequests *int32 `json:"maxRequests,omitempty"`
}
