#!/usr/bin/env bash
# Alert storm: 1,000 alerts in one burst against the receiver binary with the
# shipped safety defaults. Prints webhook latency, peak memory, time until the
# blast-radius breaker opens, and the destructive actions taken (must be 0).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
scripts/tools.sh etcd kube-apiserver kwok
echo "[bench] building the receiver…"
go build -o bin/ ./cmd/receiver
echo "[bench] 1,000 single-alert requests"
go run ./bench/storm -receiver bin/receiver -per-request 1
echo "[bench] 1,000 alerts as 10 requests of 100 (Alertmanager max_alerts: 100)"
go run ./bench/storm -receiver bin/receiver -per-request 100
