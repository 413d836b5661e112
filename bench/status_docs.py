#!/usr/bin/env python3
"""Writes the /api/status documents that N shards' watches would serve for a plan of M accounts
(user{i}@example.com, as plan_scale.py writes them), each account in the shard its address
hashes to (the same FNV-1a + jump consistent hash as mailshift_core::shard), every account
synced with one mail step done. Usage: status_docs.py M N DIR  (writes DIR/shard-I/api/status)
"""
import json
import os
import sys

MASK = 2**64 - 1


def shard_of(address: str, count: int) -> int:
    h = 0xCBF29CE484222325
    for b in address.strip().lower().encode():
        h ^= b
        h = (h * 0x100000001B3) & MASK
    key, b, j = h, -1, 0
    while j < count:
        b = j
        key = (key * 2862933555777941757 + 1) & MASK
        j = int((b + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return b


def main() -> None:
    m, n, root = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    shards = [[] for _ in range(n)]
    for i in range(m):
        address = f"user{i}@example.com"
        shards[shard_of(address, n)].append((i, address))
    now = "2026-11-29T00:00:00Z"
    for s, accounts in enumerate(shards):
        rows, resources, messages, size = [], [], 0, 0
        for i, address in accounts:
            msgs, b = 100 + i % 900, (100 + i % 900) * 20_000
            messages += msgs
            size += b
            rows.append({
                "address": address, "health": "synced", "state": "idle", "in_plan": True,
                "cut_over": False, "steps_done": 1, "steps_total": 1, "progress": 1.0,
                "copy": {"to_copy": 0, "copied": 0, "bytes": 0},
                "messages_migrated": msgs, "bytes_migrated": b,
                "last_sync": now, "lag_seconds": 60, "last_run": now, "last_error": None,
                "error_kind": None, "failures": 0, "next_run": "2026-11-29T00:15:00Z",
            })
            resources.append({
                "id": f"account/{address}/mail", "kind": "mail", "account": address,
                "in_plan": True, "status": "done",
                "summary": f"copy mail of {address}: old ({address}) → new ({address})",
                "last_error": None, "detail": None, "updated_at": now, "sync_point": 3,
                "next_run": "2026-11-29T00:15:00Z",
                "progress": {"running": False, "to_copy": 0, "copied": 0,
                             "messages_migrated": msgs, "bytes_migrated": b},
            })
        doc = {
            "version": "0.1.0", "shard": {"index": s, "count": n}, "now": now,
            "started_at": "2026-11-28T20:00:00Z", "stopping": False,
            "plan": {"path": "/etc/mailshift/plan.yaml", "sha256": "0123456789abcdef",
                     "generation": 1, "loaded_at": "2026-11-28T20:00:00Z", "error": None,
                     "error_at": None},
            "summary": {"accounts": len(rows), "failing": 0, "running": 0, "synced": len(rows),
                        "paused": 0, "messages_migrated": messages, "bytes_migrated": size},
            "accounts": rows, "platform": None, "resources": resources,
        }
        d = os.path.join(root, f"shard-{s}", "api")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "status"), "w") as f:
            json.dump(doc, f)


if __name__ == "__main__":
    main()
