//! Notifications: telling people (e-mail over SMTP, signed webhooks) what a run of the plan
//! did, each event once.
//!
//! The executor never calls this directly: after `apply` has its report, [`after_apply`] turns
//! it into events (an account's first copy done, a step failed, a manual step waiting, the whole
//! plan converged) and watch mode adds one [`daily_summary`] a day. Which events were already
//! told is kept in the state (`notified` table), so a failure retried every cycle is told once,
//! and a restart does not tell it again.
//!
//! Delivery is per target, through an outbox kept in the same table (key `outbox`, a JSON list
//! of notices with the target each waits for): an event is queued for every target that wants
//! it, and taken out for a target only once that target has it. A target that got it is never
//! sent it again; a target that failed gets it at the next run (watch mode: the next cycle),
//! after the retries with backoff inside a run, until 24 hours after the event, when it is
//! given up with a warning. (A process killed between a server's acceptance and the outbox's
//! update sends that one notice again: the window is one write.) `apply` waits for the
//! deliveries at its end, bounded by [`APPLY_BUDGET`]; watch mode delivers in the background
//! ([`Courier`]) so that a slow SMTP server never delays a copy. Delivery never fails the
//! migration.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
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
/// One delivery pass per target at a time in this process, by target id.
static LANES: std::sync::Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>> =
    std::sync::Mutex::new(BTreeMap::new());
/// The outbox's read-modify-write (a pass takes notices out while a run queues new ones).
static OUTBOX_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
/// The outbox's key in the `notified` table.
const OUTBOX: &str = "outbox";
/// A notice not delivered this long after its event is given up: news of yesterday's
/// failure is no longer news, and a target that is gone must not be tried for ever.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How long `apply` waits at its end for the deliveries; the rest waits for the next run.
pub const APPLY_BUDGET: Duration = Duration::from_secs(90);

/// One thing to tell: what a webhook receives as JSON, and what an e-mail says in words.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Notice {
    pub event: NotifyEvent,
    /// The plan file's name, so a person with several migrations knows which one.
    pub plan: String,
    /// The account concerned, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The step concerned (`account/alice@example.com/mail`), if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// One line for people.
    pub summary: String,
    /// More, for people (a failure's message, a manual step's instructions, the day's counts).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// Unix seconds.
    pub time: u64,
}

/// One notice waiting for one target, in the outbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    /// The target's identity ([`target_id`]), not its place in the list: a plan edited
    /// between runs keeps what each target still waits for.
    target: String,
    /// The event's record (key and value), as in the `notified` table.
    key: String,
    value: String,
    notice: Notice,
    /// Passes that failed to deliver it so far.
    #[serde(default)]
    failures: u32,
    /// Unix seconds: watch mode's next pass for this target waits until then after a failure
    /// (1 min, doubled per failure, at most 1 h), so that a refused password is not tried at
    /// every cycle (servers lock accounts for less). `apply`, run by a person, tries at once.
    #[serde(default)]
    not_before: u64,
}

/// Watch mode's wait after a target's `failures`-th failed pass.
fn backoff(failures: u32) -> u64 {
    (60u64 << failures.saturating_sub(1).min(6)).min(3600)
}

impl Pending {
    fn same(&self, other: &Pending) -> bool {
        self.target == other.target && self.key == other.key && self.value == other.value
    }
}

/// Computes the events of a finished run, queues those not yet told for each target that
/// wants them, and (`deliver_now`, as `apply` does) delivers the outbox, bounded by
/// [`APPLY_BUDGET`]; watch mode passes false and delivers with its [`Courier`].
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
    deliver_now: bool,
) -> Vec<String> {
    if loaded.plan.notify.is_empty() {
        return Vec::new();
    }
    // Watch mode runs accounts at once: one run's events are computed, queued and recorded
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
            Outcome::Paused { .. } | Outcome::Held(_) | Outcome::Waiting { .. } => continue,
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
    enqueue(loaded, store, &notices, &keys);
    if deliver_now {
        deliver(loaded, store, Some(APPLY_BUDGET)).await
    } else {
        Vec::new()
    }
}

