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
EWS_SIM=$PWD/target/debug/ews-sim

WORK=$(mktemp -d /tmp/mailshift-demo-ovh.XXXXXX)
chmod 0755 "$WORK"
SIM_PID=
SIM2_PID=
EWS_PIDS=()
cleanup() {
    for pid in $SIM_PID $SIM2_PID "${EWS_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    [ -n "${KEEP:-}" ] && return
    for d in exchange pro hosted private; do
        scripts/dovecot.sh stop "$WORK/$d" >/dev/null 2>&1 || true
    done
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
# The domain's zone, hosted at OVHcloud and answered by the simulator's two name servers: the
# zones block of tests/fixtures/ovh-sim/demo-world.yaml, still pointing at Exchange, with TTLs
# of 2 seconds on the records the cutover changes so the demo waits out the old TTL at once.
zones:
  - name: mydomain.ovh
    default_ttl: 3600
    records:
      - {field_type: NS, target: dns200.ovh.net.}
      - {field_type: NS, target: ns200.ovh.net.}
      - {field_type: A, target: 192.0.2.10}
      - {sub_domain: www, field_type: CNAME, target: mydomain.ovh.}
      - {field_type: MX, target: 1 ex.mail.ovh.net., ttl: 2}
      - {field_type: SPF, target: v=spf1 include:mx.ovh.com ~all, ttl: 2}
      - {sub_domain: _autodiscover._tcp, field_type: SRV, target: 0 0 443 ex.mail.ovh.net., ttl: 2}
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
# The plan asks the simulator's name servers directly (their loopback ports) in the
# propagation check, in place of the zone's NS records on port 53.
NAMESERVERS=$(python3 - "$API" <<'PY'
import json, sys, urllib.request
base = sys.argv[1].rsplit("/1.0", 1)[0]
print(", ".join("'%s'" % s["addr"] for s in json.load(urllib.request.urlopen(base + "/_sim/dns"))))
PY
)
echo "   zone mydomain.ovh answered by $NAMESERVERS"

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
    -e "s|dns: {provider: ovh}|dns: {provider: ovh, nameservers: [$NAMESERVERS]}|" \
    -e "s|cutover: {at: 2030-06-01T22:00:00+02:00, lower_ttl_ahead: 1d}|cutover: {at: 2020-01-01T00:00:00Z, low_ttl: 1}|" \
    examples/ovh-exchange-to-email-pro.yaml >"$PLAN"
grep -q "nameservers: \[" "$PLAN" || { echo "the example's dns: line changed; fix the sed above"; exit 1; }

echo
echo "== mailshift plan (the example, pointed at the simulator and the local servers)"
set +e
"$MS" plan --detailed-exitcode "$PLAN"
echo "(exit code $?)"
set -e
echo
echo "== mailshift apply: the whole OVHcloud procedure"
# Exit code 75: done but paused, the cutover's switch waiting out the old TTL (below).
"$MS" apply "$PLAN" || [ $? -eq 75 ]
echo
echo "== mailshift verify"
"$MS" verify "$PLAN"
echo
echo "== The cutover of mydomain.ovh (its \`cutover.at\` set in the past for the demo): each apply"
echo "   runs the steps that are due; the switch waits out the old TTL (2 s), then every name"
echo "   server must answer the Email Pro records before the accounts are marked cut over"
for _ in $(seq 30); do
    if "$MS" plan "$PLAN" 2>&1 | grep -q "cutover/mydomain.ovh/raise-ttl: done"; then
        break
    fi
    sleep 1
    "$MS" apply "$PLAN" 2>&1 | grep "cutover/" | sed 's/^/   /' || true
done
"$MS" plan "$PLAN" 2>&1 | grep -A12 "^Cutover of" | sed 's/^/   /'
"$MS" plan "$PLAN" 2>&1 | grep -q "cutover/mydomain.ovh/raise-ttl: done" ||
    { echo "the cutover did not finish"; exit 1; }
python3 - "$API" <<'PY'
import json, sys, urllib.request
base = sys.argv[1].rsplit("/1.0", 1)[0]
world = json.load(urllib.request.urlopen(base + "/_sim/world"))
for z in world.get("zones", []):
    for r in z["records"]:
        if r["field_type"] in ("MX", "SPF", "TXT", "SRV"):
            print(f"   {z['name']}: {r.get('sub_domain') or '@'} {r['field_type']} {r['target']} (TTL {r.get('ttl')})")
PY
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

echo
echo "== Exchange to Exchange with a calendar: examples/ovh-exchange-to-ovh-exchange.yaml"
echo "   (Hosted to Private Exchange: mail over IMAP, contacts and calendars over EWS)"
# Two more Dovecots for the two Exchange services' IMAP, a second API simulator holding both
# services, and two EWS simulators (crates/ews-sim, built from Microsoft's published WSDL and
# schemas) for their Exchange Web Services. The source's EWS mailbox answers under the
# provisional name the plan renames the account to, which is the login the copy uses.
scripts/dovecot.sh start "$WORK/hosted" 10147 / >/dev/null
scripts/dovecot.sh start "$WORK/private" 10148 / >/dev/null
scripts/dovecot.sh adduser "$WORK/hosted" postmaster "unused-$RANDOM" >/dev/null
scripts/dovecot.sh adduser "$WORK/private" postmaster "unused-$RANDOM" >/dev/null
export JOHN_HOSTED_PASSWORD=john-on-hosted ASSISTANT_HOSTED_PASSWORD=assistant-on-hosted
export JOHN_PRIVATE_PASSWORD=john-on-private ASSISTANT_PRIVATE_PASSWORD=assistant-on-private
cat >"$WORK/world2.yaml" <<EOF
applications: [{key: $OVH_APPLICATION_KEY, secret: $OVH_APPLICATION_SECRET}]
consumer_keys: [{key: $OVH_CONSUMER_KEY, application: $OVH_APPLICATION_KEY}]
task_delay_ms: 300
exchange:
  - organization: hosted-ab12345-1
    service: hosted-ab12345-1
    offer: hosted
    hostname: 127.0.0.1
    domains: [{name: mydomain.ovh, type: authoritative}]
    accounts:
      - {email: john@mydomain.ovh, password: $JOHN_HOSTED_PASSWORD, aliases: [j.smith@mydomain.ovh]}
      - {email: assistant@mydomain.ovh, password: $ASSISTANT_HOSTED_PASSWORD}
    dovecot: {users_file: $WORK/hosted/users, mail_root: $WORK/hosted/mail}
  - organization: private-ab12345-1
    service: private-ab12345-1
    offer: dedicated
    hostname: 127.0.0.1
    dovecot: {users_file: $WORK/private/users, mail_root: $WORK/private/mail}
EOF
start_sim() { # OUT_FILE COMMAND...: starts a simulator, waits for the URL on its first line
    local out=$1
    shift
    "$@" >"$out" 2>"$out.err" &
    LAST_PID=$!
    for _ in $(seq 100); do
        [ -s "$out" ] && break
        sleep 0.1
    done
    [ -s "$out" ] || { cat "$out.err"; exit 1; }
}
start_sim "$WORK/sim2.out" "$SIM" --world "$WORK/world2.yaml"
SIM2_PID=$LAST_PID
API2=$(head -1 "$WORK/sim2.out")
start_sim "$WORK/ews-hosted.out" "$EWS_SIM" \
    --mailbox "john.old@mydomain.ovh:$JOHN_HOSTED_PASSWORD" \
    --mailbox "assistant.old@mydomain.ovh:$ASSISTANT_HOSTED_PASSWORD"
EWS_PIDS+=("$LAST_PID")
EWS_HOSTED=$(head -1 "$WORK/ews-hosted.out")
start_sim "$WORK/ews-private.out" "$EWS_SIM" \
    --mailbox "john@mydomain.ovh:$JOHN_PRIVATE_PASSWORD" \
    --mailbox "assistant@mydomain.ovh:$ASSISTANT_PRIVATE_PASSWORD"
EWS_PIDS+=("$LAST_PID")
EWS_PRIVATE=$(head -1 "$WORK/ews-private.out")
echo "   API at $API2; EWS at $EWS_HOSTED (hosted) and $EWS_PRIVATE (private)"

echo "== Filling john's Hosted Exchange mailbox: mail, a weekly meeting and a contact"
python3 - "$EWS_HOSTED" <<'PY'
import base64, imaplib, os, sys, time, urllib.request
for attempt in range(40):
    m = imaplib.IMAP4("127.0.0.1", 10147)
    try:
        m.login("john@mydomain.ovh", os.environ["JOHN_HOSTED_PASSWORD"])
        break
    except imaplib.IMAP4.error as e:
        last = e
        m.shutdown()
        time.sleep(0.25)
else:
    raise SystemExit(f"cannot log in to the demo server: {last}")
for i in range(5):
    msg = (f"From: Bob <bob@example.com>\r\nTo: john@mydomain.ovh\r\nSubject: Hello {i}\r\n"
           f"Message-ID: <ovh-demo-ex-{i}@example.com>\r\n\r\nHello John.\r\n").encode()
    m.append("INBOX", "(\\Seen)", imaplib.Time2Internaldate(time.time()), msg)
m.logout()

# The provisional name is the mailbox's EWS login here (see above).
user = "john.old@mydomain.ovh:" + os.environ["JOHN_HOSTED_PASSWORD"]
auth = "Basic " + base64.b64encode(user.encode()).decode()
def ews(body):
    envelope = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" '
        'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">'
        '<soap:Header><t:RequestServerVersion Version="Exchange2013_SP1"/></soap:Header>'
        f'<soap:Body>{body}</soap:Body></soap:Envelope>')
    req = urllib.request.Request(sys.argv[1], envelope.encode(), {
        "Content-Type": "text/xml; charset=utf-8", "Authorization": auth})
    text = urllib.request.urlopen(req).read().decode()
    if 'ResponseClass="Success"' not in text:
        raise SystemExit(text)
