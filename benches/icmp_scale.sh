#!/usr/bin/env bash
# Benchmark: ICMP to many addresses at about one echo a second each.
#
#   benches/icmp_scale.sh [ADDRESSES] [SECONDS]   (defaults: 10000 30)
#
# ADDRESSES/2 sites, each with a proxy and an origin address on loopback
# (127.2.x.y), probed every 15 s with 14 echoes 1 s apart (0.93 echo/s per
# address). The prober cannot echo without probing HTTP too, so the same
# config is run again with ICMP off (its HTTP probes go to a closed port and
# are refused at once) and subtracted: the net figure is ICMP's. Prints % of
# one core (gross, base, net), resident memory and the mean loss reported
# (none is lost on loopback). Needs root (raw ICMP sockets); listens on
# 127.0.0.1 only; stops everything on exit.
set -euo pipefail
addresses=${1:-10000}; seconds=${2:-30}
cd "$(dirname "$0")/.."
. benches/common.sh
bench_setup
release_bin
closed=$(free_port)
config() { # icmp-setting -> config on stdout
  python3 - "$addresses" "$closed" "$1" <<'PY'
import sys
n, port, icmp = int(sys.argv[1]) // 2, sys.argv[2], sys.argv[3]
out = [f"probe:\n  interval: 15s\n  timeout: 900ms\n  proxy_requests: 1\n  icmp: {icmp}\n  tcp: {{enabled: false}}\nsites:\n"]
for i in range(n):
    a, b = 2 * i, 2 * i + 1
    out.append(f"  - name: ping{i}\n    url: http://ping{i}.example.com:{port}/\n"
               f"    proxy: [127.2.{a // 250}.{a % 250 + 1}]\n    origin: [127.2.{b // 250}.{b % 250 + 1}]\n")
sys.stdout.write("".join(out))
PY
}
hz=$(getconf CLK_TCK)
run() { # icmp-setting -> "cpu% rss_mb mean_loss"
  local port p t0 t1 w0 w1 rss loss
  config "$1" > "$work/c.yml"
  port=$(free_port)
  "$bin" --config "$work/c.yml" --web.listen-address "127.0.0.1:$port" --log.level warn &
  p=$!; pids+=("$p")
  until curl -sf -o /dev/null "http://127.0.0.1:$port/-/ready"; do sleep 0.2; done
  sleep 35 # two rounds: every echo round running
  w0=$(date +%s.%N); t0=$(awk '{print $14+$15}' "/proc/$p/stat")
  sleep "$seconds"
  t1=$(awk '{print $14+$15}' "/proc/$p/stat"); w1=$(date +%s.%N)
  rss=$(awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$p/status")
  loss=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^badgateway_icmp_packet_loss_ratio/ {s += $NF; n++} END {if (n) printf "%.4f (%d addresses)", s/n, n; else print "none"}')
  kill "$p"; wait "$p" 2>/dev/null || true
  echo "$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v w="$(awk -v a="$w0" -v b="$w1" 'BEGIN {print b-a}')" 'BEGIN {printf "%.1f", (b-a)/hz/w*100}') $rss $loss"
}
read -r gross rss_on loss <<<"$(run '{count: 14, interval: 1s}')"
read -r base rss_off _ <<<"$(run '{enabled: false}')"
echo "$addresses addresses at 14 echoes per 15 s, ${seconds} s window"
echo "  CPU: gross $gross %, base (HTTP only) $base %, ICMP net $(awk -v a="$gross" -v b="$base" 'BEGIN {printf "%.1f", a-b}') % of one core"
echo "  RSS: $rss_on MB with ICMP, $rss_off MB without; mean loss reported $loss"
