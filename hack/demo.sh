#!/usr/bin/env bash
# `make demo`: the whole mesh on this machine, with `weftctl sandbox demo`.
# It builds the sandbox (2 simulated nodes x 2 pods in network namespaces,
# the control plane in local mode, a node proxy per node, the echo app in
# every pod, enrollment through the CNI plugin), walks through mTLS, STRICT
# inbound, an AuthorizationPolicy, a canary shift with an HTTPRoute, retries
# hiding failures, fault injection, and the trace of one request, checking
# each outcome, then tears everything down. Needs root on Linux.
#
# WEFT_DEMO_STAY=1 keeps the sandbox up at the end until Ctrl-C.
# WEFT_DEMO_OTLP=host:port also sends every span to that OTLP/gRPC collector.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -ne 0 || $(uname -s) != Linux ]]; then
  echo "make demo needs root on Linux (network namespaces, nftables). For the identity-only demo without root: make demo-identity" >&2
  exit 1
fi
args=(--bin bin)
[[ "${WEFT_DEMO_STAY:-}" == 1 ]] && args+=(--stay)
[[ -n "${WEFT_DEMO_OTLP:-}" ]] && args+=(--otlp-endpoint "$WEFT_DEMO_OTLP")
exec bin/weftctl sandbox demo "${args[@]}"
