#!/usr/bin/env bash
# Installs, idempotently, what building and testing Weft needs on a fresh
# Debian machine: apt packages and pinned Go tools (into $WEFT_CACHE/tools).
# Prints nothing when everything is already there.
set -euo pipefail
export GOTOOLCHAIN=local
cache=${WEFT_CACHE:-$HOME/.cache/weft}
tools="$cache/tools"
mkdir -p "$tools"

need_apt=()
command -v protoc >/dev/null || need_apt+=(protobuf-compiler)
command -v ip >/dev/null || need_apt+=(iproute2)
command -v openssl >/dev/null || need_apt+=(openssl)
# nft is only used by tests, to check the rules we install over netlink.
command -v nft >/dev/null || need_apt+=(nftables)
if ((${#need_apt[@]})); then
  echo "tools: apt-get install ${need_apt[*]}" >&2
  if [[ $(id -u) -ne 0 ]]; then
    echo "tools: not root: install ${need_apt[*]} yourself" >&2; exit 1
  fi
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >&2
fi

# Go tools, pinned. Each is rebuilt only when its version stamp changes.
go_tool() { # name module@version
  local name=$1 modver=$2 stamp="$tools/.$1.version"
  if [[ -x "$tools/$name" && -f "$stamp" && $(cat "$stamp") == "$modver" ]]; then return; fi
  echo "tools: go install $modver" >&2
  GOBIN="$tools" go install "$modver"
  echo "$modver" >"$stamp"
}
go_tool protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
go_tool protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
go_tool controller-gen sigs.k8s.io/controller-tools/cmd/controller-gen@v0.21.0
# helm: the chart tests (tests/chart) lint, render and dry-run charts/weft.
go_tool helm helm.sh/helm/v3/cmd/helm@v3.22.0
