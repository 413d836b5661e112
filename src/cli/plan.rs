//! `mailshift plan PLAN`: the dry run. Compares the plan with the state and prints the steps
//! `apply` would run, for people or (`--json`) for machines; `--detailed-exitcode` lets CI gate.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use super::CliError;
use crate::apply::pipeline::Planned;
use crate::apply::plane::Planes;
use crate::apply::sizing::{self, AccountSizing};
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
    #[command(flatten)]
    pub shard: super::shard::ShardArgs,
}

pub fn exec(args: Args) -> Result<ExitCode, CliError> {
    let Some(loaded) = super::shard::load(&args.plan, &args.shard)? else {
        return Ok(ExitCode::from(1));
    };
    let mut loaded = Arc::new(loaded);
    let mut detected = Vec::new();
    if args.refresh {
        (loaded, detected) = super::runtime()?.block_on(crate::apply::servers::detect(loaded));
    }
    let detected: Vec<String> = if args.refresh {
        detected.iter().map(|d| d.line(&loaded)).collect()
    } else {
        crate::apply::servers::unread(&loaded)
    };
    let shard = loaded.shard;
    let state_path = loaded.state_path_for(shard);
    let state = crate::state::shards::read_resources(&loaded, shard)?;
    let mut planned = Planned::new(&loaded, &state);
    let mut sized = None;
    let reader = crate::state::shards::open_reader(&loaded, shard)?;
    let cutovers = reader.cutovers()?;
    planned.cut_over(&state, &cutovers);
    // Paused copies show as such, not as changes apply would make.
    let recorded = reader.holds()?;
    planned.hold(&crate::apply::hold::holds(&loaded.plan, &recorded));
    let targets = super::targets(&loaded, &args.target)?;
    if args.refresh {
        let planes = Planes::new(loaded.clone(), None);
        super::runtime()?.block_on(planned.refresh(&planes, &state))?;
        sized = Some(super::runtime()?.block_on(preview_copies(
            &loaded,
            &planes,
            &planned.resources,
            &mut planned.changes,
            &targets,
            shard,
        )));
    }
    planned.only_accounts(&targets);
    let changes = planned.changes;
    if args.json {
        for line in &detected {
            eprintln!("{line}");
        }
        print!(
            "{}",
            render::plan_json(&changes, sized.as_deref(), render::ShardShare::of(&loaded))
        );
    } else {
        let recorded = if state.is_empty() {
            "no state yet".to_string()
        } else {
            format!(
                "{} recorded",
                crate::plan::diagnostic::plural(state.len(), "resource")
            )
        };
        let mut header = format!(
            "mailshift plan: {} against state {} ({recorded})\nThis is a dry run: nothing was changed.",
            loaded.file_name(),
            state_path.display()
        );
        if let Some(share) = render::ShardShare::of(&loaded) {
            header.push('\n');
            header.push_str(&share.line());
        }
        for line in detected
            .iter()
            .chain(&crate::apply::content::budget_lines(&planned.resources))
        {
            header.push('\n');
            header.push_str(line);
        }
        print!("{}", render::plan_human(&changes, &header));
        print!(
            "{}",
            crate::cutover::view::plan_sections(&loaded.plan, &cutovers)
        );
        if args.refresh {
            print!(
                "{}",
                super::runtime()?.block_on(crate::cutover::view::drift_lines(&loaded, &cutovers))
            );
        }
        if let Some(sized) = &sized {
            print!("{}", render::sizing::sizing_human(sized));
        }
    }
    let code = exit_code(&changes, args.detailed_exitcode);
    // The process ends here, and freeing a large plan piece by piece takes a noticeable time
    // (a quarter of a second at 100,000 accounts): the system takes the memory back at once.
    std::mem::forget((loaded, state, planned.resources, changes));
    Ok(code)
}

