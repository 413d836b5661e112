//! `mailshift validate PLAN`: check a plan and report every problem in it (exit 0 valid, 1 not).

use std::path::PathBuf;
use std::process::ExitCode;

use super::CliError;
use crate::plan::diagnostic::plural;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The plan file (`.yaml`, `.yml` or `.toml`).
    pub plan: PathBuf,
}

pub fn exec(args: Args) -> Result<ExitCode, CliError> {
    let Some(loaded) = super::load_plan(&args.plan) else {
        return Ok(ExitCode::from(1));
    };
    let p = &loaded.plan;
    println!(
        "{} is valid: {}, {}, {}",
        loaded.file_name(),
        plural(p.accounts.len(), "account"),
        plural(p.platforms.len(), "platform"),
        plural(p.domains.len(), "domain"),
    );
    Ok(ExitCode::SUCCESS)
}
