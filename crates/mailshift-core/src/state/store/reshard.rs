//! `mailshift state reshard`: the records of a split into N shards moved into the files of a
//! split into M (1 → M, N → M, N → 1), offline, every old and new file's lock held throughout.
//!
//! Each record goes to the file of the shard that owns it under M: records keyed by a resource
//! (`account/ADDRESS/...`) or an account address to that account's shard
//! (`crate::shard::shard_of`), platform-level ones (domains, groups, DNS...) to shard 0. Two
//! tables are not anyone's records but each file's context, and go to every new file: the sync
//! points' dates (message records of every shard name them; on a clash the earliest start is
//! kept) and the servers' measured throughput (the newest measurement is kept). `notified` keys
//! naming a resource go with it; the others (the daily summary, the convergence, the outbox of
//! notices not yet delivered) to shard 0, the first old shard's value kept on a clash, except
//! the outbox, whose notices from every old shard are kept. A table
//! this version does not know is refused rather than dropped.
//!
//! A kill -9 at any moment loses and duplicates nothing:
//! 1. the new files are written whole under temporary names (`FILE.reshard-tmp`), each in one
//!    redb transaction (durable when committed), beside old files that are not touched;
//! 2. a marker (`FIRST-NEW-FILE.reshard`, JSON naming the old and new files) is written
//!    atomically (a temporary file, fsync, rename, fsync of the directory): the commit point;
//! 3. each old file is renamed `FILE.before-reshard`, then each temporary file to its final
//!    name, the directories fsynced;
//! 4. the marker is removed, then the `.before-reshard` files.
//!
//! A rerun after a crash before 2 finds no marker: it drops the temporary files and starts over
//! from the old files, untouched. After 2 it finds the marker and finishes 3 and 4 (each rename
//! is done only if its source is still there), whatever `--to` it was given.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use redb::{
    Database, Key, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, TableError,
    TableHandle, Value, WriteTransaction,
};
use serde::{Deserialize, Serialize};

use super::dav::{DAV_COLLECTIONS, DAV_OBJECTS, DAV_REFUSED};
use super::hold::HOLDS;
use super::notified::{NOTIFIED, OUTBOX};
use super::quota::{PAUSES, QUOTA_BYTES};
use super::rollback::{DAV_ROLLBACKS, ROLLBACKS, SYNC_POINTS};
use super::throughput::{COPY_RUNS, THROUGHPUT, Throughput};
use super::{
    FOLDERS, FORMAT_VERSION, Fault, MESSAGES, META, META_CREATED_BY, META_FORMAT_VERSION,
    META_SHARD, META_SYNC_POINT, Meta, REFUSED, RESOURCES, StateError, builder, check_meta,
    lock_holder_pid, lock_path, stamp_txn,
};
use crate::shard::{Shard, shard_of};

/// Every table this version knows how to move (the rest is refused).
const KNOWN: &[&str] = &[
    "meta",
    "resources",
    "folders",
    "messages",
    "refused",
    "dav_collections",
    "dav_objects",
    "dav_refused",
    "quota_bytes",
    "pauses",
    "sync_points",
    "rollbacks",
    "dav_rollbacks",
    "notified",
    "holds",
    "throughput",
    "copy_runs",
];

/// What a reshard did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resharded {
    /// The split the records came from (`None`: the files were already moved by an earlier
    /// run that was interrupted after its commit point, finished now).
    pub from: Option<u32>,
    pub to: u32,
    /// Records written to each new file, in shard order (empty when finishing an earlier run).
    pub records: Vec<u64>,
}

/// The marker of a reshard past its commit point.
#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    to: u32,
    old: Vec<PathBuf>,
    new: Vec<PathBuf>,
}

/// Where a run may be stopped on purpose, to test what a crash there leaves.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crash {
    AfterTemporaryFiles,
    AfterMarker,
    AfterOldRenamed,
    AfterNewRenamed,
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn tmp_path(path: &Path) -> PathBuf {
    with_suffix(path, ".reshard-tmp")
}

/// Where an old file waits until the reshard is over.
pub fn before_path(path: &Path) -> PathBuf {
    with_suffix(path, ".before-reshard")
}

/// The marker of a reshard whose first new file is `first`.
pub fn marker_path(first: &Path) -> PathBuf {
    with_suffix(first, ".reshard")
}

