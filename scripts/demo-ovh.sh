#!/usr/bin/env bash
# The OVHcloud part of the demo: examples/ovh-exchange-to-email-pro.yaml, run against the API
# simulator (`ovh-sim`, crates/ovh-sim: a stand-in for the real API built from its published
# schema) in front of two local Dovecot servers, the Exchange and Email Pro IMAP endpoints.
# A rename or an account created through the simulated API changes who can log in to those
# servers, so the whole procedure really runs: domain, rename, create, copy, aliases,
# delegation, contact, footer, DNS check; then a second apply that writes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${MAILSHIFT_DEMO_BUILT:-}" ]; then
    scripts/install-deps.sh
    # The workspace: mailshift and the simulator's own binary, ovh-sim.
    cargo build --locked --quiet --workspace
fi
MS=$PWD/target/debug/mailshift
SIM=$PWD/target/debug/ovh-sim

WORK=$(mktemp -d /tmp/mailshift-demo-ovh.XXXXXX)
chmod 0755 "$WORK"
SIM_PID=
cleanup() {
    [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null || true
    [ -n "${KEEP:-}" ] && return
    scripts/dovecot.sh stop "$WORK/exchange" >/dev/null 2>&1 || true
    scripts/dovecot.sh stop "$WORK/pro" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "== Starting the Exchange and Email Pro IMAP servers (Dovecot) on 127.0.0.1:10145 and :10146"
scripts/dovecot.sh start "$WORK/exchange" 10145 / >/dev/null
scripts/dovecot.sh start "$WORK/pro" 10146 . >/dev/null
# One line each, so the simulator knows which uid/gid owns the mailboxes it creates.
scripts/dovecot.sh adduser "$WORK/exchange" postmaster "unused-$RANDOM" >/dev/null
scripts/dovecot.sh adduser "$WORK/pro" postmaster "unused-$RANDOM" >/dev/null

export OVH_APPLICATION_KEY=demoApplicationKey
export OVH_APPLICATION_SECRET=demoApplicationSecret0123456789
export OVH_CONSUMER_KEY=demoConsumerKey0123456789abcdef
export JOHN_EXCHANGE_PASSWORD=john-on-exchange ASSISTANT_EXCHANGE_PASSWORD=assistant-on-exchange
export JOHN_PRO_PASSWORD=john-on-email-pro

cat >"$WORK/world.yaml" <<EOF
# The simulated OVHcloud account: an Exchange service holding mydomain.ovh with two accounts,
# an Email Pro service with three ordered, not yet configured accounts.
applications: [{key: $OVH_APPLICATION_KEY, secret: $OVH_APPLICATION_SECRET}]
consumer_keys: [{key: $OVH_CONSUMER_KEY, application: $OVH_APPLICATION_KEY}]
task_delay_ms: 300
exchange:
  - organization: hosted-ab12345-1
    service: hosted-ab12345-1
    offer: hosted
    domains: [{name: mydomain.ovh, type: authoritative}]
    accounts:
      - {email: john@mydomain.ovh, password: $JOHN_EXCHANGE_PASSWORD, aliases: [j.smith@mydomain.ovh, contact@mydomain.ovh], current_usage: 52000}
      - {email: assistant@mydomain.ovh, password: $ASSISTANT_EXCHANGE_PASSWORD}
    dovecot: {users_file: $WORK/exchange/users, mail_root: $WORK/exchange/mail}
pro:
  - service: emailpro-ab12345-1
    placeholders: 3
    dovecot: {users_file: $WORK/pro/users, mail_root: $WORK/pro/mail}
EOF

echo "== Starting the OVHcloud API simulator"
"$SIM" --world "$WORK/world.yaml" >"$WORK/sim.out" 2>"$WORK/sim.err" &
SIM_PID=$!
for _ in $(seq 50); do
    [ -s "$WORK/sim.out" ] && break
    sleep 0.1
done
API=$(head -1 "$WORK/sim.out")
[ -n "$API" ] || { cat "$WORK/sim.err"; exit 1; }
echo "   API at $API"

echo "== Filling john's Exchange mailbox"
python3 - <<'PY'
import imaplib, os, time
for attempt in range(40):
    m = imaplib.IMAP4("127.0.0.1", 10145)
    try:
        m.login("john@mydomain.ovh", os.environ["JOHN_EXCHANGE_PASSWORD"])
        break
    except imaplib.IMAP4.error as e:
        last = e
        m.shutdown()
        time.sleep(0.25)
else:
    raise SystemExit(f"cannot log in to the demo server: {last}")
for folder in ["Sent Items", "Junk E-mail"]:
    m.create('"' + folder + '"')
n = 0
for folder, count in [("INBOX", 8), ("Sent Items", 3), ("Junk E-mail", 2)]:
    for i in range(count):
        n += 1
        msg = (f"From: Bob <bob@example.com>\r\nTo: john@mydomain.ovh\r\n"
               f"Subject: {folder} {i}\r\nMessage-ID: <ovh-demo-{n}@example.com>\r\n\r\n"
               f"Hello John ({n}).\r\n").encode()
        m.append('"' + folder + '"', "(\\Seen)", imaplib.Time2Internaldate(time.time()), msg)
m.logout()
print(f"   {n} messages in 3 folders (Junk E-mail is excluded by the plan)")
PY

PLAN="$WORK/plan.yaml"
mkdir -p "$WORK/secrets"
echo "assistant-on-email-pro" >"$WORK/secrets/assistant-pro"
sed -e "s|endpoint: ovh-eu|endpoint: $API\n    poll_interval: 250ms|" \
    -e "s|{host: ex5.mail.ovh.net, port: 993, security: tls}|{host: 127.0.0.1, port: 10145, security: none}|" \
    -e "s|{host: pro1.mail.ovh.net, port: 993, security: tls}|{host: 127.0.0.1, port: 10146, security: none}|" \
    -e "s|{command: \[pass, show, mail/john\]}|{env: JOHN_PRO_PASSWORD}|" \
    examples/ovh-exchange-to-email-pro.yaml >"$PLAN"

echo
echo "== mailshift plan (the example, pointed at the simulator and the local servers)"
set +e
"$MS" plan --detailed-exitcode "$PLAN"
echo "(exit code $?)"
set -e
echo
echo "== mailshift apply: the whole OVHcloud procedure"
"$MS" apply "$PLAN"
echo
echo "== mailshift verify"
"$MS" verify "$PLAN"
echo
echo "== mailshift apply again: nothing to change, no API write"
"$MS" apply "$PLAN"
echo
echo "== What the simulated API now holds (Email Pro)"
python3 - "$API" <<'PY'
import json, sys, urllib.request
base = sys.argv[1].rsplit("/1.0", 1)[0]
world = json.load(urllib.request.urlopen(base + "/_sim/world"))
for a in world["pro"][0]["accounts"]:
    if a.get("configured", True):
        extras = {k: a[k] for k in ("aliases", "send_as", "full_access") if a.get(k)}
        print(f"   {a['email']} {extras if extras else ''}")
for c in world["pro"][0].get("external_contacts", []):
    print(f"   contact {c['email']} ({c.get('display_name', '')})")
violations = json.load(urllib.request.urlopen(base + "/_sim/violations"))
print(f"   calls outside the published API schema: {len(violations)}")
PY
