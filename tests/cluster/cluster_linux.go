//go:build linux

package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/weftmesh/weft/tests/cluster/images"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// ErrNotRoot is returned by Start when not running as root.
var ErrNotRoot = errors.New("cluster: a real cluster needs root (containerd, kubelet, iptables, mounts)")

// Options configures Start.
type Options struct {
	// BinDir holds the binaries build-binaries.sh makes. If empty,
	// $WEFT_CLUSTER_BIN is used; if that is unset too, build-binaries.sh is
	// run (it returns at once when the cache is there, else builds, 15-20
	// minutes).
	BinDir string
	// StateDir holds everything the cluster writes; empty means
	// DefaultStateDir. Start removes whatever is there first (a crashed
	// earlier run) and Stop removes it. Keep it the same from run to run:
	// a crashed run is found by its state directory.
	StateDir string
	// Images are image tarballs to import into containerd. Nil means build
	// images.Weft() from this module's sources (one go build, then packing)
	// tagged ImageTag.
	Images []string
	// ImageTag is the tag of the images Start builds, and the pause image's
	// tag; empty means the chart's appVersion (charts/weft/Chart.yaml).
	ImageTag string
	// Logf receives progress messages (t.Logf, say); nil discards them.
	Logf func(format string, args ...any)
}

// Cluster is a running single-node cluster. Release it with Stop.
type Cluster struct {
	// Dir is the state directory.
	Dir string
	// BinDir holds the Kubernetes, etcd, CoreDNS and CNI binaries.
	BinDir string
	// Kubeconfig is the path of an admin kubeconfig (system:masters).
	Kubeconfig string
	// Config is the admin REST config; use rest.CopyConfig before changing it.
	Config *rest.Config
	// Clientset is an admin clientset.
	Clientset kubernetes.Interface
	// ImageTag is the tag of the images Start built (and of the pause image).
	ImageTag string
	// ContainerdSocket is containerd's address, for ctr --address.
	ContainerdSocket string
	// CNIBinDir and CNIConfDir are the CNI plugin and configuration
	// directories containerd uses (the chart's cni.binDir and cni.confDir).
	CNIBinDir, CNIConfDir string
	// NetnsDir is where containerd mounts the pods' network namespaces (the
	// chart's nodeProxy.netnsDir).
	NetnsDir string
	// HostDir is an empty directory for the hostPath volumes a test
	// installs (the chart's nodeProxy.enrollSocketDir and stateDir, say), so
	// that Stop removes them. It is on a shared mount, as mountPropagation
	// needs.
	HostDir string

	l        layout
	logf     func(string, ...any)
	lock     *os.File
	st       *hostState
	procs    map[string]*process
	stopOnce sync.Once
	stopErr  error
}

const (
	stopGrace = 10 * time.Second
)

// Start builds and starts a cluster and waits until its node is Ready, the
// default ServiceAccount exists and CoreDNS answers. ctx bounds the start
// (including a first build of the binaries), not the cluster's lifetime.
// On failure everything started is torn down again.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	binDir, err := resolveBinDir(ctx, opts.BinDir, logf)
	if err != nil {
		return nil, err
	}
	dir := opts.StateDir
	if dir == "" {
		dir = DefaultStateDir
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, err
	}
	lock, err := lockMachine(ctx, logf)
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		Dir: dir, BinDir: binDir, l: layout{dir}, logf: logf, lock: lock, procs: map[string]*process{},
		Kubeconfig:       layout{dir}.kubeconfig("admin"),
		ContainerdSocket: layout{dir}.containerdSocket(),
		CNIBinDir:        layout{dir}.cniBin(),
		CNIConfDir:       layout{dir}.cniConf(),
		NetnsDir:         layout{dir}.netnsDir(),
		HostDir:          layout{dir}.path("host"),
	}
	if err := cleanupLeftover(ctx, c.l, binDir, logf); err != nil {
		lock.Close()
		return nil, fmt.Errorf("clean up an earlier run in %s: %w", dir, err)
	}
	t0 := time.Now()
	if err := c.start(ctx, opts); err != nil {
		if stopErr := c.Stop(); stopErr != nil {
			err = errors.Join(err, fmt.Errorf("teardown after failed start: %w", stopErr))
		}
		return nil, err
	}
	if err := c.writeHelmValues(); err != nil {
		if stopErr := c.Stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
		return nil, err
	}
	logf("cluster: ready in %s (state %s)", time.Since(t0).Round(100*time.Millisecond), dir)
	return c, nil
}

