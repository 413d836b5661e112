#!/usr/bin/env bash
# mailshift's benchmark: copies one generated mailbox between two local Dovecot servers with
# mailshift, mbsync (isync) and Dovecot's dsync over imapc, times a full copy and a no-op
# re-sync for each, checks every copy over IMAP, and prints a comparison table.
# See bench/README.md. Needs root (tmpfs mount, Dovecot running mail as `nobody`).
#
#   bench/run.sh [--variant realistic|small|both] [--scale F] [--runs N]
#                [--tools mailshift,mbsync,dsync] [--seed N] [--timeout SECS]
#                [--workdir DIR] [--keep]
#
# mailshift: MAILSHIFT_BIN (default target/release/mailshift), extra `apply` arguments in
# MAILSHIFT_APPLY_ARGS. Ports: BENCH_SRC_PORT, BENCH_DST_PORT (21143, 21144); the IMAP tools
# write to BENCH_TOOL_DST_PORT (default the destination's: bench/m365.sh puts a proxy there).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
DOVECOT_SH="$ROOT/scripts/dovecot.sh"

VARIANT=both
SCALE=1
RUNS=3
TOOLS=mailshift,mbsync,dsync
SEED=1
TIMEOUT=1800
WORKDIR=""
KEEP=0
SRC_PORT=${BENCH_SRC_PORT:-21143}
DST_PORT=${BENCH_DST_PORT:-21144}
TOOL_DST_PORT=${BENCH_TOOL_DST_PORT:-$DST_PORT}
MAILSHIFT_BIN=${MAILSHIFT_BIN:-$ROOT/target/release/mailshift}
USER_NAME=bench
# Loopback-only throwaway servers: the passwords only keep the tools honest about logging in.
export BENCH_SRC_PASSWORD=bench-src-secret BENCH_DST_PASSWORD=bench-dst-secret

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
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
    --variant) VARIANT=${2:?}; shift 2 ;;
    --scale) SCALE=${2:?}; shift 2 ;;
    --runs) RUNS=${2:?}; shift 2 ;;
    --tools) TOOLS=${2:?}; shift 2 ;;
    --seed) SEED=${2:?}; shift 2 ;;
    --timeout) TIMEOUT=${2:?}; shift 2 ;;
    --workdir) WORKDIR=${2:?}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage ;;
    *) echo "bench: unknown argument '$1'" >&2; usage ;;
    esac
done
case $VARIANT in
realistic | small) VARIANTS=("$VARIANT") ;;
both) VARIANTS=(realistic small) ;;
*) die "--variant must be realistic, small or both" ;;
esac
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer"
[[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "--timeout must be a positive number of seconds"
[[ $SCALE =~ ^[0-9]*\.?[0-9]+$ ]] || die "--scale must be a number"
IFS=, read -r -a TOOL_LIST <<<"$TOOLS"
for t in "${TOOL_LIST[@]}"; do
    case $t in mailshift | mbsync | dsync) ;; *) die "unknown tool '$t'" ;; esac
done
has_tool() { [[ ",$TOOLS," == *",$1,"* ]]; }
[ "$(id -u)" -eq 0 ] || die "run as root (sudo bench/run.sh ...): it mounts a tmpfs and runs Dovecot as nobody"

# --- dependencies ---------------------------------------------------------------------------
"$ROOT/scripts/install-deps.sh"
need=()
[ -x /usr/bin/time ] || need+=(time)
if has_tool mbsync && ! command -v mbsync >/dev/null 2>&1; then need+=(isync); fi
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null ||
        { DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; }
fi
command -v python3 >/dev/null || die "python3 is needed (corpus and verification)"

# --- work directory, tmpfs, cleanup ---------------------------------------------------------
if [ -n "$WORKDIR" ]; then
    mkdir -p "$WORKDIR"
    WORK=$(cd "$WORKDIR" && pwd)
else
    WORK=$(mktemp -d /tmp/mailshift-bench.XXXXXX)
fi
# Dovecot reaches the mail as `nobody` through every parent directory.
chmod 0755 "$WORK"
MAIL_ROOT="$WORK/servers"
mkdir -p "$MAIL_ROOT" "$WORK/out"
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
        umount "$MAIL_ROOT" 2>/dev/null || umount -l "$MAIL_ROOT" 2>/dev/null ||
            echo "bench: warning: could not unmount $MAIL_ROOT" >&2
    fi
    if [ "$KEEP" = 1 ]; then
        echo "bench: kept $WORK (raw results in $WORK/out)" >&2
    elif [ "$FAILED" = 1 ] && [ -d "$WORK/out" ]; then
        # The logs are what explains a failure: keep them, drop the rest.
        find "$WORK" -mindepth 1 -maxdepth 1 ! -name out -exec rm -rf {} +
        echo "bench: kept the logs in $WORK/out" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Disk timings drift up to 3x within minutes on these VMs (reference/dovecot-in-tests.md):
