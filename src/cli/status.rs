//! `mailshift status PLAN`: per-account progress, read from the state (no server is contacted);
//! `mailshift status --from URL...`: the merged view of many shards' watches
//! (`crate::watch::aggregate`), each asked for its `/api/status`.

use std::path::PathBuf;
use std::process::ExitCode;

use super::CliError;
use crate::model::{Execution, Resource, compile_shard};
use crate::plan::diagnostic::plural;
use crate::state::ResourceRecord;
use crate::state::record::Status;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The plan file (`.yaml`, `.yml` or `.toml`); not with --from.
    #[arg(required_unless_present = "from")]
    pub plan: Option<PathBuf>,
    #[command(flatten)]
    pub shard: super::shard::ShardArgs,
    /// Ask these watches (one per shard: http://HOST:PORT, or their /api/status URL) and show
    /// their merged status instead of reading a state. Exits 1 when a shard is unreachable,
    /// when the view is wrong (an account two shards claim), or when a step failed.
    #[arg(long, value_name = "URL", num_args = 1.., conflicts_with_all = ["plan", "shard"])]
    pub from: Vec<String>,
    /// The watches' bearer token, written as a plan's secrets are: '{env: NAME}',
    /// '{file: PATH}' or '{command: [program, args...]}'.
    // Parsed in `exec`, not by clap: clap's error would echo a literal token back.
    #[arg(long, value_name = "SECRET_REF", requires = "from")]
    pub token: Option<String>,
    /// Print JSON instead of text: with --from, the merged /api/status document; with a
    /// plan, each step's status and each domain's cutover (`resources`, `cutovers`).
    #[arg(long)]
    pub json: bool,
}