func (c *Cluster) start(ctx context.Context, opts Options) error {
	st, err := recordHost()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return err
	}
	c.st = st
	if err := c.st.save(c.l.stateFile()); err != nil {
		return err
	}
	if err := makeShared(c.Dir); err != nil {
		return err
	}
	if err := os.MkdirAll(c.HostDir, 0o755); err != nil {
		return err
	}

	tag := opts.ImageTag
	tarballs := opts.Images
	if tag == "" {
		if tag, err = images.ChartAppVersion(moduleDir()); err != nil {
			return err
		}
	}
	c.ImageTag = tag
	buildDone := make(chan error, 1)
	if tarballs == nil {
		// Compile and pack the images while the control plane starts.
		go func() {
			t0 := time.Now()
			built, err := images.Build(ctx, images.BuildOptions{ModuleDir: moduleDir(), OutDir: c.l.images(), Tag: tag})
			for _, b := range built {
				tarballs = append(tarballs, b.Tarball)
			}
			if err == nil {
				c.logf("cluster: built %d images in %s", len(built), time.Since(t0).Round(100*time.Millisecond))
			}
			buildDone <- err
		}()
	} else {
		buildDone <- nil
	}
	// Whatever happens below, wait for the build before returning (it
	// writes into the state directory that teardown removes).
	buildWaited := false
	defer func() {
		if !buildWaited {
			<-buildDone
		}
	}()

	if err := writePKI(c.l.path("pki")); err != nil {
		return fmt.Errorf("PKI: %w", err)
	}
	if err := c.l.writeConfigs(c.l.sandboxImage(tag)); err != nil {
		return err
	}
	for _, p := range []string{"bridge", "loopback", "host-local", "portmap"} {
		if err := os.Symlink(filepath.Join(c.BinDir, "cni", p), filepath.Join(c.l.cniBin(), p)); err != nil {
			return err
		}
	}
	if err := applySysctls(); err != nil {
		return err
	}
	if err := createBridge(); err != nil {
		return err
	}

	// --- control plane ---
	if err := c.run("etcd", "etcd",
		"--name=weft",
		"--data-dir="+c.l.etcdData(),
		"--listen-client-urls="+c.l.etcdURL(),
		"--advertise-client-urls="+c.l.etcdURL(),
		"--listen-peer-urls="+c.l.etcdPeerURL(),
		"--initial-advertise-peer-urls="+c.l.etcdPeerURL(),
		"--initial-cluster=weft="+c.l.etcdPeerURL(),
		"--unsafe-no-fsync",
		"--log-level=warn",
	); err != nil {
		return err
	}
	if err := c.waitHTTP(ctx, "etcd", c.l.etcdURL()+"/health", nil, 30*time.Second); err != nil {
		return err
	}
	pki := c.l.pki
	if err := c.run("kube-apiserver", "kube-apiserver",
		"--advertise-address="+NodeIP,
		"--bind-address="+NodeIP,
		"--secure-port="+strconv.Itoa(apiserverPort),
		"--etcd-servers="+c.l.etcdURL(),
		"--service-cluster-ip-range="+ServiceCIDR,
		"--tls-cert-file="+pki("apiserver.crt"),
		"--tls-private-key-file="+pki("apiserver.key"),
		"--client-ca-file="+pki("ca.crt"),
		"--kubelet-client-certificate="+pki("apiserver-kubelet-client.crt"),
		"--kubelet-client-key="+pki("apiserver-kubelet-client.key"),
		"--kubelet-certificate-authority="+pki("ca.crt"),
		"--kubelet-preferred-address-types=InternalIP",
		"--service-account-issuer=https://kubernetes.default.svc."+ClusterDomain,
		"--service-account-key-file="+pki("sa.pub"),
		"--service-account-signing-key-file="+pki("sa.key"),
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--allow-privileged=true",
		"--profiling=false",
		"--v=1",
	); err != nil {
		return err
	}
	adminTLS, err := c.adminTLS()
	if err != nil {
		return err
	}
	if err := c.waitHTTP(ctx, "kube-apiserver", c.l.apiserverURL()+"/readyz", adminTLS, 90*time.Second); err != nil {
		return err
	}
	if err := c.connect(); err != nil {
		return err
	}
	if err := c.run("kube-controller-manager", "kube-controller-manager",
		"--kubeconfig="+c.l.kubeconfig("controller-manager"),
		"--authentication-kubeconfig="+c.l.kubeconfig("controller-manager"),
		"--authorization-kubeconfig="+c.l.kubeconfig("controller-manager"),
		"--bind-address=127.0.0.1",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file="+pki("sa.key"),
		"--root-ca-file="+pki("ca.crt"),
		"--cluster-signing-cert-file="+pki("ca.crt"),
		"--cluster-signing-key-file="+pki("ca.key"),
		"--allocate-node-cidrs=true",
		"--cluster-cidr="+PodCIDR,
		"--node-cidr-mask-size=24",
		"--service-cluster-ip-range="+ServiceCIDR,
		"--leader-elect=false",
		"--profiling=false",
	); err != nil {
		return err
	}
	if err := c.run("kube-scheduler", "kube-scheduler",
		"--kubeconfig="+c.l.kubeconfig("scheduler"),
		"--authentication-kubeconfig="+c.l.kubeconfig("scheduler"),
		"--authorization-kubeconfig="+c.l.kubeconfig("scheduler"),
		"--bind-address=127.0.0.1",
		"--leader-elect=false",
		"--profiling=false",
	); err != nil {
		return err
	}
	if err := c.createDNSService(ctx); err != nil {
		return err
	}
	if err := c.run("coredns", "coredns", "-conf", c.l.corefile()); err != nil {
		return err
	}

	// --- node ---
	if err := c.run("containerd", "containerd", "--config", c.l.containerdConfig()); err != nil {
		return err
	}
	if err := c.waitContainerd(ctx); err != nil {
		return err
	}
	buildWaited = true
	if err := <-buildDone; err != nil {
		return fmt.Errorf("build images: %w", err)
	}
	t0 := time.Now()
	for _, tb := range tarballs {
		if out, err := c.Ctr(ctx, "images", "import", tb); err != nil {
			return fmt.Errorf("import %s: %w\n%s", tb, err, out)
		}
	}
	c.logf("cluster: imported %d images in %s", len(tarballs), time.Since(t0).Round(100*time.Millisecond))
	if err := c.run("kubelet", "kubelet",
		"--config="+c.l.kubeletConfig(),
		"--kubeconfig="+c.l.kubeconfig("kubelet"),
		"--root-dir="+c.l.kubeletRoot(),
		"--hostname-override="+NodeName,
		"--node-ip="+NodeIP,
		"--v=1",
	); err != nil {
		return err
	}
	if err := c.run("kube-proxy", "kube-proxy", "--config="+c.l.kubeProxyConfig()); err != nil {
		return err
	}
	if err := c.waitHTTP(ctx, "coredns", "http://127.0.0.1:"+strconv.Itoa(dnsReadyPort)+"/ready", nil, 60*time.Second); err != nil {
		return err
	}
	return c.waitReady(ctx)
}