ews('<m:CreateItem SendMeetingInvitations="SendToNone"><m:SavedItemFolderId>'
    '<t:DistinguishedFolderId Id="calendar"/></m:SavedItemFolderId><m:Items><t:CalendarItem>'
    '<t:Subject>Team meeting</t:Subject><t:Body BodyType="Text">Weekly, on Mondays.</t:Body>'
    '<t:Start>2026-12-07T09:00:00Z</t:Start><t:End>2026-12-07T10:00:00Z</t:End>'
    '<t:Location>Room 2</t:Location><t:RequiredAttendees><t:Attendee><t:Mailbox>'
    '<t:EmailAddress>assistant@mydomain.ovh</t:EmailAddress></t:Mailbox></t:Attendee>'
    '</t:RequiredAttendees><t:Recurrence><t:WeeklyRecurrence><t:Interval>1</t:Interval>'
    '<t:DaysOfWeek>Monday</t:DaysOfWeek></t:WeeklyRecurrence><t:NumberedRecurrence>'
    '<t:StartDate>2026-12-07</t:StartDate><t:NumberOfOccurrences>10</t:NumberOfOccurrences>'
    '</t:NumberedRecurrence></t:Recurrence></t:CalendarItem></m:Items></m:CreateItem>')
ews('<m:CreateItem><m:SavedItemFolderId><t:DistinguishedFolderId Id="contacts"/>'
    '</m:SavedItemFolderId><m:Items><t:Contact><t:GivenName>Pat</t:GivenName>'
    '<t:CompanyName>Partner SA</t:CompanyName><t:EmailAddresses>'
    '<t:Entry Key="EmailAddress1">partner@example.org</t:Entry></t:EmailAddresses>'
    '<t:Surname>Partner</t:Surname></t:Contact></m:Items></m:CreateItem>')
