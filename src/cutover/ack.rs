//! `mailshift ack PLAN cutover/DOMAIN/STEP`: a person looked at the records changed by hand
//! in the zone (the step stopped with a conflict) and keeps them: what the zone holds now
//! becomes what mailshift expects, and the cutover goes on from there at the next run.

use mailshift_core::cutover::StopKind;
use mailshift_core::error::StepError;
use mailshift_core::state::StateStore;

use super::{Records, zones};
use crate::plan::Loaded;

/// `Some(line for people)` when `id` names a cutover step; `None` for any other id.
pub fn acknowledge(
    loaded: &Loaded,
    store: &StateStore,
    id: &str,
) -> Result<Option<String>, StepError> {
    if !id.starts_with("cutover/") {
        return Ok(None);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StepError::bug(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(acknowledge_async(loaded, store, id))
}

/// [`acknowledge`] from async code: the watch daemon's `POST /api/ack/cutover/DOMAIN/STEP`.
pub async fn acknowledge_async(
    loaded: &Loaded,
    store: &StateStore,
    id: &str,
) -> Result<Option<String>, StepError> {
    let Some(rest) = id.strip_prefix("cutover/") else {
        return Ok(None);
    };
    let domain = rest
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let Some(d) = loaded
        .plan
        .domains
        .iter()
        .find(|d| d.dns.is_some() && d.name.eq_ignore_ascii_case(&domain))
    else {
        return Err(StepError::config(format!(
            "`{id}`: no domain of the plan has a `dns:` zone named `{domain}`"
        )));
    };
    let c = zones::cutover(loaded, d).await?;
    let opened = zones::open(loaded, d).await?;
    let accepted = c.accept_drift(opened.zone.as_ref(), store).await?;
    // The drift the last run stopped at is settled: `status` and the page stop showing it
    // (the next run records where it stops then).
    if let Some(mut record) = store.load(&domain)?
        && record
            .last_stop
            .as_ref()
            .is_some_and(|l| l.kind == StopKind::Drift)
    {
        record.last_stop = None;
        store.save(&domain, &record)?;
    }
    Ok(Some(format!(
        "{id}: {accepted} record set(s) changed by hand kept as they are; the cutover goes on from them at the next apply"
    )))
}
