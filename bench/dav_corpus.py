#!/usr/bin/env python3
"""Generates a contacts/calendars/tasks corpus for bench/dav.sh, and loads it into a DAV server.

    dav_corpus.py --contacts N --events M --tasks K --out DIR [--seed S]
    dav_corpus.py --out DIR --upload URL [--user U] [--password P] [--threads T] [--only a,b]
    dav_corpus.py --out DIR --radicale-storage STORAGE --user U   # straight into Radicale's files
    dav_corpus.py --out DIR --count URL                            # objects per collection

Generating writes one file per object: DIR/contacts/<uid>.vcf and DIR/calendar/<uid>.ics (events
and tasks in one calendar, as most servers hold them); with --split N, at most N objects per
directory (contacts-01/, contacts-02/, calendar-01/, ...; tasks share the calendars). The same
seed gives the same bytes. The
mix is meant to look like a real address book and calendar, not like N copies of one object:
  - contacts: 60% vCard 3.0, 40% 4.0; 1 to 3 addresses, phones, an address, an organisation,
    notes of very different lengths; names from several scripts (é, ß, ø, ł, 日本語, ...);
    5% carry a 20 KB photo (a real PNG of noise, so it does not compress); all have a UID
    (Radicale refuses a card without one);
    1% are groups (4.0 KIND:group, or the Apple 3.0 X-ADDRESSBOOKSERVER-KIND form).
  - events: 20% recurring with one overridden instance (RECURRENCE-ID, same UID, same file)
    and often an EXDATE; 10% with ORGANIZER and ATTENDEEs; 10% all-day; 5% in the Windows
    time zone "W. Europe Standard Time" as Exchange exports it, most others in Europe/Paris
    with its VTIMEZONE, some in UTC; some with an alarm.
  - tasks: VTODO with STATUS (NEEDS-ACTION, IN-PROCESS, COMPLETED), DUE, PRIORITY,
    PERCENT-COMPLETE.
Lines end in CRLF and are folded at 75 octets (never inside a UTF-8 sequence).

Uploading makes every subdirectory of DIR a collection under URL (the principal's home, e.g.
http://127.0.0.1:5232/alice@example.com/): a directory of .vcf files becomes an address book
(extended MKCOL, RFC 5689), one of .ics files a calendar (MKCALENDAR, RFC 4791); an existing
collection is reused. `bad/` and `files/` (tests/fixtures/dav/) are skipped. Then every file is PUT with If-None-Match: * from a few
threads. The login defaults to the first path segment of URL (Radicale's principal); with
Radicale's `auth none` any password passes. Stdlib only: http.client rather than urllib.request
so each thread keeps its connection when the server allows it.
"""
import argparse
import base64
import http.client
import os
import random
import re
import struct
import sys
import threading
import time
import unicodedata
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

# ---------------------------------------------------------------------------------------------
# Content

GIVEN = ["Jean", "Marie", "Élodie", "François", "Chloé", "Lucas", "Inès", "Zoé", "Jürgen",
         "Anna", "Lars", "Søren", "Małgorzata", "Łukasz", "José", "María", "João", "Ana",
         "Björn", "Ingrid", "Taro", "Hanako", "太郎", "花子", "Олег", "Ελένη", "Ahmed",
         "Fatima", "Paul", "Claire", "Noël", "Ève", "Ξανθή", "Dmitrij", "Ulrike", "Çağla"]
FAMILY = ["Dupont", "Martin", "Lefèvre", "Großmann", "Weiß", "Øberg", "Kowalski",
          "Wiśniewska", "García", "Muñoz", "Gonçalves", "Müller", "Schäfer", "Yamada",
          "山田", "佐藤", "鈴木", "Иванов", "Παπαδοπούλου", "Nguyễn", "O'Brien", "Van der Berg",
          "Dubois", "Bernard", "Petit", "Lindqvist", "Hernández", "Çelik", "Novák", "Dvořák"]
