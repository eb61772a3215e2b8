//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/weftmesh/weft/node-proxy/netns"
	"github.com/weftmesh/weft/tests/apps/echo"
	"github.com/weftmesh/weft/tests/otlpsink"
	"github.com/weftmesh/weft/tests/sandbox"
)

// The sandbox's Kubernetes names.
const (
	nsMesh  = "mesh"  // enrolled
	nsPlain = "plain" // not enrolled

	svcL4   = "web"      // port tcp-web 8080: spliced by the server's node proxy
	svcHTTP = "web-http" // port http 8081, appProtocol http: reverse proxied

	httpRowPort = 8081 // the second weft-echo in mesh-n1, behind svcHTTP

	// nginx's ports (-backend nginx): spliced, and declared HTTP.
	nginxPort     = 8090
	nginxHTTPPort = 8091

	backendEcho  = "echo"
	backendNginx = "nginx"

	adminAddr = "127.0.0.1:15000" // node proxy admin (pprof), in the node's namespace
)

// path is one way from a client pod to a server.
type path struct {
	Name    string
	Client  string // pod the load tools run in
	Server  string // pod that answers
	URL     string // the load's target: http://ip:port/
	BulkURL string // a response of BulkSize bytes
	Meshed  bool
	// procs are the processes whose CPU the path's runs measure: the node
	// proxies, or the relays.
	procs []proxyProc
	// What the server must see for the path to be what its name says:
	// the connection's source address, and whether the server's node
	// proxy added X-Weft-Peer-Identity. echoURL is the same way to
	// weft-echo, which reports both (so does nginx's configuration here).
	echoURL      string
	wantPeer     netip.Addr
	wantIdentity bool
}

// proxyProc is a node proxy the harness watches.
type proxyProc struct {
	Node string
	PID  int
	Role string // "client" or "server"
}

// bench is a running sandbox and what to measure on it.
type bench struct {
	c       config
	t       tools
	m       *sandbox.Mesh
	paths   []path
	proxies []proxyProc    // node 0 (client side), node 1 (server side)
	sink    *otlpsink.Sink // -tracing: the OTLP receiver
}

