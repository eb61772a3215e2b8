#!/usr/bin/env bash
# Fails when a generated file differs from what `make generate` would write:
# regenerates in a scratch copy of the tree and compares.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git ls-files -co --exclude-standard -z | tar --null -cf - -T - | tar -xf - -C "$tmp"
(cd "$tmp" && hack/generate.sh)
# Every generated path, relative to the repo root.
generated=(api charts/weft/crds charts/weft/files/gateway-api)
stale=()
for g in "${generated[@]}"; do
  diff -r -q "$tmp/$g" "$g" >/dev/null 2>&1 || stale+=("$g")
done
if ((${#stale[@]})); then
  for g in "${stale[@]}"; do diff -r "$tmp/$g" "$g" || true; done | head -40
  echo "generated files are stale in: ${stale[*]}: run 'make generate' and commit the result" >&2
  exit 1
fi
echo "generated files are up to date"
