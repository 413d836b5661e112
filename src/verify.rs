//! Verification: does each destination folder hold exactly what its source folders hold, and
//! which messages differ? The source is an IMAP mailbox ([`verify_account`]), one account's
//! tree of mail files ([`verify_files`], named and mapped as the import does; files it cannot
//! import are listed as skipped, with why), or a POP3 maildrop ([`verify_pop3`]: one folder,
//! `INBOX`, mapped as the POP3 copy maps it; each message read whole with RETR, as an IMAP
//! source's bodies are, so a renumbering of its UIDLs changes nothing here).
//!
//! Per destination folder, the messages of its source folders (with the plan's size and date
//! filters applied, so skipped messages are not "missing") are matched with the
//! destination's by content hash, as a multiset: two identical source messages must be two
//! destination messages. What is left over is named: a source message whose Message-ID is
//! found among the unmatched destination messages is *changed*, the others are *missing*
//! (source side) or *extra* (destination side). Matched pairs are then compared on flags,
//! keywords and internal date, reported apart from content: the mail is there, its state is
//! not. Flags the destination cannot keep (`\Recent`, keywords without `\*` in its
//! PERMANENTFLAGS: the copy drops them the same way) are not differences.
//!
//! Gmail ([`crate::transfer::imap::folders::Gmail`]): from Gmail, the folders compared are
//! the copy's (label folders, and All Mail's archived messages only, against the archive
//! folder; never All Mail, Important or Starred whole). To Gmail, which keeps one message per
//! Message-ID in a label, a source message whose Message-ID the destination folder holds is
//! *merged* (counted apart, not missing) when its identical twin took its place; and All Mail
//! as a destination folder holds every message, so nothing there is *extra*.
//!
//! Messages are named by folder, UID, Message-ID, Date and Subject, the last three from a
//! header-fields fetch of only the messages listed. Lists are capped per folder and kind
//! (the counts are always complete). Nothing is written anywhere: the source is EXAMINEd;
//! the destination is SELECTed, because only a read-write open reports which flags it can
//! store, and nothing is stored.

pub mod header;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use serde::Serialize;

use crate::transfer::imap::copy::{
    CopyOptions, CrlfHasher, LARGE_MESSAGE, content_hash, dest_flags,
};
use crate::transfer::imap::files::headers::read_header;
use crate::transfer::imap::files::{SourceFolder, Tree};
use crate::transfer::imap::folders::{
    ArchiveFilter, FolderRules, Mapping, RemoteFolder, map_folders,
};
use crate::transfer::imap::pop3::Pop3;
use crate::transfer::imap::pop3::triage::refusal_key;
use crate::transfer::imap::session::{FolderInfo, Imap, ImapError, MessageMeta, Target, uid_set};

/// Bodies fetched per command while hashing: bounds memory on big mailboxes.
const CHUNK: usize = 50;
const SLICE: u64 = 4 * 1024 * 1024;
/// Messages per header-fields fetch: keeps the command line short.
const HEADER_CHUNK: usize = 500;

/// Messages listed per folder and kind of difference unless told otherwise.
pub const DEFAULT_LIST_LIMIT: usize = 50;

/// One message, as a report names it.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct MessageRef {
    /// Its folder on its own side (unicode path).
    pub folder: String,
    pub uid: u32,
    pub message_id: Option<String>,
    /// The Date header, as the sender wrote it.
    pub date: Option<String>,
    pub subject: Option<String>,
    pub size: u64,
    /// IMAP internal date, e.g. `01-Mar-2024 10:00:00 +0000`.
    pub internal_date: Option<String>,
    pub flags: Vec<String>,
}

/// A source message and its destination counterpart.
#[derive(Debug, Clone, Serialize)]
pub struct Pair {
    pub source: MessageRef,
    pub destination: MessageRef,
}

/// Same content, other flags or keywords.
#[derive(Debug, Clone, Serialize)]
pub struct FlagDifference {
    pub source: MessageRef,
    pub destination: MessageRef,
    /// On the source (and storable on the destination) but not on the destination.
    pub lost: Vec<String>,
    /// On the destination but not on the source.
    pub added: Vec<String>,
}

/// A source message the copy left out on purpose, with its reason (the destination refused
/// it on APPEND). Reported apart from `missing`; still counts as content not on the
/// destination.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub source: MessageRef,
    pub reason: String,
}

/// A count and the first messages of it (at most the report's list limit).
#[derive(Debug, Clone, Serialize)]
pub struct Listed<T> {
    pub count: u64,
    pub listed: Vec<T>,
}

impl<T> Default for Listed<T> {
    fn default() -> Self {
        Listed {
            count: 0,
            listed: Vec::new(),
        }
    }
}

impl<T> Listed<T> {
    /// Counts `item`, and keeps it while fewer than `limit` are listed.
    pub fn push(&mut self, item: T, limit: usize) {
        self.count += 1;
        if self.listed.len() < limit {
            self.listed.push(item);
        }
    }

