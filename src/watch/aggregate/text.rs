//! The merged view as `mailshift status` prints: the shards and their health first, then what
//! is wrong, then a line per account with its steps below it (as `status PLAN` prints them
//! from the state), the steps of no account, and the totals.

use std::fmt::Write;

use crate::apply::human_bytes;
use crate::plan::diagnostic::plural;
use crate::watch::status::{ResourceView, Snapshot};

pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    let reachable = s.shards.iter().filter(|h| h.reachable).count();
    let _ = writeln!(out, "shards  {reachable} of {} reachable", s.shards.len());
    for h in &s.shards {
        let which = h
            .shard
            .map_or_else(|| "?".to_string(), |x| format!("{}/{}", x.index, x.count));
        if h.reachable {
            let _ = writeln!(
                out,
                "    shard {which:<6} {}  answered in {} ms, mailshift {}, plan {} (generation {}), {}, {} failing",
                h.url,
                h.latency_ms.unwrap_or(0),
                h.version.as_deref().unwrap_or("?"),
                h.plan_sha256.as_deref().unwrap_or("?"),
                h.plan_generation.unwrap_or(0),
                plural(h.accounts, "account"),
                h.failing
            );
        } else {
            let _ = writeln!(
                out,
                "    shard {which:<6} {}  UNREACHABLE: {}",
                h.url,
                h.error.as_deref().unwrap_or("no answer")
            );
        }
    }
    for p in &s.problems {
        let _ = writeln!(out, "error: {p}");
    }
    for n in &s.notes {
        let _ = writeln!(out, "note: {n}");
    }
    // Resources by account, in the order the document lists them (by id).
    let mut by_account: std::collections::HashMap<(&str, Option<u32>), Vec<&ResourceView>> =
        std::collections::HashMap::new();
    for r in &s.resources {
        if let Some(a) = &r.account {
            by_account.entry((a.as_str(), r.shard)).or_default().push(r);
        }
    }
    let mut accounts: Vec<_> = s.accounts.iter().collect();
    accounts.sort_by(|a, b| (&a.address, a.shard).cmp(&(&b.address, b.shard)));
    for a in accounts {
        let _ = writeln!(
            out,
            "{}  {}/{} steps done{}  [shard {}]",
            a.address,
            a.steps_done,
            a.steps_total,
            if a.cut_over { ", cut over" } else { "" },
            a.shard.map_or_else(|| "?".to_string(), |i| i.to_string())
        );
        if let Some(note) = &a.paused_by_note {
            let _ = writeln!(out, "    {:<30} {note}", "");
        }
        let prefix = format!("account/{}/", a.address);
        for r in by_account
            .get(&(a.address.as_str(), a.shard))
            .into_iter()
            .flatten()
        {
            line(&mut out, r, r.id.strip_prefix(&prefix).unwrap_or(&r.id));
            if let Some(p) = &r.progress
                && (p.messages_migrated > 0 || p.running)
            {
                let _ = writeln!(
                    out,
                    "    {:<30} {} ({}) recorded as copied",
                    "",
                    plural(p.messages_migrated as usize, "message"),
                    human_bytes(p.bytes_migrated)
                );
            }
        }
    }
    let platform: Vec<&ResourceView> = s.resources.iter().filter(|r| r.account.is_none()).collect();
    if let Some(p) = &s.platform {
        let _ = writeln!(
            out,
            "platforms  {}/{} steps done",
            p.steps_done, p.steps_total
        );
        for r in platform {
            line(&mut out, r, &r.id);
        }
    }
    for c in &s.cutovers {
        out.push_str(&c.text());
    }
    let t = &s.summary;
    let _ = writeln!(
        out,
        "total  {}: {} failing, {} running, {} synced{} · {} ({}) migrated",
        plural(t.accounts, "account"),
        t.failing,
        t.running,
        t.synced,
        if t.paused > 0 {
            format!(", {} paused", t.paused)
        } else {
            String::new()
        },
        plural(t.messages_migrated as usize, "message"),
        human_bytes(t.bytes_migrated)
    );
    out
}

fn line(out: &mut String, r: &ResourceView, label: &str) {
    let mut extra = String::new();
    if let Some(p) = r.sync_point {
        extra.push_str(&format!(", sync point {p}"));
    }
    if let Some(t) = &r.updated_at {
        extra.push_str(&format!(", {t}"));
    }
    if let Some(e) = r.last_error.as_ref().or(r.detail.as_ref()) {
        extra.push_str(&format!(": {e}"));
    }
    let _ = writeln!(out, "    {label:<30} {}{extra}", r.status);
}
