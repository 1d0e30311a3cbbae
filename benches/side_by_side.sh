#!/usr/bin/env bash
# Benchmark, not a test: this exporter next to Debian's anchors, on the same
# local targets, in one run, printed as one table (ours, anchor, ours/anchor).
#
#   benches/side_by_side.sh [SECONDS]    (default 30 s per measured window)
#
#   1. HTTP probes: SITES sites (env SITES, default 500) x 2 paths (127.0.0.1
#      and 127.0.0.2) every second against a local nginx, ICMP and TCP echoes
#      off: CPU-seconds per 1,000 probes; then the same over HTTPS (a new
#      TLS handshake per probe, both verifying the chain against one CA). Anchor: prometheus-blackbox-exporter
#      (http_2xx) driven at the same rate by wrk (16 connections, a Lua script
#      pacing requests and rotating targets). nginx's own CPU per 1,000
#      requests while serving each, as context.
#   2. ICMP: 1,000 loopback addresses (127.1.x.y) at one echo a second: % of
#      one core and the loss each reports. Anchor: prometheus-smokeping-prober.
#      Our prober cannot echo without probing HTTP too, so its figure is net:
#      the same config run again with ICMP off (HTTP to a closed port only) is
#      subtracted; the gross figure is printed under the table.
#   3. /metrics of the prober with 1,000 sites vs node_exporter's defaults:
#      p50/p99 (wrk, one connection, 10 s), CPU ms per scrape and gzip bytes.
#   4. The origin agent (no --config) vs node_exporter: CPU ms per scrape, RSS.
#
# Every scrape asks for gzip, as Prometheus does. The phases run one after
# the other, so each process has the machine to itself (with its load
# generator). Listens on 127.0.0.1 (and 127.0.0.2 for nginx) only; every
# process and the temp dir go on exit. As root, installs what is missing.
set -euo pipefail
seconds=${1:-30}
sites=${SITES:-500}
cd "$(dirname "$0")/.."

need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
command -v ab >/dev/null || need+=(apache2-utils)
[ -x /usr/bin/time ] || need+=(time)
command -v curl >/dev/null || need+=(curl)
command -v prometheus-blackbox-exporter >/dev/null || need+=(prometheus-blackbox-exporter)
command -v prometheus-smokeping-prober >/dev/null || need+=(prometheus-smokeping-prober)
command -v prometheus-node-exporter >/dev/null || need+=(prometheus-node-exporter)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "side_by_side.sh: missing ${need[*]}: install them, or run as root" >&2
    exit 2
  fi
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ "$(id -u)" != 0 ]; then
  echo "side_by_side.sh: ICMP needs root (raw sockets for both probers)" >&2
  exit 2
fi

. benches/common.sh
bench_setup
stop() { # pid: ends it and forgets it
  local p rest=()
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || rest+=("$p"); done
  pids=("${rest[@]}")
}

hz=$(getconf CLK_TCK)
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
now() { date +%s.%N; }
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
# Sum of every sample of one metric family (counter or gauge).
metric_sum() { curl -s "$1" | awk -v m="$2" '$1 == m || index($1, m "{") == 1 {s += $NF} END {printf "%.6f\n", s}'; }
metric_mean() { curl -s "$1" | awk -v m="$2" '$1 == m || index($1, m "{") == 1 {s += $NF; n++} END {if (n) printf "%.4f\n", s/n; else print "nan"}'; }
wait_http() { for _ in $(seq 100); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }
calc() { awk "BEGIN {printf \"$1\", $2}"; }
# Start our exporter on a config; sets $ours (its pid) and $url (its
# /metrics), and waits until it answers.
start_ours() {
  local port
  port=$(free_port)
  "$bin" --config "$1" --web.listen-address "127.0.0.1:$port" --log.level warn &
  pids+=($!); ours=$!
  url="http://127.0.0.1:$port/metrics"
  wait_http "$url"
}

release_bin

