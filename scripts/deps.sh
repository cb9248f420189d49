#!/usr/bin/env bash
# deps.sh — the Debian packages `make test` and `make demo` need beyond Go,
# git and make, installed with apt-get when missing and running as root
# (as on CI and the project's machines); otherwise it says exactly what to
# install and stops.
#
#   redis-server   node-healer's state in every test and in the demo
#   redis-tools    redis-cli (joins the Redis Cluster in the cluster tests;
#                  Debian's redis-server depends on it)
#   openipmi       ipmi_sim, OpenIPMI's IPMI 2.0 LAN BMC simulator (the IPMI
#                  power tests)
#   chromium       headless Chromium for the operator page's browser test
#                  (cmd/receiver, driven by chromedp over the DevTools protocol)
#   chromium-driver  installed beside it (chromedriver), for WebDriver tools
set -euo pipefail

# command → package
declare -A need=([redis-server]=redis-server [redis-cli]=redis-tools [ipmi_sim]=openipmi [chromium]=chromium [chromedriver]=chromium-driver)

missing=()
declare -A override=([redis-server]=${REDIS_SERVER:-} [redis-cli]=${REDIS_CLI:-} [ipmi_sim]=${IPMI_SIM:-} [chromium]=${CHROMIUM:-} [chromedriver]=${CHROMEDRIVER:-})
for cmd in "${!need[@]}"; do
	[[ -n ${override[$cmd]} && -x ${override[$cmd]} ]] && continue
	command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
((${#missing[@]} == 0)) && exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
	echo "[deps] missing: ${missing[*]}. Install them, then run make again:" >&2
	echo "[deps]   sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
	echo "[deps] (or put redis-server, redis-cli, ipmi_sim, chromium and chromedriver on PATH, or set REDIS_SERVER, REDIS_CLI, IPMI_SIM, CHROMIUM and CHROMEDRIVER to their paths)" >&2
	exit 1
fi
echo "[deps] installing ${missing[*]} with apt-get…" >&2
start=$SECONDS
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "[deps] installed ${missing[*]} in $((SECONDS - start)) s" >&2
