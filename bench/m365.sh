#!/usr/bin/env bash
# mailshift and mbsync copying into a Microsoft-365-shaped server: bench/run.sh's realistic
# mailbox (5,000 messages at scale 1) with the destination behind `provider-sim m365`, the
# proxy that gives a Dovecot Exchange Online's manners (its capabilities: no CONDSTORE,
# MULTIAPPEND or SPECIAL-USE; optionally its throttling replies). Both tools go through the
# same proxy, in one run, and the report's ratios compare them. See bench/README.md.
#
#   bench/m365.sh [--runs N] [--scale F] [--throttle-every N --backoff-ms MS] [run.sh args...]
#
# Logins: both tools log in with a password, which the proxy passes through to Dovecot's
# passwd-file (mbsync cannot refresh OAuth2 tokens; the tests cover XOAUTH2 and expiry). The
# proxy prints what it saw when it stops (commands, pipelined APPENDs, refused commands).
# PROVIDER_SIM_BIN (default target/release/provider-sim); BENCH_PROXY_PORT (21145).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
PROVIDER_SIM_BIN=${PROVIDER_SIM_BIN:-$ROOT/target/release/provider-sim}
PROXY_PORT=${BENCH_PROXY_PORT:-21145}
DST_PORT=${BENCH_DST_PORT:-21144}

RUNS=3
PROXY_ARGS=()
PASS=()
while [ $# -gt 0 ]; do
    case $1 in
    --runs) RUNS=${2:?}; shift 2 ;;
    --throttle-every | --backoff-ms | --unavailable-every) PROXY_ARGS+=("$1" "${2:?}"); shift 2 ;;
    -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    *) PASS+=("$1"); shift ;;
    esac
done
[ -x "$PROVIDER_SIM_BIN" ] || {
    echo "bench: no provider-sim at $PROVIDER_SIM_BIN (cargo build --release -p provider-sim)" >&2
    exit 1
}

PROXY_LOG=$(mktemp /tmp/mailshift-m365-proxy.XXXXXX)
"$PROVIDER_SIM_BIN" m365 --listen "127.0.0.1:$PROXY_PORT" --upstream "127.0.0.1:$DST_PORT" \
    "${PROXY_ARGS[@]}" >"$PROXY_LOG" 2>&1 &
PROXY_PID=$!
stop_proxy() {
    kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null || true
    sed 's/^/bench: /' "$PROXY_LOG"
    rm -f "$PROXY_LOG"
}
trap stop_proxy EXIT
# The proxy prints its address once it listens.
for _ in $(seq 50); do
    [ -s "$PROXY_LOG" ] && break
    sleep 0.1
done
echo "bench: Microsoft-365-shaped proxy on 127.0.0.1:$PROXY_PORT in front of 127.0.0.1:$DST_PORT ${PROXY_ARGS[*]}"

# dsync writes the destination's storage itself, not through IMAP: it has no place here.
set +e
BENCH_TOOL_DST_PORT=$PROXY_PORT BENCH_DST_PORT=$DST_PORT \
    "$HERE/run.sh" --variant realistic --tools mailshift,mbsync --runs "$RUNS" "${PASS[@]}"
rc=$?
set -e
exit $rc
