#!/usr/bin/env python3
"""Benchmark corpus for mailshift's bench/run.sh: writes a seeded, realistic mailbox straight
into a Dovecot user's Maildir (LAYOUT=fs, as scripts/dovecot.sh configures it).

Writing files directly is ~100x faster than APPENDing over IMAP, and it leaves the IMAP path
unmeasured until the tools under test use it. Same seed, variant and scale: same bytes.

    corpus.py --home DIR/mail/USER --variant realistic|small [--seed N] [--scale F]
              [--manifest FILE] [--owner UID:GID]

Python 3 standard library only.
"""

import argparse
import base64
import json
import math
import os
import random
import shutil
import sys
import time
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone

# Sixteen selectable folders: nesting, a dot (LAYOUT=fs allows it, maildir++ does not),
# spaces, '&' (escaped as "&-" in modified UTF-7), Latin accents and CJK. Weights are the
# share of messages each folder gets.
FOLDERS = [
    ("INBOX", 30),
    ("Sent", 12),
    ("Drafts", 1),
    ("Trash", 3),
    ("Junk", 2),
    ("Archive", 8),
    ("Archive/2023", 10),
    ("Archive/2024", 10),
    ("Projects", 3),
    ("Projects/Beta", 3),
    ("Projects/Beta/Specs v1.2", 2),
    ("Reçus", 4),
    ("Données", 2),
    ("Données/Clients", 3),
    ("日本語", 2),
    ("Newsletters & Lists", 5),
]

KEYWORD = "Invoice"  # the custom keyword; Dovecot maps it to maildir flag letter 'a'

VARIANTS = {
    # count, target total bytes (as stored, LF line ends)
    "realistic": (5000, 350_000_000),
    "small": (20000, 6_000 * 20000),
}
MIN_SIZE = 2_000
MAX_SIZE = 10_000_000

WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at "
    "which but have an they you were her she there one all we can has more their if will "
    "meeting invoice report project quarter budget review draft deadline client contract "
    "server migration mailbox account update schedule please thanks regards attached "
    "proposal figures summary agenda minutes follow-up question answer today tomorrow week "
    "monday friday office team release version customer support ticket order delivery"
).split()
ACCENTED = "déjà réunion façade naïve Zürich straße coöperate résumé año niño 東京 会議 données reçu".split()
NAMES = [
    ("Alice Martin", "alice@example.com"), ("Bob Durand", "bob@example.org"),
    ("Chloé Bernard", "chloe@example.net"), ("David Kim", "dkim@corp.example"),
    ("Emma Rossi", "emma.rossi@example.it"), ("Fumiko Sato", "fumiko@example.jp"),
    ("Grégoire Petit", "greg@example.fr"), ("Hannah Schmidt", "hannah@example.de"),
    ("Billing", "billing@shop.example"), ("Newsletter", "news@lists.example"),
]
ATTACH_TYPES = [
    ("application/pdf", "pdf"), ("image/jpeg", "jpg"), ("image/png", "png"),
    ("application/zip", "zip"),
    ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
]


def mutf7(name: str) -> str:
    """RFC 3501 modified UTF-7, the encoding Dovecot 2.3 uses for folder names on disk."""
    out, buf = [], []

    def flush():
        if buf:
            raw = "".join(buf).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode().rstrip("=").replace("/", ",") + "-")
            buf.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            buf.append(ch)
    flush()
    return "".join(out)


