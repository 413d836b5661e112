//! The file store in a temporary directory: reading a tree with a bad object, writing and
//! reading back, preconditions, and two stores sharing one calendar file.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use super::*;

/// The store never waits on anything: one poll finishes every call.
fn run<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("a file store call waited"),
    }
}

fn card(uid: &str, name: &str) -> Vec<u8> {
    format!("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\nEND:VCARD\r\n")
        .into_bytes()
}

fn event(uid: &str, summary: &str) -> Vec<u8> {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n\
         DTSTAMP:20240101T000000Z\r\nDTSTART;VALUE=DATE:20240101\r\nSUMMARY:{summary}\r\n\
         END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    .into_bytes()
}

fn task(uid: &str, summary: &str) -> Vec<u8> {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\nBEGIN:VTODO\r\nUID:{uid}\r\n\
         DTSTAMP:20240101T000000Z\r\nDUE;VALUE=DATE:20240201\r\nSTATUS:NEEDS-ACTION\r\n\
         SUMMARY:{summary}\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
    )
    .into_bytes()
}

fn like(components: &[Component], display: &str) -> Collection {
    Collection {
        name: display.to_lowercase(),
        href: String::new(),
        display_name: Some(display.to_string()),
        color: Some("#FF0000".into()),
        description: None,
        components: components.to_vec(),
        sync_token: None,
        ctag: None,
        vcard_versions: Vec::new(),
        max_size: None,
    }
}

fn written(outcome: PutOutcome) -> String {
    match outcome {
        PutOutcome::Written { etag: Some(etag) } => etag,
        other => panic!("not written: {other:?}"),
    }
}

#[test]
fn reads_a_tree_and_reports_a_bad_object_with_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut vcf = card("a", "Ann");
    vcf.extend_from_slice(b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Broken\r\nNOCOLON\r\nEND:VCARD\r\n");
    vcf.extend_from_slice(&card("b", "Bob"));
    fs::write(root.join("contacts.vcf"), &vcf).unwrap();
    fs::create_dir_all(root.join("cal")).unwrap();
    let mut ics = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nX-WR-CALNAME:Work\r\n".to_vec();
    for data in [event("e1", "Meeting"), task("t1", "Report")] {
        let text = String::from_utf8(data).unwrap();
        let body = text.split("PRODID:-//Test//EN\r\n").nth(1).unwrap();
        ics.extend_from_slice(body.trim_end_matches("END:VCALENDAR\r\n").as_bytes());
    }
    ics.extend_from_slice(b"END:VCALENDAR\r\n");
    fs::write(root.join("cal/work.ics"), &ics).unwrap();
    fs::create_dir_all(root.join(".hidden")).unwrap();
    fs::write(root.join(".hidden/secret.vcf"), card("h", "Hidden")).unwrap();
    fs::write(root.join(".dot.vcf"), card("h", "Hidden")).unwrap();
    fs::write(root.join("notes.txt"), "not a card").unwrap();
    // An event in a .vcf: skipped and said, the file's cards still read.
    let mut mixed = card("m", "Mixed");
    mixed.extend_from_slice(&event("e-in-vcf", "Lost"));
    fs::write(root.join("mixed.vcf"), &mixed).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::OsStr::from_bytes(b"caf\xe9.vcf");
        fs::write(root.join(name), card("latin1", "Name")).unwrap();
    }

    let store = FileStore::new(root, false);
    let mut books = run(store.collections(Component::Card)).unwrap();
    assert_eq!(books.len(), 2);
    let mixed = books.pop().unwrap();
    assert_eq!(mixed.name, "mixed");
    assert_eq!(run(store.list(&mixed)).unwrap().len(), 1);
    assert_eq!(books[0].name, "contacts");
    assert_eq!(books[0].href, "contacts.vcf");
    assert_eq!(books[0].display_name.as_deref(), Some("contacts"));
    assert_eq!(books[0].components, [Component::Card]);
    assert!(books[0].ctag.is_some());
    let calendars = run(store.collections(Component::Event)).unwrap();
    assert_eq!(calendars.len(), 1);
    assert_eq!(calendars[0].name, "cal/work");
    assert_eq!(calendars[0].display_name.as_deref(), Some("Work"));
    assert_eq!(calendars[0].components, [Component::Event, Component::Task]);
    assert_eq!(run(store.collections(Component::Task)).unwrap(), calendars);
    assert!(
        run(store.collections(Component::Journal))
            .unwrap()
            .is_empty()
    );

    let problems = store.problems();
    let bad = problems.iter().find(|p| p.0 == "contacts.vcf").unwrap();
    let wrong = problems.iter().find(|p| p.0 == "mixed.vcf").unwrap();
    assert_eq!(wrong.1.line, 7);
    assert!(wrong.1.message.contains("move it to a .ics file"));
    assert_eq!(bad.1.line, 10);
    assert!(bad.1.message.contains("NOCOLON"));
    #[cfg(unix)]
    {
        assert_eq!(problems.len(), 3, "{problems:?}");
        let latin1 = problems.iter().find(|p| p.0.starts_with("caf")).unwrap();
        assert_eq!(latin1.1.line, 0);
        assert!(
            latin1
                .1
                .to_string()
                .starts_with("the file name is not UTF-8")
        );
    }

    let listed = run(store.list(&books[0])).unwrap();
    let hrefs: Vec<_> = listed.iter().map(|l| l.href.as_str()).collect();
    assert_eq!(hrefs, ["contacts.vcf#a", "contacts.vcf#b"]);
    assert_eq!(store.line_of("contacts.vcf#b"), Some(12));
    assert_eq!(store.line_of("contacts.vcf#zz"), None);
    let fetched = run(store.fetch(
        &books[0],
        &["contacts.vcf#b".into(), "contacts.vcf#zz".into()],
    ))
    .unwrap();
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched[0].data, card("b", "Bob"));
    assert_eq!(fetched[0].etag, listed[1].etag);

    let items = run(store.list(&calendars[0])).unwrap();
    assert_eq!(items.len(), 2);
    let fetched = run(store.fetch(&calendars[0], &[items[1].href.clone()])).unwrap();
    assert_eq!(
        object::parse(&fetched[0].data).unwrap().component,
        Component::Task
    );

    // A source is never written.
    let refused = run(store.put(
        &books[0],
        "contacts.vcf#c",
        &card("c", "C"),
        Precondition::Absent,
    ));
    assert_eq!(refused.unwrap_err().kind, ErrorKind::Config);
    assert!(run(store.create_collection("new", &books[0])).is_err());
    assert!(!store.schedules());
    assert_eq!(run(store.changes(&books[0], "t")).unwrap(), None);
}