ORGS = ["Société Générale des Eaux", "Müller & Söhne GmbH", "日本語株式会社", "Acme SA",
        "Boulangerie Lefèvre", "Studio Ørsted", "Café de la Gare", "Ville de Genève",
        "Atelier Nœud", "Kowalski i Wspólnicy sp. z o.o."]
TITLES = ["Directrice financière", "Geschäftsführer", "Ingénieur", "営業部長", "Comptable",
          "Chef de projet", "Consultant", "Architecte", "Responsable des achats", ""]
CITIES = [("Lyon", "69002", "France"), ("Berlin", "10623", "Deutschland"),
          ("Genève", "1204", "Suisse"), ("Kraków", "31-042", "Polska"),
          ("Tōkyō", "100-0005", "日本"), ("Montréal", "H2X 1Y4", "Canada"),
          ("København", "1050", "Danmark"), ("Sevilla", "41004", "España")]
STREETS = ["rue de l'Église", "Straße des 17. Juni", "avenue des Peupliers", "ul. Floriańska",
           "Kongens Nytorv", "Calle Sierpes", "boulevard Saint-Laurent", "chemin des Crêts"]
WORDS = ("réunion point budget équipe client livraison planning revue contrat atelier "
         "formation déjeuner appel suivi bilan démo rétrospective Besprechung Übergabe "
         "Abstimmung 会議 打ち合わせ spotkanie reunión entrevista présentation").split()
PLACES = ["Salle Garonne", "Auditorium", "Besprechungsraum München 3.OG", "Visioconférence",
          "Café de la Gare", "会議室 A", "Sala Mayor", ""]

PARIS_TZ = [
    "BEGIN:VTIMEZONE", "TZID:Europe/Paris",
    "BEGIN:DAYLIGHT", "TZOFFSETFROM:+0100", "TZOFFSETTO:+0200", "TZNAME:CEST",
    "DTSTART:19700329T020000", "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU", "END:DAYLIGHT",
    "BEGIN:STANDARD", "TZOFFSETFROM:+0200", "TZOFFSETTO:+0100", "TZNAME:CET",
    "DTSTART:19701025T030000", "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU", "END:STANDARD",
    "END:VTIMEZONE"]
# As Exchange 2010/2013 exports it: Windows id, DTSTART in 1601, INTERVAL spelled out.
WINDOWS_TZ = [
    "BEGIN:VTIMEZONE", "TZID:W. Europe Standard Time",
    "BEGIN:STANDARD", "DTSTART:16010101T030000", "TZOFFSETFROM:+0200", "TZOFFSETTO:+0100",
    "RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10", "END:STANDARD",
    "BEGIN:DAYLIGHT", "DTSTART:16010101T020000", "TZOFFSETFROM:+0100", "TZOFFSETTO:+0200",
    "RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3", "END:DAYLIGHT",
    "END:VTIMEZONE"]


def fold(line: str) -> bytes:
    """One content line as CRLF-terminated physical lines of at most 75 octets."""
    b = line.encode("utf-8")
    out, limit = [], 75
    while len(b) > limit:
        cut = limit
        while 0x80 <= b[cut] < 0xC0:  # never split a UTF-8 sequence
            cut -= 1
        out.append(b[:cut])
        b = b[cut:]
        limit = 74
    out.append(b)
    return b"\r\n ".join(out) + b"\r\n"


def serialize(lines: list[str]) -> bytes:
    return b"".join(fold(l) for l in lines)


def esc(s: str) -> str:
    return s.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;").replace("\n", "\\n")


def png_noise(rng: random.Random, target: int) -> bytes:
    """A valid PNG of random pixels of about `target` bytes (noise does not deflate)."""
    side = int((target / 3) ** 0.5)
    rows = b"".join(b"\x00" + rng.randbytes(side * 3) for _ in range(side))

    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows, 1))
            + chunk(b"IEND", b""))


def sentence(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi))).capitalize()