/// Watch mode: queues the day's summary once per day (UTC). Returns whether it was queued;
/// [`deliver`] sends it.
pub fn daily_summary(loaded: &Loaded, store: &StateStore, today: &str, text: String) -> bool {
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
    enqueue(loaded, store, &[notice], &[(key, "sent".to_string())]);
    true
}

/// Puts each notice in the outbox once per target that wants it, then records its event as
/// told. The outbox is written first: a run killed between the two finds the event in the
/// outbox ([`told`] looks there too) and does not queue it twice.
fn enqueue(loaded: &Loaded, store: &StateStore, notices: &[Notice], keys: &[(String, String)]) {
    let mut items = Vec::new();
    for (n, (key, value)) in notices.iter().zip(keys) {
        for t in loaded.plan.notify.iter().filter(|t| t.wants(n.event)) {
            items.push(Pending {
                target: target_id(t),
                key: key.clone(),
                value: value.clone(),
                notice: n.clone(),
                failures: 0,
                not_before: 0,
            });
        }
    }
    if !items.is_empty() {
        update_outbox(store, |o| o.extend(items));
    }
    for (key, value) in keys {
        if let Err(e) = store.put_notified(key, value) {
            warn!("cannot record a notification as queued: {e}");
        }
    }
}

/// Sends what waits in the outbox, every target at once (a dead SMTP server must not hold up
/// the webhook), and takes out each notice as soon as its target has it. What a target did not
/// get stays for its next pass (the next run, or watch mode's next cycle) until
/// [`GIVE_UP_AFTER`] has passed since the event. `budget`: the longest the whole may take
/// (`apply` waits for it; watch mode does not, its [`Courier`] runs each target in the
/// background).
///
/// Returns one line per notice not delivered, for the report; never an error.
pub async fn deliver(loaded: &Loaded, store: &StateStore, budget: Option<Duration>) -> Vec<String> {
    if loaded.plan.notify.is_empty() {
        return Vec::new();
    }
    drop_unwanted(loaded, store);
    let lanes = loaded
        .plan
        .notify
        .iter()
        .enumerate()
        .map(|(i, t)| deliver_target(loaded, store, i, t, false));
    let all = futures_util::future::join_all(lanes);
    let Some(budget) = budget else {
        return all.await.concat();
    };
    match tokio::time::timeout(budget, all).await {
        Ok(lines) => lines.concat(),
        Err(_) => {
            let left = read_outbox(store).len();
            warn!(
                "{left} notification(s) not delivered within {}s",
                budget.as_secs()
            );
            vec![format!(
                "{left} notification(s) not delivered within {}s; they are sent at the next run",
                budget.as_secs()
            )]
        }
    }
}

/// Takes out of the outbox what no target of the plan wants any more (a target removed from
/// the plan, or an event taken off its list).
fn drop_unwanted(loaded: &Loaded, store: &StateStore) {
    let wanted: Vec<(String, &NotifyTarget)> = loaded
        .plan
        .notify
        .iter()
        .map(|t| (target_id(t), t))
        .collect();
    update_outbox(store, |o| {
        o.retain(|p| {
            wanted
                .iter()
                .any(|(id, t)| *id == p.target && t.wants(p.notice.event))
        })
    });
}

/// One pass over what target `i` waits for; one pass per target at a time in this process
/// (two would send the same notice twice). `patient` (watch mode): a target in its wait after
/// a failure ([`backoff`]) is left alone until the wait is over.
async fn deliver_target(
    loaded: &Loaded,
    store: &StateStore,
    i: usize,
    target: &NotifyTarget,
    patient: bool,
) -> Vec<String> {
    let id = target_id(target);
    let lane = {
        let mut lanes = LANES.lock().unwrap_or_else(|e| e.into_inner());
        lanes.entry(id.clone()).or_default().clone()
    };
    let _one = lane.lock().await;
    let pending: Vec<Pending> = read_outbox(store)
        .into_iter()
        .filter(|p| p.target == id && target.wants(p.notice.event))
        .collect();
    let now = now();
    // The first is the one that failed, if any: a pass stops at a failure.
    if patient && pending.first().is_some_and(|p| p.not_before > now) {
        return Vec::new();
    }
    if !pending.is_empty() {
        tracing::debug!(
            target = i,
            pending = pending.len(),
            "delivering notifications"
        );
    }
    deliver_to(loaded, store, i, target, pending.iter().collect(), now).await
}

