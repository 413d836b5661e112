#!/usr/bin/env bash
# The aggregated status of N shards over a generated plan of M accounts (issue 15's target:
# 10 shards of a 100,000-account plan merged in under 1 s): each shard's /api/status served as
# a canned document (bench/status_docs.py: what N watches would serve, every account synced)
# by a tiny local HTTP server per shard, then `mailshift status --from` their N URLs timed,
# as JSON and as text. Usage: bench/status_scale.sh [--accounts M] [--shards N] [--runs R]
# [--bin PATH]  (default: 100000, 10, 5, target/release/mailshift)
set -euo pipefail
cd "$(dirname "$0")/.."
accounts=100000 shards=10 runs=5 bin=target/release/mailshift
while [ $# -gt 0 ]; do
  case "$1" in
    --accounts) accounts=$2; shift 2 ;;
    --shards) shards=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ -x "$bin" ] || { echo "no $bin: cargo build --release first (or give --bin)" >&2; exit 2; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
python3 bench/status_docs.py "$accounts" "$shards" "$work"
echo "documents: $(du -sh "$work" | cut -f1) for $accounts accounts in $shards shards"
urls=()
base=$((20000 + RANDOM % 20000))
for ((i = 0; i < shards; i++)); do
  port=$((base + i))
  python3 -m http.server "$port" --bind 127.0.0.1 --directory "$work/shard-$i" >/dev/null 2>&1 &
  pids+=($!)
  urls+=("http://127.0.0.1:$port")
done
for u in "${urls[@]}"; do
  for _ in $(seq 100); do curl -sf -o /dev/null "$u/api/status" && break; sleep 0.05; done
done
measure() {
  local label=$1; shift
  local times=()
  for ((r = 0; r < runs; r++)); do
    local start end
    start=$(date +%s.%N)
    "$bin" status --from "${urls[@]}" "$@" >"$work/out" || { echo "status --from failed:"; tail -5 "$work/out"; exit 1; }
    end=$(date +%s.%N)
    times+=("$(echo "$end - $start" | bc)")
  done
  local sorted
  sorted=$(printf '%s\n' "${times[@]}" | sort -n)
  echo "$label: median $(echo "$sorted" | sed -n "$(((runs + 1) / 2))p") s (min $(echo "$sorted" | head -1), max $(echo "$sorted" | tail -1)) over $runs runs"
}
measure "status --from, $shards shards, $accounts accounts, JSON" --json
python3 -c "import json,sys; d=json.load(open('$work/out')); assert d['summary']['accounts']==$accounts, d['summary']; assert 'problems' not in d, d['problems']; print('merged:', d['summary']['accounts'], 'accounts,', d['summary']['messages_migrated'], 'messages')"
measure "status --from, $shards shards, $accounts accounts, text"
grep -c '@example.com  1/1 steps done' "$work/out" | sed 's/^/text lines of accounts: /'
