#!/usr/bin/env bash
# Builds everything a single-node Kubernetes cluster needs into a cache directory
# outside the repository, and reuses it when present. Prints the directory holding
# the binaries on its last line; progress goes to stderr.
#
#   kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl
#                      k8s.io/kubernetes v1.36.3, one `go build` for all of them
#   etcd               go.etcd.io/etcd/server/v3 v3.6.8
#   cni/{bridge,loopback,host-local,portmap}
#                      github.com/containernetworking/plugins v1.9.1
#   coredns            github.com/coredns/coredns (pinned below)
#   containerd, containerd-shim-runc-v2, ctr, runc
#                      Debian packages (containerd 1.6.20, runc 1.1.5), plus iptables
#                      for kube-proxy; they stay in /usr/bin and are linked here.
#
#   WEFT_CACHE   cache root (default: $HOME/.cache/weft)
#
# The first build takes 15-20 minutes on 2 cores; later calls return at once.
# Concurrent callers are serialised with flock, so the build runs once.
set -euo pipefail

KUBE_VERSION=v1.36.3
STAGING_VERSION=v0.36.3
ETCD_VERSION=v3.6.8
CNI_VERSION=v1.9.1
COREDNS_VERSION=v1.15.0

cache=${WEFT_CACHE:-$HOME/.cache/weft}
out="$cache/cluster-$KUBE_VERSION"
# The kube/etcd harness in tests/kube caches kube-apiserver and etcd here.
apiserver_cache="$cache/kube-$KUBE_VERSION-etcd-$ETCD_VERSION"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod

kube_cmds=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
cni_plugins=(bridge loopback host-local portmap)
host_tools=(containerd containerd-shim-runc-v2 ctr runc iptables ip6tables iptables-save iptables-restore ip6tables-save ip6tables-restore conntrack)

complete() {
  local f
  for f in "${kube_cmds[@]}" etcd coredns "${host_tools[@]}"; do
    [[ -x "$out/$f" ]] || return 1
  done
  for f in "${cni_plugins[@]}"; do
    [[ -x "$out/cni/$f" ]] || return 1
  done
  [[ -f "$out/.complete" ]]
}

if complete; then
  echo "$out"
  exit 0
fi
mkdir -p "$out/cni"
exec 9>"$out.lock"
flock 9
if complete; then
  echo "$out"
  exit 0
fi
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT

log() { echo "cluster/build-binaries: $*" >&2; }

# --- Kubernetes -------------------------------------------------------------
missing=()
for c in "${kube_cmds[@]}"; do
  [[ -x "$out/$c" ]] && continue
  if [[ $c == kube-apiserver && -x "$apiserver_cache/kube-apiserver" ]]; then
    cp "$apiserver_cache/kube-apiserver" "$out/kube-apiserver"
    continue
  fi
  missing+=("$c")
done
if ((${#missing[@]})); then
  log "building ${missing[*]} $KUBE_VERSION (first time: 10-15 minutes)"
  mkdir -p "$work/kube" && cd "$work/kube"
  go mod init weft.local/clusterbuild >/dev/null 2>&1
  # The kubernetes go.mod replaces each staging module with ./staging/...;
  # a module that requires it must replace them with their published releases.
  modfile=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  staging=$(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$modfile" | sort -u)
  if [[ -z "$staging" ]]; then
    log "could not read the staging modules from $modfile"
    exit 1
  fi
  {
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    for m in $staging; do echo "replace $m => $m $STAGING_VERSION"; done
  } >>go.mod
  {
    echo '//go:build tools'
    echo
    echo 'package tools'
    echo
    for c in "${missing[@]}"; do echo "import _ \"k8s.io/kubernetes/cmd/$c\""; done
  } >tools.go
  go mod tidy -e >/dev/null 2>&1 || true
  ld=""
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=36 -X $p.gitTreeState=clean"
  done
  pkgs=()
  for c in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  mkdir -p "$work/kube-out"
  go build -trimpath -ldflags "-s -w $ld" -o "$work/kube-out/" "${pkgs[@]}"
  for c in "${missing[@]}"; do mv "$work/kube-out/$c" "$out/$c"; done
fi

# --- etcd -------------------------------------------------------------------
if [[ ! -x "$out/etcd" ]]; then
  if [[ -x "$apiserver_cache/etcd" ]]; then
    cp "$apiserver_cache/etcd" "$out/etcd"
  else
    log "building etcd $ETCD_VERSION"
    mkdir -p "$work/etcd" && cd "$work/etcd"
    go mod init weft.local/etcdbuild >/dev/null 2>&1
    echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION" >>go.mod
    printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >tools.go
    go mod tidy -e >/dev/null 2>&1 || true
    go build -trimpath -ldflags "-s -w" -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3
    mv "$out/etcd.tmp" "$out/etcd"
  fi
fi

# --- CNI reference plugins --------------------------------------------------
for p in "${cni_plugins[@]}"; do
  [[ -x "$out/cni/$p" ]] && continue
  case $p in
  host-local) pkg=plugins/ipam/host-local ;;
  portmap) pkg=plugins/meta/portmap ;;
  *) pkg=plugins/main/$p ;;
  esac
  log "building CNI $p $CNI_VERSION"
  CGO_ENABLED=0 GOBIN="$out/cni" GOFLAGS= go install -trimpath -ldflags "-s -w" \
    "github.com/containernetworking/plugins/$pkg@$CNI_VERSION"
done

# --- CoreDNS ----------------------------------------------------------------
if [[ ! -x "$out/coredns" ]]; then
  log "building coredns $COREDNS_VERSION"
  CGO_ENABLED=0 GOBIN="$out" GOFLAGS= go install -trimpath -ldflags "-s -w" \
    "github.com/coredns/coredns@$COREDNS_VERSION"
fi

# --- containerd, runc, iptables (Debian) ------------------------------------
need_apt=()
command -v containerd >/dev/null || need_apt+=(containerd)
command -v runc >/dev/null || need_apt+=(runc)
command -v iptables >/dev/null || need_apt+=(iptables)
command -v conntrack >/dev/null || need_apt+=(conntrack)
if ((${#need_apt[@]})); then
  log "installing ${need_apt[*]} with apt-get"
  if [[ $(id -u) != 0 ]]; then
    log "not root: install ${need_apt[*]} yourself"
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  # --no-install-recommends: no systemd units started, nothing else pulled in.
  apt-get install -y -q --no-install-recommends "${need_apt[@]}" >/dev/null
  # The package may start a system containerd through invoke-rc.d if an init
  # system is present; the cluster runs its own, so stop a service copy if any.
fi
for t in "${host_tools[@]}"; do
  p=$(command -v "$t" || true)
  if [[ -z $p ]]; then
    log "$t not found after installing packages"
    exit 1
  fi
  ln -sfn "$p" "$out/$t"
done

touch "$out/.complete"
echo "$out"
