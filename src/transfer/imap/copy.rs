//! Copying one account's mail, folder by folder, exactly once, resumably.
//!
//! A message's identity is its source (folder, UIDVALIDITY, UID), never its Message-ID, so
//! duplicates and messages without one are each copied once. Crash safety follows DESIGN.md:
//! before a batch the destination's UIDNEXT is recorded as "in flight"; after it, the new
//! source → destination map entries and the folder's progress are recorded in one transaction.
//! On the next run, destination messages at or above an in-flight mark are hashed and matched
//! against what is about to be sent, so a batch cut short by a kill -9 is never sent twice.
//! A UIDVALIDITY change on either side reuses the same matching from UID 1.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use super::folders::{FolderPlan, map_folders};
use super::session::{Body, FolderInfo, Imap, ImapError, MessageMeta, Outgoing, Target};
use crate::plan::model::FolderRules;
use crate::state::{FolderRecord, MessageRecord, StateStore};

/// Messages and bytes per APPEND batch: large enough to amortise round trips (MULTIAPPEND),
/// small enough to bound memory.
const BATCH_MESSAGES: usize = 100;
const BATCH_BYTES: u64 = 8 * 1024 * 1024;
/// Messages larger than this are fetched in slices into a spool file and sent from it, so
/// memory stays bounded whatever the message size.
pub const LARGE_MESSAGE: u64 = 4 * 1024 * 1024;
const SLICE: u64 = 4 * 1024 * 1024;
/// Attempts per folder before the account's step fails.
const FOLDER_ATTEMPTS: u32 = 6;

/// What the copy of one account must respect.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    pub connections: usize,
    pub max_message_size: Option<u64>,
    /// Inclusive lower bound on the internal date, `(y, m, d)`.
    pub since: Option<(u32, u32, u32)>,
    /// Exclusive upper bound on the internal date.
    pub before: Option<(u32, u32, u32)>,
    pub newest_first: bool,
    pub max_items: Option<u64>,
}

impl CopyOptions {
    /// Whether a message's internal date is inside the plan's `since`/`before` window
    /// (a message without a readable date is kept: never lose mail on a parse problem).
    pub fn in_date_window(&self, m: &MessageMeta) -> bool {
        match m.internal_date.as_deref().and_then(date_key) {
            Some(d) => self.since.is_none_or(|s| d >= s) && self.before.is_none_or(|b| d < b),
            None => true,
        }
    }

    /// Whether a message passes the size cap.
    pub fn size_ok(&self, m: &MessageMeta) -> bool {
        self.max_message_size
            .is_none_or(|max| u64::from(m.size) <= max)
    }
}

/// A message ready to append: its metadata, bytes, content hash and destination flags.
type Ready<'a> = (&'a MessageMeta, &'a Vec<u8>, [u8; 32], Vec<String>);

/// Progress as events; the engine never prints.
pub trait Progress: Send + Sync {
    fn folder_started(&self, _account: &str, _folder: &str, _to_copy: u64) {}
    fn copied(&self, _account: &str, _messages: u64, _bytes: u64) {}
    fn note(&self, _account: &str, _text: &str) {}
}

pub struct NoProgress;
impl Progress for NoProgress {}

#[derive(Debug, Clone, Default)]
pub struct FolderReport {
    pub path: String,
    pub dest: String,
    pub copied: u64,
    pub bytes: u64,
    /// Found already on the destination after an interruption, not sent again.
    pub rematched: u64,
    pub flags_updated: u64,
    /// (source UID, size) of messages skipped for their size.
    pub too_large: Vec<(u32, u32)>,
    pub skipped_unchanged: bool,
    /// Copies an interrupted run made that landed after it was matched against: removed.
    pub duplicates_removed: u64,
}

#[derive(Debug, Clone, Default)]
pub struct CopyReport {
    pub folders: Vec<FolderReport>,
    pub notes: Vec<String>,
}

impl CopyReport {
    pub fn copied(&self) -> u64 {
        self.folders.iter().map(|f| f.copied).sum()
    }
    pub fn bytes(&self) -> u64 {
        self.folders.iter().map(|f| f.bytes).sum()
    }
}

/// One account's copy job.
pub struct Job {
    /// State key, e.g. `account/alice@example.com/mail`.
    pub resource_id: String,
    pub account: String,
    pub source: Target,
    pub dest: Target,
    pub rules: FolderRules,
    pub options: CopyOptions,
    pub sync_point: u64,
    /// Where large messages are spooled while in transit (beside the state file).
    pub spool_dir: std::path::PathBuf,
    /// List every source message, not only those above the highest UID copied: the settings
    /// changed since the last run, or the last run did not finish.
    pub full_scan: bool,
    /// How long a refused first login is retried: an account created or renamed moments ago
    /// may not be able to log in yet (the platform propagates the change).
    pub login_grace: Duration,
}

