// Package tunnel carries TCP connections between node proxies as HTTP/2
// CONNECT streams over mutual TLS: HBONE, the tunnel of Istio ambient,
// whose wire format it follows (interoperability with ztunnel is not yet
// tested).
//
// The source pod's node proxy is the Client; the destination pod's node
// proxy is the Server, listening on port 15008 inside the destination
// pod's network namespace. Every app TCP connection becomes one stream;
// streams between the same two identities share pooled TLS connections.
//
// # Connection
//
//	client (source node proxy)                   server (15008 in the destination pod's netns)
//	   TCP connect <dst pod IP>:15008 ------------>
//	   TLS 1.3, ALPN "h2" <----------------------->  server presents the destination
//	     client presents the source workload's        workload's X.509-SVID, chosen by
//	     X.509-SVID                                   the listener address (ServerConfig.Certificate)
//	   each side verifies the other's chain against the trust bundle (go-spiffe
//	   x509svid.Verify); the client also requires the server's SPIFFE ID to be
//	   the destination identity it expects, else *IdentityError
//	   "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
//	   SETTINGS, WINDOW_UPDATE(0) ---------------->
//	                        <--------------------- SETTINGS, WINDOW_UPDATE(0)
//
// No session resumption (a resumed session carries an earlier handshake's
// identity and skips verification paths; pooling makes full handshakes
// rare) and no SNI (clients dial IPs). The key exchange is Go's default,
// which is post-quantum hybrid.
//
// # Stream
//
//	HEADERS  :method CONNECT                      -->  one stream per TCP connection
//	         :authority <dst pod IP>:<dst port>        (the original destination)
//	         traceparent, tracestate, baggage, forwarded (optional)
//	                                              <--  HEADERS :status 200
//	DATA ...                                     <-->  the bytes, both ways
//	DATA (END_STREAM)                            <-->  half-close: a TCP FIN
//	RST_STREAM CONNECT_ERROR                     <-->  the TCP connection behind failed: a TCP RST
//	RST_STREAM CANCEL                            <-->  closed before reading everything
//
// A refused CONNECT is answered HEADERS(:status, END_STREAM) followed by
// RST_STREAM(NO_ERROR), and Client.Dial returns a *StatusError:
//
//	status  reason label       when
//	200     -                  accepted; bytes flow
//	400     bad_request        not a CONNECT; :authority missing, not an IP:port, or
//	                           repeated; :path, :scheme or :protocol present (plain
//	                           CONNECT only); connection-specific header; malformed
//	                           field (upper-case name, bad value)
//	400     authority_not_local  :authority is not a pod this node proxy serves behind
//	                           the listener the connection arrived on. 400, not 403:
//	                           this is a misrouted request (a stale endpoint), not a
//	                           policy decision, and callers must tell the two apart.
//	401     unauthenticated    Authorize returned an error wrapping ErrUnauthenticated
//	403     forbidden          Authorize returned any other error (policy denial)
//	431     headers_too_large  the decoded header list exceeds MaxHeaderListSize
//	503     dial_failed        the destination could not be reached (refused, timeout)
//	RST_STREAM REFUSED_STREAM  stream_limit: more open streams than
//	                           SETTINGS_MAX_CONCURRENT_STREAMS, or the connection is
//	                           going away; never processed, so the Client retries it
//	                           on another connection
//
// Checks run in that order, cheapest first; Authorize sees only
// well-formed, local destinations.
//
// # Frames
//
//	frame          sent by  use
//	DATA           both     stream bytes; END_STREAM = half-close; padding accepted
//	HEADERS        both     CONNECT request, response; CONTINUATION if larger than a frame
//	CONTINUATION   both     rest of a header block
//	SETTINGS       both     first frame; values below; acknowledged
//	WINDOW_UPDATE  both     flow control, batched (half a window at a time)
//	PING           both     keepalive after a silent interval; answered
//	RST_STREAM     both     abort one stream (codes above)
//	GOAWAY         both     no new streams (shutdown, idle close, protocol error)
//	PRIORITY, PRIORITY_UPDATE, unknown   ignored
//	PUSH_PROMISE   -        connection error (push is disabled)
//
// SETTINGS each side sends:
//
//	INITIAL_WINDOW_SIZE     4 MiB   (and the connection window is raised to 16 MiB)
//	MAX_FRAME_SIZE          64 KiB  (DATA frames we send are at most this and the peer's value)
//	MAX_HEADER_LIST_SIZE    16 KiB by default (ServerConfig/ClientConfig.MaxHeaderListSize)
//	MAX_CONCURRENT_STREAMS  server: 1000 by default; the client assumes 100 until told
//	ENABLE_PUSH             client: 0
//
// Protocol violations (HEADERS on an even or reused stream ID, DATA on an
// idle stream, window overflow, bad SETTINGS, PUSH_PROMISE, a header block
// over four times MaxHeaderListSize, a peer that makes us queue more than
// 4 MiB of control frames without reading) end the connection with GOAWAY
// and the matching error code. Nothing a peer sends panics the server; the
// request validator and the server's frame handling are fuzzed.
//
// # Pooling
//
// A Client pools connections by (source SPIFFE ID, destination SPIFFE ID,
// destination address), because that is what the handshake proved. A
// stream goes on the first pooled connection with a free slot under the
// server's MAX_CONCURRENT_STREAMS; when all are full, the Client dials
// another (one dial at a time per key; concurrent Dials wait for it). A
// connection leaves the pool when it dies, gets GOAWAY, runs out of stream
// IDs or outlives either certificate, and closes once idle for
// IdleTimeout. A connection silent for KeepAliveInterval is PINGed; if
// nothing arrives within KeepAliveTimeout it is declared dead, its streams
// fail with *ConnError, and the next Dial makes a new one. TCP keepalive is
// on as well. Dial retries (up to three attempts) only streams the server
// provably never processed.
//
// # Goroutines, buffers and system calls
//
// The costs in a Go tunnel are system calls and goroutine wake-ups, not
// TLS record encryption (1-2% of CPU with pooled connections), and
// net/http's HTTP/2 server writes each flush on a goroutine of its own.
// So the package does not use net/http: it drives x/net/http2's Framer
// and hpack directly. Measurements: docs/concepts/hbone.md.
//
//   - One reader goroutine per connection reads frames. DATA payloads are
//     read from the TLS connection straight into the stream's receive
//     buffer (pooled 64 KiB chunks, released when drained). When the
//     stream's consumer waits in WriteTo on a TCP socket (as Splice does)
//     and the data is small, the reader goroutine hands it to that socket
//     with one non-blocking write instead of waking the consumer; on
//     EAGAIN, a short write or an error the consumer is woken as usual.
//     This halves the CPU per request of a proxied connection.
//   - Writing is one role per connection. Every goroutine encodes its
//     frames into one shared queue; whoever holds the role takes the whole
//     queue and writes it with one tls.Conn.Write, whose records are
//     gathered under the TLS connection and leave in one write(2). A
//     stream's own goroutine takes the role when it is free and the queue
//     is at most one TLS record (a small request leaves without waking
//     anyone); larger queues, frames from the reader goroutine (SETTINGS
//     and PING answers, refusals) and timers go to the connection's writer
//     goroutine. No goroutine is started per flush, frame or client stream.
//   - Stream.Read, Write, WriteTo and ReadFrom copy on the caller's
//     goroutine; io.Copy in either direction uses WriteTo or ReadFrom, so a
//     splice needs no intermediate buffer beyond one pooled 64 KiB one.
//   - The server runs one goroutine per accepted stream (checks, dial,
//     then one direction of Splice) plus one for the other direction.
//   - Flow control windows are 4 MiB per stream and 16 MiB per connection,
//     and WINDOW_UPDATE is sent once half a window has been consumed.
//   - Steady-state Read, Write and the frame loop do not allocate (the two
//     allocations per request/response in the benchmarks are crypto/tls's,
//     and plain TLS shows them too).
//
// A stream's writer may thus do the connection's write(2) itself; a write
// deadline bounds waiting for flow control or queue space, not that
// write, which is at most one TLS record.
//
// Limits: a stream counts against MAX_CONCURRENT_STREAMS until both sides
// have ended it. A stream the client reset keeps its server handler until
// the handler notices; new streams beyond the handler limit wait in a
// queue, and a client that fills the queue too (resetting and reopening
// faster than handlers finish) loses the connection (ENHANCE_YOUR_CALM).
//
// # Metrics
//
// Registered on the Registerer given, with side="inbound" (Server) or
// "outbound" (Client): weft_tunnel_connections_total,
// weft_tunnel_connections_active, weft_tunnel_handshake_failures_total
// {reason}, weft_tunnel_streams_total, weft_tunnel_streams_active,
// weft_tunnel_refusals_total{reason} (the reason labels above; on the
// client, status_<code>), weft_tunnel_bytes_total{direction=rx|tx}.
package tunnel
