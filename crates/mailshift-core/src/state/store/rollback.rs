//! The state's records for `mailshift rollback`: when each sync point started, and the
//! rollbacks in flight (messages about to be expunged from a destination folder, contacts and
//! events about to be deleted from a destination collection).
//!
//! Three tables, added after format 1 shipped like `refused`: readers treat a file without them
//! as having none; the first write creates them.
//! - `sync_points`: sync point → Unix seconds when the run started (runs numbered before this
//!   table existed have no date).
//! - `rollbacks`: (resource id, source folder) → [`PendingRollback`] as JSON. Written before the
//!   destination is touched and removed in the transaction that drops the message records, so
//!   a rollback killed between the two is finished by the next one: the UIDs listed here are
//!   ours even though they now carry `\Deleted` (which would otherwise mark them as the user's),
//!   and those already gone were expunged by us. `apply` refuses a folder that has one.
//! - `dav_rollbacks`: (resource id, source collection) → [`PendingDavRollback`] as JSON, the
//!   same for a contacts/calendars/tasks collection: written before the first `DELETE`, removed
//!   in the transaction that drops the object records. A rerun finishes it whatever its
//!   `--since` (a `DELETE` sent again answers 404 for what the first run removed), and `apply`
//!   refuses the resource until then.

use std::collections::BTreeMap;

use redb::{ReadTransaction, ReadableTable, TableDefinition, TableError, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::dav::{DAV_COLLECTIONS, DAV_OBJECTS};
use super::{
    FOLDERS, Fault, MESSAGES, StateError, StateReader, StateStore, decode_json, encode_json,
    folder_name,
};
use crate::state::{DavCollectionRecord, FolderRecord};

pub(super) const SYNC_POINTS: TableDefinition<u64, u64> = TableDefinition::new("sync_points");
pub(super) const ROLLBACKS: TableDefinition<(&str, &str), &str> = TableDefinition::new("rollbacks");
pub(super) const DAV_ROLLBACKS: TableDefinition<(&str, &str), &str> =
    TableDefinition::new("dav_rollbacks");

/// A rollback of one folder whose expunge may have happened but whose records were not yet
/// dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRollback {
    /// The rollback's `--since`.
    pub since: u64,
    /// The destination folder's UIDVALIDITY the UIDs below belong to.
    pub dest_uidvalidity: u32,
    /// (source UID, destination UID) of each message about to be deleted.
    pub messages: Vec<(u32, u32)>,
}

/// A rollback of one contacts/calendars/tasks collection whose deletes may have been sent but
/// whose records were not yet dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingDavRollback {
    /// The rollback's `--since`.
    pub since: u64,
    /// The objects about to be deleted, each only if it still has its ETag.
    pub objects: Vec<PendingDavObject>,
}

/// One object a DAV rollback is about to delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingDavObject {
    /// Its identity (the key of its record).
    pub key: String,
    pub dest_href: String,
    /// The ETag its `DELETE` is conditional on (`If-Match`).
    pub etag: String,
}

fn pending_name(id: &str, folder: &str) -> String {
    format!("pending rollback of `{folder}` of `{id}`")
}

fn sync_points_txn(txn: &ReadTransaction) -> Result<BTreeMap<u64, u64>, Fault> {
    let table = match txn.open_table(SYNC_POINTS) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(BTreeMap::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = BTreeMap::new();
    for entry in table.iter()? {
        let (k, v) = entry?;
        out.insert(k.value(), v.value());
    }
    Ok(out)
}

fn pending_txn<T: serde::de::DeserializeOwned>(
    txn: &ReadTransaction,
    table: TableDefinition<(&str, &str), &str>,
    id: &str,
) -> Result<BTreeMap<String, T>, Fault> {
    let table = match txn.open_table(table) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(BTreeMap::new()),
        Err(e) => return Err(e.into()),
    };
    let end = super::successor(id);
    let mut out = BTreeMap::new();
    for entry in table.range((id, "")..(end.as_str(), ""))? {
        let (k, v) = entry?;
        let (_, folder) = k.value();
        out.insert(
            folder.to_string(),
            decode_json(v.value(), || pending_name(id, folder))?,
        );
    }
    Ok(out)
}

