package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/client-go/kubernetes"
)

// Names of what `helm install weft charts/weft` creates with the default
// release name "weft" (see charts/weft).
const (
	defaultWeftNamespace = "weft-system"
	controlPlaneName     = "weft-control-plane"
	nodeProxyName        = "weft-node-proxy"
	trustBundleName      = "weft-trust-bundle"
	trustBundleVolume    = "trust-bundle" // the node proxy's volume of the trust bundle ConfigMap
	trustBundleKey       = "ca.crt"
)

// minKubeVersion is the oldest Kubernetes the chart supports: the Gateway
// API v1 routes, sidecar-free pod enrollment and bound service account
// tokens with pod and node claims all need 1.29 or later.
var minKubeVersion = version.MajorMinor(1, 29)

func installCommand(ns string) string {
	return "helm install weft charts/weft --namespace " + ns + " --create-namespace"
}

var (
	weftCRDs       = []string{"authorizationpolicies.weftmesh.io", "trafficpolicies.weftmesh.io"}
	gatewayAPICRDs = []string{"httproutes.gateway.networking.k8s.io", "grpcroutes.gateway.networking.k8s.io"}
)

type checkStatus int

const (
	checkOK checkStatus = iota
	checkWarn
	checkFail
)

func (s checkStatus) mark() string {
	switch s {
	case checkOK:
		return "✓"
	case checkWarn:
		return "!"
	default:
		return "✗"
	}
}

// checker runs checks and prints one line per check, plus a hint line
// under each that is not ✓.
type checker struct {
	out      io.Writer
	failures int
	warnings int
}

func (c *checker) report(s checkStatus, msg, hint string) {
	fmt.Fprintf(c.out, "%s %s\n", s.mark(), msg)
	if s != checkOK && hint != "" {
		for _, line := range strings.Split(hint, "\n") {
			fmt.Fprintf(c.out, "    %s\n", line)
		}
	}
	switch s {
	case checkWarn:
		c.warnings++
	case checkFail:
		c.failures++
	}
}

func (c *checker) ok(msg string)                  { c.report(checkOK, msg, "") }
func (c *checker) warn(msg, hint string)          { c.report(checkWarn, msg, hint) }
func (c *checker) fail(msg, hint string)          { c.report(checkFail, msg, hint) }
func (c *checker) header(format string, a ...any) { fmt.Fprintf(c.out, format+"\n", a...) }

func newCheckCmd() *cobra.Command {
	var (
		kf  kubeFlags
		pre bool
		ns  string
	)
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check that a cluster is ready for Weft, and that Weft is installed and healthy",
		Long: `Check a cluster before and after installing Weft. Each check prints one line:
✓ passed, ! warning, ✗ failed; each warning and failure is followed by a hint.
The exit status is 1 when any check failed.

Pre-install checks (always run first; only these with --pre):
  - the cluster is reachable with the kubeconfig and context in use;
  - Kubernetes is ` + minKubeVersion.String() + ` or later;
  - you may create what the chart creates: namespaces, CRDs, cluster roles
    and bindings, and in the namespace its Deployment, DaemonSet, Service,
    ServiceAccounts, Roles, ConfigMaps and PodDisruptionBudget;
  - whether the Gateway API CRDs are installed (the chart installs them
    when they are not);
  - no Istio or Linkerd sidecar injector webhook or CNI DaemonSet, which would
    conflict with Weft in the same pods.

Post-install checks (in the namespace of -n, default weft-system):
  - the Weft CRDs are installed and Established;
  - the control plane Deployment weft-control-plane has a ready replica;
  - every pod of the node proxy DaemonSet weft-node-proxy is ready (the
    nodes whose proxy is not ready are listed);
  - the trust bundle ConfigMap (weft-trust-bundle) is published;
  - the enrolled namespaces (weftmesh.io/mesh=enabled) and their pod counts, and
    STRICT pods behind NodePort or LoadBalancer Services (refused from outside the mesh).`,
		Example: `  # Before installing: can Weft go on this cluster?
  weftctl check --pre

  # After helm install weft charts/weft -n weft-system --create-namespace
  weftctl check

  # Weft installed in another namespace, on another cluster
  weftctl check -n mesh --kubeconfig ~/.kube/prod --context prod-eu`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			k, cs, err := kf.clientset()
			if err != nil {
				return err
			}
			ext, err := apiextensionsclient.NewForConfig(k.config)
			if err != nil {
				return fmt.Errorf("client for %s: %w", k.source, err)
			}
			c := &checker{out: cmd.OutOrStdout()}
			if err := runChecks(cmd.Context(), c, k, cs, ext, ns, pre); err != nil {
				return err
			}
			if c.failures > 0 {
				return fmt.Errorf("%d check(s) failed", c.failures)
			}
			return nil
		},
	}
	kf.register(cmd, false)
	cmd.Flags().BoolVar(&pre, "pre", false, "run only the pre-install checks")
	cmd.Flags().StringVarP(&ns, "namespace", "n", defaultWeftNamespace, "namespace Weft is (or will be) installed in")
	return cmd
}

