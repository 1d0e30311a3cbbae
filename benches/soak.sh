#!/usr/bin/env bash
# Soak of the web endpoint: the release build probing SITES sites served by
# a local nginx: 400 connections each sending a 390 KiB request head that
# never ends, then REQUESTS scrapes at CONCURRENCY (ApacheBench, a new
# connection per scrape) in two halves.
#
#   benches/soak.sh [SITES] [REQUESTS] [CONCURRENCY]   (defaults: 1000 10000 64)
#
# Prints failed and non-200 scrapes (expect 0), and the exporter's resident
# memory (VmRSS) and open descriptors before and after each phase: RSS
# rises to a high-water mark of the scrapes in flight (bounded by
# --web.max-requests x the scrape's size) and stays there (expect the two
# halves equal); descriptors come back to where they started. The exporter runs with --web.max-requests CONCURRENCY: at the
# default (40, as node_exporter) scrapes beyond 40 in flight are answered
# 503 by design. Needs nginx, ab (apache2-utils) and python3. Everything
# listens on 127.0.0.1 and is stopped on exit.
set -euo pipefail
sites=${1:-1000}
requests=${2:-10000}
concurrency=${3:-64}
cd "$(dirname "$0")/.."
. benches/common.sh
bench_setup

web_port=$(free_port); exporter_port=$(free_port)

release_bin

start_nginx "$work" "$web_port"

{
  printf 'probe:\n  interval: 15s\n  timeout: 5s\n  icmp: {enabled: false}\nsites:\n'
  for i in $(seq 1 "$sites"); do
    printf '  - name: site%d\n    url: http://site%d.example.com:%d/healthz\n    proxy: [127.0.0.1]\n    origin: [127.0.0.2]\n' "$i" "$i" "$web_port"
  done
} > "$work/config.yml"

"$bin" --config "$work/config.yml" --web.listen-address "127.0.0.1:$exporter_port" \
  --web.max-requests "$concurrency" --log.level warn 2>"$work/exporter.log" &
pids+=($!); exporter=$!
url="http://127.0.0.1:$exporter_port/metrics"

rss() { awk '/VmRSS/ {printf "%.1f MB", $2/1024}' "/proc/$exporter/status"; }
fds() { ls "/proc/$exporter/fd" | wc -l; }

# Two rounds, so that every site has results.
sleep 32
series=$(curl -s "$url" | grep -vc '^#')
bytes=$(curl -s "$url" | wc -c)
echo "exporter: $sites sites, $series series, $bytes bytes a scrape, --web.max-requests $concurrency"
echo "start:    RSS $(rss), $(fds) open fds"

# 400 connections, each sending a request head that never ends.
python3 - "$exporter_port" "$exporter" <<'PY'
import os, socket, sys, time
port, pid = int(sys.argv[1]), sys.argv[2]
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return f"{int(line.split()[1]) / 1024:.1f} MB"
def fds():
    return len(os.listdir(f"/proc/{pid}/fd"))
def phase(kib):
    head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * (kib * 1024)
    held = []
    for _ in range(400):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            held.append(s)
            s.sendall(head)
        except OSError:
            pass
    time.sleep(2)
    print(f"half-sent: 400 connections x {kib} KiB heads: RSS {rss()}, {fds()} open fds")
    for s in held:
        s.close()
    time.sleep(2)
# 390 KiB: past the 16 KiB budget, answered 431 and closed; 15 KiB: held
# until the 10 s header timeout, 256 of them (--web.max-connections).
for kib in (390, 15):
    phase(kib)
print(f"half-sent: all closed: RSS {rss()}, {fds()} open fds")
PY
scrapes() { # the round's number: half of the scrapes, then the figures
  ab -q -n "$((requests / 2))" -c "$concurrency" "$url" > "$work/ab$1.txt" 2>&1 || true
  sleep 2
  # ab counts a body whose length differs from the first one's as failed
  # ("Length"): a scrape's length varies. Errors are the other kinds.
  awk -v n="$((requests / 2))" -v c="$concurrency" -v r="$1" '
    /^Complete requests/ {done=$3} /^Non-2xx responses/ {non2xx=$3}
    /\(Connect:/ {gsub(/[(),]/, ""); errors=$2+$4+$8}
    /^Time taken for tests/ {secs=$5} /^Requests per second/ {rps=$4}
    /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
    END {printf "scrapes %d: %d of %d at concurrency %d in %s s (%s/s), %d errors, %d non-200; p50 %s ms, p99 %s ms\n",
         r, done, n, c, secs, rps, errors+0, non2xx+0, p50, p99}' "$work/ab$1.txt"
  grep -q '^Complete requests' "$work/ab$1.txt" || cat "$work/ab$1.txt"
  echo "after $1:  RSS $(rss), $(fds) open fds"
}
scrapes 1
scrapes 2
