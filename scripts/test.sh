#!/usr/bin/env bash
# The test command (README, CI): installs what the tests need (Dovecot, Radicale and Xandikos,
# and Chromium for the status page test), then checks formatting, lints and runs every test
# against real local servers; builds, installs and checks the Debian package.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh --browser
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
# The Debian package builds from the debug build, installs with dpkg -i and runs (root only:
# CI is root; elsewhere it says it was skipped). Before the tests, so their summary ends the log.
cargo test --locked --workspace --no-run
if [ "$(id -u)" -eq 0 ]; then
    scripts/check-deb.sh
elif [ -n "${CI:-}" ]; then
    echo "test: the Debian package check needs root under CI" >&2
    exit 1
else
    echo "test: SKIPPED the Debian package check (scripts/check-deb.sh needs root for dpkg -i)"
fi
cargo test --locked --workspace
