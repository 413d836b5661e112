//! Both sides of a contacts/calendars copy compared, collection by collection: counts, objects
//! missing on the destination, extra there, and changed (the destination's content is not what
//! the source's becomes once prepared for it). Reads only.
//!
//! Both sides are read in full and matched by identity, the way the copy adopts (so an object
//! another tool put at its own href counts as present); the destination collection is found as
//! the copy finds it ([`crate::sync`]).

use std::collections::BTreeMap;

use crate::journal::CollectionRecord;
use crate::object::{self, Profile};
use crate::store::{Collection, Component, Store, StoreResult};
use crate::sync::index::{DestIndex, FETCH_CHUNK, Keys, kept_hash};
use crate::sync::{CollectionRules, Destinations, list_collections, sources};

/// One collection compared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectionCheck {
    /// The source collection's name.
    pub name: String,
    /// The destination collection, when there is one.
    pub dest_href: Option<String>,
    /// Objects of the compared components on each side.
    pub source_count: u64,
    pub dest_count: u64,
    /// Source objects not on the destination (`identity (summary)`), at most `list_limit`.
    pub missing: Vec<String>,
    pub missing_count: u64,
    /// Missing because the destination refused them (`identity: reason`), at most `list_limit`:
    /// not counted in `missing_count`.
    pub skipped: Vec<String>,
    pub skipped_count: u64,
    /// Destination objects no source object matches (href and summary), at most `list_limit`.
    pub extra: Vec<String>,
    pub extra_count: u64,
    /// Objects on both sides whose contents differ, at most `list_limit`.
    pub changed: Vec<String>,
    pub changed_count: u64,
    /// Source objects that cannot be read (not compared).
    pub unreadable: u64,
    /// A side could not be read: nothing else here is meaningful.
    pub error: Option<String>,
}

impl CollectionCheck {
    /// Nothing missing (but refusals), extra or changed, and both sides read.
    pub fn equal(&self) -> bool {
        self.error.is_none()
            && self.missing_count == 0
            && self.extra_count == 0
            && self.changed_count == 0
    }
}

/// The whole comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Check {
    pub collections: Vec<CollectionCheck>,
    /// The collections of a side could not be listed.
    pub error: Option<String>,
}

impl Check {
    pub fn equal(&self) -> bool {
        self.error.is_none() && self.collections.iter().all(CollectionCheck::equal)
    }
}

/// Compares the collections of `components` the rules take.
///
/// `records`: the journal's collection records (by source name), so a destination created under
/// another name is found; `refused`: (collection, identity) → reason of the objects the
/// destination refused, listed as skipped rather than missing.
pub async fn verify<S: Store, D: Store>(
    components: &[Component],
    rules: &CollectionRules,
    source: &S,
    dest: &D,
    records: Option<&BTreeMap<String, CollectionRecord>>,
    refused: &BTreeMap<(String, String), String>,
    list_limit: usize,
) -> Check {
    let srcs = match sources(source, components, rules).await {
        Ok(s) => s,
        Err(e) => {
            return Check {
                collections: Vec::new(),
                error: Some(format!("source: {}", e.message)),
            };
        }
    };
    let dests = match list_collections(dest, components).await {
        Ok(d) => d,
        Err(e) => {
            return Check {
                collections: Vec::new(),
                error: Some(format!("destination: {}", e.message)),
            };
        }
    };
    let recorded = |name: &str| {
        records
            .and_then(|r| r.get(name))
            .map(|r| r.dest_href.clone())
    };
    let mut dests = Destinations::new(dests, srcs.iter().filter_map(|s| recorded(&s.name)));
    let mut out = Vec::new();
    for src in &srcs {
        let rec = recorded(&src.name);
        let dcol = dests.find(src, rules, rec.as_deref()).cloned();
        if let Some(d) = &dcol {
            dests.take(d);
        }
        let mut check = CollectionCheck {
            name: src.name.clone(),
            dest_href: dcol.as_ref().map(|d| d.href.clone()),
            ..CollectionCheck::default()
        };
        if let Err(e) = compare(
            components,
            source,
            dest,
            src,
            dcol.as_ref(),
            refused,
            list_limit,
            &mut check,
        )
        .await
        {
            check.error = Some(e.message);
        }
        out.push(check);
    }
    Check {
        collections: out,
        error: None,
    }
}

