//! The state's record of accounts paused by a person from watch mode's HTTP API
//! (`POST /api/pause/ACCOUNT`), so a pause outlives a restart of the daemon. A pause written
//! in the plan (`paused: true`) is the plan's and is never recorded here; a daily-limit pause
//! is another thing again (`quota`'s `pauses` table, by resource, ending by itself).
//!
//! One table, added after format 1 shipped like `refused`: readers treat a file without it as
//! having no pauses; the first write creates it.
//! - `holds`: account address (lower case) → [`HoldRecord`] as JSON. Removed by
//!   `POST /api/resume/ACCOUNT`.

use std::collections::BTreeMap;

use redb::{ReadTransaction, ReadableTable, TableDefinition, TableError};
use serde::{Deserialize, Serialize};

use super::{Fault, StateError, StateReader, StateStore, decode_json, encode_json};

pub(super) const HOLDS: TableDefinition<&str, &str> = TableDefinition::new("holds");

/// An account a person paused over the HTTP API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRecord {
    /// Unix seconds when it was paused.
    pub since: u64,
}

fn hold_name(account: &str) -> String {
    format!("pause (by a person) of account `{account}`")
}

fn holds_txn(txn: &ReadTransaction) -> Result<BTreeMap<String, HoldRecord>, Fault> {
    let table = match txn.open_table(HOLDS) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(BTreeMap::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = BTreeMap::new();
    for entry in table.iter()? {
        let (k, v) = entry?;
        let account = k.value();
        out.insert(
            account.to_string(),
            decode_json(v.value(), || hold_name(account))?,
        );
    }
    Ok(out)
}

impl StateStore {
    /// Records that a person paused `account` (lower case); a second pause keeps the first's
    /// time.
    pub fn put_hold(&self, account: &str, record: &HoldRecord) -> Result<(), StateError> {
        self.write(|txn| {
            let mut table = txn.open_table(HOLDS)?;
            if table.get(account)?.is_none() {
                let json = encode_json(record, || hold_name(account))?;
                table.insert(account, json.as_str())?;
            }
            Ok(())
        })
    }

    /// Ends a person's pause of `account`; returns whether there was one.
    pub fn clear_hold(&self, account: &str) -> Result<bool, StateError> {
        self.write(|txn| Ok(txn.open_table(HOLDS)?.remove(account)?.is_some()))
    }

    /// Every account a person paused, by address.
    pub fn holds(&self) -> Result<BTreeMap<String, HoldRecord>, StateError> {
        self.read(holds_txn)
    }
}

impl StateReader {
    /// Every account a person paused, by address.
    pub fn holds(&self) -> Result<BTreeMap<String, HoldRecord>, StateError> {
        self.read(holds_txn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_outlives_reopening_keeps_its_first_time_and_can_be_ended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        assert!(
            StateReader::open(&path)
                .unwrap()
                .holds()
                .unwrap()
                .is_empty()
        );
        {
            let store = StateStore::open(&path).unwrap();
            assert!(store.holds().unwrap().is_empty(), "no table yet");
            store
                .put_hold("a@example.com", &HoldRecord { since: 10 })
                .unwrap();
            store
                .put_hold("a@example.com", &HoldRecord { since: 20 })
                .unwrap();
        }
        let store = StateStore::open(&path).unwrap();
        let holds = store.holds().unwrap();
        assert_eq!(holds.len(), 1);
        assert_eq!(holds["a@example.com"], HoldRecord { since: 10 });
        assert!(store.clear_hold("a@example.com").unwrap());
        assert!(!store.clear_hold("a@example.com").unwrap());
        assert!(store.holds().unwrap().is_empty());
    }
}
