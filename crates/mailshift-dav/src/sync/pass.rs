//! One pass over one collection: deciding what to read, then reading, writing and recording it
//! batch by batch (steps 2 to 5 of the protocol in the module doc of [`super`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::stream::{self, StreamExt};
use tokio::sync::OnceCell;

use super::index::{DestIndex, Keys, found_hash, is_same_object, kept_hash};
use super::{
    BATCH, BadObject, CollectionReport, Destinations, IN_FLIGHT, Job, Progress, RefusedObject,
    RewriteNote, SyncError, journal_call, like,
};
use crate::journal::{CollectionRecord, Journal, ObjectRecord, RefusedRecord};
use crate::object::{self, Item, Profile};
use crate::store::{Collection, Fetched, Precondition, PutOutcome, Store, StoreError, StoreResult};

/// Round trips one object may take (412, read, write again...) before it is given up for this
/// run: a destination that changes it under every write is not worth looping on.
const MAX_STEPS: usize = 8;

pub(crate) enum PassError {
    /// The collection fails (or is tried again when transient).
    Store(StoreError),
    /// The account stops.
    Account(SyncError),
}

impl From<StoreError> for PassError {
    fn from(e: StoreError) -> Self {
        PassError::Store(e)
    }
}

impl From<SyncError> for PassError {
    fn from(e: SyncError) -> Self {
        PassError::Account(e)
    }
}

/// What a pass reads from the source, decided from the records alone.
#[derive(Debug, Default)]
pub(crate) struct Reading {
    /// The CTag has not changed since the last complete pass.
    pub skip: bool,
    /// Source hrefs to fetch, sorted (so "the first by href" keeps a duplicated UID).
    pub to_read: Vec<String>,
    /// The sync token to record when the pass completes.
    pub token: Option<String>,
    /// Every href of the source with its ETag, when it was listed.
    pub listed: Option<BTreeMap<String, Option<String>>>,
    /// Hrefs removed since the recorded token, when asked by token.
    pub removed: BTreeSet<String>,
}

impl Reading {
    /// Whether the object recorded at `href` is still on the source, as far as this pass knows.
    pub fn present(&self, href: &str) -> bool {
        match &self.listed {
            Some(l) => l.contains_key(href),
            None => !self.removed.contains(href),
        }
    }

    /// Recorded objects gone from the source (not read again in this pass).
    pub fn removed_count(
        &self,
        records: &BTreeMap<String, ObjectRecord>,
        seen: &BTreeSet<String>,
    ) -> u64 {
        records
            .iter()
            .filter(|(k, r)| !seen.contains(*k) && !self.present(&r.source_href))
            .count() as u64
    }
}

/// Decides what to read (step 2). A collection with refused objects is listed rather than
/// asked by token: the refusals, which have no record, are read and tried again whenever the
/// collection changed.
pub(crate) async fn reading<S: Store>(
    source: &S,
    src: &Collection,
    record: Option<&CollectionRecord>,
    records: &BTreeMap<String, ObjectRecord>,
    has_refusals: bool,
    full_scan: bool,
) -> StoreResult<Reading> {
    let completed = record.is_some_and(|r| r.updated_at != 0) && !full_scan;
    let record = record.filter(|_| completed);
    if let Some(r) = record
        && src.ctag.is_some()
        && r.ctag == src.ctag
    {
        return Ok(Reading {
            skip: true,
            ..Reading::default()
        });
    }
    // href → the recorded version there, to skip what has not changed.
    let known: BTreeMap<&str, &Option<String>> = records
        .values()
        .map(|r| (r.source_href.as_str(), &r.source_etag))
        .collect();
    let unchanged = |href: &str, etag: &Option<String>| {
        !full_scan && etag.is_some() && known.get(href).is_some_and(|e| *e == etag)
    };
    if let Some(token) = record.and_then(|r| r.sync_token.as_deref())
        && (src.sync_token.is_some() || source.listing_token())
        && !has_refusals
        && let Some(delta) = source.changes(src, token).await?
    {
        let mut to_read: Vec<String> = delta
            .changed
            .into_iter()
            .filter(|l| !unchanged(&l.href, &l.etag))
            .map(|l| l.href)
            .collect();
        to_read.sort();
        to_read.dedup();
        return Ok(Reading {
            skip: false,
            to_read,
            token: Some(delta.token),
            listed: None,
            removed: delta.removed.into_iter().collect(),
        });
    }
    // The token comes with the listing and is recorded only when the pass completes: a cut
    // before leaves the collection without a complete record, and the next pass lists again.
    let listing = source.list_with_token(src).await?;
    let listed: BTreeMap<String, Option<String>> = listing
        .objects
        .into_iter()
        .map(|l| (l.href, l.etag))
        .collect();
    let to_read = listed
        .iter()
        .filter(|(h, e)| !unchanged(h, e))
        .map(|(h, _)| h.clone())
        .collect();
    Ok(Reading {
        skip: false,
        to_read,
        token: listing.token,
        listed: Some(listed),
        removed: BTreeSet::new(),
    })
}

