#!/usr/bin/env bash
# Contacts/calendars benchmark: copies one generated account (contacts, events, tasks) from a local
# Radicale server to a fresh destination with mailshift and with vdirsyncer, in the same run, and
# times each tool's full copy and its second, no-op run. Prints objects/s per tool, the ratio
# mailshift/vdirsyncer, the PUTs the no-op sent, and checks both destinations hold the objects.
#
#   bench/dav.sh [--small] [--dest radicale|xandikos] [--tools mailshift,vdirsyncer]
#                [--contacts N --events N --tasks N] [--split N] [--seed N] [--timeout S]
#                [--corpus DIR] [--workdir DIR] [--keep]
#
# Default size: 10,000 contacts, 5,000 events, 1,000 tasks; --small: a tenth. Collections hold at
# most --split objects (default 500): Radicale 3.1.8 checks a new object's UID against its whole
# collection on every PUT, so writing into one collection slows down linearly with its size
# (42 PUT/s empty, 10 PUT/s at 1,000 objects on the dev VM) and one 10,000-card address book would
# take hours whatever the client. mailshift: MAILSHIFT_BIN (default target/release/mailshift).
# Ports: BENCH_DAV_SRC_PORT, BENCH_DAV_DST_PORT (25232, 25233).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

CONTACTS=10000 EVENTS=5000 TASKS=1000 SPLIT=500 SEED=11 TIMEOUT=3600
DEST=radicale TOOLS=mailshift,vdirsyncer WORK="" KEEP="" CORPUS=""
MAILSHIFT_BIN=${MAILSHIFT_BIN:-$ROOT/target/release/mailshift}
SRC_PORT=${BENCH_DAV_SRC_PORT:-25232}
DST_PORT=${BENCH_DAV_DST_PORT:-25233}
USER_ADDR=alice@example.com

die() { echo "bench/dav: $*" >&2; exit 1; }
log() { echo "# $*"; }
while [ $# -gt 0 ]; do
    case $1 in
        --small) CONTACTS=1000 EVENTS=500 TASKS=100 ;;
        --contacts) CONTACTS=$2; shift ;;
        --events) EVENTS=$2; shift ;;
        --tasks) TASKS=$2; shift ;;
        --split) SPLIT=$2; shift ;;
        --seed) SEED=$2; shift ;;
        --dest) DEST=$2; shift ;;
        --tools) TOOLS=$2; shift ;;
        --timeout) TIMEOUT=$2; shift ;;
        --workdir) WORK=$2; shift ;;
        --corpus) CORPUS=$(cd "$2" && pwd); shift ;;
        --keep) KEEP=1 ;;
        -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
case $DEST in radicale | xandikos) ;; *) die "--dest is radicale or xandikos" ;; esac
for t in ${TOOLS//,/ }; do
    case $t in mailshift | vdirsyncer) ;; *) die "unknown tool '$t'" ;; esac
done
has_tool() { [[ ",$TOOLS," == *",$1,"* ]]; }

if has_tool vdirsyncer; then
    scripts/install-deps.sh --bench >/dev/null
else
    scripts/install-deps.sh >/dev/null
fi

if [ -z "$WORK" ]; then
    # RAM, as bench/run.sh does for mail: disk timings on shared VMs drift too much.
    base=/tmp
    [ -d /dev/shm ] && [ -w /dev/shm ] && base=/dev/shm
    WORK=$(mktemp -d "$base/mailshift-dav-bench.XXXXXX")
fi
mkdir -p "$WORK/out"
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -z "$KEEP" ] && [ -z "${FAILED:-}" ]; then rm -rf "$WORK"; else echo "# kept $WORK"; fi
}
trap cleanup EXIT

wait_port() {
    local port=$1 i
    for i in $(seq 1 100); do
        if curl -s -o /dev/null "http://127.0.0.1:$port/"; then return 0; fi
        sleep 0.1
    done
    die "no server on port $port (see $WORK/out/*.log)"
}