fn io_at(path: &Path, action: &str) -> impl FnOnce(io::Error) -> StateError {
    let path = path.to_path_buf();
    let action = action.to_string();
    move |source| StateError::Io {
        path,
        action,
        source,
    }
}

/// fsync of a file's directory, so a rename or a creation in it is durable.
fn sync_dir(path: &Path) -> Result<(), StateError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir, "sync its directory"))
}

fn rename(from: &Path, to: &Path) -> Result<(), StateError> {
    fs::rename(from, to).map_err(io_at(from, &format!("rename it to {}", to.display())))
}

fn remove_if_present(path: &Path) -> Result<(), StateError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_at(path, "remove it")(e)),
        _ => Ok(()),
    }
}

/// Takes the lock every `StateStore` takes (the sibling `.lock` file), for the whole run.
fn lock(path: &Path) -> Result<File, StateError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io_at(dir, "create the directory"))?;
    }
    let lock_file = lock_path(path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_file)
        .map_err(io_at(&lock_file, "use the lock file"))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(StateError::Locked {
            path: path.to_path_buf(),
            pid: lock_holder_pid(path),
        }),
        Err(TryLockError::Error(e)) => Err(io_at(&lock_file, "lock the lock file")(e)),
    }
}

/// The shard that wrote the file at `path`, if there is one.
pub fn stamp_of(path: &Path) -> Result<Option<Shard>, StateError> {
    super::StateReader::open(path)?.shard()
}

/// Moves the records of the files `old` (the shards of one split, in shard order; a shard
/// whose file never existed left out) into `new.len()` new files at `new` (in shard order).
/// Every path's lock is taken first: no shard may run meanwhile. A marker left by an
/// interrupted run is finished first, and that run's result returned.
pub fn reshard(old: &[PathBuf], new: &[PathBuf]) -> Result<Resharded, StateError> {
    reshard_crashing(old, new, None)
}

#[doc(hidden)]
pub fn reshard_crashing(
    old: &[PathBuf],
    new: &[PathBuf],
    crash: Option<Crash>,
) -> Result<Resharded, StateError> {
    let to = u32::try_from(new.len()).unwrap_or(u32::MAX);
    let first = new.first().expect("at least one new shard");
    let marker_file = marker_path(first);
    let mut locks = Vec::new();
    // Each distinct path once: flock conflicts with itself across descriptors.
    let mut seen: Vec<&PathBuf> = Vec::new();
    for path in old.iter().chain(new) {
        if !seen.contains(&path) {
            seen.push(path);
            locks.push(lock(path)?);
        }
    }
    if let Some(marker) = read_marker(&marker_file)? {
        // The interrupted run's files, whatever this run was asked.
        for path in marker.old.iter().chain(&marker.new) {
            if !seen.contains(&path) {
                locks.push(lock(path)?);
            }
        }
        finish(&marker_file, &marker, None)?;
        return Ok(Resharded {
            from: None,
            to: marker.to,
            records: Vec::new(),
        });
    }
    // Leftovers of a run that crashed before its commit point, or in its last cleanup.
    for path in new {
        remove_if_present(&tmp_path(path))?;
    }
    for path in old.iter().chain(new) {
        remove_if_present(&before_path(path))?;
    }
    for path in new {
        if !old.contains(path) && fs::metadata(path).is_ok() {
            return Err(StateError::Io {
                path: path.clone(),
                action: "create the new shard's file".into(),
                source: io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "a file is already there that is none of the old shards': move it away \
                     (it may be a shard of the new split started before the reshard)",
                ),
            });
        }
    }
    let from = old
        .iter()
        .map(|p| stamp_of(p).map(|s| s.map_or(1, |s| s.count)))
        .next()
        .transpose()?
        .unwrap_or(1);
    let records = write_new(old, new).map_err(|(path, f)| f.at(&path))?;
    for path in new {
        sync_dir(path)?;
    }
    if crash == Some(Crash::AfterTemporaryFiles) {
        return Err(crashed());
    }
    let marker = Marker {
        to,
        old: old.to_vec(),
        new: new.to_vec(),
    };
    write_marker(&marker_file, &marker)?;
    if crash == Some(Crash::AfterMarker) {
        return Err(crashed());
    }
    finish(&marker_file, &marker, crash)?;
    drop(locks);
    Ok(Resharded {
        from: Some(from),
        to,
        records,
    })
}

