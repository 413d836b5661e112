//! Contacts, calendars and tasks end to end, through the `mailshift` binary, on real Radicale
//! and Xandikos servers (Debian packages, started on loopback ports): both directions, a
//! destination pre-filled by another tool, an incremental run after edits on the source, kill -9
//! during the copy, files in (twice: nothing added) and out (a backup), verify.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use mailshift_dav::dav::DavStore;
use mailshift_dav::store::{Component, Store};
use mailshift_dav::testserver::DavServer;

use crate::common::{Output, repo_root};

const ALICE: &str = "alice@example.com";

fn fixtures() -> PathBuf {
    repo_root().join("tests/fixtures/dav")
}

/// Every collection of `user` holding `component`, with the UIDs (or, without one, the
/// content) of its objects of that component, sorted: duplicates show.
pub(crate) fn contents(
    server: &DavServer,
    user: &str,
    component: Component,
) -> BTreeMap<String, Vec<String>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = DavStore::connect(server.dav_config(user)).await.unwrap();
        let mut out = BTreeMap::new();
        for c in store.collections(component).await.unwrap() {
            let hrefs: Vec<String> = store
                .list(&c)
                .await
                .unwrap()
                .into_iter()
                .map(|l| l.href)
                .collect();
            let mut ids: Vec<String> = Vec::new();
            for f in store.fetch(&c, &hrefs).await.unwrap() {
                let item = mailshift_dav::object::parse(&f.data).unwrap();
                if item.component == component {
                    ids.push(
                        item.uid
                            .unwrap_or_else(|| String::from_utf8_lossy(&f.data).into_owned()),
                    );
                }
            }
            ids.sort();
            out.insert(c.name.clone(), ids);
        }
        out
    })
}

/// Loads the fixture collections into `server` for `user` under `home` (a path ending in `/`).
pub(crate) fn load_fixtures(server: &DavServer, user: &str, home: &str) {
    for (dir, calendar) in [
        ("contacts", false),
        ("contacts-work", false),
        ("calendar", true),
        ("calendar-work", true),
    ] {
        let path = format!("{home}{dir}/");
        if calendar {
            server.create_calendar(user, &path);
        } else {
            server.create_addressbook(user, &path);
        }
        let mut files: Vec<_> = std::fs::read_dir(fixtures().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files {
            let body = std::fs::read_to_string(&f).unwrap();
            let name = f.file_name().unwrap().to_str().unwrap();
            let status = server.put_raw(&format!("{path}{name}"), &body);
            assert!(matches!(status, 201 | 204), "PUT {name}: {status}");
        }
    }
}

fn plan(dir: &Path, from: &str, to: &str, extra_platforms: &str, content: &str) {
    let text = format!(
        "version: 1\nplatforms:\n{extra_platforms}\
         accounts:\n  - address: {ALICE}\n    from: {from}\n    to: {to}\n    content: {content}\n\
         \x20   source: {{password: {{env: OLD_PW}}}}\n    destination: {{password: {{env: NEW_PW}}}}\n"
    );
    std::fs::write(dir.join("plan.yaml"), text).unwrap();
}

fn dav_platform(name: &str, server: &DavServer, user: &str) -> String {
    format!(
        "  {name}: {{type: imap, imap: {{host: 127.0.0.1, security: none}}, dav: {{url: \"{}\"}}}}\n",
        server.dav_config(user).url
    )
}

fn run(dir: &Path, args: &[&str]) -> Output {
    crate::common::mailshift_env(dir, args, &[("OLD_PW", "old"), ("NEW_PW", "new")])
}

/// Every stored object file under `dir` (`.vcf`, `.ics`, and Radicale's extension-less items)
/// with its length and modification time: a write shows. Version-control internals, caches
/// and logs are left out: they change on reads.
fn files_state(dir: &Path) -> BTreeMap<PathBuf, (u64, SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".Radicale") || name == ".git" || name.ends_with(".log") {
                continue;
            }
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(p);
            } else {
                out.insert(p, (m.len(), m.modified().unwrap()));
            }
        }
    }
    out
}

