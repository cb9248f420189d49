#!/usr/bin/env bash
# bench/recovery.sh [N] [SCENARIO...] — recovery on shipped defaults (issue 15).
#
# Runs `demo -shipped -scenario=SCENARIO` N times each (default 3; scenarios
# default: deadlock deadlock-hung), every run a fresh pipeline on shipped
# timings (pipeline.Options.Shipped: Prometheus global scrape and evaluation
# 30 s, NPD scraped every 5 s, the shipped rules and Alertmanager route,
# node-healer's and the reboot runbook's defaults, a 2-minute simulated boot
# with PoweringOn and BootProgress), and prints median and max, in seconds
# from the kernel log line, of detection (alert active in Alertmanager),
# cordon and uncordon, then where the seconds went: the detection stages
# and every runbook step's duration.
#
# deadlock-slow-boot and deadlock-slow-shutdown are the false-positive
# checks: a graceful restart that works on a machine taking 4 minutes to
# boot (BootProgress moving), the second also 2 minutes to shut down
# (PoweringOff, longer than reboot_progress_timeout); the demo fails the run
# if the node got anything but that one restart (a power-cycle).
#
# Binaries: $BIN/demo and $BIN/receiver (default bin/, `make tools build`).
# Output: $OUT (default .cache/bench/recovery): one log per run, and
# results.txt with the RESULT and STEPS lines. A failed run is counted and
# reported, and the next one starts.
set -uo pipefail
cd "$(dirname "$0")/.."
n="${1:-3}"
shift || true
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(deadlock deadlock-hung)
bin="${BIN:-bin}"
out="${OUT:-.cache/bench/recovery}"
mkdir -p "$out"
results="$out/results.txt"
: >"$results"
failed=0
for sc in "${scenarios[@]}"; do
  for i in $(seq 1 "$n"); do
    log="$out/$sc-$i.log"
    work="$out/work-$sc-$i"
    rm -rf "$work"
    printf '%s run %d/%d (%s, load %s)… ' "$(date +%H:%M:%S)" "$i" "$n" "$sc" "$(cut -d' ' -f1-3 /proc/loadavg)" >&2
    if "$bin/demo" -shipped -scenario="$sc" -dir="$work" -receiver="$bin/receiver" >"$log" 2>&1; then
      echo ok >&2
      rm -rf "$work"
    else
      echo "FAILED (see $log and $work)" >&2
      failed=$((failed + 1))
      echo "FAILED scenario=$sc run=$i" >>"$results"
    fi
    grep -E '^(RESULT|STEPS) ' "$log" | sed "s/\$/ run=$i/" | tee -a "$results" >&2
  done
done

awk '
  function add(sc, name, val) {
    if (!((sc, name) in cnt)) { order[sc, ++nnames[sc]] = name }
    v[sc, name, ++cnt[sc, name]] = val
  }
  function stat(sc, name, label,    i, j, t, a, k, med) {
    k = cnt[sc, name]
    if (k == 0) return
    for (i = 1; i <= k; i++) a[i] = v[sc, name, i]
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    med = (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
    printf "| %-52s | %3d | %8.1f | %8.1f |\n", label, k, med, a[k]
  }
  /^(RESULT|STEPS|FAILED) / {
    delete f
    for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    sc = f["scenario"]
    if (!(sc in seen)) { seen[sc] = 1; scs[++nsc] = sc }
  }
  /^FAILED / { failed[sc]++ }
  /^RESULT / {
    runs[sc]++
    if (f["status"] != "succeeded") bad[sc]++
    if (f["powercycle"] == "true") pc[sc]++
    add(sc, "detect", f["alertmanager"])
    if (f["cordon"] > 0) add(sc, "cordon", f["cordon"])
    if (f["uncordon"] > 0) add(sc, "uncordon", f["uncordon"])
    add(sc, "npd", f["npd"])
    add(sc, "prom", f["prometheus"] - f["npd"])
    add(sc, "am", f["alertmanager"] - f["prometheus"])
    add(sc, "gw", f["webhook"] - f["alertmanager"])
  }
  /^STEPS / {
    for (i = 3; i <= NF; i++) {
      split($i, kv, "=")
      if (kv[1] == "resets") { resets[sc] = resets[sc] " [" kv[2] "]"; continue }
      if (kv[1] == "run" || kv[1] == "scenario") continue
      add(sc, "step:" kv[1], kv[2])
    }
  }
  END {
    for (s = 1; s <= nsc; s++) {
      sc = scs[s]
      printf "\n%s: %d runs finished, %d not succeeded, %d failed, %d power-cycled; BMC resets per run:%s\n\n", sc, runs[sc], bad[sc], failed[sc], pc[sc], resets[sc]
      printf "| %-52s | %3s | %8s | %8s |\n", "seconds", "n", "median", "max"
      printf "|%s|%s|%s|%s|\n", "------------------------------------------------------", "-----", "----------", "----------"
      stat(sc, "detect", "detection: log line → alert in Alertmanager")
      stat(sc, "cordon", "log line → cordon")
      stat(sc, "uncordon", "recovery: log line → uncordon")
      stat(sc, "npd", "  NPD: log line → condition gauge")
      stat(sc, "prom", "  Prometheus: NPD scrape + rule evaluation")
      stat(sc, "am", "  Prometheus → Alertmanager")
      stat(sc, "gw", "  Alertmanager group_wait → webhook")
      for (i = 1; i <= nnames[sc]; i++) {
        name = order[sc, i]
        if (name == "step:queue") stat(sc, name, "  node-healer: webhook → first step (settle, gate)")
        else if (name ~ /^step:/) stat(sc, name, "  step " substr(name, 6))
      }
    }
  }' "$results"
echo
echo "$failed failed run(s); logs in $out"
[ "$failed" -eq 0 ]
