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
use crate::error::{ErrorKind, StepError};
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
    /// The plan said the destination is empty (`adopt_existing: false`): a destination folder
    /// without a record that holds messages is an error instead of being matched.
    pub expect_empty: bool,
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
    /// Already on the destination when the state had no record of the folder (another tool, a
    /// lost state): matched and adopted instead of copied.
    pub adopted: u64,
    /// Moved on the destination from the folder they were first copied to, after the plan's
    /// folder mapping changed.
    pub moved: u64,
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
    pub fn adopted(&self) -> u64 {
        self.folders.iter().map(|f| f.adopted).sum()
    }
    pub fn moved(&self) -> u64 {
        self.folders.iter().map(|f| f.moved).sum()
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
    /// One lock per destination folder, held while a source folder adopts messages there:
    /// several source folders may go to one destination folder, and a destination message
    /// must never be adopted by two of them.
    pub adopt_locks: AdoptLocks,
}

/// See [`Job::adopt_locks`].
#[derive(Default)]
pub struct AdoptLocks(std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>);

impl AdoptLocks {
    async fn lock(&self, dest_folder: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(dest_folder.to_string())
            .or_default()
            .clone();
        lock.lock_owned().await
    }
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
        .map_err(|e| CopyError::new(ErrorKind::State, e.to_string()))
}

/// A failed copy: `transient` and `throttled` follow from `kind` (see `crate::error`).
#[derive(Debug, Clone)]
pub struct CopyError {
    pub message: String,
    pub transient: bool,
    pub throttled: bool,
    pub kind: ErrorKind,
}

impl CopyError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        CopyError {
            message: message.into(),
            transient: kind.is_transient(),
            throttled: kind == ErrorKind::Throttled,
            kind,
        }
    }

    /// Something on this side went wrong (a task, a spool file): no server to blame.
    fn fatal(message: impl Into<String>) -> Self {
        CopyError::new(ErrorKind::Bug, message)
    }
}

impl From<ImapError> for CopyError {
    fn from(e: ImapError) -> Self {
        CopyError {
            message: e.message,
            transient: e.transient,
            throttled: e.throttled,
            kind: e.kind,
        }
    }
}

