//! The mail engine's journal kept in the state file: one account's copy records, under its
//! resource id, in the redb store's `folders`, `messages` and `refused` tables.
//!
//! The engine's records and the state's are the same fields; they are converted here, one
//! to one, so the file's format stays the state's alone (`crate::state::store`). Every write is
//! one committed store transaction, which is what the engine's ordering asks for (see
//! [`crate::transfer::imap::journal`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::state::{self, StateError, StateStore};
use crate::transfer::imap::journal::{
    FolderRecord, Journal, JournalError, MessageRecord, RefusedRecord,
};

/// One sync resource's records in the state store.
pub struct StoreJournal {
    store: Arc<StateStore>,
    resource_id: String,
    /// The account whose daily-limit ledger the copy's bytes are counted in.
    ledger: Option<String>,
}

impl StoreJournal {
    pub fn new(store: Arc<StateStore>, resource_id: impl Into<String>) -> StoreJournal {
        StoreJournal {
            store,
            resource_id: resource_id.into(),
            ledger: None,
        }
    }

    /// Counts the bytes the copy moves in `account`'s ledger (`state::store::quota`), at
    /// `apply::quota::now`.
    pub fn counting_for(mut self, account: &str) -> StoreJournal {
        self.ledger = Some(account.to_string());
        self
    }
}

fn err(e: StateError) -> JournalError {
    JournalError(e.to_string())
}

impl Journal for StoreJournal {
    fn folders(&self) -> Result<BTreeMap<String, FolderRecord>, JournalError> {
        Ok(folder_records(
            self.store.folders(&self.resource_id).map_err(err)?,
        ))
    }

    fn folder(&self, folder: &str) -> Result<Option<FolderRecord>, JournalError> {
        Ok(self
            .store
            .folder(&self.resource_id, folder)
            .map_err(err)?
            .map(from_folder))
    }

    fn messages(&self, folder: &str) -> Result<Vec<(u32, MessageRecord)>, JournalError> {
        Ok(self
            .store
            .messages(&self.resource_id, folder)
            .map_err(err)?
            .into_iter()
            .map(|(uid, m)| (uid, from_message(m)))
            .collect())
    }

    fn refused(&self, folder: &str) -> Result<Vec<(u32, RefusedRecord)>, JournalError> {
        Ok(self
            .store
            .refused(&self.resource_id, folder)
            .map_err(err)?
            .into_iter()
            .map(|(uid, r)| (uid, from_refused(r)))
            .collect())
    }

    fn put_folder(&self, folder: &str, record: &FolderRecord) -> Result<(), JournalError> {
        self.store
            .put_folder(&self.resource_id, folder, &to_folder(record))
            .map_err(err)
    }

    fn record_batch(
        &self,
        folder: &str,
        record: &FolderRecord,
        messages: &[(u32, MessageRecord)],
    ) -> Result<(), JournalError> {
        let messages: Vec<(u32, state::MessageRecord)> = messages
            .iter()
            .map(|(uid, m)| (*uid, to_message(m)))
            .collect();
        self.store
            .record_batch(&self.resource_id, folder, &to_folder(record), &messages)
            .map_err(err)
    }

    fn put_refused(
        &self,
        folder: &str,
        refused: &[(u32, RefusedRecord)],
    ) -> Result<(), JournalError> {
        let refused: Vec<(u32, state::RefusedRecord)> = refused
            .iter()
            .map(|(uid, r)| (*uid, to_refused(r)))
            .collect();
        self.store
            .put_refused(&self.resource_id, folder, &refused)
            .map_err(err)
    }

    fn clear_refused(&self, folder: &str, uids: &[u32]) -> Result<(), JournalError> {
        self.store
            .clear_refused(&self.resource_id, folder, uids)
            .map_err(err)
    }

    fn forget_folder(&self, folder: &str) -> Result<(), JournalError> {
        self.store
            .forget_folder(&self.resource_id, folder)
            .map(|_| ())
            .map_err(err)
    }

    fn transferred(&self, download: u64, upload: u64) -> Result<(), JournalError> {
        match &self.ledger {
            Some(account) => self
                .store
                .add_transfer(account, crate::apply::quota::now(), download, upload)
                .map_err(err),
            None => Ok(()),
        }
    }
}

/// The state's folder records as the engine reads them (`plan --refresh` hands them to its
/// preview).
pub fn folder_records(
    records: BTreeMap<String, state::FolderRecord>,
) -> BTreeMap<String, FolderRecord> {
    records
        .into_iter()
        .map(|(k, r)| (k, from_folder(r)))
        .collect()
}

fn from_folder(r: state::FolderRecord) -> FolderRecord {
    let state::FolderRecord {
        dest_folder,
        source_uidvalidity,
        highest_uid,
        highest_modseq,
        dest_uidvalidity,
        dest_uidnext_in_flight,
        source_uidnext,
        source_messages,
        messages,
        bytes,
        updated_at,
    } = r;
    FolderRecord {
        dest_folder,
        source_uidvalidity,
        highest_uid,
        highest_modseq,
        dest_uidvalidity,
        dest_uidnext_in_flight,
        source_uidnext,
        source_messages,
        messages,
        bytes,
        updated_at,
    }
}

fn to_folder(r: &FolderRecord) -> state::FolderRecord {
    let FolderRecord {
        dest_folder,
        source_uidvalidity,
        highest_uid,
        highest_modseq,
        dest_uidvalidity,
        dest_uidnext_in_flight,
        source_uidnext,
        source_messages,
        messages,
        bytes,
        updated_at,
    } = r;
    state::FolderRecord {
        dest_folder: dest_folder.clone(),
        source_uidvalidity: *source_uidvalidity,
        highest_uid: *highest_uid,
        highest_modseq: *highest_modseq,
        dest_uidvalidity: *dest_uidvalidity,
        dest_uidnext_in_flight: *dest_uidnext_in_flight,
        source_uidnext: *source_uidnext,
        source_messages: *source_messages,
        messages: *messages,
        bytes: *bytes,
        updated_at: *updated_at,
    }
}

fn from_message(m: state::MessageRecord) -> MessageRecord {
    let state::MessageRecord {
        dest_uid,
        hash,
        size,
        sync_point,
    } = m;
    MessageRecord {
        dest_uid,
        hash,
        size,
        sync_point,
    }
}

fn to_message(m: &MessageRecord) -> state::MessageRecord {
    let MessageRecord {
        dest_uid,
        hash,
        size,
        sync_point,
    } = *m;
    state::MessageRecord {
        dest_uid,
        hash,
        size,
        sync_point,
    }
}

fn from_refused(r: state::RefusedRecord) -> RefusedRecord {
    let state::RefusedRecord {
        reason,
        size,
        attempts,
        sync_point,
    } = r;
    RefusedRecord {
        reason,
        size,
        attempts,
        sync_point,
    }
}

fn to_refused(r: &RefusedRecord) -> state::RefusedRecord {
    let RefusedRecord {
        reason,
        size,
        attempts,
        sync_point,
    } = r;
    state::RefusedRecord {
        reason: reason.clone(),
        size: *size,
        attempts: *attempts,
        sync_point: *sync_point,
    }
}