# start_server KIND DIR PORT: a private server, its storage under DIR, its log in WORK/out.
SERVER_PID=""
start_server() {
    local kind=$1 dir=$2 port=$3 name
    name=$(basename "$dir")
    mkdir -p "$dir"
    if [ "$kind" = radicale ]; then
        # Info level logs one line per request: the no-op's PUTs are counted from it.
        # Radicale serves at most 8 connections (then 5 wait in the listen queue) by default;
        # vdirsyncer opens up to 16 to a host. 64 serves every client here. (This alone did
        # not stop vdirsyncer's "Server disconnected": see the source's restart below.)
        radicale --config "" --server-hosts "127.0.0.1:$port" --storage-filesystem-folder "$dir" \
            --auth-type none --server-max-connections 64 --logging-level info \
            >>"$WORK/out/$name.log" 2>&1 &
    else
        xandikos --defaults -d "$dir" -l 127.0.0.1 -p "$port" >>"$WORK/out/$name.log" 2>&1 &
    fi
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    wait_port "$port"
}
stop_server() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# Where the account's collections live: Radicale's principal is the login, Xandikos has one
# fixed principal with calendars and address books in two homes.
dst_homes() {
    if [ "$DEST" = radicale ]; then
        echo "http://127.0.0.1:$DST_PORT/$USER_ADDR/"
    else
        echo "http://127.0.0.1:$DST_PORT/user/contacts/ http://127.0.0.1:$DST_PORT/user/calendars/"
    fi
}
count_objects() { # URL...: total objects over the collections under each URL
    local total=0 u n
    for u in "$@"; do
        n=$(python3 bench/dav_corpus.py --count "$u" --user "$USER_ADDR" | awk '{s += $2} END {print s + 0}')
        total=$((total + n))
    done
    echo "$total"
}
puts_in_log() { grep -c "PUT request for" "$1" 2>/dev/null || true; }

echo "# bench/dav.sh $(date -u +%FT%TZ) on $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)"
echo "# radicale $(radicale --version), $(xandikos --version 2>/dev/null | awk '{print "xandikos " $NF}')," \
    "$(vdirsyncer --version 2>/dev/null || echo 'no vdirsyncer')"
[ -n "$CORPUS" ] ||
    log "corpus: $CONTACTS contacts, $EVENTS events, $TASKS tasks, at most $SPLIT per collection, seed $SEED"
log "destination $DEST; work $WORK"

if [ -n "$CORPUS" ]; then
    # A given corpus, e.g. tests/fixtures/dav: one directory per collection (bad/, files/ skipped).
    ln -s "$CORPUS" "$WORK/corpus"
    OBJECTS=$(find "$CORPUS"/ -mindepth 2 -maxdepth 2 \( -name '*.vcf' -o -name '*.ics' \) \
        -not -path '*/bad/*' -not -path '*/files/*' | wc -l)
    log "corpus: $OBJECTS objects from $CORPUS"
else
    python3 bench/dav_corpus.py --contacts "$CONTACTS" --events "$EVENTS" --tasks "$TASKS" \
        --split "$SPLIT" --seed "$SEED" --out "$WORK/corpus" 2>&1 | sed 's/^/# /'
    OBJECTS=$((CONTACTS + EVENTS + TASKS))
fi
python3 bench/dav_corpus.py --out "$WORK/corpus" --radicale-storage "$WORK/src" --user "$USER_ADDR" 2>&1 | sed 's/^/# /'
start_server radicale "$WORK/src" "$SRC_PORT"
SRC_PID=$SERVER_PID
SRC_URL="http://127.0.0.1:$SRC_PORT/$USER_ADDR/"
# The first listing makes Radicale build its item cache: no tool should pay for that.
t0=$(date +%s%N)
SRC_COUNT=$(count_objects "$SRC_URL")
log "source: $SRC_COUNT objects on Radicale :$SRC_PORT (cache built in $(( ($(date +%s%N) - t0) / 1000000 )) ms)"
[ "$SRC_COUNT" -eq "$OBJECTS" ] || die "the source holds $SRC_COUNT objects, expected $OBJECTS"
find "$WORK/src" -type f -not -path '*/.Radicale.cache/*' -printf '%P %s\n' | sort >"$WORK/out/src-before.txt"
stop_server "$SRC_PID"

# ---- mailshift ---------------------------------------------------------------------------------
MAILSHIFT_STATUS=""
if has_tool mailshift; then
    if [ ! -x "$MAILSHIFT_BIN" ]; then
        MAILSHIFT_STATUS="no binary at $MAILSHIFT_BIN (cargo build --release, or set MAILSHIFT_BIN)"
    fi
    mkdir -p "$WORK/mailshift"
    cat >"$WORK/mailshift/plan.yaml" <<EOF
