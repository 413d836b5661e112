//! One account's directory of vCard and iCalendar files as a [`Store`]: each `.vcf` file is an
//! address book, each `.ics` file a calendar (events and tasks may share it), found recursively
//! under the directory (hidden files and directories skipped).
//!
//! An object's href is `<file path relative to the directory>#<name>`, where the name comes
//! from its identity ([`object::file_name`]), so it stays the same when the file is re-read;
//! its ETag is a short hex of its [`object::content_hash`], so it changes exactly when the
//! object does. Names are not stored in the files: an object written under a name other than
//! its identity's (an object without UID whose content was rewritten on the way) is listed
//! under its identity's name once the file is read again; two objects with one identity in a
//! file get `name`, `name~2`... Files are split into objects with [`object::split_file`] the first time they are
//! needed and kept in memory for the run; a bad object is left out and listed by
//! [`FileStore::problems`] with its file and line, never failing the rest.
//!
//! As a destination (an export, a backup before a move), writes change the in-memory files;
//! [`Store::flush`] then rewrites each changed file atomically (temporary file in the same
//! directory, fsync, rename, fsync of the directory). Before writing, it re-reads the file and
//! applies this store's changes to what is on disk now, so two stores sharing a file (the
//! events and the tasks of one calendar) keep each other's objects. A file with a bad object is
//! never rewritten (the object would be lost): writes to it are refused with the reason.
//!
//! A `.pst` file in a source directory reads as one more file per contacts, calendar or tasks
//! folder in it (`outlook.pst/Contacts.vcf`, [`pst`]).
//!
//! File I/O is synchronous: the files are local and a whole file is needed at once, and it
//! spares the crate an async runtime dependency.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use sha2::{Digest, Sha256};

use crate::error::ErrorKind;
use crate::object::{self, Item, ParseError};
use crate::store::{
    Collection, Component, Delta, Fetched, Listed, Precondition, PutOutcome, Store, StoreError,
    StoreResult,
};

/// A directory of `.vcf` / `.ics` files, read (and, when writable, written) as a [`Store`].
pub struct FileStore {
    root: PathBuf,
    writable: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// By path relative to the root, `/`-separated, extension included.
    files: BTreeMap<String, FileData>,
    /// Files that could not be read at all (line 0), by path.
    unreadable: BTreeMap<String, ParseError>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Vcf,
    Ics,
}

struct FileData {
    kind: Kind,
    /// In file order.
    entries: Vec<Entry>,
    /// Entry position by name, and name by UID (files of 10,000 contacts are common).
    by_name: HashMap<String, usize>,
    by_uid: HashMap<String, String>,
    /// The VCALENDAR's own lines other than VERSION and PRODID (X-WR-CALNAME...), unfolded,
    /// kept when the file is rewritten.
    header: Vec<Vec<u8>>,
    /// Components the file was created for (by [`Store::create_collection`]).
    declared: BTreeSet<Component>,
    problems: Vec<ParseError>,
    /// SHA-256 of the bytes as read (empty file when it did not exist).
    read_hash: [u8; 32],
    /// Changes not yet flushed, in order: `(name, Some((item, etag)))` put, `(name, None)`
    /// delete.
    pending: Vec<(String, Option<(Item, String)>)>,
    /// Must be written even without pending changes (a created collection).
    create: bool,
}

struct Entry {
    name: String,
    item: Item,
    etag: String,
    /// Where it starts in the file as read; `None` for an object written by this store.
    line: Option<usize>,
}

/// Files (relative paths) and what is wrong in them.
type Problems = Vec<(String, ParseError)>;

fn config(message: String) -> StoreError {
    StoreError {
        kind: ErrorKind::Config,
        message,
        retry_after: None,
    }
}

/// The short hex ETag of an object's content.
fn etag_of(data: &[u8]) -> String {
    object::hex(&object::content_hash(data)[..8])
}

fn kind_of(path: &str) -> Option<Kind> {
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    match ext.as_str() {
        "vcf" | "vcard" => Some(Kind::Vcf),
        "ics" | "ical" => Some(Kind::Ics),
        _ => None,
    }
}

