// Command weft-cluster runs the single-node Kubernetes cluster of the
// end-to-end tests (package tests/cluster) for people: `make cluster-up`
// starts it in the foreground, with Weft's images imported, prints how to
// use it (KUBECONFIG, the Helm values file for this cluster) and tears it
// all down on Ctrl-C; `make cluster-down` cleans up after a run that was
// killed. Linux and root only; one cluster per machine.
//
//	weft-cluster up|down [-state-dir /var/lib/weft-cluster]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/weftmesh/weft/tests/cluster"
	"github.com/weftmesh/weft/tests/kube"
)

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "up" && os.Args[1] != "down") {
		fmt.Fprintln(os.Stderr, "usage: weft-cluster up|down [-state-dir DIR]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("weft-cluster "+os.Args[1], flag.ExitOnError)
	stateDir := fs.String("state-dir", cluster.DefaultStateDir, "directory holding everything the cluster writes")
	_ = fs.Parse(os.Args[2:])
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	var err error
	if os.Args[1] == "up" {
		err = up(ctx, *stateDir, logf)
	} else {
		err = cluster.Cleanup(ctx, *stateDir, logf)
		if err == nil {
			fmt.Println("cleaned up", *stateDir)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "weft-cluster:", err)
		os.Exit(1)
	}
}

func up(ctx context.Context, stateDir string, logf func(string, ...any)) error {
	startCtx, cancel := context.WithTimeout(ctx, 45*time.Minute) // a first build included
	defer cancel()
	c, err := cluster.Start(startCtx, cluster.Options{StateDir: stateDir, Logf: logf})
	if err != nil {
		return err
	}
	wd, _ := os.Getwd()
	chart := filepath.Join(wd, "charts", "weft")
	fmt.Printf(`
A single-node Kubernetes cluster is up, with Weft's images (tag %[1]s) imported.

  export KUBECONFIG=%[2]s
  export PATH=%[5]s:%[6]s:$PATH   # kubectl and helm
  kubectl get nodes
  # Install Weft with this cluster's paths (CNI, network namespaces, probes):
  helm install weft %[3]s --namespace weft-system --create-namespace --values %[4]s --wait
  kubectl -n weft-system rollout status daemonset/weft-node-proxy

Ctrl-C tears everything down. After a crash: make cluster-down
`, c.ImageTag, c.Kubeconfig, chart, c.HelmValuesFile(), c.BinDir, kube.ToolsDir())
	<-ctx.Done()
	fmt.Println("\nTearing the cluster down...")
	if err := c.Stop(); err != nil {
		return err
	}
	fmt.Println("Cluster is down.")
	return nil
}
