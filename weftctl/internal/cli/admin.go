package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"

	"github.com/weftmesh/weft/tests/sandbox"
)

// Admin ports (DESIGN.md): the control plane's admin server, and the node
// proxy's, which listens on the node's loopback only.
const (
	controlPlaneAdminPort = 15014
	nodeProxyAdminPort    = 15000
	adminTimeout          = 10 * time.Second
)

// component is one Weft process whose admin HTTP API weftctl reads.
type component struct {
	name  string // pod name (Kubernetes) or node name (sandbox)
	node  string // the node it runs on
	ready string // what the platform says of it ("" when it says nothing)
	get   func(ctx context.Context, path string) ([]byte, error)
}

// getJSON GETs path from c's admin API and decodes the JSON body into v.
func (c *component) getJSON(ctx context.Context, path string, v any) error {
	b, err := c.get(ctx, path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s %s: %w", c.name, path, err)
	}
	return nil
}

// admins finds the control plane replicas and node proxies, and reaches
// their admin APIs: through the Kubernetes API (a port-forward to each
// pod, as kubectl port-forward does) or inside a sandbox's network
// namespaces.
type admins interface {
	controlPlanes(ctx context.Context) ([]*component, error)
	nodeProxies(ctx context.Context) ([]*component, error)
	// where says what was looked at, for messages.
	where() string
	close()
}

// adminFlags selects the mesh: a Kubernetes cluster (kubeconfig flags,
// -n for Weft's namespace) or a running sandbox (--sandbox NAME).
type adminFlags struct {
	kube       kubeFlags
	weftNS     string
	sandboxArg string
}

func (f *adminFlags) register(cmd *cobra.Command) {
	f.kube.register(cmd, false)
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.weftNS, "weft-namespace", defaultWeftNamespace, "namespace Weft is installed in")
	pf.StringVar(&f.sandboxArg, "sandbox", "", "read a running sandbox of this name (weftctl sandbox up --name NAME) instead of a Kubernetes cluster")
}

func (f *adminFlags) open() (admins, *kubeClient, kubernetes.Interface, error) {
	if f.sandboxArg != "" {
		nodes, err := sandbox.RunningNodes(f.sandboxArg)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("sandbox %s: %w", f.sandboxArg, err)
		}
		if len(nodes) == 0 {
			return nil, nil, nil, fmt.Errorf("no sandbox %q is running (start one with: weftctl sandbox up --name %s)", f.sandboxArg, f.sandboxArg)
		}
		return &sandboxAdmins{name: f.sandboxArg, nodes: nodes}, nil, nil, nil
	}
	k, err := f.kube.load()
	if err != nil {
		return nil, nil, nil, err
	}
	cs, err := kubernetes.NewForConfig(k.config)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("client for %s: %w", k.source, err)
	}
	return &kubeAdmins{k: k, cs: cs, ns: f.weftNS}, k, cs, nil
}

// sandboxAdmins reaches a sandbox: node 0 runs the control plane, every
// node a node proxy, each on its node's loopback.
type sandboxAdmins struct {
	name  string
	nodes []string
}

func (s *sandboxAdmins) where() string { return "sandbox " + s.name }
func (s *sandboxAdmins) close()        {}

func (s *sandboxAdmins) component(node, addr string) *component {
	return &component{name: node, node: node, get: func(ctx context.Context, path string) ([]byte, error) {
		ctx, cancel := context.WithTimeout(ctx, adminTimeout)
		defer cancel()
		return sandbox.AdminGet(ctx, node, "http://"+addr+path)
	}}
}

func (s *sandboxAdmins) controlPlanes(context.Context) ([]*component, error) {
	c := s.component(s.nodes[0], sandbox.ControlPlaneAdmin)
	c.name = "control-plane (" + s.nodes[0] + ")"
	return []*component{c}, nil
}

func (s *sandboxAdmins) nodeProxies(context.Context) ([]*component, error) {
	var out []*component
	for _, n := range s.nodes {
		out = append(out, s.component(n, "127.0.0.1:"+strconv.Itoa(nodeProxyAdminPort)))
	}
	return out, nil
}

// kubeAdmins reaches Weft's pods in namespace ns through port-forwards,
// opened on first use and closed by close.
type kubeAdmins struct {
	k  *kubeClient
	cs kubernetes.Interface
	ns string

	mu       sync.Mutex
	forwards []*forward
}

func (a *kubeAdmins) where() string { return fmt.Sprintf("namespace %s (%s)", a.ns, a.k.source) }

func (a *kubeAdmins) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, f := range a.forwards {
		f.close()
	}
	a.forwards = nil
}

