//! What the next copy would do, read without writing (for `plan --refresh`), and how many bytes
//! it would read (for sizing a plan). Decisions are the copy's own ([`crate::sync`]): the same
//! pairing of collections, the same choice of what to read, the same matching by identity.

use std::collections::BTreeSet;

use crate::journal::Journal;
use crate::object::{self, Profile};
use crate::store::{Collection, Component, Store};
use crate::sync::index::{DestIndex, FETCH_CHUNK, Keys};
use crate::sync::pass::reading;
use crate::sync::{
    CollectionRules, Destinations, Job, SyncError, journal_call, list_collections, sources,
};
use crate::verify::read_all;

/// What the next copy of one collection would do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Counts {
    copy: u64,
    adopt: u64,
    changed: u64,
    unchanged: u64,
    unreadable: u64,
}

/// One line per collection: what the next [`crate::sync::sync`] of `job` would do (create the
/// destination collection, objects to copy, already on the destination and adopted, changed,
/// unchanged). Reads both sides and the journal, writes nothing.
pub async fn preview<S: Store, D: Store>(
    job: &Job,
    source: &S,
    dest: &D,
    journal: &dyn Journal,
) -> Result<Vec<String>, SyncError> {
    let records = journal_call(|| journal.collections())?;
    let srcs = sources(source, &job.components, &job.rules).await?;
    let dests = list_collections(dest, &job.components).await?;
    let mut dests = Destinations::new(dests, records.values().map(|r| r.dest_href.clone()));
    let mut lines = Vec::new();
    for src in &srcs {
        let crec = records.get(&src.name);
        let dcol = dests
            .find(src, &job.rules, crec.map(|c| c.dest_href.as_str()))
            .cloned();
        if let Some(d) = &dcol {
            dests.take(d);
        }
        let target = dcol.as_ref().map_or_else(
            || format!("{} (to create)", job.rules.target_name(src)),
            |d| d.name.clone(),
        );
        let head = format!("{} → {target}", src.name);
        let line = match collection(job, source, dest, journal, src, dcol.as_ref(), crec).await {
            Ok(None) => format!("{head}: unchanged since the last copy"),
            Ok(Some(c)) => {
                let mut parts = vec![format!("{} to copy", c.copy)];
                if c.adopt > 0 {
                    parts.push(format!("{} already on the destination (adopted)", c.adopt));
                }
                parts.push(format!("{} changed", c.changed));
                parts.push(format!("{} unchanged", c.unchanged));
                if c.unreadable > 0 {
                    parts.push(format!("{} unreadable", c.unreadable));
                }
                format!("{head}: {}", parts.join(", "))
            }
            Err(e) if crate::sync::stops_account(e.kind) => return Err(e),
            Err(e) => format!("{head}: cannot be read ({})", e.message),
        };
        lines.push(line);
    }
    Ok(lines)
}

/// `None`: nothing changed since the last complete pass.
async fn collection<S: Store, D: Store>(
    job: &Job,
    source: &S,
    dest: &D,
    journal: &dyn Journal,
    src: &Collection,
    dcol: Option<&Collection>,
    crec: Option<&crate::journal::CollectionRecord>,
) -> Result<Option<Counts>, SyncError> {
    let name = src.name.as_str();
    // A destination other than the recorded one (gone, or never recorded) starts afresh.
    let same_dest = match (crec, dcol) {
        (Some(c), Some(d)) => c.dest_href == d.href,
        _ => false,
    };
    let crec = crec.filter(|_| same_dest);
    let records = if same_dest {
        journal_call(|| journal.objects(name))?
    } else {
        Default::default()
    };
    let refused = journal_call(|| journal.refused(name))?;
    let rd = reading(
        source,
        src,
        crec,
        &records,
        !refused.is_empty(),
        job.full_scan,
    )
    .await?;
    if rd.skip {
        return Ok(None);
    }
    let adopt = job.full_scan || crec.is_none_or(|c| c.updated_at == 0);
    let index = match dcol {
        Some(d) if adopt => {
            let recorded = records.values().map(|r| r.dest_href.clone()).collect();
            DestIndex::load(dest, d, &recorded).await?
        }
        _ => DestIndex::default(),
    };
    let profile = Profile {
        vcard_versions: dcol.map(|d| d.vcard_versions.clone()).unwrap_or_default(),
        schedule_agent_client: dest.schedules(),
        require_uid: dest.requires_uid(),
    };
    let mut keys = Keys::new(
        records
            .iter()
            .filter(|(_, r)| rd.present(&r.source_href))
            .map(|(k, r)| (k.as_str(), r.source_href.as_str())),
    );
    let mut counts = Counts::default();
    let mut seen = BTreeSet::new();
    for chunk in rd.to_read.chunks(FETCH_CHUNK) {
        let mut fetched = source.fetch(src, chunk).await?;
        fetched.sort_by(|a, b| a.href.cmp(&b.href));
        for f in fetched {
            let Ok(item) = object::parse(&f.data) else {
                counts.unreadable += 1;
                continue;
            };
            if !job.components.contains(&item.component) {
                continue;
            }
            let hash = object::content_hash(&f.data);
            let (key, _) = keys.key(&object::identity(&item), &f.href, &hash);
            if !seen.insert(key.clone()) {
                continue;
            }
            match records.get(&key) {
                Some(r) if r.source_hash == hash => counts.unchanged += 1,
                Some(_) => counts.changed += 1,
                None => {
                    let prepared = object::content_hash(&object::prepare(&item, &profile).0);
                    match index.claim(&key, &prepared, &hash) {
                        Some(found) => {
                            counts.adopt += 1;
                            if found.hash != prepared {
                                counts.changed += 1;
                            }
                        }
                        None => counts.copy += 1,
                    }
                }
            }
        }
    }
    counts.unchanged += records
        .iter()
        .filter(|(k, r)| !seen.contains(*k) && rd.present(&r.source_href))
        .count() as u64;
    Ok(Some(counts))
}

