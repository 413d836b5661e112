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
//!
//! A platform's daily limit (Gmail's IMAP bandwidth) is a [`Budget`]: bytes are counted
//! through the journal before they move, a batch shrinks to what is left, and when the next
//! message does not fit, or the server says the account exceeded its limits, the account
//! pauses: every worker stops at its next checkpoint, what got through stays recorded, and the
//! report says why ([`CopyReport::paused`]). When to come back is the caller's to decide.
//!
//! This file holds the account (connections, the folder queue, its workers) and what batches
//! are made of; one folder's phases are in `folder` ([`folder::FolderSync`]), and every record
//! goes through the caller's [`Journal`].

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use super::broker::{Broker, Share, Slot};
use super::error::ErrorKind;
mod folder;

use self::folder::unchanged;
use super::folders::{FolderPlan, FolderRules, map_folders};
use super::journal::{FolderRecord, Journal, JournalError, MessageRecord, RefusedRecord};
use super::session::{Appended, Body, FolderInfo, Imap, ImapError, MessageMeta, Outgoing, Target};

/// Messages and bytes per APPEND batch at most: large enough to amortise round trips
/// (MULTIAPPEND), small enough to bound memory. Batches start here and shrink after a cut
/// connection (see [`Limit`]).
pub(crate) const BATCH_MESSAGES: usize = 100;
pub(crate) const BATCH_BYTES: u64 = 8 * 1024 * 1024;
/// The smallest byte budget a batch or a large message's slice shrinks to (a batch always
/// takes at least one message, whatever its size).
pub(crate) const MIN_BATCH_BYTES: u64 = 64 * 1024;
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
pub(crate) const STALLED_ATTEMPTS: u32 = 8;
/// The pause before reconnecting after an attempt that made progress: the link works, it just
/// drops; the backoff (doubling up to 30 s) is for attempts that kept nothing.
pub(crate) const RECONNECT_AFTER_PROGRESS: Duration = Duration::from_millis(100);

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
    /// What the platforms' daily limits still let this run move.
    pub budget: Budget,
}

/// What the platforms' daily limits (Gmail: 2,500 MB read, 500 MB appended per account) still
/// let one account's copy move, per side; `None`: no limit on that side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Budget {
    /// Bytes the source may still serve.
    pub download: Option<Allowance>,
    /// Bytes the destination may still take.
    pub upload: Option<Allowance>,
}

impl Budget {
    pub fn is_limited(&self) -> bool {
        self.download.is_some() || self.upload.is_some()
    }
}

/// One side's allowance: what is left of its limit in the current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    pub left: u64,
    /// The whole limit. While nothing of it is used, one message larger than it may still go:
    /// it could never go otherwise (the server has the last word).
    pub limit: u64,
}

/// Why a copy paused its account before the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paused {
    /// The budget is used up: the next message, of `needed` bytes, did not fit.
    Budget { needed: u64 },
    /// The server said the account exceeded its limits, in these words.
    Server { words: String },
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
pub(crate) type Ready<'a> = (&'a MessageMeta, &'a Vec<u8>, [u8; 32], Vec<String>);

/// Progress as events; the engine never prints.
pub trait Progress: Send + Sync {
    /// Once per run, before any folder: about how many messages this run will copy, from the
    /// statuses read up front and the records (each changed folder's messages less those
    /// recorded as copied), so an ETA can be given before every folder has started. An
    /// estimate: messages deleted on the source or left out by the options make it high.
    fn account_started(&self, _account: &str, _to_copy: u64) {}
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
    /// The account was paused before the end (a daily limit reached): what was copied is
    /// recorded, and a run after the limit's window reopens goes on from there.
    pub paused: Option<Paused>,
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
    /// How the caller names this copy (mailshift: its resource id, e.g.
    /// `account/alice@example.com/mail`), quoted in advice to people; records go through the
    /// journal, which is already bound to it.
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
    /// This account's share of its servers' connection budgets, shared with the other
    /// accounts of the run ([`broker`](super::broker)); `None`: the account's own
    /// `options.connections` is its only limit.
    pub share: Option<Share>,
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

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs a blocking journal operation off the async workers (commits sync to disk).
pub(crate) async fn in_journal<T: Send + 'static>(
    journal: &Arc<dyn Journal>,
    f: impl FnOnce(&dyn Journal) -> Result<T, JournalError> + Send + 'static,
) -> Result<T, CopyError> {
    let s = journal.clone();
    tokio::task::spawn_blocking(move || f(s.as_ref()))
        .await
        .map_err(|e| CopyError::fatal(format!("state task failed: {e}")))?
        .map_err(|e| CopyError::new(ErrorKind::State, e.0))
}

