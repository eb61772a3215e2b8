package tunnel

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Protocol parameters. See the package documentation for why.
const (
	// streamWindow is the receive window of every stream (SETTINGS_INITIAL_WINDOW_SIZE).
	streamWindow = 4 << 20
	// connWindow is the connection-level receive window.
	connWindow = 16 << 20
	// maxFrame is the SETTINGS_MAX_FRAME_SIZE we advertise and the largest
	// DATA frame we send (if the peer allows it).
	maxFrame = 64 << 10
	// chunkSize is the unit of a stream's receive buffer.
	chunkSize = 64 << 10
	// copyBufSize is the buffer Stream.ReadFrom and Splice copy with.
	copyBufSize = 64 << 10
	// writeHighWater is how many encoded bytes may wait for the writer
	// before stream writers block.
	writeHighWater = 256 << 10
	// maxQueued bounds the write queue even for control frames: beyond it
	// the peer is not reading what it asks us to send, and we hang up.
	maxQueued = 4 << 20
	// inlineFlushMax is the largest queue a stream's writer flushes itself
	// (one full TLS record) instead of waking the writer goroutine.
	inlineFlushMax = 16 << 10
	// maxKeptBuffer is the largest write buffer kept for reuse.
	maxKeptBuffer = 1 << 20
	// closeFlushTimeout bounds the final flush (a GOAWAY) on close.
	closeFlushTimeout = time.Second
	// defaultPeerMaxStreams is assumed until the peer's SETTINGS arrive.
	defaultPeerMaxStreams = 100
	// http2DefaultWindow is the initial window of RFC 9113 before SETTINGS.
	http2DefaultWindow = 65535
	maxWindow          = 1<<31 - 1
	// headerTableSize is the HPACK dynamic table we decode with (the default).
	headerTableSize = 4096
)

// connConfig is what a connection needs from its Client or Server.
type connConfig struct {
	isClient             bool
	maxHeaderListSize    uint32
	maxConcurrentStreams uint32 // advertised by servers
	idleTimeout          time.Duration
	keepAliveInterval    time.Duration
	keepAliveTimeout     time.Duration
	metrics              *sideMetrics
}

// conn is one HTTP/2 connection over TLS, client or server side.
//
// Goroutines: the reader (readLoop) owns reading the TLS connection.
// Writing is one role (flushing): everyone encodes frames into wbuf under
// mu, and whoever holds the role takes the whole buffer at once and writes
// it as one tls.Conn.Write whose records leave in one write(2) (see
// rawConn). A stream's writer takes the role itself when it is free
// (flushLocked); otherwise, and for frames from the reader goroutine and
// timers, the writer goroutine (writeLoop) does.
//
// Lock order: a Client's mu, then conn.mu, then Stream.mu. Nothing takes
// conn.mu while holding a Stream.mu.
type conn struct {
	nc   net.Conn // the *tls.Conn
	raw  *rawConn // under nc
	fr   *http2.Framer
	cfg  *connConfig
	srv  *Server // server side only
	peer Peer
	// expires is when the first certificate on either side expires; a
	// client puts no new stream on the connection after it.
	expires time.Time
	// onClose is called once, from the reader goroutine, after teardown.
	onClose func(*conn)

	framesRead   atomic.Uint64 // for keepalive: any frame proves the peer alive
	connConsumed atomic.Int64  // received bytes consumed but not yet returned to the peer
	writerDone   chan struct{}
	done         chan struct{} // closed when the reader goroutine has finished teardown

	mu         sync.Mutex // guards the fields below
	writerCond sync.Cond  // the writer waits here for frames
	sendCond   sync.Cond  // stream writers wait here for window or buffer space
	wbuf       []byte     // encoded frames waiting for the writer
	wspare     []byte     // the writer's previous buffer, for reuse
	writerIdle bool       // the writer goroutine waits on writerCond
	flushing   bool       // someone holds the writer role: only it writes nc
	sendWaits  int        // stream writers waiting on sendCond
	henc       *hpack.Encoder
	hbuf       bytes.Buffer
	fields     []hpack.HeaderField // scratch for encoding
	streams    map[uint32]*Stream
	sendWin    int64     // connection send window
	recvWin    int64     // connection receive window left to the peer
	peerWin    int64     // peer's SETTINGS_INITIAL_WINDOW_SIZE
	peerFrame  int       // largest frame we may send
	peerMax    uint32    // peer's SETTINGS_MAX_CONCURRENT_STREAMS
	peerHdrMax uint32    // peer's SETTINGS_MAX_HEADER_LIST_SIZE
	settled    bool      // the peer's first SETTINGS arrived
	nextID     uint32    // client: next stream ID
	lastPeerID uint32    // server: highest stream ID the peer opened
	active     int       // client: open and reserved streams; server: running handlers
	pending    []*Stream // server: accepted streams waiting for a handler slot
	goingAway  bool      // no new streams; close when active reaches 0
	err        error     // set once, when the connection is torn down
	kaTimer    *time.Timer
	pingOut    bool   // a keepalive PING waits for its answer
	kaFrames   uint64 // framesRead at the last keepalive tick
	idleTimer  *time.Timer
	idleSince  time.Time
	idleArmed  bool
	discard    []byte // scratch for DATA nobody will read
}

