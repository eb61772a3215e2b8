package echo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Request is one HTTP request for [Get], the client behind `weft-echo get`.
type Request struct {
	Method string // empty means GET
	URL    string
	Header http.Header
	// H2C sends HTTP/2 over cleartext with prior knowledge instead of
	// HTTP/1.1.
	H2C bool
	// Timeout bounds the whole request. Zero means 10s.
	Timeout time.Duration
}

// Result is what [Get] returns and `weft-echo get` prints as JSON: any
// HTTP response counts, whatever its status.
type Result struct {
	Status  int         `json:"status"`
	Proto   string      `json:"proto"`
	Headers http.Header `json:"headers"`
	// Reply is the body when a weft-echo server wrote it (it sets
	// x-echo-pod); Body holds any other body (a proxy's error, say), up to
	// 64 KiB.
	Reply *Response `json:"reply,omitempty"`
	Body  string    `json:"body,omitempty"`
}

// maxBody bounds the body Get keeps when it is not a weft-echo reply.
const maxBody = 64 << 10

// Get sends r and reads the answer. Name resolution is the process's own:
// run inside a pod, it sees that pod's /etc/hosts. An error means no HTTP
// response arrived.
func Get(ctx context.Context, r Request) (*Result, error) {
	timeout := r.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	method := r.Method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(ctx, method, r.URL, nil)
	if err != nil {
		return nil, err
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if h := req.Header.Get("Host"); h != "" {
		req.Host = h
	}
	var protos http.Protocols
	if r.H2C {
		protos.SetUnencryptedHTTP2(true)
	} else {
		protos.SetHTTP1(true)
	}
	tr := &http.Transport{Protocols: &protos, DisableKeepAlives: true, Proxy: nil}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, CheckRedirect: noRedirects}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	res := &Result{Status: resp.StatusCode, Proto: resp.Proto, Headers: resp.Header}
	if resp.Header.Get("x-echo-pod") != "" {
		// The reply is the first line; a size= filler may follow.
		line, _, _ := bytes.Cut(body, []byte("\n"))
		var reply Response
		if err := json.Unmarshal(line, &reply); err == nil {
			res.Reply = &reply
			return res, nil
		}
	}
	res.Body = strings.ToValidUTF8(string(body), "\uFFFD")
	return res, nil
}

// noRedirects makes clients report a redirect (its status and Location)
// instead of following it, as curl does without -L.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
