#!/usr/bin/env bash
# Every benchmark: Go benchmarks (real redis-server) and the load scripts.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
echo "[bench 1/3] go test -bench (webhook ingest, lock acquire+release; real redis-server)"
go test -run '^$' -bench . -benchtime 2000x ./internal/handlers/ ./internal/locks/
echo "[bench 2/3] webhook at a fixed rate (vegeta)"
bench/webhook.sh
if [[ -x bench/drain.sh ]]; then
  echo "[bench 3/3] drain of 100 pods: node-healer vs kubectl drain"
  bench/drain.sh
fi
