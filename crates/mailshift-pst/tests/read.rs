//! The reader against real PST files (tests/data/pst at the workspace root, README there).

use std::path::PathBuf;

use mailshift_pst::pim::PimItem;
use mailshift_pst::{FolderKind, Pst};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/pst").join(name)
}

#[test]
fn a_pst_lists_its_folders_and_rebuilds_its_mail() {
    let pst = Pst::open(&data("aspose-outlook.pst")).unwrap();
    let (folders, problems) = pst.folders();
    assert!(problems.is_empty(), "{problems:?}");
    let inbox = folders.iter().find(|f| f.path == "Inbox").unwrap();
    assert_eq!(inbox.kind, FolderKind::Mail);
    assert_eq!(inbox.items.len(), 8);
    assert!(folders.iter().any(|f| f.path == "Inbox/SubInbox"));
    let cal = folders.iter().find(|f| f.kind == FolderKind::Calendar).unwrap();
    assert_eq!(cal.items.len(), 1);
    let mut subjects = Vec::new();
    let mut notes = Vec::new();
    for nid in &inbox.items {
        let m = pst.mail("Inbox", *nid).unwrap();
        let text = String::from_utf8_lossy(&m.bytes).into_owned();
        let subject = text.lines().find(|l| l.starts_with("Subject:")).unwrap().to_string();
        // The two embedded messages of "this message contains embedded MSG" have no
        // PidTagAttachMethod, which outlook-pst refuses: named, the message goes without them.
        notes.extend(m.notes.clone());
        if subject.contains("Multiple attachments") {
            assert_eq!(text.matches("Content-Disposition: attachment").count(), 3, "{text}");
            assert!(m.date.is_some());
            assert!(m.flags.contains(&"\\Seen".to_string()), "{:?}", m.flags);
        }
        // The same item read twice gives the same bytes (the content hash is its identity).
        assert_eq!(pst.mail("Inbox", *nid).unwrap().bytes, m.bytes);
        subjects.push(subject);
    }
    assert!(subjects.iter().any(|s| s.contains("HTML body")), "{subjects:?}");
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes.iter().all(|n| n.contains("item 0x200184: attachment")), "{notes:?}");
    for f in folders.iter().filter(|f| matches!(f.kind, FolderKind::Calendar | FolderKind::Contacts)) {
        for nid in &f.items {
            println!("{:?}", pst.pim(&f.path, *nid).unwrap());
        }
    }
}

#[test]
fn contacts_and_appointments_become_vcards_and_events() {
    let pst = Pst::open(&data("java-libpst-dist-list.pst")).unwrap();
    let (folders, _) = pst.folders();
    let contacts = folders.iter().find(|f| f.kind == FolderKind::Contacts).unwrap();
    let items: Vec<PimItem> = contacts.items.iter().map(|n| pst.pim("Contacts", *n).unwrap()).collect();
    let card = items
        .iter()
        .find_map(|i| match i {
            PimItem::Contact { vcard, .. } => Some(vcard.clone()),
            _ => None,
        })
        .unwrap();
    assert!(card.contains("EMAIL;TYPE=INTERNET:contact1@rjohnson.id.au"), "{card}");
    assert!(items.iter().any(|i| matches!(i, PimItem::Skipped(c) if c == "IPM.DistList")));
    let cal = folders.iter().find(|f| f.kind == FolderKind::Calendar).unwrap();
    let PimItem::Calendar { ical, .. } = pst.pim("Calendar", cal.items[0]).unwrap() else {
        panic!("not an event");
    };
    assert!(ical.contains("SUMMARY:Test appointment"), "{ical}");
    assert!(ical.contains("DTSTART:"), "{ical}");
    println!("{card}\n{ical}");
}
