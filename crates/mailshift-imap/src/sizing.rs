//! What a mail copy has to move, measured before it runs (`plan --refresh`): over the folders
//! the plan's folder rules copy, the messages and bytes the source holds that pass the copy's
//! options (size cap, date window), the part of them past what the records say was copied,
//! and the destination's storage quota (GETQUOTAROOT on INBOX, RFC 9208). Read-only on both
//! sides: LIST, EXAMINE, `UID FETCH 1:* (RFC822.SIZE ...)`, GETQUOTAROOT.
//!
//! Sizes come from the fetch, one short line per message (a few MB for 100,000 messages),
//! not from STATUS=SIZE (RFC 8438), although Dovecot 2.3 offers it: the parser under
//! async-imap (imap-proto 0.17) rejects a STATUS item it does not know, which ends the
//! connection, and a folder's total cannot leave out what `max_message_size` or a date window
//! skip, nor what an incremental run already copied. The per-message sizes can. From Gmail,
//! All Mail counts only its archived messages (X-GM-LABELS, as the copy tells them), so a
//! message is counted once.

use std::collections::BTreeMap;

use super::copy::CopyOptions;
use super::folders::{FolderRules, map_folders};
use super::journal::FolderRecord;
use super::session::{Imap, Target, uid_set};

/// UIDs per X-GM-LABELS fetch: a command line of a few KB.
const LABEL_CHUNK: usize = 1000;

/// A mail copy's size, measured on both mailboxes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sizing {
    /// Source folders the copy takes.
    pub folders: usize,
    /// Messages (and their bytes) in those folders that the copy's options let through.
    pub messages: u64,
    pub bytes: u64,
    /// Of those, the ones no earlier run copied: what the next run moves.
    pub to_move_messages: u64,
    pub to_move_bytes: u64,
    /// The destination's storage quota from GETQUOTAROOT INBOX, in bytes: (used, limit).
    /// `None` when the server has no QUOTA extension or sets no storage limit.
    pub dest_quota: Option<(u64, u64)>,
}

/// Measures the copy of one account. `records` are the copy's folder records (empty without
/// state); a folder whose UIDVALIDITY changed since its record counts as all to move (the
/// copy re-matches it by content: its bytes are read again, few are sent). Without `dest`
/// (an account not created yet), the folders are mapped onto an empty mailbox and no quota
/// is read.
pub async fn measure(
    source: &Target,
    dest: Option<&Target>,
    rules: &FolderRules,
    options: &CopyOptions,
    records: &BTreeMap<String, FolderRecord>,
) -> Result<Sizing, String> {
    let mut src = Imap::connect(source)
        .await
        .map_err(|e| format!("source: {e}"))?;
    let source_folders = src.list().await.map_err(|e| format!("source: {e}"))?;
    let (dest_folders, dest_quota) = match dest {
        Some(dest) => {
            let mut dst = Imap::connect(dest)
                .await
                .map_err(|e| format!("destination: {e}"))?;
            let folders = dst.list().await.map_err(|e| format!("destination: {e}"))?;
            let quota = dst
                .storage_quota("INBOX")
                .await
                .map_err(|e| format!("destination: {e}"))?;
            dst.logout().await;
            (folders, quota)
        }
        None => (Vec::new(), None),
    };
    let mapping = map_folders(&source_folders, &dest_folders, rules).map_err(|e| e.to_string())?;
    let mut sizing = Sizing {
        folders: mapping.copy.len(),
        dest_quota,
        ..Sizing::default()
    };
    for f in &mapping.copy {
        let info = src
            .open(&f.source, false)
            .await
            .map_err(|e| format!("source: {e}"))?;
        if info.exists == 0 {
            continue;
        }
        // Copied up to this UID, if the record still describes this folder.
        let copied_up_to = records
            .get(&f.path)
            .filter(|r| r.source_uidvalidity == info.uidvalidity)
            .map_or(0, |r| r.highest_uid);
        let mut metas = src
            .fetch_meta("1:*", None)
            .await
            .map_err(|e| format!("source: {e}"))?;
        // Gmail's All Mail: only the archived messages are copied from it (the others come
        // from their label's folder), so only they count, as the copy tells them: by labels.
        if let (Some(filter), true) = (&f.archive, src.caps.gmail) {
            let uids: Vec<u32> = metas.iter().map(|m| m.uid).collect();
            let mut kept = std::collections::HashSet::new();
            for chunk in uids.chunks(LABEL_CHUNK) {
                for g in src
                    .fetch_gmail(&uid_set(chunk))
                    .await
                    .map_err(|e| format!("source: {e}"))?
                {
                    if filter.keeps(&g.labels) {
                        kept.insert(g.uid);
                    }
                }
            }
            metas.retain(|m| kept.contains(&m.uid));
        }
        for m in metas {
            if !(options.size_ok(&m) && options.in_date_window(&m)) {
                continue;
            }
            sizing.messages += 1;
            sizing.bytes += u64::from(m.size);
            if m.uid > copied_up_to {
                sizing.to_move_messages += 1;
                sizing.to_move_bytes += u64::from(m.size);
            }
        }
    }
    src.logout().await;
    Ok(sizing)
}
