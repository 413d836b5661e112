//! The reader against real PST files (tests/data/pst at the workspace root, README there).

use std::path::PathBuf;

use mailshift_pst::pim::PimItem;
use mailshift_pst::{FolderKind, Pst};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/pst")
        .join(name)
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
    let cal = folders
        .iter()
        .find(|f| f.kind == FolderKind::Calendar)
        .unwrap();
    assert_eq!(cal.items.len(), 1);
    let mut subjects = Vec::new();
    let mut notes = Vec::new();
    for nid in &inbox.items {
        let m = pst.mail("Inbox", *nid).unwrap();
        let text = String::from_utf8_lossy(&m.bytes).into_owned();
        let subject = text
            .lines()
            .find(|l| l.starts_with("Subject:"))
            .unwrap()
            .to_string();
        // The two embedded messages of "this message contains embedded MSG" have no
        // PidTagAttachMethod, which outlook-pst refuses: named, the message goes without them.
        notes.extend(m.notes.clone());
        if subject.contains("Multiple attachments") {
            assert_eq!(
                text.matches("Content-Disposition: attachment").count(),
                3,
                "{text}"
            );
            assert!(m.date.is_some());
            assert!(m.flags.contains(&"\\Seen".to_string()), "{:?}", m.flags);
        }
        // The same item read twice gives the same bytes (the content hash is its identity).
        assert_eq!(pst.mail("Inbox", *nid).unwrap().bytes, m.bytes);
        subjects.push(subject);
    }
    assert!(
        subjects.iter().any(|s| s.contains("HTML body")),
        "{subjects:?}"
    );
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(
        notes
            .iter()
            .all(|n| n.contains("item 0x200184: attachment")),
        "{notes:?}"
    );
    let contacts = folders
        .iter()
        .find(|f| f.kind == FolderKind::Contacts)
        .unwrap();
    let PimItem::Contact { vcard, .. } = pst.pim(&contacts.path, contacts.items[0]).unwrap() else {
        panic!("not a contact");
    };
    for line in [
        "N:Razzaq;Saqib;;;",
        "EMAIL;TYPE=INTERNET:saqib.razzaq@xp.local",
        "TEL;TYPE=CELL:3334443333",
        "ORG:Aspose",
        "TITLE:Developer",
    ] {
        assert!(vcard.contains(line), "{line} in {vcard}");
    }
}

#[test]
fn contacts_and_appointments_become_vcards_and_events() {
    let pst = Pst::open(&data("java-libpst-dist-list.pst")).unwrap();
    let (folders, _) = pst.folders();
    let contacts = folders
        .iter()
        .find(|f| f.kind == FolderKind::Contacts)
        .unwrap();
    let items: Vec<PimItem> = contacts
        .items
        .iter()
        .map(|n| pst.pim("Contacts", *n).unwrap())
        .collect();
    let card = items
        .iter()
        .find_map(|i| match i {
            PimItem::Contact { vcard, .. } => Some(vcard.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        card.contains("EMAIL;TYPE=INTERNET:contact1@rjohnson.id.au"),
        "{card}"
    );
    assert!(
        items
            .iter()
            .any(|i| matches!(i, PimItem::Skipped(c) if c == "IPM.DistList"))
    );
    let cal = folders
        .iter()
        .find(|f| f.kind == FolderKind::Calendar)
        .unwrap();
    let PimItem::Calendar { ical, .. } = pst.pim("Calendar", cal.items[0]).unwrap() else {
        panic!("not an event");
    };
    assert!(ical.contains("SUMMARY:Test appointment"), "{ical}");
    assert!(ical.contains("DTSTART:"), "{ical}");
    // Three occurrences deleted in Outlook, two of them then modified: one EXDATE, two
    // overrides in the same object.
    assert!(ical.contains("RRULE:FREQ="), "{ical}");
    assert_eq!(ical.matches("EXDATE:").count(), 1, "{ical}");
    assert_eq!(ical.matches("RECURRENCE-ID:").count(), 2, "{ical}");
}

/// Every item of every folder read; errors collected, never a panic.
fn read_all(pst: &Pst) -> (usize, Vec<String>) {
    let (folders, mut problems) = pst.folders();
    let mut ok = 0;
    for f in &folders {
        for nid in &f.items {
            let r = match f.kind {
                FolderKind::Mail => pst.mail(&f.path, *nid).map(|_| ()),
                FolderKind::Other => Ok(()),
                _ => pst.pim(&f.path, *nid).map(|_| ()),
            };
            match r {
                Ok(()) => ok += 1,
                Err(e) => problems.push(e),
            }
        }
    }
    (ok, problems)
}

#[test]
fn a_damaged_pst_reports_what_it_cannot_read_and_goes_on() {
    let bytes = std::fs::read(data("aspose-outlook.pst")).unwrap();
    let dir = std::env::temp_dir().join(format!("mailshift-pst-damaged-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (whole, none) = read_all(&Pst::open(&data("aspose-outlook.pst")).unwrap());
    assert!(none.is_empty(), "{none:?}");

    // Truncated in the middle: either the file is refused as a whole (named), or the items
    // past the cut are named and the others read.
    let cut = dir.join("truncated.pst");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    match Pst::open(&cut) {
        Err(e) => assert!(e.contains("truncated.pst"), "{e}"),
        Ok(pst) => {
            let (ok, problems) = read_all(&pst);
            assert!(ok < whole, "{ok} of {whole}");
            assert!(
                problems.iter().all(|p| p.contains("truncated.pst")),
                "{problems:?}"
            );
        }
    }

    // Bytes flipped in one page (offset found once by trying; the file is fixed): the items
    // behind it fail, each named with its file, folder and NID, and the others still read.
    let mut flipped = bytes.clone();
    for b in &mut flipped[FLIP..FLIP + 16] {
        *b ^= 0xFF;
    }
    let bad = dir.join("flipped.pst");
    std::fs::write(&bad, &flipped).unwrap();
    let pst = Pst::open(&bad).unwrap();
    let (ok, problems) = read_all(&pst);
    assert!(!problems.is_empty());
    assert!(ok > 0 && ok < whole, "{ok} of {whole}: {problems:?}");
    assert!(
        problems
            .iter()
            .all(|p| p.contains("flipped.pst: folder Inbox: item 0x")),
        "{problems:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// 16 bytes flipped here break a B-tree page that three Inbox items are reached through.
const FLIP: usize = 0x9000;
