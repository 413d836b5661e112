//! Test doubles for the engine: a [`Store`] in memory that behaves like the servers we meet
//! (Radicale's 409 on a UID held elsewhere or Xandikos accepting it, a server that
//! re-serializes what it stores, size limits, with or without sync-collection) and can be cut
//! after any write, and a [`Journal`] in memory.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::error::ErrorKind;
use crate::journal::{CollectionRecord, Journal, JournalError, ObjectRecord, RefusedRecord};
use crate::store::{
    Collection, Component, Delta, Fetched, Listed, Listing, Precondition, PutOutcome, Store,
    StoreError, StoreResult,
};

/// How the store behaves.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// Answer a write of a UID held at another href of the collection with 409 (Radicale);
    /// false: accept it (Xandikos).
    pub unique_uids: bool,
    /// Store objects with their property lines reordered (a server that parses and writes
    /// back).
    pub reserialize: bool,
    /// Offer sync-collection tokens.
    pub sync_collection: bool,
    /// Give the tokens with listings rather than with collections (as EWS and Graph do);
    /// with `sync_collection`.
    pub listing_token: bool,
    /// Refuse (413) objects larger than this, without saying so in `max_size`.
    pub refuse_over: Option<usize>,
    /// Say that objects must carry a UID (a DAV server).
    pub requires_uid: bool,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            unique_uids: true,
            reserialize: false,
            sync_collection: true,
            listing_token: false,
            refuse_over: None,
            requires_uid: false,
        }
    }
}

#[derive(Debug, Default)]
struct Col {
    col: Option<Collection>,
    /// href → (etag, data)
    objects: BTreeMap<String, (String, Vec<u8>)>,
    /// (sequence, href, removed)
    log: Vec<(u64, String, bool)>,
}

#[derive(Debug, Default)]
struct Inner {
    cols: BTreeMap<String, Col>,
    seq: u64,
    /// Writes that landed.
    puts: u64,
    fetches: u64,
    /// Full listings made.
    lists: u64,
    /// After this many landed writes, the last one lands but is answered with an error, and
    /// every call fails from then on (a process killed between a write and its record).
    crash_after: Option<u64>,
    down: bool,
    /// Transient errors to answer the next calls with.
    flaky: u32,
    /// Transient errors to answer the next writes with.
    flaky_puts: u32,
    /// Changes asked by token refused (an expired token) for the next calls.
    refuse_tokens: u32,
}

pub struct MemStore {
    pub behaviour: Behaviour,
    inner: Mutex<Inner>,
}

fn uid_of(data: &[u8]) -> Option<String> {
    String::from_utf8_lossy(data).lines().find_map(|l| {
        l.trim_end_matches('\r')
            .strip_prefix("UID:")
            .map(str::to_string)
    })
}

/// Sorts the property lines inside each component, as a re-serializing server may.
fn reserialize(data: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(data);
    let mut out: Vec<String> = Vec::new();
    let mut props: Vec<String> = Vec::new();
    for line in text.lines().map(|l| l.trim_end_matches('\r')) {
        if line.starts_with("BEGIN:") || line.starts_with("END:") {
            props.sort();
            props.reverse();
            out.append(&mut props);
            out.push(line.to_string());
        } else {
            props.push(line.to_string());
        }
    }
    out.append(&mut props);
    let mut s = out.join("\r\n");
    s.push_str("\r\n");
    s.into_bytes()
}

fn err(kind: ErrorKind, message: &str) -> StoreError {
    StoreError {
        kind,
        message: message.into(),
        retry_after: Some(std::time::Duration::ZERO),
    }
}

pub fn collection(name: &str, components: &[Component]) -> Collection {
    Collection {
        name: name.into(),
        href: format!("/{name}/"),
        display_name: Some(name.to_uppercase()),
        color: None,
        description: None,
        components: components.to_vec(),
        sync_token: None,
        ctag: None,
        vcard_versions: Vec::new(),
        max_size: None,
    }
}