/// Records one batch of a one-folder copy (a file import, a POP3 maildrop): its messages and
/// the folder record, the destination's new refusals, and the end of the refusals of the
/// messages it has now taken.
pub(crate) async fn commit_batch(
    journal: &Arc<dyn Journal>,
    key: &str,
    record: FolderRecord,
    entries: Vec<(u32, MessageRecord)>,
    refused: Vec<(u32, RefusedRecord)>,
    taken: Vec<u32>,
) -> Result<(), CopyError> {
    let key = key.to_string();
    in_journal(journal, move |s| {
        s.record_batch(&key, &record, &entries)?;
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
    pub(crate) fn fatal(message: impl Into<String>) -> Self {
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
/// A daily limit reached pauses the account ([`CopyReport::paused`]) rather than failing it.
pub async fn sync_account(
    job: Arc<Job>,
    journal: Arc<dyn Journal>,
    progress: Arc<dyn Progress>,
    stop: StopFlag,
) -> Result<CopyReport, CopyError> {
    match copy_account(job, journal, progress, stop).await {
        // Refused before any folder started (a login, the folder list): nothing was copied.
        Err(e) if e.kind == ErrorKind::DailyLimit => Ok(CopyReport {
            paused: Some(Paused::Server { words: e.message }),
            ..CopyReport::default()
        }),
        other => other,
    }
}

async fn copy_account(
    job: Arc<Job>,
    journal: Arc<dyn Journal>,
    progress: Arc<dyn Progress>,
    stop: StopFlag,
) -> Result<CopyReport, CopyError> {
    // Without a budget shared with other accounts, the account's own connections are one.
    let held = job.clone();
    let own_share;
    let share = match &held.share {
        Some(s) => s,
        None => {
            own_share = Broker::new().account(
                [
                    ("source", held.options.connections),
                    ("dest", held.options.connections),
                ],
                held.options.connections,
            );
            &own_share
        }
    };
    // The account's first connection pair waits for room on its servers, in turn; a stop
    // asked meanwhile ends the wait (nothing was started, nothing to record).
    let Some(first_slot) = wait_first(share, &stop).await else {
        return Ok(CopyReport::default());
    };
    // Reading both sides and mapping the folders is tried again on fresh connections when a
    // connection drops or the server asks us to slow down (a throttling server closes the
    // connection, and Exchange Online ends a session when its token expires).
    let mut delay = Duration::from_millis(500);
    let mut attempt = 0;
    let (src, dst, mut mapping) = loop {
        attempt += 1;
        // Both servers at once: a no-op run is mostly waiting for them.
        let (src, dst) = tokio::join!(
            connect_fresh(&job.source, job.login_grace, &stop),
            connect_fresh(&job.dest, job.login_grace, &stop)
        );
        let (mut src, mut dst) = (src?, dst?);
        match map_account(&job, &mut src, &mut dst).await {
            Ok(mapping) => break (src, dst, mapping),
            Err(e)
                if e.transient && attempt < CONNECT_ATTEMPTS && !stop.load(Ordering::Relaxed) =>
            {
                let token_expired =
                    src.ended_by_token_expiry(&e.message) | dst.ended_by_token_expiry(&e.message);
                progress.note(&job.account, &format!("{} (reconnecting)", e.message));
                if !token_expired {
                    tokio::time::sleep(pause(e.throttled, &e.message, delay, jitter())).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
            Err(e) => return Err(e),
        }
    };
    // Extra connections only for folders with something to do: a no-op run opens none.
    let records = in_journal(&journal, |s| s.folders()).await?;
    // Folders the statuses read above show unchanged are done here: no worker, no state read
    // each, which is most of what a no-op run would otherwise spend.
    let (idle, work): (Vec<FolderPlan>, Vec<FolderPlan>) = std::mem::take(&mut mapping.copy)
        .into_iter()
        .partition(|f| match (&f.known.source, &f.known.dest) {
            (Some(s), Some(d)) => unchanged(&job, f, records.get(&f.path), s, Some(d.uidvalidity)),
            _ => false,
        });
    let expected: u64 = work
        .iter()
        .filter_map(|f| {
            let s = f.known.source.as_ref()?;
            let copied = records
                .get(&f.path)
                .filter(|r| r.source_uidvalidity == s.uidvalidity)
                .map_or(0, |r| r.messages);
            Some(u64::from(s.exists).saturating_sub(copied))
        })
        .sum();
    progress.account_started(&job.account, expected);
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
            let done: u64 = in_journal(&journal, |s| {
                Ok(s.folders()?.values().map(|f| f.messages).sum())
            })
            .await?;
            cap.saturating_sub(done)
        }
        None => u64::MAX,
    }));
    let meter = Meter::new(&job.options.budget);
    let run = Arc::new(Run {
        job,
        journal,
        progress,
        stop,
        remaining,
        meter,
        paused: std::sync::Mutex::new(None),
        halted: AtomicBool::new(false),
        busy: Default::default(),
        alive: Default::default(),
        no_extras: AtomicBool::new(false),
    });
    let queue: Arc<Mutex<VecDeque<FolderPlan>>> = Arc::new(Mutex::new(work.into_iter().collect()));
    let results: Arc<Mutex<Vec<FolderReport>>> = Arc::new(Mutex::new(skipped));
    let failed: Arc<Mutex<Vec<FailedFolder>>> = Arc::new(Mutex::new(Vec::new()));
    // Workers: the first on the connections that read the folders, then one more per slot the
    // budget grants while folders wait, looked at again whenever a slot is given back
    // anywhere (another account ending frees room for this one's folders).
    let mut workers = tokio::task::JoinSet::new();
    {
        let (run, queue, results, failed) =
            (run.clone(), queue.clone(), results.clone(), failed.clone());
        run.alive.fetch_add(1, Ordering::Relaxed);
        workers.spawn(async move {
            let out = Outcomes { results, failed };
            worker(run, queue, out, Some((src, dst)), first_slot).await
        });
    }
    let mut first_error = None;
    loop {
        let changed = share.broker().changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let queued = queue.lock().await.len();
        let busy = run.busy.load(Ordering::Relaxed);
        share.set_demand(queued + busy);
        // Folders no worker is about to take: a worker connecting has not taken one yet.
        let starting = workers.len().saturating_sub(busy);
        let mut wanted = queued.saturating_sub(starting);
        while wanted > 0 && !run.halted() && !run.no_extras.load(Ordering::Relaxed) {
            let Some(slot) = share.extra() else { break };
            let (run, queue, results, failed) =
                (run.clone(), queue.clone(), results.clone(), failed.clone());
            run.alive.fetch_add(1, Ordering::Relaxed);
            workers.spawn(async move {
                let out = Outcomes { results, failed };
                worker(run, queue, out, None, slot).await
            });
            wanted -= 1;
        }
        tokio::select! {
            ended = workers.join_next() => match ended {
                None => break,
                Some(Ok(Ok(()))) => {}
                // A worker's connection refused for the account's limits: the others stop too.
                Some(Ok(Err(e))) if e.kind == ErrorKind::DailyLimit => {
                    run.pause(Paused::Server { words: e.message });
                }
                Some(Ok(Err(e))) => {
                    first_error.get_or_insert(e);
                }
                Some(Err(e)) => {
                    first_error
                        .get_or_insert(CopyError::fatal(format!("copy task panicked: {e}")));
                }
            },
            () = &mut changed => {}
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
    report.paused = run
        .paused
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    Ok(report)
}

/// Both sides' folders, mapped, the missing ones created on the destination, each with the
/// status read up front: in one exchange per server (LIST-STATUS) or one pipelined round of
/// STATUS, what keeps a no-op run's cost flat in the number of folders.
async fn map_account(
    job: &Job,
    src: &mut Imap,
    dst: &mut Imap,
) -> Result<super::folders::Mapping, CopyError> {
    let (source_list, dest_list) = tokio::join!(src.list_with_status(), dst.list_with_status());
    let ((source_folders, mut source_status), (dest_folders, mut dest_status)) =
        (source_list?, dest_list?);
    // A server that says it is Gmail is treated as Gmail whatever the plan's type.
    let mut rules = job.rules.clone();
    rules.gmail.source |= src.caps.gmail;
    rules.gmail.dest |= dst.caps.gmail;
    let mut mapping = map_folders(&source_folders, &dest_folders, &rules)
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
    Ok(mapping)
}

/// The first connection of a run: within `grace`, even a refused login is tried again.
pub(crate) async fn connect_fresh(
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

pub(crate) async fn connect_with_retry(
    target: &Target,
    stop: &StopFlag,
) -> Result<Imap, CopyError> {
    let mut delay = Duration::from_millis(500);
    for attempt in 1..=CONNECT_ATTEMPTS {
        match Imap::connect(target).await {
            Ok(c) => return Ok(c),
            Err(e)
                if e.transient && attempt < CONNECT_ATTEMPTS && !stop.load(Ordering::Relaxed) =>
            {
                tokio::time::sleep(pause(e.throttled, &e.message, delay, jitter())).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
            Err(e) => return Err(e.into()),
        }
    }
    unreachable!("the last attempt returns")
}

/// How long to wait before reconnecting after `e`, `jitter` drawn from [0, 1): the backoff;
/// when the server asked us to slow down without saying for how long ("Server Unavailable",
/// `[THROTTLED]`, too many connections), four times longer and spread by the jitter (from half
/// to one and a half times that), so an account's connections do not all come back at once.
/// A suggested backoff ("Suggested Backoff Time") is not waited here: the account's
/// [`Gate`](super::session::Gate) holds every connection for exactly that long.
pub(crate) fn pause(throttled: bool, message: &str, delay: Duration, jitter: f64) -> Duration {
    if !throttled {
        return delay;
    }
    if super::error::suggested_backoff(message).is_some() {
        return Duration::ZERO;
    }
    (delay * 4).mul_f64(0.5 + jitter.clamp(0.0, 1.0))
}

/// A draw from [0, 1) for [`pause`]: xorshift over a process-wide state seeded from the clock
/// (spreading reconnects needs no better randomness, and tests pass their own draws to
/// `pause`).
pub(crate) fn jitter() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut x = STATE.load(Ordering::Relaxed);
    if x == 0 {
        x = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
            | 1;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    STATE.store(x, Ordering::Relaxed);
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// A worker's folder in hand, counted while it lasts (the count drops on every way out).
struct Busy<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> Busy<'a> {
    fn new(n: &'a std::sync::atomic::AtomicUsize) -> Busy<'a> {
        n.fetch_add(1, Ordering::Relaxed);
        Busy(n)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A running worker, counted (see [`Run::alive`]).
struct Alive<'a> {
    count: &'a std::sync::atomic::AtomicUsize,
    left: std::cell::Cell<bool>,
}

impl Alive<'_> {
    /// Leaves early if another worker of the account stays; the count drops only once.
    fn leave(&self) -> bool {
        let left = self
            .count
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n > 1).then(|| n - 1)
            })
            .is_ok();
        self.left.set(left);
        left
    }
}

impl Drop for Alive<'_> {
    fn drop(&mut self) {
        if !self.left.get() {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Waits for the account's first slot, or for a stop (`None`): a stop is a flag, so it is
/// looked at every few hundred milliseconds while the wait lasts.
async fn wait_first(share: &Share, stop: &StopFlag) -> Option<Slot> {
    let first = share.first();
    tokio::pin!(first);
    loop {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        tokio::select! {
            slot = &mut first => return Some(slot),
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// Where workers leave each folder's outcome.
struct Outcomes {
    results: Arc<Mutex<Vec<FolderReport>>>,
    failed: Arc<Mutex<Vec<FailedFolder>>>,
}

/// What one account's workers share.
struct Run {
    job: Arc<Job>,
    journal: Arc<dyn Journal>,
    progress: Arc<dyn Progress>,
    stop: StopFlag,
    /// Messages the plan's `max_items` still lets this run copy.
    remaining: Arc<AtomicU64>,
    /// What the daily limits still let this run move.
    meter: Meter,
    /// Why the account paused, once one worker found it must.
    paused: std::sync::Mutex<Option<Paused>>,
    /// Set with `paused`: the other workers stop at their next checkpoint.
    halted: AtomicBool,
    /// Workers with a folder in hand.
    busy: std::sync::atomic::AtomicUsize,
    /// Workers running: one giving its slot back never takes the last one (the queue would
    /// be left with no worker).
    alive: std::sync::atomic::AtomicUsize,
    /// An extra connection was refused: the server caps this user's connections (Dovecot
    /// 10, Gmail 15), so the account goes on with the workers it has.
    no_extras: AtomicBool,
}

impl Run {
    /// The user asked to stop, or the account paused: finish the batch in hand, start nothing.
    fn halted(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.halted.load(Ordering::Relaxed)
    }

    /// Pauses the account; the first reason found is kept.
    fn pause(&self, why: Paused) {
        let mut paused = self
            .paused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if paused.is_none() {
            self.progress.note(
                &self.job.account,
                &match &why {
                    Paused::Budget { .. } => {
                        "the daily limit is reached: pausing the account".to_string()
                    }
                    Paused::Server { words } => {
                        format!("the server says the account reached its limits ({words}): pausing the account")
                    }
                },
            );
            *paused = Some(why);
        }
        self.halted.store(true, Ordering::Relaxed);
    }
}

/// A [`Budget`] spent by concurrent workers: each batch takes its bytes before it moves.
struct Meter {
    download: Option<Gauge>,
    upload: Option<Gauge>,
}

struct Gauge {
    left: AtomicU64,
    limit: u64,
}

impl Gauge {
    fn new(a: Allowance) -> Gauge {
        Gauge {
            left: AtomicU64::new(a.left.min(a.limit)),
            limit: a.limit,
        }
    }

    /// Takes `n` bytes if they fit (or if nothing was used and the limit is all there is).
    fn take(&self, n: u64) -> bool {
        self.left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                (n <= left || left == self.limit).then(|| left.saturating_sub(n))
            })
            .is_ok()
    }

    fn give_back(&self, n: u64) {
        let _ = self
            .left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                Some(left.saturating_add(n).min(self.limit))
            });
    }
}

impl Meter {
    fn new(b: &Budget) -> Meter {
        Meter {
            download: b.download.map(Gauge::new),
            upload: b.upload.map(Gauge::new),
        }
    }

    fn is_limited(&self) -> bool {
        self.download.is_some() || self.upload.is_some()
    }

    /// Takes one message's bytes on both sides (`fetch`: its body must still be fetched), or
    /// nothing if either side cannot take them.
    fn take(&self, size: u64, fetch: bool) -> bool {
        let down = if fetch { size } else { 0 };
        if let Some(g) = &self.download
            && !g.take(down)
        {
            return false;
        }
        if let Some(g) = &self.upload
            && !g.take(size)
        {
            if let Some(d) = &self.download {
                d.give_back(down);
            }
            return false;
        }
        true
    }
}

/// Takes folders from `queue` until it is empty, each tried again on fresh connections after
/// a cut (see the module documentation).
async fn worker(
    run: Arc<Run>,
    queue: Arc<Mutex<VecDeque<FolderPlan>>>,
    out: Outcomes,
    mut conns: Option<(Imap, Imap)>,
    // This worker's place in the servers' budgets, given back when it returns (or fails).
    _slot: Slot,
) -> Result<(), CopyError> {
    let (job, progress, stop) = (&run.job, &run.progress, &run.stop);
    let alive = Alive {
        count: &run.alive,
        left: Default::default(),
    };
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
                run.no_extras.store(true, Ordering::Relaxed);
                progress.note(
                    &job.account,
                    &format!("an extra connection was refused ({e}); going on with fewer"),
                );
                return Ok(());
            }
        }
    }
    loop {
        if run.halted() {
            if let Some((s, d)) = conns.take() {
                tokio::join!(s.logout(), d.logout());
            }
            return Ok(());
        }
        // Between folders, an account above its fair share gives this slot back: another
        // account with folders waiting takes it.
        let next = match &job.share {
            Some(share) if share.over_share() && alive.leave() => None,
            _ => {
                let mut queue = queue.lock().await;
                let next = queue.pop_front();
                // What this account still wants, told at once: another account may grow.
                if let Some(share) = &job.share {
                    share.set_demand(queue.len() + run.busy.load(Ordering::Relaxed) + 1);
                }
                next
            }
        };
        let Some(folder) = next else {
            if let Some((s, d)) = conns.take() {
                tokio::join!(s.logout(), d.logout());
            }
            return Ok(());
        };
        let _busy = Busy::new(&run.busy);
        // What this folder's attempts keep across dropped connections.
        let mut carry = Carry::default();
        let mut report = FolderReport {
            path: folder.path.clone(),
            dest: folder.dest_path.clone(),
            ..FolderReport::default()
        };
        let mut delay = Duration::from_millis(500);
        let mut stalled = 0;
        // Sessions ended because their token expired, in a row without progress: routine
        // (Exchange Online ends a session at its token's expiry), unless every fresh login
        // is ended again before anything moves.
        let mut expired = 0;
        let outcome: Result<(), (String, ErrorKind)> = loop {
            if conns.is_none() {
                // A server that cannot be reached at all fails the account: no other folder
                // could be copied either.
                let s = connect_with_retry(&job.source, stop).await?;
                let d = connect_with_retry(&job.dest, stop).await?;
                conns = Some((s, d));
            }
            let (s, d) = conns.as_mut().expect("connected above");
            let before = carry.progress;
            match folder::sync_folder(&run, s, d, &folder, &mut carry, &mut report).await {
                Ok(()) => break Ok(()),
                // Nothing more goes through today: what was recorded stays, the account waits.
                Err(e) if e.kind == ErrorKind::DailyLimit => {
                    run.pause(Paused::Server { words: e.message });
                    conns = None;
                    break Ok(());
                }
                Err(e) if e.transient && !run.halted() => {
                    let moved = carry.progress > before;
                    // Both sides asked: either may have been ended (and each token source
                    // told its token expired).
                    let (s, d) = conns.as_mut().expect("connected above");
                    let token_expired =
                        s.ended_by_token_expiry(&e.message) | d.ended_by_token_expiry(&e.message);
                    // The connections may be half-dead: start over on fresh ones.
                    conns = None;
                    if token_expired {
                        expired = if moved { 0 } else { expired + 1 };
                        if expired < STALLED_ATTEMPTS {
                            // Resumes where it was: what it carries stays, batches keep
                            // their size, and the attempt does not count as stalled.
                            progress.note(
                                &job.account,
                                &format!(
                                    "{}: the session's OAuth2 token expired; reconnecting with a fresh one",
                                    folder.path
                                ),
                            );
                            continue;
                        }
                    }
                    stalled = if moved { 0 } else { stalled + 1 };
                    if stalled >= STALLED_ATTEMPTS || expired >= STALLED_ATTEMPTS {
                        break Err((
                            format!(
                                "{} ({STALLED_ATTEMPTS} attempts in a row copied nothing)",
                                e.message
                            ),
                            e.kind,
                        ));
                    }
                    // A cut link gets smaller batches; a server asking to slow down is not a
                    // cut link.
                    if !e.throttled {
                        carry.limit.shrink();
                    }
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
                    if moved {
                        delay = Duration::from_millis(500);
                        tokio::time::sleep(RECONNECT_AFTER_PROGRESS).await;
                    } else {
                        tokio::time::sleep(pause(e.throttled, &e.message, delay, jitter())).await;
                        delay = (delay * 2).min(Duration::from_secs(30));
                    }
                }
                // Stopping (or pausing): what was recorded stays, the next run resumes; not a
                // failure.
                Err(_) if run.halted() => break Ok(()),
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

impl Spool {
    /// A new, empty spool file for message `uid` in `dir`.
    fn create(dir: &std::path::Path, uid: u32) -> Result<Spool, CopyError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            CopyError::fatal(format!(
                "cannot create spool directory {}: {e}",
                dir.display()
            ))
        })?;
        // Unique per process and per call: workers spool messages with the same UID in
        // different folders at the same time.
        static SPOOLED: AtomicU64 = AtomicU64::new(0);
        let path = dir.join(format!(
            "{}-{}.eml",
            std::process::id(),
            SPOOLED.fetch_add(1, Ordering::Relaxed)
        ));
        Ok(Spool {
            uid,
            path,
            len: 0,
            hasher: CrlfHasher::default(),
            hash: None,
        })
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Content hashes of messages of the open folder, fetched in batches; large ones in slices,
/// so memory stays bounded. Messages gone meanwhile are left out.
pub(crate) async fn hash_messages(
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
pub(crate) async fn send(
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
    // One APPEND per message, pipelined where the server takes LITERAL+.
    let each: Vec<Outgoing<'_>> = to_send.iter().map(outgoing).collect();
    let (answers, error) = dst.append_each(dest, &each).await;
    for (k, answer) in answers {
        match answer {
            Appended::Stored(uids) => {
                stored.push((k, uids.and_then(|u| u.first().copied()).unwrap_or(0)));
            }
            Appended::Refused(why) => refused.push((k, why)),
        }
    }
    (stored, refused, error.map(CopyError::from))
}

fn outgoing<'a>(t: &'a Ready<'_>) -> Outgoing<'a> {
    Outgoing {
        flags: t.3.as_slice(),
        internal_date: t.0.internal_date.as_deref(),
        body: Body::Mem(t.1.as_slice()),
    }
}

/// The record of a refusal, counting the runs it was refused in.
pub(crate) fn refusal(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttled_reconnect_spreads_its_pause_and_leaves_a_suggested_one_to_the_gate() {
        let d = Duration::from_millis(500);
        assert_eq!(
            pause(false, "Suggested Backoff Time: 9000 milliseconds", d, 0.9),
            d
        );
        // Without a suggestion: four times the backoff, spread by the jitter.
        assert_eq!(pause(true, "[THROTTLED]", d, 0.5), d * 4);
        assert_eq!(pause(true, "NO Server Unavailable. 15", d, 0.0), d * 2);
        assert_eq!(pause(true, "[THROTTLED]", d, 0.99), (d * 4).mul_f64(1.49));
        // With one, the account's gate waits exactly that long, for every connection.
        assert_eq!(
            pause(
                true,
                "BAD Request is throttled. Suggested Backoff Time: 9000 milliseconds",
                d,
                0.3
            ),
            Duration::ZERO
        );
        let draws: Vec<f64> = (0..100).map(|_| jitter()).collect();
        assert!(draws.iter().all(|j| (0.0..1.0).contains(j)));
        assert!(draws.windows(2).any(|w| w[0] != w[1]));
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
    fn a_budget_takes_what_fits_and_gives_nothing_back_half_taken() {
        let allow = |left, limit| Some(Allowance { left, limit });
        let meter = Meter::new(&Budget {
            download: allow(1_000, 5_000),
            upload: allow(600, 500_000),
        });
        assert!(meter.take(500, true));
        // The destination has 100 left: 200 does not fit, and the source keeps its 500.
        assert!(!meter.take(200, true));
        let left = |g: &Option<Gauge>| g.as_ref().unwrap().left.load(Ordering::Relaxed);
        assert_eq!((left(&meter.download), left(&meter.upload)), (500, 100));
        // A body already fetched costs the source nothing more.
        assert!(meter.take(100, false));
        assert_eq!((left(&meter.download), left(&meter.upload)), (500, 0));
        assert!(!meter.take(1, false));

        // Untouched, a message larger than the whole limit still goes, once.
        let fresh = Meter::new(&Budget {
            download: None,
            upload: allow(300, 300),
        });
        assert!(fresh.take(400, true));
        assert!(!fresh.take(1, true));
        assert!(!Meter::new(&Budget::default()).is_limited());
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
