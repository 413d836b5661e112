//! The daemon's status model: everything `/api/status`, the status page and `/metrics` show,
//! and the log lines of a run.
//!
//! It is the executor's [`Hooks`]: every apply the daemon runs reports its steps and copy
//! progress here, where they are logged (tracing) and counted. The scheduler (`watch::daemon`)
//! tells it about plans and units (queued, running, finished, next run); after each unit it
//! re-reads that account's records from the state, so what is shown is what is recorded, with
//! what only this process knows (a run in flight, a manual step waiting, a conflict) on top.
//!
//! Locks are std mutexes held for a few assignments, never across an await.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tracing::{debug, info, warn};

use super::metrics::{API_BUCKETS, Exposition, Histogram, STEP_BUCKETS};
use super::schedule::RunEnd;
use crate::apply::{Hooks, Outcome, StepResult};
use crate::diff::{Action, Change};
use crate::error::ErrorKind;
use crate::model::{Execution, Resource, ResourceKind, compile};
use crate::plan::Loaded;
use crate::state::{ResourceRecord, StateStore, Status};
use crate::transfer::imap::copy::Progress;

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `2026-11-22T17:30:00Z`
pub fn rfc3339(secs: u64) -> String {
    chrono::DateTime::from_timestamp(i64::try_from(secs).unwrap_or(i64::MAX), 0).map_or_else(
        || secs.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

/// Where a unit stands in the scheduler.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
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
struct Counters {
    messages: BTreeMap<String, u64>,
    bytes: BTreeMap<String, u64>,
    /// (resource kind, error kind) → count
    errors: BTreeMap<(String, &'static str), u64>,
    /// outcome → count
    steps: BTreeMap<&'static str, u64>,
    reloads: BTreeMap<&'static str, u64>,
    /// (api, operation) → latency
    api: BTreeMap<(String, String), Histogram>,
    /// resource kind → step duration
    step_seconds: BTreeMap<String, Histogram>,
    started: HashMap<String, (String, Instant)>,
}

#[derive(Debug, Default)]
struct Inner {
    started_at: u64,
    stopping: bool,
    plan_path: String,
    generation: u64,
    loaded_at: Option<u64>,
    plan_error: Option<(u64, String)>,
    accounts: BTreeMap<String, AccountInfo>,
    platform: UnitInfo,
    resources: BTreeMap<String, ResourceInfo>,
    counters: Counters,
}

/// The status model; one per daemon, shared by the scheduler, every apply and the HTTP server.
#[derive(Debug, Default)]
pub struct StatusModel {
    inner: Mutex<Inner>,
}

impl StatusModel {
    pub fn new(plan_path: String) -> StatusModel {
        StatusModel {
            inner: Mutex::new(Inner {
                started_at: unix_now(),
                plan_path,
                ..Inner::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves plain data behind: keep serving it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new plan is in force: rebuilds the resource list from it and the state.
    pub fn plan_loaded(&self, loaded: &Loaded, generation: u64, store: &StateStore) {
        let records = store.resources().unwrap_or_else(|e| {
            warn!(error = %e, "cannot read the state for the status page");
            BTreeMap::new()
        });
        let resources = compile(&loaded.plan);
        let mut inner = self.lock();
        inner.generation = generation;
        inner.loaded_at = Some(unix_now());
        inner.plan_error = None;
        *inner.counters.reloads.entry("applied").or_default() += 1;
        let mut old = std::mem::take(&mut inner.resources);
        for r in &resources {
            let id = r.id().to_string();
            let live = old.remove(&id).and_then(|i| i.live);
            inner.resources.insert(
                id.clone(),
                ResourceInfo {
                    kind: r.kind.as_str().to_string(),
                    account: r.account.clone(),
                    summary: r.summary.clone(),
                    in_plan: true,
                    record: records.get(&id).cloned(),
                    live,
                },
            );
        }
        for (id, rec) in &records {
            inner
                .resources
                .entry(id.clone())
                .or_insert_with(|| ResourceInfo {
                    kind: rec.kind.clone(),
                    account: rec.account.clone(),
                    summary: rec.summary.clone(),
                    in_plan: false,
                    record: Some(rec.clone()),
                    live: None,
                });
        }
        let mut accounts = std::mem::take(&mut inner.accounts);
        for a in units_of(loaded, &records) {
            let info = accounts.remove(&a).unwrap_or_default();
            inner.accounts.insert(a, info);
        }
        // Accounts gone from the plan and the state keep their row only while they run.
        for (a, info) in accounts {
            if info.unit.run != RunState::Idle {
                inner.accounts.insert(a, info);
            }
        }
        for (address, info) in inner.accounts.iter_mut() {
            describe_account(info, address, loaded, &resources);
        }
        let ids: Vec<String> = inner.accounts.keys().cloned().collect();
        drop(inner);
        for a in ids {
            self.refresh_account(store, &a);
        }
    }

    /// The plan file changed into something invalid (or unreadable): shown, and ignored.
    pub fn plan_rejected(&self, error: String) {
        let mut inner = self.lock();
        *inner.counters.reloads.entry("rejected").or_default() += 1;
        *inner
            .counters
            .errors
            .entry(("plan".into(), "invalid-plan"))
            .or_default() += 1;
        inner.plan_error = Some((unix_now(), error));
    }

    /// The file is back to the plan in force: nothing to show any more.
    pub fn plan_error_cleared(&self) {
        self.lock().plan_error = None;
    }

    pub fn stopping(&self) {
        self.lock().stopping = true;
    }

    fn with_unit<R>(&self, account: Option<&str>, f: impl FnOnce(&mut UnitInfo) -> R) -> R {
        let mut inner = self.lock();
        match account {
            None => f(&mut inner.platform),
            Some(a) => f(&mut inner.accounts.entry(a.to_string()).or_default().unit),
        }
    }

    pub fn unit_queued(&self, account: Option<&str>) {
        self.with_unit(account, |u| u.run = RunState::Queued);
    }

    pub fn unit_started(&self, account: Option<&str>) {
        let mut inner = self.lock();
        match account {
            None => {
                inner.platform.run = RunState::Running;
                inner.platform.last_run = Some(unix_now());
            }
            Some(a) => {
                let info = inner.accounts.entry(a.to_string()).or_default();
                info.unit.run = RunState::Running;
                info.unit.last_run = Some(unix_now());
                info.to_copy = 0;
                info.copied = 0;
                info.bytes = 0;
            }
        }
    }

    /// A unit's run ended; `next_run` is when the scheduler will run it again.
    pub fn unit_finished(
        &self,
        account: Option<&str>,
        end: &RunEnd,
        error: Option<String>,
        kind: Option<ErrorKind>,
        failures: u32,
        next_run: Option<SystemTime>,
    ) {
        let mut inner = self.lock();
        let unit = match account {
            None => &mut inner.platform,
            Some(a) => {
                let info = inner.accounts.entry(a.to_string()).or_default();
                if *end == RunEnd::Succeeded && info.mail_id.is_some() {
                    info.last_sync = Some(unix_now());
                }
                &mut info.unit
            }
        };
        unit.run = RunState::Idle;
        unit.failures = failures;
        unit.next_run = next_run.map(unix);
        if *end != RunEnd::Stopped {
            unit.last_error = error;
            unit.error_kind = kind;
        }
    }

    /// When a unit that is not running will run next (a plan change made it due).
    pub fn unit_scheduled(&self, account: Option<&str>, next_run: Option<SystemTime>) {
        self.with_unit(account, |u| u.next_run = next_run.map(unix));
    }

    /// Re-reads an account's records from the state (after its run, or a plan change).
    pub fn refresh_account(&self, store: &StateStore, account: &str) {
        let ids: Vec<String> = {
            let inner = self.lock();
            inner
                .resources
                .iter()
                .filter(|(_, r)| r.account.as_deref() == Some(account))
                .map(|(id, _)| id.clone())
                .collect()
        };
        let mail_id = self
            .lock()
            .accounts
            .get(account)
            .and_then(|a| a.mail_id.clone());
        let records: Vec<(String, Option<ResourceRecord>)> = ids
            .into_iter()
            .map(|id| {
                let rec = store.resource(&id).ok().flatten();
                (id, rec)
            })
            .collect();
        let migrated = mail_id.as_ref().and_then(|id| {
            store.folders(id).ok().map(|folders| {
                folders
                    .values()
                    .fold((0, 0), |(m, b), f| (m + f.messages, b + f.bytes))
            })
        });
        let mut inner = self.lock();
        let mut last_sync = None;
        for (id, rec) in records {
            if let Some(info) = inner.resources.get_mut(&id) {
                if Some(&id) == mail_id.as_ref()
                    && let Some(r) = &rec
                    && r.status == Status::Done
                {
                    last_sync = Some(r.updated_at);
                }
                clear_acknowledged(info, &rec);
                info.record = rec;
            }
        }
        if let Some(info) = inner.accounts.get_mut(account) {
            if let Some((m, b)) = migrated {
                info.migrated_messages = m;
                info.migrated_bytes = b;
            }
            if info.last_sync.is_none() {
                info.last_sync = last_sync;
            }
        }
    }

    /// The platform unit's resources (steps of no account) re-read from the state.
    pub fn refresh_platform(&self, store: &StateStore) {
        let mut inner = self.lock();
        for (id, info) in inner.resources.iter_mut() {
            if info.account.is_none() {
                let rec = store.resource(id).ok().flatten();
                clear_acknowledged(info, &rec);
                info.record = rec;
            }
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let inner = self.lock();
        let now = unix_now();
        // Grouped once: a plan of thousands of accounts is read on every page refresh.
        let mut by_account: HashMap<&str, Vec<&ResourceInfo>> = HashMap::new();
        for r in inner.resources.values().filter(|r| r.in_plan) {
            if let Some(a) = &r.account {
                by_account.entry(a.as_str()).or_default().push(r);
            }
        }
        let mut accounts: Vec<AccountView> = inner
            .accounts
            .iter()
            .map(|(address, info)| {
                let mine = by_account.remove(address.as_str()).unwrap_or_default();
                account_view(address, info, &mine, now)
            })
            .collect();
        accounts.sort_by(|a, b| (a.health.rank(), &a.address).cmp(&(b.health.rank(), &b.address)));
        let resources: Vec<ResourceView> = inner
            .resources
            .iter()
            .map(|(id, r)| resource_view(&inner, id, r))
            .collect();
        let platform_ids = inner
            .resources
            .values()
            .filter(|r| r.account.is_none())
            .count();
        let summary = SummaryView {
            accounts: accounts.len(),
            failing: accounts
                .iter()
                .filter(|a| a.health == Health::Failing)
                .count(),
            running: accounts
                .iter()
                .filter(|a| a.health == Health::Running)
                .count(),
            synced: accounts
                .iter()
                .filter(|a| matches!(a.health, Health::Synced | Health::CutOver))
                .count(),
            messages_migrated: accounts.iter().map(|a| a.messages_migrated).sum(),
            bytes_migrated: accounts.iter().map(|a| a.bytes_migrated).sum(),
        };
        Snapshot {
            version: env!("CARGO_PKG_VERSION"),
            now: rfc3339(now),
            started_at: rfc3339(inner.started_at),
            stopping: inner.stopping,
            plan: PlanView {
                path: inner.plan_path.clone(),
                generation: inner.generation,
                loaded_at: inner.loaded_at.map(rfc3339),
                error: inner.plan_error.as_ref().map(|(_, e)| e.clone()),
                error_at: inner.plan_error.as_ref().map(|(t, _)| rfc3339(*t)),
            },
            summary,
            accounts,
            platform: (platform_ids > 0).then(|| UnitView {
                state: inner.platform.run,
                failures: inner.platform.failures,
                last_error: inner.platform.last_error.clone(),
                error_kind: inner.platform.error_kind.map(ErrorKind::as_str),
                next_run: inner.platform.next_run.map(rfc3339),
                steps_total: platform_ids,
                steps_done: inner
                    .resources
                    .values()
                    .filter(|r| r.account.is_none() && is_done(r))
                    .count(),
            }),
            resources,
        }
    }

    /// The Prometheus exposition of the counters and of the current status.
    pub fn metrics_text(&self) -> String {
        let snapshot = self.snapshot();
        let inner = self.lock();
        let c = &inner.counters;
        let mut e = Exposition::default();
        let by_account = |f: &dyn Fn(&AccountView) -> Option<f64>| -> Vec<(String, f64)> {
            snapshot
                .accounts
                .iter()
                .filter_map(|a| f(a).map(|v| (a.address.clone(), v)))
                .collect()
        };
        e.by_label(
            "mailshift_messages_copied_total",
            "counter",
            "Messages copied to the destination by this process, per account.",
            "account",
            c.messages.iter().map(|(k, n)| (k.as_str(), *n as f64)),
        );
        e.by_label(
            "mailshift_bytes_copied_total",
            "counter",
            "Bytes of messages copied to the destination by this process, per account.",
            "account",
            c.bytes.iter().map(|(k, n)| (k.as_str(), *n as f64)),
        );
        e.family(
            "mailshift_errors_total",
            "counter",
            "Failed steps and rejected plan changes, by resource kind and error kind.",
        );
        for ((resource, kind), n) in &c.errors {
            e.sample(
                "mailshift_errors_total",
                &[("resource", resource), ("kind", kind)],
                *n as f64,
            );
        }
        e.by_label(
            "mailshift_step_runs_total",
            "counter",
            "Steps run by this process, by outcome.",
            "outcome",
            c.steps.iter().map(|(k, n)| (*k, *n as f64)),
        );
        let mut by_status: BTreeMap<&str, u64> = BTreeMap::new();
        for r in &snapshot.resources {
            *by_status.entry(r.status).or_default() += 1;
        }
        e.by_label(
            "mailshift_steps",
            "gauge",
            "Resources of the plan and the state, by current status.",
            "status",
            by_status.iter().map(|(k, n)| (*k, *n as f64)),
        );
        let lag = by_account(&|a| a.lag_seconds.filter(|_| !a.cut_over).map(|l| l as f64));
        e.by_label(
            "mailshift_account_sync_lag_seconds",
            "gauge",
            "Seconds since the account's mail was last synced completely (accounts still synced).",
            "account",
            lag.iter().map(|(k, v)| (k.as_str(), *v)),
        );
        let failures = by_account(&|a| Some(f64::from(a.failures)));
        e.by_label(
            "mailshift_account_consecutive_failures",
            "gauge",
            "Failed runs of the account in a row (0 after a success).",
            "account",
            failures.iter().map(|(k, v)| (k.as_str(), *v)),
        );
        e.by_label(
            "mailshift_plan_reloads_total",
            "counter",
            "Plan loads put in force (applied) or refused as invalid (rejected).",
            "result",
            c.reloads.iter().map(|(k, n)| (*k, *n as f64)),
        );
        e.family(
            "mailshift_plan_valid",
            "gauge",
            "1 when the plan file on disk is the plan in force, 0 when its last change was refused.",
        );
        e.sample(
            "mailshift_plan_valid",
            &[],
            if inner.plan_error.is_some() { 0.0 } else { 1.0 },
        );
        e.family(
            "mailshift_api_call_duration_seconds",
            "histogram",
            "Latency of platform API calls (the OVHcloud API), by API and operation.",
        );
        for ((api, op), h) in &c.api {
            e.histogram(
                "mailshift_api_call_duration_seconds",
                &[("api", api), ("operation", op)],
                h,
            );
        }
        e.family(
            "mailshift_step_duration_seconds",
            "histogram",
            "Time taken by steps, by resource kind (a mail step is one sync of an account).",
        );
        for (kind, h) in &c.step_seconds {
            e.histogram("mailshift_step_duration_seconds", &[("kind", kind)], h);
        }
        e.finish()
    }
}

/// Accounts the daemon reconciles: the plan's, and those the state still has records of
/// (a feature of an account removed from the plan must still be removed).
pub fn units_of(loaded: &Loaded, records: &BTreeMap<String, ResourceRecord>) -> Vec<String> {
    let mut out: Vec<String> = loaded
        .plan
        .accounts
        .iter()
        .map(|a| a.address.to_ascii_lowercase())
        .collect();
    out.extend(records.values().filter_map(|r| r.account.clone()));
    out.sort();
    out.dedup();
    out
}

fn describe_account(info: &mut AccountInfo, address: &str, loaded: &Loaded, all: &[Resource]) {
    info.in_plan = loaded
        .plan
        .accounts
        .iter()
        .any(|a| a.address.eq_ignore_ascii_case(address));
    let mail = all
        .iter()
        .find(|r| r.account.as_deref() == Some(address) && r.kind == ResourceKind::Mail);
    info.mail_id = mail.map(|r| r.id().to_string());
    info.cut_over = mail.is_some_and(|r| matches!(r.execution, Execution::Sync { cut_over: true }));
    info.syncs = mail.is_some_and(|r| matches!(r.execution, Execution::Sync { cut_over: false }));
}

fn is_done(r: &ResourceInfo) -> bool {
    matches!(status_label(r), "done" | "acknowledged")
}

fn status_label(r: &ResourceInfo) -> &'static str {
    match &r.live {
        Some(Live::Running) => "running",
        Some(Live::Ended("done", _)) | None => match &r.record {
            None => "pending",
            Some(rec) if !r.in_plan && rec.status.is_applied() => "orphaned",
            Some(rec) => rec.status.as_str(),
        },
        Some(Live::Ended(label, _)) => label,
    }
}

/// The overall state of an account, for people: what the row says and where it sorts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Health {
    Failing,
    Running,
    Queued,
    /// A manual step waits for a person (`mailshift ack`).
    Manual,
    Pending,
    Synced,
    CutOver,
}

impl Health {
    /// Failures first: they are what a person opening the page must see.
    pub fn rank(self) -> u8 {
        self as u8
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Health::Failing => "failing",
            Health::Running => "running",
            Health::Queued => "queued",
            Health::Manual => "manual",
            Health::Pending => "pending",
            Health::Synced => "synced",
            Health::CutOver => "cut-over",
        }
    }
}

/// `mine`: the account's resources that are in the plan.
fn account_view(
    address: &str,
    info: &AccountInfo,
    mine: &[&ResourceInfo],
    now: u64,
) -> AccountView {
    let labels: Vec<&str> = mine.iter().map(|r| status_label(r)).collect();
    let steps_done = mine.iter().filter(|r| is_done(r)).count();
    let resource_error = mine.iter().find_map(|r| match (&r.live, &r.record) {
        (Some(Live::Ended("failed" | "conflict" | "blocked", text)), _) => Some(text.clone()),
        (None, Some(rec)) if rec.status == Status::Failed => rec.last_error.clone(),
        _ => None,
    });
    let failing = info.unit.failures > 0
        || labels
            .iter()
            .any(|l| matches!(*l, "failed" | "conflict" | "blocked"));
    let health = if failing {
        Health::Failing
    } else if info.unit.run == RunState::Running {
        Health::Running
    } else if info.unit.run == RunState::Queued {
        Health::Queued
    } else if labels.contains(&"manual") {
        Health::Manual
    } else if labels
        .iter()
        .any(|l| matches!(*l, "pending" | "in-progress"))
    {
        Health::Pending
    } else if info.cut_over {
        Health::CutOver
    } else {
        Health::Synced
    };
    let progress = if info.unit.run == RunState::Running && info.to_copy > 0 {
        (info.copied as f64 / info.to_copy as f64).min(1.0)
    } else if mine.is_empty() {
        1.0
    } else {
        steps_done as f64 / mine.len() as f64
    };
    AccountView {
        address: address.to_string(),
        health,
        state: info.unit.run,
        in_plan: info.in_plan,
        cut_over: info.cut_over,
        steps_done,
        steps_total: mine.len(),
        progress,
        copy: CopyView {
            to_copy: info.to_copy,
            copied: info.copied,
            bytes: info.bytes,
        },
        messages_migrated: info.migrated_messages,
        bytes_migrated: info.migrated_bytes,
        last_sync: info.last_sync.map(rfc3339),
        lag_seconds: info
            .last_sync
            .filter(|_| info.syncs)
            .map(|t| now.saturating_sub(t)),
        last_run: info.unit.last_run.map(rfc3339),
        last_error: info.unit.last_error.clone().or(resource_error),
        error_kind: info.unit.error_kind.map(ErrorKind::as_str),
        failures: info.unit.failures,
        next_run: info.unit.next_run.map(rfc3339),
    }
}

/// A manual step acknowledged since it last waited (`mailshift ack`, `POST /api/ack`) no longer
/// waits: what the last run saw gives way to the state.
fn clear_acknowledged(info: &mut ResourceInfo, rec: &Option<ResourceRecord>) {
    if rec.as_ref().is_some_and(|r| r.status.is_applied())
        && matches!(info.live, Some(Live::Ended("manual", _)))
    {
        info.live = None;
    }
}

fn resource_view(inner: &Inner, id: &str, r: &ResourceInfo) -> ResourceView {
    let status = status_label(r);
    let (last_error, detail) = match &r.live {
        Some(Live::Ended("manual", text)) => (None, Some(text.clone())),
        Some(Live::Ended("done", _)) | Some(Live::Running) | None => (
            r.record
                .as_ref()
                .filter(|rec| rec.status == Status::Failed)
                .and_then(|rec| rec.last_error.clone()),
            None,
        ),
        Some(Live::Ended(_, text)) => (Some(text.clone()), None),
    };
    let unit = match &r.account {
        Some(a) => inner.accounts.get(a).map(|a| &a.unit),
        None => Some(&inner.platform),
    };
    let account = r.account.as_ref().and_then(|a| inner.accounts.get(a));
    let progress = (r.kind == ResourceKind::Mail.as_str())
        .then_some(account)
        .flatten()
        .map(|a| MailProgress {
            running: status == "running",
            to_copy: a.to_copy,
            copied: a.copied,
            messages_migrated: a.migrated_messages,
            bytes_migrated: a.migrated_bytes,
        });
    ResourceView {
        id: id.to_string(),
        kind: r.kind.clone(),
        account: r.account.clone(),
        in_plan: r.in_plan,
        status,
        summary: r.summary.clone(),
        last_error,
        detail,
        updated_at: r.record.as_ref().map(|rec| rfc3339(rec.updated_at)),
        sync_point: r.record.as_ref().and_then(|rec| rec.sync_point),
        next_run: unit.and_then(|u| u.next_run).map(rfc3339),
        progress,
    }
}

/// `/api/status`.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub version: &'static str,
    pub now: String,
    pub started_at: String,
    /// The daemon received SIGTERM and is finishing in-flight work.
    pub stopping: bool,
    pub plan: PlanView,
    pub summary: SummaryView,
    /// Failing accounts first, then running, queued, waiting for a manual step, pending,
    /// synced, cut over; by address within each.
    pub accounts: Vec<AccountView>,
    /// The steps of no account (domains, groups, contacts, footers), if the plan has any.
    pub platform: Option<UnitView>,
    /// Every resource of the plan, and those only the state still has, by id.
    pub resources: Vec<ResourceView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanView {
    pub path: String,
    /// Plans put in force since the daemon started (1 = the one it started with).
    pub generation: u64,
    pub loaded_at: Option<String>,
    /// Why the plan file's last change was refused; the previous plan keeps running.
    pub error: Option<String>,
    pub error_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SummaryView {
    pub accounts: usize,
    pub failing: usize,
    pub running: usize,
    pub synced: usize,
    pub messages_migrated: u64,
    pub bytes_migrated: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AccountView {
    pub address: String,
    pub health: Health,
    pub state: RunState,
    pub in_plan: bool,
    pub cut_over: bool,
    pub steps_done: usize,
    pub steps_total: usize,
    /// 0 to 1: the copy in flight while one runs, else the share of steps done.
    pub progress: f64,
    /// The current (or last) run's copy.
    pub copy: CopyView,
    /// Messages and bytes recorded as copied, all runs together.
    pub messages_migrated: u64,
    pub bytes_migrated: u64,
    pub last_sync: Option<String>,
    /// Seconds since `last_sync`, while the account is still synced.
    pub lag_seconds: Option<u64>,
    pub last_run: Option<String>,
    /// Starts with "waiting for a plan change or SIGHUP" when retrying cannot help.
    pub last_error: Option<String>,
    /// The kind of `last_error` (`auth`, `network`, `throttled`…; see `crate::error`).
    pub error_kind: Option<&'static str>,
    /// Failed runs in a row.
    pub failures: u32,
    pub next_run: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CopyView {
    pub to_copy: u64,
    pub copied: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnitView {
    pub state: RunState,
    pub failures: u32,
    pub last_error: Option<String>,
    pub error_kind: Option<&'static str>,
    pub next_run: Option<String>,
    pub steps_total: usize,
    pub steps_done: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResourceView {
    pub id: String,
    pub kind: String,
    pub account: Option<String>,
    /// In the plan in force (false: only the state remembers it).
    pub in_plan: bool,
    /// `pending`, `running`, `done`, `in-progress` (interrupted), `failed`, `blocked` (a step it
    /// depends on did not complete), `manual` (waiting for a person), `conflict`,
    /// `acknowledged`, `orphaned`.
    pub status: &'static str,
    pub summary: String,
    pub last_error: Option<String>,
    /// For manual steps: what to do.
    pub detail: Option<String>,
    pub updated_at: Option<String>,
    pub sync_point: Option<u64>,
    pub next_run: Option<String>,
    pub progress: Option<MailProgress>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MailProgress {
    pub running: bool,
    pub to_copy: u64,
    pub copied: u64,
    pub messages_migrated: u64,
    pub bytes_migrated: u64,
}

impl Progress for StatusModel {
    fn folder_started(&self, account: &str, folder: &str, to_copy: u64) {
        if to_copy > 0 {
            debug!(account, folder, to_copy, "copying folder");
        }
        let mut inner = self.lock();
        inner
            .accounts
            .entry(account.to_string())
            .or_default()
            .to_copy += to_copy;
    }

    fn copied(&self, account: &str, messages: u64, bytes: u64) {
        let mut inner = self.lock();
        let info = inner.accounts.entry(account.to_string()).or_default();
        info.copied += messages;
        info.bytes += bytes;
        *inner
            .counters
            .messages
            .entry(account.to_string())
            .or_default() += messages;
        *inner.counters.bytes.entry(account.to_string()).or_default() += bytes;
    }

    fn note(&self, account: &str, text: &str) {
        info!(account, "{text}");
    }
}

impl Hooks for StatusModel {
    fn step_started(&self, change: &Change) {
        // A sync's result line says what it copied; its start is news only when debugging.
        let account = change.account.as_deref().unwrap_or("");
        let text = format!("{} {}", verb(change.action), change.id);
        if change.action == Action::Sync {
            debug!(account, step = %change.id, "{text}");
        } else {
            info!(account, step = %change.id, action = change.action.as_str(), "{text}");
        }
        let mut inner = self.lock();
        inner.counters.started.insert(
            change.id.clone(),
            (change.kind.as_str().to_string(), Instant::now()),
        );
        if let Some(r) = inner.resources.get_mut(&change.id) {
            r.live = Some(Live::Running);
        }
    }

    fn step_finished(&self, result: &StepResult) {
        let account = result.account.as_deref().unwrap_or("");
        let copied_nothing = result.action == Action::Sync
            && self
                .lock()
                .accounts
                .get(account)
                .is_none_or(|a| a.copied == 0);
        let mut error_kind = None;
        let (label, text) = match &result.outcome {
            // Every interval, each account's no-op sync: a line per account would drown the rest.
            Outcome::Done(t) if copied_nothing => {
                debug!(account, step = %result.id, "done: {t}");
                ("done", t)
            }
            Outcome::Done(t) => {
                info!(account, step = %result.id, "done: {t}");
                ("done", t)
            }
            Outcome::Failed(e) => {
                warn!(account, step = %result.id, error_kind = e.kind.as_str(), "failed: {e}");
                error_kind = Some(e.kind.as_str());
                ("failed", &e.message)
            }
            Outcome::Skipped(t) if self.lock().stopping => {
                info!(account, step = %result.id, "stopped at a checkpoint: {t}");
                ("blocked", t)
            }
            Outcome::Skipped(t) => {
                info!(account, step = %result.id, "not run: {t}");
                ("blocked", t)
            }
            Outcome::Manual(t) => {
                warn!(account, step = %result.id, "manual step waiting for a person: {t}");
                ("manual", t)
            }
            Outcome::Conflict(t) => {
                warn!(account, step = %result.id, "conflict: {t}");
                ("conflict", t)
            }
        };
        let mut inner = self.lock();
        let started = inner.counters.started.remove(&result.id);
        let kind = started.as_ref().map_or_else(
            || {
                inner
                    .resources
                    .get(&result.id)
                    .map_or_else(|| "unknown".to_string(), |r| r.kind.clone())
            },
            |(k, _)| k.clone(),
        );
        *inner.counters.steps.entry(label).or_default() += 1;
        match label {
            "failed" => {
                *inner
                    .counters
                    .errors
                    .entry((kind.clone(), error_kind.unwrap_or("bug")))
                    .or_default() += 1
            }
            "conflict" | "blocked" => {
                *inner
                    .counters
                    .errors
                    .entry((kind.clone(), label))
                    .or_default() += 1
            }
            _ => {}
        }
        if let Some((_, at)) = started {
            inner
                .counters
                .step_seconds
                .entry(kind)
                .or_insert_with(|| Histogram::new(STEP_BUCKETS))
                .observe(at.elapsed().as_secs_f64());
        }
        // A stopped step is neither a failure nor news: the state says in-progress.
        let stopped = inner.stopping && matches!(result.outcome, Outcome::Skipped(_));
        if let Some(r) = inner.resources.get_mut(&result.id) {
            r.live = if stopped {
                None
            } else {
                Some(Live::Ended(label, text.clone()))
            };
        }
    }

    fn api_call(&self, api: &str, operation: &str, elapsed: Duration, ok: bool) {
        debug!(
            api,
            operation,
            ms = elapsed.as_millis() as u64,
            ok,
            "API call"
        );
        let mut inner = self.lock();
        inner
            .counters
            .api
            .entry((api.to_string(), operation.to_string()))
            .or_insert_with(|| Histogram::new(API_BUCKETS))
            .observe(elapsed.as_secs_f64());
        if !ok {
            *inner
                .counters
                .errors
                .entry((format!("api:{api}"), "api-call"))
                .or_default() += 1;
        }
    }
}

fn verb(a: Action) -> &'static str {
    match a {
        Action::Create => "creating",
        Action::Update => "updating",
        Action::Delete => "removing",
        Action::Sync => "syncing",
        Action::Manual => "manual step",
        Action::Conflict => "conflict",
        Action::Orphaned => "orphaned",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::StepError;

    #[test]
    fn health_ranks_failures_first() {
        let mut all = [
            Health::CutOver,
            Health::Synced,
            Health::Pending,
            Health::Manual,
            Health::Queued,
            Health::Running,
            Health::Failing,
        ];
        all.sort_by_key(|h| h.rank());
        assert_eq!(all[0], Health::Failing);
        assert_eq!(all[6], Health::CutOver);
    }

    fn change(id: &str, account: &str) -> Change {
        Change {
            id: id.into(),
            addr: id.parse().ok(),
            action: Action::Sync,
            kind: ResourceKind::Mail,
            account: Some(account.into()),
            platform: None,
            reason: String::new(),
            before: None,
            after: None,
            instructions: None,
            depends_on: Vec::new(),
        }
    }

    #[test]
    fn hooks_feed_the_counters_and_histograms_of_metrics() {
        let m = StatusModel::new("plan.yaml".into());
        let a = "a@example.com";
        m.unit_started(Some(a));
        m.step_started(&change("account/a@example.com/mail", a));
        m.folder_started(a, "INBOX", 10);
        m.copied(a, 4, 4000);
        m.copied(a, 6, 6000);
        m.step_finished(&StepResult {
            id: "account/a@example.com/mail".into(),
            account: Some(a.into()),
            action: Action::Sync,
            outcome: Outcome::Failed(StepError::new(
                ErrorKind::Network,
                "cannot connect to IMAP server h:1: refused",
            )),
        });
        m.api_call(
            "ovh",
            "GET /email/pro/{service}",
            Duration::from_millis(300),
            true,
        );
        m.api_call(
            "ovh",
            "GET /email/pro/{service}",
            Duration::from_secs(3),
            false,
        );
        let text = m.metrics_text();
        for line in [
            "mailshift_messages_copied_total{account=\"a@example.com\"} 10",
            "mailshift_bytes_copied_total{account=\"a@example.com\"} 10000",
            "mailshift_errors_total{resource=\"mail\",kind=\"network\"} 1",
            "mailshift_errors_total{resource=\"api:ovh\",kind=\"api-call\"} 1",
            "mailshift_step_runs_total{outcome=\"failed\"} 1",
            "mailshift_api_call_duration_seconds_bucket{api=\"ovh\",operation=\"GET /email/pro/{service}\",le=\"0.5\"} 1",
            "mailshift_api_call_duration_seconds_count{api=\"ovh\",operation=\"GET /email/pro/{service}\"} 2",
            "mailshift_step_duration_seconds_count{kind=\"mail\"} 1",
        ] {
            assert!(text.contains(line), "no {line} in\n{text}");
        }
        let s = m.snapshot();
        let acc = &s.accounts[0];
        assert_eq!((acc.copy.to_copy, acc.copy.copied), (10, 10));
        assert_eq!(acc.state, RunState::Running);
        let end = RunEnd::Failed {
            retry: crate::error::Retry::Backoff,
            after: None,
        };
        m.unit_finished(
            Some(a),
            &end,
            Some("x".into()),
            Some(ErrorKind::Network),
            1,
            None,
        );
        assert_eq!(m.snapshot().accounts[0].health, Health::Failing);
    }

    #[test]
    fn rfc3339_is_utc_seconds() {
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
