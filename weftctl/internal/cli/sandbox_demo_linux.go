//go:build linux

package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/weftmesh/weft/tests/apps/echo"
	"github.com/weftmesh/weft/tests/sandbox"
)

// Timing of the demo's checks.
const (
	// demoWait bounds the wait for a configuration change to take effect
	// (the control plane re-reads its directory every 200ms).
	demoWait = 15 * time.Second
	// demoPollEvery is the pause between two looks.
	demoPollEvery = 100 * time.Millisecond
)

// demo is a walkthrough in progress on a running mesh.
type demo struct {
	w    io.Writer
	bold bool // headings in bold: w is a terminal
	step int  // the number of the last heading
	m    *sandbox.Mesh
	otlp string
}

// demoStep is one step of the walkthrough after the build.
type demoStep struct {
	title string
	run   func(context.Context) error
}

// runSandboxDemo builds the sandbox, runs the steps, prints them to w, and
// tears the sandbox down, after ctx ends if o.stay. A step whose outcome is
// not what the mesh should do ends the demo with an error saying so; the
// logs are then kept.
func runSandboxDemo(ctx context.Context, w io.Writer, o sandboxDemoOptions) (err error) {
	d := &demo{w: w, bold: demoIsTerminal(w), otlp: o.otlpEndpoint}
	d.heading("Build the sandbox: 2 nodes, 2 pods each, namespace demo enrolled (weftmesh.io/mesh: enabled)")
	up := sandboxUpOptions{name: o.name, nodes: 2, pods: 2, binDir: o.binDir, tracing: true, otlpEndpoint: o.otlpEndpoint}
	m, bin, closeTracing, err := upSandbox(ctx, io.Discard, up)
	if err != nil {
		return fmt.Errorf("build the sandbox: %w", err)
	}
	defer closeTracing()
	d.m = m
	interrupted := false
	defer func() {
		if err != nil && !interrupted {
			up.keepLogs = true
			m.KeepLogs()
		}
		d.banner("Done: tearing the sandbox down.")
		err = errors.Join(err, downSandbox(w, m, up))
	}()
	printMeshTables(w, m, true)

	for _, s := range []demoStep{
		{"A pod on node 0 calls the Service echo.demo; the node proxies carry it in an mTLS HBONE tunnel", d.mTLS},
		{"The node proxy's view: enrolled pods and their certificates (admin port 15000, node 0)", d.workloads},
		{"Plaintext from outside the mesh into an enrolled pod is refused (STRICT by default)", d.strict},
		{"An AuthorizationPolicy denies the demo namespace the TCP port 7070 of echo", d.authorization},
		{"Canary: an HTTPRoute splits echo.demo between echo-v1 (pod " + demoCanary1 + ") and echo-v2 (pod " + demoCanary2 + ")", d.canary},
		{"Retries: every pod of echo fails half of the requests; a TrafficPolicy retry hides the failures", d.retries},
		{"Fault injection: a TrafficPolicy aborts 25% of the calls with 503 and delays 10% by 200 ms", d.faults},
		{"One trace, every hop: echo-n0-p0 calls echo.demo, whose pod calls echo.demo again (passing the trace context on)", d.trace},
	} {
		d.heading(s.title)
		if err := s.run(ctx); err != nil {
			if ctx.Err() != nil {
				interrupted = true
				return fmt.Errorf("demo interrupted at step %d", d.step)
			}
			return fmt.Errorf("demo step %d failed: %w", d.step, err)
		}
	}
	if o.stay {
		d.banner("The sandbox stays up; Ctrl-C tears it down.")
		printMeshUsage(w, m, bin, true)
		<-ctx.Done()
	}
	return nil
}

// heading starts the next step.
func (d *demo) heading(title string) {
	d.step++
	d.banner(fmt.Sprintf("%d. %s", d.step, title))
}

func (d *demo) banner(s string) {
	if d.bold {
		s = "\033[1m" + s + "\033[0m"
	}
	fmt.Fprintf(d.w, "\n%s\n", s)
}

// cmdf prints what is being done, as a shell prompt would.
func (d *demo) cmdf(format string, args ...any) { fmt.Fprintf(d.w, "$ "+format+"\n", args...) }

// linef prints a result, indented.
func (d *demo) linef(format string, args ...any) { fmt.Fprintf(d.w, "  "+format+"\n", args...) }

