package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// PeerIdentityHeader carries the caller's SPIFFE ID, as proven by mutual
// TLS, on HTTP requests the destination node proxy delivers to a pod. The
// proxy removes any value the caller sent (in headers and trailers), so an
// application may trust it when it only accepts traffic through the mesh
// (STRICT).
const PeerIdentityHeader = "X-Weft-Peer-Identity"

// maxRequestHead bounds a request's line and headers, and maxChunkLine a
// chunk-size or trailer line.
const (
	maxRequestHead = 64 << 10
	maxChunkLine   = 4 << 10
)

// errMalformedHTTP is why a tunnelled HTTP/1.1 connection was cut.
var errMalformedHTTP = errors.New("malformed HTTP/1.1 request")

// identityConn is the connection to a pod's HTTP/1.1 port as the tunnel
// sees it: what the caller sends goes through Write, which parses the
// requests in place (heads, Content-Length and chunked bodies, trailers),
// drops any PeerIdentityHeader and adds the proven one to every request
// head; what the application answers is read through as bytes. There is no
// goroutine and no copy beyond the head being rewritten: the cost stays
// close to splicing.
//
// After a request with an Upgrade header or the CONNECT method, the rest
// of the connection is carried as bytes (a WebSocket, say). So that a
// refused upgrade cannot be used to slip a forged header in a later
// request, the bytes are still scanned for the header's name, and the
// connection is cut if it appears.
//
// Per-request authorization: when authorize is set, each request head is
// passed to it (method and path, see requestPath) before anything of the
// request is forwarded. The first request it refuses is not forwarded, nor
// is anything after it on the connection: Write half-closes the
// application's side, so the application finishes the responses to the
// earlier (pipelined) requests and closes, and from then on Write discards
// what the caller sends. Read returns the application's bytes up to its
// close, then a complete 403 response with Connection: close, then
// io.EOF: the caller gets its responses in order. An application that does
// not close within denyDrainTimeout of the half-close (one that ignores
// EOF) is given up on by a read deadline; a response to an earlier request
// that it had not finished by then is cut short before the 403. After an
// upgrade (stRaw) there are no more request heads, so only the upgrading
// request is authorized.
//
// Write (with CloseWrite) and Read run on different goroutines, the
// tunnel's two directions. The parsing state belongs to Write; the 403's
// progress to Read; the denial, which both see, is an atomic pointer that
// Read only loads once the application's side has failed or ended, so the
// path of allowed requests takes no lock.
//
// identityConn deliberately has no ReadFrom: the tunnel must call Write.
type identityConn struct {
	c      *net.TCPConn
	header []byte // "X-Weft-Peer-Identity: <id>\r\n"

	// authorize decides a request by method and path; nil allows all.
	authorize func(method, path string) error
	// onRequest, if set (before the first Write), is called on Write's
	// goroutine once per request head, after authorization, with the
	// request's method and whether it was refused. The method is the
	// caller's token as sent (the common ones are interned): bucket it
	// before using it as a metric label.
	onRequest func(method string, denied bool)
	// drainTimeout is how long the application has to close after a
	// denial's half-close (denyDrainTimeout; tests shorten it).
	drainTimeout time.Duration

	state     int
	remaining int64  // body bytes left (stBody, stChunkData)
	pending   []byte // a head or line split across writes
	tail      []byte // stRaw: the last bytes seen, for the name scan
	out       []byte // scratch for the rewritten head

	denial atomic.Pointer[denial] // set once, by Write, on the first refusal

	// Read's own: whether the application's side has ended after a denial,
	// and how much of the 403 has been returned.
	appDone bool
	sent    int
}

// denial is a refused request: why, and whether it was a HEAD (whose 403
// carries no body).
type denial struct {
	err  error
	head bool
}

// denyDrainTimeout is how long, after a denial, the application may take
// to finish earlier responses and close before Read gives up on it.
const denyDrainTimeout = 5 * time.Second

// forbidden is the response to a refused request; forbiddenBody is the
// length of its body, which a HEAD's response leaves out.
const (
	forbidden     = "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 20\r\nConnection: close\r\n\r\nRBAC: access denied\n"
	forbiddenBody = len("RBAC: access denied\n")
)

const (
	stHead = iota
	stBody
	stChunkSize
	stChunkData
	stChunkCRLF
	stTrailer
	stRaw
	stDenied // after a refused request: everything is discarded
)

// newIdentityConn wraps c, the connection to a pod's HTTP/1.1 port, for a
// caller proven to be peer. authorize, if not nil, decides each request
// (see identityConn); nil allows every request.
func newIdentityConn(c *net.TCPConn, peer spiffeid.ID, authorize func(method, path string) error) *identityConn {
	return &identityConn{
		c:            c,
		header:       []byte(PeerIdentityHeader + ": " + peer.String() + "\r\n"),
		authorize:    authorize,
		drainTimeout: denyDrainTimeout,
	}
}

