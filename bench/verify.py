#!/usr/bin/env python3
"""Checks a benchmark copy over IMAP, independently of the tool that made it (bench/run.sh).

    verify.py snapshot --port P --user U --password-env VAR --out FILE [--strip-header NAME]
    verify.py compare SRC.json DST.json [--lossy-keywords] [--label TEXT]

`snapshot` lists every selectable folder and records per message the SHA-256 and size of
BODY[] (the bytes a client sees, CRLF), the system flags, the keywords and INTERNALDATE, with
BODY.PEEK so reading sets no \\Seen. `--strip-header X-TUID` drops that header from each
message before hashing: mbsync inserts it into every message it uploads. `compare` exits 1
when folders, counts, contents (as multisets: duplicates count), flags or dates differ;
`--lossy-keywords` turns a keyword loss (known for mbsync 1.4) into a warning.

Python 3 standard library only; talks to 127.0.0.1 only.
"""

import argparse
import hashlib
import imaplib
import json
import os
import re
import sys
from collections import Counter
from datetime import datetime

SYSTEM_FLAGS = {"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"}
LIST_RE = re.compile(rb'\((?P<attrs>[^)]*)\) (?P<sep>"(?:[^"\\]|\\.)*"|NIL) (?P<name>.+)$')
FLAGS_RE = re.compile(rb"FLAGS \(([^)]*)\)")
DATE_RE = re.compile(rb'INTERNALDATE "([^"]+)"')
CHUNK = 200  # messages per FETCH: bounds memory with 10 MB messages in the corpus


def unquote(b: bytes) -> str:
    s = b.decode()
    if s.startswith('"'):
        s = re.sub(r"\\(.)", r"\1", s[1:-1])
    return s


def quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def strip_header(msg: bytes, name: bytes) -> bytes:
    end = msg.find(b"\r\n\r\n")
    head, rest = (msg, b"") if end < 0 else (msg[: end + 2], msg[end + 2 :])
    pat = re.compile(rb"(?im)^" + re.escape(name) + rb":[^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*")
    return pat.sub(b"", head) + rest


def epoch(internaldate: bytes) -> int:
    return int(datetime.strptime(internaldate.decode().strip(), "%d-%b-%Y %H:%M:%S %z").timestamp())


def snapshot(port: int, user: str, password: str, strip: str | None) -> dict:
    c = imaplib.IMAP4("127.0.0.1", port, timeout=120)
    c.login(user, password)
    typ, lines = c.list('""', "*")
    if typ != "OK":
        raise SystemExit(f"verify: LIST failed on port {port}: {lines}")
    folders = {}
    for line in lines:
        if not line:
            continue
        m = LIST_RE.match(line)
        if not m:
            raise SystemExit(f"verify: unparsable LIST line {line!r}")
        attrs = m.group("attrs").lower()
        if b"\\noselect" in attrs or b"\\nonexistent" in attrs:
            continue
        name = unquote(m.group("name"))
        typ, data = c.select(quote(name), readonly=True)
        if typ != "OK":
            raise SystemExit(f"verify: EXAMINE {name} failed on port {port}: {data}")
        exists = int(data[0])
        msgs = []
        for start in range(1, exists + 1, CHUNK):
            end = min(exists, start + CHUNK - 1)
            typ, data = c.fetch(f"{start}:{end}", "(FLAGS INTERNALDATE BODY.PEEK[])")
            if typ != "OK":
                raise SystemExit(f"verify: FETCH in {name} failed: {data}")
            cur = None
            for item in data:
                if isinstance(item, tuple):
                    cur = [item[0], item[1]]
                    msgs.append(cur)
                elif cur is not None and item:
                    cur[0] += item  # items after the literal, e.g. " FLAGS (...))"
        recs = []
        for meta, body in msgs:
            if strip:
                body = strip_header(body, strip.encode())
            flags = FLAGS_RE.search(meta).group(1).decode().split()
            recs.append([
                hashlib.sha256(body).hexdigest(),
                len(body),
                sorted(f for f in flags if f in SYSTEM_FLAGS),
                sorted(f for f in flags if not f.startswith("\\")),
                epoch(DATE_RE.search(meta).group(1)),
            ])
        recs.sort()
        if len(recs) != exists:
            raise SystemExit(f"verify: {name}: fetched {len(recs)} of {exists} messages")
        folders[name] = recs
    c.logout()
    return {
        "port": port,
        "stripped_header": strip,
        "messages": sum(len(v) for v in folders.values()),
        "bytes": sum(r[1] for v in folders.values() for r in v),
        "folders": folders,
    }


