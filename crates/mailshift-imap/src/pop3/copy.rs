//! The copy of one POP3 maildrop into a destination IMAP folder (`INBOX` unless the plan's
//! folder rules map it elsewhere), exactly once, through the same [`Journal`] and APPEND
//! path as the IMAP copy and the file import ([`crate::files`], whose shape this follows).
//!
//! The maildrop is one source folder named `INBOX`, so the plan's `folders` rules (a `map:`
//! of `INBOX`) say where it goes. Its messages are keyed in the journal by *slots*: numbers
//! handed out in the order messages are first copied, each record carrying its UIDL's
//! [`uidl_key`] in `source_msgid` (a POP3 source is never Gmail's IMAP, whose X-GM-MSGID that
//! field otherwise holds). Which messages are copied is [`super::triage`]'s rule; a message
//! re-paired by content keeps its slot and takes its new UIDL's key, so no record is ever
//! claimed twice.
//!
//! The destination side is the IMAP copy's protocol: the folder's UIDNEXT recorded as the
//! in-flight mark before each APPEND, the batch's records after it; a run that finds a mark
//! waits for the folder to settle, hashes what landed from the mark on, and records a message
//! it was about to send that is already there instead of sending it again. Nothing is ever
//! deleted from the POP3 server.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::triage::{Known, Pairing, refusal_key, triage, uidl_key};
use super::{Listed, Pop3};
use crate::copy::{
    BATCH_BYTES, BATCH_MESSAGES, CopyError, CopyOptions, CopyReport, FolderReport, MIN_BATCH_BYTES,
    Progress, RECONNECT_AFTER_PROGRESS, Ready, STALLED_ATTEMPTS, StopFlag, commit_batch,
    connect_fresh, content_hash, dest_flags, hash_messages, in_journal, jitter, now, pause,
    refusal, send,
};
use crate::error::ErrorKind;
use crate::files::headers::read_header;
use crate::folders::{FolderRules, RemoteFolder, map_folders};
use crate::journal::{FolderRecord, Journal, MessageRecord, RefusedRecord};
use crate::plural;
use crate::session::{MessageMeta, Target, uid_set};

/// The maildrop's journal "UIDVALIDITY": UIDLs need none (a changed UIDL is caught by
/// content), so it never changes.
const VALIDITY: u32 = 1;

/// One account's POP3 copy.
pub struct Pop3Job {
    /// How the caller names this copy (see [`crate::copy::Job::resource_id`]).
    pub resource_id: String,
    pub account: String,
    pub source: Target,
    pub dest: Target,
    pub rules: FolderRules,
    pub options: CopyOptions,
    pub sync_point: u64,
    pub login_grace: Duration,
}

/// What the attempts of one run hand on to the next after a dropped connection: the counts
/// so far, the batch size the link carries, and what was found outside the date window.
struct Carry {
    report: CopyReport,
    folder: Option<FolderReport>,
    batch_bytes: u64,
    /// Messages (UIDL keys) found outside the plan's date window: not read again in this run.
    outside: HashSet<u64>,
    /// The folder's start was reported (with what is to copy).
    started: bool,
}

impl Carry {
    /// What an attempt has moved forward: messages recorded on the destination, or found
    /// outside the date window (neither is read again).
    fn kept(&self) -> u64 {
        self.outside.len() as u64
            + self
                .folder
                .as_ref()
                .map_or(0, |f| f.copied + f.rematched + f.adopted)
    }
}

