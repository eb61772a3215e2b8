package tunnel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"golang.org/x/net/http2"
)

// ClientConfig configures a Client. Zero durations and sizes mean the
// documented defaults.
type ClientConfig struct {
	// Bundle verifies servers. Required.
	Bundle x509bundle.Source
	// Dial opens the TCP connection to a server (a pod's IP and port
	// 15008). Nil means a plain TCP dial. In production it dials from the
	// node proxy with its socket mark.
	Dial func(ctx context.Context, addr netip.AddrPort) (net.Conn, error)
	// HandshakeTimeout bounds the TCP connect and the TLS handshake of a
	// new connection. Zero means 10s.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a pooled connection that carried no stream for
	// this long. Zero means 5m; negative means never.
	IdleTimeout time.Duration
	// KeepAliveInterval is how long a connection may be silent before we
	// PING it; KeepAliveTimeout how long we wait for any frame after the
	// PING before we declare it dead and replace it. Zero means 30s and
	// 10s; a negative interval turns PINGs off.
	KeepAliveInterval, KeepAliveTimeout time.Duration
	// MaxHeaderListSize bounds a response's decoded header list. Zero
	// means 16 KiB.
	MaxHeaderListSize uint32
	// Registerer receives the weft_tunnel_* metrics (side="outbound").
	// Nil means not registered.
	Registerer prometheus.Registerer
	// Logger logs handshake failures at debug level. Nil means none.
	Logger *slog.Logger
}

func (c ClientConfig) withDefaults() ClientConfig {
	if c.Dial == nil {
		d := net.Dialer{KeepAliveConfig: tcpKeepAlive}
		c.Dial = func(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
			return d.DialTCP(ctx, "tcp", netip.AddrPort{}, addr)
		}
	}
	c.HandshakeTimeout = orDefault(c.HandshakeTimeout, 10*time.Second)
	c.IdleTimeout = orDefault(c.IdleTimeout, 5*time.Minute)
	c.KeepAliveInterval = orDefault(c.KeepAliveInterval, 30*time.Second)
	c.KeepAliveTimeout = orDefault(c.KeepAliveTimeout, 10*time.Second)
	c.MaxHeaderListSize = orDefault(c.MaxHeaderListSize, 16<<10)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Client opens tunnel streams over pooled connections: one pool of
// HTTP/2 connections per (source identity, destination identity,
// destination address), each carrying as many streams as the server
// allows. It is safe for concurrent use.
type Client struct {
	cfg     ClientConfig
	connCfg connConfig
	m       *sideMetrics

	mu     sync.Mutex // guards the fields below
	hosts  map[poolKey]*host
	closed bool
}

// poolKey is what may share a connection: the TLS handshake proved src to
// the server and dst to us, on a connection to addr.
type poolKey struct {
	src, dst spiffeid.ID
	addr     netip.AddrPort
}

// host is the pool for one key.
type host struct {
	conns   []*conn
	dialing *dialCall // the connection being set up, if any
}

// dialCall is a connection being set up; waiters block on done.
type dialCall struct {
	done chan struct{}
	err  error
}

// maxDialAttempts bounds how often Dial retries a stream the server never
// processed (refused, above a GOAWAY, or on a connection that just died).
const maxDialAttempts = 3

// maxClientStreamID is the last stream ID a client may open.
const maxClientStreamID = 1<<31 - 1

// NewClient checks cfg and returns a Client.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.Bundle == nil {
		return nil, errors.New("tunnel client: Bundle is required")
	}
	cfg = cfg.withDefaults()
	m, err := newSideMetrics(cfg.Registerer, sideOutbound)
	if err != nil {
		return nil, fmt.Errorf("tunnel client metrics: %w", err)
	}
	return &Client{
		cfg: cfg,
		connCfg: connConfig{
			isClient:          true,
			maxHeaderListSize: cfg.MaxHeaderListSize,
			idleTimeout:       max(cfg.IdleTimeout, 0),
			keepAliveInterval: max(cfg.KeepAliveInterval, 0),
			keepAliveTimeout:  cfg.KeepAliveTimeout,
			metrics:           m,
		},
		m:     m,
		hosts: make(map[poolKey]*host),
	}, nil
}

// Dial opens a stream to authority (the original destination pod IP and
// port) through the node proxy listening at dstAddr (the pod IP and port
// 15008), which must prove dstID. src is the source workload's SVID,
// presented to the server. hdr is sent with the CONNECT.
//
// Errors: *StatusError when the server answered other than 200 (see the
// package documentation), *IdentityError when the server is someone else,
// *ConnError when the connection failed, or the context's error.
func (cl *Client) Dial(ctx context.Context, src *x509svid.SVID, dstID spiffeid.ID, dstAddr, authority netip.AddrPort, hdr Headers) (*Stream, error) {
	if src == nil || len(src.Certificates) == 0 || src.PrivateKey == nil {
		return nil, errors.New("tunnel dial: no source SVID")
	}
	if !authority.IsValid() || !dstAddr.IsValid() {
		return nil, fmt.Errorf("tunnel dial: invalid address %s or authority %s", dstAddr, authority)
	}
	key := poolKey{src: src.ID, dst: dstID, addr: dstAddr}
	auth := authority.String()
	var err error
	for range maxDialAttempts {
		var c *conn
		if c, err = cl.getConn(ctx, key, src); err != nil {
			return nil, err
		}
		var s *Stream
		if s, err = c.openStream(authority, auth, hdr); err == nil {
			if err = s.awaitResponse(ctx); err == nil {
				return s, nil
			}
		}
		if !isRetryable(err) || ctx.Err() != nil {
			break
		}
	}
	var r *retryable
	if errors.As(err, &r) {
		err = r.err
	}
	return nil, err
}

