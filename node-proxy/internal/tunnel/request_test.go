package tunnel

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// fields builds a header list from name, value pairs.
func fields(kv ...string) []hpack.HeaderField {
	var fs []hpack.HeaderField
	for i := 0; i+1 < len(kv); i += 2 {
		fs = append(fs, hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return fs
}

func TestParseRequest(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      []hpack.HeaderField
		dst     string
		hdr     Headers
		wantErr error
	}{
		{name: "minimal", in: fields(":method", "CONNECT", ":authority", "10.0.0.1:8080"), dst: "10.0.0.1:8080"},
		{name: "IPv6", in: fields(":method", "CONNECT", ":authority", "[fd00::1]:80"), dst: "[fd00::1]:80"},
		{name: "IPv4-mapped is IPv4", in: fields(":method", "CONNECT", ":authority", "[::ffff:10.0.0.1]:80"), dst: "10.0.0.1:80"},
		{name: "pass-through headers", in: fields(":method", "CONNECT", ":authority", "10.0.0.1:80",
			"traceparent", "00-aa-bb-01", "tracestate", "a=1", "baggage", "k=v", "forwarded", "for=1.2.3.4",
			"user-agent", "ignored"),
			dst: "10.0.0.1:80", hdr: Headers{Traceparent: "00-aa-bb-01", Tracestate: "a=1", Baggage: "k=v", Forwarded: "for=1.2.3.4"}},
		{name: "repeated list headers are joined", in: fields(":method", "CONNECT", ":authority", "10.0.0.1:80",
			"tracestate", "a=1", "tracestate", "b=2", "baggage", "x=1", "baggage", "y=2"),
			dst: "10.0.0.1:80", hdr: Headers{Tracestate: "a=1,b=2", Baggage: "x=1,y=2"}},
		{name: "repeated traceparent is dropped", in: fields(":method", "CONNECT", ":authority", "10.0.0.1:80",
			"traceparent", "00-aa-bb-01", "traceparent", "00-cc-dd-01"), dst: "10.0.0.1:80"},
		{name: "te trailers is fine", in: fields(":method", "CONNECT", ":authority", "10.0.0.1:80", "te", "trailers"), dst: "10.0.0.1:80"},

		{name: "GET", in: fields(":method", "GET", ":authority", "10.0.0.1:80"), wantErr: errNotConnect},
		{name: "no method", in: fields(":authority", "10.0.0.1:80"), wantErr: errNotConnect},
		{name: "lower-case method", in: fields(":method", "connect", ":authority", "10.0.0.1:80"), wantErr: errNotConnect},
		{name: "no authority", in: fields(":method", "CONNECT"), wantErr: errNoAuthority},
		{name: "empty authority", in: fields(":method", "CONNECT", ":authority", ""), wantErr: errNoAuthority},
		{name: "host name", in: fields(":method", "CONNECT", ":authority", "svc.ns:80"), wantErr: errBadAuthority},
		{name: "no port", in: fields(":method", "CONNECT", ":authority", "10.0.0.1"), wantErr: errBadAuthority},
		{name: "port 0", in: fields(":method", "CONNECT", ":authority", "10.0.0.1:0"), wantErr: errBadAuthority},
		{name: "port too large", in: fields(":method", "CONNECT", ":authority", "10.0.0.1:65536"), wantErr: errBadAuthority},
		{name: "unspecified", in: fields(":method", "CONNECT", ":authority", "0.0.0.0:80"), wantErr: errBadAuthority},
		{name: "multicast", in: fields(":method", "CONNECT", ":authority", "224.0.0.1:80"), wantErr: errBadAuthority},
		{name: "zone", in: fields(":method", "CONNECT", ":authority", "[fe80::1%eth0]:80"), wantErr: errBadAuthority},
		{name: "path", in: fields(":method", "CONNECT", ":authority", "10.0.0.1:80", ":path", "/"), wantErr: errPathOrScheme},
		{name: "extended CONNECT", in: fields(":method", "CONNECT", ":protocol", "websocket", ":authority", "10.0.0.1:80"), wantErr: errPathOrScheme},
		{name: "duplicate authority", in: fields(":method", "CONNECT", ":authority", "10.0.0.1:80", ":authority", "10.0.0.2:80"), wantErr: errDuplicatePseudo},
		{name: "duplicate method", in: fields(":method", "CONNECT", ":method", "CONNECT", ":authority", "10.0.0.1:80"), wantErr: errDuplicatePseudo},
		{name: "unknown pseudo", in: fields(":method", "CONNECT", ":authority", "10.0.0.1:80", ":weft", "x"), wantErr: errUnknownPseudo},
		{name: "pseudo after regular", in: fields(":method", "CONNECT", "baggage", "a", ":authority", "10.0.0.1:80"), wantErr: errPseudoAfterRegular},
		{name: "connection", in: fields(":method", "CONNECT", ":authority", "10.0.0.1:80", "connection", "close"), wantErr: errConnectionHeader},
		{name: "upgrade", in: fields(":method", "CONNECT", ":authority", "10.0.0.1:80", "upgrade", "h2c"), wantErr: errConnectionHeader},
		{name: "te gzip", in: fields(":method", "CONNECT", ":authority", "10.0.0.1:80", "te", "gzip"), wantErr: errConnectionHeader},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst, hdr, err := parseRequest(tc.in)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if want := netip.MustParseAddrPort(tc.dst); dst != want {
				t.Errorf("authority = %s, want %s", dst, want)
			}
			if diff := cmp.Diff(tc.hdr, hdr); diff != "" {
				t.Errorf("headers (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRequestFieldsRoundTrip(t *testing.T) {
	h := Headers{Traceparent: "00-aa-bb-01", Tracestate: "s", Baggage: "b", Forwarded: "for=x"}
	dst, got, err := parseRequest(requestFields(nil, "10.1.2.3:9090", h))
	if err != nil {
		t.Fatal(err)
	}
	if dst != netip.MustParseAddrPort("10.1.2.3:9090") || got != h {
		t.Errorf("round trip = %s %+v, want 10.1.2.3:9090 %+v", dst, got, h)
	}
}

func TestParseStatus(t *testing.T) {
	for _, tc := range []struct {
		in   []hpack.HeaderField
		want int
		ok   bool
	}{
		{fields(":status", "200"), 200, true},
		{fields(":status", "503", "server", "x"), 503, true},
		{fields(), 0, false},
		{fields(":status", "20"), 0, false},
		{fields(":status", "abc"), 0, false},
		{fields(":status", "099"), 0, false},
		{fields(":status", "200", ":status", "200"), 0, false},
	} {
		got, err := parseStatus(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseStatus(%v) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// FuzzParseRequest feeds arbitrary header lists to the request validator:
// it must never panic, and what it accepts must be a CONNECT to a usable
// IP:port.
func FuzzParseRequest(f *testing.F) {
	enc := func(kv ...string) []byte { return []byte(strings.Join(kv, "\x00")) }
	f.Add(enc(":method", "CONNECT", ":authority", "10.0.0.1:80"))
	f.Add(enc(":method", "CONNECT", ":authority", "[fd00::1]:443", "traceparent", "00-a-b-01", "baggage", "k=v"))
	f.Add(enc(":method", "GET", ":path", "/", ":authority", "x"))
	f.Add(enc(":authority", "[::ffff:1.2.3.4]:1", ":method", "CONNECT", "tracestate", "a", "tracestate", "b"))
	f.Add(enc(":method", "CONNECT", ":authority", "1.2.3.4:99999"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// name\x00value\x00name\x00value...
		parts := strings.Split(string(data), "\x00")
		var fs []hpack.HeaderField
		for i := 0; i+1 < len(parts); i += 2 {
			fs = append(fs, hpack.HeaderField{Name: parts[i], Value: parts[i+1]})
		}
		dst, _, err := parseRequest(fs)
		if err != nil {
			return
		}
		if !dst.IsValid() || dst.Port() == 0 || dst.Addr().Zone() != "" || dst.Addr().Is4In6() {
			t.Fatalf("accepted authority %s", dst)
		}
		methods := 0
		for _, f := range fs {
			if f.Name == ":method" {
				methods++
				if f.Value != "CONNECT" {
					t.Fatalf("accepted method %q", f.Value)
				}
			}
		}
		if methods != 1 {
			t.Fatalf("accepted %d :method fields", methods)
		}
	})
}

// FuzzHeaderBlock runs arbitrary bytes through the path a request header
// block takes on the server: the framer's HPACK decoding with our size
// limit, then validation.
func FuzzHeaderBlock(f *testing.F) {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, hf := range requestFields(nil, "10.0.0.1:80", Headers{Traceparent: "00-a-b-01", Baggage: "k=v"}) {
		enc.WriteField(hf)
	}
	f.Add(append([]byte(nil), buf.Bytes()...))
	f.Add([]byte{0x82, 0x86, 0x84})             // GET https /
	f.Add([]byte{0x3f, 0xe1, 0xff, 0xff, 0x0f}) // huge table size update
	f.Fuzz(func(t *testing.T, block []byte) {
		var frames bytes.Buffer
		w := http2.NewFramer(&frames, nil)
		if err := w.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndHeaders: true}); err != nil {
			return
		}
		r := http2.NewFramer(io.Discard, &frames)
		r.ReadMetaHeaders = hpack.NewDecoder(headerTableSize, nil)
		r.MaxHeaderListSize = hardHeaderListSize(1024)
		fr, err := r.ReadFrame()
		if err != nil {
			return
		}
		mh := fr.(*http2.MetaHeadersFrame)
		if mh.Truncated || headerListSize(mh.Fields) > 1024 {
			return // 431
		}
		_, _, _ = parseRequest(mh.Fields)
	})
}

// FuzzServerFrames feeds arbitrary bytes, after the preface, to a server
// connection (over an in-memory pipe instead of TLS). Whatever arrives,
// the connection must not panic and must end when the input does.
func FuzzServerFrames(f *testing.F) {
	seed := func(write func(fr *http2.Framer, enc *hpack.Encoder, hb *bytes.Buffer)) []byte {
		var out, hb bytes.Buffer
		fr := http2.NewFramer(&out, nil)
		fr.AllowIllegalWrites = true
		write(fr, hpack.NewEncoder(&hb), &hb)
		return out.Bytes()
	}
	connect := func(fr *http2.Framer, enc *hpack.Encoder, hb *bytes.Buffer, id uint32, end bool) {
		hb.Reset()
		for _, hf := range requestFields(nil, "10.0.0.1:80", Headers{}) {
			enc.WriteField(hf)
		}
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndHeaders: true, EndStream: end})
	}
	f.Add(seed(func(fr *http2.Framer, enc *hpack.Encoder, hb *bytes.Buffer) {
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
		fr.WriteSettingsAck()
		connect(fr, enc, hb, 1, false)
		fr.WriteData(1, false, []byte("hello"))
		fr.WriteDataPadded(1, true, []byte("x"), make([]byte, 7))
		fr.WriteWindowUpdate(0, 1000)
		fr.WritePing(false, [8]byte{1})
		fr.WriteRSTStream(1, http2.ErrCodeCancel)
		connect(fr, enc, hb, 3, true)
		fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	}))
	f.Add(seed(func(fr *http2.Framer, enc *hpack.Encoder, hb *bytes.Buffer) {
		fr.WriteSettings()
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x82}, EndHeaders: false})
		fr.WriteContinuation(1, true, []byte{0x84})
		fr.WriteData(1, false, make([]byte, 100))
		fr.WriteWindowUpdate(1, 0)
	}))
	f.Add(seed(func(fr *http2.Framer, enc *hpack.Encoder, hb *bytes.Buffer) {
		fr.WriteSettings(http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 14})
		for id := uint32(1); id < 40; id += 2 {
			connect(fr, enc, hb, id, id%4 == 1)
			fr.WriteRSTStream(id, http2.ErrCodeCancel)
		}
	}))
	bundle := newPKI(f).bundle
	// Every input starts after the client's first SETTINGS, so mutations
	// reach the frame handlers instead of the first-frame check.
	var settings bytes.Buffer
	http2.NewFramer(&settings, nil).WriteSettings()
	f.Fuzz(func(t *testing.T, data []byte) {
		srv, err := NewServer(ServerConfig{
			Certificate: func(ConnInfo) (*x509svid.SVID, error) { return nil, errors.New("unused") },
			Bundle:      bundle,
			IsLocal:     func(Peer, netip.AddrPort) bool { return true },
			Authorize:   func(context.Context, Peer, netip.AddrPort) error { return nil },
			Dial: func(context.Context, Peer, netip.AddrPort) (net.Conn, error) {
				a, b := net.Pipe()
				go func() { io.Copy(b, b); b.Close() }()
				return a, nil
			},
			MaxConcurrentStreams: 4,
			MaxHeaderListSize:    512,
		})
		if err != nil {
			t.Fatal(err)
		}
		peer, local := net.Pipe()
		go io.Copy(io.Discard, peer)
		go func() {
			peer.Write(settings.Bytes())
			peer.Write(data)
			peer.Close()
		}()
		rc := &rawConn{Conn: local}
		c := newConn(rc, rc, &srv.connCfg, Peer{})
		c.srv = srv
		c.start()
		c.readLoop() // returns once the input ends or is refused
	})
}
