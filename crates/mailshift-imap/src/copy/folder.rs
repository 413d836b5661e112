//! One folder's copy, phase by phase. [`FolderSync`] holds one attempt's connections, what
//! the journal says of the folder, and the cursor of what is recorded; each phase is a method,
//! run in this order by [`sync_folder`]:
//!
//! 1. [`probe`](FolderSync::probe): nothing new or changed on either side → done.
//! 2. [`open`](FolderSync::open): open both folders, moving what was copied when the folder
//!    mapping changed ([`relocate`](FolderSync::relocate)).
//! 3. [`detect_reset`](FolderSync::detect_reset): a UIDVALIDITY change voids the map.
//! 4. [`todo`](FolderSync::todo): what the source has that is still to copy.
//! 5. [`rematch`](FolderSync::rematch): after an interruption, hash what may have landed.
//! 6. [`adopt`](FolderSync::adopt): no record, yet the destination holds messages → match.
//! 7. [`copy`](FolderSync::copy): batches ([`copy_batch`](FolderSync::copy_batch)) and large
//!    messages ([`copy_large`](FolderSync::copy_large)), each recorded as it lands.
//! 8. [`remove_strays`](FolderSync::remove_strays): late copies of an interrupted run.
//! 9. [`sync_flags`](FolderSync::sync_flags): flag changes onto messages copied earlier.
//! 10. [`finish`](FolderSync::finish): the STATUS snapshot that lets a no-op run skip it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{
    BATCH_MESSAGES, Carry, CopyError, FolderReport, Job, Paused, Ready, Run, Spool, content_hash,
    dest_flags, hash_messages, in_journal, is_large_batch, next_batch, now, refusal, send,
};
use crate::adopt::{Fingerprint, match_fingerprints, match_hashes};
use crate::error::ErrorKind;
use crate::folders::FolderPlan;
use crate::journal::{FolderRecord, MessageRecord, RefusedRecord};
use crate::plural;
use crate::session::{Appended, Body, FolderInfo, Imap, MessageMeta, Outgoing, uid_set};

/// UIDs per FETCH when adoption asks for fingerprints: keeps command lines short when UIDs
/// are sparse (servers cap a line at some tens of KB).
const FINGERPRINT_CHUNK: usize = 1000;

/// Where the folder's records stand: what is recorded, and the in-flight mark in effect.
#[derive(Debug, Clone, Copy, Default)]
struct Cursor {
    highest_uid: u32,
    messages: u64,
    bytes: u64,
    /// The destination UIDNEXT a batch in flight (or an interrupted run's) was sent from:
    /// destination messages at or above it may be ours without being in the map.
    in_flight: Option<u32>,
}

/// What the source lists, and what of it is still to copy.
struct Listing {
    /// Every message listed (all, or those above the settled UID).
    metas: Vec<MessageMeta>,
    /// To copy, in the order they are sent.
    todo: Vec<MessageMeta>,
    /// The highest UID below which everything was settled by earlier runs, if trusted.
    settled: Option<u32>,
    /// HIGHESTMODSEQ of the last complete run (CONDSTORE).
    prev_modseq: Option<u64>,
}

/// How the copy phase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Copied {
    All,
    /// The plan's `max_items` cut it short: the folder is not complete.
    Capped,
    /// The user asked to stop, or the account paused: what was recorded stays, nothing more
    /// is written.
    Stopped,
}

/// What became of a large message.
enum Large {
    /// It vanished from the source.
    Gone,
    /// The map entry, and whether it was sent (or found already on the destination).
    Copied((u32, MessageRecord), bool),
    /// The destination said NO to it: its words and its size.
    Refused(String, u64),
}

/// One attempt at one folder.
struct FolderSync<'a> {
    run: &'a Run,
    src: &'a mut Imap,
    dst: &'a mut Imap,
    folder: &'a FolderPlan,
    carry: &'a mut Carry,
    report: &'a mut FolderReport,
    /// The folder's journal key (its source path).
    key: String,
    record: Option<FolderRecord>,
    sinfo: FolderInfo,
    dinfo: FolderInfo,
    /// The map: source UID → what it became on the destination.
    copied: HashMap<u32, MessageRecord>,
    refused_before: HashMap<u32, RefusedRecord>,
    /// Destination messages that may be ours from an interrupted batch, by content hash.
    pending: HashMap<[u8; 32], Vec<u32>>,
    /// The in-flight mark this attempt started from (an interruption), if any.
    resumed_from: Option<u32>,
    cursor: Cursor,
    /// Gmail identities: see [`GmailIds`].
    gmail: GmailIds,
}

/// What Gmail's X-GM-MSGID tells the copy. From Gmail, each source message's id is recorded
/// with it. To Gmail, each copy's destination id is recorded, and since Gmail keeps one
/// message per Message-ID in a label (an APPEND of one it holds replaces it under a new UID),
/// a copy whose id another record of this folder already has points that record to the new
/// UID too: no record is left naming a UID Gmail dropped.
#[derive(Default)]
struct GmailIds {
    /// Source UID → X-GM-MSGID (a Gmail source).
    source: HashMap<u32, u64>,
    /// Destination X-GM-MSGID → the records of this folder holding it (a Gmail destination).
    dest: HashMap<u64, Vec<(u32, MessageRecord)>>,
}

impl GmailIds {
    /// Gives `entries` their Gmail ids and adds the records that must follow a renumbered
    /// destination message. Best effort on the destination side: the entries are recorded
    /// whatever happens (they are on the server), and the error comes back for after that.
    async fn stamp(
        &mut self,
        dst: &mut Imap,
        entries: &mut Vec<(u32, MessageRecord)>,
    ) -> Option<CopyError> {
        for (uid, rec) in entries.iter_mut() {
            if let Some(id) = self.source.get(uid) {
                rec.source_msgid = *id;
            }
        }
        if !dst.caps.gmail {
            return None;
        }
        let uids: Vec<u32> = entries
            .iter()
            .filter(|(_, r)| r.dest_uid != 0 && r.dest_msgid == 0)
            .map(|(_, r)| r.dest_uid)
            .collect();
        let ids: HashMap<u32, u64> = match dst.gmail_ids(&uids).await {
            Ok(ids) => ids.into_iter().collect(),
            Err(e) => return Some(e.into()),
        };
        let mut follow: Vec<(u32, MessageRecord)> = Vec::new();
        for (uid, rec) in entries.iter_mut() {
            if let Some(id) = ids.get(&rec.dest_uid) {
                rec.dest_msgid = *id;
            }
            if rec.dest_msgid == 0 {
                continue;
            }
            let holders = self.dest.entry(rec.dest_msgid).or_default();
            for (other, old) in holders.iter_mut() {
                if *other != *uid && old.dest_uid != rec.dest_uid {
                    old.dest_uid = rec.dest_uid;
                    follow.push((*other, *old));
                }
            }
            holders.retain(|(other, _)| other != uid);
            holders.push((*uid, *rec));
        }
        follow.retain(|(u, _)| !entries.iter().any(|(e, _)| e == u));
        entries.extend(follow);
        None
    }
}