class Gen:
    def __init__(self, seed: int):
        self.r = random.Random(seed)
        # A pool of paragraphs: bodies are varied but building one costs a few joins, which
        # keeps 20,000 messages well under a minute.
        r = self.r
        self.paras = []
        for _ in range(400):
            words = [r.choice(WORDS) for _ in range(r.randint(30, 120))]
            if r.random() < 0.2:
                words[r.randrange(len(words))] = r.choice(ACCENTED)
            words[0] = words[0].capitalize()
            self.paras.append(" ".join(words) + ".")

    def text(self, nbytes: int) -> str:
        r, parts, n = self.r, [], 0
        while n < nbytes:
            p = r.choice(self.paras)
            parts.append(p)
            n += len(p.encode()) + 2
        return wrap("\n\n".join(parts))[:max(nbytes, 1)]

    def sizes(self, count: int, total: int) -> list:
        """Heavy-tailed sizes: 2 KB plus a log-normal (median ~6 KB, a few near 10 MB), clamped
        to [2 KB, 10 MB], with the tail stretched until the sum is within 1% of the target."""
        r = self.r
        base = [MIN_SIZE + math.exp(r.gauss(math.log(4_000), 2.4)) for _ in range(count)]
        lo, hi = 0.1, 50.0
        for _ in range(60):
            f = (lo + hi) / 2
            s = sum(clamp(b * f if b > 16_000 else b) for b in base)
            if abs(s - total) < total * 0.01:
                break
            lo, hi = (f, hi) if s < total else (lo, f)
        return [int(clamp(b * f if b > 16_000 else b)) for b in base]


def clamp(x):
    return min(MAX_SIZE, max(MIN_SIZE, x))


def wrap(text: str, width: int = 76) -> str:
    lines = []
    for para in text.split("\n"):
        while len(para) > width:
            cut = para.rfind(" ", 0, width)
            cut = cut if cut > 0 else width
            lines.append(para[:cut])
            para = para[cut:].lstrip(" ")
        lines.append(para)
    return "\n".join(lines)


def html_of(text: str) -> str:
    paras = "".join(f"<p>{p}</p>\n" for p in text.split("\n\n"))
    return f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body>\n{paras}</body></html>"