// getConn returns a connection for key with a stream slot reserved,
// dialing one if none has room.
func (cl *Client) getConn(ctx context.Context, key poolKey, src *x509svid.SVID) (*conn, error) {
	dials := 0
	cl.mu.Lock()
	for {
		if cl.closed {
			cl.mu.Unlock()
			return nil, &ConnError{Err: ErrClosed}
		}
		h := cl.hosts[key]
		if h == nil {
			h = &host{}
			cl.hosts[key] = h
		}
		if c := h.reserve(time.Now()); c != nil {
			cl.mu.Unlock()
			return c, nil
		}
		if h.dialing == nil {
			if dials == 2 {
				cl.mu.Unlock()
				return nil, fmt.Errorf("tunnel dial %s: no stream capacity on new connections", key.addr)
			}
			dials++
			h.dialing = &dialCall{done: make(chan struct{})}
			go cl.connect(key, src, h, h.dialing)
		}
		d := h.dialing
		cl.mu.Unlock()
		select {
		case <-d.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if d.err != nil {
			return nil, d.err
		}
		cl.mu.Lock()
	}
}

// reserve takes a stream slot on a usable connection, dropping unusable
// ones from the pool. cl.mu is held.
func (h *host) reserve(now time.Time) *conn {
	var found *conn
	kept := h.conns[:0]
	for _, c := range h.conns {
		ok, usable := c.reserve(now, found == nil)
		if ok {
			found = c
		}
		if usable {
			kept = append(kept, c)
		}
	}
	clear(h.conns[len(kept):])
	h.conns = kept
	return found
}

// connect sets up a connection for key and adds it to h.
func (cl *Client) connect(key poolKey, src *x509svid.SVID, h *host, d *dialCall) {
	c, err := cl.handshake(key, src)
	cl.mu.Lock()
	defer cl.mu.Unlock()
	h.dialing = nil
	d.err = err
	close(d.done)
	if err != nil {
		if len(h.conns) == 0 {
			delete(cl.hosts, key)
		}
		return
	}
	if cl.closed {
		go c.closeWithError(ErrClosed, http2.ErrCodeNo, true)
		return
	}
	h.conns = append(h.conns, c)
}

func (cl *Client) handshake(key poolKey, src *x509svid.SVID) (*conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cl.cfg.HandshakeTimeout)
	defer cancel()
	raw, err := cl.cfg.Dial(ctx, key.addr)
	if err != nil {
		return nil, &ConnError{Err: fmt.Errorf("dial %s: %w", key.addr, err)}
	}
	setKeepAlive(raw)
	rc := &rawConn{Conn: raw}
	tc := tls.Client(rc, clientTLSConfig(src, cl.cfg.Bundle, key.dst))
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		reason := handshakeReason(err)
		cl.m.handshakeFailed(reason)
		cl.cfg.Logger.Debug("tunnel handshake failed", logKeyRemote, key.addr, logKeyPeer, key.dst, logKeyReason, reason, logKeyErr, err)
		return nil, fmt.Errorf("tunnel handshake with %s at %s: %w", key.dst, key.addr, err)
	}
	cs := tc.ConnectionState()
	c := newConn(tc, rc, &cl.connCfg, Peer{ID: key.dst, Local: addrPort(raw.LocalAddr()), Remote: key.addr})
	c.expires = src.Certificates[0].NotAfter
	if na := cs.PeerCertificates[0].NotAfter; na.Before(c.expires) {
		c.expires = na
	}
	c.onClose = func(c *conn) { cl.forget(key, c) }
	c.start()
	go c.readLoop()
	return c, nil
}

func (cl *Client) forget(key poolKey, c *conn) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	h := cl.hosts[key]
	if h == nil {
		return
	}
	for i, x := range h.conns {
		if x == c {
			h.conns = append(h.conns[:i], h.conns[i+1:]...)
			break
		}
	}
	if len(h.conns) == 0 && h.dialing == nil {
		delete(cl.hosts, key)
	}
}

// Close closes every pooled connection, resetting their streams, and
// waits for them to finish. Dial fails afterwards.
func (cl *Client) Close() error {
	cl.mu.Lock()
	cl.closed = true
	var conns []*conn
	for _, h := range cl.hosts {
		conns = append(conns, h.conns...)
	}
	cl.mu.Unlock()
	for _, c := range conns {
		c.closeWithError(ErrClosed, http2.ErrCodeNo, true)
	}
	for _, c := range conns {
		<-c.done
	}
	return nil
}

