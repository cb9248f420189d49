#!/bin/bash
# NPD custom plugin: receive errors per second on physical NICs.
#
# Exit codes (NPD's custom-plugin protocol): 0 OK, 1 problem, 2 unknown.
# Counters are cumulative, so the previous reading is kept in STATE_DIR and
# the rate is computed between two invocations; the first run only records.
#
# Environment (defaults for the DaemonSet; the test points them elsewhere):
#   SYSFS_ROOT              /sys
#   STATE_DIR               /var/run/node-healer-npd
#   NIC_RX_ERRORS_PER_SEC   10
set -u

readonly OK=0 NONOK=1 UNKNOWN=2
sysfs="${SYSFS_ROOT:-/sys}"
state="${STATE_DIR:-/var/run/node-healer-npd}"
limit="${NIC_RX_ERRORS_PER_SEC:-10}"

mkdir -p "$state" 2>/dev/null || { echo "cannot create $state"; exit $UNKNOWN; }
now=$(date +%s)
worst_dev="" worst_rate=0 seen=0

for dev in "$sysfs"/class/net/*; do
  name=$(basename "$dev")
  # Physical NICs only: virtual ones (veth, bridges, lo) have no device link.
  [[ -e "$dev/device" ]] || continue
  [[ -r "$dev/statistics/rx_errors" ]] || continue
  seen=1
  errs=$(<"$dev/statistics/rx_errors")
  prev_file="$state/nic_rx_errors.$name"
  if [[ -r "$prev_file" ]]; then
    read -r prev_time prev_errs <"$prev_file"
    elapsed=$((now - prev_time))
    # Same second as the last reading: keep that reading, so a burst is
    # measured at the next invocation instead of being lost.
    ((elapsed > 0)) || continue
    if ((errs >= prev_errs)); then
      rate=$(((errs - prev_errs) / elapsed))
      if ((rate > worst_rate)); then
        worst_rate=$rate worst_dev=$name
      fi
    fi
  fi
  echo "$now $errs" >"$prev_file"
done

if ((seen == 0)); then
  echo "no physical NIC found under $sysfs/class/net"
  exit $UNKNOWN
fi
if ((worst_rate > limit)); then
  echo "NIC $worst_dev: $worst_rate receive errors/s (limit $limit)"
  exit $NONOK
fi
echo "NIC receive errors below $limit/s"
exit $OK
