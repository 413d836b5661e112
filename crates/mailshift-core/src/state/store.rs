//! The state store: one redb file recording what `apply` did, per resource, folder and message.
//!
//! Only one process may write the state at a time (`StateStore::open` takes an OS lock on a
//! sibling `.lock` file that holds the owner's pid), while `plan` and `status` read it through
//! [`read_resources`] without taking that lock. The writer opens redb in
//! [`ConcurrencyMode::SingleWriter`] precisely so that such readers see the last committed
//! transaction while an `apply` runs, instead of being turned away.
//!
//! Layout (format version [`FORMAT_VERSION`]):
//! - `meta`: `&str → &str`: `format_version`, `created_by`, `sync_point`, `shard` (the shard
//!   that created the file, `I/N`; a file without it is the whole plan's, `0/1`). Its type must never
//!   change: it is read before anything else, so that an older mailshift can always tell that a
//!   file is too new for it rather than fail on a table type mismatch.
//! - `resources`: resource id → [`ResourceRecord`] as JSON, so fields can be added compatibly.
//! - `folders`: (resource id, source folder) → [`FolderRecord`] as JSON.
//! - `messages`: (resource id, source folder, source UID) → [`MessageRecord`] in a fixed
//!   little-endian layout: there can be millions of them, JSON would triple the file.
//! - `refused`: (resource id, source folder, source UID) → [`RefusedRecord`] as JSON: messages
//!   the destination said NO to. Added after format 1 shipped without a version bump: an older
//!   mailshift never opens it, and readers treat a file without it as having no refusals
//!   (it is created by the first write).
//! - `dav_collections`, `dav_objects`, `dav_refused`: the contacts/calendars/tasks copy's
//!   records, added the same way ([`dav`]).
//! - `quota_bytes`, `pauses`: bytes moved per account, side and hour against the platforms'
//!   daily limits, and the copies paused by them, added the same way ([`quota`]).
//! - `sync_points`, `rollbacks`: when each sync point started, and the rollbacks in flight,
//!   added the same way ([`rollback`]).
//! - `notified`: the notifications already sent, so each is sent once ([`notified`]).
//! - `holds`: the accounts a person paused from watch mode's API, added the same way
//!   ([`hold`]).
//!
//! A split run keeps one file per shard, each stamped with its shard (`meta`'s `shard`) and
//! opened only as that shard ([`StateStore::open_as`]); [`reshard`] moves the records of every
//! table between the files of two splits.
//!
//! Every write method's records are committed and fsynced before it returns, so a crash loses
//! at most the step in flight. Concurrent writers (the copies of several folders and accounts)
//! share their fsyncs (group commit, [`Group`]): writes that arrive while a commit is under way
//! go into one transaction together, committed once by the last of them. Each still returns
//! only once its own records are durable, which is what the copy engines' ordering rests on.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};

use redb::{
    Builder, ConcurrencyMode, Database, DatabaseError, ReadTransaction, ReadableDatabase,
    ReadableTable, TableDefinition, TableError,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::record::{FolderRecord, MessageRecord, RefusedRecord, ResourceRecord};
use crate::shard::Shard;

pub mod cutover;
pub mod dav;
pub mod hold;
pub mod notified;
pub mod quota;
pub mod reshard;
pub mod rollback;
pub mod throughput;

/// The state format this build writes, and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// Where the state lives when the plan has no `state:` field, relative to the plan's directory.
pub const DEFAULT_RELATIVE_PATH: &str = ".mailshift/state.redb";

const CREATED_BY: &str = concat!("mailshift ", env!("CARGO_PKG_VERSION"));

const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
const RESOURCES: TableDefinition<&str, &str> = TableDefinition::new("resources");
const FOLDERS: TableDefinition<(&str, &str), &str> = TableDefinition::new("folders");
const MESSAGES: TableDefinition<(&str, &str, u32), &[u8]> = TableDefinition::new("messages");
const REFUSED: TableDefinition<(&str, &str, u32), &str> = TableDefinition::new("refused");

const META_FORMAT_VERSION: &str = "format_version";
const META_CREATED_BY: &str = "created_by";
const META_SYNC_POINT: &str = "sync_point";
/// The shard that created the file (`I/N`), stamped once at creation: a shard refuses a file
/// written by another shard or another N ([`StateError::WrongShard`]).
const META_SHARD: &str = "shard";

/// Encoded size of a [`MessageRecord`]: dest_uid u32, hash 32 bytes, size u64, sync_point u64.
const MESSAGE_LEN: usize = 4 + 32 + 8 + 8;
/// With the Gmail ids (source_msgid u64, dest_msgid u64) appended, written only when one is
/// set: older files and non-Gmail copies keep the short form, and an older mailshift reads
/// the long one (it ignores bytes past [`MESSAGE_LEN`]).
const MESSAGE_LEN_GMAIL: usize = MESSAGE_LEN + 16;

/// The state file path for a plan: its `state:` field (relative to the plan's directory), or
/// [`DEFAULT_RELATIVE_PATH`] beside the plan.
pub fn default_path(plan_path: &Path, state_field: Option<&str>) -> PathBuf {
    let dir = plan_path.parent().unwrap_or(Path::new(""));
    dir.join(state_field.unwrap_or(DEFAULT_RELATIVE_PATH))
}

/// Why the state could not be read or written. Every message names the state file and says
/// what to do.
#[derive(Debug)]
#[non_exhaustive]
pub enum StateError {
    /// Another process holds the state (an `apply` is running). `pid` is `None` when the holder
    /// had not written it yet, or holds the file without our lock file.
    Locked { path: PathBuf, pid: Option<u32> },
    /// The file was written by a newer mailshift.
    TooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    /// The file exists but is not a mailshift state file.
    NotAStateFile { path: PathBuf, detail: String },
    /// One record cannot be decoded; `record` names it.
    Corrupt {
        path: PathBuf,
        record: String,
        detail: String,
    },
    /// A file system operation around the state file failed (directory, lock file).
    Io {
        path: PathBuf,
        action: String,
        source: io::Error,
    },
    /// redb failed (disk full, I/O error, damaged file).
    Db { path: PathBuf, source: redb::Error },
    /// The file belongs to another shard (`found`, from its stamp) than the process opening
    /// it (`wanted`).
    WrongShard {
        path: PathBuf,
        found: Shard,
        wanted: Shard,
    },
}

impl StateError {
    /// The state file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            StateError::Locked { path, .. }
            | StateError::TooNew { path, .. }
            | StateError::NotAStateFile { path, .. }
            | StateError::Corrupt { path, .. }
            | StateError::Io { path, .. }
            | StateError::Db { path, .. }
            | StateError::WrongShard { path, .. } => path,
        }
    }
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::Locked { path, pid } => {
                let pid = pid.map_or_else(|| "pid unknown".to_string(), |p| format!("pid {p}"));
                write!(
                    f,
                    "state file {} is in use by another mailshift process ({pid}): wait for it \
                     to finish; the lock is released when that process exits",
                    path.display()
                )
            }
            StateError::TooNew {
                path,
                found,
                supported,
            } => write!(
                f,
                "state file {} was written by a newer mailshift (state format {found}; this one \
                 reads up to {supported}): upgrade mailshift",
                path.display()
            ),
            StateError::NotAStateFile { path, detail } => write!(
                f,
                "{} is not a mailshift state file ({detail}): check the plan's `state:` setting; \
                 if this is the state and it was damaged, restore it from a backup",
                path.display()
            ),
            StateError::Corrupt {
                path,
                record,
                detail,
            } => write!(
                f,
                "state file {} holds an unreadable {record} ({detail}): the file was damaged or \
                 edited outside mailshift; restore it from a backup",
                path.display()
            ),
            StateError::Io {
                path,
                action,
                source,
            } => write!(
                f,
                "state file {}: cannot {action}: {source}: check the path, its permissions and \
                 free disk space",
                path.display()
            ),
            StateError::Db { path, source } => write!(
                f,
                "state file {}: {source}: check free disk space and permissions, then retry; if \
                 the file was damaged, restore it from a backup",
                path.display()
            ),
            StateError::WrongShard {
                path,
                found,
                wanted,
            } => {
                let owner = |s: &Shard| {
                    if s.is_whole() {
                        "the whole plan (no --shard)".to_string()
                    } else {
                        format!("shard {s}")
                    }
                };
                write!(
                    f,
                    "state file {} belongs to {}, and this process is {}: ",
                    path.display(),
                    owner(found),
                    owner(wanted)
                )?;
                if found.count == wanted.count {
                    // Same split, another index: two shards meet at one path.
                    write!(
                        f,
                        "run with --shard {found} to use it; if several shards write to this \
                         path, put `{{shard}}` in the plan's `state:` path (`state-{{shard}}.redb`) \
                         so each shard has its own file"
                    )
                } else {
                    let run = if found.is_whole() {
                        "run without --shard".to_string()
                    } else {
                        format!("run with --shard I/{}", found.count)
                    };
                    write!(
                        f,
                        "{run} as the state was written, or re-shard the states to {} first \
                         with `mailshift state reshard PLAN --to {}` (offline: stop every shard)",
                        wanted.count, wanted.count
                    )
                }
            }
        }
    }
}