/// Each source collection's objects are on the destination under the same name, once.
fn assert_same(src: &BTreeMap<String, Vec<String>>, dst: &BTreeMap<String, Vec<String>>) {
    for (name, ids) in src {
        if ids.is_empty() {
            continue;
        }
        assert_eq!(dst.get(name), Some(ids), "collection {name}: {dst:?}");
    }
}

#[test]
fn radicale_to_xandikos_exactly_once_and_a_second_apply_writes_nothing() {
    let src = DavServer::radicale();
    let dst = DavServer::xandikos();
    load_fixtures(&src, ALICE, &format!("/{ALICE}/"));
    let dir = tempfile::tempdir().unwrap();
    let platforms = dav_platform("old", &src, ALICE) + &dav_platform("new", &dst, "user");
    plan(
        dir.path(),
        "old",
        "new",
        &platforms,
        "[contacts, calendars, tasks]",
    );

    let first = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(first.code, 0, "{}", first.transcript());
    assert!(
        first.stdout.contains("W. Europe Standard Time"),
        "the time-zone rewrite is reported: {}",
        first.stdout
    );
    for component in [Component::Card, Component::Event, Component::Task] {
        assert_same(
            &contents(&src, ALICE, component),
            &contents(&dst, "user", component),
        );
    }
    let verify = run(dir.path(), &["verify", "plan.yaml"]);
    assert_eq!(verify.code, 0, "{}", verify.transcript());

    let before = files_state(dst.dir());
    let second = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(second.code, 0, "{}", second.transcript());
    assert!(
        !second.stdout.contains("written"),
        "a second apply writes nothing: {}",
        second.stdout
    );
    assert_eq!(
        files_state(dst.dir()),
        before,
        "the destination's files changed"
    );
}

#[test]
fn xandikos_to_radicale_adopts_what_is_there_and_carries_source_edits() {
    let src = DavServer::xandikos();
    let dst = DavServer::radicale();
    let book = src.default_addressbook("user");
    let cal = src.default_calendar("user");
    for (dir, coll) in [("contacts", &book), ("calendar", &cal)] {
        for e in std::fs::read_dir(fixtures().join(dir)).unwrap() {
            let f = e.unwrap().path();
            let body = std::fs::read_to_string(&f).unwrap();
            let name = f.file_name().unwrap().to_str().unwrap().to_string();
            assert!(matches!(
                src.put_raw(&format!("{coll}{name}"), &body),
                201 | 204
            ));
        }
    }
    // Another tool copied one card already, under another name: adopted, not duplicated.
    let dest_book = format!(
        "/{ALICE}/{}",
        book.trim_end_matches('/').rsplit('/').next().unwrap()
    );
    dst.create_addressbook(ALICE, &format!("{dest_book}/"));
    let jean = std::fs::read_to_string(fixtures().join("contacts/v3-jean-dupont.vcf")).unwrap();
    assert_eq!(
        dst.put_raw(&format!("{dest_book}/copied-by-another-tool.vcf"), &jean),
        201
    );

    let dir = tempfile::tempdir().unwrap();
    let platforms = dav_platform("old", &src, "user") + &dav_platform("new", &dst, ALICE);
    plan(
        dir.path(),
        "old",
        "new",
        &platforms,
        "[contacts, calendars, tasks]",
    );
    let first = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(first.code, 0, "{}", first.transcript());
    assert!(first.stdout.contains("adopted"), "{}", first.stdout);
    for component in [Component::Card, Component::Event, Component::Task] {
        assert_same(
            &contents(&src, "user", component),
            &contents(&dst, ALICE, component),
        );
    }

    // Edits on the source: one card changed, one event added. The next run carries both.
    let anna = std::fs::read_to_string(fixtures().join("contacts/v4-anna-grossmann.vcf"))
        .unwrap()
        .replace("END:VCARD", "TEL;TYPE=work:+49 30 1234567\r\nEND:VCARD");
    assert!(matches!(
        src.put_raw(&format!("{book}v4-anna-grossmann.vcf"), &anna),
        201 | 204
    ));
    let event = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n\
                 UID:added-later@example.com\r\nDTSTAMP:20261128T090000Z\r\n\
                 DTSTART:20261201T090000Z\r\nDTEND:20261201T100000Z\r\nSUMMARY:Added later\r\n\
                 END:VEVENT\r\nEND:VCALENDAR\r\n";
    assert_eq!(src.put_raw(&format!("{cal}added-later.ics"), event), 201);
    let next = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(next.code, 0, "{}", next.transcript());
    assert!(next.stdout.contains("1 contact updated"), "{}", next.stdout);
    assert!(next.stdout.contains("1 event copied"), "{}", next.stdout);
    let verify = run(dir.path(), &["verify", "plan.yaml"]);
    assert_eq!(verify.code, 0, "{}", verify.transcript());
    assert_same(
        &contents(&src, "user", Component::Event),
        &contents(&dst, ALICE, Component::Event),
    );
}