// runChecks runs the checks; it returns an error only when the cluster
// cannot be reached, after reporting it.
func runChecks(ctx context.Context, c *checker, k *kubeClient, cs kubernetes.Interface, ext apiextensionsclient.Interface, ns string, pre bool) error {
	c.header("Pre-install checks")
	info, err := cs.Discovery().ServerVersion()
	if err != nil {
		err = k.wrap(err)
		c.fail(fmt.Sprintf("cluster at %s is not reachable (%s)", k.host, k.source),
			"check the cluster is up and that --kubeconfig/--context select the right one: kubectl cluster-info")
		return err
	}
	c.ok(fmt.Sprintf("cluster reachable at %s (%s)", k.host, k.source))
	checkVersion(c, info.GitVersion)
	checkAccess(ctx, c, cs, ns)
	checkGatewayAPI(ctx, c, ext)
	checkOtherMeshes(ctx, c, cs)
	if pre {
		return nil
	}

	c.header("")
	c.header("Post-install checks (namespace %s)", ns)
	checkWeftCRDs(ctx, c, ext, ns)
	checkControlPlane(ctx, c, cs, ns)
	bundle := checkNodeProxy(ctx, c, cs, ns)
	checkTrustBundle(ctx, c, cs, ns, bundle)
	checkEnrolled(ctx, c, cs)
	return nil
}

func checkVersion(c *checker, gitVersion string) {
	v, err := version.ParseGeneric(gitVersion)
	if err != nil || v.Major() == 0 {
		c.warn(fmt.Sprintf("Kubernetes version %q: cannot tell whether it is %s or later", gitVersion, minKubeVersion),
			fmt.Sprintf("Weft needs Kubernetes %s or later; check with: kubectl version", minKubeVersion))
		return
	}
	if !v.AtLeast(minKubeVersion) {
		c.fail(fmt.Sprintf("Kubernetes %s is older than %s", gitVersion, minKubeVersion),
			fmt.Sprintf("upgrade the cluster to Kubernetes %s or later", minKubeVersion))
		return
	}
	c.ok(fmt.Sprintf("Kubernetes %s (%s or later)", gitVersion, minKubeVersion))
}

type accessCheck struct {
	group, resource string
	namespaced      bool
}

func (a accessCheck) String() string {
	if a.group == "" {
		return a.resource
	}
	return a.resource + "." + a.group
}

