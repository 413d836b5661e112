//! What the contacts/calendars copy remembers between runs, and the trait through which it
//! does: the engine owns the records and the order of the writes, its caller owns where they are
//! kept (mailshift keeps them in its redb state file, `apply::dav_journal`).
//!
//! Exactly once rests on two things. First, an object's destination href is derived from its
//! identity (its UID, or its normalized content when it has none), and a create is sent with
//! `If-None-Match: *`: after a crash between a write and its record, the next run's create of the
//! same object answers 412 (or the server's "this UID is already here"), and the engine adopts
//! what it finds after comparing, instead of writing a second copy. Second, [`Journal::record`]
//! stores a batch of objects and, when a pass over a collection is complete, the collection's
//! new sync token, in one transaction: a token never claims objects the records lack.
//!
//! A journal speaks for one account's copy of one kind of content (the caller binds it to its
//! own key). Collections are named by their source name (see the engine's docs); objects by
//! their identity key. Calls block (a commit syncs to disk): the engine makes them off its async
//! workers.

use std::collections::BTreeMap;
use std::fmt;

/// Progress of one copied collection (address book or calendar).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CollectionRecord {
    /// The destination collection's href (path on the server, or file name for files).
    pub dest_href: String,
    /// The source's sync-collection token (RFC 6578) after the last complete pass, when the
    /// source offers it: the next run asks only for what changed since.
    pub sync_token: Option<String>,
    /// The source collection's CTag (or the file's fingerprint) after the last complete pass:
    /// when it is unchanged, the next run skips the collection.
    pub ctag: Option<String>,
    /// Objects copied or adopted so far.
    pub objects: u64,
    /// Unix seconds of the last completed pass.
    pub updated_at: u64,
}

/// One copied object (a card, or an event or task with its overridden instances).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRecord {
    /// Where it is on the source (href, or `file:line` for files).
    pub source_href: String,
    /// The source's ETag when it was read, if the source gives one.
    pub source_etag: Option<String>,
    /// SHA-256 of the source object's normalized content: an unchanged hash means nothing to
    /// carry, whatever the ETag says.
    pub source_hash: [u8; 32],
    /// Where it is on the destination.
    pub dest_href: String,
    /// The destination's ETag after the write (or as found when adopted), for `If-Match`.
    pub dest_etag: Option<String>,
    /// Bytes written (or found).
    pub size: u64,
    /// The sync point (numbered run) that last wrote it; 0 for an object adopted from the
    /// destination (no run of ours wrote it, so none may remove it).
    pub sync_point: u64,
    /// The sync point whose run created the object on the destination (`Some(0)`: it was
    /// there already and was adopted; `None`: not known, a record from before this was
    /// kept). `mailshift rollback --since N` removes only objects created at N or later: an
    /// update of an object created earlier is not undone by deleting it.
    pub created_sync_point: Option<u64>,
}

/// A source object the destination refused (too large, invalid for it), kept so it is tried
/// again and can be named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedRecord {
    /// The destination's words (status and body excerpt).
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

/// Where the copy keeps its records. Every write must be durable when the call returns.
pub trait Journal: Send + Sync {
    /// Every collection this copy has records of, by source name.
    fn collections(&self) -> Result<BTreeMap<String, CollectionRecord>, JournalError>;

    /// Creates or replaces a collection's record (its destination, before the first object).
    fn put_collection(
        &self,
        collection: &str,
        record: &CollectionRecord,
    ) -> Result<(), JournalError>;

    /// A collection's object records, by identity key.
    fn objects(&self, collection: &str) -> Result<BTreeMap<String, ObjectRecord>, JournalError>;

    /// Stores a batch of object records and, if given, the collection's record, in one
    /// transaction.
    fn record(
        &self,
        collection: &str,
        objects: &[(String, ObjectRecord)],
        record: Option<&CollectionRecord>,
    ) -> Result<(), JournalError>;

    /// Drops object records (objects gone from both sides, or found missing on the destination
    /// so the next pass writes them again).
    fn forget_objects(&self, collection: &str, keys: &[String]) -> Result<(), JournalError>;

    /// Records (or updates) a refusal.
    fn put_refused(
        &self,
        collection: &str,
        key: &str,
        record: &RefusedRecord,
    ) -> Result<(), JournalError>;

    /// Drops a refusal (the object was written after all, or left the source).
    fn clear_refused(&self, collection: &str, key: &str) -> Result<(), JournalError>;

    /// A collection's refusals, by identity key.
    fn refused(&self, collection: &str) -> Result<BTreeMap<String, RefusedRecord>, JournalError>;
}
