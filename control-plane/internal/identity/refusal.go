package identity

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Refusal is a request the service turned down, with the gRPC code the
// caller receives and a reason that labels the refusal metric.
type Refusal struct {
	Code   codes.Code
	Reason string // metric label, snake_case, from a small fixed set
	Msg    string // for the operator; never contains secrets
}

func (r *Refusal) Error() string { return r.Msg }

// GRPCStatus lets status.FromError and grpc return the refusal as is.
func (r *Refusal) GRPCStatus() *status.Status { return status.New(r.Code, r.Msg) }

// Refuse builds a Refusal.
func Refuse(code codes.Code, reason, format string, args ...any) *Refusal {
	return &Refusal{Code: code, Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

// Refusal reasons: the values of the "result" metric label besides "ok".
const (
	ReasonBadRequest     = "bad_request"
	ReasonBadCSR         = "bad_csr"
	ReasonBadCredential  = "bad_credential"
	ReasonNoClientCert   = "no_client_certificate"
	ReasonNotANode       = "not_a_node"
	ReasonNodeMismatch   = "node_mismatch"
	ReasonPodNotFound    = "pod_not_found"
	ReasonUIDMismatch    = "pod_uid_mismatch"
	ReasonOtherNode      = "pod_on_other_node"
	ReasonNotEnrolled    = "namespace_not_enrolled"
	ReasonOptedOut       = "pod_opted_out"
	ReasonHostNetwork    = "pod_host_network"
	ReasonNoServiceAcct  = "pod_service_account_invalid"
	ReasonSANotAllowed   = "service_account_not_allowed"
	ReasonUnavailable    = "unavailable"
	ReasonInternal       = "internal"
	resultOK             = "ok"
	resultUnknownFailure = "error"
)

// reasonOf returns the metric label for err.
func reasonOf(err error) string {
	if err == nil {
		return resultOK
	}
	var r *Refusal
	if errors.As(err, &r) {
		return r.Reason
	}
	return resultUnknownFailure
}

// asStatus converts err into what the gRPC client sees: refusals keep their
// code and message; anything else becomes Internal without details.
func asStatus(err error) error {
	var r *Refusal
	if errors.As(err, &r) {
		return r.GRPCStatus().Err()
	}
	return status.Error(codes.Internal, "internal error")
}
