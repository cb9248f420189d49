#!/usr/bin/env bash
# Webhook ingest at a fixed rate, with vegeta (built from the Go module proxy
# into .cache/tools/bin). Figures go to docs/benchmarks.md by hand, with the
# machine: nproc and the CPU model are printed first.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BIN=${NODE_HEALER_TOOLS:-$ROOT/.cache/tools/bin}
if [[ ! -x $BIN/vegeta ]]; then
  echo "[bench] building vegeta v12.12.0 into $BIN (~20 s)…"
  GOBIN=$BIN go install github.com/tsenart/vegeta/v12@v12.12.0
fi
scripts/tools.sh etcd kube-apiserver kwok
echo "[bench] building the receiver…"
go build -o bin/ ./cmd/receiver
echo "[bench] machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
go run ./bench/webhookload -vegeta "$BIN/vegeta" -receiver bin/receiver "$@"