/// A card and an event, numbered.
fn generated(n: usize) -> (String, String) {
    let card = format!(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:gen-card-{n}@example.com\r\nFN:Person {n}\r\n\
         N:{n};Person;;;\r\nEMAIL:p{n}@example.org\r\nEND:VCARD\r\n"
    );
    let event = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n\
         UID:gen-event-{n}@example.com\r\nDTSTAMP:20261128T090000Z\r\n\
         DTSTART:20270101T{:02}0000Z\r\nDURATION:PT1H\r\nSUMMARY:Event {n}\r\n\
         END:VEVENT\r\nEND:VCALENDAR\r\n",
        n % 24
    );
    (card, event)
}

#[test]
fn kill_9_during_the_copy_then_apply_converges_with_every_object_once() {
    let src = DavServer::radicale();
    let dst = DavServer::radicale();
    let book = format!("/{ALICE}/people/");
    let cal = format!("/{ALICE}/agenda/");
    src.create_addressbook(ALICE, &book);
    src.create_calendar(ALICE, &cal);
    for n in 0..300 {
        let (card, event) = generated(n);
        assert_eq!(src.put_raw(&format!("{book}c{n}.vcf"), &card), 201);
        if n < 150 {
            assert_eq!(src.put_raw(&format!("{cal}e{n}.ics"), &event), 201);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let platforms = dav_platform("old", &src, ALICE) + &dav_platform("new", &dst, ALICE);
    plan(
        dir.path(),
        "old",
        "new",
        &platforms,
        "[contacts, calendars]",
    );

    let mut seed: u64 = 0xda5_5eed;
    let mut kills = 0;
    for _ in 0..8 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let after = Duration::from_millis(150 + (seed >> 33) % 1500);
        let mut child = Command::new(env!("CARGO_BIN_EXE_mailshift"))
            .args(["apply", "plan.yaml"])
            .current_dir(dir.path())
            .env("OLD_PW", "old")
            .env("NEW_PW", "new")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(after);
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
    }
    assert!(
        kills > 0,
        "no run was killed: the test did not test anything"
    );
    let last = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(last.code, 0, "{}", last.transcript());
    let cards = contents(&dst, ALICE, Component::Card);
    let events = contents(&dst, ALICE, Component::Event);
    assert_eq!(
        cards.get("people").map(Vec::len),
        Some(300),
        "after {kills} kills"
    );
    assert_eq!(
        events.get("agenda").map(Vec::len),
        Some(150),
        "after {kills} kills"
    );
    assert_same(&contents(&src, ALICE, Component::Card), &cards);
    assert_same(&contents(&src, ALICE, Component::Event), &events);
    let verify = run(dir.path(), &["verify", "plan.yaml"]);
    assert_eq!(verify.code, 0, "{}", verify.transcript());
}

#[test]
fn files_imported_twice_leave_one_copy_and_bad_items_are_named() {
    let dst = DavServer::radicale();
    let dir = tempfile::tempdir().unwrap();
    let account_dir = dir.path().join("export").join(ALICE);
    std::fs::create_dir_all(&account_dir).unwrap();
    for f in ["all.vcf", "all.ics", "bad/bad.vcf"] {
        let name = Path::new(f).file_name().unwrap();
        std::fs::copy(fixtures().join(f), account_dir.join(name)).unwrap();
    }
    let platforms =
        "  files: {type: files, path: ./export}\n".to_string() + &dav_platform("new", &dst, ALICE);
    plan(
        dir.path(),
        "files",
        "new",
        &platforms,
        "[contacts, calendars, tasks]",
    );
    // No login on a files side: drop the source credentials.
    let text = std::fs::read_to_string(dir.path().join("plan.yaml"))
        .unwrap()
        .replace("    source: {password: {env: OLD_PW}}\n", "");
    std::fs::write(dir.path().join("plan.yaml"), text).unwrap();

    let first = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(first.code, 0, "{}", first.transcript());
    assert!(
        first.stdout.contains("bad.vcf line 12"),
        "the bad card is named by file and line: {}",
        first.stdout
    );
    let cards = contents(&dst, ALICE, Component::Card);
    let events = contents(&dst, ALICE, Component::Event);
    let tasks = contents(&dst, ALICE, Component::Task);
    // all.vcf and all.ics are both named `all`: whichever kind comes second gets its kind
    // appended to the destination collection's name.
    let all = |m: &BTreeMap<String, Vec<String>>, kind: &str| {
        m.get("all")
            .or_else(|| m.get(&format!("all-{kind}")))
            .map(Vec::len)
    };
    // all.vcf: 8 cards (one without UID); bad.vcf: 3 good ones.
    assert_eq!(all(&cards, "contacts"), Some(8), "{cards:?}");
    assert_eq!(cards.get("bad").map(Vec::len), Some(3), "{cards:?}");
    assert_eq!(all(&events, "calendar"), Some(5), "{events:?}");
    assert_eq!(all(&tasks, "calendar"), Some(2), "{tasks:?}");

    let before = files_state(dst.dir());
    let again = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(again.code, 0, "{}", again.transcript());
    assert_eq!(contents(&dst, ALICE, Component::Card), cards);
    assert_eq!(contents(&dst, ALICE, Component::Event), events);
    assert_eq!(
        files_state(dst.dir()),
        before,
        "a second import wrote something"
    );
}

#[test]
fn export_to_files_writes_each_collection_once_and_only_what_changed() {
    let src = DavServer::radicale();
    load_fixtures(&src, ALICE, &format!("/{ALICE}/"));
    let dir = tempfile::tempdir().unwrap();
    let platforms = dav_platform("old", &src, ALICE) + "  backup: {type: files, path: ./backup}\n";
    plan(
        dir.path(),
        "old",
        "backup",
        &platforms,
        "[contacts, calendars, tasks]",
    );
    let text = std::fs::read_to_string(dir.path().join("plan.yaml"))
        .unwrap()
        .replace("    destination: {password: {env: NEW_PW}}\n", "");
    std::fs::write(dir.path().join("plan.yaml"), text).unwrap();

    let first = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(first.code, 0, "{}", first.transcript());
    let out = dir.path().join("backup").join(ALICE);
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
    let contacts = read("contacts.vcf");
    assert_eq!(contacts.matches("BEGIN:VCARD").count(), 7, "{contacts}");
    let calendar = read("calendar.ics");
    // 5 events (one of them with two overridden instances: 3 VEVENTs) and 2 tasks.
    assert_eq!(calendar.matches("BEGIN:VEVENT").count(), 7, "{calendar}");
    assert_eq!(calendar.matches("BEGIN:VTODO").count(), 2, "{calendar}");
    let verify = run(dir.path(), &["verify", "plan.yaml"]);
    assert_eq!(verify.code, 0, "{}", verify.transcript());

    let before = files_state(&out);
    let again = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(again.code, 0, "{}", again.transcript());
    assert_eq!(files_state(&out), before, "a second export rewrote a file");

    let anna = std::fs::read_to_string(fixtures().join("contacts/v4-anna-grossmann.vcf"))
        .unwrap()
        .replace("END:VCARD", "NOTE:changed on the source\r\nEND:VCARD");
    assert!(matches!(
        src.put_raw(&format!("/{ALICE}/contacts/v4-anna-grossmann.vcf"), &anna),
        201 | 204
    ));
    let third = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(third.code, 0, "{}", third.transcript());
    assert!(read("contacts.vcf").contains("changed on the source"));
    assert_eq!(read("contacts.vcf").matches("BEGIN:VCARD").count(), 7);
    assert_eq!(
        read("calendar.ics"),
        calendar,
        "the calendar file was rewritten"
    );
}

#[test]
fn mail_contacts_calendars_and_tasks_between_two_dovecot_and_radicale_platforms() {
    use crate::support::dovecot::{Dovecot, DovecotConfig};
    let src_mail = Dovecot::start(DovecotConfig {
        users: &[("alice", "old")],
        ..DovecotConfig::default()
    });
    let dst_mail = Dovecot::start(DovecotConfig {
        users: &[("alice", "new")],
        ..DovecotConfig::default()
    });
    let src_dav = DavServer::radicale();
    let dst_dav = DavServer::radicale();
    load_fixtures(&src_dav, "alice", "/alice/");
    let mut c = src_mail.login("alice", "old");
    for n in 0..5 {
        let m = format!(
            "From: Bob <bob@example.org>\r\nTo: alice@example.com\r\nSubject: m{n}\r\n\
             Message-ID: <m{n}@example.org>\r\n\r\nbody {n}\r\n"
        );
        c.append("INBOX", &["\\Seen"], None, m.as_bytes()).unwrap();
    }
    let platform = |name: &str, mail: &Dovecot, dav: &DavServer| {
        format!(
            "  {name}: {{type: imap, imap: {{host: 127.0.0.1, port: {}, security: none}}, dav: {{url: \"{}\"}}}}\n",
            mail.port(),
            dav.dav_config("alice").url
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let platforms = platform("old", &src_mail, &src_dav) + &platform("new", &dst_mail, &dst_dav);
    plan(
        dir.path(),
        "old",
        "new",
        &platforms,
        "[mail, contacts, calendars, tasks]",
    );
    let text = std::fs::read_to_string(dir.path().join("plan.yaml"))
        .unwrap()
        .replace("source: {password", "source: {login: alice, password")
        .replace(
            "destination: {password",
            "destination: {login: alice, password",
        );
    std::fs::write(dir.path().join("plan.yaml"), text).unwrap();

    let first = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(first.code, 0, "{}", first.transcript());
    assert!(first.stdout.contains("5 messages"), "{}", first.stdout);
    let verify = run(dir.path(), &["verify", "plan.yaml"]);
    assert_eq!(verify.code, 0, "{}", verify.transcript());
    for component in [Component::Card, Component::Event, Component::Task] {
        assert_same(
            &contents(&src_dav, "alice", component),
            &contents(&dst_dav, "alice", component),
        );
    }

    let before = files_state(dst_dav.dir());
    let second = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(second.code, 0, "{}", second.transcript());
    assert!(
        second.stdout.contains("0 messages (0 B) copied in"),
        "{}",
        second.stdout
    );
    assert_eq!(
        files_state(dst_dav.dir()),
        before,
        "the second apply wrote to the DAV server"
    );
}
