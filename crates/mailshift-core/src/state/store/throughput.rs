//! The state's record of how fast copies went: per source server, the bytes and seconds of
//! the last copy that moved enough to measure, so `plan --refresh` can turn what is left to
//! move into a duration (`apply::sizing`).
//!
//! Beside it, each copy's current run (when it started, what it expects to copy), which
//! `status` turns into an ETA with the messages the run recorded so far (the watch page has
//! its own, from the running copy's events).
//!
//! Two tables, added after format 1 shipped like `refused`: readers treat a file without them
//! as having no records; the first write creates them.
//! - `throughput`: source server (`imap://imap.example.com:993`) → [`Throughput`] as JSON.
//!   Keyed by the server, not the account: accounts on one server share its disks and its
//!   throttling, so one copy's rate is the best guess for the next account's. Kept by `state
//!   forget` (the measurement stays true).
//! - `copy_runs`: resource id → [`CopyRun`] as JSON, replaced by each run of the copy;
//!   `state forget` removes it with the resource.

use redb::{ReadTransaction, TableDefinition, TableError, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{Fault, StateError, StateReader, StateStore, decode_json, encode_json};

pub(super) const THROUGHPUT: TableDefinition<&str, &str> = TableDefinition::new("throughput");
pub(super) const COPY_RUNS: TableDefinition<&str, &str> = TableDefinition::new("copy_runs");

/// A copy's current (or last) run, as it began.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyRun {
    /// The run's sync point: the messages it copies are recorded under it.
    pub sync_point: u64,
    /// Unix seconds when it began.
    pub started_at: u64,
    /// About how many messages it will copy (the engine's estimate at its start).
    pub to_copy: u64,
}

fn run_name(id: &str) -> String {
    format!("copy run record of `{id}`")
}

fn run_txn(txn: &ReadTransaction, id: &str) -> Result<Option<CopyRun>, Fault> {
    let table = match txn.open_table(COPY_RUNS) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let value = table.get(id)?;
    value
        .map(|v| decode_json(v.value(), || run_name(id)))
        .transpose()
}

/// Drops a resource's copy run (`state forget`).
pub(super) fn forget_txn(txn: &WriteTransaction, id: &str) -> Result<(), Fault> {
    txn.open_table(COPY_RUNS)?.remove(id)?;
    Ok(())
}

/// One measured copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Throughput {
    /// Bytes the copy moved.
    pub bytes: u64,
    /// Seconds it took, from its start to its end (at least 1).
    pub seconds: u64,
    /// Unix seconds when it ended.
    pub at: u64,
}

impl Throughput {
    /// Bytes per second.
    pub fn rate(&self) -> u64 {
        self.bytes / self.seconds.max(1)
    }
}

fn name(server: &str) -> String {
    format!("throughput record of `{server}`")
}

fn get_txn(txn: &ReadTransaction, server: &str) -> Result<Option<Throughput>, Fault> {
    let table = match txn.open_table(THROUGHPUT) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let value = table.get(server)?;
    value
        .map(|v| decode_json(v.value(), || name(server)))
        .transpose()
}

impl StateStore {
    /// Records a copy's measurement for its source server, replacing the one before.
    pub fn put_throughput(&self, server: &str, t: &Throughput) -> Result<(), StateError> {
        self.write(|txn| {
            let json = encode_json(t, || name(server))?;
            txn.open_table(THROUGHPUT)?.insert(server, json.as_str())?;
            Ok(())
        })
    }

    pub fn throughput(&self, server: &str) -> Result<Option<Throughput>, StateError> {
        self.read(|txn| get_txn(txn, server))
    }

    /// Records the start of a copy's run, replacing the last run's.
    pub fn put_copy_run(&self, id: &str, run: &CopyRun) -> Result<(), StateError> {
        self.write(|txn| {
            let json = encode_json(run, || run_name(id))?;
            txn.open_table(COPY_RUNS)?.insert(id, json.as_str())?;
            Ok(())
        })
    }
}

impl StateReader {
    pub fn throughput(&self, server: &str) -> Result<Option<Throughput>, StateError> {
        self.read(|txn| get_txn(txn, server))
    }

    pub fn copy_run(&self, id: &str) -> Result<Option<CopyRun>, StateError> {
        self.read(|txn| run_txn(txn, id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_measurement_is_kept_per_server_and_replaced_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        assert_eq!(
            StateReader::open(&path)
                .unwrap()
                .throughput("a:993")
                .unwrap(),
            None,
            "no file yet"
        );
        let store = StateStore::open(&path).unwrap();
        assert_eq!(store.throughput("a:993").unwrap(), None, "no table yet");
        let first = Throughput {
            bytes: 10_000_000,
            seconds: 4,
            at: 100,
        };
        store.put_throughput("a:993", &first).unwrap();
        assert_eq!(store.throughput("a:993").unwrap(), Some(first));
        assert_eq!(store.throughput("b:993").unwrap(), None);
        let next = Throughput {
            bytes: 1_000,
            seconds: 0,
            at: 200,
        };
        store.put_throughput("a:993", &next).unwrap();
        drop(store);
        let got = StateReader::open(&path)
            .unwrap()
            .throughput("a:993")
            .unwrap();
        assert_eq!(got, Some(next));
        assert_eq!(
            got.unwrap().rate(),
            1_000,
            "a copy under a second counts as one"
        );
    }

    #[test]
    fn a_copy_run_is_replaced_by_the_next_and_forgotten_with_its_resource() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let store = StateStore::open(&path).unwrap();
        let id = "account/a@x/mail";
        let run = |sync_point| CopyRun {
            sync_point,
            started_at: 100,
            to_copy: 40,
        };
        store.put_copy_run(id, &run(1)).unwrap();
        store.put_copy_run(id, &run(2)).unwrap();
        assert_eq!(
            StateReader::open(&path).unwrap().copy_run(id).unwrap(),
            Some(run(2))
        );
        store.forget(id).unwrap();
        assert_eq!(
            StateReader::open(&path).unwrap().copy_run(id).unwrap(),
            None
        );
    }
}
