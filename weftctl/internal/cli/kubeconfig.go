package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// kubeTimeout bounds each request to the apiserver, so that an unreachable
// cluster is reported instead of hanging.
const kubeTimeout = 30 * time.Second

// kubeFlags are the standard kubeconfig selection flags: --kubeconfig,
// --context and, for namespaced commands, -n/--namespace. Loading follows
// kubectl: --kubeconfig, else $KUBECONFIG (a list of files), else
// ~/.kube/config.
type kubeFlags struct {
	kubeconfig string
	context    string
	namespace  string
	namespaced bool
}

func (f *kubeFlags) register(cmd *cobra.Command, namespaced bool) {
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
	pf.StringVar(&f.context, "context", "", "kubeconfig context to use (default: the current context)")
	if namespaced {
		f.namespaced = true
		pf.StringVarP(&f.namespace, "namespace", "n", "", "namespace of the object (default: the context's namespace, else \"default\")")
	}
}

// kubeClient is a loaded kubeconfig: the REST config, the namespace to use
// and a description of where it came from, for error messages.
type kubeClient struct {
	config    *rest.Config
	namespace string
	source    string // e.g. `kubeconfig "/home/me/.kube/config", context "kind"`
	host      string
}

func (f *kubeFlags) load() (*kubeClient, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = f.kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: f.context}
	if f.namespace != "" {
		overrides.Context.Namespace = f.namespace
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)

	source := describeKubeconfig(rules, f.context)
	if raw, err := cc.RawConfig(); err == nil {
		ctx := f.context
		if ctx == "" {
			ctx = raw.CurrentContext
		}
		source = describeKubeconfig(rules, ctx)
	}
	cfg, err := cc.ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, fmt.Errorf("no cluster configured (%s): set --kubeconfig, $KUBECONFIG or ~/.kube/config", source)
		}
		return nil, fmt.Errorf("load %s: %w", source, err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", source, err)
	}
	cfg.Timeout = kubeTimeout
	cfg.UserAgent = "weftctl"
	return &kubeClient{config: cfg, namespace: ns, source: source, host: cfg.Host}, nil
}

func describeKubeconfig(rules *clientcmd.ClientConfigLoadingRules, context string) string {
	var path string
	switch {
	case rules.ExplicitPath != "":
		path = rules.ExplicitPath
	case os.Getenv(clientcmd.RecommendedConfigPathEnvVar) != "":
		path = "$KUBECONFIG=" + os.Getenv(clientcmd.RecommendedConfigPathEnvVar)
	default:
		path = clientcmd.RecommendedHomeFile
	}
	if context == "" {
		return fmt.Sprintf("kubeconfig %s, no current context", path)
	}
	return fmt.Sprintf("kubeconfig %s, context %q", path, context)
}

// wrap turns an error from the apiserver into one that says which cluster
// was used when the cluster could not be reached or refused our
// credentials. API errors (not found, conflict, invalid) are returned as
// they are, for the caller to interpret.
func (k *kubeClient) wrap(err error) error {
	if err == nil {
		return nil
	}
	var status apierrors.APIStatus
	switch {
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("the cluster at %s refused our credentials (%s): %w", k.host, k.source, err)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("not allowed (%s): %w", k.source, err)
	case errors.As(err, &status):
		return err
	}
	msg := err.Error()
	if strings.Contains(msg, k.host) {
		// client-go already names the URL; do not repeat it.
		return fmt.Errorf("cannot reach the cluster (%s): %w", k.source, err)
	}
	return fmt.Errorf("cannot reach the cluster at %s (%s): %w", k.host, k.source, err)
}
