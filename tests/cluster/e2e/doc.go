// Package e2e is Weft's end-to-end suite on a real single-node Kubernetes
// cluster (tests/cluster): the Helm chart installed as a user would, a
// namespace annotated, real pods meshed through the container runtime's CNI
// chain, then mTLS, STRICT, a canary shifted with weftctl, faults and
// retries, traces, weftctl's admin commands over port-forwards, a rolling
// node proxy and an uninstall. It needs root on Linux (it skips loudly
// otherwise) and builds the cluster's binaries once (cached outside the
// repository; see tests/cluster/build-binaries.sh).
//
//	go test -count=1 -v ./tests/cluster/e2e/
package e2e
