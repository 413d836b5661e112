//! The copy of one account's address books or calendars from a source [`Store`] to a
//! destination [`Store`], exactly once and resumably, with every record kept through the
//! caller's [`Journal`] (whose doc states the write order this module follows).
//!
//! # The protocol
//!
//! 1. **Collections.** The source's collections that may hold the job's components, filtered by
//!    the plan's rules ([`CollectionRules`]). A calendar holding events and tasks serves both the
//!    calendars job and the tasks job; each copies only the objects of its own components. The
//!    destination collection is the recorded one if it still exists; else the one named as the
//!    plan maps it (or as the source is named); else one displayed so; else it is created like
//!    the source. Its record is put BEFORE the first object is written, so a run cut short
//!    finds the same destination again.
//! 2. **What to read.** Without a record of a complete pass, or on `full_scan`: everything.
//!    Else an unchanged CTag skips the collection; a recorded sync token asks only for what
//!    changed (RFC 6578; an expired token falls back); else the listing's ETags are compared
//!    with the records'. The token and CTag are the ones read at the START of the pass, so a
//!    change made during the pass is seen by the next one; a store whose token comes with a
//!    full listing (`Store::list_with_token`: EWS SyncFolderItems, Graph delta) gives one
//!    covering that listing, and a recorded one is asked for changes although its
//!    collections carry none (`Store::listing_token`).
//! 3. **Adoption.** Until a pass over a collection has completed (a first run, a run after a
//!    cut, a lost state, a destination pre-filled by another tool), and on `full_scan`, the
//!    destination's objects are read and indexed by identity before the first object without a
//!    record is written: an object already there is ADOPTED (recorded with sync point 0, never
//!    written a second time), and updated with `If-Match` when its content differs from what
//!    the source's would be once prepared.
//! 4. **Each object.** Keyed by identity (`uid:X`, or the content's hash without UID; a second
//!    object with one UID in one collection gets `uid:X#sha256:<hash>`). An unchanged content
//!    hash writes nothing. A recorded object whose content changed is written over its recorded
//!    ETag (`If-Match`); a new one is created at the href its identity gives, with
//!    `If-None-Match: *`. The answers: 412 on a create → what is there is read; the same object
//!    (an earlier run was cut after writing it) is adopted, anything else (an href collision)
//!    sends ours to a suffixed href. 412 on an update → the same content is adopted; otherwise
//!    the destination was edited since, and the source wins (the report says so). A UID the
//!    destination already holds elsewhere (Radicale's 409) → that object is adopted; for a
//!    duplicate UID's extra copy it is a refusal. A refused object (too large, invalid) is
//!    recorded as refused and reported; it never fails the collection. Objects larger than the
//!    destination's `max-resource-size` are refused without being sent.
//! 5. **Durability.** Objects go in batches ([`BATCH`], [`IN_FLIGHT`] writes at once); after a
//!    batch, `Store::flush` (files), then ONE `Journal::record` of the batch; the collection's
//!    new token and CTag go with the last batch of a complete pass only. `stop` is checked
//!    between batches. Removals on the source are counted, never carried: a migration does not
//!    delete.
//! 6. **Failures.** A store error fails its collection only (the others go on); transient ones
//!    (network, throttling) are retried within the run while attempts make progress, and the
//!    collection is given up after [`STALLED_ATTEMPTS`] attempts in a row without any. Refused
//!    credentials, TLS and configuration errors, and journal errors stop the account
//!    ([`SyncError`]).
//!
//! A kill at any point leaves either an object written and unrecorded (the next create answers
//! 412 or 409, and the object is adopted after comparing) or recorded objects without the
//! collection's new token (the next pass reads them again and finds their hashes unchanged).

mod collections;
pub(crate) mod index;
pub(crate) mod pass;
#[cfg(test)]
mod real;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use collections::{CollectionRules, glob_match};
pub(crate) use collections::{Destinations, like, list as list_collections, sources};

use crate::error::ErrorKind;
use crate::journal::{Journal, JournalError};
use crate::store::{Component, Store, StoreError};

/// Objects per batch: the unit of a journal commit.
pub const BATCH: usize = 50;
/// Writes in flight at once within a batch.
pub const IN_FLIGHT: usize = 4;
/// Attempts in a row that record nothing before a collection is given up in this run.
pub const STALLED_ATTEMPTS: u32 = 3;

