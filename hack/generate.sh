#!/usr/bin/env bash
# Regenerates every generated file:
#   - Go code from api/**/*.proto (protoc);
#   - deepcopy methods for the CRD types in api/v1alpha1 (controller-gen object);
#   - the CRD YAML of those types into charts/weft/crds (controller-gen crd);
#   - the Gateway API CRDs Weft uses (HTTPRoute, GRPCRoute, experimental
#     channel) copied from the module cache into charts/weft/files/gateway-api,
#     which templates/gateway-api-crds.yaml installs when absent.
# Run through `make generate` (which first installs the pinned tools);
# `make verify-generated` checks that the result is current. The output
# depends only on the sources and the pinned tool and module versions, so a
# second run changes nothing.
set -euo pipefail
export GOTOOLCHAIN=local
cd "$(dirname "$0")/.."
tools=${WEFT_CACHE:-$HOME/.cache/weft}/tools
export PATH="$tools:$PATH"

# --- protobuf ---
mapfile -t protos < <(find api -name '*.proto' | LC_ALL=C sort)
if ((${#protos[@]})); then
  protoc -I . --go_out=. --go_opt=paths=source_relative \
    --go-grpc_out=. --go-grpc_opt=paths=source_relative "${protos[@]}"
fi

# --- CRD types: deepcopy and CRD YAML ---
crds=charts/weft/crds
controller-gen object paths=./api/v1alpha1/...
# Remove our previous CRD files first, so a CRD whose type was deleted or
# renamed does not linger in the chart.
mkdir -p "$crds"
rm -f "$crds"/weftmesh.io_*.yaml
controller-gen crd paths=./api/v1alpha1/... output:crd:artifacts:config="$crds"

# --- Gateway API CRDs (experimental channel: HTTPRoute retry is experimental) ---
gwapi_dir=$(go list -m -f '{{.Dir}}' sigs.k8s.io/gateway-api)
gwapi_version=$(go list -m -f '{{.Version}}' sigs.k8s.io/gateway-api)
if [[ -z "$gwapi_dir" || ! -d "$gwapi_dir/config/crd/experimental" ]]; then
  echo "generate: sigs.k8s.io/gateway-api $gwapi_version is not in the module cache; run 'go mod download sigs.k8s.io/gateway-api'" >&2
  exit 1
fi
gwapi_out=charts/weft/files/gateway-api
rm -rf "$gwapi_out"
mkdir -p "$gwapi_out"
for kind in httproutes grpcroutes; do
  src="$gwapi_dir/config/crd/experimental/gateway.networking.k8s.io_$kind.yaml"
  if ! grep -q "gateway.networking.k8s.io/channel: experimental" "$src" ||
    ! grep -q "gateway.networking.k8s.io/bundle-version: $gwapi_version\$" "$src"; then
    echo "generate: $src is not the experimental channel of $gwapi_version" >&2
    exit 1
  fi
  # install -m 0644: the module cache is read-only, the copy must not be.
  install -m 0644 "$src" "$gwapi_out/"
done