/// A source object to carry.
pub(crate) struct Work {
    pub key: String,
    pub item: Item,
    /// `content_hash` of the source bytes.
    pub hash: [u8; 32],
    pub href: String,
    pub etag: Option<String>,
    pub record: Option<ObjectRecord>,
}

/// How an object ended up on the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    Created,
    Updated,
    Adopted { updated: bool },
}

enum Done {
    Unchanged {
        key: String,
        record: ObjectRecord,
        /// The record's source href or ETag moved: worth recording.
        dirty: bool,
    },
    Stored {
        key: String,
        summary: Option<String>,
        record: ObjectRecord,
        how: How,
        /// Bytes sent (0 when adopted as found).
        sent: u64,
        rewrites: Vec<String>,
        notes: Vec<String>,
    },
    Refused {
        key: String,
        summary: Option<String>,
        reason: String,
        size: u64,
    },
}

enum Step {
    /// Read what is at this href, then write over it.
    Probe(String),
    Put(String, Precondition),
}

/// What a pass needs from the run.
pub(crate) struct Ctx<'a, S, D> {
    pub job: &'a Job,
    pub source: &'a S,
    pub dest: &'a D,
    pub journal: &'a dyn Journal,
    pub progress: &'a dyn Progress,
    pub stop: &'a AtomicBool,
}

/// The destination side of one pass.
struct Target<'a> {
    col: &'a Collection,
    profile: Profile,
    /// Match against the destination's objects before creating (step 3).
    adopt: bool,
    index: OnceCell<DestIndex>,
    /// Destination hrefs recorded for some key: not adoptable by another.
    recorded: BTreeSet<String>,
    /// Destination href → the key recorded or stored there (in this pass): an object one key
    /// holds is never adopted by another, even when they share a UID.
    taken: Mutex<BTreeMap<String, String>>,
}

