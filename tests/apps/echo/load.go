package echo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	echov1 "github.com/weftmesh/weft/api/echo/v1"
)

// LoadSpec is a load run for [Load], the generator behind `weft-echo load`.
type LoadSpec struct {
	// URL is the target. In GRPC mode only its host:port is used (a bare
	// "host:port" works too).
	URL string
	// Method is the HTTP method; empty means GET. Unused in GRPC mode.
	Method string
	// Header is sent with every request; a "Host" header sets the
	// authority (req.Host for HTTP, the :authority of the gRPC channel).
	// In GRPC mode the others are sent as metadata (x-echo-grpc-status,
	// x-echo-fail-percent and x-echo-delay steer weft-echo).
	Header http.Header
	// H2C sends HTTP/2 over cleartext with prior knowledge instead of
	// HTTP/1.1.
	H2C bool
	// GRPC calls weft.echo.v1.Echo/Echo on the URL's host:port instead of
	// sending HTTP requests.
	GRPC bool
	// Requests is the total number of requests; zero means 100. Ignored
	// when Duration is set.
	Requests int
	// Concurrency is the number of requests in flight at most; zero means 4.
	Concurrency int
	// Rate paces request starts to this many per second in total, on the
	// fixed schedule start+i/Rate: when every worker is busy, starts fall
	// behind and catch up once workers free up. Zero means as fast as the
	// workers go.
	Rate float64
	// Duration, when set, issues requests until it has elapsed (requests
	// in flight then are let finish) instead of counting Requests.
	Duration time.Duration
	// Timeout bounds each request; zero means 10s.
	Timeout time.Duration
	// NoKeepAlive opens a new connection for every request (a new gRPC
	// channel in GRPC mode) instead of reusing them.
	NoKeepAlive bool
}

// LoadResult is what [Load] returns and `weft-echo load` prints as JSON.
//
// Durations are in milliseconds in JSON (fields ending in _ms, floats).
type LoadResult struct {
	// Requests is the number of requests sent (answered or not).
	Requests int `json:"requests"`
	// Errors counts requests that got no response at all: connection
	// errors, timeouts, resets.
	Errors int `json:"errors"`
	// ErrorSamples holds up to 5 distinct error messages.
	ErrorSamples []string `json:"error_samples,omitempty"`
	// Status counts responses by HTTP status. In GRPC mode a response that
	// carried a gRPC status counts as 200; a non-gRPC HTTP response (a
	// proxy's plain 503, say) counts under its own status.
	Status map[int]int `json:"status"`
	// GRPCCodes counts gRPC statuses by code name ("OK", "Unavailable",
	// ...) of responses that carried one. GRPC mode only.
	GRPCCodes map[string]int `json:"grpc_codes,omitempty"`
	// Pods counts the replies weft-echo wrote, by the pod that wrote them:
	// for HTTP every response with an x-echo-pod header (whatever its
	// status), for gRPC every OK reply (its pod field).
	Pods map[string]int `json:"pods"`
	// Latency summarises LatenciesMs.
	Latency LatencySummary `json:"latency"`
	// LatenciesMs holds every request's latency (errors included), from
	// its start to its body fully read, in completion order.
	LatenciesMs []float64 `json:"latencies_ms"`
	// Elapsed runs from the first request's start to the last one's end.
	// JSON: elapsed_ms.
	Elapsed time.Duration `json:"-"`
}

// LatencySummary is the spread of a run's latencies, over every request,
// errors included (nearest-rank percentiles). JSON: min_ms, p50_ms,
// p90_ms, p99_ms, max_ms, as float milliseconds.
type LatencySummary struct {
	Min, P50, P90, P99, Max time.Duration
}

