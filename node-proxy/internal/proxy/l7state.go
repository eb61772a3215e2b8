package proxy

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/node-proxy/internal/l7/lb"
	"github.com/weftmesh/weft/node-proxy/internal/l7/outlier"
	"github.com/weftmesh/weft/node-proxy/internal/l7/retry"
	"github.com/weftmesh/weft/node-proxy/internal/meshcfg"
)

// clusters holds the node-wide L7 state of each upstream cluster: its
// load balancer, outlier detector, retry budget and request count. It
// outlives configuration generations: a new generation rebuilds the
// picker and detector keeping what they know of addresses still present.
type clusters struct {
	m sync.Map // cluster name → *clusterState
}

// clusterState is one cluster's state; view is swapped whole when the
// cluster's endpoints or policy change.
type clusterState struct {
	name     string
	mu       sync.Mutex // serializes refresh
	view     atomic.Pointer[clusterView]
	inflight atomic.Int64
	conns    atomic.Int64 // upstream connections open
}

// clusterView is the state built for one generation of a cluster.
type clusterView struct {
	src     *meshcfg.Cluster
	addrs   []string
	picker  lb.Picker
	outlier *outlier.Detector // nil: outlier detection off
	budget  *retry.Budget
	policy  meshcfg.ClusterPolicy
}

// state returns the current state of cl, rebuilding the view if cl is a
// newer generation than the one it was built for.
func (cs *clusters) state(cl *meshcfg.Cluster) (*clusterState, *clusterView) {
	var st *clusterState
	if x, ok := cs.m.Load(cl.Name); ok {
		st = x.(*clusterState)
	} else {
		x, _ := cs.m.LoadOrStore(cl.Name, &clusterState{name: cl.Name})
		st = x.(*clusterState)
	}
	if v := st.view.Load(); v != nil && v.src == cl {
		return st, v
	}
	return st, st.refresh(cl)
}

func (st *clusterState) refresh(cl *meshcfg.Cluster) *clusterView {
	st.mu.Lock()
	defer st.mu.Unlock()
	old := st.view.Load()
	if old != nil && old.src == cl {
		return old
	}
	v := &clusterView{src: cl, policy: cl.Policy, addrs: make([]string, len(cl.Endpoints))}
	for i, ep := range cl.Endpoints {
		v.addrs[i] = ep.Addr.String()
	}
	pol := cl.Policy
	cfg := lb.Config{Choices: pol.LBChoices, Decay: pol.LBDecay}
	switch {
	case old != nil && old.policy.LB == pol.LB && old.policy.LBChoices == pol.LBChoices && old.policy.LBDecay == pol.LBDecay:
		v.picker = old.picker.Rebuild(v.addrs)
	case pol.LB == meshcfg.LBRoundRobin:
		v.picker = lb.NewRoundRobin(v.addrs, cfg)
	case pol.LB == meshcfg.LBLeastRequest:
		v.picker = lb.NewLeastRequest(v.addrs, cfg)
	default:
		v.picker = lb.NewPeakEWMA(v.addrs, cfg)
	}
	switch {
	case pol.Outlier == nil:
	case old != nil && old.outlier != nil && proto.Equal(old.policy.Outlier, pol.Outlier):
		v.outlier = old.outlier
	default:
		v.outlier, _ = outlier.New(pol.Outlier, nil) // checked by meshcfg
	}
	if v.outlier != nil {
		v.outlier.SetEndpoints(v.addrs)
	}
	if old != nil && old.policy.Budget.Percent == pol.Budget.Percent && old.policy.Budget.MinPerSecond == pol.Budget.MinPerSecond {
		v.budget = old.budget
	} else {
		v.budget = retry.NewBudget(pol.Budget)
	}
	st.view.Store(v)
	return v
}

// upConn is a kept-alive HTTP/1.1 connection to an endpoint: a tunnel
// stream or a plain TCP connection.
type upConn struct {
	c     net.Conn
	br    *bufio.Reader
	ep    netip.AddrPort
	st    *clusterState
	idle  time.Time // when it was put back
	limit time.Duration
}

func (u *upConn) close() {
	u.c.Close()
	u.st.conns.Add(-1)
}

// upPool keeps a pod's idle upstream HTTP/1.1 connections by endpoint.
type upPool struct {
	mu     sync.Mutex
	idle   map[netip.AddrPort][]*upConn
	closed bool
}

// maxIdlePerEndpoint bounds the idle connections a pod keeps to one
// endpoint.
const maxIdlePerEndpoint = 64

// get returns the most recently used idle connection to ep, if any.
func (p *upPool) get(ep netip.AddrPort) *upConn {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.idle[ep]
	for len(l) > 0 {
		u := l[len(l)-1]
		l[len(l)-1] = nil
		l = l[:len(l)-1]
		if now.Sub(u.idle) < u.limit {
			p.idle[ep] = l
			return u
		}
		go u.close()
	}
	delete(p.idle, ep)
	return nil
}

// put keeps u for reuse, or closes it.
func (p *upPool) put(u *upConn) {
	u.idle = time.Now()
	p.mu.Lock()
	if p.closed || len(p.idle[u.ep]) >= maxIdlePerEndpoint {
		p.mu.Unlock()
		u.close()
		return
	}
	if p.idle == nil {
		p.idle = map[netip.AddrPort][]*upConn{}
	}
	p.idle[u.ep] = append(p.idle[u.ep], u)
	p.mu.Unlock()
}

// closeAll closes every idle connection and refuses new ones.
func (p *upPool) closeAll() {
	p.mu.Lock()
	p.closed = true
	all := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, l := range all {
		for _, u := range l {
			u.close()
		}
	}
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// outlierCollector reports each cluster's outlier detection state:
// weft_proxy_outlier_ejected (endpoints ejected now) and
// weft_proxy_outlier_ejections_total.
type outlierCollector struct{ cs *clusters }

var (
	descEjected = prometheus.NewDesc("weft_proxy_outlier_ejected",
		"Endpoints of the cluster ejected by outlier detection now, on this node.", []string{"cluster"}, nil)
	descEjections = prometheus.NewDesc("weft_proxy_outlier_ejections_total",
		"Ejections by outlier detection since the node proxy started.", []string{"cluster"}, nil)
)

func (c outlierCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descEjected
	ch <- descEjections
}

func (c outlierCollector) Collect(ch chan<- prometheus.Metric) {
	c.cs.m.Range(func(k, v any) bool {
		view := v.(*clusterState).view.Load()
		if view == nil || view.outlier == nil {
			return true
		}
		s := view.outlier.Stats()
		ch <- prometheus.MustNewConstMetric(descEjected, prometheus.GaugeValue, float64(s.Ejected), k.(string))
		ch <- prometheus.MustNewConstMetric(descEjections, prometheus.CounterValue, float64(s.EjectionsTotal), k.(string))
		return true
	})
}