// frameSink makes the Framer encode into the write queue. Only used under
// conn.mu.
type frameSink struct{ c *conn }

func (w frameSink) Write(p []byte) (int, error) {
	w.c.wbuf = append(w.c.wbuf, p...)
	return len(p), nil
}

func newConn(nc net.Conn, raw *rawConn, cfg *connConfig, peer Peer) *conn {
	c := &conn{
		nc:         nc,
		raw:        raw,
		cfg:        cfg,
		peer:       peer,
		writerDone: make(chan struct{}),
		done:       make(chan struct{}),
		streams:    make(map[uint32]*Stream),
		sendWin:    http2DefaultWindow,
		recvWin:    connWindow,
		peerWin:    http2DefaultWindow,
		peerFrame:  16 << 10,
		peerMax:    defaultPeerMaxStreams,
		peerHdrMax: maxWindow,
		nextID:     1,
		idleSince:  time.Now(),
	}
	c.writerCond.L = &c.mu
	c.sendCond.L = &c.mu
	c.fr = http2.NewFramer(frameSink{c}, nc)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(headerTableSize, nil)
	// The decoder's limit is a hard cap (beyond it the framer fails the
	// whole connection); the advertised limit is enforced per request, so
	// one oversized request gets 431 and its neighbours live on.
	c.fr.MaxHeaderListSize = hardHeaderListSize(cfg.maxHeaderListSize)
	c.fr.SetMaxReadFrameSize(maxFrame)
	c.henc = hpack.NewEncoder(&c.hbuf)

	// The first bytes each side sends: the client preface, our SETTINGS,
	// and the connection window raised from 64 KiB.
	if cfg.isClient {
		c.wbuf = append(c.wbuf, http2.ClientPreface...)
	}
	settings := []http2.Setting{
		{ID: http2.SettingInitialWindowSize, Val: streamWindow},
		{ID: http2.SettingMaxFrameSize, Val: maxFrame},
		{ID: http2.SettingMaxHeaderListSize, Val: cfg.maxHeaderListSize},
	}
	if cfg.isClient {
		settings = append(settings, http2.Setting{ID: http2.SettingEnablePush, Val: 0})
	} else {
		settings = append(settings, http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: cfg.maxConcurrentStreams})
	}
	_ = c.fr.WriteSettings(settings...)
	_ = c.fr.WriteWindowUpdate(0, connWindow-http2DefaultWindow)
	return c
}

// start runs the writer and the timers. The caller runs readLoop.
func (c *conn) start() {
	c.cfg.metrics.connections.Inc()
	c.cfg.metrics.connectionsActive.Inc()
	go c.writeLoop()
	c.mu.Lock()
	if c.cfg.keepAliveInterval > 0 {
		c.kaTimer = time.AfterFunc(c.cfg.keepAliveInterval, c.keepAliveTick)
	}
	if c.cfg.idleTimeout > 0 {
		c.idleArmed = true
		c.idleTimer = time.AfterFunc(c.cfg.idleTimeout, c.idleTick)
	}
	c.mu.Unlock()
}

// kickLocked makes sure queued frames get written without writing on
// this goroutine: it wakes the writer goroutine unless someone holds the
// writer role already (and will pick the frames up). The reader goroutine
// and timers use it; they must never block on a write.
func (c *conn) kickLocked() {
	if !c.flushing && c.writerIdle {
		c.writerCond.Signal()
	}
}

