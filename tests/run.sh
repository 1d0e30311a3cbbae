#!/usr/bin/env bash
# Runs every test: unit, integration (network namespaces, nginx, real
# firewall rules, ICMP) and the promtool checks. Needs root for the
# namespaces and firewall rules. On Debian, installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "tests/run.sh: the integration tests build network namespaces and firewall rules: run as root" >&2
  exit 2
fi

need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v dnsmasq >/dev/null || need+=(dnsmasq-base)
command -v promtool >/dev/null || need+=(prometheus)
{ command -v amtool && { command -v prometheus-alertmanager || command -v alertmanager; }; } >/dev/null || need+=(prometheus-alertmanager)
command -v iptables >/dev/null || need+=(iptables)
command -v nft >/dev/null || need+=(nftables)
command -v ip >/dev/null || need+=(iproute2)
command -v curl >/dev/null || need+=(curl)
command -v chromium >/dev/null || need+=(chromium)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v setpriv >/dev/null || need+=(util-linux)
command -v docker-compose >/dev/null || need+=(docker-compose)
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" ca-certificates >/dev/null
fi

# Benchmarks are left out: they measure, they do not test (benches/).
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --locked --lib --bins --tests "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "all tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