impl FileData {
    fn parse(kind: Kind, bytes: &[u8]) -> FileData {
        let (items, problems) = object::split_file(bytes);
        let mut file = FileData {
            kind,
            entries: Vec::new(),
            by_name: HashMap::new(),
            by_uid: HashMap::new(),
            header: calendar_header(bytes),
            declared: BTreeSet::new(),
            problems,
            read_hash: Sha256::digest(bytes).into(),
            pending: Vec::new(),
            create: false,
        };
        for (line, item) in items {
            if (kind == Kind::Vcf) != (item.component == Component::Card) {
                let (what, ext) = match kind {
                    Kind::Vcf => ("a calendar object", ".ics"),
                    Kind::Ics => ("a vCard", ".vcf"),
                };
                file.problems.push(ParseError {
                    line,
                    message: format!(
                        "{what} in a file of the other kind: it is skipped; move it to a {ext} file"
                    ),
                });
                continue;
            }
            let base = object::file_name(&object::identity(&item));
            // Two objects with one identity in a file (a contact exported twice) still get
            // distinct hrefs: the second is `name~2`.
            let mut name = base.clone();
            let mut n = 1;
            while file.by_name.contains_key(&name) {
                n += 1;
                name = format!("{base}~{n}");
            }
            let etag = etag_of(&item.data);
            file.push(Entry {
                name,
                item,
                etag,
                line: Some(line),
            });
        }
        file
    }

    fn push(&mut self, entry: Entry) {
        self.by_name.insert(entry.name.clone(), self.entries.len());
        if let Some(uid) = &entry.item.uid {
            self.by_uid
                .entry(uid.clone())
                .or_insert_with(|| entry.name.clone());
        }
        self.entries.push(entry);
    }

    fn get(&self, name: &str) -> Option<&Entry> {
        self.by_name.get(name).map(|&i| &self.entries[i])
    }

    /// The name of another object with this UID, if any.
    fn uid_elsewhere(&self, uid: &str, name: &str) -> Option<&str> {
        self.by_uid
            .get(uid)
            .map(String::as_str)
            .filter(|other| *other != name)
    }

    fn reindex_uids(&mut self) {
        self.by_uid.clear();
        for entry in &self.entries {
            if let Some(uid) = &entry.item.uid {
                self.by_uid
                    .entry(uid.clone())
                    .or_insert_with(|| entry.name.clone());
            }
        }
    }

    fn reindex(&mut self) {
        let entries = std::mem::take(&mut self.entries);
        self.by_name.clear();
        self.by_uid.clear();
        for entry in entries {
            self.push(entry);
        }
    }

    fn components(&self) -> Vec<Component> {
        if self.kind == Kind::Vcf {
            return vec![Component::Card];
        }
        let mut set: BTreeSet<Component> = self.entries.iter().map(|e| e.item.component).collect();
        set.extend(self.declared.iter().copied());
        if set.is_empty() {
            return vec![Component::Event, Component::Task];
        }
        set.into_iter().collect()
    }

    fn header_value(&self, name: &str) -> Option<String> {
        self.header.iter().find_map(|line| {
            let text = String::from_utf8_lossy(line);
            let (prop, value) = text.split_once(':')?;
            let prop = prop.split(';').next()?;
            prop.eq_ignore_ascii_case(name)
                .then(|| object::unescape(value.trim()))
        })
    }

    /// The file's bytes from its objects.
    fn to_bytes(&self) -> Vec<u8> {
        let items: Vec<&[u8]> = self
            .entries
            .iter()
            .map(|e| e.item.data.as_slice())
            .collect();
        match self.kind {
            Kind::Vcf => object::join_file(&items),
            Kind::Ics => object::join_calendar(&items, &self.header),
        }
    }

    fn apply(&mut self, name: &str, object: Option<(Item, String)>) {
        let position = self.by_name.get(name).copied();
        match (object, position) {
            (Some((item, etag)), position) => {
                let entry = Entry {
                    name: name.to_string(),
                    etag,
                    item,
                    line: None,
                };
                match position {
                    Some(i) => {
                        let old = std::mem::replace(&mut self.entries[i], entry);
                        if old.item.uid != self.entries[i].item.uid {
                            self.reindex_uids();
                        }
                    }
                    None => self.push(entry),
                }
            }
            (None, Some(i)) => {
                self.entries.remove(i);
                self.reindex();
            }
            (None, None) => {}
        }
    }
}