web_port=$(free_port); tls_port=$(free_port)
start_nginx "$work" "$web_port" "$tls_port"
sleep 0.5
nginx_master=$(cat "$work/nginx/nginx.pid")
nginx_ticks() { local t=0 p; for p in "$nginx_master" $(pgrep -P "$nginx_master"); do t=$((t + $(ticks "$p"))); done; echo "$t"; }

cat > "$work/pace.lua" <<'LUA'
-- Paces wrk to BENCH_RATE requests/s over all its connections and rotates
-- the probe target over BENCH_SITES sites x (127.0.0.1, 127.0.0.2).
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
local gap = 1000 / tonumber(os.getenv("BENCH_RATE"))
local port = os.getenv("BENCH_PORT")
local scheme = os.getenv("BENCH_SCHEME")
local module = os.getenv("BENCH_MODULE")
local sites = tonumber(os.getenv("BENCH_SITES"))
local next_at, i = nil, 0
function delay()
  local t = now_ms()
  if next_at == nil or next_at < t - 1000 then next_at = t end
  next_at = next_at + gap
  local d = next_at - t
  if d <= 0 then return 0 end
  return math.floor(d)
end
function request()
  i = i + 1
  local host = (i % 2 == 1) and "127.0.0.1" or "127.0.0.2"
  local site = math.floor((i - 1) / 2) % sites + 1
  return wrk.format("GET", "/probe?module=" .. module .. "&target=" .. scheme .. "://" .. host .. ":" .. port .. "/site" .. site)
end
LUA
# Blackbox verifies the chain against the same CA and the same name as ours.
cat > "$work/blackbox.yml" <<YML
modules:
  http_2xx:
    prober: http
    timeout: 5s
  https_2xx:
    prober: http
    timeout: 5s
    http:
      fail_if_not_ssl: true
      tls_config:
        ca_file: $work/nginx/ca.pem
        server_name: site1.example.com
YML

# http_phase SCHEME PORT: ours, then blackbox, at the same rate on the same
# nginx; sets h_ours h_bb h_nginx_ours h_nginx_bb h_rate_ours h_rate_bb h_ok
# h_errors.
http_phase() {
  local scheme=$1 port_=$2 module tls='' p0 p1 t0 t1 n0 n1 out ours bb port url probes
  module=$([ "$scheme" = https ] && echo https_2xx || echo http_2xx)
  [ "$scheme" = https ] && tls="    tls: {ca_file: $work/nginx/ca.pem}\n"
  {
    printf 'probe:\n  interval: 1s\n  timeout: 900ms\n  proxy_requests: 1\n  icmp: {enabled: false}\n  tcp: {enabled: false}\nsites:\n'
    for i in $(seq 1 "$sites"); do
      printf "  - name: site%d\n    url: $scheme://site%d.example.com:%d/\n    proxy: [127.0.0.1]\n    origin: [127.0.0.2]\n$tls" "$i" "$i" "$port_"
    done
  } > "$work/$scheme.yml"
  start_ours "$work/$scheme.yml"
  sleep 5 # a few rounds, so connections and buffers are warm
  p0=$(metric_sum "$url" badgateway_probes_total); t0=$(ticks "$ours"); n0=$(nginx_ticks)
  sleep "$seconds"
  p1=$(metric_sum "$url" badgateway_probes_total); t1=$(ticks "$ours"); n1=$(nginx_ticks)
  h_ok=$(curl -s "$url" | grep -c '^badgateway_probe_success{.*} 1$' || true)
  stop "$ours"
  probes=$(calc '%.0f' "$p1 - $p0")
  [ "$probes" -gt 0 ] || { echo "our prober made no $scheme probes" >&2; exit 1; }
  h_ours=$(calc '%.4f' "($t1 - $t0) / $hz / $probes * 1000")
  h_nginx_ours=$(calc '%.4f' "($n1 - $n0) / $hz / $probes * 1000")
  h_rate_ours=$(calc '%.0f' "$probes / $seconds")

  port=$(free_port)
  prometheus-blackbox-exporter --config.file="$work/blackbox.yml" --web.listen-address="127.0.0.1:$port" --log.level=warn 2>"$work/blackbox.log" &
  pids+=($!); bb=$!
  wait_http "http://127.0.0.1:$port/metrics"
  curl -s "http://127.0.0.1:$port/probe?module=$module&target=$scheme://127.0.0.1:$port_/" | grep -q '^probe_success 1' \
    || { echo "blackbox cannot probe nginx over $scheme" >&2; exit 1; }
  export BENCH_RATE=$(( h_rate_ours > 0 ? h_rate_ours : 2 * sites )) BENCH_PORT=$port_ BENCH_SITES=$sites
  export BENCH_SCHEME=$scheme BENCH_MODULE=$module
  wrk -t1 -c16 -d5s --timeout 6s -s "$work/pace.lua" "http://127.0.0.1:$port" >/dev/null # warm-up
  t0=$(ticks "$bb"); n0=$(nginx_ticks)
  out=$(wrk -t1 -c16 -d"${seconds}s" --timeout 6s -s "$work/pace.lua" "http://127.0.0.1:$port")
  t1=$(ticks "$bb"); n1=$(nginx_ticks)
  stop "$bb"
  probes=$(echo "$out" | awk '/requests in/ {print $1}')
  h_errors=$(echo "$out" | awk '/Non-2xx|Socket errors/' | tr -s ' ' | tr '\n' ';')
  [ "${probes:-0}" -gt 0 ] || { echo "wrk made no requests: $out" >&2; exit 1; }
  h_bb=$(calc '%.4f' "($t1 - $t0) / $hz / $probes * 1000")
  h_nginx_bb=$(calc '%.4f' "($n1 - $n0) / $hz / $probes * 1000")
  h_rate_bb=$(calc '%.0f' "$probes / $seconds")
}

