//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"

	"github.com/weftmesh/weft/tests/apps/echo"
)

// Clients run from inside pods and nodes.

// Exec runs argv inside pod's network namespace (with its /etc/hosts) and
// returns its standard output; see [Sandbox.Exec].
func (m *Mesh) Exec(ctx context.Context, pod string, argv ...string) ([]byte, error) {
	p, ok := m.Pod(pod)
	if !ok {
		return nil, fmt.Errorf("exec: no pod %s", pod)
	}
	return m.run.sb.Exec(ctx, p.NetNSPath, argv...)
}

// Get sends an HTTP/1.1 GET for url from pod, with `weft-echo get` run in
// the pod: names resolve through the pod's /etc/hosts, and an enrolled
// pod's request is captured by its node proxy. An error means no HTTP
// response arrived; any status is a result.
func (m *Mesh) Get(ctx context.Context, pod, url string) (*echo.Result, error) {
	return m.Do(ctx, pod, echo.Request{URL: url})
}

// Do is Get for any request: method, headers, h2c, timeout.
func (m *Mesh) Do(ctx context.Context, pod string, req echo.Request) (*echo.Result, error) {
	argv := []string{m.bin("weft-echo"), "get"}
	if req.Method != "" {
		argv = append(argv, "-X", req.Method)
	}
	for _, k := range sortedKeys(req.Header) {
		for _, v := range req.Header[k] {
			argv = append(argv, "-H", k+": "+v)
		}
	}
	if req.H2C {
		argv = append(argv, "--h2c")
	}
	if req.Timeout > 0 {
		argv = append(argv, "--timeout", req.Timeout.String())
	}
	out, err := m.Exec(ctx, pod, append(argv, req.URL)...)
	if err != nil {
		return nil, err
	}
	var res echo.Result
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("weft-echo get in %s: %w: %q", pod, err, out)
	}
	return &res, nil
}

// Load runs `weft-echo load` in pod (see [echo.Load]): many requests, or
// gRPC Echo calls, tallied by status, gRPC code and serving pod. ctx
// should outlast the run (s.Duration, or s.Requests at s.Rate, plus
// s.Timeout).
func (m *Mesh) Load(ctx context.Context, pod string, s echo.LoadSpec) (*echo.LoadResult, error) {
	argv := []string{m.bin("weft-echo"), "load"}
	if s.Requests > 0 {
		argv = append(argv, "-n", strconv.Itoa(s.Requests))
	}
	if s.Concurrency > 0 {
		argv = append(argv, "-c", strconv.Itoa(s.Concurrency))
	}
	if s.Rate > 0 {
		argv = append(argv, "-rate", strconv.FormatFloat(s.Rate, 'g', -1, 64))
	}
	if s.Duration > 0 {
		argv = append(argv, "-duration", s.Duration.String())
	}
	if s.Timeout > 0 {
		argv = append(argv, "-timeout", s.Timeout.String())
	}
	if s.Method != "" {
		argv = append(argv, "-X", s.Method)
	}
	for _, k := range sortedKeys(s.Header) {
		for _, v := range s.Header[k] {
			argv = append(argv, "-H", k+": "+v)
		}
	}
	if s.H2C {
		argv = append(argv, "--h2c")
	}
	if s.GRPC {
		argv = append(argv, "--grpc")
	}
	if s.NoKeepAlive {
		argv = append(argv, "--no-keepalive")
	}
	out, err := m.Exec(ctx, pod, append(argv, s.URL)...)
	if err != nil {
		return nil, err
	}
	var res echo.LoadResult
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("weft-echo load in %s: %w: %q", pod, err, out)
	}
	return &res, nil
}

// Dial connects from pod to address, a literal "ip:port" (see [Dial]).
func (m *Mesh) Dial(ctx context.Context, pod, address string) (net.Conn, error) {
	p, ok := m.Pod(pod)
	if !ok {
		return nil, fmt.Errorf("dial: no pod %s", pod)
	}
	return Dial(ctx, p.NetNSPath, "tcp4", address)
}

// httpGet GETs url from inside the namespace at nsPath and returns the
// body; a status other than 200 is an error.
func httpGet(ctx context.Context, nsPath, url string) ([]byte, error) {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return Dial(ctx, nsPath, network, addr)
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
	}
	return body, nil
}
