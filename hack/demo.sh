#!/usr/bin/env bash
# `make demo`: the whole mesh on this machine. Builds the sandbox (2 simulated
# nodes x 2 pods in network namespaces, the control plane in local mode, a
# node proxy per node, the echo app in every pod, enrollment through the CNI
# plugin), walks through mTLS, STRICT inbound, an AuthorizationPolicy, a
# canary shift with an HTTPRoute, retries hiding a failing pod, and fault
# injection, and the trace of one request, then tears everything down.
# Needs root on Linux.
#
# WEFT_DEMO_STAY=1 keeps the sandbox up at the end until Ctrl-C.
# WEFT_DEMO_OTLP=host:port also sends every span to that OTLP/gRPC collector.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -ne 0 || $(uname -s) != Linux ]]; then
  echo "make demo needs root on Linux (network namespaces, nftables). For the identity-only demo without root: make demo-identity" >&2
  exit 1
fi
bin=$PWD/bin
name=demo
out=$(mktemp /tmp/weft-demo.XXXXXX)
sb_pid=""
cleanup() {
  if [[ -n "$sb_pid" ]]; then kill -TERM "$sb_pid" 2>/dev/null || true; wait "$sb_pid" 2>/dev/null || true; fi
  rm -f "$out"
}
trap cleanup EXIT
bold() { printf '\n\033[1m%s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
inpod() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
field() { sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" | head -1; }

bold "1. Build the sandbox: 2 nodes, 2 pods each, namespace demo enrolled (weftmesh.io/mesh: enabled)"
otlp=()
[[ -n "${WEFT_DEMO_OTLP:-}" ]] && otlp=(--otlp-endpoint "$WEFT_DEMO_OTLP")
"$bin/weftctl" sandbox up --name "$name" --nodes 2 --pods 2 --bin "$bin" --tracing "${otlp[@]}" >"$out" 2>&1 &
sb_pid=$!
for _ in $(seq 600); do
  grep -q "Ctrl-C tears everything down" "$out" && break
  kill -0 "$sb_pid" 2>/dev/null || { cat "$out"; exit 1; }
  sleep 0.1
done
sed -n '/is up/,/^SERVICE/p' "$out"

bold "2. A pod on node 0 calls the Service echo.demo; the node proxies carry it in an mTLS HBONE tunnel"
for _ in 1 2 3 4; do
  reply=$(inpod $name-n0-p0 "$bin/weft-echo" get http://echo.demo:8080/hello)
  printf '  answered by %-11s on %-8s caller identity (proven by mTLS): %s\n' \
    "$(echo "$reply" | field pod)" "$(echo "$reply" | field node)" "$(echo "$reply" | field identity)"
done

bold "3. The node proxy's view: enrolled pods and their certificates (admin port 15000, node 0)"
inpod $name-n0 "$bin/weft-echo" get --body http://127.0.0.1:15000/workloads | grep -E '"(name|identity|inboundMode|notAfter)"' | sed 's/^ */  /' | head -12 || true

bold "4. Plaintext from outside the mesh into an enrolled pod is refused (STRICT by default)"
pod_ip=$(inpod $name-n1-p0 ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)
printf '$ (from node 0, no mTLS) GET http://%s:8080/\n' "$pod_ip"
if inpod $name-n0 "$bin/weft-echo" get --timeout 2s "http://$pod_ip:8080/" >/dev/null 2>&1; then
  echo "  unexpected: answered"; exit 1
else
  echo "  refused"
fi

bold "5. An AuthorizationPolicy denies the demo namespace the TCP port 7070 of echo"
cat >/run/weft-sandbox/$name/config/60-demo-deny.yaml <<'YAML'
apiVersion: weftmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: no-tcp, namespace: demo}
spec:
  targetRefs: [{name: echo}]
  action: Deny
  rules:
  - from: [{namespaces: [demo]}]
    to: [{ports: [7070]}]
YAML
sleep 1.5
printf '$ (pod echo-n0-p0) HTTP to echo.demo:8080: '
inpod $name-n0-p0 "$bin/weft-echo" get http://echo.demo:8080/ | grep -q '"status": 200' && echo "200, allowed"
printf '$ (pod echo-n0-p0) TCP to echo.demo:7070: '
if printf 'hello\n' | inpod $name-n0-p0 timeout 3 bash -c 'exec 3<>/dev/tcp/echo.demo/7070 && cat >&3 && timeout 2 head -1 <&3' 2>/dev/null | grep -q hello; then
  echo "echoed (unexpected)"; exit 1
else
  echo "refused by policy"
fi
printf '  denials counted by the node proxies (weft_proxy_authorization_denials_total): '
for n in 0 1; do inpod $name-n$n "$bin/weft-echo" get --body http://127.0.0.1:15020/metrics; done |
  awk '/^weft_proxy_authorization_denials_total[{]reason="policy"[}]/ {s+=$2} END {print s+0}'
rm -f /run/weft-sandbox/$name/config/60-demo-deny.yaml

cfg=/run/weft-sandbox/$name/config
load() { inpod $name-n0-p0 "$bin/weft-echo" load --summary "$@"; }
# until_pods N POD...: wait (up to 15 s) until N requests land only on PODs.
until_pods() {
  local n=$1; shift
  for _ in $(seq 150); do
    local line; line=$(load -n "$n" -c 4 http://echo.demo:8080/probe)
    local others; others=$(echo "$line" | sed 's/.*pods://; s/|.*//' | tr ' ' '\n' | grep -v '^$' | grep -v -E "^($(IFS='|'; echo "$*"))=" || true)
    [[ -z "$others" ]] && return 0
    sleep 0.1
  done
  echo "  (config not applied after 15 s)"; return 1
}

bold "6. Canary: an HTTPRoute splits echo.demo between echo-v1 (pod echo-n1-p0) and echo-v2 (pod echo-n1-p1)"
cat >$cfg/70-demo-canary-services.yaml <<'YAML'
apiVersion: v1
kind: Service
metadata: {name: echo-v1, namespace: demo}
spec:
  clusterIP: 10.96.0.201
  selector: {pod: echo-n1-p0}
  ports: [{name: http, port: 8080, appProtocol: http}]
---
apiVersion: v1
kind: Service
metadata: {name: echo-v2, namespace: demo}
spec:
  clusterIP: 10.96.0.202
  selector: {pod: echo-n1-p1}
  ports: [{name: http, port: 8080, appProtocol: http}]
YAML
route() {
  cat >$cfg/71-demo-route.yaml <<YAML
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: echo-canary, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 8080}]
  rules:
  - backendRefs: [{name: echo-v1, port: 8080, weight: $1}, {name: echo-v2, port: 8080, weight: $2}]
YAML
}
for w in "100 0" "50 50" "0 100"; do
  set -- $w
  route "$1" "$2"
  printf '$ weights v1=%s v2=%s; 400 requests from echo-n0-p0:\n' "$1" "$2"
  case "$w" in
    "100 0") until_pods 20 echo-n1-p0 ;;
    "0 100") until_pods 20 echo-n1-p1 ;;
    *) sleep 1.5 ;;
  esac
  echo "  $(load -n 400 -c 8 http://echo.demo:8080/canary)"
