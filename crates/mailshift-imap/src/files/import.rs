//! The import of one account's tree into an IMAP mailbox, folder by folder, on one
//! destination connection, with the journal protocol of the IMAP copy ([`crate::journal`]):
//! the destination's UIDNEXT is recorded as the folder's in-flight mark before each APPEND,
//! the batch's map entries after it; a run that finds a mark hashes what landed from it and
//! matches the messages it is about to send against those hashes first, then, once the
//! folder is done, removes copies of its own that landed late. The batches go through the
//! IMAP copy's own `send` (MULTIAPPEND, a refused batch retried one message at a time).
//!
//! What is special to files is the identity (see the [`super`] documentation): positions as
//! UIDs, checked against the recorded content hashes, and re-paired by content when a file
//! was rewritten. Records whose message is no longer in the files are kept as *orphans*, at
//! UIDs from [`ORPHAN_BASE`] up: the destination still holds what they copied, so a message
//! that comes back (a file restored, an unreadable file readable again) is paired with its
//! orphan instead of being sent a second time.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{Scanned, SourceFolder, Tree};
use crate::copy::{
    BATCH_BYTES, BATCH_MESSAGES, CopyError, CopyOptions, CopyReport, FailedFolder, FolderReport,
    Progress, Ready, StopFlag, commit_batch, connect_fresh, connect_with_retry, dest_flags,
    hash_messages, in_journal, now, refusal, send,
};
use crate::error::ErrorKind;
use crate::folders::{FolderPlan, FolderRules, RemoteFolder, map_folders};
use crate::journal::{FolderRecord, Journal, MessageRecord, RefusedRecord};
use crate::plural;
use crate::session::{FolderInfo, Imap, MessageMeta, Target, uid_set};

/// Map entries at and above this UID are orphans (see the module documentation); positions
/// never reach it.
pub const ORPHAN_BASE: u32 = 0x8000_0000;
/// Attempts at a folder whose connection keeps dropping, before it is given up for the run.
const ATTEMPTS: u32 = 5;
/// Problems named in a folder's failure; the rest are counted.
const SHOWN_PROBLEMS: usize = 10;

/// One account's import.
pub struct FilesJob {
    /// How the caller names this copy (see [`crate::copy::Job::resource_id`]).
    pub resource_id: String,
    pub account: String,
    /// The account's directory.
    pub root: PathBuf,
    pub dest: Target,
    pub rules: FolderRules,
    pub options: CopyOptions,
    pub sync_point: u64,
    pub login_grace: Duration,
}

struct Ctx {
    job: Arc<FilesJob>,
    journal: Arc<dyn Journal>,
    progress: Arc<dyn Progress>,
    stop: StopFlag,
    tree: Arc<Tree>,
}

/// The folder "UIDVALIDITY": from its path only (its records are checked by content).
fn folder_validity(path: &str) -> u32 {
    let h = Sha256::digest(path.as_bytes());
    u32::from_be_bytes([h[0], h[1], h[2], h[3]]).max(1)
}

fn config(e: impl Into<String>) -> CopyError {
    CopyError::new(ErrorKind::Config, e)
}

