#!/usr/bin/env bash
# bench/pipeline.sh [N] [SCENARIO] — run `bin/demo -scenario=SCENARIO` N times
# (default 5, deadlock-hung) with the shipped rules and Alertmanager config,
# and print the latency breakdown from the kernel log line: median and max.
# Each run starts the whole pipeline afresh. Extra demo flags via
# DEMO_FLAGS, e.g. DEMO_FLAGS=-scrape-interval=30s. Needs `make tools build` first
# (make demo does both). Demo output goes to .cache/bench/pipeline-*.log.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-5}"
scenario="${2:-deadlock-hung}"
logs=.cache/bench
mkdir -p "$logs"
results="$logs/pipeline-$scenario.results"
: >"$results"
for i in $(seq 1 "$n"); do
  log="$logs/pipeline-$scenario-$i.log"
  printf 'run %d/%d (%s)… ' "$i" "$n" "$scenario" >&2
  work="$logs/pipeline-work"
  rm -rf "$work"
  if ! bin/demo -scenario="$scenario" -dir="$work" ${DEMO_FLAGS:-} >"$log" 2>&1; then
    echo "FAILED (see $log and $work)" >&2
    exit 1
  fi
  rm -rf "$work"
  grep '^RESULT ' "$log" | tee -a "$results" | sed 's/^RESULT //' >&2
done
awk -v n="$n" -v scenario="$scenario" '
  function stat(name, label,    i, j, t, a, k, med) {
    k = 0
    for (i = 1; i <= runs; i++) if ((name, i) in v) a[++k] = v[name, i]
    if (k == 0) return
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    med = (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
    printf "| %-46s | %8.1f s | %8.1f s |\n", label, med, a[k]
  }
  /^RESULT / {
    runs++
    for (f = 2; f <= NF; f++) { split($f, kv, "="); v[kv[1], runs] = kv[2] }
    if (v["cordon", runs] > 0) {
      v["d_npd", runs] = v["npd", runs]
      v["d_prom", runs] = v["prometheus", runs] - v["npd", runs]
      v["d_am", runs] = v["alertmanager", runs] - v["prometheus", runs]
      v["d_gw", runs] = v["webhook", runs] - v["alertmanager", runs]
      v["d_nh", runs] = v["cordon", runs] - v["webhook", runs]
      v["d_heal", runs] = v["uncordon", runs] - v["cordon", runs]
    }
  }
  END {
    printf "\n%s, %d runs (median, max), seconds from the kernel log line:\n\n", scenario, runs
    printf "| %-46s | %10s | %10s |\n", "stage", "median", "max"
    printf "|%s|%s|%s|\n", "------------------------------------------------", "------------", "------------"
    stat("d_npd", "NPD: log line → KernelDeadlock gauge")
    stat("d_prom", "Prometheus: scrape + rule eval (+ for:)")
    stat("d_am", "Prometheus → Alertmanager")
    stat("d_gw", "Alertmanager group_wait → webhook")
    stat("d_nh", "node-healer: webhook → cordon (settle, gate)")
    stat("alertmanager", "= detection: log line → alert in Alertmanager")
    stat("cordon", "= log line → cordon")
    stat("d_heal", "cordon → uncordon (drain, reboot, health)")
    stat("uncordon", "= recovery: log line → uncordon")
  }' "$results"
