// Package echo is weft-echo, the application the sandbox, the end-to-end
// tests and the demo run in every pod. It answers HTTP/1.1, h2c and gRPC
// with who served the request and what it saw, and can be told to wait or
// fail.
//
// HTTP (any path, any method) answers a JSON Response. Controls, as query
// parameters or headers (the query wins):
//
//	delay=200ms        x-echo-delay         wait before answering
//	delay_percent=50   x-echo-delay-percent only wait this share of the time
//	status=503         x-echo-status        answer with this status
//	fail_percent=50    x-echo-fail-percent  answer 503 (or status) this share of the time
//	fail_pod=NAME      x-echo-fail-pod      answer 503 (or status) when this server is pod NAME
//	size=1048576       x-echo-size          append this many bytes of body (bulk tests)
//	call=URL           x-echo-call          first GET URL, passing on the trace context
//	                                        (traceparent, tracestate, b3, x-b3-*), as an
//	                                        instrumented application would; the reply's
//	                                        "called" holds what came back
//
// gRPC: weft.echo.v1.Echo/Echo, controlled by request fields or metadata
// x-echo-delay, x-echo-grpc-status, x-echo-fail-percent.
//
// TCP: a plain echo of every byte on the TCP port, for opaque-TCP tests;
// with ServerFirst it greets first ("hello from POD\n"), like SMTP or MySQL.
package echo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	echov1 "github.com/weftmesh/weft/api/echo/v1"
)

// Config says who the server is and where it listens. Empty addresses are
// not served.
type Config struct {
	Pod, Namespace, Node string
	// HTTPAddr serves HTTP/1.1 and h2c (prior knowledge or upgrade-free).
	HTTPAddr string
	// GRPCAddr serves gRPC.
	GRPCAddr string
	// TCPAddr serves a byte echo.
	TCPAddr string
	// ServerFirst makes the TCP port greet before reading.
	ServerFirst bool
	Log         *slog.Logger
}

// Response is the JSON an HTTP request gets.
type Response struct {
	Pod       string              `json:"pod"`
	Namespace string              `json:"namespace"`
	Node      string              `json:"node"`
	Method    string              `json:"method"`
	Host      string              `json:"host"`
	Path      string              `json:"path"`
	Proto     string              `json:"proto"`
	Peer      string              `json:"peer"`
	Headers   map[string][]string `json:"headers"`
	// Identity is the caller's SPIFFE ID as the destination node proxy
	// reported it (header x-weft-peer-identity), when it did.
	Identity string `json:"identity,omitempty"`
	// Called is the answer to the call= control, when given.
	Called *Called `json:"called,omitempty"`
}

// Called is what a call= request got.
type Called struct {
	URL    string `json:"url"`
	Status int    `json:"status"`
	Pod    string `json:"pod,omitempty"`
	Error  string `json:"error,omitempty"`
}

// traceHeaders are passed from a request to the call it makes.
var traceHeaders = []string{"traceparent", "tracestate", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags"}

// call GETs url with r's trace context.
func call(r *http.Request, url string) *Called {
	c := &Called{URL: url}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		c.Error = err.Error()
		return c
	}
	for _, h := range traceHeaders {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.Error = err.Error()
		return c
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	c.Status, c.Pod = resp.StatusCode, resp.Header.Get("x-echo-pod")
	return c
}

// Server is a running weft-echo.
type Server struct {
	cfg   Config
	http  *http.Server
	grpc  *grpc.Server
	lns   []net.Listener
	tcpLn net.Listener
}

// Start listens on the configured addresses and serves in the background.
func Start(cfg Config) (*Server, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Server{cfg: cfg}
	if cfg.HTTPAddr != "" {
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return nil, err
		}
		var protos http.Protocols
		protos.SetHTTP1(true)
		protos.SetUnencryptedHTTP2(true)
		s.http = &http.Server{Handler: http.HandlerFunc(s.serveHTTP), Protocols: &protos, ReadHeaderTimeout: 10 * time.Second}
		s.lns = append(s.lns, ln)
		go s.http.Serve(ln)
	}
	if cfg.GRPCAddr != "" {
		ln, err := net.Listen("tcp", cfg.GRPCAddr)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.grpc = grpc.NewServer()
		echov1.RegisterEchoServer(s.grpc, grpcEcho{s: s})
		s.lns = append(s.lns, ln)
		go s.grpc.Serve(ln)
	}
	if cfg.TCPAddr != "" {
		ln, err := net.Listen("tcp", cfg.TCPAddr)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.tcpLn = ln
		go s.serveTCP(ln)
	}
	return s, nil
}

// Addrs returns the bound addresses in the order HTTP, gRPC (those configured).
func (s *Server) Addrs() []net.Addr {
	var out []net.Addr
	for _, ln := range s.lns {
		out = append(out, ln.Addr())
	}
	return out
}

// TCPAddr is the bound TCP echo address, or nil.
func (s *Server) TCPAddr() net.Addr {
	if s.tcpLn == nil {
		return nil
	}
	return s.tcpLn.Addr()
}

// Close stops every listener.
func (s *Server) Close() error {
	if s.http != nil {
		s.http.Close()
	}
	if s.grpc != nil {
		s.grpc.Stop()
	}
	if s.tcpLn != nil {
		s.tcpLn.Close()
	}
	return nil
}