/// The VCALENDAR-level lines of the first VCALENDAR, but VERSION and PRODID (which the
/// rewritten file gets anew).
fn calendar_header(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut header = Vec::new();
    let mut depth = 0usize;
    let mut seen = false;
    for line in unfolded_lines(bytes) {
        let upper = line.to_ascii_uppercase();
        if upper.starts_with(b"BEGIN:") {
            if depth == 0 && seen {
                break;
            }
            depth += 1;
            seen = true;
            continue;
        }
        if upper.starts_with(b"END:") {
            depth = depth.saturating_sub(1);
            continue;
        }
        if depth == 1 && !upper.starts_with(b"VERSION") && !upper.starts_with(b"PRODID") {
            header.push(line);
        }
    }
    header
}

fn unfolded_lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for raw in bytes.split(|&b| b == b'\n') {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        match (raw.first(), out.last_mut()) {
            (Some(b' ' | b'\t'), Some(last)) => last.extend_from_slice(&raw[1..]),
            _ if raw.is_empty() => {}
            _ => out.push(raw.to_vec()),
        }
    }
    out
}

impl FileStore {
    /// A store over `root` (one account's directory). A read-only store (a source) refuses
    /// every write.
    pub fn new(root: impl Into<PathBuf>, writable: bool) -> FileStore {
        FileStore {
            root: root.into(),
            writable,
            state: Mutex::new(State::default()),
        }
    }

    /// What was wrong in the files read so far: the file (relative path) and the line. Each
    /// bad object was left out; the rest of its file was read.
    /// A file that cannot be read at all (permissions, a name that is not UTF-8) is listed
    /// with line 0 and left out.
    pub fn problems(&self) -> Problems {
        let state = self.lock();
        let mut problems: Problems = state
            .unreadable
            .iter()
            .map(|(path, p)| (path.clone(), p.clone()))
            .collect();
        problems.extend(
            state.files.iter().flat_map(|(path, file)| {
                file.problems.iter().map(move |p| (path.clone(), p.clone()))
            }),
        );
        problems.sort_by(|a, b| (&a.0, a.1.line).cmp(&(&b.0, b.1.line)));
        problems
    }