/// Every object of a collection, in href order.
pub(crate) async fn read_all<S: Store>(
    store: &S,
    col: &Collection,
) -> StoreResult<Vec<crate::store::Fetched>> {
    let mut hrefs: Vec<String> = store.list(col).await?.into_iter().map(|l| l.href).collect();
    hrefs.sort();
    let mut out = Vec::new();
    for chunk in hrefs.chunks(FETCH_CHUNK) {
        out.extend(store.fetch(col, chunk).await?);
    }
    out.sort_by(|a, b| a.href.cmp(&b.href));
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
async fn compare<S: Store, D: Store>(
    components: &[Component],
    source: &S,
    dest: &D,
    src: &Collection,
    dcol: Option<&Collection>,
    refused: &BTreeMap<(String, String), String>,
    limit: usize,
    check: &mut CollectionCheck,
) -> StoreResult<()> {
    let index = match dcol {
        Some(d) => DestIndex::load(dest, d, &Default::default()).await?,
        None => DestIndex::default(),
    };
    let profile = Profile {
        vcard_versions: dcol.map(|d| d.vcard_versions.clone()).unwrap_or_default(),
        schedule_agent_client: dest.schedules(),
        require_uid: dest.requires_uid(),
    };
    let mut keys = Keys::default();
    let push = |list: &mut Vec<String>, text: String| {
        if list.len() < limit {
            list.push(text);
        }
    };
    for f in read_all(source, src).await? {
        let Ok(item) = object::parse(&f.data) else {
            check.unreadable += 1;
            continue;
        };
        if !components.contains(&item.component) {
            continue;
        }
        check.source_count += 1;
        let hash = object::content_hash(&f.data);
        let (key, _) = keys.key(&object::identity(&item), &f.href, &hash);
        let (bytes, _) = object::prepare(&item, &profile);
        // As the destination keeps it: an Exchange end renders objects its own way.
        let prepared = kept_hash(dest, Some(item.component), &bytes);
        let label = format!(
            "{key} ({})",
            item.summary.as_deref().unwrap_or("no summary")
        );
        match index.claim(&key, &prepared, &hash) {
            Some(found) if found.hash != prepared && found.hash != hash => {
                check.changed_count += 1;
                push(&mut check.changed, format!("{label} at {}", found.href));
            }
            Some(_) => {}
            None => match refused.get(&(src.name.clone(), key.clone())) {
                Some(reason) => {
                    check.skipped_count += 1;
                    push(&mut check.skipped, format!("{label}: {reason}"));
                }
                None => {
                    check.missing_count += 1;
                    push(&mut check.missing, label);
                }
            },
        }
    }
    let ours = |f: &&crate::sync::index::Found| f.component.is_none_or(|c| components.contains(&c));
    check.dest_count = index.all().filter(ours).count() as u64;
    for f in index.unclaimed().into_iter().filter(ours) {
        check.extra_count += 1;
        push(
            &mut check.extra,
            format!(
                "{} ({})",
                f.href,
                f.summary.as_deref().unwrap_or("no summary")
            ),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::memstore::{Behaviour, MemJournal, MemStore, collection};
    use crate::sync::{Job, NoProgress, sync};

    fn card(uid: &str, name: &str) -> Vec<u8> {
        format!("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:{uid}\r\nFN:{name}\r\nEND:VCARD\r\n")
            .into_bytes()
    }

    #[tokio::test]
    async fn counts_missing_extra_changed_and_skipped() {
        let source = MemStore::new(Behaviour::default());
        source.add_collection(collection("contacts", &[Component::Card]));
        for i in 0..5 {
            source.insert(
                "/contacts/",
                &format!("/contacts/{i}.vcf"),
                &card(&format!("u{i}"), "P"),
            );
        }
        let dest = MemStore::new(Behaviour {
            reserialize: true,
            ..Behaviour::default()
        });
        let journal = MemJournal::default();
        let job = Job {
            account: "a".into(),
            components: vec![Component::Card],
            rules: CollectionRules::default(),
            sync_point: 1,
            full_scan: false,
        };
        sync(
            &job,
            &source,
            &dest,
            &journal,
            &NoProgress,
            &AtomicBool::new(false),
        )
        .await
        .unwrap();
        let comps = [Component::Card];
        let rules = CollectionRules::default();
        let none = BTreeMap::new();
        let check = verify(&comps, &rules, &source, &dest, None, &none, 10).await;
        assert!(check.equal(), "{check:?}");
        assert_eq!(check.collections[0].source_count, 5);
        assert_eq!(check.collections[0].dest_count, 5);

        source.insert("/contacts/", "/contacts/9.vcf", &card("u9", "New"));
        source.insert("/contacts/", "/contacts/8.vcf", &card("u8", "Refused"));
        source.insert("/contacts/", "/contacts/1.vcf", &card("u1", "Edited"));
        dest.insert("/contacts/", "/contacts/stray.vcf", &card("zz", "Stray"));
        let refused = BTreeMap::from([(
            ("contacts".to_string(), "uid:u8".to_string()),
            "413: too large".to_string(),
        )]);
        let check = verify(&comps, &rules, &source, &dest, None, &refused, 10).await;
        let c = &check.collections[0];
        assert!(!check.equal());
        assert_eq!(
            (
                c.missing_count,
                c.skipped_count,
                c.extra_count,
                c.changed_count
            ),
            (1, 1, 1, 1),
            "{c:?}"
        );
        assert!(c.missing[0].starts_with("uid:u9"));
        assert!(c.extra[0].starts_with("/contacts/stray.vcf"));

        // A destination that is not there: everything missing, no error.
        let empty = MemStore::new(Behaviour::default());
        let check = verify(&comps, &rules, &source, &empty, None, &none, 2).await;
        let c = &check.collections[0];
        assert_eq!(
            (c.dest_href.as_deref(), c.missing_count, c.missing.len()),
            (None, 7, 2)
        );
    }
}
