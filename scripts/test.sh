#!/usr/bin/env bash
# The test command (README, CI): installs what the tests need (Dovecot, and Chromium for the
# status page test), then checks formatting, lints and runs every test against real local
# Dovecot servers.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh --browser
cargo fmt --all -- --check
cargo clippy --locked --all-targets --workspace -- -D warnings
cargo test --locked --workspace
