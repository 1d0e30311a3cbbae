#!/bin/sh
# Writes the seed corpora fuzz/corpus/<target>/ from the repo's fixtures.
# Each target's input starts with a selector or flags byte (see the target's
# doc comment); the seeds are the fixtures behind that byte. Run from
# anywhere; it replaces the seeds it writes, and leaves others alone.
set -eu
cd "$(dirname "$0")"
fx=../tests/fixtures
c=corpus

seed() { # seed TARGET NAME BYTE FILE...
    target=$1 name=$2 byte=$3
    shift 3
    mkdir -p "$c/$target"
    { printf "\\$(printf %03o "$byte")"; cat "$@"; } >"$c/$target/$name"
}

mkdir -p "$c/config"
cp "$fx/config/full.yml" "$c/config/full.yml"
cp ../deploy/example.yml "$c/config/example.yml"

seed access_log_line combined 0 "$fx/access_log/combined.log"
printf '\001%s\n%s\n' \
    '2001:db8::1 - frank [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 -' \
    '::ffff:192.0.2.1 - - [t] "GET /\"x\" \\" 503 0' >"$c/access_log_line/common"
printf '\002%s\n\n%s\n%s\n' '${status}|$request_time|$remote_addr' \
    '429|0.001|192.0.2.9' '429 0.001|192.0.2.9' >"$c/access_log_line/custom-braces"
printf '\002%s\n%s\n%s\n' '$remote_addr [$time_local] "$request" $status peer=$realip_remote_addr' \
    '$realip_remote_addr' '192.0.2.50 [t] "GET / HTTP/1.1" 200 peer=198.51.100.10' >"$c/access_log_line/custom-realip"
printf '\002%s\n\n%s\n' '[$time_local] $host$uri $remote_addr: $status$body_bytes_sent' \
    '[t] a.example/x 192.0.2.1: 5021234' >"$c/access_log_line/custom-trailing"

for f in "$fx"/firewall/*.iptables-save.txt; do
    seed iptables_save "$(basename "$f" .iptables-save.txt)" 0 "$f"
done
seed iptables_save legacy-warning 2 "$fx/firewall/legacy.iptables-save.txt"
seed iptables_save v6 1 "$fx/firewall/v6.ip6tables-save.txt"

for f in "$fx"/firewall/*.nft.json; do
    seed nft_json "$(basename "$f" .nft.json)" 0 "$f"
done
seed nft_json auto-skip-ip 3 "$fx/firewall/auto.nft.json"

i=0
for rel in stat meminfo loadavg net/dev net/tcp net/tcp6 812/comm; do
    seed procfs "$(echo "$rel" | tr / -)" "$i" "$fx/procfs/$rel"
    i=$((i + 1))
done