/// A state file that cannot be read or written fails a step as `state`.
impl From<StateError> for crate::error::StepError {
    fn from(e: StateError) -> crate::error::StepError {
        crate::error::StepError::state(e.to_string())
    }
}

impl std::error::Error for StateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StateError::Io { source, .. } => Some(source),
            StateError::Db { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// An error before it is given the state file's path: keeps the internals free of path
/// plumbing, and `?` usable on every redb call.
#[derive(Debug)]
enum Fault {
    Db(redb::Error),
    AlreadyOpen,
    NotAStateFile(String),
    TooNew(u32),
    Corrupt { record: String, detail: String },
    WrongShard { found: Shard, wanted: Shard },
}

macro_rules! fault_from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Fault {
            fn from(e: $t) -> Self {
                Fault::Db(e.into())
            }
        }
    )*};
}
fault_from_redb!(
    redb::StorageError,
    redb::TransactionError,
    redb::CommitError,
    TableError
);

impl From<DatabaseError> for Fault {
    fn from(e: DatabaseError) -> Self {
        match e {
            DatabaseError::DatabaseAlreadyOpen => Fault::AlreadyOpen,
            // redb reports a file without its magic number as an I/O error of kind InvalidData.
            DatabaseError::Storage(redb::StorageError::Io(io))
                if io.kind() == io::ErrorKind::InvalidData =>
            {
                Fault::NotAStateFile(format!("not a redb database: {io}"))
            }
            DatabaseError::UpgradeRequired(v) => {
                Fault::NotAStateFile(format!("a redb database in old file format {v}"))
            }
            e => Fault::Db(e.into()),
        }
    }
}

impl Fault {
    fn corrupt(record: String, detail: impl fmt::Display) -> Fault {
        Fault::Corrupt {
            record,
            detail: detail.to_string(),
        }
    }

    fn at(self, path: &Path) -> StateError {
        let path = path.to_path_buf();
        match self {
            Fault::Db(source) => StateError::Db { path, source },
            Fault::AlreadyOpen => {
                let pid = lock_holder_pid(&path);
                StateError::Locked { path, pid }
            }
            Fault::NotAStateFile(detail) => StateError::NotAStateFile { path, detail },
            Fault::TooNew(found) => StateError::TooNew {
                path,
                found,
                supported: FORMAT_VERSION,
            },
            Fault::Corrupt { record, detail } => StateError::Corrupt {
                path,
                record,
                detail,
            },
            Fault::WrongShard { found, wanted } => StateError::WrongShard {
                path,
                found,
                wanted,
            },
        }
    }
}

impl Drop for StateStore {
    fn drop(&mut self) {
        // Closed first, so that the stamp is the file as redb left it.
        drop(self.db.take());
        if let Some(stamp) = clean_stamp(&self.path) {
            let _ = self.lock.set_len(0);
            let _ = self.lock.seek(io::SeekFrom::Start(0));
            let _ = writeln!(self.lock, "{stamp}");
        }
    }
}