    /// How many are counted but not listed.
    pub fn unlisted(&self) -> u64 {
        self.count - self.listed.len() as u64
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct FolderCheck {
    /// Destination folder (unicode path).
    pub folder: String,
    /// Source folders that land there.
    pub sources: Vec<String>,
    pub source_messages: u64,
    pub source_bytes: u64,
    pub dest_messages: u64,
    pub dest_bytes: u64,
    /// Source messages not on the destination.
    pub missing: Listed<MessageRef>,
    /// Destination messages not on the source.
    pub extra: Listed<MessageRef>,
    /// A source message whose destination copy (same Message-ID) has other content.
    pub changed: Listed<Pair>,
    /// Source messages the copy skipped, with why.
    pub skipped: Listed<Skipped>,
    /// Same content, other flags or keywords.
    pub flags: Listed<FlagDifference>,
    /// Same content, another internal date.
    pub internal_dates: Listed<Pair>,
    /// To Gmail: source messages the destination holds as one message with another of the
    /// same Message-ID (Gmail keeps one per Message-ID in a label): on the destination, not
    /// missing.
    #[serde(skip_serializing_if = "is_zero")]
    pub merged: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl FolderCheck {
    /// Every source message is on the destination, byte for byte, and nothing else is.
    pub fn content_ok(&self) -> bool {
        self.missing.count == 0
            && self.extra.count == 0
            && self.changed.count == 0
            && self.skipped.count == 0
    }

    /// The matched messages carry the same flags, keywords and internal dates.
    pub fn metadata_ok(&self) -> bool {
        self.flags.count == 0 && self.internal_dates.count == 0
    }

    pub fn ok(&self) -> bool {
        self.content_ok() && self.metadata_ok()
    }

    /// Source messages whose content is not on the destination (missing, changed, skipped).
    pub fn not_on_destination(&self) -> u64 {
        self.missing.count + self.changed.count + self.skipped.count
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AccountCheck {
    pub account: String,
    pub folders: Vec<FolderCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl AccountCheck {
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.folders.iter().all(FolderCheck::ok)
    }

    pub fn content_ok(&self) -> bool {
        self.error.is_none() && self.folders.iter().all(FolderCheck::content_ok)
    }
}

/// One message as read for comparison.
struct Msg {
    /// Index of its source folder (always 0 on the destination side).
    folder: usize,
    uid: u32,
    size: u64,
    flags: Vec<String>,
    internal_date: Option<String>,
    hash: [u8; 32],
}

impl Msg {
    fn named(&self, folder: &str, named: Option<&header::Named>) -> MessageRef {
        let named = named.cloned().unwrap_or_default();
        MessageRef {
            folder: folder.to_string(),
            uid: self.uid,
            message_id: named.message_id,
            date: named.date,
            subject: named.subject,
            size: self.size,
            internal_date: self.internal_date.clone(),
            // `\Recent` belongs to a session (verify's own), not to the message.
            flags: self
                .flags
                .iter()
                .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
                .cloned()
                .collect(),
        }
    }
}

/// Hashes every message of `name` (the plan's filters applied when given), returning them
/// in UID order.
async fn read_folder(
    imap: &mut Imap,
    name: &str,
    write: bool,
    folder: usize,
    filter: Option<&CopyOptions>,
) -> Result<(FolderInfo, Vec<Msg>), ImapError> {
    let info = imap.open(name, write).await?;
    let mut out = Vec::new();
    if info.exists == 0 {
        return Ok((info, out));
    }
    let metas: Vec<MessageMeta> = imap
        .fetch_meta("1:*", None)
        .await?
        .into_iter()
        .filter(|m| filter.is_none_or(|o| o.size_ok(m) && o.in_date_window(m)))
        .collect();
    let msg = |m: &MessageMeta, size: u64, hash: [u8; 32]| Msg {
        folder,
        uid: m.uid,
        size,
        flags: m.flags.clone(),
        internal_date: m.internal_date.clone(),
        hash,
    };
    // Large messages are hashed slice by slice, as apply copies them: memory stays bounded.
    let (large, small): (Vec<_>, Vec<_>) = metas
        .iter()
        .partition(|m| u64::from(m.size) > LARGE_MESSAGE);
    for m in large {
        let mut hasher = CrlfHasher::default();
        let mut len = 0u64;
        // A message expunged meanwhile is simply not there.
        while let Some(part) = imap.fetch_part(m.uid, len, SLICE).await? {
            hasher.update(&part);
            len += part.len() as u64;
            if (part.len() as u64) < SLICE {
                out.push(msg(m, len, hasher.finish()));
                break;
            }
        }
    }
    let by_uid: HashMap<u32, &MessageMeta> = small.iter().map(|m| (m.uid, *m)).collect();
    let wanted: Vec<u32> = small.iter().map(|m| m.uid).collect();
    for chunk in wanted.chunks(CHUNK) {
        for (uid, body) in imap.fetch_bodies(chunk).await? {
            if let Some(m) = by_uid.get(&uid) {
                out.push(msg(m, body.len() as u64, content_hash(&body)));
            }
        }
    }
    out.sort_by_key(|m| m.uid);
    Ok((info, out))
}

/// Header fields of `uids` in the open folder, parsed.
async fn names(imap: &mut Imap, uids: &[u32]) -> Result<HashMap<u32, header::Named>, ImapError> {
    let mut out = HashMap::new();
    let mut uids = uids.to_vec();
    uids.sort_unstable();
    uids.dedup();
    for chunk in uids.chunks(HEADER_CHUNK) {
        for (uid, block) in imap.fetch_header_fields(chunk, header::FIELDS).await? {
            out.insert(uid, header::parse(&block));
        }
    }
    Ok(out)
}

/// What a flag comparison looks at: lower-cased (flags and keywords are case-insensitive),
/// sorted, without `\Recent` (which belongs to a session, not a message).
fn flag_set(flags: &[String]) -> Vec<String> {
    let mut out: Vec<String> = flags
        .iter()
        .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
        .map(|f| f.to_ascii_lowercase())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The flags a copy to a folder reporting `info` would carry for a source message: those
/// the destination cannot store are no difference.
fn expected_flags(flags: &[String], info: &FolderInfo) -> Vec<String> {
    flag_set(&dest_flags(flags, info))
}

/// An internal date as an instant (the same moment may be written in another zone).
fn instant(date: Option<&str>) -> Option<i64> {
    chrono::DateTime::parse_from_str(date?.trim(), "%d-%b-%Y %H:%M:%S %z")
        .ok()
        .map(|d| d.timestamp())
}

/// Pairs the source and destination messages of one content hash. Pairs whose flags and
/// date already agree are made first, so that two identical messages with different flags
/// are not reported as two differences when swapping them gives none.
fn pair_group(
    src: &[usize],
    dst: &[usize],
    src_key: &dyn Fn(usize) -> (Vec<String>, Option<i64>),
    dst_key: &dyn Fn(usize) -> (Vec<String>, Option<i64>),
) -> (Vec<(usize, usize)>, Vec<usize>, Vec<usize>) {
    let mut pairs = Vec::new();
    let mut free: HashMap<(Vec<String>, Option<i64>), VecDeque<usize>> = HashMap::new();
    for &d in dst {
        free.entry(dst_key(d)).or_default().push_back(d);
    }
    let mut left_src = Vec::new();
    for &s in src {
        match free.get_mut(&src_key(s)).and_then(VecDeque::pop_front) {
            Some(d) => pairs.push((s, d)),
            None => left_src.push(s),
        }
    }
    let mut left_dst: Vec<usize> = free.into_values().flatten().collect();
    left_dst.sort_unstable();
    let n = left_src.len().min(left_dst.len());
    pairs.extend(left_src.iter().copied().zip(left_dst.iter().copied()));
    (pairs, left_src[n..].to_vec(), left_dst[n..].to_vec())
}

/// Messages the copy left out because the destination refused them, by (source folder path,
/// source UID), with the destination's words: from the state's refused table.
pub type Refused = HashMap<(String, u32), String>;

/// Compares one account's mailboxes, listing at most `limit` messages per folder and kind
/// of difference. Connection problems are reported in `error`.
pub async fn verify_account(
    account: &str,
    source: &Target,
    dest: &Target,
    rules: &FolderRules,
    options: &CopyOptions,
    limit: usize,
    refused: &Refused,
) -> AccountCheck {
    match verify_inner(source, dest, rules, options, limit, refused).await {
        Ok(folders) => AccountCheck {
            account: account.to_string(),
            folders,
            error: None,
        },
        Err(e) => AccountCheck {
            account: account.to_string(),
            folders: Vec::new(),
            error: Some(e),
        },
    }
}

async fn verify_inner(
    source: &Target,
    dest: &Target,
    rules: &FolderRules,
    options: &CopyOptions,
    limit: usize,
    refused: &Refused,
) -> Result<Vec<FolderCheck>, String> {
    let mut src = Imap::connect(source).await.map_err(|e| e.to_string())?;
    let mut dst = Imap::connect(dest).await.map_err(|e| e.to_string())?;
    let sl = src.list().await.map_err(|e| e.to_string())?;
    let dl = dst.list().await.map_err(|e| e.to_string())?;
    // As the copy does: a server that says it is Gmail is Gmail.
    let mut rules = rules.clone();
    rules.gmail.source |= src.caps.gmail;
    rules.gmail.dest |= dst.caps.gmail;
    let mapping = map_folders(&sl, &dl, &rules).map_err(|e| e.to_string())?;
    let mut side = SourceSide::Imap(&mut src);
    let out = check_all(&mut side, &mut dst, &dl, &mapping, options, limit, refused).await;
    src.logout().await;
    dst.logout().await;
    out
}

/// Every destination folder of `mapping` against its source folders.
async fn check_all(
    src: &mut SourceSide<'_>,
    dst: &mut Imap,
    dl: &[RemoteFolder],
    mapping: &Mapping,
    options: &CopyOptions,
    limit: usize,
    refused: &Refused,
) -> Result<Vec<FolderCheck>, String> {
    let mut by_dest: BTreeMap<(String, String), Vec<SourceFolderRef>> = BTreeMap::new();
    for f in &mapping.copy {
        by_dest
            .entry((f.dest_path.clone(), f.dest.clone()))
            .or_default()
            .push((f.path.clone(), f.source.clone(), f.archive.clone()));
    }
    let existing: HashSet<&str> = dl.iter().map(|f| f.name.as_str()).collect();
    let gmail_all: HashSet<&str> = dl
        .iter()
        .filter(|f| f.attributes.iter().any(|a| a.eq_ignore_ascii_case("\\All")))
        .map(|f| f.name.as_str())
        .collect();
    let mut out = Vec::new();
    for ((dest_path, dest_raw), sources) in by_dest {
        let dest = DestFolder {
            path: &dest_path,
            raw: &dest_raw,
            exists: existing.contains(dest_raw.as_str()),
            gmail: dst.caps.gmail,
            all_mail: dst.caps.gmail && gmail_all.contains(dest_raw.as_str()),
        };
        let check = check_folder(src, dst, dest, &sources, options, limit, refused)
            .await
            .map_err(|e| e.to_string())?;
        out.push(check);
    }
    Ok(out)
}

/// A source folder of a destination folder: (path, raw name, from Gmail's All Mail the
/// filter keeping only its archived messages).
type SourceFolderRef = (String, String, Option<ArchiveFilter>);

/// The destination folder of a check, and what it is on a Gmail destination.
struct DestFolder<'a> {
    path: &'a str,
    raw: &'a str,
    exists: bool,
    gmail: bool,
    /// Gmail's All Mail: every message of the account is there.
    all_mail: bool,
}

/// Where a check reads its source folders from: an IMAP server (by raw name), one
/// account's tree of mail files (by folder path), or a POP3 maildrop (its one folder).
enum SourceSide<'a> {
    Imap(&'a mut Imap),
    Files(&'a Tree),
    Pop3(Maildrop<'a>),
}

/// A POP3 maildrop as a verify's source: its messages are numbered by the session (their
/// "UID" in the report is the message number `LIST` gives), and their header fields are kept
/// from the one RETR that hashed them, so naming a missing message costs no second fetch.
struct Maildrop<'a> {
    pop: &'a mut Pop3,
    named: HashMap<u32, header::Named>,
    /// The copy's refusals, by [`refusal_key`] of the UIDL, with the destination's words.
    refusals: &'a HashMap<u32, String>,
    /// Those refusals by this session's message number.
    refused: HashMap<u32, String>,
}

impl Maildrop<'_> {
    /// Every message of the maildrop, hashed, the plan's filters applied as the POP3 copy
    /// applies them: the size `LIST` gives, and the date of its `Date` header (POP3 has no
    /// arrival date; the copy stores the message under that date).
    async fn read(&mut self, folder: usize, options: &CopyOptions) -> Result<Vec<Msg>, ImapError> {
        let meta = |number: u32, size: u64, date: Option<String>| MessageMeta {
            uid: number,
            size: u32::try_from(size).unwrap_or(u32::MAX),
            flags: Vec::new(),
            internal_date: date,
            modseq: None,
        };
        let listing = self.pop.listing().await?;
        for l in &listing {
            if let Some(reason) = self.refusals.get(&refusal_key(&l.uidl)) {
                self.refused.insert(l.number, reason.clone());
            }
        }
        let wanted: Vec<u32> = listing
            .into_iter()
            .filter(|l| options.size_ok(&meta(l.number, l.size, None)))
            .map(|l| l.number)
            .collect();
        let mut out = Vec::new();
        // A chunk's bodies at a time in memory; pipelined where the server allows it.
        for chunk in wanted.chunks(CHUNK) {
            let (bodies, err) = self.pop.fetch_each(chunk, false).await;
            if let Some(e) = err {
                return Err(e);
            }
            for (&number, body) in chunk.iter().zip(bodies) {
                let date = read_header(&body).date;
                if !options.in_date_window(&meta(number, 0, date.clone())) {
                    continue;
                }
                self.named.insert(number, header::parse(&body));
                out.push(Msg {
                    folder,
                    uid: number,
                    size: body.len() as u64,
                    flags: Vec::new(),
                    internal_date: date,
                    hash: content_hash(&body),
                });
            }
        }
        Ok(out)
    }
}

impl SourceSide<'_> {
    /// Whether the source's messages carry flags to compare: a POP3 maildrop has none, and
    /// what its copies carry on the destination (`\Seen` once read there) is the user's.
    fn carries_flags(&self) -> bool {
        !matches!(self, SourceSide::Pop3(_))
    }

    /// Why the copy left out source message `uid`, when the source side knows it itself (a
    /// maildrop's refusals are keyed by UIDL, known only once it is listed).
    fn refusal(&self, uid: u32) -> Option<String> {
        match self {
            SourceSide::Pop3(maildrop) => maildrop.refused.get(&uid).cloned(),
            _ => None,
        }
    }

    /// Every message of one source folder, hashed, the plan's filters applied; files that
    /// cannot be imported come back apart, with why.
    async fn read(
        &mut self,
        raw: &str,
        folder: usize,
        options: &CopyOptions,
        archive: Option<&ArchiveFilter>,
    ) -> Result<(Vec<Msg>, Vec<(Msg, String)>), ImapError> {
        match self {
            SourceSide::Imap(src) => {
                let (_, mut msgs) = read_folder(src, raw, false, folder, Some(options)).await?;
                if let Some(filter) = archive {
                    let uids: Vec<u32> = msgs.iter().map(|m| m.uid).collect();
                    let mut kept = HashSet::new();
                    for chunk in uids.chunks(HEADER_CHUNK) {
                        for g in src.fetch_gmail(&uid_set(chunk)).await? {
                            if filter.keeps(&g.labels) {
                                kept.insert(g.uid);
                            }
                        }
                    }
                    msgs.retain(|m| kept.contains(&m.uid));
                }
                Ok((msgs, Vec::new()))
            }
            SourceSide::Files(tree) => Ok(read_files(tree, raw, folder, options)),
            SourceSide::Pop3(maildrop) => Ok((maildrop.read(folder, options).await?, Vec::new())),
        }
    }

    /// The header fields of `uids` of one source folder.
    async fn names(
        &mut self,
        raw: &str,
        uids: &[u32],
    ) -> Result<HashMap<u32, header::Named>, ImapError> {
        match self {
            SourceSide::Imap(src) => {
                src.open(raw, false).await?;
                names(src, uids).await
            }
            SourceSide::Files(tree) => Ok(file_names(tree, raw, uids)),
            SourceSide::Pop3(maildrop) => Ok(uids
                .iter()
                .filter_map(|u| Some((*u, maildrop.named.get(u)?.clone())))
                .collect()),
        }
    }
}

/// The source folder of a tree a raw (LIST) name stands for.
fn tree_folder<'t>(tree: &'t Tree, raw: &str) -> Option<&'t SourceFolder> {
    tree.remote_folders()
        .iter()
        .position(|r| r.name == raw)
        .map(|i| &tree.folders[i])
}

/// [`SourceSide::read`] of a tree: a folder whose files cannot be read counts as empty here
/// (the copy reports it).
fn read_files(
    tree: &Tree,
    raw: &str,
    folder: usize,
    options: &CopyOptions,
) -> (Vec<Msg>, Vec<(Msg, String)>) {
    let (mut msgs, mut bad) = (Vec::new(), Vec::new());
    let Some(f) = tree_folder(tree, raw) else {
        return (msgs, bad);
    };
    let scanned = match tree.read_folder(f) {
        Ok(s) => s,
        Err(e) => {
            let msg = Msg {
                folder,
                uid: 0,
                size: 0,
                flags: Vec::new(),
                internal_date: None,
                hash: [0; 32],
            };
            bad.push((msg, e));
            return (msgs, bad);
        }
    };
    for (i, m) in scanned.into_iter().enumerate() {
        let meta = MessageMeta {
            uid: i as u32 + 1,
            size: u32::try_from(m.size).unwrap_or(u32::MAX),
            flags: m.flags.clone(),
            internal_date: m.internal_date.clone(),
            modseq: None,
        };
        if m.deleted || !(options.size_ok(&meta) && options.in_date_window(&meta)) {
            continue;
        }
        let msg = Msg {
            folder,
            uid: meta.uid,
            size: m.size,
            flags: m.flags,
            internal_date: m.internal_date,
            hash: m.hash,
        };
        match m.problem {
            Some(why) => bad.push((msg, why)),
            None => msgs.push(msg),
        }
    }
    (msgs, bad)
}

/// [`SourceSide::names`] of a tree: each message's header read from its file.
fn file_names(tree: &Tree, raw: &str, uids: &[u32]) -> HashMap<u32, header::Named> {
    let mut out = HashMap::new();
    let Some(f) = tree_folder(tree, raw) else {
        return out;
    };
    let Ok(scanned) = tree.read_folder(f) else {
        return out;
    };
    for &uid in uids {
        if let Some(m) = scanned.get((uid as usize).wrapping_sub(1))
            && let Ok(bytes) = tree.message(f, m)
        {
            out.insert(uid, header::parse(&bytes));
        }
    }
    out
}

/// Compares one account's mail files with its destination mailbox, as [`verify_account`]
/// compares two mailboxes: the tree's folders are named and mapped as the import maps them,
/// each message's identity is its content hash.
pub async fn verify_files(
    account: &str,
    root: &std::path::Path,
    dest: &Target,
    rules: &FolderRules,
    options: &CopyOptions,
    limit: usize,
    refused: &Refused,
) -> AccountCheck {
    let out = async {
        let tree = Tree::scan(root)?;
        let mut dst = Imap::connect(dest).await.map_err(|e| e.to_string())?;
        let dl = dst.list().await.map_err(|e| e.to_string())?;
        let mapping = map_folders(&tree.remote_folders(), &dl, rules).map_err(|e| e.to_string())?;
        let mut side = SourceSide::Files(&tree);
        let out = check_all(&mut side, &mut dst, &dl, &mapping, options, limit, refused).await;
        dst.logout().await;
        out
    }
    .await;
    match out {
        Ok(folders) => AccountCheck {
            account: account.to_string(),
            folders,
            error: None,
        },
        Err(e) => AccountCheck {
            account: account.to_string(),
            folders: Vec::new(),
            error: Some(e),
        },
    }
}

/// Compares one account's POP3 maildrop with its destination folder (`INBOX`, or where the
/// plan's folder rules map `INBOX`), as [`verify_account`] compares two mailboxes: each
/// message's identity is its content hash, matched as a multiset; flags are not compared
/// (POP3 has none). `refusals` are the copy's (by [`refusal_key`]), listed as skipped.
pub async fn verify_pop3(
    account: &str,
    source: &Target,
    dest: &Target,
    rules: &FolderRules,
    options: &CopyOptions,
    limit: usize,
    refusals: &HashMap<u32, String>,
) -> AccountCheck {
    let out = async {
        let mut pop = Pop3::connect(source).await.map_err(|e| e.to_string())?;
        let mut dst = Imap::connect(dest).await.map_err(|e| e.to_string())?;
        let dl = dst.list().await.map_err(|e| e.to_string())?;
        // The maildrop is one folder named INBOX, as the POP3 copy names it.
        let inbox = [RemoteFolder {
            name: "INBOX".into(),
            delimiter: Some('/'),
            attributes: Vec::new(),
        }];
        let mut rules = rules.clone();
        rules.gmail.dest |= dst.caps.gmail;
        let mapping = map_folders(&inbox, &dl, &rules).map_err(|e| e.to_string())?;
        let mut side = SourceSide::Pop3(Maildrop {
            pop: &mut pop,
            named: HashMap::new(),
            refusals,
            refused: HashMap::new(),
        });
        // Its refusals are the maildrop's to name (by UIDL), not the table's by UID.
        let out = check_all(
            &mut side,
            &mut dst,
            &dl,
            &mapping,
            options,
            limit,
            &Refused::new(),
        )
        .await;
        pop.quit().await;
        dst.logout().await;
        out
    }
    .await;
    match out {
        Ok(folders) => AccountCheck {
            account: account.to_string(),
            folders,
            error: None,
        },
        Err(e) => AccountCheck {
            account: account.to_string(),
            folders: Vec::new(),
            error: Some(e),
        },
    }
}

/// One destination folder against its source folders.
async fn check_folder(
    src: &mut SourceSide<'_>,
    dst: &mut Imap,
    dest: DestFolder<'_>,
    sources: &[SourceFolderRef],
    options: &CopyOptions,
    limit: usize,
    refused: &Refused,
) -> Result<FolderCheck, ImapError> {
    let (dest_path, dest_raw, dest_exists) = (dest.path, dest.raw, dest.exists);
    let mut check = FolderCheck {
        folder: dest_path.to_string(),
        sources: sources.iter().map(|(p, _, _)| p.clone()).collect(),
        ..FolderCheck::default()
    };
    let mut smsgs: Vec<Msg> = Vec::new();
    let mut unreadable: Vec<(Msg, String)> = Vec::new();
    for (i, (_, raw, archive)) in sources.iter().enumerate() {
        let (msgs, bad) = src.read(raw, i, options, archive.as_ref()).await?;
        smsgs.extend(msgs);
        unreadable.extend(bad);
    }
    let (dinfo, dmsgs) = if dest_exists {
        read_folder(dst, dest_raw, true, 0, None).await?
    } else {
        (FolderInfo::default(), Vec::new())
    };
    check.source_messages = smsgs.len() as u64;
    check.source_bytes = smsgs.iter().map(|m| m.size).sum();
    check.dest_messages = dmsgs.len() as u64;
    check.dest_bytes = dmsgs.iter().map(|m| m.size).sum();

    // What the destination should carry for each source message, and what it does carry.
    let src_key = |i: usize| {
        let m = &smsgs[i];
        (
            expected_flags(&m.flags, &dinfo),
            instant(m.internal_date.as_deref()),
        )
    };
    let dst_key = |i: usize| {
        let m = &dmsgs[i];
        (flag_set(&m.flags), instant(m.internal_date.as_deref()))
    };
    let mut groups: HashMap<[u8; 32], (Vec<usize>, Vec<usize>)> = HashMap::new();
    for (i, m) in smsgs.iter().enumerate() {
        groups.entry(m.hash).or_default().0.push(i);
    }
    for (i, m) in dmsgs.iter().enumerate() {
        groups.entry(m.hash).or_default().1.push(i);
    }
    let (mut pairs, mut missing, mut extra) = (Vec::new(), Vec::new(), Vec::new());
    for (s, d) in groups.values() {
        let (p, ls, ld) = pair_group(s, d, &src_key, &dst_key);
        pairs.extend(p);
        missing.extend(ls);
        extra.extend(ld);
    }
    // Source order (folder, UID) everywhere: the first `limit` listed are stable run to run.
    let src_order = |i: &usize| (smsgs[*i].folder, smsgs[*i].uid);
    missing.sort_by_key(src_order);
    extra.sort_by_key(|i| dmsgs[*i].uid);
    pairs.sort_by_key(|(s, _)| src_order(s));
    let carries_flags = src.carries_flags();
    let flag_pairs: Vec<(usize, usize)> = pairs
        .iter()
        .copied()
        .filter(|(s, d)| carries_flags && src_key(*s).0 != dst_key(*d).0)
        .collect();
    let date_pairs: Vec<(usize, usize)> = pairs
        .iter()
        .copied()
        .filter(|(s, d)| matches!((src_key(*s).1, dst_key(*d).1), (Some(a), Some(b)) if a != b))
        .collect();

    // Names are read for what will be listed; all unmatched ones when both sides have some,
    // since a Message-ID found on both sides makes a changed message.
    // Gmail's All Mail holds every message of the account: only what should be there counts.
    if dest.all_mail {
        extra.clear();
    }
    let all = !missing.is_empty() && (!extra.is_empty() || dest.gmail);
    let take = |v: &[usize]| -> Vec<usize> {
        if all {
            v.to_vec()
        } else {
            v.iter().copied().take(limit).collect()
        }
    };
    let dest_names = if dest_exists {
        let uids: Vec<u32> = take(&extra).iter().map(|i| dmsgs[*i].uid).collect();
        names(dst, &uids).await?
    } else {
        HashMap::new()
    };
    let mut wanted: Vec<usize> = take(&missing);
    for list in [&flag_pairs, &date_pairs] {
        wanted.extend(list.iter().take(limit).map(|(s, _)| *s));
    }
    let mut src_names: HashMap<(usize, u32), header::Named> = HashMap::new();
    for (fi, (_, raw, _)) in sources.iter().enumerate() {
        let uids: Vec<u32> = wanted
            .iter()
            .filter(|i| smsgs[**i].folder == fi)
            .map(|i| smsgs[*i].uid)
            .collect();
        if uids.is_empty() {
            continue;
        }
        for (uid, named) in src.names(raw, &uids).await? {
            src_names.insert((fi, uid), named);
        }
    }
    let sref = |i: usize| {
        let m = &smsgs[i];
        m.named(&sources[m.folder].0, src_names.get(&(m.folder, m.uid)))
    };
    let dref = |i: usize, named: Option<&header::Named>| dmsgs[i].named(dest_path, named);

    // A Message-ID on both sides of the leftovers: the same message, altered.
    let mut by_id: HashMap<&str, VecDeque<usize>> = HashMap::new();
    for &d in &extra {
        if let Some(id) = dest_names
            .get(&dmsgs[d].uid)
            .and_then(|n| n.message_id.as_deref())
        {
            by_id.entry(id).or_default().push_back(d);
        }
    }
    // To Gmail: the Message-IDs the destination folder holds, for the merged ones.
    let gmail_ids: HashSet<String> = if dest.gmail && dest_exists && !missing.is_empty() {
        let uids: Vec<u32> = dmsgs.iter().map(|m| m.uid).collect();
        names(dst, &uids)
            .await?
            .into_values()
            .filter_map(|n| n.message_id)
            .collect()
    } else {
        HashSet::new()
    };
    let mut changed_dest = HashSet::new();
    for &s in &missing {
        let m = &smsgs[s];
        let id = src_names
            .get(&(m.folder, m.uid))
            .and_then(|n| n.message_id.as_deref());
        if id.is_some_and(|id| gmail_ids.contains(id) && !by_id.contains_key(id)) {
            check.merged += 1;
            continue;
        }
        // Left out on purpose, and said so by the copy: not "missing".
        let reason = refused
            .get(&(sources[m.folder].0.clone(), m.uid))
            .cloned()
            .or_else(|| src.refusal(m.uid));
        if let Some(reason) = reason {
            let skipped = Skipped {
                source: sref(s),
                reason,
            };
            check.skipped.push(skipped, limit);
            continue;
        }
        let id = src_names
            .get(&(m.folder, m.uid))
            .and_then(|n| n.message_id.as_deref());
        match id.and_then(|id| by_id.get_mut(id)?.pop_front()) {
            Some(d) => {
                changed_dest.insert(d);
                let destination = dref(d, dest_names.get(&dmsgs[d].uid));
                check.changed.push(
                    Pair {
                        source: sref(s),
                        destination,
                    },
                    limit,
                );
            }
            None => check.missing.push(sref(s), limit),
        }
    }
    for &d in extra.iter().filter(|d| !changed_dest.contains(*d)) {
        check
            .extra
            .push(dref(d, dest_names.get(&dmsgs[d].uid)), limit);
    }
    for &(s, d) in &flag_pairs {
        let (want, have) = (dest_flags(&smsgs[s].flags, &dinfo), &dmsgs[d].flags);
        let (want_set, have_set) = (flag_set(&want), flag_set(have));
        let source = sref(s);
        let destination = dref(d, src_names.get(&(smsgs[s].folder, smsgs[s].uid)));
        check.flags.push(
            FlagDifference {
                lost: want
                    .iter()
                    .filter(|f| !have_set.contains(&f.to_ascii_lowercase()))
                    .cloned()
                    .collect(),
                added: have
                    .iter()
                    .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
                    .filter(|f| !want_set.contains(&f.to_ascii_lowercase()))
                    .cloned()
                    .collect(),
                source,
                destination,
            },
            limit,
        );
    }
    for &(s, d) in &date_pairs {
        let destination = dref(d, src_names.get(&(smsgs[s].folder, smsgs[s].uid)));
        check.internal_dates.push(
            Pair {
                source: sref(s),
                destination,
            },
            limit,
        );
    }
    // Files that cannot be imported are no message of the destination's: named, with why.
    for (m, why) in unreadable {
        let source = m.named(&sources[m.folder].0, None);
        check.skipped.push(
            Skipped {
                source,
                reason: why,
            },
            limit,
        );
    }
    Ok(check)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_messages_pair_by_their_flags_first() {
        // Two byte-identical messages: one flagged, one not, on both sides but in the other
        // UID order. Pairing by UID would report two flag differences; there are none.
        let src_keys = [(vec!["\\flagged".to_string()], Some(1)), (vec![], Some(1))];
        let dst_keys = [(vec![], Some(1)), (vec!["\\flagged".to_string()], Some(1))];
        let (pairs, ls, ld) = pair_group(&[0, 1], &[0, 1], &|i| src_keys[i].clone(), &|i| {
            dst_keys[i].clone()
        });
        let mut pairs = pairs;
        pairs.sort_unstable();
        assert_eq!(pairs, vec![(0, 1), (1, 0)]);
        assert!(ls.is_empty() && ld.is_empty());
    }

    #[test]
    fn leftovers_pair_in_order_and_the_rest_is_unmatched() {
        let key = |_: usize| (Vec::new(), None);
        let other = |_: usize| (vec!["\\seen".to_string()], None);
        let (pairs, ls, ld) = pair_group(&[0, 1, 2], &[5], &key, &other);
        assert_eq!(pairs, vec![(0, 5)]);
        assert_eq!(ls, vec![1, 2]);
        assert!(ld.is_empty());
        let (pairs, ls, ld) = pair_group(&[], &[3, 4], &key, &key);
        assert!(pairs.is_empty() && ls.is_empty());
        assert_eq!(ld, vec![3, 4]);
    }

    #[test]
    fn flags_compare_without_case_or_recent() {
        assert_eq!(
            flag_set(&["\\Seen".into(), "\\Recent".into(), "$Label1".into()]),
            flag_set(&["$label1".into(), "\\SEEN".into()])
        );
    }

    #[test]
    fn flags_the_destination_cannot_store_are_not_expected() {
        let flags: Vec<String> = ["\\Seen", "\\Recent", "$Important", "\\Flagged"]
            .map(String::from)
            .to_vec();
        let no_keywords = FolderInfo {
            permanent_flags: vec!["\\Seen".into(), "\\Flagged".into()],
            ..FolderInfo::default()
        };
        assert_eq!(
            expected_flags(&flags, &no_keywords),
            vec!["\\flagged", "\\seen"]
        );
        let keywords = FolderInfo {
            permanent_flags: vec!["\\Seen".into(), "\\Flagged".into(), "\\*".into()],
            allows_keywords: true,
            ..FolderInfo::default()
        };
        assert_eq!(
            expected_flags(&flags, &keywords),
            vec!["$important", "\\flagged", "\\seen"]
        );
    }

    #[test]
    fn internal_dates_compare_as_instants() {
        assert_eq!(
            instant(Some("01-Mar-2024 10:00:00 +0000")),
            instant(Some("01-Mar-2024 11:00:00 +0100"))
        );
        assert_ne!(
            instant(Some("01-Mar-2024 10:00:00 +0000")),
            instant(Some("01-Mar-2024 10:00:01 +0000"))
        );
        assert_eq!(instant(Some("garbage")), None);
        assert_eq!(instant(None), None);
    }

    #[test]
    fn lists_are_capped_and_counts_are_not() {
        let mut l = Listed::default();
        for i in 0..5 {
            l.push(i, 2);
        }
        assert_eq!(
            (l.count, l.listed.clone(), l.unlisted()),
            (5, vec![0, 1], 3)
        );
    }
}