/// Delivers one target's notices in order; stops at its first failure (the next ones would
/// wait as long for the same server). Returns the report's lines.
async fn deliver_to(
    loaded: &Loaded,
    store: &StateStore,
    i: usize,
    target: &NotifyTarget,
    pending: Vec<&Pending>,
    now: u64,
) -> Vec<String> {
    let mut lines = Vec::new();
    let mut failed = false;
    for p in pending {
        let event = p.notice.event.as_str();
        if now.saturating_sub(p.notice.time) > GIVE_UP_AFTER.as_secs() {
            warn!(
                target = i,
                event, "notification given up: not delivered within 24 h of the event"
            );
            lines.push(format!(
                "notify[{i}], {event}: given up, not delivered within 24 h of the event"
            ));
            update_outbox(store, |o| o.retain(|q| !q.same(p)));
            continue;
        }
        if failed {
            lines.push(format!(
                "notify[{i}], {event}: not tried after the failure above; sent at the next run"
            ));
            continue;
        }
        tracing::debug!(target = i, event, "delivering a notification");
        let sent = if let Some(e) = &target.email {
            email::send(e, &loaded.base_dir, &p.notice).await
        } else if let Some(w) = &target.webhook {
            webhook::send(w, &loaded.base_dir, &p.notice).await
        } else {
            Ok(())
        };
        match sent {
            Ok(()) => {
                tracing::debug!(target = i, event, "notification delivered");
                update_outbox(store, |o| o.retain(|q| !q.same(p)));
            }
            Err(e) => {
                warn!(target = i, event, "notification not delivered: {e}");
                lines.push(format!(
                    "notify[{i}], {event}: {e}; tried again at the next run"
                ));
                failed = true;
                update_outbox(store, |o| {
                    for q in o.iter_mut().filter(|q| q.same(p)) {
                        q.failures = q.failures.saturating_add(1);
                        q.not_before = now + backoff(q.failures);
                    }
                });
            }
        }
    }
    lines
}

/// Watch mode's postman: delivers the outbox in the background, one task per target, so that a
/// slow or unreachable server (an SMTP attempt may take half a minute, three of them more than
/// a minute) never holds up a copy, the scheduler, or another target. Kicks during a target's
/// pass coalesce into one more pass.
pub struct Courier {
    store: Arc<StateStore>,
    lanes: BTreeMap<String, tokio::sync::watch::Sender<Arc<Loaded>>>,
}

impl Courier {
    pub fn new(store: Arc<StateStore>) -> Courier {
        Courier {
            store,
            lanes: BTreeMap::new(),
        }
    }

    /// Asks for a pass of every target of `plan` (the plan in force). Needs a Tokio runtime.
    pub fn kick(&mut self, plan: Arc<Loaded>) {
        drop_unwanted(&plan, &self.store);
        let ids: BTreeSet<String> = plan.plan.notify.iter().map(target_id).collect();
        // A target gone from the plan: its task ends with its sender.
        self.lanes.retain(|id, _| ids.contains(id));
        for id in ids {
            if let Some(tx) = self.lanes.get(&id)
                && !tx.is_closed()
            {
                tx.send_replace(plan.clone());
                continue;
            }
            let (tx, mut rx) = tokio::sync::watch::channel(plan.clone());
            rx.mark_changed();
            let store = self.store.clone();
            let lane = id.clone();
            tokio::spawn(async move {
                while rx.changed().await.is_ok() {
                    let plan = rx.borrow_and_update().clone();
                    // Its place in the list may have changed with the plan.
                    let found = plan
                        .plan
                        .notify
                        .iter()
                        .enumerate()
                        .find(|(_, t)| target_id(t) == lane);
                    if let Some((i, target)) = found {
                        deliver_target(&plan, &store, i, target, true).await;
                    }
                }
            });
            self.lanes.insert(id, tx);
        }
    }
}

