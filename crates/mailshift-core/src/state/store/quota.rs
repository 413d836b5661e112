//! The state's records of the platforms' daily limits: bytes each account moved per side and
//! hour (the ledger the allowance is computed from, `super::super::window`), and the pauses of
//! copies that reached a limit.
//!
//! Two tables, added after format 1 shipped like `refused`: readers treat a file without them
//! as having no records; the first write creates them.
//! - `quota_bytes`: (account, side, hour bucket) → bytes. Keyed by the account's address, not
//!   a resource: the limit is the mailbox's, whatever copies it. Buckets a day and more old are
//!   pruned when the account's next bytes are counted; `state forget` leaves them (the bytes
//!   did move).
//! - `pauses`: resource id → [`PauseRecord`] as JSON. `state forget` removes it with the
//!   resource.

use redb::{ReadTransaction, ReadableTable, TableDefinition, TableError, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{Fault, StateError, StateReader, StateStore, decode_json, encode_json};
use crate::state::window;

pub(super) const QUOTA_BYTES: TableDefinition<(&str, &str, u64), u64> =
    TableDefinition::new("quota_bytes");
pub(super) const PAUSES: TableDefinition<&str, &str> = TableDefinition::new("pauses");

/// A side of a copy, as a platform's daily limit counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Side {
    /// Read from the source.
    Download,
    /// Appended to the destination.
    Upload,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Download => "download",
            Side::Upload => "upload",
        }
    }
}

/// A copy paused until a platform's limit lets it go on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseRecord {
    /// Unix seconds: runs before this skip the copy without contacting the servers.
    pub until: u64,
    /// Which limit, for people ("Gmail's daily upload limit").
    pub reason: String,
    /// The side whose limit it is.
    pub side: Side,
    /// Unix seconds when the pause began.
    pub since: u64,
}

fn pause_name(id: &str) -> String {
    format!("pause record of `{id}`")
}

fn pause_txn(txn: &ReadTransaction, id: &str) -> Result<Option<PauseRecord>, Fault> {
    let table = match txn.open_table(PAUSES) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let value = table.get(id)?;
    value
        .map(|v| decode_json(v.value(), || pause_name(id)))
        .transpose()
}

fn pauses_txn(txn: &ReadTransaction) -> Result<Vec<(String, PauseRecord)>, Fault> {
    let table = match txn.open_table(PAUSES) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (k, v) = entry?;
        let id = k.value();
        out.push((id.to_string(), decode_json(v.value(), || pause_name(id))?));
    }
    Ok(out)
}

fn ledger_txn(txn: &ReadTransaction, account: &str, side: Side) -> Result<Vec<(u64, u64)>, Fault> {
    let table = match txn.open_table(QUOTA_BYTES) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let side = side.as_str();
    let mut out = Vec::new();
    for entry in table.range((account, side, 0)..=(account, side, u64::MAX))? {
        let (k, v) = entry?;
        out.push((k.value().2, v.value()));
    }
    Ok(out)
}

/// Drops a resource's pause (`state forget`).
pub(super) fn forget_txn(txn: &WriteTransaction, id: &str) -> Result<(), Fault> {
    txn.open_table(PAUSES)?.remove(id)?;
    Ok(())
}

impl StateStore {
    /// Counts bytes an account is about to move, in the bucket of `at` (Unix seconds), and
    /// drops its buckets that no longer count: one transaction.
    pub fn add_transfer(
        &self,
        account: &str,
        at: u64,
        download: u64,
        upload: u64,
    ) -> Result<(), StateError> {
        let now = window::bucket(at);
        self.write(|txn| {
            let mut table = txn.open_table(QUOTA_BYTES)?;
            for (side, bytes) in [(Side::Download, download), (Side::Upload, upload)] {
                let side = side.as_str();
                if bytes > 0 {
                    let had = table.get((account, side, now))?.map_or(0, |v| v.value());
                    table.insert((account, side, now), had.saturating_add(bytes))?;
                }
                let stale = now.saturating_sub(window::BUCKETS);
                table.retain_in((account, side, 0)..(account, side, stale), |_, _| false)?;
            }
            Ok(())
        })
    }

