//! The state's records of the contacts/calendars/tasks copy: per collection and per object,
//! what the engine (`mailshift-dav`) journals through `apply::dav_journal`.
//!
//! Three tables, keyed like the mail ones by the resource id first, so that `forget` drops a
//! resource's records with one range per table. Values are JSON: there are thousands of objects
//! per account, not millions, and fields can be added compatibly. Added after format 1 shipped,
//! like `refused`: readers treat a file without them as having no records; the first write
//! creates them.
//! - `dav_collections`: (resource id, source collection) → [`DavCollectionRecord`].
//! - `dav_objects`: (resource id, source collection, identity) → [`DavObjectRecord`].
//! - `dav_refused`: (resource id, source collection, identity) → [`DavRefusedRecord`].

use std::collections::BTreeMap;

use redb::{ReadTransaction, TableDefinition, TableError, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{Fault, StateError, StateReader, StateStore, decode_json, encode_json, successor};

pub(super) const DAV_COLLECTIONS: TableDefinition<(&str, &str), &str> =
    TableDefinition::new("dav_collections");
pub(super) const DAV_OBJECTS: TableDefinition<(&str, &str, &str), &str> =
    TableDefinition::new("dav_objects");
pub(super) const DAV_REFUSED: TableDefinition<(&str, &str, &str), &str> =
    TableDefinition::new("dav_refused");

/// Progress of one copied address book or calendar.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DavCollectionRecord {
    pub dest_href: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctag: Option<String>,
    #[serde(default)]
    pub objects: u64,
    #[serde(default)]
    pub updated_at: u64,
}

/// One copied object: where it came from, where it went, and in which version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DavObjectRecord {
    pub source_href: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_etag: Option<String>,
    /// SHA-256 of the source's normalized content, hex.
    pub source_hash: String,
    pub dest_href: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest_etag: Option<String>,
    #[serde(default)]
    pub size: u64,
    /// The run that last wrote it; 0 when adopted from the destination.
    #[serde(default)]
    pub sync_point: u64,
    /// The run that created it on the destination: `Some(0)` when adopted, `None` in records
    /// written before this was kept (unknown: `rollback` never deletes those, and says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_sync_point: Option<u64>,
}

/// An object the destination refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DavRefusedRecord {
    pub reason: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub sync_point: u64,
}

fn collection_name(resource_id: &str, collection: &str) -> String {
    format!("collection record `{collection}` of `{resource_id}`")
}

fn object_name(resource_id: &str, collection: &str, key: &str) -> String {
    format!("object record `{key}` in `{collection}` of `{resource_id}`")
}

/// Drops every DAV record of a resource; true when there was any.
pub(super) fn forget_txn(txn: &WriteTransaction, id: &str) -> Result<bool, Fault> {
    let end = successor(id);
    let mut removed = false;
    txn.open_table(DAV_COLLECTIONS)?
        .retain_in((id, "")..(end.as_str(), ""), |_, _| {
            removed = true;
            false
        })?;
    txn.open_table(DAV_OBJECTS)?
        .retain_in((id, "", "")..(end.as_str(), "", ""), |_, _| {
            removed = true;
            false
        })?;
    txn.open_table(DAV_REFUSED)?
        .retain_in((id, "", "")..(end.as_str(), "", ""), |_, _| false)?;
    Ok(removed)
}

fn collections_txn(
    txn: &ReadTransaction,
    id: &str,
) -> Result<BTreeMap<String, DavCollectionRecord>, Fault> {
    let table = match txn.open_table(DAV_COLLECTIONS) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(BTreeMap::new()),
        Err(e) => return Err(e.into()),
    };
    let end = successor(id);
    let mut out = BTreeMap::new();
    for entry in table.range((id, "")..(end.as_str(), ""))? {
        let (k, v) = entry?;
        let (_, collection) = k.value();
        out.insert(
            collection.to_string(),
            decode_json(v.value(), || collection_name(id, collection))?,
        );
    }
    Ok(out)
}

/// Records of one collection (`Some`) or of every collection of the resource (`None`), as
/// (collection, key, record).
fn keyed_txn<T: serde::de::DeserializeOwned>(
    txn: &ReadTransaction,
    table: TableDefinition<(&str, &str, &str), &str>,
    id: &str,
    collection: Option<&str>,
) -> Result<Vec<(String, String, T)>, Fault> {
    let table = match txn.open_table(table) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    let end = successor(id);
    let range = match collection {
        Some(c) => {
            let c_end = successor(c);
            table.range((id, c, "")..(id, c_end.as_str(), ""))?
        }
        None => table.range((id, "", "")..(end.as_str(), "", ""))?,
    };
    for entry in range {
        let (k, v) = entry?;
        let (_, c, key) = k.value();
        out.push((
            c.to_string(),
            key.to_string(),
            decode_json(v.value(), || object_name(id, c, key))?,
        ));
    }
    Ok(out)
}

impl StateStore {
    /// The collection records of a contacts/calendars/tasks resource, by source collection.
    pub fn dav_collections(
        &self,
        id: &str,
    ) -> Result<BTreeMap<String, DavCollectionRecord>, StateError> {
        self.read(|txn| collections_txn(txn, id))
    }

    pub fn put_dav_collection(
        &self,
        id: &str,
        collection: &str,
        record: &DavCollectionRecord,
    ) -> Result<(), StateError> {
        self.record_dav(id, collection, &[], Some(record))
    }

    /// A collection's object records, by identity.
    pub fn dav_objects(
        &self,
        id: &str,
        collection: &str,
    ) -> Result<BTreeMap<String, DavObjectRecord>, StateError> {
        self.read(|txn| {
            Ok(keyed_txn(txn, DAV_OBJECTS, id, Some(collection))?
                .into_iter()
                .map(|(_, k, r)| (k, r))
                .collect())
        })
    }