#[test]
fn writes_flushes_and_reads_back_the_same_hrefs_and_etags() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("alice@example.com");
    let store = FileStore::new(&root, true);
    assert!(run(store.collections(Component::Card)).unwrap().is_empty());
    let book =
        run(store.create_collection("Contacts", &like(&[Component::Card], "Contacts"))).unwrap();
    assert_eq!(book.href, "Contacts.vcf");
    // A display name cannot break out of its line.
    let hostile = like(&[Component::Event], "Work; Home\r\nX-INJECTED:1");
    let cal = run(store.create_collection("team/Work", &hostile)).unwrap();
    assert_eq!(cal.href, "team/Work.ics");
    let mut etags = Vec::new();
    for (uid, name) in [("a", "Ann"), ("b", "Bob")] {
        let href = store.href_for(&book, uid, Component::Card);
        etags.push((
            href.clone(),
            written(run(store.put(&book, &href, &card(uid, name), Precondition::Absent)).unwrap()),
        ));
    }
    let href = store.href_for(&cal, "e1", Component::Event);
    etags.push((
        href.clone(),
        written(
            run(store.put(&cal, &href, &event("e1", "Meeting"), Precondition::Absent)).unwrap(),
        ),
    ));
    // An empty calendar is written too, as a valid VCALENDAR.
    run(store.create_collection("Empty", &like(&[Component::Task], "Empty"))).unwrap();
    run(store.flush()).unwrap();
    assert!(
        !fs::read_dir(root.join("team")).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp"))
    );

    let again = FileStore::new(&root, false);
    let books = run(again.collections(Component::Card)).unwrap();
    let cals = run(again.collections(Component::Event)).unwrap();
    assert_eq!(books.len(), 1);
    assert_eq!(
        cals.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["Empty", "team/Work"]
    );
    let work = fs::read_to_string(root.join("team/Work.ics")).unwrap();
    assert_eq!(
        cals[1].display_name.as_deref(),
        Some("Work; Home X-INJECTED:1"),
        "{work}"
    );
    assert_eq!(cals[1].color.as_deref(), Some("#FF0000"));
    let mut listed = run(again.list(&books[0])).unwrap();
    listed.extend(run(again.list(&cals[1])).unwrap());
    let got: Vec<_> = listed
        .into_iter()
        .map(|l| (l.href, l.etag.unwrap()))
        .collect();
    assert_eq!(got, etags);
    let fetched = run(again.fetch(&books[0], &["Contacts.vcf#a".into()])).unwrap();
    assert_eq!(fetched[0].data, card("a", "Ann"));
    let empty = fs::read_to_string(root.join("Empty.ics")).unwrap();
    assert!(
        empty.starts_with("BEGIN:VCALENDAR\r\n") && empty.contains("X-WR-CALNAME:Empty"),
        "{empty}"
    );
    assert!(again.problems().is_empty());
}