// Denied returns the error authorize returned for the first refused
// request, nil if no request was refused (so far).
func (ic *identityConn) Denied() error {
	if d := ic.denial.Load(); d != nil {
		return d.err
	}
	return nil
}

// Read returns the application's bytes; after a denial, once the
// application has closed (or been given up on), the 403 and then io.EOF.
func (ic *identityConn) Read(p []byte) (int, error) {
	if !ic.appDone {
		n, err := ic.c.Read(p)
		if err == nil {
			return n, nil
		}
		d := ic.denial.Load()
		if d == nil {
			return n, err
		}
		// The application closed after our half-close, the drain deadline
		// passed, or its socket failed: what it sent is all there will be.
		ic.appDone = true
		if n > 0 {
			return n, nil
		}
	}
	resp := forbidden
	if ic.denial.Load().head {
		resp = forbidden[:len(forbidden)-forbiddenBody]
	}
	if ic.sent >= len(resp) {
		return 0, io.EOF
	}
	n := copy(p, resp[ic.sent:])
	ic.sent += n
	return n, nil
}

// CloseWrite half-closes the application's side; after a denial it
// already is, and CloseWrite does nothing (a second shutdown could fail
// once the application has closed, and the tunnel would then reset the
// stream before the 403 is read).
func (ic *identityConn) CloseWrite() error {
	if ic.denial.Load() != nil {
		return nil
	}
	return ic.c.CloseWrite()
}

func (ic *identityConn) Close() error                       { return ic.c.Close() }
func (ic *identityConn) LocalAddr() net.Addr                { return ic.c.LocalAddr() }
func (ic *identityConn) RemoteAddr() net.Addr               { return ic.c.RemoteAddr() }
func (ic *identityConn) SetDeadline(t time.Time) error      { return ic.c.SetDeadline(t) }
func (ic *identityConn) SetReadDeadline(t time.Time) error  { return ic.c.SetReadDeadline(t) }
func (ic *identityConn) SetWriteDeadline(t time.Time) error { return ic.c.SetWriteDeadline(t) }

// deny records a refused request, stops forwarding and half-closes the
// application's side, with a deadline for it to finish.
func (ic *identityConn) deny(err error, head bool) {
	ic.state = stDenied
	ic.pending = ic.pending[:0]
	// Stored before the half-close: the application's close, which Read
	// then sees, follows it.
	ic.denial.Store(&denial{err: err, head: head})
	_ = ic.c.CloseWrite()
	_ = ic.c.SetReadDeadline(time.Now().Add(ic.drainTimeout))
}

// Write consumes all of p or fails; a failure means the caller sent
// something that is not HTTP/1.1 (or the application's socket failed), and
// the tunnel then resets both sides. A refused request is not a failure:
// from it on, Write discards everything (and succeeds).
func (ic *identityConn) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		var err error
		switch ic.state {
		case stDenied:
			return n, nil
		case stHead:
			p, err = ic.head(p)
		case stBody, stChunkData:
			k := int(min(int64(len(p)), ic.remaining))
			if _, err = ic.c.Write(p[:k]); err == nil {
				p = p[k:]
				ic.remaining -= int64(k)
				if ic.remaining == 0 {
					if ic.state == stBody {
						ic.state = stHead
					} else {
						ic.state = stChunkCRLF
					}
				}
			}
		case stChunkSize, stChunkCRLF, stTrailer:
			p, err = ic.chunkLine(p)
		case stRaw:
			err = ic.raw(p)
			p = nil
		}
		if err != nil {
			return n - len(p), err
		}
	}
	return n, nil
}

// line returns the next CRLF-terminated line of p (without CRLF), joining
// what an earlier write left in pending, and the rest of p. ok is false
// when p ends before the line does (it is then kept in pending).
func (ic *identityConn) line(p []byte, limit int) (line, rest []byte, ok bool, err error) {
	i := bytes.IndexByte(p, '\n')
	if i < 0 {
		if len(ic.pending)+len(p) > limit {
			return nil, nil, false, fmt.Errorf("%w: line longer than %d bytes", errMalformedHTTP, limit)
		}
		ic.pending = append(ic.pending, p...)
		return nil, nil, false, nil
	}
	line, rest = p[:i+1], p[i+1:]
	if len(ic.pending) > 0 {
		line = append(ic.pending, line...)
		ic.pending = ic.pending[:0]
	}
	if len(line) > limit {
		return nil, nil, false, fmt.Errorf("%w: line longer than %d bytes", errMalformedHTTP, limit)
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, nil, false, fmt.Errorf("%w: bare LF", errMalformedHTTP)
	}
	return line[:len(line)-2], rest, true, nil
}