/// What identifies this exact file as it is now: inode, length and modification time, so a
/// copy (another inode), a write (another length or time) or a restore all differ.
fn clean_stamp(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(path).ok()?;
    Some(format!(
        "clean {} {} {}.{:09}",
        m.ino(),
        m.len(),
        m.mtime(),
        m.mtime_nsec()
    ))
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

fn lock_holder_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(lock_path(path))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn builder() -> Builder {
    let mut b = Builder::new();
    b.set_concurrency_mode(ConcurrencyMode::SingleWriter);
    b
}

/// What the `meta` table says about the file.
enum Meta {
    /// A redb file with no tables yet: ours, created but not initialised.
    Empty,
    Current,
}

fn check_meta(txn: &ReadTransaction) -> Result<Meta, Fault> {
    let meta = match txn.open_table(META) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => {
            return if txn.list_tables()?.next().is_none() {
                Ok(Meta::Empty)
            } else {
                Err(Fault::NotAStateFile(
                    "a redb database without mailshift's meta table".into(),
                ))
            };
        }
        Err(TableError::TableTypeMismatch { .. }) => {
            return Err(Fault::NotAStateFile(
                "a redb database whose meta table is not mailshift's".into(),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let Some(version) = meta.get(META_FORMAT_VERSION)? else {
        return Err(Fault::NotAStateFile(
            "no format version in its meta table".into(),
        ));
    };
    let version = version.value();
    let found: u32 = version
        .parse()
        .map_err(|e| Fault::corrupt("format version".into(), format!("{version:?}: {e}")))?;
    match found {
        FORMAT_VERSION => Ok(Meta::Current),
        // Older formats would be migrated here, in the writer; version 1 is the first.
        v if v > FORMAT_VERSION => Err(Fault::TooNew(v)),
        v => Err(Fault::corrupt(
            "format version".into(),
            format!("{v} was never a state format"),
        )),
    }
}

/// The shard that created the file: its stamp, or the whole plan for a file from before
/// stamps (one shard was all there was).
fn stamp_txn(txn: &ReadTransaction) -> Result<Shard, Fault> {
    let meta = txn.open_table(META)?;
    let Some(v) = meta.get(META_SHARD)? else {
        return Ok(Shard::WHOLE);
    };
    let text = v.value();
    Shard::parse(text).map_err(|e| Fault::corrupt("shard stamp".into(), e))
}

/// Refuses a file another shard (or another N) wrote.
fn check_shard(txn: &ReadTransaction, wanted: Shard) -> Result<(), Fault> {
    let found = stamp_txn(txn)?;
    if found == wanted {
        Ok(())
    } else {
        Err(Fault::WrongShard { found, wanted })
    }
}

fn decode_json<T: DeserializeOwned>(
    json: &str,
    record: impl FnOnce() -> String,
) -> Result<T, Fault> {
    serde_json::from_str(json).map_err(|e| Fault::corrupt(record(), e))
}

fn encode_json<T: Serialize>(value: &T, record: impl FnOnce() -> String) -> Result<String, Fault> {
    serde_json::to_string(value).map_err(|e| Fault::corrupt(record(), e))
}

fn resource_name(id: &str) -> String {
    format!("resource record `{id}`")
}

fn refused_name(resource_id: &str, folder: &str, uid: u32) -> String {
    format!("refused message record UID {uid} in `{folder}` of `{resource_id}`")
}

fn folder_name(resource_id: &str, folder: &str) -> String {
    format!("folder record `{folder}` of `{resource_id}`")
}

fn encode_message(m: &MessageRecord) -> Vec<u8> {
    let mut out = [0u8; MESSAGE_LEN_GMAIL];
    out[0..4].copy_from_slice(&m.dest_uid.to_le_bytes());
    out[4..36].copy_from_slice(&m.hash);
    out[36..44].copy_from_slice(&m.size.to_le_bytes());
    out[44..52].copy_from_slice(&m.sync_point.to_le_bytes());
    out[52..60].copy_from_slice(&m.source_msgid.to_le_bytes());
    out[60..68].copy_from_slice(&m.dest_msgid.to_le_bytes());
    let len = if m.source_msgid == 0 && m.dest_msgid == 0 {
        MESSAGE_LEN
    } else {
        MESSAGE_LEN_GMAIL
    };
    out[..len].to_vec()
}

/// Bytes past [`MESSAGE_LEN`] are ignored: room for fields a later version may append.
fn decode_message(bytes: &[u8]) -> Option<MessageRecord> {
    let b = bytes.get(..MESSAGE_LEN)?;
    Some(MessageRecord {
        dest_uid: u32::from_le_bytes(b[0..4].try_into().ok()?),
        hash: b[4..36].try_into().ok()?,
        size: u64::from_le_bytes(b[36..44].try_into().ok()?),
        sync_point: u64::from_le_bytes(b[44..52].try_into().ok()?),
        source_msgid: bytes
            .get(52..60)
            .and_then(|g| g.try_into().ok())
            .map_or(0, u64::from_le_bytes),
        dest_msgid: bytes
            .get(60..68)
            .and_then(|g| g.try_into().ok())
            .map_or(0, u64::from_le_bytes),
    })
}

fn read_resources_txn(txn: &ReadTransaction) -> Result<BTreeMap<String, ResourceRecord>, Fault> {
    let table = txn.open_table(RESOURCES)?;
    let mut out = BTreeMap::new();
    for entry in table.iter()? {
        let (k, v) = entry?;
        let id = k.value();
        out.insert(
            id.to_string(),
            decode_json(v.value(), || resource_name(id))?,
        );
    }
    Ok(out)
}

/// Unix seconds now (a clock before 1970 reads as 0: a date is only shown, never relied on).
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The first key past every key whose first element is `id`: `id` followed by NUL is the
/// smallest string greater than `id`, and redb compares tuples element by element.
fn successor(id: &str) -> String {
    format!("{id}\0")
}

/// Reads the resource records for `plan` and `status`, without locking out a running `apply`:
/// redb lets a read-only handle see the writer's last commit. A missing (or still empty) file
/// is an empty state, and nothing is created.
pub fn read_resources(path: &Path) -> Result<BTreeMap<String, ResourceRecord>, StateError> {
    read_resources_checked(path, None)
}

/// [`read_resources`] for one shard: a file another shard wrote is refused.
pub fn read_resources_as(
    path: &Path,
    shard: Shard,
) -> Result<BTreeMap<String, ResourceRecord>, StateError> {
    read_resources_checked(path, Some(shard))
}

fn read_resources_checked(
    path: &Path,
    shard: Option<Shard>,
) -> Result<BTreeMap<String, ResourceRecord>, StateError> {
    match fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => {
            return Err(StateError::Io {
                path: path.to_path_buf(),
                action: "read it".into(),
                source: e,
            });
        }
        // A writer has created the file and not yet written redb's header.
        Ok(m) if m.len() == 0 => return Ok(BTreeMap::new()),
        Ok(_) => {}
    }
    let read = || -> Result<_, Fault> {
        let db = builder().open_read_only(path)?;
        let txn = db.begin_read()?;
        match check_meta(&txn)? {
            Meta::Empty => Ok(BTreeMap::new()),
            Meta::Current => {
                if let Some(shard) = shard {
                    check_shard(&txn, shard)?;
                }
                read_resources_txn(&txn)
            }
        }
    };
    read().map_err(|f| f.at(path))
}

/// The state opened read-only, without locking out a running `apply` (as [`read_resources`]),
/// for commands that read many resources' records (`status`, `plan --refresh`, `verify`): one
/// open for all of them. A missing or still empty file reads as empty.
pub struct StateReader {
    path: PathBuf,
    db: Option<redb::ReadOnlyDatabase>,
}

impl StateReader {
    /// Opens whatever shard's file `path` is (`state reshard` and tools that read any shard).
    pub fn open(path: &Path) -> Result<StateReader, StateError> {
        Self::open_checked(path, None)
    }

    /// Opens the file of `shard`: a file another shard (or another N) wrote is refused.
    pub fn open_as(path: &Path, shard: Shard) -> Result<StateReader, StateError> {
        Self::open_checked(path, Some(shard))
    }

    fn open_checked(path: &Path, shard: Option<Shard>) -> Result<StateReader, StateError> {
        let db = if fs::metadata(path).map_or(true, |m| m.len() == 0) {
            None
        } else {
            let open = || -> Result<Option<redb::ReadOnlyDatabase>, Fault> {
                let db = builder().open_read_only(path)?;
                let txn = db.begin_read()?;
                let empty = matches!(check_meta(&txn)?, Meta::Empty);
                if let (false, Some(shard)) = (empty, shard) {
                    check_shard(&txn, shard)?;
                }
                drop(txn);
                Ok(if empty { None } else { Some(db) })
            };
            open().map_err(|f| f.at(path))?
        };
        Ok(StateReader {
            path: path.to_path_buf(),
            db,
        })
    }

    /// The shard that wrote the file; `None` when there is no file yet.
    pub fn shard(&self) -> Result<Option<Shard>, StateError> {
        if self.db.is_none() {
            return Ok(None);
        }
        self.read(|txn| stamp_txn(txn).map(Some))
    }

    fn read<T: Default>(
        &self,
        f: impl FnOnce(&ReadTransaction) -> Result<T, Fault>,
    ) -> Result<T, StateError> {
        let Some(db) = &self.db else {
            return Ok(T::default());
        };
        let run = || f(&db.begin_read()?);
        run().map_err(|e| e.at(&self.path))
    }

    /// The folder records of one sync resource.
    pub fn folders(&self, resource_id: &str) -> Result<BTreeMap<String, FolderRecord>, StateError> {
        self.read(|txn| folders_txn(txn, resource_id))
    }

    /// The messages a destination refused, of one sync resource: (source folder, source UID,
    /// record).
    pub fn refused(
        &self,
        resource_id: &str,
    ) -> Result<Vec<(String, u32, RefusedRecord)>, StateError> {
        self.read(|txn| refused_txn(txn, resource_id, None))
    }
}

fn folders_txn(
    txn: &ReadTransaction,
    resource_id: &str,
) -> Result<BTreeMap<String, FolderRecord>, Fault> {
    let table = match txn.open_table(FOLDERS) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(BTreeMap::new()),
        Err(e) => return Err(e.into()),
    };
    let end = successor(resource_id);
    let mut out = BTreeMap::new();
    for entry in table.range((resource_id, "")..(end.as_str(), ""))? {
        let (k, v) = entry?;
        let (_, folder) = k.value();
        let record = decode_json(v.value(), || folder_name(resource_id, folder))?;
        out.insert(folder.to_string(), record);
    }
    Ok(out)
}

/// The state, open for reading and writing by this process alone.
pub struct StateStore {
    path: PathBuf,
    /// `None` only while closing (see `Drop`).
    db: Option<Database>,
    // Held for the store's life: the OS releases the lock when this closes, or when the
    // process dies. Holds the holder's pid, then, once closed cleanly, the file's stamp.
    lock: File,
    group: Group,
    /// The shard this file belongs to (checked against its stamp at open).
    shard: Shard,
}

/// Group commit. redb has one write transaction at a time and fsyncs at each commit; a writer
/// alone opens a transaction, writes and commits, as it would without this. Writers arriving
/// while a transaction is open or being committed wait, then add their writes to the next one
/// (each in turn, on its own thread, under the group's lock), and the one that finds nobody
/// else waiting commits it for all. redb's `Durability::None` would be simpler, but it is
/// refused in the single-writer mode that lets `plan` and `status` read the file meanwhile.
#[derive(Default)]
struct Group {
    inner: Mutex<GroupInner>,
    changed: Condvar,
}

#[derive(Default)]
struct GroupInner {
    /// The batch's transaction while writers add to it.
    txn: Option<redb::WriteTransaction>,
    /// The open (or last) batch's number.
    batch: u64,
    /// Writers that want to write and have not yet added their writes to a batch.
    waiting: usize,
    /// Writers that have added their writes to the open batch and wait for its commit.
    members: usize,
    /// A batch is being committed (redb's write transaction is taken).
    committing: bool,
    /// How finished batches ended (committed or not), until each member has read it.
    ended: BTreeMap<u64, (usize, bool)>,
}

impl Group {
    fn lock(&self) -> MutexGuard<'_, GroupInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, g: MutexGuard<'a, GroupInner>) -> MutexGuard<'a, GroupInner> {
        self.changed.wait(g).unwrap_or_else(|e| e.into_inner())
    }
}

impl GroupInner {
    /// Records that the open batch ended, for its members.
    fn end(&mut self, batch: u64, committed: bool) {
        if self.members > 0 {
            self.ended.insert(batch, (self.members, committed));
        }
        self.members = 0;
    }

    /// Whether `batch` was committed, once it has ended (read once per member).
    fn outcome(&mut self, batch: u64) -> Option<bool> {
        let (left, committed) = self.ended.get_mut(&batch)?;
        let committed = *committed;
        *left -= 1;
        if *left == 0 {
            self.ended.remove(&batch);
        }
        Some(committed)
    }
}

impl fmt::Debug for StateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl StateStore {
    /// Opens the whole plan's state for writing ([`Self::open_as`] with [`Shard::WHOLE`]).
    pub fn open(path: &Path) -> Result<StateStore, StateError> {
        Self::open_as(path, Shard::WHOLE)
    }

