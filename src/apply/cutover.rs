//! The executor's side of the domains' cutovers (`crate::cutover`): after every other step of
//! the run, each domain with a `dns:` zone advances as far as its steps are due, and each step
//! that ran or waits is one line of the report. A waiting step is a pause until it is due (so
//! watch mode comes back then, as for a daily limit); a refused switch and a hand-changed
//! record are conflicts; the final sync runs the accounts' own sync steps again.

use std::sync::Arc;

use super::{Ctx, Outcome, StepResult, run_accounts};
use crate::cutover::accounts::{not_synced_since, not_whole};
use crate::cutover::{Accounts, NotWhole, Stop, stop_error, zones};
use crate::diff::{Action, Change};
use crate::error::{ErrorKind, StepError};
use mailshift_core::cutover::{LastStop, Step, StopKind};
use mailshift_core::plane::PlaneResult;

/// The accounts as the executor holds them: the state for their health, this run's content
/// changes for their final sync.
struct ExecAccounts {
    ctx: Arc<Ctx>,
    content: Vec<Change>,
    /// Watch mode's platform unit: the accounts' own units sync them, this one waits for it
    /// (running their steps here too would race those units).
    watch: bool,
}

impl Accounts for ExecAccounts {
    fn not_whole(&self, accounts: &[String]) -> Result<Vec<NotWhole>, StepError> {
        not_whole(&self.ctx.store, accounts)
    }

    fn final_sync<'a>(
        &'a self,
        accounts: &'a [String],
        after: &'a mut Option<u64>,
    ) -> PlaneResult<'a, Option<String>> {
        Box::pin(async move {
            if self.watch {
                let mark = match *after {
                    Some(m) => m,
                    None => {
                        let m = self
                            .ctx
                            .store
                            .last_sync_point()
                            .map_err(|e| StepError::state(e.to_string()))?;
                        *after = Some(m);
                        m
                    }
                };
                let behind = not_synced_since(&self.ctx.store, accounts, mark)?;
                return Ok((!behind.is_empty()).then(|| {
                    format!(
                        "the accounts' next sync (after sync point {mark}): {}",
                        behind.join(", ")
                    )
                }));
            }
            let changes: Vec<Change> = self
                .content
                .iter()
                .filter(|c| c.account.as_ref().is_some_and(|a| accounts.contains(a)))
                .cloned()
                .collect();
            let before = self.ctx.results.lock().await.len();
            run_accounts(&self.ctx, changes).await?;
            // The final sync's steps are the cutover's: they leave the report's list (the
            // first sync of this run is there already) and fail the step if one did not end.
            let ran: Vec<StepResult> = self.ctx.results.lock().await.drain(before..).collect();
            let failed: Vec<String> = ran
                .iter()
                .filter(|r| !matches!(r.outcome, Outcome::Done(_)))
                .map(|r| r.id.clone())
                .collect();
            if failed.is_empty() {
                Ok(None)
            } else {
                Err(StepError::new(
                    ErrorKind::Network,
                    format!("did not complete: {}", failed.join(", ")),
                ))
            }
        })
    }
}

/// Advances every domain's cutover; `content` is this run's content changes (all accounts'),
/// `watch` says the run is watch mode's platform unit.
pub(super) async fn run(ctx: &Arc<Ctx>, content: Vec<Change>, watch: bool) {
    let plan = &ctx.loaded.plan;
    let accounts = ExecAccounts {
        ctx: ctx.clone(),
        content,
        watch,
    };
    for d in plan.domains.iter().filter(|d| d.dns.is_some()) {
        let domain = d.name.to_ascii_lowercase();
        let (results, stop) = match advance(ctx, &accounts, d).await {
            Ok(r) => r,
            Err(e) => {
                let e = e.context(format!("cutover of {domain}"));
                let stop = (StopKind::Failed, None, None, e.message.clone());
                (
                    vec![(format!("cutover/{domain}"), Outcome::Failed(e))],
                    Some(stop),
                )
            }
        };
        record_stop(ctx, &domain, stop);
        for (id, outcome) in results {
            let result = StepResult {
                id,
                account: None,
                action: Action::Update,
                outcome,
            };
            ctx.hooks.step_finished(&result);
            ctx.results.lock().await.push(result);
        }
    }
}

