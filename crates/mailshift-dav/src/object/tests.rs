//! The object module against a corpus of awkward objects (the kind exports and servers
//! produce), parse to rewrite to files.

use super::*;
use crate::store::Component;

fn crlf(s: &str) -> Vec<u8> {
    s.replace('\n', "\r\n").into_bytes()
}

const RECURRING: &str = "BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Test//Test//EN
BEGIN:VTIMEZONE
TZID:Europe/Paris
BEGIN:STANDARD
DTSTART:19701025T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:19700329T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
END:VTIMEZONE
BEGIN:VEVENT
UID:weekly-1@example.com
DTSTAMP:20240101T000000Z
DTSTART;TZID=Europe/Paris:20240108T100000
DTEND;TZID=Europe/Paris:20240108T110000
RRULE:FREQ=WEEKLY;COUNT=10
EXDATE;TZID=Europe/Paris:20240122T100000
SUMMARY:Weekly sync
END:VEVENT
BEGIN:VEVENT
UID:weekly-1@example.com
DTSTAMP:20240101T000000Z
RECURRENCE-ID;TZID=Europe/Paris:20240115T100000
DTSTART;TZID=Europe/Paris:20240115T140000
DTEND;TZID=Europe/Paris:20240115T150000
SUMMARY:Weekly sync (moved)
END:VEVENT
BEGIN:VEVENT
UID:weekly-1@example.com
DTSTAMP:20240101T000000Z
RECURRENCE-ID;TZID=Europe/Paris:20240129T100000
DTSTART;TZID=Europe/Paris:20240129T100000
STATUS:CANCELLED
SUMMARY:Weekly sync
END:VEVENT
END:VCALENDAR
";

#[test]
fn a_recurring_event_with_its_overrides_is_one_item_kept_byte_for_byte() {
    let data = crlf(RECURRING);
    let item = parse(&data).unwrap();
    assert_eq!(item.component, Component::Event);
    assert_eq!(item.uid.as_deref(), Some("weekly-1@example.com"));
    assert_eq!(item.summary.as_deref(), Some("Weekly sync"));
    assert_eq!(item.data, data);
    assert_eq!(identity(&item), "uid:weekly-1@example.com");
    assert_eq!(file_name(&identity(&item)), "weekly-1@example.com");
}

#[test]
fn file_names_are_safe() {
    assert_eq!(file_name("uid:abc-DEF_1.2@x"), "abc-DEF_1.2@x");
    for unsafe_uid in ["uid:a/b", "uid:..", "uid:", "uid:a b", "uid:é"] {
        let name = file_name(unsafe_uid);
        assert_eq!(name.len(), 40, "{unsafe_uid}");
        assert!(name.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    assert_eq!(file_name(&format!("uid:{}", "a".repeat(101))).len(), 40);
    assert_eq!(file_name(&format!("uid:{}", "a".repeat(100))).len(), 100);
    assert_eq!(file_name("sha256:00ff").len(), 40);
}

#[test]
fn the_content_hash_ignores_what_servers_rewrite() {
    let data = crlf(RECURRING);
    // What a re-serializing server might send back: LF, different folding, lowercase names,
    // another PRODID and DTSTAMP, properties and components in another order, quoted params.
    let rewritten = RECURRING
        .replace("PRODID:-//Test//Test//EN", "PRODID:-//Radicale//NONSGML Radicale Server//EN")
        .replace("DTSTAMP:20240101T000000Z", "DTSTAMP:20250101T120000Z")
        .replace("SUMMARY:Weekly sync (moved)", "SUMMARY:Weekly sync (mo\n ved)")
        .replace("DTSTART;TZID=Europe/Paris:20240108T100000", "dtstart;tzid=\"Europe/Paris\":20240108T100000")
        .replace("RRULE:FREQ=WEEKLY;COUNT=10\nEXDATE", "EXDATE")
        .replace("SUMMARY:Weekly sync\nEND:VEVENT\nBEGIN:VEVENT\nUID:weekly-1@example.com\nDTSTAMP:20250101T120000Z\nRECURRENCE-ID;TZID=Europe/Paris:20240115", "RRULE:FREQ=WEEKLY;COUNT=10\nSUMMARY:Weekly sync\nEND:VEVENT\nBEGIN:VEVENT\nUID:weekly-1@example.com\nDTSTAMP:20250101T120000Z\nRECURRENCE-ID;TZID=Europe/Paris:20240115");
    assert_ne!(rewritten.as_bytes(), &data[..]);
    assert_eq!(content_hash(&data), content_hash(rewritten.as_bytes()));
    let edited = RECURRING.replace(
        "SUMMARY:Weekly sync (moved)",
        "SUMMARY:Weekly sync (moved again)",
    );
    assert_ne!(content_hash(&data), content_hash(edited.as_bytes()));
}
