#!/usr/bin/env bash
# Regenerates every generated file: Go code from api/**/*.proto.
# Run through `make generate`; `make verify-generated` checks it is current.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=${WEFT_CACHE:-$HOME/.cache/weft}/tools
export PATH="$tools:$PATH"
mapfile -t protos < <(find api -name '*.proto' | sort)
if ((${#protos[@]})); then
  protoc -I . --go_out=. --go_opt=paths=source_relative \
    --go-grpc_out=. --go-grpc_opt=paths=source_relative "${protos[@]}"
fi
