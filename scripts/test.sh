#!/usr/bin/env bash
# The test command (README, CI): installs what the tests need, then checks formatting, lints
# and runs every test against real local Dovecot servers.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked
