// Command weft-images builds the container images of Weft and its tests as
// image tarballs (see package tests/cluster/images), for `make images` and for
// importing into a cluster with `ctr -n k8s.io images import FILE`.
//
//	weft-images [-out bin/images] [-tag TAG] [-module .]
//
// It prints one line per image: the reference and the tarball.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/weftmesh/weft/tests/cluster/images"
)

func main() {
	opts := images.BuildOptions{}
	flag.StringVar(&opts.OutDir, "out", "bin/images", "directory for the image tarballs")
	flag.StringVar(&opts.Tag, "tag", "", "tag of every image (default: the chart's appVersion)")
	flag.StringVar(&opts.ModuleDir, "module", ".", "root of the weft module")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	built, err := images.Build(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "weft-images:", err)
		os.Exit(1)
	}
	for _, b := range built {
		fmt.Printf("%s\t%s\n", b.Ref, b.Tarball)
	}
}
