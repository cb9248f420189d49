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

if [[ ! -x $KUBECTL ]]; then
	KUBE_VERSION=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }' "$ROOT/tools/go.mod")
	echo "building kubectl $KUBE_VERSION into $KUBECTL (cold: ~1 min)" >&2
	MOD=$ROOT/.cache/kubectl-mod
	mkdir -p "$MOD" "$(dirname "$KUBECTL")"
	cp "$ROOT/tools/go.mod" "$ROOT/tools/go.sum" "$MOD/"
	sed -i 's#^module .*#module kubectl-build#' "$MOD/go.mod"
	printf '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/cmd/kubectl"\n' >"$MOD/tools.go"
	(cd "$MOD" && GOFLAGS=-mod=mod "$GO" build \
		-ldflags "-X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION" \
		-o "$KUBECTL" k8s.io/kubernetes/cmd/kubectl)
fi

echo "machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
echo "kubectl: $("$KUBECTL" version --client 2>/dev/null | head -1)"
cd "$ROOT"
exec "$GO" run ./bench/drain -kubectl "$KUBECTL" "$@"
