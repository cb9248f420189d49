#!/usr/bin/env bash
# Every benchmark: Go benchmarks (real redis-server) and the load scripts.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
echo "[bench] go test -bench (webhook ingest, lock acquire+release; real redis-server)"
go test -run '^$' -bench . -benchtime 2000x ./internal/handlers/ ./internal/locks/
echo "[bench] webhook at a fixed rate (vegeta)"
bench/webhook.sh
echo "[bench] alert storm: 1,000 alerts in one burst"
bench/storm.sh
if [[ -x bench/drain.sh ]]; then
  echo "[bench] drain of 100 pods: node-healer vs kubectl drain"
  bench/drain.sh
fi
