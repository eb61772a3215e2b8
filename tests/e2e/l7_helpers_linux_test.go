//go:build linux

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/tests/apps/echo"
	"github.com/weftmesh/weft/tests/sandbox"
)

// nodeGet GETs path from a node proxy's loopback listener on port (15020
// metrics, 15000 admin) inside node i's network namespace.
func nodeGet(ctx context.Context, m *sandbox.Mesh, node, port int, path string) ([]byte, error) {
	ns := m.Nodes()[node].NetNSPath
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return sandbox.Dial(ctx, ns, "tcp4", fmt.Sprintf("127.0.0.1:%d", port))
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", port, path), nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s on node %d: %s", path, node, resp.Status)
	}
	return b, nil
}

// metricSum is the sum of the samples of metric name on node i's proxy
// whose labels include every label="value" of labels (a missing series
// is 0).
func metricSum(ctx context.Context, t *testing.T, m *sandbox.Mesh, node int, name string, labels ...string) float64 {
	t.Helper()
	b, err := nodeGet(ctx, m, node, 15020, "/metrics")
	if err != nil {
		t.Fatalf("scrape node %d metrics: %v", node, err)
	}
	sum := 0.0
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// mustLoad runs m.Load from pod and fails the test when it cannot run.
func mustLoad(ctx context.Context, t *testing.T, m *sandbox.Mesh, pod string, s echo.LoadSpec) *echo.LoadResult {
	t.Helper()
	res, err := m.Load(ctx, pod, s)
	if err != nil {
		t.Fatalf("load %s from %s: %v", s.URL, pod, err)
	}
	return res
}

// versions counts the replies of a load by the serving pod's version
// (pod names web-v1-*, web-v2-*).
func versions(res *echo.LoadResult) (v1, v2, other int) {
	for pod, n := range res.Pods {
		switch {
		case strings.HasPrefix(pod, "web-v1-"):
			v1 += n
		case strings.HasPrefix(pod, "web-v2-"):
			v2 += n
		default:
			other += n
		}
	}
	return
}

// onlyVersion checks that every one of a load's requests got a 200 from
// a pod of version want ("v1" or "v2").
func onlyVersion(res *echo.LoadResult, want string) error {
	v1, v2, other := versions(res)
	got := map[string]int{"v1": v1, "v2": v2}[want]
	if res.Errors != 0 || res.Status[200] != res.Requests || got != res.Requests || other != 0 {
		return fmt.Errorf("%d requests: %d errors %v, status %v, pods %v; want all 200 from %s", res.Requests, res.Errors, res.ErrorSamples, res.Status, res.Pods, want)
	}
	return nil
}

// share is 100 × n / total.
func share(n, total int) float64 {
	if total == 0 {
		return 0
	}
	return 100 * float64(n) / float64(total)
}

// latencyShares returns the percentage of latencies at or above hi ms and
// below lo ms.
func latencyShares(ms []float64, lo, hi float64) (above, below float64) {
	a, b := 0, 0
	for _, l := range ms {
		if l >= hi {
			a++
		}
		if l < lo {
			b++
		}
	}
	return share(a, len(ms)), share(b, len(ms))
}

// percentile is the nearest-rank p-th percentile of ms.
func percentile(ms []float64, p float64) float64 {
	if len(ms) == 0 {
		return 0
	}
	s := slices.Clone(ms)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}
