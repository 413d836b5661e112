//! `mailshift rollback` for contacts, calendars and tasks: removes from a destination exactly
//! the objects (cards, events with their overridden instances, tasks) that a run of sync point
//! N or later *created* there, and forgets them so that a later `apply` writes them again.
//!
//! What counts as ours: an object record's `created_sync_point` (kept by the engine). An object
//! adopted from the destination (0) was never ours; one created before N and only updated at N
//! or later is left, and listed: deleting it would not bring back its earlier version, it would
//! lose it. A record from before creations were kept (`None`) is unknown: left, and listed.
//!
//! Per destination collection: [`survey`] reads the candidates (a multiget, read-only) and keeps
//! for deletion those whose ETag is still the one recorded after mailshift's write; [`execute`]
//! records them as a pending rollback in the state, sends `DELETE` with `If-Match: <that ETag>`
//! for each (a 412 means the user changed it since: left alone and listed; a 404 means it is
//! gone already: its record is dropped), then drops the records, lowers the collection's count
//! and voids its sync token in one transaction. Killed in between, the pending record remains:
//! `apply` refuses the resource, and the next rollback finishes it whatever its `--since` (a
//! `DELETE` sent again answers 404 for what the first one removed). A collection mailshift
//! created (MKCOL / MKCALENDAR) that ends up empty is left in place: it may hold what the user
//! put there since, and an empty collection costs nothing.
//!
//! A `files` destination (`.vcf`/`.ics` files) goes through the same steps: its objects have
//! ETags of their own (a fingerprint of each entry), the entries are removed from their file and
//! the file is rewritten once per collection.

use std::collections::BTreeMap;

use mailshift_dav::store::{Collection, Component, Store};

use crate::error::StepError;
use crate::state::{
    DavCollectionRecord, DavObjectRecord, PendingDavObject, PendingDavRollback, StateError,
    StateStore,
};

/// What one object of a contacts/calendars/tasks kind is called, in counts.
pub fn noun(kind: crate::model::ResourceKind) -> &'static str {
    match kind {
        crate::model::ResourceKind::Contacts => "contact",
        crate::model::ResourceKind::Tasks => "task",
        _ => "event",
    }
}

/// Per sync point, what a resource's records say its runs did: (created, bytes created,
/// updated) — what `rollback --since N` would consider; and how many records do not say which
/// run created them (kept by an older mailshift: never rolled back).
pub fn by_sync_point(
    records: &[(String, String, DavObjectRecord)],
) -> (BTreeMap<u64, (u64, u64, u64)>, u64) {
    let mut out: BTreeMap<u64, (u64, u64, u64)> = BTreeMap::new();
    let mut unknown = 0;
    for (_, _, r) in records {
        match r.created_sync_point {
            None if r.sync_point > 0 => unknown += 1,
            Some(c) if c > 0 => {
                let e = out.entry(c).or_default();
                e.0 += 1;
                e.1 += r.size;
            }
            _ => {}
        }
        if r.sync_point > 0
            && r.created_sync_point
                .is_some_and(|c| c > 0 && c != r.sync_point)
        {
            out.entry(r.sync_point).or_default().2 += 1;
        }
    }
    (out, unknown)
}

/// Objects fetched per multiget while checking them.
const FETCH_CHUNK: usize = 100;

/// One object a rollback deletes, or names.
#[derive(Debug, Clone, Default)]
pub struct Object {
    /// Its identity (the record's key: `uid:...` or `sha256:...`).
    pub key: String,
    pub href: String,
    /// The ETag its deletion is conditional on.
    pub etag: String,
    /// Its UID and its FN or SUMMARY, as read on the destination.
    pub uid: Option<String>,
    pub summary: Option<String>,
    pub size: u64,
}

/// An object left alone, and why.
#[derive(Debug, Clone)]
pub struct Kept {
    pub key: String,
    pub summary: Option<String>,
    pub why: String,
}

/// One collection's candidates, from the state alone.
#[derive(Debug, Clone)]
pub struct CollectionCandidates {
    /// The source collection's name (the state's key).
    pub collection: String,
    pub record: DavCollectionRecord,
    /// Records created at `--since` or later, by key.
    pub mine: Vec<(String, DavObjectRecord)>,
    /// Records written at `--since` or later but not created then (or not known to be).
    pub kept: Vec<Kept>,
    pub pending: Option<PendingDavRollback>,
}

