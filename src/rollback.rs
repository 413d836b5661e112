//! `mailshift rollback`: removes from a destination exactly the messages that mailshift
//! copied in sync points at or after a given one, and forgets them in the state so that a
//! later `apply` copies them again if the plan still wants them.
//!
//! Per destination folder: [`survey`] selects it, checks its UIDVALIDITY against the record,
//! reads the candidates' flags and bodies and keeps only those whose content hash is the one
//! recorded, that nobody else flagged `\Deleted`; [`execute`] then marks the rollback pending
//! in the state, deletes with `UID STORE +FLAGS.SILENT (\Deleted)` and `UID EXPUNGE` (UIDPLUS:
//! a plain EXPUNGE would also remove the user's own deleted mail), and drops the records in
//! one transaction. Killed between the expunge and that transaction, the pending record says
//! which UIDs were ours: the next rollback finishes it (those gone were expunged by us, those
//! left are ours even flagged `\Deleted`), and `apply` refuses the folder until then.
//! The CLI (`cli::rollback`) asks before [`execute`] and prints. Contacts, calendars and
//! tasks have the same steps over DAV in [`dav`].

pub mod dav;

use std::collections::{BTreeMap, HashMap};

use crate::state::{FolderRecord, MessageRecord, PendingRollback, StateStore};
use crate::transfer::imap::copy::{CrlfHasher, content_hash};
use crate::transfer::imap::session::{Imap, ImapError, uid_set};
use crate::verify::header::{self, Named};

/// Bytes of bodies fetched per round trip while checking content.
const BODY_BATCH_BYTES: u64 = 16 * 1024 * 1024;
/// Larger messages are hashed slice by slice (of this size), never held whole.
const LARGE: u64 = 4 * 1024 * 1024;
/// Header blocks fetched per round trip to name the messages to delete.
const HEADER_CHUNK: usize = 200;

/// What a rollback found in one destination folder.
#[derive(Debug, Default)]
pub struct FolderSurvey {
    /// Source folder (the state's key).
    pub source: String,
    /// Destination folder.
    pub dest: String,
    /// Set when the folder is refused as a whole (its UIDVALIDITY changed...).
    pub refused: Option<String>,
    pub dest_uidvalidity: u32,
    /// (source UID, destination UID, size) to delete: content checked.
    pub delete: Vec<(u32, u32, u64)>,
    /// Message-ID, date and subject of those, by destination UID, to show.
    pub named: HashMap<u32, Named>,
    /// (source UID, destination UID) whose destination copy an interrupted rollback already
    /// expunged.
    pub gone: Vec<(u32, u32)>,
    /// An interrupted rollback of this folder is to be finished (its record cleared).
    pub had_pending: bool,
    /// (destination UID, why) left alone.
    pub kept: Vec<(u32, String)>,
}

impl FolderSurvey {
    pub fn has_work(&self) -> bool {
        self.refused.is_none()
            && (!self.delete.is_empty() || !self.gone.is_empty() || self.had_pending)
    }
}

/// The records of `resource_id` a rollback `since` concerns: per source folder, its record,
/// the candidates (source UID, record) and the pending rollback, if any.
pub type Candidates = Vec<(
    String,
    FolderRecord,
    Vec<(u32, MessageRecord)>,
    Option<PendingRollback>,
)>;

pub fn candidates(
    store: &StateStore,
    resource_id: &str,
    since: u64,
) -> Result<Candidates, crate::state::StateError> {
    let pending = store.pending_rollbacks(resource_id)?;
    let mut out = Vec::new();
    for (folder, record) in store.folders(resource_id)? {
        let p = pending.get(&folder).cloned();
        // An interrupted rollback's messages are finished whatever this one's `--since`.
        let interrupted: std::collections::HashSet<u32> = p
            .iter()
            .flat_map(|p| p.messages.iter().map(|(src, _)| *src))
            .collect();
        // Sync point 0 is a message adopted from the destination: never ours to remove.
        let mine: Vec<(u32, MessageRecord)> = store
            .messages(resource_id, &folder)?
            .into_iter()
            .filter(|(u, m)| m.sync_point >= since.max(1) || interrupted.contains(u))
            .collect();
        if !mine.is_empty() || p.is_some() {
            out.push((folder, record, mine, p));
        }
    }
    Ok(out)
}

