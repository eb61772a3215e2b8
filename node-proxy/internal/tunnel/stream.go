package tunnel

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/net/http2"
)

// Stream is one tunnelled TCP connection: an HTTP/2 stream opened with
// CONNECT and answered 200. It is a net.Conn; CloseWrite half-closes it.
//
// Read, WriteTo and Write copy straight between the caller's buffers and
// the connection's queues, on the caller's goroutine: a stream has no
// goroutine of its own. Reads (Read, WriteTo) are serialized with each
// other, and so are writes (Write, ReadFrom).
type Stream struct {
	c         *conn
	id        uint32
	authority netip.AddrPort
	hdr       Headers
	start     time.Time
	rx, tx    atomic.Int64 // payload bytes read by the caller, accepted from the caller

	rmu sync.Mutex // serializes Read and WriteTo
	wmu sync.Mutex // serializes Write and ReadFrom

	// Guarded by c.mu:
	sendWin   int64
	sendDone  bool          // we sent END_STREAM or RST_STREAM, or the stream was reset
	sendErr   error         // what Write returns once sendDone
	recvDone  bool          // the peer sent END_STREAM, or the stream was reset
	removed   bool          // no longer in the connection's stream table
	responded bool          // client: the response (or an error) arrived
	gone      chan struct{} // closed when the stream is reset or its connection fails
	ready     chan struct{}
	status    int
	dialErr   error
	wdl       deadline // write deadline, on c.mu and c.sendCond

	mu       sync.Mutex // guards the fields below
	cond     sync.Cond  // Read waits here
	chunks   []*chunk   // received data, oldest first
	buffered int
	recvWin  int64 // window the peer may still use
	unacked  int64 // consumed but not yet returned to the peer
	eof      bool
	rerr     error
	filling  bool // the reader goroutine writes into the last chunk without mu
	rdl      deadline
	// sink is the TCP socket WriteTo copies to; while its caller is
	// parked (waiting for data, no wake-up pending) the reader goroutine
	// may write arriving data to it directly. See receive.
	sink   *sinkWriter
	parked bool
}

// chunk is a piece of a stream's receive buffer: data is buf[r:w].
type chunk struct {
	buf  [chunkSize]byte
	r, w int
}

var chunkPool = sync.Pool{New: func() any { return new(chunk) }}

func newStream(c *conn, authority netip.AddrPort, hdr Headers) *Stream {
	s := &Stream{c: c, authority: authority, hdr: hdr, recvWin: streamWindow, start: time.Now(),
		gone: make(chan struct{})}
	s.cond.L = &s.mu
	s.rdl.init(&s.mu, &s.cond)
	s.wdl.init(&c.mu, &c.sendCond)
	return s
}