/// Set when the user asked to stop: workers finish the batch in hand and stop.
pub type StopFlag = Arc<AtomicBool>;

/// SHA-256 of a message with line ends made CRLF: servers normalise bare LF when they serve
/// a message, so the same message hashes the same on both sides.
pub fn content_hash(bytes: &[u8]) -> [u8; 32] {
    let mut h = CrlfHasher::default();
    h.update(bytes);
    h.finish()
}

/// [`content_hash`] over a message that arrives in pieces.
#[derive(Default)]
pub struct CrlfHasher {
    h: Sha256,
    last: Option<u8>,
}

impl CrlfHasher {
    pub fn update(&mut self, bytes: &[u8]) {
        let mut start = 0;
        // memchr: most messages are megabytes of CRLF lines; a byte loop here costs real CPU.
        for i in memchr::memchr_iter(b'\n', bytes) {
            let prev = if i == 0 {
                self.last
            } else {
                Some(bytes[i - 1])
            };
            if prev != Some(b'\r') {
                self.h.update(&bytes[start..i]);
                self.h.update(b"\r\n");
                start = i + 1;
            }
        }
        self.h.update(&bytes[start..]);
        if let Some(&b) = bytes.last() {
            self.last = Some(b);
        }
    }

    pub fn finish(self) -> [u8; 32] {
        self.h.finalize().into()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs a blocking state operation off the async workers (redb commits fsync).
async fn state<T: Send + 'static>(
    store: &Arc<StateStore>,
    f: impl FnOnce(&StateStore) -> Result<T, crate::state::StateError> + Send + 'static,
) -> Result<T, CopyError> {
    let s = store.clone();
    tokio::task::spawn_blocking(move || f(&s))
        .await
        .map_err(|e| CopyError::fatal(format!("state task failed: {e}")))?
        .map_err(|e| CopyError::fatal(e.to_string()))
}

#[derive(Debug, Clone)]
pub struct CopyError {
    pub message: String,
    pub transient: bool,
    pub throttled: bool,
}

impl CopyError {
    fn fatal(message: impl Into<String>) -> Self {
        CopyError {
            message: message.into(),
            transient: false,
            throttled: false,
        }
    }
}

impl From<ImapError> for CopyError {
    fn from(e: ImapError) -> Self {
        CopyError {
            message: e.message,
            transient: e.transient,
            throttled: e.throttled,
        }
    }
}

impl std::fmt::Display for CopyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Copies (or incrementally syncs) one account. Folders are spread over
/// `options.connections` connection pairs; a failing folder is retried on fresh connections.
pub async fn sync_account(
    job: Arc<Job>,
    store: Arc<StateStore>,
    progress: Arc<dyn Progress>,
    stop: StopFlag,
) -> Result<CopyReport, CopyError> {
    let mut src = connect_fresh(&job.source, job.login_grace, &stop).await?;
    let mut dst = connect_fresh(&job.dest, job.login_grace, &stop).await?;
    let source_folders = src.list().await?;
    let dest_folders = dst.list().await?;
    let mapping = map_folders(&source_folders, &dest_folders, &job.rules)
        .map_err(|e| CopyError::fatal(e.to_string()))?;
    for name in &mapping.create {
        dst.create(name).await?;
    }
    let mut report = CopyReport {
        notes: mapping.notes.clone(),
        ..CopyReport::default()
    };
    for n in &mapping.notes {
        progress.note(&job.account, n);
    }
    let remaining = Arc::new(AtomicU64::new(match job.options.max_items {
        Some(cap) => {
            let rid = job.resource_id.clone();
            let done: u64 = state(&store, move |s| {
                Ok(s.folders(&rid)?.values().map(|f| f.messages).sum())
            })
            .await?;
            cap.saturating_sub(done)
        }
        None => u64::MAX,
    }));
    let queue: Arc<Mutex<VecDeque<FolderPlan>>> =
        Arc::new(Mutex::new(mapping.copy.into_iter().collect()));
    let results: Arc<Mutex<Vec<FolderReport>>> = Arc::new(Mutex::new(Vec::new()));
    let workers = job.options.connections.max(1);
    let mut handles = Vec::new();
    let mut first = Some((src, dst));
    for _ in 0..workers {
        let conns = first.take();
        let (job, store, progress, stop, queue, results, remaining) = (
            job.clone(),
            store.clone(),
            progress.clone(),
            stop.clone(),
            queue.clone(),
            results.clone(),
            remaining.clone(),
        );
        handles.push(tokio::spawn(async move {
            worker(job, store, progress, stop, queue, results, remaining, conns).await
        }));
    }
    let mut first_error = None;
    for h in handles {
        match h.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(CopyError::fatal(format!("copy task panicked: {e}")));
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let mut folders = std::mem::take(&mut *results.lock().await);
    folders.sort_by(|a, b| a.path.cmp(&b.path));
    report.folders = folders;
    Ok(report)
}

/// The first connection of a run: within `grace`, even a refused login is tried again.
async fn connect_fresh(
    target: &Target,
    grace: Duration,
    stop: &StopFlag,
) -> Result<Imap, CopyError> {
    let started = tokio::time::Instant::now();
    loop {
        match connect_with_retry(target, stop).await {
            Err(_) if started.elapsed() < grace && !stop.load(Ordering::Relaxed) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            other => return other,
        }
    }
}

async fn connect_with_retry(target: &Target, stop: &StopFlag) -> Result<Imap, CopyError> {
    let mut delay = Duration::from_millis(500);
    for attempt in 1..=FOLDER_ATTEMPTS {
        match Imap::connect(target).await {
            Ok(c) => return Ok(c),
            Err(e) if e.transient && attempt < FOLDER_ATTEMPTS && !stop.load(Ordering::Relaxed) => {
                tokio::time::sleep(if e.throttled { delay * 4 } else { delay }).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
            Err(e) => return Err(e.into()),
        }
    }
    unreachable!("the last attempt returns")
}

#[allow(clippy::too_many_arguments)]
async fn worker(
    job: Arc<Job>,
    store: Arc<StateStore>,
    progress: Arc<dyn Progress>,
    stop: StopFlag,
    queue: Arc<Mutex<VecDeque<FolderPlan>>>,
    results: Arc<Mutex<Vec<FolderReport>>>,
    remaining: Arc<AtomicU64>,
    mut conns: Option<(Imap, Imap)>,
) -> Result<(), CopyError> {
    // Extra workers try once: servers cap connections per user (Dovecot 10, Gmail 15), and a
    // refused extra connection means fewer workers, not a failed account.
    if conns.is_none() {
        let pair = match Imap::connect(&job.source).await {
            Ok(s) => match Imap::connect(&job.dest).await {
                Ok(d) => Ok((s, d)),
                Err(e) => {
                    s.logout().await;
                    Err(e)
                }
            },
            Err(e) => Err(e),
        };
        match pair {
            Ok(p) => conns = Some(p),
            Err(e) => {
                progress.note(
                    &job.account,
                    &format!("an extra connection was refused ({e}); going on with fewer"),
                );
                return Ok(());
            }
        }
    }
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let Some(folder) = queue.lock().await.pop_front() else {
            if let Some((s, d)) = conns.take() {
                s.logout().await;
                d.logout().await;
            }
            return Ok(());
        };
        let mut delay = Duration::from_millis(500);
        let mut attempt = 0;
        let report = loop {
            attempt += 1;
            if conns.is_none() {
                let s = connect_with_retry(&job.source, &stop).await?;
                let d = connect_with_retry(&job.dest, &stop).await?;
                conns = Some((s, d));
            }
            let (s, d) = conns.as_mut().expect("connected above");
            match sync_folder(
                &job,
                &store,
                progress.as_ref(),
                &stop,
                &remaining,
                s,
                d,
                &folder,
            )
            .await
            {
                Ok(r) => break r,
                Err(e)
                    if e.transient
                        && attempt < FOLDER_ATTEMPTS
                        && !stop.load(Ordering::Relaxed) =>
                {
                    progress.note(
                        &job.account,
                        &format!(
                            "{}: {} (reconnecting, attempt {}/{FOLDER_ATTEMPTS})",
                            folder.path,
                            e.message,
                            attempt + 1
                        ),
                    );
                    // The connection may be half-dead: start over on fresh ones.
                    conns = None;
                    tokio::time::sleep(if e.throttled { delay * 4 } else { delay }).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
                Err(e) => {
                    return Err(CopyError {
                        message: format!("folder {:?}: {}", folder.path, e.message),
                        ..e
                    });
                }
            }
        };
        results.lock().await.push(report);
    }
}

/// Copies one large message through a spool file. Returns the map entry, whether it was sent
/// (or found already on the destination), and the in-flight mark used; `None` if the message
/// vanished from the source.
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
async fn copy_large(
    job: &Job,
    store: &Arc<StateStore>,
    src: &mut Imap,
    dst: &mut Imap,
    folder: &FolderPlan,
    dinfo: &FolderInfo,
    m: &MessageMeta,
    pending: &mut HashMap<[u8; 32], Vec<u32>>,
    resume_from: Option<u32>,
    progress_now: (u32, u64, u64),
    folder_record: &(dyn Fn(u32, u64, u64, Option<u32>, bool) -> FolderRecord + Sync),
) -> Result<Option<((u32, MessageRecord), bool, Option<u32>)>, CopyError> {
    use tokio::io::AsyncWriteExt;
    std::fs::create_dir_all(&job.spool_dir).map_err(|e| {
        CopyError::fatal(format!(
            "cannot create spool directory {}: {e}",
            job.spool_dir.display()
        ))
    })?;
    // Unique per process and per call: workers spool messages with the same UID in
    // different folders at the same time.
    static SPOOLED: AtomicU64 = AtomicU64::new(0);
    let path = job.spool_dir.join(format!(
        "{}-{}.eml",
        std::process::id(),
        SPOOLED.fetch_add(1, Ordering::Relaxed)
    ));
    // Removed however this function ends.
    struct Cleanup<'a>(&'a std::path::Path);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(self.0);
        }
    }
    let _cleanup = Cleanup(&path);
    let io = |e: std::io::Error| CopyError::fatal(format!("spool file {}: {e}", path.display()));
    let mut file = tokio::fs::File::create(&path).await.map_err(io)?;
    let mut hasher = CrlfHasher::default();
    let mut len = 0u64;
    loop {
        let Some(part) = src.fetch_part(m.uid, len, SLICE).await? else {
            return Ok(None);
        };
        hasher.update(&part);
        file.write_all(&part).await.map_err(io)?;
        len += part.len() as u64;
        if (part.len() as u64) < SLICE {
            break;
        }
    }
    file.flush().await.map_err(io)?;
    drop(file);
    let hash = hasher.finish();
    if let Some(uids) = pending.get_mut(&hash)
        && let Some(dest_uid) = uids.pop()
    {
        let rec = MessageRecord {
            dest_uid,
            hash,
            size: len,
            sync_point: job.sync_point,
        };
        return Ok(Some(((m.uid, rec), false, resume_from)));
    }
    let uidnext = dst.status(&folder.dest).await?.uidnext;
    let in_flight = Some(resume_from.map_or(uidnext, |r| r.min(uidnext)));
    let (h, n, b) = progress_now;
    let rec = folder_record(h, n, b, in_flight, false);
    let (rid, key) = (job.resource_id.clone(), folder.path.clone());
    state(store, move |s| s.put_folder(&rid, &key, &rec)).await?;
    let flags = dest_flags(&m.flags, dinfo);
    let out = Outgoing {
        flags: &flags,
        internal_date: m.internal_date.as_deref(),
        body: Body::File { path: &path, len },
    };
    let uids = dst.append(&folder.dest, std::slice::from_ref(&out)).await?;
    let dest_uid = uids.and_then(|u| u.first().copied()).unwrap_or(0);
    let rec = MessageRecord {
        dest_uid,
        hash,
        size: len,
        sync_point: job.sync_point,
    };
    Ok(Some(((m.uid, rec), true, in_flight)))
}