/// `--refresh` also looks at both sides of each pending copy, through its content engine:
/// what the destination holds already (to be adopted) and what will move, sized against the
/// destination's quota and the last throughput measured on the source server. A side that
/// cannot be reached is said in the reason and in that account's sizing; it does not fail
/// the plan.
async fn preview_copies(
    loaded: &crate::plan::Loaded,
    planes: &Planes,
    resources: &[crate::model::Resource],
    changes: &mut [Change],
    targets: &[String],
    shard: mailshift_core::shard::Shard,
) -> Vec<AccountSizing> {
    use futures_util::StreamExt;
    let reader = crate::state::shards::open_reader(loaded, shard);
    let by_addr: std::collections::HashMap<&crate::model::ResourceAddr, &crate::model::Resource> =
        resources.iter().map(|r| (&r.addr, r)).collect();
    let pending: std::collections::HashSet<&crate::model::ResourceAddr> =
        changes.iter().filter_map(|c| c.addr.as_ref()).collect();
    let looks = changes
        .iter()
        .enumerate()
        // `--target`: the other accounts' servers are not contacted.
        .filter(|(_, c)| {
            c.action == crate::diff::Action::Sync
                && (targets.is_empty() || c.account.as_ref().is_some_and(|a| targets.contains(a)))
        })
        .filter_map(|(i, c)| {
            let r = by_addr.get(c.addr.as_ref()?)?;
            let engine = crate::apply::content::engine(r.kind)?;
            let crate::model::Spec::Content { account, .. } = &r.spec else {
                return None;
            };
            // A copy waiting for its account to be created or renamed has no destination to
            // look at yet: only its source is sized.
            let waiting = c.depends_on.iter().any(|d| pending.contains(d));
            Some((i, r.id(), engine, account, waiting))
        })
        .collect::<Vec<_>>();
    let accounts: Vec<_> = looks.iter().map(|(i, id, _, a, _)| (*i, *id, *a)).collect();
    let looks = looks.into_iter().map(|(i, id, engine, account, waiting)| {
        let reader = &reader;
        async move {
            let look = async {
                let sides = engine.prepare(account, loaded)?;
                let reader = reader
                    .as_ref()
                    .map_err(|e| crate::error::StepError::state(e.to_string()))?;
                if waiting {
                    let size = sides.size_source(reader, id).await?;
                    Ok(crate::apply::content::Preview {
                        lines: Vec::new(),
                        size,
                    })
                } else {
                    sides.preview(reader, id).await
                }
            };
            (i, look.await)
        }
    });
    let results: Vec<_> = futures_util::stream::iter(looks)
        .buffer_unordered(8)
        .collect()
        .await;
    let mut results: std::collections::HashMap<usize, _> = results.into_iter().collect();
    let mut sized = Vec::new();
    for (i, id, account) in accounts {
        let Some(result) = results.remove(&i) else {
            continue;
        };
        let c = &mut changes[i];
        match result {
            Ok(preview) => {
                for l in &preview.lines {
                    c.reason.push_str("; ");
                    c.reason.push_str(l);
                }
                sized.push(match preview.size {
                    Some(size) => {
                        let server = sizing::source_server(account);
                        let measured = reader
                            .as_ref()
                            .ok()
                            .and_then(|r| r.throughput(&server).ok().flatten());
                        let known = sizing::Known {
                            api: api_quota(planes, account, &size).await,
                            offer: planes.size_limit(&account.account.to),
                        };
                        sizing::assess(
                            account,
                            id,
                            size,
                            known,
                            measured.map(|t| (server.as_str(), t)),
                            &crate::apply::quota::Limits::of(account),
                        )
                    }
                    None => not_sized(account, id, None),
                });
            }
            Err(e) => {
                c.reason
                    .push_str(&format!("; could not look at the mailboxes: {}", e.message));
                sized.push(not_sized(account, id, Some(e.message)));
            }
        }
    }
    sized
}

/// The destination account's quota from its platform's API (Exchange's account object), when
/// its server did not say one and the account exists. A failed call only leaves it unknown:
/// the offer's limit, if any, still applies.
async fn api_quota(
    planes: &Planes,
    account: &crate::model::AccountSpec,
    size: &crate::apply::content::Size,
) -> Option<crate::apply::content::ReportedQuota> {
    if size.dest_quota.is_some() {
        return None;
    }
    let plane = planes.get(&account.account.to).ok()?;
    if !plane.has_api() {
        return None;
    }
    let (used, limit) = plane.mailbox_quota(&account.address).await.ok()??;
    Some(crate::apply::content::ReportedQuota { used, limit })
}

/// An account whose copy was not measured: its engine does not, or its source failed.
fn not_sized(
    account: &crate::model::AccountSpec,
    id: &str,
    error: Option<String>,
) -> AccountSizing {
    AccountSizing {
        account: account.address.clone(),
        resource: id.to_string(),
        size: None,
        error,
        quota: None,
        estimate: None,
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
