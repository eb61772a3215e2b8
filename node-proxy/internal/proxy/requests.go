package proxy

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/weftmesh/weft/node-proxy/internal/meshcfg"
)

// reqRecord follows one L7 request on the source node proxy, for its
// metrics, access log line and span.
type reqRecord struct {
	start    time.Time
	sp       *meshcfg.ServicePort
	cl       *meshcfg.Cluster
	ep       *meshcfg.Endpoint // the last attempt's endpoint
	attempts int
	fault    string
	trace    *reqTrace
	// For the access log only (filled when it is on).
	method, path, authority string
}

// finish records a request that ended with status (reason: a local
// reply's).
func (pd *pod) finish(rec *reqRecord, status int, reason string) {
	p := pd.p
	d := time.Since(rec.start)
	l := requestLabels{
		srcWorkload: pd.workloadName(), srcNamespace: pd.namespace,
		code: status,
	}
	if rec.sp != nil {
		l.dstService = rec.sp.Service
	}
	if rec.cl != nil {
		l.dstBackend = rec.cl.Service
	}
	if rec.ep != nil && reason == "" {
		l.dstWorkload, l.dstNamespace = endpointWorkload(rec.ep)
	}
	p.reqMetrics.observe(l, d)
	if p.accessLog != nil {
		p.accessLog.write(pd, rec, status, reason, d)
	}
	rec.trace.end(status, reason)
	rec.trace = nil
}

// workloadName is the pod's workload (its controller) from the
// configuration, else its name.
func (pd *pod) workloadName() string {
	if mc := pd.p.mesh.Load(); mc != nil {
		if w, ok := mc.Workload(pd.key); ok && w.GetWorkload() != "" {
			return w.GetWorkload()
		}
	}
	_, name, _ := strings.Cut(pd.key, "/")
	return name
}

// endpointWorkload is an endpoint's workload and namespace ("unknown"
// outside the mesh).
func endpointWorkload(ep *meshcfg.Endpoint) (workload, namespace string) {
	ns, pod, ok := strings.Cut(ep.Pod, "/")
	if !ok {
		return "unknown", "unknown"
	}
	if ep.Workload != "" {
		return ep.Workload, ns
	}
	return pod, ns
}

// requestLabels are the labels of weft_requests_total and
// weft_request_duration_seconds.
type requestLabels struct {
	srcWorkload, srcNamespace, dstService, dstBackend, dstWorkload, dstNamespace string
	code                                                                         int
}

type requestSeries struct {
	count    prometheus.Counter
	duration prometheus.Observer
}

// reqMetrics are the per-request series, reported by the source node
// proxy, with a cache of the series by label set so that a request costs
// one map lookup.
type reqMetrics struct {
	total    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	cache    sync.Map // requestLabels → *requestSeries
}

var requestLabelNames = []string{"reporter", "source_workload", "source_namespace", "destination_service",
	"destination_backend", "destination_workload", "destination_namespace", "response_code"}

func newReqMetrics(reg prometheus.Registerer) (*reqMetrics, error) {
	m := &reqMetrics{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_requests_total",
			Help: "HTTP requests and gRPC calls, reported by the source node proxy: by source and destination workload and namespace, destination Service, backend Service (the route's weighted backend) and response code.",
		}, requestLabelNames),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "weft_request_duration_seconds",
			Help:    "Time from the request's head to the end of the response, on the source node proxy, with weft_requests_total's labels.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, requestLabelNames),
	}
	for _, c := range []prometheus.Collector{m.total, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *reqMetrics) observe(l requestLabels, d time.Duration) {
	x, ok := m.cache.Load(l)
	if !ok {
		vals := []string{"source", l.srcWorkload, l.srcNamespace, l.dstService, l.dstBackend, l.dstWorkload, l.dstNamespace, strconv.Itoa(l.code)}
		x, _ = m.cache.LoadOrStore(l, &requestSeries{count: m.total.WithLabelValues(vals...), duration: m.duration.WithLabelValues(vals...)})
	}
	s := x.(*requestSeries)
	s.count.Inc()
	s.duration.Observe(d.Seconds())
}

// accessLog writes one JSON line per request (opt-in, --access-log).
type accessLog struct {
	mu sync.Mutex
	w  *bufio.Writer
	f  io.Closer
}

func openAccessLog(path string) (*accessLog, error) {
	if path == "" {
		return nil, nil
	}
	if path == "-" {
		return &accessLog{w: bufio.NewWriter(os.Stdout)}, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	return &accessLog{w: bufio.NewWriter(f), f: f}, nil
}

// accessEntry is one access log line.
type accessEntry struct {
	Time           string  `json:"time"`
	DurationMs     float64 `json:"duration_ms"`
	Method         string  `json:"method"`
	Path           string  `json:"path"`
	Authority      string  `json:"authority"`
	Status         int     `json:"status"`
	LocalReply     string  `json:"local_reply,omitempty"`
	Attempts       int     `json:"attempts"`
	Fault          string  `json:"fault,omitempty"`
	SourcePod      string  `json:"source_pod"`
	Service        string  `json:"service,omitempty"`
	Backend        string  `json:"backend,omitempty"`
	Upstream       string  `json:"upstream,omitempty"`
	UpstreamPod    string  `json:"upstream_pod,omitempty"`
	UpstreamID     string  `json:"upstream_identity,omitempty"`
	TraceID        string  `json:"trace_id,omitempty"`
	SpanID         string  `json:"span_id,omitempty"`
	SourceIdentity string  `json:"source_identity,omitempty"`
}

func (a *accessLog) write(pd *pod, rec *reqRecord, status int, reason string, d time.Duration) {
	e := accessEntry{
		Time: rec.start.UTC().Format(time.RFC3339Nano), DurationMs: float64(d.Microseconds()) / 1000,
		Method: rec.method, Path: rec.path, Authority: rec.authority, Status: status, LocalReply: reason,
		Attempts: rec.attempts, Fault: rec.fault, SourcePod: pd.key,
	}
	if id, ok := pd.identity(); ok {
		e.SourceIdentity = id
	}
	if rec.sp != nil {
		e.Service = rec.sp.Service
	}
	if rec.cl != nil {
		e.Backend = rec.cl.Service
	}
	if rec.ep != nil {
		e.Upstream, e.UpstreamPod, e.UpstreamID = rec.ep.Addr.String(), rec.ep.Pod, rec.ep.Identity.String()
	}
	if rec.trace != nil {
		sc := trace.SpanContextFromContext(rec.trace.ctx)
		e.TraceID, e.SpanID = sc.TraceID().String(), sc.SpanID().String()
	}
	line, err := json.Marshal(e)
	if err != nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	_, _ = a.w.Write(append(line, '\n'))
	if a.w.Buffered() > 32<<10 {
		_ = a.w.Flush()
	}
}

// flushLoop flushes the log every second until stop is closed (close
// flushes the rest).
func (a *accessLog) flushLoop(stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-stop:
			return
		}
		a.mu.Lock()
		_ = a.w.Flush()
		a.mu.Unlock()
	}
}

func (a *accessLog) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	_ = a.w.Flush()
	if a.f != nil {
		_ = a.f.Close()
	}
}
