// Package h1 reads HTTP/1.1 message heads and carries bodies for the node
// proxy's L7 path, in place: a head is read into a reusable buffer and its
// fields are slices of it; a body is copied from the bufio.Reader's buffer
// to the writer with no intermediate copy. Nothing allocates in the steady
// state.
//
// It is strict where leniency enables request smuggling or desync: bare LF
// line endings, obsolete line folding, whitespace before a colon, control
// characters in a request target or field value, both Content-Length and
// Transfer-Encoding in a request, a Transfer-Encoding other than exactly
// "chunked" (or any in HTTP/1.0), duplicate Content-Length fields that
// differ, duplicate Host fields, malformed request targets and malformed
// chunk sizes, extensions, data or trailers are errors ([ErrMalformed]).
// Whatever it accepts as a request head, net/http accepts too, with the
// same method, target and framing. The proxy answers 400 and closes the
// connection.
package h1

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
)

// ErrMalformed wraps every parse error.
var ErrMalformed = errors.New("malformed HTTP/1.1 message")

// MaxHead bounds a message head, MaxLine a chunk-size or trailer line.
const (
	MaxHead = 64 << 10
	MaxLine = 4 << 10
)

// Field is one header field; both slices point into Head.Buf.
type Field struct {
	Name, Value []byte
}

