package main

import (
	"math"
	"testing"
	"time"
)

func TestParseWrk(t *testing.T) {
	tests := []struct {
		name, out string
		want      wrkResult
	}{
		{"clean", `Running 10s test @ http://10.200.1.3:8080/
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   610.52us  120.00us   7.68ms   92.90%
    Req/Sec    52.67k     2.38k   57.15k    71.00%
  524275 requests in 10.00s, 228.06MB read
Requests/sec:  52425.38
Transfer/sec:     22.81MB
`, wrkResult{Requests: 524275, Duration: 10 * time.Second, ReadBytes: 228.06 * (1 << 20), RPS: 52425.38}},
		{"errors", `Running 10s test @ http://10.96.0.10:8080/
  1 threads and 32 connections
  101 requests in 1.00m, 10.50KB read
  Socket errors: connect 3, read 2, write 1, timeout 4
  Non-2xx or 3xx responses: 7
Requests/sec:      1.68
Transfer/sec:     179.20B
`, wrkResult{Requests: 101, Duration: time.Minute, ReadBytes: 10.5 * 1024, RPS: 1.68, SocketErrors: 10, Non2xx: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseWrk(tt.out)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got.ReadBytes-tt.want.ReadBytes) > 1 {
				t.Errorf("ReadBytes: got %v, want %v", got.ReadBytes, tt.want.ReadBytes)
			}
			got.ReadBytes = tt.want.ReadBytes
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	if _, err := parseWrk("unable to connect to 10.0.0.1:80 Connection refused\n"); err == nil {
		t.Error("parseWrk of an error message: got no error")
	}
}

func TestAccessLog(t *testing.T) {
	log := `{"latency":0.000300,"timestamp":1,"thread":0,"iter":0,"ok":true,"details":"200"}
{"latency":0.000100,"timestamp":2,"thread":0,"iter":1,"ok":true,"details":"200"}
{"latency":0.000200,"timestamp":3,"thread":1,"iter":0,"ok":true,"details":"200"}
{"latency":0.000900,"timestamp":4,"thread":1,"iter":1,"ok":true,"details":"503"}
{"latency":0.003000,"timestamp":5,"thread":1,"iter":2,"ok":false,"details":"-1"}
`
	l := latency{QPS: 1000}
	if err := applyAccessLog(&l, []byte(log)); err != nil {
		t.Fatal(err)
	}
	if l.P50 != 200 || l.P90 != 300 || l.P99 != 300 || l.Count != 5 || l.Errors != 2 {
		t.Errorf("got p50 %v p90 %v p99 %v count %d errors %d, want 200 300 300 5 2", l.P50, l.P90, l.P99, l.Count, l.Errors)
	}
}

func TestPercentileAndMedian(t *testing.T) {
	v := make([]float64, 100)
	for i := range v {
		v[i] = float64(i + 1)
	}
	for _, tt := range []struct{ p, want float64 }{{50, 50}, {90, 90}, {99, 99}, {100, 100}, {0, 1}} {
		if got := percentile(v, tt.p); got != tt.want {
			t.Errorf("percentile %v: got %v, want %v", tt.p, got, tt.want)
		}
	}
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median of 3 1 2: got %v, want 2", got)
	}
	if got := median([]float64{4, 1, 2, 3}); got != 2.5 {
		t.Errorf("median of 4 1 2 3: got %v, want 2.5", got)
	}
}

func TestProc(t *testing.T) {
	stat := "4242 (weft-node (proxy)) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 130 0 0 20 0 12 0 100 2000000 3000 18446744073709551615\n"
	got, err := parseProcStat([]byte(stat))
	if err != nil || got != 3800*time.Millisecond {
		t.Errorf("parseProcStat: got %v, %v, want 3.8s", got, err)
	}
	busy, err := parseMachineBusy([]byte("cpu  100 5 50 1000 20 3 2 1 7 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"))
	if err != nil || busy != 1610*time.Millisecond {
		t.Errorf("parseMachineBusy: got %v, %v, want 1.61s", busy, err)
	}
	rss, hwm, err := parseMemory([]byte("Name:\tweft-node-proxy\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\n"))
	if err != nil || rss != 40<<20 || hwm != 50<<20 {
		t.Errorf("parseMemory: got %d %d %v, want 40 MiB, 50 MiB", rss, hwm, err)
	}
}

func TestThousands(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999.6: "1,000", 1234567: "1,234,567", -4321: "-4,321", math.NaN(): "–"} {
		if got := thousands(v); got != want {
			t.Errorf("thousands(%v): got %q, want %q", v, got, want)
		}
	}
}