    /// Where an object (by href) starts in its file as read, for a report's "file.vcf line
    /// 12"; `None` for an unknown href or an object this store wrote.
    pub fn line_of(&self, href: &str) -> Option<usize> {
        let (rel, name) = split_href(href)?;
        let state = self.lock();
        state.files.get(rel)?.get(name)?.line
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn path_of(&self, rel: &str) -> PathBuf {
        rel.split('/').fold(self.root.clone(), |p, seg| p.join(seg))
    }

    /// Every `.vcf` / `.ics` file under the root, relative, `/`-separated, sorted; and the
    /// entries that cannot be named (not UTF-8).
    fn scan(&self) -> StoreResult<(Vec<String>, Problems)> {
        let mut found = Vec::new();
        let mut skipped = Vec::new();
        match fs::metadata(&self.root) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(config(format!(
                    "{} is not a directory",
                    self.root.display()
                )));
            }
            Err(_) if self.writable => return Ok((found, skipped)),
            Err(e) => {
                return Err(config(format!(
                    "cannot read the directory {}: {e}",
                    self.root.display()
                )));
            }
        }
        let mut dirs = vec![(self.root.clone(), String::new())];
        while let Some((dir, prefix)) = dirs.pop() {
            let entries = fs::read_dir(&dir)
                .map_err(|e| config(format!("cannot read the directory {}: {e}", dir.display())))?;
            for entry in entries.flatten() {
                let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                    let lossy = entry.file_name().to_string_lossy().into_owned();
                    if kind_of(&lossy).is_some() {
                        skipped.push((
                            format!("{prefix}{lossy}"),
                            ParseError {
                                line: 0,
                                message: "the file name is not UTF-8: rename the file to read it"
                                    .into(),
                            },
                        ));
                    }
                    continue;
                };
                if name.starts_with('.') {
                    continue;
                }
                let rel = format!("{prefix}{name}");
                let Ok(file_type) = entry.file_type() else {
                    continue;
                };
                // Directories behind symlinks are not followed (no loops); files are.
                if file_type.is_dir() {
                    dirs.push((entry.path(), format!("{rel}/")));
                } else if kind_of(&name).is_some() && entry.path().is_file() {
                    found.push(rel);
                } else if name.to_ascii_lowercase().ends_with(".pst") && !self.writable {
                    // Outlook's contacts, calendars and tasks (files/pst.rs).
                    match pst::list(&self.root, &rel) {
                        Ok(files) => found.extend(files),
                        Err(message) => skipped.push((rel, ParseError { line: 0, message })),
                    }
                }
            }
        }
        found.sort();
        Ok((found, skipped))
    }

    /// The file, read on first use.
    fn load<'s>(&self, state: &'s mut State, rel: &str) -> StoreResult<&'s mut FileData> {
        if !state.files.contains_key(rel) {
            let kind =
                kind_of(rel).ok_or_else(|| config(format!("{rel} is not a .vcf or .ics file")))?;
            if pst::is_virtual(rel) {
                let (objects, problems) = pst::read(&self.root, rel).map_err(config)?;
                let items: Vec<&[u8]> = objects.iter().map(Vec::as_slice).collect();
                let mut data = FileData::parse(kind, &object::join_file(&items));
                data.problems.extend(problems);
                state.files.insert(rel.to_string(), data);
                return Ok(state.files.get_mut(rel).expect("inserted above"));
            }
            let bytes = match fs::read(self.path_of(rel)) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(config(format!("cannot read {rel}: {e}"))),
            };
            state
                .files
                .insert(rel.to_string(), FileData::parse(kind, &bytes));
        }
        Ok(state.files.get_mut(rel).expect("inserted above"))
    }

    fn collection(rel: &str, file: &FileData) -> Collection {
        let stem_path = rel.rsplit_once('.').map_or(rel, |(stem, _)| stem);
        let stem = stem_path.rsplit('/').next().unwrap_or(stem_path);
        let mut fingerprint = Sha256::new();
        fingerprint.update(file.read_hash);
        for entry in &file.entries {
            fingerprint.update(entry.name.as_bytes());
            fingerprint.update(b"\0");
            fingerprint.update(entry.etag.as_bytes());
            fingerprint.update(b"\n");
        }
        Collection {
            name: pst::collection_name(rel).unwrap_or_else(|| stem_path.to_string()),
            href: rel.to_string(),
            display_name: Some(
                file.header_value("X-WR-CALNAME")
                    .unwrap_or_else(|| stem.to_string()),
            ),
            color: file.header_value("X-APPLE-CALENDAR-COLOR"),
            description: file.header_value("X-WR-CALDESC"),
            components: file.components(),
            sync_token: None,
            ctag: Some(object::hex(&fingerprint.finalize()[..8])),
            vcard_versions: Vec::new(),
            max_size: None,
        }
    }

    fn writable_file<'s>(&self, state: &'s mut State, rel: &str) -> StoreResult<&'s mut FileData> {
        if !self.writable {
            return Err(config(format!(
                "{} is a source directory: it is never written",
                self.root.display()
            )));
        }
        let file = self.load(state, rel)?;
        if let Some(problem) = file.problems.first() {
            return Err(config(format!(
                "{rel} holds an object that cannot be read ({problem}); rewriting the file would lose it: fix or move the file first"
            )));
        }
        Ok(file)
    }

    fn write_atomically(&self, rel: &str, bytes: &[u8]) -> std::io::Result<()> {
        let path = self.path_of(rel);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir)?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Unique per write: two stores of one process may write one file.
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let n = WRITES.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{file_name}.{}-{n}.tmp", std::process::id()));
        let result = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            sync_dir(&dir)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Splits `file.ics#name` into the file and the object's name.
fn split_href(href: &str) -> Option<(&str, &str)> {
    href.rsplit_once('#')
}

