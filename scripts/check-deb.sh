#!/usr/bin/env bash
# CI's check of the Debian package: builds it from the debug build (scripts/build-deb.sh
# --debug), installs it with dpkg -i, and checks what it installed: the binary's version, the
# system user, the systemd unit (systemd-analyze verify, where systemd-analyze exists), the
# manual page (man -l renders it) and the completions; then purges it. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "check-deb: $*" >&2; exit 1; }

deb=$(scripts/build-deb.sh --debug | tail -n 1)
version=$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "mailshift"))')
echo "check-deb: installing $deb"
trap 'dpkg --purge mailshift >/dev/null 2>&1 || true' EXIT
dpkg -i "$deb"

[ "$(/usr/bin/mailshift --version)" = "mailshift $version" ] \
    || fail "/usr/bin/mailshift --version says '$(/usr/bin/mailshift --version)', not 'mailshift $version'"
getent passwd mailshift >/dev/null || fail "no mailshift user after install"
[ "$(stat -c %a /etc/mailshift)" = 700 ] || fail "/etc/mailshift is not mode 0700"

unit=$(dpkg -L mailshift | grep '/systemd/system/mailshift\.service$') || fail "the package has no mailshift.service"
if command -v systemd-analyze >/dev/null 2>&1; then
    # --man=no: the unit's Documentation= is a URL, not a page to look up offline.
    systemd-analyze verify --man=no "$unit" || fail "systemd-analyze verify $unit"
    echo "check-deb: systemd-analyze verify $unit: ok"
else
    echo "check-deb: no systemd-analyze here: the unit is not verified"
fi

page=$(dpkg -L mailshift | grep '/man1/mailshift\.1\.gz$') || fail "the package has no mailshift.1.gz"
rendered=$(MANWIDTH=100 man -l "$page" 2>&1) || fail "man -l $page: $rendered"
grep -q 'mailshift' <<<"$rendered" || fail "man -l $page rendered no text"
# A page per subcommand, each rendering too.
for sub in plan apply watch; do
    man -l "$(dirname "$page")/mailshift-$sub.1.gz" >/dev/null 2>&1 || fail "no mailshift-$sub.1.gz"
done
for f in /usr/share/bash-completion/completions/mailshift /usr/share/zsh/vendor-completions/_mailshift \
    /usr/share/fish/vendor_completions.d/mailshift.fish; do
    grep -q mailshift "$f" || fail "completion $f is missing or empty"
done
bash -n /usr/share/bash-completion/completions/mailshift || fail "the bash completion does not parse"

dpkg --purge mailshift
! getent passwd mailshift >/dev/null || fail "the mailshift user outlived the purge"
trap - EXIT
echo "check-deb: $deb installs, runs, and purges cleanly"
