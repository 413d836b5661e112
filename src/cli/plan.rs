//! `mailshift plan PLAN`: the dry run. Compares the plan with the state and prints the steps
//! `apply` would run, for people or (`--json`) for machines; `--detailed-exitcode` lets CI gate.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use super::{CliError, load_plan};
use crate::apply::pipeline::Planned;
use crate::apply::plane::Planes;
use crate::diff::{Change, Summary};
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
    let loaded = Arc::new(loaded);
    let state_path = loaded.state_path();
    let state = crate::state::read_resources(&state_path)?;
    let mut planned = Planned::new(&loaded.plan, &state);
    if args.refresh {
        let planes = Planes::new(loaded.clone(), None);
        super::runtime()?.block_on(planned.refresh(&planes, &state))?;
        super::runtime()?.block_on(preview_copies(&loaded, &mut planned.changes));
    }
    planned.only_accounts(&super::targets(&loaded, &args.target)?);
    let changes = planned.changes;
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

/// `--refresh` also looks at both mailboxes of each pending copy: what the destination holds
/// already (to be adopted) and which folders' copied messages will move. A mailbox that cannot
/// be reached is said in the reason; it does not fail the plan.
async fn preview_copies(loaded: &crate::plan::Loaded, changes: &mut [Change]) {
    use futures_util::StreamExt;
    let reader = crate::state::StateReader::open(&loaded.state_path());
    let pending: std::collections::HashSet<&crate::model::ResourceAddr> =
        changes.iter().filter_map(|c| c.addr.as_ref()).collect();
    let looks = changes
        .iter()
        .enumerate()
        // A copy waiting for its account to be created or renamed has nothing to look at yet.
        .filter(|(_, c)| {
            c.kind == crate::model::ResourceKind::Mail
                && c.action == crate::diff::Action::Sync
                && !c.depends_on.iter().any(|d| pending.contains(d))
        })
        .filter_map(|(i, c)| {
            let address = c.account.as_deref()?;
            let account = loaded
                .plan
                .accounts
                .iter()
                .find(|a| a.address.eq_ignore_ascii_case(address))?;
            Some((i, c.id.clone(), account))
        })
        .map(|(i, id, account)| {
            let reader = &reader;
            async move {
                let look = async {
                    let (source, dest) =
                        crate::apply::account_targets(loaded, account).map_err(|e| e.message)?;
                    let records = crate::apply::journal::folder_records(
                        reader
                            .as_ref()
                            .map_err(|e| e.to_string())?
                            .folders(&id)
                            .map_err(|e| e.to_string())?,
                    );
                    let rules = crate::apply::imap_adapter::folder_rules(account.folders.as_ref());
                    crate::transfer::imap::preview::preview(&source, &dest, &rules, &records).await
                };
                (i, look.await)
            }
        });
    let results: Vec<_> = futures_util::stream::iter(looks)
        .buffer_unordered(8)
        .collect()
        .await;
    for (i, result) in results {
        let c = &mut changes[i];
        match result {
            Ok(lines) => {
                for l in lines {
                    c.reason.push_str("; ");
                    c.reason.push_str(&l);
                }
            }
            Err(e) => c
                .reason
                .push_str(&format!("; could not look at the mailboxes: {e}")),
        }
    }
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