/// Copies (or syncs) one folder; `carry` keeps what got through across dropped connections.
pub(super) async fn sync_folder(
    run: &Run,
    src: &mut Imap,
    dst: &mut Imap,
    folder: &FolderPlan,
    carry: &mut Carry,
    report: &mut FolderReport,
) -> Result<(), CopyError> {
    // Counts add up over the attempts of one run; what is derived from the listing is redone.
    report.too_large.clear();
    let mut fs = FolderSync {
        run,
        src,
        dst,
        folder,
        carry,
        report,
        key: folder.path.clone(),
        record: None,
        sinfo: FolderInfo::default(),
        dinfo: FolderInfo::default(),
        copied: HashMap::new(),
        refused_before: HashMap::new(),
        pending: HashMap::new(),
        resumed_from: None,
        cursor: Cursor::default(),
        gmail: GmailIds::default(),
    };
    if !fs.probe().await? {
        fs.report.skipped_unchanged = true;
        return Ok(());
    }
    fs.open().await?;
    fs.detect_reset().await?;
    let mut listing = fs.todo().await?;
    fs.rematch().await?;
    fs.adopt(&mut listing.todo).await?;
    let copied = fs.copy(&listing.todo).await?;
    if copied == Copied::Stopped {
        return Ok(());
    }
    let capped = copied == Copied::Capped;
    fs.remove_strays(capped).await?;
    fs.sync_flags(&listing, capped).await?;
    fs.finish(capped).await
}

/// Nothing new, nothing changed on either side, nothing in flight since `record`: the folder
/// needs no work.
pub(super) fn unchanged(
    job: &Job,
    folder: &FolderPlan,
    record: Option<&FolderRecord>,
    status: &FolderInfo,
    dest_uidvalidity: Option<u32>,
) -> bool {
    record.is_some_and(|r| {
        !job.full_scan
            && dest_uidvalidity == Some(r.dest_uidvalidity)
            && r.dest_uidnext_in_flight.is_none()
            && r.source_uidvalidity == status.uidvalidity
            && r.source_uidnext == status.uidnext
            && r.source_messages == status.exists
            && r.highest_modseq == status.highest_modseq
            && r.dest_folder == folder.dest
    })
}

/// The folder's record at `cursor`; `complete` stores the STATUS snapshot a no-op run
/// compares with.
fn folder_record(
    folder: &FolderPlan,
    sinfo: &FolderInfo,
    dinfo: &FolderInfo,
    cursor: &Cursor,
    in_flight: Option<u32>,
    complete: bool,
) -> FolderRecord {
    FolderRecord {
        dest_folder: folder.dest.clone(),
        source_uidvalidity: sinfo.uidvalidity,
        highest_uid: cursor.highest_uid,
        highest_modseq: if complete { sinfo.highest_modseq } else { None },
        dest_uidvalidity: dinfo.uidvalidity,
        dest_uidnext_in_flight: in_flight,
        source_uidnext: if complete { sinfo.uidnext } else { 0 },
        source_messages: if complete { sinfo.exists } else { 0 },
        messages: cursor.messages,
        bytes: cursor.bytes,
        updated_at: now(),
    }
}

/// Records what a batch kept, in one blocking task: the folder's progress with the new map
/// entries (one transaction), then the messages the destination refused, and the end of the
/// refusal of those that went through this time.
async fn record_kept(
    run: &Run,
    key: &str,
    rec: FolderRecord,
    entries: Vec<(u32, MessageRecord)>,
    refused: Vec<(u32, RefusedRecord)>,
    refused_before: &HashMap<u32, RefusedRecord>,
) -> Result<(), CopyError> {
    let taken: Vec<u32> = entries
        .iter()
        .map(|(u, _)| *u)
        .filter(|u| refused_before.contains_key(u))
        .collect();
    let key = key.to_string();
    in_journal(&run.journal, move |s| {
        s.record_batch(&key, &rec, &entries)?;
        if !refused.is_empty() {
            s.put_refused(&key, &refused)?;
        }
        if !taken.is_empty() {
            s.clear_refused(&key, &taken)?;
        }
        Ok(())
    })
    .await
}

