//! Copying one account's mail, folder by folder, exactly once, resumably.
//!
//! A message's identity is its source (folder, UIDVALIDITY, UID), never its Message-ID, so
//! duplicates and messages without one are each copied once. Crash safety follows DESIGN.md:
//! before a batch the destination's UIDNEXT is recorded as "in flight"; after it, the new
//! source → destination map entries and the folder's progress are recorded in one transaction.
//! On the next run, destination messages at or above an in-flight mark are hashed and matched
//! against what is about to be sent, so a batch cut short by a kill -9 is never sent twice.
//! A UIDVALIDITY change on either side reuses the same matching from UID 1.
//!
//! A dropped connection is routine, not a failure: the folder is tried again on fresh
//! connections, keeping what got through (bodies fetched whole, a large message's spooled
//! slices, every acknowledged APPEND recorded) in a per-folder `Carry`, with batches halved
//! after each cut. A folder is given up on only after `STALLED_ATTEMPTS` attempts in a row that
//! kept nothing, and then alone: the other folders go on and the report lists it. A message the
//! destination refuses (a NO to its APPEND) is skipped, reported and recorded in the state.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use super::error::ErrorKind;
use super::folders::{FolderPlan, FolderRules, map_folders};
use super::journal::{FolderRecord, Journal, JournalError, MessageRecord, RefusedRecord};
use super::session::{Appended, Body, FolderInfo, Imap, ImapError, MessageMeta, Outgoing, Target};

/// Messages and bytes per APPEND batch at most: large enough to amortise round trips
/// (MULTIAPPEND), small enough to bound memory. Batches start here and shrink after a cut
/// connection (see [`Limit`]).
const BATCH_MESSAGES: usize = 100;
const BATCH_BYTES: u64 = 8 * 1024 * 1024;
/// The smallest byte budget a batch or a large message's slice shrinks to (a batch always
/// takes at least one message, whatever its size).
const MIN_BATCH_BYTES: u64 = 64 * 1024;
/// Messages larger than this are fetched in slices into a spool file and sent from it, so
/// memory stays bounded whatever the message size.
pub const LARGE_MESSAGE: u64 = 4 * 1024 * 1024;
const SLICE: u64 = 4 * 1024 * 1024;
/// Attempts to open one connection before giving up on the account (the server is down or
/// refuses us: no folder could be copied).
const CONNECT_ATTEMPTS: u32 = 6;
/// Attempts in a row that move nothing forward before a run gives up on a folder. A dropped
/// connection is routine and costs no attempt as long as something was kept (a body fetched,
/// a slice spooled, a message recorded); but a batch cut every time shrinks by half per
/// attempt, and going from a full batch (100 messages, 8 MB) down to one message takes up to
/// 7 halvings: 8 lets even the worst link reach single messages, and one more try at them,
/// before the folder is declared failed.
const STALLED_ATTEMPTS: u32 = 8;
/// The pause before reconnecting after an attempt that made progress: the link works, it just
/// drops; the backoff (doubling up to 30 s) is for attempts that kept nothing.
const RECONNECT_AFTER_PROGRESS: Duration = Duration::from_millis(100);

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
    /// Messages the destination refused (a NO to their APPEND), skipped and recorded in the
    /// state: (source UID, size, the server's words).
    pub refused: Vec<(u32, u64, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct CopyReport {
    pub folders: Vec<FolderReport>,
    pub notes: Vec<String>,
    /// Folders given up on in this run, with why (the others went on); what they copied
    /// before is recorded, and the next run retries only what is missing.
    pub failed: Vec<FailedFolder>,
}

/// A folder this run gave up on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedFolder {
    pub path: String,
    pub reason: String,
    /// What kind of failure gave it up (decides when `watch` tries again).
    pub kind: ErrorKind,
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

/// Runs a blocking journal operation off the async workers (commits sync to disk).
async fn state<T: Send + 'static>(
    store: &Arc<dyn Journal>,
    f: impl FnOnce(&dyn Journal) -> Result<T, JournalError> + Send + 'static,
) -> Result<T, CopyError> {
    let s = store.clone();
    tokio::task::spawn_blocking(move || f(s.as_ref()))
        .await
        .map_err(|e| CopyError::fatal(format!("state task failed: {e}")))?
        .map_err(|e| CopyError::new(ErrorKind::State, e.0))
}

/// A failed copy: `transient` and `throttled` follow from `kind` (see [`super::error`]).
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

