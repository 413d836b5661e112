#!/usr/bin/env bash
# `mailshift plan` of one shard of a large plan (issue 15, item 4): generates a plan of N
# accounts (bench/plan_scale.py: two IMAP platforms, `{env: ...}` secrets, no state) and times
# `mailshift plan --shard I/S` on it, run after run, with the whole plan's `plan` beside it
# for comparison, each with the plan cache empty (cold) and filled (warm). Prints one line per
# run and the median. Issue 15's target: under 1 s for
# one shard of 100,000/10 accounts (release build).
#
#   bench/scale.sh [--accounts N] [--shards S] [--shard I] [--runs R] [--workdir DIR]
#
# mailshift: MAILSHIFT_BIN (default target/release/mailshift).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
BIN=${MAILSHIFT_BIN:-$ROOT/target/release/mailshift}
ACCOUNTS=100000
SHARDS=10
SHARD=0
RUNS=5
WORKDIR=

while [ $# -gt 0 ]; do
    case "$1" in
        --accounts) ACCOUNTS=$2; shift 2 ;;
        --shards) SHARDS=$2; shift 2 ;;
        --shard) SHARD=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --workdir) WORKDIR=$2; shift 2 ;;
        *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
[ -x "$BIN" ] || { echo "no mailshift binary at $BIN: cargo build --release first" >&2; exit 1; }
if [ -z "$WORKDIR" ]; then
    WORKDIR=$(mktemp -d)
    trap 'rm -rf "$WORKDIR"' EXIT
fi
PLAN="$WORKDIR/plan-$ACCOUNTS.yaml"
[ -f "$PLAN" ] || python3 "$HERE/plan_scale.py" "$ACCOUNTS" > "$PLAN"

# One timed run: wall seconds and peak RSS (KB), with the shard line `plan` printed.
run() {
    /usr/bin/time -f "%e %M" -o "$WORKDIR/time" "$BIN" plan "$PLAN" "$@" > "$WORKDIR/out" 2>&1 \
        || { cat "$WORKDIR/out" >&2; exit 1; }
    read -r wall rss < "$WORKDIR/time"
    echo "$wall $rss"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1 /proc/loadavg)"
echo "binary: $BIN ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "plan: $ACCOUNTS accounts, $(du -h "$PLAN" | cut -f1)"
# The plan cache (MAILSHIFT_CACHE_DIR): "cold" empties it before each run (the first command
# after a plan change parses and checks the whole plan), "warm" reads the checked plan back.
export MAILSHIFT_CACHE_DIR="$WORKDIR/cache"
for what in "shard cold" "shard warm" "whole cold" "whole warm"; do
    times=()
    for _ in $(seq "$RUNS"); do
        case "$what" in
            *cold) rm -rf "$MAILSHIFT_CACHE_DIR" ;;
            *warm) [ -d "$MAILSHIFT_CACHE_DIR" ] || run > /dev/null ;;
        esac
        if [ "${what%% *}" = shard ]; then
            r=$(run --shard "$SHARD/$SHARDS")
        else
            r=$(run)
        fi
        times+=("${r%% *}")
        echo "  $what: ${r%% *} s, peak RSS $(( ${r##* } / 1024 )) MB"
    done
    if [ "${what%% *}" = shard ]; then
        grep -m1 '^shard ' "$WORKDIR/out" | sed 's/^/  /'
    fi
    echo "$what median: $(printf '%s\n' "${times[@]}" | median) s over $RUNS runs"
done
