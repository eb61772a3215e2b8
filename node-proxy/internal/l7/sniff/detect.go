package sniff

// Protocol is what the first bytes of a connection look like.
type Protocol int

const (
	// Unknown is anything not recognised below: the connection is proxied
	// as opaque TCP. It is also the answer while Detect needs more bytes.
	Unknown Protocol = iota
	// HTTP1 is an HTTP/1.x request line ("GET / HTTP/1.1").
	HTTP1
	// HTTP2 is the HTTP/2 prior-knowledge client preface (h2c, gRPC).
	HTTP2
	// TLS is a TLS handshake record carrying a ClientHello. It is proxied
	// as TCP; it is named so that metrics tell encrypted traffic apart.
	TLS
)

// String returns the protocol's metric label: "tcp", "http1", "http2" or "tls".
func (p Protocol) String() string {
	switch p {
	case HTTP1:
		return "http1"
	case HTTP2:
		return "http2"
	case TLS:
		return "tls"
	default:
		return "tcp"
	}
}

// MaxLine is how many bytes Detect reads before it gives up: a first line
// still undecided at this length is TCP.
const MaxLine = 4096

// h2Preface is the HTTP/2 client connection preface (RFC 9113 section 3.4).
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// methods are the HTTP/1.x methods recognised, case-sensitive (RFC 9110
// section 9). PRI is not here: it starts the HTTP/2 preface.
var methods = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}

const maxMethod = len("CONNECT") // the longest of methods

// Detect says what protocol prefix, the first bytes a client sent, belongs
// to. final is false when more bytes are needed to decide (p is then
// Unknown); once final is true for a prefix, it is true with the same p for
// every longer prefix. Detect reads bytes in order and decides at the first
// byte that settles the question, so it never needs more than MaxLine bytes.
// It does not allocate.
func Detect(prefix []byte) (p Protocol, final bool) {
	b := prefix
	if len(b) > MaxLine {
		b = b[:MaxLine]
	}
	p, final = detect(b)
	if !final && len(prefix) >= MaxLine {
		return Unknown, true
	}
	return p, final
}

func detect(b []byte) (Protocol, bool) {
	switch {
	case len(b) == 0:
		return Unknown, false
	case b[0] == 0x16:
		return detectTLS(b)
	case b[0] == 'P' && len(b) >= 2 && b[1] == 'R':
		return detectPreface(b)
	default:
		return detectHTTP1(b)
	}
}

// detectTLS checks a TLS record header (RFC 8446 section 5.1): content type
// handshake (0x16), legacy version 0x0300-0x0304, a length of 1 to 2^14,
// then handshake type client_hello (0x01).
func detectTLS(b []byte) (Protocol, bool) {
	for i := 1; i < len(b) && i <= 5; i++ {
		switch i {
		case 1:
			if b[1] != 0x03 {
				return Unknown, true
			}
		case 2:
			if b[2] > 0x04 {
				return Unknown, true
			}
		case 4:
			if n := int(b[3])<<8 | int(b[4]); n == 0 || n > 1<<14 {
				return Unknown, true
			}
		case 5:
			if b[5] != 0x01 {
				return Unknown, true
			}
			return TLS, true
		}
	}
	return Unknown, false
}

func detectPreface(b []byte) (Protocol, bool) {
	n := min(len(b), len(h2Preface))
	if string(b[:n]) != h2Preface[:n] {
		return Unknown, true
	}
	if n == len(h2Preface) {
		return HTTP2, true
	}
	return Unknown, false
}

// detectHTTP1 checks a request line (RFC 9112 section 3): method SP
// request-target SP "HTTP/1." and decides as soon as "HTTP/1." is complete.
func detectHTTP1(b []byte) (Protocol, bool) {
	// Method.
	i := 0
	for i < len(b) && b[i] != ' ' {
		i++
	}
	if !isMethod(b[:i], i < len(b)) {
		return Unknown, true
	}
	if i == len(b) {
		return Unknown, false
	}
	// Request-target: one or more visible bytes. Bytes above 0x7e are let
	// through: some clients send raw UTF-8 and servers accept it.
	i++
	start := i
	for ; i < len(b) && b[i] != ' '; i++ {
		if c := b[i]; c < 0x21 || c == 0x7f {
			return Unknown, true
		}
	}
	if i == len(b) {
		return Unknown, false
	}
	if i == start {
		return Unknown, true // two spaces: no request-target
	}
	// Version.
	const version = "HTTP/1."
	i++
	n := min(len(b)-i, len(version))
	if string(b[i:i+n]) != version[:n] {
		return Unknown, true
	}
	if n == len(version) {
		return HTTP1, true
	}
	return Unknown, false
}

// isMethod reports whether tok is one of methods (complete) or could still
// become one (a prefix of one, !complete).
func isMethod(tok []byte, complete bool) bool {
	if len(tok) > maxMethod || (complete && len(tok) == 0) {
		return false
	}
	for _, m := range methods {
		if complete && string(tok) == m || !complete && len(tok) <= len(m) && string(tok) == m[:len(tok)] {
			return true
		}
	}
	return false
}
