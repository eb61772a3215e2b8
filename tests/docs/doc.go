// Package docs tests the documentation (README.md and docs/**) against the
// code, so that the docs cannot drift from what the binaries do:
//
//   - docs/reference/flags.md is generated from the --help output of
//     weft-control-plane, weft-node-proxy, weft-cni (and its install and
//     uninstall subcommands) and every command of weftctl; the test builds
//     the binaries, renders the page and compares it with the committed
//     file. `go test ./tests/docs -run TestFlagsReference -update` rewrites
//     it.
//   - docs/reference/metrics.md documents exactly the weft_* metrics that
//     the non-test Go source registers, with their types; every weft_*
//     name mentioned anywhere in the docs or the Grafana dashboards under
//     docs/dashboards is one of them.
//   - Relative links (and their #anchors) in README.md and docs/** resolve.
//   - Every `make TARGET` in a shell code block (or an inline code span)
//     names a Makefile target, and every weftctl command line is accepted
//     by the built weftctl (the same arguments plus --help exit 0).
//   - Every ```yaml example that is a TrafficPolicy, AuthorizationPolicy,
//     HTTPRoute or GRPCRoute is accepted by a server-side dry-run apply
//     with strict field validation on a real kube-apiserver (package
//     tests/kube) that has the chart's CRDs installed.
//
// The binaries are built once per run into a temporary directory (about
// 20 s without a build cache). The YAML test needs the kube-apiserver and
// etcd binaries of tests/kube (WEFT_KUBE_BIN, or built on first use).
package docs