# the servers' mail lives in RAM so that tools, not the disk, are compared.
if mount -t tmpfs -o mode=0755 mailshift-bench "$MAIL_ROOT" 2>"$WORK/mount.err"; then
    MOUNTED=1
    STORAGE="tmpfs (mount -t tmpfs at $MAIL_ROOT)"
else
    STORAGE="DISK ($MAIL_ROOT): tmpfs mount failed: $(cat "$WORK/mount.err"); timings are less stable"
    echo "bench: WARNING: could not mount a tmpfs; mail directories are on disk" >&2
fi
log "mail directories: $STORAGE"

# --- servers --------------------------------------------------------------------------------
"$DOVECOT_SH" start "$SRC" "$SRC_PORT" >/dev/null
"$DOVECOT_SH" adduser "$SRC" "$USER_NAME" "$BENCH_SRC_PASSWORD" >/dev/null
"$DOVECOT_SH" start "$DST" "$DST_PORT" >/dev/null
"$DOVECOT_SH" adduser "$DST" "$USER_NAME" "$BENCH_DST_PASSWORD" >/dev/null
conns=$(sed -n 's/^mail_max_userip_connections = //p' "$DST/dovecot.conf")
[ -n "$conns" ] || echo "bench: warning: dovecot.sh no longer raises mail_max_userip_connections (default 10 per user and IP)" >&2
log "source 127.0.0.1:$SRC_PORT, destination 127.0.0.1:$DST_PORT (Dovecot $(dovecot --version | cut -d' ' -f1), mail_max_userip_connections=${conns:-10})"

reset_dst() {
    "$DOVECOT_SH" stop "$DST" >/dev/null
    rm -rf "${DST:?}/mail/$USER_NAME"
    # adduser recreates the home with the ownership Dovecot expects.
    "$DOVECOT_SH" adduser "$DST" "$USER_NAME" "$BENCH_DST_PASSWORD" >/dev/null
    "$DOVECOT_SH" start "$DST" "$DST_PORT" >/dev/null
}

# --- tools ----------------------------------------------------------------------------------
MB_DIR="$WORK/mbsync"
MS_DIR="$WORK/mailshift"

prepare_mbsync() {
    rm -rf "$MB_DIR"
    mkdir -p "$MB_DIR/state"
    # Pull from the source (Far) into the destination (Near). AuthMechs LOGIN: mbsync refuses
    # plaintext LOGIN without TLS unless told. CopyArrivalDate: keep internal dates, as any
    # migration must (mbsync's default is the upload time).
    cat >"$MB_DIR/mbsyncrc" <<EOF
# Written by bench/run.sh for one benchmark run.
IMAPAccount src
Host 127.0.0.1
Port $SRC_PORT
User $USER_NAME
Pass $BENCH_SRC_PASSWORD
SSLType None
AuthMechs LOGIN

IMAPStore src
Account src

IMAPAccount dst
Host 127.0.0.1
Port $TOOL_DST_PORT
User $USER_NAME
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
SyncState $MB_DIR/state/
EOF
    chmod 0600 "$MB_DIR/mbsyncrc"
}

MAILSHIFT_STATUS=""
check_mailshift() {
    if [ ! -x "$MAILSHIFT_BIN" ]; then
        MAILSHIFT_STATUS="mailshift: no binary at $MAILSHIFT_BIN (cargo build --release, or set MAILSHIFT_BIN); skipped"
    elif ! "$MAILSHIFT_BIN" apply --help >/dev/null 2>&1; then
        MAILSHIFT_STATUS="mailshift: apply not available yet"
    fi
}

# A plan mailshift rejects would fail every run the same way: say so once, up front.
validate_plan() {
    prepare_mailshift
    if ! "$MAILSHIFT_BIN" validate "$MS_DIR/plan.yaml" >"$WORK/out/validate.log" 2>&1; then
        echo "bench: mailshift rejects the benchmark plan:" >&2
        cat "$WORK/out/validate.log" >&2
        FAILED=1
        MAILSHIFT_STATUS="mailshift: plan rejected by validate; skipped"
    fi
}