/// Imports (or brings up to date) one account's tree. A folder that fails is reported in
/// [`CopyReport::failed`] and the others go on; an error means nothing could be done (the
/// directory or the destination cannot be reached, the folder mapping cannot hold).
pub async fn import_account(
    job: Arc<FilesJob>,
    journal: Arc<dyn Journal>,
    progress: Arc<dyn Progress>,
    stop: StopFlag,
) -> Result<CopyReport, CopyError> {
    let root = job.root.clone();
    let tree = tokio::task::spawn_blocking(move || Tree::scan(&root))
        .await
        .map_err(|e| CopyError::fatal(format!("scan task failed: {e}")))?
        .map_err(config)?;
    let tree = Arc::new(tree);
    let mut dst = Some(connect_fresh(&job.dest, job.login_grace, &stop).await?);
    let dest_folders = dst.as_mut().expect("connected").list().await?;
    let source: Vec<RemoteFolder> = tree.remote_folders();
    let mapping =
        map_folders(&source, &dest_folders, &job.rules).map_err(|e| config(e.to_string()))?;
    for name in &mapping.create {
        dst.as_mut().expect("connected").create(name).await?;
    }
    let mut report = CopyReport {
        notes: mapping.notes.clone(),
        ..CopyReport::default()
    };
    report.notes.extend(tree.problems.iter().cloned());
    for n in &report.notes {
        progress.note(&job.account, n);
    }
    let by_raw: HashMap<&str, &SourceFolder> = source
        .iter()
        .zip(&tree.folders)
        .map(|(r, f)| (r.name.as_str(), f))
        .collect();
    let mut remaining = match job.options.max_items {
        Some(cap) => {
            let done: u64 = in_journal(&journal, |s| {
                Ok(s.folders()?.values().map(|f| f.messages).sum())
            })
            .await?;
            cap.saturating_sub(done)
        }
        None => u64::MAX,
    };
    let ctx = Ctx {
        job: job.clone(),
        journal,
        progress: progress.clone(),
        stop: stop.clone(),
        tree: tree.clone(),
    };
    for plan in &mapping.copy {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let Some(folder) = by_raw.get(plan.source.as_str()).copied() else {
            continue;
        };
        let mut fr = FolderReport {
            path: plan.path.clone(),
            dest: plan.dest_path.clone(),
            ..FolderReport::default()
        };
        let scanned = {
            let (tree, folder) = (tree.clone(), folder.clone());
            tokio::task::spawn_blocking(move || tree.read_folder(&folder))
                .await
                .map_err(|e| CopyError::fatal(format!("read task failed: {e}")))?
        };
        let outcome = match scanned {
            Err(e) => Err(config(e)),
            Ok(msgs) => {
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    let conn = match dst.take() {
                        Some(c) => c,
                        None => connect_with_retry(&job.dest, &stop).await?,
                    };
                    let mut conn = conn;
                    let r = import_folder(
                        &ctx,
                        &mut conn,
                        plan,
                        folder,
                        &msgs,
                        &mut fr,
                        &mut remaining,
                    )
                    .await;
                    match r {
                        Ok(()) => {
                            dst = Some(conn);
                            break Ok(problems_of(&msgs));
                        }
                        Err(e)
                            if e.transient
                                && attempt < ATTEMPTS
                                && !stop.load(Ordering::Relaxed) =>
                        {
                            progress.note(
                                &job.account,
                                &format!("{}: {} (reconnecting)", plan.path, e.message),
                            );
                            tokio::time::sleep(Duration::from_millis(500) * attempt).await;
                        }
                        Err(_) if stop.load(Ordering::Relaxed) => break Ok(Vec::new()),
                        Err(e) => {
                            // A local failure (a file) leaves the connection usable.
                            if !e.transient {
                                dst = Some(conn);
                            }
                            break Err(e);
                        }
                    }
                }
            }
        };
        report.folders.push(fr);
        let failure = match outcome {
            Ok(problems) if problems.is_empty() => None,
            Ok(problems) => Some((summarize(&problems), ErrorKind::Config)),
            Err(e) => Some((e.message, e.kind)),
        };
        if let Some((reason, kind)) = failure {
            progress.note(&job.account, &format!("{}: {reason}", plan.path));
            report.failed.push(FailedFolder {
                path: plan.path.clone(),
                reason,
                kind,
            });
        }
    }
    if let Some(d) = dst {
        d.logout().await;
    }
    report.folders.sort_by(|a, b| a.path.cmp(&b.path));
    report.failed.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(report)
}

fn problems_of(msgs: &[Scanned]) -> Vec<String> {
    msgs.iter().filter_map(|m| m.problem.clone()).collect()
}

