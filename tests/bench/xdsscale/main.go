// Command xdsscale measures how fast the control plane pushes a change to
// many node proxies: it starts a real kube-apiserver (tests/kube), fills it
// with a simulated cluster (default 10,000 pods on 1,000 nodes behind 500
// Services), runs weft-control-plane against it, connects one delta-xDS
// client per node, then changes an HTTPRoute's canary weight several times
// and reports, per change, how long it took until each client had the new
// weight (p50, p99, max over all clients) and the control plane's memory.
//
//	go run ./tests/bench/xdsscale -nodes 1000 -pods 10000 -services 500 -rounds 10
//
// See docs/performance.md for results.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/weftmesh/weft/certs"
	"github.com/weftmesh/weft/tests/kube"
)

type config struct {
	nodes, pods, services, rounds int
	bin, crds                     string
	namespace                     string
	memLimit                      string
	pprofDir                      string
}

func main() {
	var c config
	flag.IntVar(&c.nodes, "nodes", 1000, "simulated nodes, one xDS client each")
	flag.IntVar(&c.pods, "pods", 10000, "pods, spread over the nodes")
	flag.IntVar(&c.services, "services", 500, "Services, each selecting pods/services pods")
	flag.IntVar(&c.rounds, "rounds", 10, "weight changes to time")
	flag.StringVar(&c.bin, "control-plane", "bin/weft-control-plane", "the control plane binary")
	flag.StringVar(&c.crds, "crds", "charts/weft/crds,charts/weft/files/gateway-api", "comma-separated directories of CRDs to install")
	flag.StringVar(&c.namespace, "namespace", "bench", "namespace of the simulated workloads")
	flag.StringVar(&c.memLimit, "gomemlimit", "900MiB", "GOMEMLIMIT of the control plane (as the Helm chart sets from its memory limit); empty for none")
	flag.StringVar(&c.pprofDir, "pprof", "", "if set, write the control plane's CPU profile over the timed rounds (cpu.pprof) and its heap profile after them (heap.pprof) into this directory")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "xdsscale:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
}