// receive reads one DATA payload of n bytes from r (frameLen bytes counted
// against the window, padding included) into the stream's buffer. It
// returns false if the peer overran the stream window; the data is then
// discarded. Only the connection's reader goroutine calls it.
func (s *Stream) receive(r io.Reader, n, frameLen int) (bool, error) {
	s.mu.Lock()
	if int64(frameLen) > s.recvWin {
		s.mu.Unlock()
		return false, s.c.discardN(n)
	}
	s.recvWin -= int64(frameLen)
	if s.rerr != nil {
		// Closed locally: nobody will read. Give the window back.
		s.mu.Unlock()
		if err := s.c.discardN(n); err != nil {
			return true, err
		}
		s.c.consumed(n)
		return true, nil
	}
	for n > 0 {
		var tail *chunk
		if k := len(s.chunks); k > 0 && s.chunks[k-1].w < chunkSize {
			tail = s.chunks[k-1]
		} else {
			tail = chunkPool.Get().(*chunk)
			tail.r, tail.w = 0, 0
			s.chunks = append(s.chunks, tail)
		}
		m := min(n, chunkSize-tail.w)
		dst := tail.buf[tail.w : tail.w+m]
		s.filling = true
		s.mu.Unlock()
		_, err := io.ReadFull(r, dst)
		s.mu.Lock()
		s.filling = false
		if err != nil {
			s.mu.Unlock()
			return true, err
		}
		if s.rerr != nil {
			// Closed while we read: drop it and return the window.
			s.mu.Unlock()
			s.c.consumed(m)
			if err := s.c.discardN(n - m); err != nil {
				return true, err
			}
			s.c.consumed(n - m)
			return true, nil
		}
		tail.w += m
		s.buffered += m
		n -= m
		if s.sink == nil || !s.parked || s.buffered > inlineFlushMax {
			s.wakeLocked()
		}
	}
	if !s.parked || s.buffered == 0 {
		s.mu.Unlock()
		return true, nil
	}
	if s.buffered > inlineFlushMax {
		// Bulk: let the consumer write while we read on.
		s.wakeLocked()
		s.mu.Unlock()
		return true, nil
	}
	// The consumer is parked in WriteTo: everything before this frame
	// is written, and it is not writing. Hand small data to its socket
	// here, if the socket takes it without blocking, and spare the
	// consumer a wake-up; whatever is left wakes it as usual.
	written, update := s.writeSinkLocked()
	if s.buffered > 0 {
		s.wakeLocked()
	}
	s.mu.Unlock()
	if written > 0 {
		s.returnWindow(written, update, false)
	}
	return true, nil
}

// writeSinkLocked writes buffered data to s.sink without blocking and
// consumes what the socket took. Errors are left to the consumer, whose own
// write will meet them.
func (s *Stream) writeSinkLocked() (written int, update int64) {
	for s.buffered > 0 && s.rerr == nil && !s.rdl.exceeded {
		ch := s.chunks[0]
		seg := ch.buf[ch.r:ch.w]
		n := s.sink.tryWrite(seg)
		if n <= 0 {
			break
		}
		written += n
		update += s.advanceLocked(n)
		if n < len(seg) {
			break
		}
	}
	return written, update
}

// sinkWriter writes to a socket without waiting. Its callback is bound
// once, so a write does not allocate.
type sinkWriter struct {
	rc  syscall.RawConn
	fn  func(fd uintptr) bool // sw.write
	p   []byte
	n   int
	err error
}

func newSinkWriter(tc *net.TCPConn) *sinkWriter {
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	sw := &sinkWriter{rc: rc}
	sw.fn = sw.write
	return sw
}

func (sw *sinkWriter) write(fd uintptr) bool {
	sw.n, sw.err = syscall.Write(int(fd), sw.p)
	return true // done either way: never wait for writability here
}

// tryWrite writes p once and returns how much the socket took: 0 on
// EAGAIN or an error.
func (sw *sinkWriter) tryWrite(p []byte) int {
	sw.p = p
	rerr := sw.rc.Write(sw.fn)
	sw.p = nil
	if rerr != nil || sw.err != nil || sw.n < 0 {
		return 0
	}
	return sw.n
}

// consumedPadding returns a frame's padding to the stream window.
func (s *Stream) consumedPadding(n int) {
	s.mu.Lock()
	s.unacked += int64(n)
	s.mu.Unlock()
}

// failRecv ends the receive side with err. Data already buffered stays
// readable only if the peer had finished sending (EOF). c.mu is held.
func (s *Stream) failRecv(err error) {
	s.mu.Lock()
	dropped := 0
	if s.rerr == nil && !s.eof {
		s.rerr = err
		dropped = s.dropChunksLocked()
	}
	s.wakeLocked()
	s.mu.Unlock()
	if dropped > 0 {
		s.c.connConsumed.Add(int64(dropped))
		s.c.returnConnWindowLocked()
	}
}

