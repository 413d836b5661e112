#!/usr/bin/env bash
# mailshift's many-accounts benchmark (issue 15, item 0): ten mailboxes on one pair of local
# Dovecot servers, copied by mailshift (one plan of all the accounts, default options) and by
# dsync and mbsync run four accounts at a time (xargs -P 4, as people script them); times the
# full copy and a no-op re-sync, checks every copy of every account over IMAP, and prints the
# table and the ratios. Reuses bench/run.sh's corpus (corpus.py), checker (verify.py), report
# (report.py) and servers (scripts/dovecot.sh). Needs root (tmpfs, Dovecot as `nobody`).
#
#   bench/accounts.sh [--accounts N] [--parallel P] [--runs N] [--variant small|mixed|both]
#                     [--small-messages N] [--mixed-messages N] [--tools mailshift,dsync,mbsync]
#                     [--timeout SECS] [--workdir DIR] [--keep] [--server-connections N]
#
# Variants: `small`, N accounts of --small-messages (1,000) small messages (corpus.py's small
# variant, about 6 KB each); `mixed`, N accounts of --mixed-messages (300) messages of
# realistic sizes (corpus.py's realistic variant). mailshift: MAILSHIFT_BIN (default
# target/release/mailshift); --server-connections N sets both platforms' budget
# (`limits.server_connections`) instead of the default, to compare budgets. Ports: BENCH_SRC_PORT, BENCH_DST_PORT (21153, 21154).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
DOVECOT_SH="$ROOT/scripts/dovecot.sh"

ACCOUNTS=10
PARALLEL=4
RUNS=3
VARIANT=both
SMALL_MESSAGES=1000
MIXED_MESSAGES=300
TOOLS=mailshift,dsync,mbsync
TIMEOUT=1800
WORKDIR=""
KEEP=0
LIMITS=""
SRC_PORT=${BENCH_SRC_PORT:-21153}
DST_PORT=${BENCH_DST_PORT:-21154}
MAILSHIFT_BIN=${MAILSHIFT_BIN:-$ROOT/target/release/mailshift}
# Loopback-only throwaway servers: the passwords only keep the tools honest about logging in.
export BENCH_SRC_PASSWORD=bench-src-secret BENCH_DST_PASSWORD=bench-dst-secret

usage() {
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
log() { echo "bench: $*"; }
die() {
    echo "bench: error: $*" >&2
    exit 1
}

COMMAND_LINE="$0 $*"
while [ $# -gt 0 ]; do
    case $1 in
    --accounts) ACCOUNTS=${2:?}; shift 2 ;;
    --parallel) PARALLEL=${2:?}; shift 2 ;;
    --runs) RUNS=${2:?}; shift 2 ;;
    --variant) VARIANT=${2:?}; shift 2 ;;
    --small-messages) SMALL_MESSAGES=${2:?}; shift 2 ;;
    --mixed-messages) MIXED_MESSAGES=${2:?}; shift 2 ;;
    --tools) TOOLS=${2:?}; shift 2 ;;
    --timeout) TIMEOUT=${2:?}; shift 2 ;;
    --workdir) WORKDIR=${2:?}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --server-connections) LIMITS=", limits: {server_connections: ${2:?}}"; shift 2 ;;
    -h | --help) usage ;;
    *) echo "bench: unknown argument '$1'" >&2; usage ;;
    esac
done
case $VARIANT in
small | mixed) VARIANTS=("$VARIANT") ;;
both) VARIANTS=(small mixed) ;;
*) die "--variant must be small, mixed or both" ;;
esac
for n in "$ACCOUNTS" "$PARALLEL" "$RUNS" "$SMALL_MESSAGES" "$MIXED_MESSAGES" "$TIMEOUT"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || die "counts and the timeout must be positive integers (got '$n')"
done
IFS=, read -r -a TOOL_LIST <<<"$TOOLS"
for t in "${TOOL_LIST[@]}"; do
    case $t in mailshift | mbsync | dsync) ;; *) die "unknown tool '$t'" ;; esac
done
[ "$(id -u)" -eq 0 ] || die "run as root (sudo bench/accounts.sh ...): it mounts a tmpfs and runs Dovecot as nobody"
[ -x "$MAILSHIFT_BIN" ] || [[ ",$TOOLS," != *",mailshift,"* ]] ||
    die "no mailshift binary at $MAILSHIFT_BIN (cargo build --release, or set MAILSHIFT_BIN)"