/// Records when sync point `n` started (inside `next_sync_point`'s transaction).
pub(super) fn stamp_txn(txn: &WriteTransaction, n: u64, at: u64) -> Result<(), Fault> {
    txn.open_table(SYNC_POINTS)?.insert(n, at)?;
    Ok(())
}

/// Drops a resource's pending rollbacks (`state forget`, a folder forgotten).
pub(super) fn forget_txn(txn: &WriteTransaction, id: &str) -> Result<(), Fault> {
    let end = super::successor(id);
    txn.open_table(ROLLBACKS)?
        .retain_in((id, "")..(end.as_str(), ""), |_, _| false)?;
    txn.open_table(DAV_ROLLBACKS)?
        .retain_in((id, "")..(end.as_str(), ""), |_, _| false)?;
    Ok(())
}

impl StateStore {
    /// Each sync point with its start (Unix seconds), for those that have one.
    pub fn sync_points(&self) -> Result<BTreeMap<u64, u64>, StateError> {
        self.read(sync_points_txn)
    }

    /// The rollbacks of a resource that were started and not finished, by source folder.
    pub fn pending_rollbacks(
        &self,
        id: &str,
    ) -> Result<BTreeMap<String, PendingRollback>, StateError> {
        self.read(|txn| pending_txn(txn, ROLLBACKS, id))
    }

    /// Records that the messages of `pending` are about to be deleted from the destination
    /// (committed before the first STORE).
    pub fn begin_rollback(
        &self,
        id: &str,
        folder: &str,
        pending: &PendingRollback,
    ) -> Result<(), StateError> {
        self.write(|txn| {
            let json = encode_json(pending, || pending_name(id, folder))?;
            txn.open_table(ROLLBACKS)?
                .insert((id, folder), json.as_str())?;
            Ok(())
        })
    }

    /// After the expunge, in one transaction: drops the message records of the source UIDs in
    /// `removed`, takes them off the folder's counts and lowers its highest UID below them (so
    /// the next apply lists them again), voids its STATUS snapshot (so the next apply does not
    /// skip the folder as unchanged), and ends the pending rollback. The highest MODSEQ is
    /// kept: voiding it would make the next apply carry every source message's flags again,
    /// undoing flag changes the user made on the destination since.
    pub fn finish_rollback(
        &self,
        id: &str,
        folder: &str,
        removed: &[u32],
    ) -> Result<(), StateError> {
        self.write(|txn| {
            let mut messages = txn.open_table(MESSAGES)?;
            let (mut count, mut bytes) = (0u64, 0u64);
            for uid in removed {
                if let Some(v) = messages.remove((id, folder, *uid))? {
                    count += 1;
                    bytes += super::decode_message(v.value()).map_or(0, |m| m.size);
                }
            }
            drop(messages);
            let mut folders = txn.open_table(FOLDERS)?;
            let record = folders
                .get((id, folder))?
                .map(|v| decode_json::<FolderRecord>(v.value(), || folder_name(id, folder)))
                .transpose()?;
            if let Some(mut r) = record {
                r.messages = r.messages.saturating_sub(count);
                r.bytes = r.bytes.saturating_sub(bytes);
                if let Some(lowest) = removed.iter().min() {
                    r.highest_uid = r.highest_uid.min(lowest.saturating_sub(1));
                }
                r.source_uidnext = 0;
                r.source_messages = 0;
                let json = encode_json(&r, || folder_name(id, folder))?;
                folders.insert((id, folder), json.as_str())?;
            }
            drop(folders);
            txn.open_table(ROLLBACKS)?.remove((id, folder))?;
            Ok(())
        })
    }
}

/// Contacts, calendars and tasks.
impl StateStore {
    /// The DAV rollbacks of a resource that were started and not finished, by source
    /// collection.
    pub fn pending_dav_rollbacks(
        &self,
        id: &str,
    ) -> Result<BTreeMap<String, PendingDavRollback>, StateError> {
        self.read(|txn| pending_txn(txn, DAV_ROLLBACKS, id))
    }

    /// Records that the objects of `pending` are about to be deleted from the destination
    /// (committed before the first `DELETE`).
    pub fn begin_dav_rollback(
        &self,
        id: &str,
        collection: &str,
        pending: &PendingDavRollback,
    ) -> Result<(), StateError> {
        self.write(|txn| {
            let json = encode_json(pending, || pending_name(id, collection))?;
            txn.open_table(DAV_ROLLBACKS)?
                .insert((id, collection), json.as_str())?;
            Ok(())
        })
    }