// dropChunksLocked forgets the receive buffer after an error and returns
// how many unread bytes it held; the caller returns them to the
// connection window, or the window would shrink for good. The chunks are
// left to the garbage collector, not the pool: a WriteTo or the reader
// goroutine may still be using one outside the lock.
func (s *Stream) dropChunksLocked() int {
	n := s.buffered
	s.chunks = nil
	s.buffered = 0
	return n
}

// waitDataLocked blocks until data, EOF, an error or the read deadline.
func (s *Stream) waitDataLocked() error {
	for {
		switch {
		case s.rerr != nil:
			return s.rerr
		case s.buffered > 0:
			return nil
		case s.eof:
			return io.EOF
		case s.rdl.exceeded:
			return os.ErrDeadlineExceeded
		}
		s.parked = true
		s.cond.Wait()
		s.parked = false
	}
}

// wakeLocked wakes a consumer waiting for data.
func (s *Stream) wakeLocked() {
	s.parked = false
	s.cond.Broadcast()
}

// advanceLocked marks n bytes of the first chunk consumed, recycles it
// when used up, and reports how much window is due back to the peer.
// Only the consumer (holding rmu) calls it. The first chunk is recycled
// unless the reader goroutine is filling it (it is also the last).
func (s *Stream) advanceLocked(n int) (update int64) {
	ch := s.chunks[0]
	ch.r += n
	s.buffered -= n
	if ch.r == ch.w && (len(s.chunks) > 1 || !s.filling) {
		copy(s.chunks, s.chunks[1:])
		s.chunks[len(s.chunks)-1] = nil
		s.chunks = s.chunks[:len(s.chunks)-1]
		chunkPool.Put(ch)
	}
	s.unacked += int64(n)
	if s.unacked >= streamWindow/2 && !s.eof {
		update = s.unacked
		s.recvWin += update
		s.unacked = 0
	}
	return update
}

// returnWindow accounts n consumed bytes and sends the WINDOW_UPDATEs
// they made due: written here if inline (the consumer's goroutine), else
// left to the writer goroutine (the reader goroutine must not block on
// writes).
func (s *Stream) returnWindow(n int, update int64, inline bool) {
	c := s.c
	s.rx.Add(int64(n))
	c.cfg.metrics.bytesRx.Add(float64(n))
	connDue := c.connConsumed.Add(int64(n)) >= connWindow/2
	if update == 0 && !connDue {
		return
	}
	c.mu.Lock()
	if update > 0 && !s.recvDone && c.err == nil {
		_ = c.fr.WriteWindowUpdate(s.id, uint32(update))
		c.kickLocked()
	}
	c.returnConnWindowLocked()
	if inline {
		c.flushLocked()
	} else {
		c.kickLocked()
	}
	c.mu.Unlock()
}

// Read reads data the peer sent. It returns io.EOF after the peer
// half-closed and everything before was read.
func (s *Stream) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.mu.Lock()
	if err := s.waitDataLocked(); err != nil {
		s.mu.Unlock()
		return 0, err
	}
	n := 0
	var update int64
	for n < len(p) && s.buffered > 0 {
		ch := s.chunks[0]
		m := copy(p[n:], ch.buf[ch.r:ch.w])
		n += m
		update += s.advanceLocked(m)
	}
	s.mu.Unlock()
	s.returnWindow(n, update, true)
	return n, nil
}