impl Target<'_> {
    /// Whether another key than `key` holds `href`.
    fn other(&self, href: &str, key: &str) -> bool {
        self.taken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(href)
            .is_some_and(|k| k != key)
    }

    fn take(&self, href: &str, key: &str) {
        self.taken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(href.to_string(), key.to_string());
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl<S: Store, D: Store> Ctx<'_, S, D> {
    /// One pass over `src`, adding what it does to `rep` (counts only once recorded).
    pub async fn run(
        &self,
        src: &Collection,
        dests: &mut Destinations,
        rep: &mut CollectionReport,
        done: &mut BTreeSet<String>,
    ) -> Result<(), PassError> {
        let name = src.name.as_str();
        let j = self.journal;
        let crec = journal_call(|| j.collections())?.remove(name);
        let mut records = journal_call(|| j.objects(name))?;
        let refused = journal_call(|| j.refused(name))?;

        let recorded_href = crec.as_ref().map(|c| c.dest_href.as_str());
        let dcol = match dests.find(src, &self.job.rules, recorded_href).cloned() {
            Some(c) => c,
            None => {
                let c = self
                    .dest
                    .create_collection(&self.job.rules.target_name(src), &like(src))
                    .await?;
                rep.created = true;
                c
            }
        };
        dests.take(&dcol);
        rep.dest_href = dcol.href.clone();
        let moved = crec.as_ref().is_some_and(|c| c.dest_href != dcol.href);
        if moved && !records.is_empty() {
            // The recorded destination is gone: what was recorded there says nothing about the
            // new one, which is matched from scratch.
            let keys: Vec<String> = records.keys().cloned().collect();
            journal_call(|| j.forget_objects(name, &keys))?;
            records.clear();
            rep.notes.push(format!(
                "the destination collection copied to before is gone; copying to {} again",
                dcol.href
            ));
        }
        let crec = match crec {
            Some(c) if !moved => c,
            _ => {
                let c = CollectionRecord {
                    dest_href: dcol.href.clone(),
                    ..CollectionRecord::default()
                };
                journal_call(|| j.put_collection(name, &c))?;
                c
            }
        };

        let rd = reading(
            self.source,
            src,
            Some(&crec),
            &records,
            !refused.is_empty(),
            self.job.full_scan,
        )
        .await?;
        if rd.skip {
            self.progress.collection_started(&self.job.account, name, 0);
            rep.skipped_unchanged = true;
            rep.unchanged += records.len() as u64;
            rep.complete = true;
            return Ok(());
        }
        let target = Target {
            col: &dcol,
            profile: Profile {
                vcard_versions: dcol.vcard_versions.clone(),
                schedule_agent_client: self.dest.schedules(),
                require_uid: self.dest.requires_uid(),
            },
            adopt: self.job.full_scan || crec.updated_at == 0,
            index: OnceCell::new(),
            recorded: records.values().map(|r| r.dest_href.clone()).collect(),
            taken: Mutex::new(
                records
                    .iter()
                    .map(|(k, r)| (r.dest_href.clone(), k.clone()))
                    .collect(),
            ),
        };
        let at_start = records.clone();
        let mut keys = Keys::new(
            records
                .iter()
                .filter(|(_, r)| rd.present(&r.source_href))
                .map(|(k, r)| (k.as_str(), r.source_href.as_str())),
        );
        self.progress
            .collection_started(&self.job.account, name, rd.to_read.len() as u64);

        let mut seen = BTreeSet::new();
        let chunks: Vec<&[String]> = rd.to_read.chunks(BATCH).collect();
        let batches = chunks.len().max(1);
        for i in 0..batches {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let chunk = chunks.get(i).copied().unwrap_or(&[]);
            let mut fetched: Vec<Fetched> = if chunk.is_empty() {
                Vec::new()
            } else {
                self.source.fetch(src, chunk).await?
            };
            fetched.sort_by(|a, b| a.href.cmp(&b.href));
            let mut work = Vec::new();
            for f in fetched {
                let item = match object::parse(&f.data) {
                    Ok(item) => item,
                    Err(e) => {
                        rep.bad.push(BadObject {
                            location: f.href,
                            line: e.line,
                            message: e.message,
                        });
                        continue;
                    }
                };
                if !self.job.components.contains(&item.component) {
                    continue;
                }
                let hash = object::content_hash(&f.data);
                let (key, duplicate) = keys.key(&object::identity(&item), &f.href, &hash);
                if !seen.insert(key.clone()) {
                    // The same content without UID at two hrefs: one object.
                    continue;
                }
                if duplicate {
                    rep.duplicates.push(format!(
                        "{} ({}) has the UID of another object in the collection: copied on its own",
                        f.href,
                        item.summary.as_deref().unwrap_or("no summary")
                    ));
                }
                let record = records.get(&key).cloned();
                work.push(Work {
                    key,
                    item,
                    hash,
                    href: f.href,
                    etag: f.etag,
                    record,
                });
            }

            // A UID's extra copies go after the objects keyed by plain identity: were both in
            // flight at once, a destination with one object per UID could take the extra copy
            // first and answer the first object with a conflict.
            let (extra, work): (Vec<Work>, Vec<Work>) =
                work.into_iter().partition(|w| w.key.contains("#sha256:"));
            let mut results: Vec<Result<Done, StoreError>> = stream::iter(work)
                .map(|w| self.object(&target, w))
                .buffer_unordered(IN_FLIGHT)
                .collect()
                .await;
            results.extend(
                stream::iter(extra)
                    .map(|w| self.object(&target, w))
                    .buffer_unordered(IN_FLIGHT)
                    .collect::<Vec<_>>()
                    .await,
            );

            let mut batch = Vec::new();
            let mut refusals = Vec::new();
            let mut settled = Vec::new();
            let mut error = None;
            let (mut created, mut updated, mut adopted, mut unchanged) = (0, 0, 0, 0);
            let (mut sent_objects, mut sent_bytes) = (0, 0);
            let mut rewrites = Vec::new();
            let mut notes = Vec::new();
            for r in results {
                match r {
                    Err(e) => {
                        error.get_or_insert(e);
                    }
                    Ok(Done::Unchanged { key, record, dirty }) => {
                        if !done.contains(&key) {
                            unchanged += 1;
                        }
                        settled.push(key.clone());
                        if dirty {
                            batch.push((key, record));
                        }
                    }
                    Ok(Done::Stored {
                        key,
                        summary,
                        record,
                        how,
                        sent,
                        rewrites: rw,
                        notes: n,
                    }) => {
                        match how {
                            How::Created => created += 1,
                            How::Updated => updated += 1,
                            How::Adopted { updated: u } => {
                                adopted += 1;
                                updated += u64::from(u);
                            }
                        }
                        if sent > 0 {
                            sent_objects += 1;
                            sent_bytes += sent;
                            rewrites.extend(rw.into_iter().map(|rewrite| RewriteNote {
                                identity: key.clone(),
                                summary: summary.clone(),
                                rewrite,
                            }));
                        }
                        notes.extend(n);
                        done.insert(key.clone());
                        settled.push(key.clone());
                        batch.push((key, record));
                    }
                    Ok(Done::Refused {
                        key,
                        summary,
                        reason,
                        size,
                    }) => refusals.push((key, summary, reason, size)),
                }
            }
            if sent_objects > 0 {
                self.dest.flush().await?;
            }
            for (key, summary, reason, size) in refusals {
                let record = RefusedRecord {
                    reason: reason.clone(),
                    size,
                    attempts: refused
                        .get(&key)
                        .map_or(1, |r| r.attempts.saturating_add(1)),
                    sync_point: self.job.sync_point,
                };
                journal_call(|| j.put_refused(name, &key, &record))?;
                rep.refused.push(RefusedObject {
                    identity: key,
                    summary,
                    reason,
                });
            }
            for (key, record) in &batch {
                records.insert(key.clone(), record.clone());
            }
            let last = i + 1 == batches && error.is_none();
            let complete = last.then(|| CollectionRecord {
                dest_href: dcol.href.clone(),
                sync_token: rd.token.clone(),
                ctag: src.ctag.clone(),
                objects: records.len() as u64,
                updated_at: now().max(1),
            });
            if !batch.is_empty() || complete.is_some() {
                journal_call(|| j.record(name, &batch, complete.as_ref()))?;
            }
            for key in settled.iter().filter(|k| refused.contains_key(*k)) {
                journal_call(|| j.clear_refused(name, key))?;
            }
            rep.copied += created;
            rep.updated += updated;
            rep.adopted += adopted;
            rep.unchanged += unchanged;
            rep.bytes += sent_bytes;
            rep.rewrites.extend(rewrites);
            rep.notes.extend(notes);
            if sent_objects > 0 {
                self.progress
                    .copied(&self.job.account, sent_objects, sent_bytes);
            }
            if let Some(e) = error {
                return Err(e.into());
            }
        }

        if rd.listed.is_some() {
            // Every object still on the source was read or matched: a refusal not seen again
            // is of an object that left the source.
            for key in refused.keys().filter(|k| !seen.contains(*k)) {
                journal_call(|| j.clear_refused(name, key))?;
            }
        }
        rep.removed_on_source = rd.removed_count(&at_start, &seen);
        rep.unchanged += at_start
            .iter()
            .filter(|(k, r)| !seen.contains(*k) && !done.contains(*k) && rd.present(&r.source_href))
            .count() as u64;
        rep.complete = true;
        Ok(())
    }

    /// Carries one object (step 4), and marks where it went as its key's.
    async fn object(&self, t: &Target<'_>, w: Work) -> Result<Done, StoreError> {
        let done = self.carry(t, w).await?;
        if let Done::Stored { key, record, .. } = &done {
            t.take(&record.dest_href, key);
        }
        Ok(done)
    }

    async fn carry(&self, t: &Target<'_>, w: Work) -> Result<Done, StoreError> {
        let summary = w.item.summary.clone();
        if let Some(rec) = &w.record
            && rec.source_hash == w.hash
        {
            let dirty = rec.source_href != w.href || rec.source_etag != w.etag;
            let mut record = rec.clone();
            record.source_href = w.href;
            record.source_etag = w.etag;
            return Ok(Done::Unchanged {
                key: w.key,
                record,
                dirty,
            });
        }
        let (bytes, rewrites) = object::prepare(&w.item, &t.profile);
        // Compared with what the destination holds as the destination keeps it.
        let prepared = kept_hash(self.dest, Some(w.item.component), &bytes);
        let size = bytes.len() as u64;
        let refuse = |reason: String| Done::Refused {
            key: w.key.clone(),
            summary: summary.clone(),
            reason,
            size,
        };
        if let Some(max) = t.col.max_size
            && size > max
        {
            return Ok(refuse(format!(
                "{size} bytes, more than the destination collection accepts ({max} bytes); not sent"
            )));
        }
        // An object adopted (ours or not) keeps sync point 0: no rollback may remove it, as
        // it cannot be told from one another tool put there.
        let mut sync_point = match &w.record {
            Some(r) if r.sync_point == 0 => 0,
            _ => self.job.sync_point,
        };
        let mut adopted = false;
        let mut notes = Vec::new();
        let stored = |href: String,
                      etag: Option<String>,
                      found_size: u64,
                      sent: u64,
                      how: How,
                      sync_point: u64,
                      notes: Vec<String>| Done::Stored {
            key: w.key.clone(),
            summary: summary.clone(),
            record: ObjectRecord {
                source_href: w.href.clone(),
                source_etag: w.etag.clone(),
                source_hash: w.hash,
                dest_href: href,
                dest_etag: etag,
                size: found_size,
                sync_point,
                created_sync_point: created(sync_point, w.record.as_ref()),
            },
            how,
            sent,
            rewrites: rewrites.iter().map(ToString::to_string).collect(),
            notes,
        };

        let mut step = match &w.record {
            Some(rec) => match &rec.dest_etag {
                Some(e) => Step::Put(rec.dest_href.clone(), Precondition::Matches(e.clone())),
                None => Step::Probe(rec.dest_href.clone()),
            },
            None => {
                let found = if t.adopt {
                    self.index(t)
                        .await?
                        .claim_unless(&w.key, &prepared, &w.hash, |h| t.other(h, &w.key))
                } else {
                    None
                };
                match found {
                    Some(f) => {
                        adopted = true;
                        sync_point = 0;
                        if f.hash == prepared {
                            return Ok(stored(
                                f.href,
                                f.etag,
                                f.size,
                                0,
                                How::Adopted { updated: false },
                                0,
                                notes,
                            ));
                        }
                        match f.etag {
                            Some(e) => Step::Put(f.href, Precondition::Matches(e)),
                            None => Step::Probe(f.href),
                        }
                    }
                    None => Step::Put(
                        self.dest
                            .href_for(t.col, &object::file_name(&w.key), w.item.component),
                        Precondition::Absent,
                    ),
                }
            }
        };
        let mut suffix = 1;
        for _ in 0..MAX_STEPS {
            step = match step {
                Step::Probe(href) => match self.fetch_one(t.col, &href).await? {
                    None => Step::Put(href, Precondition::Absent),
                    Some(f) if found_hash(self.dest, &f.data) == prepared => {
                        return Ok(stored(
                            href,
                            f.etag,
                            f.data.len() as u64,
                            0,
                            How::Adopted { updated: false },
                            sync_point,
                            notes,
                        ));
                    }
                    Some(f) => match f.etag {
                        Some(e) => Step::Put(href, Precondition::Matches(e)),
                        None => {
                            return Ok(refuse(
                                "the destination gives no ETag to write over the object with"
                                    .into(),
                            ));
                        }
                    },
                },
                Step::Put(href, condition) => {
                    let creating = condition == Precondition::Absent;
                    match self.dest.put(t.col, &href, &bytes, condition).await? {
                        PutOutcome::Written { etag } => {
                            let how = if adopted {
                                How::Adopted { updated: true }
                            } else if w.record.is_some() {
                                How::Updated
                            } else {
                                How::Created
                            };
                            return Ok(stored(href, etag, size, size, how, sync_point, notes));
                        }
                        PutOutcome::PreconditionFailed => {
                            match self.fetch_one(t.col, &href).await? {
                                // Gone meanwhile: create it again.
                                None => Step::Put(href, Precondition::Absent),
                                Some(f) if creating => {
                                    if is_same_object(self.dest, &f.data, &w.key, &prepared)
                                        && !t.other(&href, &w.key)
                                    {
                                        // An earlier run wrote it and was cut before its record.
                                        adopted = true;
                                        sync_point = 0;
                                        if found_hash(self.dest, &f.data) == prepared {
                                            return Ok(stored(
                                                href,
                                                f.etag,
                                                f.data.len() as u64,
                                                0,
                                                How::Adopted { updated: false },
                                                0,
                                                notes,
                                            ));
                                        }
                                        match f.etag {
                                            Some(e) => Step::Put(href, Precondition::Matches(e)),
                                            None => Step::Probe(href),
                                        }
                                    } else {
                                        // Another object holds the href its identity gives.
                                        suffix += 1;
                                        Step::Put(
                                            self.dest.href_for(
                                                t.col,
                                                &format!("{}-{suffix}", object::file_name(&w.key)),
                                                w.item.component,
                                            ),
                                            Precondition::Absent,
                                        )
                                    }
                                }
                                Some(f) if found_hash(self.dest, &f.data) == prepared => {
                                    // Written by an earlier run cut before its record.
                                    return Ok(stored(
                                        href,
                                        f.etag,
                                        f.data.len() as u64,
                                        0,
                                        How::Adopted { updated: false },
                                        sync_point,
                                        notes,
                                    ));
                                }
                                Some(f) => {
                                    notes.push(format!(
                                        "{} ({}) was changed on the destination since it was copied; \
                                         replaced by the source's version",
                                        href,
                                        summary.as_deref().unwrap_or("no summary")
                                    ));
                                    match f.etag {
                                        Some(e) => Step::Put(href, Precondition::Matches(e)),
                                        None => Step::Probe(href),
                                    }
                                }
                            }
                        }
                        PutOutcome::UidConflict { href: at } => {
                            if w.key.contains("#sha256:") {
                                return Ok(refuse(
                                    "the destination holds one object per UID, and another \
                                     object of this collection with the same UID is copied there"
                                        .into(),
                                ));
                            }
                            let there = match at.filter(|h| *h != href && !t.other(h, &w.key)) {
                                Some(h) => self
                                    .fetch_one(t.col, &h)
                                    .await?
                                    .filter(|f| {
                                        is_same_object(self.dest, &f.data, &w.key, &prepared)
                                    })
                                    .map(|f| {
                                        (h, f.etag, found_hash(self.dest, &f.data), f.data.len())
                                    }),
                                None => None,
                            };
                            let there = match there {
                                Some(x) => Some(x),
                                None => self
                                    .index(t)
                                    .await?
                                    .claim_unless(&w.key, &prepared, &w.hash, |h| {
                                        t.other(h, &w.key)
                                    })
                                    .map(|f| (f.href, f.etag, f.hash, f.size as usize)),
                            };
                            let Some((h, etag, hash, found_size)) = there else {
                                return Ok(refuse(
                                    "the destination already holds an object with this UID, \
                                     and it could not be found"
                                        .into(),
                                ));
                            };
                            adopted = true;
                            sync_point = 0;
                            if hash == prepared {
                                return Ok(stored(
                                    h,
                                    etag,
                                    found_size as u64,
                                    0,
                                    How::Adopted { updated: false },
                                    0,
                                    notes,
                                ));
                            }
                            match etag {
                                Some(e) => Step::Put(h, Precondition::Matches(e)),
                                None => Step::Probe(h),
                            }
                        }
                        PutOutcome::Refused { status, reason } => {
                            return Ok(refuse(format!("{status}: {reason}")));
                        }
                    }
                }
            };
        }
        Ok(refuse(
            "the destination kept changing the object while it was written; tried again next run"
                .into(),
        ))
    }

    /// The destination index, read on first need.
    async fn index<'t>(&self, t: &'t Target<'_>) -> StoreResult<&'t DestIndex> {
        t.index
            .get_or_try_init(|| DestIndex::load(self.dest, t.col, &t.recorded))
            .await
    }

    async fn fetch_one(&self, col: &Collection, href: &str) -> StoreResult<Option<Fetched>> {
        Ok(self
            .dest
            .fetch(col, &[href.to_string()])
            .await?
            .into_iter()
            .next())
    }
}

/// Which sync point created an object just stored with `sync_point` (0: adopted), given its
/// record before: an adopted object was never ours; a recorded one keeps the creation it had
/// (an update, or a write again after the destination lost it, is not a creation of this run);
/// an object without a record was created by this run.
fn created(sync_point: u64, before: Option<&ObjectRecord>) -> Option<u64> {
    match before {
        _ if sync_point == 0 => Some(0),
        Some(r) => r.created_sync_point,
        None => Some(sync_point),
    }
}
