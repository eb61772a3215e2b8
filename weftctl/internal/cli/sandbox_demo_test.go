package cli

import (
	"strings"
	"testing"

	"github.com/weftmesh/weft/tests/apps/echo"
)

func TestSandboxDemoCommand(t *testing.T) {
	cmd, _, err := newRoot().Find([]string{"sandbox", "demo"})
	if err != nil || cmd.Name() != "demo" {
		t.Fatalf("weftctl sandbox demo: got %v, %v", cmd, err)
	}
	for flag, def := range map[string]string{"name": "demo", "bin": "", "otlp-endpoint": "", "stay": "false"} {
		f := cmd.Flags().Lookup(flag)
		if f == nil || f.DefValue != def {
			t.Errorf("flag --%s: got %v, want default %q", flag, f, def)
		}
	}
}

func TestDemoMetricSum(t *testing.T) {
	text := []byte(`# HELP weft_proxy_retries_total Retry decisions.
# TYPE weft_proxy_retries_total counter
weft_proxy_retries_total{result="retried"} 12
weft_proxy_retries_total{result="budget_exhausted"} 3
weft_proxy_retries_total_other{result="retried"} 100
weft_proxy_authorization_denials_total{reason="policy"} 2
weft_proxy_authorization_denials_total{reason="policy"} 1.5
weft_proxy_ready 1
`)
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"weft_proxy_retries_total", []string{`result="retried"`}, 12},
		{"weft_proxy_retries_total", nil, 15},
		{"weft_proxy_retries_total", []string{`result="none"`}, 0},
		{"weft_proxy_authorization_denials_total", []string{`reason="policy"`}, 3.5},
		{"weft_proxy_ready", nil, 1},
		{"weft_proxy_missing", nil, 0},
	} {
		got, err := demoMetricSum(text, tc.name, tc.labels...)
		if err != nil || got != tc.want {
			t.Errorf("demoMetricSum(%s, %v): got %g, %v; want %g", tc.name, tc.labels, got, err, tc.want)
		}
	}
	if _, err := demoMetricSum([]byte("m{a=\"b\"} x\n"), "m"); err == nil {
		t.Error("demoMetricSum of a bad value: no error")
	}
}

func TestDemoTraceID(t *testing.T) {
	for tp, want := range map[string]string{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01": "4bf92f3577b34da6a3ce929d0e0e4736",
		"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01":  "",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01": "",
		"": "",
	} {
		got, ok := demoTraceID(tp)
		if got != want || ok != (want != "") {
			t.Errorf("demoTraceID(%q): got %q, %v; want %q", tp, got, ok, want)
		}
	}
}

func TestDemoChecks(t *testing.T) {
	load := func(status map[int]int, pods map[string]int, errors int) *echo.LoadResult {
		n := errors
		for _, c := range status {
			n += c
		}
		return &echo.LoadResult{Requests: n, Status: status, Pods: pods, Errors: errors}
	}
	for _, tc := range []struct {
		name string
		err  error
		ok   bool
	}{
		{"all from a", demoAllFrom(load(map[int]int{200: 10}, map[string]int{"a": 10}, 0), "a"), true},
		{"one from b", demoAllFrom(load(map[int]int{200: 10}, map[string]int{"a": 9, "b": 1}, 0), "a"), false},
		{"one error", demoAllFrom(load(map[int]int{200: 9}, map[string]int{"a": 9}, 1), "a"), false},
		{"one 503", demoAllFrom(load(map[int]int{200: 9, 503: 1}, map[string]int{"a": 10}, 0), "a"), false},
		{"even split", demoSplit(load(map[int]int{200: 100}, map[string]int{"a": 48, "b": 52}, 0), "a", "b", 35, 65), true},
		{"lopsided split", demoSplit(load(map[int]int{200: 100}, map[string]int{"a": 80, "b": 20}, 0), "a", "b", 35, 65), false},
		{"split with a third pod", demoSplit(load(map[int]int{200: 100}, map[string]int{"a": 45, "b": 45, "c": 10}, 0), "a", "b", 35, 65), false},
		{"half failed", demoFailed(load(map[int]int{200: 52, 503: 48}, nil, 0), 503, 35, 65), true},
		{"none failed", demoFailed(load(map[int]int{200: 100}, nil, 0), 503, 0, 5), true},
		{"too many failed", demoFailed(load(map[int]int{200: 90, 503: 10}, nil, 0), 503, 0, 5), false},
		{"another status", demoFailed(load(map[int]int{200: 50, 503: 45, 500: 5}, nil, 0), 503, 35, 65), false},
		{"an error", demoFailed(load(map[int]int{200: 50, 503: 49}, nil, 1), 503, 35, 65), false},
	} {
		if (tc.err == nil) != tc.ok {
			t.Errorf("%s: got %v, want ok=%v", tc.name, tc.err, tc.ok)
		}
	}
	if got := demoSlowShare([]float64{1, 250, 199.9, 200}, 200); got != 50 {
		t.Errorf("demoSlowShare: got %g, want 50", got)
	}
	if r := demoRoute(90, 10); !strings.Contains(r, "{name: echo-v1, port: 8080, weight: 90}, {name: echo-v2, port: 8080, weight: 10}") {
		t.Errorf("demoRoute(90, 10):\n%s", r)
	}
}