// run starts the component name from the binary bin in BinDir, logging to
// logs/<name>.log, and records its PID in the state file.
func (c *Cluster) run(name, bin string, args ...string) error {
	path := filepath.Join(c.BinDir, bin)
	p, err := startProcess(name, path, args, filepath.Join(c.l.logs(), name+".log"))
	if err != nil {
		return err
	}
	c.procs[name] = p
	c.st.Procs[name] = procRecord{PID: p.PID, Bin: path}
	return c.st.save(c.l.stateFile())
}

// exitedErr returns an error naming a component that has exited, with the
// end of its log.
func (c *Cluster) exitedErr() error {
	for name, p := range c.procs {
		if p.Exited() {
			return fmt.Errorf("%s exited: %v\n%s", name, p.Err(), c.LogTail(name, 30))
		}
	}
	return nil
}

// LogTail returns the last n lines of component's log (etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler, containerd,
// kubelet, kube-proxy, coredns).
func (c *Cluster) LogTail(component string, n int) string {
	b, err := os.ReadFile(filepath.Join(c.l.logs(), component+".log"))
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (c *Cluster) adminTLS() (*tls.Config, error) {
	ca, err := os.ReadFile(c.l.pki("ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	cert, err := tls.LoadX509KeyPair(c.l.pki("admin.crt"), c.l.pki("admin.key"))
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}, nil
}

// waitHTTP polls url until it answers 200, a component exits, or timeout.
func (c *Cluster) waitHTTP(ctx context.Context, what, url string, tlsConf *tls.Config, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConf}}
	defer client.CloseIdleConnections()
	return c.poll(ctx, what, timeout, func() (bool, string) {
		resp, err := client.Get(url)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
}

// poll calls cond every 200ms until it returns true, a component exits,
// ctx ends or timeout passes; the error carries cond's last note.
func (c *Cluster) poll(ctx context.Context, what string, timeout time.Duration, cond func() (bool, string)) error {
	deadline := time.Now().Add(timeout)
	var note string
	for {
		var ok bool
		if ok, note = cond(); ok {
			return nil
		}
		if err := c.exitedErr(); err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %s", what, timeout, note)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (%s)", what, ctx.Err(), note)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *Cluster) connect() error {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return fmt.Errorf("admin kubeconfig: %w", err)
	}
	// The kubeconfig names its PKI by path, and client-go caches TLS
	// transports by those paths: a later cluster in the same process (same
	// state dir, new PKI) would get the old CA. Load the contents instead.
	if err := rest.LoadTLSFiles(cfg); err != nil {
		return fmt.Errorf("admin kubeconfig: %w", err)
	}
	cfg.CAFile, cfg.CertFile, cfg.KeyFile = "", "", ""
	cfg.QPS, cfg.Burst = 50, 100
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	c.Config, c.Clientset = cfg, cs
	return nil
}

func (c *Cluster) waitContainerd(ctx context.Context) error {
	return c.poll(ctx, "containerd", 30*time.Second, func() (bool, string) {
		if _, err := os.Stat(c.ContainerdSocket); err != nil {
			return false, err.Error()
		}
		out, err := c.Ctr(ctx, "version")
		if err != nil {
			return false, strings.TrimSpace(string(out))
		}
		return true, ""
	})
}

// createDNSService creates kube-system/kube-dns at DNSServiceIP, without a
// selector, and an EndpointSlice that leads it to CoreDNS on NodeIP:53.
func (c *Cluster) createDNSService(ctx context.Context) error {
	labels := map[string]string{"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-dns", Namespace: "kube-system", Labels: labels},
		Spec: corev1.ServiceSpec{
			ClusterIP: DNSServiceIP,
			Ports: []corev1.ServicePort{
				{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53, TargetPort: intstr.FromInt32(53)},
				{Name: "dns-tcp", Protocol: corev1.ProtocolTCP, Port: 53, TargetPort: intstr.FromInt32(53)},
			},
		},
	}
	ready := true
	udp, tcp := corev1.ProtocolUDP, corev1.ProtocolTCP
	dnsName, dnsTCPName, port := "dns", "dns-tcp", int32(53)
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-dns-node", Namespace: "kube-system", Labels: map[string]string{
			discoveryv1.LabelServiceName: "kube-dns",
			discoveryv1.LabelManagedBy:   "weft-test-cluster",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{NodeIP}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports: []discoveryv1.EndpointPort{
			{Name: &dnsName, Protocol: &udp, Port: &port},
			{Name: &dnsTCPName, Protocol: &tcp, Port: &port},
		},
	}
	// kube-system exists once the apiserver is ready; creating can still race
	// its bootstrap, so retry briefly.
	return c.poll(ctx, "kube-dns Service", 30*time.Second, func() (bool, string) {
		if _, err := c.Clientset.CoreV1().Services("kube-system").Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return false, err.Error()
		}
		if _, err := c.Clientset.DiscoveryV1().EndpointSlices("kube-system").Create(ctx, slice, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return false, err.Error()
		}
		return true, ""
	})
}