/// The records of `resource_id` a rollback `since` concerns, per collection: those to check on
/// the destination, those left alone by their records, and an interrupted rollback to finish.
pub fn candidates(
    store: &StateStore,
    resource_id: &str,
    since: u64,
) -> Result<Vec<CollectionCandidates>, StateError> {
    let since = since.max(1);
    let mut pending = store.pending_dav_rollbacks(resource_id)?;
    let mut out = Vec::new();
    for (collection, record) in store.dav_collections(resource_id)? {
        let p = pending.remove(&collection);
        // An interrupted rollback's objects are finished whatever this one's `--since`.
        let interrupted: std::collections::BTreeSet<&str> = p
            .iter()
            .flat_map(|p| p.objects.iter().map(|o| o.key.as_str()))
            .collect();
        let mut mine = Vec::new();
        let mut kept = Vec::new();
        for (key, r) in store.dav_objects(resource_id, &collection)? {
            if interrupted.contains(key.as_str()) {
                mine.push((key, r));
                continue;
            }
            // Not written at `since` or later (0: adopted, never written by a run of ours).
            if r.sync_point < since {
                continue;
            }
            match r.created_sync_point {
                Some(c) if c >= since => mine.push((key, r)),
                // Adopted from the destination, then updated: never ours.
                Some(0) => {}
                Some(c) => kept.push(Kept {
                    key,
                    summary: None,
                    why: format!(
                        "created in sync point {c} and updated in sync point {}: deleting it would lose it, not restore its earlier version",
                        r.sync_point
                    ),
                }),
                None => kept.push(Kept {
                    key,
                    summary: None,
                    why: "copied before mailshift recorded which run created each object, so it cannot tell it from one the destination already had".into(),
                }),
            }
        }
        if !mine.is_empty() || !kept.is_empty() || p.is_some() {
            out.push(CollectionCandidates {
                collection,
                record,
                mine,
                kept,
                pending: p,
            });
        }
    }
    // A pending rollback of a collection whose record is gone: nothing left to finish but
    // the record itself.
    for (collection, p) in pending {
        out.push(CollectionCandidates {
            collection,
            record: DavCollectionRecord::default(),
            mine: Vec::new(),
            kept: Vec::new(),
            pending: Some(p),
        });
    }
    Ok(out)
}

/// What a rollback found in one destination collection.
#[derive(Debug, Default)]
pub struct CollectionSurvey {
    /// The source collection's name (the state's key).
    pub collection: String,
    /// The destination collection's display name, else its name.
    pub name: String,
    pub dest_href: String,
    /// Set when the collection is refused as a whole (it is no longer on the destination).
    pub refused: Option<String>,
    pub delete: Vec<Object>,
    /// Keys of objects no longer on the destination (404): their records are dropped.
    pub gone: Vec<String>,
    pub kept: Vec<Kept>,
    /// An interrupted rollback of this collection is to be finished (its record cleared).
    pub had_pending: bool,
    /// The destination collection, as listed.
    collection_listed: Option<Collection>,
}

impl CollectionSurvey {
    pub fn has_work(&self) -> bool {
        self.refused.is_none()
            && (!self.delete.is_empty() || !self.gone.is_empty() || self.had_pending)
    }
}

/// The destination's collections that may hold what a kind of content copies.
pub async fn dest_collections<S: Store>(
    dest: &S,
    components: &[Component],
) -> Result<Vec<Collection>, String> {
    let mut out: Vec<Collection> = Vec::new();
    for c in components {
        for col in dest.collections(*c).await.map_err(|e| e.message)? {
            if !out.iter().any(|o| o.href == col.href) {
                out.push(col);
            }
        }
    }
    Ok(out)
}

/// An ETag as compared: servers quote them, some callers do not.
fn bare(etag: &str) -> &str {
    etag.trim().trim_start_matches("W/").trim_matches('"')
}