    /// After the deletes, in one transaction: drops the object records of `removed` (deleted,
    /// or found gone), takes them off the collection's count, voids its sync token and CTag
    /// (so the next apply lists the source collection again and finds them without a record,
    /// instead of skipping it as unchanged), and ends the pending rollback.
    pub fn finish_dav_rollback(
        &self,
        id: &str,
        collection: &str,
        removed: &[String],
    ) -> Result<(), StateError> {
        self.write(|txn| {
            let mut objects = txn.open_table(DAV_OBJECTS)?;
            let mut count = 0u64;
            for key in removed {
                if objects.remove((id, collection, key.as_str()))?.is_some() {
                    count += 1;
                }
            }
            drop(objects);
            let mut collections = txn.open_table(DAV_COLLECTIONS)?;
            let name = || format!("collection record `{collection}` of `{id}`");
            let record = collections
                .get((id, collection))?
                .map(|v| decode_json::<DavCollectionRecord>(v.value(), name))
                .transpose()?;
            if let Some(mut r) = record {
                r.objects = r.objects.saturating_sub(count);
                r.sync_token = None;
                r.ctag = None;
                let json = encode_json(&r, name)?;
                collections.insert((id, collection), json.as_str())?;
            }
            drop(collections);
            txn.open_table(DAV_ROLLBACKS)?.remove((id, collection))?;
            Ok(())
        })
    }
}

impl StateReader {
    /// Each sync point with its start (Unix seconds), for those that have one.
    pub fn sync_points(&self) -> Result<BTreeMap<u64, u64>, StateError> {
        self.read(sync_points_txn)
    }

