// Package chart tests the Helm chart in charts/weft with a real helm binary
// and a real kube-apiserver: lint (also --strict), rendered output against
// golden files (go test -update rewrites them), every rendered object
// accepted by a server-side dry-run apply after the chart's CRDs are
// installed for real, and every values.yaml key commented and listed in the
// chart README.
//
// helm is the pinned tool hack/tools.sh installs into $WEFT_CACHE/tools
// (default ~/.cache/weft/tools); a helm on PATH is used when that is
// missing. Without either, the tests skip loudly.
package chart
