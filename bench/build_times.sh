#!/usr/bin/env bash
# Build times of two commits of mailshift, side by side: a clean `cargo build` (dev profile),
# then an edit of one file of the CLI, of the mail engine and of the plan code, each followed
# by `cargo build` and `cargo test --no-run` (what a developer waits for). Each commit builds
# in its own worktree and target directory, so the two never share artifacts.
#
#   bench/build_times.sh BEFORE_REV AFTER_REV        (run on a quiet machine; ~15 min)
#   (a revision given as - is skipped: to time one side again)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${BUILD_TIMES_DIR:-/tmp/mailshift-build-times}
mkdir -p "$work"

# The first existing path of a list (files moved between the two commits).
first() { for p in "$@"; do [ -e "$p" ] && { echo "$p"; return; }; done; echo "none of: $*" >&2; exit 1; }
secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }'; }

for label in before after; do
  rev=$1; [ "$label" = after ] && rev=$2
  [ "$rev" = - ] && continue
  dir="$work/$label"
  rm -rf "$dir" "$work/$label-target"; git -C "$repo" worktree prune
  git -C "$repo" worktree add -q --detach "$dir" "$rev"
  cd "$dir"
  export CARGO_TARGET_DIR="$work/$label-target"
  tests="--workspace"; grep -q '^\[workspace\]' Cargo.toml || tests=""
  cargo fetch --locked -q
  clean=$(secs cargo build --locked)
  cargo test --locked $tests --no-run >/dev/null 2>&1
  row="$label ($(git rev-parse --short HEAD)): clean build ${clean}s"
  for f in "$(first src/cli/plan.rs)" \
           "$(first crates/mailshift-imap/src/copy.rs src/transfer/imap/copy.rs)" \
           "$(first crates/mailshift-core/src/plan/validate.rs src/plan/validate.rs)"; do
    echo "// edited to time an incremental build" >> "$f"
    b=$(secs cargo build --locked)
    echo "// edited again" >> "$f"
    t=$(secs cargo test --locked $tests --no-run)
    row="$row; edit $f: build ${b}s, tests ${t}s"
  done
  echo "$row"
  cd "$repo"
  git worktree remove --force "$dir"
done
