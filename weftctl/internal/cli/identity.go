package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

func newIdentityCmd() *cobra.Command {
	var af adminFlags
	var podNS string
	cmd := &cobra.Command{
		Use:   "identity POD",
		Short: "Show a pod's mesh identity: enrollment, SPIFFE ID, certificate, inbound mode, policies",
		Long: `Show how the mesh sees a pod: whether it is enrolled (and if not, why), the SPIFFE
ID its certificate carries (spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>),
the certificate's expiry and renewal, its addresses, inbound mode (STRICT or
PERMISSIVE), Services and AuthorizationPolicies. It reads the pod from the
cluster and the rest from the node proxy on the pod's node (through a
port-forward), or from a running sandbox with --sandbox.
Exits 1 when the pod is not in the mesh.`,
		Example: `  weftctl identity -n shop checkout-7d9c5-x2x8q
  weftctl identity echo-n0-p0 -n demo --sandbox weft`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, k, cs, err := af.open()
			if err != nil {
				return err
			}
			defer a.close()
			ns := podNS
			if ns == "" && k != nil {
				ns = k.namespace
			}
			return runIdentity(cmd.Context(), cmd.OutOrStdout(), a, cs, ns, args[0], time.Now())
		},
	}
	af.register(cmd)
	cmd.Flags().StringVarP(&podNS, "namespace", "n", "", "the pod's namespace (default: the context's namespace; with --sandbox: any)")
	return cmd
}

// runIdentity prints the pod's identity; cs is nil for a sandbox.
func runIdentity(ctx context.Context, out io.Writer, a admins, cs kubernetes.Interface, ns, name string, now time.Time) error {
	var pod *corev1.Pod
	node := ""
	if cs != nil {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("pod %s/%s not found (name its namespace with -n)", ns, name)
		}
		if err != nil {
			return err
		}
		pod = p
		node = p.Spec.NodeName
		nsObj, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if why := notEnrolled(nsObj, p); why != "" {
			fmt.Fprintf(out, "Pod %s/%s (node %s) is not in the mesh: %s\n", ns, name, orDash(node), why)
			return errors.New("not in the mesh")
		}
		if node == "" {
			return fmt.Errorf("pod %s/%s is not scheduled yet: it gets its identity on its node", ns, name)
		}
	}
	proxies, err := a.nodeProxies(ctx)
	if err != nil {
		return err
	}
	if node != "" && !slices.ContainsFunc(proxies, func(p *component) bool { return p.node == node }) {
		return fmt.Errorf("pod %s/%s runs on node %s, where no Weft node proxy runs (in %s): its traffic is not meshed; see weftctl check", ns, name, node, a.where())
	}
	var found *workloadInfo
	var foundOn *component
	var errs []string
	for _, p := range proxies {
		if node != "" && p.node != node {
			continue
		}
		var wls []workloadInfo
		if err := p.getJSON(ctx, "/workloads", &wls); err != nil {
			errs = append(errs, fmt.Sprintf("node proxy on %s: %v", p.node, err))
			continue
		}
		for i := range wls {
			if wls[i].Name == name && (ns == "" || wls[i].Namespace == ns) {
				found, foundOn = &wls[i], p
				break
			}
		}
		if found != nil {
			break
		}
	}
	if found == nil {
		where := "any node proxy"
		if node != "" {
			where = "the node proxy on " + node
		}
		msg := fmt.Sprintf("pod %s is not enrolled in %s", qualified(ns, name), where)
		switch {
		case len(errs) > 0:
			msg += " (" + strings.Join(errs, "; ") + ")"
		case pod != nil:
			msg += ": it should be (its namespace is enrolled); pods started before their namespace was enrolled, or while the node proxy was not ready, are enrolled when they restart: kubectl -n " + ns + " delete pod " + name
		}
		return errors.New(msg)
	}
	w := found
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Pod\t%s/%s\n", w.Namespace, w.Name)
	fmt.Fprintf(tw, "Node\t%s (node proxy %s)\n", foundOn.node, foundOn.name)
	fmt.Fprintf(tw, "Enrolled\t%s\n", w.EnrolledAt.UTC().Format(time.RFC3339))
	if !w.Described {
		fmt.Fprintf(tw, "SPIFFE ID\t(the node proxy has no configuration for this pod yet)\n")
	} else {
		fmt.Fprintf(tw, "SPIFFE ID\t%s\n", w.Identity)
		fmt.Fprintf(tw, "Addresses\t%s\n", orDash(strings.Join(w.Addresses, ", ")))
		fmt.Fprintf(tw, "Inbound\t%s\n", strings.TrimPrefix(w.InboundMode, "INBOUND_MODE_"))
		fmt.Fprintf(tw, "Services\t%s\n", orDash(strings.Join(w.Services, ", ")))
		fmt.Fprintf(tw, "Authorization\t%s\n", orDash(strings.Join(w.Policies, ", ")))
	}
	switch {
	case w.CertificateError != "":
		fmt.Fprintf(tw, "Certificate\tERROR: %s\n", w.CertificateError)
	case w.Certificate != nil:
		fmt.Fprintf(tw, "Certificate\tvalid until %s (in %s), renews at %s\n", w.Certificate.NotAfter.UTC().Format(time.RFC3339),
			roundDuration(w.Certificate.NotAfter.Sub(now)), w.Certificate.RenewAt.UTC().Format(time.RFC3339))
	default:
		fmt.Fprintf(tw, "Certificate\tnot issued yet\n")
	}
	return tw.Flush()
}

// notEnrolled says why pod is outside the mesh, "" when it is in: the
// control plane's rule (DESIGN.md: namespace annotation or label
// weftmesh.io/mesh=enabled, pod annotation weftmesh.io/mesh=disabled opts
// out, hostNetwork pods never).
func notEnrolled(ns *corev1.Namespace, pod *corev1.Pod) string {
	switch {
	case pod.Spec.HostNetwork:
		return "it uses the host network (hostNetwork pods are never enrolled)"
	case ns.Annotations[meshKey] != meshEnabled && ns.Labels[meshKey] != meshEnabled:
		return fmt.Sprintf("namespace %s is not enrolled: weftctl enroll %s", ns.Name, ns.Name)
	case pod.Annotations[meshKey] == meshDisabled:
		return "the pod opted out (annotation " + meshKey + ": " + meshDisabled + ")"
	}
	return ""
}

func qualified(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}
