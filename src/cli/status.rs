//! `mailshift status PLAN`: per-account progress, read from the state (no server is contacted).

use std::path::PathBuf;
use std::process::ExitCode;

use super::{CliError, load_plan};
use crate::model::{Execution, Resource, compile};
use crate::state::ResourceRecord;
use crate::state::record::Status;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The plan file (`.yaml`, `.yml` or `.toml`).
    pub plan: PathBuf,
}

pub fn exec(args: Args) -> Result<ExitCode, CliError> {
    let Some(loaded) = load_plan(&args.plan) else {
        return Ok(ExitCode::from(1));
    };
    let state = crate::state::read_resources(&loaded.state_path())?;
    let resources = compile(&loaded.plan);
    let mut failed = false;
    for a in &loaded.plan.accounts {
        let address = a.address.to_ascii_lowercase();
        let mine: Vec<_> = resources
            .iter()
            .filter(|r| r.account.as_deref() == Some(address.as_str()))
            .collect();
        let done = mine
            .iter()
            .filter(|r| state.get(&r.id).is_some_and(|s| s.status.is_applied()))
            .count();
        let cut_over = mine
            .iter()
            .any(|r| matches!(r.execution, Execution::Sync { cut_over: true }));
        println!(
            "{address}  {done}/{} steps done{}",
            mine.len(),
            if cut_over { ", cut over" } else { "" }
        );
        let prefix = format!("account/{address}/");
        for r in &mine {
            let label = r.id.strip_prefix(&prefix).unwrap_or(&r.id);
            failed |= print_line(r, label, &state);
        }
    }
    // Domains, groups, contacts, footers and DNS checks belong to no account.
    let platform: Vec<_> = resources.iter().filter(|r| r.account.is_none()).collect();
    if !platform.is_empty() {
        let done = platform
            .iter()
            .filter(|r| state.get(&r.id).is_some_and(|s| s.status.is_applied()))
            .count();
        println!("platforms  {done}/{} steps done", platform.len());
        for r in &platform {
            failed |= print_line(r, &r.id, &state);
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// One resource's line; true when it failed.
fn print_line(
    r: &Resource,
    label: &str,
    state: &std::collections::BTreeMap<String, ResourceRecord>,
) -> bool {
    let mut failed = false;
    let (status, extra) = match state.get(&r.id) {
        None => ("pending", String::new()),
        Some(s) => {
            let mut extra = String::new();
            if let Some(p) = s.sync_point {
                extra.push_str(&format!(", sync point {p}"));
            }
            extra.push_str(&format!(", {}", super::state::format_time(s.updated_at)));
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
