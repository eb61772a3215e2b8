//go:build linux

package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwv1alpha2 "sigs.k8s.io/gateway-api/apis/v1alpha2"
	gwv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
	"sigs.k8s.io/gateway-api/conformance"
	confv1 "sigs.k8s.io/gateway-api/conformance/apis/v1"
	meshtests "sigs.k8s.io/gateway-api/conformance/tests/mesh"
	"sigs.k8s.io/gateway-api/conformance/utils/config"
	"sigs.k8s.io/gateway-api/conformance/utils/suite"
	"sigs.k8s.io/gateway-api/pkg/features"
	"sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/tests/cluster"
	"github.com/weftmesh/weft/tests/cluster/images"
	"github.com/weftmesh/weft/tests/kube"
)

const (
	weftNS = "weft-system"
	// childEnv carries the suite's childConfig (JSON) to the test binary
	// that TestMeshHTTP re-executes.
	childEnv = "WEFT_CONFORMANCE_SUITE"
	// suiteTest is the test the re-executed binary runs.
	suiteTest = "TestMeshHTTPSuite"
)

// supportedFeatures are the features Weft declares beyond the profile's
// core (Mesh, HTTPRoute); docs/conformance.md says why each is there and
// why the others are not.
var supportedFeatures = []features.FeatureName{
	features.SupportMesh,
	features.SupportHTTPRoute,
	features.SupportHTTPRouteResponseHeaderModification,           // ResponseHeaderModifier filter
	features.SupportHTTPRouteParentRefPort,                        // parentRefs[].port selects one Service port
	features.SupportMeshClusterIPMatching,                         // routing by cluster IP and port; hostnames are ignored
	features.SupportMeshConsumerRoute,                             // routes in the client's namespace
	features.SupportMeshHTTPRouteQueryParamMatching,               // matches[].queryParams
	features.SupportMeshHTTPRouteNamedRouteRule,                   // rules[].name
	features.SupportMeshHTTPRouteSchemeRedirect,                   // RequestRedirect: scheme
	features.SupportMeshHTTPRouteRedirectPort,                     // RequestRedirect: port
	features.SupportMeshHTTPRouteRedirectPath,                     // RequestRedirect: path (ReplaceFullPath, ReplacePrefixMatch)
	features.SupportHTTPRoute303RedirectStatusCode,                // RequestRedirect: statusCode 303
	features.SupportHTTPRoute307RedirectStatusCode,                // RequestRedirect: statusCode 307
	features.SupportHTTPRoute308RedirectStatusCode,                // RequestRedirect: statusCode 308
	features.SupportGRPCRoute,                                     // GRPCRoute (profile MESH-GRPC)
	features.SupportMeshHTTPRouteRewritePath,                      // URLRewrite: path
	features.SupportMeshHTTPRouteBackendRequestHeaderModification, // RequestHeaderModifier on a backendRef
}

