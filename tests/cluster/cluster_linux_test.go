//go:build linux

package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/tests/apps/echo"
	"github.com/weftmesh/weft/tests/cluster/images"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// TestClusterSmoke starts a cluster, serves weft-echo behind a Service,
// calls it by DNS name from another pod, then stops the cluster and checks
// that nothing is left on the machine.
func TestClusterSmoke(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("!!! SKIPPED: TestClusterSmoke needs root (it runs containerd, a kubelet and iptables); run `go test ./tests/cluster/` as root")
	}
	if testing.Short() {
		t.Skip("starts a real cluster; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute) // a first build of the binaries included
	defer cancel()

	t0 := time.Now()
	c, err := Start(ctx, Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			if err := c.Stop(); err != nil {
				t.Errorf("Stop: %v", err)
			}
		}
	}()
	t.Logf("cluster started in %s", time.Since(t0).Round(100*time.Millisecond))

	const ns = "smoke"
	cs := c.Clientset
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitDefaultSA(ctx, t, c, ns)
	image := "weft/weft-echo:" + c.ImageTag
	labels := map[string]string{"app": "echo"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To[int64](1),
					Containers: []corev1.Container{{
						Name:            "echo",
						Image:           image,
						ImagePullPolicy: corev1.PullNever,
						Env: []corev1.EnvVar{
							{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
							{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
						},
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}},
							PeriodSeconds: 1,
						},
					}},
				},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: ns},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports:    []corev1.ServicePort{{Name: "http", Port: 8080, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	if _, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	if out, err := c.Kubectl(ctx, "-n", ns, "rollout", "status", "deployment/echo", "--timeout=120s"); err != nil {
		t.Fatalf("%v\n%s\n%s", err, out, debugState(ctx, c, ns))
	}
	t.Logf("echo Deployment ready in %s", time.Since(t1).Round(100*time.Millisecond))
	// kube-proxy programs the new endpoint a moment after the pod is Ready:
	// wait until the ClusterIP answers from the node before the client runs.
	t1 = time.Now()
	waitServiceAnswers(ctx, t, c, ns, "echo", 8080)
	t.Logf("Service answers from the node after %s", time.Since(t1).Round(100*time.Millisecond))

	// A client pod calls the Service by its DNS name; the echo reply names
	// the serving pod.
	client := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "client", Namespace: ns},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers: []corev1.Container{{
				Name:            "get",
				Image:           image,
				ImagePullPolicy: corev1.PullNever,
				Command:         []string{"weft-echo", "get", "--timeout=20s", fmt.Sprintf("http://echo.%s:8080/smoke", ns)},
			}},
		},
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, client, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var phase corev1.PodPhase
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, "client", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if phase = p.Status.Phase; phase == corev1.PodSucceeded || phase == corev1.PodFailed {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	logs, err := c.Kubectl(ctx, "-n", ns, "logs", "client")
	if err != nil {
		t.Fatalf("client logs: %v\n%s", err, debugState(ctx, c, ns))
	}
	if phase != corev1.PodSucceeded {
		t.Fatalf("client pod: phase %s, want Succeeded; output:\n%s\n%s", phase, logs, debugState(ctx, c, ns))
	}
	var res echo.Result
	if err := json.Unmarshal([]byte(logs), &res); err != nil {
		t.Fatalf("client output is not an echo result: %v\n%s", err, logs)
	}
	if res.Status != 200 || res.Reply == nil {
		t.Fatalf("got status %d, reply %v, want 200 and an echo reply:\n%s", res.Status, res.Reply, logs)
	}
	if !strings.HasPrefix(res.Reply.Pod, "echo-") || res.Reply.Namespace != ns || res.Reply.Path != "/smoke" {
		t.Errorf("reply from pod %q in %q for path %q, want an echo-* pod in %q for /smoke:\n%s", res.Reply.Pod, res.Reply.Namespace, res.Reply.Path, ns, logs)
	}

	// Stop, and check that the machine is clean.
	dir := c.Dir
	var pids []int
	for _, p := range c.procs {
		pids = append(pids, p.PID)
	}
	t2 := time.Now()
	stopped = true
	if err := c.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	t.Logf("cluster stopped in %s", time.Since(t2).Round(100*time.Millisecond))
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("pid %d (%v) still running after Stop", pid, procCmdline(pid))
		}
	}
	if left := pidsReferencing(dir); len(left) > 0 {
		t.Errorf("processes naming %s still running after Stop: %v", dir, left)
	}
	if m := mountsUnder(dir); len(m) > 0 {
		t.Errorf("mounts left under %s: %v", dir, m)
	}
	if bridgeExists() {
		t.Errorf("bridge %s left after Stop", BridgeName)
	}
	if cg := kubepodsCgroups(); len(cg) > 0 {
		t.Errorf("cgroups left after Stop: %v", cg)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("state directory %s left after Stop (stat: %v)", dir, err)
	}
}

