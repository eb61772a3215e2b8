package cli

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/tests/kube"
)

const gatewayCRDs = "../../../charts/weft/files/gateway-api"

// run runs weftctl with args and returns its exit code, stdout and stderr.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(args, &out, &errOut)
	t.Logf("weftctl %s: exit %d\nstdout:\n%sstderr:\n%s", strings.Join(args, " "), code, out.String(), errOut.String())
	return code, out.String(), errOut.String()
}

// writeKubeconfig writes a kubeconfig for cfg with two contexts: "test"
// (current) and "broken", whose server nothing listens on.
func writeKubeconfig(t *testing.T, cfg *rest.Config) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.Clusters["broken"] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:1", CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "admin"}
	kc.Contexts["broken"] = &clientcmdapi.Context{Cluster: "broken", AuthInfo: "admin"}
	kc.CurrentContext = "test"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestKubeCommands(t *testing.T) {
	c := kube.StartT(t)
	kc := writeKubeconfig(t, c.Config)
	t.Setenv("KUBECONFIG", kc) // the default loading path; some cases also pass --kubeconfig
	cs := c.Clientset()
	t.Run("enroll", func(t *testing.T) { testEnroll(t, kc, cs) })
	t.Run("errors", func(t *testing.T) { testKubeErrors(t, kc) })
	t.Run("identity", func(t *testing.T) { testIdentityKube(t, cs) })
	if err := c.ApplyCRDs(t.Context(), gatewayCRDs); err != nil {
		t.Fatalf("apply Gateway API CRDs: %v", err)
	}
	dc := dynamic.NewForConfigOrDie(rest.CopyConfig(c.Config))
	t.Run("canary", func(t *testing.T) { testCanary(t, kc, cs, dc) })
}

func createNamespace(t *testing.T, cs kubernetes.Interface, name string, labels, annotations map[string]string) {
	t.Helper()
	_, err := cs.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: name, Labels: labels, Annotations: annotations}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

func nsMeta(t *testing.T, cs kubernetes.Interface, name string) *corev1.Namespace {
	t.Helper()
	ns, err := cs.CoreV1().Namespaces().Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

func mustContain(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s does not contain %q:\n%s", what, w, got)
		}
	}
}

