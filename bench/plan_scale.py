#!/usr/bin/env python3
"""Writes a plan with N accounts between two IMAP platforms, for timing `mailshift plan` at
scale (issue 10's targets: 10,000 and 100,000 accounts). Usage: plan_scale.py N > plan.yaml"""
import sys


def main() -> None:
    n = int(sys.argv[1])
    out = sys.stdout
    out.write(
        "version: 1\n"
        "platforms:\n"
        "  old: {type: imap, imap: {host: imap.old.example, port: 993, security: tls}}\n"
        "  new: {type: imap, imap: {host: imap.new.example, port: 993, security: tls}}\n"
        "accounts:\n"
    )
    for i in range(n):
        out.write(
            f"  - address: user{i}@example.com\n"
            "    from: old\n"
            "    to: new\n"
            f"    source: {{login: user{i}, password: {{env: OLD_PW}}}}\n"
            f"    destination: {{login: user{i}, password: {{env: NEW_PW}}}}\n"
        )


if __name__ == "__main__":
    main()