fn crashed() -> StateError {
    StateError::Io {
        path: PathBuf::new(),
        action: "go on (a crash injected by a test)".into(),
        source: io::Error::other("injected"),
    }
}

fn read_marker(path: &Path) -> Result<Option<Marker>, StateError> {
    match fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| StateError::Corrupt {
                path: path.to_path_buf(),
                record: "reshard marker".into(),
                detail: e.to_string(),
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_at(path, "read it")(e)),
    }
}

fn write_marker(path: &Path, marker: &Marker) -> Result<(), StateError> {
    let tmp = tmp_path(path);
    let text = serde_json::to_string_pretty(marker).expect("paths serialize");
    let mut f = File::create(&tmp).map_err(io_at(&tmp, "create it"))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io_at(&tmp, "write it"))?;
    rename(&tmp, path)?;
    sync_dir(path)
}

/// Steps 3 and 4, each done only if not done yet, so a rerun picks up where a crash stopped.
fn finish(marker_file: &Path, marker: &Marker, crash: Option<Crash>) -> Result<(), StateError> {
    for path in &marker.old {
        let before = before_path(path);
        if !before.exists() {
            // Still the old file: the new one takes its name only once every old one moved.
            rename(path, &before)?;
        }
        sync_dir(path)?;
    }
    if crash == Some(Crash::AfterOldRenamed) {
        return Err(crashed());
    }
    for path in &marker.new {
        let tmp = tmp_path(path);
        if tmp.exists() {
            rename(&tmp, path)?;
        }
        sync_dir(path)?;
    }
    if crash == Some(Crash::AfterNewRenamed) {
        return Err(crashed());
    }
    remove_if_present(marker_file)?;
    sync_dir(marker_file)?;
    for path in &marker.old {
        remove_if_present(&before_path(path))?;
    }
    Ok(())
}

/// The shard (of `count`) owning records keyed by resource `id`: its account's, or 0.
fn owner_of_resource(id: &str, count: u32) -> usize {
    match id
        .strip_prefix("account/")
        .and_then(|rest| rest.split('/').next())
    {
        Some(account) if !account.is_empty() => shard_of(account, count) as usize,
        _ => 0,
    }
}

/// The shard owning a `notified` key: the resource it names (`failed/ID`, `manual/ID`,
/// `first-copy/ID`), else shard 0 (the summary, the convergence, the outbox).
fn owner_of_notified(key: &str, count: u32) -> usize {
    key.split_once('/')
        .map_or(0, |(_, id)| owner_of_resource(id, count))
}

