//! `mailshift rollback` of contacts and calendars on two real Radicale servers: two applies
//! (sync points 1 and 2) with the user's own objects on the destination, a card created in run
//! 1 and updated in run 2, a recurring series with an override created in run 2, and one of run
//! 2's cards edited by the user on the destination. Every step of one apply shares its sync
//! point: `--since 2` deletes exactly run 2's other creations; the next apply writes them again, once. A rollback killed after its first
//! `DELETE` makes `apply` refuse the account until a rerun finishes it.

use std::collections::BTreeMap;
use std::path::Path;

use mailshift_dav::dav::DavStore;
use mailshift_dav::store::{Component, Store};
use mailshift_dav::testserver::DavServer;

use crate::common::Output;

const ALICE: &str = "alice@example.com";
const BOOK: &str = "/alice@example.com/people/";
const CAL: &str = "/alice@example.com/agenda/";
const LATER: &str = "/alice@example.com/later/";

fn run(dir: &Path, args: &[&str]) -> Output {
    crate::common::mailshift_env(dir, args, &[("OLD_PW", "old"), ("NEW_PW", "new")])
}

fn run_crashing(dir: &Path, args: &[&str], at: &str) -> Output {
    crate::common::mailshift_env(
        dir,
        args,
        &[
            ("OLD_PW", "old"),
            ("NEW_PW", "new"),
            ("MAILSHIFT_TEST_CRASH", at),
        ],
    )
}

fn card(uid: &str, name: &str) -> String {
    format!("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\nEND:VCARD\r\n")
}

fn event(uid: &str, summary: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n\
         DTSTAMP:20261128T090000Z\r\nDTSTART:20261201T090000Z\r\nDTEND:20261201T100000Z\r\n\
         SUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

/// A weekly series with one moved instance: one resource, one object.
fn series(uid: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n\
         BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261128T090000Z\r\nDTSTART:20261202T090000Z\r\n\
         DTEND:20261202T100000Z\r\nRRULE:FREQ=WEEKLY;COUNT=5\r\nSUMMARY:Weekly\r\nEND:VEVENT\r\n\
         BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261128T090000Z\r\n\
         RECURRENCE-ID:20261209T090000Z\r\nDTSTART:20261210T090000Z\r\nDTEND:20261210T100000Z\r\n\
         SUMMARY:Weekly (moved)\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

fn plan(dir: &Path, src: &DavServer, dst: &DavServer) {
    let platform = |name: &str, s: &DavServer| {
        format!(
            "  {name}: {{type: imap, imap: {{host: 127.0.0.1, security: none}}, dav: {{url: \"{}\"}}}}\n",
            s.dav_config(ALICE).url
        )
    };
    let text = format!(
        "version: 1\nplatforms:\n{}{}accounts:\n  - address: {ALICE}\n    from: old\n    to: new\n\
         \x20   content: [contacts, calendars]\n\
         \x20   source: {{password: {{env: OLD_PW}}}}\n    destination: {{password: {{env: NEW_PW}}}}\n",
        platform("old", src),
        platform("new", dst)
    );
    std::fs::write(dir.join("plan.yaml"), text).unwrap();
}

/// Every object of `component` on the server for alice: UID → (href, number of resources with
/// that UID, the FN or SUMMARY).
fn objects(server: &DavServer, component: Component) -> BTreeMap<String, (String, usize, String)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = DavStore::connect(server.dav_config(ALICE)).await.unwrap();
        let mut out: BTreeMap<String, (String, usize, String)> = BTreeMap::new();
        for c in store.collections(component).await.unwrap() {
            let hrefs: Vec<String> = store
                .list(&c)
                .await
                .unwrap()
                .into_iter()
                .map(|l| l.href)
                .collect();
            for f in store.fetch(&c, &hrefs).await.unwrap() {
                let item = mailshift_dav::object::parse(&f.data).unwrap();
                if item.component != component {
                    continue;
                }
                let e = out.entry(item.uid.unwrap()).or_insert((
                    f.href.clone(),
                    0,
                    item.summary.unwrap_or_default(),
                ));
                e.1 += 1;
            }
        }
        out
    })
}

