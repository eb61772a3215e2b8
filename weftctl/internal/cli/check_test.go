package cli

import (
	"path/filepath"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/weftmesh/weft/tests/kube"
)

// TestCheck runs weftctl check against its own apiserver (it installs CRDs
// and a simulated Weft install, which the other kube tests must not see).
// With no kubelet, the Deployment, DaemonSet and pod statuses are set by
// the test.
func TestCheck(t *testing.T) {
	c := kube.StartT(t)
	kc := writeKubeconfig(t, c.Config)
	addImpersonatingContext(t, kc, "jane")
	t.Setenv("KUBECONFIG", kc) // some cases pass --kubeconfig instead
	cs := c.Clientset()
	ctx := t.Context()

	// Pre-install checks pass with admin credentials.
	code, out, errOut := run(t, "check", "--pre", "--kubeconfig", kc)
	if code != 0 {
		t.Fatalf("check --pre: exit %d, stderr %s", code, errOut)
	}
	mustContain(t, "check --pre output", out, "Pre-install checks\n",
		"✓ cluster reachable at "+c.Config.Host, `(kubeconfig `+kc+`, context "test")`,
		"✓ Kubernetes v1.36.3 (1.29 or later)",
		"✓ allowed to create the chart's cluster-scoped objects and its objects in namespace weft-system",
		"✓ Gateway API CRDs not installed: the chart installs them",
		"✓ no Istio or Linkerd sidecar injector or CNI found")
	noMarks(t, "check --pre output", out)
	if strings.Contains(out, "Post-install") {
		t.Errorf("check --pre ran the post-install checks:\n%s", out)
	}

	// A user who may do nothing.
	code, out, errOut = run(t, "check", "--pre", "--kubeconfig", kc, "--context", "jane")
	if code != 1 {
		t.Errorf("check --pre as jane: exit %d, want 1", code)
	}
	mustContain(t, "check --pre as jane output", out,
		"✗ not allowed to create namespaces, customresourcedefinitions.apiextensions.k8s.io, clusterroles.rbac.authorization.k8s.io",
		"install as a cluster admin", "! could not check the Gateway API CRDs", "! could not check for Istio or Linkerd")
	mustContain(t, "check --pre as jane stderr", errOut, "1 check(s) failed")

	// Another mesh's injector is a warning, not a failure.
	hooks := cs.AdmissionregistrationV1().MutatingWebhookConfigurations()
	if _, err := hooks.Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "istio-sidecar-injector"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	code, out, _ = run(t, "check", "--pre", "--kubeconfig", kc)
	if code != 0 {
		t.Errorf("check --pre with Istio: exit %d, want 0", code)
	}
	mustContain(t, "check --pre with Istio output", out,
		"! another mesh is installed: mutatingwebhookconfiguration istio-sidecar-injector\n    do not enroll a namespace in both meshes")
	if err := hooks.Delete(ctx, "istio-sidecar-injector", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	// Post-install checks on a cluster without Weft.
	code, out, errOut = run(t, "check", "--kubeconfig", kc)
	if code != 1 {
		t.Errorf("check on an empty cluster: exit %d, want 1", code)
	}
	mustContain(t, "check output (empty cluster)", out,
		"✓ cluster reachable", "Post-install checks (namespace weft-system)\n",
		"✗ Weft CRDs not installed: authorizationpolicies.weftmesh.io, trafficpolicies.weftmesh.io\n    install Weft with: helm install weft charts/weft --namespace weft-system --create-namespace",
		"✗ control plane Deployment weft-control-plane not found in namespace weft-system\n    is Weft installed in namespace weft-system?",
		"✗ node proxy DaemonSet weft-node-proxy not found in namespace weft-system",
		"✗ trust bundle ConfigMap weft-trust-bundle not found in namespace weft-system\n    the control plane publishes it once it runs; see why it has not with: kubectl -n weft-system logs deploy/weft-control-plane",
		"✓ no namespace enrolled yet")
	mustContain(t, "check stderr (empty cluster)", errOut, "4 check(s) failed")

	// Install: CRDs, a control plane not ready yet, a node proxy ready on
	// one node of two.
	if err := c.ApplyChartCRDs(ctx); err != nil {
		t.Fatalf("apply chart CRDs: %v", err)
	}
	const ns = "weft-system"
	createNamespace(t, cs, ns, nil, nil)
	for _, sa := range []string{controlPlaneName, nodeProxyName} {
		if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cpLabels := map[string]string{"app.kubernetes.io/name": "weft", "app.kubernetes.io/instance": "weft", "app.kubernetes.io/component": "control-plane"}
	npLabels := map[string]string{"app.kubernetes.io/name": "weft", "app.kubernetes.io/instance": "weft", "app.kubernetes.io/component": "node-proxy"}
	replicas := int32(2)
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: controlPlaneName},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: cpLabels},
			Template: podTemplate(cpLabels, controlPlaneName, nil),
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bundleVolume := []corev1.Volume{{Name: trustBundleVolume, VolumeSource: corev1.VolumeSource{
		ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: trustBundleName}}}}}
	if _, err := cs.AppsV1().DaemonSets(ns).Create(ctx, &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: nodeProxyName},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: npLabels},
			Template: podTemplate(npLabels, nodeProxyName, bundleVolume),
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	setDaemonSetStatus(t, cs, ns, 2, 1)
	for node, ready := range map[string]bool{"node-a": true, "node-b": false} {
		tmpl := podTemplate(npLabels, nodeProxyName, nil)
		pod, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "weft-node-proxy-" + node, Labels: npLabels},
			Spec:       withNode(tmpl.Spec, node),
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if ready {
			pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
			if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}

	code, out, errOut = run(t, "check", "--kubeconfig", kc)
	if code != 1 {
		t.Errorf("check with a control plane not ready: exit %d, want 1", code)
	}
	mustContain(t, "check output (not ready)", out,
		"✓ Gateway API CRDs installed",
		"✓ Weft CRDs installed and Established",
		"✗ control plane Deployment weft-control-plane has no ready replica (0/2 ready)\n    see why with: kubectl -n weft-system logs deploy/weft-control-plane",
		"✗ node proxy DaemonSet weft-node-proxy: 1/2 ready; not ready on: node-b\n",
		"✗ trust bundle ConfigMap weft-trust-bundle not found")
	mustContain(t, "check stderr (not ready)", errOut, "3 check(s) failed")

	// Everything ready, the trust bundle published, a namespace enrolled.
	d, err := cs.AppsV1().Deployments(ns).Get(ctx, controlPlaneName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 2}
	if _, err := cs.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	setDaemonSetStatus(t, cs, ns, 2, 2)
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: trustBundleName},
		Data:       map[string]string{trustBundleKey: "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createNamespace(t, cs, "shop", nil, map[string]string{meshKey: meshEnabled})
	createNamespace(t, cs, "labelled", map[string]string{meshKey: meshEnabled}, nil)
	createNamespace(t, cs, "outside", nil, nil)
	if _, err := cs.CoreV1().ServiceAccounts("shop").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, ann := range map[string]map[string]string{"web": nil, "api": nil, "batch": {meshKey: meshDisabled}} {
		if _, err := cs.CoreV1().Pods("shop").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann, Labels: map[string]string{"app": name}},
			Spec:       corev1.PodSpec{ServiceAccountName: "app", Containers: []corev1.Container{{Name: "c", Image: "app"}}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	code, out, errOut = run(t, "check")
	if code != 0 {
		t.Fatalf("check of a healthy install: exit %d, stderr %s", code, errOut)
	}
	mustContain(t, "check output (healthy)", out,
		"✓ Weft CRDs installed and Established (authorizationpolicies.weftmesh.io, trafficpolicies.weftmesh.io)",
		"✓ control plane Deployment weft-control-plane available (2/2 ready)",
		"✓ node proxy DaemonSet weft-node-proxy ready on every node (2/2)",
		"✓ trust bundle ConfigMap weft-trust-bundle published",
		"✓ 2 enrolled namespaces: labelled (0 pods), shop (2 pods)")
	noMarks(t, "check output (healthy)", out)

	// A NodePort Service in front of a STRICT pod is flagged; a
	// LoadBalancer in front of a permissive one, or of an opted-out one,
	// is not.
	if _, err := cs.CoreV1().Pods("shop").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "edge", Labels: map[string]string{"app": "edge"}, Annotations: map[string]string{inboundKey: "permissive"}},
		Spec:       corev1.PodSpec{ServiceAccountName: "app", Containers: []corev1.Container{{Name: "c", Image: "app"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, typ := range map[string]corev1.ServiceType{"web": corev1.ServiceTypeNodePort, "edge": corev1.ServiceTypeLoadBalancer, "batch": corev1.ServiceTypeNodePort} {
		if _, err := cs.CoreV1().Services("shop").Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name + "-public"},
			Spec: corev1.ServiceSpec{Type: typ, Selector: map[string]string{"app": name},
				Ports: []corev1.ServicePort{{Port: 80}}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	code, out, _ = run(t, "check")
	if code != 0 {
		t.Errorf("check with an exposed STRICT pod: exit %d, want 0 (a warning)", code)
	}
	mustContain(t, "check output (exposed)", out,
		"! STRICT pods behind Services reachable from outside the mesh: shop/web-public (NodePort, 1 STRICT pod)",
		"weftmesh.io/inbound: permissive")
	if strings.Contains(out, "edge-public") || strings.Contains(out, "batch-public") {
		t.Errorf("check flags a Service of permissive or opted-out pods:\n%s", out)
	}

	// Another namespace holds no install.
	code, out, _ = run(t, "check", "-n", "mesh")
	if code != 1 {
		t.Errorf("check -n mesh: exit %d, want 1", code)
	}
	mustContain(t, "check -n mesh output", out, "Post-install checks (namespace mesh)",
		"✗ control plane Deployment weft-control-plane not found in namespace mesh",
		"Install with: helm install weft charts/weft --namespace mesh --create-namespace\n    (or name its namespace with -n)")

	// An unreachable cluster.
	code, out, errOut = run(t, "check", "--context", "broken")
	if code != 1 {
		t.Errorf("check of an unreachable cluster: exit %d, want 1", code)
	}
	mustContain(t, "check output (unreachable)", out, "✗ cluster at https://127.0.0.1:1 is not reachable", `context "broken"`, "kubectl cluster-info")
	mustContain(t, "check stderr (unreachable)", errOut, "cannot reach the cluster", `context "broken"`)
	if strings.Contains(out, "Post-install") {
		t.Errorf("check went on after failing to reach the cluster:\n%s", out)
	}
}

// noMarks fails unless every check in out passed.
func noMarks(t *testing.T, what, out string) {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "✗") || strings.HasPrefix(line, "!") || strings.HasPrefix(line, "    ") {
			t.Errorf("%s has a failure, warning or hint: %q", what, line)
		}
	}
}

// addImpersonatingContext adds to the kubeconfig at path a context named
// user that uses the admin credentials to impersonate user, who has no
// permissions besides those of system:authenticated.
func addImpersonatingContext(t *testing.T, path, user string) {
	t.Helper()
	kc, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ai := *kc.AuthInfos["admin"]
	ai.Impersonate = user
	kc.AuthInfos[user] = &ai
	kc.Contexts[user] = &clientcmdapi.Context{Cluster: "test", AuthInfo: user}
	if err := clientcmd.WriteToFile(*kc, filepath.Clean(path)); err != nil {
		t.Fatal(err)
	}
}

func podTemplate(labels map[string]string, sa string, volumes []corev1.Volume) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{
			ServiceAccountName: sa,
			Containers:         []corev1.Container{{Name: "c", Image: "weft"}},
			Volumes:            volumes,
		},
	}
}

