#!/usr/bin/env bash
# The test command (README, CI): installs what the tests need (Dovecot, Radicale and Xandikos,
# and Chromium for the status page test), then checks formatting, lints and runs every test
# against real local servers.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh --browser
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo test --locked --workspace
