#!/usr/bin/env bash
# drain.sh: node-healer's Drainer vs `kubectl drain --ignore-daemonsets
# --delete-emptydir-data` on one kwok node with 100 ReplicaSet-owned pods
# each, same private control plane (etcd, kube-apiserver v1.32.4, kwok), same
# run. Figures go to docs/benchmarks.md (drain section).
#
#   bench/drain.sh                  # 3 runs, 100 pods per node
#   bench/drain.sh -runs 5 -pods 200
#
# kubectl v1.32.4 is built once into .cache/tools/bin/kubectl from a scratch
# copy of the tools module (tools/go.sum lacks kubectl's packages, and this
# script does not edit tools/): .cache/kubectl-mod.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${NODE_HEALER_TOOLS:-$ROOT/.cache/tools/bin}
export NODE_HEALER_TOOLS=$BIN
GO=${GO:-go}
KUBECTL=${KUBECTL:-$BIN/kubectl}

# shellcheck source=bench/kubectl.sh
source "$ROOT/bench/kubectl.sh"
ensure_kubectl

echo "machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
echo "kubectl: $("$KUBECTL" version --client 2>/dev/null | head -1)"
cd "$ROOT"
exec "$GO" run ./bench/drain -kubectl "$KUBECTL" "$@"