impl From<CopyError> for StepError {
    fn from(e: CopyError) -> StepError {
        StepError::new(e.kind, e.message)
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
    // Both servers at once: a no-op run is mostly waiting for them.
    let (src, dst) = tokio::join!(
        connect_fresh(&job.source, job.login_grace, &stop),
        connect_fresh(&job.dest, job.login_grace, &stop)
    );
    let (mut src, mut dst) = (src?, dst?);
    // Every folder's status up front, in one exchange per server (LIST-STATUS) or one
    // pipelined round of STATUS: what keeps a no-op run's cost flat in the number of folders.
    let (source_list, dest_list) = tokio::join!(src.list_with_status(), dst.list_with_status());
    let ((source_folders, mut source_status), (dest_folders, mut dest_status)) =
        (source_list?, dest_list?);
    let mut mapping = map_folders(&source_folders, &dest_folders, &job.rules)
        .map_err(|e| CopyError::new(ErrorKind::Config, e.to_string()))?;
    for name in &mapping.create {
        dst.create(name).await?;
    }
    if !src.caps.list_status {
        let names: Vec<String> = mapping.copy.iter().map(|f| f.source.clone()).collect();
        source_status = src.statuses(&names).await?;
    }
    if !dst.caps.list_status {
        // Folders just created included: they exist now.
        let names: Vec<String> = mapping.copy.iter().map(|f| f.dest.clone()).collect();
        dest_status = dst.statuses(&names).await?;
    }
    for f in &mut mapping.copy {
        f.known.source = source_status.remove(&f.source);
        // Shared by several source folders mapped together: each needs it.
        f.known.dest = dest_status.get(&f.dest).cloned();
    }
    // Extra connections only for folders with something to do: a no-op run opens none.
    let records = {
        let rid = job.resource_id.clone();
        state(&store, move |s| s.folders(&rid)).await?
    };
    let busy = mapping
        .copy
        .iter()
        .filter(|f| match (&f.known.source, &f.known.dest) {
            (Some(s), Some(d)) => !unchanged(&job, f, records.get(&f.path), s, Some(d.uidvalidity)),
            _ => true,
        })
        .count();
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
    let workers = job.options.connections.max(1).min(busy.max(1));
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

/// UIDs per FETCH when adoption asks for fingerprints: keeps command lines short when UIDs
/// are sparse (servers cap a line at some tens of KB).
const FINGERPRINT_CHUNK: usize = 1000;

/// Matches what the destination folder (open on `dst`) holds against the source messages
/// still to copy (folder open on `src`), see [`super::adopt`]. Returns the map entries of the
/// adopted messages: sync point 0 (copied by no run of ours), and a zero hash where the
/// fingerprint alone settled it (their bodies were not fetched).
async fn adopt_existing(
    job: &Job,
    store: &Arc<StateStore>,
    src: &mut Imap,
    dst: &mut Imap,
    folder: &FolderPlan,
    todo: &[MessageMeta],
) -> Result<Vec<(u32, MessageRecord)>, CopyError> {
    use super::adopt::{match_fingerprints, match_hashes};
    // Destination messages the maps of other source folders going to this folder already own.
    let claimed: HashSet<u32> = {
        let (rid, key, dest) = (
            job.resource_id.clone(),
            folder.path.clone(),
            folder.dest.clone(),
        );
        state(store, move |s| {
            let mut out = HashSet::new();
            for (path, rec) in s.folders(&rid)? {
                if rec.dest_folder == dest && path != key {
                    out.extend(
                        s.messages(&rid, &path)?
                            .into_iter()
                            .map(|(_, m)| m.dest_uid),
                    );
                }
            }
            Ok(out)
        })
        .await?
    };
    let dest: Vec<_> = dst
        .fetch_fingerprints("1:*")
        .await?
        .into_iter()
        .filter(|(u, _)| !claimed.contains(u))
        .collect();
    if dest.is_empty() {
        return Ok(Vec::new());
    }
    if job.options.expect_empty {
        return Err(CopyError::new(
            ErrorKind::Config,
            format!(
                "destination folder {:?} already holds {}, but the plan says the destination is \
             empty (`adopt_existing: false`): remove them, or set `adopt_existing: true` to match \
             them against the source and copy only the rest",
                folder.dest_path,
                crate::plan::diagnostic::plural(dest.len(), "message")
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
        source.extend(
            src.fetch_fingerprints(&super::session::uid_set(chunk))
                .await?,
        );
    }
    let matching = match_fingerprints(&source, &dest);
    let size_of = |fps: &[(u32, super::adopt::Fingerprint)], uid: u32| {
        fps.iter()
            .find(|(u, _)| *u == uid)
            .map_or(0, |(_, f)| u64::from(f.size))
    };
    let mut entries: Vec<(u32, MessageRecord)> = matching
        .sure
        .iter()
        .map(|&(s, d)| {
            let rec = MessageRecord {
                dest_uid: d,
                hash: [0; 32],
                size: size_of(&source, s),
                sync_point: 0,
            };
            (s, rec)
        })
        .collect();
    for (src_uids, dest_uids) in &matching.ambiguous {
        let sizes = |fps: &[(u32, super::adopt::Fingerprint)], uids: &[u32]| -> Vec<(u32, u64)> {
            uids.iter().map(|&u| (u, size_of(fps, u))).collect()
        };
        let src_hashes = hash_messages(src, &sizes(&source, src_uids)).await?;
        let dest_hashes = hash_messages(dst, &sizes(&dest, dest_uids)).await?;
        for (s, d, hash) in match_hashes(&src_hashes, &dest_hashes) {
            let rec = MessageRecord {
                dest_uid: d,
                hash,
                size: size_of(&source, s),
                sync_point: 0,
            };
            entries.push((s, rec));
        }
    }
    entries.sort_by_key(|(u, _)| *u);
    Ok(entries)
}

/// Content hashes of messages of the open folder, fetched in batches; large ones in slices,
/// so memory stays bounded. Messages gone meanwhile are left out.
async fn hash_messages(
    imap: &mut Imap,
    uids: &[(u32, u64)],
) -> Result<Vec<(u32, [u8; 32])>, CopyError> {
    let mut out = Vec::with_capacity(uids.len());
    let (large, small): (Vec<_>, Vec<_>) = uids.iter().partition(|(_, size)| *size > LARGE_MESSAGE);
    let mut batch: Vec<u32> = Vec::new();
    let mut bytes = 0u64;
    for (i, (uid, size)) in small.iter().enumerate() {
        batch.push(*uid);
        bytes += size;
        if batch.len() >= BATCH_MESSAGES || bytes >= BATCH_BYTES || i + 1 == small.len() {
            for (u, body) in imap.fetch_bodies(&batch).await? {
                out.push((u, content_hash(&body)));
            }
            batch.clear();
            bytes = 0;
        }
    }
    for (uid, _) in large {
        let mut hasher = CrlfHasher::default();
        let mut offset = 0u64;
        let mut gone = false;
        loop {
            let Some(part) = imap.fetch_part(uid, offset, SLICE).await? else {
                gone = true;
                break;
            };
            hasher.update(&part);
            offset += part.len() as u64;
            if (part.len() as u64) < SLICE {
                break;
            }
        }
        if !gone {
            out.push((uid, hasher.finish()));
        }
    }
    Ok(out)
}

/// Moves the messages a folder's map points to from the destination folder they were copied
/// to (`r.dest_folder`) into the one the plan now maps the folder to, and points the map
/// there. `None` when the old folder is gone or was recreated (its UIDs mean nothing now):
/// then the caller matches by content in the new folder, as after any reset.
async fn relocate(
    job: &Job,
    store: &Arc<StateStore>,
    progress: &dyn Progress,
    dst: &mut Imap,
    folder: &FolderPlan,
    r: &FolderRecord,
) -> Result<Option<u64>, CopyError> {
    let old = match dst.status(&r.dest_folder).await {
        Ok(s) => s,
        Err(e) if !e.transient => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if old.uidvalidity != r.dest_uidvalidity {
        return Ok(None);
    }
    let (rid, key) = (job.resource_id.clone(), folder.path.clone());
    let map: Vec<(u32, MessageRecord)> = {
        let (rid, key) = (rid.clone(), key.clone());
        state(store, move |s| s.messages(&rid, &key)).await?
    };
    let unknown = map.iter().filter(|(_, m)| m.dest_uid == 0).count();
    // Copied to a server that did not say the new UIDs, or one that cannot move by UID: the
    // copies cannot be told from the user's own messages there, so nothing is moved or copied.
    let why = if unknown > 0 {
        Some(format!(
            "{} in {:?} on the destination have unknown UIDs (the server did not report them \
             when they were copied)",
            crate::plan::diagnostic::plural(unknown, "copied message"),
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
        // One command: Dovecot and most servers move a UID set atomically, so a kill leaves
        // either all or none moved (a kill after the move but before the record below leaves
        // the map pointing at the old folder: the next run's move finds nothing there and the
        // messages keep their place in the new one, with their destination UIDs unknown).
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
    state(store, move |s| s.record_batch(&rid, &key, &rec, &entries)).await?;
    let count = if dst.caps.uidplus {
        moved.len()
    } else {
        uids.len()
    } as u64;
    progress.note(
        &job.account,
        &format!(
            "{}: the plan now maps it to {:?}: moved {} there on the destination instead of copying again",
            folder.path,
            folder.dest_path,
            crate::plan::diagnostic::plural(count as usize, "message")
        ),
    );
    Ok(Some(count))
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
fn dest_flags(flags: &[String], info: &FolderInfo) -> Vec<String> {
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

/// Nothing new, nothing changed on either side, nothing in flight since `record`: the folder
/// needs no work.
fn unchanged(
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
    // flight → done. A destination folder deleted meanwhile is created again. The answers
    // read at the start of the run serve; a folder they said nothing of is asked here.
    let status = match &folder.known.source {
        Some(s) => s.clone(),
        None => src.status(&folder.source).await?,
    };
    let dest_status = match &folder.known.dest {
        Some(s) => Ok(s.clone()),
        None => dst.status(&folder.dest).await,
    };
    let dest_uidvalidity = match dest_status {
        Ok(s) => Some(s.uidvalidity),
        Err(e) if !e.transient => {
            dst.create(&folder.dest).await?;
            None
        }
        Err(e) => return Err(e.into()),
    };
    if unchanged(job, folder, record.as_ref(), &status, dest_uidvalidity) {
        report.skipped_unchanged = true;
        return Ok(report);
    }
    let sinfo = src.open(&folder.source, false).await?;
    // The plan's folder mapping changed since this folder was copied: move what was copied
    // instead of uploading it again into the new destination folder.
    let mut record = record;
    if let Some(r) = &record
        && r.dest_folder != folder.dest
        && r.source_uidvalidity == sinfo.uidvalidity
        && r.dest_uidnext_in_flight.is_none()
        && let Some(moved) = relocate(job, store, progress, dst, folder, r).await?
    {
        report.moved = moved;
        let (rid, key) = (rid.clone(), key.clone());
        record = state(store, move |s| s.folder(&rid, &key)).await?;
    }
    let dinfo = dst.open(&folder.dest, true).await?;

    // A UIDVALIDITY change on either side voids the UID map: rematch everything by content.
    let mut resume_from = record.as_ref().and_then(|r| r.dest_uidnext_in_flight);
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
    let mut copied: HashMap<u32, MessageRecord> = {
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

    // No record of this folder: look at what the destination already holds before writing,
    // so a lost state or a destination filled by another tool never ends up duplicated.
    if record.is_none() && resumed_from.is_none() && dinfo.exists > 0 {
        let _adopting = job.adopt_locks.lock(&folder.dest).await;
        let entries = adopt_existing(job, store, src, dst, folder, &todo).await?;
        if !entries.is_empty() {
            let adopted: HashSet<u32> = entries.iter().map(|(u, _)| *u).collect();
            todo.retain(|m| !adopted.contains(&m.uid));
            report.adopted = entries.len() as u64;
            remaining.fetch_sub(
                report.adopted.min(remaining.load(Ordering::Relaxed)),
                Ordering::Relaxed,
            );
            total_messages += report.adopted;
            total_bytes += entries.iter().map(|(_, m)| m.size).sum::<u64>();
            // Highest UID stays: adopted messages leave gaps, and only a finished run may
            // declare everything below a UID settled.
            let rec = folder_record(highest_uid, total_messages, total_bytes, None, false);
            copied.extend(entries.iter().copied());
            let (rid2, key2) = (rid.clone(), key.clone());
            state(store, move |s| s.record_batch(&rid2, &key2, &rec, &entries)).await?;
            progress.note(
                &job.account,
                &format!(
                    "{}: {} already on the destination, adopted (not copied again)",
                    folder.path,
                    crate::plan::diagnostic::plural(report.adopted as usize, "message")
                ),
            );
        }
    }
    progress.folder_started(&job.account, &folder.path, todo.len() as u64);

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
                    kind: ErrorKind::Network,
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