// apply writes a file in the config dir and prints it.
func (d *demo) apply(file, yaml string) error {
	d.cmdf("cat %s/%s", d.m.ConfigDir(), file)
	for _, l := range strings.Split(strings.TrimRight(yaml, "\n"), "\n") {
		fmt.Fprintf(d.w, "    %s\n", l)
	}
	return d.m.Apply(file, yaml)
}

// poll calls try every demoPollEvery until it reports done, fails, or
// demoWait passes; try's state says what it saw, for the error.
func (d *demo) poll(ctx context.Context, what string, try func(context.Context) (done bool, state string, err error)) error {
	ctx, cancel := context.WithTimeout(ctx, demoWait)
	defer cancel()
	state := "nothing yet"
	for {
		done, s, err := try(ctx)
		switch {
		case done:
			return nil
		case err != nil && ctx.Err() == nil:
			return fmt.Errorf("waiting for %s: %w", what, err)
		case s != "":
			state = s
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waited %s for %s; last seen: %s", demoWait, what, state)
		case <-time.After(demoPollEvery):
		}
	}
}

// load sends n requests to echo.demo:8080/path from the client pod, c at a
// time, with header.
func (d *demo) load(ctx context.Context, n, c int, path string, header http.Header) (*echo.LoadResult, error) {
	return d.m.Load(ctx, demoClient, echo.LoadSpec{URL: "http://" + demoService + ":8080" + path,
		Requests: n, Concurrency: c, Header: header, Timeout: 5 * time.Second})
}

// nodeGet GETs url from inside node i's network namespace; any answer
// but 200 is an error.
func (d *demo) nodeGet(ctx context.Context, node int, url string, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return sandbox.AdminGet(ctx, d.m.Nodes()[node].Name, url)
}