// checkAccess asks, with SelfSubjectAccessReviews, whether the user may
// create every kind of object the chart creates.
func checkAccess(ctx context.Context, c *checker, cs kubernetes.Interface, ns string) {
	checks := []accessCheck{
		{"", "namespaces", false},
		{"apiextensions.k8s.io", "customresourcedefinitions", false},
		{"rbac.authorization.k8s.io", "clusterroles", false},
		{"rbac.authorization.k8s.io", "clusterrolebindings", false},
		{"apps", "deployments", true},
		{"apps", "daemonsets", true},
		{"", "services", true},
		{"", "serviceaccounts", true},
		{"", "configmaps", true},
		{"rbac.authorization.k8s.io", "roles", true},
		{"rbac.authorization.k8s.io", "rolebindings", true},
		{"policy", "poddisruptionbudgets", true},
	}
	var denied, unknown []string
	for _, a := range checks {
		attrs := &authorizationv1.ResourceAttributes{Verb: "create", Group: a.group, Resource: a.resource}
		if a.namespaced {
			attrs.Namespace = ns
		}
		r, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: attrs},
		}, metav1.CreateOptions{})
		switch {
		case err != nil:
			unknown = append(unknown, fmt.Sprintf("%s (%v)", a, err))
		case !r.Status.Allowed:
			denied = append(denied, a.String())
		}
	}
	switch {
	case len(denied) > 0:
		c.fail("not allowed to create "+strings.Join(denied, ", "),
			fmt.Sprintf("the chart creates cluster-scoped objects and objects in namespace %s: install as a cluster admin\n(check with: kubectl auth can-i create customresourcedefinitions)", ns))
	case len(unknown) > 0:
		c.warn("could not check permission to create "+strings.Join(unknown, ", "),
			"check with: kubectl auth can-i create customresourcedefinitions")
	default:
		c.ok(fmt.Sprintf("allowed to create the chart's cluster-scoped objects and its objects in namespace %s", ns))
	}
}

func checkGatewayAPI(ctx context.Context, c *checker, ext apiextensionsclient.Interface) {
	var missing, noV1, present []string
	owner := "" // the Helm release that installed them, when one did
	for _, name := range gatewayAPICRDs {
		crd, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			missing = append(missing, name)
			continue
		case err != nil:
			c.warn("could not check the Gateway API CRDs: "+err.Error(), "check with: kubectl get crd "+strings.Join(gatewayAPICRDs, " "))
			return
		}
		served := slices.ContainsFunc(crd.Spec.Versions, func(v apiextensionsv1.CustomResourceDefinitionVersion) bool {
			return v.Name == "v1" && v.Served
		})
		if !served {
			noV1 = append(noV1, name)
		} else {
			present = append(present, name)
		}
		if r := crd.Annotations["meta.helm.sh/release-name"]; r != "" {
			owner = crd.Annotations["meta.helm.sh/release-namespace"] + "/" + r
		}
	}
	switch {
	case len(noV1) > 0:
		c.warn("Gateway API CRDs installed without version v1: "+strings.Join(noV1, ", "),
			"Weft uses gateway.networking.k8s.io/v1 routes and the chart leaves CRDs it did not install alone:\nupgrade the Gateway API CRDs (kubectl apply --server-side -f charts/weft/files/gateway-api)")
	case len(missing) == len(gatewayAPICRDs):
		c.ok("Gateway API CRDs not installed: the chart installs them")
	case len(missing) > 0:
		c.ok(fmt.Sprintf("Gateway API CRDs: %s installed; the chart installs %s", strings.Join(present, ", "), strings.Join(missing, ", ")))
	case owner != "":
		c.ok("Gateway API CRDs installed (" + strings.Join(present, ", ") + ") by Helm release " + owner)
	default:
		c.ok("Gateway API CRDs installed (" + strings.Join(present, ", ") + "); the chart leaves CRDs it did not install as they are")
	}
}