done

bold "7. Retries: one of echo's four pods fails every request; with a TrafficPolicy retry the calls still succeed"
rm -f $cfg/71-demo-route.yaml
for _ in $(seq 150); do load -n 20 http://echo.demo:8080/probe | grep -q 'echo-n0-p0=' && break; sleep 0.1; done
printf '$ 400 requests, pod echo-n1-p0 answering 503 (header x-echo-fail-pod), no retry policy:\n'
echo "  $(load -n 400 -c 8 -H 'x-echo-fail-pod: echo-n1-p0' http://echo.demo:8080/flaky)"
cat >$cfg/72-demo-retry.yaml <<'YAML'
apiVersion: weftmesh.io/v1alpha1
kind: TrafficPolicy
metadata: {name: echo-retry, namespace: demo}
spec:
  targetRefs: [{group: "", kind: Service, name: echo}]
  retry: {attempts: 3, retryOn: [5xx], budget: {percent: 100, minRetriesPerSecond: 1000}}
YAML
sleep 2
printf '$ the same with retry: {attempts: 3, retryOn: [5xx]} on Service echo (a retry goes to another pod):\n'
echo "  $(load -n 400 -c 8 -H 'x-echo-fail-pod: echo-n1-p0' http://echo.demo:8080/flaky)"
printf '  retries counted by node 0 (weft_proxy_retries_total{result="retried"}): '
inpod $name-n0 "$bin/weft-echo" get --body http://127.0.0.1:15020/metrics |
  awk '/^weft_proxy_retries_total[{]result="retried"[}]/ {print $2}'
rm -f $cfg/72-demo-retry.yaml

bold "8. Fault injection: a TrafficPolicy aborts 25% of the calls with 503 and delays 10% by 200 ms"
cat >$cfg/73-demo-fault.yaml <<'YAML'
apiVersion: weftmesh.io/v1alpha1
kind: TrafficPolicy
metadata: {name: echo-chaos, namespace: demo}
spec:
  targetRefs: [{group: "", kind: Service, name: echo}]
  faults:
    abort: {httpStatus: 503, percentage: 25}
    delay: {fixedDelay: 200ms, percentage: 10}
YAML
sleep 2
printf '$ 400 requests:\n'
echo "  $(load -n 400 -c 8 http://echo.demo:8080/chaos)"
rm -f $cfg/73-demo-fault.yaml $cfg/70-demo-canary-services.yaml

bold "9. One trace, every hop: echo-n0-p0 calls echo.demo, whose pod calls echo.demo again (passing the trace context on)"
sleep 2
reply=$(inpod $name-n0-p0 "$bin/weft-echo" get -H 'x-echo-call: http://echo.demo:8080/second-hop' http://echo.demo:8080/first-hop)
trace_id=$(echo "$reply" | sed -n 's/.*"00-\([0-9a-f]\{32\}\)-.*/\1/p' | head -1)
printf '$ weftctl sandbox trace --name %s %s\n' "$name" "$trace_id"
for _ in $(seq 50); do
  "$bin/weftctl" sandbox trace --name "$name" "$trace_id" 2>/dev/null | grep -q SERVER.*second-hop && break
  sleep 0.2
done
"$bin/weftctl" sandbox trace --name "$name" "$trace_id" | sed "s/^/  /"
[[ -n "${WEFT_DEMO_OTLP:-}" ]] && echo "  (every span was also sent to $WEFT_DEMO_OTLP)"

if [[ "${WEFT_DEMO_STAY:-}" == 1 ]]; then
  bold "The sandbox stays up; Ctrl-C tears it down."
  sed -n '/^Config dir/,$p' "$out"
  wait "$sb_pid"
fi
bold "Done: tearing the sandbox down."