def compare(src: dict, dst: dict, lossy_keywords: bool, label: str) -> bool:
    problems, warnings = [], []
    sf, df = src["folders"], dst["folders"]
    for name in sorted(set(sf) - set(df)):
        problems.append(f"folder {name!r} missing ({len(sf[name])} messages)")
    for name in sorted(set(df) - set(sf)):
        (problems if df[name] else warnings).append(
            f"extra destination folder {name!r} ({len(df[name])} messages)")
    kw_lost = 0
    for name in sorted(set(sf) & set(df)):
        s, d = sf[name], df[name]
        if len(s) != len(d):
            problems.append(f"{name!r}: {len(s)} messages on the source, {len(d)} on the destination")
        sc, dc = Counter(r[0] for r in s), Counter(r[0] for r in d)
        missing, extra = sum((sc - dc).values()), sum((dc - sc).values())
        if missing or extra:
            problems.append(f"{name!r}: {missing} source messages not found byte for byte, {extra} unexpected")
            continue
        # Same content multiset: now what travels with each message, paired by content.
        for idx, what in ((2, "flags"), (4, "internal dates")):
            a = Counter((r[0], json.dumps(r[idx])) for r in s)
            b = Counter((r[0], json.dumps(r[idx])) for r in d)
            diff = sum((a - b).values())
            if diff:
                problems.append(f"{name!r}: {diff} messages with different {what}")
        a = Counter((r[0], json.dumps(r[3])) for r in s)
        b = Counter((r[0], json.dumps(r[3])) for r in d)
        diff = sum((a - b).values())
        if diff:
            kw_lost += diff
            if not lossy_keywords:
                problems.append(f"{name!r}: {diff} messages with different keywords")
    if kw_lost and lossy_keywords:
        warnings.append(f"{kw_lost} messages lost or changed keywords (known for this tool)")
    for p in problems:
        print(f"verify {label}: FAIL: {p}")
    for w in warnings:
        print(f"verify {label}: warning: {w}")
    ok = not problems
    how = "contents after removing " + dst["stripped_header"] if dst.get("stripped_header") else "contents byte for byte"
    print(f"verify {label}: {'OK' if ok else 'FAILED'}: {dst['messages']}/{src['messages']} messages "
          f"in {len(df)}/{len(sf)} folders; {how}, flags, internal dates"
          + (", keywords" if not lossy_keywords else ""))
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("snapshot")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--user", required=True)
    s.add_argument("--password-env", required=True, help="name of the env var holding the password")
    s.add_argument("--out", required=True)
    s.add_argument("--strip-header")
    c = sub.add_parser("compare")
    c.add_argument("src")
    c.add_argument("dst")
    c.add_argument("--lossy-keywords", action="store_true")
    c.add_argument("--label", default="")
    a = ap.parse_args()
    if a.cmd == "snapshot":
        snap = snapshot(a.port, a.user, os.environ[a.password_env], a.strip_header)
        with open(a.out, "w") as fh:
            json.dump(snap, fh, ensure_ascii=False)
        print(f"snapshot: port {a.port}: {snap['messages']} messages, {snap['bytes'] / 1e6:.1f} MB "
              f"in {len(snap['folders'])} folders", file=sys.stderr)
    else:
        with open(a.src) as f1, open(a.dst) as f2:
            ok = compare(json.load(f1), json.load(f2), a.lossy_keywords, a.label)
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
