#!/usr/bin/env bash
# The admission path at fleet scale (issue 16): 1,000 kwok nodes, 100-alert
# payloads at 50/s over HTTP to the real receiver (workers running), and a
# 300-node storm's breaker-open time. Figures go to docs/benchmarks.md by
# hand, with the machine (printed first).
#
#   bench/admission.sh                              # this checkout's receiver
#   bench/admission.sh -receiver A,B -rounds 2      # two binaries, alternating
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
scripts/tools.sh etcd kube-apiserver kwok
echo "[bench] building the receiver…"
go build -o bin/ ./cmd/receiver
go run ./bench/admission -receiver bin/receiver "$@"
