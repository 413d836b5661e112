//! What the scheduler (`watch::daemon`) tells the model: plans put in force or refused, units
//! queued, started and finished; and the state's records, re-read after each run.

use std::collections::BTreeMap;
use std::time::SystemTime;

use tracing::warn;

use super::{AccountInfo, Live, ResourceInfo, RunState, StatusModel, UnitInfo, unix, unix_now};
use crate::error::ErrorKind;
use crate::model::{Execution, Resource, ResourceKind, compile_shard};
use crate::plan::Loaded;
use crate::state::{ResourceRecord, StateStore, Status};
use crate::watch::schedule::RunEnd;

impl StatusModel {
    /// A new plan is in force: rebuilds the resource list from it and the state.
    pub fn plan_loaded(&self, loaded: &Loaded, generation: u64, store: &StateStore) {
        let records = store.resources().unwrap_or_else(|e| {
            warn!(error = %e, "cannot read the state for the status page");
            BTreeMap::new()
        });
        let resources = compile_shard(&loaded.plan, loaded.shard);
        let mut inner = self.lock();
        inner.generation = generation;
        inner.loaded_at = Some(unix_now());
        inner.plan_error = None;
        inner.plan_sha256 = Some(plan_sha256(&loaded.source));
        inner.counters.reload("applied");
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
            if !crate::apply::pipeline::owns_record(loaded, rec) {
                continue;
            }
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
        inner.cutover_plan = (loaded.shard.owns_platform_steps()
            && loaded.plan.domains.iter().any(|d| d.dns.is_some()))
        .then(|| std::sync::Arc::new(loaded.plan.clone()));
        let ids: Vec<String> = inner.accounts.keys().cloned().collect();
        drop(inner);
        for a in ids {
            self.refresh_account(store, &a);
        }
        self.refresh_cutovers(store);
    }

    /// Re-reads the domains' cutover records from the state (after a platform run, an ack).
    pub fn refresh_cutovers(&self, store: &StateStore) {
        if self.lock().cutover_plan.is_none() {
            return;
        }
        match store.cutovers() {
            Ok(records) => self.lock().cutover_records = records,
            Err(e) => warn!(error = %e, "cannot read the cutover records for the status page"),
        }
    }

    /// The plan file changed into something invalid (or unreadable): shown, and ignored.
    pub fn plan_rejected(&self, error: String) {
        let mut inner = self.lock();
        inner.counters.reload("rejected");
        inner.counters.error("plan".into(), "invalid-plan");
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
                info.copy_started = None;
                info.expected = 0;
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
        let api_hold = store
            .holds()
            .ok()
            .and_then(|h| h.get(account).cloned())
            .map(|r| crate::apply::hold::Hold::Api { since: r.since });
        let paused = mail_id
            .as_ref()
            .and_then(|id| store.pause(id).ok().flatten())
            .filter(|p| p.until > crate::apply::quota::now())
            .map(|p| (p.until, p.reason));
        let migrated = mail_id.as_ref().and_then(|id| {
            store.folders(id).ok().map(|folders| {
                folders
                    .values()
                    .fold((0, 0), |(m, b), f| (m + f.messages, b + f.bytes))
            })
        });
        // Contacts, events and tasks: the objects each kind's collections recorded.
        let mut items: BTreeMap<String, u64> = BTreeMap::new();
        for (id, _) in &records {
            if let Ok(crate::model::ResourceAddr::Content { content, .. }) = id.parse()
                && content != crate::plan::model::Content::Mail
                && let Ok(collections) = store.dav_collections(id)
            {
                let n: u64 = collections.values().map(|c| c.objects).sum();
                *items.entry(content.as_str().to_string()).or_default() += n;
            }
        }
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
            info.items_migrated = items;
            info.paused = paused;
            info.held = info.plan_hold.clone().or(api_hold);
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
        drop(inner);
        self.refresh_cutovers(store);
    }
}

/// The first 16 hex digits of the plan text's SHA-256: enough to tell two plans apart on a
/// status page, short enough to read.
pub fn plan_sha256(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Accounts the daemon reconciles: the plan's, and those the state still has records of
/// (a feature of an account removed from the plan must still be removed); with `--shard`,
/// only those of this shard.
pub fn units_of(loaded: &Loaded, records: &BTreeMap<String, ResourceRecord>) -> Vec<String> {
    let mut out: Vec<String> = loaded
        .accounts()
        .map(|a| a.address.to_ascii_lowercase())
        .collect();
    out.extend(
        records
            .values()
            .filter_map(|r| r.account.clone())
            .filter(|a| loaded.owns_account(a)),
    );
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
    info.plan_hold = crate::apply::hold::plan_hold(&loaded.plan, address);
    info.cut_over = mail.is_some_and(|r| matches!(r.execution, Execution::Sync { cut_over: true }));
    info.syncs = mail.is_some_and(|r| matches!(r.execution, Execution::Sync { cut_over: false }));
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