/// Writes the temporary files; the records written to each. An error names its file.
fn write_new(old: &[PathBuf], new: &[PathBuf]) -> Result<Vec<u64>, (PathBuf, Fault)> {
    let count = u32::try_from(new.len()).unwrap_or(u32::MAX);
    let mut dbs = Vec::new();
    for path in new {
        let tmp = tmp_path(path);
        let db = builder()
            .create(&tmp)
            .map_err(|e| (tmp.clone(), e.into()))?;
        dbs.push((tmp, db));
    }
    let txns: Vec<WriteTransaction> = dbs
        .iter()
        .map(|(tmp, db)| db.begin_write().map_err(|e| (tmp.clone(), e.into())))
        .collect::<Result<_, _>>()?;
    let mut counts = vec![0u64; new.len()];
    let mut sync_point = 0u64;
    let mut sync_points: BTreeMap<u64, u64> = BTreeMap::new();
    let mut throughput: BTreeMap<String, (Throughput, String)> = BTreeMap::new();
    for path in old {
        let at = |f: Fault| (path.clone(), f);
        let mut b = builder();
        // The old file may not have been closed cleanly (a killed shard): checked, repaired.
        b.set_check_integrity_on_open(true);
        let db: Database = b.open(path).map_err(|e| at(e.into()))?;
        let txn = db.begin_read().map_err(|e| at(e.into()))?;
        if let Meta::Empty = check_meta(&txn).map_err(at)? {
            continue;
        }
        stamp_txn(&txn).map_err(at)?;
        for table in txn.list_tables().map_err(|e| at(e.into()))? {
            if !KNOWN.contains(&table.name()) {
                return Err(at(Fault::corrupt(
                    format!("table `{}`", table.name()),
                    "this mailshift does not know how to reshard it: use the mailshift that \
                     wrote the state",
                )));
            }
        }
        let meta = txn.open_table(META).map_err(|e| at(e.into()))?;
        if let Some(v) = meta.get(META_SYNC_POINT).map_err(|e| at(e.into()))? {
            let n: u64 = v
                .value()
                .parse()
                .map_err(|e| at(Fault::corrupt("sync point counter".into(), format!("{e}"))))?;
            sync_point = sync_point.max(n);
        }
        let by_id = |id: &str| owner_of_resource(id, count);
        let mut copy_all = || -> Result<(), Fault> {
            copy(&txn, RESOURCES, &txns, &mut counts, |k| by_id(k))?;
            copy(&txn, FOLDERS, &txns, &mut counts, |k| by_id(k.0))?;
            copy(&txn, MESSAGES, &txns, &mut counts, |k| by_id(k.0))?;
            copy(&txn, REFUSED, &txns, &mut counts, |k| by_id(k.0))?;
            copy(&txn, DAV_COLLECTIONS, &txns, &mut counts, |k| by_id(k.0))?;
            copy(&txn, DAV_OBJECTS, &txns, &mut counts, |k| by_id(k.0))?;
            copy(&txn, DAV_REFUSED, &txns, &mut counts, |k| by_id(k.0))?;
            copy(&txn, PAUSES, &txns, &mut counts, |k| by_id(k))?;
            copy(&txn, ROLLBACKS, &txns, &mut counts, |k| by_id(k.0))?;
            copy(&txn, DAV_ROLLBACKS, &txns, &mut counts, |k| by_id(k.0))?;
            copy(&txn, COPY_RUNS, &txns, &mut counts, |k| by_id(k))?;
            // Keyed by the account's address itself.
            copy(&txn, QUOTA_BYTES, &txns, &mut counts, |k| {
                shard_of(k.0, count) as usize
            })?;
            copy(&txn, HOLDS, &txns, &mut counts, |k| {
                shard_of(k, count) as usize
            })?;
            copy_notified(&txn, &txns, &mut counts, count)?;
            if let Some(t) = open(&txn, SYNC_POINTS)? {
                for row in t.iter()? {
                    let (k, v) = row?;
                    let at = sync_points.entry(k.value()).or_insert(v.value());
                    *at = (*at).min(v.value());
                }
            }
            if let Some(t) = open(&txn, THROUGHPUT)? {
                for row in t.iter()? {
                    let (k, v) = row?;
                    let json = v.value().to_string();
                    let m: Throughput = super::decode_json(&json, || {
                        format!("throughput record of `{}`", k.value())
                    })?;
                    let keep = throughput
                        .get(k.value())
                        .is_none_or(|(old, _)| m.at > old.at);
                    if keep {
                        throughput.insert(k.value().to_string(), (m, json));
                    }
                }
            }
            Ok(())
        };
        copy_all().map_err(at)?;
    }
    for (index, ((tmp, _), txn)) in dbs.iter().zip(&txns).enumerate() {
        let shard = Shard {
            index: index as u32,
            count,
        };
        let fill = || -> Result<(), Fault> {
            let mut meta = txn.open_table(META)?;
            meta.insert(META_FORMAT_VERSION, FORMAT_VERSION.to_string().as_str())?;
            meta.insert(META_CREATED_BY, super::CREATED_BY)?;
            meta.insert(META_SYNC_POINT, sync_point.to_string().as_str())?;
            meta.insert(META_SHARD, shard.to_string().as_str())?;
            // As a new file has them, so that readers never meet a missing table.
            txn.open_table(RESOURCES)?;
            txn.open_table(FOLDERS)?;
            txn.open_table(MESSAGES)?;
            txn.open_table(REFUSED)?;
            let mut points = txn.open_table(SYNC_POINTS)?;
            for (n, at) in &sync_points {
                points.insert(n, at)?;
            }
            let mut measured = txn.open_table(THROUGHPUT)?;
            for (server, (_, json)) in &throughput {
                measured.insert(server.as_str(), json.as_str())?;
            }
            Ok(())
        };
        fill().map_err(|f| (tmp.clone(), f))?;
    }
    for ((tmp, _), txn) in dbs.iter().zip(txns) {
        txn.commit().map_err(|e| (tmp.clone(), e.into()))?;
    }
    Ok(counts)
}

