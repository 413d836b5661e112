//! The model as people and programs read it: the `/api/status` document (its shape is a
//! contract: scripts and the status page read it) and the labels it is made of.

use std::collections::{BTreeMap, HashMap};

use mailshift_core::shard::Shard;
use serde::{Deserialize, Serialize};

use super::{AccountInfo, Inner, Live, ResourceInfo, RunState, StatusModel, unix_now};
use crate::model::ResourceKind;
use crate::render::time::rfc3339;
use crate::state::Status;

impl StatusModel {
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
            paused: accounts
                .iter()
                .filter(|a| matches!(a.health, Health::PausedByUser | Health::Paused))
                .count(),
            messages_migrated: accounts.iter().map(|a| a.messages_migrated).sum(),
            bytes_migrated: accounts.iter().map(|a| a.bytes_migrated).sum(),
        };
        Snapshot {
            version: env!("CARGO_PKG_VERSION").to_string(),
            shard: inner.shard.unwrap_or(Shard::WHOLE),
            now: rfc3339(now),
            started_at: rfc3339(inner.started_at),
            stopping: inner.stopping,
            plan: PlanView {
                path: inner.plan_path.clone(),
                sha256: inner.plan_sha256.clone(),
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
                error_kind: inner.platform.error_kind.map(|k| k.as_str().to_string()),
                next_run: inner.platform.next_run.map(rfc3339),
                steps_total: platform_ids,
                steps_done: inner
                    .resources
                    .values()
                    .filter(|r| r.account.is_none() && is_done(r))
                    .count(),
            }),
            resources,
            shards: Vec::new(),
            problems: Vec::new(),
            notes: Vec::new(),
            cutovers: inner
                .cutover_plan
                .as_ref()
                .map(|p| crate::cutover::view::cutover_views(p, &inner.cutover_records))
                .unwrap_or_default(),
        }
    }
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Health {
    Failing,
    Running,
    Queued,
    /// A manual step waits for a person (`mailshift ack`).
    Manual,
    /// A person paused the account's copies (`paused_by`: the plan or the API); apart from
    /// `paused`, which a daily limit imposes and which ends by itself.
    PausedByUser,
    /// The mail copy waits for a platform's daily limit to reopen (`paused_until`).
    Paused,
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
            Health::PausedByUser => "paused-by-user",
            Health::Paused => "paused",
            Health::Pending => "pending",
            Health::Synced => "synced",
            Health::CutOver => "cut-over",
        }
    }
}

/// `mine`: the account's resources that are in the plan.
pub(super) fn account_view(
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
    } else if info.held.is_some() {
        Health::PausedByUser
    } else if info.paused.is_some() {
        Health::Paused
    } else if labels
        .iter()
        // Waiting for another shard (`--shard`) is not done, and not a failure.
        .any(|l| matches!(*l, "pending" | "in-progress" | "waiting"))
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
        shard: None,
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
            // Folders not started yet are in the engine's estimate, not in `to_copy`.
            eta_seconds: info
                .copy_started
                .filter(|_| info.unit.run == RunState::Running)
                .and_then(|t| {
                    let total = info.to_copy.max(info.expected);
                    crate::apply::sizing::eta(
                        info.copied,
                        total.saturating_sub(info.copied),
                        now.saturating_sub(t),
                    )
                }),
        },
        messages_migrated: info.migrated_messages,
        bytes_migrated: info.migrated_bytes,
        items_migrated: info.items_migrated.clone(),
        last_sync: info.last_sync.map(rfc3339),
        lag_seconds: info
            .last_sync
            .filter(|_| info.syncs)
            .map(|t| now.saturating_sub(t)),
        last_run: info.unit.last_run.map(rfc3339),
        last_error: info.unit.last_error.clone().or(resource_error),
        error_kind: info.unit.error_kind.map(|k| k.as_str().to_string()),
        failures: info.unit.failures,
        next_run: info.unit.next_run.map(rfc3339),
        paused_until: info.paused.as_ref().map(|(t, _)| rfc3339(*t)),
        pause_reason: info.paused.as_ref().map(|(_, r)| r.clone()),
        paused_until_unix: info.paused.as_ref().map(|(t, _)| *t),
        paused_by: info.held.as_ref().map(|h| h.by().to_string()),
        paused_by_note: info.held.as_ref().map(|h| h.text()),
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
        shard: None,
        kind: r.kind.clone(),
        account: r.account.clone(),
        in_plan: r.in_plan,
        status: status.to_string(),
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
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: String,
    /// Which share of the plan this document covers: `{"index": 2, "count": 10}` for the
    /// watch of shard 2 of 10; `{"index": 0, "count": 1}` for an unsharded watch and for a
    /// merged view of every shard (`mailshift status --from`, `watch --aggregate`): the whole.
    #[serde(default = "whole")]
    pub shard: Shard,
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
    /// A merged view only: each shard asked, with its health (reachable or not, when it
    /// answered, its plan, its error), in the order given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardHealth>,
    /// A merged view only: what makes the merged view wrong or incomplete (an account claimed
    /// by two shards, a shard missing, shards disagreeing on their count), one sentence each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// A merged view only: what a person should know but that is not wrong in itself (shards
    /// running different plans while a new plan rolls out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Each domain's cutover (`crate::cutover::view`): shard 0's or the whole plan's watch
    /// only; absent from older watches' documents and from plans without `dns:`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cutovers: Vec<crate::cutover::view::CutoverView>,
}

