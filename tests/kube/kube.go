// Package kube runs a throwaway, real kube-apiserver backed by a real etcd on
// loopback, for integration tests that need genuine Kubernetes API behaviour
// (TokenRequest, TokenReview, RBAC, admission, ...). No controller manager,
// scheduler or kubelet runs: objects are stored and validated, nothing
// reconciles them.
//
// The binaries are built once from the Go module proxy by build-binaries.sh
// and cached outside the repository (see README.md). Start one cluster per
// test package from TestMain with [Main], or per test with [StartT].
package kube

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

const (
	// Issuer is the service-account token issuer (--service-account-issuer).
	Issuer = "https://kubernetes.default.svc.cluster.local"
	// Audience is the extra API audience the apiserver accepts besides
	// Issuer (--api-audiences), for tokens requested with audience "weft".
	Audience = "weft"
	// ServiceCIDR is --service-cluster-ip-range.
	ServiceCIDR = "10.96.0.0/16"

	readyTimeout     = 60 * time.Second
	etcdReadyTimeout = 20 * time.Second
	stopGrace        = 10 * time.Second
	startAttempts    = 3 // a port picked as free may be taken before the child binds it
)

// ErrUnsupportedPlatform is returned by Start on anything but Linux.
var ErrUnsupportedPlatform = errors.New("kube test harness: only Linux is supported (process groups, PDEATHSIG)")

// Options configures Start.
type Options struct {
	// BinDir holds the etcd and kube-apiserver binaries. If empty, the
	// directory in $WEFT_KUBE_BIN is used; if that is unset too,
	// build-binaries.sh (next to this source file) is run, which builds the
	// binaries on first use (several minutes) and prints the cache directory.
	BinDir string
	// Log receives the output of etcd and kube-apiserver, each line prefixed
	// with "[etcd] " or "[kube-apiserver] ". If nil, the output goes to
	// etcd.log and kube-apiserver.log in Dir (removed by Stop).
	Log io.Writer
}

// Cluster is a running etcd + kube-apiserver pair. Create it with Start or
// StartT; release it with Stop.
type Cluster struct {
	// Config authenticates as an admin (client certificate with
	// O=system:masters). It is shared: use rest.CopyConfig before changing it.
	Config *rest.Config
	// Kubeconfig is the path of an admin kubeconfig file for Config.
	Kubeconfig string
	// Dir is the state directory (PKI, etcd data, logs); Stop removes it.
	Dir string
	// URL is the apiserver's base URL, https://127.0.0.1:PORT.
	URL string
	// CACert is the PEM CA certificate that signed the apiserver's serving
	// certificate and the admin client certificate.
	CACert []byte

	clientset kubernetes.Interface
	etcd      *process
	apiserver *process
	etcdTail  *tailBuffer
	apiTail   *tailBuffer
	logFiles  []*os.File
	stopOnce  sync.Once
	stopErr   error
}

// Start launches a fresh etcd and kube-apiserver on free loopback ports,
// with a new PKI in a new temporary directory, and waits until the apiserver
// reports /readyz ok and the default and kube-system namespaces exist. ctx
// bounds the start (including a first build of the binaries), not the
// cluster's lifetime: call Stop to tear it down.
//
// The apiserver uses RBAC authorization, client-certificate and
// service-account token authentication (issuer Issuer, API audiences
// Audience and Issuer) and the default admission plugins, including
// ServiceAccount admission: a Pod must name an existing ServiceAccount, and
// no "default" ServiceAccount exists because no controller manager runs, so
// create the ServiceAccount before the Pod and set spec.serviceAccountName.
// Nothing else reconciles either: pods stay Pending, deleted namespaces stay
// Terminating, and a bound token stays valid for up to 10s after its pod is
// deleted (the apiserver caches successful token authentications).
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if !supported || runtime.GOOS != "linux" {
		return nil, fmt.Errorf("%w (GOOS=%s)", ErrUnsupportedPlatform, runtime.GOOS)
	}
	binDir, err := resolveBinDir(ctx, opts)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "weft-kube-")
	if err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	c := &Cluster{Dir: dir, etcdTail: newTailBuffer(64 << 10), apiTail: newTailBuffer(64 << 10)}
	if err := c.start(ctx, binDir, opts); err != nil {
		if stopErr := c.Stop(); stopErr != nil {
			err = errors.Join(err, fmt.Errorf("cleanup after failed start: %w", stopErr))
		}
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start(ctx context.Context, binDir string, opts Options) error {
	p, err := newPKI()
	if err != nil {
		return fmt.Errorf("generate PKI: %w", err)
	}
	if err := p.write(c.Dir); err != nil {
		return fmt.Errorf("write PKI: %w", err)
	}
	c.CACert = p.caCert

	etcdOut, apiOut, err := c.logWriters(opts.Log)
	if err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		err := c.startProcesses(ctx, binDir, p, etcdOut, apiOut)
		if err == nil {
			break
		}
		var pe *portInUseError
		if !errors.As(err, &pe) {
			return err
		}
		if attempt == startAttempts {
			return fmt.Errorf("port clash on each of %d attempts: %w", attempt, err)
		}
		// Someone grabbed a port between our probe and the child's bind:
		// tear down whatever started and retry with new ports.
		if err := c.stopProcesses(); err != nil {
			return fmt.Errorf("stop processes before retry: %w", err)
		}
		c.etcdTail.reset()
		c.apiTail.reset()
	}
	if err := c.writeKubeconfig(p); err != nil {
		return err
	}
	return nil
}

