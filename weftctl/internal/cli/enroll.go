package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// Enrollment keys and values; they match control-plane/internal/model
// (MeshKey, MeshEnabled, MeshDisabled), which weftctl does not import.
const (
	meshKey      = "weftmesh.io/mesh"
	meshEnabled  = "enabled"
	meshDisabled = "disabled"
)

func newEnrollCmd() *cobra.Command {
	var kf kubeFlags
	cmd := &cobra.Command{
		Use:   "enroll NAMESPACE",
		Short: "Enroll a namespace in the mesh (annotation weftmesh.io/mesh: enabled)",
		Long: `Enroll a namespace in the mesh by setting the annotation
weftmesh.io/mesh: enabled on it. Pods started in the namespace from then on get
mTLS, a SPIFFE identity, retries and traces. Existing pods are enrolled when
they are recreated (kubectl rollout restart). A pod stays out of the mesh with
the annotation weftmesh.io/mesh: disabled; hostNetwork pods are never enrolled.

Enrolling a namespace that is already enrolled changes nothing.`,
		Example: `  # Enroll the namespace "shop", then restart its workloads to enroll running pods
  weftctl enroll shop
  kubectl rollout restart deployment,statefulset,daemonset -n shop

  # Use another kubeconfig and context
  weftctl enroll shop --kubeconfig ~/.kube/prod --context prod-eu`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeNamespaces(&kf),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, cs, err := kf.clientset()
			if err != nil {
				return err
			}
			return enroll(cmd.Context(), cmd.OutOrStdout(), k, cs, args[0])
		},
	}
	kf.register(cmd, false)
	return cmd
}

func newUnenrollCmd() *cobra.Command {
	var kf kubeFlags
	cmd := &cobra.Command{
		Use:   "unenroll NAMESPACE",
		Short: "Take a namespace out of the mesh (remove the weftmesh.io/mesh annotation)",
		Long: `Take a namespace out of the mesh by removing its weftmesh.io/mesh annotation.
Existing pods leave the mesh when they are recreated (kubectl rollout restart).

If the namespace also has the label weftmesh.io/mesh=enabled, which enrolls it
too, weftctl removes the annotation and fails, saying how to remove the label.`,
		Example: `  weftctl unenroll shop
  kubectl rollout restart deployment,statefulset,daemonset -n shop`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeNamespaces(&kf),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, cs, err := kf.clientset()
			if err != nil {
				return err
			}
			return unenroll(cmd.Context(), cmd.OutOrStdout(), k, cs, args[0])
		},
	}
	kf.register(cmd, false)
	return cmd
}

func (f *kubeFlags) clientset() (*kubeClient, kubernetes.Interface, error) {
	k, err := f.load()
	if err != nil {
		return nil, nil, err
	}
	cs, err := kubernetes.NewForConfig(k.config)
	if err != nil {
		return nil, nil, fmt.Errorf("client for %s: %w", k.source, err)
	}
	return k, cs, nil
}

func getNamespace(ctx context.Context, k *kubeClient, cs kubernetes.Interface, name string) (*corev1.Namespace, error) {
	ns, err := cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("namespace %q not found (%s)", name, k.source)
	}
	if err != nil {
		return nil, k.wrap(err)
	}
	return ns, nil
}

// setMeshAnnotation merge-patches the annotation; value nil removes it.
func setMeshAnnotation(ctx context.Context, k *kubeClient, cs kubernetes.Interface, name string, value *string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]*string{meshKey: value}}})
	if err != nil {
		return err
	}
	_, err = cs.CoreV1().Namespaces().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "weftctl"})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("namespace %q not found (%s)", name, k.source)
	}
	return k.wrap(err)
}

func enroll(ctx context.Context, out io.Writer, k *kubeClient, cs kubernetes.Interface, name string) error {
	ns, err := getNamespace(ctx, k, cs, name)
	if err != nil {
		return err
	}
	if ns.DeletionTimestamp != nil {
		return fmt.Errorf("namespace %q is being deleted", name)
	}
	switch old, ok := ns.Annotations[meshKey]; {
	case old == meshEnabled:
		fmt.Fprintf(out, "namespace %q is already enrolled (annotation %s: %s); nothing changed\n", name, meshKey, meshEnabled)
		return nil
	case ns.Labels[meshKey] == meshEnabled:
		fmt.Fprintf(out, "namespace %q is already enrolled by its label %s=%s; nothing changed\n", name, meshKey, meshEnabled)
		return nil
	default:
		v := meshEnabled
		if err := setMeshAnnotation(ctx, k, cs, name, &v); err != nil {
			return err
		}
		if ok {
			fmt.Fprintf(out, "enrolled namespace %q: annotation %s changed from %q to %q\n", name, meshKey, old, meshEnabled)
		} else {
			fmt.Fprintf(out, "enrolled namespace %q: set annotation %s: %s\n", name, meshKey, meshEnabled)
		}
	}
	restartHint(ctx, out, cs, name, "are enrolled")
	return nil
}

func unenroll(ctx context.Context, out io.Writer, k *kubeClient, cs kubernetes.Interface, name string) error {
	ns, err := getNamespace(ctx, k, cs, name)
	if err != nil {
		return err
	}
	old, ok := ns.Annotations[meshKey]
	if ok {
		if err := setMeshAnnotation(ctx, k, cs, name, nil); err != nil {
			return err
		}
		fmt.Fprintf(out, "removed annotation %s (was %q) from namespace %q\n", meshKey, old, name)
	}
	if ns.Labels[meshKey] == meshEnabled {
		return fmt.Errorf("namespace %q is still enrolled by its label %s=%s; remove it with: kubectl label namespace %s %s-",
			name, meshKey, meshEnabled, name, meshKey)
	}
	if !ok || old != meshEnabled {
		fmt.Fprintf(out, "namespace %q is not enrolled; nothing to do\n", name)
		return nil
	}
	fmt.Fprintf(out, "namespace %q is no longer enrolled\n", name)
	restartHint(ctx, out, cs, name, "leave the mesh")
	return nil
}

// restartHint reminds that running pods change only when recreated, with a
// count of the pods concerned when the pods can be listed.
func restartHint(ctx context.Context, out io.Writer, cs kubernetes.Interface, ns, what string) {
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err == nil {
		n := 0
		for _, p := range pods.Items {
			if p.Spec.HostNetwork || p.Annotations[meshKey] == meshDisabled || p.DeletionTimestamp != nil {
				continue
			}
			n++
		}
		if n == 0 {
			fmt.Fprintf(out, "no running pods are affected; new pods %s\n", what)
			return
		}
		fmt.Fprintf(out, "%d existing pod(s) %s only when recreated; restart their workloads:\n", n, what)
	} else {
		fmt.Fprintf(out, "existing pods %s only when recreated; restart their workloads:\n", what)
	}
	fmt.Fprintf(out, "  kubectl rollout restart deployment,statefulset,daemonset -n %s\n", ns)
}

// completeNamespaces completes namespace names from the cluster.
func completeNamespaces(kf *kubeFlags) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		_, cs, err := kf.clientset()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		list, err := cs.CoreV1().Namespaces().List(cmd.Context(), metav1.ListOptions{})
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		names := make([]string, 0, len(list.Items))
		for _, n := range list.Items {
			names = append(names, n.Name)
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}