fn whole() -> Shard {
    Shard::WHOLE
}

/// One shard of a merged view, as the aggregator saw it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardHealth {
    /// The `/api/status` URL asked.
    pub url: String,
    /// The shard's own `shard` (absent if it never answered).
    pub shard: Option<Shard>,
    pub reachable: bool,
    /// When its answer arrived (the last good one, if the last ask failed).
    pub answered_at: Option<String>,
    /// How long the last good answer took, in milliseconds.
    pub latency_ms: Option<u64>,
    /// Its mailshift version.
    pub version: Option<String>,
    /// Its plan in force: the file's SHA-256 (first 16 hex digits) and generation.
    pub plan_sha256: Option<String>,
    pub plan_generation: Option<u64>,
    /// Why it is not reachable (or why its answer could not be read).
    pub error: Option<String>,
    pub accounts: usize,
    pub failing: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanView {
    pub path: String,
    /// The plan file's SHA-256, first 16 hex digits: shards running the same plan agree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Plans put in force since the daemon started (1 = the one it started with).
    pub generation: u64,
    pub loaded_at: Option<String>,
    /// Why the plan file's last change was refused; the previous plan keeps running.
    pub error: Option<String>,
    pub error_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SummaryView {
    pub accounts: usize,
    pub failing: usize,
    pub running: usize,
    pub synced: usize,
    /// Accounts whose copies wait: paused by a person (plan or API) or at a daily limit.
    pub paused: usize,
    pub messages_migrated: u64,
    pub bytes_migrated: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountView {
    pub address: String,
    /// A merged view only: the shard that reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<u32>,
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
    /// Contacts, events and tasks recorded as copied, by kind (`contacts`, `calendars`,
    /// `tasks`), all runs together; absent for an account that copies none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub items_migrated: BTreeMap<String, u64>,
    pub last_sync: Option<String>,
    /// Seconds since `last_sync`, while the account is still synced.
    pub lag_seconds: Option<u64>,
    pub last_run: Option<String>,
    /// Starts with "waiting for a plan change or SIGHUP" when retrying cannot help.
    pub last_error: Option<String>,
    /// The kind of `last_error` (`auth`, `network`, `throttled`…; see `crate::error`).
    pub error_kind: Option<String>,
    /// Failed runs in a row.
    pub failures: u32,
    pub next_run: Option<String>,
    /// The mail copy reached a platform's daily limit (Gmail's bandwidth) and goes on at this
    /// time; absent when it is not paused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_until: Option<String>,
    /// Which limit paused it ("Gmail's daily upload limit of 500.0 MB").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause_reason: Option<String>,
    /// `paused_until` as Unix seconds, for the metrics.
    #[serde(skip)]
    pub paused_until_unix: Option<u64>,
    /// A person paused the account's copies: `plan` (`paused: true`) or `api`
    /// (`POST /api/pause/ACCOUNT`, lifted by `POST /api/resume/ACCOUNT`); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_by: Option<String>,
    /// Who paused it and how to resume, for people ("paused by the plan (`paused: true` on
    /// the account): remove it to resume the copy").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_by_note: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CopyView {
    pub to_copy: u64,
    pub copied: u64,
    pub bytes: u64,
    /// While the copy runs: seconds left at its rate so far, once it has copied something.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta_seconds: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnitView {
    pub state: RunState,
    pub failures: u32,
    pub last_error: Option<String>,
    pub error_kind: Option<String>,
    pub next_run: Option<String>,
    pub steps_total: usize,
    pub steps_done: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResourceView {
    pub id: String,
    /// A merged view only: the shard that reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<u32>,
    pub kind: String,
    pub account: Option<String>,
    /// In the plan in force (false: only the state remembers it).
    pub in_plan: bool,
    /// `pending`, `running`, `done`, `in-progress` (interrupted), `failed`, `blocked` (a step it
    /// depends on did not complete), `manual` (waiting for a person), `conflict`,
    /// `acknowledged`, `orphaned`, `paused` (at a daily limit), `paused-by-user` (a person
    /// paused the account: the plan's `paused: true` or `POST /api/pause`), `waiting` (it
    /// depends on a step another shard runs, not done there yet: `--shard`, `shards:`).
    pub status: String,
    pub summary: String,
    pub last_error: Option<String>,
    /// For manual steps: what to do.
    pub detail: Option<String>,
    pub updated_at: Option<String>,
    pub sync_point: Option<u64>,
    pub next_run: Option<String>,
    pub progress: Option<MailProgress>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MailProgress {
    pub running: bool,
    pub to_copy: u64,
    pub copied: u64,
    pub messages_migrated: u64,
    pub bytes_migrated: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_ranks_failures_first() {
        let mut all = [
            Health::CutOver,
            Health::Synced,
            Health::Pending,
            Health::Paused,
            Health::PausedByUser,
            Health::Manual,
            Health::Queued,
            Health::Running,
            Health::Failing,
        ];
        all.sort_by_key(|h| h.rank());
        assert_eq!(all[0], Health::Failing);
        assert_eq!(all[8], Health::CutOver);
    }
}