// portInUseError marks a start failure caused by a port clash (retryable).
type portInUseError struct{ err error }

func (e *portInUseError) Error() string { return e.err.Error() }
func (e *portInUseError) Unwrap() error { return e.err }

func (c *Cluster) startProcesses(ctx context.Context, binDir string, p *pki, etcdOut, apiOut io.Writer) error {
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	etcdClient, etcdPeer, apiPort := ports[0], ports[1], ports[2]
	env := childEnv()

	// --- etcd ---
	etcdData := filepath.Join(c.Dir, "etcd")
	if err := os.RemoveAll(etcdData); err != nil {
		return fmt.Errorf("clear etcd data dir: %w", err)
	}
	clientURL := "http://127.0.0.1:" + strconv.Itoa(etcdClient)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(etcdPeer)
	etcdCmd := exec.Command(filepath.Join(binDir, "etcd"),
		"--name=weft",
		"--data-dir="+etcdData,
		"--listen-client-urls="+clientURL,
		"--advertise-client-urls="+clientURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=weft="+peerURL,
		"--initial-cluster-state=new",
		"--initial-cluster-token=weft-"+filepath.Base(c.Dir),
		"--unsafe-no-fsync=true", // throwaway data: skip fsync, much faster on slow disks
		"--log-level=warn",
	)
	etcdCmd.Dir, etcdCmd.Env, etcdCmd.Stdout, etcdCmd.Stderr = c.Dir, env, etcdOut, etcdOut
	if c.etcd, err = startProcess("etcd", etcdCmd); err != nil {
		return err
	}
	if err := c.waitEtcd(ctx, clientURL); err != nil {
		return err
	}

	// --- kube-apiserver ---
	f := func(name string) string { return filepath.Join(c.Dir, name) }
	apiCmd := exec.Command(filepath.Join(binDir, "kube-apiserver"),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(apiPort),
		"--etcd-servers="+clientURL,
		"--cert-dir="+f("apiserver-certs"),
		"--client-ca-file="+f(caCertFile),
		"--tls-cert-file="+f(serverCertFile),
		"--tls-private-key-file="+f(serverKeyFile),
		"--service-account-issuer="+Issuer,
		"--service-account-key-file="+f(saPublicFile),
		"--service-account-signing-key-file="+f(saPrivateFile),
		"--api-audiences="+Audience+","+Issuer,
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range="+ServiceCIDR,
		"--allow-privileged=true",
		// The default (lease) reconciler fails on every sync: Endpoints
		// validation rejects the loopback advertise address. Nothing could
		// route to the "kubernetes" Service anyway.
		"--endpoint-reconciler-type=none",
		"--profiling=false",
	)
	apiCmd.Dir, apiCmd.Env, apiCmd.Stdout, apiCmd.Stderr = c.Dir, env, apiOut, apiOut
	if c.apiserver, err = startProcess("kube-apiserver", apiCmd); err != nil {
		return err
	}

	c.URL = "https://127.0.0.1:" + strconv.Itoa(apiPort)
	c.Config = &rest.Config{
		Host: c.URL,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   p.caCert,
			CertData: p.adminCert,
			KeyData:  p.adminKey,
		},
		QPS:   200,
		Burst: 400,
	}
	if c.clientset, err = kubernetes.NewForConfig(rest.CopyConfig(c.Config)); err != nil {
		return fmt.Errorf("create clientset: %w", err)
	}
	return c.waitAPIServer(ctx)
}

