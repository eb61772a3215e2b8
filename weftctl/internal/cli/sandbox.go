package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/tests/sandbox"
)

func newSandboxCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "sandbox",
		Short: "Run a whole mesh on this machine: nodes and pods as network namespaces (Linux, root)",
		Long: `Build a mesh on one Linux machine with no Kubernetes: each simulated node and pod is a
network namespace, the control plane runs with --config-dir on node 0, one node proxy
runs per node, and weft-echo runs in every pod. See docs/tasks/sandbox.md.`,
	}
	c.AddCommand(newSandboxUpCmd(), newSandboxDownCmd(), newSandboxTraceCmd(), newSandboxDemoCmd())
	return c
}

// sandboxUpOptions are the flags of `sandbox up`.
type sandboxUpOptions struct {
	name          string
	nodes, pods   int
	binDir        string
	logDir        string
	keepLogs      bool
	noNodeProxies bool
	tracing       bool
	otlpEndpoint  string
}

func newSandboxUpCmd() *cobra.Command {
	var o sandboxUpOptions
	cmd := &cobra.Command{
		Use:   "up [--name weft] [--nodes 2] [--pods 2] [--bin DIR]",
		Short: "Build the sandbox mesh, print what was built, and keep it up until Ctrl-C",
		Long: `Build the sandbox mesh and stay in the foreground; Ctrl-C (or SIGTERM) tears it all down.
A sandbox of the same name left by a crash is cleaned up first.

The binaries (weft-control-plane, weft-node-proxy, weft-cni, weft-echo) are taken from
--bin, by default the directory weftctl itself is in if it holds them, else ./bin:
run ` + "`make build`" + ` first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if os.Geteuid() != 0 {
				return errors.New("sandbox up needs root: it creates network namespaces")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runSandboxUp(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.name, "name", "weft", "sandbox name: prefixes every network namespace (1-12 lowercase letters and digits)")
	f.IntVar(&o.nodes, "nodes", 2, "number of simulated nodes")
	f.IntVar(&o.pods, "pods", 2, "pods per node")
	f.StringVar(&o.binDir, "bin", "", "directory holding the weft binaries (default: weftctl's own directory, else ./bin)")
	f.StringVar(&o.logDir, "log-dir", "", "directory for the processes' logs, kept afterwards (default: a temporary directory, deleted on exit)")
	f.BoolVar(&o.keepLogs, "keep-logs", false, "keep the temporary log directory on exit")
	f.BoolVar(&o.noNodeProxies, "no-node-proxies", false, "run without node proxies (no mTLS, no capture): the control plane and the apps only")
	f.BoolVar(&o.tracing, "tracing", false, "turn tracing on: the node proxies export spans to an OTLP receiver in node 0, kept for `weftctl sandbox trace`")
	f.StringVar(&o.otlpEndpoint, "otlp-endpoint", "", "with --tracing (implied): also forward every span to this OTLP/gRPC collector (host:port, plaintext), e.g. a local Jaeger or OpenTelemetry Collector")
	return cmd
}

// runSandboxUp builds the mesh, prints it to w and waits for ctx to end;
// progress goes to errw.
func runSandboxUp(ctx context.Context, w, errw io.Writer, o sandboxUpOptions) error {
	m, bin, closeTracing, err := upSandbox(ctx, errw, o)
	if err != nil {
		return err
	}
	defer closeTracing()
	printMesh(w, m, bin, !o.noNodeProxies)
	<-ctx.Done()
	fmt.Fprintf(w, "\nTearing down sandbox %s...\n", m.Name())
	return downSandbox(w, m, o)
}

// upSandbox builds the mesh o describes, with its progress reported to
// errw, and returns it with the directory of the binaries. closeTracing
// stops the OTLP receiver of --tracing: call it once the mesh is down.
func upSandbox(ctx context.Context, errw io.Writer, o sandboxUpOptions) (m *sandbox.Mesh, bin string, closeTracing func(), err error) {
	bin, err = sandboxBinDir(o.binDir)
	if err != nil {
		return nil, "", nil, err
	}
	progress := slog.New(slog.NewTextHandler(errw, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
				return slog.Attr{}
			}
			return a
		},
	}))
	cfg := sandbox.MeshConfig{
		Topology:      sandbox.Topology{Name: o.name, Nodes: o.nodes, PodsPerNode: o.pods},
		BinDir:        bin,
		NoNodeProxies: o.noNodeProxies,
		LogDir:        o.logDir,
		Log:           progress,
	}
	closeTracing = func() {}
	if o.tracing || o.otlpEndpoint != "" {
		tr := &sandboxTracing{forwardTo: o.otlpEndpoint}
		cfg.BeforeNodeProxies = tr.start
		cfg.NodeProxyArgs = tr.args
		closeTracing = tr.close
	}
	m, err = cfg.Up(ctx)
	if err != nil {
		closeTracing()
		return nil, "", nil, err
	}
	if o.keepLogs {
		m.KeepLogs()
	}
	return m, bin, closeTracing, nil
}

// downSandbox tears m down and says so, and where the logs are if they
// are kept.
func downSandbox(w io.Writer, m *sandbox.Mesh, o sandboxUpOptions) error {
	if err := m.Down(); err != nil {
		return fmt.Errorf("tear down: %w (run `weftctl sandbox down --name %s`)", err, m.Name())
	}
	if o.keepLogs || o.logDir != "" {
		fmt.Fprintf(w, "Sandbox %s is down; logs are in %s\n", m.Name(), m.LogDir())
	} else {
		fmt.Fprintf(w, "Sandbox %s is down.\n", m.Name())
	}
	return nil
}

// sandboxBinDir returns dir made absolute, or by default the directory of
// the weftctl executable if it holds weft-control-plane, else ./bin.
func sandboxBinDir(dir string) (string, error) {
	if dir != "" {
		return filepath.Abs(dir)
	}
	var tried []string
	if exe, err := os.Executable(); err == nil {
		if exe, err = filepath.EvalSymlinks(exe); err == nil {
			tried = append(tried, filepath.Dir(exe))
		}
	}
	if d, err := filepath.Abs("bin"); err == nil {
		tried = append(tried, d)
	}
	for _, d := range tried {
		if _, err := os.Stat(filepath.Join(d, "weft-control-plane")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("no weft-control-plane in %s: run `make build`, or give --bin", strings.Join(tried, " or "))
}

// printMesh tells what was built and how to use it.
func printMesh(w io.Writer, m *sandbox.Mesh, bin string, proxies bool) {
	printMeshTables(w, m, proxies)
	printMeshUsage(w, m, bin, proxies)
}

// printMeshTables prints the nodes, pods and Services of m.
func printMeshTables(w io.Writer, m *sandbox.Mesh, proxies bool) {
	fmt.Fprintf(w, "\nSandbox %s is up: %d nodes, %d pods; control plane at %s (in %s).\n\n",
		m.Name(), len(m.Nodes()), len(m.Pods()), m.ControlPlane(), m.Nodes()[0].Name)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tADDRESS\tPOD CIDR\tNODE PROXY")
	for _, n := range m.Nodes() {
		proxy := "none"
		if proxies {
			proxy = "ready"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.Name, n.IP, n.PodCIDR, proxy)
	}
	tw.Flush()

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "POD\tNAMESPACE\tNODE\tIP\tENROLLED\tNETNS")
	for _, p := range m.Pods() {
		enrolled := "no"
		if p.Enrolled {
			enrolled = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.Namespace, p.Node, p.IP, enrolled, filepath.Base(p.NetNSPath))
	}
	tw.Flush()

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tVIP\tPORTS")
	for _, s := range m.Services() {
		var ports []string
		for _, p := range s.Ports {
			port := fmt.Sprintf("%s %d", p.Name, p.Port)
			if p.AppProtocol != "" {
				port += " (" + p.AppProtocol + ")"
			}
			ports = append(ports, port)
		}
		fmt.Fprintf(tw, "%s.%s\t%s\t%s\n", s.Name, s.Namespace, s.IP, strings.Join(ports, ", "))
	}
	tw.Flush()
}

// printMeshUsage prints where m's files are and commands to try.
func printMeshUsage(w io.Writer, m *sandbox.Mesh, bin string, proxies bool) {
	n0 := m.Nodes()[0]
	echo := filepath.Join(bin, "weft-echo")
	fmt.Fprintf(w, "\nConfig dir: %s\n  Kubernetes YAML; edit or add files there, the control plane re-reads it every 200ms.\n", m.ConfigDir())
	fmt.Fprintf(w, "Logs:       %s\n", m.LogDir())
	fmt.Fprintf(w, "\nRun a command in a pod with `ip netns exec <netns> ...`; it sees the pod's /etc/hosts. Try:\n")
	pods := m.Pods()
	if len(pods) > 0 && len(m.Services()) > 0 && proxies { // VIPs answer through the node proxies only
		s := m.Services()[0]
		port := 80
		if len(s.Ports) > 0 {
			port = s.Ports[0].Port
		}
		fmt.Fprintf(w, "  ip netns exec %s %s get http://%s.%s:%d/\n", filepath.Base(pods[0].NetNSPath), echo, s.Name, s.Namespace, port)
	}
	if len(pods) > 0 {
		from, to := pods[0], pods[len(pods)-1]
		fmt.Fprintf(w, "  ip netns exec %s %s get http://%s:%d/\n", filepath.Base(from.NetNSPath), echo, to.IP, sandbox.EchoHTTPPort)
	}
	fmt.Fprintf(w, "  ip netns exec %s %s get http://%s/readyz  # control plane admin\n", n0.Name, echo, sandbox.ControlPlaneAdmin)
	if proxies {
		fmt.Fprintf(w, "  ip netns exec %s %s get http://%s:%d/healthz/ready  # node proxy readiness\n", n0.Name, echo, n0.IP, sandbox.NodeProxyReadinessPort)
	}
	fmt.Fprintf(w, "\nCtrl-C tears everything down. After a crash: weftctl sandbox down --name %s\n", m.Name())
}

func newSandboxDownCmd() *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "down [--name weft]",
		Short: "Delete what a sandbox left behind after a crash (processes, namespaces, files)",
		Long: `Kill the processes a sandbox of that name started, delete its network namespaces
(NAME-u, NAME-n<i>, NAME-n<i>-p<j>), their /etc/netns files and /run/weft-sandbox/NAME*.
Nothing else is touched; a name that left nothing is not an error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if os.Geteuid() != 0 {
				return errors.New("sandbox down needs root: it deletes network namespaces")
			}
			if err := sandbox.Cleanup(name); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Sandbox %s cleaned up.\n", name)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "weft", "sandbox name")
	return cmd
}