// checkOtherMeshes warns about Istio or Linkerd sidecar injectors and CNI
// plugins, which would redirect the same pods' traffic.
func checkOtherMeshes(ctx context.Context, c *checker, cs kubernetes.Interface) {
	var found []string
	var errs []string
	hooks, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		errs = append(errs, "mutating webhooks: "+err.Error())
	} else {
		for _, h := range hooks.Items {
			if isOtherMesh(h.Name) {
				found = append(found, "mutatingwebhookconfiguration "+h.Name)
			}
		}
	}
	dss, err := cs.AppsV1().DaemonSets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		errs = append(errs, "DaemonSets: "+err.Error())
	} else {
		for _, d := range dss.Items {
			if isOtherMesh(d.Name) && strings.Contains(strings.ToLower(d.Name), "cni") {
				found = append(found, fmt.Sprintf("CNI DaemonSet %s/%s", d.Namespace, d.Name))
			}
		}
	}
	switch {
	case len(found) > 0:
		c.warn("another mesh is installed: "+strings.Join(found, ", "),
			"do not enroll a namespace in both meshes: pods would get an Istio/Linkerd sidecar and Weft redirection;\nturn the other mesh's injection off in the namespaces you enroll in Weft")
	case len(errs) > 0:
		c.warn("could not check for Istio or Linkerd: "+strings.Join(errs, "; "),
			"check with: kubectl get mutatingwebhookconfigurations")
	default:
		c.ok("no Istio or Linkerd sidecar injector or CNI found")
	}
}

func isOtherMesh(name string) bool {
	n := strings.ToLower(name)
	return strings.Contains(n, "istio") || strings.Contains(n, "linkerd")
}

func checkWeftCRDs(ctx context.Context, c *checker, ext apiextensionsclient.Interface, ns string) {
	var missing, notEstablished []string
	for _, name := range weftCRDs {
		crd, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			missing = append(missing, name)
			continue
		case err != nil:
			c.fail("could not read the Weft CRDs: "+err.Error(), "check with: kubectl get crd "+strings.Join(weftCRDs, " "))
			return
		}
		if !crdEstablished(crd) {
			notEstablished = append(notEstablished, name)
		}
	}
	switch {
	case len(missing) > 0:
		c.fail("Weft CRDs not installed: "+strings.Join(missing, ", "),
			"install Weft with: "+installCommand(ns)+"\n(Helm installs the chart's CRDs on install only; otherwise: kubectl apply -f charts/weft/crds)")
	case len(notEstablished) > 0:
		c.fail("Weft CRDs not Established: "+strings.Join(notEstablished, ", "),
			"see why with: kubectl get crd "+strings.Join(notEstablished, " ")+" -o yaml (status.conditions)")
	default:
		c.ok("Weft CRDs installed and Established (" + strings.Join(weftCRDs, ", ") + ")")
	}
}

func crdEstablished(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, cond := range crd.Status.Conditions {
		if cond.Type == apiextensionsv1.Established {
			return cond.Status == apiextensionsv1.ConditionTrue
		}
	}
	return false
}

