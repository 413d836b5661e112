//! `mailshift rollback PLAN --since N`: deletes from the destinations exactly the messages
//! mailshift copied in sync points N and later (content checked, nothing else touched), after
//! showing them and asking; `--dry-run` only shows, `--yes` does not ask. The logic lives in
//! `crate::rollback`; this file picks the accounts, prints and asks.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use super::{CliError, load_plan};
use crate::model::{AccountSpec, ResourceKind, compile};
use crate::plan::diagnostic::plural;
use crate::rollback::{FolderSurvey, candidates, execute, no_gmail, no_uidplus, survey};
use crate::transfer::imap::session::Imap;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Exit status: 0 when everything asked for was deleted (or, with --dry-run, could be); 1 when a \
folder or an account was refused or failed, or the question was answered no.")]
pub struct Args {
    /// The plan file (`.yaml`, `.yml` or `.toml`).
    pub plan: PathBuf,
    /// Only this account (repeatable).
    #[arg(long, value_name = "ADDRESS")]
    pub account: Vec<String>,
    /// The first sync point whose copies are deleted (`status` lists them).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub since: u64,
    /// Only show what would be deleted.
    #[arg(long, conflicts_with = "yes")]
    pub dry_run: bool,
    /// Delete without asking (for scripts).
    #[arg(long)]
    pub yes: bool,
    /// Messages listed per folder and kind (to delete, left alone); the counts are complete.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub limit: usize,
}

/// One account's survey, with its open destination connection.
struct AccountWork {
    address: String,
    id: String,
    dst: Imap,
    folders: Vec<FolderSurvey>,
}

pub fn exec(args: Args) -> Result<ExitCode, CliError> {
    let Some(loaded) = load_plan(&args.plan) else {
        return Ok(ExitCode::from(1));
    };
    let targets: Vec<String> = args
        .account
        .iter()
        .map(|t| t.to_ascii_lowercase())
        .collect();
    // A typo must not silently select nothing.
    if let Some(t) = targets.iter().find(|t| {
        !loaded
            .plan
            .accounts
            .iter()
            .any(|a| a.address.eq_ignore_ascii_case(t))
    }) {
        return Err(CliError(format!(
            "--account {t}: no such account in {}",
            loaded.file_name()
        )));
    }
    let store = crate::state::StateStore::open(&loaded.state_path())?;
    let runtime = super::runtime()?;
    let loaded = runtime.block_on(super::detect_servers(loaded));
    let resources = compile(&loaded.plan);
    let mut failed = false;
    let mut work: Vec<AccountWork> = Vec::new();
    for a in &loaded.plan.accounts {
        let address = a.address.to_ascii_lowercase();
        if !targets.is_empty() && !targets.contains(&address) {
            continue;
        }
        let Some(r) = resources.iter().find(|r| {
            r.kind == ResourceKind::Mail && r.account.as_deref() == Some(address.as_str())
        }) else {
            continue;
        };
        let todo = candidates(&store, r.id(), args.since)?;
        if todo.is_empty() {
            println!(
                "{address}: nothing copied in sync point {} or later",
                args.since
            );
            continue;
        }
        let result = runtime.block_on(async {
            let spec = AccountSpec::of(&loaded.plan, a)
                .ok_or("unknown platform (the plan validator should have refused this)")?;
            if spec.dest.kind == crate::plan::model::PlatformKind::Gmail {
                return Err(no_gmail());
            }
            // Only the destination: a source that is down, or mail files, does not matter here.
            let dest = crate::apply::imap_adapter::target(
                &loaded,
                &spec.dest,
                &spec.account.destination,
                crate::model::dest_login(&spec.account),
            )
            .map_err(|e| format!("destination: {e}"))?;
            let mut dst = Imap::connect(&dest).await.map_err(|e| e.to_string())?;
            if !dst.caps.uidplus {
                return Err(no_uidplus());
            }
            // A plan that calls it plain IMAP: the server says what it is.
            if dst.caps.gmail {
                return Err(no_gmail());
            }
            let mut folders = Vec::new();
            for (folder, record, mine, pending) in &todo {
                let s = survey(&mut dst, folder, record, mine, pending.as_ref())
                    .await
                    .map_err(|e| format!("destination folder {:?}: {e}", record.dest_folder))?;
                folders.push(s);
            }
            Ok::<_, String>((dst, folders))
        });
        match result {
            Ok((dst, folders)) => work.push(AccountWork {
                address,
                id: r.id().to_string(),
                dst,
                folders,
            }),
            Err(e) => {
                failed = true;
                println!("{address}: refused: {e}");
            }
        }
    }
    let mut total = 0;
    for w in &work {
        for s in &w.folders {
            failed |= show(&w.address, s, args.limit);
            if s.refused.is_none() {
                total += s.delete.len();
            }
        }
    }
    if args.dry_run {
        println!(
            "Dry run: {} would be deleted (sync point {} and later); nothing was changed.",
            plural(total, "message"),
            args.since
        );
        return Ok(exit(failed));
    }
    let pending_only = work
        .iter()
        .any(|w| w.folders.iter().any(|s| !s.gone.is_empty()));
    if total == 0 && !pending_only {
        println!("Nothing to delete.");
        return Ok(exit(failed));
    }
    if !args.yes && total > 0 && !confirm(total)? {
        println!("Nothing was deleted.");
        return Ok(ExitCode::from(1));
    }
    let mut deleted = 0;
    for w in &mut work {
        for s in &w.folders {
            match runtime.block_on(execute(&mut w.dst, &store, &w.id, args.since, s)) {
                Ok(()) => deleted += s.delete.len(),
                Err(e) => {
                    failed = true;
                    println!("{}: {:?}: {e}", w.address, s.dest);
                }
            }
        }
    }
    println!(
        "Rolled back: {} deleted; the next apply copies them again if the plan still wants them.",
        plural(deleted, "message")
    );
    Ok(exit(failed))
}