prepare_mailshift() {
    rm -rf "$MS_DIR"
    mkdir -p "$MS_DIR"
    # The state goes beside the plan (.mailshift/state.redb): wiping the directory is a
    # fresh migration.
    cat >"$MS_DIR/plan.yaml" <<EOF
# Written by bench/run.sh for one benchmark run.
version: 1
platforms:
  bench-src: {type: imap, imap: {host: 127.0.0.1, port: $SRC_PORT, security: none}}
  bench-dst: {type: imap, imap: {host: 127.0.0.1, port: $TOOL_DST_PORT, security: none}}
accounts:
  - address: $USER_NAME@example.com
    from: bench-src
    to: bench-dst
    source: {login: $USER_NAME, password: {env: BENCH_SRC_PASSWORD}}
    destination: {login: $USER_NAME, password: {env: BENCH_DST_PASSWORD}}
EOF
}

# The command each tool runs, for the full copy and for the no-op alike.
tool_cmd() {
    case $1 in
    mbsync) CMD=(mbsync -c "$MB_DIR/mbsyncrc" -a) ;;
    dsync)
        # Dovecot's own migration path: the destination's doveadm pulls over IMAP (imapc) and
        # writes the destination's storage directly, not through its IMAP server.
        CMD=(doveadm -c "$DST/dovecot.conf"
            -o imapc_host=127.0.0.1 -o "imapc_port=$SRC_PORT"
            -o "imapc_user=$USER_NAME" -o "imapc_password=$BENCH_SRC_PASSWORD" -o imapc_ssl=no
            backup -R -u "$USER_NAME" imapc:)
        ;;
    mailshift)
        # shellcheck disable=SC2206 # extra arguments are meant to split on spaces
        CMD=("$MAILSHIFT_BIN" apply ${MAILSHIFT_APPLY_ARGS:-} "$MS_DIR/plan.yaml")
        ;;
    esac
}

RESULTS="$WORK/out/results.tsv"
META="$WORK/out/corpus.tsv"
printf 'variant\ttool\trun\tphase\twall_s\tmax_rss_kb\tuser_s\tsys_s\trc\n' >"$RESULTS"
printf 'variant\tmessages\tbytes\tfolders\n' >"$META"

# measure VARIANT TOOL RUN PHASE: runs CMD under /usr/bin/time -v (peak RSS, CPU) inside a
# timeout; wall time from the clock around it, finer than time's 10 ms.
measure() {
    local variant=$1 tool=$2 run=$3 phase=$4 t0 t1 rc tv="$WORK/out/time.txt"
    local logf="$WORK/out/$variant-$tool-$run-$phase.log"
    t0=$(date +%s%N)
    set +e
    /usr/bin/time -v -o "$tv" timeout -k 10 "$TIMEOUT" "${CMD[@]}" </dev/null >"$logf" 2>&1
    rc=$?
    set -e
    t1=$(date +%s%N)
    local wall rss user sys
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
    rss=$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$tv")
    user=$(sed -n 's/^[[:space:]]*User time (seconds): //p' "$tv")
    sys=$(sed -n 's/^[[:space:]]*System time (seconds): //p' "$tv")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$variant" "$tool" "$run" "$phase" "$wall" \
        "${rss:-0}" "${user:-0}" "${sys:-0}" "$rc" >>"$RESULTS"
    if [ "$rc" -ne 0 ]; then
        [ "$rc" -eq 124 ] && echo "bench: $tool $phase timed out after ${TIMEOUT}s" >&2
        echo "bench: $tool $phase failed (exit $rc); last lines of $logf:" >&2
        tail -n 15 "$logf" >&2
        return 1
    fi
    log "  $tool run $run $phase: ${wall}s, peak RSS $((${rss:-0} / 1024)) MB"
}

verify_dst() {
    local variant=$1 tool=$2 run=$3 snap="$WORK/out/$variant-dst.json" args=() cmp=()
    # mbsync inserts an X-TUID header into every message it uploads and drops keywords:
    # compare its copies without that header, and report keyword loss instead of failing.
    if [ "$tool" = mbsync ]; then
        args=(--strip-header X-TUID)
        cmp=(--lossy-keywords)
    fi
    if ! python3 "$HERE/verify.py" snapshot --port "$DST_PORT" --user "$USER_NAME" \
        --password-env BENCH_DST_PASSWORD --out "$snap" "${args[@]}" 2>"$WORK/out/verify.err"; then
        echo "bench: could not read the destination after $tool run $run:" >&2
        tail -n 5 "$WORK/out/verify.err" >&2
        return 1
    fi
    python3 "$HERE/verify.py" compare "$WORK/out/$variant-src.json" "$snap" \
        --label "$tool run $run" "${cmp[@]}" | sed 's/^/bench:   /'
    return "${PIPESTATUS[0]}"
}