"$ROOT/scripts/install-deps.sh"
for c in mbsync doveadm python3 /usr/bin/time xargs; do
    command -v "$c" >/dev/null || die "$c is needed (bench/run.sh installs isync and time)"
done

USERS=()
for i in $(seq 1 "$ACCOUNTS"); do USERS+=("$(printf 'user%02d' "$i")"); done

# --- work directory, tmpfs, cleanup ---------------------------------------------------------
if [ -n "$WORKDIR" ]; then
    mkdir -p "$WORKDIR"
    WORK=$(cd "$WORKDIR" && pwd)
else
    WORK=$(mktemp -d /tmp/mailshift-bench-accounts.XXXXXX)
fi
chmod 0755 "$WORK"
MAIL_ROOT="$WORK/servers"
OUT="$WORK/out"
mkdir -p "$MAIL_ROOT" "$OUT"
SRC="$MAIL_ROOT/src"
DST="$MAIL_ROOT/dst"
MOUNTED=0
FAILED=0

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ "$rc" -eq 0 ] || FAILED=1
    "$DOVECOT_SH" stop "$SRC" >/dev/null 2>&1 || true
    "$DOVECOT_SH" stop "$DST" >/dev/null 2>&1 || true
    if [ "$MOUNTED" = 1 ]; then
        umount "$MAIL_ROOT" 2>/dev/null || umount -l "$MAIL_ROOT" 2>/dev/null || true
    fi
    if [ "$KEEP" = 1 ]; then
        echo "bench: kept $WORK (raw results in $OUT)" >&2
    elif [ "$FAILED" = 1 ]; then
        find "$WORK" -mindepth 1 -maxdepth 1 ! -name out -exec rm -rf {} +
        echo "bench: kept the logs in $OUT" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Mail in RAM, as in bench/run.sh: the tools are compared, not the disk.
if mount -t tmpfs -o mode=0755 mailshift-bench "$MAIL_ROOT" 2>"$WORK/mount.err"; then
    MOUNTED=1
    STORAGE="tmpfs"
else
    STORAGE="DISK (tmpfs mount failed: $(cat "$WORK/mount.err"))"
    echo "bench: WARNING: mail directories are on disk; timings are less stable" >&2
fi

# --- servers --------------------------------------------------------------------------------
"$DOVECOT_SH" start "$SRC" "$SRC_PORT" >/dev/null
"$DOVECOT_SH" start "$DST" "$DST_PORT" >/dev/null
for u in "${USERS[@]}"; do
    "$DOVECOT_SH" adduser "$SRC" "$u" "$BENCH_SRC_PASSWORD" >/dev/null
    "$DOVECOT_SH" adduser "$DST" "$u" "$BENCH_DST_PASSWORD" >/dev/null
done
# adduser's rewrites are seen by Dovecot within a second.
sleep 1.2
log "source 127.0.0.1:$SRC_PORT, destination 127.0.0.1:$DST_PORT, ${#USERS[@]} accounts, mail on $STORAGE"

reset_dst() {
    "$DOVECOT_SH" stop "$DST" >/dev/null
    for u in "${USERS[@]}"; do
        rm -rf "${DST:?}/mail/$u"
        "$DOVECOT_SH" adduser "$DST" "$u" "$BENCH_DST_PASSWORD" >/dev/null
    done
    "$DOVECOT_SH" start "$DST" "$DST_PORT" >/dev/null
}

# --- tools ----------------------------------------------------------------------------------
MS_DIR="$WORK/mailshift"
MB_DIR="$WORK/mbsync"

prepare_mailshift() {
    rm -rf "$MS_DIR"
    mkdir -p "$MS_DIR"
    {
        echo "# Written by bench/accounts.sh: every account in one plan, default options."
        echo "version: 1"
        echo "platforms:"
        echo "  bench-src: {type: imap, imap: {host: 127.0.0.1, port: $SRC_PORT, security: none}$LIMITS}"
        echo "  bench-dst: {type: imap, imap: {host: 127.0.0.1, port: $DST_PORT, security: none}$LIMITS}"
        echo "accounts:"
        for u in "${USERS[@]}"; do
            echo "  - {address: $u@example.com, from: bench-src, to: bench-dst,"
            echo "     source: {login: $u, password: {env: BENCH_SRC_PASSWORD}},"
            echo "     destination: {login: $u, password: {env: BENCH_DST_PASSWORD}}}"
        done
    } >"$MS_DIR/plan.yaml"
}