fn exit(failed: bool) -> ExitCode {
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Prints one folder's survey; true when the folder was refused.
fn show(address: &str, s: &FolderSurvey, limit: usize) -> bool {
    if let Some(why) = &s.refused {
        println!("{address}  {:?}: refused: {why}", s.dest);
        return true;
    }
    println!(
        "{address}  {:?}: {} to delete{}{}",
        s.dest,
        plural(s.delete.len(), "message"),
        if s.gone.is_empty() {
            String::new()
        } else {
            format!(
                ", {} already deleted by an interrupted rollback",
                plural(s.gone.len(), "record")
            )
        },
        if s.kept.is_empty() {
            String::new()
        } else {
            format!(", {} left alone", s.kept.len())
        }
    );
    for (_, uid, size) in s.delete.iter().take(limit) {
        let named = s.named.get(uid).cloned().unwrap_or_default();
        let field = |f: Option<String>| f.unwrap_or_else(|| "-".into());
        println!(
            "    - UID {uid} ({})  {}  {}  {:?}",
            crate::apply::human_bytes(*size),
            field(named.message_id),
            field(named.date),
            named.subject.unwrap_or_default()
        );
    }
    if s.delete.len() > limit {
        println!("    - and {} more", s.delete.len() - limit);
    }
    for (uid, why) in s.kept.iter().take(limit) {
        println!("    = UID {uid} left alone: {why}");
    }
    if s.kept.len() > limit {
        println!("    = and {} more left alone", s.kept.len() - limit);
    }
    false
}

/// Asks on the terminal; anything but yes is no.
fn confirm(total: usize) -> Result<bool, CliError> {
    print!(
        "Delete {} from the destination? Type `yes` to confirm: ",
        plural(total, "message")
    );
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().eq_ignore_ascii_case("yes"))
}
