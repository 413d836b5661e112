//! Matching objects by identity across the two sides: the keys of source objects (with the rule
//! for duplicate UIDs in one collection) and the index of a destination collection's objects
//! that adoption (`sync`) and comparison (`verify`) claim from.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use crate::object::{self, Item};
use crate::store::{Collection, Component, Store, StoreResult};

/// Objects per multiget when a whole collection is read.
pub(crate) const FETCH_CHUNK: usize = 100;

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The content hash of `data` as `store` keeps it ([`Store::canonical`]): what the content
/// about to be written and the content found on the destination are compared by. Content that
/// is no object is hashed as is.
pub(crate) fn kept_hash<S: Store>(
    store: &S,
    component: Option<Component>,
    data: &[u8],
) -> [u8; 32] {
    match component {
        Some(c) => object::content_hash(&store.canonical(c, data)),
        None => object::content_hash(data),
    }
}

/// The hash of an object found on the destination `dest`, as [`kept_hash`] gives it.
pub(crate) fn found_hash<S: Store>(dest: &S, data: &[u8]) -> [u8; 32] {
    let component = object::parse(data).ok().map(|i| i.component);
    kept_hash(dest, component, data)
}

/// The part of a key before a duplicate's `#sha256:` suffix: the object's identity.
pub(crate) fn base_of(key: &str) -> &str {
    key.split_once("#sha256:").map_or(key, |(b, _)| b)
}

/// Gives each source object of one collection its key. Xandikos (and files) hold several
/// objects with one UID in a collection: the first by href keeps `uid:X`, each other one is
/// keyed `uid:X#sha256:<its content hash>`, so both are copied and neither overwrites the other.
/// `claimed` starts from the journal's records (identity → source href), so the object that was
/// first keeps its key whatever order later passes read objects in.
#[derive(Debug, Default)]
pub(crate) struct Keys {
    claimed: HashMap<String, String>,
}

impl Keys {
    /// `records`: (key, source href) of the recorded objects still on the source.
    pub fn new<'a>(records: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut claimed = HashMap::new();
        for (key, href) in records {
            if !key.contains("#sha256:") {
                claimed.insert(key.to_string(), href.to_string());
            }
        }
        Keys { claimed }
    }

    /// The key of the object at `href` with this identity and content hash, and whether it is a
    /// duplicate of another object's UID.
    pub fn key(&mut self, identity: &str, href: &str, hash: &[u8; 32]) -> (String, bool) {
        match self.claimed.get(identity) {
            Some(first) if first != href && identity.starts_with("uid:") => {
                (format!("{identity}#sha256:{}", hex(hash)), true)
            }
            Some(_) => (identity.to_string(), false),
            None => {
                self.claimed.insert(identity.to_string(), href.to_string());
                (identity.to_string(), false)
            }
        }
    }
}

/// An object found on the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub href: String,
    pub etag: Option<String>,
    /// `content_hash` of its bytes as the destination keeps them ([`kept_hash`]).
    pub hash: [u8; 32],
    pub size: u64,
    pub component: Option<Component>,
    pub summary: Option<String>,
    pub identity: Option<String>,
}

/// A destination collection's objects by identity, each claimable once.
#[derive(Debug, Default)]
pub(crate) struct DestIndex {
    by_identity: BTreeMap<String, Vec<Found>>,
    by_hash: HashMap<[u8; 32], Vec<String>>,
    all: BTreeMap<String, Found>,
    claimed: Mutex<BTreeSet<String>>,
}

impl DestIndex {
    /// Reads the whole collection. Objects at `exclude` (already recorded for other keys) are
    /// left out: they are not anyone's to adopt.
    pub async fn load<D: Store>(
        dest: &D,
        col: &Collection,
        exclude: &BTreeSet<String>,
    ) -> StoreResult<Self> {
        let listed = dest.list(col).await?;
        let hrefs: Vec<String> = listed
            .into_iter()
            .map(|l| l.href)
            .filter(|h| !exclude.contains(h))
            .collect();
        let mut index = DestIndex::default();
        for chunk in hrefs.chunks(FETCH_CHUNK) {
            for f in dest.fetch(col, chunk).await? {
                let item = object::parse(&f.data).ok();
                index.insert(Found {
                    hash: kept_hash(dest, item.as_ref().map(|i| i.component), &f.data),
                    size: f.data.len() as u64,
                    component: item.as_ref().map(|i| i.component),
                    summary: item.as_ref().and_then(|i| i.summary.clone()),
                    identity: item.as_ref().map(object::identity),
                    href: f.href,
                    etag: f.etag,
                });
            }
        }
        Ok(index)
    }