fn summarize(problems: &[String]) -> String {
    let mut out = problems
        .iter()
        .take(SHOWN_PROBLEMS)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if problems.len() > SHOWN_PROBLEMS {
        out.push_str(&format!("; and {} more", problems.len() - SHOWN_PROBLEMS));
    }
    format!(
        "{} not imported (the rest of the folder was): {out}",
        plural(problems.len(), "message")
    )
}

/// The map's counts, for the folder record.
struct Cursor {
    highest_uid: u32,
    messages: u64,
    bytes: u64,
}

fn cursor(copied: &HashMap<u32, MessageRecord>) -> Cursor {
    Cursor {
        highest_uid: copied
            .keys()
            .copied()
            .filter(|u| *u < ORPHAN_BASE)
            .max()
            .unwrap_or(0),
        messages: copied.len() as u64,
        bytes: copied.values().map(|r| r.size).sum(),
    }
}

/// One folder: rewritten files re-paired, what may have landed matched, the rest sent.
#[allow(clippy::too_many_arguments)]
async fn import_folder(
    ctx: &Ctx,
    dst: &mut Imap,
    plan: &FolderPlan,
    folder: &SourceFolder,
    msgs: &[Scanned],
    report: &mut FolderReport,
    remaining: &mut u64,
) -> Result<(), CopyError> {
    let (job, journal) = (&*ctx.job, &ctx.journal);
    let key = plan.path.clone();
    let validity = folder_validity(&key);
    let n = msgs.len() as u32;
    report.too_large.clear();
    let mut record = {
        let k = key.clone();
        in_journal(journal, move |s| s.folder(&k)).await?
    };
    let status = match dst.status(&plan.dest).await {
        Ok(s) => s,
        Err(e) if !e.transient => {
            dst.create(&plan.dest).await?;
            dst.status(&plan.dest).await?
        }
        Err(e) => return Err(e.into()),
    };
    let mut copied: HashMap<u32, MessageRecord> = {
        let k = key.clone();
        in_journal(journal, move |s| s.messages(&k))
            .await?
            .into_iter()
            .collect()
    };
    let mut mark = record.as_ref().and_then(|r| r.dest_uidnext_in_flight);
    if let Some(r) = &record
        && (r.dest_uidvalidity != status.uidvalidity
            || r.dest_folder != plan.dest
            || r.source_uidvalidity != validity)
    {
        ctx.progress.note(
            &job.account,
            &format!(
                "{}: the destination folder changed since the last run; matching what it holds \
                 by content instead of copying again",
                plan.path
            ),
        );
        let k = key.clone();
        in_journal(journal, move |s| s.forget_folder(&k)).await?;
        record = None;
        copied.clear();
        mark = None;
    }
    let record_for =
        |copied: &HashMap<u32, MessageRecord>, in_flight: Option<u32>, complete: bool| {
            let c = cursor(copied);
            FolderRecord {
                dest_folder: plan.dest.clone(),
                source_uidvalidity: validity,
                highest_uid: c.highest_uid,
                highest_modseq: None,
                dest_uidvalidity: status.uidvalidity,
                dest_uidnext_in_flight: in_flight,
                source_uidnext: if complete { n + 1 } else { 0 },
                source_messages: if complete { n } else { 0 },
                messages: c.messages,
                bytes: c.bytes,
                updated_at: now(),
            }
        };

    // 1. The map against the files: re-paired by content when they were rewritten, or when a
    //    message an orphan stands for is back.
    let orphan_hashes: HashSet<[u8; 32]> = copied
        .iter()
        .filter(|(u, _)| **u >= ORPHAN_BASE)
        .map(|(_, r)| r.hash)
        .collect();
    let consistent = copied.iter().all(|(uid, r)| {
        *uid >= ORPHAN_BASE
            || msgs
                .get((*uid as usize).wrapping_sub(1))
                .is_some_and(|m| m.importable() && m.hash == r.hash)
    });
    let returning = msgs.iter().enumerate().any(|(i, m)| {
        m.importable() && !copied.contains_key(&(i as u32 + 1)) && orphan_hashes.contains(&m.hash)
    });
    let mut changed = false;
    if !consistent || returning {
        let before = copied.iter().filter(|(u, _)| **u < ORPHAN_BASE).count();
        let new = repair(&copied, msgs);
        let entries: Vec<(u32, MessageRecord)> = new.iter().map(|(u, r)| (*u, *r)).collect();
        let rec = record_for(&new, mark, false);
        let k = key.clone();
        in_journal(journal, move |s| {
            s.forget_folder(&k)?;
            s.record_batch(&k, &rec, &entries)
        })
        .await?;
        let paired = new.keys().filter(|u| **u < ORPHAN_BASE).count();
        if !consistent {
            ctx.progress.note(
                &job.account,
                &format!(
                    "{}: the files changed since the last run (messages removed, reordered or \
                     edited): {} of the {before} recorded matched by content, not copied again",
                    plan.path,
                    plural(paired, "message"),
                ),
            );
        }
        copied = new;
        changed = true;
    }

    // 2. What is still to send.
    let refused_before: HashMap<u32, RefusedRecord> = {
        let k = key.clone();
        in_journal(journal, move |s| s.refused(&k))
            .await?
            .into_iter()
            .collect()
    };
    let mut todo: Vec<(u32, &Scanned)> = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let uid = i as u32 + 1;
        if !m.importable()
            || copied.contains_key(&uid)
            || refused_before
                .get(&uid)
                .is_some_and(|r| r.sync_point == job.sync_point)
        {
            continue;
        }
        let meta = meta_of(uid, m);
        if !job.options.size_ok(&meta) {
            report.too_large.push((uid, meta.size));
            continue;
        }
        if !job.options.in_date_window(&meta) {
            continue;
        }
        todo.push((uid, m));
    }
    if job.options.newest_first {
        todo.reverse();
    }
    if todo.is_empty() && mark.is_none() {
        if record.is_none() || changed {
            let rec = record_for(&copied, None, true);
            let k = key.clone();
            in_journal(journal, move |s| s.put_folder(&k, &rec)).await?;
        }
        ctx.progress.folder_started(&job.account, &plan.path, 0);
        return Ok(());
    }
    let dinfo = dst.open(&plan.dest, true).await?;

    // 3. What may be ours already: from the in-flight mark, or everything when there is no
    //    record (a lost state, another tool's import).
    let resumed = mark;
    let adopting = record.is_none() && !changed;
    let from = if adopting && dinfo.exists > 0 {
        Some(1)
    } else {
        mark
    };
    let mut pending: HashMap<[u8; 32], VecDeque<u32>> = HashMap::new();
    let claimed = claimed_elsewhere(ctx, plan).await?;
    if let Some(from) = from {
        if mark.is_some() {
            settle(dst, &plan.dest).await?;
        }
        let known: HashSet<u32> = copied.values().map(|r| r.dest_uid).collect();
        let candidates: Vec<MessageMeta> = dst
            .fetch_meta(&format!("{from}:*"), None)
            .await?
            .into_iter()
            .filter(|m| m.uid >= from && !known.contains(&m.uid) && !claimed.contains(&m.uid))
            .collect();
        if adopting && resumed.is_none() && !candidates.is_empty() && job.options.expect_empty {
            return Err(config(format!(
                "destination folder {:?} already holds {}, but the plan says the destination is \
                 empty (`adopt_existing: false`): remove them, or set `adopt_existing: true` to \
                 match them against the files and import only the rest",
                plan.dest_path,
                plural(candidates.len(), "message")
            )));
        }
        let mut sized: Vec<(u32, u64)> = candidates
            .iter()
            .map(|m| (m.uid, u64::from(m.size)))
            .collect();
        if adopting && resumed.is_none() && !sized.is_empty() {
            // Only bodies that can match: same Message-ID, or none on either side.
            let ids: HashSet<&str> = todo
                .iter()
                .filter_map(|(_, m)| m.message_id.as_deref())
                .collect();
            let anonymous = todo.iter().any(|(_, m)| m.message_id.is_none());
            let uids: Vec<u32> = sized.iter().map(|(u, _)| *u).collect();
            let mut keep = HashSet::new();
            for chunk in uids.chunks(1000) {
                for (uid, fp) in dst.fetch_fingerprints(&uid_set(chunk)).await? {
                    let wanted = match fp.message_id.as_deref() {
                        Some(id) => ids.contains(id),
                        None => anonymous,
                    };
                    if wanted {
                        keep.insert(uid);
                    }
                }
            }
            sized.retain(|(u, _)| keep.contains(u));
        }
        for (uid, hash) in hash_messages(dst, &sized).await? {
            pending.entry(hash).or_default().push_back(uid);
        }
        for v in pending.values_mut() {
            v.make_contiguous().sort_unstable();
        }
        if adopting && !pending.is_empty() {
            ctx.progress.note(
                &job.account,
                &format!(
                    "{}: the destination folder already holds {} the state has no record of; \
                     matching them against the files before importing",
                    plan.path,
                    plural(dinfo.exists as usize, "message")
                ),
            );
        }
    }
    ctx.progress
        .folder_started(&job.account, &plan.path, todo.len() as u64);

    // 4. Batches.
    let mut i = 0;
    let mut capped = false;
    while i < todo.len() {
        if ctx.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        if *remaining == 0 {
            capped = true;
            break;
        }
        let mut end = i;
        let mut bytes = 0u64;
        while end < todo.len()
            && (end == i
                || ((end - i) < BATCH_MESSAGES
                    && bytes + todo[end].1.size <= BATCH_BYTES
                    && ((end - i) as u64) < *remaining))
        {
            bytes += todo[end].1.size;
            end += 1;
        }
        let batch: Vec<(u32, Scanned)> = todo[i..end]
            .iter()
            .map(|(u, m)| (*u, (*m).clone()))
            .collect();
        i = end;
        let bodies = {
            let (tree, folder, batch) = (ctx.tree.clone(), folder.clone(), batch.clone());
            tokio::task::spawn_blocking(move || {
                batch
                    .iter()
                    .map(|(_, m)| tree.message(&folder, m))
                    .collect::<Result<Vec<_>, String>>()
            })
            .await
            .map_err(|e| CopyError::fatal(format!("read task failed: {e}")))?
            .map_err(config)?
        };
        let mut entries: Vec<(u32, MessageRecord)> = Vec::new();
        let mut metas: Vec<MessageMeta> = Vec::new();
        let mut send_bodies: Vec<&Vec<u8>> = Vec::new();
        let mut send_hashes = Vec::new();
        for ((uid, m), body) in batch.iter().zip(&bodies) {
            if let Some(d) = pending.get_mut(&m.hash).and_then(VecDeque::pop_front) {
                entries.push((
                    *uid,
                    MessageRecord {
                        dest_uid: d,
                        hash: m.hash,
                        size: body.len() as u64,
                        sync_point: if adopting { 0 } else { job.sync_point },
                        ..Default::default()
                    },
                ));
                if adopting {
                    report.adopted += 1;
                } else {
                    report.rematched += 1;
                }
            } else {
                metas.push(meta_of(*uid, m));
                send_bodies.push(body);
                send_hashes.push(m.hash);
            }
        }
        let mut refused = Vec::new();
        let mut failure = None;
        let mut in_flight = mark;
        if !metas.is_empty() {
            // The mark is durable before the APPEND (the journal's order).
            let uidnext = dst.status(&plan.dest).await?.uidnext;
            in_flight = Some(mark.map_or(uidnext, |m| m.min(uidnext)));
            let mut with_adopted = copied.clone();
            with_adopted.extend(entries.iter().copied());
            let rec = record_for(&with_adopted, in_flight, false);
            let k = key.clone();
            in_journal(journal, move |s| s.put_folder(&k, &rec)).await?;
            let ready: Vec<Ready<'_>> = metas
                .iter()
                .zip(&send_bodies)
                .zip(&send_hashes)
                .map(|((m, b), h)| (m, *b, *h, dest_flags(&m.flags, &dinfo)))
                .collect();
            let (stored, refusals, err) = send(dst, &plan.dest, &ready, uidnext).await;
            let (mut sent, mut sent_bytes) = (0u64, 0u64);
            for (k, dest_uid) in stored {
                let (m, body, hash, _) = &ready[k];
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
                sent += 1;
                sent_bytes += body.len() as u64;
            }
            report.copied += sent;
            report.bytes += sent_bytes;
            if sent > 0 {
                ctx.progress.copied(&job.account, sent, sent_bytes);
            }
            for (k, why) in refusals {
                let (m, body, _, _) = &ready[k];
                let r = refusal(
                    &refused_before,
                    m.uid,
                    why,
                    body.len() as u64,
                    job.sync_point,
                );
                report.refused.push((m.uid, r.size, r.reason.clone()));
                refused.push((m.uid, r));
            }
            failure = err;
        }
        *remaining = remaining.saturating_sub(entries.len() as u64);
        copied.extend(entries.iter().copied());
        // After an interruption the mark stays until the folder is done and checked for late
        // copies; so does a command cut before its answer.
        mark = if failure.is_none() && resumed.is_none() {
            None
        } else {
            in_flight
        };
        let rec = record_for(&copied, mark, false);
        let taken: Vec<u32> = entries
            .iter()
            .map(|(u, _)| *u)
            .filter(|u| refused_before.contains_key(u))
            .collect();
        commit_batch(journal, &key, rec, entries, refused, taken).await?;
        if let Some(e) = failure {
            return Err(e);
        }
    }

    // 5. Late copies of an interrupted run, then the mark is cleared.
    if let Some(from) = resumed
        && !capped
        && dst.caps.uidplus
        && copied.values().all(|r| r.dest_uid != 0)
    {
        let known: HashSet<u32> = copied.values().map(|r| r.dest_uid).collect();
        let ours: HashSet<[u8; 32]> = copied.values().map(|r| r.hash).collect();
        let strays: Vec<(u32, u64)> = dst
            .fetch_meta(&format!("{from}:*"), None)
            .await?
            .into_iter()
            .filter(|m| m.uid >= from && !known.contains(&m.uid) && !claimed.contains(&m.uid))
            .map(|m| (m.uid, u64::from(m.size)))
            .collect();
        let duplicates: Vec<u32> = hash_messages(dst, &strays)
            .await?
            .into_iter()
            .filter(|(_, h)| ours.contains(h))
            .map(|(u, _)| u)
            .collect();
        if !duplicates.is_empty() {
            dst.expunge_uids(&duplicates).await?;
            report.duplicates_removed += duplicates.len() as u64;
            ctx.progress.note(
                &job.account,
                &format!(
                    "{}: removed {} left by an interrupted run",
                    plan.path,
                    plural(duplicates.len(), "duplicate")
                ),
            );
        }
    }
    let rec = record_for(&copied, None, !capped);
    let k = key.clone();
    in_journal(journal, move |s| s.put_folder(&k, &rec)).await
}