prepare_mbsync() {
    rm -rf "$MB_DIR"
    mkdir -p "$MB_DIR"
    local u
    for u in "${USERS[@]}"; do
        mkdir -p "$MB_DIR/$u"
        # As bench/run.sh's: pull, create folders, keep internal dates.
        cat >"$MB_DIR/$u/mbsyncrc" <<EOF
IMAPAccount src
Host 127.0.0.1
Port $SRC_PORT
User $u
Pass $BENCH_SRC_PASSWORD
SSLType None
AuthMechs LOGIN

IMAPStore src
Account src

IMAPAccount dst
Host 127.0.0.1
Port $DST_PORT
User $u
Pass $BENCH_DST_PASSWORD
SSLType None
AuthMechs LOGIN

IMAPStore dst
Account dst

Channel bench
Far :src:
Near :dst:
Patterns *
Create Near
Sync Pull
CopyArrivalDate yes
SyncState $MB_DIR/$u/
EOF
        chmod 0600 "$MB_DIR/$u/mbsyncrc"
    done
}

# The command each tool runs (full copy and no-op alike): the peers per account, PARALLEL at a
# time; xargs fails (123) when one of them does.
tool_cmd() {
    case $1 in
    mailshift) CMD=("$MAILSHIFT_BIN" apply "$MS_DIR/plan.yaml") ;;
    dsync)
        CMD=(bash -c 'printf "%s\n" "$@" | xargs -P '"$PARALLEL"' -I{} doveadm -c '"$DST"'/dovecot.conf \
            -o imapc_host=127.0.0.1 -o imapc_port='"$SRC_PORT"' -o imapc_user={} \
            -o imapc_password="$BENCH_SRC_PASSWORD" -o imapc_ssl=no backup -R -u {} imapc:' \
            dsync "${USERS[@]}")
        ;;
    mbsync)
        CMD=(bash -c 'printf "%s\n" "$@" | xargs -P '"$PARALLEL"' -I{} mbsync -c '"$MB_DIR"'/{}/mbsyncrc -a' \
            mbsync "${USERS[@]}")
        ;;
    esac
}

RESULTS="$OUT/results.tsv"
META="$OUT/corpus.tsv"
printf 'variant\ttool\trun\tphase\twall_s\tmax_rss_kb\tuser_s\tsys_s\trc\tbusy_s\n' >"$RESULTS"
printf 'variant\tmessages\tbytes\tfolders\n' >"$META"

# As bench/run.sh's: wall time from the clock, peak RSS and CPU from /usr/bin/time -v (for
# the peers, the largest child's RSS and every child's CPU).
measure() {
    local variant=$1 tool=$2 run=$3 phase=$4 t0 t1 rc tv="$OUT/time.txt"
    local logf="$OUT/$variant-$tool-$run-$phase.log"
    local busy0 busy1
    busy0=$(busy_ticks)
    t0=$(date +%s%N)
    set +e
    /usr/bin/time -v -o "$tv" timeout -k 10 "$TIMEOUT" "${CMD[@]}" </dev/null >"$logf" 2>&1
    rc=$?
    set -e
    t1=$(date +%s%N)
    busy1=$(busy_ticks)
    local wall rss user sys
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
    rss=$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$tv")
    user=$(sed -n 's/^[[:space:]]*User time (seconds): //p' "$tv")
    sys=$(sed -n 's/^[[:space:]]*System time (seconds): //p' "$tv")
    local busy
    busy=$(awk -v a="$busy0" -v b="$busy1" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (b - a) / hz }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$variant" "$tool" "$run" "$phase" "$wall" \
        "${rss:-0}" "${user:-0}" "${sys:-0}" "$rc" "$busy" >>"$RESULTS"
    if [ "$rc" -ne 0 ]; then
        echo "bench: $tool $phase failed (exit $rc); last lines of $logf:" >&2
        tail -n 15 "$logf" >&2
        return 1
    fi
    log "  $tool run $run $phase: ${wall}s (machine CPU busy: ${busy} s, the servers' included)"
}

# CPU time spent on the whole machine so far (user+nice+system+irq+softirq), in clock ticks:
# the servers' work counts as much as the tool's when two CPUs carry both.
busy_ticks() {
    awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat
}

