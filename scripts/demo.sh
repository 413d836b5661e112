#!/usr/bin/env bash
# The demo: on a fresh machine, install what is needed, start two local Dovecot servers (the
# "old" and "new" platforms of examples/imap-to-imap.yaml, the new one with `.` as separator),
# fill the old one with a small mailbox, then run the whole job: validate, plan (the dry run),
# apply (the copy, with progress), verify (both sides compared by content), a second apply
# that copies only the new mail, status (with the sync points), and a rollback dry run of the
# second apply's copies. The plan also has a `notify:` e-mail target: a local SMTP sink
# (Debian's python3-aiosmtpd) on 127.0.0.1:10025 receives the notifications, printed after the
# first apply.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
# The workspace: mailshift, and ovh-sim (the OVHcloud API simulator) for part 2.
cargo build --locked --quiet --workspace
MS=target/debug/mailshift

WORK=$(mktemp -d /tmp/mailshift-demo.XXXXXX)
# Dovecot's unprivileged processes must be able to walk into the instance directories.
chmod 0755 "$WORK"
SINK_PID=
cleanup() {
    # The SMTP sink goes even with KEEP (it would hold its port); only the files stay.
    # (`wait` answers 143 for the killed sink: not the demo's exit code.)
    if [ -n "$SINK_PID" ]; then
        kill "$SINK_PID" 2>/dev/null || true
        wait "$SINK_PID" 2>/dev/null || true
    fi
    [ -n "${KEEP:-}" ] && return
    scripts/dovecot.sh stop "$WORK/old" >/dev/null 2>&1 || true
    scripts/dovecot.sh stop "$WORK/new" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "== Starting two local IMAP servers (Dovecot) on 127.0.0.1:10143 and :10144"
scripts/dovecot.sh start "$WORK/old" 10143 / >/dev/null
scripts/dovecot.sh start "$WORK/new" 10144 . >/dev/null
export ALICE_OLD=old-secret ALICE_NEW=new-secret
scripts/dovecot.sh adduser "$WORK/old" alice "$ALICE_OLD"
scripts/dovecot.sh adduser "$WORK/new" alice "$ALICE_NEW"

echo "== Filling alice's old mailbox"
python3 - <<'PY'
import imaplib, os, time
# Dovecot re-reads its user file at most once a second: retry the first login briefly.
for attempt in range(20):
    m = imaplib.IMAP4("127.0.0.1", 10143)
    try:
        m.login("alice", os.environ["ALICE_OLD"])
        break
    except imaplib.IMAP4.error as e:
        last = e
        m.shutdown()
        time.sleep(0.25)
else:
    raise SystemExit(f"cannot log in to the demo server: {last}")
def q(name):  # imaplib sends mailbox names as given: quote them
    return '"' + name + '"'
for folder in ["Archive", "Archive/2024", "Sent Items"]:
    m.create(q(folder))
n = 0
for folder in ["INBOX", "Archive", "Archive/2024", "Sent Items"]:
    for i in range(5):
        n += 1
        msg = (f"From: Bob <bob@example.com>\r\nTo: alice@example.com\r\n"
               f"Subject: Message {n} in {folder}\r\nMessage-ID: <demo-{n}@example.com>\r\n\r\n"
               f"Hello Alice, this is message {n}.\r\n").encode()
        m.append(q(folder), "(\\Seen)" if i % 2 else None, imaplib.Time2Internaldate(time.time()), msg)
m.logout()
print(f"   {n} messages in 4 folders")
PY

echo "== Starting a local SMTP sink (aiosmtpd) on 127.0.0.1:10025 for the notifications"
# Debian's python3 explicitly: the package's module is not on another interpreter's path (a
# pyenv or venv python3 first in PATH). The debugging handler prints each message it gets.
/usr/bin/python3 -u -m aiosmtpd -n -l 127.0.0.1:10025 >"$WORK/smtp.log" 2>&1 &
SINK_PID=$!
for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/10025) 2>/dev/null && break
    kill -0 "$SINK_PID" 2>/dev/null || { cat "$WORK/smtp.log" >&2; exit 1; }
    sleep 0.1
done

PLAN="$WORK/plan.yaml"
cp examples/imap-to-imap.yaml "$PLAN"
# Tell someone: the first copy done and the plan converged, by e-mail to the sink (plain SMTP
# is allowed to a loopback host only).
cat >>"$PLAN" <<'YAML'
notify:
  - email:
      to: [it@example.com]
      from: mailshift@example.com
      smtp:
        host: 127.0.0.1
        port: 10025
        security: none
    events: [first-copy, converged]
YAML

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
echo
echo "== What the SMTP sink received (the apply's notifications)"
for _ in $(seq 50); do
    [ "$(grep -c 'END MESSAGE' "$WORK/smtp.log")" -ge 2 ] && break
    sleep 0.1
done
sed -n '/MESSAGE FOLLOWS/,/END MESSAGE/p' "$WORK/smtp.log"
echo
echo "== mailshift verify"
"$MS" verify "$PLAN"
echo
echo "== New mail arrives on the old server; apply again copies only that"
python3 - <<'PY'
import imaplib, os
m = imaplib.IMAP4("127.0.0.1", 10143)
m.login("alice", os.environ["ALICE_OLD"])
m.append("INBOX", None, None, b"From: Carol <carol@example.com>\r\nSubject: one more\r\n\r\nHi!\r\n")
m.logout()
PY
"$MS" apply "$PLAN"
echo
echo "== mailshift status"
"$MS" status "$PLAN"
echo
echo "== mailshift rollback --dry-run: what deleting the second apply's copies would remove"
"$MS" rollback "$PLAN" --since 2 --dry-run
echo
echo "== A plan with mistakes, and what validate says about it"
sed -e 's/to: new/to: nwe/' -e 's/security: none}}$/security: nones}}/' "$PLAN" > "$WORK/broken.yaml"
"$MS" validate "$WORK/broken.yaml" || true

echo
echo "=================================================================================="
echo "== Part 2: an OVHcloud move (Exchange → Email Pro) against the API simulator"
echo "=================================================================================="
MAILSHIFT_DEMO_BUILT=1 scripts/demo-ovh.sh

echo
echo "=================================================================================="
echo "== Part 3: alice's contacts, calendars and tasks between two local Radicale servers"
echo "=================================================================================="
MAILSHIFT_DEMO_BUILT=1 scripts/demo-dav.sh
