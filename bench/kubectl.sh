# kubectl.sh, sourced by bench scripts that compare with `kubectl drain`:
# ensure_kubectl builds kubectl once into $KUBECTL (default
# .cache/tools/bin/kubectl) at the Kubernetes version of tools/go.mod, from
# a scratch copy of the tools module (tools/go.sum lacks kubectl's
# packages, and no script edits tools/): .cache/kubectl-mod.
# Needs ROOT (the repository) and GO set.
ensure_kubectl() {
	[[ -x $KUBECTL ]] && return 0
	local version mod
	version=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }' "$ROOT/tools/go.mod")
	echo "building kubectl $version into $KUBECTL (cold: ~1 min)" >&2
	mod=$ROOT/.cache/kubectl-mod
	mkdir -p "$mod" "$(dirname "$KUBECTL")"
	cp "$ROOT/tools/go.mod" "$ROOT/tools/go.sum" "$mod/"
	sed -i 's#^module .*#module kubectl-build#' "$mod/go.mod"
	printf '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/cmd/kubectl"\n' >"$mod/tools.go"
	(cd "$mod" && GOFLAGS=-mod=mod "$GO" build \
		-ldflags "-X k8s.io/client-go/pkg/version.gitVersion=$version -X k8s.io/component-base/version.gitVersion=$version" \
		-o "$KUBECTL" k8s.io/kubernetes/cmd/kubectl)
}