/// The plan has converged when a fresh diff against the state asks for nothing but the
/// incremental copies of content already copied once, and no record failed or is unfinished.
fn converged(loaded: &Loaded, store: &StateStore) -> bool {
    let Ok(state) = store.resources() else {
        return false;
    };
    let planned = Planned::new(loaded, &state);
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

/// Whether the event `key` with `value` was already told (or queued: a run killed after
/// queueing it and before recording it must not queue it again).
fn told(store: &StateStore, key: &str, value: &str) -> bool {
    match store.notified(key) {
        Ok(v) if v.as_deref() == Some(value) => true,
        Ok(_) => read_outbox(store)
            .iter()
            .any(|p| p.key == key && p.value == value),
        Err(e) => {
            warn!("cannot read the notifications' record: {e}");
            false
        }
    }
}

fn read_outbox(store: &StateStore) -> Vec<Pending> {
    match store.notified(OUTBOX) {
        Ok(None) => Vec::new(),
        Ok(Some(text)) => serde_json::from_str(&text).unwrap_or_else(|e| {
            warn!("the notifications' outbox in the state is unreadable ({e}); starting afresh");
            Vec::new()
        }),
        Err(e) => {
            warn!("cannot read the notifications' outbox: {e}");
            Vec::new()
        }
    }
}

/// Changes the outbox in one read-modify-write.
fn update_outbox(store: &StateStore, change: impl FnOnce(&mut Vec<Pending>)) {
    let _one = OUTBOX_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut outbox = read_outbox(store);
    change(&mut outbox);
    let written = if outbox.is_empty() {
        store.clear_notified(OUTBOX).map(|_| ())
    } else {
        match serde_json::to_string(&outbox) {
            Ok(text) => store.put_notified(OUTBOX, &text),
            Err(e) => {
                warn!("cannot write the notifications' outbox: {e}");
                return;
            }
        }
    };
    if let Err(e) = written {
        warn!("cannot write the notifications' outbox: {e}");
    }
}

/// What identifies a target across edits of the plan: a digest of where it delivers (a
/// webhook's URL may hold a token: the state keeps only the digest).
fn target_id(t: &NotifyTarget) -> String {
    let id = if let Some(e) = &t.email {
        format!(
            "email smtp://{}:{} from {} to {}",
            e.smtp.host,
            e.smtp.effective_port(),
            e.from,
            e.to.join(",")
        )
    } else if let Some(w) = &t.webhook {
        format!("webhook {}", w.url)
    } else {
        String::new()
    };
    hex(&Sha256::digest(id.as_bytes())[..12])
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

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = "version: 1\nplatforms:\n  \
        old: {type: imap, imap: {host: 127.0.0.1, port: 1, security: none}}\n  \
        new: {type: imap, imap: {host: 127.0.0.1, port: 1, security: none}}\naccounts:\n  \
        - address: a@example.com\n    from: old\n    to: new\n    \
        source: {password: {env: X}}\n    destination: {password: {env: X}}\nnotify:\n";

    fn hook(url: &str, events: &str) -> String {
        format!("  - webhook: {{url: '{url}', secret: {{env: HOOK}}}}\n    events: [{events}]\n")
    }

    fn load(dir: &Path, targets: &[String]) -> (Loaded, StateStore) {
        let path = dir.join("plan.yaml");
        std::fs::write(&path, format!("{PLAN}{}", targets.concat())).unwrap();
        let loaded = crate::plan::load_file(&path).unwrap();
        let store = StateStore::open(&dir.join("state.redb")).unwrap();
        (loaded, store)
    }

    fn notice(event: NotifyEvent, time: u64) -> Notice {
        Notice {
            event,
            plan: "plan.yaml".into(),
            account: None,
            step: None,
            summary: "s".into(),
            detail: String::new(),
            time,
        }
    }

    #[test]
    fn a_queued_event_counts_as_told_though_its_record_was_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let (loaded, store) = load(dir.path(), &[hook("http://127.0.0.1:1/a", "failed")]);
        let key = ("failed/x".to_string(), "boom".to_string());
        enqueue(
            &loaded,
            &store,
            &[notice(NotifyEvent::Failed, now())],
            &[key],
        );
        // As if killed between the outbox's write and the event's record.
        store.clear_notified("failed/x").unwrap();
        assert!(told(&store, "failed/x", "boom"));
        assert!(!told(&store, "failed/x", "another failure"));
        assert_eq!(read_outbox(&store).len(), 1);
    }

    #[test]
    fn a_notice_is_queued_for_each_target_that_wants_it_and_dropped_with_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let a = hook("http://127.0.0.1:1/a", "failed, converged");
        let b = hook("http://127.0.0.1:1/b", "converged");
        let (loaded, store) = load(dir.path(), &[a.clone(), b]);
        enqueue(
            &loaded,
            &store,
            &[
                notice(NotifyEvent::Failed, now()),
                notice(NotifyEvent::Converged, now()),
            ],
            &[
                ("failed/x".into(), "e".into()),
                ("converged".into(), "h".into()),
            ],
        );
        assert_eq!(read_outbox(&store).len(), 3);
        // `b` leaves the plan, `a` no longer wants `failed`.
        let (loaded, store) = {
            drop(store);
            load(dir.path(), &[a.replace("failed, converged", "converged")])
        };
        drop_unwanted(&loaded, &store);
        let left = read_outbox(&store);
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0].notice.event, NotifyEvent::Converged);
        assert_eq!(left[0].target, target_id(&loaded.plan.notify[0]));
    }

    #[test]
    fn a_notice_older_than_a_day_is_given_up_without_an_attempt() {
        let dir = tempfile::tempdir().unwrap();
        // Port 1 refuses at once; an attempt would also take the webhook's backoff (seconds).
        let (loaded, store) = load(dir.path(), &[hook("http://127.0.0.1:1/a", "failed")]);
        let old = now() - GIVE_UP_AFTER.as_secs() - 60;
        enqueue(
            &loaded,
            &store,
            &[notice(NotifyEvent::Failed, old)],
            &[("failed/x".into(), "e".into())],
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let lines = rt.block_on(deliver(&loaded, &store, None));
        assert_eq!(
            lines,
            ["notify[0], failed: given up, not delivered within 24 h of the event"]
        );
        assert!(read_outbox(&store).is_empty());
        // Still told: it is not queued again.
        assert!(told(&store, "failed/x", "e"));
    }

    #[test]
    fn watch_mode_leaves_a_target_alone_during_its_wait_after_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let (loaded, store) = load(dir.path(), &[hook("http://127.0.0.1:1/a", "failed")]);
        enqueue(
            &loaded,
            &store,
            &[notice(NotifyEvent::Failed, now())],
            &[("failed/x".into(), "e".into())],
        );
        update_outbox(&store, |o| {
            o[0].failures = 1;
            o[0].not_before = now() + backoff(1);
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Port 1 would refuse: no line says so, the notice was not tried.
        let lines = rt.block_on(deliver_target(
            &loaded,
            &store,
            0,
            &loaded.plan.notify[0],
            true,
        ));
        assert_eq!(lines, Vec::<String>::new());
        assert_eq!(read_outbox(&store)[0].failures, 1);
    }

    #[test]
    fn the_wait_after_failures_doubles_from_a_minute_to_an_hour() {
        let waits: Vec<u64> = (1..=8).map(backoff).collect();
        assert_eq!(waits, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
    }

    #[test]
    fn a_target_is_known_by_where_it_delivers_and_never_by_its_url_in_clear() {
        let dir = tempfile::tempdir().unwrap();
        let (loaded, _store) = load(
            dir.path(),
            &[
                hook("http://127.0.0.1:1/token-abc", "failed"),
                hook("http://127.0.0.1:1/other", "failed"),
            ],
        );
        let ids: Vec<String> = loaded.plan.notify.iter().map(target_id).collect();
        assert_ne!(ids[0], ids[1]);
        assert!(!ids[0].contains("token"));
    }
}
