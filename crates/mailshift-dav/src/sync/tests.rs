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

/// Every source object's identity is on the destination exactly once.
fn assert_identities_once(source: &MemStore, dest: &MemStore, col: &str, dcol: &str) {
    let ids = |m: &MemStore, c: &str| {
        let mut v: Vec<String> = m
            .objects(c)
            .values()
            .map(|d| object::identity(&object::parse(d).unwrap()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        ids(dest, dcol),
        ids(source, col),
        "each identity exactly once"
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

/// Each record says which run created its object: the run that wrote it first; an update in a
/// later run keeps that; an object adopted from the destination was created by none (0).
#[tokio::test]
async fn records_keep_the_sync_point_that_created_each_object() {
    let source = source_with(&[("a.vcf", card(Some("a"), "Ann"))]);
    let dest = dest(Behaviour::default());
    dest.add_collection(collection("contacts", &[Component::Card]));
    // Already on the destination (another tool put it there): adopted.
    dest.insert("/contacts/", "/contacts/other.vcf", &card(Some("b"), "Bob"));
    source.insert("/contacts/", "/contacts/b.vcf", &card(Some("b"), "Bob"));
    let journal = MemJournal::default();
    let mut job = contacts_job();
    run(&job, &source, &dest, &journal).await.unwrap();
    // Run 2: Ann edited, Cid new.
    source.insert("/contacts/", "/contacts/a.vcf", &card(Some("a"), "Ann B"));
    source.insert("/contacts/", "/contacts/c.vcf", &card(Some("c"), "Cid"));
    job.sync_point = 2;
    run(&job, &source, &dest, &journal).await.unwrap();
    let records = journal.objects("contacts").unwrap();
    let by_uid = |uid: &str| {
        records
            .iter()
            .find(|(k, _)| k.contains(uid))
            .map(|(_, r)| (r.sync_point, r.created_sync_point))
            .unwrap()
    };
    assert_eq!(by_uid("uid:a"), (2, Some(1)), "{records:?}");
    assert_eq!(by_uid("uid:b"), (0, Some(0)), "{records:?}");
    assert_eq!(by_uid("uid:c"), (2, Some(2)), "{records:?}");
}

/// A run cut after the k-th write, then a run to the end: for every k.
#[tokio::test]
async fn a_cut_after_any_write_converges_without_duplicates() {
    let cards: Vec<(String, Vec<u8>)> = (0..12)
        .map(|i| {
            (
                format!("{i:02}.vcf"),
                card(Some(&format!("u{i}")), &format!("P {i}")),
            )
        })
        .chain([("zz.vcf".to_string(), card(None, "Anon"))])
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = cards.iter().map(|(h, d)| (h.as_str(), d.clone())).collect();
    for (unique, requires_uid) in [(true, false), (false, false), (true, true)] {
        for k in 1..=cards.len() as u64 {
            let source = source_with(&refs);
            let dest = dest(Behaviour {
                unique_uids: unique,
                requires_uid,
                ..Behaviour::default()
            });
            let journal = MemJournal::default();
            let job = contacts_job();
            dest.crash_after(k);
            let r = run(&job, &source, &dest, &journal).await.unwrap();
            assert_eq!(r.failed.len(), 1, "the cut fails the collection");
            dest.revive();
            let r = run(&job, &source, &dest, &journal).await.unwrap();
            assert!(r.failed.is_empty(), "{r:?}");
            let c = &r.collections[0];
            assert!(
                c.adopted >= 1,
                "what the cut run wrote unrecorded is adopted: {c:?}"
            );
            if requires_uid {
                // The card without UID was given one: compare identities, which read it
                // back as the source's.
                assert_identities_once(&source, &dest, "/contacts/", "/contacts/");
            } else {
                assert_converged(&source, &dest, "/contacts/", "/contacts/");
            }
            let puts = dest.puts();
            let r = run(&job, &source, &dest, &journal).await.unwrap();
            assert_eq!(dest.puts(), puts, "k={k}: a third run writes nothing");
            assert!(r.failed.is_empty());
        }
    }
}

#[tokio::test]
async fn a_prefilled_destination_is_adopted_not_duplicated() {
    for unique in [true, false] {
        let source = source_with(&[
            ("a.vcf", card(Some("a"), "Ann")),
            ("b.vcf", card(Some("b"), "Bob")),
            ("c.vcf", card(Some("c"), "Cid")),
            ("n.vcf", card(None, "No Uid")),
        ]);
        let dest = dest(Behaviour {
            unique_uids: unique,
            reserialize: true,
            ..Behaviour::default()
        });
        dest.add_collection(collection("contacts", &[Component::Card]));
        // Another tool put two of them at its own hrefs, one of them with older content.
        dest.insert(
            "/contacts/",
            "/contacts/other-tool-1.vcf",
            &card(Some("a"), "Ann"),
        );
        dest.insert(
            "/contacts/",
            "/contacts/other-tool-2.vcf",
            &card(Some("b"), "Bob Old"),
        );
        dest.insert(
            "/contacts/",
            "/contacts/other-tool-3.vcf",
            &card(None, "No Uid"),
        );
        let journal = MemJournal::default();
        let job = contacts_job();
        let r = run(&job, &source, &dest, &journal).await.unwrap();
        let c = &r.collections[0];
        assert!(!c.created);
        assert_eq!((c.copied, c.adopted, c.updated), (1, 3, 1), "{c:?}");
        assert_converged(&source, &dest, "/contacts/", "/contacts/");
        assert_eq!(dest.objects("/contacts/").len(), 4);
        let adopted = journal.objects("contacts").unwrap();
        assert_eq!(
            adopted["uid:a"].sync_point, 0,
            "adopted: no run of ours may remove it"
        );
        assert_eq!(adopted["uid:a"].dest_href, "/contacts/other-tool-1.vcf");
        assert_eq!(adopted["uid:c"].sync_point, 1);
        let puts = dest.puts();
        run(&job, &source, &dest, &journal).await.unwrap();
        assert_eq!(dest.puts(), puts);
    }
}

#[tokio::test]
async fn a_reserializing_destination_is_not_written_again() {
    let source = source_with(&[
        ("a.vcf", card(Some("a"), "Ann")),
        ("n.vcf", card(None, "Anon")),
    ]);
    let dest = dest(Behaviour {
        reserialize: true,
        ..Behaviour::default()
    });
    let journal = MemJournal::default();
    let job = Job {
        full_scan: true,
        ..contacts_job()
    };
    run(&job, &source, &dest, &journal).await.unwrap();
    assert_ne!(
        dest.objects("/contacts/")["/contacts/a.vcf"],
        card(Some("a"), "Ann"),
        "the store did re-serialize"
    );
    let puts = dest.puts();
    // A full scan with the records lost: everything is found and matched by content.
    let fresh = MemJournal::default();
    let r = run(&job, &source, &dest, &fresh).await.unwrap();
    assert_eq!(dest.puts(), puts);
    assert_eq!(r.collections[0].adopted, 2);
}

#[tokio::test]
async fn duplicate_uids_in_one_collection() {
    let cards = [
        ("1.vcf", card(Some("dup"), "First")),
        ("2.vcf", card(Some("dup"), "Second")),
        ("3.vcf", card(Some("solo"), "Solo")),
    ];
    // Xandikos keeps both.
    let source = source_with(&cards);
    let dest_x = dest(Behaviour {
        unique_uids: false,
        ..Behaviour::default()
    });
    let journal = MemJournal::default();
    let r = run(&contacts_job(), &source, &dest_x, &journal)
        .await
        .unwrap();
    let c = &r.collections[0];
    assert_eq!(c.copied, 3);
    assert_eq!(c.duplicates.len(), 1);
    assert!(
        c.duplicates[0].contains("/contacts/2.vcf"),
        "{:?}",
        c.duplicates
    );
    assert_converged(&source, &dest_x, "/contacts/", "/contacts/");
    let keys: Vec<String> = journal.objects("contacts").unwrap().into_keys().collect();
    assert!(
        keys.iter().any(|k| k.starts_with("uid:dup#sha256:")),
        "{keys:?}"
    );

    // Radicale refuses the second: a refusal, not a failure.
    let dest_r = dest(Behaviour::default());
    let journal = MemJournal::default();
    let r = run(&contacts_job(), &source, &dest_r, &journal)
        .await
        .unwrap();
    assert!(r.failed.is_empty());
    let c = &r.collections[0];
    assert_eq!((c.copied, c.refused.len()), (2, 1), "{c:?}");
    assert!(c.refused[0].identity.starts_with("uid:dup#"));
    assert_eq!(journal.refused("contacts").unwrap().len(), 1);
    // Tried again (and refused again) on the next run; never duplicated, never failed.
    source.insert("/contacts/", "/contacts/4.vcf", &card(Some("new"), "New"));
    let r = run(&contacts_job(), &source, &dest_r, &journal)
        .await
        .unwrap();
    let c = &r.collections[0];
    assert_eq!((c.copied, c.refused.len()), (1, 1), "{c:?}");
    assert_eq!(
        journal
            .refused("contacts")
            .unwrap()
            .values()
            .next()
            .unwrap()
            .attempts,
        2
    );
    assert_eq!(dest_r.objects("/contacts/").len(), 3);
}

#[tokio::test]
async fn incremental_runs_carry_edits_and_count_removals() {
    for (sync_collection, listing_token) in [(true, false), (false, false), (true, true)] {
        let source = MemStore::new(Behaviour {
            sync_collection,
            listing_token,
            ..Behaviour::default()
        });
        source.add_collection(collection("contacts", &[Component::Card]));
        for i in 0..120 {
            source.insert(
                "/contacts/",
                &format!("/contacts/{i:03}.vcf"),
                &card(Some(&format!("u{i}")), &format!("P {i}")),
            );
        }
        let dest = dest(Behaviour::default());
        let journal = MemJournal::default();
        let job = contacts_job();
        run(&job, &source, &dest, &journal).await.unwrap();
        let puts = dest.puts();

        source.insert(
            "/contacts/",
            "/contacts/005.vcf",
            &card(Some("u5"), "P 5 edited"),
        );
        source.insert("/contacts/", "/contacts/new.vcf", &card(Some("new"), "New"));
        source.remove("/contacts/", "/contacts/007.vcf");
        let fetches = source.fetches();
        let lists = source.lists();
        let job2 = Job {
            sync_point: 2,
            ..job.clone()
        };
        let r = run(&job2, &source, &dest, &journal).await.unwrap();
        let c = &r.collections[0];
        assert_eq!(
            (c.copied, c.updated, c.removed_on_source),
            (1, 1, 1),
            "{c:?}"
        );
        assert_eq!(c.unchanged, 118);
        assert_eq!(dest.puts(), puts + 2);
        assert_eq!(
            source.fetches(),
            fetches + 1,
            "only the changed objects are read"
        );
        // A token given with the first run's listing asks for the changes: no listing.
        let listed_again = source.lists() - lists;
        assert_eq!(listed_again, u64::from(!sync_collection), "{listing_token}");
        assert!(r.notes()[0].contains("never deletes"), "{:?}", r.notes());
        // The removed object stays on the destination; the edit is there.
        assert_eq!(dest.objects("/contacts/").len(), 121);
        assert_eq!(
            dest.objects("/contacts/")["/contacts/u5.vcf"],
            card(Some("u5"), "P 5 edited")
        );
        let rec = &journal.objects("contacts").unwrap()["uid:u5"];
        assert_eq!(rec.sync_point, 2);
        let puts = dest.puts();
        run(&job2, &source, &dest, &journal).await.unwrap();
        assert_eq!(dest.puts(), puts);
    }
}

#[tokio::test]
async fn an_object_edited_on_the_destination_is_replaced_by_the_source_version() {
    let source = source_with(&[("a.vcf", card(Some("a"), "Ann"))]);
    let dest = dest(Behaviour::default());
    let journal = MemJournal::default();
    run(&contacts_job(), &source, &dest, &journal)
        .await
        .unwrap();
    dest.insert(
        "/contacts/",
        "/contacts/a.vcf",
        &card(Some("a"), "Edited there"),
    );
    source.insert("/contacts/", "/contacts/a.vcf", &card(Some("a"), "Ann 2"));
    let r = run(&contacts_job(), &source, &dest, &journal)
        .await
        .unwrap();
    let c = &r.collections[0];
    assert_eq!(c.updated, 1);
    assert!(c.notes[0].contains("changed on the destination"), "{c:?}");
    assert_eq!(
        dest.objects("/contacts/")["/contacts/a.vcf"],
        card(Some("a"), "Ann 2")
    );
}

#[tokio::test]
async fn an_href_held_by_another_object_gets_a_suffix() {
    let source = source_with(&[("a.vcf", card(Some("a"), "Ann"))]);
    let dest = dest(Behaviour::default());
    dest.add_collection(collection("contacts", &[Component::Card]));
    let journal = MemJournal::default();
    // A completed pass of nothing, so no adoption index is read before writing.
    journal
        .put_collection(
            "contacts",
            &crate::journal::CollectionRecord {
                dest_href: "/contacts/".into(),
                updated_at: 1,
                ..Default::default()
            },
        )
        .unwrap();
    dest.insert(
        "/contacts/",
        "/contacts/a.vcf",
        &card(Some("zzz"), "Someone else"),
    );
    let r = run(&contacts_job(), &source, &dest, &journal)
        .await
        .unwrap();
    assert_eq!(r.collections[0].copied, 1, "{r:?}");
    assert_eq!(
        dest.objects("/contacts/")["/contacts/a-2.vcf"],
        card(Some("a"), "Ann")
    );
}

#[tokio::test]
async fn large_objects_are_refused_and_the_rest_goes_on() {
    let big = card(Some("big"), &"x".repeat(5000));
    let source = source_with(&[
        ("a.vcf", card(Some("a"), "Ann")),
        ("big.vcf", big.clone()),
        ("bad.vcf", b"BEGIN:VCARD\r\nFN:broken\r\n".to_vec()),
    ]);
    // Said in max-resource-size: not even sent.
    let dest1 = dest(Behaviour::default());
    dest1.add_collection(collection("contacts", &[Component::Card]));
    dest1.set_max_size("/contacts/", Some(1000));
    let journal = MemJournal::default();
    let r = run(&contacts_job(), &source, &dest1, &journal)
        .await
        .unwrap();
    let c = &r.collections[0];
    assert_eq!((c.copied, c.refused.len(), c.bad.len()), (1, 1, 1), "{c:?}");
    assert_eq!(dest1.puts(), 1);
    assert_eq!(c.bad[0].location, "/contacts/bad.vcf");
    assert!(c.complete);
    // Refused by the server (413).
    let dest2 = dest(Behaviour {
        refuse_over: Some(1000),
        ..Behaviour::default()
    });
    let journal = MemJournal::default();
    let r = run(&contacts_job(), &source, &dest2, &journal)
        .await
        .unwrap();
    let c = &r.collections[0];
    assert_eq!((c.copied, c.refused.len()), (1, 1));
    assert!(c.refused[0].reason.starts_with("413"), "{c:?}");
    // The object shrinks on the source: written, and its refusal cleared.
    source.insert(
        "/contacts/",
        "/contacts/big.vcf",
        &card(Some("big"), "small now"),
    );
    let r = run(&contacts_job(), &source, &dest2, &journal)
        .await
        .unwrap();
    assert_eq!(r.collections[0].copied, 1);
    assert!(journal.refused("contacts").unwrap().is_empty());
}

#[tokio::test]
async fn transient_errors_are_tried_again() {
    let source = source_with(&[
        ("a.vcf", card(Some("a"), "Ann")),
        ("b.vcf", card(Some("b"), "B")),
    ]);
    let dest = dest(Behaviour::default());
    let journal = MemJournal::default();
    dest.flaky(2);
    let r = run(&contacts_job(), &source, &dest, &journal)
        .await
        .unwrap();
    assert!(r.failed.is_empty(), "{r:?}");
    assert_converged(&source, &dest, "/contacts/", "/contacts/");
    // Without progress, a collection is given up after STALLED_ATTEMPTS, the account goes on.
    let source = MemStore::new(Behaviour::default());
    source.add_collection(collection("a", &[Component::Card]));
    source.add_collection(collection("b", &[Component::Card]));
    source.insert("/a/", "/a/1.vcf", &card(Some("1"), "One"));
    source.insert("/b/", "/b/2.vcf", &card(Some("2"), "Two"));
    let dest = MemStore::new(Behaviour::default());
    let journal = MemJournal::default();
    dest.flaky_puts(STALLED_ATTEMPTS); // every attempt at "a"
    let r = run(&contacts_job(), &source, &dest, &journal)
        .await
        .unwrap();
    assert_eq!(r.failed.len(), 1, "{r:?}");
    assert_eq!(r.failed[0].name, "a");
    assert_eq!(r.failed[0].kind, crate::error::ErrorKind::Network);
    assert_eq!(dest.objects("/b/").len(), 1);
}

#[tokio::test]
async fn stop_ends_between_batches_with_consistent_records() {
    let cards: Vec<(String, Vec<u8>)> = (0..(BATCH * 2 + 5))
        .map(|i| (format!("{i:03}.vcf"), card(Some(&format!("u{i}")), "P")))
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = cards.iter().map(|(h, d)| (h.as_str(), d.clone())).collect();
    let source = source_with(&refs);
    let dest = dest(Behaviour::default());
    let journal = MemJournal::default();
    struct StopAfterFirst<'a>(&'a AtomicBool);
    impl Progress for StopAfterFirst<'_> {
        fn copied(&self, _: &str, _: u64, _: u64) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let stop = AtomicBool::new(false);
    let r = sync(
        &contacts_job(),
        &source,
        &dest,
        &journal,
        &StopAfterFirst(&stop),
        &stop,
    )
    .await
    .unwrap();
    assert!(r.stopped);
    assert_eq!(r.collections[0].copied, BATCH as u64);
    assert!(!r.collections[0].complete);
    assert_eq!(journal.objects("contacts").unwrap().len(), BATCH);
    assert_eq!(journal.collections().unwrap()["contacts"].updated_at, 0);
    let r = run(&contacts_job(), &source, &dest, &journal)
        .await
        .unwrap();
    assert_eq!(r.collections[0].copied, (BATCH + 5) as u64);
    assert_converged(&source, &dest, "/contacts/", "/contacts/");
}

#[tokio::test]
async fn a_calendar_of_events_and_tasks_serves_both_jobs() {
    let source = MemStore::new(Behaviour::default());
    source.add_collection(collection("work", &[Component::Event, Component::Task]));
    source.add_collection(collection("chores", &[Component::Task]));
    source.add_collection(collection("skipme", &[Component::Event]));
    source.insert("/work/", "/work/e1.ics", &event("e1", "Meeting"));
    source.insert("/work/", "/work/t1.ics", &task("t1", "Report"));
    source.insert("/chores/", "/chores/t2.ics", &task("t2", "Dishes"));
    source.insert("/skipme/", "/skipme/e2.ics", &event("e2", "Hidden"));
    let dest = MemStore::new(Behaviour::default());
    let rules = CollectionRules {
        include: vec![],
        exclude: vec!["SKIP*".into()],
        map: BTreeMap::from([("work".to_string(), "office".to_string())]),
    };
    let calendars = Job {
        account: "a".into(),
        components: vec![Component::Event, Component::Journal],
        rules: rules.clone(),
        sync_point: 1,
        full_scan: false,
    };
    let tasks = Job {
        components: vec![Component::Task],
        ..calendars.clone()
    };
    let (jc, jt) = (MemJournal::default(), MemJournal::default());
    let r = run(&calendars, &source, &dest, &jc).await.unwrap();
    assert_eq!(r.collections.len(), 1, "{r:?}");
    assert_eq!(r.collections[0].dest_href, "/office/");
    assert_eq!(dest.objects("/office/").len(), 1);
    let r = run(&tasks, &source, &dest, &jt).await.unwrap();
    assert_eq!(r.collections.len(), 2, "{r:?}");
    assert_eq!(dest.objects("/office/").len(), 2);
    assert_eq!(dest.objects("/chores/").len(), 1);
    assert!(!dest.collection_hrefs().contains(&"/skipme/".to_string()));
    // The calendar the calendars job created can hold the tasks too.
    let office = dest.collections(Component::Task).await.unwrap();
    assert!(office.iter().any(|c| c.href == "/office/"));
}

#[tokio::test]
async fn a_destination_collection_gone_is_copied_to_again() {
    let source = source_with(&[("a.vcf", card(Some("a"), "Ann"))]);
    let dest = dest(Behaviour::default());
    let journal = MemJournal::default();
    run(&contacts_job(), &source, &dest, &journal)
        .await
        .unwrap();
    // Recorded at another href that no longer exists.
    let mut rec = journal.collections().unwrap()["contacts"].clone();
    rec.dest_href = "/gone/".into();
    journal.put_collection("contacts", &rec).unwrap();
    let r = run(&contacts_job(), &source, &dest, &journal)
        .await
        .unwrap();
    let c = &r.collections[0];
    assert_eq!(c.dest_href, "/contacts/");
    assert_eq!(c.adopted, 1, "{c:?}");
    assert_eq!(dest.objects("/contacts/").len(), 1);
}

/// The futures are Send, so the caller can spawn them.
#[allow(dead_code)]
fn futures_are_send(s: &MemStore, d: &MemStore, j: &MemJournal, stop: &AtomicBool) {
    fn send<T: Send>(_: T) {}
    send(sync(&contacts_job(), s, d, j, &NoProgress, stop));
}

#[derive(Debug, Clone)]
enum Op {
    Edit(usize),
    Add,
    Remove(usize),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            (0usize..40).prop_map(Op::Edit),
            Just(Op::Add),
            (0usize..40).prop_map(Op::Remove),
        ],
        0..6,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    /// Random objects (some without UID, some sharing one), random cuts over repeated runs,
    /// edits between runs: the destination ends with every object exactly once, equal to the
    /// source, and a last run writes nothing.
    #[test]
    fn exactly_once_under_random_cuts(
        uids in prop::collection::vec(prop_oneof![3 => (0u8..30).prop_map(Some), 1 => Just(None)], 1..40),
        cuts in prop::collection::vec(1u64..30, 0..4),
        edits in ops(),
        unique in any::<bool>(),
        reserialize in any::<bool>(),
        tokens in 0u8..3,
        prefill in prop::collection::vec(0usize..40, 0..4),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            // No tokens, tokens with the collections (DAV), tokens with the listings (EWS, Graph).
            let source = MemStore::new(Behaviour { sync_collection: tokens > 0, listing_token: tokens == 2, ..Behaviour::default() });
            source.add_collection(collection("contacts", &[Component::Card]));
            for (i, uid) in uids.iter().enumerate() {
                let uid = uid.map(|u| format!("u{u}"));
                source.insert("/contacts/", &format!("/contacts/{i:03}.vcf"), &card(uid.as_deref(), &format!("P {i}")));
            }
            let dest = MemStore::new(Behaviour { unique_uids: unique, reserialize, ..Behaviour::default() });
            dest.add_collection(collection("contacts", &[Component::Card]));
            let sources = source.objects("/contacts/");
            let srcs: Vec<&Vec<u8>> = sources.values().collect();
            let mut prefilled = BTreeSet::new();
            for p in &prefill {
                let data = srcs[p % srcs.len()];
                // A store with one object per UID never holds two.
                if unique && !prefilled.insert(object::parse(data).unwrap().uid) {
                    continue;
                }
                dest.insert("/contacts/", &format!("/contacts/pre-{p}.vcf"), data);
            }
            let journal = MemJournal::default();
            let mut job = contacts_job();
            for (n, k) in cuts.iter().enumerate() {
                job.sync_point = n as u64 + 1;
                dest.crash_after(*k);
                run(&job, &source, &dest, &journal).await.unwrap();
                dest.revive();
            }
            job.sync_point += 1;
            run(&job, &source, &dest, &journal).await.unwrap();
            for (next, op) in (uids.len()..).zip(edits.iter()) {
                let hrefs: Vec<String> = source.objects("/contacts/").into_keys().collect();
                match op {
                    Op::Edit(i) if !hrefs.is_empty() => {
                        let h = &hrefs[i % hrefs.len()];
                        let data = source.objects("/contacts/")[h].clone();
                        let uid = object::parse(&data).unwrap().uid;
                        source.insert("/contacts/", h, &card(uid.as_deref(), &format!("edited {next}")));
                    }
                    Op::Remove(i) if !hrefs.is_empty() => source.remove("/contacts/", &hrefs[i % hrefs.len()]),
                    _ => source.insert("/contacts/", &format!("/contacts/n{next}.vcf"), &card(Some(&format!("n{next}")), "N")),
                }
            }
            job.sync_point += 1;
            dest.crash_after(1);
            run(&job, &source, &dest, &journal).await.unwrap();
            dest.revive();
            job.sync_point += 1;
            let r = run(&job, &source, &dest, &journal).await.unwrap();
            prop_assert!(r.failed.is_empty(), "{:?}", r);
            // Every source object (by content) is on the destination; nothing of ours twice.
            let have: Vec<[u8; 32]> = dest.objects("/contacts/").values().map(|d| object::content_hash(d)).collect();
            let have_set: BTreeSet<[u8; 32]> = have.iter().copied().collect();
            let now = source.objects("/contacts/");
            let uid_count = |uid: &Option<String>| now.values().filter(|d| uid.is_some() && object::parse(d).unwrap().uid == *uid).count();
            for d in now.values() {
                let uid = object::parse(d).unwrap().uid;
                // A destination with one object per UID refuses a shared UID's second copy.
                let may_be_refused = unique && uid_count(&uid) > 1;
                prop_assert!(may_be_refused || have_set.contains(&object::content_hash(d)), "a source object is missing");
            }
            let records = journal.objects("contacts").unwrap();
            let dest_hrefs: Vec<&String> = records.values().map(|r| &r.dest_href).collect();
            let distinct: BTreeSet<&String> = dest_hrefs.iter().copied().collect();
            prop_assert_eq!(distinct.len(), dest_hrefs.len(), "two keys share a destination object");
            // Our writes: each destination object not pre-filled and not an old version is a
            // recorded one, and no record points at a missing object.
            let on_dest = dest.objects("/contacts/");
            for h in &dest_hrefs {
                prop_assert!(on_dest.contains_key(*h), "a record points at nothing: {}", h);
            }
            for h in on_dest.keys() {
                prop_assert!(h.contains("/pre-") || distinct.contains(h), "an unrecorded copy: {}", h);
            }
            let puts = dest.puts();
            job.sync_point += 1;
            run(&job, &source, &dest, &journal).await.unwrap();
            prop_assert_eq!(dest.puts(), puts, "the last run writes nothing");
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn rewrites_are_reported_and_their_result_is_not_written_again() {
    let windows = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Microsoft//EN\r\n\
        BEGIN:VTIMEZONE\r\nTZID:W. Europe Standard Time\r\nBEGIN:STANDARD\r\n\
        DTSTART:16010101T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\n\
        RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\n\
        DTSTART:16010101T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\n\
        RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n\
        BEGIN:VEVENT\r\nUID:win-1\r\nDTSTAMP:20260101T000000Z\r\n\
        DTSTART;TZID=W. Europe Standard Time:20260312T140000\r\nSUMMARY:Exchange export\r\n\
        END:VEVENT\r\nEND:VCALENDAR\r\n";
    let source = MemStore::new(Behaviour::default());
    source.add_collection(collection("cal", &[Component::Event]));
    source.insert("/cal/", "/cal/w.ics", windows.as_bytes());
    let dest = MemStore::new(Behaviour {
        reserialize: true,
        ..Behaviour::default()
    });
    let job = Job {
        components: vec![Component::Event, Component::Journal],
        ..contacts_job()
    };
    let journal = MemJournal::default();
    let r = run(&job, &source, &dest, &journal).await.unwrap();
    let c = &r.collections[0];
    assert_eq!(c.copied, 1, "{c:?}");
    assert_eq!(c.rewrites.len(), 1, "{c:?}");
    assert!(c.rewrites[0].rewrite.contains("Europe/Berlin"), "{c:?}");
    let written = String::from_utf8(dest.objects("/cal/")["/cal/win-1.ics"].clone()).unwrap();
    assert!(written.contains("TZID=Europe/Berlin"), "{written}");
    // Found again (lost records, full scan): the rewritten copy is this object, unchanged.
    let puts = dest.puts();
    let full = Job {
        full_scan: true,
        ..job.clone()
    };
    let r = run(&full, &source, &dest, &MemJournal::default())
        .await
        .unwrap();
    assert_eq!((r.collections[0].adopted, dest.puts()), (1, puts), "{r:?}");
    let check = crate::verify::verify(
        &job.components,
        &job.rules,
        &source,
        &dest,
        None,
        &BTreeMap::new(),
        5,
    )
    .await;
    assert!(check.equal(), "{check:?}");
}

/// On the runtime the product uses, journal calls leave the async workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_on_a_multi_threaded_runtime() {
    let source = source_with(&[("a.vcf", card(Some("a"), "Ann"))]);
    let dest = dest(Behaviour::default());
    let journal = MemJournal::default();
    let r = run(&contacts_job(), &source, &dest, &journal)
        .await
        .unwrap();
    assert_eq!(r.collections[0].copied, 1);
}

/// An object held by one key is never adopted by another that shares its UID.
#[tokio::test]
async fn a_uid_copied_for_one_object_is_not_taken_over_by_another() {
    let source = source_with(&[
        ("1.vcf", card(Some("dup"), &"big ".repeat(400))),
        ("2.vcf", card(Some("dup"), "Second")),
    ]);
    let dest = dest(Behaviour {
        refuse_over: Some(1000),
        ..Behaviour::default()
    });
    let journal = MemJournal::default();
    let r = run(&contacts_job(), &source, &dest, &journal)
        .await
        .unwrap();
    let c = &r.collections[0];
    assert_eq!((c.copied, c.refused.len()), (1, 1), "{c:?}");
    // The first object shrinks: the destination's one object with this UID is the second's.
    source.insert("/contacts/", "/contacts/1.vcf", &card(Some("dup"), "First"));
    let r = run(&contacts_job(), &source, &dest, &journal)
        .await
        .unwrap();
    let c = &r.collections[0];
    assert_eq!((c.copied, c.adopted, c.refused.len()), (0, 0, 1), "{c:?}");
    let records = journal.objects("contacts").unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(
        dest.objects("/contacts/").into_values().collect::<Vec<_>>(),
        [card(Some("dup"), "Second")]
    );
}

/// A token given with a listing that the store no longer accepts: the pass lists again,
/// carries what changed, and records the new listing's token, which the next run uses.
#[tokio::test]
async fn an_expired_listing_token_falls_back_to_a_listing_and_converges() {
    let source = MemStore::new(Behaviour {
        listing_token: true,
        ..Behaviour::default()
    });
    source.add_collection(collection("contacts", &[Component::Card]));
    for i in 0..5 {
        source.insert(
            "/contacts/",
            &format!("/contacts/{i}.vcf"),
            &card(Some(&format!("u{i}")), &format!("P {i}")),
        );
    }
    let dest = dest(Behaviour::default());
    let journal = MemJournal::default();
    let mut job = contacts_job();
    run(&job, &source, &dest, &journal).await.unwrap();
    source.insert("/contacts/", "/contacts/new.vcf", &card(Some("new"), "New"));
    source.refuse_tokens(1);
    let lists = source.lists();
    job.sync_point = 2;
    let r = run(&job, &source, &dest, &journal).await.unwrap();
    assert_eq!(source.lists(), lists + 1, "listed again");
    assert_eq!(
        (r.collections[0].copied, r.collections[0].unchanged),
        (1, 5)
    );
    source.insert(
        "/contacts/",
        "/contacts/new2.vcf",
        &card(Some("new2"), "New 2"),
    );
    job.sync_point = 3;
    let r = run(&job, &source, &dest, &journal).await.unwrap();
    assert_eq!(source.lists(), lists + 1, "by the new token, no listing");
    assert_eq!(r.collections[0].copied, 1);
    assert_eq!(dest.objects("/contacts/").len(), 7);
}
