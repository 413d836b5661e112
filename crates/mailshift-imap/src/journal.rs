//! What the copy remembers between runs, and the trait through which it does: the engine owns
//! the records and the order of the writes, its caller owns where they are kept (mailshift keeps
//! them in its redb state file, `apply::journal`).
//!
//! The exactly-once protocol rests on that order (see [`super::copy`]):
//! 1. Before a batch is sent, [`Journal::put_folder`] records the destination's UIDNEXT as the
//!    folder's in-flight mark (`dest_uidnext_in_flight`). It must be durable when the call
//!    returns: the APPEND is sent only after it, so a crash during the APPEND leaves a mark
//!    that tells the next run where to look for what landed.
//! 2. After the batch, [`Journal::record_batch`] stores the folder's progress and the batch's
//!    map entries together, in one transaction: after a crash the folder never claims messages
//!    the map lacks, or the reverse.
//! 3. Refusals ([`Journal::put_refused`], [`Journal::clear_refused`]) are written after the
//!    batch they belong to; they only decide what is tried again, never what is sent twice.
//!
//! A journal speaks for one account's copy (the caller binds it to its own key); folders are
//! named by their source path. Calls block (a commit syncs to disk): the engine makes them
//! off its async workers.

use std::collections::BTreeMap;
use std::fmt;

/// Progress of one copied folder.
#[derive(Debug, Clone, PartialEq)]
pub struct FolderRecord {
    /// Destination folder name (as sent to the server).
    pub dest_folder: String,
    pub source_uidvalidity: u32,
    /// Highest source UID copied (or skipped on purpose).
    pub highest_uid: u32,
    /// Highest source MODSEQ whose flag changes were carried (CONDSTORE).
    pub highest_modseq: Option<u64>,
    pub dest_uidvalidity: u32,
    /// Destination UIDNEXT read just before the batch in flight; `None` when no batch is in flight.
    pub dest_uidnext_in_flight: Option<u32>,
    /// Source UIDNEXT and message count when the folder was last fully synced: when STATUS
    /// still says the same (and HIGHESTMODSEQ too), a no-op run skips the folder.
    pub source_uidnext: u32,
    pub source_messages: u32,
    /// Messages and bytes copied so far.
    pub messages: u64,
    pub bytes: u64,
    /// Unix seconds of the last completed batch.
    pub updated_at: u64,
}

/// One copied message: source UID → destination UID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRecord {
    /// 0 when the destination did not say (no UIDPLUS).
    pub dest_uid: u32,
    /// SHA-256 of the message bytes as sent; all zeros when unknown (a message adopted from
    /// the destination on its header fingerprint alone, whose body was never fetched).
    pub hash: [u8; 32],
    pub size: u64,
    /// The sync point (numbered run) that copied it; 0 for a message adopted from the
    /// destination (no run of ours copied it, so none may remove it).
    pub sync_point: u64,
}

/// A source message the destination refused (a NO to its APPEND), kept so it is tried again
/// and can be named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedRecord {
    /// The destination's words.
    pub reason: String,
    pub size: u64,
    /// How many runs it was refused in.
    pub attempts: u32,
    /// The sync point (numbered run) of the last refusal.
    pub sync_point: u64,
}

/// A journal that could not be read or written, in its keeper's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalError(pub String);

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for JournalError {}

/// Where one account's copy keeps its records. The ordering the engine relies on is in the
/// module documentation; each method says what must hold when it returns `Ok`.
pub trait Journal: Send + Sync {
    /// Every folder record, by source folder path.
    fn folders(&self) -> Result<BTreeMap<String, FolderRecord>, JournalError>;

    fn folder(&self, folder: &str) -> Result<Option<FolderRecord>, JournalError>;

    /// The message map of one folder, ordered by source UID.
    fn messages(&self, folder: &str) -> Result<Vec<(u32, MessageRecord)>, JournalError>;

    /// The refused messages of one folder, by source UID.
    fn refused(&self, folder: &str) -> Result<Vec<(u32, RefusedRecord)>, JournalError>;

    /// Replaces the folder's record, durably: this is how the in-flight mark is set before an
    /// APPEND and cleared when the folder is done.
    fn put_folder(&self, folder: &str, record: &FolderRecord) -> Result<(), JournalError>;

    /// Replaces the folder's record and adds (or replaces) map entries, all in one durable
    /// transaction.
    fn record_batch(
        &self,
        folder: &str,
        record: &FolderRecord,
        messages: &[(u32, MessageRecord)],
    ) -> Result<(), JournalError>;

    /// Records messages refused, or refused again (replacing their old record).
    fn put_refused(
        &self,
        folder: &str,
        refused: &[(u32, RefusedRecord)],
    ) -> Result<(), JournalError>;

    /// Forgets the refusals of messages the destination has now taken.
    fn clear_refused(&self, folder: &str, uids: &[u32]) -> Result<(), JournalError>;

    /// Removes a folder's record, map and refusals (a UIDVALIDITY changed: its UIDs mean
    /// nothing any more).
    fn forget_folder(&self, folder: &str) -> Result<(), JournalError>;

    /// Counts bytes against the platforms' daily limits ([`crate::copy::Budget`]): `download`
    /// about to be fetched from the source, `upload` about to be appended to the destination.
    /// Called only when the copy has a budget, before the bytes move, so a crash leaves the
    /// count too high, never too low. (Bodies fetched to match an interrupted batch or to adopt
    /// what the destination holds are not counted: a few, after an interruption only.)
    fn transferred(&self, _download: u64, _upload: u64) -> Result<(), JournalError> {
        Ok(())
    }
}