// flushLocked writes a small queue (at most one TLS record) on the
// calling goroutine if no one holds the writer role, saving a hand-off to
// the writer goroutine; a larger queue goes to the writer goroutine, so
// the caller can go on reading its source while the writer encrypts. It
// writes one batch: if more was queued meanwhile, it leaves that to the
// writer goroutine rather than working for other streams. c.mu is held;
// it is released during the write.
func (c *conn) flushLocked() {
	if c.flushing || len(c.wbuf) == 0 || c.err != nil {
		return
	}
	if len(c.wbuf) > inlineFlushMax {
		c.kickLocked()
		return
	}
	c.flushing = true
	err := c.writeBatchLocked()
	c.flushing = false
	if err != nil && c.err == nil {
		c.mu.Unlock()
		c.closeWithError(fmt.Errorf("write: %w", err), 0, false)
		c.mu.Lock()
	}
	// Whatever happened meanwhile (more frames, a teardown whose wake-up
	// found the role taken), the writer goroutine must hear of it now
	// that the role is free, on every path.
	if (len(c.wbuf) > 0 || c.err != nil) && c.writerIdle {
		c.writerCond.Signal()
	}
}

// writeBatchLocked takes the whole queue and writes it; the caller holds
// the writer role and c.mu, which is released during the write.
func (c *conn) writeBatchLocked() error {
	buf := c.wbuf
	c.wbuf, c.wspare = c.wspare[:0], nil
	if c.sendWaits > 0 {
		c.sendCond.Broadcast()
	}
	c.mu.Unlock()
	err := c.writeOut(buf)
	c.mu.Lock()
	if cap(buf) <= maxKeptBuffer && c.wspare == nil {
		c.wspare = buf[:0]
	}
	return err
}

// writeLoop is the writer goroutine. It takes the writer role whenever
// frames wait and no one else holds it; after teardown it writes what is
// left (a GOAWAY) and closes the connection.
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	c.mu.Lock()
	for {
		for c.flushing || (len(c.wbuf) == 0 && c.err == nil) {
			c.writerIdle = true
			c.writerCond.Wait()
		}
		c.writerIdle = false
		if len(c.wbuf) == 0 {
			break // torn down and flushed
		}
		c.flushing = true
		err := c.writeBatchLocked()
		c.flushing = false
		if err != nil {
			c.mu.Unlock()
			c.closeWithError(fmt.Errorf("write: %w", err), 0, false)
			c.mu.Lock()
			break
		}
	}
	c.mu.Unlock()
	c.nc.Close()
}

// writeOut encrypts buf and sends the records with one write(2).
func (c *conn) writeOut(buf []byte) error {
	c.raw.startBatch()
	_, err := c.nc.Write(buf)
	if ferr := c.raw.flush(); err == nil {
		err = ferr
	}
	return err
}

// queueFullLocked reports whether the peer is making us queue more than
// maxQueued; the caller then tears the connection down.
func (c *conn) queueFullLocked() bool { return len(c.wbuf) > maxQueued }

func (c *conn) appendDataLocked(id uint32, p []byte, end bool) {
	var flags byte
	if end {
		flags = byte(http2.FlagDataEndStream)
	}
	n := len(p)
	c.wbuf = append(c.wbuf, byte(n>>16), byte(n>>8), byte(n), byte(http2.FrameData), flags,
		byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
	c.wbuf = append(c.wbuf, p...)
}

// writeHeadersLocked HPACK-encodes fields and queues them as HEADERS and,
// if the block is larger than the peer's frame size, CONTINUATION frames.
func (c *conn) writeHeadersLocked(id uint32, fields []hpack.HeaderField, end bool) {
	c.hbuf.Reset()
	for _, f := range fields {
		_ = c.henc.WriteField(f) // writes to a bytes.Buffer: cannot fail
	}
	block := c.hbuf.Bytes()
	n := min(len(block), c.peerFrame)
	_ = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block[:n],
		EndStream: end, EndHeaders: n == len(block)})
	for block = block[n:]; len(block) > 0; block = block[n:] {
		n = min(len(block), c.peerFrame)
		_ = c.fr.WriteContinuation(id, n == len(block), block[:n])
	}
}