// setUp starts the sandbox mesh, a second weft-echo for the HTTP row,
// nginx (-backend nginx), restarts the node proxies at the wanted log
// level, starts the reference relays, and checks that every path goes
// where it should. On error it tears down what it started.
func setUp(ctx context.Context, c config, t tools) (b *bench, err error) {
	nginx := c.Backend == backendNginx
	l4Ports := []sandbox.ServicePort{{Name: "tcp-web", Port: sandbox.EchoHTTPPort}}
	httpPorts := []sandbox.ServicePort{{Name: "http", Port: httpRowPort, AppProtocol: "http"}}
	if nginx {
		l4Ports = append(l4Ports, sandbox.ServicePort{Name: "tcp-nginx", Port: nginxPort})
		httpPorts = append(httpPorts, sandbox.ServicePort{Name: "http-nginx", Port: nginxHTTPPort, AppProtocol: "http"})
	}
	services := []sandbox.ServiceSpec{{
		Name: svcL4, Namespace: nsMesh, Selector: map[string]string{"pod": "mesh-n1"}, Ports: l4Ports,
	}}
	if c.HTTPRow {
		services = append(services, sandbox.ServiceSpec{
			Name: svcHTTP, Namespace: nsMesh, Selector: map[string]string{"pod": "mesh-n1"}, Ports: httpPorts,
		})
	}
	logDir := filepath.Join(c.Out, "logs")
	logf("starting the sandbox %s (2 nodes; pods mesh-n0, mesh-n1 enrolled, plain-n0, plain-n1 not); logs in %s", c.Name, logDir)
	m, err := sandbox.MeshConfig{
		Topology:   sandbox.Topology{Name: c.Name, Nodes: 2, PodsPerNode: 2},
		BinDir:     c.BinDir,
		Namespaces: []sandbox.NamespaceSpec{{Name: nsMesh, Enrolled: true}, {Name: nsPlain}},
		Pods: func(node, j int) sandbox.PodSpec {
			ns := []string{nsMesh, nsPlain}[j]
			name := fmt.Sprintf("%s-n%d", ns, node)
			return sandbox.PodSpec{Namespace: ns, Name: name, Labels: map[string]string{"app": "bench", "pod": name}}
		},
		Services: services,
		LogDir:   logDir,
		Log:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}.Up(ctx)
	if err != nil {
		return nil, err
	}
	b = &bench{c: c, t: t, m: m}
	defer func() {
		if err != nil {
			err = errors.Join(err, b.down())
		}
	}()

	pod := func(name string) sandbox.MeshPod { p, _ := m.Pod(name); return p }
	url := func(ip netip.Addr, port int) string {
		return fmt.Sprintf("http://%s/", netip.AddrPortFrom(ip, uint16(port)))
	}
	direct, l4, l7 := pod("plain-n1").IP, m.ServiceIP(svcL4+"."+nsMesh), m.ServiceIP(svcHTTP+"."+nsMesh)
	b.paths = []path{
		{Name: "direct", Client: "plain-n0", Server: "plain-n1", echoURL: url(direct, sandbox.EchoHTTPPort), wantPeer: pod("plain-n0").IP},
		{Name: "meshed L4", Client: "mesh-n0", Server: "mesh-n1", Meshed: true, echoURL: url(l4, sandbox.EchoHTTPPort), wantPeer: pod("mesh-n1").IP},
	}
	if c.HTTPRow {
		if err := b.startHTTPRowEcho(ctx); err != nil {
			return b, err
		}
		b.paths = append(b.paths, path{Name: "meshed L7", Client: "mesh-n0", Server: "mesh-n1", Meshed: true,
			echoURL: url(l7, httpRowPort), wantPeer: pod("mesh-n1").IP, wantIdentity: true})
	}
	for i := range b.paths {
		p := &b.paths[i]
		p.URL, p.BulkURL = p.echoURL, p.echoURL+"?size="+strconv.Itoa(c.BulkSize)
	}
	if nginx {
		if err := b.startNginx(ctx); err != nil {
			return b, err
		}
		ports := map[string]netip.AddrPort{"direct": netip.AddrPortFrom(direct, nginxPort),
			"meshed L4": netip.AddrPortFrom(l4, nginxPort), "meshed L7": netip.AddrPortFrom(l7, nginxHTTPPort)}
		for i := range b.paths {
			p := &b.paths[i]
			p.URL = "http://" + ports[p.Name].String() + "/"
			p.BulkURL = p.URL + "bulk"
		}
	}
	if c.ProxyLogLevel != "" {
		if err := b.restartProxies(ctx, c.ProxyLogLevel); err != nil {
			return b, err
		}
	} else {
		for i, n := range m.Nodes() {
			b.proxies = append(b.proxies, proxyProc{Node: n.Name, PID: m.NodeProxy(i).PID, Role: []string{"client", "server"}[i]})
		}
	}
	for i := range b.paths {
		b.paths[i].procs = b.proxies
	}
	if c.RelayRow {
		target, err := netip.ParseAddrPort(strings.TrimSuffix(strings.TrimPrefix(b.paths[0].URL, "http://"), "/"))
		if err != nil {
			return b, err
		}
		relays, err := b.startRelays(ctx, target, filepath.Join(c.Out, "relay"))
		if err != nil {
			return b, err
		}
		p := path{Name: relayName, Client: "plain-n0", Server: "plain-n1", procs: relays,
			URL: fmt.Sprintf("http://%s/", netip.AddrPortFrom(m.Nodes()[0].IP, relayInPort)), wantPeer: m.Nodes()[1].Gateway}
		p.echoURL = p.URL
		if nginx {
			p.BulkURL = p.URL + "bulk"
		} else {
			p.BulkURL = p.URL + "?size=" + strconv.Itoa(c.BulkSize)
		}
		b.paths = append(b.paths, p)
	}
	for _, p := range b.paths {
		if err := b.check(ctx, p); err != nil {
			return b, err
		}
	}
	return b, nil
}

func (b *bench) down() error {
	if b.sink != nil {
		logf("the OTLP receiver got %d spans", b.sink.Stats().Spans)
		b.sink.Close()
	}
	return b.m.Down()
}

