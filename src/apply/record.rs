//! The one place that writes resource records to the state: what each step's start, end or
//! failure leaves there, built from the resource as the plan has it now.
//!
//! (Folder and message records are the copy's own, written through its journal.)

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::StepError;
use crate::model::Resource;
use crate::state::{ResourceRecord, StateError, StateStore, Status};

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A fresh record saying this resource (as the plan has it now) is in `status`.
pub fn fresh(r: &Resource, status: Status, now: u64) -> ResourceRecord {
    ResourceRecord {
        kind: r.kind.as_str().to_string(),
        account: r.account.clone(),
        fingerprint: r.fingerprint.clone(),
        identity: r.identity.clone(),
        status,
        summary: r.summary.clone(),
        outputs: Default::default(),
        last_error: None,
        sync_point: None,
        created_at: now,
        updated_at: now,
    }
}

/// Writes the records of one state store.
pub struct Records<'a> {
    store: &'a StateStore,
}

impl<'a> Records<'a> {
    pub fn new(store: &'a StateStore) -> Records<'a> {
        Records { store }
    }

    pub fn get(&self, r: &Resource) -> Result<Option<ResourceRecord>, StateError> {
        self.store.resource(r.id())
    }

    fn put(&self, r: &Resource, rec: &ResourceRecord) -> Result<(), StateError> {
        self.store.put_resource(r.id(), rec)
    }

    /// An API step finished: the resource is as the plan says, with what the platform answered.
    pub fn applied(
        &self,
        r: &Resource,
        outputs: BTreeMap<String, String>,
    ) -> Result<(), StateError> {
        let mut rec = fresh(r, Status::Done, now());
        if let Some(prev) = self.get(r)? {
            rec.created_at = prev.created_at;
        }
        rec.outputs = outputs;
        self.put(r, &rec)
    }

    /// A person did a manual step (`mailshift ack`).
    pub fn acknowledged(&self, r: &Resource, created_at: Option<u64>) -> Result<(), StateError> {
        let now = now();
        let rec = ResourceRecord {
            created_at: created_at.unwrap_or(now),
            ..fresh(r, Status::Acknowledged, now)
        };
        self.put(r, &rec)
    }

    /// An output set on the record as it is (`mailshift ack` of inbox rules carried by hand).
    pub fn output(
        &self,
        r: &Resource,
        before: &ResourceRecord,
        name: &str,
        value: String,
    ) -> Result<(), StateError> {
        let mut rec = before.clone();
        rec.outputs.insert(name.into(), value);
        rec.updated_at = now();
        self.put(r, &rec)
    }

    /// An output written before a write that cannot be taken back (`name` = "true"), on the
    /// record as it was (or a fresh in-progress one).
    pub fn mark(
        &self,
        r: &Resource,
        before: Option<&ResourceRecord>,
        name: &str,
    ) -> Result<(), StepError> {
        let mut rec = before
            .cloned()
            .unwrap_or_else(|| fresh(r, Status::InProgress, now()));
        rec.outputs.insert(name.into(), "true".into());
        rec.updated_at = now();
        Ok(self.put(r, &rec)?)
    }

    /// A step failed. A resource gone from the plan (a feature being removed) keeps what it
    /// was, so the next plan still removes it, and says why the last removal failed.
    pub fn failed(&self, id: &str, r: Option<&Resource>, err: &StepError) {
        let prev = self.store.resource(id).ok().flatten();
        let rec = match (r, prev) {
            (Some(r), prev) => ResourceRecord {
                status: Status::Failed,
                last_error: Some(err.message.clone()),
                updated_at: now(),
                ..prev.unwrap_or_else(|| fresh(r, Status::Failed, now()))
            },
            (None, Some(prev)) => ResourceRecord {
                last_error: Some(err.message.clone()),
                updated_at: now(),
                ..prev
            },
            (None, None) => return,
        };
        let _ = self.store.put_resource(id, &rec);
    }

    /// A copy starts: the record says in progress (a crash from here on shows as "resume"),
    /// keeping what earlier runs recorded. Returns the record written and the one before.
    pub fn sync_started(
        &self,
        r: &Resource,
    ) -> Result<(ResourceRecord, Option<ResourceRecord>), StateError> {
        let prev = self.get(r).ok().flatten();
        let started = ResourceRecord {
            fingerprint: r.fingerprint.clone(),
            identity: r.identity.clone(),
            summary: r.summary.clone(),
            status: Status::InProgress,
            updated_at: now(),
            last_error: None,
            ..prev
                .clone()
                .unwrap_or_else(|| fresh(r, Status::InProgress, now()))
        };
        self.put(r, &started)?;
        Ok((started, prev))
    }

    /// A copy ended (finished, stopped or with failed folders).
    pub fn sync_ended(
        &self,
        r: &Resource,
        started: ResourceRecord,
        status: Status,
        sync_point: Option<u64>,
        last_error: Option<String>,
        outputs: BTreeMap<String, String>,
    ) -> Result<(), StateError> {
        let rec = ResourceRecord {
            status,
            sync_point,
            last_error,
            outputs,
            updated_at: now(),
            ..started
        };
        self.put(r, &rec)
    }

    /// A copy failed before it could say how far it got.
    pub fn sync_failed(&self, r: &Resource, started: ResourceRecord, err: &str) {
        let rec = ResourceRecord {
            status: Status::Failed,
            last_error: Some(err.to_string()),
            updated_at: now(),
            ..started
        };
        let _ = self.put(r, &rec);
    }

    /// A feature was removed from its platform: nothing left to remember.
    pub fn forget(&self, id: &str) -> Result<bool, StateError> {
        self.store.forget(id)
    }
}