// head handles stHead: it waits for a whole request head, rewrites it and
// sets the body state.
func (ic *identityConn) head(p []byte) ([]byte, error) {
	var head, rest []byte
	if len(ic.pending) == 0 {
		if i := bytes.Index(p, []byte("\r\n\r\n")); i >= 0 {
			head, rest = p[:i+4], p[i+4:]
		}
	}
	if head == nil {
		// The head spans writes: gather it.
		start := max(0, len(ic.pending)-3)
		ic.pending = append(ic.pending, p...)
		i := bytes.Index(ic.pending[start:], []byte("\r\n\r\n"))
		if i < 0 {
			if len(ic.pending) > maxRequestHead {
				return nil, fmt.Errorf("%w: request head over %d bytes", errMalformedHTTP, maxRequestHead)
			}
			return nil, nil
		}
		end := start + i + 4
		head = ic.pending[:end]
		rest = append([]byte(nil), ic.pending[end:]...) // rare: a head split across writes
		defer func() { ic.pending = ic.pending[:0] }()
	}
	if len(head) > maxRequestHead {
		return nil, fmt.Errorf("%w: request head over %d bytes", errMalformedHTTP, maxRequestHead)
	}
	out, next, err := ic.rewrite(head)
	if err != nil {
		return nil, err
	}
	if next == stDenied {
		return nil, nil // the rest is discarded
	}
	if _, err := ic.c.Write(out); err != nil {
		return nil, err
	}
	ic.state = next
	return rest, nil
}

// rewrite parses a request head (ending in CRLFCRLF) and returns it with
// the identity header replaced, and the state that follows it: stDenied,
// with no head, when authorize refuses the request.
func (ic *identityConn) rewrite(head []byte) ([]byte, int, error) {
	lines := head[:len(head)-4] // without the final CRLFCRLF
	nl := bytes.Index(lines, []byte("\r\n"))
	reqLine := lines
	if nl >= 0 {
		reqLine = lines[:nl]
	}
	method, rest, ok1 := bytes.Cut(reqLine, []byte(" "))
	target, version, ok2 := bytes.Cut(rest, []byte(" "))
	if !ok1 || !ok2 || len(method) == 0 || !bytes.HasPrefix(version, []byte("HTTP/1.")) || bytes.ContainsAny(reqLine, "\r\n") {
		return nil, 0, fmt.Errorf("%w: request line %q", errMalformedHTTP, truncate(reqLine))
	}
	out := append(ic.out[:0], reqLine...)
	out = append(out, '\r', '\n')
	var contentLength int64 = -1
	chunked, raw := false, string(method) == "CONNECT"
	for nl >= 0 {
		lines = lines[nl+2:]
		nl = bytes.Index(lines, []byte("\r\n"))
		line := lines
		if nl >= 0 {
			line = lines[:nl]
		}
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			return nil, 0, fmt.Errorf("%w: folded header line", errMalformedHTTP)
		}
		if bytes.ContainsAny(line, "\r\n") {
			// A bare LF ends a line for many servers (Go's among them):
			// the application would see a header this parser did not.
			return nil, 0, fmt.Errorf("%w: bare CR or LF in the head", errMalformedHTTP)
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(name) == 0 || bytes.ContainsAny(name, " \t") {
			return nil, 0, fmt.Errorf("%w: header line %q", errMalformedHTTP, truncate(line))
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte(PeerIdentityHeader)):
			continue // the caller's claim: dropped
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 || (contentLength >= 0 && n != contentLength) {
				return nil, 0, fmt.Errorf("%w: Content-Length %q", errMalformedHTTP, truncate(value))
			}
			contentLength = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			codings := bytes.Split(value, []byte(","))
			if chunked || !bytes.EqualFold(bytes.TrimSpace(codings[len(codings)-1]), []byte("chunked")) {
				return nil, 0, fmt.Errorf("%w: Transfer-Encoding %q", errMalformedHTTP, truncate(value))
			}
			chunked = true
		case bytes.EqualFold(name, []byte("Upgrade")):
			raw = true
		}
		out = append(out, line...)
		out = append(out, '\r', '\n')
	}
	if chunked && contentLength >= 0 {
		// Both framings: the request smuggling shape. Refuse.
		return nil, 0, fmt.Errorf("%w: both Content-Length and Transfer-Encoding", errMalformedHTTP)
	}
	if ic.authorize != nil || ic.onRequest != nil {
		m := methodString(method)
		var err error
		if ic.authorize != nil {
			err = ic.authorize(m, string(requestPath(m, target)))
		}
		if ic.onRequest != nil {
			ic.onRequest(m, err != nil)
		}
		if err != nil {
			ic.deny(err, m == "HEAD")
			return nil, stDenied, nil
		}
	}
	out = append(out, ic.header...)
	out = append(out, '\r', '\n')
	ic.out = out
	switch {
	case raw:
		return out, stRaw, nil
	case chunked:
		return out, stChunkSize, nil
	case contentLength > 0:
		ic.remaining = contentLength
		return out, stBody, nil
	default:
		return out, stHead, nil
	}
}

