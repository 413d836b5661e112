//! Notifications: telling people (e-mail over SMTP, signed webhooks) what a run of the plan
//! did, each event once.
//!
//! The executor never calls this directly: after `apply` has its report, [`after_apply`] turns
//! it into events (an account's first copy done, a step failed, a manual step waiting, the whole
//! plan converged) and watch mode adds one [`daily_summary`] a day. Which events were already
//! told is kept in the state (`notified` table), so a failure retried every cycle is told once,
//! and a restart does not tell it again. Delivery never fails the migration: a target that cannot
//! be reached is logged and retried with backoff, then given up until the next event.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};
use tracing::warn;

use crate::apply::pipeline::Planned;
use crate::apply::{ApplyReport, Outcome};
use crate::diff::Action;
use crate::plan::Loaded;
use crate::plan::model::{NotifyEvent, NotifyTarget};
use crate::state::{StateStore, Status};

pub mod email;
pub mod webhook;

static GATE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One thing to tell: what a webhook receives as JSON, and what an e-mail says in words.
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    pub event: NotifyEvent,
    /// The plan file's name, so a person with several migrations knows which one.
    pub plan: String,
    /// The account concerned, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The step concerned (`account/alice@example.com/mail`), if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// One line for people.
    pub summary: String,
    /// More, for people (a failure's message, a manual step's instructions, the day's counts).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// Unix seconds.
    pub time: u64,
}

/// Computes the events of a finished run, sends those not yet told, and records them.
/// Whether the plan converged is read from the state after the run, not from the run alone,
/// so that watch mode's runs of one account each can tell it too.
/// Returns the deliveries that failed, for the report (they never fail the run).
/// `done_before`: the steps the state had as done when the run began (their sync is
/// incremental, not a first copy, even when `notify:` was added after they were copied).
pub async fn after_apply(
    loaded: &Loaded,
    store: &StateStore,
    report: &ApplyReport,
    done_before: &BTreeSet<String>,
) -> Vec<String> {
    if loaded.plan.notify.is_empty() {
        return Vec::new();
    }
    // Watch mode runs accounts at once: one run's events are computed, sent and recorded
    // before another's, so that two runs ending together cannot both tell "converged".
    let _gate = GATE.lock().await;
    let plan = plan_name(&loaded.path);
    let now = now();
    let mut notices = Vec::new();
    // Each event with its state key and the value it records: the same key and value again is
    // the same event, already told.
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut clears: Vec<String> = Vec::new();
    for s in &report.steps {
        let failed_key = format!("failed/{}", s.id);
        let manual_key = format!("manual/{}", s.id);
        let (event, summary, detail, key, value) = match &s.outcome {
            Outcome::Done(text) => {
                clears.push(failed_key);
                clears.push(manual_key);
                if s.action != Action::Sync || done_before.contains(&s.id) {
                    continue;
                }
                (
                    NotifyEvent::FirstCopy,
                    format!("first copy of {} finished", s.id),
                    text.clone(),
                    format!("first-copy/{}", s.id),
                    "done".to_string(),
                )
            }
            Outcome::Failed(e) => (
                NotifyEvent::Failed,
                format!("{} failed", s.id),
                e.message.clone(),
                failed_key,
                e.message.clone(),
            ),
            Outcome::Conflict(text) | Outcome::Skipped(text) => (
                NotifyEvent::Failed,
                format!("{} did not complete", s.id),
                text.clone(),
                failed_key,
                text.clone(),
            ),
            Outcome::Manual(text) => (
                NotifyEvent::Manual,
                format!("{} waits for a manual step", s.id),
                text.clone(),
                manual_key,
                "waiting".to_string(),
            ),
            Outcome::Paused { .. } | Outcome::Held(_) => continue,
        };
        if told(store, &key, &value) {
            continue;
        }
        notices.push(Notice {
            event,
            plan: plan.clone(),
            account: s.account.clone(),
            step: Some(s.id.clone()),
            summary,
            detail,
            time: now,
        });
        keys.push((key, value));
    }
    let converged = !report.stopped
        && report
            .steps
            .iter()
            .all(|s| matches!(s.outcome, Outcome::Done(_)))
        && converged(loaded, store);
    if converged {
        // The value is the set of resources: a plan that grows and converges again is news.
        let ids = store
            .resources()
            .map(|r| r.into_keys().collect::<Vec<_>>().join("\n"));
        if let Ok(ids) = ids {
            let value = hex(&Sha256::digest(ids.as_bytes()));
            if !told(store, "converged", &value) {
                notices.push(Notice {
                    event: NotifyEvent::Converged,
                    plan: plan.clone(),
                    account: None,
                    step: None,
                    summary: "every step of the plan is done".to_string(),
                    detail: String::new(),
                    time: now,
                });
                keys.push(("converged".to_string(), value));
            }
        }
    } else if !report.stopped && report.steps.iter().any(|s| s.outcome.is_failure()) {
        clears.push("converged".to_string());
    }
    for key in clears {
        if let Err(e) = store.clear_notified(&key) {
            warn!("cannot update the notifications' record: {e}");
        }
    }
    let failures = send_all(&loaded.plan.notify, &loaded.base_dir, &notices).await;
    // Recorded after the attempt: delivery was tried (and retried) for each; a target that is
    // down does not make the same failure be told again at every cycle.
    for (key, value) in keys {
        if let Err(e) = store.put_notified(&key, &value) {
            warn!("cannot record a notification as sent: {e}");
        }
    }
    failures
}

