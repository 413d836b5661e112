//! The contacts/calendars/tasks engine's journal kept in the state file: one account's copy of
//! one kind of content, under its resource id, in the redb store's `dav_collections`,
//! `dav_objects` and `dav_refused` tables.
//!
//! The engine's records and the state's are the same fields (hashes as hex in the file); they
//! are converted here, one to one, so the file's format stays the state's alone. Every write is
//! one committed store transaction, which is what the engine's ordering asks for (see
//! [`mailshift_dav::journal`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use mailshift_dav::journal::{
    CollectionRecord, Journal, JournalError, ObjectRecord, RefusedRecord,
};

use crate::state::{
    DavCollectionRecord, DavObjectRecord, DavRefusedRecord, StateError, StateStore,
};

/// One contacts/calendars/tasks resource's records in the state store.
pub struct DavStoreJournal {
    store: Arc<StateStore>,
    resource_id: String,
}

impl DavStoreJournal {
    pub fn new(store: Arc<StateStore>, resource_id: impl Into<String>) -> DavStoreJournal {
        DavStoreJournal {
            store,
            resource_id: resource_id.into(),
        }
    }
}

fn err(e: StateError) -> JournalError {
    JournalError(e.to_string())
}

impl Journal for DavStoreJournal {
    fn collections(&self) -> Result<BTreeMap<String, CollectionRecord>, JournalError> {
        Ok(self
            .store
            .dav_collections(&self.resource_id)
            .map_err(err)?
            .into_iter()
            .map(|(name, r)| (name, from_collection(r)))
            .collect())
    }

    fn put_collection(
        &self,
        collection: &str,
        record: &CollectionRecord,
    ) -> Result<(), JournalError> {
        self.store
            .put_dav_collection(&self.resource_id, collection, &to_collection(record))
            .map_err(err)
    }

    fn objects(&self, collection: &str) -> Result<BTreeMap<String, ObjectRecord>, JournalError> {
        self.store
            .dav_objects(&self.resource_id, collection)
            .map_err(err)?
            .into_iter()
            .map(|(key, r)| Ok((key, from_object(r)?)))
            .collect()
    }

    fn record(
        &self,
        collection: &str,
        objects: &[(String, ObjectRecord)],
        record: Option<&CollectionRecord>,
    ) -> Result<(), JournalError> {
        let objects: Vec<(String, DavObjectRecord)> = objects
            .iter()
            .map(|(key, o)| (key.clone(), to_object(o)))
            .collect();
        self.store
            .record_dav(
                &self.resource_id,
                collection,
                &objects,
                record.map(to_collection).as_ref(),
            )
            .map_err(err)
    }

    fn forget_objects(&self, collection: &str, keys: &[String]) -> Result<(), JournalError> {
        self.store
            .forget_dav_objects(&self.resource_id, collection, keys)
            .map_err(err)
    }

    fn put_refused(
        &self,
        collection: &str,
        key: &str,
        record: &RefusedRecord,
    ) -> Result<(), JournalError> {
        let record = DavRefusedRecord {
            reason: record.reason.clone(),
            size: record.size,
            attempts: record.attempts,
            sync_point: record.sync_point,
        };
        self.store
            .put_dav_refused(&self.resource_id, collection, key, &record)
            .map_err(err)
    }

    fn clear_refused(&self, collection: &str, key: &str) -> Result<(), JournalError> {
        self.store
            .clear_dav_refused(&self.resource_id, collection, key)
            .map_err(err)
    }

    fn refused(&self, collection: &str) -> Result<BTreeMap<String, RefusedRecord>, JournalError> {
        Ok(self
            .store
            .dav_refused(&self.resource_id, collection)
            .map_err(err)?
            .into_iter()
            .map(|(key, r)| {
                (
                    key,
                    RefusedRecord {
                        reason: r.reason,
                        size: r.size,
                        attempts: r.attempts,
                        sync_point: r.sync_point,
                    },
                )
            })
            .collect())
    }
}

pub fn from_collection(r: DavCollectionRecord) -> CollectionRecord {
    CollectionRecord {
        dest_href: r.dest_href,
        sync_token: r.sync_token,
        ctag: r.ctag,
        objects: r.objects,
        updated_at: r.updated_at,
    }
}

fn to_collection(r: &CollectionRecord) -> DavCollectionRecord {
    DavCollectionRecord {
        dest_href: r.dest_href.clone(),
        sync_token: r.sync_token.clone(),
        ctag: r.ctag.clone(),
        objects: r.objects,
        updated_at: r.updated_at,
    }
}

pub fn from_object(r: DavObjectRecord) -> Result<ObjectRecord, JournalError> {
    Ok(ObjectRecord {
        source_hash: unhex(&r.source_hash).ok_or_else(|| {
            JournalError(format!(
                "object record of {}: its hash {:?} is not 64 hex digits",
                r.source_href, r.source_hash
            ))
        })?,
        source_href: r.source_href,
        source_etag: r.source_etag,
        dest_href: r.dest_href,
        dest_etag: r.dest_etag,
        size: r.size,
        sync_point: r.sync_point,
        created_sync_point: r.created_sync_point,
    })
}

fn to_object(r: &ObjectRecord) -> DavObjectRecord {
    DavObjectRecord {
        source_href: r.source_href.clone(),
        source_etag: r.source_etag.clone(),
        source_hash: r.source_hash.iter().map(|b| format!("{b:02x}")).collect(),
        dest_href: r.dest_href.clone(),
        dest_etag: r.dest_etag.clone(),
        size: r.size,
        sync_point: r.sync_point,
        created_sync_point: r.created_sync_point,
    }
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(StateStore::open(&dir.path().join("s.redb")).unwrap());
        let journal = DavStoreJournal::new(store, "account/a@example.com/contacts");
        let object = ObjectRecord {
            source_href: "/a/x.vcf".into(),
            source_etag: Some("\"1\"".into()),
            source_hash: [0xab; 32],
            dest_href: "/b/x.vcf".into(),
            dest_etag: None,
            size: 10,
            sync_point: 3,
            created_sync_point: Some(2),
        };
        let coll = CollectionRecord {
            dest_href: "/b/".into(),
            sync_token: Some("tok".into()),
            ..Default::default()
        };
        journal
            .record("work", &[("uid:x".into(), object.clone())], Some(&coll))
            .unwrap();
        assert_eq!(journal.objects("work").unwrap()["uid:x"], object);
        assert_eq!(journal.collections().unwrap()["work"], coll);
        journal.forget_objects("work", &["uid:x".into()]).unwrap();
        assert!(journal.objects("work").unwrap().is_empty());
    }
}