// writeStatusLocked queues a response header block with just :status.
func (c *conn) writeStatusLocked(id uint32, status int, end bool) {
	c.fields = append(c.fields[:0], hpack.HeaderField{Name: ":status", Value: statusString(status)})
	c.writeHeadersLocked(id, c.fields, end)
}

// closeWithError tears the connection down: every stream fails with
// ConnError{cause}, the writer flushes what is queued (with a GOAWAY if
// goaway is set) and closes the TLS connection. It is idempotent.
func (c *conn) closeWithError(cause error, code http2.ErrCode, goaway bool) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = &ConnError{Err: cause}
	if goaway {
		_ = c.fr.WriteGoAway(c.lastPeerID, code, nil)
	}
	for _, s := range c.streams {
		c.resetStreamLocked(s, 0, false, c.err)
	}
	if c.kaTimer != nil {
		c.kaTimer.Stop()
	}
	if c.idleTimer != nil {
		c.idleTimer.Stop()
	}
	c.sendCond.Broadcast()
	c.writerCond.Signal()
	c.mu.Unlock()
	// Bound the final flush: a peer that stopped reading must not keep
	// the writer (and so the connection) alive.
	_ = c.nc.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
}

// goAway stops new streams on the connection and closes it once the
// streams it carries are done.
func (c *conn) goAway(code http2.ErrCode) {
	c.mu.Lock()
	if c.err != nil || c.goingAway {
		c.mu.Unlock()
		return
	}
	c.goingAway = true
	_ = c.fr.WriteGoAway(c.lastPeerID, code, nil)
	c.kickLocked()
	idle := c.active == 0
	c.mu.Unlock()
	if idle {
		c.closeWithError(ErrClosed, 0, false)
	}
}

// releaseLocked gives back one stream slot (a client stream removed, a
// server handler finished).
func (c *conn) releaseLocked() (closeNow bool) {
	c.active--
	if c.active > 0 {
		return false
	}
	if c.goingAway {
		return true
	}
	c.idleSince = time.Now()
	if c.idleTimer != nil && !c.idleArmed && c.err == nil {
		c.idleArmed = true
		c.idleTimer.Reset(c.cfg.idleTimeout)
	}
	return false
}

// idleTick closes the connection when it has carried no stream for the
// idle timeout.
func (c *conn) idleTick() {
	c.mu.Lock()
	c.idleArmed = false
	if c.err != nil || c.active > 0 {
		c.mu.Unlock()
		return
	}
	if left := c.cfg.idleTimeout - time.Since(c.idleSince); left > 0 {
		c.idleArmed = true
		c.idleTimer.Reset(left)
		c.mu.Unlock()
		return
	}
	c.goingAway = true
	c.mu.Unlock()
	c.closeWithError(errIdle, http2.ErrCodeNo, true)
}

// keepAliveTick sends a PING when nothing was read for a whole interval
// and closes the connection when nothing, not even the PING's answer,
// arrives within the timeout after it.
func (c *conn) keepAliveTick() {
	n := c.framesRead.Load()
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	if c.pingOut && n == c.kaFrames {
		c.mu.Unlock()
		c.closeWithError(errKeepAliveTimeout, http2.ErrCodeNo, true)
		return
	}
	next := c.cfg.keepAliveInterval
	c.pingOut = false
	if n == c.kaFrames {
		_ = c.fr.WritePing(false, [8]byte{'w', 'e', 'f', 't', 'k', 'a'})
		c.kickLocked()
		c.pingOut = true
		next = c.cfg.keepAliveTimeout
	}
	c.kaFrames = n
	c.kaTimer.Reset(next)
	c.mu.Unlock()
}

// consumed returns n received bytes to the peer's connection window,
// batched in WINDOW_UPDATEs of at least half the window.
func (c *conn) consumed(n int) {
	if c.connConsumed.Add(int64(n)) < connWindow/2 {
		return
	}
	c.mu.Lock()
	c.returnConnWindowLocked()
	c.mu.Unlock()
}

func (c *conn) returnConnWindowLocked() {
	v := c.connConsumed.Load()
	if v < connWindow/2 || c.err != nil {
		return
	}
	c.connConsumed.Add(-v)
	c.recvWin += v
	_ = c.fr.WriteWindowUpdate(0, uint32(v))
	c.kickLocked()
}

