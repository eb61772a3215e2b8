package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/weftmesh/weft/node-proxy/internal/l7/h1"
	"github.com/weftmesh/weft/node-proxy/internal/telemetry"
	"github.com/weftmesh/weft/node-proxy/internal/tunnel"
)

// inboundH1 serves a tunnel stream to a pod's HTTP/1.1 port request by
// request when tracing is on: like identityConn it authorizes each request
// and sets X-Weft-Peer-Identity, and it also reads each response head, so
// that every request gets a SERVER span with its status and duration, and
// the application receives the SERVER span's trace context. (Without
// tracing, identityConn's in-place rewriting is cheaper: it needs no
// response parsing.)
type inboundH1 struct {
	pd        *pod
	app       net.Conn
	peer      spiffeid.ID
	dst       netip.AddrPort
	authorize func(method, path string) error
}

var _ tunnel.StreamHandler = (*inboundH1)(nil)

func (h *inboundH1) ServeStream(s *tunnel.Stream) (rx, tx int64, err error) {
	cs := &countingConn{Conn: s}
	defer h.app.Close()
	br, abr := getReader(cs), getReader(h.app)
	defer putReader(br)
	defer putReader(abr)
	var req, resp h1.Head
	var out []byte
	for {
		if err := req.ReadRequest(br); err != nil {
			if errors.Is(err, h1.ErrMalformed) {
				_, _ = io.WriteString(cs, "HTTP/1.1 400 Bad Request\r\nContent-Length: 12\r\nConnection: close\r\n\r\nbad request\n")
			}
			break
		}
		path, _ := req.Path()
		lookup := func(name string) string { v, _ := req.Get(name); return string(v) }
		span, hdrs := h.pd.startServer(lookup, string(req.Method), string(path), h.peer, s.RemoteAddr(), h.dst, false)
		if err := h.authorize(bstr(req.Method), string(path)); err != nil {
			endServer(span, http.StatusForbidden, true)
			body := "RBAC: access denied\n"
			_, _ = io.WriteString(cs, "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\nConnection: close\r\n\r\n"+body)
			break
		}
		// The head for the application: the proven identity and the
		// SERVER span's context replace what the caller sent.
		out = append(out[:0], req.Buf[:bytes.Index(req.Buf, []byte("\r\n"))+2]...)
		for _, f := range req.Fields {
			if bytes.EqualFold(f.Name, []byte(PeerIdentityHeader)) || telemetry.IsPropagated(bstr(f.Name)) {
				continue
			}
			out = append(append(append(append(out, f.Name...), ':', ' '), f.Value...), '\r', '\n')
		}
		out = append(append(append(out, PeerIdentityHeader+": "...), h.peer.String()...), '\r', '\n')
		for _, hd := range hdrs {
			out = append(append(append(append(out, hd.Name...), ':', ' '), hd.Value...), '\r', '\n')
		}
		out = append(out, '\r', '\n')
		if _, err := h.app.Write(out); err != nil {
			endServer(span, 0, false)
			break
		}
		if _, err := req.RequestBody().Copy(h.app, br); err != nil {
			endServer(span, 0, false)
			break
		}
		err := resp.ReadResponse(abr)
		for err == nil && resp.Status >= 100 && resp.Status < 200 && resp.Status != 101 {
			if _, err = cs.Write(append(resp.Buf, '\r', '\n')); err == nil {
				err = resp.ReadResponse(abr)
			}
		}
		if err != nil {
			endServer(span, 0, false)
			break
		}
		if _, err := cs.Write(append(resp.Buf, '\r', '\n')); err != nil {
			endServer(span, resp.Status, false)
			break
		}
		if resp.Status == 101 {
			endServer(span, resp.Status, false)
			rawBoth(cs, br, h.app, abr)
			break
		}
		body := resp.ResponseBody(req.Method)
		_, err = body.Copy(cs, abr)
		endServer(span, resp.Status, false)
		if err != nil || req.Close || resp.Close || (!body.Chunked && body.Length < 0) {
			break
		}
	}
	_ = s.CloseWrite()
	return cs.rx.Load(), cs.tx.Load(), nil
}

// rawBoth carries bytes both ways after an upgrade, starting with what the
// readers hold.
func rawBoth(a net.Conn, ar *bufio.Reader, b net.Conn, br *bufio.Reader) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = br.WriteTo(a)
		closeWrite(a)
	}()
	_, _ = ar.WriteTo(b)
	closeWrite(b)
	<-done
}

func (h *inboundH1) Read(p []byte) (int, error)         { return h.app.Read(p) }
func (h *inboundH1) Write(p []byte) (int, error)        { return h.app.Write(p) }
func (h *inboundH1) Close() error                       { return h.app.Close() }
func (h *inboundH1) LocalAddr() net.Addr                { return h.app.LocalAddr() }
func (h *inboundH1) RemoteAddr() net.Addr               { return h.app.RemoteAddr() }
func (h *inboundH1) SetDeadline(t time.Time) error      { return h.app.SetDeadline(t) }
func (h *inboundH1) SetReadDeadline(t time.Time) error  { return h.app.SetReadDeadline(t) }
func (h *inboundH1) SetWriteDeadline(t time.Time) error { return h.app.SetWriteDeadline(t) }
