//! `mailshift status PLAN`: per-account progress, read from the state (no server is contacted).

use std::path::PathBuf;
use std::process::ExitCode;

use super::{CliError, load_plan};
use crate::model::{Execution, compile};
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
        for r in &mine {
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
                    }
                    (s.status.as_str(), extra)
                }
            };
            let kind = match r.execution {
                Execution::Manual { .. } => format!("{} (manual)", r.kind.as_str()),
                _ => r.kind.as_str().to_string(),
            };
            println!("    {kind:<22} {status}{extra}");
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