def new_uid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def contact(rng: random.Random, i: int, members: list[str]) -> tuple[str, bytes]:
    uid = new_uid(rng)
    v4 = rng.random() < 0.4
    given, family = rng.choice(GIVEN), rng.choice(FAMILY)
    rev = f"2026{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}0000Z"
    group = rng.random() < 0.01 and members
    lines = ["BEGIN:VCARD", "VERSION:" + ("4.0" if v4 else "3.0")]
    lines.append("PRODID:-//" + rng.choice(["Apple Inc.//macOS 14.5", "Sabre//Sabre VObject 4.5.4",
                                            "Google Inc//Google Contacts", "mailshift//bench"]) + "//EN")
    if group:
        name = "Groupe " + rng.choice(ORGS)
        picked = rng.sample(members, min(len(members), rng.randint(2, 6)))
        lines.append("FN:" + esc(name))
        if v4:
            lines.append("KIND:group")
            lines += ["MEMBER:urn:uuid:" + m for m in picked]
        else:
            lines += ["N:" + esc(name) + ";;;;", "X-ADDRESSBOOKSERVER-KIND:group"]
            lines += ["X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:" + m for m in picked]
    else:
        lines += [f"FN:{esc(given)} {esc(family)}", f"N:{esc(family)};{esc(given)};;;"]
        for k in range(rng.randint(1, 3)):
            # An ASCII local part: accents dropped (é -> e); names in other scripts get userN.
            ascii_name = unicodedata.normalize("NFKD", f"{given}.{family}").encode("ascii", "ignore").decode()
            local = re.sub(r"[^a-z0-9.]", "", ascii_name.lower()).strip(".")
            if "." not in local or local.startswith(".") or ".." in local:
                local = f"user{i}"
            addr = local + ("" if k == 0 else str(k))
            dom = rng.choice(["example.com", "example.fr", "example.de", "example.org"])
            kind = ["work", "home", "other"][k]
            lines.append(f"EMAIL;TYPE={kind}:{addr}@{dom}" if v4 else
                         f"EMAIL;TYPE=INTERNET,{kind.upper()}:{addr}@{dom}")
        for _ in range(rng.randint(0, 2)):
            num = f"+33 6 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}"
            lines.append(f"TEL;VALUE=uri;TYPE=cell:tel:{num.replace(' ', '-')}" if v4 else
                         f"TEL;TYPE=CELL,VOICE:{num}")
        if rng.random() < 0.6:
            city, zipc, country = rng.choice(CITIES)
            street = f"{rng.randint(1, 200)} {rng.choice(STREETS)}"
            lines.append(f"ADR;TYPE={'home' if v4 else 'HOME'}:;;{esc(street)};{esc(city)};;{zipc};{esc(country)}")
        if rng.random() < 0.5:
            lines.append("ORG:" + esc(rng.choice(ORGS)))
            title = rng.choice(TITLES)
            if title:
                lines.append("TITLE:" + esc(title))
        if rng.random() < 0.3:
            lines.append(f"BDAY:{rng.randint(1950, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
                         .replace("-", "" if v4 else "-"))
        if rng.random() < 0.4:
            lines.append("NOTE:" + esc(sentence(rng, 3, rng.choice([8, 20, 80]))))
        if rng.random() < 0.05:
            photo = base64.b64encode(png_noise(rng, 20_000)).decode()
            lines.append("PHOTO:data:image/png;base64," + photo if v4 else
                         "PHOTO;ENCODING=b;TYPE=PNG:" + photo)
    lines.append("UID:" + ("urn:uuid:" + uid if v4 else uid))
    lines += ["REV:" + (rev if v4 else f"{rev[:4]}-{rev[4:6]}-{rev[6:8]}T{rev[9:11]}:00:00Z"), "END:VCARD"]
    return uid, serialize(lines)


