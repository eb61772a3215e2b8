#!/usr/bin/env bash
# Installs, idempotently, what the proxy benchmark (tests/bench/proxy)
# runs: wrk, h2load (nghttp2-client) and nginx (its -backend nginx) from
# Debian, fortio (pinned) into $WEFT_CACHE/tools. Says what it installs on
# stderr; prints nothing when everything is already there. Installing nginx
# never starts it: the benchmark runs its own inside the sandbox's pods.
set -euo pipefail
export GOTOOLCHAIN=local
cache=${WEFT_CACHE:-$HOME/.cache/weft}
tools="$cache/tools"
fortio_version=v1.68.2
mkdir -p "$tools"

need_apt=()
command -v wrk >/dev/null || need_apt+=(wrk)
command -v h2load >/dev/null || need_apt+=(nghttp2-client)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need_apt+=(nginx)
if ((${#need_apt[@]})); then
  echo "bench-tools: INSTALLING apt packages: ${need_apt[*]}" >&2
  if [[ $(id -u) -ne 0 ]]; then
    echo "bench-tools: not root: install ${need_apt[*]} yourself" >&2; exit 1
  fi
  # No service may start on install (Debian's nginx would listen on :80).
  policy=/usr/sbin/policy-rc.d
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >&2
fi

stamp="$tools/.fortio.version"
if [[ ! -x "$tools/fortio" || ! -f "$stamp" || $(cat "$stamp") != "$fortio_version" ]]; then
  echo "bench-tools: INSTALLING fortio.org/fortio@$fortio_version into $tools" >&2
  GOBIN="$tools" go install "fortio.org/fortio@$fortio_version"
  echo "$fortio_version" >"$stamp"
fi