func testEnroll(t *testing.T, kc string, cs kubernetes.Interface) {
	ctx := t.Context()
	createNamespace(t, cs, "shop", map[string]string{"team": "a"}, map[string]string{"keep": "me"})
	// Two pods: one counts for the restart hint, one has opted out.
	if _, err := cs.CoreV1().ServiceAccounts("shop").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, ann := range map[string]map[string]string{"web": nil, "batch": {meshKey: meshDisabled}} {
		if _, err := cs.CoreV1().Pods("shop").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann},
			Spec:       corev1.PodSpec{ServiceAccountName: "app", Containers: []corev1.Container{{Name: "c", Image: "app"}}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	code, out, errOut := run(t, "enroll", "shop", "--kubeconfig", kc)
	if code != 0 {
		t.Fatalf("enroll: exit %d, stderr %s", code, errOut)
	}
	mustContain(t, "enroll output", out, `enrolled namespace "shop": set annotation weftmesh.io/mesh: enabled`,
		"1 existing pod(s) are enrolled only when recreated", "kubectl rollout restart deployment,statefulset,daemonset -n shop")
	ns := nsMeta(t, cs, "shop")
	if got := ns.Annotations; !reflect.DeepEqual(got, map[string]string{"keep": "me", meshKey: meshEnabled}) {
		t.Errorf("annotations after enroll: %v", got)
	}
	if ns.Labels["team"] != "a" {
		t.Errorf("labels after enroll: %v", ns.Labels)
	}

	// Again: nothing changes, not an error.
	rv := ns.ResourceVersion
	code, out, errOut = run(t, "enroll", "shop")
	if code != 0 {
		t.Fatalf("second enroll: exit %d, stderr %s", code, errOut)
	}
	mustContain(t, "second enroll output", out, `namespace "shop" is already enrolled`)
	if got := nsMeta(t, cs, "shop").ResourceVersion; got != rv {
		t.Errorf("second enroll changed the namespace: resourceVersion %s -> %s", rv, got)
	}

	code, out, errOut = run(t, "unenroll", "shop")
	if code != 0 {
		t.Fatalf("unenroll: exit %d, stderr %s", code, errOut)
	}
	mustContain(t, "unenroll output", out, `namespace "shop" is no longer enrolled`, "1 existing pod(s) leave the mesh only when recreated")
	if got := nsMeta(t, cs, "shop").Annotations; !reflect.DeepEqual(got, map[string]string{"keep": "me"}) {
		t.Errorf("annotations after unenroll: %v", got)
	}
	code, out, _ = run(t, "unenroll", "shop")
	if code != 0 {
		t.Fatalf("second unenroll: exit %d", code)
	}
	mustContain(t, "second unenroll output", out, `namespace "shop" is not enrolled; nothing to do`)

	// An opted-out namespace annotation is replaced.
	createNamespace(t, cs, "off", nil, map[string]string{meshKey: meshDisabled})
	code, out, _ = run(t, "enroll", "off")
	if code != 0 || nsMeta(t, cs, "off").Annotations[meshKey] != meshEnabled {
		t.Fatalf("enroll off: exit %d, annotations %v", code, nsMeta(t, cs, "off").Annotations)
	}
	mustContain(t, "enroll off output", out, `changed from "disabled" to "enabled"`, "no running pods are affected")

	// Enrolled by label: enroll says so; unenroll fails and names the fix.
	createNamespace(t, cs, "labelled", map[string]string{meshKey: meshEnabled}, nil)
	code, out, _ = run(t, "enroll", "labelled")
	if code != 0 {
		t.Fatalf("enroll labelled: exit %d", code)
	}
	mustContain(t, "enroll labelled output", out, "already enrolled by its label weftmesh.io/mesh=enabled")
	if _, ok := nsMeta(t, cs, "labelled").Annotations[meshKey]; ok {
		t.Error("enroll of a namespace enrolled by label set the annotation")
	}
	code, _, errOut = run(t, "unenroll", "labelled")
	if code == 0 {
		t.Fatal("unenroll of a namespace enrolled by label succeeded")
	}
	mustContain(t, "unenroll labelled stderr", errOut, "kubectl label namespace labelled weftmesh.io/mesh-")
}

func testKubeErrors(t *testing.T, kc string) {
	code, _, errOut := run(t, "enroll", "nope")
	if code == 0 {
		t.Fatal("enroll of an unknown namespace succeeded")
	}
	mustContain(t, "stderr", errOut, `namespace "nope" not found`, `context "test"`)
	code, _, errOut = run(t, "unenroll", "nope")
	if code == 0 {
		t.Fatal("unenroll of an unknown namespace succeeded")
	}
	mustContain(t, "stderr", errOut, `namespace "nope" not found`)

	code, _, errOut = run(t, "enroll", "shop", "--kubeconfig", kc, "--context", "broken")
	if code == 0 {
		t.Fatal("enroll against an unreachable cluster succeeded")
	}
	mustContain(t, "stderr", errOut, "cannot reach the cluster", "kubeconfig "+kc, `context "broken"`, "127.0.0.1:1")

	code, _, errOut = run(t, "canary", "get", "r", "--context", "broken")
	if code == 0 {
		t.Fatal("canary get against an unreachable cluster succeeded")
	}
	mustContain(t, "stderr", errOut, "cannot reach the cluster", "$KUBECONFIG="+kc, `context "broken"`)

	code, _, errOut = run(t, "enroll", "shop", "--context", "missing")
	if code == 0 {
		t.Fatal("enroll with an unknown context succeeded")
	}
	mustContain(t, "stderr", errOut, `context "missing"`)

	// The Gateway API CRDs are not installed yet.
	code, _, errOut = run(t, "canary", "get", "reviews")
	if code == 0 {
		t.Fatal("canary get without the HTTPRoute CRD succeeded")
	}
	mustContain(t, "stderr", errOut, `HTTPRoute "reviews" not found in namespace "default"`, "are the Gateway API CRDs installed?")

	empty := filepath.Join(t.TempDir(), "empty")
	t.Setenv("KUBECONFIG", empty)
	t.Setenv("HOME", t.TempDir())
	code, _, errOut = run(t, "enroll", "shop")
	if code == 0 {
		t.Fatal("enroll with no kubeconfig succeeded")
	}
	mustContain(t, "stderr", errOut, "no cluster configured", "$KUBECONFIG="+empty)
}

const testRoute = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: reviews
  namespace: canary
  labels: {app: reviews}
  annotations: {owner: sre}
spec:
  parentRefs:
  - {group: "", kind: Service, name: reviews, port: 9080}
  rules:
  - name: api
    matches:
    - path: {type: PathPrefix, value: /api}
      headers: [{name: x-canary, value: "yes"}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {add: [{name: x-via, value: weft}]}
    backendRefs:
    - {name: reviews-v1, port: 9080, weight: 90}
    - {name: reviews-v2, port: 9080, weight: 10}
    timeouts: {request: 5s}
  - backendRefs:
    - {name: reviews-v1, port: 9080}
    - {name: other, port: 80, weight: 3}
`

// stripWeights returns u's spec, labels and annotations with every
// backendRef weight removed.
func stripWeights(t *testing.T, u *unstructured.Unstructured) map[string]any {
	t.Helper()
	cp := u.DeepCopy()
	rs, err := rules(cp)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		for _, b := range backendRefs(r) {
			delete(b, "weight")
		}
	}
	return map[string]any{"spec": cp.Object["spec"], "labels": cp.GetLabels(), "annotations": cp.GetAnnotations()}
}

// weights returns rule index -> backend name -> weight (-1 when unset).
func weights(t *testing.T, u *unstructured.Unstructured) []map[string]int64 {
	t.Helper()
	rs, err := rules(u)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]int64
	for _, r := range rs {
		m := map[string]int64{}
		for _, b := range backendRefs(r) {
			m[refName(b)] = -1
			if _, ok := b["weight"]; ok {
				m[refName(b)] = refWeight(b)
			}
		}
		out = append(out, m)
	}
	return out
}

func testCanary(t *testing.T, kc string, cs kubernetes.Interface, dc dynamic.Interface) {
	ctx := t.Context()
	createNamespace(t, cs, "canary", nil, nil)
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(testRoute), &obj); err != nil {
		t.Fatal(err)
	}
	routes := dc.Resource(httpRoutes).Namespace("canary")
	if _, err := routes.Create(ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	get := func() *unstructured.Unstructured {
		t.Helper()
		u, err := routes.Get(context.Background(), "reviews", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	before := get()

	code, out, errOut := run(t, "canary", "get", "reviews", "-n", "canary")
	if code != 0 {
		t.Fatalf("canary get: exit %d, stderr %s", code, errOut)
	}
	want := `RULE     BACKEND          WEIGHT  TRAFFIC
0 (api)  reviews-v1:9080  90      90%
0 (api)  reviews-v2:9080  10      10%
1        reviews-v1:9080  1       25%
1        other:80         3       75%
`
	if out != want {
		t.Errorf("canary get output:\n%s\nwant:\n%s", out, want)
	}

	code, out, errOut = run(t, "canary", "set", "reviews", "reviews-v1=70", "reviews-v2=30", "-n", "canary", "--kubeconfig", kc)
	if code != 0 {
		t.Fatalf("canary set: exit %d, stderr %s", code, errOut)
	}
	mustContain(t, "canary set output", out, "HTTPRoute canary/reviews: set weights in rule(s) 0, 1",
		"0 (api)  reviews-v1:9080  70      70%", "1        reviews-v1:9080  70      95.9%")
	after := get()
	if got, want := weights(t, after), []map[string]int64{{"reviews-v1": 70, "reviews-v2": 30}, {"reviews-v1": 70, "other": 3}}; !reflect.DeepEqual(got, want) {
		t.Errorf("weights after set: %v, want %v", got, want)
	}
	if b, a := stripWeights(t, before), stripWeights(t, after); !reflect.DeepEqual(b, a) {
		t.Errorf("canary set changed more than weights:\nbefore %v\nafter  %v", b, a)
	}

	// Errors leave the route as it is.
	rv := after.GetResourceVersion()
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"missing", "a=1"}, []string{`HTTPRoute "missing" not found in namespace "canary"`}},
		{[]string{"reviews", "reviews-v3=1", "reviews-v1=1"}, []string{"has no backend reviews-v3", "its backends are reviews-v1, reviews-v2, other"}},
		{[]string{"reviews", "reviews-v1=abc"}, []string{"must be a non-negative integer"}},
		{[]string{"reviews", "reviews-v1=-1"}, []string{"must be a non-negative integer"}},
		{[]string{"reviews", "reviews-v1=1.5"}, []string{"must be a non-negative integer"}},
		{[]string{"reviews", "reviews-v1=2000000"}, []string{"at most 1000000"}},
		{[]string{"reviews", "reviews-v1"}, []string{"want BACKEND=WEIGHT"}},
		{[]string{"reviews", "reviews-v1=1", "reviews-v1=2"}, []string{`backend "reviews-v1" given twice`}},
		{[]string{"reviews", "reviews-v1=0", "reviews-v2=0"}, []string{"refusing to set every weight of rule 0", "--force"}},
		{[]string{"reviews"}, []string{"requires at least 2 arg(s)"}},
	} {
		code, _, errOut := run(t, append([]string{"canary", "set", "-n", "canary"}, tc.args...)...)
		if code == 0 {
			t.Errorf("canary set %v succeeded", tc.args)
			continue
		}
		mustContain(t, "canary set "+strings.Join(tc.args, " ")+" stderr", errOut, tc.want...)
	}
	if got := get().GetResourceVersion(); got != rv {
		t.Errorf("failed canary sets changed the route: resourceVersion %s -> %s", rv, got)
	}

	// --force allows an all-zero rule; get shows the consequence.
	code, _, errOut = run(t, "canary", "set", "-n", "canary", "--force", "reviews", "reviews-v1=0", "reviews-v2=0")
	if code != 0 {
		t.Fatalf("canary set --force: exit %d, stderr %s", code, errOut)
	}
	if got, want := weights(t, get()), []map[string]int64{{"reviews-v1": 0, "reviews-v2": 0}, {"reviews-v1": 0, "other": 3}}; !reflect.DeepEqual(got, want) {
		t.Errorf("weights after set --force: %v, want %v", got, want)
	}
	_, out, _ = run(t, "canary", "get", "-n", "canary", "reviews")
	mustContain(t, "canary get output", out, "all weights 0: requests fail with 500", "1        other:80         3       100%")

	// Shell completion of namespaces, routes and backends from the cluster.
	_, out, _ = run(t, cobra.ShellCompRequestCmd, "enroll", "")
	mustContain(t, "enroll completion", out, "canary\n", "default\n")
	_, out, _ = run(t, cobra.ShellCompRequestCmd, "canary", "set", "-n", "canary", "")
	mustContain(t, "canary set route completion", out, "reviews\n")
	_, out, _ = run(t, cobra.ShellCompRequestCmd, "canary", "set", "-n", "canary", "reviews", "")
	mustContain(t, "canary set backend completion", out, "reviews-v1=\n", "reviews-v2=\n", "other=\n")

	code, _, errOut = run(t, "canary", "get", "-n", "canary", "missing")
	if code == 0 {
		t.Fatal("canary get of a missing route succeeded")
	}
	mustContain(t, "stderr", errOut, `HTTPRoute "missing" not found in namespace "canary"`)
}

func TestKubeHelp(t *testing.T) {
	for _, args := range [][]string{{"enroll"}, {"unenroll"}, {"canary", "set"}, {"canary", "get"}} {
		code, out, errOut := run(t, append(args, "--help")...)
		if code != 0 {
			t.Fatalf("%v --help: exit %d, stderr %s", args, code, errOut)
		}
		mustContain(t, strings.Join(args, " ")+" --help", out, "Examples:", "--kubeconfig", "--context")
	}
	code, out, _ := run(t, "completion", "bash")
	if code != 0 || !strings.Contains(out, "bash completion") {
		t.Errorf("completion bash: exit %d, output %.200s", code, out)
	}
}

// testIdentityKube covers what `weftctl identity` decides from the cluster
// alone: why a pod is outside the mesh, and a node with no node proxy.
// Reading a node proxy through a port-forward needs a kubelet: the
// end-to-end cluster suite covers it.
func testIdentityKube(t *testing.T, cs kubernetes.Interface) {
	ctx := t.Context()
	createNamespace(t, cs, "idplain", nil, nil)
	createNamespace(t, cs, "idmesh", nil, map[string]string{meshKey: meshEnabled})
	for _, ns := range []string{"idplain", "idmesh"} {
		if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pod := func(ns, name, node string, hostNet bool, ann map[string]string) {
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann},
			Spec: corev1.PodSpec{ServiceAccountName: "app", NodeName: node, HostNetwork: hostNet,
				Containers: []corev1.Container{{Name: "c", Image: "app"}}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pod("idplain", "web", "n1", false, nil)
	pod("idmesh", "host", "n1", true, nil)
	pod("idmesh", "optout", "n1", false, map[string]string{meshKey: meshDisabled})
	pod("idmesh", "pending", "", false, nil)
	pod("idmesh", "web", "n1", false, nil)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-n", "idplain", "web"}, "namespace idplain is not enrolled: weftctl enroll idplain"},
		{[]string{"-n", "idmesh", "host"}, "hostNetwork pods are never enrolled"},
		{[]string{"-n", "idmesh", "optout"}, "the pod opted out (annotation weftmesh.io/mesh: disabled)"},
		{[]string{"-n", "idmesh", "pending"}, "is not scheduled yet"},
		{[]string{"-n", "idmesh", "web"}, "runs on node n1, where no Weft node proxy runs"},
		{[]string{"-n", "idmesh", "ghost"}, "pod idmesh/ghost not found"},
	} {
		var out, errOut bytes.Buffer
		code := Main(append([]string{"identity"}, tc.args...), &out, &errOut)
		if code == 0 {
			t.Errorf("identity %v: exit 0, want 1", tc.args)
		}
		mustContain(t, fmt.Sprintf("identity %v output", tc.args), out.String()+errOut.String(), tc.want)
	}
}
