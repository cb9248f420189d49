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

if [[ $KUBECTL != none && ! -x $KUBECTL ]]; then
	KUBE_VERSION=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }' "$ROOT/tools/go.mod")
	echo "building kubectl $KUBE_VERSION into $KUBECTL" >&2
	MOD=$ROOT/.cache/kubectl-mod
	mkdir -p "$MOD" "$(dirname "$KUBECTL")"
	cp "$ROOT/tools/go.mod" "$ROOT/tools/go.sum" "$MOD/"
	sed -i 's#^module .*#module kubectl-build#' "$MOD/go.mod"
	printf '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/cmd/kubectl"\n' >"$MOD/tools.go"
	(cd "$MOD" && GOFLAGS=-mod=mod "$GO" build \
		-ldflags "-X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION" \
		-o "$KUBECTL" k8s.io/kubernetes/cmd/kubectl)
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