// exitedEarly builds the error for a child that exited while we waited for
// it, flagging port clashes as retryable.
func exitedEarly(p *process, tail *tailBuffer) error {
	err := fmt.Errorf("%s (pid %d) exited during start-up: %v\n--- last lines of %s output ---\n%s",
		p.Name, p.PID, p.Err(), p.Name, tail.lastLines(40))
	if tail.contains("address already in use") {
		return &portInUseError{err}
	}
	return err
}

func (c *Cluster) waitEtcd(ctx context.Context, clientURL string) error {
	ctx, cancel := context.WithTimeout(ctx, etcdReadyTimeout)
	defer cancel()
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	defer hc.CloseIdleConnections()
	var last string
	for {
		if c.etcd.Exited() {
			return exitedEarly(c.etcd, c.etcdTail)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, clientURL+"/health", nil)
		if err != nil {
			return fmt.Errorf("etcd health request: %w", err)
		}
		if resp, err := hc.Do(req); err != nil {
			last = err.Error()
		} else {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(`"health":"true"`)) {
				return nil
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(body))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcd on %s not healthy (last: %s): %w\n--- last lines of etcd output ---\n%s",
				clientURL, last, ctx.Err(), c.etcdTail.lastLines(40))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *Cluster) waitAPIServer(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	rc := c.clientset.Discovery().RESTClient()
	var last string
	for {
		if c.apiserver.Exited() {
			return exitedEarly(c.apiserver, c.apiTail)
		}
		if c.etcd.Exited() {
			return exitedEarly(c.etcd, c.etcdTail)
		}
		body, err := rc.Get().AbsPath("/readyz").Timeout(2 * time.Second).DoRaw(ctx)
		switch {
		case err != nil:
			last = err.Error()
		case string(body) != "ok":
			last = string(body)
		default:
			// /readyz does not wait for the system namespaces, which a
			// post-start controller creates just after.
			last = "ok, but the system namespaces do not exist yet"
			if c.systemNamespacesExist(ctx) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			// Ask once more, verbosely, to name the failing checks.
			vctx, vcancel := context.WithTimeout(context.Background(), 2*time.Second)
			verbose, _ := rc.Get().AbsPath("/readyz").Param("verbose", "true").DoRaw(vctx)
			vcancel()
			return fmt.Errorf("kube-apiserver at %s not ready after %v (last /readyz: %s): %w\n--- /readyz?verbose ---\n%s\n--- last lines of kube-apiserver output ---\n%s",
				c.URL, readyTimeout, last, ctx.Err(), bytes.TrimSpace(verbose), c.apiTail.lastLines(40))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Cluster) systemNamespacesExist(ctx context.Context) bool {
	for _, ns := range []string{metav1.NamespaceDefault, metav1.NamespaceSystem} {
		if _, err := c.clientset.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
			return false
		}
	}
	return true
}

// Stop kills kube-apiserver and then etcd (SIGTERM to each process group,
// SIGKILL after a grace period), waits for them and removes Dir. It is safe
// to call more than once; later calls return the first result.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		errs := []error{c.stopProcesses()}
		for _, f := range c.logFiles {
			if err := f.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close %s: %w", f.Name(), err))
			}
		}
		if c.Dir != "" {
			if err := os.RemoveAll(c.Dir); err != nil {
				errs = append(errs, fmt.Errorf("remove state dir: %w", err))
			}
		}
		c.stopErr = errors.Join(errs...)
	})
	return c.stopErr
}

func (c *Cluster) stopProcesses() error {
	var errs []error
	if c.apiserver != nil {
		errs = append(errs, c.apiserver.Stop(stopGrace))
		c.apiserver = nil
	}
	if c.etcd != nil {
		errs = append(errs, c.etcd.Stop(stopGrace))
		c.etcd = nil
	}
	return errors.Join(errs...)
}

// PIDs returns the process IDs (= process-group IDs) of etcd and
// kube-apiserver, 0 for one not running. Useful to check for leaks.
func (c *Cluster) PIDs() (etcd, apiserver int) {
	if c.etcd != nil {
		etcd = c.etcd.PID
	}
	if c.apiserver != nil {
		apiserver = c.apiserver.PID
	}
	return etcd, apiserver
}

// APIServerLog returns up to n trailing lines of kube-apiserver's output.
func (c *Cluster) APIServerLog(n int) string { return c.apiTail.lastLines(n) }

// Clientset returns an admin clientset (system:masters).
func (c *Cluster) Clientset() kubernetes.Interface { return c.clientset }