// reserve takes a stream slot if want is set and the connection has one.
// usable is false when the connection takes no new streams ever again
// (dead, going away, out of stream IDs, or a certificate expired); an
// expired one is told to go away.
func (c *conn) reserve(now time.Time, want bool) (ok, usable bool) {
	c.mu.Lock()
	if c.err != nil || c.goingAway || c.nextID > maxClientStreamID {
		c.mu.Unlock()
		return false, false
	}
	if !now.Before(c.expires) {
		c.mu.Unlock()
		c.goAway(http2.ErrCodeNo)
		return false, false
	}
	if want && uint32(c.active) < c.peerMax {
		c.active++
		ok = true
	}
	c.mu.Unlock()
	return ok, true
}

// openStream sends the CONNECT on a reserved slot.
func (c *conn) openStream(authority netip.AddrPort, auth string, hdr Headers) (*Stream, error) {
	s := newStream(c, authority, hdr)
	s.ready = make(chan struct{})
	c.mu.Lock()
	if c.err != nil || c.goingAway {
		err := c.err
		if err == nil {
			err = &ConnError{Err: errGoingAway}
		}
		closeNow := c.releaseLocked()
		c.mu.Unlock()
		if closeNow {
			c.closeWithError(ErrClosed, 0, false)
		}
		return nil, &retryable{err}
	}
	c.fields = requestFields(c.fields[:0], auth, hdr)
	if size := headerListSize(c.fields); size > c.peerHdrMax {
		closeNow := c.releaseLocked()
		c.mu.Unlock()
		if closeNow {
			c.closeWithError(ErrClosed, 0, false)
		}
		return nil, fmt.Errorf("tunnel dial: headers of %d bytes exceed the server's limit of %d", size, c.peerHdrMax)
	}
	s.id = c.nextID
	c.nextID += 2
	s.sendWin = c.peerWin
	c.streams[s.id] = s
	c.writeHeadersLocked(s.id, c.fields, false)
	c.flushLocked()
	c.mu.Unlock()
	c.cfg.metrics.streams.Inc()
	c.cfg.metrics.streamsActive.Inc()
	return s, nil
}

// awaitResponse waits for the server's answer to the CONNECT.
func (s *Stream) awaitResponse(ctx context.Context) error {
	c := s.c
	select {
	case <-s.ready:
	case <-ctx.Done():
		c.mu.Lock()
		if !s.responded || s.status == 200 {
			c.resetStreamLocked(s, http2.ErrCodeCancel, true, ctx.Err())
		}
		c.mu.Unlock()
		return ctx.Err()
	}
	// ready is closed after dialErr and status were set.
	if s.dialErr != nil {
		return s.dialErr
	}
	if s.status != 200 {
		c.cfg.metrics.refusedStatus(s.status)
		return &StatusError{Code: s.status}
	}
	return nil
}

// onResponse handles a response header block, on the reader goroutine.
func (c *conn) onResponse(f *http2.MetaHeadersFrame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.streams[f.StreamID]
	if s == nil {
		if c.isIdleStreamLocked(f.StreamID) || f.StreamID%2 == 0 {
			return &protoError{http2.ErrCodeProtocol, "HEADERS on a stream we did not open"}
		}
		return nil // a stream we already closed
	}
	if s.responded {
		// Trailers: only END_STREAM matters.
		if !f.StreamEnded() || s.recvDone {
			c.resetStreamLocked(s, http2.ErrCodeProtocol, true, &ResetError{Code: http2.ErrCodeProtocol})
			return nil
		}
		c.endRecvLocked(s)
		return nil
	}
	status, err := parseStatus(f.Fields)
	if err != nil || f.Truncated || headerListSize(f.Fields) > c.cfg.maxHeaderListSize {
		c.resetStreamLocked(s, http2.ErrCodeProtocol, true, &ResetError{Code: http2.ErrCodeProtocol})
		return nil
	}
	if status >= 100 && status < 200 {
		if status == 101 || f.StreamEnded() {
			c.resetStreamLocked(s, http2.ErrCodeProtocol, true, &ResetError{Code: http2.ErrCodeProtocol})
		}
		return nil // informational; the final answer follows
	}
	s.status = status
	s.responded = true
	close(s.ready)
	if status != 200 {
		// Refused: end the stream on both sides now.
		c.resetStreamLocked(s, http2.ErrCodeCancel, true, &StatusError{Code: status})
		return nil
	}
	if f.StreamEnded() {
		c.endRecvLocked(s)
	}
	return nil
}

// endRecvLocked records END_STREAM from the peer while c.mu is held.
func (c *conn) endRecvLocked(s *Stream) {
	s.mu.Lock()
	s.eof = true
	s.wakeLocked()
	s.mu.Unlock()
	s.recvDone = true
	c.maybeRemoveLocked(s)
}
