//! `verify`'s views: the human one (a line per account and folder, one per message named, a
//! line per address book or calendar and per item named, then totals) and the `--json`
//! document (docs/verify-json.md).

use std::fmt::Write as _;

use crate::apply::content::dav::DavCheck;
use crate::apply::content::rules::RulesCheck;
use crate::apply::human_bytes;
use crate::verify::header::sanitize;
use crate::verify::{AccountCheck, FolderCheck, MessageRef};

/// Version of the `--json` document (docs/verify-json.md).
pub const JSON_FORMAT_VERSION: u32 = 2;

/// The `--json` document; `limit`: messages listed per folder and kind of difference.
pub fn verify_json(
    checks: &[AccountCheck],
    groupware: &[DavCheck],
    rules: &[RulesCheck],
    limit: usize,
) -> String {
    let groupware_ok =
        groupware.iter().all(|c| c.check.equal()) && rules.iter().all(RulesCheck::equal);
    let doc = serde_json::json!({
        "format_version": JSON_FORMAT_VERSION,
        "ok": checks.iter().all(AccountCheck::ok) && groupware_ok,
        "content_ok": checks.iter().all(AccountCheck::content_ok) && groupware_ok,
        "list_limit": limit,
        "accounts": checks,
        "groupware": groupware.iter().map(groupware_json).collect::<Vec<_>>(),
        "rules": rules,
    });
    format!(
        "{}\n",
        serde_json::to_string_pretty(&doc).expect("serializes")
    )
}

/// One account's comparison of one kind of groupware content, for `--json`.
fn groupware_json(c: &DavCheck) -> serde_json::Value {
    serde_json::json!({
        "account": c.account,
        "kind": format!("{}s", c.kind),
        "ok": c.check.equal(),
        "error": c.check.error,
        "collections": c.check.collections.iter().map(|k| serde_json::json!({
            "name": k.name,
            "destination": k.dest_href,
            "source_count": k.source_count,
            "destination_count": k.dest_count,
            "missing": {"count": k.missing_count, "listed": k.missing},
            "extra": {"count": k.extra_count, "listed": k.extra},
            "changed": {"count": k.changed_count, "listed": k.changed},
            "skipped": {"count": k.skipped_count, "listed": k.skipped},
            "unreadable": k.unreadable,
            "error": k.error,
        })).collect::<Vec<_>>(),
    })
}