/// Checks one folder's candidates on the destination (read-only: FETCH with BODY.PEEK).
pub async fn survey(
    dst: &mut Imap,
    folder: &str,
    record: &FolderRecord,
    mine: &[(u32, MessageRecord)],
    pending: Option<&PendingRollback>,
) -> Result<FolderSurvey, ImapError> {
    let mut s = FolderSurvey {
        source: folder.to_string(),
        dest: record.dest_folder.clone(),
        had_pending: pending.is_some(),
        ..FolderSurvey::default()
    };
    let info = dst.open(&record.dest_folder, true).await?;
    s.dest_uidvalidity = info.uidvalidity;
    if info.uidvalidity != record.dest_uidvalidity {
        s.refused = Some(format!(
            "its UIDVALIDITY is {} where mailshift copied into {}: the folder was recreated or restored, so the recorded UIDs no longer name mailshift's copies; nothing is deleted there",
            info.uidvalidity, record.dest_uidvalidity
        ));
        return Ok(s);
    }
    if let Some(p) = pending
        && p.dest_uidvalidity != info.uidvalidity
    {
        s.refused = Some(format!(
            "an interrupted rollback recorded UIDVALIDITY {} and the folder now has {}: nothing is deleted there",
            p.dest_uidvalidity, info.uidvalidity
        ));
        return Ok(s);
    }
    // Our own UIDs from an interrupted rollback: flagged `\Deleted` by us, or already gone.
    let ours: HashMap<u32, u32> = pending
        .map(|p| p.messages.iter().map(|(src, dst)| (*dst, *src)).collect())
        .unwrap_or_default();
    // No size check before the hash: the size recorded is the source's, and a server that
    // turns bare LFs into CRLF changes it without changing the (CRLF-blind) hash.
    let mut want: BTreeMap<u32, (u32, MessageRecord)> = BTreeMap::new();
    for (u, m) in mine {
        if m.dest_uid == 0 {
            // Copied while the destination did not say its UIDs (no UIDPLUS then).
            s.kept.push((
                0,
                format!("source UID {u}: its destination UID was never known"),
            ));
        } else {
            want.insert(m.dest_uid, (*u, *m));
        }
    }
    // A pending entry whose record is somehow below `since` is still finished.
    for (dest, src) in &ours {
        want.entry(*dest).or_insert((
            *src,
            MessageRecord {
                dest_uid: *dest,
                ..MessageRecord::default()
            },
        ));
    }
    if want.is_empty() {
        return Ok(s);
    }
    let uids: Vec<u32> = want.keys().copied().collect();
    let metas: HashMap<u32, _> = dst
        .fetch_meta(&uid_set(&uids), None)
        .await?
        .into_iter()
        .map(|m| (m.uid, m))
        .collect();
    let mut to_hash: Vec<u32> = Vec::new();
    for (dest, (src, rec)) in &want {
        match metas.get(dest) {
            None if ours.contains_key(dest) => s.gone.push((*src, *dest)),
            None => s.kept.push((
                *dest,
                "no longer on the destination (deleted or moved by someone else): its record is kept".into(),
            )),
            Some(m)
                if !ours.contains_key(dest)
                    && m.flags.iter().any(|f| f.eq_ignore_ascii_case("\\Deleted")) =>
            {
                s.kept.push((*dest, "flagged \\Deleted by someone else".into()))
            }
            Some(_) if rec.hash == [0; 32] => {
                s.kept.push((*dest, "no content hash recorded".into()))
            }
            Some(_) => to_hash.push(*dest),
        }
    }
    let mut hashes: HashMap<u32, [u8; 32]> = HashMap::new();
    let (large, small): (Vec<u32>, Vec<u32>) =
        to_hash.iter().partition(|d| want[*d].1.size > LARGE);
    for batch in batches(&small, |d| want[d].1.size) {
        for (uid, body) in dst.fetch_bodies(&batch).await? {
            hashes.insert(uid, content_hash(&body));
        }
    }
    for dest in large {
        if let Some(h) = hash_large(dst, dest).await? {
            hashes.insert(dest, h);
        }
    }
    for dest in &to_hash {
        let (src, rec) = want[dest];
        match hashes.get(dest) {
            Some(h) if *h == rec.hash => s.delete.push((src, *dest, rec.size)),
            Some(_) => s
                .kept
                .push((*dest, "its content is not what mailshift copied".into())),
            None if ours.contains_key(dest) => s.gone.push((src, *dest)),
            None => s.kept.push((*dest, "vanished while being checked".into())),
        }
    }
    let uids: Vec<u32> = s.delete.iter().map(|(_, d, _)| *d).collect();
    for chunk in uids.chunks(HEADER_CHUNK) {
        for (uid, block) in dst.fetch_header_fields(chunk, header::FIELDS).await? {
            s.named.insert(uid, header::parse(&block));
        }
    }
    Ok(s)
}

/// UIDs in groups whose sizes add up to at most [`BODY_BATCH_BYTES`] (one message per group
/// at least).
fn batches(uids: &[u32], size: impl Fn(&u32) -> u64) -> Vec<Vec<u32>> {
    let mut out: Vec<Vec<u32>> = Vec::new();
    let mut bytes = 0;
    for uid in uids {
        match out.last_mut() {
            Some(last) if bytes + size(uid) <= BODY_BATCH_BYTES => last.push(*uid),
            _ => {
                out.push(vec![*uid]);
                bytes = 0;
            }
        }
        bytes += size(uid);
    }
    out
}