impl MemStore {
    pub fn new(behaviour: Behaviour) -> Self {
        MemStore {
            behaviour,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    /// Adds a collection (as a user or another tool would).
    pub fn add_collection(&self, col: Collection) {
        let href = col.href.clone();
        self.lock().cols.entry(href).or_default().col = Some(col);
    }

    /// Sets a collection's max-resource-size.
    pub fn set_max_size(&self, href: &str, max: Option<u64>) {
        if let Some(c) = self.lock().cols.get_mut(href).and_then(|c| c.col.as_mut()) {
            c.max_size = max;
        }
    }

    /// Adds or replaces an object as a user would (no precondition).
    pub fn insert(&self, col: &str, href: &str, data: &[u8]) {
        let mut g = self.lock();
        g.seq += 1;
        let seq = g.seq;
        let c = g.cols.entry(col.to_string()).or_default();
        c.objects
            .insert(href.to_string(), (format!("\"e{seq}\""), data.to_vec()));
        c.log.push((seq, href.to_string(), false));
    }

    pub fn remove(&self, col: &str, href: &str) {
        let mut g = self.lock();
        g.seq += 1;
        let seq = g.seq;
        if let Some(c) = g.cols.get_mut(col)
            && c.objects.remove(href).is_some()
        {
            c.log.push((seq, href.to_string(), true));
        }
    }

    /// A collection's objects: href → data.
    pub fn objects(&self, col: &str) -> BTreeMap<String, Vec<u8>> {
        self.lock()
            .cols
            .get(col)
            .map(|c| {
                c.objects
                    .iter()
                    .map(|(h, (_, d))| (h.clone(), d.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn collection_hrefs(&self) -> Vec<String> {
        self.lock().cols.keys().cloned().collect()
    }

    /// Writes that landed so far.
    pub fn puts(&self) -> u64 {
        self.lock().puts
    }

    /// Multigets so far.
    /// Full listings made so far.
    pub fn lists(&self) -> u64 {
        self.lock().lists
    }

    pub fn fetches(&self) -> u64 {
        self.lock().fetches
    }

    /// Cuts the store after `n` more landed writes.
    pub fn crash_after(&self, n: u64) {
        let mut g = self.lock();
        g.crash_after = Some(g.puts + n);
    }

    /// The store answers again (the process was restarted).
    pub fn revive(&self) {
        let mut g = self.lock();
        g.down = false;
        g.crash_after = None;
    }

    /// The next `n` calls fail with a transient error.
    pub fn flaky(&self, n: u32) {
        self.lock().flaky = n;
    }

    /// The next `n` asks for changes are refused, as for an expired token.
    pub fn refuse_tokens(&self, n: u32) {
        self.lock().refuse_tokens = n;
    }

    /// The next `n` writes fail with a transient error.
    pub fn flaky_puts(&self, n: u32) {
        self.lock().flaky_puts = n;
    }

    fn check(&self) -> StoreResult<std::sync::MutexGuard<'_, Inner>> {
        let mut g = self.lock();
        if g.down {
            return Err(err(ErrorKind::Bug, "the process was killed"));
        }
        if g.flaky > 0 {
            g.flaky -= 1;
            return Err(err(ErrorKind::Network, "connection reset"));
        }
        Ok(g)
    }

    fn listed(&self, c: &Col) -> Option<Collection> {
        let mut col = c.col.clone()?;
        let version = c.log.last().map_or(0, |l| l.0);
        col.ctag = Some(format!("c{version}"));
        col.sync_token = (self.behaviour.sync_collection && !self.behaviour.listing_token)
            .then(|| format!("t{version}"));
        Some(col)
    }
}

impl Store for MemStore {
    async fn collections(&self, component: Component) -> StoreResult<Vec<Collection>> {
        let g = self.check()?;
        Ok(g.cols
            .values()
            .filter_map(|c| self.listed(c))
            .filter(|c| c.components.contains(&component))
            .collect())
    }

    async fn create_collection(&self, name: &str, like: &Collection) -> StoreResult<Collection> {
        let mut g = self.check()?;
        let href = format!("/{name}/");
        let c = g.cols.entry(href.clone()).or_default();
        if c.col.is_none() {
            c.col = Some(Collection {
                name: name.into(),
                href,
                sync_token: None,
                ctag: None,
                max_size: None,
                vcard_versions: Vec::new(),
                ..like.clone()
            });
        }
        let c = &g.cols[&format!("/{name}/")];
        Ok(self.listed(c).expect("just created"))
    }

    async fn list_with_token(&self, collection: &Collection) -> StoreResult<Listing> {
        // The version before the listing, as a server's token must be: a change made while
        // listing is then reported again next time, never missed.
        let version = self
            .check()?
            .cols
            .get(&collection.href)
            .and_then(|c| c.log.last())
            .map_or(0, |l| l.0);
        let token = if self.behaviour.listing_token {
            Some(format!("t{version}"))
        } else {
            collection.sync_token.clone()
        };
        Ok(Listing {
            objects: self.list(collection).await?,
            token,
        })
    }

    fn listing_token(&self) -> bool {
        self.behaviour.listing_token
    }

    async fn list(&self, collection: &Collection) -> StoreResult<Vec<Listed>> {
        let mut g = self.check()?;
        g.lists += 1;
        Ok(g.cols
            .get(&collection.href)
            .map(|c| {
                c.objects
                    .iter()
                    .map(|(h, (e, _))| Listed {
                        href: h.clone(),
                        etag: Some(e.clone()),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn changes(&self, collection: &Collection, token: &str) -> StoreResult<Option<Delta>> {
        let mut g = self.check()?;
        if !self.behaviour.sync_collection {
            return Ok(None);
        }
        if g.refuse_tokens > 0 {
            g.refuse_tokens -= 1;
            return Ok(None);
        }
        let Some(since) = token.strip_prefix('t').and_then(|t| t.parse::<u64>().ok()) else {
            return Ok(None);
        };
        let Some(c) = g.cols.get(&collection.href) else {
            return Ok(None);
        };
        let mut changed = BTreeMap::new();
        let mut removed = Vec::new();
        for (seq, href, _) in c.log.iter().filter(|l| l.0 > since) {
            let _ = seq;
            match c.objects.get(href) {
                Some((e, _)) => {
                    changed.insert(href.clone(), e.clone());
                }
                None => removed.push(href.clone()),
            }
        }
        removed.retain(|h| !changed.contains_key(h));
        removed.dedup();
        Ok(Some(Delta {
            changed: changed
                .into_iter()
                .map(|(href, e)| Listed {
                    href,
                    etag: Some(e),
                })
                .collect(),
            removed,
            token: format!("t{}", c.log.last().map_or(0, |l| l.0)),
        }))
    }

    async fn fetch(&self, collection: &Collection, hrefs: &[String]) -> StoreResult<Vec<Fetched>> {
        let mut g = self.check()?;
        g.fetches += 1;
        let Some(c) = g.cols.get(&collection.href) else {
            return Ok(Vec::new());
        };
        Ok(hrefs
            .iter()
            .filter_map(|h| {
                c.objects.get(h).map(|(e, d)| Fetched {
                    href: h.clone(),
                    etag: Some(e.clone()),
                    data: d.clone(),
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
        let mut g = self.check()?;
        if g.flaky_puts > 0 {
            g.flaky_puts -= 1;
            return Err(err(ErrorKind::Network, "connection reset"));
        }
        if let Some(max) = self.behaviour.refuse_over
            && data.len() > max
        {
            return Ok(PutOutcome::Refused {
                status: 413,
                reason: "Request Entity Too Large".into(),
            });
        }
        g.seq += 1;
        let seq = g.seq;
        let Some(c) = g.cols.get_mut(&collection.href) else {
            return Err(err(ErrorKind::Refused, "no such collection"));
        };
        let current = c.objects.get(href).map(|(e, _)| e.clone());
        let ok = match (&condition, &current) {
            (Precondition::Absent, None) => true,
            (Precondition::Matches(want), Some(have)) => want == have,
            _ => false,
        };
        if !ok {
            return Ok(PutOutcome::PreconditionFailed);
        }
        if self.behaviour.unique_uids
            && let Some(uid) = uid_of(data)
            && let Some((other, _)) = c
                .objects
                .iter()
                .find(|(h, (_, d))| h.as_str() != href && uid_of(d).as_deref() == Some(&uid))
        {
            return Ok(PutOutcome::UidConflict {
                href: Some(other.clone()),
            });
        }
        let stored = if self.behaviour.reserialize {
            reserialize(data)
        } else {
            data.to_vec()
        };
        let etag = format!("\"e{seq}\"");
        c.objects.insert(href.to_string(), (etag.clone(), stored));
        c.log.push((seq, href.to_string(), false));
        g.puts += 1;
        if g.crash_after.is_some_and(|n| g.puts >= n) {
            g.down = true;
            return Err(err(ErrorKind::Bug, "killed after the write"));
        }
        Ok(PutOutcome::Written { etag: Some(etag) })
    }

    async fn delete(&self, href: &str, _etag: Option<&str>) -> StoreResult<bool> {
        let mut g = self.check()?;
        Ok(g.cols
            .values_mut()
            .any(|c| c.objects.remove(href).is_some()))
    }

    fn schedules(&self) -> bool {
        false
    }

    fn requires_uid(&self) -> bool {
        self.behaviour.requires_uid
    }

    fn href_for(&self, collection: &Collection, name: &str, component: Component) -> String {
        let ext = if component == Component::Card {
            "vcf"
        } else {
            "ics"
        };
        format!("{}{name}.{ext}", collection.href)
    }

    async fn flush(&self) -> StoreResult<()> {
        self.check().map(drop)
    }
}

#[derive(Debug, Default)]
struct JState {
    cols: BTreeMap<String, CollectionRecord>,
    objects: BTreeMap<String, BTreeMap<String, ObjectRecord>>,
    refused: BTreeMap<String, BTreeMap<String, RefusedRecord>>,
}

/// A journal in memory (what survives a "kill": everything it was told).
#[derive(Debug, Default)]
pub struct MemJournal {
    state: Mutex<JState>,
}

impl MemJournal {
    fn lock(&self) -> std::sync::MutexGuard<'_, JState> {
        self.state.lock().unwrap()
    }
}

impl Journal for MemJournal {
    fn collections(&self) -> Result<BTreeMap<String, CollectionRecord>, JournalError> {
        Ok(self.lock().cols.clone())
    }

    fn put_collection(
        &self,
        collection: &str,
        record: &CollectionRecord,
    ) -> Result<(), JournalError> {
        self.lock().cols.insert(collection.into(), record.clone());
        Ok(())
    }

    fn objects(&self, collection: &str) -> Result<BTreeMap<String, ObjectRecord>, JournalError> {
        Ok(self
            .lock()
            .objects
            .get(collection)
            .cloned()
            .unwrap_or_default())
    }

    fn record(
        &self,
        collection: &str,
        objects: &[(String, ObjectRecord)],
        record: Option<&CollectionRecord>,
    ) -> Result<(), JournalError> {
        let mut g = self.lock();
        let m = g.objects.entry(collection.into()).or_default();
        for (k, r) in objects {
            m.insert(k.clone(), r.clone());
        }
        if let Some(r) = record {
            g.cols.insert(collection.into(), r.clone());
        }
        Ok(())
    }

    fn forget_objects(&self, collection: &str, keys: &[String]) -> Result<(), JournalError> {
        if let Some(m) = self.lock().objects.get_mut(collection) {
            for k in keys {
                m.remove(k);
            }
        }
        Ok(())
    }

    fn put_refused(
        &self,
        collection: &str,
        key: &str,
        record: &RefusedRecord,
    ) -> Result<(), JournalError> {
        self.lock()
            .refused
            .entry(collection.into())
            .or_default()
            .insert(key.into(), record.clone());
        Ok(())
    }

    fn clear_refused(&self, collection: &str, key: &str) -> Result<(), JournalError> {
        if let Some(m) = self.lock().refused.get_mut(collection) {
            m.remove(key);
        }
        Ok(())
    }

    fn refused(&self, collection: &str) -> Result<BTreeMap<String, RefusedRecord>, JournalError> {
        Ok(self
            .lock()
            .refused
            .get(collection)
            .cloned()
            .unwrap_or_default())
    }
}
