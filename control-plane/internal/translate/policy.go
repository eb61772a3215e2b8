package translate

import (
	"github.com/weftmesh/weft/control-plane/internal/model"
)

// effectivePolicy is what the TrafficPolicies targeting one Service port
// say, merged field by field.
type effectivePolicy struct {
	Retry            *model.RetryPolicy
	Timeouts         *model.TimeoutPolicy
	Faults           *model.FaultPolicy
	LoadBalancer     model.LoadBalancerAlgorithm
	OutlierDetection *model.OutlierDetection
	ConnectionLimits *model.ConnectionLimits
}

// policyFor merges the TrafficPolicies that target the port: each field
// comes from the first policy that sets it, policies that name the port
// (sectionName) before those that target the whole Service, and within
// each group the oldest first, then by name (Gateway API's conflict rule
// for policy attachment).
func (ix *index) policyFor(pi *portInfo) effectivePolicy {
	var ep effectivePolicy
	targets := ix.policies[pi.svc.key]
	for pass := 0; pass < 2; pass++ {
		for _, t := range targets {
			if pass == 0 && (t.section == "" || t.section != pi.port.Name) ||
				pass == 1 && t.section != "" {
				continue
			}
			tp := t.tp
			if ep.Retry == nil {
				ep.Retry = tp.Retry
			}
			if ep.Timeouts == nil {
				ep.Timeouts = tp.Timeouts
			}
			if ep.Faults == nil {
				ep.Faults = tp.Faults
			}
			if ep.LoadBalancer == "" {
				ep.LoadBalancer = tp.LoadBalancer
			}
			if ep.OutlierDetection == nil {
				ep.OutlierDetection = tp.OutlierDetection
			}
			if ep.ConnectionLimits == nil {
				ep.ConnectionLimits = tp.ConnectionLimits
			}
		}
	}
	return ep
}

// budget is a retry budget in Weft's terms.
type budget struct {
	percent, minPerSecond uint32
}

// budgetOf reads a policy's budget. The source fills in the CRD defaults,
// so a zero field is an explicit zero; both zero is taken as "unset" (a
// model built without the defaults) and gets them.
func budgetOf(r *model.RetryPolicy) budget {
	if r == nil || r.BudgetPercent <= 0 && r.BudgetMinPerSecond <= 0 {
		return budget{model.DefaultBudgetPercent, model.DefaultBudgetMinPerSecond}
	}
	return budget{uint32(max(r.BudgetPercent, 0)), uint32(max(r.BudgetMinPerSecond, 0))}
}

// stricter reports whether a allows fewer retries than b.
func (a budget) stricter(b budget) bool {
	if a.percent != b.percent {
		return a.percent < b.percent
	}
	return a.minPerSecond < b.minPerSecond
}