/// Bytes of the objects of `components` a copy of the collections the rules take would read.
pub async fn source_size<S: Store>(
    source: &S,
    components: &[Component],
    rules: &CollectionRules,
) -> Result<u64, SyncError> {
    let mut total = 0;
    for src in sources(source, components, rules).await? {
        // A collection that can hold only what is asked needs no parsing to be counted.
        let all_ours = src.components.iter().all(|c| components.contains(c));
        for f in read_all(source, &src).await? {
            if all_ours || object::parse(&f.data).is_ok_and(|i| components.contains(&i.component)) {
                total += f.data.len() as u64;
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::memstore::{Behaviour, MemJournal, MemStore, collection};
    use crate::sync::{NoProgress, sync};

    fn card(uid: &str, name: &str) -> Vec<u8> {
        format!("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:{uid}\r\nFN:{name}\r\nEND:VCARD\r\n")
            .into_bytes()
    }

    #[tokio::test]
    async fn says_what_the_next_copy_would_do() {
        let source = MemStore::new(Behaviour::default());
        source.add_collection(collection("contacts", &[Component::Card]));
        source.add_collection(collection("friends", &[Component::Card]));
        for i in 0..4 {
            source.insert(
                "/contacts/",
                &format!("/contacts/{i}.vcf"),
                &card(&format!("u{i}"), "P"),
            );
        }
        source.insert("/friends/", "/friends/f.vcf", &card("f", "F"));
        let dest = MemStore::new(Behaviour::default());
        dest.add_collection(collection("contacts", &[Component::Card]));
        dest.insert("/contacts/", "/contacts/x.vcf", &card("u0", "P"));
        dest.insert("/contacts/", "/contacts/y.vcf", &card("u1", "Other"));
        let job = Job {
            account: "a".into(),
            components: vec![Component::Card],
            rules: CollectionRules::default(),
            sync_point: 1,
            full_scan: false,
        };
        let journal = MemJournal::default();
        let lines = preview(&job, &source, &dest, &journal).await.unwrap();
        assert_eq!(
            lines,
            [
                "contacts → contacts: 2 to copy, 2 already on the destination (adopted), 1 changed, 0 unchanged",
                "friends → friends (to create): 1 to copy, 0 changed, 0 unchanged",
            ]
        );
        assert_eq!(dest.puts(), 0, "nothing written");
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
        source.insert("/contacts/", "/contacts/2.vcf", &card("u2", "Edited"));
        let lines = preview(&job, &source, &dest, &journal).await.unwrap();
        assert_eq!(
            lines,
            [
                "contacts → contacts: 0 to copy, 1 changed, 3 unchanged",
                "friends → friends: unchanged since the last copy",
            ]
        );
        let size = source_size(&source, &[Component::Card], &CollectionRules::default())
            .await
            .unwrap();
        assert_eq!(
            size,
            source
                .objects("/contacts/")
                .values()
                .chain(source.objects("/friends/").values())
                .map(|d| d.len() as u64)
                .sum::<u64>()
        );
    }
}