def build_message(g: Gen, i: int, size: int, folder: str, date: datetime, msgid):
    """One RFC 5322 message of roughly `size` bytes (LF line ends, as Dovecot stores them)."""
    r = g.r
    frm, to = r.sample(NAMES, 2)
    if folder == "Sent":
        frm = ("Bench User", "bench@example.com")
    subject_words = " ".join(r.choice(WORDS) for _ in range(r.randint(2, 9))).capitalize()
    if r.random() < 0.15:
        subject_words += " " + r.choice(ACCENTED)
    subject = subject_words
    if any(ord(c) > 127 for c in subject):
        subject = "=?UTF-8?B?" + base64.b64encode(subject.encode()).decode() + "?="
    h = [
        f"Return-Path: <{frm[1]}>",
        f"Received: from mx{r.randint(1, 9)}.example.net (mx.example.net [192.0.2.{r.randint(1, 254)}])\n"
        f"\tby imap.example.com with ESMTPS id {r.getrandbits(48):012x}\n\tfor <{to[1]}>; {format_datetime(date)}",
        f"From: {frm[0]} <{frm[1]}>",
        f"To: {to[0]} <{to[1]}>",
        f"Subject: {subject}",
        f"Date: {format_datetime(date - timedelta(seconds=r.randint(5, 600)))}",
    ]
    if msgid is not None:
        h.append(f"Message-ID: {msgid}")
    if r.random() < 0.3:
        refs = " ".join(f"<{r.getrandbits(64):016x}@example.net>" for _ in range(r.randint(1, 6)))
        h.append("References: " + wrap(refs, 70).replace("\n", "\n "))
    h.append("MIME-Version: 1.0")
    head_len = sum(len(x) + 1 for x in h)
    body_budget = max(200, size - head_len - 200)
    boundary = f"=_bench_{i}_{r.getrandbits(32):08x}"

    if size < 20_000:
        # Text only: plain, or plain+html alternative; some 8bit UTF-8.
        if r.random() < 0.5:
            txt = g.text(body_budget)
            h.append("Content-Type: text/plain; charset=utf-8")
            h.append("Content-Transfer-Encoding: 8bit")
            body = txt
        else:
            txt = g.text(body_budget * 2 // 5)
            h.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
            body = alternative(txt, boundary)
        return ("\n".join(h) + "\n\n" + body + "\n").encode()

    # Attachments: split what remains after a short text part among 1 to 3 base64 parts.
    txt = g.text(r.randint(500, 6_000))
    alt_b = boundary + "_alt"
    nparts = r.choice([1, 1, 1, 2, 3])
    raw_total = max(100, (body_budget - len(txt) * 2) * 76 // 103)  # base64 + newlines
    parts = [f"--{boundary}\nContent-Type: multipart/alternative; boundary=\"{alt_b}\"\n\n"
             + alternative(txt, alt_b)]
    for k in range(nparts):
        ctype, ext = r.choice(ATTACH_TYPES)
        n = raw_total // nparts
        data = base64.encodebytes(r.randbytes(n)).decode()
        fname = f"{r.choice(WORDS)}-{i}-{k}.{ext}"
        parts.append(
            f"--{boundary}\nContent-Type: {ctype}; name=\"{fname}\"\n"
            f"Content-Disposition: attachment; filename=\"{fname}\"\n"
            f"Content-Transfer-Encoding: base64\n\n{data}"
        )
    h.append(f'Content-Type: multipart/mixed; boundary="{boundary}"')
    body = "This is a multi-part message in MIME format.\n\n" + "\n".join(parts) + f"\n--{boundary}--\n"
    return ("\n".join(h) + "\n\n" + body).encode()


def alternative(txt: str, b: str) -> str:
    return (
        f"--{b}\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n{txt}\n"
        f"--{b}\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n{html_of(txt)}\n"
        f"--{b}--\n"
    )


def flags_for(r: random.Random, folder: str, age_days: float) -> str:
    """Maildir info flags, letters sorted as Dovecot writes them (uppercase, then keywords)."""
    f = set()
    if folder in ("Sent", "Drafts") or age_days > 14 or r.random() < 0.6:
        f.add("S")
    if folder == "Drafts":
        f.add("D")
    if r.random() < 0.05:
        f.add("F")
    if folder not in ("Sent", "Drafts", "Junk") and r.random() < 0.12:
        f.add("R")
    if r.random() < 0.04:
        f.add("a")  # KEYWORD
    return "".join(sorted(f))


def generate(home: str, variant: str, seed: int, scale: float, owner):
    count_full, total_full = VARIANTS[variant]
    count = max(len(FOLDERS), int(round(count_full * scale)))
    total = total_full * count / count_full
    g = Gen(seed)
    r = g.r
    maildir = os.path.join(home, "Maildir")
    if os.path.exists(maildir):
        shutil.rmtree(maildir)
    paths = {}
    for name, _ in FOLDERS:
        d = os.path.join(maildir, *[mutf7(p) for p in name.split("/")])
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        # Keyword letter 'a' means KEYWORD in every folder; Dovecot reads this file.
        with open(os.path.join(d, "dovecot-keywords"), "w") as fh:
            fh.write(f"0 {KEYWORD}\n")
        paths[name] = d

    if variant == "small":
        sizes = [int(r.triangular(3_000, 10_000, 5_500)) for _ in range(count)]
    else:
        sizes = g.sizes(count, total)
    names = [n for n, _ in FOLDERS]
    weights = [w for _, w in FOLDERS]
    # Every folder gets at least one message so folder creation is always exercised.
    assign = names + r.choices(names, weights, k=count - len(names))
    r.shuffle(assign)

    now = datetime(2026, 11, 1, 9, 0, tzinfo=timezone.utc)  # fixed: output must not depend on today
    tzs = [timezone.utc, timezone(timedelta(hours=1)), timezone(timedelta(hours=-5)),
           timezone(timedelta(hours=9)), timezone(timedelta(hours=5, minutes=30))]
    stats = {n: {"messages": 0, "bytes": 0} for n in names}
    written = []  # (folder, bytes, msgid) of earlier messages, for duplicates
    dup_exact = dup_msgid = no_msgid = 0
    t0 = time.monotonic()
    for i, (folder, size) in enumerate(zip(assign, sizes)):
        age = r.expovariate(1 / 300) if folder != "INBOX" else r.expovariate(1 / 60)
        age = min(age, 5 * 365)
        date = (now - timedelta(days=age)).astimezone(r.choice(tzs))
        roll = r.random()
        if written and roll < 0.004:
            # A byte-identical copy (same folder or another): must be copied, not deduplicated.
            src_folder, data, _ = written[r.randrange(len(written))]
            if r.random() < 0.5:
                folder = src_folder
            dup_exact += 1
        else:
            if written and roll < 0.012:
                msgid = written[r.randrange(len(written))][2] or f"<{i}.dup@bench.example>"
                dup_msgid += 1
            elif roll < 0.022:
                msgid = None
                no_msgid += 1
            else:
                msgid = f"<{r.getrandbits(64):016x}.{i}@{r.choice(NAMES)[1].split('@')[1]}>"
            data = build_message(g, i, size, folder, date, msgid)
            written.append((folder, data, msgid))
        mtime = int(date.timestamp())
        flags = flags_for(r, folder, age)
        base = f"{mtime}.M{i:06d}P{seed}.bench,S={len(data)}"
        if folder == "INBOX" and age < 2 and "S" not in flags and r.random() < 0.5:
            path = os.path.join(paths[folder], "new", base)  # delivered, not yet seen by a client
        else:
            path = os.path.join(paths[folder], "cur", f"{base}:2,{flags}")
        with open(path, "wb") as fh:
            fh.write(data)
        os.utime(path, (mtime, mtime))  # the maildir internal date is the file's mtime
        stats[folder]["messages"] += 1
        stats[folder]["bytes"] += len(data)

    if owner:
        uid, gid = owner
        for root, dirs, files in os.walk(home):
            os.chown(root, uid, gid)
            for f in files:
                os.chown(os.path.join(root, f), uid, gid)
    total_bytes = sum(s["bytes"] for s in stats.values())
    return {
        "variant": variant, "seed": seed, "scale": scale, "messages": count,
        "bytes": total_bytes, "exact_duplicates": dup_exact,
        "duplicate_message_ids": dup_msgid, "without_message_id": no_msgid,
        "largest": max(sizes), "folders": stats, "seconds": round(time.monotonic() - t0, 2),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", required=True, help="the user's home (Maildir goes inside; replaced)")
    ap.add_argument("--variant", choices=sorted(VARIANTS), default="realistic")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the full message count")
    ap.add_argument("--manifest", help="write counts and sizes here as JSON")
    ap.add_argument("--owner", help="UID:GID to own the files (default: nobody when root)")
    a = ap.parse_args()
    if not 0 < a.scale <= 10:
        ap.error("--scale must be in (0, 10]")
    owner = None
    if a.owner:
        owner = tuple(int(x) for x in a.owner.split(":"))
    elif os.geteuid() == 0:
        import pwd
        pw = pwd.getpwnam("nobody")  # what scripts/dovecot.sh gives its users as root
        owner = (pw.pw_uid, pw.pw_gid)
    m = generate(a.home, a.variant, a.seed, a.scale, owner)
    if a.manifest:
        with open(a.manifest, "w") as fh:
            json.dump(m, fh, indent=1, ensure_ascii=False)
    print(f"corpus: {a.variant} seed={a.seed} scale={a.scale}: {m['messages']} messages, "
          f"{m['bytes'] / 1e6:.1f} MB in {len(m['folders'])} folders "
          f"({m['exact_duplicates']} exact duplicates, {m['duplicate_message_ids']} duplicate "
          f"Message-IDs, {m['without_message_id']} without Message-ID) in {m['seconds']} s",
          file=sys.stderr)


if __name__ == "__main__":
    main()