# --- the benchmark --------------------------------------------------------------------------
if has_tool mailshift; then
    check_mailshift
    [ -n "$MAILSHIFT_STATUS" ] || validate_plan
    [ -z "$MAILSHIFT_STATUS" ] || log "$MAILSHIFT_STATUS"
fi
# Two cores shared with anything else running make every number here noisy.
LOAD_START=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$LOAD_START" 'BEGIN { exit !(l > 0.5) }'; then
    echo "bench: WARNING: load average is $LOAD_START before starting: other work on this machine will skew the timings" >&2
fi

for variant in "${VARIANTS[@]}"; do
    log "== $variant (scale $SCALE, seed $SEED) =="
    "$DOVECOT_SH" stop "$SRC" >/dev/null
    python3 "$HERE/corpus.py" --home "$SRC/mail/$USER_NAME" --variant "$variant" --seed "$SEED" \
        --scale "$SCALE" --manifest "$WORK/out/$variant-manifest.json" 2>&1 | sed 's/^/bench: /'
    "$DOVECOT_SH" start "$SRC" "$SRC_PORT" >/dev/null
    # Index the source once (and move new/ into cur/) so no tool pays for the first scan.
    doveadm -c "$SRC/dovecot.conf" mailbox status -u "$USER_NAME" 'messages vsize' '*' >/dev/null
    python3 "$HERE/verify.py" snapshot --port "$SRC_PORT" --user "$USER_NAME" \
        --password-env BENCH_SRC_PASSWORD --out "$WORK/out/$variant-src.json" 2>&1 | sed 's/^/bench: source /'
    python3 - "$WORK/out/$variant-src.json" "$variant" >>"$META" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]}\t{s['messages']}\t{s['bytes']}\t{len(s['folders'])}")
EOF

    for run in $(seq 1 "$RUNS"); do
        for tool in "${TOOL_LIST[@]}"; do
            if [ "$tool" = mailshift ] && [ -n "$MAILSHIFT_STATUS" ]; then continue; fi
            reset_dst
            case $tool in
            mbsync) prepare_mbsync ;;
            mailshift) prepare_mailshift ;;
            esac
            tool_cmd "$tool"
            if ! measure "$variant" "$tool" "$run" full; then FAILED=1; continue; fi
            if ! measure "$variant" "$tool" "$run" noop; then FAILED=1; continue; fi
            # After the no-op: one check covers the copy and proves the re-sync added nothing.
            verify_dst "$variant" "$tool" "$run" || FAILED=1
        done
    done
    # Every tool only reads the source: prove it (no \Seen set by a non-PEEK fetch, etc.).
    python3 "$HERE/verify.py" snapshot --port "$SRC_PORT" --user "$USER_NAME" \
        --password-env BENCH_SRC_PASSWORD --out "$WORK/out/$variant-src-after.json" 2>/dev/null
    python3 "$HERE/verify.py" compare "$WORK/out/$variant-src.json" "$WORK/out/$variant-src-after.json" \
        --label "source unchanged" | sed 's/^/bench: /'
    [ "${PIPESTATUS[0]}" -eq 0 ] || FAILED=1
done

# --- report ---------------------------------------------------------------------------------
{
    echo "# $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
    echo "# Dovecot $(dovecot --version | cut -d' ' -f1); $(mbsync --version 2>/dev/null || echo 'mbsync absent'); mail on $STORAGE"
    echo "# 1-min load average: $LOAD_START at start, $(cut -d' ' -f1 /proc/loadavg) at end"
    echo "# $COMMAND_LINE"
    [ -z "$MAILSHIFT_STATUS" ] || echo "# $MAILSHIFT_STATUS"
    echo
    python3 "$HERE/report.py" "$RESULTS" "$META"
} | tee "$WORK/out/report.txt"

if [ "$FAILED" -ne 0 ]; then
    echo "bench: FAILED: a tool failed or a copy did not verify (logs in $WORK/out; rerun with --keep to keep them)" >&2
    exit 1
fi