/// The names of alice's calendars on the server.
fn calendars(server: &DavServer) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = DavStore::connect(server.dav_config(ALICE)).await.unwrap();
        let mut names: Vec<String> = store
            .collections(Component::Event)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect();
        names.sort();
        names
    })
}

fn uids(m: &BTreeMap<String, (String, usize, String)>) -> Vec<&str> {
    m.keys().map(String::as_str).collect()
}

/// Every UID exactly once.
fn assert_once(m: &BTreeMap<String, (String, usize, String)>) {
    for (uid, (_, n, _)) in m {
        assert_eq!(*n, 1, "{uid} is on the destination {n} times");
    }
}

/// Source and destination after two applies: run 1 copied c1, c2, e1; run 2 copied c3, c4,
/// the series s1 and l1 (into a calendar it created), and updated c1. The user has u1 (before run 1) and u2 (before run 2) of their
/// own in the destination address book.
fn two_sync_points(dir: &Path) -> (DavServer, DavServer) {
    let src = DavServer::radicale();
    let dst = DavServer::radicale();
    src.create_addressbook(ALICE, BOOK);
    src.create_calendar(ALICE, CAL);
    dst.create_addressbook(ALICE, BOOK);
    assert_eq!(
        dst.put_raw(&format!("{BOOK}own-1.vcf"), &card("u1", "Own One")),
        201
    );
    for (n, name) in [("c1", "Carla"), ("c2", "Chris")] {
        assert_eq!(src.put_raw(&format!("{BOOK}{n}.vcf"), &card(n, name)), 201);
    }
    assert_eq!(
        src.put_raw(&format!("{CAL}e1.ics"), &event("e1", "First")),
        201
    );
    plan(dir, &src, &dst);
    let first = run(dir, &["apply", "plan.yaml"]);
    assert_eq!(first.code, 0, "{}", first.transcript());

    for (n, name) in [("c3", "Cyril"), ("c4", "Cora")] {
        assert_eq!(src.put_raw(&format!("{BOOK}{n}.vcf"), &card(n, name)), 201);
    }
    assert_eq!(
        src.put_raw(&format!("{BOOK}c1.vcf"), &card("c1", "Carla B")),
        201
    );
    assert_eq!(src.put_raw(&format!("{CAL}s1.ics"), &series("s1")), 201);
    // A calendar that run 2 creates on the destination (MKCALENDAR), with one event.
    src.create_calendar(ALICE, LATER);
    assert_eq!(
        src.put_raw(&format!("{LATER}l1.ics"), &event("l1", "Later")),
        201
    );
    assert_eq!(
        dst.put_raw(&format!("{BOOK}own-2.vcf"), &card("u2", "Own Two")),
        201
    );
    let second = run(dir, &["apply", "plan.yaml"]);
    assert_eq!(second.code, 0, "{}", second.transcript());
    assert!(
        second.stdout.contains("2 contacts copied") && second.stdout.contains("1 contact updated"),
        "{}",
        second.stdout
    );
    (src, dst)
}