type latencyJSON struct {
	Min float64 `json:"min_ms"`
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

func toMs(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func fromMs(ms float64) time.Duration {
	return time.Duration(math.Round(ms * float64(time.Millisecond)))
}

// MarshalJSON writes the durations as float milliseconds.
func (l LatencySummary) MarshalJSON() ([]byte, error) {
	return json.Marshal(latencyJSON{toMs(l.Min), toMs(l.P50), toMs(l.P90), toMs(l.P99), toMs(l.Max)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (l *LatencySummary) UnmarshalJSON(b []byte) error {
	var j latencyJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*l = LatencySummary{fromMs(j.Min), fromMs(j.P50), fromMs(j.P90), fromMs(j.P99), fromMs(j.Max)}
	return nil
}

// MarshalJSON adds elapsed_ms.
func (r LoadResult) MarshalJSON() ([]byte, error) {
	type plain LoadResult
	return json.Marshal(struct {
		plain
		ElapsedMs float64 `json:"elapsed_ms"`
	}{plain(r), toMs(r.Elapsed)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *LoadResult) UnmarshalJSON(b []byte) error {
	type plain LoadResult
	aux := struct {
		*plain
		ElapsedMs float64 `json:"elapsed_ms"`
	}{plain: (*plain)(r)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	r.Elapsed = fromMs(aux.ElapsedMs)
	return nil
}

// summarize computes the spread of latencies (milliseconds).
func summarize(ms []float64) LatencySummary {
	if len(ms) == 0 {
		return LatencySummary{}
	}
	s := slices.Clone(ms)
	slices.Sort(s)
	rank := func(p float64) time.Duration {
		i := int(math.Ceil(p/100*float64(len(s)))) - 1
		return fromMs(s[max(0, min(i, len(s)-1))])
	}
	return LatencySummary{Min: fromMs(s[0]), P50: rank(50), P90: rank(90), P99: rank(99), Max: fromMs(s[len(s)-1])}
}

// outcome is one request's result.
type outcome struct {
	latency  time.Duration
	err      error  // no response
	status   int    // HTTP status, when a response came
	grpcCode string // gRPC code name, when a gRPC status came
	pod      string // the weft-echo pod that replied
}

// Load sends s's requests and tallies the answers. Name resolution is the
// process's own, as for [Get]. The error is for a spec that cannot run;
// requests that fail are counted in the result. When ctx ends early, Load
// returns what it has with ctx's error.
func Load(ctx context.Context, s LoadSpec) (*LoadResult, error) {
	if s.Requests < 0 || s.Concurrency < 0 || s.Rate < 0 || s.Duration < 0 || s.Timeout < 0 {
		return nil, errors.New("load: negative requests, concurrency, rate, duration or timeout")
	}
	if s.Requests == 0 {
		s.Requests = 100
	}
	if s.Concurrency == 0 {
		s.Concurrency = 4
	}
	if s.Timeout == 0 {
		s.Timeout = 10 * time.Second
	}
	do, closeFn, err := s.requester()
	if err != nil {
		return nil, err
	}
	defer closeFn()

	res := &LoadResult{Status: map[int]int{}, Pods: map[string]int{}, LatenciesMs: []float64{}}
	if s.GRPC {
		res.GRPCCodes = map[string]int{}
	}
	var mu sync.Mutex
	record := func(o outcome) {
		mu.Lock()
		defer mu.Unlock()
		res.Requests++
		res.LatenciesMs = append(res.LatenciesMs, toMs(o.latency))
		if o.err != nil {
			res.Errors++
			if msg := o.err.Error(); len(res.ErrorSamples) < 5 && !slices.Contains(res.ErrorSamples, msg) {
				res.ErrorSamples = append(res.ErrorSamples, msg)
			}
			return
		}
		res.Status[o.status]++
		if o.grpcCode != "" {
			res.GRPCCodes[o.grpcCode]++
		}
		if o.pod != "" {
			res.Pods[o.pod]++
		}
	}

	start := time.Now()
	var stop <-chan time.Time // closes the issuing when Duration elapses
	if s.Duration > 0 {
		t := time.NewTimer(s.Duration)
		defer t.Stop()
		stop = t.C
	}
	tokens := make(chan struct{})
	var wg sync.WaitGroup
	for range s.Concurrency {
		wg.Go(func() {
			for range tokens {
				t0 := time.Now()
				o := do(ctx)
				o.latency = time.Since(t0)
				record(o)
			}
		})
	}
	// Issue tokens: Requests of them, or until Duration, paced by Rate.
	var interval time.Duration
	if s.Rate > 0 {
		interval = time.Duration(float64(time.Second) / s.Rate)
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	next := start
issue:
	for i := 0; s.Duration > 0 || i < s.Requests; i++ {
		if interval > 0 {
			if d := time.Until(next); d > 0 {
				timer.Reset(d)
				select {
				case <-timer.C:
				case <-stop:
					timer.Stop()
					break issue
				case <-ctx.Done():
					timer.Stop()
					break issue
				}
			}
			next = next.Add(interval)
		}
		select {
		case tokens <- struct{}{}:
		case <-stop:
			break issue
		case <-ctx.Done():
			break issue
		}
	}
	close(tokens)
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Latency = summarize(res.LatenciesMs)
	return res, ctx.Err()
}

// requester returns the function that sends one request, and what to
// close when the run ends.
func (s LoadSpec) requester() (func(context.Context) outcome, func(), error) {
	if s.GRPC {
		return s.grpcRequester()
	}
	method := s.Method
	if method == "" {
		method = http.MethodGet
	}
	if _, err := http.NewRequest(method, s.URL, nil); err != nil {
		return nil, nil, fmt.Errorf("load: %w", err)
	}
	var protos http.Protocols
	if s.H2C {
		protos.SetUnencryptedHTTP2(true)
	} else {
		protos.SetHTTP1(true)
	}
	tr := &http.Transport{Protocols: &protos, Proxy: nil, DisableKeepAlives: s.NoKeepAlive,
		MaxIdleConns: s.Concurrency, MaxIdleConnsPerHost: s.Concurrency}
	client := &http.Client{Transport: tr, CheckRedirect: noRedirects}
	do := func(ctx context.Context) outcome {
		ctx, cancel := context.WithTimeout(ctx, s.Timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, method, s.URL, nil)
		if err != nil {
			return outcome{err: err}
		}
		for k, vs := range s.Header {
			for _, v := range vs {
				req.Header.Add(k, v)
			}
		}
		if h := req.Header.Get("Host"); h != "" {
			req.Host = h
		}
		resp, err := client.Do(req)
		if err != nil {
			return outcome{err: err}
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return outcome{err: fmt.Errorf("read body: %w", err)}
		}
		return outcome{status: resp.StatusCode, pod: resp.Header.Get("x-echo-pod")}
	}
	return do, tr.CloseIdleConnections, nil
}

// grpcTarget is the host:port of a URL or of a bare "host:port".
func grpcTarget(raw string) string {
	if _, rest, ok := strings.Cut(raw, "://"); ok {
		raw = rest
	}
	host, _, _ := strings.Cut(raw, "/")
	return host
}

// seenKey marks a call's context with a flag set when the server answered.
type seenKey struct{}

// answerSeen is a stats.Handler that tells responses (headers or trailers
// came) from errors made locally (no connection, deadline, reset).
type answerSeen struct{}

func (answerSeen) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (answerSeen) HandleRPC(ctx context.Context, st stats.RPCStats) {
	switch st.(type) {
	case *stats.InHeader, *stats.InTrailer:
		if f, ok := ctx.Value(seenKey{}).(*atomic.Bool); ok {
			f.Store(true)
		}
	}
}
func (answerSeen) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (answerSeen) HandleConn(context.Context, stats.ConnStats)                       {}

// nonGRPCStatus finds the HTTP status of a non-gRPC response in the error
// grpc-go makes of it.
var nonGRPCStatus = regexp.MustCompile(`unexpected HTTP status code received from server: (\d+)`)

func (s LoadSpec) grpcRequester() (func(context.Context) outcome, func(), error) {
	target := grpcTarget(s.URL)
	if target == "" {
		return nil, nil, fmt.Errorf("load: no host:port in %q", s.URL)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithStatsHandler(answerSeen{})}
	md := metadata.MD{}
	for k, vs := range s.Header {
		if strings.EqualFold(k, "Host") {
			if len(vs) > 0 {
				opts = append(opts, grpc.WithAuthority(vs[0]))
			}
			continue
		}
		md.Append(k, vs...)
	}
	dial := func() (*grpc.ClientConn, error) { return grpc.NewClient("passthrough:///"+target, opts...) }
	var shared *grpc.ClientConn
	if !s.NoKeepAlive {
		var err error
		if shared, err = dial(); err != nil {
			return nil, nil, fmt.Errorf("load: %w", err)
		}
	}
	do := func(ctx context.Context) outcome {
		start := time.Now()
		ctx, cancel := context.WithTimeout(ctx, s.Timeout)
		defer cancel()
		conn := shared
		if conn == nil {
			c, err := dial()
			if err != nil {
				return outcome{err: err}
			}
			defer c.Close()
			conn = c
		}
		seen := new(atomic.Bool)
		ctx = context.WithValue(metadata.NewOutgoingContext(ctx, md), seenKey{}, seen)
		reply, err := echov1.NewEchoClient(conn).Echo(ctx, &echov1.EchoRequest{Message: "weft-echo load"})
		if err == nil {
			return outcome{status: http.StatusOK, grpcCode: "OK", pod: reply.GetPod()}
		}
		st := status.Convert(err)
		if st.Code() == codes.DeadlineExceeded && (ctx.Err() != nil || time.Since(start) >= s.Timeout*9/10) {
			// Our own deadline, sent to the server as grpc-timeout:
			// whichever side noticed first (a local cancel, the server's
			// DEADLINE_EXCEEDED, a reset), no answer came in time.
			return outcome{err: err}
		}
		if seen.Load() {
			return outcome{status: http.StatusOK, grpcCode: st.Code().String()}
		}
		if m := nonGRPCStatus.FindStringSubmatch(st.Message()); m != nil {
			code, _ := strconv.Atoi(m[1])
			return outcome{status: code}
		}
		return outcome{err: err}
	}
	closeFn := func() {
		if shared != nil {
			shared.Close()
		}
	}
	return do, closeFn, nil
}

// Summary is one line: status counts, errors, pods and p50/p99, sorted so
// that it reads the same every time.
func (r *LoadResult) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d requests:", r.Requests)
	codes := make([]int, 0, len(r.Status))
	for c := range r.Status {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	for _, c := range codes {
		fmt.Fprintf(&b, " %d×%d", r.Status[c], c)
	}
	names := make([]string, 0, len(r.GRPCCodes))
	for n := range r.GRPCCodes {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(&b, " %d×%s", r.GRPCCodes[n], n)
	}
	if r.Errors > 0 {
		fmt.Fprintf(&b, " %d errors", r.Errors)
	}
	pods := make([]string, 0, len(r.Pods))
	for p := range r.Pods {
		pods = append(pods, p)
	}
	slices.Sort(pods)
	b.WriteString(" | pods:")
	for _, p := range pods {
		fmt.Fprintf(&b, " %s=%d", p, r.Pods[p])
	}
	fmt.Fprintf(&b, " | p50 %s p99 %s", r.Latency.P50.Round(100*time.Microsecond), r.Latency.P99.Round(100*time.Microsecond))
	return b.String()
}
