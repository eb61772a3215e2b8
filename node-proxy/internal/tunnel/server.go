package tunnel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"golang.org/x/net/http2"
)

// Log keys.
const (
	logKeyRemote = "remote"
	logKeyLocal  = "local"
	logKeyPeer   = "peer"
	logKeyReason = "reason"
	logKeyErr    = "err"
)

// ConnInfo describes a tunnel connection being accepted, for choosing the
// certificate to present.
type ConnInfo struct {
	// Local is the address the connection arrived on: the destination
	// pod's IP and port 15008 when the listener is in the pod's netns.
	Local netip.AddrPort
	// Remote is the client's address.
	Remote netip.AddrPort
	// ServerName is the TLS SNI, usually empty (HBONE clients dial IPs).
	ServerName string
}

// Peer is the verified other end of a tunnel connection.
type Peer struct {
	// ID is the SPIFFE ID the peer proved: on the server, the source
	// workload; on the client, the destination workload.
	ID spiffeid.ID
	// Local and Remote are the TCP addresses of the tunnel connection.
	Local, Remote netip.AddrPort
}

// StreamEnd records one CONNECT the server handled, for spans and access
// logs. Requests refused before a handler ran (malformed, too large, over
// the stream limit) are only counted in metrics.
type StreamEnd struct {
	Peer      Peer
	Authority netip.AddrPort
	Headers   Headers
	Start     time.Time
	Duration  time.Duration
	// Status is the answer: 200, or the refusal status.
	Status int
	// Reason is the refusal reason (a metrics label), empty on 200.
	Reason string
	// Err is why a refusal happened or why the spliced connection ended
	// abnormally; nil for a clean end.
	Err error
	// Rx is what the client sent through the tunnel, Tx what the
	// destination sent back.
	Rx, Tx int64
}

// ServerConfig configures a Server. Zero durations and sizes mean the
// documented defaults.
type ServerConfig struct {
	// Certificate returns the SVID to present on an accepted connection.
	// A node proxy serves many pods; it picks the pod by info.Local (each
	// pod's listener lives in that pod's netns). Required.
	Certificate func(info ConnInfo) (*x509svid.SVID, error)
	// Bundle verifies client certificates. Required.
	Bundle x509bundle.Source
	// IsLocal reports whether dst is a pod this node proxy serves and
	// that may be reached through the connection p arrived on (p.Local).
	// A false answer refuses the stream with 400. Required; it runs per
	// stream, so it must be an O(1) lookup.
	IsLocal func(p Peer, dst netip.AddrPort) bool
	// Authorize decides whether p may connect to dst. An error wrapping
	// ErrUnauthenticated refuses with 401, any other error with 403.
	// Required.
	Authorize func(ctx context.Context, p Peer, dst netip.AddrPort) error
	// Dial connects to the destination. Nil means a plain TCP dial. A
	// failure refuses the stream with 503.
	// A backend that implements StreamHandler serves the stream itself.
	Dial func(ctx context.Context, p Peer, dst netip.AddrPort) (net.Conn, error)
	// OnStreamEnd, if set, is called once per handled stream, on the
	// stream's goroutine, after it ended.
	OnStreamEnd func(StreamEnd)

	// MaxConcurrentStreams is advertised to clients and enforced per
	// connection (excess streams are refused with REFUSED_STREAM, which
	// clients retry). It also bounds the streams being handled at once: a
	// stream the client reset keeps its handler until the handler
	// notices, and new streams queue behind it. Zero means 1000.
	MaxConcurrentStreams uint32
	// MaxHeaderListSize bounds a request's decoded header list (RFC 9113
	// SETTINGS_MAX_HEADER_LIST_SIZE, advertised); larger requests get 431.
	// A header block over four times this (at least 64 KiB) is not even
	// decoded: the connection fails with COMPRESSION_ERROR. Zero means
	// 16 KiB.
	MaxHeaderListSize uint32
	// HandshakeTimeout bounds the TLS handshake and the client preface.
	// Zero means 10s.
	HandshakeTimeout time.Duration
	// DialTimeout bounds Authorize and Dial together. Zero means 5s.
	DialTimeout time.Duration
	// IdleTimeout closes a connection that carried no stream for this
	// long. Zero means 15m; negative means never.
	IdleTimeout time.Duration
	// KeepAliveInterval is how long a connection may be silent before we
	// PING it; KeepAliveTimeout how long we wait for any frame after the
	// PING before closing it. Zero means 30s and 10s; a negative interval
	// turns PINGs off.
	KeepAliveInterval, KeepAliveTimeout time.Duration

	// Registerer receives the weft_tunnel_* metrics (side="inbound").
	// Nil means not registered.
	Registerer prometheus.Registerer
	// Logger logs handshake failures and refusals at debug level. Nil
	// means no logging.
	Logger *slog.Logger
}