    /// The messages of a resource that each sync point copied: sync point → (count, bytes).
    /// Sync point 0 (adopted from the destination) is left out.
    pub fn copied_by_sync_point(&self, id: &str) -> Result<BTreeMap<u64, (u64, u64)>, StateError> {
        self.read(|txn| {
            let table = match txn.open_table(MESSAGES) {
                Ok(t) => t,
                Err(TableError::TableDoesNotExist(_)) => return Ok(BTreeMap::new()),
                Err(e) => return Err(e.into()),
            };
            let end = super::successor(id);
            let mut out: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
            for entry in table.range((id, "", 0)..(end.as_str(), "", 0))? {
                let (_, v) = entry?;
                if let Some(m) = super::decode_message(v.value())
                    && m.sync_point > 0
                {
                    let e = out.entry(m.sync_point).or_default();
                    e.0 += 1;
                    e.1 += m.size;
                }
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MessageRecord;

    fn message(dest_uid: u32, sync_point: u64, size: u64) -> MessageRecord {
        MessageRecord {
            dest_uid,
            hash: [dest_uid as u8; 32],
            size,
            sync_point,
            ..Default::default()
        }
    }

    fn folder() -> FolderRecord {
        FolderRecord {
            dest_folder: "INBOX".into(),
            source_uidvalidity: 1,
            highest_uid: 4,
            highest_modseq: Some(77),
            dest_uidvalidity: 2,
            dest_uidnext_in_flight: None,
            source_uidnext: 5,
            source_messages: 4,
            messages: 4,
            bytes: 1000,
            updated_at: 0,
        }
    }

    #[test]
    fn finish_drops_the_records_lowers_the_cursor_and_ends_the_pending_rollback() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("state.redb")).unwrap();
        let messages: Vec<(u32, MessageRecord)> = vec![
            (1, message(11, 1, 100)),
            (2, message(12, 1, 200)),
            (3, message(13, 2, 300)),
            (4, message(14, 2, 400)),
        ];
        store
            .record_batch("r", "INBOX", &folder(), &messages)
            .unwrap();
        let pending = PendingRollback {
            since: 2,
            dest_uidvalidity: 2,
            messages: vec![(3, 13), (4, 14)],
        };
        store.begin_rollback("r", "INBOX", &pending).unwrap();
        assert_eq!(
            store.pending_rollbacks("r").unwrap(),
            BTreeMap::from([("INBOX".to_string(), pending)])
        );
        // Another resource's pending rollbacks are not this one's.
        assert!(store.pending_rollbacks("q").unwrap().is_empty());

        store.finish_rollback("r", "INBOX", &[3, 4]).unwrap();
        let kept: Vec<u32> = store
            .messages("r", "INBOX")
            .unwrap()
            .into_iter()
            .map(|(u, _)| u)
            .collect();
        assert_eq!(kept, vec![1, 2]);
        let r = store.folder("r", "INBOX").unwrap().unwrap();
        assert_eq!((r.messages, r.bytes, r.highest_uid), (2, 300, 2));
        // The next apply must not skip the folder as unchanged, nor carry every flag again.
        assert_eq!((r.source_uidnext, r.source_messages), (0, 0));
        assert_eq!(r.highest_modseq, Some(77));
        assert!(store.pending_rollbacks("r").unwrap().is_empty());
    }

    #[test]
    fn a_dav_rollback_drops_its_records_voids_the_token_and_ends() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("state.redb")).unwrap();
        let id = "account/a@example.com/contacts";
        let object = |n: u64| crate::state::DavObjectRecord {
            source_href: format!("/a/{n}.vcf"),
            source_etag: None,
            source_hash: "00".repeat(32),
            dest_href: format!("/b/{n}.vcf"),
            dest_etag: Some(format!("\"{n}\"")),
            size: n,
            sync_point: n,
            created_sync_point: Some(n),
        };
        let coll = DavCollectionRecord {
            dest_href: "/b/".into(),
            sync_token: Some("t".into()),
            ctag: Some("c".into()),
            objects: 3,
            updated_at: 9,
        };
        let objects: Vec<(String, _)> = (1..=3).map(|n| (format!("uid:{n}"), object(n))).collect();
        store.record_dav(id, "work", &objects, Some(&coll)).unwrap();
        let pending = PendingDavRollback {
            since: 2,
            objects: vec![PendingDavObject {
                key: "uid:2".into(),
                dest_href: "/b/2.vcf".into(),
                etag: "\"2\"".into(),
            }],
        };
        store.begin_dav_rollback(id, "work", &pending).unwrap();
        assert_eq!(
            store.pending_dav_rollbacks(id).unwrap(),
            BTreeMap::from([("work".to_string(), pending)])
        );
        // The mail table is another one.
        assert!(store.pending_rollbacks(id).unwrap().is_empty());
        store
            .finish_dav_rollback(id, "work", &["uid:2".into(), "uid:3".into()])
            .unwrap();
        let left = store.dav_objects(id, "work").unwrap();
        assert_eq!(left.keys().collect::<Vec<_>>(), ["uid:1"]);
        let c = &store.dav_collections(id).unwrap()["work"];
        assert_eq!((c.objects, c.updated_at), (1, 9));
        assert_eq!((c.sync_token.as_deref(), c.ctag.as_deref()), (None, None));
        assert!(store.pending_dav_rollbacks(id).unwrap().is_empty());
        // `forget` drops an interrupted one too.
        store
            .begin_dav_rollback(
                id,
                "work",
                &PendingDavRollback {
                    since: 1,
                    objects: vec![],
                },
            )
            .unwrap();
        store.forget(id).unwrap();
        assert!(store.pending_dav_rollbacks(id).unwrap().is_empty());
    }

    #[test]
    fn sync_points_have_their_start_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let store = StateStore::open(&path).unwrap();
        assert_eq!(store.next_sync_point().unwrap(), 1);
        assert_eq!(store.next_sync_point().unwrap(), 2);
        let points = store.sync_points().unwrap();
        assert_eq!(points.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
        assert!(points.values().all(|t| *t > 1_700_000_000));
        let messages = vec![
            (1, message(11, 1, 100)),
            (2, message(12, 2, 200)),
            (3, message(13, 2, 300)),
            (4, message(14, 0, 400)),
        ];
        store
            .record_batch("r", "INBOX", &folder(), &messages)
            .unwrap();
        store
            .record_batch("r", "Archive", &folder(), &[(1, message(21, 2, 5))])
            .unwrap();
        store
            .record_batch("rr", "INBOX", &folder(), &[(1, message(31, 1, 7))])
            .unwrap();
        drop(store);
        let reader = StateReader::open(&path).unwrap();
        assert_eq!(
            reader.copied_by_sync_point("r").unwrap(),
            BTreeMap::from([(1, (1, 100)), (2, (3, 505))])
        );
        assert_eq!(reader.sync_points().unwrap().len(), 2);
    }
}