// hardHeaderListSize is the header list size beyond which decoding stops
// and the connection fails: four times the advertised limit, at least
// 64 KiB.
func hardHeaderListSize(limit uint32) uint32 { return max(4*limit, 64<<10) }

// headerListSize is the RFC 9113 size of a header list.
func headerListSize(fields []hpack.HeaderField) uint32 {
	var n uint32
	for _, f := range fields {
		n += f.Size()
	}
	return n
}

// protoError is a connection error we detected: the reader sends GOAWAY
// with Code and hangs up.
type protoError struct {
	Code   http2.ErrCode
	Reason string
}

func (e *protoError) Error() string { return fmt.Sprintf("protocol error %v: %s", e.Code, e.Reason) }

// readLoop reads frames until the connection fails, then tears down.
func (c *conn) readLoop() {
	err := c.readFrames()
	var pe *protoError
	var ce http2.ConnectionError
	switch {
	case errors.As(err, &pe):
		c.closeWithError(err, pe.Code, true)
	case errors.As(err, &ce):
		if d := c.fr.ErrorDetail(); d != nil {
			err = fmt.Errorf("%w: %v", err, d)
		}
		c.closeWithError(err, http2.ErrCode(ce), true)
	case errors.Is(err, http2.ErrFrameTooLarge):
		c.closeWithError(err, http2.ErrCodeFrameSize, true)
	default:
		c.closeWithError(fmt.Errorf("read: %w", err), 0, false)
	}
	<-c.writerDone
	c.cfg.metrics.connectionsActive.Dec()
	close(c.done)
	if c.onClose != nil {
		c.onClose(c)
	}
}

func (c *conn) readFrames() error {
	for {
		fh, err := c.fr.ReadFrameHeader()
		if err != nil {
			return err
		}
		c.framesRead.Add(1)
		if !c.settled && (fh.Type != http2.FrameSettings || fh.Flags.Has(http2.FlagSettingsAck)) {
			return &protoError{http2.ErrCodeProtocol, "first frame is not SETTINGS"}
		}
		if fh.Type == http2.FrameData {
			if err := c.readData(fh); err != nil {
				return err
			}
			continue
		}
		f, err := c.fr.ReadFrameForHeader(fh)
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				if err := c.onStreamError(se, fh.Type); err != nil {
					return err
				}
				continue
			}
			return err
		}
		if err := c.dispatch(f); err != nil {
			return err
		}
	}
}

func (c *conn) dispatch(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		if c.cfg.isClient {
			return c.onResponse(f)
		}
		return c.onRequest(f)
	case *http2.SettingsFrame:
		return c.onSettings(f)
	case *http2.WindowUpdateFrame:
		return c.onWindowUpdate(f)
	case *http2.PingFrame:
		return c.onPing(f)
	case *http2.RSTStreamFrame:
		c.onReset(f)
		return nil
	case *http2.GoAwayFrame:
		c.onGoAway(f)
		return nil
	case *http2.PushPromiseFrame:
		return &protoError{http2.ErrCodeProtocol, "PUSH_PROMISE with push disabled"}
	default:
		// PRIORITY, PRIORITY_UPDATE and unknown extension frames carry
		// nothing a tunnel needs.
		return nil
	}
}

// onStreamError handles a frame (of type ft) the framer rejected for one
// stream only.
func (c *conn) onStreamError(se http2.StreamError, ft http2.FrameType) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.streams[se.StreamID]; s != nil {
		c.resetStreamLocked(s, se.Code, true, &ResetError{Code: se.Code})
		return nil
	}
	if c.isIdleStreamLocked(se.StreamID) && ft != http2.FrameHeaders {
		return &protoError{http2.ErrCodeProtocol, fmt.Sprintf("%v frame on idle stream %d", ft, se.StreamID)}
	}
	if !c.cfg.isClient && se.StreamID%2 == 1 && se.StreamID > c.lastPeerID {
		// A new request whose header block the framer found malformed
		// (bad field name or value, pseudo-header misuse).
		c.lastPeerID = se.StreamID
		c.cfg.metrics.streams.Inc()
		c.refuseLocked(se.StreamID, 400, reasonBadRequest)
		c.kickLocked()
		return nil
	}
	_ = c.fr.WriteRSTStream(se.StreamID, se.Code)
	c.kickLocked()
	return nil
}