func (c *ServerConfig) validate() error {
	switch {
	case c.Certificate == nil:
		return errors.New("tunnel server: Certificate is required")
	case c.Bundle == nil:
		return errors.New("tunnel server: Bundle is required")
	case c.IsLocal == nil:
		return errors.New("tunnel server: IsLocal is required")
	case c.Authorize == nil:
		return errors.New("tunnel server: Authorize is required")
	}
	return nil
}

func (c ServerConfig) withDefaults() ServerConfig {
	if c.Dial == nil {
		var d net.Dialer
		c.Dial = func(ctx context.Context, _ Peer, dst netip.AddrPort) (net.Conn, error) {
			return d.DialTCP(ctx, "tcp", netip.AddrPort{}, dst)
		}
	}
	c.MaxConcurrentStreams = orDefault(c.MaxConcurrentStreams, 1000)
	c.MaxHeaderListSize = orDefault(c.MaxHeaderListSize, 16<<10)
	c.HandshakeTimeout = orDefault(c.HandshakeTimeout, 10*time.Second)
	c.DialTimeout = orDefault(c.DialTimeout, 5*time.Second)
	c.IdleTimeout = orDefault(c.IdleTimeout, 15*time.Minute)
	c.KeepAliveInterval = orDefault(c.KeepAliveInterval, 30*time.Second)
	c.KeepAliveTimeout = orDefault(c.KeepAliveTimeout, 10*time.Second)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Server accepts HBONE tunnels: mutual TLS, then CONNECT streams spliced
// to local pods. One Server serves every pod of a node; call Serve once
// per pod listener.
type Server struct {
	cfg     ServerConfig
	tlsConf *tls.Config
	connCfg connConfig
	m       *sideMetrics

	mu        sync.Mutex // guards the fields below
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closed    bool
	wg        sync.WaitGroup // Serve loops, connections and stream handlers
}

// NewServer checks cfg and returns a Server.
func NewServer(cfg ServerConfig) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	m, err := newSideMetrics(cfg.Registerer, sideInbound)
	if err != nil {
		return nil, fmt.Errorf("tunnel server metrics: %w", err)
	}
	s := &Server{
		cfg:     cfg,
		tlsConf: serverTLSConfig(cfg.Certificate, cfg.Bundle),
		connCfg: connConfig{
			maxHeaderListSize:    cfg.MaxHeaderListSize,
			maxConcurrentStreams: cfg.MaxConcurrentStreams,
			idleTimeout:          max(cfg.IdleTimeout, 0),
			keepAliveInterval:    max(cfg.KeepAliveInterval, 0),
			keepAliveTimeout:     cfg.KeepAliveTimeout,
			metrics:              m,
		},
		m:         m,
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*conn]struct{}),
	}
	return s, nil
}

// Serve accepts connections on ln until ln fails or the server is closed,
// and then returns ErrClosed (after Close or Shutdown) or the Accept error.
// It closes ln when it returns.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrClosed
	}
	s.listeners[ln] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()

	var backoff time.Duration
	for {
		raw, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of file descriptors and the like: wait and go on.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.cfg.Logger.Warn("tunnel accept failed; backing off", logKeyErr, err)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			raw.Close()
			return ErrClosed
		}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(raw)
	}
}

// serveConn runs one connection: handshake, preface, then it is the
// connection's reader goroutine.
func (s *Server) serveConn(raw net.Conn) {
	defer s.wg.Done()
	setKeepAlive(raw)
	rc := &rawConn{Conn: raw}
	tc := tls.Server(rc, s.tlsConf)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.HandshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err == nil {
		err = readPreface(tc, s.cfg.HandshakeTimeout)
	}
	if err != nil {
		reason := handshakeReason(err)
		s.m.handshakeFailed(reason)
		s.cfg.Logger.Debug("tunnel handshake failed", logKeyRemote, raw.RemoteAddr(), logKeyReason, reason, logKeyErr, err)
		raw.Close()
		return
	}
	cs := tc.ConnectionState()
	id, err := x509svid.IDFromCert(cs.PeerCertificates[0]) // verified in the handshake
	if err != nil {
		s.m.handshakeFailed(hsBadCertificate)
		raw.Close()
		return
	}
	c := newConn(tc, rc, &s.connCfg, Peer{ID: id, Local: addrPort(raw.LocalAddr()), Remote: addrPort(raw.RemoteAddr())})
	c.srv = s
	c.onClose = s.forget
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		raw.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	c.start()
	c.readLoop()
}