    /// Opens the state of `shard` for writing, creating it (and its directory) if missing, and
    /// stamping a new file with the shard. Fails with [`StateError::Locked`] while another
    /// process (or another `StateStore` in this one) has it, and with
    /// [`StateError::WrongShard`] when another shard (or another N) wrote it.
    pub fn open_as(path: &Path, shard: Shard) -> Result<StateStore, StateError> {
        let io_err = |action: String, source| StateError::Io {
            path: path.to_path_buf(),
            action,
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)
                .map_err(|e| io_err(format!("create directory {}", dir.display()), e))?;
        }
        let lock_file = lock_path(path);
        let lock_err = |e| io_err(format!("use lock file {}", lock_file.display()), e);
        // Not truncated on open: until we hold the lock, the pid in it is the holder's.
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_file)
            .map_err(lock_err)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StateError::Locked {
                    path: path.to_path_buf(),
                    pid: lock_holder_pid(path),
                });
            }
            Err(TryLockError::Error(e)) => return Err(lock_err(e)),
        }
        // The lock file is left in place on close: deleting it would race with a process that
        // has just opened it and is about to lock it.
        // Untouched since mailshift closed it cleanly: its integrity was checked then and
        // nothing wrote it since, so the checksum pass (the cost of a no-op run grows with the
        // state) is skipped. A crash, a copy, a restore or an edit changes the stamp.
        let mut previous = String::new();
        let _ = lock.read_to_string(&mut previous);
        let trusted = clean_stamp(path).is_some_and(|s| previous.trim() == s);
        lock.set_len(0).map_err(lock_err)?;
        lock.seek(io::SeekFrom::Start(0)).map_err(lock_err)?;
        writeln!(lock, "{}", std::process::id()).map_err(lock_err)?;

        let db = Self::open_db(path, !trusted, shard).map_err(|f| f.at(path))?;
        Ok(StateStore {
            path: path.to_path_buf(),
            db: Some(db),
            lock,
            group: Group::default(),
            shard,
        })
    }

    fn open_db(path: &Path, check: bool, shard: Shard) -> Result<Database, Fault> {
        let mut b = builder();
        // A plain open trusts the file and may panic on one damaged outside redb: a file not
        // known to be as mailshift left it gets a full checksum pass first.
        b.set_check_integrity_on_open(check);
        let db = b.create(path)?;
        let meta = check_meta(&db.begin_read()?)?;
        if let Meta::Empty = meta {
            let txn = db.begin_write()?;
            {
                let mut meta = txn.open_table(META)?;
                meta.insert(META_FORMAT_VERSION, FORMAT_VERSION.to_string().as_str())?;
                meta.insert(META_CREATED_BY, CREATED_BY)?;
                meta.insert(META_SYNC_POINT, "0")?;
                meta.insert(META_SHARD, shard.to_string().as_str())?;
                // Created now so that readers never meet a missing table.
                txn.open_table(RESOURCES)?;
                txn.open_table(FOLDERS)?;
                txn.open_table(MESSAGES)?;
                txn.open_table(REFUSED)?;
            }
            txn.commit()?;
        } else {
            check_shard(&db.begin_read()?, shard)?;
        }
        Ok(db)
    }

    /// The state file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The shard this state belongs to.
    pub fn shard(&self) -> Shard {
        self.shard
    }

    /// Where copies spool large messages: `spool` beside the state file, `spool-I` for shard
    /// I of a split, so shards whose files share a directory never clear each other's.
    pub fn spool_dir(&self) -> PathBuf {
        let name = if self.shard.is_whole() {
            "spool".to_string()
        } else {
            format!("spool-{}", self.shard.index)
        };
        self.path
            .parent()
            .map_or_else(|| PathBuf::from(&name), |d| d.join(&name))
    }

    fn db(&self) -> &Database {
        self.db
            .as_ref()
            .expect("the database is open until the store is dropped")
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&ReadTransaction) -> Result<T, Fault>,
    ) -> Result<T, StateError> {
        let run = || f(&self.db().begin_read()?);
        run().map_err(|e| e.at(&self.path))
    }

    fn write<T>(
        &self,
        f: impl Fn(&redb::WriteTransaction) -> Result<T, Fault>,
    ) -> Result<T, StateError> {
        self.write_grouped(f).map_err(|e: Fault| e.at(&self.path))
    }

    /// [`Self::write`] through the group commit: `f` may run more than once, when a batch it
    /// was written in is abandoned because another writer's part of it failed.
    fn write_grouped<T>(
        &self,
        f: impl Fn(&redb::WriteTransaction) -> Result<T, Fault>,
    ) -> Result<T, Fault> {
        let group = &self.group;
        let mut g = group.lock();
        loop {
            g.waiting += 1;
            loop {
                if g.txn.is_none() && !g.committing {
                    // Only the group takes redb's write transaction, so it is free now.
                    match self.db().begin_write() {
                        Ok(txn) => {
                            g.txn = Some(txn);
                            g.batch += 1;
                        }
                        Err(e) => {
                            g.waiting -= 1;
                            group.changed.notify_all();
                            return Err(e.into());
                        }
                    }
                }
                if g.txn.is_some() {
                    break;
                }
                g = group.wait(g);
            }
            g.waiting -= 1;
            let batch = g.batch;
            let out = match f(g.txn.as_ref().expect("the batch is open")) {
                Ok(out) => out,
                Err(e) => {
                    // Part of the transaction is this writer's, half done: abandon the batch
                    // (dropping it aborts it); its other members write again.
                    drop(g.txn.take());
                    g.end(batch, false);
                    group.changed.notify_all();
                    return Err(e);
                }
            };
            if g.waiting == 0 {
                let txn = g.txn.take().expect("the batch is open");
                g.committing = true;
                drop(g);
                let result = txn.commit();
                g = group.lock();
                g.committing = false;
                g.end(batch, result.is_ok());
                group.changed.notify_all();
                return result.map(|()| out).map_err(Fault::from);
            }
            g.members += 1;
            let committed = loop {
                if let Some(committed) = g.outcome(batch) {
                    break committed;
                }
                g = group.wait(g);
            };
            if committed {
                return Ok(out);
            }
        }
    }

    /// All resource records, by id.
    pub fn resources(&self) -> Result<BTreeMap<String, ResourceRecord>, StateError> {
        self.read(read_resources_txn)
    }

    pub fn resource(&self, id: &str) -> Result<Option<ResourceRecord>, StateError> {
        self.read(|txn| {
            let table = txn.open_table(RESOURCES)?;
            let value = table.get(id)?;
            value
                .map(|v| decode_json(v.value(), || resource_name(id)))
                .transpose()
        })
    }

    pub fn put_resource(&self, id: &str, record: &ResourceRecord) -> Result<(), StateError> {
        self.write(|txn| {
            let json = encode_json(record, || resource_name(id))?;
            txn.open_table(RESOURCES)?.insert(id, json.as_str())?;
            Ok(())
        })
    }

    /// Removes a resource with all its folder and message records. Returns whether there was
    /// anything to remove.
    pub fn forget(&self, id: &str) -> Result<bool, StateError> {
        self.write(|txn| {
            let mut removed = txn.open_table(RESOURCES)?.remove(id)?.is_some();
            let end = successor(id);
            txn.open_table(FOLDERS)?
                .retain_in((id, "")..(end.as_str(), ""), |_, _| {
                    removed = true;
                    false
                })?;
            txn.open_table(MESSAGES)?
                .retain_in((id, "", 0)..(end.as_str(), "", 0), |_, _| {
                    removed = true;
                    false
                })?;
            txn.open_table(REFUSED)?
                .retain_in((id, "", 0)..(end.as_str(), "", 0), |_, _| false)?;
            removed |= dav::forget_txn(txn, id)?;
            quota::forget_txn(txn, id)?;
            rollback::forget_txn(txn, id)?;
            throughput::forget_txn(txn, id)?;
            Ok(removed)
        })
    }

    /// The number of the last run started (0 before the first).
    pub fn last_sync_point(&self) -> Result<u64, StateError> {
        self.read(|txn| {
            let meta = txn.open_table(META)?;
            Ok(meta
                .get(META_SYNC_POINT)?
                .and_then(|v| v.value().parse().ok())
                .unwrap_or(0))
        })
    }

    /// Starts a new numbered run and returns its number; the first is 1.
    pub fn next_sync_point(&self) -> Result<u64, StateError> {
        self.write(|txn| {
            let mut meta = txn.open_table(META)?;
            let current = match meta.get(META_SYNC_POINT)? {
                None => 0,
                Some(v) => {
                    let v = v.value();
                    v.parse::<u64>().map_err(|e| {
                        Fault::corrupt("sync point counter".into(), format!("{v:?}: {e}"))
                    })?
                }
            };
            let next = current
                .checked_add(1)
                .ok_or_else(|| Fault::corrupt("sync point counter".into(), "at its maximum"))?;
            meta.insert(META_SYNC_POINT, next.to_string().as_str())?;
            rollback::stamp_txn(txn, next, unix_now())?;
            Ok(next)
        })
    }

    /// The folder records of a resource, by source folder name.
    pub fn folders(&self, resource_id: &str) -> Result<BTreeMap<String, FolderRecord>, StateError> {
        self.read(|txn| folders_txn(txn, resource_id))
    }

    pub fn folder(
        &self,
        resource_id: &str,
        folder: &str,
    ) -> Result<Option<FolderRecord>, StateError> {
        self.read(|txn| {
            let table = txn.open_table(FOLDERS)?;
            let value = table.get((resource_id, folder))?;
            value
                .map(|v| decode_json(v.value(), || folder_name(resource_id, folder)))
                .transpose()
        })
    }

    pub fn put_folder(
        &self,
        resource_id: &str,
        folder: &str,
        record: &FolderRecord,
    ) -> Result<(), StateError> {
        self.record_batch(resource_id, folder, record, &[])
    }

    /// Records a copied batch: the folder's progress and the batch's messages land together,
    /// so after a crash the folder never claims messages the map does not have, or the reverse.
    pub fn record_batch(
        &self,
        resource_id: &str,
        folder: &str,
        record: &FolderRecord,
        messages: &[(u32, MessageRecord)],
    ) -> Result<(), StateError> {
        self.write(|txn| {
            let json = encode_json(record, || folder_name(resource_id, folder))?;
            txn.open_table(FOLDERS)?
                .insert((resource_id, folder), json.as_str())?;
            if !messages.is_empty() {
                let mut table = txn.open_table(MESSAGES)?;
                for (uid, message) in messages {
                    table.insert(
                        (resource_id, folder, *uid),
                        encode_message(message).as_slice(),
                    )?;
                }
            }
            Ok(())
        })
    }

    /// The message map of one folder, ordered by source UID.
    pub fn messages(
        &self,
        resource_id: &str,
        folder: &str,
    ) -> Result<Vec<(u32, MessageRecord)>, StateError> {
        self.read(|txn| {
            let table = txn.open_table(MESSAGES)?;
            let mut out = Vec::new();
            for entry in table.range((resource_id, folder, 0)..=(resource_id, folder, u32::MAX))? {
                let (k, v) = entry?;
                let (_, _, uid) = k.value();
                let message = decode_message(v.value()).ok_or_else(|| {
                    Fault::corrupt(
                        format!("message record UID {uid} in `{folder}` of `{resource_id}`"),
                        format!("{} bytes, expected at least {MESSAGE_LEN}", v.value().len()),
                    )
                })?;
                out.push((uid, message));
            }
            Ok(out)
        })
    }

    /// How many messages of the folder are in the map.
    pub fn message_count(&self, resource_id: &str, folder: &str) -> Result<u64, StateError> {
        self.read(|txn| {
            let table = txn.open_table(MESSAGES)?;
            let mut n = 0;
            for entry in table.range((resource_id, folder, 0)..=(resource_id, folder, u32::MAX))? {
                entry?;
                n += 1;
            }
            Ok(n)
        })
    }

    /// Removes a folder's record and message map (its source UIDVALIDITY changed, so the UIDs
    /// mean nothing any more). Returns whether there was anything to remove.
    pub fn forget_folder(&self, resource_id: &str, folder: &str) -> Result<bool, StateError> {
        self.write(|txn| {
            let mut removed = txn
                .open_table(FOLDERS)?
                .remove((resource_id, folder))?
                .is_some();
            txn.open_table(MESSAGES)?.retain_in(
                (resource_id, folder, 0)..=(resource_id, folder, u32::MAX),
                |_, _| {
                    removed = true;
                    false
                },
            )?;
            txn.open_table(REFUSED)?.retain_in(
                (resource_id, folder, 0)..=(resource_id, folder, u32::MAX),
                |_, _| false,
            )?;
            Ok(removed)
        })
    }

    /// Records messages the destination refused, or refused again (replacing the old record).
    pub fn put_refused(
        &self,
        resource_id: &str,
        folder: &str,
        refused: &[(u32, RefusedRecord)],
    ) -> Result<(), StateError> {
        self.write(|txn| {
            let mut table = txn.open_table(REFUSED)?;
            for (uid, r) in refused {
                let json = encode_json(r, || refused_name(resource_id, folder, *uid))?;
                table.insert((resource_id, folder, *uid), json.as_str())?;
            }
            Ok(())
        })
    }

    /// Forgets refusals of messages the destination has now taken.
    pub fn clear_refused(
        &self,
        resource_id: &str,
        folder: &str,
        uids: &[u32],
    ) -> Result<(), StateError> {
        self.write(|txn| {
            let mut table = txn.open_table(REFUSED)?;
            for uid in uids {
                table.remove((resource_id, folder, *uid))?;
            }
            Ok(())
        })
    }

    /// The refused messages of one folder, by source UID.
    pub fn refused(
        &self,
        resource_id: &str,
        folder: &str,
    ) -> Result<Vec<(u32, RefusedRecord)>, StateError> {
        Ok(self
            .refused_in(resource_id, Some(folder))?
            .into_iter()
            .map(|(_, uid, r)| (uid, r))
            .collect())
    }

    /// Every refused message of a resource: (source folder, source UID, record), in order.
    /// What `verify` and `status` list.
    pub fn all_refused(
        &self,
        resource_id: &str,
    ) -> Result<Vec<(String, u32, RefusedRecord)>, StateError> {
        self.refused_in(resource_id, None)
    }

    fn refused_in(
        &self,
        resource_id: &str,
        folder: Option<&str>,
    ) -> Result<Vec<(String, u32, RefusedRecord)>, StateError> {
        self.read(|txn| refused_txn(txn, resource_id, folder))
    }
}