/// Removes destination messages at or above `from` that are not in the map but have the
/// content of one that is (see the caller). Returns how many were removed.
async fn remove_strays(
    dst: &mut Imap,
    store: &Arc<StateStore>,
    rid: &str,
    key: &str,
    from: u32,
) -> Result<u64, CopyError> {
    let map: Vec<(u32, MessageRecord)> = {
        let (rid, key) = (rid.to_string(), key.to_string());
        state(store, move |s| s.messages(&rid, &key)).await?
    };
    if map.iter().any(|(_, r)| r.dest_uid == 0) {
        return Ok(0);
    }
    let known: HashSet<u32> = map.iter().map(|(_, r)| r.dest_uid).collect();
    let ours: HashSet<[u8; 32]> = map.iter().map(|(_, r)| r.hash).collect();
    let strays: Vec<u32> = dst
        .fetch_meta(&format!("{from}:*"), None)
        .await?
        .into_iter()
        .filter(|m| m.uid >= from && !known.contains(&m.uid))
        .map(|m| m.uid)
        .collect();
    let mut duplicates = Vec::new();
    for chunk in strays.chunks(BATCH_MESSAGES) {
        for (uid, body) in dst.fetch_bodies(chunk).await? {
            if ours.contains(&content_hash(&body)) {
                duplicates.push(uid);
            }
        }
    }
    if !duplicates.is_empty() {
        dst.expunge_uids(&duplicates).await?;
    }
    Ok(duplicates.len() as u64)
}