    fn insert(&mut self, found: Found) {
        if let Some(id) = &found.identity {
            self.by_identity
                .entry(id.clone())
                .or_default()
                .push(found.clone());
        }
        self.by_hash
            .entry(found.hash)
            .or_default()
            .push(found.href.clone());
        self.all.insert(found.href.clone(), found);
    }

    /// Takes the destination object that is this source object, if there is one: among those
    /// with its identity, one with the content about to be written (`prepared`) or the source's
    /// own (`source`), else (for an object keyed by its plain identity) the first by href; else
    /// one with the same content whatever its identity (an object without UID rewritten on the
    /// way). A duplicate UID's extra copy only takes an exact content match, never the first
    /// object's copy.
    pub fn claim(&self, key: &str, prepared: &[u8; 32], source: &[u8; 32]) -> Option<Found> {
        self.claim_unless(key, prepared, source, |_| false)
    }

    /// [`DestIndex::claim`], passing over the hrefs `taken` says another key holds.
    pub fn claim_unless(
        &self,
        key: &str,
        prepared: &[u8; 32],
        source: &[u8; 32],
        taken: impl Fn(&str) -> bool,
    ) -> Option<Found> {
        let mut claimed = self.claimed.lock().unwrap_or_else(|e| e.into_inner());
        let duplicate = key.contains("#sha256:");
        let free = |f: &&Found| !claimed.contains(&f.href) && !taken(&f.href);
        let same = |f: &&Found| f.hash == *prepared || f.hash == *source;
        let candidates = self.by_identity.get(base_of(key));
        let pick = candidates
            .and_then(|c| c.iter().filter(free).find(same))
            .or_else(|| {
                if duplicate {
                    None
                } else {
                    candidates.and_then(|c| c.iter().find(free))
                }
            })
            .or_else(|| {
                [prepared, source]
                    .into_iter()
                    .filter_map(|h| self.by_hash.get(h))
                    .flatten()
                    .filter_map(|href| self.all.get(href))
                    .find(free)
            })
            .cloned();
        if let Some(f) = &pick {
            claimed.insert(f.href.clone());
        }
        pick
    }

    /// Objects nobody claimed, by href.
    pub fn unclaimed(&self) -> Vec<&Found> {
        let claimed = self.claimed.lock().unwrap_or_else(|e| e.into_inner());
        self.all
            .values()
            .filter(|f| !claimed.contains(&f.href))
            .collect()
    }

    /// Every object, by href.
    pub fn all(&self) -> impl Iterator<Item = &Found> {
        self.all.values()
    }
}

/// Whether `found` (fetched from the destination) is the object keyed `key` about to be written
/// with content hash `prepared` (as `dest` keeps it): the same identity, or the same content.
pub(crate) fn is_same_object<D: Store>(
    dest: &D,
    data: &[u8],
    key: &str,
    prepared: &[u8; 32],
) -> bool {
    found_hash(dest, data) == *prepared
        || object::parse(data).is_ok_and(|i: Item| object::identity(&i) == base_of(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_href_keeps_the_uid() {
        let mut keys = Keys::new([("uid:a", "/c/2.ics")]);
        let h = [7u8; 32];
        assert!(keys.key("uid:a", "/c/1.ics", &h).1);
        assert_eq!(
            keys.key("uid:a", "/c/2.ics", &h),
            ("uid:a".to_string(), false)
        );
        let (k, dup) = keys.key("uid:b", "/c/3.ics", &h);
        assert!(!dup);
        assert_eq!(k, "uid:b");
        let (k, dup) = keys.key("uid:b", "/c/4.ics", &h);
        assert!(dup);
        assert_eq!(base_of(&k), "uid:b");
    }
}
