package echo

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func startPod(t *testing.T, pod string) *Server {
	t.Helper()
	s, err := Start(Config{Pod: pod, HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestLoadHTTPStatus(t *testing.T) {
	s := start(t, false)
	base := "http://" + s.Addrs()[0].String()
	for _, tc := range []struct {
		name string
		spec LoadSpec
	}{
		{"http1", LoadSpec{URL: base + "/?fail_percent=50"}},
		{"h2c", LoadSpec{URL: base + "/", H2C: true, Header: http.Header{"X-Echo-Fail-Percent": {"50"}}}},
		{"no-keepalive", LoadSpec{URL: base + "/?fail_percent=50", NoKeepAlive: true, Concurrency: 8}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.spec.Requests = 400
			res, err := Load(context.Background(), tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests != 400 || res.Errors != 0 || len(res.LatenciesMs) != 400 {
				t.Fatalf("requests %d errors %d (%v) latencies %d, want 400, 0, 400", res.Requests, res.Errors, res.ErrorSamples, len(res.LatenciesMs))
			}
			ok, bad := res.Status[200], res.Status[503]
			if ok+bad != 400 || ok < 120 || bad < 120 {
				t.Errorf("status %v, want about 200 each of 200 and 503", res.Status)
			}
			// Every answer, 503s too, came from weft-echo.
			if !reflect.DeepEqual(res.Pods, map[string]int{"echo-1": 400}) {
				t.Errorf("pods %v, want echo-1: 400", res.Pods)
			}
			if res.GRPCCodes != nil {
				t.Errorf("grpc codes %v in HTTP mode", res.GRPCCodes)
			}
			l := res.Latency
			if l.Min <= 0 || l.Min > l.P50 || l.P50 > l.P90 || l.P90 > l.P99 || l.P99 > l.Max || res.Elapsed < l.Max {
				t.Errorf("latency %+v elapsed %s: not in order", l, res.Elapsed)
			}
		})
	}
}

func TestLoadHeadersAndPods(t *testing.T) {
	// Two pods behind one address, alternating: a stand-in for a split.
	a, b := startPod(t, "v1"), startPod(t, "v2")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var (
		mu             sync.Mutex
		hosts, methods []string
		n              int
	)
	front := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hosts, methods = append(hosts, r.Host), append(methods, r.Method)
		backend := []*Server{a, b}[n%2]
		n++
		mu.Unlock()
		res, err := Get(r.Context(), Request{URL: "http://" + backend.Addrs()[0].String() + r.URL.RequestURI()})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Header().Set("x-echo-pod", res.Reply.Pod)
		w.WriteHeader(res.Status)
	})}
	go front.Serve(ln)
	defer front.Close()

	res, err := Load(context.Background(), LoadSpec{URL: "http://" + ln.Addr().String() + "/", Method: "POST",
		Header: http.Header{"Host": {"shop.example"}}, Requests: 20, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Pods, map[string]int{"v1": 10, "v2": 10}) || res.Status[200] != 20 {
		t.Errorf("pods %v status %v, want 10 each of v1 and v2, all 200", res.Pods, res.Status)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range hosts {
		if hosts[i] != "shop.example" || methods[i] != "POST" {
			t.Fatalf("request %d: host %q method %q, want shop.example POST", i, hosts[i], methods[i])
		}
	}
}

func TestLoadGRPC(t *testing.T) {
	s := start(t, false)
	addr := s.Addrs()[1].String()
	for _, tc := range []struct {
		name   string
		url    string
		header http.Header
		want   map[string]int
		pods   map[string]int
	}{
		{"ok", "http://" + addr, nil, map[string]int{"OK": 30}, map[string]int{"echo-1": 30}},
		{"aborted", addr, http.Header{"X-Echo-Grpc-Status": {"10"}}, map[string]int{"Aborted": 30}, map[string]int{}},
		{"unavailable", addr, http.Header{"x-echo-grpc-status": {"14"}, "Host": {"echo.shop"}}, map[string]int{"Unavailable": 30}, map[string]int{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Load(context.Background(), LoadSpec{URL: tc.url, GRPC: true, Header: tc.header, Requests: 30})
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests != 30 || res.Errors != 0 || !reflect.DeepEqual(res.Status, map[int]int{200: 30}) {
				t.Errorf("requests %d errors %d (%v) status %v, want 30 answered", res.Requests, res.Errors, res.ErrorSamples, res.Status)
			}
			if !reflect.DeepEqual(res.GRPCCodes, tc.want) || !reflect.DeepEqual(res.Pods, tc.pods) {
				t.Errorf("codes %v pods %v, want %v %v", res.GRPCCodes, res.Pods, tc.want, tc.pods)
			}
		})
	}

	res, err := Load(context.Background(), LoadSpec{URL: addr, GRPC: true, Requests: 200, Concurrency: 8,
		Header: http.Header{"X-Echo-Fail-Percent": {"50"}}})
	if err != nil {
		t.Fatal(err)
	}
	if ok, bad := res.GRPCCodes["OK"], res.GRPCCodes["Unavailable"]; ok+bad != 200 || ok < 50 || bad < 50 || res.Pods["echo-1"] != ok {
		t.Errorf("fail percent 50: codes %v pods %v", res.GRPCCodes, res.Pods)
	}

	// A delay past the timeout is a local deadline: no answer, an error.
	res, err = Load(context.Background(), LoadSpec{URL: addr, GRPC: true, Requests: 4, NoKeepAlive: true,
		Timeout: 50 * time.Millisecond, Header: http.Header{"X-Echo-Delay": {"1s"}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 4 || len(res.Status) != 0 || len(res.ErrorSamples) == 0 || !strings.Contains(res.ErrorSamples[0], "DeadlineExceeded") {
		t.Errorf("timeouts: errors %d %v status %v codes %v", res.Errors, res.ErrorSamples, res.Status, res.GRPCCodes)
	}
}

func TestLoadGRPCNonGRPCAnswer(t *testing.T) {
	// A plain HTTP/2 503 (a proxy's, say) is an answer, counted by status.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &protos, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no healthy upstream", http.StatusServiceUnavailable)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	res, err := Load(context.Background(), LoadSpec{URL: ln.Addr().String(), GRPC: true, Requests: 5})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || !reflect.DeepEqual(res.Status, map[int]int{503: 5}) || len(res.GRPCCodes) != 0 {
		t.Errorf("errors %d %v status %v codes %v, want five 503s", res.Errors, res.ErrorSamples, res.Status, res.GRPCCodes)
	}
}

func TestLoadRate(t *testing.T) {
	s := start(t, false)
	// 20 requests at 100/s take about 190ms, however many workers.
	res, err := Load(context.Background(), LoadSpec{URL: "http://" + s.Addrs()[0].String() + "/", Requests: 20, Rate: 100, Concurrency: 8})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status[200] != 20 {
		t.Fatalf("status %v errors %v", res.Status, res.ErrorSamples)
	}
	if res.Elapsed < 150*time.Millisecond || res.Elapsed > 5*time.Second {
		t.Errorf("20 requests at 100/s took %s, want about 190ms", res.Elapsed)
	}
}

func TestLoadDuration(t *testing.T) {
	s := start(t, false)
	// Duration wins over Requests; with Rate the count is bounded too.
	res, err := Load(context.Background(), LoadSpec{URL: "http://" + s.Addrs()[0].String() + "/", Requests: 1,
		Duration: 300 * time.Millisecond, Rate: 50})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests < 5 || res.Requests > 16 || res.Errors != 0 {
		t.Errorf("300ms at 50/s sent %d requests (%d errors), want about 15", res.Requests, res.Errors)
	}
	if res.Elapsed < 300*time.Millisecond || res.Elapsed > 5*time.Second {
		t.Errorf("elapsed %s, want about 300ms", res.Elapsed)
	}

	// In-flight requests at the end are let finish.
	res, err = Load(context.Background(), LoadSpec{URL: "http://" + s.Addrs()[0].String() + "/?delay=200ms",
		Duration: 100 * time.Millisecond, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 2 || res.Status[200] != 2 || res.Elapsed < 200*time.Millisecond {
		t.Errorf("requests %d status %v elapsed %s, want 2 finished 200s", res.Requests, res.Status, res.Elapsed)
	}
}

func TestLoadCancelAndErrors(t *testing.T) {
	s := start(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	res, err := Load(ctx, LoadSpec{URL: "http://" + s.Addrs()[0].String() + "/?delay=5s", Requests: 10, Concurrency: 2})
	if err == nil || res == nil || res.Requests != 2 || res.Errors != 2 {
		t.Errorf("cancelled run: %+v, %v; want 2 errors and ctx's error", res, err)
	}

	res, err = Load(context.Background(), LoadSpec{URL: "http://127.0.0.1:1/", Requests: 10})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 10 || res.Errors != 10 || len(res.ErrorSamples) == 0 || len(res.ErrorSamples) > 5 || len(res.Pods) != 0 {
		t.Errorf("closed port: %+v", res)
	}
	if _, err := Load(context.Background(), LoadSpec{URL: "::nope"}); err == nil {
		t.Errorf("bad URL: no error")
	}
}

func TestLoadResultJSON(t *testing.T) {
	in := LoadResult{Requests: 3, Errors: 1, ErrorSamples: []string{"boom"}, Status: map[int]int{200: 1, 503: 1},
		GRPCCodes: map[string]int{"OK": 1}, Pods: map[string]int{"a": 2}, LatenciesMs: []float64{1.5, 2, 30},
		Latency: summarize([]float64{1.5, 2, 30}), Elapsed: 1234567 * time.Microsecond}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"requests":3`, `"errors":1`, `"error_samples":["boom"]`, `"status":{"200":1,"503":1}`,
		`"grpc_codes":{"OK":1}`, `"pods":{"a":2}`, `"latencies_ms":[1.5,2,30]`, `"elapsed_ms":1234.567`,
		`"latency":{"min_ms":1.5,"p50_ms":2,"p90_ms":30,"p99_ms":30,"max_ms":30}`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON %s lacks %s", b, want)
		}
	}
	var out LoadResult
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("round trip:\n got %+v\nwant %+v", out, in)
	}
}

func TestLoadSummary(t *testing.T) {
	r := &LoadResult{Requests: 10, Errors: 1, Status: map[int]int{503: 3, 200: 6}, Pods: map[string]int{"b": 4, "a": 5},
		Latency: LatencySummary{P50: 1500 * time.Microsecond, P99: 12 * time.Millisecond}}
	if got, want := r.Summary(), "10 requests: 6×200 3×503 1 errors | pods: a=5 b=4 | p50 1.5ms p99 12ms"; got != want {
		t.Errorf("Summary() = %q\nwant        %q", got, want)
	}
}