/// Splits the messages to copy into batches of at most `BATCH_MESSAGES` and `BATCH_BYTES`
/// (a single larger message makes a batch of its own).
fn make_batches(todo: &[MessageMeta]) -> Vec<Vec<&MessageMeta>> {
    let mut batches: Vec<Vec<&MessageMeta>> = Vec::new();
    let mut bytes = 0u64;
    for m in todo {
        let size = u64::from(m.size);
        let large = |m: &MessageMeta| u64::from(m.size) > LARGE_MESSAGE;
        match batches.last_mut() {
            Some(b)
                if !large(m)
                    && !large(b[0])
                    && b.len() < BATCH_MESSAGES
                    && bytes + size <= BATCH_BYTES =>
            {
                b.push(m);
                bytes += size;
            }
            _ => {
                batches.push(vec![m]);
                bytes = size;
            }
        }
    }
    batches
}

/// A batch holding one message too large for memory (see `copy_large`).
fn is_large_batch(batch: &[&MessageMeta]) -> bool {
    batch.len() == 1 && u64::from(batch[0].size) > LARGE_MESSAGE
}

fn uids_of(batch: &[&MessageMeta]) -> Vec<u32> {
    batch.iter().map(|m| m.uid).collect()
}

/// `(year, month, day)` of an IMAP internal date, for the plan's date window.
pub fn date_key(internal: &str) -> Option<(u32, u32, u32)> {
    // `01-Feb-2024 10:00:00 +0000`
    let mut parts = internal.trim().split(['-', ' ']);
    let d: u32 = parts.next()?.trim().parse().ok()?;
    let m = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let y: u32 = parts.next()?.parse().ok()?;
    Some((y, m, d))
}