def event(rng: random.Random, i: int, people: list[tuple[str, str]]) -> tuple[str, bytes]:
    uid = new_uid(rng) + "@bench.example.com"
    day = 1 + rng.randint(0, 364)
    start = time.gmtime(1767225600 + day * 86400)  # 2026-01-01 + day
    ymd = time.strftime("%Y%m%d", start)
    hour = rng.randint(7, 18)
    mins = rng.choice([0, 15, 30, 45])
    dur = rng.choice([30, 60, 60, 90, 120])
    end_total = hour * 60 + mins + dur
    r = rng.random()
    allday = r < 0.10
    windows = 0.10 <= r < 0.15
    utc = 0.15 <= r < 0.30
    tz = "W. Europe Standard Time" if windows else "Europe/Paris"
    recurring = rng.random() < 0.20
    attendees = rng.random() < 0.10
    stamp = f"{ymd}T080000Z"

    def when(prop: str, ymd_: str, minutes: int) -> str:
        hm = f"{minutes // 60:02d}{minutes % 60:02d}00"
        if utc:
            return f"{prop}:{ymd_}T{hm}Z"
        return f"{prop};TZID={tz}:{ymd_}T{hm}"

    lines = ["BEGIN:VCALENDAR", "VERSION:2.0",
             "PRODID:" + ("Microsoft Exchange Server 2010" if windows else
                          rng.choice(["-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN",
                                      "-//Apple Inc.//macOS 14.5//EN", "-//Nextcloud calendar v4.7.0"]))]
    if not allday and not utc:
        lines += WINDOWS_TZ if windows else PARIS_TZ
    summary = sentence(rng, 2, 6)
    master = ["BEGIN:VEVENT", "UID:" + uid, "DTSTAMP:" + stamp, "SUMMARY:" + esc(summary)]
    if allday:
        end = time.strftime("%Y%m%d", time.gmtime(1767225600 + (day + rng.randint(1, 5)) * 86400))
        master += [f"DTSTART;VALUE=DATE:{ymd}", f"DTEND;VALUE=DATE:{end}", "TRANSP:TRANSPARENT"]
    else:
        master += [when("DTSTART", ymd, hour * 60 + mins), when("DTEND", ymd, end_total)]
    place = rng.choice(PLACES)
    if place:
        master.append("LOCATION:" + esc(place))
    if rng.random() < 0.5:
        master.append("DESCRIPTION:" + esc(sentence(rng, 5, rng.choice([10, 40, 150]))))
    if windows:
        master += ["CLASS:PUBLIC", "PRIORITY:5", "TRANSP:OPAQUE", "STATUS:CONFIRMED", "SEQUENCE:0",
                   "X-MICROSOFT-CDO-BUSYSTATUS:BUSY", "X-MICROSOFT-CDO-IMPORTANCE:1"]
    if attendees and people:
        org = rng.choice(people)
        master.append(f"ORGANIZER;CN={org[0]}:mailto:{org[1]}")
        for cn, mail in rng.sample(people, min(len(people), rng.randint(2, 8))):
            stat = rng.choice(["ACCEPTED", "TENTATIVE", "NEEDS-ACTION", "DECLINED"])
            master.append(f"ATTENDEE;CN={cn};CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;"
                          f"PARTSTAT={stat};RSVP=TRUE:mailto:{mail}")
    override = []
    if recurring:
        freq, step = rng.choice([("WEEKLY", 7), ("DAILY", 1), ("WEEKLY", 14), ("WEEKLY", 28)])
        count = rng.randint(5, 40)
        master.append(f"RRULE:FREQ={freq};COUNT={count}" + (f";INTERVAL={step // 7}" if step > 7 else ""))
        nth = rng.randint(1, count - 1)
        exd = time.strftime("%Y%m%d", time.gmtime(1767225600 + (day + nth * step) * 86400))
        if allday:
            master.append(f"EXDATE;VALUE=DATE:{exd}")
        else:
            master.append(when("EXDATE", exd, hour * 60 + mins))
        moved = nth + 1 if nth + 1 < count else nth - 1
        rid = time.strftime("%Y%m%d", time.gmtime(1767225600 + (day + moved * step) * 86400))
        override = ["BEGIN:VEVENT", "UID:" + uid, "DTSTAMP:" + stamp,
                    "SUMMARY:" + esc(summary + " (déplacé)")]
        if allday:
            override += [f"RECURRENCE-ID;VALUE=DATE:{rid}", f"DTSTART;VALUE=DATE:{rid}"]
        else:
            override += [when("RECURRENCE-ID", rid, hour * 60 + mins),
                         when("DTSTART", rid, (hour + 1) * 60 + mins),
                         when("DTEND", rid, end_total + 60)]
        override.append("END:VEVENT")
    if rng.random() < 0.3:
        master += ["BEGIN:VALARM", "ACTION:DISPLAY", "DESCRIPTION:Rappel",
                   f"TRIGGER:-PT{rng.choice([5, 10, 15, 30])}M", "END:VALARM"]
    master.append("END:VEVENT")
    lines += master + override + ["END:VCALENDAR"]
    return uid, serialize(lines)