# Generated by bench/dav.sh: one account's contacts, calendars and tasks, DAV to DAV.
version: 1
platforms:
  old: {type: imap, dav: {url: "http://127.0.0.1:$SRC_PORT/"}}
  new: {type: imap, dav: {url: "http://127.0.0.1:$DST_PORT/"}}
accounts:
  - address: $USER_ADDR
    from: old
    to: new
    content: [contacts, calendars, tasks]
    source: {password: {env: BENCH_SRC_PASSWORD}}
    destination: {password: {env: BENCH_DST_PASSWORD}}
EOF
    export BENCH_SRC_PASSWORD=bench-src BENCH_DST_PASSWORD=bench-dst
    if [ -z "$MAILSHIFT_STATUS" ] &&
        ! "$MAILSHIFT_BIN" validate "$WORK/mailshift/plan.yaml" >"$WORK/out/mailshift-validate.log" 2>&1; then
        MAILSHIFT_STATUS="plan rejected by validate: $(head -3 "$WORK/out/mailshift-validate.log" | tr '\n' ' ')"
    fi
    [ -z "$MAILSHIFT_STATUS" ] || log "mailshift skipped: $MAILSHIFT_STATUS"
fi

# ---- vdirsyncer --------------------------------------------------------------------------------
write_vdirsyncer_config() {
    local dir=$1 dst_url="http://127.0.0.1:$DST_PORT/"
    mkdir -p "$dir/status"
    # One-way: the source is read-only and wins every conflict; collections are those of the
    # source ("from a"), created on the destination by `discover`.
    cat >"$dir/config" <<EOF
[general]
status_path = "$dir/status/"

[pair contacts]
a = "contacts_src"
b = "contacts_dst"
collections = ["from a"]
conflict_resolution = "a wins"

[storage contacts_src]
type = "carddav"
url = "http://127.0.0.1:$SRC_PORT/"
username = "$USER_ADDR"
password = "bench-src"
read_only = true

[storage contacts_dst]
type = "carddav"
url = "$dst_url"
username = "$USER_ADDR"
password = "bench-dst"

[pair calendars]
a = "calendars_src"
b = "calendars_dst"
collections = ["from a"]
conflict_resolution = "a wins"

[storage calendars_src]
type = "caldav"
url = "http://127.0.0.1:$SRC_PORT/"
username = "$USER_ADDR"
password = "bench-src"
read_only = true

[storage calendars_dst]
type = "caldav"
url = "$dst_url"
username = "$USER_ADDR"
password = "bench-dst"
EOF
}

# run_tool TOOL PHASE: runs the tool's command under /usr/bin/time -v; sets SECS, RSS_MB and
# CPU (the tool's own user+sys seconds: the servers' work is not in it).
run_tool() {
    local tool=$1 phase=$2 logf tv t0 t1 rc
    logf="$WORK/out/$tool-$phase.log"
    tv="$WORK/out/$tool-$phase.time"
    case $tool in
        mailshift) CMD=("$MAILSHIFT_BIN" apply ${MAILSHIFT_APPLY_ARGS:-} "$WORK/mailshift/plan.yaml") ;;
        vdirsyncer) CMD=(vdirsyncer -c "$WORK/vdirsyncer/config" sync) ;;
    esac
    t0=$(date +%s%N)
    set +e
    /usr/bin/time -v -o "$tv" timeout -k 10 "$TIMEOUT" "${CMD[@]}" </dev/null >"$logf" 2>&1
    rc=$?
    set -e
    t1=$(date +%s%N)
    SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", (b - a) / 1e9}')
    RSS_MB=$(awk -F': ' '/Maximum resident/ {printf "%.0f", $2 / 1024}' "$tv")
    CPU=$(awk -F': ' '/User time|System time/ {s += $2} END {printf "%.1f", s}' "$tv")
    if [ "$rc" -ne 0 ]; then
        echo "bench/dav: $tool $phase failed (exit $rc); last lines of $logf:" >&2
        tail -5 "$logf" >&2
        return 1
    fi
}