func waitServiceAnswers(ctx context.Context, t *testing.T, c *Cluster, ns, name string, port int) {
	t.Helper()
	svc, err := c.Clientset.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("http://%s/", net.JoinHostPort(svc.Spec.ClusterIP, strconv.Itoa(port)))
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := echo.Get(ctx, echo.Request{URL: url, Timeout: 2 * time.Second})
		if err == nil && res.Status == 200 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Service %s/%s (%s) does not answer from the node: %v\n%s", ns, name, url, err, debugState(ctx, c, ns))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func waitDefaultSA(ctx context.Context, t *testing.T, c *Cluster, ns string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := c.Clientset.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("default ServiceAccount in %s: %v", ns, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// debugState describes the pods and events of ns and the ends of the node
// components' logs, for a failure message.
func debugState(ctx context.Context, c *Cluster, ns string) string {
	var b strings.Builder
	for _, args := range [][]string{
		{"-n", ns, "get", "pods,svc,endpointslices", "-o", "wide"},
		{"-n", ns, "get", "events", "--sort-by=.lastTimestamp"},
		{"-n", ns, "describe", "pods"},
	} {
		out, err := c.Kubectl(ctx, args...)
		fmt.Fprintf(&b, "$ kubectl %s\n%s%v\n", strings.Join(args, " "), out, errOrEmpty(err))
	}
	for _, comp := range []string{"kubelet", "containerd", "kube-proxy", "coredns"} {
		fmt.Fprintf(&b, "--- %s log (end)\n%s\n", comp, c.LogTail(comp, 25))
	}
	return b.String()
}

func errOrEmpty(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// crashHelperEnv makes TestCrashHelper, run in a child process by
// TestCrashedRunIsCleanedUp, start a cluster and wait to be killed. Its value
// is the image tarballs to import, separated by commas.
const crashHelperEnv = "WEFT_CLUSTER_CRASH_HELPER_IMAGES"

// crashHelperReady is what TestCrashHelper prints once its pods run.
const crashHelperReady = "CRASH-HELPER-READY"

// TestCrashedRunIsCleanedUp kills a process that runs a cluster with pods
// (so shims, containers, mounts, cgroups, the bridge and iptables chains are
// left behind), then checks that the next Start cleans all of it up and that
// its Stop leaves nothing.
func TestCrashedRunIsCleanedUp(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("!!! SKIPPED: TestCrashedRunIsCleanedUp needs root (it runs containerd, a kubelet and iptables); run `go test ./tests/cluster/` as root")
	}
	if testing.Short() {
		t.Skip("starts a real cluster twice; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	tag := "crash-test"
	built, err := images.Build(ctx, images.BuildOptions{
		ModuleDir: moduleDir(), OutDir: t.TempDir(), Tag: tag,
		Images: []images.Image{pauseImage()},
	})
	if err != nil {
		t.Fatal(err)
	}

	helper := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashHelper$", "-test.v")
	helper.Env = append(os.Environ(), crashHelperEnv+"="+built[0].Tarball)
	stdout, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var helperOut strings.Builder
	helper.Stderr = &helperOut
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			helperOut.WriteString(s.Text() + "\n")
			if strings.Contains(s.Text(), crashHelperReady) {
				ready <- true
			}
		}
		close(ready)
	}()
	if !<-ready {
		helper.Wait()
		t.Fatalf("helper ended before its cluster ran pods:\n%s", helperOut.String())
	}
	// SIGKILL: no Stop, no deferred cleanup. The components die with it
	// (PDEATHSIG); shims, containers and everything on the machine stay.
	if err := helper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	helper.Wait()
	go func() {
		for range ready { // drain
		}
	}()
	if left := pidsReferencing(DefaultStateDir); len(left) == 0 {
		t.Errorf("no shim left after the crash: the test proves nothing")
	}
	if !bridgeExists() {
		t.Errorf("no bridge left after the crash: the test proves nothing")
	}

	c, err := Start(ctx, Options{Images: []string{built[0].Tarball}, ImageTag: tag, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if left := pidsReferencing(c.Dir); len(left) > 0 {
		t.Errorf("processes naming %s still running: %v", c.Dir, left)
	}
	if m := mountsUnder(c.Dir); len(m) > 0 {
		t.Errorf("mounts left under %s: %v", c.Dir, m)
	}
	if bridgeExists() {
		t.Errorf("bridge %s left", BridgeName)
	}
	if cg := kubepodsCgroups(); len(cg) > 0 {
		t.Errorf("cgroups left: %v", cg)
	}
	if out, err := exec.Command(filepath.Join(c.BinDir, "iptables-save")).Output(); err != nil || strings.Contains(string(out), "KUBE-") || strings.Contains(string(out), "CNI-") {
		t.Errorf("iptables-save (err %v) still has KUBE-/CNI- chains:\n%s", err, out)
	}
}

// TestCrashHelper is the process TestCrashedRunIsCleanedUp kills.
func TestCrashHelper(t *testing.T) {
	tarballs := os.Getenv(crashHelperEnv)
	if tarballs == "" {
		t.Skip("helper of TestCrashedRunIsCleanedUp")
	}
	ctx := context.Background()
	c, err := Start(ctx, Options{Images: strings.Split(tarballs, ","), ImageTag: "crash-test", Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	// A pod with a hostPort, so that portmap adds CNI-* chains too.
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "sleeper", Namespace: "default"},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name: "sleep", Image: "weft/pause:crash-test", ImagePullPolicy: corev1.PullNever,
				Ports: []corev1.ContainerPort{{ContainerPort: 9999, HostPort: 19999}},
			}},
		},
	}
	if _, err := c.Clientset.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Kubectl(ctx, "wait", "--for=condition=Ready", "pod/sleeper", "--timeout=90s"); err != nil {
		t.Fatal(err)
	}
	fmt.Println(crashHelperReady)
	time.Sleep(time.Hour) // until killed
}

func pauseImage() images.Image {
	for _, img := range images.Weft() {
		if img.Repo == images.PauseRepo {
			return img
		}
	}
	panic("no pause image in images.Weft()")
}