# --- 1. HTTP and HTTPS probes ----------------------------------------------
echo "1/4 HTTP probes: $sites sites x 2 paths at 1 s, ${seconds} s each" >&2
http_phase http "$web_port"
http_ours=$h_ours http_bb=$h_bb nginx_ours=$h_nginx_ours nginx_bb=$h_nginx_bb
rate_ours=$h_rate_ours rate_bb=$h_rate_bb ok=$h_ok bb_errors=$h_errors
# The floor under any prober that opens a connection per probe: ApacheBench,
# a bare C client (no keep-alive), at full speed; its CPU is nearly all the
# kernel's loopback TCP work.
ab -q -n 20000 -c 4 "http://127.0.0.1:$web_port/" >/dev/null # warm-up
floor=$( { /usr/bin/time -f '%U %S' ab -q -n 20000 -c 4 "http://127.0.0.1:$web_port/" >/dev/null; } 2>&1 | tail -1 | awk '{printf "%.4f", ($1 + $2) / 20000 * 1000}')
echo "1/4 HTTPS probes (a new TLS handshake each): $sites sites x 2 paths at 1 s, ${seconds} s each" >&2
http_phase https "$tls_port"
tls_ours=$h_ours tls_bb=$h_bb tls_nginx_ours=$h_nginx_ours tls_nginx_bb=$h_nginx_bb
tls_rate_ours=$h_rate_ours tls_rate_bb=$h_rate_bb tls_ok=$h_ok tls_errors=$h_errors