print("   5 messages, 1 weekly meeting with an attendee, 1 contact")
PY

# Its own directory, so its state is its own (a state belongs to one plan).
mkdir -p "$WORK/exchange-to-exchange"
PLAN2="$WORK/exchange-to-exchange/plan.yaml"
sed -e "s|endpoint: ovh-eu|endpoint: $API2\n    poll_interval: 250ms|" \
    -e "s|{host: ex5.mail.ovh.net, port: 993, security: tls}|{host: 127.0.0.1, port: 10147, security: none}|" \
    -e "s|{host: ex.private-ab12345-1.ovh, port: 993, security: tls}|{host: 127.0.0.1, port: 10148, security: none}|" \
    -e "s|\"https://ex5.mail.ovh.net/EWS/Exchange.asmx\"|\"$EWS_HOSTED\"|" \
    -e "s|\"https://ex.private-ab12345-1.ovh/EWS/Exchange.asmx\"|\"$EWS_PRIVATE\"|" \
    examples/ovh-exchange-to-ovh-exchange.yaml >"$PLAN2"
echo
echo "== mailshift apply: domain, rename, create, mail, contacts, calendars, tasks, alias, delegation"
"$MS" apply "$PLAN2"
echo
echo "== mailshift verify"
"$MS" verify "$PLAN2"
echo
echo "== mailshift apply again: nothing to change"
"$MS" apply "$PLAN2"
echo
echo "== What john's Private Exchange calendar and contacts now hold (read over EWS)"
python3 - "$EWS_PRIVATE" <<'PY'
import base64, os, re, sys, urllib.request
user = "john@mydomain.ovh:" + os.environ["JOHN_PRIVATE_PASSWORD"]
for folder in ["calendar", "contacts"]:
    envelope = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" '
        'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">'
        '<soap:Header><t:RequestServerVersion Version="Exchange2013_SP1"/></soap:Header><soap:Body>'
        '<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape>'
        f'</m:ItemShape><m:ParentFolderIds><t:DistinguishedFolderId Id="{folder}"/>'
        '</m:ParentFolderIds></m:FindItem></soap:Body></soap:Envelope>')
    req = urllib.request.Request(sys.argv[1], envelope.encode(), {
        "Content-Type": "text/xml; charset=utf-8",
        "Authorization": "Basic " + base64.b64encode(user.encode()).decode()})
    text = urllib.request.urlopen(req).read().decode()
    if folder == "calendar":
        names = re.findall(r"<t:Subject>([^<]*)</t:Subject>", text)
    else:
        names = [" ".join(re.findall(r"<t:(?:GivenName|Surname)>([^<]*)</t:", c))
                 for c in re.findall(r"<t:Contact>.*?</t:Contact>", text, re.S)]
    print(f"   {folder}: {', '.join(sorted(set(names))) or '(empty)'}")
PY