/// Checks one collection's candidates on the destination (read-only: a multiget).
pub async fn survey<S: Store>(
    dest: &S,
    listed: &[Collection],
    c: &CollectionCandidates,
) -> Result<CollectionSurvey, String> {
    let mut s = CollectionSurvey {
        collection: c.collection.clone(),
        name: c.collection.clone(),
        dest_href: c.record.dest_href.clone(),
        kept: c.kept.clone(),
        had_pending: c.pending.is_some(),
        ..CollectionSurvey::default()
    };
    let trimmed = |h: &str| h.trim_end_matches('/').to_string();
    let Some(col) = listed
        .iter()
        .find(|l| trimmed(&l.href) == trimmed(&c.record.dest_href))
    else {
        if c.mine.is_empty() && c.record.dest_href.is_empty() {
            // Only a pending record whose collection record is gone: clear it.
            return Ok(s);
        }
        s.refused = Some(format!(
            "the destination collection {} is no longer there (deleted or renamed by someone else): nothing is deleted there and its records are kept",
            c.record.dest_href
        ));
        return Ok(s);
    };
    s.name = col.display_name.clone().unwrap_or_else(|| col.name.clone());
    s.collection_listed = Some(col.clone());
    // href → (key, recorded ETag, size)
    let mut want: BTreeMap<String, (String, Option<String>, u64)> = BTreeMap::new();
    for (key, r) in &c.mine {
        want.insert(
            r.dest_href.clone(),
            (key.clone(), r.dest_etag.clone(), r.size),
        );
    }
    for o in c.pending.iter().flat_map(|p| &p.objects) {
        want.entry(o.dest_href.clone())
            .or_insert((o.key.clone(), Some(o.etag.clone()), 0));
    }
    let mut to_fetch: Vec<String> = Vec::new();
    for (href, (key, etag, _)) in &want {
        if etag.is_none() {
            s.kept.push(Kept {
                key: key.clone(),
                summary: None,
                why: "the destination gave no ETag when mailshift wrote it, so it cannot be deleted only if unchanged".into(),
            });
        } else {
            to_fetch.push(href.clone());
        }
    }
    let mut found: BTreeMap<String, mailshift_dav::store::Fetched> = BTreeMap::new();
    for chunk in to_fetch.chunks(FETCH_CHUNK) {
        for f in dest
            .fetch(col, chunk)
            .await
            .map_err(|e| format!("collection {}: {}", col.href, e.message))?
        {
            found.insert(f.href.clone(), f);
        }
    }
    for href in &to_fetch {
        let (key, etag, size) = &want[href];
        let recorded = etag.as_deref().unwrap_or_default();
        let mut there = found.get(href).cloned();
        if there.is_none() {
            // Not in the multiget's answer under this href: asked alone, whatever href the
            // server answers with is this one (a spelling of the href the server prefers would
            // otherwise read as gone, and the next apply would write a second copy).
            there = dest
                .fetch(col, std::slice::from_ref(href))
                .await
                .map_err(|e| format!("collection {}: {}", col.href, e.message))?
                .into_iter()
                .next();
        }
        match there {
            None => s.gone.push(key.clone()),
            Some(f) => {
                let item = mailshift_dav::object::parse(&f.data).ok();
                let summary = item.as_ref().and_then(|i| i.summary.clone());
                if f.etag.as_deref().map(bare) == Some(bare(recorded)) {
                    s.delete.push(Object {
                        key: key.clone(),
                        href: href.clone(),
                        etag: recorded.to_string(),
                        uid: item.and_then(|i| i.uid),
                        summary,
                        size: if *size > 0 {
                            *size
                        } else {
                            f.data.len() as u64
                        },
                    });
                } else {
                    s.kept.push(Kept {
                        key: key.clone(),
                        summary,
                        why: "changed on the destination since mailshift wrote it (its ETag is not the one recorded)".into(),
                    });
                }
            }
        }
    }
    Ok(s)
}

/// What [`execute`] did in one collection.
#[derive(Debug, Default)]
pub struct Executed {
    pub deleted: usize,
    /// Changed between the survey and the delete (412): left alone.
    pub changed: Vec<Kept>,
    /// The collection holds nothing any more: it is left in place, and the report says so.
    pub now_empty: bool,
}

/// Deletes what [`survey`] kept for deletion and forgets it in the state (see the module doc
/// for the order).
pub async fn execute<S: Store>(
    dest: &S,
    store: &StateStore,
    resource_id: &str,
    since: u64,
    s: &CollectionSurvey,
) -> Result<Executed, String> {
    let mut done = Executed::default();
    if !s.has_work() {
        return Ok(done);
    }
    let at = format!("destination collection {}", s.dest_href);
    let mut removed: Vec<String> = s.gone.clone();
    if !s.delete.is_empty() {
        let col = s
            .collection_listed
            .as_ref()
            .ok_or_else(|| format!("{at}: not listed (a bug: objects to delete without it)"))?;
        let pending = PendingDavRollback {
            since,
            objects: s
                .delete
                .iter()
                .map(|o| PendingDavObject {
                    key: o.key.clone(),
                    dest_href: o.href.clone(),
                    etag: o.etag.clone(),
                })
                .collect(),
        };
        store
            .begin_dav_rollback(resource_id, &s.collection, &pending)
            .map_err(|e| e.to_string())?;
        super::crash_point("dav-rollback-before-delete");
        for (i, o) in s.delete.iter().enumerate() {
            let deleted = dest
                .delete(&o.href, Some(&o.etag))
                .await
                .map_err(|e| format!("{at}: {}", e.message))?;
            if deleted {
                done.deleted += 1;
                removed.push(o.key.clone());
            } else {
                // 404 and 412 both say "not deleted": which one is read back.
                let there = dest
                    .fetch(col, std::slice::from_ref(&o.href))
                    .await
                    .map_err(|e| format!("{at}: {}", e.message))?;
                if there.is_empty() {
                    removed.push(o.key.clone());
                } else {
                    done.changed.push(Kept {
                        key: o.key.clone(),
                        summary: o.summary.clone(),
                        why: "changed on the destination while the rollback ran (412): left alone"
                            .into(),
                    });
                }
            }
            if i == 0 {
                super::crash_point("dav-rollback-after-first-delete");
            }
        }
        dest.flush()
            .await
            .map_err(|e| format!("{at}: {}", e.message))?;
        // Only to say so: a collection is never deleted (see the module doc).
        done.now_empty = done.deleted > 0
            && dest
                .list(col)
                .await
                .map_err(|e| format!("{at}: {}", e.message))?
                .is_empty();
    }
    store
        .finish_dav_rollback(resource_id, &s.collection, &removed)
        .map_err(|e| e.to_string())?;
    Ok(done)
}

