// Package sniff detects the protocol of an inbound connection on a port
// whose protocol is not declared (xdsv1.Protocol_PROTOCOL_UNSPECIFIED), so
// that the node proxy can apply L7 features to HTTP and fall back to opaque
// TCP for everything else.
//
// The core, Detect, is pure: it looks at the bytes seen so far and says
// HTTP1, HTTP2, TLS or Unknown, and whether that answer is final. Sniff is
// the I/O edge: it reads from the connection until Detect is final or a
// short timeout passes, and returns a Conn that replays the bytes it read.
//
// # What is recognised
//
//   - HTTP2: the prior-knowledge client preface
//     "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" (h2c and gRPC), final after its 24
//     bytes.
//   - HTTP1: a request line: a method (GET, HEAD, POST, PUT, DELETE,
//     CONNECT, OPTIONS, TRACE, PATCH; case-sensitive), one space, a
//     request-target without spaces or control bytes, one space and
//     "HTTP/1.". Final as soon as "HTTP/1." is complete. Other methods
//     (WebDAV's PROPFIND, ...) are TCP.
//   - TLS: a handshake record header (0x16 0x03 0x00-0x04, length 1 to
//     2^14) followed by a ClientHello (0x01); final after 6 bytes. It is
//     proxied as TCP, named only so metrics show encrypted traffic.
//   - Unknown: everything else, proxied as TCP. Detect says so at the first
//     byte that rules the others out (binary, "get " in lower case, "SSH-"),
//     or when MaxLine (4 KiB) bytes have not settled it.
//
// # Timeout and server-first protocols
//
// In a server-first protocol (SMTP, MySQL, FTP, SSH servers) the client
// waits for the server to speak, so nothing arrives to sniff. Sniff gives up
// after its timeout and returns Unknown; no byte is lost, since the Conn
// replays whatever was read and reads the rest from the socket, and the
// read deadline is cleared. The cost is that such a connection's first
// server byte is delayed by the timeout, which is why it is short
// (DefaultTimeout, 100 ms) and why a port known to be server-first should
// be declared "tcp". The other side of the trade: an HTTP client slower
// than the timeout to send its request line is proxied as TCP (it works,
// without L7 features). Sniff returns as soon as Detect is final, so a
// client-first connection is not delayed.
//
// # Config
//
// Sniff(c, timeout, maxBytes): timeout is the longest Sniff waits, counted from
// the call (0 means DefaultTimeout); maxBytes is the most bytes it buffers (0
// means DefaultMax, 4 KiB; a prefix still undecided at maxBytes is Unknown).
// The proxy takes both from its config, not from xDS; ports with a declared
// protocol are never sniffed.
//
// # Metrics
//
// None here. The proxy counts each sniffed connection in
// weft_proxy_protocol_detected_total{protocol}, with Protocol.String as the
// label: "http1", "http2", "tls" or "tcp" (Unknown, including timeouts).
//
// # Example
//
//	p, sc, err := sniff.Sniff(conn, 0, 0)
//	if err != nil {
//		conn.Close()
//		return fmt.Errorf("accept %s: %w", conn.RemoteAddr(), err)
//	}
//	detected.WithLabelValues(p.String()).Inc()
//	switch p {
//	case sniff.HTTP1, sniff.HTTP2:
//		return serveHTTP(ctx, sc) // reads the request from the start
//	default:
//		return proxyTCP(ctx, sc, upstream) // io.Copy both ways; splices after the replay
//	}
package sniff
