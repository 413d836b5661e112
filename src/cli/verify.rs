//! `mailshift verify PLAN`: per account and destination folder, counts and sizes on both
//! sides, then each message that is missing, extra or changed, and each one whose flags,
//! keywords or internal date differ, named by folder, UID, Message-ID, date and subject.
//! The comparison lives in `crate::verify`; this file renders it (text or `--json`, whose
//! shape docs/verify-json.md describes) and sets the exit code.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use super::{CliError, load_plan};
use crate::apply::{account_targets, copy_options, human_bytes};
use crate::plan::model::Content;
use crate::verify::header::sanitize;
use crate::verify::{AccountCheck, DEFAULT_LIST_LIMIT, FolderCheck, MessageRef, verify_account};

/// Version of the `--json` document (docs/verify-json.md).
pub const JSON_FORMAT_VERSION: u32 = 2;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Exit status: 0 when every account matches; 1 when a message is missing, extra or changed, \
when flags, keywords or internal dates differ on messages whose content matches (a summary \
line says which kind), or when an account could not be compared.")]
pub struct Args {
    /// The plan file (`.yaml`, `.yml` or `.toml`).
    pub plan: PathBuf,
    /// Print the result as JSON (docs/verify-json.md).
    #[arg(long)]
    pub json: bool,
    /// Only this account (repeatable).
    #[arg(long, value_name = "ADDRESS")]
    pub target: Vec<String>,
    /// Messages listed per folder and kind of difference; the counts are always complete.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_LIST_LIMIT)]
    pub limit: usize,
}

pub fn exec(args: Args) -> Result<ExitCode, CliError> {
    let Some(loaded) = load_plan(&args.plan) else {
        return Ok(ExitCode::from(1));
    };
    let targets = super::targets(&loaded, &args.target)?;
    let runtime = super::runtime()?;
    let reader = crate::state::StateReader::open(&loaded.state_path())?;
    let mut checks: Vec<AccountCheck> = Vec::new();
    for a in &loaded.plan.accounts {
        let address = a.address.to_ascii_lowercase();
        if !targets.is_empty() && !targets.contains(&address) {
            continue;
        }
        if !a
            .content
            .as_ref()
            .is_none_or(|c| c.contains(&Content::Mail))
        {
            continue;
        }
        // Hashing every message of a large mailbox takes a while: say what is being read.
        eprintln!("Verifying {address} ...");
        let check = match account_targets(&loaded, a) {
            Ok((s, d)) => {
                let refused = refused_of(&reader, &address)?;
                runtime.block_on(verify_account(
                    &address,
                    &s,
                    &d,
                    &crate::apply::imap_adapter::folder_rules(a.folders.as_ref()),
                    &copy_options(&loaded.plan, a),
                    args.limit,
                    &refused,
                ))
            }
            Err(e) => AccountCheck {
                account: address.clone(),
                folders: Vec::new(),
                error: Some(e.message),
            },
        };
        checks.push(check);
    }
    let ok = checks.iter().all(AccountCheck::ok);
    if args.json {
        let doc = serde_json::json!({
            "format_version": JSON_FORMAT_VERSION,
            "ok": ok,
            "content_ok": checks.iter().all(AccountCheck::content_ok),
            "list_limit": args.limit,
            "accounts": checks,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("serializes")
        );
    } else {
        print!("{}", render_text(&checks, args.limit));
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The human view: one line per account and folder, one per message named, then totals.
pub fn render_text(checks: &[AccountCheck], limit: usize) -> String {
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
    let sum = |get: &dyn Fn(&FolderCheck) -> u64| -> u64 {
        checks.iter().flat_map(|c| &c.folders).map(get).sum()
    };
    let _ = writeln!(
        out,
        "\nVerify: {} of {} accounts match.",
        checks.iter().filter(|c| c.ok()).count(),
        checks.len()
    );
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

fn folder_lines(out: &mut String, f: &FolderCheck, capped: &mut bool) {
    let counts = [
        (f.missing.count, "missing"),
        (f.extra.count, "extra"),
        (f.changed.count, "changed"),
        (f.skipped.count, "skipped"),
        (f.flags.count, "flags"),
        (f.internal_dates.count, "dates"),
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

/// The messages the copy of an account recorded as refused by the destination: verify lists
/// them as skipped, with the destination's words, rather than as missing.
fn refused_of(
    reader: &crate::state::StateReader,
    address: &str,
) -> Result<crate::verify::Refused, CliError> {
    let id = format!("account/{address}/mail");
    Ok(reader
        .refused(&id)?
        .into_iter()
        .map(|(folder, uid, r)| ((folder, uid), r.reason))
        .collect())
}
