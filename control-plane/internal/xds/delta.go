package xds

import (
	"cmp"
	"context"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// The delta ADS stream is served here rather than by go-control-plane:
// its snapshot cache diffs, for every stream and every type, the whole
// snapshot against a per-stream map of what the client holds, and builds a
// new such map, on each change: thousands of resources times 1,000 nodes
// per change at scale, under the cache's global lock. Here a stream that holds exactly a shared resource set
// (the usual case: a wildcard subscription) is answered from the diff of
// two sets, computed once for all streams (setCache.diff), and the
// resources go out as the pre-serialized messages of the set.
//
// The protocol is go-control-plane's (v0.14.0) delta server's, which node
// proxies were written against:
//
//   - the first request of a type opens its subscription: wildcard when it
//     names nothing (legacy wildcard) or names "*"; its
//     initial_resource_versions are what the client holds;
//   - resource_names_subscribe and _unsubscribe change it; unsubscribing
//     a name while wildcard makes the server send that resource again (or
//     its removal);
//   - every request of a type is answered at once with what changed since
//     the last response, if anything did, and a wildcard request without a
//     response_nonce is answered even when nothing did;
//   - a new snapshot is sent for a type only when the previous response of
//     that type has been answered by a request (ACK or NACK): one response
//     per type in flight, and changes in the meantime are coalesced;
//   - a NACK does not resend: the client is assumed to hold what it was
//     sent, and gets the next change.

// deltaStream is one delta ADS stream, served by one goroutine.
type deltaStream struct {
	s     *Server
	ctx   context.Context // ends with the stream or the server
	key   streamKey
	str   discoverygrpc.AggregatedDiscoveryService_DeltaAggregatedResourcesServer
	node  string        // from the certificate; valid once a request is accepted
	wake  chan struct{} // the node's snapshot changed; capacity 1, coalesces
	types map[string]*deltaType
	order []*deltaType // types in the order responses to one snapshot go out
	nonce int64        // of the last response

	loansMu sync.Mutex // guards the field below
	loans   []nonceLoan
}

// nonceLoan is the budget a response holds until its client answers it.
type nonceLoan struct {
	nonce int64
	loan  *loan
}

func (d *deltaStream) lend(nonce int64, l *loan) {
	d.loansMu.Lock()
	defer d.loansMu.Unlock()
	d.loans = append(d.loans, nonceLoan{nonce, l})
}

// repay returns the budget of the responses up to nonce: a client that
// answers a response has read every one before it.
func (d *deltaStream) repay(nonce int64) {
	d.loansMu.Lock()
	defer d.loansMu.Unlock()
	i := 0
	for ; i < len(d.loans) && d.loans[i].nonce <= nonce; i++ {
		d.loans[i].loan.repay()
	}
	d.loans = slices.Delete(d.loans, 0, i)
}

// deltaType is a stream's subscription to one type and what the client
// holds of it: exactly the versions of held (the shared set sent last, nil
// for nothing) when own is nil, otherwise own.
type deltaType struct {
	url            string
	wildcard       bool
	legacyWildcard bool                // no name subscribed yet: wildcard by default (legacy)
	names          map[string]struct{} // subscribed explicitly
	held           *resourceSet
	own            map[string]string // name -> version; must not be shared
	inFlight       bool              // a response awaits the client's next request
	answerEmpty    bool              // answer even with nothing to send
}

// explicitWildcard is the name that subscribes to every resource of a type.
const explicitWildcard = "*"

// maxQueuedRequests is how many requests of a stream are read ahead of
// their handling.
const maxQueuedRequests = 64

// serveDelta serves one delta ADS stream until the client or the server
// ends it.
func (s *Server) serveDelta(str discoverygrpc.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	d := &deltaStream{s: s, key: streamKey{protocolDelta, s.deltaIDs.Add(1)}, str: str,
		wake: make(chan struct{}, 1), types: map[string]*deltaType{}}
	defer s.closed(d.key)
	if err := s.open(str.Context(), d.key); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(str.Context())
	defer cancel()
	defer context.AfterFunc(s.life, cancel)()
	d.ctx = ctx
	defer d.repay(math.MaxInt64)
	// Buffered, so that the reader below keeps reading (and repaying) while
	// the loop waits for the budget: a client sends one answer per
	// response, and has at most one response per type in flight, plus
	// those answering its own subscription changes.
	reqs := make(chan *discoverygrpc.DeltaDiscoveryRequest, maxQueuedRequests)
	go func() {
		defer close(reqs)
		for {
			req, err := str.Recv()
			if err != nil {
				return
			}
			// Here rather than in the loop below, which may be waiting for
			// the budget that this very answer gives back.
			if n, err := strconv.ParseInt(req.GetResponseNonce(), 10, 64); err == nil {
				d.repay(n)
			}
			select {
			case reqs <- req:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-s.life.Done():
			return nil
		case req, ok := <-reqs:
			if !ok {
				return nil
			}
			if err := d.request(req); err != nil {
				return err
			}
		case <-d.wake:
			for _, t := range d.order {
				if !t.inFlight {
					if err := d.respond(t); err != nil {
						return err
					}
				}
			}
		}
	}
}

// request applies one request: authorization, subscription changes, and
// an answer if there is anything to send.
func (d *deltaStream) request(req *discoverygrpc.DeltaDiscoveryRequest) error {
	if err := d.s.request(d.key, req.GetNode()); err != nil {
		return err
	}
	if d.node == "" {
		d.node = d.s.acceptDelta(d.key, d.wake)
	}
	url := req.GetTypeUrl()
	if url == "" {
		return status.Errorf(codes.InvalidArgument, "type URL is required for ADS")
	}
	t := d.types[url]
	if t == nil {
		t = &deltaType{url: url, legacyWildcard: true, wildcard: len(req.GetResourceNamesSubscribe()) == 0,
			names: map[string]struct{}{}}
		if v := req.GetInitialResourceVersions(); len(v) > 0 {
			t.own = maps.Clone(v)
		}
		d.types[url] = t
		d.order = append(d.order, t)
		slices.SortFunc(d.order, func(a, b *deltaType) int { return cmp.Compare(typeRank(a.url), typeRank(b.url)) })
	}
	d.s.answered(d.key, url, req.GetResponseNonce(), req.GetErrorDetail() != nil, req.GetErrorDetail().GetMessage())
	if detail := req.GetErrorDetail(); detail != nil && req.GetResponseNonce() != "" {
		d.s.log.Warn("xDS client rejected an update", logKeyNode, d.node, logKeyType, url,
			logKeyNonce, req.GetResponseNonce(), logKeyErr, detail.GetMessage())
	}
	t.update(req.GetResourceNamesSubscribe(), req.GetResourceNamesUnsubscribe())
	t.inFlight = false
	if t.wildcard && req.GetResponseNonce() == "" {
		t.answerEmpty = true
	}
	return d.respond(t)
}

// typeRank orders the responses to one snapshot so that a client applying
// them as they come sees a resource's dependencies first: clusters,
// endpoints, listeners, routes, then the others.
func typeRank(url string) string {
	switch url {
	case resourcev3.ClusterType:
		return "0"
	case resourcev3.EndpointType:
		return "1"
	case resourcev3.ListenerType:
		return "2"
	case resourcev3.RouteType:
		return "3"
	}
	return "4" + url
}

// update changes the subscription as go-control-plane's
// Subscription.UpdateResourceSubscriptions does.
func (t *deltaType) update(subscribe, unsubscribe []string) {
	if t.legacyWildcard {
		if len(subscribe) == 0 {
			return // still legacy wildcard
		}
		t.legacyWildcard = false
	}
	for _, name := range subscribe {
		if name == explicitWildcard {
			t.wildcard = true
			continue
		}
		t.names[name] = struct{}{}
	}
	for _, name := range unsubscribe {
		if name == explicitWildcard {
			t.wildcard = false
			continue
		}
		if _, ok := t.names[name]; ok && t.wildcard {
			// Still covered by the wildcard: the client must be told
			// whether it exists, so forget its version to resend it (or
			// its removal).
			t.ownCopy()[name] = ""
		} else if _, held := t.heldVersion(name); held {
			delete(t.ownCopy(), name) // no longer of interest: not removed later
		}
		delete(t.names, name)
	}
}

// ownCopy makes what the client holds private to the stream, to change it.
func (t *deltaType) ownCopy() map[string]string {
	if t.own == nil {
		t.own = map[string]string{}
		if t.held != nil {
			t.own = maps.Clone(t.held.versions)
		}
		t.held = nil
	}
	return t.own
}

func (t *deltaType) heldVersion(name string) (string, bool) {
	if t.own != nil {
		v, ok := t.own[name]
		return v, ok
	}
	if t.held != nil {
		v, ok := t.held.versions[name]
		return v, ok
	}
	return "", false
}

// respond sends what changed in type t between what the client holds and
// the node's current snapshot, if anything did or an answer is owed.
func (d *deltaStream) respond(t *deltaType) error {
	if d.node == "" {
		return nil
	}
	snap := d.s.current(d.node)
	if snap == nil {
		return nil // answered once the node's first snapshot is set
	}
	set := snap.sets[t.url]
	if set == nil {
		set = noResources
	}
	var resources []*discoverygrpc.Resource
	var removed []string
	switch {
	case t.wildcard && t.own == nil:
		// The common case: the client holds a shared set.
		if t.held != set {
			if t.held == nil || t.held.version != set.version {
				diff := d.s.sets.diff(t.held, set)
				resources, removed = diff.resources, diff.removed
			}
			t.held = set
		}
	case t.wildcard:
		resources, removed = changes(t.own, set, nil)
		t.own, t.held = nil, set // the client now holds exactly set
	default:
		held := t.own
		if held == nil && t.held != nil {
			held = t.held.versions
		}
		resources, removed = changes(held, set, t.names)
		next := make(map[string]string, len(t.names))
		for name := range t.names {
			if v, ok := set.versions[name]; ok {
				next[name] = v
			}
		}
		t.own, t.held = next, nil
	}
	if len(resources) == 0 && len(removed) == 0 && !t.answerEmpty {
		return nil
	}
	d.nonce++
	resp := &discoverygrpc.DeltaDiscoveryResponse{
		SystemVersionInfo: set.version,
		Resources:         resources,
		TypeUrl:           t.url,
		RemovedResources:  removed,
		Nonce:             strconv.FormatInt(d.nonce, 10),
	}
	l, err := d.s.budget.take(d.ctx, int64(proto.Size(resp)))
	if err != nil {
		return nil // the stream or the server is ending
	}
	d.lend(d.nonce, l)
	d.s.sent(d.key, t.url, set.version, resp.Nonce)
	t.inFlight, t.answerEmpty = true, false
	d.s.metrics.pushes.WithLabelValues(typeLabel(t.url)).Inc()
	return d.str.Send(resp)
}

// changes lists the resources of set whose version differs from held, and
// the names in held that set lacks, both sorted by name. With names, only
// those names count.
func changes(held map[string]string, set *resourceSet, names map[string]struct{}) ([]*discoverygrpc.Resource, []string) {
	var updated, removed []string
	if names == nil {
		for name, v := range set.versions {
			if hv, ok := held[name]; !ok || hv != v {
				updated = append(updated, name)
			}
		}
		for name := range held {
			if _, ok := set.versions[name]; !ok {
				removed = append(removed, name)
			}
		}
	} else {
		for name := range names {
			v, ok := set.versions[name]
			hv, wasHeld := held[name]
			switch {
			case ok && (!wasHeld || hv != v):
				updated = append(updated, name)
			case !ok && wasHeld:
				removed = append(removed, name)
			}
		}
	}
	slices.Sort(updated)
	slices.Sort(removed)
	resources := make([]*discoverygrpc.Resource, len(updated))
	for i, name := range updated {
		resources[i] = set.wire[name]
	}
	return resources, removed
}