// control reads a control value from the query or a header.
func control(r *http.Request, query, header string) string {
	if v := r.URL.Query().Get(query); v != "" {
		return v
	}
	return r.Header.Get(header)
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if d := control(r, "delay", "x-echo-delay"); d != "" {
		dur, err := time.ParseDuration(d)
		if err != nil {
			http.Error(w, "bad delay: "+err.Error(), http.StatusBadRequest)
			return
		}
		if v := control(r, "delay_percent", "x-echo-delay-percent"); v != "" {
			p, err := strconv.Atoi(v)
			if err != nil || p < 0 || p > 100 {
				http.Error(w, "bad delay_percent "+v, http.StatusBadRequest)
				return
			}
			if rand.IntN(100) >= p {
				dur = 0
			}
		}
		select {
		case <-time.After(dur):
		case <-r.Context().Done():
			return
		}
	}
	code := http.StatusOK
	if v := control(r, "status", "x-echo-status"); v != "" {
		c, err := strconv.Atoi(v)
		if err != nil || c < 100 || c > 599 {
			http.Error(w, "bad status "+v, http.StatusBadRequest)
			return
		}
		code = c
	}
	if v := control(r, "fail_pod", "x-echo-fail-pod"); v != "" && v == s.cfg.Pod && code == http.StatusOK {
		code = http.StatusServiceUnavailable
	}
	if v := control(r, "fail_percent", "x-echo-fail-percent"); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < 0 || p > 100 {
			http.Error(w, "bad fail_percent "+v, http.StatusBadRequest)
			return
		}
		if code == http.StatusOK {
			code = http.StatusServiceUnavailable
		}
		if rand.IntN(100) >= p {
			code = http.StatusOK
		}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 64<<20))
	resp := Response{Pod: s.cfg.Pod, Namespace: s.cfg.Namespace, Node: s.cfg.Node, Method: r.Method, Host: r.Host,
		Path: r.URL.RequestURI(), Proto: r.Proto, Peer: r.RemoteAddr, Headers: r.Header,
		Identity: r.Header.Get("x-weft-peer-identity")}
	if u := control(r, "call", "x-echo-call"); u != "" {
		resp.Called = call(r, u)
	}
	body, _ := json.Marshal(resp)
	w.Header().Set("content-type", "application/json")
	w.Header().Set("x-echo-pod", s.cfg.Pod)
	size := 0
	if v := control(r, "size", "x-echo-size"); v != "" {
		size, _ = strconv.Atoi(v)
		size = max(0, min(size, 1<<30))
	}
	w.Header().Set("content-length", strconv.Itoa(len(body)+1+size))
	w.WriteHeader(code)
	_, _ = w.Write(append(body, '\n'))
	if size > 0 {
		writeFiller(w, size)
	}
}

var filler = []byte(strings.Repeat("weft-echo-bulk-data-", 3277)) // ~64 KiB

func writeFiller(w io.Writer, n int) {
	for n > 0 {
		chunk := filler[:min(n, len(filler))]
		if _, err := w.Write(chunk); err != nil {
			return
		}
		n -= len(chunk)
	}
}

func (s *Server) serveTCP(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.cfg.Log.Warn("tcp accept", "err", err)
			}
			return
		}
		go func() {
			defer c.Close()
			if s.cfg.ServerFirst {
				fmt.Fprintf(c, "hello from %s\n", s.cfg.Pod)
			}
			_, _ = io.Copy(c, c)
		}()
	}
}

type grpcEcho struct {
	echov1.UnimplementedEchoServer
	s *Server
}

func (g grpcEcho) Echo(ctx context.Context, req *echov1.EchoRequest) (*echov1.EchoResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	get := func(k string) string {
		if v := md.Get(k); len(v) > 0 {
			return v[0]
		}
		return ""
	}
	delay := req.GetDelay()
	if delay == "" {
		delay = get("x-echo-delay")
	}
	if delay != "" {
		d, err := time.ParseDuration(delay)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "bad delay: %v", err)
		}
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	failCode := req.GetFailCode()
	if v := get("x-echo-grpc-status"); failCode == 0 && v != "" {
		n, _ := strconv.Atoi(v)
		failCode = int32(n)
	}
	percent := req.GetFailPercent()
	if v := get("x-echo-fail-percent"); percent == 0 && v != "" {
		n, _ := strconv.Atoi(v)
		percent = int32(n)
	}
	if percent > 0 && failCode == 0 {
		failCode = int32(codes.Unavailable)
	}
	if failCode != 0 && (percent == 0 || rand.Int32N(100) < percent) {
		return nil, status.Errorf(codes.Code(failCode), "weft-echo %s failing as asked", g.s.cfg.Pod)
	}
	out := &echov1.EchoResponse{Message: req.GetMessage(), Pod: g.s.cfg.Pod, Namespace: g.s.cfg.Namespace,
		Node: g.s.cfg.Node, Metadata: map[string]string{}}
	if p, ok := peer.FromContext(ctx); ok {
		out.Peer = p.Addr.String()
	}
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out.Metadata[k] = strings.Join(md[k], ", ")
	}
	return out, nil
}
