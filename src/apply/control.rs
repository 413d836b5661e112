//! Control-plane steps: what the executor does around a platform's [`ControlPlane`] for an API
//! change (checks that need both sides of an account, the password of an account that exists
//! already, the verification before a reset), and the recording of the result.
//!
//! A step's record keeps the platform it acted on, because a feature removed from the plan
//! must still be deleted from the right service.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::imap_adapter::IntoStepError;
use super::plane::{ControlPlane, Ensured, StepState};
use super::record::Records;
use super::{Ctx, Outcome, human_bytes};
use crate::diff::{Action, Change};
use crate::error::{ErrorKind, StepError};
use crate::model::capabilities::{Feature, Support, support};
use crate::model::{AccountSpec, Resource, ResourceAddr, ResourceKind, Spec};
use crate::transfer::imap::session::Imap;

/// How often a long control-plane step says it is still waiting.
const STILL_WAITING_EVERY: std::time::Duration = std::time::Duration::from_secs(20);

/// Runs one API change and records its result.
pub(super) async fn run(ctx: &Arc<Ctx>, change: &Change) -> Outcome {
    // OVHcloud tasks (and measuring a large IMAP source) can take minutes: say now and then
    // that the step is still running.
    let ticker = {
        let hooks = ctx.hooks.clone();
        let who = change.account.clone().unwrap_or_else(|| change.id.clone());
        let id = change.id.clone();
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(STILL_WAITING_EVERY).await;
                hooks.note(
                    &who,
                    &format!(
                        "{id}: still running ({}s: OVHcloud tasks, or measuring the source)",
                        started.elapsed().as_secs()
                    ),
                );
            }
        })
    };
    let resource = change.addr.as_ref().and_then(|a| ctx.resources.get(a));
    let result = match (change.action, resource) {
        (Action::Delete, _) => delete(ctx, change).await,
        (_, Some(r)) => ensure(ctx, r).await,
        (_, None) => Err(StepError::bug(format!("{} is not in the plan", change.id))),
    };
    ticker.abort();
    let records = Records::new(&ctx.store);
    match result {
        Ok((detail, platform)) => {
            let recorded = if change.action == Action::Delete {
                records.forget(&change.id).map(|_| ())
            } else if let Some(r) = resource {
                let outputs = BTreeMap::from([
                    ("platform".to_string(), platform),
                    // What the platform said (a DNS diagnosis, which placeholder was used), for `status`.
                    ("result".to_string(), detail.clone()),
                ]);
                records.applied(r, outputs)
            } else {
                Ok(())
            };
            if let Err(e) = recorded {
                return Outcome::Failed(StepError::state(format!(
                    "{detail} (but the state could not record it: {e})"
                )));
            }
            Outcome::Done(detail)
        }
        Err(e) => {
            records.failed(&change.id, resource, &e);
            Outcome::Failed(e)
        }
    }
}

/// Makes one resource be as the plan says; returns what was done and on which platform.
async fn ensure(ctx: &Arc<Ctx>, r: &Resource) -> Result<(String, String), StepError> {
    let plane = ctx.planes.get(&r.platform)?;
    match &r.spec {
        Spec::Rename { account, .. } => {
            // Before anything changes on the source: a move the destination cannot take
            // must not leave the account renamed.
            check_size(ctx, account).await?;
        }
        Spec::Create { account } => check_size(ctx, account).await?,
        Spec::Alias { account, alias } => {
            // A renamed account keeps its aliases on the source; an address can only be
            // used once, so it leaves the provisional account first.
            if let Some(provisional) = account.provisional()
                && support(&account.source, Feature::Alias) == Support::Api
            {
                ctx.planes
                    .get(&account.account.from)?
                    .delete(&ResourceAddr::Alias {
                        account: provisional,
                        alias: alias.clone(),
                    })
                    .await?;
            }
        }
        Spec::Cleanup {
            account,
            provisional,
        } => verify_before_reset(ctx, account, provisional).await?,
        _ => {}
    }
    let records = Records::new(&ctx.store);
    let before = records.get(r)?;
    let mark = |name: &str| records.mark(r, before.as_ref(), name);
    let state = StepState {
        before: before.as_ref(),
        mark: &mark,
    };
    let detail = match plane.ensure(r, state).await? {
        Ensured::Done(done) => done.detail,
        Ensured::AccountExists => match &r.spec {
            Spec::Create { account } => keep_password(ctx, account).await?,
            _ => return Err(StepError::bug(format!("{}: not an account", r.addr))),
        },
    };
    Ok((detail, r.platform.clone()))
}