/// Flags the destination can store: `\Recent` never, keywords only where allowed.
pub fn dest_flags(flags: &[String], info: &FolderInfo) -> Vec<String> {
    let mut out: Vec<String> = flags
        .iter()
        .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
        .filter(|f| {
            if f.starts_with('\\') {
                info.permanent_flags.is_empty()
                    || info
                        .permanent_flags
                        .iter()
                        .any(|p| p.eq_ignore_ascii_case(f))
            } else {
                info.allows_keywords || info.permanent_flags.iter().any(|p| p == *f)
            }
        })
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

#[allow(clippy::too_many_arguments)]
async fn sync_folder(
    job: &Job,
    store: &Arc<StateStore>,
    progress: &dyn Progress,
    stop: &StopFlag,
    remaining: &AtomicU64,
    src: &mut Imap,
    dst: &mut Imap,
    folder: &FolderPlan,
) -> Result<FolderReport, CopyError> {
    let rid = job.resource_id.clone();
    let key = folder.path.clone();
    let mut report = FolderReport {
        path: folder.path.clone(),
        dest: folder.dest_path.clone(),
        ..FolderReport::default()
    };
    let record: Option<FolderRecord> = {
        let (rid, key) = (rid.clone(), key.clone());
        state(store, move |s| s.folder(&rid, &key)).await?
    };
    // The cheap questions first: nothing new, nothing changed on either side, nothing in
    // flight → done. A destination folder deleted meanwhile is created again.
    let status = src.status(&folder.source).await?;
    let dest_uidvalidity = match dst.status(&folder.dest).await {
        Ok(s) => Some(s.uidvalidity),
        Err(e) if !e.transient => {
            dst.create(&folder.dest).await?;
            None
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(r) = &record
        && !job.full_scan
        && dest_uidvalidity == Some(r.dest_uidvalidity)
        && r.dest_uidnext_in_flight.is_none()
        && r.source_uidvalidity == status.uidvalidity
        && r.source_uidnext == status.uidnext
        && r.source_messages == status.exists
        && r.highest_modseq == status.highest_modseq
        && r.dest_folder == folder.dest
    {
        report.skipped_unchanged = true;
        return Ok(report);
    }
    let sinfo = src.open(&folder.source, false).await?;
    let dinfo = dst.open(&folder.dest, true).await?;

    // A UIDVALIDITY change on either side voids the UID map: rematch everything by content.
    let mut resume_from = record.as_ref().and_then(|r| r.dest_uidnext_in_flight);
    let mut record = record;
    if let Some(r) = &record {
        let source_reset = r.source_uidvalidity != sinfo.uidvalidity;
        let dest_reset = r.dest_uidvalidity != dinfo.uidvalidity || r.dest_folder != folder.dest;
        if source_reset || dest_reset {
            progress.note(
                &job.account,
                &format!(
                    "{}: {} UIDVALIDITY changed; matching existing messages by content instead of copying again",
                    folder.path,
                    if source_reset { "source" } else { "destination" }
                ),
            );
            let (rid, key) = (rid.clone(), key.clone());
            state(store, move |s| s.forget_folder(&rid, &key)).await?;
            record = None;
            resume_from = Some(1);
        }
    }
    let copied: HashMap<u32, MessageRecord> = {
        let (rid, key) = (rid.clone(), key.clone());
        state(store, move |s| s.messages(&rid, &key))
            .await?
            .into_iter()
            .collect()
    };

    // What the source has, and what of it is still to copy. After runs in UID order with the
    // same settings, everything up to the highest UID copied is settled: ask only for newer
    // messages. Newest-first and item caps leave gaps below it, and changed settings (a larger
    // size cap...) may take in what was skipped: those list everything.
    let prev_modseq = record.as_ref().and_then(|r| r.highest_modseq);
    let settled = match &record {
        Some(r)
            if !job.full_scan
                && resume_from.is_none()
                && r.highest_uid > 0
                && !job.options.newest_first
                && job.options.max_items.is_none() =>
        {
            Some(r.highest_uid)
        }
        _ => None,
    };
    let metas = match (sinfo.exists, settled) {
        (0, _) => Vec::new(),
        (_, Some(h)) => src
            .fetch_meta(&format!("{}:*", h + 1), None)
            .await?
            .into_iter()
            .filter(|m| m.uid > h)
            .collect(),
        (_, None) => src.fetch_meta("1:*", None).await?,
    };
    let mut todo: Vec<MessageMeta> = Vec::new();
    for m in &metas {
        if copied.contains_key(&m.uid) {
            continue;
        }
        if !job.options.size_ok(m) {
            report.too_large.push((m.uid, m.size));
            continue;
        }
        if !job.options.in_date_window(m) {
            continue;
        }
        todo.push(m.clone());
    }
    if job.options.newest_first {
        todo.sort_by_key(|m| std::cmp::Reverse(m.uid));
    }

    // Destination messages that may be ours from an interrupted batch, by content hash.
    let mut pending: HashMap<[u8; 32], Vec<u32>> = HashMap::new();
    let resumed_from = resume_from;
    if let Some(from) = resume_from {
        // The interrupted run's last APPEND may still be finishing on the server (a killed
        // client's command is processed anyway): wait until the folder stops growing.
        let mut last = dst.status(&folder.dest).await?;
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let now = dst.status(&folder.dest).await?;
            if now.uidnext == last.uidnext {
                break;
            }
            last = now;
        }
        let known_dest: HashSet<u32> = copied.values().map(|m| m.dest_uid).collect();
        let dmetas = if last.exists == 0 {
            Vec::new()
        } else {
            dst.fetch_meta(&format!("{from}:*"), None).await?
        };
        let candidates: Vec<u32> = dmetas
            .iter()
            .filter(|m| m.uid >= from && !known_dest.contains(&m.uid))
            .map(|m| m.uid)
            .collect();
        for chunk in candidates.chunks(BATCH_MESSAGES) {
            for (uid, body) in dst.fetch_bodies(chunk).await? {
                pending.entry(content_hash(&body)).or_default().push(uid);
            }
        }
    }

    progress.folder_started(&job.account, &folder.path, todo.len() as u64);
    let mut highest_uid = record.as_ref().map_or(0, |r| r.highest_uid);
    let mut total_messages = record.as_ref().map_or(0, |r| r.messages);
    let mut total_bytes = record.as_ref().map_or(0, |r| r.bytes);
    let folder_record =
        |highest_uid: u32, messages: u64, bytes: u64, in_flight: Option<u32>, complete: bool| {
            FolderRecord {
                dest_folder: folder.dest.clone(),
                source_uidvalidity: sinfo.uidvalidity,
                highest_uid,
                highest_modseq: if complete { sinfo.highest_modseq } else { None },
                dest_uidvalidity: dinfo.uidvalidity,
                dest_uidnext_in_flight: in_flight,
                source_uidnext: if complete { sinfo.uidnext } else { 0 },
                source_messages: if complete { sinfo.exists } else { 0 },
                messages,
                bytes,
                updated_at: now(),
            }
        };

    // Batches by count and bytes. The next batch's bodies are fetched from the source while the
    // current one is appended to the destination: the two servers work at the same time.
    let batches = make_batches(&todo);
    // Bodies fetched ahead, with the index of the batch they belong to.
    let mut prefetched: Option<(usize, BTreeMap<u32, Vec<u8>>)> = None;
    let mut capped = false;
    for (bi, whole) in batches.iter().enumerate() {
        if stop.load(Ordering::Relaxed) {
            return Ok(report);
        }
        let room = remaining.load(Ordering::Relaxed);
        let batch: Vec<&MessageMeta> = whole
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
        if is_large_batch(&batch) {
            let m = batch[0];
            let entry = copy_large(
                job,
                store,
                src,
                dst,
                folder,
                &dinfo,
                m,
                &mut pending,
                resume_from,
                (highest_uid, total_messages, total_bytes),
                &folder_record,
            )
            .await?;
            if let Some((entry, sent, mark)) = entry {
                if sent {
                    report.copied += 1;
                    report.bytes += entry.1.size;
                    progress.copied(&job.account, 1, entry.1.size);
                } else {
                    report.rematched += 1;
                }
                remaining.fetch_sub(1.min(remaining.load(Ordering::Relaxed)), Ordering::Relaxed);
                highest_uid = highest_uid.max(entry.0);
                total_messages += 1;
                total_bytes += entry.1.size;
                pending.retain(|_, v| !v.is_empty());
                let keep = if pending.is_empty() && resumed_from.is_none() {
                    None
                } else {
                    mark
                };
                resume_from = keep;
                let rec = folder_record(highest_uid, total_messages, total_bytes, keep, false);
                let (rid2, key2) = (rid.clone(), key.clone());
                let entries = vec![(entry.0, entry.1)];
                state(store, move |s| s.record_batch(&rid2, &key2, &rec, &entries)).await?;
            }
            continue;
        }
        let bodies = match prefetched.take() {
            Some((index, b)) if index == bi => b,
            _ => src
                .fetch_bodies(&uids_of(&batch))
                .await?
                .into_iter()
                .collect(),
        };
        // A large next batch is not fetched ahead: it goes through the spool file instead.
        let next_uids = match batches.get(bi + 1) {
            Some(b) if !capped && !is_large_batch(b) => Some(uids_of(b)),
            _ => None,
        };
        let fetch_next = async {
            match &next_uids {
                Some(u) => src.fetch_bodies(u).await.map(Some),
                None => Ok(None),
            }
        };
        let mut missing: Vec<u32> = Vec::new();
        let process = async {
            let mut entries: Vec<(u32, MessageRecord)> = Vec::new();
            let mut to_send: Vec<Ready<'_>> = Vec::new();
            for m in &batch {
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
                        },
                    ));
                    report.rematched += 1;
                    continue;
                }
                to_send.push((m, body, hash, dest_flags(&m.flags, &dinfo)));
            }
            pending.retain(|_, v| !v.is_empty());

            let mut in_flight = resume_from;
            if !to_send.is_empty() {
                let uidnext = dst.status(&folder.dest).await?.uidnext;
                in_flight = Some(resume_from.map_or(uidnext, |r| r.min(uidnext)));
                let rec = folder_record(highest_uid, total_messages, total_bytes, in_flight, false);
                let (rid2, key2) = (rid.clone(), key.clone());
                state(store, move |s| s.put_folder(&rid2, &key2, &rec)).await?;
                let outgoing: Vec<Outgoing<'_>> = to_send
                    .iter()
                    .map(|(m, body, _, flags)| Outgoing {
                        flags: flags.as_slice(),
                        internal_date: m.internal_date.as_deref(),
                        body: Body::Mem(body.as_slice()),
                    })
                    .collect();
                let dest_uids = dst.append(&folder.dest, &outgoing).await?;
                for (k, (m, body, hash, _)) in to_send.iter().enumerate() {
                    entries.push((
                        m.uid,
                        MessageRecord {
                            dest_uid: dest_uids
                                .as_ref()
                                .and_then(|d| d.get(k).copied())
                                .unwrap_or(0),
                            hash: *hash,
                            size: body.len() as u64,
                            sync_point: job.sync_point,
                        },
                    ));
                    report.copied += 1;
                    report.bytes += body.len() as u64;
                }
                let sent_bytes: u64 = to_send.iter().map(|t| t.1.len() as u64).sum();
                progress.copied(&job.account, to_send.len() as u64, sent_bytes);
            }
            remaining.fetch_sub(
                (entries.len() as u64).min(remaining.load(Ordering::Relaxed)),
                Ordering::Relaxed,
            );
            highest_uid = highest_uid.max(entries.iter().map(|(u, _)| *u).max().unwrap_or(0));
            total_messages += entries.len() as u64;
            total_bytes += entries.iter().map(|(_, m)| m.size).sum::<u64>();
            // After an interruption the mark stays until this folder is finished and checked
            // for late copies (below): a killed client's APPEND can land at any time, and a
            // mark cleared early would hide it from the next run.
            let keep = if pending.is_empty() && resumed_from.is_none() {
                None
            } else {
                in_flight
            };
            resume_from = keep;
            let rec = folder_record(highest_uid, total_messages, total_bytes, keep, false);
            let (rid2, key2) = (rid.clone(), key.clone());
            state(store, move |s| s.record_batch(&rid2, &key2, &rec, &entries)).await?;
            Ok::<(), CopyError>(())
        };
        let (fetched, processed) = tokio::join!(fetch_next, process);
        processed?;
        // A message the source did not send is skipped only if it is really gone: otherwise the
        // folder would be recorded complete without it.
        if !missing.is_empty() {
            let still: Vec<u32> = src
                .fetch_meta(&super::session::uid_set(&missing), None)
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
                });
            }
        }
        prefetched = fetched?.map(|v| (bi + 1, v.into_iter().collect()));
        if capped {
            break;
        }
    }

    // After an interruption, an APPEND of the interrupted run may have landed after we looked:
    // a destination message at or above the mark, not in the map, with the content of one that
    // is, is a duplicate of our own making. Only with UIDPLUS, where the map knows every
    // destination UID (otherwise our own copies would look like strays).
    if let Some(from) = resumed_from
        && !capped
        && dst.caps.uidplus
    {
        report.duplicates_removed = remove_strays(dst, store, &rid, &key, from).await?;
        if report.duplicates_removed > 0 {
            progress.note(
                &job.account,
                &format!(
                    "{}: removed {} duplicate(s) left by an interrupted run",
                    folder.path, report.duplicates_removed
                ),
            );
        }
    }

    // Carry flag changes onto messages copied earlier (needs their destination UIDs). With
    // CONDSTORE only the messages changed since the last complete run are looked at.
    let stale = capped;
    if !stale && !copied.is_empty() && dinfo.exists > 0 {
        let candidates: Vec<MessageMeta> = match prev_modseq {
            Some(m) if src.caps.condstore => src.fetch_meta("1:*", Some(m)).await?,
            _ if settled.is_none() => metas.clone(),
            _ => src.fetch_meta("1:*", None).await?,
        };
        let pairs: Vec<(&MessageMeta, u32)> = candidates
            .iter()
            .filter_map(|m| {
                copied
                    .get(&m.uid)
                    .filter(|r| r.dest_uid != 0)
                    .map(|r| (m, r.dest_uid))
            })
            .collect();
        if !pairs.is_empty() {
            let dest_uids: Vec<u32> = pairs.iter().map(|(_, d)| *d).collect();
            let dest_meta: HashMap<u32, Vec<String>> = dst
                .fetch_meta(&super::session::uid_set(&dest_uids), None)
                .await?
                .into_iter()
                .map(|m| (m.uid, m.flags))
                .collect();
            for (m, dest_uid) in pairs {
                let want = dest_flags(&m.flags, &dinfo);
                if let Some(have) = dest_meta.get(&dest_uid)
                    && dest_flags(have, &dinfo) != want
                {
                    dst.store_flags(dest_uid, &want).await?;
                    report.flags_updated += 1;
                }
            }
        }
    }
    // Done with this folder: the STATUS snapshot lets the next no-op run skip it.
    let complete = !stale && !stop.load(Ordering::Relaxed);
    let rec = folder_record(highest_uid, total_messages, total_bytes, None, complete);
    let (rid2, key2) = (rid.clone(), key.clone());
    state(store, move |s| s.put_folder(&rid2, &key2, &rec)).await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_ignore_bare_lf_versus_crlf() {
        assert_eq!(
            content_hash(b"a\nb\r\nc\n"),
            content_hash(b"a\r\nb\r\nc\r\n")
        );
        assert_ne!(content_hash(b"a\nb"), content_hash(b"a\nc"));
    }

    fn crlf(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, &c) in b.iter().enumerate() {
            if c == b'\n' && (i == 0 || b[i - 1] != b'\r') {
                out.push(b'\r');
            }
            out.push(c);
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn hash_is_sha256_of_the_crlf_form(bytes in proptest::collection::vec(proptest::prop_oneof![
            proptest::prelude::Just(b'\n'), proptest::prelude::Just(b'\r'), proptest::prelude::any::<u8>()], 0..200)) {
            let want: [u8; 32] = Sha256::digest(crlf(&bytes)).into();
            proptest::prop_assert_eq!(content_hash(&bytes), want);
        }
    }

    #[test]
    fn internal_dates_parse() {
        assert_eq!(date_key("01-Feb-2024 10:00:00 +0000"), Some((2024, 2, 1)));
        assert_eq!(date_key(" 1-Dec-1999 23:59:59 -0500"), Some((1999, 12, 1)));
    }

    #[test]
    fn flags_are_filtered_to_what_the_destination_keeps() {
        let info = FolderInfo {
            permanent_flags: vec!["\\Seen".into(), "\\Flagged".into()],
            allows_keywords: false,
            ..FolderInfo::default()
        };
        let flags = vec![
            "\\Seen".into(),
            "\\Recent".into(),
            "$Label1".into(),
            "\\Flagged".into(),
        ];
        assert_eq!(
            dest_flags(&flags, &info),
            vec!["\\Flagged".to_string(), "\\Seen".to_string()]
        );
        let open = FolderInfo {
            permanent_flags: vec!["\\Seen".into(), "\\*".into()],
            allows_keywords: true,
            ..FolderInfo::default()
        };
        assert_eq!(
            dest_flags(&flags, &open),
            vec!["$Label1".to_string(), "\\Seen".to_string()]
        );
    }
}