impl std::fmt::Display for CopyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Copies (or incrementally syncs) one account. Folders are spread over
/// `options.connections` connection pairs; a failing folder is retried on fresh connections.
pub async fn sync_account(
    job: Arc<Job>,
    store: Arc<dyn Journal>,
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
    let records = { state(&store, |s| s.folders()).await? };
    // Folders the statuses read above show unchanged are done here: no worker, no state read
    // each, which is most of what a no-op run would otherwise spend.
    let (idle, work): (Vec<FolderPlan>, Vec<FolderPlan>) = std::mem::take(&mut mapping.copy)
        .into_iter()
        .partition(|f| match (&f.known.source, &f.known.dest) {
            (Some(s), Some(d)) => unchanged(&job, f, records.get(&f.path), s, Some(d.uidvalidity)),
            _ => false,
        });
    let busy = work.len();
    let skipped: Vec<FolderReport> = idle
        .iter()
        .map(|f| FolderReport {
            path: f.path.clone(),
            dest: f.dest_path.clone(),
            skipped_unchanged: true,
            ..FolderReport::default()
        })
        .collect();
    let mut report = CopyReport {
        notes: mapping.notes.clone(),
        ..CopyReport::default()
    };
    for n in &mapping.notes {
        progress.note(&job.account, n);
    }
    let remaining = Arc::new(AtomicU64::new(match job.options.max_items {
        Some(cap) => {
            let done: u64 = state(&store, |s| {
                Ok(s.folders()?.values().map(|f| f.messages).sum())
            })
            .await?;
            cap.saturating_sub(done)
        }
        None => u64::MAX,
    }));
    let queue: Arc<Mutex<VecDeque<FolderPlan>>> = Arc::new(Mutex::new(work.into_iter().collect()));
    let results: Arc<Mutex<Vec<FolderReport>>> = Arc::new(Mutex::new(skipped));
    let failed: Arc<Mutex<Vec<FailedFolder>>> = Arc::new(Mutex::new(Vec::new()));
    let workers = job.options.connections.max(1).min(busy.max(1));
    let mut handles = Vec::new();
    let mut first = Some((src, dst));
    for _ in 0..workers {
        let conns = first.take();
        let (job, store, progress, stop, queue, results, failed, remaining) = (
            job.clone(),
            store.clone(),
            progress.clone(),
            stop.clone(),
            queue.clone(),
            results.clone(),
            failed.clone(),
            remaining.clone(),
        );
        handles.push(tokio::spawn(async move {
            let out = Outcomes { results, failed };
            worker(job, store, progress, stop, queue, out, remaining, conns).await
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
    let mut failed = std::mem::take(&mut *failed.lock().await);
    failed.sort_by(|a, b| a.path.cmp(&b.path));
    report.failed = failed;
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
    for attempt in 1..=CONNECT_ATTEMPTS {
        match Imap::connect(target).await {
            Ok(c) => return Ok(c),
            Err(e)
                if e.transient && attempt < CONNECT_ATTEMPTS && !stop.load(Ordering::Relaxed) =>
            {
                tokio::time::sleep(pause(e.throttled, &e.message, delay)).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
            Err(e) => return Err(e.into()),
        }
    }
    unreachable!("the last attempt returns")
}

/// How long to wait before reconnecting after `e`: the backoff, four times longer when the
/// server asked us to slow down, and at least what it suggested ("Suggested Backoff Time").
fn pause(throttled: bool, message: &str, delay: Duration) -> Duration {
    if !throttled {
        return delay;
    }
    let suggested = super::error::suggested_backoff(message).unwrap_or_default();
    (delay * 4).max(suggested.min(MAX_SUGGESTED_PAUSE))
}

/// A server's suggested pause is obeyed up to this (a typo'd or hostile hour-long suggestion
/// must not stall a run; `watch` spaces whole runs).
const MAX_SUGGESTED_PAUSE: Duration = Duration::from_secs(300);

/// Where workers leave each folder's outcome.
struct Outcomes {
    results: Arc<Mutex<Vec<FolderReport>>>,
    failed: Arc<Mutex<Vec<FailedFolder>>>,
}

#[allow(clippy::too_many_arguments)]
async fn worker(
    job: Arc<Job>,
    store: Arc<dyn Journal>,
    progress: Arc<dyn Progress>,
    stop: StopFlag,
    queue: Arc<Mutex<VecDeque<FolderPlan>>>,
    out: Outcomes,
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
                tokio::join!(s.logout(), d.logout());
            }
            return Ok(());
        };
        // What this folder's attempts keep across dropped connections.
        let mut carry = Carry::default();
        let mut report = FolderReport {
            path: folder.path.clone(),
            dest: folder.dest_path.clone(),
            ..FolderReport::default()
        };
        let mut delay = Duration::from_millis(500);
        let mut stalled = 0;
        let outcome: Result<(), (String, ErrorKind)> = loop {
            if conns.is_none() {
                // A server that cannot be reached at all fails the account: no other folder
                // could be copied either.
                let s = connect_with_retry(&job.source, &stop).await?;
                let d = connect_with_retry(&job.dest, &stop).await?;
                conns = Some((s, d));
            }
            let (s, d) = conns.as_mut().expect("connected above");
            let before = carry.progress;
            match sync_folder(
                &job,
                &store,
                progress.as_ref(),
                &stop,
                &remaining,
                s,
                d,
                &folder,
                &mut carry,
                &mut report,
            )
            .await
            {
                Ok(()) => break Ok(()),
                Err(e) if e.transient && !stop.load(Ordering::Relaxed) => {
                    let moved = carry.progress > before;
                    stalled = if moved { 0 } else { stalled + 1 };
                    if stalled >= STALLED_ATTEMPTS {
                        break Err((
                            format!(
                                "{} ({STALLED_ATTEMPTS} attempts in a row copied nothing)",
                                e.message
                            ),
                            e.kind,
                        ));
                    }
                    carry.limit.shrink();
                    progress.note(
                        &job.account,
                        &format!(
                            "{}: {} (reconnecting{})",
                            folder.path,
                            e.message,
                            if moved {
                                String::new()
                            } else {
                                format!(", {stalled}/{STALLED_ATTEMPTS} without progress")
                            }
                        ),
                    );
                    // The connections may be half-dead: start over on fresh ones.
                    conns = None;
                    if moved {
                        delay = Duration::from_millis(500);
                        tokio::time::sleep(RECONNECT_AFTER_PROGRESS).await;
                    } else {
                        tokio::time::sleep(pause(e.throttled, &e.message, delay)).await;
                        delay = (delay * 2).min(Duration::from_secs(30));
                    }
                }
                // Stopping: what was recorded stays, the next run resumes; not a failure.
                Err(_) if stop.load(Ordering::Relaxed) => break Ok(()),
                Err(e) => break Err((e.message, e.kind)),
            }
        };
        // A failed folder's report counts what it copied before it was given up on.
        out.results.lock().await.push(report);
        match outcome {
            Ok(()) => {}
            Err((reason, kind)) => {
                // This folder's failure stays this folder's: the others go on. What it copied
                // is recorded; the next run retries what is missing.
                progress.note(
                    &job.account,
                    &format!("{}: given up for this run: {reason}", folder.path),
                );
                out.failed.lock().await.push(FailedFolder {
                    path: folder.path.clone(),
                    reason,
                    kind,
                });
                conns = None;
            }
        }
    }
}

/// What one folder's attempts hand on to the next after a dropped connection, so nothing that
/// arrived whole is fetched again and batches fit what the link carries.
#[derive(Default)]
struct Carry {
    /// Source bodies fetched and not yet recorded, by source UID...
    bodies: HashMap<u32, Vec<u8>>,
    /// ...of the source folder with this UIDVALIDITY.
    source_uidvalidity: Option<u32>,
    /// Content hashes of destination messages that may be ours from an interrupted batch
    /// (see `pending` in `sync_folder`), by destination UID...
    dest_hashes: HashMap<u32, [u8; 32]>,
    /// ...of the destination folder with this UIDVALIDITY.
    dest_uidvalidity: Option<u32>,
    limit: Limit,
    /// A large message partly or wholly spooled.
    spool: Option<Spool>,
    /// Counts every durable step (a body arrived, a slice spooled, a message recorded or
    /// refused): an attempt that raised it made progress.
    progress: u64,
}

/// How much one batch takes. Multiplicative decrease, gentle increase (as TCP does): a cut
/// halves both budgets, down to one message (and a slice of [`MIN_BATCH_BYTES`] for a large
/// one); each batch the destination acknowledges grows them by a quarter, back up to
/// [`BATCH_MESSAGES`] and [`BATCH_BYTES`]. A link that drops every few hundred KB settles at
/// batches that fit between cuts; a healthy one is back at full size after about twenty
/// batches, without one cut discarding a full-size batch right away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Limit {
    messages: usize,
    bytes: u64,
}

impl Default for Limit {
    fn default() -> Self {
        Limit {
            messages: BATCH_MESSAGES,
            bytes: BATCH_BYTES,
        }
    }
}

impl Limit {
    fn shrink(&mut self) {
        self.messages = (self.messages / 2).max(1);
        self.bytes = (self.bytes / 2).max(MIN_BATCH_BYTES);
    }

    fn grow(&mut self) {
        self.messages = (self.messages + self.messages.div_ceil(4)).min(BATCH_MESSAGES);
        self.bytes = (self.bytes + self.bytes / 4).min(BATCH_BYTES);
    }

    /// The slice a large message is fetched in.
    fn slice(&self) -> u64 {
        self.bytes.clamp(MIN_BATCH_BYTES, SLICE)
    }
}

/// A large message being spooled: kept across reconnects so its fetch resumes at the slice
/// where it was cut. The file is removed when this is dropped.
struct Spool {
    uid: u32,
    path: std::path::PathBuf,
    len: u64,
    hasher: CrlfHasher,
    /// Every byte is in the file: its content hash.
    hash: Option<[u8; 32]>,
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What became of a large message.
enum Large {
    /// It vanished from the source.
    Gone,
    /// The map entry, whether it was sent (or found already on the destination), and the
    /// in-flight mark used.
    Copied((u32, MessageRecord), bool, Option<u32>),
    /// The destination said NO to it: its words, its size, and the in-flight mark used.
    Refused(String, u64, Option<u32>),
}

/// Copies one large message through a spool file, which `carry` keeps across reconnects: a
/// cut fetch resumes at the slice where it stopped, a cut APPEND is sent again from the file.
#[allow(clippy::too_many_arguments)]
async fn copy_large(
    job: &Job,
    store: &Arc<dyn Journal>,
    src: &mut Imap,
    dst: &mut Imap,
    folder: &FolderPlan,
    dinfo: &FolderInfo,
    m: &MessageMeta,
    pending: &mut HashMap<[u8; 32], Vec<u32>>,
    resume_from: Option<u32>,
    progress_now: (u32, u64, u64),
    folder_record: &(dyn Fn(u32, u64, u64, Option<u32>, bool) -> FolderRecord + Sync),
    carry: &mut Carry,
) -> Result<Large, CopyError> {
    use tokio::io::AsyncWriteExt;
    let mut spool = match carry.spool.take() {
        Some(s) if s.uid == m.uid => s,
        _ => {
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
            Spool {
                uid: m.uid,
                path,
                len: 0,
                hasher: CrlfHasher::default(),
                hash: None,
            }
        }
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
                let part = match src.fetch_part(m.uid, spool.len, slice).await {
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
    if let Some(uids) = pending.get_mut(&hash)
        && let Some(dest_uid) = uids.pop()
    {
        let rec = MessageRecord {
            dest_uid,
            hash,
            size: len,
            sync_point: job.sync_point,
        };
        return Ok(Large::Copied((m.uid, rec), false, resume_from));
    }
    let sent = async {
        let uidnext = dst.status(&folder.dest).await?.uidnext;
        let in_flight = Some(resume_from.map_or(uidnext, |r| r.min(uidnext)));
        let (h, n, b) = progress_now;
        let rec = folder_record(h, n, b, in_flight, false);
        let key = folder.path.clone();
        state(store, move |s| s.put_folder(&key, &rec)).await?;
        let flags = dest_flags(&m.flags, dinfo);
        let out = Outgoing {
            flags: &flags,
            internal_date: m.internal_date.as_deref(),
            body: Body::File {
                path: &spool.path,
                len,
            },
        };
        let answer = dst.append(&folder.dest, std::slice::from_ref(&out)).await?;
        Ok::<_, CopyError>((answer, in_flight))
    };
    match sent.await {
        Ok((Appended::Stored(uids), in_flight)) => {
            let rec = MessageRecord {
                dest_uid: uids.and_then(|u| u.first().copied()).unwrap_or(0),
                hash,
                size: len,
                sync_point: job.sync_point,
            };
            Ok(Large::Copied((m.uid, rec), true, in_flight))
        }
        Ok((Appended::Refused(why), in_flight)) => Ok(Large::Refused(why, len, in_flight)),
        Err(e) => {
            // Sent again from the file after the reconnect, not fetched again.
            carry.spool = Some(spool);
            Err(e)
        }
    }
}

/// Records what a batch kept, in one transaction: the folder's progress, the new map entries,
/// the messages the destination refused, and the end of the refusal of those that went
/// through this time.
async fn record_kept(
    store: &Arc<dyn Journal>,
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
    state(store, move |s| {
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

/// UIDs per FETCH when adoption asks for fingerprints: keeps command lines short when UIDs
/// are sparse (servers cap a line at some tens of KB).
const FINGERPRINT_CHUNK: usize = 1000;

/// Matches what the destination folder (open on `dst`) holds against the source messages
/// still to copy (folder open on `src`), see [`super::adopt`]. Returns the map entries of the
/// adopted messages: sync point 0 (copied by no run of ours), and a zero hash where the
/// fingerprint alone settled it (their bodies were not fetched).
async fn adopt_existing(
    job: &Job,
    store: &Arc<dyn Journal>,
    src: &mut Imap,
    dst: &mut Imap,
    folder: &FolderPlan,
    todo: &[MessageMeta],
) -> Result<Vec<(u32, MessageRecord)>, CopyError> {
    use super::adopt::{match_fingerprints, match_hashes};
    // Destination messages the maps of other source folders going to this folder already own.
    let claimed: HashSet<u32> = {
        let (key, dest) = (folder.path.clone(), folder.dest.clone());
        state(store, move |s| {
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
                super::plural(dest.len(), "message")
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
    let size_of = |fps: &[(u32, super::adopt::Fingerprint)]| -> HashMap<u32, u64> {
        fps.iter().map(|(u, f)| (*u, u64::from(f.size))).collect()
    };
    let (src_size, dest_size) = (size_of(&source), size_of(&dest));
    let record = |s: u32, d: u32, hash: [u8; 32]| {
        let rec = MessageRecord {
            dest_uid: d,
            hash,
            size: src_size.get(&s).copied().unwrap_or(0),
            sync_point: 0,
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
        src,
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
        dst,
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
    store: &Arc<dyn Journal>,
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
    let key = folder.path.clone();
    let map: Vec<(u32, MessageRecord)> = {
        let key = key.clone();
        state(store, move |s| s.messages(&key)).await?
    };
    let unknown = map.iter().filter(|(_, m)| m.dest_uid == 0).count();
    // Copied to a server that did not say the new UIDs, or one that cannot move by UID: the
    // copies cannot be told from the user's own messages there, so nothing is moved or copied.
    let why = if unknown > 0 {
        Some(format!(
            "{} in {:?} on the destination have unknown UIDs (the server did not report them \
             when they were copied)",
            super::plural(unknown, "copied message"),
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
    state(store, move |s| s.record_batch(&key, &rec, &entries)).await?;
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
            super::plural(count as usize, "message")
        ),
    );
    Ok(Some(count))
}

/// Removes destination messages at or above `from` that are not in the map but have the
/// content of one that is (see the caller). Returns how many were removed.
async fn remove_strays(
    dst: &mut Imap,
    store: &Arc<dyn Journal>,
    key: &str,
    from: u32,
) -> Result<u64, CopyError> {
    let map: Vec<(u32, MessageRecord)> = {
        let key = key.to_string();
        state(store, move |s| s.messages(&key)).await?
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

/// The next batch from the front of `todo`: at most `limit` messages and bytes (a single
/// larger message makes a batch of its own, and so does a message too large for memory).
fn next_batch(todo: &[MessageMeta], limit: Limit) -> Vec<&MessageMeta> {
    let large = |m: &MessageMeta| u64::from(m.size) > LARGE_MESSAGE;
    let mut batch: Vec<&MessageMeta> = Vec::new();
    let mut bytes = 0u64;
    for m in todo {
        let size = u64::from(m.size);
        if let Some(first) = batch.first()
            && (large(m)
                || large(first)
                || batch.len() >= limit.messages
                || bytes + size > limit.bytes)
        {
            break;
        }
        batch.push(m);
        bytes += size;
    }
    batch
}

/// Sends a batch to the destination: as one command when the server takes several
/// (MULTIAPPEND: all stored or none), else one message per command. A NO to a MULTIAPPEND
/// refuses all of it, so the batch is then sent one message at a time to find the refused
/// one(s); the others are stored. Returns the stored messages (index in `to_send`, destination
/// UID or 0), the refused ones (index, the server's words), and the error that stopped it
/// early: the APPENDs acknowledged before it are among the stored, so they get recorded.
/// `uidnext` is the destination's UIDNEXT read just before.
async fn send(
    dst: &mut Imap,
    dest: &str,
    to_send: &[Ready<'_>],
    uidnext: u32,
) -> (Vec<(usize, u32)>, Vec<(usize, String)>, Option<CopyError>) {
    let (mut stored, mut refused) = (Vec::new(), Vec::new());
    if dst.caps.multiappend && to_send.len() > 1 {
        let all: Vec<Outgoing<'_>> = to_send.iter().map(outgoing).collect();
        match dst.append(dest, &all).await {
            Ok(Appended::Stored(uids)) => {
                for k in 0..to_send.len() {
                    let uid = uids.as_ref().and_then(|u| u.get(k).copied());
                    stored.push((k, uid.unwrap_or(0)));
                }
                return (stored, refused, None);
            }
            Ok(Appended::Refused(why)) => {
                // Atomic by RFC 3502, but a server that kept part of it anyway must not get
                // those messages twice: then the next attempt matches them by content from
                // the in-flight mark instead.
                match dst.status(dest).await {
                    Ok(s) if s.uidnext == uidnext => {}
                    Ok(_) => {
                        let e = CopyError::new(
                            ErrorKind::Network,
                            format!(
                                "the destination refused a batch ({why}) but stored part of it; \
                                 matching what it kept by content"
                            ),
                        );
                        return (stored, refused, Some(e));
                    }
                    Err(e) => return (stored, refused, Some(e.into())),
                }
            }
            Err(e) => return (stored, refused, Some(e.into())),
        }
    }
    for (k, t) in to_send.iter().enumerate() {
        match dst.append(dest, &[outgoing(t)]).await {
            Ok(Appended::Stored(uids)) => {
                stored.push((k, uids.and_then(|u| u.first().copied()).unwrap_or(0)));
            }
            Ok(Appended::Refused(why)) => refused.push((k, why)),
            Err(e) => return (stored, refused, Some(e.into())),
        }
    }
    (stored, refused, None)
}

fn outgoing<'a>(t: &'a Ready<'_>) -> Outgoing<'a> {
    Outgoing {
        flags: t.3.as_slice(),
        internal_date: t.0.internal_date.as_deref(),
        body: Body::Mem(t.1.as_slice()),
    }
}

/// The record of a refusal, counting the runs it was refused in.
fn refusal(
    before: &HashMap<u32, RefusedRecord>,
    uid: u32,
    reason: String,
    size: u64,
    sync_point: u64,
) -> RefusedRecord {
    RefusedRecord {
        reason,
        size,
        attempts: before.get(&uid).map_or(0, |r| r.attempts) + 1,
        sync_point,
    }
}

/// A batch holding one message too large for memory (see `copy_large`).
fn is_large_batch(batch: &[&MessageMeta]) -> bool {
    batch.len() == 1 && u64::from(batch[0].size) > LARGE_MESSAGE
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
    store: &Arc<dyn Journal>,
    progress: &dyn Progress,
    stop: &StopFlag,
    remaining: &AtomicU64,
    src: &mut Imap,
    dst: &mut Imap,
    folder: &FolderPlan,
    carry: &mut Carry,
    report: &mut FolderReport,
) -> Result<(), CopyError> {
    let key = folder.path.clone();
    // Counts add up over the attempts of one run; what is derived from the listing is redone.
    report.too_large.clear();
    let record: Option<FolderRecord> = {
        let key = key.clone();
        state(store, move |s| s.folder(&key)).await?
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
        return Ok(());
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
        report.moved += moved;
        let key = key.clone();
        record = state(store, move |s| s.folder(&key)).await?;
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
            let key = key.clone();
            state(store, move |s| s.forget_folder(&key)).await?;
            record = None;
            resume_from = Some(1);
        }
    }
    let mut copied: HashMap<u32, MessageRecord> = {
        let key = key.clone();
        state(store, move |s| s.messages(&key))
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
    let refused_before: HashMap<u32, RefusedRecord> = {
        let key = key.clone();
        state(store, move |s| s.refused(&key))
            .await?
            .into_iter()
            .collect()
    };
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
            report.too_large.push((m.uid, m.size));
            continue;
        }
        if !job.options.in_date_window(m) {
            continue;
        }
        todo.push(m.clone());
    }
    // Messages the destination refused before are tried again whenever their folder is synced
    // (new mail, changed flags or settings, a full scan), once per run: a raised server limit
    // gets them copied, while a no-op run that skips an unchanged folder does not upload a
    // refused 50 MB message again every few minutes.
    let listed: HashSet<u32> = metas.iter().map(|m| m.uid).collect();
    let retry: Vec<u32> = refused_before
        .keys()
        .copied()
        .filter(|u| !listed.contains(u) && !copied.contains_key(u))
        .filter(|u| refused_before[u].sync_point != job.sync_point)
        .collect();
    if !retry.is_empty() {
        let again = src
            .fetch_meta(&super::session::uid_set(&retry), None)
            .await?;
        todo.extend(again.into_iter().filter(|m| {
            retry.contains(&m.uid) && job.options.size_ok(m) && job.options.in_date_window(m)
        }));
        todo.sort_by_key(|m| m.uid);
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
        // Hashed once per run: on a link that drops, each attempt fetches only the candidates
        // not hashed yet, in batches the link carries.
        if carry.dest_uidvalidity != Some(dinfo.uidvalidity) {
            carry.dest_hashes.clear();
            carry.dest_uidvalidity = Some(dinfo.uidvalidity);
        }
        let unhashed: Vec<u32> = candidates
            .iter()
            .copied()
            .filter(|u| !carry.dest_hashes.contains_key(u))
            .collect();
        for chunk in unhashed.chunks(carry.limit.messages) {
            let got = dst.fetch_bodies_partial(chunk).await;
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
                pending.entry(*hash).or_default().push(*uid);
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
        // Matching a large folder takes a while (headers from both sides, some bodies):
        // say what is going on before it starts.
        progress.note(
            &job.account,
            &format!(
                "{}: the destination folder already holds {} the state has no record of; \
                 matching them against the source before copying",
                folder.path,
                super::plural(dinfo.exists as usize, "message")
            ),
        );
        let entries = adopt_existing(job, store, src, dst, folder, &todo).await?;
        if !entries.is_empty() {
            let adopted: HashSet<u32> = entries.iter().map(|(u, _)| *u).collect();
            todo.retain(|m| !adopted.contains(&m.uid));
            report.adopted += entries.len() as u64;
            remaining.fetch_sub(
                report.adopted.min(remaining.load(Ordering::Relaxed)),
                Ordering::Relaxed,
            );
            total_messages += entries.len() as u64;
            total_bytes += entries.iter().map(|(_, m)| m.size).sum::<u64>();
            // Highest UID stays: adopted messages leave gaps, and only a finished run may
            // declare everything below a UID settled.
            let rec = folder_record(highest_uid, total_messages, total_bytes, None, false);
            copied.extend(entries.iter().copied());
            let key2 = key.clone();
            let n = entries.len();
            state(store, move |s| s.record_batch(&key2, &rec, &entries)).await?;
            progress.note(
                &job.account,
                &format!(
                    "{}: {} already on the destination, adopted (not copied again)",
                    folder.path,
                    super::plural(n, "message")
                ),
            );
        }
    }
    progress.folder_started(&job.account, &folder.path, todo.len() as u64);

    // Batches by count and bytes, sized to what the link carries (`carry.limit`). The next
    // batch's bodies are fetched from the source while the current one is appended to the
    // destination: the two servers work at the same time. Bodies wait in `carry.bodies` until
    // recorded, so a cut on either side loses none of those that arrived.
    // UIDs name other messages after a source UIDVALIDITY change: nothing kept applies.
    if carry.source_uidvalidity != Some(sinfo.uidvalidity) {
        carry.bodies.clear();
        carry.spool = None;
        carry.source_uidvalidity = Some(sinfo.uidvalidity);
    }
    let wanted: HashSet<u32> = todo.iter().map(|m| m.uid).collect();
    carry.bodies.retain(|u, _| wanted.contains(u));
    let mut pos = 0;
    let mut capped = false;
    while pos < todo.len() {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let room = remaining.load(Ordering::Relaxed);
        let whole = next_batch(&todo[pos..], carry.limit);
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
        pos += batch.len();
        if is_large_batch(&batch) {
            let m = batch[0];
            let outcome = copy_large(
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
                carry,
            )
            .await?;
            let (entries, mark) = match outcome {
                Large::Gone => continue,
                Large::Copied(entry, sent, mark) => {
                    if sent {
                        report.copied += 1;
                        report.bytes += entry.1.size;
                        progress.copied(&job.account, 1, entry.1.size);
                    } else {
                        report.rematched += 1;
                    }
                    remaining
                        .fetch_sub(1.min(remaining.load(Ordering::Relaxed)), Ordering::Relaxed);
                    total_messages += 1;
                    total_bytes += entry.1.size;
                    (vec![entry], mark)
                }
                Large::Refused(why, size, mark) => {
                    let r = refusal(&refused_before, m.uid, why, size, job.sync_point);
                    report.refused.push((m.uid, size, r.reason.clone()));
                    let key2 = key.clone();
                    let list = vec![(m.uid, r)];
                    state(store, move |s| s.put_refused(&key2, &list)).await?;
                    (Vec::new(), mark)
                }
            };
            highest_uid = highest_uid.max(m.uid);
            pending.retain(|_, v| !v.is_empty());
            let keep = if pending.is_empty() && resumed_from.is_none() {
                None
            } else {
                mark
            };
            resume_from = keep;
            let rec = folder_record(highest_uid, total_messages, total_bytes, keep, false);
            record_kept(store, &key, rec, entries, Vec::new(), &refused_before).await?;
            carry.progress += 1;
            carry.limit.grow();
            continue;
        }
        // Bodies kept from a cut connection are not fetched again.
        let need: Vec<u32> = batch
            .iter()
            .map(|m| m.uid)
            .filter(|u| !carry.bodies.contains_key(u))
            .collect();
        if !need.is_empty() {
            let got = src.fetch_bodies_partial(&need).await;
            carry.progress += got.bodies.len() as u64;
            carry.bodies.extend(got.bodies);
            if let Some(e) = got.error {
                return Err(e.into());
            }
        }
        // A large next batch is not fetched ahead: it goes through the spool file instead.
        let next_uids: Option<Vec<u32>> = if capped {
            None
        } else {
            let next = next_batch(&todo[pos..], carry.limit);
            if next.is_empty() || is_large_batch(&next) {
                None
            } else {
                Some(
                    next.iter()
                        .map(|m| m.uid)
                        .filter(|u| !carry.bodies.contains_key(u))
                        .collect(),
                )
            }
        };
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
            let mut refused: Vec<(u32, RefusedRecord)> = Vec::new();
            let mut failure: Option<CopyError> = None;
            if !to_send.is_empty() {
                let uidnext = dst.status(&folder.dest).await?.uidnext;
                in_flight = Some(resume_from.map_or(uidnext, |r| r.min(uidnext)));
                let rec = folder_record(highest_uid, total_messages, total_bytes, in_flight, false);
                let key2 = key.clone();
                state(store, move |s| s.put_folder(&key2, &rec)).await?;
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
                        },
                    ));
                    report.copied += 1;
                    report.bytes += body.len() as u64;
                    sent += 1;
                    sent_bytes += body.len() as u64;
                }
                if sent > 0 {
                    progress.copied(&job.account, sent, sent_bytes);
                }
                for (k, why) in refusals {
                    let (m, body, _, _) = &to_send[k];
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
            }
            remaining.fetch_sub(
                (entries.len() as u64).min(remaining.load(Ordering::Relaxed)),
                Ordering::Relaxed,
            );
            highest_uid = highest_uid
                .max(entries.iter().map(|(u, _)| *u).max().unwrap_or(0))
                .max(refused.iter().map(|(u, _)| *u).max().unwrap_or(0));
            total_messages += entries.len() as u64;
            total_bytes += entries.iter().map(|(_, m)| m.size).sum::<u64>();
            // After an interruption the mark stays until this folder is finished and checked
            // for late copies (below): a killed client's APPEND can land at any time, and a
            // mark cleared early would hide it from the next run. So does a command cut
            // before its answer: it may have landed.
            let keep = if failure.is_none() && pending.is_empty() && resumed_from.is_none() {
                None
            } else {
                in_flight
            };
            resume_from = keep;
            let rec = folder_record(highest_uid, total_messages, total_bytes, keep, false);
            kept = (entries.len() + refused.len()) as u64;
            record_kept(store, &key, rec, entries, refused, &refused_before).await?;
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
        for m in &batch {
            carry.bodies.remove(&m.uid);
        }
        carry.limit.grow();
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
        if let Some(e) = fetch_error {
            return Err(e.into());
        }
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
        report.duplicates_removed = remove_strays(dst, store, &key, from).await?;
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
    let key2 = key.clone();
    state(store, move |s| s.put_folder(&key2, &rec)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttled_reconnect_waits_at_least_what_the_server_suggested() {
        let d = Duration::from_millis(500);
        assert_eq!(
            pause(false, "Suggested Backoff Time: 9000 milliseconds", d),
            d
        );
        assert_eq!(pause(true, "[THROTTLED]", d), d * 4);
        assert_eq!(
            pause(
                true,
                "BAD Request is throttled. Suggested Backoff Time: 9000 milliseconds",
                d
            ),
            Duration::from_secs(9)
        );
        assert_eq!(
            pause(true, "Suggested Backoff Time: 99999 s", d),
            MAX_SUGGESTED_PAUSE
        );
    }

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

    fn meta(uid: u32, size: u32) -> MessageMeta {
        MessageMeta {
            uid,
            size,
            flags: Vec::new(),
            internal_date: None,
            modseq: None,
        }
    }

    #[test]
    fn batches_respect_the_limit_and_large_messages_go_alone() {
        let todo: Vec<MessageMeta> = (1..=10).map(|u| meta(u, 1_000)).collect();
        let limit = Limit {
            messages: 4,
            bytes: BATCH_BYTES,
        };
        let uids = |b: Vec<&MessageMeta>| b.iter().map(|m| m.uid).collect::<Vec<_>>();
        assert_eq!(uids(next_batch(&todo, limit)), [1, 2, 3, 4]);
        let limit = Limit {
            messages: 100,
            bytes: 2_500,
        };
        assert_eq!(uids(next_batch(&todo, limit)), [1, 2]);
        // One message larger than the byte budget still makes a batch.
        let big = [meta(1, 9_000), meta(2, 10)];
        assert_eq!(uids(next_batch(&big, limit)), [1]);
        let large = LARGE_MESSAGE as u32 + 1;
        let mixed = [meta(1, 10), meta(2, large), meta(3, 10)];
        assert_eq!(uids(next_batch(&mixed, Limit::default())), [1]);
        assert_eq!(uids(next_batch(&mixed[1..], Limit::default())), [2]);
        assert!(next_batch(&[], Limit::default()).is_empty());
    }

    #[test]
    fn batches_halve_on_cuts_down_to_one_message_and_grow_back() {
        let mut limit = Limit::default();
        for _ in 0..STALLED_ATTEMPTS - 1 {
            limit.shrink();
        }
        // The give-up count leaves room to reach single messages first.
        assert_eq!(limit.messages, 1);
        assert_eq!(limit.bytes, MIN_BATCH_BYTES);
        assert_eq!(limit.slice(), MIN_BATCH_BYTES);
        let mut batches = 0;
        while limit != Limit::default() {
            limit.grow();
            batches += 1;
            assert!(batches < 40, "{limit:?}");
        }
        assert_eq!(Limit::default().slice(), SLICE);
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