func (a *kubeAdmins) pods(ctx context.Context, component string) ([]corev1.Pod, error) {
	list, err := a.cs.CoreV1().Pods(a.ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=" + component})
	if err != nil {
		return nil, a.k.wrap(err)
	}
	pods := list.Items
	slices.SortFunc(pods, func(x, y corev1.Pod) int {
		return strings.Compare(x.Spec.NodeName+"/"+x.Name, y.Spec.NodeName+"/"+y.Name)
	})
	return pods, nil
}

func (a *kubeAdmins) components(ctx context.Context, kind string, port int) ([]*component, error) {
	pods, err := a.pods(ctx, kind)
	if err != nil {
		return nil, err
	}
	var out []*component
	for _, p := range pods {
		c := &component{name: p.Name, node: p.Spec.NodeName, ready: podReadiness(&p)}
		if p.Status.Phase != corev1.PodRunning {
			name, phase := p.Name, p.Status.Phase
			c.get = func(context.Context, string) ([]byte, error) {
				return nil, fmt.Errorf("pod %s is %s", name, phase)
			}
		} else {
			c.get = a.getter(p.Name, port)
		}
		out = append(out, c)
	}
	return out, nil
}

func (a *kubeAdmins) controlPlanes(ctx context.Context) ([]*component, error) {
	return a.components(ctx, "control-plane", controlPlaneAdminPort)
}

func (a *kubeAdmins) nodeProxies(ctx context.Context) ([]*component, error) {
	return a.components(ctx, "node-proxy", nodeProxyAdminPort)
}

// getter GETs paths from pod's port through one port-forward, opened on
// the first call.
func (a *kubeAdmins) getter(pod string, port int) func(context.Context, string) ([]byte, error) {
	var once sync.Once
	var fw *forward
	var openErr error
	return func(ctx context.Context, path string) ([]byte, error) {
		once.Do(func() {
			fw, openErr = a.forward(ctx, pod, port)
			if openErr == nil {
				a.mu.Lock()
				a.forwards = append(a.forwards, fw)
				a.mu.Unlock()
			}
		})
		if openErr != nil {
			return nil, openErr
		}
		ctx, cancel := context.WithTimeout(ctx, adminTimeout)
		defer cancel()
		return httpGetBody(ctx, fw.client, "http://"+fw.addr+path)
	}
}

// forward is an open port-forward to a pod: a local listener whose
// connections reach the pod's port.
type forward struct {
	addr   string
	stop   chan struct{}
	client *http.Client
}

func (f *forward) close() {
	close(f.stop)
	f.client.CloseIdleConnections()
}

func (a *kubeAdmins) forward(ctx context.Context, pod string, port int) (*forward, error) {
	cfg := *a.k.config
	cfg.Timeout = 0 // the forwarded stream outlives a single request
	transport, upgrader, err := spdy.RoundTripperFor(&cfg)
	if err != nil {
		return nil, fmt.Errorf("port-forward to %s: %w", pod, err)
	}
	url := a.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(a.ns).Name(pod).SubResource("portforward").URL()
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, url)
	stop, ready := make(chan struct{}), make(chan struct{})
	var errOut strings.Builder
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:" + strconv.Itoa(port)}, stop, ready, io.Discard, &lockedWriter{w: &errOut})
	if err != nil {
		return nil, fmt.Errorf("port-forward to %s: %w", pod, err)
	}
	done := make(chan error, 1)
	go func() { done <- fw.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-done:
		if err == nil {
			err = errors.New("ended at once")
		}
		return nil, fmt.Errorf("port-forward to pod %s/%s port %d: %w", a.ns, pod, port, a.k.wrap(err))
	case <-ctx.Done():
		close(stop)
		return nil, ctx.Err()
	case <-time.After(adminTimeout):
		close(stop)
		return nil, fmt.Errorf("port-forward to pod %s/%s port %d: not ready after %s", a.ns, pod, port, adminTimeout)
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) != 1 {
		close(stop)
		return nil, fmt.Errorf("port-forward to %s: local port: %v", pod, err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(ports[0].Local)))
	return &forward{addr: addr, stop: stop, client: &http.Client{Transport: &http.Transport{}}}, nil
}

// lockedWriter serialises writes from port-forward's goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// httpGetBody GETs url with client; a status other than 200 is an error
// holding the body.
func httpGetBody(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: %s: %s", req.URL.Path, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// podReadiness is a pod's phase and Ready condition, as kubectl shows it.
func podReadiness(p *corev1.Pod) string {
	if p.Status.Phase != corev1.PodRunning {
		return string(p.Status.Phase)
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			if c.Status == corev1.ConditionTrue {
				return "Ready"
			}
			return "NotReady"
		}
	}
	return "Running"
}
