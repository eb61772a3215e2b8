package main

import (
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"
)

func main() {
	// The runtime always sets CNI_COMMAND; only without it are the
	// installer's subcommands recognized.
	if os.Getenv("CNI_COMMAND") == "" && len(os.Args) > 1 && isSubcommand(os.Args[1]) {
		os.Exit(runSubcommand(os.Args[1:], os.Stderr))
	}
	p := &plugin{stderr: os.Stderr, stdout: os.Stdout}
	skel.PluginMainFuncs(skel.CNIFuncs{Add: p.add, Del: p.del, Check: p.check},
		version.PluginSupports("0.4.0", "1.0.0"), "weft-cni: enrolls pods with the Weft node proxy")
}
