package xds

import (
	"context"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// streamKey names a stream: the state-of-the-world and delta servers
// number their streams independently, so IDs repeat across protocols.
type streamKey struct {
	protocol string
	id       int64
}

// stream is an open stream whose caller was authenticated.
type stream struct {
	node     string               // from the client certificate
	accepted bool                 // a request with the right node.id arrived; counted as connected
	sync     map[string]*TypeSync // by type URL: last response and its answer
}

// callbacks are go-control-plane's hooks into every stream. The server
// calls them synchronously on the stream's goroutine; an error ends the
// stream with that error's gRPC status.
//
// Authentication happens at open, where the stream's context (and so the
// TLS peer) is available; the node.id check happens on every request,
// where the node is. A delta request may omit the node after the first
// one, and the delta server calls OnStreamDeltaRequest before it fills in
// the node from earlier requests; the state-of-the-world server fills it
// in before calling OnStreamRequest.
type callbacks struct{ s *Server }

var _ serverv3.Callbacks = callbacks{}

func (c callbacks) OnStreamOpen(ctx context.Context, id int64, _ string) error {
	return c.s.open(ctx, streamKey{protocolSotW, id})
}

func (c callbacks) OnStreamClosed(id int64, _ *corev3.Node) {
	c.s.closed(streamKey{protocolSotW, id})
}

func (c callbacks) OnStreamRequest(id int64, req *discoverygrpc.DiscoveryRequest) error {
	key := streamKey{protocolSotW, id}
	if err := c.s.request(key, req.GetNode()); err != nil {
		return err
	}
	c.s.answered(key, req.GetTypeUrl(), req.GetResponseNonce(), req.GetErrorDetail() != nil, req.GetErrorDetail().GetMessage())
	return nil
}

func (c callbacks) OnStreamResponse(_ context.Context, id int64, _ *discoverygrpc.DiscoveryRequest, resp *discoverygrpc.DiscoveryResponse) {
	c.s.sent(streamKey{protocolSotW, id}, resp.GetTypeUrl(), resp.GetVersionInfo(), resp.GetNonce())
	c.s.metrics.pushes.WithLabelValues(typeLabel(resp.GetTypeUrl())).Inc()
}

// go-control-plane's delta server is not registered (serveDelta serves
// delta streams, and calls open, request and closed itself); refuse its
// streams should it ever be.
func (c callbacks) OnDeltaStreamOpen(context.Context, int64, string) error {
	return status.Error(codes.Unimplemented, "go-control-plane's delta server is not in use")
}

func (c callbacks) OnDeltaStreamClosed(int64, *corev3.Node) {}

func (c callbacks) OnStreamDeltaRequest(int64, *discoverygrpc.DeltaDiscoveryRequest) error {
	return status.Error(codes.Unimplemented, "go-control-plane's delta server is not in use")
}

func (c callbacks) OnStreamDeltaResponse(int64, *discoverygrpc.DeltaDiscoveryRequest, *discoverygrpc.DeltaDiscoveryResponse) {
}

// The REST (fetch) API is not registered; refuse it should it ever be.
func (c callbacks) OnFetchRequest(context.Context, *discoverygrpc.DiscoveryRequest) error {
	return status.Error(codes.Unimplemented, "xDS over REST is not served")
}

func (c callbacks) OnFetchResponse(*discoverygrpc.DiscoveryRequest, *discoverygrpc.DiscoveryResponse) {
}

// open authenticates a new stream.
func (s *Server) open(ctx context.Context, key streamKey) error {
	node, err := s.cfg.Authenticate(ctx)
	if err != nil {
		return s.reject(key, "", asRefusal(err))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.streams[key] = &stream{node: node}
	return nil
}

// request checks the node a request names against the stream's
// certificate. The first request that passes makes the stream count as
// connected; the node's first such stream asks Run for a snapshot.
func (s *Server) request(key streamKey, node *corev3.Node) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[key]
	if st == nil { // open refused it; the server never gets here
		return status.Error(codes.Internal, "unknown stream")
	}
	switch {
	case node == nil && st.accepted: // delta: the node was on an earlier request
	case node.GetId() == "":
		return s.reject(key, st.node, refuse(codes.PermissionDenied, ReasonNodeMismatch,
			"the request has no node.id; it must be %q, the node of the client certificate", st.node))
	case node.GetId() != st.node:
		return s.reject(key, st.node, refuse(codes.PermissionDenied, ReasonNodeMismatch,
			"node.id %q does not match the client certificate's node %q", node.GetId(), st.node))
	}
	if st.accepted {
		return nil
	}
	st.accepted = true
	s.metrics.clients.WithLabelValues(key.protocol).Inc()
	s.nodes[st.node]++
	if s.nodes[st.node] == 1 {
		s.pending[st.node] = time.Now()
		s.signalSync()
	}
	return nil
}

// acceptDelta registers an accepted delta stream to be woken, on wake,
// whenever its node gets a new snapshot, and returns the node.
func (s *Server) acceptDelta(key streamKey, wake chan<- struct{}) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[key]
	if s.wakes[st.node] == nil {
		s.wakes[st.node] = map[streamKey]chan<- struct{}{}
	}
	s.wakes[st.node][key] = wake
	return st.node
}

// closed forgets a stream; when it was the node's last, Run clears the
// node's snapshot.
func (s *Server) closed(key streamKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[key]
	delete(s.streams, key)
	if st == nil || !st.accepted {
		return
	}
	if w := s.wakes[st.node]; w != nil {
		delete(w, key)
		if len(w) == 0 {
			delete(s.wakes, st.node)
		}
	}
	s.metrics.clients.WithLabelValues(key.protocol).Dec()
	s.nodes[st.node]--
	if s.nodes[st.node] == 0 {
		delete(s.nodes, st.node)
		s.pending[st.node] = time.Now()
		s.signalSync()
	}
}

// reject counts and logs a refusal; node is the certificate's, if known.
func (s *Server) reject(key streamKey, node string, r *Refusal) error {
	s.metrics.rejected.WithLabelValues(r.Reason).Inc()
	s.log.Warn("xDS stream refused", logKeyProtocol, key.protocol, logKeyNode, node, logKeyReason, r.Reason, logKeyErr, r.Msg)
	return r
}