/// A collection name as a relative path: `/`-separated segments, none empty, hidden or `..`,
/// no backslash or control character.
fn safe_rel(name: &str) -> StoreResult<String> {
    let segments: Vec<String> = name
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.chars()
                .map(|c| if c.is_control() || c == '\\' { '_' } else { c })
                .collect::<String>()
        })
        .collect();
    if segments.is_empty() || segments.iter().any(|s| s.starts_with('.')) {
        return Err(config(format!(
            "`{name}` cannot name a file: empty, or a segment starting with `.`"
        )));
    }
    Ok(segments.join("/"))
}

impl Store for FileStore {
    async fn collections(&self, component: Component) -> StoreResult<Vec<Collection>> {
        let (on_disk, skipped) = self.scan()?;
        let mut state = self.lock();
        state.unreadable.extend(skipped);
        for rel in &on_disk {
            // One file that cannot be read does not hide the others.
            if let Err(e) = self.load(&mut state, rel) {
                state.unreadable.insert(
                    rel.clone(),
                    ParseError {
                        line: 0,
                        message: e.message,
                    },
                );
            }
        }
        Ok(state
            .files
            .iter()
            .map(|(rel, file)| Self::collection(rel, file))
            .filter(|c| c.components.contains(&component))
            .collect())
    }

    async fn create_collection(&self, name: &str, like: &Collection) -> StoreResult<Collection> {
        if !self.writable {
            return Err(config(format!(
                "{} is a source directory: it is never written",
                self.root.display()
            )));
        }
        let kind = if like.components.contains(&Component::Card) {
            Kind::Vcf
        } else {
            Kind::Ics
        };
        let ext = match kind {
            Kind::Vcf => "vcf",
            Kind::Ics => "ics",
        };
        let rel = format!("{}.{ext}", safe_rel(name)?);
        let mut state = self.lock();
        let file = self.load(&mut state, &rel)?;
        file.declared.extend(like.components.iter().copied());
        if file.entries.is_empty() && file.read_hash == <[u8; 32]>::from(Sha256::digest(b"")) {
            file.create = true;
            if kind == Kind::Ics {
                file.header.clear();
                let mut push = |name: &str, value: &Option<String>| {
                    if let Some(value) = value {
                        file.header
                            .push(format!("{name}:{}", object::escape(value)).into_bytes());
                    }
                };
                push("X-WR-CALNAME", &like.display_name);
                push("X-WR-CALDESC", &like.description);
                push("X-APPLE-CALENDAR-COLOR", &like.color);
            }
        }
        Ok(Self::collection(&rel, file))
    }

    async fn list(&self, collection: &Collection) -> StoreResult<Vec<Listed>> {
        let mut state = self.lock();
        let file = self.load(&mut state, &collection.href)?;
        Ok(file
            .entries
            .iter()
            .map(|e| Listed {
                href: format!("{}#{}", collection.href, e.name),
                etag: Some(e.etag.clone()),
            })
            .collect())
    }

    async fn changes(&self, _collection: &Collection, _token: &str) -> StoreResult<Option<Delta>> {
        Ok(None)
    }

    async fn fetch(&self, collection: &Collection, hrefs: &[String]) -> StoreResult<Vec<Fetched>> {
        let mut state = self.lock();
        let file = self.load(&mut state, &collection.href)?;
        Ok(hrefs
            .iter()
            .filter_map(|href| {
                let (rel, name) = split_href(href)?;
                if rel != collection.href {
                    return None;
                }
                let entry = file.get(name)?;
                Some(Fetched {
                    href: href.clone(),
                    etag: Some(entry.etag.clone()),
                    data: entry.item.data.clone(),
                })
            })
            .collect())
    }