#[test]
fn preconditions_are_checked_against_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path(), true);
    let book = run(store.create_collection("c", &like(&[Component::Card], "c"))).unwrap();
    let etag =
        written(run(store.put(&book, "c.vcf#a", &card("a", "Ann"), Precondition::Absent)).unwrap());
    assert_eq!(
        run(store.put(&book, "c.vcf#a", &card("a", "Ann 2"), Precondition::Absent)).unwrap(),
        PutOutcome::PreconditionFailed
    );
    assert_eq!(
        run(store.put(
            &book,
            "c.vcf#a",
            &card("a", "Ann 2"),
            Precondition::Matches("nope".into())
        ))
        .unwrap(),
        PutOutcome::PreconditionFailed
    );
    assert_eq!(
        run(store.put(
            &book,
            "c.vcf#zz",
            &card("zz", "Z"),
            Precondition::Matches(etag.clone())
        ))
        .unwrap(),
        PutOutcome::PreconditionFailed
    );
    let etag2 = written(
        run(store.put(
            &book,
            "c.vcf#a",
            &card("a", "Ann 2"),
            Precondition::Matches(etag.clone()),
        ))
        .unwrap(),
    );
    assert_ne!(etag, etag2);
    // The same UID under another name is a conflict, as on a DAV server.
    assert_eq!(
        run(store.put(
            &book,
            "c.vcf#other",
            &card("a", "Ann 3"),
            Precondition::Absent
        ))
        .unwrap(),
        PutOutcome::UidConflict {
            href: Some("c.vcf#a".into())
        }
    );
    assert!(matches!(
        run(store.put(&book, "c.vcf#x", b"garbage", Precondition::Absent)).unwrap(),
        PutOutcome::Refused { status: 415, .. }
    ));
    assert!(matches!(
        run(store.put(&book, "c.vcf#e", &event("e", "E"), Precondition::Absent)).unwrap(),
        PutOutcome::Refused { status: 415, .. }
    ));
    assert!(!run(store.delete("c.vcf#a", Some(&etag))).unwrap());
    assert!(run(store.delete("c.vcf#a", Some(&etag2))).unwrap());
    assert!(!run(store.delete("c.vcf#a", None)).unwrap());
    run(store.flush()).unwrap();
    assert_eq!(fs::read(dir.path().join("c.vcf")).unwrap(), b"");
}

#[test]
fn a_file_with_a_bad_object_is_never_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let mut vcf = card("a", "Ann");
    vcf.extend_from_slice(b"BEGIN:VCARD\r\nFN:cut short\r\n");
    fs::write(dir.path().join("c.vcf"), &vcf).unwrap();
    let store = FileStore::new(dir.path(), true);
    let books = run(store.collections(Component::Card)).unwrap();
    let err = run(store.put(
        &books[0],
        "c.vcf#b",
        &card("b", "Bob"),
        Precondition::Absent,
    ))
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Config);
    assert!(err.message.contains("line 7"), "{}", err.message);
    run(store.flush()).unwrap();
    assert_eq!(fs::read(dir.path().join("c.vcf")).unwrap(), vcf);
}

#[test]
fn events_and_tasks_stores_sharing_a_calendar_file_keep_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let events = FileStore::new(dir.path(), true);
    let tasks = FileStore::new(dir.path(), true);
    // Both read the (empty) directory before either writes.
    assert!(
        run(events.collections(Component::Event))
            .unwrap()
            .is_empty()
    );
    assert!(run(tasks.collections(Component::Task)).unwrap().is_empty());

    let cal =
        run(events.create_collection("personal", &like(&[Component::Event], "Personal"))).unwrap();
    written(
        run(events.put(
            &cal,
            "personal.ics#e1",
            &event("e1", "Dinner"),
            Precondition::Absent,
        ))
        .unwrap(),
    );
    let tcal =
        run(tasks.create_collection("personal", &like(&[Component::Task], "Personal"))).unwrap();
    written(
        run(tasks.put(
            &tcal,
            "personal.ics#t1",
            &task("t1", "Shopping"),
            Precondition::Absent,
        ))
        .unwrap(),
    );
    run(events.flush()).unwrap();
    run(tasks.flush()).unwrap();
    // A second round in the other order, each store with its stale view.
    written(
        run(tasks.put(
            &tcal,
            "personal.ics#t2",
            &task("t2", "Laundry"),
            Precondition::Absent,
        ))
        .unwrap(),
    );
    written(
        run(events.put(
            &cal,
            "personal.ics#e2",
            &event("e2", "Lunch"),
            Precondition::Absent,
        ))
        .unwrap(),
    );
    run(tasks.flush()).unwrap();
    run(events.flush()).unwrap();

    let reader = FileStore::new(dir.path(), false);
    let cals = run(reader.collections(Component::Task)).unwrap();
    assert_eq!(cals.len(), 1);
    assert_eq!(cals[0].components, [Component::Event, Component::Task]);
    assert_eq!(cals[0].display_name.as_deref(), Some("Personal"));
    let hrefs: Vec<_> = run(reader.list(&cals[0]))
        .unwrap()
        .into_iter()
        .map(|l| l.href)
        .collect();
    assert_eq!(
        hrefs,
        [
            "personal.ics#e1",
            "personal.ics#t1",
            "personal.ics#t2",
            "personal.ics#e2"
        ]
    );
    let text = fs::read_to_string(dir.path().join("personal.ics")).unwrap();
    assert_eq!(text.matches("BEGIN:VCALENDAR").count(), 1, "{text}");
}