// startSink starts the -tracing OTLP receiver on node 0's address.
func (b *bench) startSink() (string, error) {
	n0 := b.m.Nodes()[0]
	ns, err := netns.Open(n0.NetNSPath)
	if err != nil {
		return "", err
	}
	defer ns.Close()
	addr := netip.AddrPortFrom(n0.IP, 4317).String()
	ln, err := netns.Listen(ns, "tcp", addr)
	if err != nil {
		return "", err
	}
	if b.sink, err = otlpsink.Serve(ln, nil); err != nil {
		return "", err
	}
	b.sink.SetDiscard(true)
	return addr, nil
}

// startHTTPRowEcho runs a second weft-echo in mesh-n1 on httpRowPort, the
// pod port svcHTTP declares as HTTP.
func (b *bench) startHTTPRowEcho(ctx context.Context) error {
	p, _ := b.m.Pod("mesh-n1")
	argv := []string{filepath.Join(b.c.BinDir, "weft-echo"), "--pod", p.Name, "--namespace", p.Namespace, "--node", p.Node,
		"--http", fmt.Sprintf(":%d", httpRowPort), "--grpc", "", "--tcp", ""}
	if _, err := b.startLogged(p.NetNSPath, "echo-"+p.Name+"-http.log", argv); err != nil {
		return err
	}
	return poll(ctx, 10*time.Second, "weft-echo on :8081 in mesh-n1", func(ctx context.Context) error {
		c, err := sandbox.Dial(ctx, p.NetNSPath, "tcp4", fmt.Sprintf("127.0.0.1:%d", httpRowPort))
		if err == nil {
			c.Close()
		}
		return err
	})
}

// restartProxies replaces each node proxy by one with the same arguments
// but --log-level level, and waits until it is ready again (it re-adopts
// its pods from its state directory).
func (b *bench) restartProxies(ctx context.Context, level string) error {
	var tracing []string
	if b.c.Tracing {
		addr, err := b.startSink()
		if err != nil {
			return fmt.Errorf("OTLP receiver: %w", err)
		}
		tracing = []string{"--tracing-endpoint", addr, "--tracing-insecure", "--tracing-sampling-ratio", strconv.FormatFloat(b.c.TracingRatio, 'g', -1, 64)}
	}
	for i, n := range b.m.Nodes() {
		old := b.m.NodeProxy(i)
		if old == nil {
			return fmt.Errorf("node proxy on %s is not running", n.Name)
		}
		argv := slices.Clone(old.Cmd.Args)
		k := slices.Index(argv, "--log-level")
		if k < 0 || k+1 >= len(argv) {
			argv = append(argv, "--log-level", level)
		} else {
			argv[k+1] = level
		}
		argv = append(argv, tracing...)
		if err := b.m.StopNodeProxy(i); err != nil {
			return fmt.Errorf("stop node proxy on %s: %w", n.Name, err)
		}
		p, err := b.startLogged(n.NetNSPath, "node-proxy-"+n.Name+"-bench.log", argv)
		if err != nil {
			return err
		}
		ready := fmt.Sprintf("http://%s/healthz/ready", netip.AddrPortFrom(n.IP, sandbox.NodeProxyReadinessPort))
		err = poll(ctx, 30*time.Second, "node proxy on "+n.Name, func(ctx context.Context) error {
			select {
			case <-p.Done():
				return fmt.Errorf("exited: %v (see %s)", p.Wait(), filepath.Join(b.m.LogDir(), "node-proxy-"+n.Name+"-bench.log"))
			default:
			}
			_, err := httpGet(ctx, n.NetNSPath, ready)
			return err
		})
		if err != nil {
			return err
		}
		b.proxies = append(b.proxies, proxyProc{Node: n.Name, PID: p.PID, Role: []string{"client", "server"}[i]})
	}
	logf("node proxies restarted with --log-level %s %s (pids %d, %d)", level, strings.Join(tracing, " "), b.proxies[0].PID, b.proxies[1].PID)
	return nil
}

