//! The exactly-once protocol against in-memory stores: cuts after any write, duplicate UIDs,
//! re-serializing servers, pre-filled destinations, refusals, incremental runs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicBool;

use proptest::prelude::*;

use super::*;
use crate::journal::Journal;
use crate::memstore::{Behaviour, MemJournal, MemStore, collection};
use crate::object;
use crate::store::Component;

fn card(uid: Option<&str>, name: &str) -> Vec<u8> {
    let uid = uid.map(|u| format!("UID:{u}\r\n")).unwrap_or_default();
    format!("BEGIN:VCARD\r\nVERSION:4.0\r\n{uid}FN:{name}\r\nN:{name};;;;\r\nEND:VCARD\r\n")
        .into_bytes()
}

fn event(uid: &str, summary: &str) -> Vec<u8> {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n\
         DTSTAMP:20260101T000000Z\r\nDTSTART:20260102T100000Z\r\nSUMMARY:{summary}\r\n\
         END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    .into_bytes()
}

fn task(uid: &str, summary: &str) -> Vec<u8> {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VTODO\r\nUID:{uid}\r\n\
         DTSTAMP:20260101T000000Z\r\nSUMMARY:{summary}\r\nSTATUS:NEEDS-ACTION\r\n\
         END:VTODO\r\nEND:VCALENDAR\r\n"
    )
    .into_bytes()
}

fn contacts_job() -> Job {
    Job {
        account: "alice@example.com".into(),
        components: vec![Component::Card],
        rules: CollectionRules::default(),
        sync_point: 1,
        full_scan: false,
    }
}

fn source_with(cards: &[(&str, Vec<u8>)]) -> MemStore {
    let s = MemStore::new(Behaviour::default());
    s.add_collection(collection("contacts", &[Component::Card]));
    for (href, data) in cards {
        s.insert("/contacts/", &format!("/contacts/{href}"), data);
    }
    s
}

fn dest(behaviour: Behaviour) -> MemStore {
    MemStore::new(behaviour)
}

async fn run<S: Store, D: Store>(
    job: &Job,
    source: &S,
    dest: &D,
    journal: &dyn Journal,
) -> Result<SyncReport, SyncError> {
    sync(
        job,
        source,
        dest,
        journal,
        &NoProgress,
        &AtomicBool::new(false),
    )
    .await
}

/// Every source object is on the destination exactly once, with equal content.
fn assert_converged(source: &MemStore, dest: &MemStore, col: &str, dcol: &str) {
    let want: Vec<[u8; 32]> = {
        let mut v: Vec<_> = source
            .objects(col)
            .values()
            .map(|d| object::content_hash(d))
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let mut have: Vec<[u8; 32]> = dest
        .objects(dcol)
        .values()
        .map(|d| object::content_hash(d))
        .collect();
    have.sort();
    assert_eq!(
        have, want,
        "destination holds each source object exactly once"
    );
}

#[tokio::test]
async fn copies_then_a_second_run_writes_nothing() {
    let source = source_with(&[
        ("a.vcf", card(Some("a"), "Ann")),
        ("b.vcf", card(Some("b"), "Bob")),
        ("c.vcf", card(None, "No Uid")),
    ]);
    let dest = dest(Behaviour::default());
    let journal = MemJournal::default();
    let job = contacts_job();
    let r = run(&job, &source, &dest, &journal).await.unwrap();
    assert!(r.failed.is_empty(), "{r:?}");
    let c = &r.collections[0];
    assert!(c.created);
    assert_eq!((c.copied, c.adopted, c.unchanged), (3, 0, 0));
    assert!(c.complete);
    assert_converged(&source, &dest, "/contacts/", "/contacts/");
    let puts = dest.puts();
    let fetches = source.fetches();

    let r = run(&job, &source, &dest, &journal).await.unwrap();
    assert_eq!(dest.puts(), puts, "no write at all");
    assert_eq!(source.fetches(), fetches, "an unchanged CTag reads nothing");
    assert!(r.collections[0].skipped_unchanged);
    assert_eq!(journal.collections().unwrap()["contacts"].objects, 3);
}