    /// Stores a batch of object records and, if given, the collection's record, in one
    /// transaction: a collection's sync token never claims objects the records lack.
    pub fn record_dav(
        &self,
        id: &str,
        collection: &str,
        objects: &[(String, DavObjectRecord)],
        record: Option<&DavCollectionRecord>,
    ) -> Result<(), StateError> {
        self.write(|txn| {
            if !objects.is_empty() {
                let mut table = txn.open_table(DAV_OBJECTS)?;
                for (key, object) in objects {
                    let json = encode_json(object, || object_name(id, collection, key))?;
                    table.insert((id, collection, key.as_str()), json.as_str())?;
                }
            }
            if let Some(record) = record {
                let json = encode_json(record, || collection_name(id, collection))?;
                txn.open_table(DAV_COLLECTIONS)?
                    .insert((id, collection), json.as_str())?;
            }
            Ok(())
        })
    }

    pub fn forget_dav_objects(
        &self,
        id: &str,
        collection: &str,
        keys: &[String],
    ) -> Result<(), StateError> {
        self.write(|txn| {
            let mut table = txn.open_table(DAV_OBJECTS)?;
            for key in keys {
                table.remove((id, collection, key.as_str()))?;
            }
            Ok(())
        })
    }

    pub fn put_dav_refused(
        &self,
        id: &str,
        collection: &str,
        key: &str,
        record: &DavRefusedRecord,
    ) -> Result<(), StateError> {
        self.write(|txn| {
            let json = encode_json(record, || object_name(id, collection, key))?;
            txn.open_table(DAV_REFUSED)?
                .insert((id, collection, key), json.as_str())?;
            Ok(())
        })
    }

    pub fn clear_dav_refused(
        &self,
        id: &str,
        collection: &str,
        key: &str,
    ) -> Result<(), StateError> {
        self.write(|txn| {
            txn.open_table(DAV_REFUSED)?.remove((id, collection, key))?;
            Ok(())
        })
    }

    /// A collection's refusals, by identity.
    pub fn dav_refused(
        &self,
        id: &str,
        collection: &str,
    ) -> Result<BTreeMap<String, DavRefusedRecord>, StateError> {
        self.read(|txn| {
            Ok(keyed_txn(txn, DAV_REFUSED, id, Some(collection))?
                .into_iter()
                .map(|(_, k, r)| (k, r))
                .collect())
        })
    }
}

impl StateReader {
    /// The collection records of a contacts/calendars/tasks resource.
    pub fn dav_collections(
        &self,
        id: &str,
    ) -> Result<BTreeMap<String, DavCollectionRecord>, StateError> {
        self.read(|txn| collections_txn(txn, id))
    }

    /// Every object record of a resource: (collection, identity, record).
    pub fn dav_objects(
        &self,
        id: &str,
    ) -> Result<Vec<(String, String, DavObjectRecord)>, StateError> {
        self.read(|txn| keyed_txn(txn, DAV_OBJECTS, id, None))
    }

    /// Every refusal of a resource: (collection, identity, record). What `verify` lists as
    /// skipped.
    pub fn dav_refused(
        &self,
        id: &str,
    ) -> Result<Vec<(String, String, DavRefusedRecord)>, StateError> {
        self.read(|txn| keyed_txn(txn, DAV_REFUSED, id, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(n: u64) -> DavObjectRecord {
        DavObjectRecord {
            source_href: format!("/a/{n}.vcf"),
            source_etag: Some(format!("\"{n}\"")),
            source_hash: "00".repeat(32),
            dest_href: format!("/b/{n}.vcf"),
            dest_etag: None,
            size: n,
            sync_point: 1,
            created_sync_point: Some(1),
        }
    }

    #[test]
    fn records_read_back_by_collection_and_go_with_the_resource() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let id = "account/a@example.com/contacts";
        let other = "account/a@example.com/calendars";
        {
            let store = StateStore::open(&path).unwrap();
            let coll = DavCollectionRecord {
                dest_href: "/b/".into(),
                sync_token: Some("t1".into()),
                ..Default::default()
            };
            store
                .record_dav(id, "work", &[("uid:1".into(), object(1))], Some(&coll))
                .unwrap();
            store
                .record_dav(id, "work-old", &[("uid:2".into(), object(2))], None)
                .unwrap();
            store
                .record_dav(other, "work", &[("uid:3".into(), object(3))], None)
                .unwrap();
            store
                .put_dav_refused(
                    id,
                    "work",
                    "uid:9",
                    &DavRefusedRecord {
                        reason: "413".into(),
                        size: 9,
                        attempts: 1,
                        sync_point: 1,
                    },
                )
                .unwrap();
            // A collection whose name prefixes another's keeps its own records only.
            let work = store.dav_objects(id, "work").unwrap();
            assert_eq!(work.keys().collect::<Vec<_>>(), ["uid:1"]);
            assert_eq!(store.dav_collections(id).unwrap()["work"], coll);
            assert_eq!(store.dav_refused(id, "work").unwrap().len(), 1);
            store.clear_dav_refused(id, "work", "uid:9").unwrap();
            assert!(store.dav_refused(id, "work").unwrap().is_empty());
            assert!(store.forget(id).unwrap());
            assert!(store.dav_objects(id, "work").unwrap().is_empty());
            assert!(store.dav_collections(id).unwrap().is_empty());
            assert_eq!(store.dav_objects(other, "work").unwrap().len(), 1);
        }
        let reader = StateReader::open(&path).unwrap();
        assert_eq!(reader.dav_objects(other).unwrap().len(), 1);
        assert!(reader.dav_refused(id).unwrap().is_empty());
    }
}