// waitReady waits for the node to be Ready and the default ServiceAccount
// to exist (pods need it).
func (c *Cluster) waitReady(ctx context.Context) error {
	if err := c.poll(ctx, "node "+NodeName, 120*time.Second, func() (bool, string) {
		n, err := c.Clientset.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				return cond.Status == corev1.ConditionTrue, cond.Reason + ": " + cond.Message
			}
		}
		return false, "no Ready condition"
	}); err != nil {
		return err
	}
	return c.poll(ctx, "default ServiceAccount", 60*time.Second, func() (bool, string) {
		_, err := c.Clientset.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

// Kubectl runs kubectl with the admin kubeconfig and returns its standard
// output; on failure the error holds the standard error too.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.BinDir, "kubectl"), append([]string{"--kubeconfig=" + c.Kubeconfig}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.String(), nil
}

// Ctr runs `ctr -n k8s.io` against the cluster's containerd and returns its
// combined output.
func (c *Cluster) Ctr(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.BinDir, "ctr"), append([]string{"--address", c.ContainerdSocket, "-n", "k8s.io"}, args...)...)
	return cmd.CombinedOutput()
}

// ImportImage imports an image tarball into the cluster's containerd, for
// pods to run with imagePullPolicy IfNotPresent or Never.
func (c *Cluster) ImportImage(ctx context.Context, tarball string) error {
	if out, err := c.Ctr(ctx, "images", "import", tarball); err != nil {
		return fmt.Errorf("import %s: %w: %s", tarball, err, bytes.TrimSpace(out))
	}
	return nil
}

