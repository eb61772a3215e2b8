package chart

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"

	"github.com/weftmesh/weft/tests/kube"
	"github.com/weftmesh/weft/tests/sandbox"
)

// chartRBAC is the control plane's identity and permissions as the chart
// renders them with the default values.
type chartRBAC struct {
	sa                 *corev1.ServiceAccount
	clusterRole        *rbacv1.ClusterRole
	clusterRoleBinding *rbacv1.ClusterRoleBinding
	role               *rbacv1.Role
	roleBinding        *rbacv1.RoleBinding
	deployment         *appsv1.Deployment
}

const cpName = "weft-control-plane" // weft.controlPlane.name for release "weft"

func fromUnstructured[T any](t *testing.T, o *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, out, true); err != nil {
		t.Fatalf("decode %s %s: %v", o.GetKind(), o.GetName(), err)
	}
	return out
}

// renderedRBAC picks the control plane's ServiceAccount, RBAC objects and
// Deployment out of `helm template` with the default values.
func renderedRBAC(t *testing.T) *chartRBAC {
	t.Helper()
	var r chartRBAC
	for _, o := range objects(t, render(t, "")) {
		if o.GetName() != cpName {
			continue
		}
		switch o.GetKind() {
		case "ServiceAccount":
			r.sa = fromUnstructured[corev1.ServiceAccount](t, o)
		case "ClusterRole":
			r.clusterRole = fromUnstructured[rbacv1.ClusterRole](t, o)
		case "ClusterRoleBinding":
			r.clusterRoleBinding = fromUnstructured[rbacv1.ClusterRoleBinding](t, o)
		case "Role":
			r.role = fromUnstructured[rbacv1.Role](t, o)
		case "RoleBinding":
			r.roleBinding = fromUnstructured[rbacv1.RoleBinding](t, o)
		case "Deployment":
			r.deployment = fromUnstructured[appsv1.Deployment](t, o)
		}
	}
	if r.sa == nil || r.clusterRole == nil || r.clusterRoleBinding == nil || r.role == nil || r.roleBinding == nil || r.deployment == nil {
		t.Fatalf("rendered chart lacks one of ServiceAccount, ClusterRole, ClusterRoleBinding, Role, RoleBinding, Deployment named %s", cpName)
	}
	return &r
}

// grant is one (apiGroup, resource, resourceName) -> verbs entry; name ""
// means any object.
type grant struct{ group, resource, name string }

// grants flattens policy rules; wildcards and nonResourceURLs are reported.
func grants(t *testing.T, what string, rules []rbacv1.PolicyRule) map[grant][]string {
	t.Helper()
	out := map[grant][]string{}
	for i, r := range rules {
		if len(r.NonResourceURLs) > 0 {
			t.Errorf("%s rule %d grants nonResourceURLs %v", what, i, r.NonResourceURLs)
		}
		for _, v := range [][]string{r.APIGroups, r.Resources, r.Verbs, r.ResourceNames} {
			if slices.Contains(v, "*") {
				t.Errorf("%s rule %d uses a wildcard: %+v", what, i, r)
			}
		}
		names := r.ResourceNames
		if len(names) == 0 {
			names = []string{""}
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, n := range names {
					k := grant{g, res, n}
					for _, v := range r.Verbs {
						if !slices.Contains(out[k], v) {
							out[k] = append(out[k], v)
						}
					}
					slices.Sort(out[k])
				}
			}
		}
	}
	return out
}

