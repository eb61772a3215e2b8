package tunnel

import (
	"errors"
	"net"

	"golang.org/x/net/http2"
)

// Splice copies between a stream and a TCP connection until both
// directions end, then closes both. Each direction that ends cleanly is
// half-closed on the other side (EOF from nc becomes END_STREAM, END_STREAM
// becomes a TCP FIN); a failure on either side aborts both (a TCP error
// becomes RST_STREAM(CONNECT_ERROR), a stream reset becomes a TCP RST), as
// RFC 9113 section 8.5 asks of a CONNECT proxy.
//
// It uses one extra goroutine, for the nc-to-stream direction; the calling
// goroutine copies the other way. rx counts bytes from the stream to nc,
// tx from nc to the stream. err is the first failure, nil if both
// directions ended cleanly.
func Splice(s *Stream, nc net.Conn) (rx, tx int64, err error) {
	type result struct {
		n   int64
		err error
	}
	up := make(chan result, 1)
	go func() {
		n, err := s.ReadFrom(nc)
		if err == nil {
			err = s.CloseWrite()
		}
		if err != nil {
			s.reset(http2.ErrCodeConnect)
			abort(nc)
		}
		up <- result{n, err}
	}()
	rx, err = s.WriteTo(nc)
	if err == nil {
		err = closeWrite(nc)
	}
	if err != nil {
		abort(nc)
		s.reset(http2.ErrCodeConnect)
	}
	var r result
	select {
	case r = <-up:
	case <-s.gone:
		// Reset, or the tunnel connection died, after the stream-to-nc
		// direction had ended cleanly: the other goroutine may sit in
		// nc.Read for as long as nc stays quiet. Abort nc to end it.
		abort(nc)
		r = <-up
		if err == nil {
			err = s.errGone()
		}
	}
	tx = r.n
	if err == nil {
		err = r.err
	}
	nc.Close()
	s.Close()
	return rx, tx, err
}

func closeWrite(nc net.Conn) error {
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		if err := cw.CloseWrite(); err != nil && !errors.Is(err, net.ErrClosed) {
			return err
		}
	}
	return nil
}

// abort closes nc with a TCP RST where it can.
func abort(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	nc.Close()
}