# --- 2. ICMP ---------------------------------------------------------------
echo "2/4 ICMP: 1,000 addresses at 1 echo/s, ${seconds} s each (ours twice: ICMP on, then off)" >&2
addrs=()
for i in $(seq 0 999); do addrs+=("127.1.$((i / 250)).$((i % 250 + 1))"); done
closed_port=$(free_port) # nothing listens there: the HTTP probes are refused at once
icmp_config() { # enabled -> config
  printf 'probe:\n  interval: 1s\n  timeout: 900ms\n  proxy_requests: 1\n  icmp: {enabled: %s, count: 1, interval: 200ms}\n  tcp: {enabled: false}\nsites:\n' "$1"
  for i in $(seq 0 499); do
    printf '  - name: ping%d\n    url: http://ping%d.example.com:%d/\n    proxy: [%s]\n    origin: [%s]\n' \
      "$i" "$i" "$closed_port" "${addrs[$((2 * i))]}" "${addrs[$((2 * i + 1))]}"
  done
}
run_ours_icmp() { # enabled -> sets icmp_cpu (% of one core) and icmp_loss
  icmp_config "$1" > "$work/icmp-$1.yml"
  local t0 t1 w0 w1
  start_ours "$work/icmp-$1.yml"
  sleep 5
  w0=$(now); t0=$(ticks "$ours"); sleep "$seconds"; t1=$(ticks "$ours"); w1=$(now)
  icmp_loss=$(metric_mean "$url" badgateway_icmp_packet_loss_ratio)
  stop "$ours"
  icmp_cpu=$(calc '%.2f' "($t1 - $t0) / $hz / ($w1 - $w0) * 100")
}
run_ours_icmp true; icmp_gross=$icmp_cpu; icmp_loss_ours=$icmp_loss
run_ours_icmp false; icmp_base=$icmp_cpu
icmp_ours=$(calc '%.2f' "$icmp_gross - $icmp_base")

echo 'targets: []' > "$work/smokeping.yml"
port=$(free_port)
prometheus-smokeping-prober --config.file="$work/smokeping.yml" --privileged --ping.interval=1s \
  --web.listen-address="127.0.0.1:$port" --log.level=warn "${addrs[@]}" 2>"$work/smokeping.log" &
pids+=($!); sp=$!
url="http://127.0.0.1:$port/metrics"
wait_http "$url"
sleep 5
# Counters read before the CPU window opens and after it closes: a scrape of
# a busy smokeping_prober can take seconds, and is not what is measured.
q0=$(now); r0=$(metric_sum "$url" smokeping_requests_total); c0=$(metric_sum "$url" smokeping_response_duration_seconds_count)
w0=$(now); t0=$(ticks "$sp"); sleep "$seconds"; t1=$(ticks "$sp"); w1=$(now)
r1=$(metric_sum "$url" smokeping_requests_total); c1=$(metric_sum "$url" smokeping_response_duration_seconds_count); q1=$(now)
sp_rate=$(calc '%.0f' "($r1 - $r0) / ($q1 - $q0)")
stop "$sp"
icmp_sp=$(calc '%.2f' "($t1 - $t0) / $hz / ($w1 - $w0) * 100")
sp_sent=$(calc '%.0f' "$r1 - $r0")
icmp_loss_sp=$(awk -v sent="$sp_sent" -v got="$(calc '%.0f' "$c1 - $c0")" 'BEGIN {if (sent > 0) printf "%.4f", 1 - got / sent; else print "nan"}')

# --- 3 and 4. /metrics scrapes ---------------------------------------------
echo "3/4 /metrics: prober with 1,000 sites, node_exporter" >&2
scrape() { # pid url -> "p50_ms p99_ms cpu_ms_per_scrape gzip_bytes series"
  local t0 t1 out bytes series
  bytes=$(curl -s -H 'Accept-Encoding: gzip' -o /dev/null -w '%{size_download}' "$2")
  series=$(curl -s "$2" | grep -vc '^#')
  t0=$(ticks "$1")
  out=$(wrk -t1 -c1 -d10s --latency -H 'Accept-Encoding: gzip' "$2")
  t1=$(ticks "$1")
  echo "$out" | awk -v a="$t0" -v b="$t1" -v hz="$hz" -v bytes="$bytes" -v series="$series" '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /m$/) return v * 60000; return v * 1000 }
    /^ +50%/ {p50 = ms($2)} /^ +99%/ {p99 = ms($2)} /requests in/ {n = $1}
    END {printf "%.2f %.2f %.3f %s %s\n", p50, p99, (b - a) / hz * 1000 / n, bytes, series}'
}
{
  printf 'probe:\n  interval: 5s\n  timeout: 4s\n  icmp: {count: 1}\nsites:\n'
  for i in $(seq 1 1000); do
    printf '  - name: site%d\n    url: http://site%d.example.com:%d/healthz\n    proxy: [127.0.0.1]\n    origin: [127.0.0.2]\n' "$i" "$i" "$web_port"
  done
} > "$work/scrape.yml"
start_ours "$work/scrape.yml"
sleep 12 # two full rounds: every series exists
read -r s50 s99 scpu sbytes sseries <<<"$(scrape "$ours" "$url")"
stop "$ours"