// Stop tears the cluster down and restores the machine; see the package
// documentation for the order. It always runs every step and returns the
// errors of all that failed. It is safe to call more than once.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		t0 := time.Now()
		c.stopErr = teardown(c.l, c.st, c.procs, c.BinDir, c.logf)
		if c.lock != nil {
			c.lock.Close()
		}
		c.logf("cluster: stopped in %s", time.Since(t0).Round(100*time.Millisecond))
	})
	return c.stopErr
}

// lockFile serialises clusters: the bridge, addresses and ports are fixed,
// so there is one cluster per machine whatever its state directory.
const lockFile = DefaultStateDir + ".lock"

// lockMachine takes an exclusive lock on lockFile, waiting for another
// holder until ctx ends. The lock dies with the process.
func lockMachine(ctx context.Context, logf func(string, ...any)) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(lockFile), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(lockFile, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	logged := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", lockFile, err)
		}
		if !logged {
			logf("cluster: another cluster holds %s; waiting", lockFile)
			logged = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for %s: %w", lockFile, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// resolveBinDir returns the binary directory: dir, else $WEFT_CLUSTER_BIN,
// else what build-binaries.sh prints.
func resolveBinDir(ctx context.Context, dir string, logf func(string, ...any)) (string, error) {
	if dir == "" {
		dir = os.Getenv("WEFT_CLUSTER_BIN")
	}
	if dir == "" {
		script := filepath.Join(sourceDir(), "build-binaries.sh")
		logf("cluster: running %s (a first build takes 15-20 minutes)", script)
		cmd := exec.CommandContext(ctx, "bash", script)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = 10 * time.Second
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("build-binaries.sh: %w\n%s", err, stderr.Bytes())
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		dir = lines[len(lines)-1]
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kubelet", "containerd", "ctr", "coredns", "cni/bridge"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return "", fmt.Errorf("cluster binaries in %s: %w (run tests/cluster/build-binaries.sh)", dir, err)
		}
	}
	return dir, nil
}

// sourceDir is the directory of this source file (tests/cluster).
func sourceDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// moduleDir is the root of this module.
func moduleDir() string { return filepath.Dir(filepath.Dir(sourceDir())) }