// childConfig is what TestMeshHTTPSuite needs from TestMeshHTTP.
type childConfig struct {
	Kubeconfig string // the cluster's admin kubeconfig
	EchoImage  string // the imported echo-advanced image
	Report     string // where to write the suite's report (YAML)
	Version    string // Weft's version, for the report
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// TestMeshHTTP starts the cluster, installs Weft with its chart, and runs
// the conformance suite (TestMeshHTTPSuite) in a child process, so that
// failing conformance tests are reported rather than failing this test.
// It fails only when the setup breaks or the suite does not finish. Output
// goes to bin/conformance/: mesh-report.yaml (the suite's report),
// suite.log (its test output) and results.txt (one line per test).
func TestMeshHTTP(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		t.Skip("in the suite's child process")
	}
	if os.Geteuid() != 0 {
		t.Skipf("!!! SKIPPING the Gateway API conformance run: it needs root on Linux (a real cluster); running as uid %d", os.Geteuid())
	}
	root := repoRoot()
	outDir := filepath.Join(root, "bin", "conformance")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	helm, err := kube.HelmPath()
	if err != nil {
		t.Fatal(err)
	}
	version, err := images.ChartAppVersion(root)
	if err != nil {
		t.Fatal(err)
	}

	t0 := time.Now()
	buildCtx, cancel := context.WithTimeout(t.Context(), 20*time.Minute) // a cold module cache: about 5 minutes
	echoRef, echoTar, err := buildEchoImage(buildCtx, filepath.Join(root, "tests", "conformance", "echo"), t.TempDir())
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s in %s", echoRef, since(t0))

	startCtx, cancel := context.WithTimeout(t.Context(), 40*time.Minute) // a first build of Kubernetes included
	c, err := cluster.Start(startCtx, cluster.Options{Logf: t.Logf})
	cancel()
	if err != nil {
		t.Fatalf("start the cluster: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpState(t, c)
		}
		if err := c.Stop(); err != nil {
			t.Errorf("stop the cluster: %v", err)
		}
	})
	if err := c.ImportImage(t.Context(), echoTar); err != nil {
		t.Fatal(err)
	}

	// Install Weft as the end-to-end suite does: the cluster's values file.
	t0 = time.Now()
	helmEnv := append(os.Environ(), "KUBECONFIG="+c.Kubeconfig, "HELM_CACHE_HOME="+t.TempDir(),
		"HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	if out, err := runCmd(6*time.Minute, helmEnv, helm, "install", "weft", filepath.Join(root, "charts", "weft"),
		"--namespace", weftNS, "--create-namespace", "--values", c.HelmValuesFile(), "--wait", "--timeout", "5m"); err != nil {
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	// helm --wait can return before a one-node DaemonSet is Ready.
	for _, w := range []string{"deployment/weft-control-plane", "daemonset/weft-node-proxy"} {
		ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
		_, err := c.Kubectl(ctx, "rollout", "status", "-n", weftNS, w, "--timeout=3m")
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("installed Weft %s in %s", version, since(t0))

	// The suite, in a child process.
	reportPath := filepath.Join(outDir, "mesh-report.yaml")
	logPath := filepath.Join(outDir, "suite.log")
	os.Remove(reportPath)
	cfg, err := json.Marshal(childConfig{Kubeconfig: c.Kubeconfig, EchoImage: echoRef, Report: reportPath, Version: version})
	if err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	t0 = time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+suiteTest+"$", "-test.v", "-test.count=1", "-test.timeout=40m")
	cmd.Env = append(os.Environ(), childEnv+"="+string(cfg))
	// Not copied to this test's output: `go test -json` would read the
	// child's result lines as this binary's.
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.WaitDelay = 10 * time.Second
	t.Logf("running the suite; its output goes to %s", logPath)
	runErr := cmd.Run()
	t.Logf("the suite ran in %s (%v)", since(t0), runErr)

	suiteLog, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	report, err := os.ReadFile(reportPath)
	if err != nil {
		t.Fatalf("the suite did not finish (no report: %v); the end of %s:\n%s", err, logPath, tail(suiteLog, 60))
	}
	results := summarize(suiteLog)
	if err := os.WriteFile(filepath.Join(outDir, "results.txt"), []byte(results), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("results (%s):\n%s", filepath.Join(outDir, "results.txt"), results)
	t.Logf("report (%s):\n%s", reportPath, report)
}

// topResult is one conformance test's outcome line in `go test -v`
// output: the suite runs each test as a subtest of suiteTest. (Its
// duration is left out: a test whose cases run in parallel reports the
// time before they ran.)
var topResult = regexp.MustCompile(`(?m)^    --- (PASS|FAIL|SKIP): ` + suiteTest + `/(\S+) \([0-9.]+s\)$`)

// summarize lists each conformance test with its result.
func summarize(log []byte) string {
	var b strings.Builder
	for _, m := range topResult.FindAllSubmatch(log, -1) {
		fmt.Fprintf(&b, "%-4s  %s\n", m[1], m[2])
	}
	return b.String()
}

// tail is the last n lines of b.
func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestMeshHTTPSuite is the conformance suite itself; TestMeshHTTP runs it
// in a child process against the cluster it set up.
func TestMeshHTTPSuite(t *testing.T) {
	raw := os.Getenv(childEnv)
	if raw == "" {
		t.Skip("run by TestMeshHTTP, in a child process")
	}
	var cc childConfig
	if err := json.Unmarshal([]byte(raw), &cc); err != nil {
		t.Fatalf("%s: %v", childEnv, err)
	}
	restConfig, err := clientcmd.BuildConfigFromFlags("", cc.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	restConfig.QPS, restConfig.Burst = 50, 100
	clientset, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		t.Fatal(err)
	}
	scheme := k8sruntime.NewScheme()
	for _, add := range []func(*k8sruntime.Scheme) error{
		clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme, gwv1.Install, gwv1beta1.Install, gwv1alpha2.Install,
	} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	clientOpts := client.Options{Scheme: scheme}
	cl, err := client.New(restConfig, clientOpts)
	if err != nil {
		t.Fatal(err)
	}
	manifests, err := meshManifests(cc.EchoImage)
	if err != nil {
		t.Fatal(err)
	}
	s, err := suite.NewConformanceTestSuite(suite.ConformanceOptions{
		ConfigurableOptions: suite.ConfigurableOptions{
			ConformanceProfiles:  []suite.ConformanceProfileName{suite.MeshHTTPConformanceProfileName, suite.MeshGRPCConformanceProfileName},
			SupportedFeatures:    supportedFeatures,
			NamespaceAnnotations: map[string]string{"weftmesh.io/mesh": "enabled"},
			// The cluster goes away afterwards; each test's routes are
			// removed before the next (they share the echo Services).
			CleanupBaseResources: false,
			CleanupTestResources: true,
			TimeoutConfig:        config.DefaultTimeoutConfig(),
			Mode:                 "default",
			Implementation: confv1.Implementation{
				Organization: "weftmesh",
				Project:      "weft",
				Version:      cc.Version,
			},
		},
		Client:        cl,
		ClientOptions: clientOpts,
		Clientset:     clientset,
		RestConfig:    restConfig,
		MeshManifests: meshManifestsPath,
		ManifestFS:    []fs.FS{manifests, &conformance.Manifests},
	})
	if err != nil {
		t.Fatal(err)
	}
	ran := false
	// Registered before Run, so it runs after Run's own cleanup (which
	// marks the run finished, as Report requires).
	t.Cleanup(func() {
		if !ran {
			return
		}
		rep, err := s.Report()
		if err != nil {
			t.Errorf("report: %v", err)
			return
		}
		b, err := yaml.Marshal(rep)
		if err != nil {
			t.Errorf("report: %v", err)
			return
		}
		if err := os.WriteFile(cc.Report, b, 0o644); err != nil {
			t.Errorf("report: %v", err)
		}
	})
	s.Setup(t, meshtests.MeshConformanceTests)
	if err := s.Run(t, meshtests.MeshConformanceTests); err != nil {
		t.Fatal(err)
	}
	ran = true
}

// runCmd runs a program with env and returns its combined output.
func runCmd(timeout time.Duration, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// dumpState logs what helps debug a failed setup.
func dumpState(t *testing.T, c *cluster.Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, args := range [][]string{
		{"get", "pods", "-A", "-o", "wide"},
		{"get", "events", "-A", "--sort-by=.lastTimestamp"},
		{"logs", "-n", weftNS, "-l", "app.kubernetes.io/component=control-plane", "--tail=40"},
	} {
		out, err := c.Kubectl(ctx, args...)
		t.Logf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
