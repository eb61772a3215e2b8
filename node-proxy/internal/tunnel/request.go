package tunnel

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	"golang.org/x/net/http2/hpack"
)

// Headers are the request headers a tunnel carries from the client node
// proxy to the server node proxy. Every other request header is ignored.
// An empty field is not sent.
type Headers struct {
	// Traceparent and Tracestate are the W3C trace context of the
	// connection, so the server's span continues the client's trace.
	Traceparent string
	Tracestate  string
	// Baggage is W3C baggage.
	Baggage string
	// Forwarded is RFC 7239 Forwarded (for example for=<client IP>).
	Forwarded string
}

// Header names on the wire (lower case, as HTTP/2 requires).
const (
	hdrTraceparent = "traceparent"
	hdrTracestate  = "tracestate"
	hdrBaggage     = "baggage"
	hdrForwarded   = "forwarded"
)

// Reasons a request is malformed. They are the detail of a 400; the peer
// only sees the status.
var (
	errNotConnect         = errors.New(":method is not CONNECT")
	errNoAuthority        = errors.New("missing :authority")
	errBadAuthority       = errors.New(":authority is not an IP:port")
	errPathOrScheme       = errors.New("CONNECT with :path or :scheme (extended CONNECT is not supported)")
	errDuplicatePseudo    = errors.New("duplicate pseudo-header")
	errUnknownPseudo      = errors.New("unknown pseudo-header")
	errPseudoAfterRegular = errors.New("pseudo-header after a regular header")
	errConnectionHeader   = errors.New("connection-specific header")
)

// parseRequest checks that a decoded request header block is an HBONE
// CONNECT and returns its target and pass-through headers. It never panics
// and never trusts its input: the HTTP/2 framer has already checked field
// syntax, but this function repeats every check it relies on.
//
// Rules (RFC 9113 section 8.5 and our choices, see doc.go):
//   - exactly one :method, and it is CONNECT;
//   - exactly one :authority, an IP address (no zone) and a non-zero port,
//     IPv4 as a.b.c.d:port, IPv6 as [addr]:port; an IPv4-mapped IPv6
//     address is read as IPv4;
//   - no :scheme, :path or :protocol (plain, not extended, CONNECT);
//   - no pseudo-header after a regular one, no unknown pseudo-header;
//   - no connection-specific header (connection, keep-alive,
//     proxy-connection, transfer-encoding, upgrade; te other than trailers);
//   - repeated tracestate, baggage and forwarded fields are joined with ",";
//     a repeated traceparent is invalid, so it is dropped.
func parseRequest(fields []hpack.HeaderField) (netip.AddrPort, Headers, error) {
	var (
		method, authority       string
		sawMethod, sawAuthority bool
		sawRegular              bool
		traceparents            int
		h                       Headers
	)
	for _, f := range fields {
		if len(f.Name) > 0 && f.Name[0] == ':' {
			if sawRegular {
				return netip.AddrPort{}, Headers{}, errPseudoAfterRegular
			}
			switch f.Name {
			case ":method":
				if sawMethod {
					return netip.AddrPort{}, Headers{}, errDuplicatePseudo
				}
				sawMethod, method = true, f.Value
			case ":authority":
				if sawAuthority {
					return netip.AddrPort{}, Headers{}, errDuplicatePseudo
				}
				sawAuthority, authority = true, f.Value
			case ":scheme", ":path", ":protocol":
				return netip.AddrPort{}, Headers{}, errPathOrScheme
			default:
				return netip.AddrPort{}, Headers{}, errUnknownPseudo
			}
			continue
		}
		sawRegular = true
		switch f.Name {
		case hdrTraceparent:
			traceparents++
			h.Traceparent = f.Value
		case hdrTracestate:
			h.Tracestate = joinField(h.Tracestate, f.Value)
		case hdrBaggage:
			h.Baggage = joinField(h.Baggage, f.Value)
		case hdrForwarded:
			h.Forwarded = joinField(h.Forwarded, f.Value)
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
			return netip.AddrPort{}, Headers{}, errConnectionHeader
		case "te":
			if f.Value != "trailers" {
				return netip.AddrPort{}, Headers{}, errConnectionHeader
			}
		}
	}
	if traceparents > 1 {
		h.Traceparent = ""
	}
	if !sawMethod || method != "CONNECT" {
		return netip.AddrPort{}, Headers{}, errNotConnect
	}
	if !sawAuthority || authority == "" {
		return netip.AddrPort{}, Headers{}, errNoAuthority
	}
	dst, err := parseAuthority(authority)
	if err != nil {
		return netip.AddrPort{}, Headers{}, err
	}
	return dst, h, nil
}

func joinField(have, v string) string {
	if have == "" {
		return v
	}
	if v == "" {
		return have
	}
	return have + "," + v
}

// parseAuthority parses an :authority that must be an IP literal and port.
func parseAuthority(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: %q", errBadAuthority, truncate(s, 64))
	}
	addr := ap.Addr()
	if addr.Zone() != "" || ap.Port() == 0 || addr.IsUnspecified() || addr.IsMulticast() {
		return netip.AddrPort{}, fmt.Errorf("%w: %q", errBadAuthority, truncate(s, 64))
	}
	return netip.AddrPortFrom(addr.Unmap(), ap.Port()), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// requestFields returns the header block of a CONNECT to authority,
// appended to dst.
func requestFields(dst []hpack.HeaderField, authority string, h Headers) []hpack.HeaderField {
	dst = append(dst,
		hpack.HeaderField{Name: ":method", Value: "CONNECT"},
		hpack.HeaderField{Name: ":authority", Value: authority})
	// traceparent differs on every request: keep it out of the HPACK
	// dynamic table so it does not evict the authorities that repeat.
	if h.Traceparent != "" {
		dst = append(dst, hpack.HeaderField{Name: hdrTraceparent, Value: h.Traceparent, Sensitive: true})
	}
	if h.Tracestate != "" {
		dst = append(dst, hpack.HeaderField{Name: hdrTracestate, Value: h.Tracestate})
	}
	if h.Baggage != "" {
		dst = append(dst, hpack.HeaderField{Name: hdrBaggage, Value: h.Baggage})
	}
	if h.Forwarded != "" {
		dst = append(dst, hpack.HeaderField{Name: hdrForwarded, Value: h.Forwarded})
	}
	return dst
}

// parseStatus returns the :status of a response header block, or an error
// if it is missing, repeated or not three digits.
func parseStatus(fields []hpack.HeaderField) (int, error) {
	status := -1
	for _, f := range fields {
		if f.Name != ":status" {
			continue
		}
		if status != -1 {
			return 0, errors.New("duplicate :status")
		}
		if len(f.Value) != 3 {
			return 0, fmt.Errorf("bad :status %q", truncate(f.Value, 16))
		}
		n, err := strconv.Atoi(f.Value)
		if err != nil || n < 100 {
			return 0, fmt.Errorf("bad :status %q", truncate(f.Value, 16))
		}
		status = n
	}
	if status == -1 {
		return 0, errors.New("missing :status")
	}
	return status, nil
}

// statusText holds the :status values the server sends, pre-formatted.
var statusText = map[int]string{
	200: "200", 400: "400", 401: "401", 403: "403", 431: "431", 503: "503",
}

func statusString(code int) string {
	if s, ok := statusText[code]; ok {
		return s
	}
	return strconv.Itoa(code)
}