/// Resetting deletes the source's copy: compare both sides again right now, so a message
/// that arrived after the last sync is never lost.
async fn verify_before_reset(
    ctx: &Ctx,
    account: &AccountSpec,
    provisional: &str,
) -> Result<(), StepError> {
    let mail = super::content::engine(ResourceKind::Mail)
        .ok_or_else(|| StepError::bug("no mail engine"))?
        .prepare(account, &ctx.loaded)?;
    // Without the state, a refused message counts as missing: it is not on the destination
    // either, so it blocks the reset, listed or not.
    let check = mail.verify(None, 0).await?;
    if let Some(e) = check.error() {
        return Err(StepError::new(
            ErrorKind::Refused,
            format!("not resetting {provisional}: cannot compare the mailboxes: {e}"),
        ));
    }
    // Extra messages on the destination are expected after the cutover: new mail
    // lands there. Only a missing one blocks the reset.
    let missing = check.missing();
    if missing > 0 {
        return Err(StepError::new(
            ErrorKind::Refused,
            format!(
                "not resetting {provisional}: {missing} message(s) of the source are not on the destination; run apply (or `mailshift verify`) to see which, and reset once they match"
            ),
        ));
    }
    Ok(())
}

/// An account that exists and that this mailshift did not just make: logs in with the plan's
/// password, or is reported, never reset.
async fn keep_password(ctx: &Ctx, account: &AccountSpec) -> Result<String, StepError> {
    let a = &account.account;
    let address = &account.address;
    let target = super::target(
        &ctx.loaded,
        &account.dest,
        &a.destination,
        crate::model::dest_login(a),
    )
    .map_err(|e| {
        StepError::config(format!(
            "{address} already exists on `{}`, and its password cannot be checked: {e}",
            a.to
        ))
    })?;
    match Imap::connect(&target).await {
        Ok(imap) => {
            imap.logout().await;
            Ok(format!(
                "{address} exists and accepts the plan's password (left as it is)"
            ))
        }
        Err(e) if e.kind == crate::transfer::imap::ErrorKind::Auth => Err(StepError::new(
            ErrorKind::Auth,
            format!(
                "{address} already exists on `{}` with another password than the plan's \
                 (probably changed since it was created), and mailshift will not reset it: put \
                 its current password in the plan's `destination.password`, or reset it in the \
                 OVHcloud Control Panel to the plan's, then run apply again ({})",
                a.to, e.message
            ),
        )),
        Err(e) => Err(e.into_step_error().context(format!(
            "{address} already exists on `{}`; cannot check that it accepts the plan's password",
            a.to
        ))),
    }
}

/// Refuses a move onto a platform whose per-account limit the source mailbox exceeds, before
/// anything is created for it.
async fn check_size(ctx: &Ctx, account: &AccountSpec) -> Result<(), StepError> {
    let a = &account.account;
    let Some(limit) = ctx.planes.size_limit(&a.to) else {
        return Ok(());
    };
    let address = &account.address;
    let source: Arc<dyn ControlPlane> = ctx.planes.get(&a.from)?;
    let usage = if source.has_api() {
        let mut usage = None;
        for candidate in account.provisional().iter().chain(std::iter::once(address)) {
            usage = source.mailbox_usage(candidate).await?;
            if usage.is_some() {
                break;
            }
        }
        usage
    } else {
        // No API to ask: add up the source's messages over IMAP (once, before creating).
        let mail = super::content::engine(ResourceKind::Mail)
            .ok_or_else(|| StepError::bug("no mail engine"))?
            .prepare(account, &ctx.loaded)?;
        Some(mail.size().await?)
    };
    match usage {
        Some(bytes) if bytes > limit.bytes => Err(StepError::config(format!(
            "the mailbox {address} holds {} on `{}`, above the {} limit of {} per account: \
             move it to {} instead, or make it smaller on the source first",
            human_bytes(bytes),
            a.from,
            limit.offer,
            human_bytes(limit.bytes),
            limit.instead
        ))),
        _ => Ok(()),
    }
}

/// Removes a feature that left the plan, from the platform its record names.
async fn delete(ctx: &Arc<Ctx>, change: &Change) -> Result<(String, String), StepError> {
    let rec = ctx
        .store
        .resource(&change.id)?
        .ok_or_else(|| StepError::bug(format!("{} is not in the state", change.id)))?;
    let addr = change
        .addr
        .as_ref()
        .ok_or_else(|| StepError::bug(format!("{}: not a resource address", change.id)))?;
    let platform = match rec.outputs.get("platform") {
        Some(p) => p.clone(),
        None => addr
            .account()
            .and_then(|a| ctx.accounts.get(a))
            .map(|a| a.account.to.clone())
            .ok_or_else(|| StepError::config(format!(
                "the state does not say which platform {} was applied on: remove it by hand, then run `mailshift state forget {}`",
                change.id, change.id
            )))?,
    };
    let plane = ctx.planes.get(&platform)?;
    let done = plane.delete(addr).await?;
    Ok((done.detail, platform))
}