func readPreface(tc *tls.Conn, timeout time.Duration) error {
	_ = tc.SetReadDeadline(time.Now().Add(timeout))
	var buf [len(http2.ClientPreface)]byte
	if _, err := io.ReadFull(tc, buf[:]); err != nil {
		return &handshakeError{hsPreface, fmt.Errorf("read client preface: %w", err)}
	}
	if string(buf[:]) != http2.ClientPreface {
		return &handshakeError{hsPreface, errors.New("bad client preface")}
	}
	return tc.SetReadDeadline(time.Time{})
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Shutdown stops accepting, sends GOAWAY on every connection, and waits
// until their streams are done or ctx ends; then it closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	conns := s.stop()
	for _, c := range conns {
		c.goAway(http2.ErrCodeNo)
	}
	var err error
	for _, c := range conns {
		select {
		case <-c.done:
		case <-ctx.Done():
			err = ctx.Err()
			for _, c := range conns {
				c.closeWithError(ErrClosed, http2.ErrCodeNo, true)
			}
		}
		if err != nil {
			break
		}
	}
	s.wg.Wait()
	return err
}

// Close closes the listeners and every connection at once, resetting
// their streams, and waits for the connections to finish.
func (s *Server) Close() error {
	for _, c := range s.stop() {
		c.closeWithError(ErrClosed, http2.ErrCodeNo, true)
	}
	s.wg.Wait()
	return nil
}

func (s *Server) stop() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	return conns
}

// onRequest handles a request header block, on the reader goroutine. It
// only checks what needs no callback; the rest runs in handle.
func (c *conn) onRequest(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.streams[id]; s != nil {
		// Trailers: nothing in them matters, but END_STREAM does.
		if !f.StreamEnded() || s.recvDone {
			c.resetStreamLocked(s, http2.ErrCodeProtocol, true, &ResetError{Code: http2.ErrCodeProtocol})
			return nil
		}
		c.endRecvLocked(s)
		return nil
	}
	if id%2 == 0 || id <= c.lastPeerID {
		return &protoError{http2.ErrCodeProtocol, "HEADERS on a closed or server stream"}
	}
	c.lastPeerID = id
	c.cfg.metrics.streams.Inc()
	switch {
	case c.goingAway || c.err != nil:
		_ = c.fr.WriteRSTStream(id, http2.ErrCodeRefusedStream)
		c.kickLocked()
	case f.Truncated || headerListSize(f.Fields) > c.cfg.maxHeaderListSize:
		c.refuseLocked(id, 431, reasonHeadersTooLarge)
		c.kickLocked()
	case uint32(len(c.streams)) >= c.cfg.maxConcurrentStreams:
		_ = c.fr.WriteRSTStream(id, http2.ErrCodeRefusedStream)
		c.kickLocked()
		c.cfg.metrics.refused(reasonStreamLimit)
	default:
		dst, hdr, err := parseRequest(f.Fields)
		if err != nil {
			c.refuseLocked(id, 400, reasonBadRequest)
			c.kickLocked()
			c.srv.cfg.Logger.Debug("tunnel request refused", logKeyPeer, c.peer.ID, logKeyReason, reasonBadRequest, logKeyErr, err)
			break
		}
		s := newStream(c, dst, hdr)
		s.id, s.sendWin, s.responded = id, c.peerWin, true
		if f.StreamEnded() {
			s.eof, s.recvDone = true, true
		}
		c.streams[id] = s
		if uint32(c.active) < c.cfg.maxConcurrentStreams {
			c.active++
			c.srv.wg.Add(1) // the connection's serveConn holds the group open
			go c.srv.handle(c, s)
			break
		}
		// Streams the client reset still hold their handler until it
		// notices. Queue the new one behind them, but only so far: a
		// client that keeps resetting and reopening is attacking us.
		if uint32(len(c.pending)) >= c.cfg.maxConcurrentStreams {
			return &protoError{http2.ErrCodeEnhanceYourCalm, "too many streams waiting for a handler"}
		}
		c.pending = append(c.pending, s)
	}
	if c.queueFullLocked() {
		return &protoError{http2.ErrCodeEnhanceYourCalm, "peer does not read"}
	}
	return nil
}

