#!/usr/bin/env bash
# Benchmark: the origin agent's /metrics cost next to Debian's node_exporter,
# both on this machine in the same run.
#
#   benches/agent.sh [SECONDS]      (default 15 s of back-to-back scrapes each)
#
# Reports CPU time per scrape (from /proc/PID/stat over the run), scrape
# latency (wrk, one connection) and resident memory. Needs wrk and
# prometheus-node-exporter (Debian packages). Listens on 127.0.0.1 only.
set -euo pipefail
seconds=${1:-15}
cd "$(dirname "$0")/.."
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
. benches/common.sh
agent_port=$(free_port); node_port=$(free_port)

release_bin
# No --config: the agent with its defaults, as a first run would be.
"$bin" --web.listen-address "127.0.0.1:$agent_port" --log.level warn &
pids+=($!); agent=$!
prometheus-node-exporter --web.listen-address="127.0.0.1:$node_port" --log.level=warn 2>/dev/null &
pids+=($!); node=$!
sleep 2

hz=$(getconf CLK_TCK)
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
measure() { # pid url -> "series p50 p99 scrapes cpu_ms_per_scrape rss"
  local series t0 t1 out
  series=$(curl -s "$2" | grep -vc '^#')
  t0=$(ticks "$1")
  out=$(wrk -t1 -c1 -d"${seconds}s" --latency "$2")
  t1=$(ticks "$1")
  echo "$out" | awk -v series="$series" -v a="$t0" -v b="$t1" -v hz="$hz" -v rss="$(rss_mb "$1")" '
    /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} /requests in/ {n=$1}
    END {printf "%s %s %s %s %.3f %s\n", series, p50, p99, n, (b-a)/hz*1000/n, rss}'
}
read -r as a50 a99 an acpu arss <<<"$(measure "$agent" "http://127.0.0.1:$agent_port/metrics")"
read -r ns n50 n99 nn ncpu nrss <<<"$(measure "$node" "http://127.0.0.1:$node_port/metrics")"
echo
echo "| | series | p50 | p99 | scrapes | CPU ms per scrape | RSS MB |"
echo "|---|---|---|---|---|---|---|"
echo "| badgateway-exporter (agent, defaults) | $as | $a50 | $a99 | $an | $acpu | $arss |"
echo "| node_exporter (anchor) | $ns | $n50 | $n99 | $nn | $ncpu | $nrss |"