/// The content hash of a large message, read in slices; `None` when it is gone.
async fn hash_large(dst: &mut Imap, uid: u32) -> Result<Option<[u8; 32]>, ImapError> {
    let mut h = CrlfHasher::default();
    let mut offset = 0;
    loop {
        let Some(part) = dst.fetch_part(uid, offset, LARGE).await? else {
            return Ok(None);
        };
        h.update(&part);
        offset += part.len() as u64;
        // A short slice is the last one (an empty one too: never loop on a server that
        // sends nothing).
        if (part.len() as u64) < LARGE {
            break;
        }
    }
    Ok(Some(h.finish()))
}

/// Deletes what [`survey`] kept for deletion and forgets it in the state (see the module doc
/// for the order). Refuses without UIDPLUS.
pub async fn execute(
    dst: &mut Imap,
    store: &StateStore,
    resource_id: &str,
    since: u64,
    s: &FolderSurvey,
) -> Result<(), String> {
    if !s.has_work() {
        return Ok(());
    }
    let at = format!("destination folder {:?}", s.dest);
    if !s.delete.is_empty() {
        if !dst.caps.uidplus {
            return Err(no_uidplus());
        }
        let info = dst
            .open(&s.dest, true)
            .await
            .map_err(|e| format!("{at}: {e}"))?;
        if info.uidvalidity != s.dest_uidvalidity {
            return Err(format!(
                "{at}: its UIDVALIDITY changed while the rollback ran; nothing was deleted there"
            ));
        }
        let pending = PendingRollback {
            since,
            dest_uidvalidity: s.dest_uidvalidity,
            // Those an interrupted rollback already expunged stay listed: killed again before
            // the records are dropped, the next run must still know them for ours.
            messages: s
                .delete
                .iter()
                .map(|(src, dst, _)| (*src, *dst))
                .chain(s.gone.iter().copied())
                .collect(),
        };
        store
            .begin_rollback(resource_id, &s.source, &pending)
            .map_err(|e| e.to_string())?;
        crash_point("rollback-before-expunge");
        let uids: Vec<u32> = s.delete.iter().map(|(_, d, _)| *d).collect();
        dst.expunge_uids(&uids)
            .await
            .map_err(|e| format!("{at}: {e}"))?;
        crash_point("rollback-after-expunge");
    }
    let removed: Vec<u32> = s
        .delete
        .iter()
        .map(|(src, _, _)| *src)
        .chain(s.gone.iter().map(|(src, _)| *src))
        .collect();
    store
        .finish_rollback(resource_id, &s.source, &removed)
        .map_err(|e| e.to_string())
}

/// Debug builds (the tests') are killed here with kill -9 when `MAILSHIFT_TEST_CRASH` names
/// this point: the moments the pending record exists for.
fn crash_point(name: &str) {
    if cfg!(debug_assertions) && std::env::var("MAILSHIFT_TEST_CRASH").is_ok_and(|v| v == name) {
        // A real SIGKILL (no destructor, no flush); abort if `kill` could not be run.
        let _ = std::process::Command::new("kill")
            .args(["-9", &std::process::id().to_string()])
            .status();
        std::process::abort();
    }
}

/// For `apply`: a rollback killed between its expunge and its state update leaves records
/// that claim messages which may be gone; copying on top of them would not converge, so the
/// account waits until the rollback is run again.
pub fn refuse_if_interrupted(
    store: &StateStore,
    resource_id: &str,
    address: &str,
) -> Result<(), crate::error::StepError> {
    match store.pending_rollbacks(resource_id)?.into_iter().next() {
        Some((folder, p)) => Err(crate::error::StepError::state(format!(
            "a rollback of folder {folder:?} was interrupted: run `mailshift rollback PLAN --account {address} --since {}` again to finish it, then apply",
            p.since
        ))),
        None => Ok(()),
    }
}

/// Why a destination without UIDPLUS is refused.
pub fn no_uidplus() -> String {
    "the destination server does not offer UIDPLUS, so it cannot expunge single messages: a plain EXPUNGE would also remove every message the user flagged \\Deleted themselves. Nothing was deleted; delete the messages by hand or ask the provider for UIDPLUS (RFC 4315)".into()
}

/// Why a Gmail destination is refused.
pub fn no_gmail() -> String {
    "the destination is Gmail, where expunging a message from a folder only removes that label: the message would stay in All Mail. Nothing was deleted; rolling back into Gmail is not supported yet".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_stay_under_the_byte_budget_and_keep_every_uid_once() {
        let sizes: HashMap<u32, u64> = HashMap::from([
            (1, 10 * 1024 * 1024),
            (2, 5 * 1024 * 1024),
            (3, 2 * 1024 * 1024),
            (4, 1024),
            (5, 15 * 1024 * 1024),
        ]);
        let got = batches(&[1, 2, 3, 4, 5], |u| sizes[u]);
        assert_eq!(got, vec![vec![1, 2], vec![3, 4], vec![5]]);
        // A message larger than the budget still gets a batch of its own.
        assert_eq!(batches(&[7], |_| 40 * 1024 * 1024), vec![vec![7]]);
        assert!(batches(&[], |_| 1).is_empty());
    }
}