// refuseLocked answers a request with status and closes its stream.
func (c *conn) refuseLocked(id uint32, status int, reason string) {
	c.writeStatusLocked(id, status, true)
	_ = c.fr.WriteRSTStream(id, http2.ErrCodeNo)
	c.cfg.metrics.refused(reason)
}

// handle runs accepted CONNECTs, first s, then any that queued behind the
// handler limit, and gives the handler slot back.
func (srv *Server) handle(c *conn, s *Stream) {
	defer srv.wg.Done()
	for s != nil {
		srv.handleOne(c, s)
		c.mu.Lock()
		s = nil
		for len(c.pending) > 0 && s == nil {
			next := c.pending[0]
			c.pending[0] = nil
			c.pending = c.pending[1:]
			if !next.removed {
				s = next
			}
		}
		if s == nil && c.releaseLocked() {
			c.mu.Unlock()
			c.closeWithError(ErrClosed, 0, false)
			return
		}
		c.mu.Unlock()
	}
}

// handleOne runs one CONNECT: checks, dial, 200, splice.
func (srv *Server) handleOne(c *conn, s *Stream) {
	m := c.cfg.metrics
	m.streamsActive.Inc()
	defer m.streamsActive.Dec()

	end := StreamEnd{Peer: c.peer, Authority: s.authority, Headers: s.hdr, Start: s.start, Status: 200}
	backend, err := srv.open(c.peer, s.authority, &end)
	if err != nil {
		end.Err = err
		c.mu.Lock()
		if !s.removed {
			c.refuseLocked(s.id, end.Status, end.Reason)
			s.sendDone, s.recvDone = true, true
			c.maybeRemoveLocked(s)
			s.failRecv(err)
			c.flushLocked()
		}
		c.mu.Unlock()
		srv.cfg.Logger.Debug("tunnel request refused", logKeyPeer, c.peer.ID, logKeyLocal, s.authority,
			logKeyReason, end.Reason, logKeyErr, err)
		srv.observe(&end)
		return
	}
	c.mu.Lock()
	open, gone := !s.removed, s.sendErr
	if open {
		c.writeStatusLocked(s.id, 200, false)
		c.flushLocked()
	}
	c.mu.Unlock()
	if !open {
		// The client gave up (RST_STREAM) while we dialed.
		backend.Close()
		end.Err = gone
		srv.observe(&end)
		return
	}
	if h, ok := backend.(StreamHandler); ok {
		end.Rx, end.Tx, end.Err = h.ServeStream(s)
		s.Close()
	} else {
		end.Rx, end.Tx, end.Err = Splice(s, backend)
	}
	srv.observe(&end)
}

// StreamHandler is a backend that serves the accepted stream itself
// instead of having its bytes spliced (the node proxy's HTTP/2 handling
// of a pod's h2c and gRPC ports). ServeStream returns the bytes read from
// and written to the stream.
type StreamHandler interface {
	net.Conn
	ServeStream(s *Stream) (rx, tx int64, err error)
}

// open runs the per-stream checks and dials; on failure it sets
// end.Status and end.Reason.
func (srv *Server) open(p Peer, dst netip.AddrPort, end *StreamEnd) (net.Conn, error) {
	if !srv.cfg.IsLocal(p, dst) {
		end.Status, end.Reason = 400, reasonNotLocal
		return nil, fmt.Errorf("%s is not a pod behind %s", dst, p.Local)
	}
	ctx, cancel := context.WithTimeout(context.Background(), srv.cfg.DialTimeout)
	defer cancel()
	if err := srv.cfg.Authorize(ctx, p, dst); err != nil {
		end.Status, end.Reason = 403, reasonForbidden
		if errors.Is(err, ErrUnauthenticated) {
			end.Status, end.Reason = 401, reasonUnauthenticated
		}
		return nil, err
	}
	backend, err := srv.cfg.Dial(ctx, p, dst)
	if err != nil {
		end.Status, end.Reason = 503, reasonDialFailed
		return nil, fmt.Errorf("dial %s: %w", dst, err)
	}
	return backend, nil
}

func (srv *Server) observe(end *StreamEnd) {
	if srv.cfg.OnStreamEnd != nil {
		end.Duration = time.Since(end.Start)
		srv.cfg.OnStreamEnd(*end)
	}
}
