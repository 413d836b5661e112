//! `mailshift ack PLAN ID`: record that a manual step was done by hand.
//!
//! Manual steps (a group on Email Pro, anything on a plain IMAP server) have no API; once a
//! person has done one, `ack` records it as applied with the plan's current fingerprint, so the
//! next `plan` stops listing it until the plan changes it again. A manual removal (a feature
//! done by hand and then dropped from the plan) is acknowledged by forgetting the record.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{CliError, load_plan};
use crate::diff::{Action, diff};
use crate::model::compile;
use crate::state::{ResourceRecord, StateStore, Status};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The plan file (`.yaml`, `.yml` or `.toml`).
    pub plan: PathBuf,
    /// The manual step's resource id, as `plan` prints it.
    pub id: String,
}

pub fn exec(args: Args) -> Result<ExitCode, CliError> {
    let Some(loaded) = load_plan(&args.plan) else {
        return Ok(ExitCode::from(1));
    };
    let store = StateStore::open(&loaded.state_path())?;
    let state = store.resources()?;
    let resources = compile(&loaded.plan);
    let changes = diff(&resources, &state);
    let Some(change) = changes.iter().find(|c| c.id == args.id) else {
        let manual: Vec<&str> = changes
            .iter()
            .filter(|c| c.action == Action::Manual)
            .map(|c| c.id.as_str())
            .collect();
        let hint = match crate::plan::diagnostic::did_you_mean(&args.id, manual.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None if manual.is_empty() => "the plan has no pending manual step".to_string(),
            None => format!("pending manual steps: {}", manual.join(", ")),
        };
        return Err(CliError(format!(
            "`{}` is not a pending step of {}: {hint}",
            args.id,
            loaded.file_name()
        )));
    };
    if change.action != Action::Manual {
        return Err(CliError(format!(
            "`{}` is not a manual step (it is `{}`): `apply` carries it out",
            args.id,
            change.action.as_str()
        )));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match resources.iter().find(|r| r.id == args.id) {
        // Done by hand: record it as applied, with what the plan says now.
        Some(r) => {
            let created_at = state.get(&r.id).map_or(now, |s| s.created_at);
            store.put_resource(
                &r.id,
                &ResourceRecord {
                    created_at,
                    ..r.record(Status::Acknowledged, now)
                },
            )?;
            println!("Acknowledged {}: {}", r.id, r.summary);
        }
        // Removed by hand: nothing left to remember.
        None => {
            store.forget(&args.id)?;
            println!("Acknowledged the removal of {}", args.id);
        }
    }
    Ok(ExitCode::SUCCESS)
}