impl FolderSync<'_> {
    fn job(&self) -> &Job {
        &self.run.job
    }

    fn note(&self, text: &str) {
        self.run.progress.note(&self.run.job.account, text);
    }

    /// Counts `n` messages against the plan's `max_items`.
    fn take_room(&self, n: u64) {
        let remaining = &self.run.remaining;
        remaining.fetch_sub(n.min(remaining.load(Ordering::Relaxed)), Ordering::Relaxed);
    }

    fn record(&self, in_flight: Option<u32>, complete: bool) -> FolderRecord {
        folder_record(
            self.folder,
            &self.sinfo,
            &self.dinfo,
            &self.cursor,
            in_flight,
            complete,
        )
    }

    /// The cheap questions first: nothing new, nothing changed on either side, nothing in
    /// flight → false, nothing to do. A destination folder deleted meanwhile is created again.
    /// The answers read at the start of the run serve; a folder they said nothing of is asked
    /// here.
    async fn probe(&mut self) -> Result<bool, CopyError> {
        let record = {
            let key = self.key.clone();
            in_journal(&self.run.journal, move |s| s.folder(&key)).await?
        };
        let folder = self.folder;
        let status = match &folder.known.source {
            Some(s) => s.clone(),
            None => self.src.status(&folder.source).await?,
        };
        let dest_status = match &folder.known.dest {
            Some(s) => Ok(s.clone()),
            None => self.dst.status(&folder.dest).await,
        };
        let dest_uidvalidity = match dest_status {
            Ok(s) => Some(s.uidvalidity),
            Err(e) if !e.transient => {
                self.dst.create(&folder.dest).await?;
                None
            }
            Err(e) => return Err(e.into()),
        };
        if unchanged(
            self.job(),
            folder,
            record.as_ref(),
            &status,
            dest_uidvalidity,
        ) {
            return Ok(false);
        }
        self.record = record;
        Ok(true)
    }

    /// Opens both folders. When the plan's folder mapping changed since this folder was
    /// copied, what was copied is moved instead of uploaded again into the new destination.
    async fn open(&mut self) -> Result<(), CopyError> {
        self.sinfo = self.src.open(&self.folder.source, false).await?;
        if let Some(r) = self.record.clone()
            && r.dest_folder != self.folder.dest
            && r.source_uidvalidity == self.sinfo.uidvalidity
            && r.dest_uidnext_in_flight.is_none()
            && let Some(moved) = self.relocate(&r).await?
        {
            self.report.moved += moved;
            let key = self.key.clone();
            self.record = in_journal(&self.run.journal, move |s| s.folder(&key)).await?;
        }
        self.dinfo = self.dst.open(&self.folder.dest, true).await?;
        Ok(())
    }

    /// A UIDVALIDITY change on either side voids the UID map: everything is matched by
    /// content again, from UID 1. Then the map is read.
    async fn detect_reset(&mut self) -> Result<(), CopyError> {
        self.cursor.in_flight = self.record.as_ref().and_then(|r| r.dest_uidnext_in_flight);
        if let Some(r) = &self.record {
            let source_reset = r.source_uidvalidity != self.sinfo.uidvalidity;
            let dest_reset =
                r.dest_uidvalidity != self.dinfo.uidvalidity || r.dest_folder != self.folder.dest;
            if source_reset || dest_reset {
                self.note(&format!(
                    "{}: {} UIDVALIDITY changed; matching existing messages by content instead of copying again",
                    self.folder.path,
                    if source_reset { "source" } else { "destination" }
                ));
                let key = self.key.clone();
                in_journal(&self.run.journal, move |s| s.forget_folder(&key)).await?;
                self.record = None;
                self.cursor.in_flight = Some(1);
            }
        }
        self.copied = {
            let key = self.key.clone();
            in_journal(&self.run.journal, move |s| s.messages(&key))
                .await?
                .into_iter()
                .collect()
        };
        self.gmail.dest.clear();
        for (uid, rec) in &self.copied {
            if rec.dest_msgid != 0 {
                self.gmail
                    .dest
                    .entry(rec.dest_msgid)
                    .or_default()
                    .push((*uid, *rec));
            }
        }
        Ok(())
    }

    /// From Gmail: each listed message's X-GM-MSGID is kept for its record, and on the plan
    /// reading All Mail only the archived messages (no label that is a folder) stay listed.
    async fn gmail_listing(
        &mut self,
        metas: Vec<MessageMeta>,
    ) -> Result<Vec<MessageMeta>, CopyError> {
        if !self.src.caps.gmail {
            if self.folder.archive.is_some() {
                return Err(CopyError::new(
                    ErrorKind::Config,
                    format!(
                        "the source is Gmail, but its server does not offer X-GM-EXT-1, so the archived messages of {:?} cannot be told from those with labels: exclude it (`folders.exclude`) or check the source's `type`",
                        self.folder.path
                    ),
                ));
            }
            return Ok(metas);
        }
        let uids: Vec<u32> = metas.iter().map(|m| m.uid).collect();
        let mut kept: HashSet<u32> = HashSet::new();
        for chunk in uids.chunks(FINGERPRINT_CHUNK) {
            for g in self.src.fetch_gmail(&uid_set(chunk)).await? {
                if let Some(id) = g.msgid {
                    self.gmail.source.insert(g.uid, id);
                }
                if self
                    .folder
                    .archive
                    .as_ref()
                    .is_none_or(|f| f.keeps(&g.labels))
                {
                    kept.insert(g.uid);
                }
            }
        }
        Ok(match self.folder.archive {
            Some(_) => metas
                .into_iter()
                .filter(|m| kept.contains(&m.uid))
                .collect(),
            None => metas,
        })
    }

    /// What the source has, and what of it is still to copy. After runs in UID order with the
    /// same settings, everything up to the highest UID copied is settled: ask only for newer
    /// messages. Newest-first and item caps leave gaps below it, and changed settings (a
    /// larger size cap...) may take in what was skipped: those list everything.
    async fn todo(&mut self) -> Result<Listing, CopyError> {
        let run = self.run;
        let job = &*run.job;
        let prev_modseq = self.record.as_ref().and_then(|r| r.highest_modseq);
        let settled = match &self.record {
            Some(r)
                if !job.full_scan
                    && self.cursor.in_flight.is_none()
                    && r.highest_uid > 0
                    && !job.options.newest_first
                    && job.options.max_items.is_none() =>
            {
                Some(r.highest_uid)
            }
            _ => None,
        };
        let metas = match (self.sinfo.exists, settled) {
            (0, _) => Vec::new(),
            (_, Some(h)) => self
                .src
                .fetch_meta(&format!("{}:*", h + 1), None)
                .await?
                .into_iter()
                .filter(|m| m.uid > h)
                .collect(),
            (_, None) => self.src.fetch_meta("1:*", None).await?,
        };
        let metas = self.gmail_listing(metas).await?;
        self.refused_before = {
            let key = self.key.clone();
            in_journal(&run.journal, move |s| s.refused(&key))
                .await?
                .into_iter()
                .collect()
        };
        let (copied, refused_before) = (&self.copied, &self.refused_before);
        let mut todo: Vec<MessageMeta> = Vec::new();
        for m in &metas {
            // Refused already in this run (by an attempt before a reconnect): once per run.
            if copied.contains_key(&m.uid)
                || refused_before
                    .get(&m.uid)
                    .is_some_and(|r| r.sync_point == job.sync_point)
            {
                continue;
            }
            if !job.options.size_ok(m) {
                self.report.too_large.push((m.uid, m.size));
                continue;
            }
            if !job.options.in_date_window(m) {
                continue;
            }
            todo.push(m.clone());
        }
        // Messages the destination refused before are tried again whenever their folder is
        // synced (new mail, changed flags or settings, a full scan), once per run: a raised
        // server limit gets them copied, while a no-op run that skips an unchanged folder does
        // not upload a refused 50 MB message again every few minutes.
        let listed: HashSet<u32> = metas.iter().map(|m| m.uid).collect();
        let retry: Vec<u32> = refused_before
            .keys()
            .copied()
            .filter(|u| !listed.contains(u) && !copied.contains_key(u))
            .filter(|u| refused_before[u].sync_point != job.sync_point)
            .collect();
        if !retry.is_empty() {
            let again = self.src.fetch_meta(&uid_set(&retry), None).await?;
            todo.extend(again.into_iter().filter(|m| {
                retry.contains(&m.uid) && job.options.size_ok(m) && job.options.in_date_window(m)
            }));
            todo.sort_by_key(|m| m.uid);
        }
        if job.options.newest_first {
            todo.sort_by_key(|m| std::cmp::Reverse(m.uid));
        }
        Ok(Listing {
            metas,
            todo,
            settled,
            prev_modseq,
        })
    }

    /// After an interruption (an in-flight mark), hashes the destination messages at or above
    /// the mark that the map does not know: the next batches match against them instead of
    /// sending those messages again. Then sets the cursor from the record.
    async fn rematch(&mut self) -> Result<(), CopyError> {
        self.resumed_from = self.cursor.in_flight;
        if let Some(from) = self.cursor.in_flight {
            let dest = &self.folder.dest;
            // The interrupted run's last APPEND may still be finishing on the server (a killed
            // client's command is processed anyway): wait until the folder stops growing.
            let mut last = self.dst.status(dest).await?;
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_millis(150)).await;
                let now = self.dst.status(dest).await?;
                if now.uidnext == last.uidnext {
                    break;
                }
                last = now;
            }
            let known_dest: HashSet<u32> = self.copied.values().map(|m| m.dest_uid).collect();
            let dmetas = if last.exists == 0 {
                Vec::new()
            } else {
                self.dst.fetch_meta(&format!("{from}:*"), None).await?
            };
            let candidates: Vec<u32> = dmetas
                .iter()
                .filter(|m| m.uid >= from && !known_dest.contains(&m.uid))
                .map(|m| m.uid)
                .collect();
            // Hashed once per run: on a link that drops, each attempt fetches only the
            // candidates not hashed yet, in batches the link carries.
            let carry = &mut *self.carry;
            if carry.dest_uidvalidity != Some(self.dinfo.uidvalidity) {
                carry.dest_hashes.clear();
                carry.dest_uidvalidity = Some(self.dinfo.uidvalidity);
            }
            let unhashed: Vec<u32> = candidates
                .iter()
                .copied()
                .filter(|u| !carry.dest_hashes.contains_key(u))
                .collect();
            for chunk in unhashed.chunks(carry.limit.messages) {
                let got = self.dst.fetch_bodies_partial(chunk).await;
                carry.progress += got.bodies.len() as u64;
                for (uid, body) in got.bodies {
                    carry.dest_hashes.insert(uid, content_hash(&body));
                }
                if let Some(e) = got.error {
                    return Err(e.into());
                }
            }
            for uid in &candidates {
                if let Some(hash) = carry.dest_hashes.get(uid) {
                    self.pending.entry(*hash).or_default().push(*uid);
                }
            }
        }
        if let Some(r) = &self.record {
            self.cursor.highest_uid = r.highest_uid;
            self.cursor.messages = r.messages;
            self.cursor.bytes = r.bytes;
        }
        Ok(())
    }

    /// No record of this folder: looks at what the destination already holds before writing,
    /// so a lost state or a destination filled by another tool never ends up duplicated.
    async fn adopt(&mut self, todo: &mut Vec<MessageMeta>) -> Result<(), CopyError> {
        if self.record.is_none() && self.resumed_from.is_none() && self.dinfo.exists > 0 {
            let _adopting = self.job().adopt_locks.lock(&self.folder.dest).await;
            // Matching a large folder takes a while (headers from both sides, some bodies):
            // say what is going on before it starts.
            self.note(&format!(
                "{}: the destination folder already holds {} the state has no record of; \
                 matching them against the source before copying",
                self.folder.path,
                plural(self.dinfo.exists as usize, "message")
            ));
            let entries = self.adopt_existing(todo).await?;
            if !entries.is_empty() {
                let adopted: HashSet<u32> = entries.iter().map(|(u, _)| *u).collect();
                todo.retain(|m| !adopted.contains(&m.uid));
                self.report.adopted += entries.len() as u64;
                self.take_room(self.report.adopted);
                self.cursor.messages += entries.len() as u64;
                self.cursor.bytes += entries.iter().map(|(_, m)| m.size).sum::<u64>();
                // Highest UID stays: adopted messages leave gaps, and only a finished run may
                // declare everything below a UID settled.
                let mut entries = entries;
                let late = self.gmail.stamp(self.dst, &mut entries).await;
                let rec = self.record(None, false);
                self.copied.extend(entries.iter().copied());
                let key = self.key.clone();
                let n = entries.len();
                in_journal(&self.run.journal, move |s| {
                    s.record_batch(&key, &rec, &entries)
                })
                .await?;
                self.note(&format!(
                    "{}: {} already on the destination, adopted (not copied again)",
                    self.folder.path,
                    plural(n, "message")
                ));
                if let Some(e) = late {
                    return Err(e);
                }
            }
        }
        self.run
            .progress
            .folder_started(&self.job().account, &self.folder.path, todo.len() as u64);
        Ok(())
    }

    /// Matches what the destination folder (open on `dst`) holds against the source messages
    /// still to copy (folder open on `src`), see [`crate::adopt`]. Returns the
    /// map entries of the adopted messages: sync point 0 (copied by no run of ours), and a
    /// zero hash where the fingerprint alone settled it (their bodies were not fetched).
    async fn adopt_existing(
        &mut self,
        todo: &[MessageMeta],
    ) -> Result<Vec<(u32, MessageRecord)>, CopyError> {
        let folder = self.folder;
        // Destination messages the maps of other source folders going to this folder already
        // own.
        let claimed: HashSet<u32> = {
            let (key, dest) = (folder.path.clone(), folder.dest.clone());
            in_journal(&self.run.journal, move |s| {
                let mut out = HashSet::new();
                for (path, rec) in s.folders()? {
                    if rec.dest_folder == dest && path != key {
                        out.extend(s.messages(&path)?.into_iter().map(|(_, m)| m.dest_uid));
                    }
                }
                Ok(out)
            })
            .await?
        };
        let dest: Vec<_> = self
            .dst
            .fetch_fingerprints("1:*")
            .await?
            .into_iter()
            .filter(|(u, _)| !claimed.contains(u))
            .collect();
        if dest.is_empty() {
            return Ok(Vec::new());
        }
        if self.job().options.expect_empty {
            return Err(CopyError::new(
                ErrorKind::Config,
                format!(
                    "destination folder {:?} already holds {}, but the plan says the destination is \
             empty (`adopt_existing: false`): remove them, or set `adopt_existing: true` to match \
             them against the source and copy only the rest",
                    folder.dest_path,
                    plural(dest.len(), "message")
                ),
            ));
        }
        if todo.is_empty() {
            return Ok(Vec::new());
        }
        let mut source = Vec::with_capacity(todo.len());
        let mut uids: Vec<u32> = todo.iter().map(|m| m.uid).collect();
        uids.sort_unstable();
        for chunk in uids.chunks(FINGERPRINT_CHUNK) {
            source.extend(self.src.fetch_fingerprints(&uid_set(chunk)).await?);
        }
        let matching = match_fingerprints(&source, &dest);
        let size_of = |fps: &[(u32, Fingerprint)]| -> HashMap<u32, u64> {
            fps.iter().map(|(u, f)| (*u, u64::from(f.size))).collect()
        };
        let (src_size, dest_size) = (size_of(&source), size_of(&dest));
        let record = |s: u32, d: u32, hash: [u8; 32]| {
            let rec = MessageRecord {
                dest_uid: d,
                hash,
                size: src_size.get(&s).copied().unwrap_or(0),
                sync_point: 0,
                ..Default::default()
            };
            (s, rec)
        };
        let mut entries: Vec<(u32, MessageRecord)> = matching
            .sure
            .iter()
            .map(|&(s, d)| record(s, d, [0; 32]))
            .collect();
        // Every ambiguous message hashed in one batched pass per side (not a FETCH per group:
        // messages without a Message-ID each make a group of their own).
        let with_sizes = |uids: &mut dyn Iterator<Item = u32>, sizes: &HashMap<u32, u64>| {
            uids.map(|u| (u, sizes.get(&u).copied().unwrap_or(0)))
                .collect::<Vec<_>>()
        };
        let src_hashes: HashMap<u32, [u8; 32]> = hash_messages(
            self.src,
            &with_sizes(
                &mut matching
                    .ambiguous
                    .iter()
                    .flat_map(|(s, _)| s.iter().copied()),
                &src_size,
            ),
        )
        .await?
        .into_iter()
        .collect();
        let dest_hashes: HashMap<u32, [u8; 32]> = hash_messages(
            self.dst,
            &with_sizes(
                &mut matching
                    .ambiguous
                    .iter()
                    .flat_map(|(_, d)| d.iter().copied()),
                &dest_size,
            ),
        )
        .await?
        .into_iter()
        .collect();
        let hashed = |uids: &[u32], hashes: &HashMap<u32, [u8; 32]>| -> Vec<(u32, [u8; 32])> {
            uids.iter()
                .filter_map(|u| hashes.get(u).map(|h| (*u, *h)))
                .collect()
        };
        for (src_uids, dest_uids) in &matching.ambiguous {
            let pairs = match_hashes(
                &hashed(src_uids, &src_hashes),
                &hashed(dest_uids, &dest_hashes),
            );
            entries.extend(pairs.into_iter().map(|(s, d, hash)| record(s, d, hash)));
        }
        entries.sort_by_key(|(u, _)| *u);
        Ok(entries)
    }

    /// Moves the messages a folder's map points to from the destination folder they were
    /// copied to (`r.dest_folder`) into the one the plan now maps the folder to, and points
    /// the map there. `None` when the old folder is gone or was recreated (its UIDs mean
    /// nothing now): then the messages are matched by content in the new folder, as after any
    /// reset.
    async fn relocate(&mut self, r: &FolderRecord) -> Result<Option<u64>, CopyError> {
        let (job, folder, dst) = (&*self.run.job, self.folder, &mut *self.dst);
        let old = match dst.status(&r.dest_folder).await {
            Ok(s) => s,
            Err(e) if !e.transient => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if old.uidvalidity != r.dest_uidvalidity {
            return Ok(None);
        }
        let key = folder.path.clone();
        let map: Vec<(u32, MessageRecord)> = {
            let key = key.clone();
            in_journal(&self.run.journal, move |s| s.messages(&key)).await?
        };
        let unknown = map.iter().filter(|(_, m)| m.dest_uid == 0).count();
        // Copied to a server that did not say the new UIDs, or one that cannot move by UID:
        // the copies cannot be told from the user's own messages there, so nothing is moved
        // or copied.
        let why = if unknown > 0 {
            Some(format!(
                "{} in {:?} on the destination have unknown UIDs (the server did not report them \
                 when they were copied)",
                plural(unknown, "copied message"),
                r.dest_folder
            ))
        } else if !map.is_empty() && !dst.caps.moves && !dst.caps.uidplus {
            Some("the destination server offers neither MOVE nor UIDPLUS".to_string())
        } else {
            None
        };
        if let Some(why) = why {
            return Err(CopyError::new(
                ErrorKind::Config,
                format!(
                    "the plan now maps {:?} to {:?}, but {why}, so mailshift cannot move what it copied: \
             move those messages there by hand, then run `mailshift state forget {}`; the next \
             apply adopts what it finds on the destination and copies only the rest",
                    folder.path, folder.dest_path, job.resource_id
                ),
            ));
        }
        let uids: Vec<u32> = map.iter().map(|(_, m)| m.dest_uid).collect();
        let mut moved: HashMap<u32, u32> = HashMap::new();
        if !uids.is_empty() {
            dst.open(&r.dest_folder, true).await?;
            // One command: Dovecot and most servers move a UID set atomically, so a kill
            // leaves either all or none moved (a kill after the move but before the record
            // below leaves the map pointing at the old folder: the next run's move finds
            // nothing there and the messages keep their place in the new one, with their
            // destination UIDs unknown).
            moved.extend(dst.move_uids(&uids, &folder.dest).await?);
        }
        let new = dst.status(&folder.dest).await?;
        let entries: Vec<(u32, MessageRecord)> = map
            .into_iter()
            .map(|(s, m)| {
                let dest_uid = moved.get(&m.dest_uid).copied().unwrap_or(0);
                (s, MessageRecord { dest_uid, ..m })
            })
            .collect();
        let rec = FolderRecord {
            dest_folder: folder.dest.clone(),
            dest_uidvalidity: new.uidvalidity,
            // Not a completed sync of the new folder yet: never skipped as unchanged.
            source_uidnext: 0,
            updated_at: now(),
            ..r.clone()
        };
        in_journal(&self.run.journal, move |s| {
            s.record_batch(&key, &rec, &entries)
        })
        .await?;
        let count = if dst.caps.uidplus {
            moved.len()
        } else {
            uids.len()
        } as u64;
        self.note(&format!(
            "{}: the plan now maps it to {:?}: moved {} there on the destination instead of copying again",
            folder.path,
            folder.dest_path,
            plural(count as usize, "message")
        ));
        Ok(Some(count))
    }

    /// Batches by count and bytes, sized to what the link carries (`carry.limit`); a message
    /// too large for memory goes alone, through a spool file.
    async fn copy(&mut self, todo: &[MessageMeta]) -> Result<Copied, CopyError> {
        // UIDs name other messages after a source UIDVALIDITY change: nothing kept applies.
        if self.carry.source_uidvalidity != Some(self.sinfo.uidvalidity) {
            self.carry.bodies.clear();
            self.carry.spool = None;
            self.carry.source_uidvalidity = Some(self.sinfo.uidvalidity);
        }
        let wanted: HashSet<u32> = todo.iter().map(|m| m.uid).collect();
        self.carry.bodies.retain(|u, _| wanted.contains(u));
        let mut pos = 0;
        let mut capped = false;
        while pos < todo.len() {
            if self.run.halted() {
                return Ok(Copied::Stopped);
            }
            let room = self.run.remaining.load(Ordering::Relaxed);
            let whole = next_batch(&todo[pos..], self.carry.limit);
            let mut batch: Vec<&MessageMeta> = whole
                .iter()
                .take(room.min(whole.len() as u64) as usize)
                .copied()
                .collect();
            if batch.len() < whole.len() {
                capped = true;
            }
            if batch.is_empty() {
                break;
            }
            if self.run.meter.is_limited() {
                let fits = self.spend(&batch).await?;
                if fits < batch.len() {
                    if fits == 0 {
                        self.run.pause(Paused::Budget {
                            needed: u64::from(batch[0].size),
                        });
                        return Ok(Copied::Stopped);
                    }
                    // This batch goes; the pause comes at the next turn.
                    batch.truncate(fits);
                }
            }
            pos += batch.len();
            if is_large_batch(&batch) {
                self.copy_large(batch[0]).await?;
                continue;
            }
            // Under a daily limit nothing is fetched ahead: the next batch's bytes are not
            // counted yet (and the limit, not the pace, decides how long the copy takes).
            let ahead = !capped && !self.run.meter.is_limited();
            self.copy_batch(&batch, &todo[pos..], !ahead).await?;
            if capped {
                break;
            }
        }
        Ok(if capped { Copied::Capped } else { Copied::All })
    }

    /// Takes what the daily limits let go of `batch`, from its front, and counts it in the
    /// journal before it moves. Returns how many messages fit.
    async fn spend(&mut self, batch: &[&MessageMeta]) -> Result<usize, CopyError> {
        let (mut fits, mut down, mut up) = (0, 0u64, 0u64);
        for m in batch {
            let size = u64::from(m.size);
            // Bodies kept from a cut connection (or a spool) were counted when fetched.
            let fetch = !self.carry.bodies.contains_key(&m.uid)
                && self.carry.spool.as_ref().is_none_or(|s| s.uid != m.uid);
            if !self.run.meter.take(size, fetch) {
                break;
            }
            fits += 1;
            up += size;
            if fetch {
                down += size;
            }
        }
        if fits > 0 {
            in_journal(&self.run.journal, move |s| s.transferred(down, up)).await?;
        }
        Ok(fits)
    }

    /// One batch: bodies fetched (those kept from a cut connection are not fetched again),
    /// matched against what an interrupted run may have left, the rest sent, all of it
    /// recorded. The next batch's bodies are fetched from the source while this one is
    /// appended to the destination: the two servers work at the same time. Bodies wait in
    /// `carry.bodies` until recorded, so a cut on either side loses none of those that
    /// arrived.
    /// `no_fetch_ahead`: this is the last batch (capped), or the next one's bytes are not
    /// counted yet (a daily limit).
    async fn copy_batch(
        &mut self,
        batch: &[&MessageMeta],
        rest: &[MessageMeta],
        no_fetch_ahead: bool,
    ) -> Result<(), CopyError> {
        let need: Vec<u32> = batch
            .iter()
            .map(|m| m.uid)
            .filter(|u| !self.carry.bodies.contains_key(u))
            .collect();
        if !need.is_empty() {
            let got = self.src.fetch_bodies_partial(&need).await;
            self.carry.progress += got.bodies.len() as u64;
            self.carry.bodies.extend(got.bodies);
            if let Some(e) = got.error {
                return Err(e.into());
            }
        }
        // A large next batch is not fetched ahead: it goes through the spool file instead.
        let next_uids: Option<Vec<u32>> = if no_fetch_ahead {
            None
        } else {
            let next = next_batch(rest, self.carry.limit);
            if next.is_empty() || is_large_batch(&next) {
                None
            } else {
                Some(
                    next.iter()
                        .map(|m| m.uid)
                        .filter(|u| !self.carry.bodies.contains_key(u))
                        .collect(),
                )
            }
        };
        // Disjoint borrows: the source fetches ahead while the rest records and sends.
        let FolderSync {
            run,
            src,
            dst,
            folder,
            carry,
            report,
            key,
            sinfo,
            dinfo,
            refused_before,
            pending,
            resumed_from,
            cursor,
            gmail,
            ..
        } = self;
        let (run, folder, resumed_from) = (*run, *folder, *resumed_from);
        let job = &*run.job;
        let bodies = &carry.bodies;
        let fetch_next = async {
            match &next_uids {
                Some(u) if !u.is_empty() => Some(src.fetch_bodies_partial(u).await),
                _ => None,
            }
        };
        let mut missing: Vec<u32> = Vec::new();
        // Messages recorded (copied, rematched or refused) by this batch, even if it fails
        // halfway: the attempt made progress.
        let mut kept: u64 = 0;
        let process = async {
            let mut entries: Vec<(u32, MessageRecord)> = Vec::new();
            let mut to_send: Vec<Ready<'_>> = Vec::new();
            // Counted once recorded: an attempt cut before that matches them again.
            let mut rematched = 0u64;
            for m in batch {
                // No body: expunged since we listed it, or a bad answer; checked below.
                let Some(body) = bodies.get(&m.uid) else {
                    missing.push(m.uid);
                    continue;
                };
                let hash = content_hash(body);
                if let Some(uids) = pending.get_mut(&hash)
                    && let Some(dest_uid) = uids.pop()
                {
                    entries.push((
                        m.uid,
                        MessageRecord {
                            dest_uid,
                            hash,
                            size: body.len() as u64,
                            sync_point: job.sync_point,
                            ..Default::default()
                        },
                    ));
                    rematched += 1;
                    continue;
                }
                to_send.push((m, body, hash, dest_flags(&m.flags, dinfo)));
            }
            pending.retain(|_, v| !v.is_empty());

            let mut in_flight = cursor.in_flight;
            let mut refused: Vec<(u32, RefusedRecord)> = Vec::new();
            let mut failure: Option<CopyError> = None;
            if !to_send.is_empty() {
                // The in-flight mark is durable before the APPEND (see the journal's order).
                let uidnext = dst.status(&folder.dest).await?.uidnext;
                in_flight = Some(cursor.in_flight.map_or(uidnext, |r| r.min(uidnext)));
                let rec = folder_record(folder, sinfo, dinfo, cursor, in_flight, false);
                let key2 = key.clone();
                in_journal(&run.journal, move |s| s.put_folder(&key2, &rec)).await?;
                let (stored, refusals, error) = send(dst, &folder.dest, &to_send, uidnext).await;
                failure = error;
                let (mut sent, mut sent_bytes) = (0u64, 0u64);
                for (k, dest_uid) in stored {
                    let (m, body, hash, _) = &to_send[k];
                    entries.push((
                        m.uid,
                        MessageRecord {
                            dest_uid,
                            hash: *hash,
                            size: body.len() as u64,
                            sync_point: job.sync_point,
                            ..Default::default()
                        },
                    ));
                    report.copied += 1;
                    report.bytes += body.len() as u64;
                    sent += 1;
                    sent_bytes += body.len() as u64;
                }
                if sent > 0 {
                    run.progress.copied(&job.account, sent, sent_bytes);
                }
                for (k, why) in refusals {
                    let (m, body, _, _) = &to_send[k];
                    let r = refusal(
                        refused_before,
                        m.uid,
                        why,
                        body.len() as u64,
                        job.sync_point,
                    );
                    report.refused.push((m.uid, r.size, r.reason.clone()));
                    refused.push((m.uid, r));
                }
            }
            let remaining = &run.remaining;
            remaining.fetch_sub(
                (entries.len() as u64).min(remaining.load(Ordering::Relaxed)),
                Ordering::Relaxed,
            );
            cursor.highest_uid = cursor
                .highest_uid
                .max(entries.iter().map(|(u, _)| *u).max().unwrap_or(0))
                .max(refused.iter().map(|(u, _)| *u).max().unwrap_or(0));
            cursor.messages += entries.len() as u64;
            cursor.bytes += entries.iter().map(|(_, m)| m.size).sum::<u64>();
            // After an interruption the mark stays until this folder is finished and checked
            // for late copies (`remove_strays`): a killed client's APPEND can land at any
            // time, and a mark cleared early would hide it from the next run. So does a
            // command cut before its answer: it may have landed.
            let keep = if failure.is_none() && pending.is_empty() && resumed_from.is_none() {
                None
            } else {
                in_flight
            };
            cursor.in_flight = keep;
            let rec = folder_record(folder, sinfo, dinfo, cursor, keep, false);
            kept = (entries.len() + refused.len()) as u64;
            let late = gmail.stamp(dst, &mut entries).await;
            record_kept(run, key, rec, entries, refused, refused_before).await?;
            report.rematched += rematched;
            let failure = failure.or(late);
            match failure {
                Some(e) => Err(e),
                None => Ok(()),
            }
        };
        let (fetched, processed) = tokio::join!(fetch_next, process);
        carry.progress += kept;
        let mut fetch_error = None;
        if let Some(f) = fetched {
            carry.progress += f.bodies.len() as u64;
            carry.bodies.extend(f.bodies);
            fetch_error = f.error;
        }
        processed?;
        for m in batch {
            carry.bodies.remove(&m.uid);
        }
        carry.limit.grow();
        // A message the source did not send is skipped only if it is really gone: otherwise
        // the folder would be recorded complete without it.
        if !missing.is_empty() {
            let still: Vec<u32> = src
                .fetch_meta(&uid_set(&missing), None)
                .await?
                .into_iter()
                .map(|m| m.uid)
                .filter(|u| missing.contains(u))
                .collect();
            if !still.is_empty() {
                return Err(CopyError {
                    message: format!(
                        "the source sent no content for UIDs {still:?}, which still exist"
                    ),
                    transient: true,
                    throttled: false,
                    kind: ErrorKind::Network,
                });
            }
        }
        if let Some(e) = fetch_error {
            return Err(e.into());
        }
        Ok(())
    }

    /// Copies one large message through a spool file, which `carry` keeps across
    /// reconnects: a cut fetch resumes at the slice where it stopped, a cut APPEND is sent
    /// again from the file. Then records it, as a batch of one.
    async fn copy_large(&mut self, m: &MessageMeta) -> Result<(), CopyError> {
        let outcome = self.send_large(m).await?;
        let job = &*self.run.job;
        let mark = self.cursor.in_flight;
        let entries = match outcome {
            Large::Gone => return Ok(()),
            Large::Copied(entry, sent) => {
                if sent {
                    self.report.copied += 1;
                    self.report.bytes += entry.1.size;
                    self.run.progress.copied(&job.account, 1, entry.1.size);
                } else {
                    self.report.rematched += 1;
                }
                self.take_room(1);
                self.cursor.messages += 1;
                self.cursor.bytes += entry.1.size;
                vec![entry]
            }
            Large::Refused(why, size) => {
                let r = refusal(&self.refused_before, m.uid, why, size, job.sync_point);
                self.report.refused.push((m.uid, size, r.reason.clone()));
                let key = self.key.clone();
                let list = vec![(m.uid, r)];
                in_journal(&self.run.journal, move |s| s.put_refused(&key, &list)).await?;
                Vec::new()
            }
        };
        self.cursor.highest_uid = self.cursor.highest_uid.max(m.uid);
        self.pending.retain(|_, v| !v.is_empty());
        let keep = if self.pending.is_empty() && self.resumed_from.is_none() {
            None
        } else {
            mark
        };
        self.cursor.in_flight = keep;
        let rec = self.record(keep, false);
        let mut entries = entries;
        let late = self.gmail.stamp(self.dst, &mut entries).await;
        record_kept(
            self.run,
            &self.key,
            rec,
            entries,
            Vec::new(),
            &self.refused_before,
        )
        .await?;
        if let Some(e) = late {
            return Err(e);
        }
        self.carry.progress += 1;
        self.carry.limit.grow();
        Ok(())
    }

    /// The spooling and sending of [`FolderSync::copy_large`]; the in-flight mark it used is
    /// left in the cursor.
    async fn send_large(&mut self, m: &MessageMeta) -> Result<Large, CopyError> {
        use tokio::io::AsyncWriteExt;
        let job = &*self.run.job;
        let carry = &mut *self.carry;
        let mut spool = match carry.spool.take() {
            Some(s) if s.uid == m.uid => s,
            _ => Spool::create(&job.spool_dir, m.uid)?,
        };
        let io = |path: &std::path::Path, e: std::io::Error| {
            CopyError::fatal(format!("spool file {}: {e}", path.display()))
        };
        let hash = match spool.hash {
            Some(h) => h,
            None => {
                let mut file = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&spool.path)
                    .await
                    .map_err(|e| io(&spool.path, e))?;
                // A file longer than what was recorded (a write cut by an error) is cut back.
                file.set_len(spool.len)
                    .await
                    .map_err(|e| io(&spool.path, e))?;
                let slice = carry.limit.slice();
                loop {
                    let part = match self.src.fetch_part(m.uid, spool.len, slice).await {
                        Ok(Some(part)) => part,
                        Ok(None) => return Ok(Large::Gone),
                        Err(e) => {
                            carry.spool = Some(spool);
                            return Err(e.into());
                        }
                    };
                    file.write_all(&part)
                        .await
                        .map_err(|e| io(&spool.path, e))?;
                    file.flush().await.map_err(|e| io(&spool.path, e))?;
                    spool.hasher.update(&part);
                    spool.len += part.len() as u64;
                    carry.progress += 1;
                    if (part.len() as u64) < slice {
                        break;
                    }
                }
                let h = std::mem::take(&mut spool.hasher).finish();
                spool.hash = Some(h);
                h
            }
        };
        let len = spool.len;
        if let Some(uids) = self.pending.get_mut(&hash)
            && let Some(dest_uid) = uids.pop()
        {
            let rec = MessageRecord {
                dest_uid,
                hash,
                size: len,
                sync_point: job.sync_point,
                ..Default::default()
            };
            return Ok(Large::Copied((m.uid, rec), false));
        }
        let (folder, dinfo) = (self.folder, &self.dinfo);
        let resume_from = self.cursor.in_flight;
        let mut in_flight = resume_from;
        let sent = async {
            // The in-flight mark is durable before the APPEND (see the journal's order).
            let uidnext = self.dst.status(&folder.dest).await?.uidnext;
            in_flight = Some(resume_from.map_or(uidnext, |r| r.min(uidnext)));
            let rec = folder_record(folder, &self.sinfo, dinfo, &self.cursor, in_flight, false);
            let key = self.key.clone();
            in_journal(&self.run.journal, move |s| s.put_folder(&key, &rec)).await?;
            let flags = dest_flags(&m.flags, dinfo);
            let out = Outgoing {
                flags: &flags,
                internal_date: m.internal_date.as_deref(),
                body: Body::File {
                    path: &spool.path,
                    len,
                },
            };
            let answer = self
                .dst
                .append(&folder.dest, std::slice::from_ref(&out))
                .await?;
            Ok::<_, CopyError>(answer)
        };
        let sent = sent.await;
        match sent {
            Ok(Appended::Stored(uids)) => {
                self.cursor.in_flight = in_flight;
                let rec = MessageRecord {
                    dest_uid: uids.and_then(|u| u.first().copied()).unwrap_or(0),
                    hash,
                    size: len,
                    sync_point: job.sync_point,
                    ..Default::default()
                };
                Ok(Large::Copied((m.uid, rec), true))
            }
            Ok(Appended::Refused(why)) => {
                self.cursor.in_flight = in_flight;
                Ok(Large::Refused(why, len))
            }
            Err(e) => {
                // Sent again from the file after the reconnect, not fetched again.
                self.carry.spool = Some(spool);
                Err(e)
            }
        }
    }

    /// After an interruption, an APPEND of the interrupted run may have landed after we
    /// looked: a destination message at or above the mark, not in the map, with the content
    /// of one that is, is a duplicate of our own making. Only with UIDPLUS, where the map
    /// knows every destination UID (otherwise our own copies would look like strays).
    async fn remove_strays(&mut self, capped: bool) -> Result<(), CopyError> {
        let Some(from) = self.resumed_from else {
            return Ok(());
        };
        if capped || !self.dst.caps.uidplus {
            return Ok(());
        }
        let map: Vec<(u32, MessageRecord)> = {
            let key = self.key.clone();
            in_journal(&self.run.journal, move |s| s.messages(&key)).await?
        };
        self.report.duplicates_removed = if map.iter().any(|(_, r)| r.dest_uid == 0) {
            0
        } else {
            let known: HashSet<u32> = map.iter().map(|(_, r)| r.dest_uid).collect();
            let ours: HashSet<[u8; 32]> = map.iter().map(|(_, r)| r.hash).collect();
            let strays: Vec<u32> = self
                .dst
                .fetch_meta(&format!("{from}:*"), None)
                .await?
                .into_iter()
                .filter(|m| m.uid >= from && !known.contains(&m.uid))
                .map(|m| m.uid)
                .collect();
            let mut duplicates = Vec::new();
            for chunk in strays.chunks(BATCH_MESSAGES) {
                for (uid, body) in self.dst.fetch_bodies(chunk).await? {
                    if ours.contains(&content_hash(&body)) {
                        duplicates.push(uid);
                    }
                }
            }
            if !duplicates.is_empty() {
                self.dst.expunge_uids(&duplicates).await?;
            }
            duplicates.len() as u64
        };
        if self.report.duplicates_removed > 0 {
            self.note(&format!(
                "{}: removed {} duplicate(s) left by an interrupted run",
                self.folder.path, self.report.duplicates_removed
            ));
        }
        Ok(())
    }

    /// Carries flag changes onto messages copied earlier (needs their destination UIDs). With
    /// CONDSTORE only the messages changed since the last complete run are looked at.
    async fn sync_flags(&mut self, listing: &Listing, capped: bool) -> Result<(), CopyError> {
        if capped || self.copied.is_empty() || self.dinfo.exists == 0 {
            return Ok(());
        }
        let candidates: Vec<MessageMeta> = match listing.prev_modseq {
            Some(m) if self.src.caps.condstore => self.src.fetch_meta("1:*", Some(m)).await?,
            _ if listing.settled.is_none() => listing.metas.clone(),
            _ => self.src.fetch_meta("1:*", None).await?,
        };
        let pairs: Vec<(&MessageMeta, u32)> = candidates
            .iter()
            .filter_map(|m| {
                self.copied
                    .get(&m.uid)
                    .filter(|r| r.dest_uid != 0)
                    .map(|r| (m, r.dest_uid))
            })
            .collect();
        if pairs.is_empty() {
            return Ok(());
        }
        let dest_uids: Vec<u32> = pairs.iter().map(|(_, d)| *d).collect();
        let dest_meta: HashMap<u32, Vec<String>> = self
            .dst
            .fetch_meta(&uid_set(&dest_uids), None)
            .await?
            .into_iter()
            .map(|m| (m.uid, m.flags))
            .collect();
        for (m, dest_uid) in pairs {
            let want = dest_flags(&m.flags, &self.dinfo);
            if let Some(have) = dest_meta.get(&dest_uid)
                && dest_flags(have, &self.dinfo) != want
            {
                self.dst.store_flags(dest_uid, &want).await?;
                self.report.flags_updated += 1;
            }
        }
        Ok(())
    }

    /// Done with this folder: the mark is cleared, and the STATUS snapshot lets the next no-op
    /// run skip it.
    async fn finish(&mut self, capped: bool) -> Result<(), CopyError> {
        let complete = !capped && !self.run.halted();
        let rec = self.record(None, complete);
        let key = self.key.clone();
        in_journal(&self.run.journal, move |s| s.put_folder(&key, &rec)).await
    }
}
