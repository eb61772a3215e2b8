package outlier

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// ErrUnsupported is wrapped by every error New returns for a field the
// proxy does not implement.
var ErrUnsupported = errors.New("unsupported")

// Envoy's defaults for absent fields.
const (
	defaultConsecutive      = 5
	defaultInterval         = 10 * time.Second
	defaultBaseEjectionTime = 30 * time.Second
	defaultMaxEjectionTime  = 300 * time.Second
	defaultMaxEjectionPct   = 10
)

// Detector is the outlier detector of one cluster. A nil *Detector never
// ejects. All methods are safe for concurrent use.
type Detector struct {
	// Configuration, immutable after New. A threshold of 0 is off.
	threshold5xx     uint32
	thresholdGateway uint32
	interval         time.Duration
	base             time.Duration
	maxEjection      time.Duration // cap on one ejection: max(base, max_ejection_time)
	maxPercent       int
	alwaysEjectOne   bool
	now              func() time.Time
	epoch            time.Time // times are stored as nanoseconds since epoch

	hosts atomic.Pointer[map[string]*host] // replaced whole by SetEndpoints

	mu sync.Mutex // serialises ejections and SetEndpoints; guards the host fields marked below

	ejections atomic.Uint64 // ejections since New
}

type host struct {
	addr    string
	n5xx    atomic.Uint32 // consecutive 5xx (gateway failures included)
	gateway atomic.Uint32 // consecutive gateway failures
	until   atomic.Int64  // end of the current or last ejection, ns since epoch; 0 = never ejected

	// guarded by Detector.mu:
	backoff int64 // ejection time multiplier (Envoy's ejectTimeBackoff)
}

