//! The state's record of the notifications already sent, so that each event is told once:
//! an account's first copy once, a failure once however often it is retried, a waiting
//! manual step once, the plan's convergence once until something changes again, and one
//! daily summary a day.
//!
//! One table, added after format 1 shipped like `refused`: readers treat a file without it as
//! having sent nothing; the first write creates it.
//! - `notified`: event key (`failed/account/alice@example.com/mail`, `summary/2026-11-28`...)
//!   → what was told, for the next comparison (a failure's message: a different one is a new
//!   failure). Never a secret: only step ids and texts that already go to the report.
//!   One key is not an event: `outbox` holds, as JSON (written by `mailshift::notify`), the
//!   notices each target has not received yet, targets named by a digest of where they
//!   deliver (a webhook URL may carry a token), so a target that was down gets them later.

use redb::{TableDefinition, TableError};

use super::{StateError, StateStore};

pub(super) const NOTIFIED: TableDefinition<&str, &str> = TableDefinition::new("notified");

/// The key of the outbox (`mailshift::notify` writes it as a JSON array of notices): a
/// re-split merges the old shards' arrays rather than keeping one.
pub(super) const OUTBOX: &str = "outbox";

impl StateStore {
    /// What was last told under `key`, if anything.
    pub fn notified(&self, key: &str) -> Result<Option<String>, StateError> {
        self.read(|txn| {
            let table = match txn.open_table(NOTIFIED) {
                Ok(t) => t,
                Err(TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            Ok(table.get(key)?.map(|v| v.value().to_string()))
        })
    }

    /// Records that `value` was told under `key`.
    pub fn put_notified(&self, key: &str, value: &str) -> Result<(), StateError> {
        self.write(|txn| {
            txn.open_table(NOTIFIED)?.insert(key, value)?;
            Ok(())
        })
    }

    /// Forgets what was told under `key` (the failure is over, the step no longer waits), so
    /// the next one is told again. Returns whether there was a record.
    pub fn clear_notified(&self, key: &str) -> Result<bool, StateError> {
        self.write(|txn| Ok(txn.open_table(NOTIFIED)?.remove(key)?.is_some()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_is_remembered_across_reopening_and_can_be_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        {
            let store = StateStore::open(&path).unwrap();
            assert_eq!(store.notified("failed/x").unwrap(), None);
            store.put_notified("failed/x", "boom").unwrap();
        }
        let store = StateStore::open(&path).unwrap();
        assert_eq!(store.notified("failed/x").unwrap().as_deref(), Some("boom"));
        assert!(store.clear_notified("failed/x").unwrap());
        assert!(!store.clear_notified("failed/x").unwrap());
        assert_eq!(store.notified("failed/x").unwrap(), None);
    }
}