func run(c config) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	logf("starting kube-apiserver")
	cluster, err := kube.Start(ctx, kube.Options{})
	if err != nil {
		return err
	}
	defer cluster.Stop()
	if err := cluster.ApplyCRDs(ctx, strings.Split(c.crds, ",")...); err != nil {
		return err
	}
	cfg := rest.CopyConfig(cluster.Config)
	cfg.QPS, cfg.Burst = 2000, 4000
	cs := kubernetes.NewForConfigOrDie(cfg)
	gw := gwclient.NewForConfigOrDie(cfg)
	start := time.Now()
	if err := populate(ctx, c, cs, gw); err != nil {
		return err
	}
	logf("created %d pods, %d services on %d nodes in %s", c.pods, c.services, c.nodes, time.Since(start).Round(time.Millisecond))

	// The control plane, as a separate process so its memory can be read.
	addr, admin := "127.0.0.1:25012", "127.0.0.1:25014"
	cmd := exec.CommandContext(ctx, c.bin, "--kubeconfig", cluster.Kubeconfig, "--namespace", "weft-system",
		"--listen", addr, "--admin-listen", admin, "--log-level", "warn")
	cmd.Stderr = os.Stderr
	if c.memLimit != "" {
		cmd.Env = append(os.Environ(), "GOMEMLIMIT="+c.memLimit)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	ca, err := waitForCA(ctx, cs)
	if err != nil {
		return err
	}

	route := fmt.Sprintf("svc-0.%s.svc.cluster.local:8080", c.namespace)
	canary := fmt.Sprintf("outbound|8080||svc-1.%s.svc.cluster.local", c.namespace)
	watchers := make([]*watcher, c.nodes)
	var wg sync.WaitGroup
	errs := make(chan error, c.nodes)
	for i := range watchers {
		w, err := dialWatcher(ctx, addr, nodeName(i), ca)
		if err != nil {
			return err
		}
		watchers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.run(ctx, route, canary); err != nil {
				errs <- err
			}
		}()
	}
	start = time.Now()
	for _, w := range watchers {
		for !w.ready.Load() {
			select {
			case err := <-errs:
				return err
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	logf("%d xDS clients connected and fully configured (listeners, routes, clusters, endpoints) in %s", c.nodes, time.Since(start).Round(time.Millisecond))
	time.Sleep(2 * time.Second) // let the connect storm's garbage be collected before timing changes

	var profiled chan error
	if c.pprofDir != "" {
		profiled = make(chan error, 1)
		// The rounds take about 1.5 s each; a profile that outlasts them
		// only adds idle time.
		secs := max(1, c.rounds*3/2)
		go func() {
			profiled <- fetch(ctx, admin, fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), filepath.Join(c.pprofDir, "cpu.pprof"))
		}()
	}
	sumBefore, pushesBefore, _ := pushLatency(ctx, admin)
	var all []time.Duration
	fmt.Printf("\n| round | weight | p50 | p99 | max (all clients have it) |\n| --- | --- | --- | --- | --- |\n")
	for r := 1; r <= c.rounds; r++ {
		weight := uint32(r * 100 / (c.rounds + 1))
		for _, w := range watchers {
			w.expect(weight)
		}
		t0 := time.Now()
		if err := setWeight(ctx, gw, c.namespace, int32(weight)); err != nil {
			return err
		}
		var lat []time.Duration
		for _, w := range watchers {
			for {
				at, ok := w.seen()
				if ok {
					lat = append(lat, at.Sub(t0))
					break
				}
				select {
				case err := <-errs:
					return err
				case <-time.After(time.Millisecond):
				}
				if time.Since(t0) > time.Minute {
					return fmt.Errorf("round %d: %s never got weight %d", r, w.node, weight)
				}
			}
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		all = append(all, lat...)
		fmt.Printf("| %d | %d | %s | %s | %s |\n", r, weight, pct(lat, 50), pct(lat, 99), lat[len(lat)-1].Round(time.Millisecond))
		time.Sleep(500 * time.Millisecond) // let the control plane settle between rounds
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	rss, hwm := memory(cmd.Process.Pid)
	if profiled != nil {
		if err := <-profiled; err != nil {
			return err
		}
		if err := fetch(ctx, admin, "/debug/pprof/heap", filepath.Join(c.pprofDir, "heap.pprof")); err != nil {
			return err
		}
	}
	fmt.Printf("\nall rounds: p50 %s, p99 %s, max %s over %d client updates\n", pct(all, 50), pct(all, 99), all[len(all)-1].Round(time.Millisecond), len(all))
	fmt.Printf("control plane RSS %s (peak %s, GOMEMLIMIT %q) with %d pods, %d services, %d nodes connected\n", rss, hwm, c.memLimit, c.pods, c.services, c.nodes)
	if sum, n, err := pushLatency(ctx, admin); err == nil && n > pushesBefore {
		mean := (sum - sumBefore) / time.Duration(n-pushesBefore)
		fmt.Printf("control plane: model change to snapshot set (debounce included), mean %s over the rounds' %d node snapshots\n", mean.Round(time.Millisecond), n-pushesBefore)
	}
	cancel()
	wg.Wait()
	return nil
}

func pct(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100
	if i > 0 {
		i--
	}
	return sorted[i].Round(time.Millisecond)
}

func nodeName(i int) string { return fmt.Sprintf("node-%04d", i) }

func memory(pid int) (rss, hwm string) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return "?", "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.Atoi(f[1])
		switch f[0] {
		case "VmRSS:":
			rss = fmt.Sprintf("%d MiB", kb/1024)
		case "VmHWM:":
			hwm = fmt.Sprintf("%d MiB", kb/1024)
		}
	}
	return rss, hwm
}

// fetch GETs path from the admin server into file.
func fetch(ctx context.Context, admin, path, file string) error {
	b, err := get(ctx, admin, path)
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o644)
}

// get GETs path from the admin server.
func get(ctx context.Context, admin, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	return b, nil
}

// pushLatency reads the sum and count of the control plane's
// weft_xds_push_latency_seconds{trigger="change"}.
func pushLatency(ctx context.Context, admin string) (time.Duration, int, error) {
	b, err := get(ctx, admin, "/metrics")
	if err != nil {
		return 0, 0, err
	}
	var sum float64
	var count int
	for _, l := range strings.Split(string(b), "\n") {
		name, value, ok := strings.Cut(l, " ")
		if !ok {
			continue
		}
		switch name {
		case `weft_xds_push_latency_seconds_sum{trigger="change"}`:
			sum, _ = strconv.ParseFloat(value, 64)
		case `weft_xds_push_latency_seconds_count{trigger="change"}`:
			count, _ = strconv.Atoi(value)
		}
	}
	return time.Duration(sum * float64(time.Second)), count, nil
}

