#!/bin/sh
# Runs every fuzz target for SECONDS each (default 60), one after another on
# one core, and prints per target the executions and whether anything was
# found. Not part of the test run (tests/run.sh, CI).
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# Builds with debug assertions, so arithmetic overflow is a finding too.
# Each run starts from the committed seeds in fuzz/corpus/TARGET and writes
# what it adds to fuzz/work/TARGET (not committed); crashes, hangs (over
# 5 s for one input) and out-of-memory (over 2 GiB) land in
# fuzz/artifacts/TARGET/. Replay one with
#   cargo +nightly fuzz run -a TARGET fuzz/artifacts/TARGET/crash-...
# Exits 1 when any target found something.
set -eu
# cargo-fuzz builds into $CARGO_TARGET_DIR when set, else fuzz/target.
case ${CARGO_TARGET_DIR:-} in
    "") ;;
    /*) ;;
    *) CARGO_TARGET_DIR="$PWD/$CARGO_TARGET_DIR" && export CARGO_TARGET_DIR ;;
esac
cd "$(dirname "$0")"
bin="${CARGO_TARGET_DIR:-$PWD/target}/$(rustc +nightly -vV | sed -n 's/^host: //p')/release"
seconds=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-"config access_log_line iptables_save nft_json procfs"}

# The procfs target writes its input into a procfs tree under $TMPDIR,
# every run: on tmpfs that is ten times faster than on disk.
tmp=$(mktemp -d /dev/shm/badgateway-fuzz.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Built once; the runs call the binaries (`cargo fuzz run` would check the
# build again before each).
cargo +nightly fuzz build -a

summary=""
failed=0
for t in $targets; do
    mkdir -p "work/$t" "artifacts/$t"
    log="work/$t.log"
    echo "== $t: ${seconds}s (log: fuzz/$log)"
    status=0
    start=$(date +%s)
    # One process on one core; new inputs go to the first directory only.
    TMPDIR="$tmp" "$bin/$t" "work/$t" "corpus/$t" \
        -artifact_prefix="artifacts/$t/" -max_total_time="$seconds" \
        -timeout=5 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1 || status=$?
    took=$(($(date +%s) - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    if [ -z "$execs" ]; then
        # A crash ends the run before the final stats: the last status line.
        execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    fi
    if [ "$status" -eq 0 ]; then
        found="none"
    else
        failed=1
        found=$(grep -m 1 -E 'SUMMARY:|ERROR: libFuzzer|panicked at' "$log" || echo "exit $status")
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
        [ -n "$artifact" ] && found="$found; input: fuzz/$artifact"
    fi
    line=$(printf '%-16s %12s execs  %5ss  found: %s' "$t" "${execs:-?}" "$took" "$found")
    echo "$line"
    summary="$summary$line
"
done
echo
echo "target                  executions   time  findings"
printf '%s' "$summary"
exit "$failed"