// ServiceAccountToken requests a token for namespace/sa through the
// TokenRequest API, for the given audiences (nil = the apiserver's
// audiences). If boundPod is not nil, the token is bound to it (kind Pod,
// name and UID, so pass the object returned by Create or Get): TokenReview
// then reports the pod's name and UID, and the node's name (and UID if the
// Node object exists) in user.extra under authentication.kubernetes.io/*.
// The pod must run as sa (spec.serviceAccountName).
func (c *Cluster) ServiceAccountToken(ctx context.Context, namespace, sa string, audiences []string, boundPod *corev1.Pod) (string, error) {
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: audiences}}
	if boundPod != nil {
		if boundPod.Name == "" || boundPod.UID == "" {
			return "", fmt.Errorf("token for %s/%s: bound pod needs a name and UID (use the object returned by the API), got name=%q uid=%q",
				namespace, sa, boundPod.Name, boundPod.UID)
		}
		if boundPod.Namespace != "" && boundPod.Namespace != namespace {
			return "", fmt.Errorf("token for %s/%s: bound pod is in namespace %q", namespace, sa, boundPod.Namespace)
		}
		req.Spec.BoundObjectRef = &authenticationv1.BoundObjectReference{
			Kind:       "Pod",
			APIVersion: "v1",
			Name:       boundPod.Name,
			UID:        boundPod.UID,
		}
	}
	resp, err := c.clientset.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token request for %s/%s: %w", namespace, sa, err)
	}
	if resp.Status.Token == "" {
		return "", fmt.Errorf("token request for %s/%s: empty token in response", namespace, sa)
	}
	return resp.Status.Token, nil
}

// StartT starts a cluster for one test (or benchmark) and stops it in
// t.Cleanup. It fails the test if the cluster does not start, and skips it on
// platforms other than Linux. If the test failed, the tail of the
// kube-apiserver log is logged before teardown.
func StartT(t testing.TB) *Cluster {
	t.Helper()
	c, err := Start(t.Context(), Options{})
	if errors.Is(err, ErrUnsupportedPlatform) {
		t.Skipf("!!! SKIPPING: %v — these Kubernetes integration tests only run on Linux", err)
	}
	if err != nil {
		t.Fatalf("start kube-apiserver + etcd: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- last lines of kube-apiserver output ---\n%s", c.APIServerLog(60))
		}
		if err := c.Stop(); err != nil {
			t.Errorf("stop kube-apiserver + etcd: %v", err)
		}
	})
	return c
}

// Main starts one cluster for a whole test package, stores it in *c, runs
// the tests and stops the cluster. Use it from TestMain, and begin each test
// with Require:
//
//	var cluster *kube.Cluster
//
//	func TestMain(m *testing.M) { os.Exit(kube.Main(m, &cluster)) }
//
//	func TestSomething(t *testing.T) {
//		c := kube.Require(t, cluster)
//		...
//	}
//
// If the cluster cannot start, Main prints the error and returns 1 without
// running the tests. On platforms other than Linux it prints a loud notice,
// leaves *c nil and runs the tests, which Require then skips. If a test
// failed, the tail of the kube-apiserver log is printed before teardown.
func Main(m *testing.M, c **Cluster) int {
	if !flag.Parsed() {
		flag.Parse() // for testing.Verbose; m.Run would parse anyway
	}
	started := time.Now()
	cl, err := Start(context.Background(), Options{})
	if errors.Is(err, ErrUnsupportedPlatform) {
		fmt.Fprintf(os.Stderr, "!!! NO KUBERNETES CLUSTER, TESTS THAT NEED ONE WILL BE SKIPPED: %v\n", err)
		*c = nil
		return m.Run()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "kube: start kube-apiserver + etcd: %v\n", err)
		return 1
	}
	if testing.Verbose() {
		etcdPID, apiPID := cl.PIDs()
		fmt.Fprintf(os.Stderr, "kube: apiserver %s ready in %v (etcd pid %d, kube-apiserver pid %d, state in %s)\n",
			cl.URL, time.Since(started).Round(time.Millisecond), etcdPID, apiPID, cl.Dir)
	}
	*c = cl
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "--- last lines of kube-apiserver output ---\n%s\n", cl.APIServerLog(60))
	}
	*c = nil
	if err := cl.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "kube: stop kube-apiserver + etcd: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Require returns c, the cluster Main started; when c is nil (Main found an