func waitForCA(ctx context.Context, cs kubernetes.Interface) (*certs.CA, error) {
	for {
		sec, err := cs.CoreV1().Secrets("weft-system").Get(ctx, "weft-ca", metav1.GetOptions{})
		if err == nil {
			return certs.New(spiffeid.RequireTrustDomainFromString("cluster.local"),
				&certs.Material{TLSCrt: sec.Data["tls.crt"], TLSKey: sec.Data["tls.key"], CACrt: sec.Data["ca.crt"]}, certs.Options{})
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func setWeight(ctx context.Context, gw gwclient.Interface, ns string, canary int32) error {
	r, err := gw.GatewayV1().HTTPRoutes(ns).Get(ctx, "canary", metav1.GetOptions{})
	if err != nil {
		return err
	}
	r.Spec.Rules[0].BackendRefs[0].Weight = ptr.To(100 - canary)
	r.Spec.Rules[0].BackendRefs[1].Weight = ptr.To(canary)
	_, err = gw.GatewayV1().HTTPRoutes(ns).Update(ctx, r, metav1.UpdateOptions{})
	return err
}

// populate creates the namespaces, Services, pods (with IPs) and
// EndpointSlices (no controller manager runs), and the canary HTTPRoute.
func populate(ctx context.Context, c config, cs kubernetes.Interface, gw gwclient.Interface) error {
	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: "weft-system"}},
		{ObjectMeta: metav1.ObjectMeta{Name: c.namespace, Annotations: map[string]string{"weftmesh.io/mesh": "enabled"}}},
	} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	if _, err := cs.CoreV1().ServiceAccounts(c.namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	for s := range c.services {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%d", s)},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": fmt.Sprintf("svc-%d", s)},
				Ports: []corev1.ServicePort{{Name: "http", Port: 8080, AppProtocol: ptr.To("http")}}}}
		if _, err := cs.CoreV1().Services(c.namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	type ep struct{ ip, node, pod string }
	bySvc := make([][]ep, c.services)
	sem := make(chan struct{}, 64)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for p := range c.pods {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			s, node := p%c.services, nodeName(p%c.nodes)
			ip := fmt.Sprintf("10.%d.%d.%d", 64+p/65536, (p/256)%256, p%256)
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pod-%d", p), Labels: map[string]string{"app": fmt.Sprintf("svc-%d", s)}},
				Spec: corev1.PodSpec{NodeName: node, ServiceAccountName: "app", Containers: []corev1.Container{{Name: "app", Image: "weft-echo:dev"}}}}
			created, err := cs.CoreV1().Pods(c.namespace).Create(ctx, pod, metav1.CreateOptions{})
			if err == nil {
				created.Status.PodIP, created.Status.PodIPs = ip, []corev1.PodIP{{IP: ip}}
				_, err = cs.CoreV1().Pods(c.namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{})
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			bySvc[s] = append(bySvc[s], ep{ip, node, pod.Name})
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	for s, eps := range bySvc {
		slice := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: fmt.Sprintf("svc-%d-1", s), Labels: map[string]string{discoveryv1.LabelServiceName: fmt.Sprintf("svc-%d", s)}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), AppProtocol: ptr.To("http")}},
		}
		for _, e := range eps {
			slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{Addresses: []string{e.ip},
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true)}, NodeName: ptr.To(e.node),
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: c.namespace, Name: e.pod}})
		}
		if _, err := cs.DiscoveryV1().EndpointSlices(c.namespace).Create(ctx, slice, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	svcKind := gwapiv1.Kind("Service")
	core := gwapiv1.Group("")
	route := &gwapiv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "canary"},
		Spec: gwapiv1.HTTPRouteSpec{
			CommonRouteSpec: gwapiv1.CommonRouteSpec{ParentRefs: []gwapiv1.ParentReference{{Group: &core, Kind: &svcKind, Name: "svc-0", Port: ptr.To[gwapiv1.PortNumber](8080)}}},
			Rules: []gwapiv1.HTTPRouteRule{{BackendRefs: []gwapiv1.HTTPBackendRef{
				{BackendRef: gwapiv1.BackendRef{BackendObjectReference: gwapiv1.BackendObjectReference{Name: "svc-0", Port: ptr.To[gwapiv1.PortNumber](8080)}, Weight: ptr.To[int32](100)}},
				{BackendRef: gwapiv1.BackendRef{BackendObjectReference: gwapiv1.BackendObjectReference{Name: "svc-1", Port: ptr.To[gwapiv1.PortNumber](8080)}, Weight: ptr.To[int32](0)}},
			}}}}}
	_, err := gw.GatewayV1().HTTPRoutes(c.namespace).Create(ctx, route, metav1.CreateOptions{})
	return err
}