// WriteTo writes everything the peer sends to w until EOF, straight from
// the receive buffer (io.Copy uses it). It returns nil at EOF. When w is a
// *net.TCPConn, data that arrives while WriteTo waits may be written to w
// by the connection's reader goroutine (without blocking), saving a
// goroutine wake-up per message.
func (s *Stream) WriteTo(w io.Writer) (int64, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	start := s.rx.Load()
	var sink *sinkWriter
	if tc, ok := w.(*net.TCPConn); ok {
		sink = newSinkWriter(tc)
	}
	s.mu.Lock()
	s.sink = sink
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.sink = nil
		s.mu.Unlock()
	}()
	for {
		s.mu.Lock()
		if err := s.waitDataLocked(); err != nil {
			s.sink = nil
			s.mu.Unlock()
			if err == io.EOF {
				err = nil
			}
			return s.rx.Load() - start, err
		}
		ch := s.chunks[0]
		seg := ch.buf[ch.r:ch.w]
		s.mu.Unlock()
		// Only this goroutine consumes while it is not parked, and the
		// reader goroutine only appends after ch.w, so seg stays valid
		// without the lock.
		n, werr := w.Write(seg)
		s.mu.Lock()
		var update int64
		if n > 0 && s.rerr == nil {
			update = s.advanceLocked(n)
		}
		s.mu.Unlock()
		if n > 0 {
			s.returnWindow(n, update, true)
		}
		if werr != nil {
			return s.rx.Load() - start, werr
		}
	}
}

// Write sends p as DATA frames. It blocks while flow control or the
// connection's write queue says so; the data is queued for the writer, not
// yet on the wire, when it returns.
func (s *Stream) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.write(p)
}

func (s *Stream) write(p []byte) (int, error) {
	c := s.c
	written := 0
	c.mu.Lock()
	for len(p) > 0 {
		if s.sendDone {
			c.mu.Unlock()
			return written, s.sendErrLocked()
		}
		if s.wdl.exceeded {
			c.mu.Unlock()
			return written, os.ErrDeadlineExceeded
		}
		n := int64(min(len(p), c.peerFrame))
		n = min(n, s.sendWin, c.sendWin)
		if n <= 0 || len(c.wbuf) >= writeHighWater {
			c.kickLocked() // what is queued must drain for us to go on
			c.sendWaits++
			c.sendCond.Wait()
			c.sendWaits--
			continue
		}
		c.appendDataLocked(s.id, p[:n], false)
		s.sendWin -= n
		c.sendWin -= n
		p = p[n:]
		written += int(n)
	}
	c.flushLocked()
	c.mu.Unlock()
	s.tx.Add(int64(written))
	c.cfg.metrics.bytesTx.Add(float64(written))
	return written, nil
}

func (s *Stream) sendErrLocked() error {
	if s.sendErr != nil {
		return s.sendErr
	}
	return errStreamClosed
}

// ReadFrom sends everything read from r until EOF, with a pooled 64 KiB
// buffer (io.Copy uses it). It does not half-close the stream.
func (s *Stream) ReadFrom(r io.Reader) (int64, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	var total int64
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			w, werr := s.write(buf[:n])
			total += int64(w)
			if werr != nil {
				return total, werr
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// CloseWrite half-closes the stream: the peer reads EOF after the data
// written so far. Reading goes on.
func (s *Stream) CloseWrite() error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.sendDone {
		if s.sendErr == errWriteClosed {
			return nil
		}
		return s.sendErrLocked()
	}
	c.appendDataLocked(s.id, nil, true)
	s.sendDone, s.sendErr = true, errWriteClosed
	c.maybeRemoveLocked(s)
	c.flushLocked()
	return nil
}

var errWriteClosed = errors.New("tunnel: write after CloseWrite")

// Close closes the stream. If the peer had finished sending, the stream
// ends cleanly (END_STREAM, like a TCP FIN); otherwise it is reset with
// CANCEL (like a TCP RST), since nobody will read what the peer still sends.
func (s *Stream) Close() error {
	c := s.c
	c.mu.Lock()
	switch {
	case s.removed:
	case s.recvDone:
		c.appendDataLocked(s.id, nil, true)
		s.sendDone, s.sendErr = true, net.ErrClosed
		c.maybeRemoveLocked(s)
	default:
		c.resetStreamLocked(s, http2.ErrCodeCancel, true, net.ErrClosed)
	}
	c.flushLocked()
	if s.sendErr == nil || s.sendErr == errWriteClosed {
		s.sendErr = net.ErrClosed
	}
	s.wdl.stop()
	c.mu.Unlock()
	s.mu.Lock()
	if s.rerr == nil {
		s.rerr = net.ErrClosed
	}
	dropped := s.dropChunksLocked()
	s.rdl.stop()
	s.wakeLocked()
	s.mu.Unlock()
	if dropped > 0 {
		c.consumed(dropped)
	}
	return nil
}

// errGone is why the stream was reset.
func (s *Stream) errGone() error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.sendErrLocked()
}