// New compiles od, a Cluster's outlier_detection as translate emits it,
// into a detector with no endpoints; call SetEndpoints next. nil od
// returns a nil detector, which never ejects. now is the clock (nil means
// time.Now). Fields outside the subset Weft implements are an error
// wrapping ErrUnsupported.
func New(od *clusterv3.OutlierDetection, now func() time.Time) (*Detector, error) {
	if od == nil {
		return nil, nil
	}
	if err := checkSupported(od); err != nil {
		return nil, fmt.Errorf("outlier_detection: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	d := &Detector{now: now, epoch: now()}
	var err error
	if d.threshold5xx, err = threshold(od.GetConsecutive_5Xx(), od.GetEnforcingConsecutive_5Xx(), 100, "consecutive_5xx"); err != nil {
		return nil, err
	}
	if d.thresholdGateway, err = threshold(od.GetConsecutiveGatewayFailure(), od.GetEnforcingConsecutiveGatewayFailure(), 0, "consecutive_gateway_failure"); err != nil {
		return nil, err
	}
	if d.interval, err = duration(od.GetInterval(), defaultInterval, "interval"); err != nil {
		return nil, err
	}
	if d.base, err = duration(od.GetBaseEjectionTime(), defaultBaseEjectionTime, "base_ejection_time"); err != nil {
		return nil, err
	}
	if d.maxEjection, err = duration(od.GetMaxEjectionTime(), defaultMaxEjectionTime, "max_ejection_time"); err != nil {
		return nil, err
	}
	d.maxEjection = max(d.maxEjection, d.base)
	d.maxPercent = defaultMaxEjectionPct
	if p := od.GetMaxEjectionPercent(); p != nil {
		d.maxPercent = int(min(p.GetValue(), 100))
	}
	d.alwaysEjectOne = od.GetAlwaysEjectOneHost().GetValue()
	d.hosts.Store(&map[string]*host{})
	return d, nil
}

// checkSupported rejects the detection kinds Weft does not implement.
// Envoy enables success-rate ejection when enforcing_success_rate is
// absent, so it must be an explicit 0.
func checkSupported(od *clusterv3.OutlierDetection) error {
	switch {
	case od.GetEnforcingSuccessRate() == nil || od.GetEnforcingSuccessRate().GetValue() != 0:
		return fmt.Errorf("success-rate ejection (enforcing_success_rate must be 0): %w", ErrUnsupported)
	case od.GetEnforcingFailurePercentage().GetValue() != 0:
		return fmt.Errorf("enforcing_failure_percentage: %w", ErrUnsupported)
	case od.GetSplitExternalLocalOriginErrors():
		return fmt.Errorf("split_external_local_origin_errors: %w", ErrUnsupported)
	case od.GetMaxEjectionTimeJitter().AsDuration() != 0:
		return fmt.Errorf("max_ejection_time_jitter: %w", ErrUnsupported)
	case od.GetDetectDegradedHosts().GetValue():
		return fmt.Errorf("detect_degraded_hosts: %w", ErrUnsupported)
	case len(od.GetMonitors()) > 0:
		return fmt.Errorf("monitors: %w", ErrUnsupported)
	}
	return nil
}

// threshold returns the consecutive-error count that ejects, 0 when the
// detection is off (threshold 0 or enforcing 0). Enforcement is a
// probability in Envoy; Weft emits only 0 and 100.
func threshold(n, enforcing *wrapperspb.UInt32Value, defEnforcing uint32, name string) (uint32, error) {
	e := defEnforcing
	if enforcing != nil {
		e = enforcing.GetValue()
	}
	switch e {
	case 0:
		return 0, nil
	case 100:
	default:
		return 0, fmt.Errorf("enforcing_%s %d (only 0 and 100): %w", name, e, ErrUnsupported)
	}
	if n == nil {
		return defaultConsecutive, nil
	}
	return n.GetValue(), nil
}

func duration(p *durationpb.Duration, def time.Duration, name string) (time.Duration, error) {
	if p == nil {
		return def, nil
	}
	if err := p.CheckValid(); err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	v := p.AsDuration()
	if v <= 0 {
		return 0, fmt.Errorf("%s %v: must be positive", name, v)
	}
	return v, nil
}

// SetEndpoints replaces the cluster's endpoints ("ip:port"). Endpoints
// kept keep their counters and ejection state; new ones start clean.
func (d *Detector) SetEndpoints(addrs []string) {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	old := *d.hosts.Load()
	m := make(map[string]*host, len(addrs))
	for _, a := range addrs {
		h := old[a]
		if h == nil {
			h = &host{addr: a}
		}
		m[a] = h
	}
	d.hosts.Store(&m)
}

func (d *Detector) host(addr string) *host {
	if d == nil {
		return nil
	}
	return (*d.hosts.Load())[addr]
}

func (d *Detector) elapsed() int64 { return int64(d.now().Sub(d.epoch)) }

// Ejected reports whether addr is ejected now. It is lock-free and does
// not allocate; an expired ejection ends here, lazily. Unknown addresses
// are not ejected.
func (d *Detector) Ejected(addr string) bool {
	h := d.host(addr)
	if h == nil {
		return false
	}
	u := h.until.Load()
	return u != 0 && d.elapsed() < u
}

// Report records how a request to addr ended: status is the HTTP status
// of the response (0 if there was none), gatewayFailure is true when
// connecting failed or the connection was reset or timed out before a
// response. A 5xx counts toward consecutive_5xx; a 502, 503, 504 or a
// gateway failure counts toward both consecutive_gateway_failure and
// consecutive_5xx; another 5xx resets the gateway-failure count; a status
// below 500 resets both. status 0 without gatewayFailure (the client went
// away) is ignored, as are unknown addresses. Report is lock-free unless
// it ejects, and does not allocate.
func (d *Detector) Report(addr string, status int, gatewayFailure bool) {
	h := d.host(addr)
	if h == nil {
		return
	}
	switch {
	case gatewayFailure || status == 502 || status == 503 || status == 504:
		if t := d.thresholdGateway; t != 0 && h.gateway.Add(1) == t {
			d.tryEject(h)
			h.gateway.Store(0)
		}
		d.count5xx(h)
	case status >= 500:
		reset(&h.gateway)
		d.count5xx(h)
	case status > 0:
		reset(&h.gateway)
		reset(&h.n5xx)
	}
}

func (d *Detector) count5xx(h *host) {
	if t := d.threshold5xx; t != 0 && h.n5xx.Add(1) == t {
		d.tryEject(h)
		h.n5xx.Store(0)
	}
}

// reset zeroes a counter, without a write when it is already zero (the
// common case), so that successes do not bounce the cache line.
func reset(c *atomic.Uint32) {
	if c.Load() != 0 {
		c.Store(0)
	}
}

// tryEject ejects h unless it is already ejected, gone, or ejecting it
// would put more than max_ejection_percent of the endpoints in ejection.
func (d *Detector) tryEject(h *host) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.elapsed()
	if h.until.Load() > now {
		return // already ejected
	}
	m := *d.hosts.Load()
	if m[h.addr] != h {
		return // removed by SetEndpoints meanwhile
	}
	active := 0
	for _, o := range m {
		if o.until.Load() > now {
			active++
		}
	}
	// Envoy: eject if 100*(active+1)/len <= max_ejection_percent.
	if 100*(active+1) > d.maxPercent*len(m) && !(d.alwaysEjectOne && active == 0) {
		return
	}
	base := int64(d.base)
	// Envoy decrements the multiplier on each interval tick at least
	// base_ejection_time after the unejection; count those ticks now.
	if u := h.until.Load(); u != 0 {
		if since := now - u; since >= base {
			h.backoff = max(0, h.backoff-1-(since-base)/int64(d.interval))
		}
	}
	if base*h.backoff < int64(d.maxEjection)+base {
		h.backoff++
	}
	h.until.Store(now + min(base*h.backoff, int64(d.maxEjection)))
	d.ejections.Add(1)
}

// Stats is a snapshot for metrics and debugging.
type Stats struct {
	Endpoints      int    // known endpoints
	Ejected        int    // endpoints ejected now (weft_proxy_outlier_ejected)
	EjectionsTotal uint64 // ejections since New (weft_proxy_outlier_ejections_total)
}

// Stats counts the endpoints ejected now; it is O(endpoints) and takes
// the ejection lock (so the count agrees with ejection decisions), meant
// for a metrics scrape, not the request path.
func (d *Detector) Stats() Stats {
	if d == nil {
		return Stats{}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	m := *d.hosts.Load()
	now := d.elapsed()
	s := Stats{Endpoints: len(m), EjectionsTotal: d.ejections.Load()}
	for _, h := range m {
		if h.until.Load() > now {
			s.Ejected++
		}
	}
	return s
}
