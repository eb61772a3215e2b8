package xdsclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/weftmesh/weft/certs"
)

// Log keys.
const (
	logKeyAddr    = "addr"
	logKeyType    = "type"
	logKeyNonce   = "nonce"
	logKeyErr     = "err"
	logKeyBackoff = "backoff"
)

// Log messages.
const (
	msgStreamEnded = "xDS stream ended; reconnecting"
)

// wildcard subscribes to every resource of a type.
const wildcard = "*"

// Client is a delta ADS client. Create it with New and call Run.
type Client struct {
	cfg     Config
	types   map[string]protoreflect.MessageType // subscribed, by type URL
	tls     *tls.Config
	metrics *metrics
	log     *slog.Logger

	state     atomic.Pointer[State] // the last accepted state; never nil
	connected atomic.Bool
	running   atomic.Bool
}

// New checks cfg and returns a Client holding an empty state.
func New(cfg Config) (*Client, error) {
	types, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer, cfg.Types)
	if err != nil {
		return nil, err
	}
	// The config reads the SVID and the bundle at every handshake, so a
	// renewed certificate or a rotated root applies to the next connection.
	tc := tlsconfig.MTLSClientConfig(cfg.SVID, cfg.Bundle, tlsconfig.AuthorizeID(certs.ControlPlaneID(cfg.TrustDomain)))
	tc.MinVersion = tls.VersionTLS13
	c := &Client{cfg: cfg, types: types, tls: tc, metrics: m, log: cfg.Logger}
	s := newState(append([]string(nil), cfg.Types...))
	c.state.Store(&s)
	return c, nil
}

// State returns the last accepted state. It survives disconnections.
func (c *Client) State() State { return *c.state.Load() }

// Connected reports whether the stream to the control plane is up: a
// response was received on it and it has not ended.
func (c *Client) Connected() bool { return c.connected.Load() }

// Synced reports whether every type was received at least once, on this
// stream or an earlier one.
func (c *Client) Synced() bool { return c.State().Complete() }

// Run connects to the control plane and keeps a stream open, reconnecting
// with backoff, until ctx ends; then it returns nil. The state is kept
// while disconnected. Run may be called once at a time.
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("xdsclient: Run is already running")
	}
	defer c.running.Store(false)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	attempt := 0
	for {
		delivered, err := c.stream(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if delivered {
			attempt = 0
		}
		wait := backoff(attempt, c.cfg.MinBackoff, c.cfg.MaxBackoff, rand.Float64())
		attempt++
		c.log.Warn(msgStreamEnded, logKeyAddr, c.cfg.Addr, logKeyErr, err, logKeyBackoff, wait)
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		c.metrics.reconnects.Inc()
	}
}

// stream runs one connection and one stream until either fails. It
// reports whether the server sent anything, which proves it accepted the
// client.
func (c *Client) stream(ctx context.Context) (delivered bool, err error) {
	// A connection per stream: the reconnect schedule is Run's alone (a
	// kept ClientConn would add gRPC's own connection backoff), and every
	// stream starts with a fresh handshake.
	conn, err := grpc.NewClient(c.cfg.Addr,
		grpc.WithTransportCredentials(credentials.NewTLS(c.tls)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(c.cfg.MaxMessageBytes)))
	if err != nil {
		return false, fmt.Errorf("connect %s: %w", c.cfg.Addr, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		return false, fmt.Errorf("open stream: %w", err)
	}
	defer func() {
		if delivered {
			c.setConnected(false)
		}
	}()
	held := c.State()
	node := &corev3.Node{Id: c.cfg.Node}
	for _, t := range c.cfg.Types {
		req := &discoveryv3.DeltaDiscoveryRequest{
			Node:                    node,
			TypeUrl:                 t,
			ResourceNamesSubscribe:  []string{wildcard},
			InitialResourceVersions: held.Versions(t),
		}
		if err := s.Send(req); err != nil {
			return false, sendError(s, err)
		}
	}
	for {
		resp, err := s.Recv()
		if err != nil {
			return delivered, fmt.Errorf("receive: %w", err)
		}
		if !delivered {
			delivered = true
			c.setConnected(true)
			c.log.Info("xDS stream up", logKeyAddr, c.cfg.Addr)
		}
		req := c.handle(resp)
		if req == nil {
			continue
		}
		if err := s.Send(req); err != nil {
			return delivered, sendError(s, err)
		}
	}
}

// sendError returns the reason a Send failed: io.EOF means the stream
// ended, and Recv tells why.
func sendError(s discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient, err error) error {
	if errors.Is(err, io.EOF) {
		_, err = s.Recv()
	}
	return fmt.Errorf("send: %w", err)
}

func (c *Client) setConnected(up bool) {
	c.connected.Store(up)
	if up {
		c.metrics.connected.Set(1)
	} else {
		c.metrics.connected.Set(0)
	}
}

// handle applies resp and returns its ACK or NACK, or nil for a response
// of a type not subscribed to (answering would subscribe to it).
func (c *Client) handle(resp *discoveryv3.DeltaDiscoveryResponse) *discoveryv3.DeltaDiscoveryRequest {
	t := resp.GetTypeUrl()
	mt, ok := c.types[t]
	if !ok {
		c.log.Warn("ignored a response of a type not subscribed to", logKeyType, t, logKeyNonce, resp.GetNonce())
		return nil
	}
	next, changed, err := c.State().update(resp, mt)
	if err == nil && changed && c.cfg.Apply != nil {
		if err = c.cfg.Apply(next); err != nil {
			err = fmt.Errorf("%s: %w", typeLabel(t), err)
		}
	}
	req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, ResponseNonce: resp.GetNonce()}
	if err != nil {
		c.metrics.updates.WithLabelValues(typeLabel(t), resultNACK).Inc()
		c.log.Warn("rejected an xDS update; keeping the previous state", logKeyType, t, logKeyNonce, resp.GetNonce(), logKeyErr, err)
		req.ErrorDetail = status.New(codes.InvalidArgument, err.Error()).Proto()
		return req
	}
	if changed {
		c.state.Store(&next)
	}
	c.metrics.updates.WithLabelValues(typeLabel(t), resultACK).Inc()
	return req
}
