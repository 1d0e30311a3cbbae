#!/usr/bin/env bash
# Benchmark: the prober with many sites, served by a local nginx, next to
# Debian's node_exporter measured in the same run as the anchor.
#
#   benches/prober.sh [SITES] [SECONDS]     (defaults: 1000 sites, 60 s)
#
# Reports the exporter's CPU use while probing, its resident memory, and
# /metrics latency (wrk, one connection, back-to-back scrapes). Needs
# nginx, wrk and prometheus-node-exporter (Debian packages). Everything
# listens on 127.0.0.1 and is stopped on exit.
set -euo pipefail
sites=${1:-1000}
seconds=${2:-60}
cd "$(dirname "$0")/.."
. benches/common.sh
bench_setup

web_port=$(free_port); exporter_port=$(free_port); node_port=$(free_port)

release_bin

start_nginx "$work" "$web_port"

{
  printf 'probe:\n  interval: 15s\n  timeout: 5s\n  icmp: {count: 10, interval: 200ms}\nsites:\n'
  for i in $(seq 1 "$sites"); do
    printf '  - name: site%d\n    url: http://site%d.example.com:%d/healthz\n    proxy: [127.0.0.1]\n    origin: [127.0.0.2]\n' "$i" "$i" "$web_port"
  done
} > "$work/config.yml"

"$bin" --config "$work/config.yml" --web.listen-address "127.0.0.1:$exporter_port" --log.level warn &
pids+=($!); exporter=$!
prometheus-node-exporter --web.listen-address="127.0.0.1:$node_port" --log.level=warn 2>/dev/null &
pids+=($!); node=$!

# Wait for two full rounds so every site has results.
sleep 32
series=$(curl -s "http://127.0.0.1:$exporter_port/metrics" | grep -vc '^#')
probed=$(curl -s "http://127.0.0.1:$exporter_port/metrics" | grep -c '^badgateway_probe_success.* 1$' || true)

ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)

# CPU while probing, with no scrapes running.
t0=$(ticks "$exporter"); sleep "$seconds"; t1=$(ticks "$exporter")
cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v s="$seconds" 'BEGIN {printf "%.2f", (b-a)/hz/s*100}')
rss_idle=$(rss_mb "$exporter")

latency() { # url -> "p50 p99 requests/s"
  wrk -t1 -c1 -d15s --latency "$1" | awk '
    /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} /Requests\/sec/ {rps=$2}
    END {print p50, p99, rps}'
}
read -r e50 e99 erps <<<"$(latency "http://127.0.0.1:$exporter_port/metrics")"
rss_scraped=$(rss_mb "$exporter")
node_series=$(curl -s "http://127.0.0.1:$node_port/metrics" | grep -vc '^#')
read -r n50 n99 nrps <<<"$(latency "http://127.0.0.1:$node_port/metrics")"
node_rss=$(rss_mb "$node")

echo
echo "sites: $sites (2 targets each, 15 s interval, 10 ICMP echoes per target), $probed targets succeeding"
echo
echo "| | series | /metrics p50 | /metrics p99 | scrapes/s | RSS MB | CPU % while probing |"
echo "|---|---|---|---|---|---|---|"
echo "| badgateway-exporter | $series | $e50 | $e99 | $erps | $rss_idle idle, $rss_scraped after scrapes | $cpu |"
echo "| node_exporter (anchor) | $node_series | $n50 | $n99 | $nrps | $node_rss | - |"