// readData handles a DATA frame whose header was read: the payload is read
// straight from the TLS connection into the stream's buffer.
func (c *conn) readData(fh http2.FrameHeader) error {
	id, n := fh.StreamID, int(fh.Length)
	if id == 0 {
		return &protoError{http2.ErrCodeProtocol, "DATA on stream 0"}
	}
	c.mu.Lock()
	if int64(n) > c.recvWin {
		c.mu.Unlock()
		return &protoError{http2.ErrCodeFlowControl, "connection window exceeded"}
	}
	c.recvWin -= int64(n)
	s := c.streams[id]
	if s == nil && c.isIdleStreamLocked(id) {
		c.mu.Unlock()
		return &protoError{http2.ErrCodeProtocol, "DATA on idle stream"}
	}
	if s != nil && s.recvDone {
		c.resetStreamLocked(s, http2.ErrCodeStreamClosed, true, &ResetError{Code: http2.ErrCodeStreamClosed})
		s = nil
	}
	c.mu.Unlock()

	pad := 0
	if fh.Flags.Has(http2.FlagDataPadded) {
		var b [1]byte
		if n < 1 {
			return &protoError{http2.ErrCodeProtocol, "padded DATA without pad length"}
		}
		if _, err := io.ReadFull(c.nc, b[:]); err != nil {
			return err
		}
		pad = int(b[0]) + 1
		if pad > n {
			return &protoError{http2.ErrCodeProtocol, "DATA padding longer than frame"}
		}
	}
	dataLen := n - pad
	if s == nil {
		if err := c.discardN(dataLen + pad - min(pad, 1)); err != nil {
			return err
		}
		c.consumed(n)
		return nil
	}
	ok, err := s.receive(c.nc, dataLen, n)
	if err != nil {
		return err
	}
	if pad > 1 {
		if err := c.discardN(pad - 1); err != nil {
			return err
		}
	}
	if pad > 0 {
		c.consumed(pad) // padding is flow controlled but never read
		s.consumedPadding(pad)
	}
	if !ok {
		// The stream's window was exceeded; receive discarded the data.
		c.consumed(dataLen)
		c.mu.Lock()
		c.resetStreamLocked(s, http2.ErrCodeFlowControl, true, &ResetError{Code: http2.ErrCodeFlowControl})
		c.mu.Unlock()
		return nil
	}
	if fh.Flags.Has(http2.FlagDataEndStream) {
		c.endRecv(s)
	}
	return nil
}

func (c *conn) discardN(n int) error {
	if c.discard == nil {
		c.discard = make([]byte, 16<<10)
	}
	for n > 0 {
		m, err := io.ReadFull(c.nc, c.discard[:min(n, len(c.discard))])
		n -= m
		if err != nil {
			return err
		}
	}
	return nil
}

// isIdleStreamLocked reports whether id names a stream the peer could not
// have opened or been told about yet.
func (c *conn) isIdleStreamLocked(id uint32) bool {
	if c.cfg.isClient {
		return id >= c.nextID
	}
	return id > c.lastPeerID
}

// endRecv records END_STREAM from the peer.
func (c *conn) endRecv(s *Stream) {
	s.mu.Lock()
	s.eof = true
	s.wakeLocked()
	s.mu.Unlock()
	c.mu.Lock()
	s.recvDone = true
	c.maybeRemoveLocked(s)
	c.mu.Unlock()
}

// maybeRemoveLocked forgets a stream once both directions have ended.
func (c *conn) maybeRemoveLocked(s *Stream) {
	if !s.sendDone || !s.recvDone || s.removed {
		return
	}
	s.removed = true
	delete(c.streams, s.id)
	if c.cfg.isClient {
		c.cfg.metrics.streamsActive.Dec()
		if c.releaseLocked() && c.err == nil {
			go c.closeWithError(ErrClosed, 0, false)
		}
	}
}