port=$(free_port)
prometheus-node-exporter --web.listen-address="127.0.0.1:$port" --log.level=warn 2>/dev/null &
pids+=($!); node=$!
wait_http "http://127.0.0.1:$port/metrics"
read -r n50 n99 ncpu nbytes nseries <<<"$(scrape "$node" "http://127.0.0.1:$port/metrics")"
nrss=$(rss_mb "$node")
stop "$node"

echo "4/4 origin agent (no --config)" >&2
port=$(free_port)
"$bin" --web.listen-address "127.0.0.1:$port" --log.level warn &
pids+=($!); agent=$!
wait_http "http://127.0.0.1:$port/metrics"
sleep 2
read -r _ _ acpu _ aseries <<<"$(scrape "$agent" "http://127.0.0.1:$port/metrics")"
arss=$(rss_mb "$agent")
stop "$agent"

# --- table -----------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b + 0 > 0) printf "%.2f", a / b; else print "-"}'; }
row() { printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$(ratio "$2" "$3")"; }
echo
echo "$(nproc) CPUs, ${seconds} s windows; ours = badgateway-exporter $("$bin" --version 2>/dev/null | head -1 | awk '{print $NF}')"
echo
echo "| measure | ours | anchor | ours/anchor |"
echo "|---|---|---|---|"
row "1. HTTP probe CPU-s per 1,000 probes (anchor: blackbox_exporter http_2xx)" "$http_ours" "$http_bb"
row "1. probes/s done in the window (ours $ok/$((2 * sites)) targets up)" "$rate_ours" "$rate_bb"
row "1. nginx CPU-s per 1,000 requests (serving ours / serving blackbox)" "$nginx_ours" "$nginx_bb"
row "1. HTTP probe CPU-s per 1,000 (anchor: ab, a bare C client, a connection each, full speed)" "$http_ours" "$floor"
row "1. HTTPS probe CPU-s per 1,000 probes, a new handshake each (anchor: blackbox_exporter)" "$tls_ours" "$tls_bb"
row "1. HTTPS probes/s done in the window (ours $tls_ok/$((2 * sites)) targets up)" "$tls_rate_ours" "$tls_rate_bb"
row "1. nginx CPU-s per 1,000 HTTPS requests (serving ours / serving blackbox)" "$tls_nginx_ours" "$tls_nginx_bb"
row "2. ICMP, 1,000 addresses at 1/s: % of one core (anchor: smokeping_prober)" "$icmp_ours" "$icmp_sp"
printf '| 2. ICMP loss reported | %s | %s | - |\n' "$icmp_loss_ours" "$icmp_loss_sp"
row "3. /metrics p50 ms (ours: 1,000 sites; anchor: node_exporter)" "$s50" "$n50"
row "3. /metrics p99 ms" "$s99" "$n99"
row "3. /metrics CPU ms per scrape" "$scpu" "$ncpu"
row "3. /metrics bytes, gzip ($sseries vs $nseries series)" "$sbytes" "$nbytes"
row "4. agent /metrics CPU ms per scrape (anchor: node_exporter)" "$acpu" "$ncpu"
row "4. agent RSS MB ($aseries vs $nseries series)" "$arss" "$nrss"
echo
echo "ICMP, ours gross: $icmp_gross % of a core with 1,000 refused HTTP probes/s alongside; those alone: $icmp_base %."
echo "ICMP, smokeping_prober sent $sp_rate echoes/s (1,000 asked) and saw $(calc '%.0f' "($c1 - $c0) / ($q1 - $q0)") replies/s."
[ -z "$bb_errors" ] || echo "wrk against blackbox (HTTP): $bb_errors"
[ -z "$tls_errors" ] || echo "wrk against blackbox (HTTPS): $tls_errors"
