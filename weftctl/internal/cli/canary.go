package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/retry"
)

// httpRoutes is the Gateway API HTTPRoute resource. weftctl edits routes as
// unstructured objects so that fields it does not know (a newer Gateway API
// than the one it was built with) survive the update.
var httpRoutes = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"}

// maxWeight is the Gateway API's maximum backendRef weight.
const maxWeight = 1000000

func newCanaryCmd() *cobra.Command {
	var kf kubeFlags
	c := &cobra.Command{
		Use:   "canary",
		Short: "Shift traffic between the backends of an HTTPRoute by weight",
		Long: `Read and set the weights of an HTTPRoute's backendRefs, as used for canary
releases. A backend receives weight/(sum of the weights in its rule) of the
rule's requests; a backendRef without a weight has weight 1.`,
	}
	kf.register(c, true)
	c.AddCommand(newCanarySetCmd(&kf), newCanaryGetCmd(&kf))
	return c
}

func newCanarySetCmd(kf *kubeFlags) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "set ROUTE BACKEND=WEIGHT [BACKEND=WEIGHT...]",
		Short: "Set the weights of backends of an HTTPRoute",
		Long: `Set the weight of each named backend in every rule of the HTTPRoute ROUTE
whose backendRefs name it. BACKEND is the backendRef's name (a Service name);
WEIGHT is an integer from 0 to 1000000 (0 sends the backend no traffic).
Backends not named keep their weights, and nothing else in the route changes.

weftctl refuses to leave a rule with every weight at 0: the Gateway API answers
every request matched by such a rule with a 500. Use --force to do it anyway.
Concurrent changes to the route (by Flagger, Argo Rollouts, kubectl) are not
overwritten: weftctl re-reads the route and retries.`,
		Example: `  # Send 10% of the traffic to the canary
  weftctl canary set reviews reviews-v1=90 reviews-v2=10 -n shop

  # Promote the canary
  weftctl canary set reviews reviews-v1=0 reviews-v2=100 -n shop`,
		Args: cobra.MinimumNArgs(2),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return completeRoutes(cmd.Context(), kf)
			}
			return completeBackends(cmd.Context(), kf, args[0])
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			want, err := parseWeights(args[1:])
			if err != nil {
				return err
			}
			k, dc, err := kf.dynamic()
			if err != nil {
				return err
			}
			return canarySet(cmd.Context(), cmd.OutOrStdout(), k, dc, args[0], want, force)
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "allow setting every weight of a rule to 0 (its requests then fail with 500)")
	return cmd
}

func newCanaryGetCmd(kf *kubeFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "get ROUTE",
		Short:   "Show the backends of an HTTPRoute with their weights and traffic shares",
		Example: `  weftctl canary get reviews -n shop`,
		Args:    cobra.ExactArgs(1),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return completeRoutes(cmd.Context(), kf)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			k, dc, err := kf.dynamic()
			if err != nil {
				return err
			}
			route, err := getRoute(cmd.Context(), k, dc, args[0])
			if err != nil {
				return err
			}
			return printWeights(cmd.OutOrStdout(), route)
		},
	}
}

func (f *kubeFlags) dynamic() (*kubeClient, dynamic.Interface, error) {
	k, err := f.load()
	if err != nil {
		return nil, nil, err
	}
	dc, err := dynamic.NewForConfig(k.config)
	if err != nil {
		return nil, nil, fmt.Errorf("client for %s: %w", k.source, err)
	}
	return k, dc, nil
}

type backendWeight struct {
	name   string
	weight int64
}

// parseWeights parses BACKEND=WEIGHT arguments, in order.
func parseWeights(args []string) ([]backendWeight, error) {
	var out []backendWeight
	seen := map[string]bool{}
	for _, a := range args {
		name, w, ok := strings.Cut(a, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("%q: want BACKEND=WEIGHT", a)
		}
		n, err := strconv.ParseInt(w, 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q: the weight must be a non-negative integer, got %q", a, w)
		}
		if n > maxWeight {
			return nil, fmt.Errorf("%q: the weight must be at most %d", a, maxWeight)
		}
		if seen[name] {
			return nil, fmt.Errorf("backend %q given twice", name)
		}
		seen[name] = true
		out = append(out, backendWeight{name, n})
	}
	return out, nil
}

func getRoute(ctx context.Context, k *kubeClient, dc dynamic.Interface, name string) (*unstructured.Unstructured, error) {
	u, err := dc.Resource(httpRoutes).Namespace(k.namespace).Get(ctx, name, metav1.GetOptions{})
	return u, routeErr(k, name, err)
}

func routeErr(k *kubeClient, name string, err error) error {
	if err == nil {
		return nil
	}
	if apierrors.IsNotFound(err) {
		var status apierrors.APIStatus
		if errors.As(err, &status) && status.Status().Details != nil && status.Status().Details.Name == name {
			return fmt.Errorf("HTTPRoute %q not found in namespace %q (%s)", name, k.namespace, k.source)
		}
		// The resource itself is unknown: no Gateway API CRDs.
		return fmt.Errorf("HTTPRoute %q not found in namespace %q: %v (are the Gateway API CRDs installed? %s)", name, k.namespace, err, k.source)
	}
	return k.wrap(err)
}

// rules returns spec.rules of a route as maps that alias the object.
func rules(u *unstructured.Unstructured) ([]map[string]any, error) {
	raw, found, err := unstructured.NestedFieldNoCopy(u.Object, "spec", "rules")
	if err != nil || !found {
		return nil, err
	}
	list, ok := raw.([]any)
	if !ok {
		return nil, fmt.Errorf("spec.rules is %T, not a list", raw)
	}
	out := make([]map[string]any, 0, len(list))
	for i, r := range list {
		m, ok := r.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("spec.rules[%d] is %T, not an object", i, r)
		}
		out = append(out, m)
	}
	return out, nil
}