# Every account's destination against its source snapshot.
verify_all() {
    local variant=$1 tool=$2 run=$3 u args=() cmp=() ok=0
    if [ "$tool" = mbsync ]; then
        args=(--strip-header X-TUID)
        cmp=(--lossy-keywords)
    fi
    for u in "${USERS[@]}"; do
        if ! python3 "$HERE/verify.py" snapshot --port "$DST_PORT" --user "$u" \
            --password-env BENCH_DST_PASSWORD --out "$OUT/$variant-$u-dst.json" "${args[@]}" \
            2>"$OUT/verify.err"; then
            echo "bench: could not read $u's destination after $tool run $run" >&2
            ok=1
            continue
        fi
        python3 "$HERE/verify.py" compare "$OUT/$variant-$u-src.json" "$OUT/$variant-$u-dst.json" \
            --label "$tool run $run $u" "${cmp[@]}" >"$OUT/compare.txt" || {
            sed 's/^/bench:   /' "$OUT/compare.txt"
            ok=1
        }
    done
    [ "$ok" -eq 0 ] && log "  $tool run $run: all ${#USERS[@]} accounts verified"
    return "$ok"
}

LOAD_START=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$LOAD_START" 'BEGIN { exit !(l > 0.5) }'; then
    echo "bench: WARNING: load average is $LOAD_START before starting: other work on this machine will skew the timings" >&2
fi

for variant in "${VARIANTS[@]}"; do
    case $variant in
    small) corpus=small; per=$SMALL_MESSAGES; full=20000 ;;
    mixed) corpus=realistic; per=$MIXED_MESSAGES; full=5000 ;;
    esac
    name="${ACCOUNTS}x$per-$variant"
    log "== $name =="
    "$DOVECOT_SH" stop "$SRC" >/dev/null
    i=0
    for u in "${USERS[@]}"; do
        i=$((i + 1))
        # A seed per account: ten different mailboxes of the same shape.
        python3 "$HERE/corpus.py" --home "$SRC/mail/$u" --variant "$corpus" --seed "$i" \
            --scale "$(awk -v p="$per" -v f="$full" 'BEGIN { printf "%.6f", p / f }')" >/dev/null
    done
    "$DOVECOT_SH" start "$SRC" "$SRC_PORT" >/dev/null
    msgs=0 bytes=0 folders=0
    for u in "${USERS[@]}"; do
        doveadm -c "$SRC/dovecot.conf" mailbox status -u "$u" 'messages vsize' '*' >/dev/null
        python3 "$HERE/verify.py" snapshot --port "$SRC_PORT" --user "$u" \
            --password-env BENCH_SRC_PASSWORD --out "$OUT/$name-$u-src.json" >/dev/null
        read -r m b f < <(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s["messages"], s["bytes"], len(s["folders"]))' "$OUT/$name-$u-src.json")
        msgs=$((msgs + m)) bytes=$((bytes + b)) folders=$((folders + f))
    done
    printf '%s\t%s\t%s\t%s\n' "$name" "$msgs" "$bytes" "$folders" >>"$META"
    log "$msgs messages, $((bytes / 1000000)) MB in $folders folders over ${#USERS[@]} accounts"

    for run in $(seq 1 "$RUNS"); do
        for tool in "${TOOL_LIST[@]}"; do
            reset_dst
            case $tool in
            mbsync) prepare_mbsync ;;
            mailshift) prepare_mailshift ;;
            esac
            tool_cmd "$tool"
            if ! measure "$name" "$tool" "$run" full; then FAILED=1; continue; fi
            if ! measure "$name" "$tool" "$run" noop; then FAILED=1; continue; fi
            verify_all "$name" "$tool" "$run" || FAILED=1
        done
    done
done

# --- report ---------------------------------------------------------------------------------
{
    echo "# $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
    echo "# Dovecot $(dovecot --version | cut -d' ' -f1); $(mbsync --version 2>/dev/null || echo 'mbsync absent'); mail on $STORAGE"
    echo "# peers: $PARALLEL accounts at a time; mailshift: one plan of ${#USERS[@]} accounts, default options"
    echo "# 1-min load average: $LOAD_START at start, $(cut -d' ' -f1 /proc/loadavg) at end"
    echo "# $COMMAND_LINE"
    echo
    python3 "$HERE/report.py" "$RESULTS" "$META"
    echo
    echo "targets: mailshift/dsync full copy at most 0.83x (1.2x faster), mailshift/mbsync at most 0.50x (2x faster)"
} | tee "$OUT/report.txt"

if [ "$FAILED" -ne 0 ]; then
    echo "bench: FAILED: a tool failed or a copy did not verify (logs in $OUT)" >&2
    exit 1
fi
