#!/usr/bin/env bash
# Benchmark: one prober with many sites against a local nginx (two paths
# each, ICMP 3 echoes), optionally one shard of them.
#
#   benches/scale.sh [SITES] [INTERVAL] [SHARD]   (defaults: 10000 15s, all)
#
# Reports start-up time, CPU while probing (two intervals, no scrapes),
# resident memory, probes that succeeded, /metrics plain and gzipped, and
# 20 gzipped scrapes' latency and CPU. Needs nginx and curl. Listens on
# 127.0.0.1 only; stops everything on exit.
set -euo pipefail
sites=${1:-10000}; interval=${2:-15s}; shard=${3:-}
cd "$(dirname "$0")/.."
. benches/common.sh
bench_setup
web_port=$(free_port); eport=$(free_port)
release_bin
start_nginx "$work" "$web_port"
python3 - "$sites" "$interval" "$web_port" > "$work/config.yml" <<'PY'
import sys
n, iv, port = int(sys.argv[1]), sys.argv[2], sys.argv[3]
timeout = min(5, int(iv.rstrip("s")))
out = [f"probe:\n  interval: {iv}\n  timeout: {timeout}s\n  icmp: {{count: 3, interval: 200ms}}\nsites:\n"]
for i in range(n):
    out.append(f"  - name: site{i}\n    url: http://site{i}.example.com:{port}/healthz\n"
               f"    proxy: [127.0.0.1]\n    origin: [127.0.0.2]\n")
sys.stdout.write("".join(out))
PY
args=(--config "$work/config.yml" --web.listen-address "127.0.0.1:$eport" --log.level warn)
[ -n "$shard" ] && args+=(--shard "$shard")
ulimit -n "$(ulimit -Hn)"
t_start=$(date +%s.%N)
"$bin" "${args[@]}" & pid=$!; pids+=("$pid")
until curl -sf -o /dev/null "http://127.0.0.1:$eport/-/ready"; do
  kill -0 "$pid" 2>/dev/null || { echo "benches/scale.sh: the exporter exited" >&2; exit 1; }
  sleep 0.2
done
t_ready=$(date +%s.%N)
iv=${interval%s}
sleep $((iv * 2 + 5))
hz=$(getconf CLK_TCK); ticks() { awk '{print $14+$15}' "/proc/$pid/stat"; }
t0=$(ticks); sleep $((iv * 2)); t1=$(ticks)
cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v s=$((iv * 2)) 'BEGIN {printf "%.1f", (b-a)/hz/s*100}')
rss=$(awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$pid/status")
url="http://127.0.0.1:$eport/metrics"
ok=$(curl -s "$url" | grep -c '^badgateway_probe_success{.*} 1$' || true)
plain=$(curl -s "$url" | wc -c); gz=$(curl -s -H 'Accept-Encoding: gzip' "$url" | wc -c)
lat=(); s0=$(ticks)
for _ in $(seq 20); do lat+=("$(curl -s -o /dev/null -H 'Accept-Encoding: gzip' -w '%{time_total}' "$url")"); done
s1=$(ticks)
sorted=$(printf '%s\n' "${lat[@]}" | sort -n)
echo "sites=$sites interval=$interval shard=${shard:-all}"
echo "  start-up $(awk -v a="$t_start" -v b="$t_ready" 'BEGIN {printf "%.1f", b-a}') s, CPU while probing $cpu % of a core, RSS $rss MB, probes ok $ok"
echo "  /metrics $plain bytes plain, $gz gzipped; gzipped scrape p50 $(echo "$sorted" | sed -n 10p) s, max $(echo "$sorted" | tail -1) s, $(( (s1 - s0) * 1000 / hz / 20 )) ms CPU each"