/// The metadata the copy's filters and `send` read.
fn meta_of(uid: u32, m: &Scanned) -> MessageMeta {
    MessageMeta {
        uid,
        size: u32::try_from(m.size).unwrap_or(u32::MAX),
        flags: m.flags.clone(),
        internal_date: m.internal_date.clone(),
        modseq: None,
    }
}

/// The map re-paired with the files by content, as a multiset, in position order (each
/// record goes to the first message with its hash); records left over become orphans.
fn repair(copied: &HashMap<u32, MessageRecord>, msgs: &[Scanned]) -> HashMap<u32, MessageRecord> {
    let mut old: Vec<(u32, MessageRecord)> = copied.iter().map(|(u, r)| (*u, *r)).collect();
    old.sort_by_key(|(u, _)| *u);
    let mut pool: HashMap<[u8; 32], VecDeque<MessageRecord>> = HashMap::new();
    for (_, r) in old {
        pool.entry(r.hash).or_default().push_back(r);
    }
    let mut out = HashMap::new();
    for (i, m) in msgs.iter().enumerate() {
        if !m.importable() {
            continue;
        }
        if let Some(r) = pool.get_mut(&m.hash).and_then(VecDeque::pop_front) {
            out.insert(i as u32 + 1, r);
        }
    }
    let mut left: Vec<MessageRecord> = pool.into_values().flatten().collect();
    left.sort_by_key(|r| r.dest_uid);
    for (k, r) in left.into_iter().enumerate() {
        out.insert(ORPHAN_BASE + k as u32, r);
    }
    out
}