// Head is a parsed request or response head. Reuse one per connection:
// Read* resets it.
type Head struct {
	Buf []byte // the head as received, without the final CRLF

	// Request line.
	Method, Target []byte
	// Status line.
	Status int
	Reason []byte

	Minor  int // HTTP/1.<Minor>
	Fields []Field

	ContentLength int64 // -1 when absent
	Chunked       bool
	// Close: the sender will close after this message (Connection:
	// close, or HTTP/1.0 without keep-alive).
	Close bool
	// Upgrade: the request carries an Upgrade header.
	Upgrade bool
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// readHead reads lines up to the empty line into h.Buf. Empty lines before
// the first line are skipped (RFC 9112 2.2).
func (h *Head) readHead(br *bufio.Reader) error {
	h.Buf = h.Buf[:0]
	h.Fields = h.Fields[:0]
	h.Method, h.Target, h.Reason = nil, nil, nil
	h.Status, h.Minor, h.ContentLength = 0, 1, -1
	h.Chunked, h.Close, h.Upgrade = false, false, false
	lines, skipped := 0, 0
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull || skipped+len(h.Buf)+len(line) > MaxHead {
			return malformed("head over %d bytes", MaxHead)
		}
		if err != nil {
			if err == io.EOF && (len(h.Buf) > 0 || len(line) > 0) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if len(line) < 2 || line[len(line)-2] != '\r' {
			return malformed("bare LF")
		}
		if len(line) == 2 {
			if lines == 0 {
				skipped += 2
				continue
			}
			return nil
		}
		h.Buf = append(h.Buf, line...)
		lines++
	}
}

// ReadRequest reads a request head. io.EOF means the connection ended
// cleanly between requests.
func (h *Head) ReadRequest(br *bufio.Reader) error {
	if err := h.readHead(br); err != nil {
		return err
	}
	first, rest := cutLine(h.Buf)
	method, r, ok1 := bytes.Cut(first, []byte(" "))
	target, version, ok2 := bytes.Cut(r, []byte(" "))
	if !ok1 || !ok2 || len(method) == 0 || len(target) == 0 || !isToken(method) || !validTarget(method, target) {
		return malformed("request line %q", trunc(first))
	}
	if err := h.version(version); err != nil {
		return err
	}
	h.Method, h.Target = method, target
	if err := h.fields(rest); err != nil {
		return err
	}
	if h.Chunked && h.ContentLength >= 0 {
		return malformed("both Content-Length and Transfer-Encoding")
	}
	return nil
}

// validTarget reports whether t is a request target of a form the proxy
// handles (RFC 9112 3.2): origin-form, "*", authority-form for CONNECT,
// absolute-form with an http or https scheme and no userinfo.
func validTarget(method, t []byte) bool {
	switch {
	case t[0] == '/':
		return validPathQuery(t)
	case len(t) == 1 && t[0] == '*':
		return true
	case string(method) == "CONNECT":
		return validAuthority(t)
	}
	i := bytes.Index(t, []byte("://"))
	if i < 0 || !(bytes.EqualFold(t[:i], []byte("http")) || bytes.EqualFold(t[:i], []byte("https"))) {
		return false
	}
	rest := t[i+3:]
	j := bytes.IndexAny(rest, "/?")
	if j < 0 {
		j = len(rest)
	}
	return validAuthority(rest[:j]) && validPathQuery(rest[j:])
}

// validAuthority reports whether a is host[:port], host a reg-name of
// unreserved characters or a bracketed IPv6 address, port digits.
func validAuthority(a []byte) bool {
	host, port := a, []byte(nil)
	if len(a) > 0 && a[0] == '[' {
		k := bytes.IndexByte(a, ']')
		if k < 3 {
			return false
		}
		for _, c := range a[1:k] {
			if !(c == ':' || c == '.' || isHex(c)) {
				return false
			}
		}
		// An IPv6 address (net/url rejects IPv4 in brackets).
		if ip, err := netip.ParseAddr(string(a[1:k])); err != nil || !ip.Is6() {
			return false
		}
		host, port = a[:k+1], a[k+1:]
		if len(port) > 0 && port[0] != ':' {
			return false
		}
	} else {
		if k := bytes.IndexByte(a, ':'); k >= 0 {
			host, port = a[:k], a[k:]
		}
		for _, c := range host {
			if !(c == '-' || c == '.' || c == '_' || c == '~' || isAlnum(c)) {
				return false
			}
		}
	}
	if len(host) == 0 {
		return false
	}
	if len(port) > 0 {
		port = port[1:]
		if len(port) == 0 || len(port) > 5 {
			return false
		}
		for _, c := range port {
			if c < '0' || c > '9' {
				return false
			}
		}
	}
	return true
}

// validPathQuery reports whether p (a path and optional query) holds no
// whitespace, control character or fragment, and the path only valid
// percent-encodings.
func validPathQuery(p []byte) bool {
	query := false
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c <= ' ' || c == 0x7f || c == '#':
			return false
		case c == '?':
			query = true
		case c == '%' && !query:
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return false
			}
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// validValue reports whether v holds no control character but HTAB.
func validValue(v []byte) bool {
	for _, c := range v {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// ReadResponse reads a response head.
func (h *Head) ReadResponse(br *bufio.Reader) error {
	if err := h.readHead(br); err != nil {
		return err
	}
	first, rest := cutLine(h.Buf)
	version, r, ok := bytes.Cut(first, []byte(" "))
	if !ok || len(r) < 3 {
		return malformed("status line %q", trunc(first))
	}
	if err := h.version(version); err != nil {
		return err
	}
	code := r[:3]
	if code[0] < '1' || code[0] > '5' || code[1] < '0' || code[1] > '9' || code[2] < '0' || code[2] > '9' || (len(r) > 3 && r[3] != ' ') {
		return malformed("status line %q", trunc(first))
	}
	h.Status = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	if len(r) > 4 {
		h.Reason = r[4:]
	}
	if !validValue(h.Reason) {
		return malformed("status line %q", trunc(first))
	}
	if err := h.fields(rest); err != nil {
		return err
	}
	if h.Chunked {
		h.ContentLength = -1 // RFC 9112 6.3: Transfer-Encoding wins
	}
	return nil
}

func (h *Head) version(v []byte) error {
	if len(v) != 8 || string(v[:7]) != "HTTP/1." || v[7] < '0' || v[7] > '9' {
		return malformed("version %q", trunc(v))
	}
	h.Minor = int(v[7] - '0')
	h.Close = h.Minor == 0
	return nil
}

func (h *Head) fields(b []byte) error {
	var cl []byte // the first Content-Length value
	host := false
	for len(b) > 0 {
		var line []byte
		line, b = cutLine(b)
		if line[0] == ' ' || line[0] == '\t' {
			return malformed("folded header line")
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(name) == 0 || !isToken(name) {
			return malformed("header line %q", trunc(line))
		}
		value = bytes.Trim(value, " \t")
		if !validValue(value) {
			return malformed("header line %q", trunc(line))
		}
		h.Fields = append(h.Fields, Field{Name: name, Value: value})
		switch len(name) {
		case len("Content-Length"):
			if bytes.EqualFold(name, []byte("Content-Length")) {
				// Duplicates must be identical (net/http compares
				// the strings too).
				n, ok := parseUint(value)
				if !ok || (cl != nil && !bytes.Equal(value, cl)) {
					return malformed("Content-Length %q", trunc(value))
				}
				cl, h.ContentLength = value, n
			}
		case len("Transfer-Encoding"):
			if bytes.EqualFold(name, []byte("Transfer-Encoding")) {
				// Only chunked alone is supported (as by net/http);
				// HTTP/1.0 has no Transfer-Encoding (RFC 9112 6.1).
				if h.Chunked || h.Minor == 0 || !bytes.EqualFold(value, []byte("chunked")) {
					return malformed("Transfer-Encoding %q", trunc(value))
				}
				h.Chunked = true
			}
		case len("Connection"):
			if bytes.EqualFold(name, []byte("Connection")) {
				if tokenIn(value, "close") {
					h.Close = true
				} else if h.Minor == 0 && tokenIn(value, "keep-alive") {
					h.Close = false
				}
			}
		case len("Upgrade"):
			if bytes.EqualFold(name, []byte("Upgrade")) {
				h.Upgrade = true
			}
		case len("Host"):
			if bytes.EqualFold(name, []byte("Host")) {
				if host {
					return malformed("duplicate Host")
				}
				host = true
			}
		}
	}
	return nil
}

// Get returns the first value of the named field (case-insensitive).
func (h *Head) Get(name string) ([]byte, bool) {
	for _, f := range h.Fields {
		if len(f.Name) == len(name) && bytes.EqualFold(f.Name, []byte(name)) {
			return f.Value, true
		}
	}
	return nil, false
}

// Path returns the path of the request target without the query, and the
// query: for an origin-form target "/a?b" it is "/a" and "b"; for an
// absolute-form target the path after the authority ("/" when empty).
func (h *Head) Path() (path, query []byte) {
	t := h.Target
	if len(t) > 0 && t[0] != '/' && t[0] != '*' {
		if i := bytes.Index(t, []byte("://")); i >= 0 {
			t = t[i+3:]
			if j := bytes.IndexAny(t, "/?"); j >= 0 {
				t = t[j:]
			} else {
				t = nil
			}
			if len(t) == 0 || t[0] == '?' {
				_, query, _ = bytes.Cut(t, []byte("?"))
				return slash, query
			}
		}
	}
	path, query, _ = bytes.Cut(t, []byte("?"))
	return path, query
}

var slash = []byte("/")

// Bodyless reports whether a response to a request with method has no
// body whatever its fields say (RFC 9112 6.3).
func (h *Head) Bodyless(method []byte) bool {
	return h.Status < 200 || h.Status == 204 || h.Status == 304 || string(method) == "HEAD"
}

func cutLine(b []byte) (line, rest []byte) {
	if i := bytes.Index(b, []byte("\r\n")); i >= 0 {
		return b[:i], b[i+2:]
	}
	return b, nil
}

// tokenIn reports whether the comma-separated list v holds tok
// (case-insensitive).
func tokenIn(v []byte, tok string) bool {
	for len(v) > 0 {
		var t []byte
		t, v, _ = bytes.Cut(v, []byte(","))
		if bytes.EqualFold(bytes.Trim(t, " \t"), []byte(tok)) {
			return true
		}
	}
	return false
}

func parseUint(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// isToken reports whether b is an RFC 9110 token.
func isToken(b []byte) bool {
	for _, c := range b {
		if !tchar[c] {
			return false
		}
	}
	return true
}

// tchar holds the RFC 9110 token characters.
var tchar = func() (t [256]bool) {
	for c := '!'; c < 0x7f; c++ {
		t[c] = !strings.ContainsRune(`"(),/:;<=>?@[\]{}`, c)
	}
	return t
}()

func trunc(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