/// Copies (or brings up to date) one POP3 maildrop. An error leaves the journal consistent:
/// the next run goes on from where this one stopped, copying nothing twice.
///
/// A dropped connection (either side) is routine, as in the IMAP copy: the attempt records
/// every message that arrived whole, and a new attempt on fresh connections starts again from
/// the journal (which is what makes it exactly once: an attempt is a run in small). Batches
/// halve after each cut; the run gives up only after [`STALLED_ATTEMPTS`] attempts in a row
/// that recorded nothing, waiting longer after each of them.
pub async fn copy_maildrop(
    job: Arc<Pop3Job>,
    journal: Arc<dyn Journal>,
    progress: Arc<dyn Progress>,
    stop: StopFlag,
) -> Result<CopyReport, CopyError> {
    let mut carry = Carry {
        report: CopyReport::default(),
        folder: None,
        batch_bytes: BATCH_BYTES,
        outside: HashSet::new(),
        started: false,
    };
    let mut stalled = 0;
    let mut delay = Duration::from_millis(500);
    let mut first = true;
    loop {
        let before = carry.kept();
        let outcome = attempt(&job, &journal, &progress, &stop, &mut carry, first).await;
        first = false;
        match outcome {
            Ok(()) => break,
            Err(e) if e.transient && !stop.load(Ordering::Relaxed) => {
                let moved = carry.kept() > before;
                stalled = if moved { 0 } else { stalled + 1 };
                if stalled >= STALLED_ATTEMPTS {
                    return Err(CopyError {
                        message: format!(
                            "{} ({STALLED_ATTEMPTS} attempts in a row copied nothing)",
                            e.message
                        ),
                        ..e
                    });
                }
                // A cut link gets smaller batches; a server asking to slow down is not one.
                if !e.throttled {
                    carry.batch_bytes = (carry.batch_bytes / 2).max(MIN_BATCH_BYTES);
                }
                progress.note(
                    &job.account,
                    &format!(
                        "INBOX: {} (reconnecting{})",
                        e.message,
                        if moved {
                            String::new()
                        } else {
                            format!(", {stalled}/{STALLED_ATTEMPTS} without progress")
                        }
                    ),
                );
                if moved {
                    delay = Duration::from_millis(500);
                    tokio::time::sleep(RECONNECT_AFTER_PROGRESS).await;
                } else {
                    tokio::time::sleep(pause(e.throttled, &e.message, delay, jitter())).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
            Err(e) => return Err(e),
        }
    }
    let mut report = carry.report;
    report.folders.extend(carry.folder);
    Ok(report)
}

/// One attempt at the maildrop, on fresh connections, from what the journal holds.
async fn attempt(
    job: &Pop3Job,
    journal: &Arc<dyn Journal>,
    progress: &Arc<dyn Progress>,
    stop: &StopFlag,
    carry: &mut Carry,
    first: bool,
) -> Result<(), CopyError> {
    let mut pop = Pop3::connect(&job.source).await?;
    let listing = pop.listing().await?;
    // The login grace is for the run's first connection (a mailbox just created); after a
    // cut, the destination's login is known to work.
    let grace = if first {
        job.login_grace
    } else {
        Duration::ZERO
    };
    let mut dst = connect_fresh(&job.dest, grace, stop).await?;
    let source = [RemoteFolder {
        name: "INBOX".into(),
        delimiter: Some('/'),
        attributes: Vec::new(),
    }];
    let dest_folders = dst.list().await?;
    let mapping = map_folders(&source, &dest_folders, &job.rules)
        .map_err(|e| CopyError::new(ErrorKind::Config, e.to_string()))?;
    for name in &mapping.create {
        dst.create(name).await?;
    }
    carry.report.notes = mapping.notes.clone();
    // The rules may exclude INBOX: then there is nothing to copy.
    let Some(plan) = mapping.copy.first() else {
        pop.quit().await;
        dst.logout().await;
        return Ok(());
    };
    let key = plan.path.clone();
    let fr = carry.folder.get_or_insert_with(|| FolderReport {
        path: plan.path.clone(),
        dest: plan.dest_path.clone(),
        ..FolderReport::default()
    });
    // Derived from this attempt's listing, not added up over attempts.
    fr.too_large.clear();

    let mut record = {
        let k = key.clone();
        in_journal(journal, move |s| s.folder(&k)).await?
    };
    let status = dst.status(&plan.dest).await?;
    let mut copied: HashMap<u32, MessageRecord> = {
        let k = key.clone();
        in_journal(journal, move |s| s.messages(&k))
            .await?
            .into_iter()
            .collect()
    };
    if let Some(r) = &record
        && (r.dest_uidvalidity != status.uidvalidity || r.dest_folder != plan.dest)
    {
        // The records name messages of another folder: forgotten, and what the folder holds
        // is matched as after a lost state (below).
        progress.note(
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
    }
    let mut mark = record.as_ref().and_then(|r| r.dest_uidnext_in_flight);
    let resumed = mark;

    // Which messages to fetch, against the records.
    let mut slots: Vec<u32> = copied.keys().copied().collect();
    slots.sort_unstable();
    let known: Vec<Known> = slots
        .iter()
        .map(|s| {
            let r = &copied[s];
            Known {
                uidl: r.source_msgid,
                size: r.size,
                hash: r.hash,
            }
        })
        .collect();
    let t = triage(&listing, &known);
    if t.renumbered {
        progress.note(
            &job.account,
            &format!(
                "{}: the POP3 server changed every message's UIDL since the last run; matching \
                 by content instead of copying again",
                plan.path
            ),
        );
    }
    // Refusals by the destination, recorded by [`refusal_key`]: a message refused in this run
    // already is not offered again before the next (as the IMAP copy does); verify names
    // them, with the destination's words.
    let refused_before: HashMap<u32, RefusedRecord> = {
        let k = key.clone();
        in_journal(journal, move |s| s.refused(&k))
            .await?
            .into_iter()
            .collect()
    };
    let mut pairing = Pairing::new(&known, &t.absent);
    let by_number: HashMap<u32, &Listed> = listing.iter().map(|l| (l.number, l)).collect();
    let mut todo: Vec<&Listed> = Vec::new();
    for n in &t.fetch {
        let l = by_number[n];
        let id = uidl_key(&l.uidl);
        let refused_now = refused_before
            .get(&refusal_key(&l.uidl))
            .is_some_and(|r| r.sync_point == job.sync_point);
        if refused_now || carry.outside.contains(&id) {
            continue;
        }
        let meta = meta_of(0, l.size, None);
        if !job.options.size_ok(&meta) {
            fr.too_large.push((l.number, meta.size));
            continue;
        }
        todo.push(l);
    }
    // A maildrop lists its messages in the order they arrived (RFC 1939 numbers them so).
    if job.options.newest_first {
        todo.reverse();
    }
    // `max_items` counts what the account's records hold, as the IMAP copy counts it.
    let mut remaining = job
        .options
        .max_items
        .map_or(u64::MAX, |cap| cap.saturating_sub(copied.len() as u64));
    let mut next_slot = slots.last().copied().unwrap_or(0) + 1;
    let record_for = |copied: &HashMap<u32, MessageRecord>, in_flight: Option<u32>| FolderRecord {
        dest_folder: plan.dest.clone(),
        source_uidvalidity: VALIDITY,
        highest_uid: copied.keys().copied().max().unwrap_or(0),
        highest_modseq: None,
        dest_uidvalidity: status.uidvalidity,
        dest_uidnext_in_flight: in_flight,
        source_uidnext: 0,
        source_messages: listing.len() as u32,
        messages: copied.len() as u64,
        bytes: copied.values().map(|r| r.size).sum(),
        updated_at: now(),
    };
    // Said once per run: a later attempt's `todo` is what the earlier ones left. One
    // maildrop: what this run copies is known exactly before it starts.
    if !carry.started {
        progress.account_started(&job.account, todo.len() as u64);
        progress.folder_started(&job.account, &plan.path, todo.len() as u64);
        carry.started = true;
    }

    // What an interrupted run may have left in the destination: hashed, and taken for the
    // messages about to be sent.
    let dinfo = dst.open(&plan.dest, true).await?;
    // No record, yet the destination holds messages (a lost state, another tool's copy): each
    // fetched message is matched by Message-ID, then by content, before it is sent.
    let adopting = record.is_none() && dinfo.exists > 0 && !todo.is_empty();
    let mut by_id: HashMap<Option<String>, Vec<(u32, u64)>> = HashMap::new();
    if adopting {
        let all: Vec<u32> = dst
            .fetch_meta("1:*", None)
            .await?
            .into_iter()
            .map(|m| m.uid)
            .collect();
        if job.options.expect_empty {
            return Err(CopyError::new(
                ErrorKind::Config,
                format!(
                    "destination folder {:?} already holds {}, but the plan says the destination is \
                     empty (`adopt_existing: false`): remove them, or set `adopt_existing: true` to \
                     match them against the POP3 mailbox and copy only the rest",
                    plan.dest_path,
                    plural(all.len(), "message")
                ),
            ));
        }
        for chunk in all.chunks(1000) {
            for (uid, fp) in dst.fetch_fingerprints(&uid_set(chunk)).await? {
                by_id
                    .entry(fp.message_id)
                    .or_default()
                    .push((uid, u64::from(fp.size)));
            }
        }
        progress.note(
            &job.account,
            &format!(
                "{}: the destination folder already holds {} the state has no record of; \
                 matching them against the POP3 mailbox before copying",
                plan.path,
                plural(dinfo.exists as usize, "message")
            ),
        );
    }
    let mut pending: HashMap<[u8; 32], VecDeque<u32>> = HashMap::new();
    if let Some(from) = mark {
        crate::files::settle(&mut dst, &plan.dest).await?;
        let ours: HashSet<u32> = copied.values().map(|r| r.dest_uid).collect();
        let landed: Vec<(u32, u64)> = dst
            .fetch_meta(&format!("{from}:*"), None)
            .await?
            .into_iter()
            .filter(|m| m.uid >= from && !ours.contains(&m.uid))
            .map(|m| (m.uid, u64::from(m.size)))
            .collect();
        for (uid, hash) in hash_messages(&mut dst, &landed).await? {
            pending.entry(hash).or_default().push_back(uid);
        }
    }

    let windowed = job.options.since.is_some() || job.options.before.is_some();
    let mut i = 0;
    while i < todo.len() {
        if stop.load(Ordering::Relaxed) || remaining == 0 {
            break;
        }
        let mut end = i;
        let mut bytes = 0u64;
        while end < todo.len()
            && (end == i
                || (end - i < BATCH_MESSAGES
                    && ((end - i) as u64) < remaining
                    && bytes + todo[end].size <= carry.batch_bytes))
        {
            bytes += todo[end].size;
            end += 1;
        }
        let batch = &todo[i..end];
        i = end;
        let mut entries: Vec<(u32, MessageRecord)> = Vec::new();
        let mut to_send: Vec<Fetched> = Vec::new();
        let mut refused: Vec<(u32, RefusedRecord)> = Vec::new();
        // Slot → the refusal key of the message in it, for the messages of this batch.
        let mut refusal_keys: HashMap<u32, u32> = HashMap::new();
        // A source connection that drops mid-batch: what arrived whole is still sent and
        // recorded below, then the attempt ends.
        let mut source_failure = None;
        let numbers = |ls: &[&Listed]| ls.iter().map(|l| l.number).collect::<Vec<u32>>();
        let mut wanted: Vec<&Listed> = batch.to_vec();
        // Under a date window, the header alone says whether the message is wanted: one
        // outside it is never fetched whole (where the server has TOP).
        if windowed && pop.caps.top {
            let (heads, err) = pop.fetch_each(&numbers(batch), true).await;
            source_failure = err;
            wanted.clear();
            for (l, head) in batch.iter().zip(&heads) {
                if job
                    .options
                    .in_date_window(&meta_of(0, 0, read_header(head).date))
                {
                    wanted.push(l);
                } else {
                    carry.outside.insert(uidl_key(&l.uidl));
                }
            }
        }
        let bodies = match source_failure {
            None => {
                let (bodies, err) = pop.fetch_each(&numbers(&wanted), false).await;
                source_failure = err;
                bodies
            }
            Some(_) => Vec::new(),
        };
        for (l, body) in wanted.iter().zip(bodies) {
            let id = uidl_key(&l.uidl);
            refusal_keys.insert(next_slot, refusal_key(&l.uidl));
            let hash = content_hash(&body);
            if let Some(k) = pairing.take(&hash) {
                // The same message under a new UIDL: its record, in its slot, takes the new key.
                let slot = slots[k];
                let old = copied[&slot];
                entries.push((
                    slot,
                    MessageRecord {
                        source_msgid: id,
                        size: l.size,
                        ..old
                    },
                ));
                fr.rematched += 1;
            } else if !job
                .options
                .in_date_window(&meta_of(0, 0, read_header(&body).date))
            {
                // Outside the plan's date window (by its Date header, as the copy dates it).
                carry.outside.insert(id);
                continue;
            } else if remaining == 0 {
                break;
            } else if let Some(d) = pending.get_mut(&hash).and_then(VecDeque::pop_front) {
                // Landed from an interrupted run: recorded, not sent again.
                entries.push((
                    next_slot,
                    MessageRecord {
                        dest_uid: d,
                        hash,
                        size: l.size,
                        sync_point: job.sync_point,
                        source_msgid: id,
                        ..Default::default()
                    },
                ));
                next_slot += 1;
                remaining -= 1;
                fr.rematched += 1;
            } else if let Some(d) = match adopting {
                true => adopt(&mut dst, &mut by_id, &body, hash).await?,
                false => None,
            } {
                // Already on the destination, copied by no run of ours: recorded at sync
                // point 0, so no rollback of ours ever removes it.
                entries.push((
                    next_slot,
                    MessageRecord {
                        dest_uid: d,
                        hash,
                        size: l.size,
                        sync_point: 0,
                        source_msgid: id,
                        ..Default::default()
                    },
                ));
                next_slot += 1;
                remaining -= 1;
                fr.adopted += 1;
            } else {
                let date = read_header(&body).date;
                to_send.push((
                    meta_of(next_slot, body.len() as u64, date),
                    body,
                    hash,
                    id,
                    l.size,
                ));
                next_slot += 1;
                remaining -= 1;
            }
        }
        let mut failure = None;
        let mut in_flight = mark;
        if !to_send.is_empty() {
            // The mark is durable before the APPEND (the journal's order).
            let uidnext = dst.status(&plan.dest).await?.uidnext;
            in_flight = Some(mark.map_or(uidnext, |m| m.min(uidnext)));
            let mut with_matched = copied.clone();
            with_matched.extend(entries.iter().copied());
            let rec = record_for(&with_matched, in_flight);
            let k = key.clone();
            in_journal(journal, move |s| s.put_folder(&k, &rec)).await?;
            let ready: Vec<Ready<'_>> = to_send
                .iter()
                .map(|(m, b, h, _, _)| (m, b, *h, dest_flags(&m.flags, &dinfo)))
                .collect();
            let (stored, refusals, err) = send(&mut dst, &plan.dest, &ready, uidnext).await;
            for (k, dest_uid) in stored {
                let (m, body, hash, id, listed) = &to_send[k];
                // The size LIST gives, which the next run's triage compares.
                entries.push((
                    m.uid,
                    MessageRecord {
                        dest_uid,
                        hash: *hash,
                        size: *listed,
                        sync_point: job.sync_point,
                        source_msgid: *id,
                        ..Default::default()
                    },
                ));
                fr.copied += 1;
                fr.bytes += body.len() as u64;
                progress.copied(&job.account, 1, body.len() as u64);
            }
            for (k, why) in refusals {
                let (m, body, _, _, _) = &to_send[k];
                let rk = refusal_keys[&m.uid];
                let r = refusal(&refused_before, rk, why, body.len() as u64, job.sync_point);
                fr.refused.push((m.uid, r.size, r.reason.clone()));
                refused.push((rk, r));
            }
            failure = err;
        }
        copied.extend(entries.iter().copied());
        mark = if failure.is_none() && resumed.is_none() {
            None
        } else {
            in_flight
        };
        let rec = record_for(&copied, mark);
        // A message refused before and recorded now: its refusal is over.
        let taken: Vec<u32> = entries
            .iter()
            .filter_map(|(slot, _)| refusal_keys.get(slot).copied())
            .filter(|rk| refused_before.contains_key(rk))
            .collect();
        commit_batch(journal, &key, rec, entries, refused, taken).await?;
        if let Some(e) = failure {
            return Err(e);
        }
        if let Some(e) = source_failure {
            return Err(e.into());
        }
    }
    // Late copies of an interrupted run: an APPEND the killed run sent may land after this
    // run looked (the server was still storing it), and this run then sent the message again.
    // Once the folder is done, copies of our own messages from the mark on that no record
    // names are removed (UIDPLUS: every record knows its destination UID).
    if let Some(from) = resumed
        && !stop.load(Ordering::Relaxed)
        && dst.caps.uidplus
        && copied.values().all(|r| r.dest_uid != 0)
    {
        let known: HashSet<u32> = copied.values().map(|r| r.dest_uid).collect();
        let ours: HashSet<[u8; 32]> = copied.values().map(|r| r.hash).collect();
        let strays: Vec<(u32, u64)> = dst
            .fetch_meta(&format!("{from}:*"), None)
            .await?
            .into_iter()
            .filter(|m| m.uid >= from && !known.contains(&m.uid))
            .map(|m| (m.uid, u64::from(m.size)))
            .collect();
        let duplicates: Vec<u32> = hash_messages(&mut dst, &strays)
            .await?
            .into_iter()
            .filter(|(_, h)| ours.contains(h))
            .map(|(u, _)| u)
            .collect();
        if !duplicates.is_empty() {
            dst.expunge_uids(&duplicates).await?;
            fr.duplicates_removed += duplicates.len() as u64;
            progress.note(
                &job.account,
                &format!(
                    "{}: removed {} left by an interrupted run",
                    plan.path,
                    plural(duplicates.len(), "duplicate")
                ),
            );
        }
    }
    if !stop.load(Ordering::Relaxed) {
        let rec = record_for(&copied, None);
        let k = key.clone();
        in_journal(journal, move |s| s.put_folder(&k, &rec)).await?;
    }
    if !fr.refused.is_empty() {
        progress.note(
            &job.account,
            &format!(
                "{}: the destination refused {}",
                plan.path,
                plural(fr.refused.len(), "message")
            ),
        );
    }
    pop.quit().await;
    dst.logout().await;
    Ok(())
}

/// A fetched message to send: (meta, body, content hash, UIDL key, size as LIST gave it).
type Fetched = (MessageMeta, Vec<u8>, [u8; 32], u64, u64);

/// What the copy's filters and `send` read. POP3 gives no flags and no arrival date: the
/// message is stored unflagged, dated by its `Date` header (as the file import does), or when
/// it arrives if it has none.
fn meta_of(slot: u32, size: u64, date: Option<String>) -> MessageMeta {
    MessageMeta {
        uid: slot,
        size: u32::try_from(size).unwrap_or(u32::MAX),
        flags: Vec::new(),
        internal_date: date,
        modseq: None,
    }
}

/// The destination message a fetched one already is, if any: candidates with its Message-ID
/// (or, without one, those with none), hashed; a match is taken out of the candidates.
async fn adopt(
    dst: &mut crate::session::Imap,
    by_id: &mut HashMap<Option<String>, Vec<(u32, u64)>>,
    body: &[u8],
    hash: [u8; 32],
) -> Result<Option<u32>, CopyError> {
    let id = read_header(body).message_id;
    let Some(candidates) = by_id.get_mut(&id) else {
        return Ok(None);
    };
    let found = hash_messages(dst, candidates)
        .await?
        .into_iter()
        .find(|(_, h)| *h == hash)
        .map(|(u, _)| u);
    if let Some(uid) = found {
        candidates.retain(|(u, _)| *u != uid);
    }
    Ok(found)
}
