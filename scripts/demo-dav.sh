#!/usr/bin/env bash
# The contacts and calendars demo: start two local CardDAV/CalDAV servers (Radicale) as the "old"
# and "new" platforms, put alice's address books and calendars (tests/fixtures/dav/: vCard 3.0
# and 4.0 with photos and groups, a recurring event with moved instances, an Exchange event in a
# Windows time zone, a meeting with attendees, tasks) on the old one, then run the job: validate,
# plan, apply, verify, an edit on the old server and an apply that copies only that, and an
# apply that writes nothing at all (the new server's log counts its PUTs).
# scripts/demo.sh runs it after the mail demo; alone: scripts/demo-dav.sh. KEEP=1 keeps the
# servers' directory; MAILSHIFT_BIN runs another binary.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${MAILSHIFT_DEMO_BUILT:-}" ]; then
    scripts/install-deps.sh
    cargo build --locked --quiet --workspace
fi
MS=${MAILSHIFT_BIN:-$PWD/target/debug/mailshift}
OLD_PORT=${DEMO_DAV_OLD_PORT:-10232}
NEW_PORT=${DEMO_DAV_NEW_PORT:-10233}

WORK=$(mktemp -d /tmp/mailshift-demo-dav.XXXXXX)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "${KEEP:-}" ]; then echo "(kept $WORK)"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

start_radicale() { # NAME PORT
    mkdir -p "$WORK/$1"
    # auth none: any login and password is accepted, and the login is the principal, so alice's
    # collections live under /alice@example.com/. Info level logs each request (PUTs counted below).
    radicale --config "" --server-hosts "127.0.0.1:$2" --storage-filesystem-folder "$WORK/$1/storage" \
        --auth-type none --logging-level info >"$WORK/$1/radicale.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 100); do
        curl -s -o /dev/null "http://127.0.0.1:$2/" && return 0
        sleep 0.1
    done
    echo "demo-dav: Radicale did not start on port $2:" >&2
    cat "$WORK/$1/radicale.log" >&2
    exit 1
}
puts() { grep -c "PUT request for" "$WORK/$1/radicale.log" || true; }
show() { # NAME PORT: each collection with its number of objects
    python3 bench/dav_corpus.py --count "http://127.0.0.1:$2/alice@example.com/" --password x |
        sed "s/^/   $1: /"
}

echo "== Starting two local CardDAV/CalDAV servers (Radicale $(radicale --version)) on 127.0.0.1:$OLD_PORT and :$NEW_PORT"
start_radicale old "$OLD_PORT"
start_radicale new "$NEW_PORT"
export ALICE_OLD=old-secret ALICE_NEW=new-secret

echo "== Filling alice's old address books and calendars from tests/fixtures/dav/"
python3 bench/dav_corpus.py --out tests/fixtures/dav --upload "http://127.0.0.1:$OLD_PORT/alice@example.com/" \
    --password "$ALICE_OLD" 2>&1 | sed 's/^dav_corpus: /   /'
show old "$OLD_PORT"

PLAN="$WORK/plan.yaml"
cat >"$PLAN" <<EOF
# alice's contacts, calendars and tasks from one CardDAV/CalDAV server to another. No mail in
# content, so the platforms need no imap endpoint. DAV logs in as the address (Radicale's
# principal); \`http://\` is allowed because the servers are on loopback.
version: 1
platforms:
  old: {type: imap, dav: {url: "http://127.0.0.1:$OLD_PORT/"}}
  new: {type: imap, dav: {url: "http://127.0.0.1:$NEW_PORT/"}}
accounts:
  - address: alice@example.com
    from: old
    to: new
    content: [contacts, calendars, tasks]
    source: {password: {env: ALICE_OLD}}
    destination: {password: {env: ALICE_NEW}}
EOF
echo
sed 's/^/   /' "$PLAN"

echo
echo "== mailshift validate"
"$MS" validate "$PLAN"
echo
echo "== mailshift plan (a dry run; exit code 2 means there are changes)"
set +e
"$MS" plan --detailed-exitcode "$PLAN"
echo "(exit code $?)"
set -e
echo
echo "== mailshift apply"
"$MS" apply "$PLAN"
show new "$NEW_PORT"
echo
echo "== mailshift verify"
"$MS" verify "$PLAN"

echo
echo "== Alice edits a contact on the old server; apply again copies only that"
python3 - "$OLD_PORT" <<'PY'
import base64, http.client, sys
path = "/alice@example.com/contacts/v4-anna-grossmann.vcf"
auth = {"Authorization": "Basic " + base64.b64encode(b"alice@example.com:old-secret").decode()}
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
c.request("GET", path, headers=auth)
r = c.getresponse()
card, etag = r.read(), r.getheader("ETag")
card = card.replace(b"END:VCARD", b"TEL;VALUE=uri;TYPE=work:tel:+49-30-7654321\r\nEND:VCARD")
c.request("PUT", path, card, {**auth, "If-Match": etag, "Content-Type": "text/vcard; charset=utf-8"})
r = c.getresponse()
r.read()
print(f"   PUT {path}: HTTP {r.status} (a work phone number added)")
PY
before=$(puts new)
"$MS" apply "$PLAN"
echo "   PUT requests the new server received: $(($(puts new) - before))"

echo
echo "== Nothing changed since: a last apply writes nothing"
before=$(puts new)
"$MS" apply "$PLAN"
echo "   PUT requests the new server received: $(($(puts new) - before))"