// methodString returns method as a string, without allocating for the
// common methods.
func methodString(method []byte) string {
	switch string(method) {
	case "GET":
		return "GET"
	case "HEAD":
		return "HEAD"
	case "POST":
		return "POST"
	case "PUT":
		return "PUT"
	case "DELETE":
		return "DELETE"
	case "PATCH":
		return "PATCH"
	case "OPTIONS":
		return "OPTIONS"
	case "CONNECT":
		return "CONNECT"
	case "TRACE":
		return "TRACE"
	}
	return string(method)
}

// requestPath returns the path authorization sees in a request-target,
// as an application's HTTP server would take it, without the query: for
// the origin form ("/a/b?q") the path; for the absolute form
// ("http://h:80/a/b?q", "http:/a/b") what follows the scheme and the
// authority, "/" when that is empty; "*" as is. A CONNECT's authority form
// is given as is. The path is not normalized: dot segments, percent
// encodings and repeated slashes are left as the caller sent them.
func requestPath(method string, target []byte) []byte {
	if method != "CONNECT" && len(target) > 0 && target[0] != '/' && !(len(target) == 1 && target[0] == '*') {
		if scheme, rest, ok := bytes.Cut(target, []byte(":")); ok && isScheme(scheme) {
			if authority, ok := bytes.CutPrefix(rest, []byte("//")); ok {
				j := bytes.IndexAny(authority, "/?")
				if j < 0 {
					j = len(authority)
				}
				rest = authority[j:]
			}
			target = rest
			if len(target) == 0 || target[0] == '?' {
				return []byte("/")
			}
		}
	}
	if i := bytes.IndexByte(target, '?'); i >= 0 {
		target = target[:i]
	}
	return target
}

// isScheme reports whether s is a URI scheme: a letter, then letters,
// digits, "+", "-" or ".".
func isScheme(s []byte) bool {
	for i, c := range s {
		switch {
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return len(s) > 0
}

// chunkLine handles a chunk-size line, the CRLF after a chunk's data, and
// trailer lines (where the identity header is dropped too).
func (ic *identityConn) chunkLine(p []byte) ([]byte, error) {
	line, rest, ok, err := ic.line(p, maxChunkLine)
	if err != nil || !ok {
		return nil, err
	}
	switch ic.state {
	case stChunkCRLF:
		if len(line) != 0 {
			return nil, fmt.Errorf("%w: chunk data longer than its size", errMalformedHTTP)
		}
		ic.state = stChunkSize
	case stChunkSize:
		size, _, _ := bytes.Cut(line, []byte(";"))
		n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%w: chunk size %q", errMalformedHTTP, truncate(line))
		}
		if n == 0 {
			ic.state = stTrailer
		} else {
			ic.state, ic.remaining = stChunkData, n
		}
	case stTrailer:
		if len(line) == 0 {
			ic.state = stHead
		} else if name, _, _ := bytes.Cut(line, []byte(":")); bytes.EqualFold(bytes.TrimSpace(name), []byte(PeerIdentityHeader)) {
			return rest, nil // dropped
		}
	}
	if _, err := ic.c.Write(append(line, '\r', '\n')); err != nil {
		return nil, err
	}
	return rest, nil
}

// raw forwards bytes after an upgrade, refusing the identity header's name
// anywhere in them (case-insensitively, across writes).
func (ic *identityConn) raw(p []byte) error {
	const name = "x-weft-peer-identity"
	const keep = len(name) - 1
	// A name split across writes: the end of the last write and the start
	// of this one.
	var joint [2 * keep]byte
	j := copy(joint[:], ic.tail)
	j += copy(joint[j:], p[:min(len(p), keep)])
	if containsFold(joint[:j], name) || containsFold(p, name) {
		return fmt.Errorf("%w: %s after an upgrade", errMalformedHTTP, PeerIdentityHeader)
	}
	if len(p) >= keep {
		ic.tail = append(ic.tail[:0], p[len(p)-keep:]...)
	} else {
		ic.tail = append(ic.tail[:0], joint[max(0, j-keep):j]...)
	}
	_, err := ic.c.Write(p)
	return err
}

// containsFold reports whether s contains lower, an ASCII lower-case
// string, ignoring ASCII case.
func containsFold(s []byte, lower string) bool {
	for i := 0; i+len(lower) <= len(s); i++ {
		j := 0
		for ; j < len(lower); j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != lower[j] {
				break
			}
		}
		if j == len(lower) {
			return true
		}
	}
	return false
}

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