#[test]
fn dav_rollback_deletes_exactly_what_the_later_sync_point_created() {
    let dir = tempfile::tempdir().unwrap();
    let (_src, dst) = two_sync_points(dir.path());
    let cards = objects(&dst, Component::Card);
    assert_eq!(uids(&cards), ["c1", "c2", "c3", "c4", "u1", "u2"]);
    // The user edits run 2's c4 on the destination: theirs now.
    let c4 = cards["c4"].0.clone();
    let edited = dst.put_raw(&c4, &card("c4", "Cora (edited)"));
    assert!(matches!(edited, 201 | 204), "PUT {c4}: {edited}");

    let status = run(dir.path(), &["status", "plan.yaml"]);
    assert_eq!(status.code, 0, "{}", status.transcript());
    let lines: Vec<&str> = status.stdout.lines().collect();
    let has = |point: &str, what: &str| {
        lines
            .iter()
            .any(|l| l.contains(&format!("sync point {point} (")) && l.contains(what))
    };
    // Both steps of an apply share its number.
    assert!(
        has("1", "UTC): 1 event created (")
            && has("1", "UTC): 2 contacts created (")
            && has("2", "UTC): 2 events created (")
            && has("2", "UTC): 2 contacts created (")
            && has("2", "), 1 contact updated")
            && !has("1", "updated"),
        "{}",
        status.stdout
    );

    let dry = run(
        dir.path(),
        &["rollback", "plan.yaml", "--since", "2", "--dry-run"],
    );
    assert_eq!(dry.code, 0, "{}", dry.transcript());
    assert!(
        dry.stdout
            .contains("Dry run: 1 contact, 2 events would be deleted (sync point 2 and later)")
            && dry.stdout.contains("- UID c3")
            && dry.stdout.contains("\"Cyril\"")
            && dry.stdout.contains("- UID s1")
            && dry.stdout.contains("\"Weekly\"")
            && dry
                .stdout
                .contains("uid:c4  \"Cora (edited)\" left alone: changed on the destination")
            && dry
                .stdout
                .contains("uid:c1 left alone: created in sync point 1 and updated in sync point 2"),
        "{}",
        dry.stdout
    );
    assert_eq!(
        uids(&objects(&dst, Component::Card)).len(),
        6,
        "a dry run deletes nothing"
    );

    let asked = run(dir.path(), &["rollback", "plan.yaml", "--since", "2"]);
    assert_eq!(asked.code, 1, "{}", asked.transcript());
    assert!(
        asked
            .stdout
            .contains("Delete 1 contact, 2 events from the destination?")
            && asked.stdout.contains("Nothing was deleted."),
        "{}",
        asked.stdout
    );

    let rolled = run(
        dir.path(),
        &["rollback", "plan.yaml", "--since", "2", "--yes"],
    );
    assert_eq!(rolled.code, 0, "{}", rolled.transcript());
    assert!(
        rolled
            .stdout
            .contains("Rolled back: 1 contact, 2 events deleted")
            && rolled
                .stdout
                .contains("(/alice@example.com/later/) is now empty: left in place"),
        "{}",
        rolled.stdout
    );
    assert_eq!(calendars(&dst), ["agenda", "later"]);
    let cards = objects(&dst, Component::Card);
    assert_eq!(uids(&cards), ["c1", "c2", "c4", "u1", "u2"]);
    assert_eq!(cards["c4"].2, "Cora (edited)");
    assert_eq!(cards["c1"].2, "Carla B");
    assert_eq!(uids(&objects(&dst, Component::Event)), ["e1"]);

    // Nothing left to roll back; the next apply writes the two again, once, and leaves the
    // user's edit of c4.
    let again = run(
        dir.path(),
        &["rollback", "plan.yaml", "--since", "2", "--dry-run"],
    );
    assert!(
        again.stdout.contains("Dry run: 0 contacts, 0 events"),
        "{}",
        again.stdout
    );
    let third = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(third.code, 0, "{}", third.transcript());
    let cards = objects(&dst, Component::Card);
    assert_eq!(uids(&cards), ["c1", "c2", "c3", "c4", "u1", "u2"]);
    assert_once(&cards);
    assert_eq!(cards["c4"].2, "Cora (edited)");
    let events = objects(&dst, Component::Event);
    assert_eq!(uids(&events), ["e1", "l1", "s1"]);
    assert_once(&events);
    let fourth = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(fourth.code, 0, "{}", fourth.transcript());
    assert_eq!(objects(&dst, Component::Card).len(), 6);
}

