//! `mailshift plan PLAN`: the dry run. Compares the plan with the state and prints the steps
//! `apply` would run, for people or (`--json`) for machines; `--detailed-exitcode` lets CI gate.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{CliError, load_plan};
use crate::diff::{Change, Summary, diff};
use crate::model::compile;
use crate::render;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The plan file (`.yaml`, `.yml` or `.toml`).
    pub plan: PathBuf,
    /// Print the changes as JSON (format: docs/plan-json.md).
    #[arg(long)]
    pub json: bool,
    /// Exit 0 when there is nothing to do, 2 when there are changes, 1 on errors or conflicts.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Only the changes of this account (repeatable).
    #[arg(long, value_name = "ADDRESS")]
    pub target: Vec<String>,
    /// Also read the live platforms (OVHcloud API) and show drift: features changed or
    /// removed in a control panel since mailshift applied them.
    #[arg(long)]
    pub refresh: bool,
}

pub fn exec(args: Args) -> Result<ExitCode, CliError> {
    let Some(loaded) = load_plan(&args.plan) else {
        return Ok(ExitCode::from(1));
    };
    let state_path = loaded.state_path();
    let state = crate::state::read_resources(&state_path)?;
    let desired = compile(&loaded.plan);
    let mut changes = diff(&desired, &state);
    if args.refresh {
        let providers = crate::apply::api::Providers::default();
        let drift = super::runtime()?.block_on(crate::apply::api::observe_drift(
            &loaded, &providers, &desired, &state,
        ))?;
        crate::diff::add_drift(&mut changes, &desired, &state, &drift);
    }
    let targets = super::targets(&loaded, &args.target)?;
    if !targets.is_empty() {
        changes.retain(|c| c.account.as_ref().is_some_and(|a| targets.contains(a)));
    }
    if args.json {
        print!("{}", render::plan_json(&changes));
    } else {
        let recorded = if state.is_empty() {
            "no state yet".to_string()
        } else {
            format!(
                "{} recorded",
                crate::plan::diagnostic::plural(state.len(), "resource")
            )
        };
        let header = format!(
            "mailshift plan: {} against state {} ({recorded})\nThis is a dry run: nothing was changed.",
            loaded.file_name(),
            state_path.display()
        );
        print!("{}", render::plan_human(&changes, &header));
    }
    Ok(exit_code(&changes, args.detailed_exitcode))
}

fn exit_code(changes: &[Change], detailed: bool) -> ExitCode {
    let s = Summary::of(changes);
    if s.conflict > 0 && detailed {
        ExitCode::from(1)
    } else if detailed && s.has_changes() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}