// checkGrants compares got with want exactly: a missing grant breaks the
// control plane, an extra one is more than it needs.
func checkGrants(t *testing.T, what string, got, want map[grant][]string) {
	t.Helper()
	for k, w := range want {
		w = slices.Sorted(slices.Values(w))
		if g := got[k]; !slices.Equal(g, w) {
			t.Errorf("%s: %s/%s name=%q: verbs %v, want %v", what, k.group, k.resource, k.name, g, w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s grants %v on %s/%s name=%q, which no code path of the control plane needs", what, g, k.group, k.resource, k.name)
		}
	}
}

// checkRBACMinimal asserts the chart's RBAC for the control plane is
// exactly what the code needs: TestControlPlaneWithChartRBAC proves it is
// enough, this proves it is no more.
func checkRBACMinimal(t *testing.T, r *chartRBAC) {
	t.Helper()
	cluster := grants(t, "ClusterRole", r.clusterRole.Rules)
	checkGrants(t, "ClusterRole", cluster, map[grant][]string{
		// source/kube informers (kinds.go: list+watch); namespaces and pods
		// are also read one by one by source/kube/pods.go (workload SVID
		// requests) and kubeauth/tokenreview.go (pod of a bound token).
		{"", "namespaces", ""}: {"get", "list", "watch"},
		{"", "pods", ""}:       {"get", "list", "watch"},
		// source/kube informers only.
		{"", "services", ""}:                       {"list", "watch"},
		{"discovery.k8s.io", "endpointslices", ""}: {"list", "watch"},
		// Informers, plus status/kubewriter (writer.go: Get, then UpdateStatus).
		{"gateway.networking.k8s.io", "httproutes", ""}:        {"get", "list", "watch"},
		{"gateway.networking.k8s.io", "grpcroutes", ""}:        {"get", "list", "watch"},
		{"gateway.networking.k8s.io", "httproutes/status", ""}: {"update"},
		{"gateway.networking.k8s.io", "grpcroutes/status", ""}: {"update"},
		{"weftmesh.io", "trafficpolicies", ""}:                 {"get", "list", "watch"},
		{"weftmesh.io", "authorizationpolicies", ""}:           {"get", "list", "watch"},
		{"weftmesh.io", "trafficpolicies/status", ""}:          {"update"},
		{"weftmesh.io", "authorizationpolicies/status", ""}:    {"update"},
		// kubeauth/tokenreview.go: node proxies bootstrap with a token.
		{"authentication.k8s.io", "tokenreviews", ""}: {"create"},
	})
	// Spelled out, whatever the table above says: the control plane never
	// writes the core objects it watches, and reads no Secret or ConfigMap
	// outside its own namespace.
	writes := []string{"create", "update", "patch", "delete", "deletecollection"}
	for _, res := range []grant{{"", "pods", ""}, {"", "services", ""}, {"", "namespaces", ""}, {"discovery.k8s.io", "endpointslices", ""}, {"", "pods/status", ""}, {"", "services/status", ""}} {
		for _, v := range cluster[res] {
			if slices.Contains(writes, v) {
				t.Errorf("ClusterRole grants %s on %s/%s", v, res.group, res.resource)
			}
		}
	}
	for k := range cluster {
		if k.group == "" && (k.resource == "secrets" || k.resource == "configmaps") {
			t.Errorf("ClusterRole grants %v on %s cluster-wide", cluster[k], k.resource)
		}
		if k.group == "coordination.k8s.io" {
			t.Errorf("ClusterRole grants %v on leases cluster-wide", cluster[k])
		}
	}

	// The Role: create cannot be limited by resourceNames, every other verb
	// must be limited to the one object the control plane owns.
	role := grants(t, "Role", r.role.Rules)
	checkGrants(t, "Role", role, map[grant][]string{
		// controlplane/leader.go: client-go LeaseLock Get, Create, Update.
		{"coordination.k8s.io", "leases", ""}:                   {"create"},
		{"coordination.k8s.io", "leases", "weft-control-plane"}: {"get", "update"},
		// source/kube/castore.go: Get the CA Secret; Create it when absent.
		{"", "secrets", ""}:        {"create"},
		{"", "secrets", "weft-ca"}: {"get"},
		// controlplane.go publishBundle: Update, falling back to Create.
		{"", "configmaps", ""}:                  {"create"},
		{"", "configmaps", "weft-trust-bundle"}: {"update"},
	})
	for k, verbs := range role {
		if k.name == "" && !slices.Equal(verbs, []string{"create"}) {
			t.Errorf("Role grants %v on every %s/%s, not limited by resourceNames", verbs, k.group, k.resource)
		}
	}
	if r.role.Namespace != namespace {
		t.Errorf("Role in namespace %q, want %q", r.role.Namespace, namespace)
	}

	// Bindings: to the roles above, for the control plane's ServiceAccount only.
	wantSubjects := []rbacv1.Subject{{Kind: "ServiceAccount", Name: r.sa.Name, Namespace: namespace}}
	if rr := r.clusterRoleBinding.RoleRef; rr.Kind != "ClusterRole" || rr.Name != r.clusterRole.Name {
		t.Errorf("ClusterRoleBinding roleRef = %+v", rr)
	}
	if rr := r.roleBinding.RoleRef; rr.Kind != "Role" || rr.Name != r.role.Name {
		t.Errorf("RoleBinding roleRef = %+v", rr)
	}
	for what, s := range map[string][]rbacv1.Subject{"ClusterRoleBinding": r.clusterRoleBinding.Subjects, "RoleBinding": r.roleBinding.Subjects} {
		if !slices.Equal(s, wantSubjects) {
			t.Errorf("%s subjects = %+v, want %+v", what, s, wantSubjects)
		}
	}
	if got := r.deployment.Spec.Template.Spec.ServiceAccountName; got != r.sa.Name {
		t.Errorf("Deployment runs as service account %q, want %q", got, r.sa.Name)
	}
	if a := r.deployment.Spec.Template.Spec.AutomountServiceAccountToken; a != nil && !*a {
		t.Error("Deployment disables the service-account token the control plane needs")
	}
}

// TestControlPlaneWithChartRBAC runs the real weft-control-plane binary,
// with the chart's flags, against the apiserver as the chart's
// ServiceAccount with exactly the chart's RBAC: it must become ready, lead,
// create the CA Secret and the trust bundle, and write route status,
// without a single permission error; and the RBAC must be no broader than
// the code needs.
func TestControlPlaneWithChartRBAC(t *testing.T) {
	a := newApplier(t) // CRDs for real, namespace weft-system
	c := kube.Require(t, cluster)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cs := c.Clientset()
	r := renderedRBAC(t)
	t.Run("no more than needed", func(t *testing.T) { checkRBACMinimal(t, r) })

	// 1. Only the control plane's identity and RBAC, for real.
	for _, o := range objects(t, render(t, "")) {
		if o.GetName() != cpName {
			continue
		}
		switch o.GetKind() {
		case "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
			if err := a.apply(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
	}
	user := "system:serviceaccount:" + namespace + ":" + r.sa.Name

	// What the binding does not allow, asked of the apiserver's authorizer.
	t.Run("authorizer refuses", func(t *testing.T) {
		for _, ra := range []authorizationv1.ResourceAttributes{
			{Verb: "list", Resource: "secrets", Namespace: namespace},
			{Verb: "get", Resource: "secrets", Namespace: namespace, Name: "someone-elses"},
			{Verb: "get", Resource: "secrets", Namespace: "default", Name: "weft-ca"},
			{Verb: "delete", Resource: "secrets", Namespace: namespace, Name: "weft-ca"},
			{Verb: "update", Resource: "configmaps", Namespace: namespace, Name: "other"},
			{Verb: "update", Group: "coordination.k8s.io", Resource: "leases", Namespace: namespace, Name: "other"},
			{Verb: "create", Resource: "pods", Namespace: "default"},
			{Verb: "delete", Resource: "pods", Namespace: "default", Name: "x"},
			{Verb: "update", Resource: "services", Namespace: "default", Name: "x"},
			{Verb: "patch", Resource: "namespaces", Name: "default"},
			{Verb: "create", Group: "discovery.k8s.io", Resource: "endpointslices", Namespace: "default"},
			{Verb: "update", Group: "gateway.networking.k8s.io", Resource: "httproutes", Namespace: "default", Name: "x"},
		} {
			sar, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
				Spec: authorizationv1.SubjectAccessReviewSpec{User: user, ResourceAttributes: &ra},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if sar.Status.Allowed {
				t.Errorf("%s may %s %s %s/%s", user, ra.Verb, ra.Resource, ra.Namespace, ra.Name)
			}
		}
	})

	// 2. A token of the ServiceAccount, a kubeconfig with it, the binary.
	token, err := c.ServiceAccountToken(ctx, namespace, r.sa.Name, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    token: %s
contexts:
- name: test
  context: {cluster: test, user: %s}
current-context: test
`, c.URL, base64.StdEncoding.EncodeToString(c.CACert), r.sa.Name, token, r.sa.Name), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := sandbox.BuildBinaries(dir, "weft-control-plane"); err != nil {
		t.Fatal(err)
	}

	const podName = "weft-control-plane-7d9f-test"
	ports := loopbackPorts(t, 2)
	args := chartArgs(t, r.deployment, map[string]string{
		"--listen":       "127.0.0.1:" + strconv.Itoa(ports[0]),
		"--admin-listen": "127.0.0.1:" + strconv.Itoa(ports[1]),
	}, map[string]string{"POD_NAME": podName, "POD_NAMESPACE": namespace})
	args = append(args, "--kubeconfig="+kubeconfig)
	logPath := filepath.Join(dir, "control-plane.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(filepath.Join(dir, "weft-control-plane"), args...)
	cmd.Env = append(os.Environ(), "POD_NAME="+podName, "POD_NAMESPACE="+namespace)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("--- weft-control-plane %s ---\n%s", strings.Join(args, " "), out)
		}
	})

	// 3. An enrolled namespace with a Service, a Pod and an HTTPRoute.
	// Its own namespace per run: the package shares one apiserver (-count=N).
	app := "rbac-shop-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	mustCreate(t, func() error {
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: app,
			Labels: map[string]string{"weftmesh.io/mesh": "enabled"}}}, metav1.CreateOptions{})
		return err
	})
	mustCreate(t, func() error {
		_, err := cs.CoreV1().ServiceAccounts(app).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "web"}}, metav1.CreateOptions{})
		return err
	})
	mustCreate(t, func() error {
		_, err := cs.CoreV1().Services(app).Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "web"},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
				Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), AppProtocol: ptr("http")}}},
		}, metav1.CreateOptions{})
		return err
	})
	pod, err := cs.CoreV1().Pods(app).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{NodeName: "node-a", ServiceAccountName: "web",
			Containers: []corev1.Container{{Name: "web", Image: "weft-echo:dev", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status.Phase = corev1.PodRunning
	pod.Status.PodIP = "10.244.0.10"
	pod.Status.PodIPs = []corev1.PodIP{{IP: "10.244.0.10"}}
	if _, err := cs.CoreV1().Pods(app).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	routes := a.dyn.Resource(schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"}).Namespace(app)
	route := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
		"metadata": map[string]any{"name": "web"},
		"spec": map[string]any{
			"parentRefs": []any{map[string]any{"group": "", "kind": "Service", "name": "web", "port": int64(80)}},
			"rules": []any{map[string]any{
				"backendRefs": []any{map[string]any{"name": "web", "port": int64(80)}},
			}},
		},
	}}
	if _, err := routes.Create(ctx, route, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	waitFor(t, ctx, exited, logPath, "the control plane is ready (/readyz on its admin port)", func() error {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[1]))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %s", resp.Status)
		}
		return nil
	})
	waitFor(t, ctx, exited, logPath, "it holds the Lease", func() error {
		l, err := cs.CoordinationV1().Leases(namespace).Get(ctx, "weft-control-plane", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if h := l.Spec.HolderIdentity; h == nil || *h != podName {
			return fmt.Errorf("holder %v, want %s", ptrString(h), podName)
		}
		return nil
	})
	waitFor(t, ctx, exited, logPath, "it created the CA Secret", func() error {
		s, err := cs.CoreV1().Secrets(namespace).Get(ctx, "weft-ca", metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, k := range []string{"tls.crt", "tls.key", "ca.crt"} {
			if len(s.Data[k]) == 0 {
				return fmt.Errorf("no %s", k)
			}
		}
		return nil
	})
	waitFor(t, ctx, exited, logPath, "it published the trust bundle", func() error {
		cm, err := cs.CoreV1().ConfigMaps(namespace).Get(ctx, "weft-trust-bundle", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !strings.Contains(cm.Data["ca.crt"], "BEGIN CERTIFICATE") {
			return fmt.Errorf("ca.crt = %q", cm.Data["ca.crt"])
		}
		return nil
	})
	waitFor(t, ctx, exited, logPath, "it wrote Accepted=True on the HTTPRoute", func() error {
		u, err := routes.Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		parents, _, _ := unstructured.NestedSlice(u.Object, "status", "parents")
		for _, p := range parents {
			pm, _ := p.(map[string]any)
			if pm["controllerName"] != "weftmesh.io/mesh" {
				continue
			}
			conds, _, _ := unstructured.NestedSlice(pm, "conditions")
			for _, cd := range conds {
				cm, _ := cd.(map[string]any)
				if cm["type"] == "Accepted" && cm["status"] == "True" {
					return nil
				}
			}
			return fmt.Errorf("conditions %v", conds)
		}
		return fmt.Errorf("no parent status by weftmesh.io/mesh: %v", parents)
	})

	// Give the informers and the periodic loops a moment more to complain.
	time.Sleep(time.Second)
	for _, line := range permissionErrors(t, logPath) {
		t.Errorf("control plane log has a permission error: %s", line)
	}
}

// permissionErrors returns the lines of the control plane's log that say
// the apiserver refused it something.
func permissionErrors(t *testing.T, logPath string) []string {
	t.Helper()
	out, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var bad []string
	for _, line := range strings.Split(string(out), "\n") {
		l := strings.ToLower(line)
		for _, s := range []string{"forbidden", "cannot list", "cannot watch", "cannot get", "cannot create", "cannot update", "unauthorized"} {
			if strings.Contains(l, s) {
				bad = append(bad, line)
				break
			}
		}
	}
	return bad
}

// chartArgs returns the rendered control-plane container's args with
// $(VAR) expanded from env, as the kubelet does, and the flags in replace
// given new values; every flag in replace must be in the chart's args.
func chartArgs(t *testing.T, d *appsv1.Deployment, replace, env map[string]string) []string {
	t.Helper()
	var ctr *corev1.Container
	for i := range d.Spec.Template.Spec.Containers {
		if d.Spec.Template.Spec.Containers[i].Name == "control-plane" {
			ctr = &d.Spec.Template.Spec.Containers[i]
		}
	}
	if ctr == nil {
		t.Fatal("rendered Deployment has no control-plane container")
	}
	// The env the binary gets here stands in for the chart's downward API.
	var envNames []string
	for _, e := range ctr.Env {
		envNames = append(envNames, e.Name)
	}
	for name := range env {
		if !slices.Contains(envNames, name) {
			t.Fatalf("the chart's control-plane container has no env %s (has %v)", name, envNames)
		}
	}
	var args []string
	seen := map[string]bool{}
	for _, a := range ctr.Args {
		for k, v := range env {
			a = strings.ReplaceAll(a, "$("+k+")", v)
		}
		if strings.Contains(a, "$(") {
			t.Fatalf("chart arg %q refers to an env var this test does not set", a)
		}
		if name, _, ok := strings.Cut(a, "="); ok {
			if v, ok := replace[name]; ok {
				a, seen[name] = name+"="+v, true
			}
		}
		if strings.HasPrefix(a, "--kubeconfig") {
			t.Fatalf("chart passes %s", a)
		}
		args = append(args, a)
	}
	for name := range replace {
		if !seen[name] {
			t.Fatalf("the chart's control-plane args have no %s=: %v", name, ctr.Args)
		}
	}
	return args
}

// apply creates o for real (server-side apply, strict validation).
func (a *applier) apply(ctx context.Context, o *unstructured.Unstructured) error {
	gvk := o.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("%s %s: %w", gvk.Kind, o.GetName(), err)
	}
	var ri dynamic.ResourceInterface = a.dyn.Resource(m.Resource)
	if ns := o.GetNamespace(); ns != "" {
		ri = a.dyn.Resource(m.Resource).Namespace(ns)
	}
	body, err := o.MarshalJSON()
	if err != nil {
		return err
	}
	force := true
	if _, err := ri.Patch(ctx, o.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{
		FieldManager: "weft-chart-test", Force: &force, FieldValidation: "Strict",
	}); err != nil {
		return fmt.Errorf("apply %s %s/%s: %w", gvk.Kind, o.GetNamespace(), o.GetName(), err)
	}
	return nil
}

// waitFor polls check until it passes, the control plane exits, logs a
// permission error, or ctx ends.
func waitFor(t *testing.T, ctx context.Context, exited <-chan error, logPath, what string, check func() error) {
	t.Helper()
	var last error
	for {
		if last = check(); last == nil {
			return
		}
		if bad := permissionErrors(t, logPath); len(bad) > 0 {
			t.Fatalf("waiting until %s: the control plane was refused by the apiserver:\n%s", what, strings.Join(bad, "\n"))
		}
		select {
		case err := <-exited:
			t.Fatalf("waiting until %s: the control plane exited: %v", what, err)
		case <-ctx.Done():
			t.Fatalf("waiting until %s: %v (last: %v)", what, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func mustCreate(t *testing.T, create func() error) {
	t.Helper()
	if err := create(); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func loopbackPorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

func ptr[T any](v T) *T { return &v }

func ptrString(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}
