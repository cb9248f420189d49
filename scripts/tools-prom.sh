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

cold_hint() {
  case "$1" in
    prometheus | promtool) echo "~4 min" ;;
    alertmanager | amtool) echo "~30 s" ;;
    node-problem-detector) echo "~1 min" ;;
  esac
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
}

names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=("${all[@]}")
for n in "${names[@]}"; do
  version_of "$n" >/dev/null || {
    echo "[tools] unknown tool '$n' (known: ${all[*]})" >&2
    exit 2
  }
done

# One build at a time, also across concurrent callers (parallel test packages).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$bin/.tools-prom.lock"
  flock 9
fi

for n in "${names[@]}"; do
  build_one "$n"
done
