// Package conformance runs the Gateway API conformance suite
// (sigs.k8s.io/gateway-api/conformance), profile MESH-HTTP, against Weft on
// the real single-node cluster of tests/cluster, and writes the suite's
// report. It is a report, not a gate: conformance tests that fail are logged
// and counted, and the run fails only when its setup breaks.
//
// It is its own module so that the suite's dependencies stay out of Weft's
// go.mod; `go test ./...` at the repository root does not include it. Run
// it with `make conformance` (root, Linux). The suite's echo-advanced image
// is Istio's echo server and client, built from the module in ./echo.
// Results: docs/conformance.md.
package conformance
