#!/usr/bin/env bash
# Builds kube-apiserver (k8s.io/kubernetes v1.36.3) and etcd (v3.6.8) from the Go
# module proxy into a cache directory outside the repository, and reuses them
# when present. Prints the directory holding the binaries on its last line.
#
#   WEFT_CACHE   cache root (default: $HOME/.cache/weft)
#
# The first build takes about 12 minutes on 2 cores; later calls return at once.
set -euo pipefail

KUBE_VERSION=v1.36.3
STAGING_VERSION=v0.36.3
ETCD_VERSION=v3.6.8

cache=${WEFT_CACHE:-$HOME/.cache/weft}
out="$cache/kube-$KUBE_VERSION-etcd-$ETCD_VERSION"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod

if [[ -x "$out/kube-apiserver" && -x "$out/etcd" ]]; then
  echo "$out"
  exit 0
fi
mkdir -p "$out"
# Several test packages may start at once (go test ./...): build only once.
if command -v flock >/dev/null; then
  exec 9>"$out.lock"
  flock 9
  if [[ -x "$out/kube-apiserver" && -x "$out/etcd" ]]; then
    echo "$out"
    exit 0
  fi
fi
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT

log() { echo "build-binaries: $*" >&2; }

# --- kube-apiserver -------------------------------------------------------
if [[ ! -x "$out/kube-apiserver" ]]; then
  log "building kube-apiserver $KUBE_VERSION (first time: several minutes)"
  mkdir -p "$work/kube" && cd "$work/kube"
  go mod init weft.local/kubebuild >/dev/null 2>&1
  # The kubernetes go.mod replaces each staging module with ./staging/...;
  # a module that requires it must replace them with their published releases.
  modfile=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  staging=$(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$modfile" | sort -u)
  if [[ -z "$staging" ]]; then
    log "could not read the staging modules from $modfile"; exit 1
  fi
  {
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    for m in $staging; do echo "replace $m => $m $STAGING_VERSION"; done
  } >>go.mod
  cat >tools.go <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
  go mod tidy -e >/dev/null 2>&1 || true
  ld=""
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=36 -X $p.gitTreeState=clean"
  done
  go build -trimpath -ldflags "-s -w $ld" -o "$out/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
  mv "$out/kube-apiserver.tmp" "$out/kube-apiserver"
fi

# --- etcd -----------------------------------------------------------------
if [[ ! -x "$out/etcd" ]]; then
  log "building etcd $ETCD_VERSION"
  mkdir -p "$work/etcd" && cd "$work/etcd"
  go mod init weft.local/etcdbuild >/dev/null 2>&1
  echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION" >>go.mod
  cat >tools.go <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
  go mod tidy -e >/dev/null 2>&1 || true
  go build -trimpath -ldflags "-s -w" -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "$out/etcd.tmp" "$out/etcd"
fi

echo "$out"