// startLogged starts argv in a namespace with its output appended to a
// file of the log dir; the sandbox stops it on Down.
func (b *bench) startLogged(nsPath, logName string, argv []string) (*sandbox.Process, error) {
	f, err := os.OpenFile(filepath.Join(b.m.LogDir(), logName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fmt.Fprintf(f, "=== %s %s\n", time.Now().UTC().Format(time.RFC3339Nano), strings.Join(argv, " "))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	p := &sandbox.Process{}
	if err := b.m.Sandbox().StartCmd(nsPath, cmd, p); err != nil {
		return nil, err
	}
	return p, nil
}

// check sends one request on p (to weft-echo, and to nginx when that is
// the backend) and verifies that it took the way the path's name says:
// the right server, the source address the server sees (a meshed server
// sees its own address: its node proxy connects from inside the pod), and
// the identity header only where the server's node proxy handles HTTP.
func (b *bench) check(ctx context.Context, p path) error {
	get := func(url string) (*echo.Result, error) {
		var res *echo.Result
		err := poll(ctx, 30*time.Second, "path "+p.Name+" ("+url+")", func(ctx context.Context) error {
			var err error
			res, err = b.m.Do(ctx, p.Client, echo.Request{URL: url, Timeout: 3 * time.Second})
			if err == nil && res.Status != http.StatusOK {
				err = fmt.Errorf("status %d: %s", res.Status, res.Body)
			}
			return err
		})
		return res, err
	}
	verify := func(url, server, peerAddr, identity string) error {
		peer, err := netip.ParseAddrPort(peerAddr)
		if err != nil {
			peer = netip.AddrPortFrom(netip.MustParseAddr(peerAddr), 0) // nginx's $remote_addr has no port
		}
		switch {
		case server != p.Server:
			return fmt.Errorf("path %s (%s): answered by %s, want %s", p.Name, url, server, p.Server)
		case peer.Addr() != p.wantPeer:
			return fmt.Errorf("path %s (%s): the server saw the connection from %s, want %s (is the traffic really %s?)", p.Name, url, peerAddr, p.wantPeer, map[bool]string{true: "through the node proxies", false: "direct"}[p.Meshed])
		case p.wantIdentity && identity == "":
			return fmt.Errorf("path %s (%s): no X-Weft-Peer-Identity: the server's node proxy did not treat the port as HTTP", p.Name, url)
		case !p.wantIdentity && identity != "":
			return fmt.Errorf("path %s (%s): X-Weft-Peer-Identity %s: the server's node proxy treated the port as HTTP, want it spliced", p.Name, url, identity)
		}
		logf("path %-11s %s -> %s: ok (server saw %s%s)", p.Name, p.Client, url, peerAddr, map[bool]string{true: ", identity " + identity}[identity != ""])
		return nil
	}
	res, err := get(p.echoURL)
	if err != nil {
		return err
	}
	if r := res.Reply; r != nil {
		if err := verify(p.echoURL, r.Pod, r.Peer, r.Identity); err != nil {
			return err
		}
		if p.URL == p.echoURL {
			return nil
		}
		if res, err = get(p.URL); err != nil {
			return err
		}
	}
	// nginxBody: "pod=NAME peer=ADDR identity=ID".
	f := map[string]string{}
	for _, kv := range strings.Fields(res.Body) {
		k, v, _ := strings.Cut(kv, "=")
		f[k] = v
	}
	return verify(p.URL, f["pod"], f["peer"], f["identity"])
}

// poll calls f every 100ms until it succeeds or timeout passes.
func poll(ctx context.Context, timeout time.Duration, what string, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
		err := f(cctx)
		ccancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not ready after %s: %w", what, timeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// nsClient is an HTTP client whose connections are made inside the
// namespace at nsPath.
func nsClient(nsPath string, conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return sandbox.Dial(ctx, nsPath, "tcp4", addr)
		},
		MaxIdleConnsPerHost: conns,
		DisableCompression:  true,
	}}
}

// httpGet GETs url from inside the namespace at nsPath; a status other
// than 200 is an error.
func httpGet(ctx context.Context, nsPath, url string) ([]byte, error) {
	cl := nsClient(nsPath, 1)
	defer cl.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := cl.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return body, nil
}