def task(rng: random.Random, i: int) -> tuple[str, bytes]:
    uid = new_uid(rng) + "@bench.example.com"
    day = rng.randint(0, 364)
    due = time.gmtime(1767225600 + day * 86400)
    status = rng.choice(["NEEDS-ACTION", "NEEDS-ACTION", "IN-PROCESS", "COMPLETED"])
    pct = {"NEEDS-ACTION": 0, "IN-PROCESS": rng.choice([10, 25, 50, 75]), "COMPLETED": 100}[status]
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Nextcloud Tasks v0.16.0",
             "BEGIN:VTODO", "UID:" + uid, "DTSTAMP:" + time.strftime("%Y%m%dT080000Z", due),
             "SUMMARY:" + esc(sentence(rng, 2, 7))]
    if rng.random() < 0.5:
        lines.append("DUE;VALUE=DATE:" + time.strftime("%Y%m%d", due))
    else:
        lines.append("DUE:" + time.strftime("%Y%m%dT170000Z", due))
    lines += [f"PRIORITY:{rng.choice([0, 1, 5, 9])}", f"PERCENT-COMPLETE:{pct}", "STATUS:" + status]
    if status == "COMPLETED":
        lines.append("COMPLETED:" + time.strftime("%Y%m%dT160000Z", due))
    if rng.random() < 0.3:
        lines.append("DESCRIPTION:" + esc(sentence(rng, 5, 30)))
    lines += ["END:VTODO", "END:VCALENDAR"]
    return uid, serialize(lines)


