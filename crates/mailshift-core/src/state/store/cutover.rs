//! The state's record of each domain's cutover ([`CutoverRecord`]): the steps done, the records
//! the zone held before (what `rollback --cutover` puts back), what mailshift last wrote there
//! (against which a hand-made change is drift), and the accounts marked cut over, which the
//! executor treats like `cut_over: true`.
//!
//! One table, added after format 1 shipped like `refused`: readers treat a file without it as
//! having no cutover; the first write creates it.
//! - `cutovers`: domain (`example.com`) → [`CutoverRecord`] as JSON.

use std::collections::BTreeMap;

use redb::{ReadTransaction, ReadableTable, TableDefinition, TableError};

use super::{Fault, StateError, StateReader, StateStore, decode_json, encode_json};
use crate::cutover::CutoverRecord;

const CUTOVERS: TableDefinition<&str, &str> = TableDefinition::new("cutovers");

fn name(domain: &str) -> String {
    format!("cutover record of `{domain}`")
}

fn cutovers_txn(txn: &ReadTransaction) -> Result<BTreeMap<String, CutoverRecord>, Fault> {
    let table = match txn.open_table(CUTOVERS) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(BTreeMap::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = BTreeMap::new();
    for entry in table.iter()? {
        let (k, v) = entry?;
        let domain = k.value().to_string();
        let record = decode_json(v.value(), || name(&domain))?;
        out.insert(domain, record);
    }
    Ok(out)
}

impl StateReader {
    /// Every cutover record, by domain (`plan` reads them without the state's lock).
    pub fn cutovers(&self) -> Result<BTreeMap<String, CutoverRecord>, StateError> {
        self.read(cutovers_txn)
    }
}

impl StateStore {
    /// The cutover record of `domain`, if its cutover ever started.
    pub fn cutover(&self, domain: &str) -> Result<Option<CutoverRecord>, StateError> {
        self.read(|txn| {
            let table = match txn.open_table(CUTOVERS) {
                Ok(t) => t,
                Err(TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let value = table.get(domain)?;
            value
                .map(|v| decode_json(v.value(), || name(domain)))
                .transpose()
        })
    }

    /// Every cutover record, by domain.
    pub fn cutovers(&self) -> Result<BTreeMap<String, CutoverRecord>, StateError> {
        self.read(cutovers_txn)
    }

    /// Replaces the cutover record of `domain`; durable when it returns.
    pub fn put_cutover(&self, domain: &str, record: &CutoverRecord) -> Result<(), StateError> {
        self.write(|txn| {
            let json = encode_json(record, || name(domain))?;
            txn.open_table(CUTOVERS)?.insert(domain, json.as_str())?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cutover::Step;

    #[test]
    fn a_cutover_record_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        {
            let store = StateStore::open(&path).unwrap();
            assert_eq!(store.cutover("example.com").unwrap(), None);
            assert!(store.cutovers().unwrap().is_empty());
            let record = CutoverRecord {
                done: vec![(Step::LowerTtl, 7)],
                accounts: vec!["a@example.com".into()],
                ..CutoverRecord::default()
            };
            store.put_cutover("example.com", &record).unwrap();
        }
        let store = StateStore::open(&path).unwrap();
        let record = store.cutover("example.com").unwrap().unwrap();
        assert_eq!(record.is_done(Step::LowerTtl), Some(7));
        assert_eq!(store.cutovers().unwrap().len(), 1);
    }
}