    async fn put(
        &self,
        collection: &Collection,
        href: &str,
        data: &[u8],
        condition: Precondition,
    ) -> StoreResult<PutOutcome> {
        let Some((rel, name)) = split_href(href).filter(|(rel, _)| *rel == collection.href) else {
            return Ok(PutOutcome::Refused {
                status: 400,
                reason: format!("{href} is not an object of {}", collection.href),
            });
        };
        let mut state = self.lock();
        let file = self.writable_file(&mut state, rel)?;
        let item = match object::parse(data) {
            Ok(item) => item,
            Err(e) => {
                return Ok(PutOutcome::Refused {
                    status: 415,
                    reason: format!("not a valid object: {e}"),
                });
            }
        };
        if (file.kind == Kind::Vcf) != (item.component == Component::Card) {
            return Ok(PutOutcome::Refused {
                status: 415,
                reason: format!("a {:?} does not belong in {rel}", item.component),
            });
        }
        let current = file.get(name);
        match (&condition, current) {
            (Precondition::Absent, Some(_)) => return Ok(PutOutcome::PreconditionFailed),
            (Precondition::Matches(etag), Some(entry)) if *etag != entry.etag => {
                return Ok(PutOutcome::PreconditionFailed);
            }
            (Precondition::Matches(_), None) => return Ok(PutOutcome::PreconditionFailed),
            _ => {}
        }
        if let Some(uid) = &item.uid
            && let Some(other) = file.uid_elsewhere(uid, name)
        {
            return Ok(PutOutcome::UidConflict {
                href: Some(format!("{rel}#{other}")),
            });
        }
        let etag = etag_of(data);
        let object = Some((item, etag.clone()));
        file.apply(name, object.clone());
        file.pending.push((name.to_string(), object));
        Ok(PutOutcome::Written { etag: Some(etag) })
    }

    async fn delete(&self, href: &str, etag: Option<&str>) -> StoreResult<bool> {
        let Some((rel, name)) = split_href(href) else {
            return Ok(false);
        };
        let mut state = self.lock();
        let file = self.writable_file(&mut state, rel)?;
        let Some(entry) = file.get(name) else {
            return Ok(false);
        };
        if etag.is_some_and(|etag| etag != entry.etag) {
            return Ok(false);
        }
        file.apply(name, None);
        file.pending.push((name.to_string(), None));
        Ok(true)
    }

    fn requires_uid(&self) -> bool {
        // A file holds what it is given; an exported card without UID stays without.
        false
    }

    fn schedules(&self) -> bool {
        false
    }

    fn href_for(&self, collection: &Collection, name: &str, _component: Component) -> String {
        format!("{}#{name}", collection.href)
    }

    async fn flush(&self) -> StoreResult<()> {
        // Stores of one process sharing a file (the events and the tasks of a calendar) must
        // not interleave their read-merge-write of it.
        static FLUSHES: Mutex<()> = Mutex::new(());
        let _one_at_a_time = FLUSHES.lock().unwrap_or_else(|e| e.into_inner());
        let mut state = self.lock();
        let dirty: Vec<String> = state
            .files
            .iter()
            .filter(|(_, f)| f.create || !f.pending.is_empty())
            .map(|(rel, _)| rel.clone())
            .collect();
        for rel in dirty {
            let file = state.files.get_mut(&rel).expect("listed above");
            // What is on disk now (another store may have written the file since we read
            // it), with our changes on top.
            let on_disk = match fs::read(self.path_of(&rel)) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(config(format!("cannot read {rel}: {e}"))),
            };
            let mut fresh = FileData::parse(file.kind, &on_disk);
            if let Some(problem) = fresh.problems.first() {
                return Err(config(format!(
                    "{rel} now holds an object that cannot be read ({problem}); rewriting the file would lose it: fix or move the file first"
                )));
            }
            if on_disk.is_empty() {
                fresh.header = std::mem::take(&mut file.header);
            }
            for (name, data) in &file.pending {
                fresh.apply(name, data.clone());
            }
            fresh.declared = std::mem::take(&mut file.declared);
            let mut bytes = fresh.to_bytes();
            if bytes.is_empty() && fresh.kind == Kind::Ics {
                bytes = object::join_calendar(&[], &[b"CALSCALE:GREGORIAN".to_vec()]);
            }
            self.write_atomically(&rel, &bytes)
                .map_err(|e| config(format!("cannot write {rel}: {e}")))?;
            fresh.read_hash = Sha256::digest(&bytes).into();
            *file = fresh;
        }
        Ok(())
    }
}

mod pst;
#[cfg(test)]
mod tests;