/// The human view: one line per account and folder, one per message named, then the address
/// books and calendars, then totals.
pub fn verify_text(
    checks: &[AccountCheck],
    groupware: &[DavCheck],
    rules: &[RulesCheck],
    limit: usize,
) -> String {
    let mut out = String::new();
    let mut capped = false;
    for c in checks {
        let _ = writeln!(
            out,
            "{} {}",
            if c.ok() { "ok      " } else { "MISMATCH" },
            c.account
        );
        if let Some(e) = &c.error {
            let _ = writeln!(out, "    error: {e}");
        }
        for f in &c.folders {
            folder_lines(&mut out, f, &mut capped);
        }
    }
    for c in groupware {
        groupware_lines(&mut out, c, limit, &mut capped);
    }
    for c in rules {
        rules_lines(&mut out, c);
    }
    let sum = |get: &dyn Fn(&FolderCheck) -> u64| -> u64 {
        checks.iter().flat_map(|c| &c.folders).map(get).sum()
    };
    let _ = writeln!(out);
    if !checks.is_empty() || (groupware.is_empty() && rules.is_empty()) {
        let _ = writeln!(
            out,
            "Verify: {} of {} accounts match.",
            checks.iter().filter(|c| c.ok()).count(),
            checks.len()
        );
    }
    if !groupware.is_empty() {
        let collections: Vec<_> = groupware
            .iter()
            .flat_map(|c| &c.check.collections)
            .collect();
        let _ = writeln!(
            out,
            "Contacts, calendars and tasks: {} of {} collections match ({} item(s) missing, {} extra, {} changed, {} skipped by the copy){}.",
            collections.iter().filter(|k| k.equal()).count(),
            collections.len(),
            collections.iter().map(|k| k.missing_count).sum::<u64>(),
            collections.iter().map(|k| k.extra_count).sum::<u64>(),
            collections.iter().map(|k| k.changed_count).sum::<u64>(),
            collections.iter().map(|k| k.skipped_count).sum::<u64>(),
            match groupware.iter().filter(|c| c.check.error.is_some()).count() {
                0 => String::new(),
                n => format!("; {n} not compared, see the errors above"),
            }
        );
    }
    let failed = checks.iter().filter(|c| c.error.is_some()).count();
    if failed > 0 {
        let _ = writeln!(
            out,
            "Not compared: {failed} account(s), see the errors above."
        );
    }
    let content = [
        (sum(&|f| f.missing.count), "missing"),
        (sum(&|f| f.extra.count), "extra"),
        (sum(&|f| f.changed.count), "changed"),
        (sum(&|f| f.skipped.count), "skipped by the copy"),
    ];
    if content.iter().any(|(n, _)| *n > 0) {
        let _ = writeln!(
            out,
            "Content differs: {}.",
            content
                .iter()
                .map(|(n, what)| format!("{n} {what}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let (flags, dates) = (sum(&|f| f.flags.count), sum(&|f| f.internal_dates.count));
    if flags + dates > 0 {
        let _ = writeln!(
            out,
            "Same content, other metadata: {flags} with other flags or keywords, {dates} with another internal date."
        );
    }
    if capped {
        let _ = writeln!(
            out,
            "Lists stop at {limit} messages per folder and kind of difference (`--limit N` changes it; the counts are complete)."
        );
    }
    out
}

/// An account's address books (or calendars) of one kind: a line each, then the items named.
fn groupware_lines(out: &mut String, c: &DavCheck, limit: usize, capped: &mut bool) {
    let _ = writeln!(
        out,
        "{} {} {}s",
        if c.check.equal() {
            "ok      "
        } else {
            "MISMATCH"
        },
        c.account,
        c.kind
    );
    if let Some(e) = &c.check.error {
        let _ = writeln!(out, "    error: {}", sanitize(e));
    }
    for k in &c.check.collections {
        let _ = writeln!(
            out,
            "    {} -> {}: {} on the source, {} on the destination",
            sanitize(&k.name),
            k.dest_href
                .as_deref()
                .map(sanitize)
                .unwrap_or_else(|| "(none)".into()),
            k.source_count,
            k.dest_count
        );
        if let Some(e) = &k.error {
            let _ = writeln!(out, "      error: {}", sanitize(e));
        }
        for (what, count, items) in [
            ("missing", k.missing_count, &k.missing),
            ("extra", k.extra_count, &k.extra),
            ("changed", k.changed_count, &k.changed),
            ("skipped by the copy", k.skipped_count, &k.skipped),
        ] {
            if count == 0 {
                continue;
            }
            let _ = writeln!(out, "      {count} {what}");
            for item in items {
                let _ = writeln!(out, "        {}", sanitize(item));
            }
            if count > items.len() as u64 && items.len() >= limit {
                *capped = true;
            }
        }
        if k.unreadable > 0 {
            let _ = writeln!(
                out,
                "      {} unreadable on the source (not compared; apply lists them)",
                k.unreadable
            );
        }
    }
}

fn folder_lines(out: &mut String, f: &FolderCheck, capped: &mut bool) {
    let counts = [
        (f.missing.count, "missing"),
        (f.extra.count, "extra"),
        (f.changed.count, "changed"),
        (f.skipped.count, "skipped"),
        (f.flags.count, "flags"),
        (f.internal_dates.count, "dates"),
        // Not a difference: Gmail keeps one message per Message-ID in a label.
        (f.merged, "merged by Gmail"),
    ];
    let _ = writeln!(
        out,
        "    {:<28} source {:>6} ({:>9})  destination {:>6} ({:>9}){}",
        sanitize(&f.folder),
        f.source_messages,
        human_bytes(f.source_bytes),
        f.dest_messages,
        human_bytes(f.dest_bytes),
        counts
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("  {what} {n}"))
            .collect::<String>(),
    );
    let line = |out: &mut String, kind: &str, place: String, m: &MessageRef, detail: String| {
        let _ = writeln!(out, "        {kind:<8} {place}  {}{detail}", named(m));
    };
    for m in &f.missing.listed {
        line(out, "missing", source_place(m), m, String::new());
    }
    for m in &f.extra.listed {
        line(out, "extra", format!("UID {}", m.uid), m, String::new());
    }
    for p in &f.changed.listed {
        let detail = format!(
            "; destination UID {} has other content ({} bytes, source {})",
            p.destination.uid, p.destination.size, p.source.size
        );
        line(out, "changed", source_place(&p.source), &p.source, detail);
    }
    for s in &f.skipped.listed {
        let detail = format!("; {}", sanitize(&s.reason));
        line(out, "skipped", source_place(&s.source), &s.source, detail);
    }
    for d in &f.flags.listed {
        let mut parts = Vec::new();
        if !d.lost.is_empty() {
            parts.push(format!("lacks {}", d.lost.join(" ")));
        }
        if !d.added.is_empty() {
            parts.push(format!("adds {}", d.added.join(" ")));
        }
        let detail = format!(
            "; destination UID {} {}",
            d.destination.uid,
            sanitize(&parts.join(", "))
        );
        line(out, "flags", source_place(&d.source), &d.source, detail);
    }
    for p in &f.internal_dates.listed {
        let detail = format!(
            "; internal date {} on the source, {} on destination UID {}",
            p.source.internal_date.as_deref().unwrap_or("?"),
            p.destination.internal_date.as_deref().unwrap_or("?"),
            p.destination.uid
        );
        line(out, "date", source_place(&p.source), &p.source, detail);
    }
    let more = |out: &mut String, l: u64, what: &str, capped: &mut bool| {
        if l > 0 {
            *capped = true;
            let _ = writeln!(out, "        ... and {l} more {what}");
        }
    };
    more(out, f.missing.unlisted(), "missing", capped);
    more(out, f.extra.unlisted(), "extra", capped);
    more(out, f.changed.unlisted(), "changed", capped);
    more(out, f.skipped.unlisted(), "skipped", capped);
    more(out, f.flags.unlisted(), "with other flags", capped);
    more(
        out,
        f.internal_dates.unlisted(),
        "with another internal date",
        capped,
    );
}

/// Where a source message is: its folder and UID.
fn source_place(m: &MessageRef) -> String {
    format!("{} UID {}", sanitize(&m.folder), m.uid)
}

/// Message-ID, date and subject: what a person searches their mail client for.
fn named(m: &MessageRef) -> String {
    format!(
        "{}  {}  {}",
        m.message_id.as_deref().unwrap_or("(no Message-ID)"),
        m.date.as_deref().unwrap_or("(no Date)"),
        m.subject
            .as_deref()
            .map_or_else(|| "(no Subject)".to_string(), |s| format!("\"{s}\""))
    )
}

/// An account's rules: one line, then each rule that differs.
fn rules_lines(out: &mut String, c: &RulesCheck) {
    let _ = writeln!(
        out,
        "{} {} rules: {} on the source{}{}",
        if c.equal() { "ok      " } else { "MISMATCH" },
        c.account,
        c.source_rules,
        if c.active || c.source_rules == 0 {
            ""
        } else {
            ", the destination's script `mailshift` does not run"
        },
        match c.untranslatable {
            0 => String::new(),
            n => format!(" ({n} part(s) to carry by hand, not compared)"),
        }
    );
    if let Some(e) = &c.error {
        let _ = writeln!(out, "    error: {e}");
    }
    for r in &c.missing {
        let _ = writeln!(out, "    missing on the destination: {r}");
    }
    for r in &c.extra {
        let _ = writeln!(out, "    only on the destination: {r}");
    }
}