func checkControlPlane(ctx context.Context, c *checker, cs kubernetes.Interface, ns string) {
	logs := fmt.Sprintf("kubectl -n %s logs deploy/%s", ns, controlPlaneName)
	d, err := cs.AppsV1().Deployments(ns).Get(ctx, controlPlaneName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		c.fail(fmt.Sprintf("control plane Deployment %s not found in namespace %s", controlPlaneName, ns),
			fmt.Sprintf("is Weft installed in namespace %s? Install with: %s\n(or name its namespace with -n)", ns, installCommand(ns)))
		return
	case err != nil:
		c.fail("could not read the control plane Deployment: "+err.Error(), "check with: kubectl -n "+ns+" get deploy "+controlPlaneName)
		return
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	ready := d.Status.ReadyReplicas
	switch {
	case ready < 1:
		c.fail(fmt.Sprintf("control plane Deployment %s has no ready replica (0/%d ready)", controlPlaneName, want),
			fmt.Sprintf("see why with: %s\nand: kubectl -n %s describe deploy/%s", logs, ns, controlPlaneName))
	case ready < want:
		c.warn(fmt.Sprintf("control plane Deployment %s is available, but only %d/%d replicas are ready", controlPlaneName, ready, want),
			fmt.Sprintf("see why with: kubectl -n %s get pods -l app.kubernetes.io/component=control-plane and %s", ns, logs))
	default:
		c.ok(fmt.Sprintf("control plane Deployment %s available (%d/%d ready)", controlPlaneName, ready, want))
	}
}

// checkNodeProxy checks the node proxy DaemonSet and returns the name of
// the trust bundle ConfigMap it mounts ("" when unknown).
func checkNodeProxy(ctx context.Context, c *checker, cs kubernetes.Interface, ns string) string {
	ds, err := cs.AppsV1().DaemonSets(ns).Get(ctx, nodeProxyName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		c.fail(fmt.Sprintf("node proxy DaemonSet %s not found in namespace %s", nodeProxyName, ns),
			fmt.Sprintf("is Weft installed in namespace %s? Install with: %s\n(or name its namespace with -n)", ns, installCommand(ns)))
		return ""
	case err != nil:
		c.fail("could not read the node proxy DaemonSet: "+err.Error(), "check with: kubectl -n "+ns+" get ds "+nodeProxyName)
		return ""
	}
	bundle := ""
	for _, v := range ds.Spec.Template.Spec.Volumes {
		if v.Name == trustBundleVolume && v.ConfigMap != nil {
			bundle = v.ConfigMap.Name
		}
	}
	desired, ready := ds.Status.DesiredNumberScheduled, ds.Status.NumberReady
	logs := fmt.Sprintf("kubectl -n %s logs ds/%s", ns, nodeProxyName)
	switch {
	case desired == 0:
		c.warn(fmt.Sprintf("node proxy DaemonSet %s runs on no node (0 desired)", nodeProxyName),
			fmt.Sprintf("check its nodeSelector and tolerations against the nodes' labels and taints: kubectl -n %s describe ds/%s", ns, nodeProxyName))
	case ready < desired:
		nodes := notReadyNodes(ctx, cs, ds)
		msg := fmt.Sprintf("node proxy DaemonSet %s: %d/%d ready", nodeProxyName, ready, desired)
		if len(nodes) > 0 {
			msg += "; not ready on: " + strings.Join(nodes, ", ")
		}
		c.fail(msg, fmt.Sprintf("see why with: kubectl -n %s get pods -o wide -l app.kubernetes.io/component=node-proxy\nand: %s", ns, logs))
	default:
		c.ok(fmt.Sprintf("node proxy DaemonSet %s ready on every node (%d/%d)", nodeProxyName, ready, desired))
	}
	return bundle
}

// notReadyNodes names the nodes whose node proxy pod is not ready; pods
// not yet scheduled are named as such.
func notReadyNodes(ctx context.Context, cs kubernetes.Interface, ds *appsv1.DaemonSet) []string {
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil {
		return nil
	}
	pods, err := cs.CoreV1().Pods(ds.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil
	}
	var nodes []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil || podReady(&p) {
			continue
		}
		if p.Spec.NodeName == "" {
			nodes = append(nodes, "(unscheduled pod "+p.Name+")")
		} else {
			nodes = append(nodes, p.Spec.NodeName)
		}
	}
	slices.Sort(nodes)
	return slices.Compact(nodes)
}

func podReady(p *corev1.Pod) bool {
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

func checkTrustBundle(ctx context.Context, c *checker, cs kubernetes.Interface, ns, name string) {
	if name == "" {
		name = trustBundleName
	}
	logs := fmt.Sprintf("kubectl -n %s logs deploy/%s", ns, controlPlaneName)
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		c.fail(fmt.Sprintf("trust bundle ConfigMap %s not found in namespace %s", name, ns),
			"the control plane publishes it once it runs; see why it has not with: "+logs)
	case err != nil:
		c.fail("could not read the trust bundle ConfigMap: "+err.Error(), "check with: kubectl -n "+ns+" get configmap "+name)
	case strings.TrimSpace(cm.Data[trustBundleKey]) == "":
		c.fail(fmt.Sprintf("trust bundle ConfigMap %s has no %s", name, trustBundleKey),
			"the control plane writes the CA certificates there; see why it has not with: "+logs)
	default:
		c.ok(fmt.Sprintf("trust bundle ConfigMap %s published", name))
	}
}

