#!/usr/bin/env bash
# Installs the system packages mailshift's tests, demo and benchmarks need (Dovecot IMAP and
# POP3 servers, Radicale and Xandikos CardDAV/CalDAV servers) on a fresh Debian/Ubuntu machine.
# Safe to re-run: does nothing when all is present.
# `--browser` adds headless Chromium (and a font for its screenshots): the test of watch mode's
# status page runs it, and fails under CI without it.
# `--bench` adds what only the benchmarks compare against: vdirsyncer (bench/dav.sh).
set -euo pipefail

# dovecot-pop3d: the POP3 source tests (tests/pop3.rs) run Dovecot's POP3 server.
# dovecot-managesieved, dovecot-sieve: the Sieve tests (tests/sieve.rs) store inbox rules over
# ManageSieve (RFC 5804) and deliver through dovecot-lda with the Sieve plugin.
# python3-aiosmtpd: the SMTP sink that receives the notifications e-mailed in tests/notify.rs
# and in the demo (scripts/demo.sh).
# bind9, bind9-utils: the DNS tests (tests/dns.rs) run a BIND primary and secondary
# (`named`, driven with `rndc`) for RFC 2136 updates and the propagation check.
# man-db, python3-venv: the deployment checks (scripts/check-deb.sh renders the package's manual
# page with `man -l`; kubernetes-validate, below, lives in a venv).
PACKAGES=(dovecot-core dovecot-imapd dovecot-pop3d dovecot-managesieved dovecot-sieve radicale xandikos python3-aiosmtpd bind9 bind9-utils man-db python3-venv)
for arg in "$@"; do
    case "$arg" in
        --browser) PACKAGES+=(chromium fonts-dejavu-core) ;;
        --bench) PACKAGES+=(vdirsyncer) ;;
        *) echo "install-deps: unknown option $arg (known: --browser, --bench)" >&2; exit 2 ;;
    esac
done

# kubernetes-validate from PyPI (it carries the Kubernetes JSON schemas, so it checks offline):
# tests/deploy.rs validates examples/deploy/kubernetes with it. In a venv of its own (Debian's
# pip refuses installs into the system Python), where the test looks: $MAILSHIFT_TOOLS, else
# ~/.cache/mailshift-tools. Run last, once python3-venv is there.
KUBERNETES_VALIDATE_VERSION=1.37.0
install_tools() {
    local tools="${MAILSHIFT_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/mailshift-tools}"
    if [ "$("$tools/venv/bin/kubernetes-validate" --version 2>/dev/null)" = "$KUBERNETES_VALIDATE_VERSION" ]; then
        echo "install-deps: kubernetes-validate $KUBERNETES_VALIDATE_VERSION already in $tools/venv"
        return
    fi
    echo "install-deps: installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION in $tools/venv"
    python3 -m venv "$tools/venv"
    "$tools/venv/bin/pip" install -q "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
    "$tools/venv/bin/kubernetes-validate" --version >/dev/null
}

missing=()
for pkg in "${PACKAGES[@]}"; do
    # `dpkg -s` alone says "installed" for half-configured or removed-but-config packages;
    # the Status field is what tells us the package is usable.
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-deps: already installed: ${PACKAGES[*]}"
    install_tools
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
    if ! sudo -n true 2>/dev/null; then
        # Non-interactive sudo failed: let sudo prompt once rather than fail outright.
        SUDO=(sudo)
    fi
else
    cat >&2 <<EOF
install-deps: missing packages: ${missing[*]}
Installing them needs root and sudo is not available. Run as root:
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ${missing[*]}
EOF
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-deps: installing ${missing[*]}"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
# The package's own service is irrelevant (no systemd here; tests start private instances),
# and on container images without init, policy-rc.d may refuse to start it: that is fine.
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    --no-install-recommends "${missing[@]}"

if [ ! -x /usr/sbin/dovecot ]; then
    echo "install-deps: /usr/sbin/dovecot missing after install" >&2
    exit 1
fi
echo "install-deps: $(/usr/sbin/dovecot --version)"
if [ ! -x /usr/sbin/named ] || [ ! -x /usr/sbin/rndc ]; then
    echo "install-deps: /usr/sbin/named or /usr/sbin/rndc missing after install" >&2
    exit 1
fi
for tool in radicale xandikos; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "install-deps: $tool missing after install" >&2
        exit 1
    fi
done
echo "install-deps: radicale $(radicale --version 2>/dev/null), xandikos $(xandikos --version 2>/dev/null | awk '{print $NF}')"
if [[ " ${PACKAGES[*]} " == *" vdirsyncer "* ]]; then
    if ! command -v vdirsyncer >/dev/null 2>&1; then
        echo "install-deps: vdirsyncer missing after install" >&2
        exit 1
    fi
    echo "install-deps: $(vdirsyncer --version 2>/dev/null)"
fi
if [[ " ${PACKAGES[*]} " == *" chromium "* ]]; then
    if ! command -v chromium >/dev/null 2>&1; then
        echo "install-deps: chromium missing after install" >&2
        exit 1
    fi
    echo "install-deps: $(chromium --version 2>/dev/null)"
fi
install_tools
