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
        let results = match advance(ctx, &accounts, d).await {
            Ok(r) => r,
            Err(e) => vec![(
                format!("cutover/{domain}"),
                Outcome::Failed(e.context(format!("cutover of {domain}"))),
            )],
        };
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

async fn advance(
    ctx: &Arc<Ctx>,
    accounts: &ExecAccounts,
    d: &crate::plan::model::Domain,
) -> Result<Vec<(String, Outcome)>, StepError> {
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
    Ok(out)
}