/// Watch mode: one summary per day (UTC), with the state's counts. Returns whether one was sent.
pub async fn daily_summary(loaded: &Loaded, store: &StateStore, today: &str, text: String) -> bool {
    if !loaded
        .plan
        .notify
        .iter()
        .any(|t| t.wants(NotifyEvent::DailySummary))
    {
        return false;
    }
    let key = format!("summary/{today}");
    if told(store, &key, "sent") {
        return false;
    }
    let notice = Notice {
        event: NotifyEvent::DailySummary,
        plan: plan_name(&loaded.path),
        account: None,
        step: None,
        summary: format!("daily summary for {today}"),
        detail: text,
        time: now(),
    };
    send_all(
        &loaded.plan.notify,
        &loaded.base_dir,
        std::slice::from_ref(&notice),
    )
    .await;
    if let Err(e) = store.put_notified(&key, "sent") {
        warn!("cannot record a notification as sent: {e}");
    }
    true
}

/// Sends each notice to every target that wants it. Failures are logged and returned as
/// text, never as an error.
pub async fn send_all(targets: &[NotifyTarget], base: &Path, notices: &[Notice]) -> Vec<String> {
    let mut failures = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let mine: Vec<&Notice> = notices.iter().filter(|n| t.wants(n.event)).collect();
        for n in mine {
            let result = if let Some(e) = &t.email {
                email::send(e, base, n).await
            } else if let Some(w) = &t.webhook {
                webhook::send(w, base, n).await
            } else {
                Ok(())
            };
            if let Err(e) = result {
                warn!(
                    target = i,
                    event = n.event.as_str(),
                    "notification not delivered: {e}"
                );
                failures.push(format!("notify[{i}], {}: {e}", n.event.as_str()));
            }
        }
    }
    failures
}

/// The plan has converged when a fresh diff against the state asks for nothing but the
/// incremental copies of content already copied once, and no record failed or is unfinished.
fn converged(loaded: &Loaded, store: &StateStore) -> bool {
    let Ok(state) = store.resources() else {
        return false;
    };
    let planned = Planned::new(&loaded.plan, &state);
    planned.changes.iter().all(|c| {
        c.action == Action::Orphaned
            || (c.action == Action::Sync
                && state.get(&c.id).is_some_and(|r| r.status == Status::Done))
    }) && planned.resources.iter().all(|r| {
        state
            .get(&r.addr.to_string())
            .is_some_and(|rec| matches!(rec.status, Status::Done | Status::Acknowledged))
    })
}

/// Today's date in UTC, `YYYY-MM-DD`: the daily summary's key.
pub fn today() -> String {
    chrono::DateTime::from_timestamp(i64::try_from(now()).unwrap_or(0), 0)
        .map_or_else(String::new, |t| t.format("%Y-%m-%d").to_string())
}

/// The daily summary's text: the state's steps by status, and those that failed.
pub fn summary_text(store: &StateStore) -> String {
    let records = match store.resources() {
        Ok(r) => r,
        Err(e) => return format!("the state could not be read: {e}"),
    };
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut failed = Vec::new();
    for (id, r) in &records {
        *counts.entry(r.status.as_str()).or_default() += 1;
        if r.status == Status::Failed {
            failed.push(format!("  {id}: {}", r.last_error.as_deref().unwrap_or("")));
        }
    }
    let mut text = format!("{} steps recorded:", records.len());
    for (status, n) in counts {
        text.push_str(&format!(" {n} {status},"));
    }
    text.pop();
    text.push('\n');
    if !failed.is_empty() {
        text.push_str("\nFailed:\n");
        text.push_str(&failed.join("\n"));
        text.push('\n');
    }
    text
}

fn told(store: &StateStore, key: &str, value: &str) -> bool {
    match store.notified(key) {
        Ok(v) => v.as_deref() == Some(value),
        Err(e) => {
            warn!("cannot read the notifications' record: {e}");
            false
        }
    }
}

fn plan_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Lower-case hex, for signatures and record values.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