// resetStreamLocked ends both directions of s with err, sending RST_STREAM
// with code if sendRST is set and the stream was still open.
func (c *conn) resetStreamLocked(s *Stream, code http2.ErrCode, sendRST bool, err error) {
	open := !(s.sendDone && s.recvDone)
	if sendRST && open && c.err == nil {
		_ = c.fr.WriteRSTStream(s.id, code)
		c.kickLocked()
	}
	if open {
		close(s.gone)
	}
	if !s.sendDone || s.sendErr == nil {
		s.sendErr = err
	}
	s.sendDone, s.recvDone = true, true
	if !s.responded {
		s.responded, s.dialErr = true, err
		if s.ready != nil {
			close(s.ready)
		}
	}
	if c.sendWaits > 0 {
		c.sendCond.Broadcast()
	}
	c.maybeRemoveLocked(s)
	s.failRecv(err)
}

func (c *conn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.settled = true
	err := f.ForeachSetting(func(st http2.Setting) error {
		switch st.ID {
		case http2.SettingInitialWindowSize:
			if st.Val > maxWindow {
				return &protoError{http2.ErrCodeFlowControl, "SETTINGS_INITIAL_WINDOW_SIZE too large"}
			}
			delta := int64(st.Val) - c.peerWin
			c.peerWin = int64(st.Val)
			for _, s := range c.streams {
				s.sendWin += delta
				if s.sendWin > maxWindow {
					return &protoError{http2.ErrCodeFlowControl, "stream window overflow"}
				}
			}
		case http2.SettingMaxFrameSize:
			if st.Val < 16<<10 || st.Val > 1<<24-1 {
				return &protoError{http2.ErrCodeProtocol, "bad SETTINGS_MAX_FRAME_SIZE"}
			}
			c.peerFrame = int(min(st.Val, maxFrame))
		case http2.SettingMaxConcurrentStreams:
			c.peerMax = st.Val
		case http2.SettingMaxHeaderListSize:
			c.peerHdrMax = st.Val
		case http2.SettingHeaderTableSize:
			c.henc.SetMaxDynamicTableSizeLimit(st.Val)
		case http2.SettingEnablePush:
			if st.Val > 1 {
				return &protoError{http2.ErrCodeProtocol, "bad SETTINGS_ENABLE_PUSH"}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	_ = c.fr.WriteSettingsAck()
	c.kickLocked()
	if c.sendWaits > 0 {
		c.sendCond.Broadcast()
	}
	if c.queueFullLocked() {
		return &protoError{http2.ErrCodeEnhanceYourCalm, "peer does not read"}
	}
	return nil
}

func (c *conn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	inc := int64(f.Increment)
	if f.StreamID == 0 {
		c.sendWin += inc
		if c.sendWin > maxWindow {
			return &protoError{http2.ErrCodeFlowControl, "connection window overflow"}
		}
	} else if s := c.streams[f.StreamID]; s != nil {
		s.sendWin += inc
		if s.sendWin > maxWindow {
			c.resetStreamLocked(s, http2.ErrCodeFlowControl, true, &ResetError{Code: http2.ErrCodeFlowControl})
		}
	}
	if c.sendWaits > 0 {
		c.sendCond.Broadcast()
	}
	return nil
}

func (c *conn) onPing(f *http2.PingFrame) error {
	if f.IsAck() {
		return nil // any frame counts as proof of life
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.fr.WritePing(true, f.Data)
	c.kickLocked()
	if c.queueFullLocked() {
		return &protoError{http2.ErrCodeEnhanceYourCalm, "peer does not read"}
	}
	return nil
}

func (c *conn) onReset(f *http2.RSTStreamFrame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.streams[f.StreamID]
	if s == nil {
		return
	}
	var err error = &ResetError{Code: f.ErrCode, Remote: true}
	if f.ErrCode == http2.ErrCodeRefusedStream {
		err = &retryable{err}
	}
	c.resetStreamLocked(s, f.ErrCode, false, err)
}

func (c *conn) onGoAway(f *http2.GoAwayFrame) {
	c.mu.Lock()
	c.goingAway = true
	for id, s := range c.streams {
		if c.cfg.isClient && id > f.LastStreamID {
			c.resetStreamLocked(s, 0, false, &retryable{&ConnError{Err: errGoingAway}})
		}
	}
	idle := c.active == 0
	c.mu.Unlock()
	if idle {
		c.closeWithError(errGoingAway, 0, false)
	}
}