RESULTS=()
declare -A FULL_SECS
for tool in ${TOOLS//,/ }; do
    if [ "$tool" = mailshift ] && [ -n "$MAILSHIFT_STATUS" ]; then continue; fi
    dst_dir="$WORK/dst-$tool"
    rm -rf "$dst_dir"
    # Each tool meets a freshly started source (its item cache kept on disk): nothing one tool
    # left in the server process (connections, threads) weighs on the next. With one source
    # process for both, vdirsyncer after mailshift got "Server disconnected" from it in both
    # default-size runs (cause not found); run alone first, it did not.
    start_server radicale "$WORK/src" "$SRC_PORT"
    SRC_PID=$SERVER_PID
    start_server "$DEST" "$dst_dir" "$DST_PORT"
    DST_PID=$SERVER_PID
    if [ "$tool" = vdirsyncer ]; then
        write_vdirsyncer_config "$WORK/vdirsyncer"
        # discover asks before creating each collection on the destination: say yes (from a
        # process substitution: `yes |` would fail the pipeline with SIGPIPE under pipefail).
        vdirsyncer -c "$WORK/vdirsyncer/config" discover < <(yes) >"$WORK/out/vdirsyncer-discover.log" 2>&1 ||
            { FAILED=1; tail -5 "$WORK/out/vdirsyncer-discover.log" >&2; die "vdirsyncer discover failed"; }
    else
        rm -rf "$WORK/mailshift/.mailshift"
    fi
    ok=1
    run_tool "$tool" full || ok=""
    full=$SECS full_rss=$RSS_MB full_cpu=$CPU
    puts_before=$(puts_in_log "$WORK/out/$(basename "$dst_dir").log")
    noop=- noop_puts=-
    if [ -n "$ok" ] && run_tool "$tool" noop; then
        noop=$SECS
        if [ "$DEST" = radicale ]; then
            noop_puts=$(($(puts_in_log "$WORK/out/$(basename "$dst_dir").log") - puts_before))
        fi
    else
        ok=""
    fi
    # shellcheck disable=SC2046
    dst_count=$(count_objects $(dst_homes))
    stop_server "$DST_PID"
    stop_server "$SRC_PID"
    rate=$(awk -v n="$dst_count" -v s="$full" 'BEGIN {printf "%.1f", (s > 0 ? n / s : 0)}')
    verdict=ok
    if [ -z "$ok" ]; then
        verdict=FAILED
    elif [ "$dst_count" -ne "$SRC_COUNT" ]; then
        verdict="COUNT MISMATCH ($dst_count of $SRC_COUNT)"
    fi
    [ "$verdict" = ok ] || FAILED=1
    FULL_SECS[$tool]=$full
    RESULTS+=("$(printf '%-10s %8s %8s %9s %7s %6s %8s %9s  %s' "$tool" "$dst_count" "$full" "$rate" \
        "$full_rss" "$full_cpu" "$noop" "$noop_puts" "$verdict")")
done

# Every tool must only have read the source.
find "$WORK/src" -type f -not -path '*/.Radicale.cache/*' -printf '%P %s\n' | sort >"$WORK/out/src-after.txt"
if ! cmp -s "$WORK/out/src-before.txt" "$WORK/out/src-after.txt"; then
    echo "bench/dav: the source changed during the run" >&2
    FAILED=1
fi

echo
printf '%-10s %8s %8s %9s %7s %6s %8s %9s  %s\n' tool objects "full s" "objects/s" "RSS MB" "CPU s" "no-op s" "no-op PUT" check
printf '%s\n' "${RESULTS[@]}"
if [ -n "${FULL_SECS[mailshift]:-}" ] && [ -n "${FULL_SECS[vdirsyncer]:-}" ]; then
    awk -v m="${FULL_SECS[mailshift]}" -v v="${FULL_SECS[vdirsyncer]}" \
        'BEGIN {printf "ratio mailshift/vdirsyncer (full copy time): %.2f  (objects/s: %.2fx)\n", m / v, v / m}'
fi
[ -z "$MAILSHIFT_STATUS" ] || echo "# mailshift: $MAILSHIFT_STATUS"
echo "# finished $(date -u +%FT%TZ), load $(cut -d' ' -f1 /proc/loadavg)"
[ -z "${FAILED:-}" ] || exit 1
