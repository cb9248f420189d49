#!/usr/bin/env bash
# tools.sh builds the pinned real components that node-healer's integration
# tests and demo run (kube-apiserver, etcd, kwok) into .cache/tools/bin, from
# Go modules only (see tools/ and TOOLCHAIN.md). It is idempotent: a tool is
# rebuilt only when its binary is missing or was built from another version
# (the version is read from the binary's own Go build info, and recorded in
# BIN/.NAME.version).
#
#   scripts/tools.sh                 # every tool, then scripts/tools-prom.sh
#   scripts/tools.sh etcd kwok       # only these; names this script does not
#                                    # know are passed on to tools-prom.sh
#
# Output directory: $NODE_HEALER_TOOLS, else <repo>/.cache/tools/bin.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${NODE_HEALER_TOOLS:-$ROOT/.cache/tools/bin}
mkdir -p "$BIN"
BIN=$(cd "$BIN" && pwd)
GO=${GO:-go}

# The pins. kube-apiserver and etcd come from the tools module's go.mod.
modver() { awk -v m="$1" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$ROOT/tools/go.mod"; }
KUBE_VERSION=$(modver k8s.io/kubernetes)
ETCD_VERSION=$(modver go.etcd.io/etcd/server/v3)
KWOK_VERSION=v0.8.0

MINE=(kube-apiserver etcd kwok)

# One build at a time per output folder: parallel test packages may all ask
# for the same missing tool.
exec 9>"$BIN/.lock"
flock 9

# built NAME MODULE VERSION: the binary exists and its build info names
# MODULE at VERSION (as main module or dependency).
built() {
	local bin="$BIN/$1" mod=$2 want=$3
	[[ -x $bin ]] || return 1
	if [[ -f $BIN/.$1.version && $(<"$BIN/.$1.version") == "$mod $want" && ! $bin -nt $BIN/.$1.version ]]; then
		return 0
	fi
	local got
	got=$("$GO" version -m "$bin" 2>/dev/null | awk -v m="$mod" '($1 == "mod" || $1 == "dep") && $2 == m { print $3; exit }')
	[[ $got == "$want" ]] || return 1
	echo "$mod $want" >"$BIN/.$1.version"
}

# Cold build seconds per tool, measured on a fresh 2-core machine (empty
# Go module and build caches, 2026-12-06): the progress lines' estimate.
cold_secs() {
	case $1 in
	kube-apiserver) echo 375 ;;
	etcd) echo 10 ;;
	kwok) echo 90 ;;
	esac
}

# Overall progress, shared with tools-prom.sh: when the build started and
# how many seconds of cold building are estimated to be left.
export NODE_HEALER_TOOLS_START=${NODE_HEALER_TOOLS_START:-$(date +%s)}
left=0
progress() { # progress DONE_NAME
	local el=$(($(date +%s) - NODE_HEALER_TOOLS_START))
	left=$((left > $(cold_secs "$1") ? left - $(cold_secs "$1") : 0))
	echo "[tools] elapsed $((el / 60))m$((el % 60))s; about $(((left + 59) / 60)) min of building left (cold estimate)" >&2
}

build_one() {
	local name=$1 mod version cold
	case $name in
	kube-apiserver) mod=k8s.io/kubernetes version=$KUBE_VERSION ;;
	etcd) mod=go.etcd.io/etcd/server/v3 version=$ETCD_VERSION ;;
	kwok) mod=sigs.k8s.io/kwok version=$KWOK_VERSION ;;
	esac
	cold="~$(($(cold_secs "$name") / 60)) min $(($(cold_secs "$name") % 60)) s"
	if [[ -z $version ]]; then
		echo "tools.sh: no version pin for $name ($mod) in tools/go.mod" >&2
		return 1
	fi
	if built "$name" "$mod" "$version"; then
		echo "[tools $2] $name $version already built, skipping" >&2
		return 0
	fi
	echo "[tools $2] building $name $version (cold: $cold)…" >&2
	local start=$SECONDS tmp
	# Build into a temporary folder, then rename: a half-written binary is
	# never seen under its real name.
	tmp=$(mktemp -d "$BIN/.build-$name.XXXXXX")
	if ! case $name in
		kube-apiserver) (cd "$ROOT/tools" && "$GO" build -o "$tmp/$name" k8s.io/kubernetes/cmd/kube-apiserver) ;;
		etcd) (cd "$ROOT/tools" && "$GO" build -o "$tmp/$name" ./etcd) ;;
		kwok) (cd "$ROOT" && GOBIN=$tmp "$GO" install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION") ;;
		esac
	then
		rm -rf "$tmp"
		echo "[tools $2] FAILED to build $name $version" >&2
		return 1
	fi
	mv -f "$tmp/$name" "$BIN/$name"
	rm -rf "$tmp"
	echo "$mod $version" >"$BIN/.$name.version"
	echo "[tools $2] built $name $version in $((SECONDS - start)) s" >&2
	progress "$name"
}

want=() rest=()
if [[ $# -eq 0 ]]; then
	want=("${MINE[@]}")
else
	for a in "$@"; do
		case " ${MINE[*]} " in
		*" $a "*) want+=("$a") ;;
		*) rest+=("$a") ;;
		esac
	done
fi

# The estimate: every tool of this run that is not built yet, here and in
# tools-prom.sh.
missing=()
for name in "${want[@]}"; do
	case $name in
	kube-apiserver) built "$name" k8s.io/kubernetes "$KUBE_VERSION" || { missing+=("$name"); left=$((left + $(cold_secs "$name"))); } ;;
	etcd) built "$name" go.etcd.io/etcd/server/v3 "$ETCD_VERSION" || { missing+=("$name"); left=$((left + $(cold_secs "$name"))); } ;;
	kwok) built "$name" sigs.k8s.io/kwok "$KWOK_VERSION" || { missing+=("$name"); left=$((left + $(cold_secs "$name"))); } ;;
	esac
done
PROM="$ROOT/scripts/tools-prom.sh"
prom_left=0
if [[ -x $PROM && ($# -eq 0 || ${#rest[@]} -gt 0) ]]; then
	prom_left=$("$PROM" --estimate "${rest[@]}")
fi
if ((left + prom_left > 0)); then
	echo "[tools] to build: ${missing[*]:-} (+ $((prom_left / 60)) min of Prometheus-side tools); about $(((left + prom_left + 59) / 60)) min on a cold 2-core machine" >&2
fi
export NODE_HEALER_TOOLS_LEFT_AFTER=$prom_left
left=$((left + prom_left))

i=0
for name in "${want[@]}"; do
	i=$((i + 1))
	build_one "$name" "$i/${#want[@]}"
done

exec 9>&- # release the lock before handing over
if [[ $# -eq 0 || ${#rest[@]} -gt 0 ]]; then
	if [[ -x $PROM ]]; then
		"$PROM" "${rest[@]}"
	elif [[ ${#rest[@]} -gt 0 ]]; then
		echo "tools.sh: unknown tool(s): ${rest[*]} (this script builds: ${MINE[*]}; scripts/tools-prom.sh is missing)" >&2
		exit 2
	fi
fi