/// One account's copy of one kind of content.
#[derive(Debug, Clone)]
pub struct Job {
    /// For progress events and messages.
    pub account: String,
    /// What is copied: `[Card]` for contacts; `[Event, Journal]` for calendars; `[Task]` for
    /// tasks.
    pub components: Vec<Component>,
    pub rules: CollectionRules,
    /// This run's number, recorded on what it writes.
    pub sync_point: u64,
    /// Read every object of both sides again, whatever the records say.
    pub full_scan: bool,
}

/// Progress as events; the engine never prints.
pub trait Progress: Send + Sync {
    /// A collection's pass starts, with the number of source objects it reads.
    fn collection_started(&self, _account: &str, _collection: &str, _to_copy: u64) {}
    /// Objects written (created or updated) and their bytes, after each batch is recorded.
    fn copied(&self, _account: &str, _objects: u64, _bytes: u64) {}
    fn note(&self, _account: &str, _text: &str) {}
}

/// Progress nobody watches.
pub struct NoProgress;
impl Progress for NoProgress {}

/// A source object the destination refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedObject {
    pub identity: String,
    /// FN or SUMMARY, for people.
    pub summary: Option<String>,
    /// The destination's words.
    pub reason: String,
}

/// A rewrite an object needed for the destination (time zone, vCard version, scheduling).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteNote {
    pub identity: String,
    pub summary: Option<String>,
    pub rewrite: String,
}

/// A source object that cannot be read as a vCard or iCalendar object: reported, skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadObject {
    /// The source href (or file and position).
    pub location: String,
    /// 1-based line within the object.
    pub line: usize,
    pub message: String,
}

/// What a run did to one collection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectionReport {
    /// The source collection's name (the journal's key).
    pub name: String,
    pub dest_href: String,
    /// The destination collection was created in this run.
    pub created: bool,
    /// Its CTag had not changed since the last complete pass: nothing was read.
    pub skipped_unchanged: bool,
    /// Created on the destination.
    pub copied: u64,
    /// Written over an earlier copy (changed on the source, or adopted with other content).
    pub updated: u64,
    /// Found already on the destination and recorded instead of written.
    pub adopted: u64,
    pub unchanged: u64,
    /// Bytes written.
    pub bytes: u64,
    pub refused: Vec<RefusedObject>,
    pub rewrites: Vec<RewriteNote>,
    pub bad: Vec<BadObject>,
    /// Objects sharing a UID with another in the same source collection (each is copied on
    /// its own, keyed by content).
    pub duplicates: Vec<String>,
    /// Objects recorded earlier and gone from the source: never removed from the destination.
    pub removed_on_source: u64,
    /// Anything else worth saying (a destination object edited since it was copied, replaced
    /// by the source's version).
    pub notes: Vec<String>,
    /// The pass went to its end (false: stopped, or the collection failed).
    pub complete: bool,
}

/// A collection given up in this run; what it recorded before stays, and the next run goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedCollection {
    pub name: String,
    pub kind: ErrorKind,
    pub reason: String,
    pub retry_after: Option<Duration>,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub collections: Vec<CollectionReport>,
    pub failed: Vec<FailedCollection>,
    /// `stop` was raised: the run ended between two batches.
    pub stopped: bool,
}

impl SyncReport {
    /// Lines a person should read, beyond the counts.
    pub fn notes(&self) -> Vec<String> {
        let mut out = Vec::new();
        for c in &self.collections {
            if c.removed_on_source > 0 {
                out.push(format!(
                    "{}: {} object(s) removed on the source since they were copied; \
                     a migration never deletes, so they stay on the destination",
                    c.name, c.removed_on_source
                ));
            }
            for n in &c.notes {
                out.push(format!("{}: {n}", c.name));
            }
        }
        out
    }
}

/// What stops a whole account: refused credentials, TLS, configuration, the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncError {
    pub kind: ErrorKind,
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SyncError {}

impl From<StoreError> for SyncError {
    fn from(e: StoreError) -> Self {
        SyncError {
            kind: e.kind,
            message: e.message,
            retry_after: e.retry_after,
        }
    }
}

impl From<JournalError> for SyncError {
    fn from(e: JournalError) -> Self {
        SyncError {
            kind: ErrorKind::State,
            message: format!("contacts/calendars journal: {}", e.0),
            retry_after: None,
        }
    }
}

/// Whether a store error stops the account rather than one collection.
pub(crate) fn stops_account(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Auth | ErrorKind::Tls | ErrorKind::Config | ErrorKind::State
    )
}

