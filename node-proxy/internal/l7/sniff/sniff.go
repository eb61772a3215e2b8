package sniff

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

const (
	// DefaultTimeout is the sniffing timeout used when Sniff is given zero.
	DefaultTimeout = 100 * time.Millisecond
	// DefaultMax is the most bytes Sniff reads when given zero.
	DefaultMax = MaxLine
)

// Sniff reads the first bytes of c until Detect is final, maxBytes have
// arrived, or timeout has passed since the call, whichever comes first, and
// returns what they look like together with a Conn that replays them before
// reading from c. Sniff never waits longer than timeout: a client that sends
// nothing (a server-first protocol such as SMTP or MySQL) or stops mid-way
// gets Unknown. Zero or negative timeout and maxBytes mean DefaultTimeout and
// DefaultMax.
//
// Sniff uses c's read deadline and clears it before returning; c must survive
// a read timeout (a *net.TCPConn does, a *tls.Conn does not). An EOF from
// the client is not an error: the Conn replays what came and then returns
// io.EOF, so a half-closed client can still be answered. Any other read
// error is returned, with a nil Conn; the caller still owns c and closes it.
func Sniff(c net.Conn, timeout time.Duration, maxBytes int) (Protocol, *Conn, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMax
	}
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return Unknown, nil, fmt.Errorf("sniff: set read deadline: %w", err)
	}
	buf := make([]byte, 0, maxBytes)
	p, final := Unknown, false
	var rerr error
	for !final && len(buf) < maxBytes && rerr == nil {
		var n int
		n, rerr = c.Read(buf[len(buf):maxBytes])
		buf = buf[:len(buf)+n]
		p, final = Detect(buf)
	}
	if !final {
		p = Unknown
	}
	switch {
	case rerr == nil, errors.Is(rerr, os.ErrDeadlineExceeded):
		rerr = nil
	case errors.Is(rerr, io.EOF):
		rerr = io.EOF
	default:
		return Unknown, nil, fmt.Errorf("sniff: read: %w", rerr)
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		return Unknown, nil, fmt.Errorf("sniff: clear read deadline: %w", err)
	}
	if len(buf) == 0 {
		buf = nil
	}
	return p, &Conn{Conn: c, buf: buf, err: rerr}, nil
}

// Conn is a net.Conn whose first reads return the bytes Sniff consumed.
// Write, Close, addresses and deadlines go straight to the underlying
// connection. It is safe for concurrent use like any net.Conn.
type Conn struct {
	net.Conn

	mu  sync.Mutex // guards the fields below
	buf []byte     // sniffed bytes not yet read
	err error      // io.EOF if the client closed while sniffing; returned after buf
}

var (
	_ net.Conn      = (*Conn)(nil)
	_ io.WriterTo   = (*Conn)(nil)
	_ io.ReaderFrom = (*Conn)(nil)
)

// Read returns the sniffed bytes first, then reads from the underlying
// connection.
func (c *Conn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if len(c.buf) > 0 {
		n := copy(p, c.buf)
		c.buf = c.buf[n:]
		if len(c.buf) == 0 {
			c.buf = nil
		}
		c.mu.Unlock()
		return n, nil
	}
	err := c.err
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

// WriteTo writes the sniffed bytes to w, then copies the underlying
// connection to w with w.ReadFrom when w has it, so that io.Copy between two
// TCP connections can still splice.
func (c *Conn) WriteTo(w io.Writer) (int64, error) {
	c.mu.Lock()
	buf, err := c.buf, c.err
	c.buf = nil
	c.mu.Unlock()
	var total int64
	if len(buf) > 0 {
		n, werr := w.Write(buf)
		total += int64(n)
		if werr != nil {
			c.mu.Lock()
			c.buf = buf[n:] // keep what w did not take
			c.mu.Unlock()
			return total, werr
		}
	}
	if err != nil {
		if err == io.EOF {
			return total, nil
		}
		return total, err
	}
	var n int64
	if rf, ok := w.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(c.Conn)
	} else {
		n, err = io.Copy(w, c.Conn)
	}
	return total + n, err
}

// ReadFrom copies r to the underlying connection, with its ReadFrom when it
// has one (splice on Linux).
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{c.Conn}, r)
}

// writerOnly hides a writer's ReadFrom so that io.Copy does not loop back.
type writerOnly struct{ io.Writer }

// CloseWrite half-closes the underlying connection (sends FIN) when it
// supports it, as *net.TCPConn does.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return fmt.Errorf("sniff: %T has no CloseWrite", c.Conn)
}

// CloseRead shuts down the reading side of the underlying connection when
// it supports it.
func (c *Conn) CloseRead() error {
	if cr, ok := c.Conn.(interface{ CloseRead() error }); ok {
		return cr.CloseRead()
	}
	return fmt.Errorf("sniff: %T has no CloseRead", c.Conn)
}

// NetConn returns the underlying connection, for socket options such as
// SO_ORIGINAL_DST. Reading from it directly skips the sniffed bytes.
func (c *Conn) NetConn() net.Conn { return c.Conn }