/// For `apply`: a rollback killed between its deletes and its state update leaves records of
/// objects that may be gone; the resource waits until the rollback is run again.
pub fn refuse_if_interrupted(
    store: &StateStore,
    resource_id: &str,
    address: &str,
) -> Result<(), StepError> {
    match store.pending_dav_rollbacks(resource_id)?.into_iter().next() {
        Some((collection, p)) => Err(StepError::state(format!(
            "a rollback of collection {collection:?} was interrupted: run `mailshift rollback PLAN --account {address} --since {}` again to finish it, then apply",
            p.since
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u64, sync_point: u64, created: Option<u64>) -> DavObjectRecord {
        DavObjectRecord {
            source_href: format!("/a/{n}.vcf"),
            source_etag: None,
            source_hash: "00".repeat(32),
            dest_href: format!("/b/{n}.vcf"),
            dest_etag: Some(format!("\"{n}\"")),
            size: 10,
            sync_point,
            created_sync_point: created,
        }
    }

    /// Which records a rollback checks on the destination, which it names and leaves, which it
    /// does not mention.
    #[test]
    fn candidates_are_what_runs_at_since_or_later_created() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("s.redb")).unwrap();
        let id = "account/a@example.com/contacts";
        let objects = vec![
            ("uid:created-1".to_string(), record(1, 1, Some(1))),
            ("uid:created-2".to_string(), record(2, 2, Some(2))),
            ("uid:created-3".to_string(), record(3, 3, Some(3))),
            ("uid:updated-later".to_string(), record(4, 3, Some(1))),
            ("uid:adopted".to_string(), record(5, 0, Some(0))),
            ("uid:old-state".to_string(), record(6, 2, None)),
            ("uid:old-state-early".to_string(), record(7, 1, None)),
        ];
        let coll = DavCollectionRecord {
            dest_href: "/b/".into(),
            ..Default::default()
        };
        store.record_dav(id, "work", &objects, Some(&coll)).unwrap();
        let got = candidates(&store, id, 2).unwrap();
        assert_eq!(got.len(), 1);
        let mine: Vec<&str> = got[0].mine.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(mine, ["uid:created-2", "uid:created-3"]);
        let kept: Vec<&str> = got[0].kept.iter().map(|k| k.key.as_str()).collect();
        assert_eq!(kept, ["uid:old-state", "uid:updated-later"]);
        assert!(
            got[0].kept[1]
                .why
                .contains("created in sync point 1 and updated in sync point 3")
        );

        // An interrupted rollback's objects are finished whatever the new `--since`.
        store
            .begin_dav_rollback(
                id,
                "work",
                &PendingDavRollback {
                    since: 1,
                    objects: vec![PendingDavObject {
                        key: "uid:created-1".into(),
                        dest_href: "/b/1.vcf".into(),
                        etag: "\"1\"".into(),
                    }],
                },
            )
            .unwrap();
        let got = candidates(&store, id, 3).unwrap();
        let mine: Vec<&str> = got[0].mine.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(mine, ["uid:created-1", "uid:created-3"]);
        assert!(got[0].pending.is_some());
        // Nothing at or after 4.
        store.finish_dav_rollback(id, "work", &[]).unwrap();
        assert!(candidates(&store, id, 4).unwrap().is_empty());
    }

    #[test]
    fn status_counts_creations_and_updates_per_sync_point() {
        let records: Vec<(String, String, DavObjectRecord)> = [
            record(1, 1, Some(1)),
            record(2, 3, Some(1)),
            record(3, 3, Some(3)),
            record(4, 0, Some(0)),
            record(5, 2, None),
        ]
        .into_iter()
        .map(|r| ("work".to_string(), r.source_href.clone(), r))
        .collect();
        let (points, unknown) = by_sync_point(&records);
        assert_eq!(points, BTreeMap::from([(1, (2, 20, 0)), (3, (1, 10, 1))]));
        assert_eq!(unknown, 1);
    }
}