/// Runs a journal call, off the async workers when the runtime has others to move them to
/// (a commit syncs to disk); on a single-threaded runtime (tests) it simply runs.
pub(crate) fn journal_call<T>(f: impl FnOnce() -> Result<T, JournalError>) -> Result<T, SyncError> {
    let multi = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    let r = if multi {
        tokio::task::block_in_place(f)
    } else {
        f()
    };
    r.map_err(SyncError::from)
}

/// Retries a call on a side that is not about one collection (listing collections) while it
/// fails transiently.
pub(crate) async fn retrying<T, F, Fut>(mut f: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 0;
    loop {
        match f().await {
            Err(e) if e.kind.is_transient() && attempt + 1 < STALLED_ATTEMPTS => {
                tokio::time::sleep(backoff(attempt, e.retry_after)).await;
                attempt += 1;
            }
            r => return r,
        }
    }
}

/// The pause before attempt `attempt + 1`: what the server asked for, else 1 s doubling to 30 s.
pub(crate) fn backoff(attempt: u32, asked: Option<Duration>) -> Duration {
    asked.unwrap_or_else(|| Duration::from_secs((1u64 << attempt.min(5)).min(30)))
}

/// Copies one account's collections of `job.components` from `source` to `dest`.
///
/// Returns what was done, including the collections that failed (the others went on); `Err`
/// only for what stops the whole account. See the module doc for the protocol.
pub async fn sync<S: Store, D: Store>(
    job: &Job,
    source: &S,
    dest: &D,
    journal: &dyn Journal,
    progress: &dyn Progress,
    stop: &AtomicBool,
) -> Result<SyncReport, SyncError> {
    let records = journal_call(|| journal.collections())?;
    let srcs = retrying(|| sources(source, &job.components, &job.rules)).await?;
    let dests = retrying(|| list_collections(dest, &job.components)).await?;
    let mut dests = Destinations::new(dests, records.values().map(|r| r.dest_href.clone()));
    let ctx = pass::Ctx {
        job,
        source,
        dest,
        journal,
        progress,
        stop,
    };
    let mut report = SyncReport::default();
    for src in &srcs {
        if stop.load(Ordering::Relaxed) {
            report.stopped = true;
            break;
        }
        let mut rep = CollectionReport {
            name: src.name.clone(),
            ..CollectionReport::default()
        };
        let mut stalled = 0;
        // Keys written or adopted in this run: an attempt after a failed one finds them
        // recorded, and must not count them again as unchanged.
        let mut done = std::collections::BTreeSet::new();
        loop {
            let before = rep.copied + rep.updated + rep.adopted + rep.unchanged;
            match ctx.run(src, &mut dests, &mut rep, &mut done).await {
                Ok(()) => break,
                Err(pass::PassError::Account(e)) => return Err(e),
                Err(pass::PassError::Store(e)) if stops_account(e.kind) => return Err(e.into()),
                Err(pass::PassError::Store(e)) => {
                    let moved = rep.copied + rep.updated + rep.adopted + rep.unchanged > before;
                    stalled = if moved { 0 } else { stalled + 1 };
                    if e.kind.is_transient() && stalled < STALLED_ATTEMPTS {
                        progress.note(
                            &job.account,
                            &format!("{}: {}; trying again", src.name, e.message),
                        );
                        tokio::time::sleep(backoff(stalled, e.retry_after)).await;
                        continue;
                    }
                    report.failed.push(FailedCollection {
                        name: src.name.clone(),
                        kind: e.kind,
                        reason: e.message,
                        retry_after: e.retry_after,
                    });
                    break;
                }
            }
        }
        dedup_lists(&mut rep);
        if !rep.complete && stop.load(Ordering::Relaxed) {
            report.stopped = true;
        }
        report.collections.push(rep);
        if report.stopped {
            break;
        }
    }
    Ok(report)
}

/// A pass tried again reads the objects it could not record again: each is reported once.
fn dedup_lists(rep: &mut CollectionReport) {
    let mut seen = std::collections::BTreeSet::new();
    rep.bad
        .retain(|b| seen.insert((b.location.clone(), b.line)));
    let mut seen = std::collections::BTreeSet::new();
    rep.refused.retain(|r| seen.insert(r.identity.clone()));
    let mut seen = std::collections::BTreeSet::new();
    rep.rewrites
        .retain(|r| seen.insert((r.identity.clone(), r.rewrite.clone())));
    let mut seen = std::collections::BTreeSet::new();
    rep.duplicates.retain(|d| seen.insert(d.clone()));
    let mut seen = std::collections::BTreeSet::new();
    rep.notes.retain(|n| seen.insert(n.clone()));
}