pub fn exec(args: Args) -> Result<ExitCode, CliError> {
    let Some(plan) = &args.plan else {
        return exec_from(&args);
    };
    let Some(loaded) = super::shard::load(plan, &args.shard)? else {
        return Ok(ExitCode::from(1));
    };
    let shard = loaded.shard;
    let state = crate::state::shards::read_resources(&loaded, shard)?;
    let reader = crate::state::shards::open_reader(&loaded, shard)?;
    let resources = compile_shard(&loaded.plan, shard);
    let dates = reader.sync_points()?;
    let holds = reader.holds()?;
    // The cutovers are the platform unit's: shard 0's in a split run (refused there anyway).
    let cutovers = if shard.owns_platform_steps() {
        crate::cutover::view::cutover_views(&loaded.plan, &reader.cutovers()?)
    } else {
        Vec::new()
    };
    if args.json {
        return print_json(&resources, &state, &cutovers);
    }
    let mut failed = false;
    for a in loaded.accounts() {
        let address = a.address.to_ascii_lowercase();
        let mine: Vec<_> = resources
            .iter()
            .filter(|r| r.account.as_deref() == Some(address.as_str()))
            .collect();
        let done = mine
            .iter()
            .filter(|r| state.get(r.id()).is_some_and(|s| s.status.is_applied()))
            .count();
        let cut_over = mine
            .iter()
            .any(|r| matches!(r.execution, Execution::Sync { cut_over: true }));
        println!(
            "{address}  {done}/{} steps done{}",
            mine.len(),
            if cut_over { ", cut over" } else { "" }
        );
        if let Some(h) = crate::apply::hold::hold_of(&loaded.plan, &holds, &address) {
            println!("    {:<30} {}", "", h.text());
        }
        for r in &mine {
            let id = r.id();
            failed |= print_line(r, &r.addr.label(), &state);
            if r.kind == crate::model::ResourceKind::Mail && state.contains_key(id) {
                print_mail(&reader, id)?;
                if state
                    .get(id)
                    .is_some_and(|s| s.status == Status::InProgress)
                {
                    print_eta(&reader, id)?;
                }
                print_sync_points(&reader, id, &dates)?;
            }
            if r.kind == crate::model::ResourceKind::Mail {
                print_limits(&reader, r)?;
            }
            if matches!(
                r.kind,
                crate::model::ResourceKind::Contacts
                    | crate::model::ResourceKind::Calendars
                    | crate::model::ResourceKind::Tasks
            ) && state.contains_key(id)
            {
                print_dav_sync_points(&reader, id, crate::rollback::dav::noun(r.kind), &dates)?;
            }
        }
    }
    // Domains, groups, contacts, footers and DNS checks belong to no account.
    let platform: Vec<_> = resources.iter().filter(|r| r.account.is_none()).collect();
    if !platform.is_empty() {
        let done = platform
            .iter()
            .filter(|r| state.get(r.id()).is_some_and(|s| s.status.is_applied()))
            .count();
        println!("platforms  {done}/{} steps done", platform.len());
        for r in &platform {
            failed |= print_line(r, r.id(), &state);
        }
    }
    // After the platform's steps, each domain's cutover: a refused switch, a drift and a
    // failed run are problems like a failed step; waiting is not.
    for c in &cutovers {
        print!("{}", c.text());
        failed |= c.problem();
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// One step in `status PLAN --json`.
#[derive(serde::Serialize)]
struct StepJson<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<&'a str>,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    updated_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<&'a str>,
}

/// `status PLAN --json`: each step's status (`resources`) and each domain's cutover
/// (`cutovers`, shaped as in `/api/status`); the exit code is the text view's.
fn print_json(
    resources: &[Resource],
    state: &std::collections::BTreeMap<String, ResourceRecord>,
    cutovers: &[crate::cutover::view::CutoverView],
) -> Result<ExitCode, CliError> {
    let steps: Vec<StepJson> = resources
        .iter()
        .map(|r| {
            let rec = state.get(r.id());
            StepJson {
                id: r.id(),
                account: r.account.as_deref(),
                status: rec.map_or("pending", |s| s.status.as_str()),
                updated_at: rec.map(|s| crate::render::time::rfc3339(s.updated_at)),
                last_error: rec
                    .filter(|s| s.status == Status::Failed)
                    .and_then(|s| s.last_error.as_deref()),
            }
        })
        .collect();
    let failed = steps.iter().any(|s| s.status == Status::Failed.as_str())
        || cutovers.iter().any(|c| c.problem());
    let doc = serde_json::json!({ "resources": steps, "cutovers": cutovers });
    let text = serde_json::to_string_pretty(&doc)
        .map_err(|e| CliError(format!("cannot write the status as JSON: {e}")))?;
    println!("{text}");
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `status --from URL...`: every shard asked at once, their views merged and printed.
fn exec_from(args: &Args) -> Result<ExitCode, CliError> {
    use std::io::Write;
    let token = args
        .token
        .as_deref()
        .map(crate::watch::parse_token_ref)
        .transpose()
        .map_err(|e| CliError(format!("--token: {e}")))?
        .map(|r| {
            r.resolve(std::path::Path::new("."))
                .map_err(|e| CliError(format!("--token: {e}")))
        })
        .transpose()?;
    let runtime = super::runtime()?;
    let merged = runtime
        .block_on(crate::watch::aggregate::status_from(
            &args.from,
            token.as_ref(),
        ))
        .map_err(CliError)?;
    // Tens of megabytes for 100,000 accounts: written through one buffer, not line by line.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let written = if args.json {
        serde_json::to_writer_pretty(&mut out, &merged)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        out.write_all(crate::watch::aggregate::text::render(&merged).as_bytes())
    };
    written
        .and_then(|()| out.flush())
        .map_err(|e| CliError(format!("cannot write the merged status: {e}")))?;
    let failed = merged.resources.iter().any(|r| r.status == "failed")
        || merged.cutovers.iter().any(|c| c.problem());
    Ok(if !merged.problems.is_empty() || failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// How many refused messages `status` lists one by one (the rest are counted).
const REFUSED_SHOWN: usize = 10;

/// Under a mail step: what the state holds of the copy (messages and bytes by folder count),
/// and the messages the destination refused, which the copy skipped and tries again.
fn print_mail(reader: &crate::state::StateReader, id: &str) -> Result<(), CliError> {
    let folders = reader.folders(id)?;
    let (messages, bytes) = folders
        .values()
        .fold((0, 0), |(m, b), f| (m + f.messages, b + f.bytes));
    println!(
        "    {:<30} {} ({}) in {}",
        "",
        plural(messages as usize, "message"),
        crate::apply::human_bytes(bytes),
        plural(folders.len(), "folder")
    );
    let refused = reader.refused(id)?;
    if !refused.is_empty() {
        println!(
            "    {:<30} {} refused by the destination (skipped; tried again on later runs):",
            "",
            plural(refused.len(), "message")
        );
        for (folder, uid, r) in refused.iter().take(REFUSED_SHOWN) {
            println!(
                "    {:<30}   {folder:?} UID {uid} ({}): {}",
                "",
                crate::apply::human_bytes(r.size),
                r.reason
            );
        }
        if refused.len() > REFUSED_SHOWN {
            println!(
                "    {:<30}   and {} more",
                "",
                refused.len() - REFUSED_SHOWN
            );
        }
    }
    Ok(())
}

/// Under a mail copy in progress (running now, or stopped and resumed by the next apply):
/// what its run copied so far and the time left at that rate (`apply::sizing`).
fn print_eta(reader: &crate::state::StateReader, id: &str) -> Result<(), CliError> {
    let now = crate::watch::status::unix_now();
    if let Some(e) = crate::apply::sizing::eta_from_state(reader, id, now)? {
        let last = e.last_batch.map_or_else(String::new, |t| {
            format!(" (last batch {})", crate::render::time::human(t))
        });
        println!(
            "    {:<30} this run: {} of about {} copied{last}; ETA about {} at its rate so far",
            "",
            e.copied,
            plural(e.to_copy as usize, "message"),
            crate::apply::sizing::duration(e.seconds)
        );
    }
    Ok(())
}

/// Under a mail step: the sync points whose copies the state still records, with when each
/// started and what it copied (what `mailshift rollback --since N` would remove).
fn print_sync_points(
    reader: &crate::state::StateReader,
    id: &str,
    dates: &std::collections::BTreeMap<u64, u64>,
) -> Result<(), CliError> {
    for (n, (count, bytes)) in reader.copied_by_sync_point(id)? {
        let when = dates.get(&n).map_or_else(
            || "date not recorded".to_string(),
            |t| crate::render::time::human(*t),
        );
        println!(
            "    {:<30} sync point {n} ({when}): {} ({})",
            "",
            plural(count as usize, "message"),
            crate::apply::human_bytes(bytes)
        );
    }
    Ok(())
}

/// Under a contacts/calendars/tasks step: the sync points that created objects the state still
/// records (what `mailshift rollback --since N` would remove), with what each updated, and the
/// objects whose creating run is not known (copied by an older mailshift).
fn print_dav_sync_points(
    reader: &crate::state::StateReader,
    id: &str,
    noun: &str,
    dates: &std::collections::BTreeMap<u64, u64>,
) -> Result<(), CliError> {
    let (points, unknown) = crate::rollback::dav::by_sync_point(&reader.dav_objects(id)?);
    for (n, (created, bytes, updated)) in points {
        let when = dates.get(&n).map_or_else(
            || "date not recorded".to_string(),
            |t| crate::render::time::human(*t),
        );
        let mut parts = Vec::new();
        if created > 0 {
            parts.push(format!(
                "{} created ({})",
                plural(created as usize, noun),
                crate::apply::human_bytes(bytes)
            ));
        }
        if updated > 0 {
            parts.push(format!("{} updated", plural(updated as usize, noun)));
        }
        println!(
            "    {:<30} sync point {n} ({when}): {}",
            "",
            parts.join(", ")
        );
    }
    if unknown > 0 {
        println!(
            "    {:<30} {} copied before the creating sync point was recorded (never rolled back)",
            "",
            plural(unknown as usize, noun)
        );
    }
    Ok(())
}

/// Under a mail step whose platforms have daily limits (Gmail): what the last day used of
/// each, and the pause the copy is in, if any.
fn print_limits(reader: &crate::state::StateReader, r: &Resource) -> Result<(), CliError> {
    use crate::apply::quota;
    let Some(spec) = r.spec.account() else {
        return Ok(());
    };
    let limits = quota::Limits::of(spec);
    let now = quota::now();
    for side in [crate::state::Side::Download, crate::state::Side::Upload] {
        let Some(l) = limits.get(side) else {
            continue;
        };
        let used = crate::state::window::used(&reader.transfers(&limits.account, side)?, now);
        println!(
            "    {:<30} {} of {} used in the last 24 hours",
            "",
            crate::apply::human_bytes(used),
            l.name
        );
    }
    if let Some(p) = reader.pause(r.id())?.filter(|p| p.until > now) {
        println!("    {:<30} {}", "", quota::pause_text(&p));
    }
    Ok(())
}

/// One resource's line; true when it failed.
fn print_line(
    r: &Resource,
    label: &str,
    state: &std::collections::BTreeMap<String, ResourceRecord>,
) -> bool {
    let mut failed = false;
    let (status, extra) = match state.get(r.id()) {
        None => ("pending", String::new()),
        Some(s) => {
            let mut extra = String::new();
            if let Some(p) = s.sync_point {
                extra.push_str(&format!(", sync point {p}"));
            }
            extra.push_str(&format!(", {}", crate::render::time::human(s.updated_at)));
            if s.status == Status::Failed {
                failed = true;
                extra.push_str(&format!(
                    ": {}",
                    s.last_error.as_deref().unwrap_or("unknown error")
                ));
            } else if let Some(result) = s.outputs.get("result") {
                extra.push_str(&format!(": {result}"));
            }
            (s.status.as_str(), extra)
        }
    };
    let label = match r.execution {
        Execution::Manual { .. } => format!("{label} (manual)"),
        _ => label.to_string(),
    };
    println!("    {label:<30} {status}{extra}");
    failed
}