fn refused_txn(
    txn: &ReadTransaction,
    resource_id: &str,
    folder: Option<&str>,
) -> Result<Vec<(String, u32, RefusedRecord)>, Fault> {
    let table = match txn.open_table(REFUSED) {
        Ok(t) => t,
        // Written by a build before refusals were recorded: none.
        Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let end = successor(resource_id);
    let range = match folder {
        Some(f) => table.range((resource_id, f, 0)..=(resource_id, f, u32::MAX))?,
        None => table.range((resource_id, "", 0)..(end.as_str(), "", 0))?,
    };
    let mut out = Vec::new();
    for entry in range {
        let (k, v) = entry?;
        let (_, folder, uid) = k.value();
        let r = decode_json(v.value(), || refused_name(resource_id, folder, uid))?;
        out.push((folder.to_string(), uid, r));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    use super::*;
    use crate::state::record::Status;

    #[test]
    fn a_state_error_fails_a_step_as_state_with_its_text() {
        let e = StateError::Corrupt {
            path: PathBuf::from("state.redb"),
            record: "account/a/mail".into(),
            detail: "short".into(),
        };
        let text = e.to_string();
        let step = crate::error::StepError::from(e);
        assert_eq!(step.kind, crate::error::ErrorKind::State);
        assert_eq!(step.message, text);
    }

    fn resource(kind: &str, fingerprint: &str) -> ResourceRecord {
        ResourceRecord {
            kind: kind.into(),
            account: Some("alice@example.org".into()),
            fingerprint: fingerprint.into(),
            identity: "id-fp".into(),
            status: Status::Done,
            summary: format!("{kind} {fingerprint}"),
            outputs: BTreeMap::from([("task".to_string(), "42".to_string())]),
            last_error: None,
            sync_point: Some(3),
            created_at: 1_700_000_000,
            updated_at: 1_700_000_100,
        }
    }

    fn folder(dest: &str, highest_uid: u32) -> FolderRecord {
        FolderRecord {
            dest_folder: dest.into(),
            source_uidvalidity: 111,
            highest_uid,
            highest_modseq: Some(9_000_000_000),
            dest_uidvalidity: 222,
            dest_uidnext_in_flight: None,
            source_uidnext: highest_uid + 1,
            source_messages: highest_uid,
            messages: u64::from(highest_uid),
            bytes: 12_345,
            updated_at: 1_700_000_200,
        }
    }

    fn message(dest_uid: u32, sync_point: u64) -> MessageRecord {
        let mut hash = [0u8; 32];
        for (i, b) in hash.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(7).wrapping_add(dest_uid as u8);
        }
        MessageRecord {
            dest_uid,
            hash,
            size: 0x0102_0304_0506_0708,
            sync_point,
            ..Default::default()
        }
    }

    fn state_path(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("nested/dir/state.redb")
    }

    #[test]
    fn default_path_is_beside_the_plan() {
        assert_eq!(
            default_path(Path::new("mailshift.yaml"), None),
            PathBuf::from(".mailshift/state.redb")
        );
        assert_eq!(
            default_path(Path::new("/srv/plans/acme.yaml"), None),
            PathBuf::from("/srv/plans/.mailshift/state.redb")
        );
        assert_eq!(
            default_path(Path::new("/srv/plans/acme.yaml"), Some("state/acme.redb")),
            PathBuf::from("/srv/plans/state/acme.redb")
        );
        assert_eq!(
            default_path(Path::new("/srv/plans/acme.yaml"), Some("/var/lib/ms.redb")),
            PathBuf::from("/var/lib/ms.redb")
        );
    }

    #[test]
    fn a_state_belongs_to_the_shard_that_created_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(&dir);
        let shard = |i, n| Shard::new(i, n).unwrap();
        {
            let store = StateStore::open_as(&path, shard(1, 3)).unwrap();
            assert_eq!(store.shard(), shard(1, 3));
            assert_eq!(store.spool_dir(), path.parent().unwrap().join("spool-1"));
            store
                .put_resource("mailbox:a", &resource("mailbox", "fp"))
                .unwrap();
        }
        // The same shard reopens it, for writing and for reading.
        drop(StateStore::open_as(&path, shard(1, 3)).unwrap());
        assert_eq!(
            StateReader::open_as(&path, shard(1, 3))
                .unwrap()
                .shard()
                .unwrap(),
            Some(shard(1, 3))
        );
        assert_eq!(read_resources_as(&path, shard(1, 3)).unwrap().len(), 1);
        // Another index of the same split: the fix is that index, or `{shard}` in the path.
        let err = StateStore::open_as(&path, shard(2, 3)).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, StateError::WrongShard { .. }), "{err:?}");
        assert!(
            msg.contains("belongs to shard 1/3, and this process is shard 2/3"),
            "{msg}"
        );
        assert!(msg.contains("run with --shard 1/3"), "{msg}");
        assert!(msg.contains("`{shard}`"), "{msg}");
        // Another N: the fix is the old N, or a reshard to the new one.
        for err in [
            StateStore::open(&path).unwrap_err(),
            StateReader::open_as(&path, Shard::WHOLE)
                .map(drop)
                .unwrap_err(),
            read_resources_as(&path, Shard::WHOLE).unwrap_err(),
        ] {
            let msg = err.to_string();
            assert!(
                msg.contains("this process is the whole plan (no --shard)"),
                "{msg}"
            );
            assert!(msg.contains("run with --shard I/3"), "{msg}");
            assert!(
                msg.contains("`mailshift state reshard PLAN --to 1`"),
                "{msg}"
            );
        }
        // Readers that name no shard read any file.
        assert_eq!(read_resources(&path).unwrap().len(), 1);
        assert_eq!(
            StateReader::open(&path).unwrap().shard().unwrap(),
            Some(shard(1, 3))
        );
    }

    #[test]
    fn a_state_from_before_stamps_is_the_whole_plans() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(&dir);
        {
            let store = StateStore::open(&path).unwrap();
            let txn = store.db().begin_write().unwrap();
            txn.open_table(META).unwrap().remove(META_SHARD).unwrap();
            txn.commit().unwrap();
        }
        assert_eq!(
            StateReader::open(&path).unwrap().shard().unwrap(),
            Some(Shard::WHOLE)
        );
        drop(StateStore::open(&path).unwrap());
        let msg = StateStore::open_as(&path, Shard::new(0, 2).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("belongs to the whole plan (no --shard)"),
            "{msg}"
        );
        assert!(
            msg.contains("run without --shard as the state was written"),
            "{msg}"
        );
        assert!(msg.contains("--to 2`"), "{msg}");
        assert_eq!(
            StateReader::open(&dir.path().join("none.redb"))
                .unwrap()
                .shard()
                .unwrap(),
            None
        );
    }

    #[test]
    fn open_creates_directories_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(&dir);
        let store = StateStore::open(&path).unwrap();
        assert!(path.is_file());
        assert_eq!(store.path(), path);
        assert!(store.resources().unwrap().is_empty());
        let pid: u32 = fs::read_to_string(lock_path(&path))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(pid, std::process::id());
    }

    #[test]
    fn resource_round_trip_and_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(&dir);
        let store = StateStore::open(&path).unwrap();
        assert_eq!(store.resource("mailbox:a").unwrap(), None);

        let a = resource("mailbox", "fp1");
        let b = resource("alias", "fp2");
        store.put_resource("mailbox:a", &a).unwrap();
        store.put_resource("alias:b", &b).unwrap();
        assert_eq!(store.resource("mailbox:a").unwrap(), Some(a.clone()));

        let mut a2 = a.clone();
        a2.status = Status::Failed;
        a2.last_error = Some("quota".into());
        store.put_resource("mailbox:a", &a2).unwrap();

        let all = store.resources().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all["mailbox:a"], a2);
        assert_eq!(all["alias:b"], b);

        drop(store);
        let reread = read_resources(&path).unwrap();
        assert_eq!(reread, all);
        let store = StateStore::open(&path).unwrap();
        assert_eq!(store.resources().unwrap(), all);
    }

    #[test]
    fn folders_and_messages_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&state_path(&dir)).unwrap();
        let r = "sync:alice";
        assert_eq!(store.folder(r, "INBOX").unwrap(), None);
        assert!(store.folders(r).unwrap().is_empty());
        assert!(store.messages(r, "INBOX").unwrap().is_empty());
        assert_eq!(store.message_count(r, "INBOX").unwrap(), 0);

        store.put_folder(r, "INBOX", &folder("INBOX", 0)).unwrap();
        assert_eq!(store.folder(r, "INBOX").unwrap(), Some(folder("INBOX", 0)));
        assert_eq!(store.message_count(r, "INBOX").unwrap(), 0);

        // Out of UID order on purpose: the map must come back sorted.
        let batch1 = [
            (30, message(3, 1)),
            (10, message(1, 1)),
            (u32::MAX, message(9, 1)),
        ];
        store
            .record_batch(r, "INBOX", &folder("INBOX", 30), &batch1)
            .unwrap();
        let batch2 = [(20, message(2, 2))];
        let mut in_flight = folder("Archive/2024", 20);
        in_flight.dest_uidnext_in_flight = Some(77);
        store
            .record_batch(r, "Archive/2024", &in_flight, &batch2)
            .unwrap();

        assert_eq!(
            store.messages(r, "INBOX").unwrap(),
            vec![
                (10, message(1, 1)),
                (30, message(3, 1)),
                (u32::MAX, message(9, 1))
            ]
        );
        assert_eq!(store.message_count(r, "INBOX").unwrap(), 3);
        assert_eq!(store.messages(r, "Archive/2024").unwrap(), batch2.to_vec());
        assert_eq!(store.folder(r, "INBOX").unwrap(), Some(folder("INBOX", 30)));
        let folders = store.folders(r).unwrap();
        assert_eq!(
            folders.keys().collect::<Vec<_>>(),
            ["Archive/2024", "INBOX"]
        );
        assert_eq!(folders["Archive/2024"], in_flight);

        // A folder whose name extends another's must not leak into its range.
        store
            .record_batch(r, "INBOX2", &folder("INBOX2", 5), &[(5, message(5, 2))])
            .unwrap();
        assert_eq!(store.message_count(r, "INBOX").unwrap(), 3);
        assert_eq!(store.message_count(r, "INBOX2").unwrap(), 1);
    }

    #[test]
    fn refused_messages_are_kept_listed_and_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(&dir);
        let r = "sync:alice";
        let refused = |reason: &str, attempts| RefusedRecord {
            reason: reason.into(),
            size: 300_000,
            attempts,
            sync_point: 4,
        };
        {
            // A file written before refusals were recorded has no `refused` table: none.
            let store = StateStore::open(&path).unwrap();
            store.write(|txn| Ok(txn.delete_table(REFUSED)?)).unwrap();
            assert!(store.all_refused(r).unwrap().is_empty());
            assert!(store.refused(r, "INBOX").unwrap().is_empty());
        }
        let store = StateStore::open(&path).unwrap();
        store
            .put_refused(r, "INBOX", &[(8, refused("[LIMIT] too large", 1))])
            .unwrap();
        store
            .put_refused(r, "INBOX2", &[(3, refused("bad header", 1))])
            .unwrap();
        store
            .put_refused("sync:bob", "INBOX", &[(1, refused("x", 1))])
            .unwrap();
        // Refused again: replaced, not added.
        store
            .put_refused(r, "INBOX", &[(8, refused("[LIMIT] too large", 2))])
            .unwrap();
        assert_eq!(
            store.refused(r, "INBOX").unwrap(),
            vec![(8, refused("[LIMIT] too large", 2))]
        );
        assert_eq!(
            store.all_refused(r).unwrap(),
            vec![
                ("INBOX".to_string(), 8, refused("[LIMIT] too large", 2)),
                ("INBOX2".to_string(), 3, refused("bad header", 1)),
            ]
        );
        store.clear_refused(r, "INBOX", &[8]).unwrap();
        assert!(store.refused(r, "INBOX").unwrap().is_empty());
        // Forgetting a folder or a resource forgets its refusals.
        assert!(!store.forget_folder(r, "INBOX2").unwrap());
        assert!(store.all_refused(r).unwrap().is_empty());
        store.forget("sync:bob").unwrap();
        assert!(store.all_refused("sync:bob").unwrap().is_empty());
    }

    #[test]
    fn forget_removes_only_that_resource() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&state_path(&dir)).unwrap();
        // "sync:a" is a prefix of "sync:ab": the range must stop at the exact id.
        for id in ["sync:a", "sync:ab", "sync:"] {
            store.put_resource(id, &resource("sync", id)).unwrap();
            store
                .record_batch(
                    id,
                    "INBOX",
                    &folder("INBOX", 2),
                    &[(1, message(1, 1)), (2, message(2, 1))],
                )
                .unwrap();
            store.put_folder(id, "Sent", &folder("Sent", 0)).unwrap();
        }

        assert!(store.forget("sync:a").unwrap());
        assert_eq!(store.resource("sync:a").unwrap(), None);
        assert!(store.folders("sync:a").unwrap().is_empty());
        assert_eq!(store.message_count("sync:a", "INBOX").unwrap(), 0);

        for id in ["sync:ab", "sync:"] {
            assert_eq!(store.resource(id).unwrap(), Some(resource("sync", id)));
            assert_eq!(store.folders(id).unwrap().len(), 2);
            assert_eq!(store.message_count(id, "INBOX").unwrap(), 2);
        }
        assert!(!store.forget("sync:a").unwrap());

        // Folder records alone (no resource record) count as something forgotten.
        store
            .put_folder("orphan", "INBOX", &folder("INBOX", 0))
            .unwrap();
        assert!(store.forget("orphan").unwrap());
        assert!(store.folders("orphan").unwrap().is_empty());
    }

    #[test]
    fn forget_folder_removes_only_that_folder() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&state_path(&dir)).unwrap();
        let r = "sync:alice";
        for f in ["INBOX", "INBOX2", "Sent"] {
            store
                .record_batch(
                    r,
                    f,
                    &folder(f, 2),
                    &[(1, message(1, 1)), (2, message(2, 1))],
                )
                .unwrap();
        }
        store
            .record_batch(
                "sync:bob",
                "INBOX",
                &folder("INBOX", 1),
                &[(1, message(1, 1))],
            )
            .unwrap();

        assert!(store.forget_folder(r, "INBOX").unwrap());
        assert_eq!(store.folder(r, "INBOX").unwrap(), None);
        assert!(store.messages(r, "INBOX").unwrap().is_empty());
        assert_eq!(store.message_count(r, "INBOX2").unwrap(), 2);
        assert_eq!(store.message_count(r, "Sent").unwrap(), 2);
        assert_eq!(store.message_count("sync:bob", "INBOX").unwrap(), 1);
        assert_eq!(
            store.folders(r).unwrap().keys().collect::<Vec<_>>(),
            ["INBOX2", "Sent"]
        );
        assert!(!store.forget_folder(r, "INBOX").unwrap());
    }

    #[test]
    fn sync_point_counter_persists_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(&dir);
        let store = StateStore::open(&path).unwrap();
        assert_eq!(store.next_sync_point().unwrap(), 1);
        assert_eq!(store.next_sync_point().unwrap(), 2);
        drop(store);
        let store = StateStore::open(&path).unwrap();
        assert_eq!(store.next_sync_point().unwrap(), 3);
    }

    #[test]
    fn a_clean_close_stamps_the_file_and_any_change_voids_the_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(&dir);
        let lock = || fs::read_to_string(lock_path(&path)).unwrap();
        let store = StateStore::open(&path).unwrap();
        store
            .put_resource("mailbox:a", &resource("mailbox", "fp"))
            .unwrap();
        assert_eq!(
            lock().trim(),
            std::process::id().to_string(),
            "the holder's pid"
        );
        drop(store);
        // Closed cleanly: the stamp of the file as it is, which the next open trusts.
        assert_eq!(lock().trim(), clean_stamp(&path).unwrap());
        let again = StateStore::open(&path).unwrap();
        assert_eq!(again.resources().unwrap().len(), 1);
        drop(again);
        // Written by someone else since (same length, new time): not trusted any more.
        let bytes = fs::read(&path).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(10));
        fs::write(&path, &bytes).unwrap();
        assert_ne!(lock().trim(), clean_stamp(&path).unwrap());
        // A copy (another inode) neither.
        let copy = dir.path().join("copy.redb");
        fs::copy(&path, &copy).unwrap();
        assert!(clean_stamp(&copy).unwrap() != clean_stamp(&path).unwrap());
        // And a damaged file still gets the checksum pass: an error, never a panic.
        let mut damaged = bytes.clone();
        let mid = damaged.len() / 2;
        for b in &mut damaged[mid..mid + 64] {
            *b ^= 0xff;
        }
        fs::write(&path, &damaged).unwrap();
        let _ = StateStore::open(&path).map(drop);
    }

    #[test]
    fn second_open_is_locked_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(&dir);
        let first = StateStore::open(&path).unwrap();
        first
            .put_resource("mailbox:a", &resource("mailbox", "fp"))
            .unwrap();

        // flock is per open file description, so a second open in this process conflicts too.
        let err = StateStore::open(&path).unwrap_err();
        match &err {
            StateError::Locked { path: p, pid } => {
                assert_eq!(p, &path);
                assert_eq!(*pid, Some(std::process::id()));
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(
            msg.contains(&format!("(pid {})", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains("wait for it to finish"), "{msg}");

        // Readers are not turned away by a writer, and see its commits.
        let seen = read_resources(&path).unwrap();
        assert_eq!(seen.keys().collect::<Vec<_>>(), ["mailbox:a"]);
        first
            .put_resource("alias:b", &resource("alias", "fp"))
            .unwrap();
        assert_eq!(read_resources(&path).unwrap().len(), 2);

        drop(first);
        let second = StateStore::open(&path).unwrap();
        assert_eq!(second.resources().unwrap().len(), 2);
    }

    const CHILD_ENV: &str = "MAILSHIFT_STATE_TEST_CHILD";
    const CHILD_READY: &str = "<<child holds the state lock>>";

    /// Run by `killed_holder_leaves_no_stale_lock` in a child process; does nothing otherwise.
    #[test]
    #[ignore = "helper run in a child process"]
    fn child_holds_the_lock() {
        let Some(path) = std::env::var_os(CHILD_ENV) else {
            return;
        };
        let store = StateStore::open(Path::new(&path)).unwrap();
        store
            .put_resource("mailbox:child", &resource("mailbox", "fp"))
            .unwrap();
        // libtest prints the test name on the same line, hence a marker rather than a line.
        println!("{CHILD_READY}");
        io::stdout().flush().unwrap();
        // Bounded, so a child left behind by a failed parent still goes away.
        std::thread::sleep(std::time::Duration::from_secs(60));
    }

    #[test]
    fn killed_holder_leaves_no_stale_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(&dir);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "state::store::tests::child_holds_the_lock",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let ready = stdout
            .lines()
            .map_while(Result::ok)
            .any(|line| line.contains(CHILD_READY));
        if !ready {
            let _ = child.kill();
            panic!("child exited without taking the lock");
        }

        let err = StateStore::open(&path).unwrap_err();
        assert!(
            matches!(err, StateError::Locked { pid: Some(p), .. } if p == child.id()),
            "{err:?}"
        );
        assert!(read_resources(&path).unwrap().contains_key("mailbox:child"));

        // SIGKILL: no destructor runs, only the OS can release the lock.
        child.kill().unwrap();
        child.wait().unwrap();

        let store = StateStore::open(&path).unwrap();
        assert_eq!(
            store.resource("mailbox:child").unwrap(),
            Some(resource("mailbox", "fp"))
        );
        assert_eq!(read_resources(&path).unwrap().len(), 1);
    }

    const GROUP_ENV: &str = "MAILSHIFT_STATE_TEST_GROUP_CHILD";
    const GROUP_READY: &str = "<<child wrote every record>>";

    /// Run by `group_commits_are_durable_when_each_write_returns` in a child process.
    #[test]
    #[ignore = "helper run in a child process"]
    fn child_writes_in_groups() {
        let Some(path) = std::env::var_os(GROUP_ENV) else {
            return;
        };
        let store = StateStore::open(Path::new(&path)).unwrap();
        std::thread::scope(|s| {
            for t in 0..8 {
                let store = &store;
                s.spawn(move || {
                    for i in 0..25 {
                        store
                            .put_resource(&format!("mailbox:{t}-{i}"), &resource("mailbox", "fp"))
                            .unwrap();
                    }
                });
            }
        });
        println!("{GROUP_READY}");
        io::stdout().flush().unwrap();
        std::thread::sleep(std::time::Duration::from_secs(60));
    }

    #[test]
    fn group_commits_are_durable_when_each_write_returns() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(&dir);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "state::store::tests::child_writes_in_groups",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(GROUP_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let ready = stdout
            .lines()
            .map_while(Result::ok)
            .any(|line| line.contains(GROUP_READY));
        // SIGKILL before redb closes the file: only what the commits made durable is there.
        let _ = child.kill();
        child.wait().unwrap();
        assert!(ready, "child exited before writing everything");
        let store = StateStore::open(&path).unwrap();
        assert_eq!(store.resources().unwrap().len(), 200);
    }

    #[test]
    fn a_write_that_fails_in_a_batch_takes_nobody_elses_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&state_path(&dir)).unwrap();
        let failed = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for t in 0..6 {
                let (store, failed) = (&store, &failed);
                s.spawn(move || {
                    for i in 0..30 {
                        let key = format!("mailbox:{t}-{i}");
                        // Every seventh write fails after writing half of its records.
                        let fails = (t * 30 + i) % 7 == 0;
                        let r = store.write(|txn| {
                            let mut table = txn.open_table(RESOURCES)?;
                            table.insert(format!("{key}-half").as_str(), "{}")?;
                            if fails {
                                return Err(Fault::Corrupt {
                                    record: key.clone(),
                                    detail: "injected".into(),
                                });
                            }
                            table.insert(key.as_str(), "{}")?;
                            Ok(())
                        });
                        assert_eq!(r.is_err(), fails, "{key}: {r:?}");
                        if fails {
                            failed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        let keys: Vec<String> = store
            .read(|txn| {
                let table = txn.open_table(RESOURCES)?;
                let mut keys = Vec::new();
                for row in table.iter()? {
                    keys.push(row?.0.value().to_string());
                }
                Ok(keys)
            })
            .unwrap();
        let failed = failed.into_inner();
        assert!(failed > 0);
        // Whole writes only: every write that succeeded, both halves; none of a failed one.
        assert_eq!(keys.len(), 2 * (180 - failed), "{keys:?}");
        for t in 0..6 {
            for i in 0..30 {
                let key = format!("mailbox:{t}-{i}");
                let fails = (t * 30 + i) % 7 == 0;
                assert_eq!(keys.contains(&key), !fails, "{key}");
                assert_eq!(keys.contains(&format!("{key}-half")), !fails, "{key}-half");
            }
        }
    }

    #[test]
    fn read_resources_on_missing_file_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(&dir);
        assert!(read_resources(&path).unwrap().is_empty());
        assert!(!path.exists());
        assert!(!path.parent().unwrap().exists());
        assert!(!lock_path(&path).exists());
    }

    #[test]
    fn newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(&dir);
        {
            let store = StateStore::open(&path).unwrap();
            store
                .put_resource("mailbox:a", &resource("mailbox", "fp"))
                .unwrap();
            let txn = store.db().begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert(META_FORMAT_VERSION, "99")
                .unwrap();
            txn.commit().unwrap();
        }
        for err in [
            StateStore::open(&path).unwrap_err(),
            read_resources(&path).unwrap_err(),
        ] {
            match &err {
                StateError::TooNew {
                    found, supported, ..
                } => {
                    assert_eq!((*found, *supported), (99, FORMAT_VERSION));
                }
                other => panic!("expected TooNew, got {other:?}"),
            }
            let msg = err.to_string();
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(
                msg.contains("state format 99; this one reads up to 1"),
                "{msg}"
            );
            assert!(msg.ends_with("upgrade mailshift"), "{msg}");
        }
    }

    #[test]
    fn non_database_file_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        fs::write(
            &path,
            "plan: this is YAML, not a redb database\n".repeat(200),
        )
        .unwrap();
        let before = fs::read(&path).unwrap();
        for err in [
            StateStore::open(&path).unwrap_err(),
            read_resources(&path).unwrap_err(),
        ] {
            assert!(matches!(err, StateError::NotAStateFile { .. }), "{err:?}");
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!("{} is not a mailshift state file", path.display())),
                "{msg}"
            );
        }
        assert_eq!(
            fs::read(&path).unwrap(),
            before,
            "the file must be left alone"
        );
    }

    #[test]
    fn foreign_redb_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.redb");
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            let other: TableDefinition<u64, u64> = TableDefinition::new("other");
            txn.open_table(other).unwrap().insert(1, 2).unwrap();
            txn.commit().unwrap();
        }
        let err = StateStore::open(&path).unwrap_err();
        assert!(matches!(err, StateError::NotAStateFile { .. }), "{err:?}");
        let err = read_resources(&path).unwrap_err();
        assert!(matches!(err, StateError::NotAStateFile { .. }), "{err:?}");
    }

    #[test]
    fn corrupt_records_are_errors_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(&dir);
        let store = StateStore::open(&path).unwrap();
        {
            let txn = store.db().begin_write().unwrap();
            txn.open_table(RESOURCES)
                .unwrap()
                .insert("mailbox:broken", "{\"kind\": 3")
                .unwrap();
            txn.open_table(FOLDERS)
                .unwrap()
                .insert(("sync:a", "INBOX"), "[]")
                .unwrap();
            txn.open_table(MESSAGES)
                .unwrap()
                .insert(("sync:a", "INBOX", 7), [1u8, 2, 3].as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
        let err = store.resource("mailbox:broken").unwrap_err();
        assert!(
            matches!(&err, StateError::Corrupt { record, .. } if record.contains("`mailbox:broken`")),
            "{err:?}"
        );
        assert!(err.to_string().contains(&path.display().to_string()));
        assert!(matches!(store.resources(), Err(StateError::Corrupt { .. })));
        assert!(matches!(
            read_resources(&path),
            Err(StateError::Corrupt { .. })
        ));

        let err = store.folder("sync:a", "INBOX").unwrap_err();
        assert!(
            err.to_string()
                .contains("folder record `INBOX` of `sync:a`"),
            "{err}"
        );
        let err = store.messages("sync:a", "INBOX").unwrap_err();
        assert!(err.to_string().contains("message record UID 7"), "{err}");
    }

    #[test]
    fn message_encoding_round_trips_and_tolerates_appended_fields() {
        let m = message(4_000_000_000, u64::MAX);
        let bytes = encode_message(&m);
        assert_eq!(decode_message(&bytes), Some(m));
        assert_eq!(bytes.len(), MESSAGE_LEN, "no Gmail ids: the short form");
        // Fields after the Gmail ids (a later version's) are ignored.
        let mut longer = bytes.to_vec();
        longer.extend_from_slice(&[0; 16]);
        longer.extend_from_slice(&[0xff; 8]);
        assert_eq!(decode_message(&longer), Some(m));
        assert_eq!(decode_message(&bytes[..MESSAGE_LEN - 1]), None);
    }

    #[test]
    fn gmail_ids_are_kept_and_an_older_reader_sees_the_rest() {
        let m = MessageRecord {
            source_msgid: 1_278_455_344_230_334_865,
            dest_msgid: 7,
            ..message(12, 3)
        };
        let bytes = encode_message(&m);
        assert_eq!(bytes.len(), MESSAGE_LEN_GMAIL);
        assert_eq!(decode_message(&bytes), Some(m));
        // What a reader of the short form makes of it: everything but the ids.
        let old = decode_message(&bytes[..MESSAGE_LEN]).unwrap();
        assert_eq!((old.dest_uid, old.sync_point, old.source_msgid), (12, 3, 0));
    }
}