#[test]
fn dav_rollback_killed_after_its_first_delete_is_finished_by_a_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let (_src, dst) = two_sync_points(dir.path());
    let count = || objects(&dst, Component::Card).len() + objects(&dst, Component::Event).len();
    assert_eq!(count(), 6 + 3);
    let killed = run_crashing(
        dir.path(),
        &["rollback", "plan.yaml", "--since", "2", "--yes"],
        "dav-rollback-after-first-delete",
    );
    assert_ne!(killed.code, 0, "{}", killed.transcript());
    // One of run 2's creations (c3, c4, l1, s1) is gone, the others not yet.
    assert_eq!(count(), 8);

    let refused = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(refused.code, 1, "{}", refused.transcript());
    assert!(
        refused.stdout.contains("was interrupted: run `mailshift rollback PLAN --account alice@example.com --since 2` again"),
        "{}",
        refused.stdout
    );

    let finished = run(
        dir.path(),
        &["rollback", "plan.yaml", "--since", "2", "--yes"],
    );
    assert_eq!(finished.code, 0, "{}", finished.transcript());
    assert!(
        finished
            .stdout
            .contains("no longer there (records dropped)")
            && finished.stdout.contains("Rolled back: "),
        "{}",
        finished.stdout
    );
    assert_eq!(
        uids(&objects(&dst, Component::Card)),
        ["c1", "c2", "u1", "u2"]
    );
    assert_eq!(uids(&objects(&dst, Component::Event)), ["e1"]);

    let next = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(next.code, 0, "{}", next.transcript());
    let cards = objects(&dst, Component::Card);
    assert_eq!(uids(&cards), ["c1", "c2", "c3", "c4", "u1", "u2"]);
    assert_once(&cards);
    let events = objects(&dst, Component::Event);
    assert_eq!(uids(&events), ["e1", "l1", "s1"]);
    assert_once(&events);
}

/// A `files` destination (an export to `.vcf`/`.ics` files) is rolled back the same way: the
/// entries created at `--since` or later leave their files, the rest stays byte for byte, and
/// the next apply writes them again, once.
#[test]
fn dav_rollback_of_a_files_destination_removes_the_entries_it_created() {
    let src = DavServer::radicale();
    src.create_addressbook(ALICE, BOOK);
    src.create_calendar(ALICE, CAL);
    assert_eq!(
        src.put_raw(&format!("{BOOK}c1.vcf"), &card("c1", "Carla")),
        201
    );
    assert_eq!(
        src.put_raw(&format!("{CAL}e1.ics"), &event("e1", "First")),
        201
    );
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "version: 1\nplatforms:\n  old: {{type: imap, imap: {{host: 127.0.0.1, security: none}}, dav: {{url: \"{}\"}}}}\n\
         \x20 backup: {{type: files, path: ./backup}}\naccounts:\n  - address: {ALICE}\n    from: old\n    to: backup\n\
         \x20   content: [contacts, calendars]\n    source: {{password: {{env: OLD_PW}}}}\n",
        src.dav_config(ALICE).url
    );
    std::fs::write(dir.path().join("plan.yaml"), text).unwrap();
    let first = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(first.code, 0, "{}", first.transcript());
    let out = dir.path().join("backup").join(ALICE);
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
    let (people, agenda) = (read("people.vcf"), read("agenda.ics"));

    assert_eq!(
        src.put_raw(&format!("{BOOK}c2.vcf"), &card("c2", "Chris")),
        201
    );
    assert_eq!(src.put_raw(&format!("{CAL}s1.ics"), &series("s1")), 201);
    let second = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(second.code, 0, "{}", second.transcript());
    assert!(read("people.vcf").contains("UID:c2") && read("agenda.ics").contains("UID:s1"));

    let rolled = run(
        dir.path(),
        &["rollback", "plan.yaml", "--since", "2", "--yes"],
    );
    assert_eq!(rolled.code, 0, "{}", rolled.transcript());
    assert!(
        rolled
            .stdout
            .contains("Rolled back: 1 contact, 1 event deleted"),
        "{}",
        rolled.stdout
    );
    assert_eq!(
        read("people.vcf"),
        people,
        "only run 2's card left the file"
    );
    assert_eq!(
        read("agenda.ics"),
        agenda,
        "only run 2's series left the file"
    );

    let third = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(third.code, 0, "{}", third.transcript());
    let (people, agenda) = (read("people.vcf"), read("agenda.ics"));
    assert_eq!(people.matches("UID:c2").count(), 1, "{people}");
    assert_eq!(people.matches("BEGIN:VCARD").count(), 2, "{people}");
    // The series is one object: its master and its override, both back once.
    assert_eq!(agenda.matches("UID:s1").count(), 2, "{agenda}");
    assert_eq!(agenda.matches("BEGIN:VEVENT").count(), 3, "{agenda}");
}