/// Where a run stopped, as [`LastStop`] records it: kind, step (`None`: the first not done),
/// until when it waits, why.
type StopNote = (StopKind, Option<Step>, Option<i64>, String);

/// Keeps where this run stopped in the domain's record, for `status` and the watch's page
/// (which read the state, not the zone). The first run that stopped there for the same reason
/// keeps its time. A state that cannot be written here is logged: the steps' own records,
/// which matter, were written by `advance`.
fn record_stop(ctx: &Arc<Ctx>, domain: &str, note: Option<StopNote>) {
    use crate::cutover::Records;
    let Ok(Some(mut record)) = ctx.store.load(domain) else {
        return;
    };
    let now = i64::try_from(super::quota::now()).unwrap_or(i64::MAX);
    let last = note.map(|(kind, step, until, why)| {
        let step = step
            .or_else(|| Step::ALL.into_iter().find(|s| record.is_done(*s).is_none()))
            .unwrap_or(Step::RaiseTtl);
        let since = match &record.last_stop {
            Some(l) if l.kind == kind && l.step == step && l.why == why => l.since,
            _ => now,
        };
        LastStop {
            step,
            kind,
            since,
            until,
            why,
        }
    });
    if record.last_stop == last {
        return;
    }
    record.last_stop = last;
    if let Err(e) = ctx.store.save(domain, &record) {
        tracing::warn!("cannot record where the cutover of {domain} stopped: {e}");
    }
}

async fn advance(
    ctx: &Arc<Ctx>,
    accounts: &ExecAccounts,
    d: &crate::plan::model::Domain,
) -> Result<(Vec<(String, Outcome)>, Option<StopNote>), StepError> {
    let c = zones::cutover(&ctx.loaded, d).await?;
    let opened = zones::open(&ctx.loaded, d).await?;
    let now = i64::try_from(super::quota::now()).unwrap_or(i64::MAX);
    let report = c
        .advance(
            opened.zone.as_ref(),
            opened.propagation.as_ref(),
            accounts,
            ctx.store.as_ref(),
            now,
        )
        .await?;
    let mut out: Vec<(String, Outcome)> = report
        .ran
        .iter()
        .map(|(step, line)| (step.address(&c.domain), Outcome::Done(line.clone())))
        .collect();
    for w in &report.warnings {
        tracing::warn!("{w}");
        out.push((
            mailshift_core::cutover::Step::Switch.address(&c.domain),
            Outcome::Done(w.clone()),
        ));
    }
    let note = match &report.stop {
        Stop::Done => None,
        Stop::Waiting { step, until, why } => {
            Some((StopKind::Waiting, Some(*step), *until, why.clone()))
        }
        Stop::Refused { step, accounts } => Some((
            StopKind::Refused,
            Some(*step),
            None,
            crate::cutover::view::refused_why(accounts),
        )),
        Stop::Conflict { step, drift } => Some((
            StopKind::Drift,
            Some(*step),
            None,
            drift
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )),
    };
    match &report.stop {
        Stop::Done => {}
        Stop::Waiting { step, until, why } => {
            let outcome = match until {
                Some(until) => Outcome::Paused {
                    until: u64::try_from(*until).unwrap_or(0),
                    text: format!(
                        "waits until {}: {why}",
                        crate::render::time::minute(u64::try_from(*until).unwrap_or(0))
                    ),
                },
                None => Outcome::Held(format!("waits: {why}")),
            };
            out.push((step.address(&c.domain), outcome));
        }
        stop @ (Stop::Refused { step, .. } | Stop::Conflict { step, .. }) => {
            let e = stop_error(&c.domain, stop).expect("a refusal or a conflict");
            out.push((step.address(&c.domain), Outcome::Conflict(e.message)));
        }
    }
    Ok((out, note))
}
