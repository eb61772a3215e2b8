#!/usr/bin/env bash
# The Step 1 demo: the control plane in local mode issues a workload SVID to
# a node for a pod scheduled on it, and refuses the pods it may not have.
# Run through `make demo`. Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/bin
work=$(mktemp -d /tmp/weft-demo.XXXXXX)
cp_pid=""
cleanup() {
  if [[ -n "$cp_pid" ]]; then kill "$cp_pid" 2>/dev/null || true; wait "$cp_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

bold() { printf '\n\033[1m%s\033[0m\n' "$*"; }

mkdir -p "$work/config" "$work/state"
cat >"$work/config/mesh.yaml" <<'YAML'
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  annotations:
    weftmesh.io/mesh: enabled       # enrolled
---
apiVersion: v1
kind: Namespace
metadata:
  name: legacy                      # not enrolled
---
apiVersion: v1
kind: Pod
metadata: {name: cart, namespace: shop}
spec: {nodeName: node-a, serviceAccountName: cart, containers: [{name: app, image: weft-echo}]}
status: {podIP: 10.10.1.2}
---
apiVersion: v1
kind: Pod
metadata: {name: checkout, namespace: shop}
spec: {nodeName: node-b, serviceAccountName: checkout, containers: [{name: app, image: weft-echo}]}
status: {podIP: 10.10.2.2}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: legacy}
spec: {nodeName: node-a, containers: [{name: app, image: weft-echo}]}
status: {podIP: 10.10.1.3}
YAML
token_a=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
token_b=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf 'node-a %s\nnode-b %s\n' "$token_a" "$token_b" >"$work/join-tokens"
printf '%s\n' "$token_a" >"$work/node-a.token"

port=${WEFT_DEMO_PORT:-15012}
admin=${WEFT_DEMO_ADMIN_PORT:-15014}
bold "1. Start the control plane in local mode (CA created in $work/state)"
"$bin/weft-control-plane" --config-dir "$work/config" --state-dir "$work/state" \
  --join-tokens "$work/join-tokens" --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
  --log-level warn 2>"$work/control-plane.log" &
cp_pid=$!
for _ in $(seq 100); do
  [[ -s "$work/state/trust-bundle.pem" ]] && break
  kill -0 "$cp_pid" 2>/dev/null || { cat "$work/control-plane.log"; exit 1; }
  sleep 0.1
done
"$bin/weftctl" certs inspect "$work/state/trust-bundle.pem"

bold "2. The pods, as the config dir declares them"
echo "  shop/cart       node-a  service account cart      namespace shop enrolled"
echo "  shop/checkout   node-b  service account checkout  namespace shop enrolled"
echo "  legacy/web      node-a  service account default   namespace legacy NOT enrolled"

bold "3. node-a's proxy bootstraps, then asks for SVIDs for three pods"
set +e
"$bin/weftctl" certs request-svid --control-plane "127.0.0.1:$port" --node node-a \
  --join-token-file "$work/node-a.token" --trust-bundle "$work/state/trust-bundle.pem" \
  --pod shop/cart --pod shop/checkout --pod legacy/web
rc=$?
set -e
[[ $rc -eq 1 ]] || { echo "expected two refusals (exit 1), got exit $rc"; exit 1; }

bold "4. A node proxy with a stolen token for the wrong node is refused"
set +e
"$bin/weftctl" certs request-svid --control-plane "127.0.0.1:$port" --node node-b \
  --join-token-file "$work/node-a.token" --trust-bundle "$work/state/trust-bundle.pem" --pod shop/checkout
set -e

bold "5. Every answer is counted (http://127.0.0.1:$admin/metrics)"
if command -v curl >/dev/null; then
  curl -s "http://127.0.0.1:$admin/metrics" | grep '^weft_identity_requests_total'
fi
bold "Done: mTLS identities are only issued to the node a pod runs on."