    /// An account's ledger on one side: (hour bucket, bytes), oldest first.
    pub fn transfers(&self, account: &str, side: Side) -> Result<Vec<(u64, u64)>, StateError> {
        self.read(|txn| ledger_txn(txn, account, side))
    }

    pub fn put_pause(&self, id: &str, record: &PauseRecord) -> Result<(), StateError> {
        self.write(|txn| {
            let json = encode_json(record, || pause_name(id))?;
            txn.open_table(PAUSES)?.insert(id, json.as_str())?;
            Ok(())
        })
    }

    pub fn pause(&self, id: &str) -> Result<Option<PauseRecord>, StateError> {
        self.read(|txn| pause_txn(txn, id))
    }

    /// Ends a resource's pause (its copy goes on); no error when there was none.
    pub fn clear_pause(&self, id: &str) -> Result<(), StateError> {
        self.write(|txn| forget_txn(txn, id))
    }
}

impl StateReader {
    /// Every pause recorded, by resource id.
    pub fn pauses(&self) -> Result<Vec<(String, PauseRecord)>, StateError> {
        self.read(pauses_txn)
    }

    pub fn pause(&self, id: &str) -> Result<Option<PauseRecord>, StateError> {
        self.read(|txn| pause_txn(txn, id))
    }

    /// An account's ledger on one side: (hour bucket, bytes), oldest first.
    pub fn transfers(&self, account: &str, side: Side) -> Result<Vec<(u64, u64)>, StateError> {
        self.read(|txn| ledger_txn(txn, account, side))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_add_up_per_hour_and_side_and_old_hours_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let store = StateStore::open(&path).unwrap();
        let t = 10_000 * window::BUCKET;
        store.add_transfer("a@x", t, 100, 40).unwrap();
        store.add_transfer("a@x", t + 60, 0, 60).unwrap();
        store.add_transfer("b@x", t, 7, 7).unwrap();
        assert_eq!(
            store.transfers("a@x", Side::Download).unwrap(),
            [(10_000, 100)]
        );
        assert_eq!(
            store.transfers("a@x", Side::Upload).unwrap(),
            [(10_000, 100)]
        );
        let later = t + window::BUCKETS * window::BUCKET;
        store.add_transfer("a@x", later, 0, 5).unwrap();
        assert_eq!(
            store.transfers("a@x", Side::Upload).unwrap(),
            [(10_000, 100), (window::bucket(later), 5)],
            "kept an hour past the window"
        );
        store
            .add_transfer("a@x", later + window::BUCKET, 0, 0)
            .unwrap();
        assert_eq!(
            store.transfers("a@x", Side::Upload).unwrap(),
            [(window::bucket(later), 5)]
        );
        assert_eq!(store.transfers("b@x", Side::Upload).unwrap(), [(10_000, 7)]);
        drop(store);
        let reader = StateReader::open(&path).unwrap();
        assert_eq!(
            reader.transfers("b@x", Side::Download).unwrap(),
            [(10_000, 7)]
        );
    }

    #[test]
    fn a_pause_is_kept_read_and_forgotten_with_its_resource() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let reader = StateReader::open(&path).unwrap();
        assert!(reader.pauses().unwrap().is_empty(), "no file yet");
        let store = StateStore::open(&path).unwrap();
        let id = "account/a@x/mail";
        assert_eq!(store.pause(id).unwrap(), None);
        let rec = PauseRecord {
            until: 99,
            reason: "Gmail's daily upload limit".into(),
            side: Side::Upload,
            since: 9,
        };
        store.put_pause(id, &rec).unwrap();
        assert_eq!(store.pause(id).unwrap(), Some(rec.clone()));
        assert_eq!(
            StateReader::open(&path).unwrap().pauses().unwrap(),
            [(id.to_string(), rec)]
        );
        store.add_transfer("a@x", 0, 1, 1).unwrap();
        store.forget(id).unwrap();
        assert_eq!(store.pause(id).unwrap(), None);
        assert_eq!(
            store.transfers("a@x", Side::Upload).unwrap().len(),
            1,
            "the bytes did move"
        );
        store.clear_pause(id).unwrap();
    }
}