// metric sums a metric over the node proxies of nodes (every node if none).
func (d *demo) metric(ctx context.Context, name string, labels []string, nodes ...int) (float64, error) {
	if len(nodes) == 0 {
		for i := range d.m.Nodes() {
			nodes = append(nodes, i)
		}
	}
	sum := 0.0
	for _, i := range nodes {
		body, err := d.nodeGet(ctx, i, "http://127.0.0.1:15020/metrics", 5*time.Second)
		if err != nil {
			return 0, fmt.Errorf("scrape metrics: %w", err)
		}
		v, err := demoMetricSum(body, name, labels...)
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

// Step 2.
func (d *demo) mTLS(ctx context.Context) error {
	url := "http://" + demoService + ":8080/hello"
	d.cmdf("(pod %s, 4 times) weft-echo get %s", demoClient, url)
	for range 4 {
		res, err := d.m.Get(ctx, demoClient, url)
		if err != nil {
			return err
		}
		if res.Status != http.StatusOK || res.Reply == nil {
			return fmt.Errorf("GET %s from %s: status %d %s; want 200 from weft-echo", url, demoClient, res.Status, strings.TrimSpace(res.Body))
		}
		r := res.Reply
		if r.Identity != demoSPIFFE {
			return fmt.Errorf("GET %s from %s: %s saw the caller's identity %q; want %s, proven by mTLS", url, demoClient, r.Pod, r.Identity, demoSPIFFE)
		}
		d.linef("answered by %-11s on %-8s caller identity (proven by mTLS): %s", r.Pod, r.Node, r.Identity)
	}
	return nil
}

// Step 3.
func (d *demo) workloads(ctx context.Context) error {
	n0 := d.m.Nodes()[0]
	url := "http://127.0.0.1:15000/workloads"
	d.cmdf("(node %s) GET %s", n0.Name, url)
	body, err := d.nodeGet(ctx, 0, url, 5*time.Second)
	if err != nil {
		return err
	}
	var wls []struct {
		Namespace, Name, Identity, InboundMode string
		Certificate                            *struct{ NotAfter, RenewAt time.Time }
		CertificateError                       string
	}
	if err := json.Unmarshal(body, &wls); err != nil {
		return fmt.Errorf("%s: %w", url, err)
	}
	tw := tabwriter.NewWriter(d.w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  POD\tIDENTITY\tINBOUND\tCERTIFICATE VALID UNTIL\tRENEWS AT")
	seen := map[string]bool{}
	for _, wl := range wls {
		notAfter, renew := "none: "+wl.CertificateError, ""
		if wl.Certificate != nil {
			notAfter, renew = wl.Certificate.NotAfter.UTC().Format(time.RFC3339), wl.Certificate.RenewAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "  %s/%s\t%s\t%s\t%s\t%s\n", wl.Namespace, wl.Name, wl.Identity, strings.TrimPrefix(wl.InboundMode, "INBOUND_MODE_"), notAfter, renew)
		if wl.Identity == demoSPIFFE && wl.InboundMode == "INBOUND_MODE_STRICT" && wl.Certificate != nil {
			seen[wl.Name] = true
		}
	}
	tw.Flush()
	for _, p := range d.m.Pods() {
		if p.NodeIndex == 0 && !seen[p.Name] {
			return fmt.Errorf("%s in %s: no workload %s with identity %s, inbound mode STRICT and a certificate", url, n0.Name, p.Name, demoSPIFFE)
		}
	}
	return nil
}

// Step 4.
func (d *demo) strict(ctx context.Context) error {
	n0 := d.m.Nodes()[0]
	pod, _ := d.m.Pod(demoCanary1)
	url := fmt.Sprintf("http://%s:%d/", pod.IP, sandbox.EchoHTTPPort)
	d.cmdf("(from node %s, no mTLS) GET %s  # pod %s", n0.Name, url, pod.Name)
	body, err := d.nodeGet(ctx, 0, url, 2*time.Second)
	if err == nil || body != nil {
		return fmt.Errorf("plaintext GET %s from node %s was answered: %.200q; want it refused (STRICT inbound)", url, n0.Name, body)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	d.linef("refused")
	return nil
}

// Step 5.
func (d *demo) authorization(ctx context.Context) error {
	if err := d.apply(demoDenyFile, demoDenyYAML); err != nil {
		return err
	}
	vip := fmt.Sprintf("%s:%d", d.m.ServiceIP(demoService), sandbox.EchoTCPPort)
	d.cmdf("(pod %s) TCP to %s:%d (%s), send \"hello\"", demoClient, demoService, sandbox.EchoTCPPort, vip)
	err := d.poll(ctx, "the AuthorizationPolicy to refuse TCP "+vip, func(ctx context.Context) (bool, string, error) {
		echoed, err := d.tcpEcho(ctx, vip)
		if echoed {
			return false, "echoed", nil
		}
		return true, "", err
	})
	if err != nil {
		return err
	}
	d.linef("refused by policy")

	url := "http://" + demoService + ":8080/"
	d.cmdf("(pod %s) GET %s", demoClient, url)
	res, err := d.m.Get(ctx, demoClient, url)
	if err != nil {
		return err
	}
	if res.Status != http.StatusOK {
		return fmt.Errorf("GET %s from %s: status %d; want 200: the policy denies port 7070 only", url, demoClient, res.Status)
	}
	d.linef("200, allowed")

	denials, err := d.metric(ctx, "weft_proxy_authorization_denials_total", []string{`reason="policy"`})
	if err != nil {
		return err
	}
	d.linef("denials counted by the node proxies (weft_proxy_authorization_denials_total{reason=\"policy\"}): %g", denials)
	if denials < 1 {
		return errors.New("no denial counted by weft_proxy_authorization_denials_total{reason=\"policy\"}; the refusal was not the policy's")
	}
	return d.m.Delete(demoDenyFile)
}

// tcpEcho reports whether a line sent from the client pod to addr comes
// back within 2s.
func (d *demo) tcpEcho(ctx context.Context, addr string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	c, err := d.m.Dial(ctx, demoClient, addr)
	if err != nil {
		return false, nil // refused
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "hello\n"); err != nil {
		return false, nil
	}
	line, _ := bufio.NewReader(c).ReadString('\n')
	return line == "hello\n", nil
}

// Step 6.
func (d *demo) canary(ctx context.Context) error {
	d.linef("Services echo-v1 (selecting pod %s) and echo-v2 (pod %s): %s/%s", demoCanary1, demoCanary2, d.m.ConfigDir(), demoCanaryServicesFile)
	if err := d.m.Apply(demoCanaryServicesFile, demoCanaryServicesYAML); err != nil {
		return err
	}
	for i, w := range [][2]int{{100, 0}, {50, 50}, {0, 100}} {
		route := demoRoute(w[0], w[1])
		if i == 0 {
			if err := d.apply(demoRouteFile, route); err != nil {
				return err
			}
		} else if err := d.m.Apply(demoRouteFile, route); err != nil {
			return err
		}
		// Wait until the new weights are in force on node 0.
		var applied func(*echo.LoadResult) bool
		switch w {
		case [2]int{100, 0}:
			applied = func(r *echo.LoadResult) bool { return demoAllFrom(r, demoCanary1) == nil }
		case [2]int{0, 100}:
			applied = func(r *echo.LoadResult) bool { return demoAllFrom(r, demoCanary2) == nil }
		default:
			applied = func(r *echo.LoadResult) bool { return r.Pods[demoCanary2] > 0 }
		}
		err := d.poll(ctx, fmt.Sprintf("weights v1=%d v2=%d to take effect", w[0], w[1]), func(ctx context.Context) (bool, string, error) {
			res, err := d.load(ctx, 20, 4, "/probe", nil)
			if err != nil {
				return false, "", err
			}
			return applied(res), res.Summary(), nil
		})
		if err != nil {
			return err
		}
		d.cmdf("weights v1=%d v2=%d; 400 requests from %s:", w[0], w[1], demoClient)
		res, err := d.load(ctx, 400, 8, "/canary", nil)
		if err != nil {
			return err
		}
		d.linef("%s", res.Summary())
		switch w {
		case [2]int{100, 0}:
			err = demoAllFrom(res, demoCanary1)
		case [2]int{0, 100}:
			err = demoAllFrom(res, demoCanary2)
		default:
			err = demoSplit(res, demoCanary1, demoCanary2, 35, 65)
		}
		if err != nil {
			return fmt.Errorf("weights v1=%d v2=%d: %w", w[0], w[1], err)
		}
	}
	return errors.Join(d.m.Delete(demoRouteFile), d.m.Delete(demoCanaryServicesFile))
}

// Step 7.
func (d *demo) retries(ctx context.Context) error {
	// Back to the four pods, without the route.
	var pods []string
	for _, p := range d.m.Pods() {
		pods = append(pods, p.Name)
	}
	err := d.poll(ctx, "echo.demo to be served by its 4 pods again", func(ctx context.Context) (bool, string, error) {
		res, err := d.load(ctx, 40, 4, "/probe", nil)
		if err != nil {
			return false, "", err
		}
		for _, p := range pods {
			if res.Pods[p] == 0 {
				return false, res.Summary(), nil
			}
		}
		return res.Status[200] == res.Requests, res.Summary(), nil
	})
	if err != nil {
		return err
	}

	fail := http.Header{"X-Echo-Fail-Percent": {"50"}}
	d.cmdf("400 requests, each pod answering 503 to half of them (header x-echo-fail-percent: 50), no retry policy:")
	res, err := d.load(ctx, 400, 8, "/flaky", fail)
	if err != nil {
		return err
	}
	d.linef("%s", res.Summary())
	d.linef("-> %d of %d succeeded, %d failed", res.Status[200], res.Requests, res.Status[503])
	if err := demoFailed(res, 503, 35, 65); err != nil {
		return fmt.Errorf("without retries: %w", err)
	}

	if err := d.apply(demoRetryFile, fmt.Sprintf(demoRetryYAMLFmt, demoRetries)); err != nil {
		return err
	}
	retried := func(ctx context.Context) (float64, error) {
		return d.metric(ctx, "weft_proxy_retries_total", []string{`result="retried"`}, 0)
	}
	base, err := retried(ctx)
	if err != nil {
		return err
	}
	err = d.poll(ctx, "the retry policy to take effect", func(ctx context.Context) (bool, string, error) {
		if _, err := d.load(ctx, 20, 4, "/probe", fail); err != nil {
			return false, "", err
		}
		n, err := retried(ctx)
		return n > base, fmt.Sprintf("weft_proxy_retries_total{result=\"retried\"} %g", n), err
	})
	if err != nil {
		return err
	}
	if base, err = retried(ctx); err != nil {
		return err
	}
	d.cmdf("the same 400 requests with the retry policy (a retry goes to another pod):")
	res, err = d.load(ctx, 400, 8, "/flaky", fail)
	if err != nil {
		return err
	}
	after, err := retried(ctx)
	if err != nil {
		return err
	}
	d.linef("%s", res.Summary())
	d.linef("-> %d of %d succeeded, %d failed (a request fails only if all %d tries do: 1 in %d)",
		res.Status[200], res.Requests, res.Status[503], demoRetries+1, 1<<(demoRetries+1))
	d.linef("retries counted by node 0 (weft_proxy_retries_total{result=\"retried\"}): %g", after-base)
	if err := demoFailed(res, 503, 0, 5); err != nil {
		return fmt.Errorf("with retries: %w", err)
	}
	if after <= base {
		return errors.New("with retries: weft_proxy_retries_total{result=\"retried\"} did not grow on node 0")
	}
	return d.m.Delete(demoRetryFile)
}

// Step 8.
func (d *demo) faults(ctx context.Context) error {
	if err := d.apply(demoFaultFile, demoFaultYAML); err != nil {
		return err
	}
	err := d.poll(ctx, "the faults to be injected", func(ctx context.Context) (bool, string, error) {
		res, err := d.load(ctx, 20, 4, "/probe", nil)
		if err != nil {
			return false, "", err
		}
		return res.Status[503] > 0, res.Summary(), nil
	})
	if err != nil {
		return err
	}
	faults := func(ctx context.Context, kind string) (float64, error) {
		return d.metric(ctx, "weft_proxy_faults_injected_total", []string{`kind="` + kind + `"`}, 0)
	}
	aborts0, err := faults(ctx, "abort")
	if err != nil {
		return err
	}
	delays0, err := faults(ctx, "delay")
	if err != nil {
		return err
	}
	d.cmdf("400 requests:")
	res, err := d.load(ctx, 400, 8, "/chaos", nil)
	if err != nil {
		return err
	}
	aborts, err := faults(ctx, "abort")
	if err != nil {
		return err
	}
	delays, err := faults(ctx, "delay")
	if err != nil {
		return err
	}
	slow := demoSlowShare(res.LatenciesMs, 200)
	d.linef("%s", res.Summary())
	d.linef("-> %.1f%% aborted with 503, %.1f%% took 200 ms or more; injected by node 0 (weft_proxy_faults_injected_total): abort %g, delay %g",
		demoShare(res.Status[503], res.Requests), slow, aborts-aborts0, delays-delays0)
	if err := demoFailed(res, 503, 12, 40); err != nil {
		return err
	}
	if slow < 3 || slow > 20 {
		return fmt.Errorf("%.1f%% of the requests took 200 ms or more; want about 10%%", slow)
	}
	if err := d.m.Delete(demoFaultFile); err != nil {
		return err
	}
	// The next step wants no faults: 40 answers in a row without one
	// say that they are gone (1 in 100,000 if they were not).
	return d.poll(ctx, "the faults to be gone", func(ctx context.Context) (bool, string, error) {
		res, err := d.load(ctx, 40, 4, "/probe", nil)
		if err != nil {
			return false, "", err
		}
		return res.Status[200] == res.Requests, res.Summary(), nil
	})
}

// Step 9.
func (d *demo) trace(ctx context.Context) error {
	url := "http://" + demoService + ":8080/first-hop"
	second := "http://" + demoService + ":8080/second-hop"
	d.cmdf("(pod %s) weft-echo get -H 'x-echo-call: %s' %s", demoClient, second, url)
	res, err := d.m.Do(ctx, demoClient, echo.Request{URL: url, Header: http.Header{"X-Echo-Call": {second}}})
	if err != nil {
		return err
	}
	if res.Status != http.StatusOK || res.Reply == nil || res.Reply.Called == nil || res.Reply.Called.Status != http.StatusOK {
		return fmt.Errorf("GET %s calling %s: status %d, reply %+v; want 200 for both", url, second, res.Status, res.Reply)
	}
	tp := ""
	if tps := res.Reply.Headers["Traceparent"]; len(tps) > 0 {
		tp = tps[0]
	}
	id, ok := demoTraceID(tp)
	if !ok {
		return fmt.Errorf("%s saw traceparent %q; want the trace context the node proxy added", res.Reply.Pod, tp)
	}
	d.cmdf("weftctl sandbox trace --name %s %s", d.m.Name(), id)
	var out bytes.Buffer
	err = d.poll(ctx, "the trace's last span", func(context.Context) (bool, string, error) {
		out.Reset()
		if err := printTrace(&out, spansFile(d.m.Name()), id, strings.Split(defaultTraceAttrs, ",")); err != nil {
			return false, err.Error(), nil
		}
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.Contains(l, "SERVER") && strings.Contains(l, "url.path=/second-hop") {
				return true, "", nil
			}
		}
		return false, out.String(), nil
	})
	if err != nil {
		return err
	}
	for _, l := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		d.linef("%s", l)
	}
	if d.otlp != "" {
		d.linef("(every span was also sent to %s)", d.otlp)
	}
	return nil
}
