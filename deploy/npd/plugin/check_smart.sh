#!/bin/bash
# NPD custom plugin: SMART health of every disk smartctl can see.
#
# Problem (exit 1) when a disk's overall health check fails, or its
# reallocated sector count exceeds SMART_REALLOCATED_MAX, or it has pending
# sectors. Exit 2 (unknown) when smartctl is missing or sees no disk.
#
# Environment:
#   SMARTCTL                smartctl (from PATH)
#   SMART_REALLOCATED_MAX   5
set -u

readonly OK=0 NONOK=1 UNKNOWN=2
smartctl="${SMARTCTL:-smartctl}"
max_realloc="${SMART_REALLOCATED_MAX:-5}"

command -v "$smartctl" >/dev/null 2>&1 || { echo "smartctl not found"; exit $UNKNOWN; }

mapfile -t devices < <("$smartctl" --scan 2>/dev/null | awk '{print $1}')
((${#devices[@]} > 0)) || { echo "no disk found by smartctl --scan"; exit $UNKNOWN; }

for d in "${devices[@]}"; do
  out=$("$smartctl" -H -A "$d" 2>/dev/null)
  if grep -qiE 'overall-health self-assessment test result: FAILED|SMART Health Status: .*FAIL' <<<"$out"; then
    echo "$d: SMART health check FAILED"
    exit $NONOK
  fi
  # ATA attribute table: ID# NAME FLAG VALUE WORST THRESH TYPE UPDATED WHEN_FAILED RAW_VALUE
  realloc=$(awk '$2 == "Reallocated_Sector_Ct" {print $10; exit}' <<<"$out")
  pending=$(awk '$2 == "Current_Pending_Sector" {print $10; exit}' <<<"$out")
  if [[ "${realloc:-0}" =~ ^[0-9]+$ ]] && ((realloc > max_realloc)); then
    echo "$d: $realloc reallocated sectors (max $max_realloc)"
    exit $NONOK
  fi
  if [[ "${pending:-0}" =~ ^[0-9]+$ ]] && ((pending > 0)); then
    echo "$d: $pending pending sectors"
    exit $NONOK
  fi
done
echo "SMART OK on ${#devices[@]} disk(s)"
exit $OK
