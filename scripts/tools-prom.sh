#!/usr/bin/env bash
# tools-prom.sh [name...] — build the monitoring-side real components that
# node-healer's detection tests load their content into:
#
#   prometheus, promtool           github.com/prometheus/prometheus  v0.316.0
#   alertmanager, amtool           github.com/prometheus/alertmanager v0.28.1
#   node-problem-detector          k8s.io/node-problem-detector      v1.34.0 (tools/npd module)
#
# Binaries go to .cache/tools/bin (or $NODE_HEALER_TOOLS). Each binary has a
# version stamp beside it (.NAME.version); a binary whose stamp matches is not
# rebuilt, so running this again is cheap. With no arguments every tool is
# built; with names, only those. Builds run one at a time (2-core machines,
# other builds in parallel), serialised across concurrent callers with flock.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
bin="${NODE_HEALER_TOOLS:-$root/.cache/tools/bin}"
mkdir -p "$bin"
bin="$(cd "$bin" && pwd)"

PROM_VERSION=v0.316.0
AM_VERSION=v0.28.1
NPD_VERSION=v1.34.0

all=(promtool amtool alertmanager node-problem-detector prometheus)

version_of() {
  case "$1" in
    prometheus | promtool) echo "$PROM_VERSION" ;;
    alertmanager | amtool) echo "$AM_VERSION" ;;
    node-problem-detector) echo "$NPD_VERSION" ;;
    *) return 1 ;;
  esac
}

# Cold build seconds, measured on a fresh 2-core machine (empty Go caches,
# 2026-12-06), in this script's order: prometheus reuses promtool's
# packages, alertmanager amtool's.
cold_secs() {
  case "$1" in
    promtool) echo 300 ;;
    prometheus) echo 60 ;;
    amtool) echo 25 ;;
    alertmanager) echo 10 ;;
    node-problem-detector) echo 75 ;;
  esac
}

cold_hint() {
  local s; s=$(cold_secs "$1")
  if ((s >= 60)); then echo "~$((s / 60)) min"; else echo "~$s s"; fi
}

up_to_date() {
  local name="$1" version="$2"
  [[ -x "$bin/$name" && -f "$bin/.$name.version" && "$(cat "$bin/.$name.version")" == "$version" ]]
}

build_one() {
  local name="$1" version tmp start
  version="$(version_of "$name")" || {
    echo "[tools] unknown tool '$name' (known: ${all[*]})" >&2
    return 2
  }
  if up_to_date "$name" "$version"; then
    echo "[tools] $name $version up to date"
    return 0
  fi
  echo "[tools] building $name $version (cold: $(cold_hint "$name"))…"
  start=$SECONDS
  tmp="$(mktemp -d "$bin/.build-$name.XXXXXX")"
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" RETURN
  case "$name" in
    prometheus | promtool)
      GOBIN="$tmp" GOFLAGS=-buildvcs=false go install "github.com/prometheus/prometheus/cmd/$name@$version"
      ;;
    alertmanager | amtool)
      GOBIN="$tmp" GOFLAGS=-buildvcs=false go install "github.com/prometheus/alertmanager/cmd/$name@$version"
      ;;
    node-problem-detector)
      # `go install …@v1.34.0` fails here (the proxy refuses NPD's version
      # list), so build it from its own pinned module. No journald tag: the
      # file-log monitors are what the tests use.
      (cd "$root/tools/npd" && GOFLAGS=-buildvcs=false go build -o "$tmp/$name" k8s.io/node-problem-detector/cmd/nodeproblemdetector)
      ;;
  esac
  mv -f "$tmp/$name" "$bin/$name"
  echo "$version" >"$bin/.$name.version"
  echo "[tools] built $name $version in $((SECONDS - start)) s → $bin/$name"
  local el=$(($(date +%s) - start_all)) c; c=$(cold_secs "$name")
  left=$((left > c ? left - c : 0))
  echo "[tools] elapsed $((el / 60))m$((el % 60))s; about $(((left + 59) / 60)) min of building left (cold estimate)"
}

estimate=false
if [[ ${1:-} == --estimate ]]; then # print the cold seconds of what is missing
  estimate=true
  shift
fi
names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=("${all[@]}")
for n in "${names[@]}"; do
  version_of "$n" >/dev/null || {
    echo "[tools] unknown tool '$n' (known: ${all[*]})" >&2
    exit 2
  }
done

left=0
for n in "${names[@]}"; do
  up_to_date "$n" "$(version_of "$n")" || left=$((left + $(cold_secs "$n")))
done
if $estimate; then
  echo "$left"
  exit 0
fi
# Called by tools.sh: continue its countdown.
start_all=${NODE_HEALER_TOOLS_START:-$(date +%s)}
left=${NODE_HEALER_TOOLS_LEFT_AFTER:-$left}

# One build at a time, also across concurrent callers (parallel test packages).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$bin/.tools-prom.lock"
  flock 9
fi

for n in "${names[@]}"; do
  build_one "$n"
done