func withNode(spec corev1.PodSpec, node string) corev1.PodSpec {
	spec.NodeName = node
	return spec
}

func setDaemonSetStatus(t *testing.T, cs kubernetes.Interface, ns string, desired, ready int32) {
	t.Helper()
	ds, err := cs.AppsV1().DaemonSets(ns).Get(t.Context(), nodeProxyName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ds.Status = appsv1.DaemonSetStatus{ObservedGeneration: ds.Generation, DesiredNumberScheduled: desired,
		CurrentNumberScheduled: desired, UpdatedNumberScheduled: desired, NumberReady: ready, NumberAvailable: ready,
		NumberUnavailable: desired - ready}
	if _, err := cs.AppsV1().DaemonSets(ns).UpdateStatus(t.Context(), ds, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestCheckHelp(t *testing.T) {
	code, out, errOut := run(t, "check", "--help")
	if code != 0 {
		t.Fatalf("check --help: exit %d, stderr %s", code, errOut)
	}
	mustContain(t, "check --help", out, "Examples:", "weftctl check --pre", "--kubeconfig", "--context", "--pre", "-n, --namespace string", `(default "weft-system")`)
}

func TestCheckVersion(t *testing.T) {
	for _, tc := range []struct{ version, want string }{
		{"v1.29.0", "✓ Kubernetes v1.29.0 (1.29 or later)\n"},
		{"v1.31.4-eks-1234", "✓ Kubernetes v1.31.4-eks-1234 (1.29 or later)\n"},
		{"v1.28.9", "✗ Kubernetes v1.28.9 is older than 1.29\n    upgrade the cluster to Kubernetes 1.29 or later\n"},
		{"v0.0.0-master+$Format:%H$", "! Kubernetes version \"v0.0.0-master+$Format:%H$\": cannot tell whether it is 1.29 or later\n    Weft needs Kubernetes 1.29 or later; check with: kubectl version\n"},
	} {
		var b strings.Builder
		checkVersion(&checker{out: &b}, tc.version)
		if b.String() != tc.want {
			t.Errorf("checkVersion(%q):\n%s\nwant:\n%s", tc.version, b.String(), tc.want)
		}
	}
}
