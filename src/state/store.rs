//! The state store: one redb file recording what `apply` did, per resource, folder and message.
//!
//! Only one process may write the state at a time (`StateStore::open` takes an OS lock on a
//! sibling `.lock` file that holds the owner's pid), while `plan` and `status` read it through
//! [`read_resources`] without taking that lock. The writer opens redb in
//! [`ConcurrencyMode::SingleWriter`] precisely so that such readers see the last committed
//! transaction while an `apply` runs, instead of being turned away.
//!
//! Layout (format version [`FORMAT_VERSION`]):
//! - `meta`: `&str → &str`: `format_version`, `created_by`, `sync_point`. Its type must never
//!   change: it is read before anything else, so that an older mailshift can always tell that a
//!   file is too new for it rather than fail on a table type mismatch.
//! - `resources`: resource id → [`ResourceRecord`] as JSON, so fields can be added compatibly.
//! - `folders`: (resource id, source folder) → [`FolderRecord`] as JSON.
//! - `messages`: (resource id, source folder, source UID) → [`MessageRecord`] in a fixed
//!   little-endian layout: there can be millions of them, JSON would triple the file.
//!
//! Every write method is one redb write transaction, committed (and fsynced: the default
//! durability) before it returns, so a crash loses at most the step in flight.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use redb::{
    Builder, ConcurrencyMode, Database, DatabaseError, ReadTransaction, ReadableDatabase,
    ReadableTable, TableDefinition, TableError,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::record::{FolderRecord, MessageRecord, ResourceRecord};

/// The state format this build writes, and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// Where the state lives when the plan has no `state:` field, relative to the plan's directory.
pub const DEFAULT_RELATIVE_PATH: &str = ".mailshift/state.redb";

const CREATED_BY: &str = concat!("mailshift ", env!("CARGO_PKG_VERSION"));

const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
const RESOURCES: TableDefinition<&str, &str> = TableDefinition::new("resources");
const FOLDERS: TableDefinition<(&str, &str), &str> = TableDefinition::new("folders");
const MESSAGES: TableDefinition<(&str, &str, u32), &[u8]> = TableDefinition::new("messages");

const META_FORMAT_VERSION: &str = "format_version";
const META_CREATED_BY: &str = "created_by";
const META_SYNC_POINT: &str = "sync_point";

/// Encoded size of a [`MessageRecord`]: dest_uid u32, hash 32 bytes, size u64, sync_point u64.
const MESSAGE_LEN: usize = 4 + 32 + 8 + 8;

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
            | StateError::Db { path, .. } => path,
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
        }
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
        }
    }
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

fn folder_name(resource_id: &str, folder: &str) -> String {
    format!("folder record `{folder}` of `{resource_id}`")
}

fn encode_message(m: &MessageRecord) -> [u8; MESSAGE_LEN] {
    let mut out = [0u8; MESSAGE_LEN];
    out[0..4].copy_from_slice(&m.dest_uid.to_le_bytes());
    out[4..36].copy_from_slice(&m.hash);
    out[36..44].copy_from_slice(&m.size.to_le_bytes());
    out[44..52].copy_from_slice(&m.sync_point.to_le_bytes());
    out
}

/// Bytes past [`MESSAGE_LEN`] are ignored: room for fields a later version may append.
fn decode_message(bytes: &[u8]) -> Option<MessageRecord> {
    let b = bytes.get(..MESSAGE_LEN)?;
    Some(MessageRecord {
        dest_uid: u32::from_le_bytes(b[0..4].try_into().ok()?),
        hash: b[4..36].try_into().ok()?,
        size: u64::from_le_bytes(b[36..44].try_into().ok()?),
        sync_point: u64::from_le_bytes(b[44..52].try_into().ok()?),
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

/// The first key past every key whose first element is `id`: `id` followed by NUL is the
/// smallest string greater than `id`, and redb compares tuples element by element.
fn successor(id: &str) -> String {
    format!("{id}\0")
}

/// Reads the resource records for `plan` and `status`, without locking out a running `apply`:
/// redb lets a read-only handle see the writer's last commit. A missing (or still empty) file
/// is an empty state, and nothing is created.
pub fn read_resources(path: &Path) -> Result<BTreeMap<String, ResourceRecord>, StateError> {
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
            Meta::Current => read_resources_txn(&txn),
        }
    };
    read().map_err(|f| f.at(path))
}

/// The state, open for reading and writing by this process alone.
pub struct StateStore {
    path: PathBuf,
    db: Database,
    // Held, never read: the OS releases the lock when this closes, or when the process dies.
    _lock: File,
}

impl fmt::Debug for StateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl StateStore {
    /// Opens the state for writing, creating it (and its directory) if missing. Fails with
    /// [`StateError::Locked`] while another process (or another `StateStore` in this one) has it.
    pub fn open(path: &Path) -> Result<StateStore, StateError> {
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
        lock.set_len(0).map_err(lock_err)?;
        writeln!(lock, "{}", std::process::id()).map_err(lock_err)?;

        let db = Self::open_db(path).map_err(|f| f.at(path))?;
        Ok(StateStore {
            path: path.to_path_buf(),
            db,
            _lock: lock,
        })
    }

    fn open_db(path: &Path) -> Result<Database, Fault> {
        let mut b = builder();
        // A plain open trusts the file and may panic on one damaged outside redb; an apply runs
        // for long enough that a full checksum pass first is cheap insurance.
        b.set_check_integrity_on_open(true);
        let db = b.create(path)?;
        let meta = check_meta(&db.begin_read()?)?;
        if let Meta::Empty = meta {
            let txn = db.begin_write()?;
            {
                let mut meta = txn.open_table(META)?;
                meta.insert(META_FORMAT_VERSION, FORMAT_VERSION.to_string().as_str())?;
                meta.insert(META_CREATED_BY, CREATED_BY)?;
                meta.insert(META_SYNC_POINT, "0")?;
                // Created now so that readers never meet a missing table.
                txn.open_table(RESOURCES)?;
                txn.open_table(FOLDERS)?;
                txn.open_table(MESSAGES)?;
            }
            txn.commit()?;
        }
        Ok(db)
    }

    /// The state file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&ReadTransaction) -> Result<T, Fault>,
    ) -> Result<T, StateError> {
        let run = || f(&self.db.begin_read()?);
        run().map_err(|e| e.at(&self.path))
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, Fault>,
    ) -> Result<T, StateError> {
        let run = || {
            let txn = self.db.begin_write()?;
            // On error the transaction is dropped, which aborts it.
            let out = f(&txn)?;
            txn.commit()?;
            Ok(out)
        };
        run().map_err(|e: Fault| e.at(&self.path))
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
            Ok(removed)
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
            Ok(next)
        })
    }

    /// The folder records of a resource, by source folder name.
    pub fn folders(&self, resource_id: &str) -> Result<BTreeMap<String, FolderRecord>, StateError> {
        self.read(|txn| {
            let table = txn.open_table(FOLDERS)?;
            let end = successor(resource_id);
            let mut out = BTreeMap::new();
            for entry in table.range((resource_id, "")..(end.as_str(), ""))? {
                let (k, v) = entry?;
                let (_, folder) = k.value();
                let record = decode_json(v.value(), || folder_name(resource_id, folder))?;
                out.insert(folder.to_string(), record);
            }
            Ok(out)
        })
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
            Ok(removed)
        })
    }
}