// reset aborts the stream with code (CONNECT_ERROR when the TCP side
// failed), as a TCP RST would.
func (s *Stream) reset(code http2.ErrCode) {
	c := s.c
	c.mu.Lock()
	c.resetStreamLocked(s, code, true, &ResetError{Code: code})
	c.mu.Unlock()
}

// ID is the HTTP/2 stream ID.
func (s *Stream) ID() uint32 { return s.id }

// Authority is the stream's destination, the :authority of its CONNECT.
func (s *Stream) Authority() netip.AddrPort { return s.authority }

// Headers are the pass-through headers of the CONNECT.
func (s *Stream) Headers() Headers { return s.hdr }

// PeerID is the SPIFFE ID the other end of the tunnel proved.
func (s *Stream) PeerID() spiffeid.ID { return s.c.peer.ID }

// LocalAddr is the local address of the tunnel connection on a client
// stream, and the destination (Authority) on a server stream.
func (s *Stream) LocalAddr() net.Addr {
	if s.c.cfg.isClient {
		return net.TCPAddrFromAddrPort(s.c.peer.Local)
	}
	return net.TCPAddrFromAddrPort(s.authority)
}

// RemoteAddr is the destination (Authority) on a client stream, and the
// source address of the tunnel connection on a server stream.
func (s *Stream) RemoteAddr() net.Addr {
	if s.c.cfg.isClient {
		return net.TCPAddrFromAddrPort(s.authority)
	}
	return net.TCPAddrFromAddrPort(s.c.peer.Remote)
}

// SetDeadline sets both deadlines.
func (s *Stream) SetDeadline(t time.Time) error {
	_ = s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}

// SetReadDeadline makes blocked and future reads fail with
// os.ErrDeadlineExceeded after t. The zero time means none.
func (s *Stream) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	s.rdl.set(t)
	s.mu.Unlock()
	return nil
}

// SetWriteDeadline makes blocked and future writes fail with
// os.ErrDeadlineExceeded after t. The zero time means none.
func (s *Stream) SetWriteDeadline(t time.Time) error {
	s.c.mu.Lock()
	s.wdl.set(t)
	s.c.mu.Unlock()
	return nil
}

var _ net.Conn = (*Stream)(nil)

// deadline is a net.Conn deadline for waiters on a sync.Cond. One timer is
// made on first use and reset afterwards.
type deadline struct {
	mu       *sync.Mutex
	cond     *sync.Cond
	t        time.Time
	timer    *time.Timer
	exceeded bool
}

func (d *deadline) init(mu *sync.Mutex, cond *sync.Cond) { d.mu, d.cond = mu, cond }

// set changes the deadline; d.mu is held.
func (d *deadline) set(t time.Time) {
	d.t, d.exceeded = t, false
	if t.IsZero() {
		d.stop()
		return
	}
	wait := time.Until(t)
	if wait <= 0 {
		d.exceeded = true
		d.cond.Broadcast()
		return
	}
	if d.timer == nil {
		d.timer = time.AfterFunc(wait, d.fire)
	} else {
		d.timer.Reset(wait)
	}
}

func (d *deadline) stop() {
	if d.timer != nil {
		d.timer.Stop()
	}
}

func (d *deadline) fire() {
	d.mu.Lock()
	if !d.t.IsZero() && !time.Now().Before(d.t) {
		d.exceeded = true
		d.cond.Broadcast()
	}
	d.mu.Unlock()
}
