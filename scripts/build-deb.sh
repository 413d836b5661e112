#!/usr/bin/env bash
# Builds mailshift's Debian package with cargo-deb (its metadata: [package.metadata.deb] in
# Cargo.toml) into target/debian/, and prints the .deb's path on the last line.
#
#     scripts/build-deb.sh            # release build: the package to ship
#     scripts/build-deb.sh --debug    # the test build's debug binary (CI's install check; cargo-deb
#                                     # 3.8 warns that it is meant for releases, and packages it)
#
# cargo-deb comes from crates.io, pinned: `cargo install --locked cargo-deb --version X`
# (about 2.5 minutes of CPU on 2 cores, once per machine). The manual pages and completions
# are written by the binary itself (`mailshift man`, `mailshift completions`), so they match it.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0
profile=release
case "${1:-}" in
    "") ;;
    --debug) profile=dev ;;
    *) echo "build-deb: unknown option $1 (known: --debug)" >&2; exit 2 ;;
esac

if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $CARGO_DEB_VERSION" ]; then
    echo "build-deb: installing cargo-deb $CARGO_DEB_VERSION from crates.io" >&2
    cargo install --locked cargo-deb --version "$CARGO_DEB_VERSION"
fi

if [ "$profile" = dev ]; then
    # The debug binary exactly as the test build makes it (the tests' features unified in), so
    # CI compiles it once for the tests and the package; a no-op when the tests are built.
    cargo test --locked --workspace --no-run
else
    cargo build --locked --release --bin mailshift
fi
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
if [ "$profile" = dev ]; then bin="$target_dir/debug/mailshift"; else bin="$target_dir/release/mailshift"; fi

# The generated assets, where [package.metadata.deb] looks for them (paths in the crate).
assets=target/deb-assets
rm -rf "$assets"
mkdir -p "$assets/completions"
"$bin" man --dir "$assets/man"
"$bin" completions bash >"$assets/completions/mailshift.bash"
"$bin" completions zsh >"$assets/completions/_mailshift"
"$bin" completions fish >"$assets/completions/mailshift.fish"

# --no-build: the binary above is the one packaged (cargo-deb finds it by profile); cargo-deb
# prints the .deb's path on stdout.
deb=$(cargo deb --no-build --profile "$profile")
[ -f "$deb" ] || { echo "build-deb: cargo deb printed no .deb path (${deb:-nothing})" >&2; exit 1; }
echo "$deb"