fn open<K: Key + 'static, V: Value + 'static>(
    txn: &ReadTransaction,
    def: TableDefinition<K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, Fault> {
    match txn.open_table(def) {
        Ok(t) => Ok(Some(t)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Copies every row of one table to the new file `route` names. A key already there came from
/// another old file: two shards held the same record, which a sound split never does.
fn copy<K: Key + 'static, V: Value + 'static>(
    src: &ReadTransaction,
    def: TableDefinition<K, V>,
    dst: &[WriteTransaction],
    counts: &mut [u64],
    route: impl for<'a> Fn(K::SelfType<'a>) -> usize,
) -> Result<(), Fault> {
    let Some(table) = open(src, def)? else {
        return Ok(());
    };
    let mut out = dst
        .iter()
        .map(|t| t.open_table(def))
        .collect::<Result<Vec<_>, _>>()?;
    for row in table.iter()? {
        let (k, v) = row?;
        let to = route(k.value()).min(out.len() - 1);
        if out[to].insert(k.value(), v.value())?.is_some() {
            return Err(Fault::corrupt(
                format!("`{}` record {:?}", def.name(), k.value()),
                "it is in two old shards' files: the old split was not sound; keep the file \
                 of the shard that owns it and `state forget` it in the other",
            ));
        }
        counts[to] += 1;
    }
    Ok(())
}

/// `notified`: the keys of a resource go with it; the first old shard's value of the shared
/// keys (the summary, the convergence) is kept; the outboxes are merged, so no shard's
/// undelivered notices are lost.
fn copy_notified(
    src: &ReadTransaction,
    dst: &[WriteTransaction],
    counts: &mut [u64],
    count: u32,
) -> Result<(), Fault> {
    let Some(table) = open(src, NOTIFIED)? else {
        return Ok(());
    };
    let mut out = dst
        .iter()
        .map(|t| t.open_table(NOTIFIED))
        .collect::<Result<Vec<_>, _>>()?;
    for row in table.iter()? {
        let (k, v) = row?;
        let to = owner_of_notified(k.value(), count).min(out.len() - 1);
        let kept = out[to].get(k.value())?.map(|g| g.value().to_string());
        match kept {
            None => {
                out[to].insert(k.value(), v.value())?;
                counts[to] += 1;
            }
            Some(kept) if k.value() == OUTBOX => {
                out[to].insert(k.value(), merged_outbox(&kept, v.value()).as_str())?;
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Two outboxes (JSON arrays) as one, each notice once; an outbox that is not an array (it
/// never is) leaves the kept one as it was.
fn merged_outbox(kept: &str, more: &str) -> String {
    use serde_json::Value;
    match (serde_json::from_str(kept), serde_json::from_str(more)) {
        (Ok(Value::Array(mut all)), Ok(Value::Array(others))) => {
            for notice in others {
                if !all.contains(&notice) {
                    all.push(notice);
                }
            }
            Value::Array(all).to_string()
        }
        _ => kept.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::state::store::StateStore;
    use crate::state::{
        DavCollectionRecord, DavObjectRecord, DavRefusedRecord, FolderRecord, HoldRecord,
        MessageRecord, PauseRecord, PendingDavRollback, PendingRollback, RefusedRecord,
        ResourceRecord, Side, Status,
    };

    const ACCOUNTS: [&str; 8] = [
        "alice@example.com",
        "bob@example.com",
        "carol@example.org",
        "dave@example.org",
        "erin@example.net",
        "frank@example.net",
        "grace@example.com",
        "heidi@example.org",
    ];

    fn resource(account: Option<&str>) -> ResourceRecord {
        ResourceRecord {
            kind: "mail".into(),
            account: account.map(str::to_string),
            fingerprint: "f".into(),
            identity: "i".into(),
            status: Status::Done,
            summary: "s".into(),
            outputs: BTreeMap::new(),
            last_error: None,
            sync_point: Some(2),
            created_at: 1,
            updated_at: 2,
        }
    }

    fn folder() -> FolderRecord {
        FolderRecord {
            dest_folder: "INBOX".into(),
            source_uidvalidity: 1,
            highest_uid: 2,
            highest_modseq: None,
            dest_uidvalidity: 3,
            dest_uidnext_in_flight: None,
            source_uidnext: 3,
            source_messages: 2,
            messages: 2,
            bytes: 10,
            updated_at: 5,
        }
    }

    fn dav_object() -> DavObjectRecord {
        DavObjectRecord {
            source_href: "/a/1.vcf".into(),
            source_etag: None,
            source_hash: "00".into(),
            dest_href: "/b/1.vcf".into(),
            dest_etag: None,
            size: 1,
            sync_point: 1,
            created_sync_point: Some(1),
        }
    }

    /// One record in every table, for every account, and the platform's own.
    fn populate(store: &StateStore, accounts: &[&str], at: u64) {
        store.next_sync_point().unwrap();
        store.next_sync_point().unwrap();
        if store.shard().owns_platform_steps() {
            store
                .put_resource("domain/p/example.com", &resource(None))
                .unwrap();
        }
        store
            .put_notified("summary/day", &format!("v{at}"))
            .unwrap();
        store.put_notified("outbox", "[]").unwrap();
        store
            .put_throughput(
                "imap://a:993",
                &Throughput {
                    bytes: at,
                    seconds: 1,
                    at,
                },
            )
            .unwrap();
        for a in accounts {
            let mail = format!("account/{a}/mail");
            let contacts = format!("account/{a}/contacts");
            store.put_resource(&mail, &resource(Some(a))).unwrap();
            let m = MessageRecord {
                dest_uid: 7,
                sync_point: 2,
                ..Default::default()
            };
            store
                .record_batch(&mail, "INBOX", &folder(), &[(1, m), (2, m)])
                .unwrap();
            store
                .put_refused(
                    &mail,
                    "INBOX",
                    &[(
                        3,
                        RefusedRecord {
                            reason: "too big".into(),
                            size: 1,
                            attempts: 1,
                            sync_point: 2,
                        },
                    )],
                )
                .unwrap();
            store
                .record_dav(
                    &contacts,
                    "book",
                    &[("uid:1".into(), dav_object())],
                    Some(&DavCollectionRecord::default()),
                )
                .unwrap();
            store
                .put_dav_refused(
                    &contacts,
                    "book",
                    "uid:2",
                    &DavRefusedRecord {
                        reason: "r".into(),
                        size: 1,
                        attempts: 1,
                        sync_point: 1,
                    },
                )
                .unwrap();
            store.add_transfer(a, at, 10, 20).unwrap();
            store
                .put_pause(
                    &mail,
                    &PauseRecord {
                        until: at + 10,
                        reason: "limit".into(),
                        side: Side::Upload,
                        since: at,
                    },
                )
                .unwrap();
            store
                .begin_rollback(
                    &mail,
                    "INBOX",
                    &PendingRollback {
                        since: 2,
                        dest_uidvalidity: 3,
                        messages: vec![(1, 7)],
                    },
                )
                .unwrap();
            store
                .begin_dav_rollback(
                    &contacts,
                    "book",
                    &PendingDavRollback {
                        since: 1,
                        objects: vec![],
                    },
                )
                .unwrap();
            store
                .put_notified(&format!("failed/{mail}"), "boom")
                .unwrap();
            store.put_hold(a, &HoldRecord { since: at }).unwrap();
            store
                .put_copy_run(
                    &mail,
                    &super::super::throughput::CopyRun {
                        sync_point: 2,
                        started_at: at,
                        to_copy: 2,
                    },
                )
                .unwrap();
        }
    }

    fn rows<K: Key + 'static, V: Value + 'static>(
        txn: &ReadTransaction,
        def: TableDefinition<K, V>,
        out: &mut BTreeMap<String, BTreeSet<String>>,
    ) {
        let Some(t) = open(txn, def).unwrap() else {
            return;
        };
        for row in t.iter().unwrap() {
            let (k, v) = row.unwrap();
            out.entry(def.name().to_string())
                .or_default()
                .insert(format!("{:?} => {:?}", k.value(), v.value()));
        }
    }

    /// Every record of a file but its meta, by table.
    fn dump(path: &Path) -> BTreeMap<String, BTreeSet<String>> {
        let db = builder().open_read_only(path).unwrap();
        let txn = db.begin_read().unwrap();
        let mut out = BTreeMap::new();
        rows(&txn, RESOURCES, &mut out);
        rows(&txn, FOLDERS, &mut out);
        rows(&txn, MESSAGES, &mut out);
        rows(&txn, REFUSED, &mut out);
        rows(&txn, DAV_COLLECTIONS, &mut out);
        rows(&txn, DAV_OBJECTS, &mut out);
        rows(&txn, DAV_REFUSED, &mut out);
        rows(&txn, QUOTA_BYTES, &mut out);
        rows(&txn, PAUSES, &mut out);
        rows(&txn, SYNC_POINTS, &mut out);
        rows(&txn, ROLLBACKS, &mut out);
        rows(&txn, DAV_ROLLBACKS, &mut out);
        rows(&txn, NOTIFIED, &mut out);
        rows(&txn, HOLDS, &mut out);
        rows(&txn, THROUGHPUT, &mut out);
        rows(&txn, COPY_RUNS, &mut out);
        out
    }

    fn union(paths: &[PathBuf]) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for p in paths {
            for (table, rows) in dump(p) {
                out.entry(table).or_default().extend(rows);
            }
        }
        out
    }

    fn paths(dir: &Path, n: usize) -> Vec<PathBuf> {
        (0..n)
            .map(|i| dir.join(format!("state-{i}.redb")))
            .collect()
    }

    /// Each file holds, of the per-account tables, only rows naming its own accounts.
    fn assert_owned(paths: &[PathBuf]) {
        let n = paths.len() as u32;
        for (i, p) in paths.iter().enumerate() {
            assert_eq!(
                stamp_of(p).unwrap(),
                Some(Shard {
                    index: i as u32,
                    count: n
                })
            );
            let d = dump(p);
            for (table, rows) in &d {
                if ["sync_points", "throughput"].contains(&table.as_str()) {
                    continue;
                }
                for row in rows {
                    let owner = ACCOUNTS
                        .iter()
                        .find(|a| row.contains(*a))
                        .map_or(0, |a| shard_of(a, n) as usize);
                    assert_eq!(owner, i, "{table}: {row} in {}", p.display());
                }
            }
            if i == 0 {
                assert!(d["resources"].iter().any(|r| r.contains("domain/p")));
            }
        }
    }

    #[test]
    fn every_table_goes_to_its_owner_and_comes_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let one = paths(dir.path(), 1);
        populate(&StateStore::open(&one[0]).unwrap(), &ACCOUNTS, 100);
        let before = dump(&one[0]);
        let mut tables: Vec<&str> = before.keys().map(String::as_str).collect();
        tables.push("meta");
        tables.sort();
        let mut known = KNOWN.to_vec();
        known.sort();
        assert_eq!(tables, known, "the test covers every table");

        let three = paths(dir.path(), 3);
        let done = reshard(&one, &three).unwrap();
        assert_eq!((done.from, done.to), (Some(1), 3));
        assert!(done.records.iter().all(|&n| n > 0), "{done:?}");
        assert_owned(&three);
        // Nothing lost, nothing doubled (the shared context goes to each file).
        assert_eq!(union(&three), before);
        let total: usize = three
            .iter()
            .map(|p| {
                dump(p)
                    .iter()
                    .filter(|(t, _)| !["sync_points", "throughput"].contains(&t.as_str()))
                    .map(|(_, r)| r.len())
                    .sum::<usize>()
            })
            .sum();
        let expected: usize = before
            .iter()
            .filter(|(t, _)| !["sync_points", "throughput"].contains(&t.as_str()))
            .map(|(_, r)| r.len())
            .sum();
        assert_eq!(total, expected);
        // The new shards open as themselves, with the counter where it was.
        for (i, p) in three.iter().enumerate() {
            let s = StateStore::open_as(p, Shard::new(i as u32, 3).unwrap()).unwrap();
            assert_eq!(s.next_sync_point().unwrap(), 3);
        }

        let two = paths(dir.path(), 2);
        reshard(&three, &two).unwrap();
        assert_owned(&two);
        assert!(!three[2].exists(), "the third old file is gone");
        assert_eq!(union(&two).get("resources"), before.get("resources"));

        reshard(&two, &one).unwrap();
        assert!(!two[1].exists());
        let after = dump(&one[0]);
        for (table, rows) in &before {
            if table == "sync_points" {
                // Points 3 were started by each shard above.
                assert!(rows.is_subset(&after[table]), "{table}");
            } else {
                assert_eq!(Some(rows), after.get(table), "{table}");
            }
        }
        for p in one.iter().chain(&three) {
            assert!(!before_path(p).exists() && !tmp_path(p).exists());
        }
        assert!(!marker_path(&one[0]).exists());
    }

    #[test]
    fn a_crash_at_any_step_is_finished_or_started_over_by_a_rerun() {
        for crash in [
            Crash::AfterTemporaryFiles,
            Crash::AfterMarker,
            Crash::AfterOldRenamed,
            Crash::AfterNewRenamed,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let two = paths(dir.path(), 2);
            for (i, p) in two.iter().enumerate() {
                let s = StateStore::open_as(p, Shard::new(i as u32, 2).unwrap()).unwrap();
                let mine: Vec<&str> = ACCOUNTS
                    .iter()
                    .copied()
                    .filter(|a| shard_of(a, 2) == i as u32)
                    .collect();
                populate(&s, &mine, 100 + i as u64);
            }
            let before = union(&two);
            let three = paths(dir.path(), 3);
            reshard_crashing(&two, &three, Some(crash)).unwrap_err();
            // A rerun (with the same or another --to) finishes or starts over.
            let done = reshard(&two, &three).unwrap();
            if crash == Crash::AfterTemporaryFiles {
                assert_eq!(done.from, Some(2), "{crash:?}: started over");
            } else {
                assert_eq!(done.from, None, "{crash:?}: finished");
            }
            assert_owned(&three);
            let after = union(&three);
            for (table, rows) in &before {
                if ["throughput", "notified", "sync_points"].contains(&table.as_str()) {
                    continue;
                }
                assert_eq!(Some(rows), after.get(table), "{crash:?}: {table}");
            }
            // The shared context: each point once with its earliest start; the first old
            // shard's shared keys; the newest measurement.
            assert_eq!(after["sync_points"].len(), 2, "{crash:?}");
            assert!(after["notified"].iter().any(|r| r.contains("\"v100\"")));
            assert!(!after["notified"].iter().any(|r| r.contains("\"v101\"")));
            assert_eq!(after["throughput"].len(), 1);
            assert!(after["throughput"].iter().next().unwrap().contains("101"));
            for p in two.iter().chain(&three) {
                assert!(!before_path(p).exists(), "{crash:?}");
                assert!(!tmp_path(p).exists(), "{crash:?}");
            }
            assert!(!marker_path(&three[0]).exists());
        }
    }

    #[test]
    fn every_old_shards_undelivered_notices_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let two = paths(dir.path(), 2);
        for (i, p) in two.iter().enumerate() {
            let s = StateStore::open_as(p, Shard::new(i as u32, 2).unwrap()).unwrap();
            s.put_notified(
                "outbox",
                &format!(r#"[{{"to":"t","notice":"shared"}},{{"to":"t","notice":"shard {i}"}}]"#),
            )
            .unwrap();
        }
        let one = paths(dir.path(), 1);
        reshard(&two, &one).unwrap();
        let outbox = StateStore::open(&one[0])
            .unwrap()
            .notified("outbox")
            .unwrap()
            .unwrap();
        let notices: Vec<serde_json::Value> = serde_json::from_str(&outbox).unwrap();
        let said: Vec<&str> = notices
            .iter()
            .map(|n| n["notice"].as_str().unwrap())
            .collect();
        assert_eq!(said, ["shared", "shard 0", "shard 1"], "{outbox}");
        assert_eq!(merged_outbox("[1]", "not json"), "[1]");
    }

    #[test]
    fn a_running_shard_or_a_record_in_two_files_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let two = paths(dir.path(), 2);
        let running = StateStore::open_as(&two[1], Shard::new(1, 2).unwrap()).unwrap();
        drop(StateStore::open_as(&two[0], Shard::new(0, 2).unwrap()).unwrap());
        let err = reshard(&two, &paths(dir.path(), 3)).unwrap_err();
        assert!(matches!(err, StateError::Locked { .. }), "{err:?}");
        populate(&running, &ACCOUNTS[..1], 1);
        drop(running);
        populate(
            &StateStore::open_as(&two[0], Shard::new(0, 2).unwrap()).unwrap(),
            &ACCOUNTS[..1],
            1,
        );
        let msg = reshard(&two, &paths(dir.path(), 1))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("in two old shards' files"), "{msg}");
        // The old files are as they were.
        assert!(two.iter().all(|p| p.exists()));
        assert!(!tmp_path(&two[0]).exists() || !marker_path(&two[0]).exists());
    }
}