// checkEnrolled lists the namespaces enrolled by annotation or label, with
// the number of their pods in the mesh (not hostNetwork, not opted out).
func checkEnrolled(ctx context.Context, c *checker, cs kubernetes.Interface) {
	list, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		c.warn("could not list the enrolled namespaces: "+err.Error(), "check with: kubectl get namespaces")
		return
	}
	var parts, exposed []string
	for _, n := range list.Items {
		if n.Annotations[meshKey] != meshEnabled && n.Labels[meshKey] != meshEnabled {
			continue
		}
		pods, err := cs.CoreV1().Pods(n.Name).List(ctx, metav1.ListOptions{})
		if err != nil {
			parts = append(parts, n.Name+" (pods unknown)")
			continue
		}
		var enrolled []corev1.Pod
		for _, p := range pods.Items {
			if p.Spec.HostNetwork || p.Annotations[meshKey] == meshDisabled || p.DeletionTimestamp != nil {
				continue
			}
			enrolled = append(enrolled, p)
		}
		count := len(enrolled)
		parts = append(parts, fmt.Sprintf("%s (%d %s)", n.Name, count, plural(count, "pod", "pods")))
		exposed = append(exposed, exposedStrict(ctx, cs, &n, enrolled)...)
	}
	if len(parts) == 0 {
		c.ok("no namespace enrolled yet (enroll one with: weftctl enroll NAMESPACE)")
		return
	}
	c.ok(fmt.Sprintf("%d enrolled %s: %s", len(parts), plural(len(parts), "namespace", "namespaces"), strings.Join(parts, ", ")))
	if len(exposed) > 0 {
		c.warn("STRICT pods behind Services reachable from outside the mesh: "+strings.Join(exposed, ", "),
			"traffic from outside the mesh (NodePort, LoadBalancer, external IPs, an unmeshed ingress controller) is refused by STRICT pods:\n"+
				"enroll the ingress controller's namespace, or mark these pods (or their namespace) "+inboundKey+": permissive")
	}
}

// inboundKey is the annotation, on a pod or its namespace, that sets the
// inbound mode (permissive or strict; STRICT when absent).
const inboundKey = "weftmesh.io/inbound"

// exposedStrict lists ns's Services of type NodePort or LoadBalancer (or
// with external IPs) that select STRICT pods among enrolled: "ns/svc
// (NodePort, 2 STRICT pods)".
func exposedStrict(ctx context.Context, cs kubernetes.Interface, ns *corev1.Namespace, enrolled []corev1.Pod) []string {
	svcs, err := cs.CoreV1().Services(ns.Name).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil
	}
	var out []string
	for _, svc := range svcs.Items {
		kind := string(svc.Spec.Type)
		if svc.Spec.Type != corev1.ServiceTypeNodePort && svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
			if len(svc.Spec.ExternalIPs) == 0 {
				continue
			}
			kind = "external IPs"
		}
		if len(svc.Spec.Selector) == 0 {
			continue
		}
		sel := labels.SelectorFromSet(svc.Spec.Selector)
		strict := 0
		for _, p := range enrolled {
			mode := p.Annotations[inboundKey]
			if mode == "" {
				mode = ns.Annotations[inboundKey]
			}
			if mode != "permissive" && sel.Matches(labels.Set(p.Labels)) {
				strict++
			}
		}
		if strict > 0 {
			out = append(out, fmt.Sprintf("%s/%s (%s, %d STRICT %s)", ns.Name, svc.Name, kind, strict, plural(strict, "pod", "pods")))
		}
	}
	return out
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
