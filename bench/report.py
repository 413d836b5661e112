#!/usr/bin/env python3
"""Prints bench/run.sh's comparison table from its raw measurements (medians over runs).

    report.py results.tsv corpus.tsv

MB is 10^6 bytes of messages as IMAP serves them (CRLF, what crosses the wire). Ratios are
mailshift's median over each peer's: below 1 means mailshift took less time.
"""

import csv
import sys
from statistics import median


def main():
    rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
    corpus = {r["variant"]: r for r in csv.DictReader(open(sys.argv[2]), delimiter="\t")}
    ok = [r for r in rows if r["rc"] == "0"]
    groups = {}
    for r in ok:
        groups.setdefault((r["variant"], r["tool"], r["phase"]), []).append(r)
    keys = sorted({(v, t) for v, t, _ in groups}, key=lambda k: (k[0], k[1] != "mailshift", k[1]))
    # bench/accounts.sh also records the whole machine's CPU time (the servers' with the tool's).
    busy_col = bool(rows) and "busy_s" in rows[0]
    hdr = ["tool", "variant", "msgs", "MB", "full s", "(min-max)", "msgs/s", "MB/s", "RSS MB", "CPU s"]
    hdr += ["machine CPU s"] if busy_col else []
    hdr += ["no-op s", "runs"]
    table = []
    med = {}
    for v, t in keys:
        full = groups.get((v, t, "full"), [])
        noop = groups.get((v, t, "noop"), [])
        msgs = int(corpus[v]["messages"])
        mb = int(corpus[v]["bytes"]) / 1e6
        fs = median(float(r["wall_s"]) for r in full) if full else None
        ns = median(float(r["wall_s"]) for r in noop) if noop else None
        rss = median(int(r["max_rss_kb"]) for r in full) / 1024 if full else None
        cpu = median(float(r["user_s"]) + float(r["sys_s"]) for r in full) if full else None
        spread = f"{min(float(r['wall_s']) for r in full):.2f}-{max(float(r['wall_s']) for r in full):.2f}" if full else "-"
        med[(v, t)] = (fs, ns)
        f = lambda x, fmt: "-" if x is None else format(x, fmt)
        row = [t, v, str(msgs), f"{mb:.1f}", f(fs, ".2f"), spread, f(fs and msgs / fs, ".0f"),
               f(fs and mb / fs, ".1f"), f(rss, ".1f"), f(cpu, ".2f")]
        if busy_col:
            row.append(f(median(float(r["busy_s"]) for r in full) if full else None, ".2f"))
        table.append(row + [f(ns, ".3f"), str(len(full))])
    widths = [max(len(x) for x in col) for col in zip(hdr, *table)]
    for line in [hdr] + table:
        print("  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths))))
    failed = [r for r in rows if r["rc"] != "0"]
    if failed:
        print(f"\n{len(failed)} measurement(s) failed and are left out: "
              + ", ".join(f"{r['tool']} {r['variant']} run {r['run']} {r['phase']} (exit {r['rc']})" for r in failed))
    ratios = []
    for (v, t), (fs, ns) in med.items():
        ms = med.get((v, "mailshift"))
        if t == "mailshift" or not ms:
            continue
        r = lambda a, b: "-" if not a or not b else f"{a / b:.2f}x"
        ratios.append(f"  mailshift/{t} {v}: full copy {r(ms[0], fs)}, no-op {r(ms[1], ns)}")
    if ratios:
        print("\nmailshift time / peer time (below 1: mailshift is faster):")
        print("\n".join(ratios))
    print("\nfull/no-op s: median wall time (min-max: the full copy's spread over runs); RSS: median peak resident set of the tool's process"
          " (not the servers'); CPU s: the tool's user+sys for the full copy"
          + ("; machine CPU s: every process's CPU time during the full copy, the servers' included"
             " (the machine's CPUs times the wall time is the most there is)." if busy_col else "."))


if __name__ == "__main__":
    main()