def generate(out: Path, n_contacts: int, n_events: int, n_tasks: int, seed: int, split: int) -> None:
    rng = random.Random(seed)

    def where(kind: str, i: int) -> Path:
        d = out / (kind if not split else f"{kind}-{i // split + 1:02d}")
        d.mkdir(parents=True, exist_ok=True)
        return d
    members: list[str] = []
    total = 0
    for i in range(n_contacts):
        uid, data = contact(rng, i, members)
        members.append(uid)
        del members[:-50]  # groups point at recent cards
        (where("contacts", i) / f"{uid}.vcf").write_bytes(data)
        total += len(data)
    people = [(f"{g} {f}", f"p{k}@example.com")
              for k, (g, f) in enumerate(zip(rng.sample(GIVEN, 20), rng.sample(FAMILY, 20)))]
    for i in range(n_events):
        uid, data = event(rng, i, people)
        (where("calendar", i) / f"{uid.split('@')[0]}.ics").write_bytes(data)
        total += len(data)
    for i in range(n_tasks):
        uid, data = task(rng, i)
        # Tasks spread over the same calendars as the events.
        (where("calendar", i * max(n_events, 1) // max(n_tasks, 1)) / f"{uid.split('@')[0]}.ics").write_bytes(data)
        total += len(data)
    print(f"dav_corpus: {n_contacts} contacts, {n_events} events, {n_tasks} tasks, "
          f"{total / 1e6:.1f} MB in {out}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# Upload

class Dav:
    """One keep-alive connection per thread to the server of `base`."""

    def __init__(self, base: str, user: str, password: str):
        u = urlsplit(base)
        self.https = u.scheme == "https"
        self.host, self.port = u.hostname, u.port or (443 if self.https else 80)
        self.path = u.path if u.path.endswith("/") else u.path + "/"
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.auth = "Basic " + token
        self.local = threading.local()

    def request(self, method: str, path: str, body: bytes = b"", headers=None) -> tuple[int, bytes]:
        h = {"Authorization": self.auth, "Content-Length": str(len(body))}
        h.update(headers or {})
        for attempt in range(3):
            conn = getattr(self.local, "conn", None)
            if conn is None:
                cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
                conn = self.local.conn = cls(self.host, self.port, timeout=60)
            try:
                conn.request(method, path, body, h)
                resp = conn.getresponse()
                return resp.status, resp.read()
            except (http.client.HTTPException, OSError):
                # The server closed a kept-alive connection: open a new one and retry once more.
                conn.close()
                self.local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


MKCOL_BOOK = b"""<?xml version="1.0" encoding="utf-8"?>
<D:mkcol xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav"><D:set><D:prop>
<D:resourcetype><D:collection/><C:addressbook/></D:resourcetype>
<D:displayname>%s</D:displayname></D:prop></D:set></D:mkcol>"""
MKCALENDAR = b"""<?xml version="1.0" encoding="utf-8"?>
<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>
<D:displayname>%s</D:displayname></D:prop></D:set></C:mkcalendar>"""


# tests/fixtures/dav/: objects for the file import only (see its README).
SKIP = {"bad", "files"}


def upload(src: Path, url: str, user: str, password: str, threads: int, only: list[str]) -> int:
    dav = Dav(url, user, password)
    dirs = sorted(d for d in src.iterdir() if d.is_dir() and d.name not in SKIP
                  and (not only or d.name in only))
    jobs = []
    for d in dirs:
        files = sorted(f for f in d.iterdir() if f.suffix in (".vcf", ".ics"))
        if not files:
            continue
        book = files[0].suffix == ".vcf"
        coll = dav.path + quote(d.name) + "/"
        name = d.name.replace("&", "&amp;").replace("<", "&lt;").encode()
        status, body = (dav.request("MKCOL", coll, MKCOL_BOOK % name, {"Content-Type": "application/xml"})
                        if book else
                        dav.request("MKCALENDAR", coll, MKCALENDAR % name, {"Content-Type": "application/xml"}))
        # It exists already: 405 (RFC 4918 9.3.1), or a resource-must-be-null precondition
        # (RFC 4791 5.3.1.1): Radicale sends it with 409, Xandikos in a 207 with a 403 inside.
        # Anything else but 201 is a real refusal.
        exists = status == 405 or (status in (207, 403, 409) and b"resource-must-be-null" in body)
        if status != 201 and not exists:
            print(f"dav_corpus: creating {coll}: HTTP {status} {body[:300]!r}", file=sys.stderr)
            return 1
        ctype = "text/vcard; charset=utf-8" if book else "text/calendar; charset=utf-8"
        jobs += [(coll + quote(f.name), f, ctype) for f in files]

    failures = []
    lock = threading.Lock()

    def put(job):
        href, f, ctype = job
        status, body = dav.request("PUT", href, f.read_bytes(),
                                   {"Content-Type": ctype, "If-None-Match": "*"})
        # 412: already there (a re-run of the upload); the object is the same file.
        if status not in (201, 204, 412):
            with lock:
                failures.append(f"{f}: HTTP {status} {body[:200].decode('utf-8', 'replace').strip()}")

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(put, jobs))
    dt = time.monotonic() - t0
    for line in failures:
        print("dav_corpus: " + line, file=sys.stderr)
    print(f"dav_corpus: PUT {len(jobs) - len(failures)}/{len(jobs)} objects into "
          f"{len(dirs)} collections in {dt:.1f} s", file=sys.stderr)
    return 1 if failures else 0


def radicale_storage(src: Path, storage: Path, user: str) -> int:
    """Writes the corpus straight into a (stopped) Radicale 3 filesystem storage.

    Radicale 3.1.8 checks a new object's UID against every object of the collection on each PUT,
    so loading 10,000 cards through HTTP takes hours; its storage is plain files, one per object,
    plus a JSON .Radicale.props per collection, so the benchmark's source is filled this way.
    """
    import json
    import shutil
    n = 0
    for d in sorted(x for x in src.iterdir() if x.is_dir() and x.name not in SKIP):
        files = sorted(f for f in d.iterdir() if f.suffix in (".vcf", ".ics"))
        if not files:
            continue
        coll = storage / "collection-root" / user / d.name
        coll.mkdir(parents=True, exist_ok=True)
        tag = "VADDRESSBOOK" if files[0].suffix == ".vcf" else "VCALENDAR"
        (coll / ".Radicale.props").write_text(json.dumps({"D:displayname": d.name, "tag": tag}))
        for f in files:
            shutil.copyfile(f, coll / f.name)
        n += len(files)
    print(f"dav_corpus: wrote {n} objects into Radicale storage {storage}", file=sys.stderr)
    return 0


PROPFIND_ETAG = b"""<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>"""
# Xandikos answers 415 to a PROPFIND body without its type.
XML_DEPTH1 = {"Depth": "1", "Content-Type": "application/xml; charset=utf-8"}


def count(url: str, user: str, password: str) -> int:
    """Prints `collection objects` for each collection under URL (PROPFIND), returns 0."""
    dav = Dav(url, user, password)
    status, body = dav.request("PROPFIND", dav.path, PROPFIND_ETAG, XML_DEPTH1)
    if status != 207:
        print(f"dav_corpus: PROPFIND {dav.path}: HTTP {status}", file=sys.stderr)
        return 1
    hrefs = [unquote(h.decode()) for h in re.findall(rb"<(?:\w+:)?href>([^<]+)</", body)]
    colls = [h for h in hrefs if h.endswith("/") and h.rstrip("/") != dav.path.rstrip("/")]
    for c in sorted(colls, key=lambda h: h.rstrip("/")):
        status, body = dav.request("PROPFIND", quote(c), PROPFIND_ETAG, XML_DEPTH1)
        items = [h for h in re.findall(rb"<(?:\w+:)?href>([^<]+)</", body) if not h.endswith(b"/")]
        print(f"{c.rstrip('/').rsplit('/', 1)[-1]} {len(items)}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--contacts", type=int, default=0)
    ap.add_argument("--events", type=int, default=0)
    ap.add_argument("--tasks", type=int, default=0)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--split", type=int, default=0, metavar="N",
                    help="at most N objects per collection: contacts-01/, contacts-02/, calendar-01/...")
    ap.add_argument("--out", type=Path, help="corpus directory (written, or read by --upload)")
    ap.add_argument("--upload", metavar="URL", help="PUT the corpus into collections under URL")
    ap.add_argument("--user", help="login (default: URL's first path segment)")
    ap.add_argument("--password", default=os.environ.get("DAV_PASSWORD", "x"))
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--only", default="", help="comma-separated subdirectories to upload")
    ap.add_argument("--radicale-storage", type=Path, metavar="DIR",
                    help="write the corpus into this Radicale storage folder (server stopped), for --user")
    ap.add_argument("--count", metavar="URL",
                    help="print each collection under URL with its number of objects (a PROPFIND, which also "
                         "makes Radicale build its item cache)")
    a = ap.parse_args()
    if not a.out and not a.count:
        ap.error("--out DIR is needed")
    if a.contacts or a.events or a.tasks:
        generate(a.out, a.contacts, a.events, a.tasks, a.seed, a.split)
    if a.radicale_storage:
        if not a.user:
            ap.error("--radicale-storage needs --user")
        return radicale_storage(a.out, a.radicale_storage, a.user)
    if a.count:
        return count(a.count, a.user or unquote(urlsplit(a.count).path.strip("/").split("/")[0]), a.password)
    if a.upload:
        user = a.user or unquote(urlsplit(a.upload).path.strip("/").split("/")[0])
        return upload(a.out, a.upload, user, a.password, a.threads, [o for o in a.only.split(",") if o])
    return 0


if __name__ == "__main__":
    sys.exit(main())