// unsupported platform) it skips t with a loud message.
func Require(t testing.TB, c *Cluster) *Cluster {
	t.Helper()
	if c == nil && supported {
		t.Fatal("kube: no cluster; start one with kube.Main from TestMain (or use StartT)")
	}
	if c == nil {
		t.Skipf("!!! SKIPPING: no Kubernetes cluster: %v (GOOS=%s)", ErrUnsupportedPlatform, runtime.GOOS)
	}
	return c
}

// logWriters returns where etcd's and kube-apiserver's output go: Log (line
// prefixed) or files in Dir, and always a tail buffer for error messages.
func (c *Cluster) logWriters(log io.Writer) (etcdOut, apiOut io.Writer, err error) {
	if log != nil {
		mu := new(sync.Mutex)
		etcdOut = &prefixWriter{mu: mu, w: log, prefix: []byte("[etcd] ")}
		apiOut = &prefixWriter{mu: mu, w: log, prefix: []byte("[kube-apiserver] ")}
	} else {
		for _, name := range []string{"etcd.log", "kube-apiserver.log"} {
			f, err := os.Create(filepath.Join(c.Dir, name))
			if err != nil {
				return nil, nil, fmt.Errorf("create log file: %w", err)
			}
			c.logFiles = append(c.logFiles, f)
		}
		etcdOut, apiOut = c.logFiles[0], c.logFiles[1]
	}
	return io.MultiWriter(etcdOut, c.etcdTail), io.MultiWriter(apiOut, c.apiTail), nil
}

func (c *Cluster) writeKubeconfig(p *pki) error {
	b64 := base64.StdEncoding.EncodeToString
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: weft-test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: weft-admin
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: weft-test
  context:
    cluster: weft-test
    user: weft-admin
current-context: weft-test
`, c.URL, b64(p.caCert), b64(p.adminCert), b64(p.adminKey))
	c.Kubeconfig = filepath.Join(c.Dir, "admin.kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, []byte(kc), 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}

// freePorts returns n distinct free TCP ports on 127.0.0.1. They are free
// when probed; a port clash at bind time is retried by Start.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("probe free port: %w", err)
		}
		// Keep it open until all are picked so the n ports differ.
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// childEnv is the environment of etcd and kube-apiserver: ours minus proxy
// settings (gRPC to etcd honours HTTPS_PROXY) and ETCD_* variables (etcd
// reads its flags from them).
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(k) {
		case "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "GRPC_PROXY":
			continue
		}
		if strings.HasPrefix(k, "ETCD_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// resolveBinDir finds the directory holding etcd and kube-apiserver:
// Options.BinDir, else $WEFT_KUBE_BIN, else the output of build-binaries.sh.
func resolveBinDir(ctx context.Context, opts Options) (string, error) {
	dir, how := opts.BinDir, "Options.BinDir"
	if dir == "" {
		dir, how = os.Getenv("WEFT_KUBE_BIN"), "$WEFT_KUBE_BIN"
	}
	if dir == "" {
		var err error
		if dir, err = runBuildScript(ctx); err != nil {
			return "", err
		}
		how = "build-binaries.sh"
	}
	for _, name := range []string{"etcd", "kube-apiserver"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return "", fmt.Errorf("binary dir %q (from %s): %w", dir, how, err)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return "", fmt.Errorf("binary dir %q (from %s): %s is not an executable file", dir, how, name)
		}
	}
	return dir, nil
}

// runBuildScript runs build-binaries.sh, found next to this source file, and
// returns the directory it prints on its last line. It is quick when the
// binaries are cached; a first build takes several minutes.
func runBuildScript(ctx context.Context) (string, error) {
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("locate build-binaries.sh: runtime.Caller failed; set WEFT_KUBE_BIN")
	}
	script := filepath.Join(filepath.Dir(self), "build-binaries.sh")
	if _, err := os.Stat(script); err != nil {
		return "", fmt.Errorf("locate build-binaries.sh next to %s (test binary built with -trimpath?); set WEFT_KUBE_BIN to a directory holding etcd and kube-apiserver: %w", self, err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Stdout = &stdout
	// Progress of a first build goes to our stderr, and into the error.
	cmd.Stderr = io.MultiWriter(os.Stderr, &stderr)
	killGroupOnCancel(cmd)
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("run %s: %w\n%s", script, err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	dir := strings.TrimSpace(lines[len(lines)-1])
	if dir == "" {
		return "", fmt.Errorf("run %s: printed no directory", script)
	}
	return dir, nil
}