// backendRefs returns a rule's backendRefs as maps that alias the rule.
func backendRefs(rule map[string]any) []map[string]any {
	list, _ := rule["backendRefs"].([]any)
	out := make([]map[string]any, 0, len(list))
	for _, b := range list {
		if m, ok := b.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func refName(b map[string]any) string { s, _ := b["name"].(string); return s }

// refWeight is a backendRef's weight; unset means 1.
func refWeight(b map[string]any) int64 {
	switch w := b["weight"].(type) {
	case int64:
		return w
	case float64:
		return int64(w)
	case int:
		return int64(w)
	}
	return 1
}

// refLabel names a backendRef for display: its name, qualified with its
// kind and namespace when they are not the defaults, and its port.
func refLabel(b map[string]any) string {
	s := refName(b)
	if kind, _ := b["kind"].(string); kind != "" && kind != "Service" {
		s = kind + "/" + s
	}
	if ns, _ := b["namespace"].(string); ns != "" {
		s = ns + "/" + s
	}
	if p, ok := b["port"]; ok {
		s += fmt.Sprintf(":%v", p)
	}
	return s
}

// routeBackends lists the distinct backend names of a route, in order.
func routeBackends(rs []map[string]any) []string {
	var names []string
	for _, r := range rs {
		for _, b := range backendRefs(r) {
			if n := refName(b); !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	return names
}

// applyWeights sets the weights in u. It reports the rules it changed.
func applyWeights(u *unstructured.Unstructured, want []backendWeight, force bool) ([]int, error) {
	rs, err := rules(u)
	if err != nil {
		return nil, err
	}
	all := routeBackends(rs)
	var missing []string
	for _, w := range want {
		if !slices.Contains(all, w.name) {
			missing = append(missing, w.name)
		}
	}
	if len(missing) > 0 {
		have := "it has no backends"
		if len(all) > 0 {
			have = "its backends are " + strings.Join(all, ", ")
		}
		return nil, fmt.Errorf("HTTPRoute %q has no backend %s; %s", u.GetName(), strings.Join(missing, ", "), have)
	}
	var changed []int
	for i, r := range rs {
		refs := backendRefs(r)
		touched := false
		for _, b := range refs {
			for _, w := range want {
				if refName(b) == w.name {
					b["weight"] = w.weight
					touched = true
				}
			}
		}
		if !touched {
			continue
		}
		changed = append(changed, i)
		if !force && !slices.ContainsFunc(refs, func(b map[string]any) bool { return refWeight(b) > 0 }) {
			return nil, fmt.Errorf("refusing to set every weight of rule %d of HTTPRoute %q to 0: "+
				"the Gateway API answers all its requests with 500; use --force to do it anyway", i, u.GetName())
		}
	}
	return changed, nil
}

func canarySet(ctx context.Context, out io.Writer, k *kubeClient, dc dynamic.Interface, name string, want []backendWeight, force bool) error {
	var updated *unstructured.Unstructured
	var changed []int
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		u, err := getRoute(ctx, k, dc, name)
		if err != nil {
			return err
		}
		if changed, err = applyWeights(u, want, force); err != nil {
			return err
		}
		// Update carries the resourceVersion read above: a concurrent
		// change makes it fail with a conflict, and we start again.
		updated, err = dc.Resource(httpRoutes).Namespace(k.namespace).Update(ctx, u, metav1.UpdateOptions{FieldManager: "weftctl"})
		if apierrors.IsConflict(err) {
			return err
		}
		return routeErr(k, name, err)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "HTTPRoute %s/%s: set weights in rule(s) %s\n", k.namespace, name, joinInts(changed))
	return printWeights(out, updated)
}

func joinInts(is []int) string {
	s := make([]string, len(is))
	for i, n := range is {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

// printWeights prints, for every rule, its backends, weights and shares.
func printWeights(out io.Writer, u *unstructured.Unstructured) error {
	rs, err := rules(u)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tBACKEND\tWEIGHT\tTRAFFIC")
	for i, r := range rs {
		refs := backendRefs(r)
		ruleName := strconv.Itoa(i)
		if n, _ := r["name"].(string); n != "" {
			ruleName += " (" + n + ")"
		}
		if len(refs) == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t-\n", ruleName)
			continue
		}
		var sum int64
		for _, b := range refs {
			sum += refWeight(b)
		}
		for _, b := range refs {
			w := refWeight(b)
			share := "0% (all weights 0: requests fail with 500)"
			if sum > 0 {
				share = strings.TrimSuffix(strconv.FormatFloat(float64(w)*100/float64(sum), 'f', 1, 64), ".0") + "%"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", ruleName, refLabel(b), w, share)
		}
	}
	return tw.Flush()
}

func completeRoutes(ctx context.Context, kf *kubeFlags) ([]string, cobra.ShellCompDirective) {
	k, dc, err := kf.dynamic()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	list, err := dc.Resource(httpRoutes).Namespace(k.namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, r := range list.Items {
		names = append(names, r.GetName())
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

func completeBackends(ctx context.Context, kf *kubeFlags, route string) ([]string, cobra.ShellCompDirective) {
	k, dc, err := kf.dynamic()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	u, err := getRoute(ctx, k, dc, route)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	rs, err := rules(u)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, n := range routeBackends(rs) {
		out = append(out, n+"=")
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
}