/// Destination UIDs the maps of other folders going to the same destination folder own: never
/// adopted or removed by this one.
async fn claimed_elsewhere(ctx: &Ctx, plan: &FolderPlan) -> Result<HashSet<u32>, CopyError> {
    let (key, dest) = (plan.path.clone(), plan.dest.clone());
    in_journal(&ctx.journal, move |s| {
        let mut out = HashSet::new();
        for (path, rec) in s.folders()? {
            if rec.dest_folder == dest && path != key {
                out.extend(s.messages(&path)?.into_iter().map(|(_, m)| m.dest_uid));
            }
        }
        Ok(out)
    })
    .await
}

/// Waits until the destination folder stops growing: a killed run's last APPEND may still be
/// finishing on the server.
pub(crate) async fn settle(dst: &mut Imap, folder: &str) -> Result<FolderInfo, CopyError> {
    let mut last = dst.status(folder).await?;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let now = dst.status(folder).await?;
        if now.uidnext == last.uidnext {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(hash: u8) -> Scanned {
        Scanned {
            file: 0,
            line: 1,
            offset: 0,
            range: (0, 0),
            size: 10,
            hash: [hash; 32],
            flags: Vec::new(),
            internal_date: None,
            message_id: None,
            problem: None,
            deleted: false,
        }
    }

    fn rec(dest_uid: u32, hash: u8) -> MessageRecord {
        MessageRecord {
            dest_uid,
            hash: [hash; 32],
            size: 10,
            sync_point: 1,
            ..Default::default()
        }
    }

    #[test]
    fn a_rewritten_file_is_re_paired_by_content_and_the_rest_kept_as_orphans() {
        // Recorded: A B A C at 1..4; now the file holds C A B (one A removed, reordered).
        let copied: HashMap<u32, MessageRecord> = [
            (1, rec(11, 1)),
            (2, rec(12, 2)),
            (3, rec(13, 1)),
            (4, rec(14, 3)),
        ]
        .into();
        let now = [msg(3), msg(1), msg(2)];
        let new = repair(&copied, &now);
        assert_eq!(new[&1], rec(14, 3));
        assert_eq!(new[&2], rec(11, 1));
        assert_eq!(new[&3], rec(12, 2));
        assert_eq!(new[&ORPHAN_BASE], rec(13, 1));
        assert_eq!(new.len(), 4);
        // The removed copy comes back (a file restored): paired with its orphan.
        let back = [msg(3), msg(1), msg(2), msg(1)];
        let again = repair(&new, &back);
        assert_eq!(again[&4], rec(13, 1));
        assert_eq!(again.len(), 4);
        assert!(!again.contains_key(&ORPHAN_BASE));
    }

    #[test]
    fn two_identical_messages_stay_two() {
        let copied: HashMap<u32, MessageRecord> = [(1, rec(11, 1))].into();
        let new = repair(&copied, &[msg(1), msg(1)]);
        assert_eq!(new.len(), 1);
        assert_eq!(new[&1], rec(11, 1));
    }

    #[test]
    fn a_folder_s_validity_is_stable_and_never_zero() {
        assert_eq!(
            folder_validity("Archive/2019"),
            folder_validity("Archive/2019")
        );
        assert_ne!(
            folder_validity("Archive/2019"),
            folder_validity("Archive/2020")
        );
        assert_ne!(folder_validity(""), 0);
    }
}
