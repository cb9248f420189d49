#!/usr/bin/env bash
# scale.sh: node-healer at fleet scale (issue 16) — 1,000 kwok nodes × 30
# pods, two receiver replicas, real Redis, the BMC simulator for every
# node: idle cost, an alert storm, a wave within the limits with webhook
# load, and a drain at kubelet's maxPods beside `kubectl drain`. Prints a
# table with issue 16's targets. Figures go to docs/benchmarks.md ("Fleet
# scale (issue 16)").
#
#   bench/scale.sh                      # the full benchmark (make bench-scale)
#   bench/scale.sh -nodes 200 -pods 10  # smaller; every flag: go run ./bench/scale -h
#
# kubectl is built once into .cache/tools/bin/kubectl from the tools
# module's Kubernetes version, as bench/drain.sh does (KUBECTL= to use
# another; KUBECTL=none to skip the comparison).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${NODE_HEALER_TOOLS:-$ROOT/.cache/tools/bin}
export NODE_HEALER_TOOLS=$BIN
export PATH=$BIN:$PATH
GO=${GO:-go}
KUBECTL=${KUBECTL:-$BIN/kubectl}
cd "$ROOT"

# shellcheck source=bench/kubectl.sh
source "$ROOT/bench/kubectl.sh"
if [[ $KUBECTL != none ]]; then
	ensure_kubectl
fi
KFLAG=()
if [[ $KUBECTL != none ]]; then
	KFLAG=(-kubectl "$KUBECTL")
	echo "kubectl: $("$KUBECTL" version --client 2>/dev/null | head -1)"
fi
echo "[bench] building the receiver and the harness…"
mkdir -p bin
"$GO" build -o bin/ ./cmd/receiver
"$GO" build -o bin/scale-bench ./bench/scale
echo "machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(awk '/^MemTotal/ { printf "%.1f GiB", $2/1048576 }' /proc/meminfo)"
exec bin/scale-bench -receiver bin/receiver "${KFLAG[@]}" "$@"
