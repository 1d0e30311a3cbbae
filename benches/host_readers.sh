#!/usr/bin/env bash
# Side measurement: what one reading of the host costs with procfs-core
# (what the agent uses) and with sysinfo, in the same run: CPU times,
# memory, load average, interface counters and every process's name, as
# the saturation and processes collectors need them per scrape.
#
#   benches/host_readers.sh [READINGS]      (default 200 per batch)
#
# Prints wall time per reading (median of 5 batches) and, with valgrind,
# instructions per reading, which repeat on a noisy machine. The crate in
# benches/host_readers/ is its own workspace: sysinfo never enters the
# exporter's build.
set -euo pipefail
n=${1:-200}
cd "$(dirname "$0")/host_readers"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/../../target/host_readers}
cargo build --release --quiet
bin=$CARGO_TARGET_DIR/release/host-readers
"$bin" "$n"
if command -v valgrind >/dev/null; then
    for side in procfs-core sysinfo; do
        out=$(mktemp)
        # 5 batches of 20 readings and one warm-up: 101 readings.
        refs=$(valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" 20 "$side" 2>&1 \
            | awk '/I *refs:/ {gsub(",", "", $NF); print $NF}')
        rm -f "$out"
        printf '%-12s %8.0f k instructions per reading (callgrind)\n' "$side" "$(echo "$refs / 101 / 1000" | bc -l)"
    done
fi
