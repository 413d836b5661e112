//! The daemon's status model: everything `/api/status`, the status page and `/metrics` show,
//! and the log lines of a run.
//!
//! It is the executor's [`Hooks`](crate::apply::Hooks): every apply the daemon runs reports its
//! steps and copy progress here (`hooks`), where they are logged (tracing) and counted
//! (`super::metrics`). The scheduler (`watch::daemon`) tells it about plans and units (queued,
//! running, finished, next run; `scheduler`); after each unit it re-reads that account's records
//! from the state, so what is shown is what is recorded, with what only this process knows (a
//! run in flight, a manual step waiting, a conflict) on top. `views` turns it into the
//! `/api/status` document, which the page and the gauges of `/metrics` read too. Times are
//! kept as Unix seconds and shown by `render::time`.
//!
//! Locks are std mutexes held for a few assignments, never across an await.

mod hooks;
mod scheduler;
mod views;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use mailshift_core::shard::Shard;
use serde::{Deserialize, Serialize};

use super::metrics::Counters;
use crate::error::ErrorKind;
use crate::state::ResourceRecord;

pub use scheduler::units_of;
pub use views::{
    AccountView, CopyView, Health, MailProgress, PlanView, ResourceView, ShardHealth, Snapshot,
    SummaryView, UnitView,
};

/// The model keeps times as Unix seconds, like the state's records.
pub fn unix_now() -> u64 {
    unix(SystemTime::now())
}

pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Where a unit stands in the scheduler.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunState {
    #[default]
    Idle,
    /// Due, waiting for a free slot (`parallel_accounts`).
    Queued,
    Running,
}

#[derive(Debug, Default)]
struct UnitInfo {
    run: RunState,
    next_run: Option<u64>,
    failures: u32,
    last_error: Option<String>,
    error_kind: Option<ErrorKind>,
    last_run: Option<u64>,
}

#[derive(Debug, Default)]
struct AccountInfo {
    unit: UnitInfo,
    in_plan: bool,
    cut_over: bool,
    /// Still synced on an interval (has mail, not cut over).
    syncs: bool,
    mail_id: Option<String>,
    /// Unix time of the last completed mail sync.
    last_sync: Option<u64>,
    migrated_messages: u64,
    migrated_bytes: u64,
    /// The current (or last) run's copy: messages to copy, copied, bytes.
    to_copy: u64,
    copied: u64,
    bytes: u64,
    /// The current run's start (Unix seconds) and the engine's estimate of what it copies,
    /// for its ETA (`apply::sizing::eta`).
    copy_started: Option<u64>,
    expected: u64,
    /// Contacts, events and tasks recorded as copied, all runs together, by kind.
    items_migrated: BTreeMap<String, u64>,
    /// The mail copy is paused at a daily limit: until when (Unix seconds), and which limit.
    paused: Option<(u64, String)>,
    /// The plan in force pauses the account's copies (`paused: true`).
    plan_hold: Option<crate::apply::hold::Hold>,
    /// A person paused its copies: the plan's pause, else one from the API (the state's).
    held: Option<crate::apply::hold::Hold>,
}

/// What this process saw of a resource, beyond its state record.
#[derive(Debug, Clone)]
enum Live {
    Running,
    /// The label shown as its status, and the text (an error, instructions).
    Ended(&'static str, String),
}

#[derive(Debug)]
struct ResourceInfo {
    kind: String,
    account: Option<String>,
    summary: String,
    in_plan: bool,
    record: Option<ResourceRecord>,
    live: Option<Live>,
}

#[derive(Debug, Default)]
struct Inner {
    started_at: u64,
    /// The share of the plan this process runs (`None`: the whole plan, `Shard::WHOLE`).
    shard: Option<Shard>,
    /// The plan in force's SHA-256, first 16 hex digits.
    plan_sha256: Option<String>,
    stopping: bool,
    plan_path: String,
    generation: u64,
    loaded_at: Option<u64>,
    plan_error: Option<(u64, String)>,
    accounts: BTreeMap<String, AccountInfo>,
    platform: UnitInfo,
    resources: BTreeMap<String, ResourceInfo>,
    counters: Counters,
    /// The plan in force when a domain of it has a `dns:` cutover that this process runs
    /// (the whole plan, or shard 0's platform unit), and the state's records of those
    /// cutovers, re-read after each platform run: `/api/status`'s `cutovers`.
    cutover_plan: Option<std::sync::Arc<crate::plan::model::Plan>>,
    cutover_records: BTreeMap<String, crate::cutover::CutoverRecord>,
}

/// The status model; one per daemon, shared by the scheduler, every apply and the HTTP server.
#[derive(Debug, Default)]
pub struct StatusModel {
    inner: Mutex<Inner>,
}

impl StatusModel {
    pub fn new(plan_path: String) -> StatusModel {
        StatusModel::sharded(plan_path, Shard::WHOLE)
    }

    /// The model of a watch that runs one shard of the plan: `/api/status` says which, and
    /// every metric carries its `shard` label.
    pub fn sharded(plan_path: String, shard: Shard) -> StatusModel {
        StatusModel {
            inner: Mutex::new(Inner {
                started_at: unix_now(),
                shard: Some(shard),
                plan_path,
                ..Inner::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves plain data behind: keep serving it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The Prometheus exposition of the counters and of the current status.
    pub fn metrics_text(&self) -> String {
        let snapshot = self.snapshot();
        let inner = self.lock();
        inner
            .counters
            .exposition(&snapshot, inner.plan_error.is_none(), snapshot.shard)
    }
}
