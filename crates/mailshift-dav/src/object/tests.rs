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

const WINDOWS_TZ: &str = "BEGIN:VCALENDAR
METHOD:PUBLISH
PRODID:Microsoft Exchange Server 2010
VERSION:2.0
X-WR-TIMEZONE:W. Europe Standard Time
BEGIN:VTIMEZONE
TZID:W. Europe Standard Time
BEGIN:STANDARD
DTSTART:16010101T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:16010101T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3
END:DAYLIGHT
END:VTIMEZONE
BEGIN:VEVENT
ORGANIZER;CN=Alice:mailto:alice@example.com
ATTENDEE;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE;CN=Bob:mailto:bob@example.com
ATTENDEE;SCHEDULE-AGENT=SERVER;CN=Carol:mailto:carol@example.com
ATTENDEE;SCHEDULE-AGENT=CLIENT;CN=Dan:mailto:dan@example.com
DESCRIPTION;LANGUAGE=en-US:Quarterly review\\n
UID:040000008200E00074C5B7101A82E00800000000D0F6C5E1B6D4D901000000000000000010000000A1
SUMMARY;LANGUAGE=en-US:Quarterly review
DTSTART;TZID=W. Europe Standard Time:20240312T140000
DTEND;TZID=\"W. Europe Standard Time\":20240312T153000
DTSTAMP:20240301T101010Z
END:VEVENT
END:VCALENDAR
";

#[test]
fn windows_time_zones_become_iana_and_only_those_lines_change() {
    let data = crlf(WINDOWS_TZ);
    let item = parse(&data).unwrap();
    let (out, rewrites) = prepare(&item, &Profile::default());
    assert_eq!(
        rewrites,
        vec![Rewrite::WindowsTimeZone {
            from: "W. Europe Standard Time".into(),
            to: "Europe/Berlin".into()
        }]
    );
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(!text.contains("Standard Time"), "{text}");
    assert!(text.contains("\r\nTZID:Europe/Berlin\r\n"));
    assert!(text.contains("\r\nDTSTART;TZID=Europe/Berlin:20240312T140000\r\n"));
    // Quotes are kept where they were.
    assert!(text.contains("\r\nDTEND;TZID=\"Europe/Berlin\":20240312T153000\r\n"));
    assert!(text.contains("\r\nX-WR-TIMEZONE:Europe/Berlin\r\n"));
    // Every other line is the same bytes, in the same place.
    let expected = WINDOWS_TZ.replace("W. Europe Standard Time", "Europe/Berlin");
    assert_eq!(text, String::from_utf8(crlf(&expected)).unwrap());
    assert!(rewrites[0].to_string().contains("Europe/Berlin"));
    // The result is still one valid unit with the same UID.
    assert_eq!(parse(&out).unwrap().uid, item.uid);
}

#[test]
fn schedule_agent_client_marks_every_attendee_and_the_organizer() {
    let data = crlf(WINDOWS_TZ);
    let item = parse(&data).unwrap();
    let profile = Profile {
        schedule_agent_client: true,
        require_uid: false,
        ..Profile::default()
    };
    let (out, rewrites) = prepare(&item, &profile);
    assert!(rewrites.contains(&Rewrite::ScheduleAgentClient));
    let text = String::from_utf8(out).unwrap();
    let unfolded = text.replace("\r\n ", "");
    for who in ["Alice", "Bob", "Carol", "Dan"] {
        let line = unfolded
            .lines()
            .find(|l| l.contains(&format!("CN={who}")))
            .unwrap();
        assert!(line.contains("SCHEDULE-AGENT=CLIENT"), "{line}");
        assert!(!line.contains("SERVER"), "{line}");
    }
    // Dan's line was already right: untouched.
    assert!(text.contains("\r\nATTENDEE;SCHEDULE-AGENT=CLIENT;CN=Dan:mailto:dan@example.com\r\n"));
    // Long rewritten lines are folded at 75 octets.
    let attendees = text
        .split("ATTENDEE;ROLE")
        .nth(1)
        .unwrap()
        .split("\r\nATTENDEE")
        .next()
        .unwrap();
    assert!(attendees.contains("\r\n "), "{attendees}");
    assert!(attendees.split("\r\n").all(|l| l.len() <= 75), "{text}");
}

#[test]
fn an_object_that_needs_nothing_is_returned_untouched() {
    let data = crlf(RECURRING);
    let item = parse(&data).unwrap();
    let profile = Profile {
        vcard_versions: vec!["3.0".into()],
        schedule_agent_client: true,
        require_uid: false,
    };
    let (out, rewrites) = prepare(&item, &profile);
    assert!(rewrites.is_empty());
    assert_eq!(out, data);
}

const TASK: &str = "BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Test//Test//EN
BEGIN:VTODO
UID:task-1
DTSTAMP:20240101T000000Z
SUMMARY:File the taxes
DUE;VALUE=DATE:20240415
STATUS:IN-PROCESS
PERCENT-COMPLETE:40
PRIORITY:1
BEGIN:VALARM
ACTION:DISPLAY
DESCRIPTION:Taxes
TRIGGER:-P1D
END:VALARM
END:VTODO
END:VCALENDAR
";

#[test]
fn a_task_keeps_status_due_and_progress() {
    let data = TASK.as_bytes();
    let item = parse(data).unwrap();
    assert_eq!(item.component, Component::Task);
    assert_eq!(item.summary.as_deref(), Some("File the taxes"));
    assert_eq!(item.data, data);
}

const CARD3: &str = "BEGIN:VCARD
VERSION:3.0
PRODID:-//Apple Inc.//Mac OS X 10.15//EN
N:Müller;Jürgen;;;
FN:Jürgen Müller
ORG:Ex\\, Inc.;
item1.EMAIL;type=INTERNET;type=WORK;type=pref:jm@example.com
TEL;TYPE=CELL,VOICE:+49 170 000000
GEO:52.52;13.40
PHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEx8dGh8eHRocHCAk
 LicgIiwjHBwoNyksMDE0NDQfJzk9ODI8LjM0Mv/AAAsIAAEAAQEBEQD/xAAfAAABBQEBAQEBAQAAAAAAAAAA
 AQIDBAUGBwgJCgv/2gAIAQEAAD8A+f8A/9k=
UID:card-3
REV:2024-01-01T00:00:00Z
END:VCARD
";

#[test]
fn vcard_3_to_4_maps_version_photo_types_and_geo() {
    let item = parse(CARD3.as_bytes()).unwrap();
    assert_eq!(item.summary.as_deref(), Some("Jürgen Müller"));
    let org = parse(
        CARD3
            .replace("FN:Jürgen Müller", "FN:Ex\\, Inc.\\nBerlin")
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(org.summary.as_deref(), Some("Ex, Inc. Berlin"));
    let profile = Profile {
        vcard_versions: vec!["4.0".into()],
        schedule_agent_client: false,
        require_uid: false,
    };
    let (out, rewrites) = prepare(&item, &profile);
    assert_eq!(
        rewrites,
        vec![Rewrite::VcardVersion {
            from: "3.0".into(),
            to: "4.0".into()
        }]
    );
    let text = String::from_utf8(out.clone()).unwrap();
    let unfolded = text.replace("\n ", "");
    assert!(text.starts_with("BEGIN:VCARD\nVERSION:4.0\n"), "{text}");
    assert!(
        unfolded.contains("\nPHOTO:data:image/jpeg;base64,/9j/4AAQ"),
        "{unfolded}"
    );
    assert!(
        unfolded.contains("item1.EMAIL;type=internet;type=work;PREF=1:jm@example.com"),
        "{unfolded}"
    );
    assert!(unfolded.contains("\nTEL;TYPE=cell,voice:+49"), "{unfolded}");
    assert!(unfolded.contains("\nGEO:geo:52.52,13.40\n"), "{unfolded}");
    // Untouched lines keep their bytes.
    assert!(text.contains("\nN:Müller;Jürgen;;;\nFN:Jürgen Müller\nORG:Ex\\, Inc.;\n"));
    // And back: the photo is the same base64, the card is a 3.0 card again.
    let back = parse(&out).unwrap();
    let profile3 = Profile {
        vcard_versions: vec!["3.0".into()],
        schedule_agent_client: false,
        require_uid: false,
    };
    let (again, rewrites) = prepare(&back, &profile3);
    assert_eq!(rewrites.len(), 1);
    let again = String::from_utf8(again).unwrap().replace("\n ", "");
    assert!(again.contains("\nVERSION:3.0\n"), "{again}");
    assert!(
        again.contains("PHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQ"),
        "{again}"
    );
    assert!(
        again.contains("item1.EMAIL;type=INTERNET,PREF;type=WORK:jm@example.com"),
        "{again}"
    );
    assert!(again.contains("\nGEO:52.52;13.40\n"), "{again}");
    // Accepted as is: nothing changes.
    let any = Profile::default();
    assert_eq!(
        prepare(&item, &any),
        (CARD3.as_bytes().to_vec(), Vec::new())
    );
}

const GROUP4: &str = "BEGIN:VCARD\r
VERSION:4.0\r
KIND:group\r
FN:Team\r
MEMBER:urn:uuid:card-3\r
MEMBER:urn:uuid:card-4\r
PHOTO:https://example.com/team.png\r
UID:urn:uuid:group-1\r
END:VCARD\r
";

#[test]
fn vcard_4_groups_become_apple_groups_in_3() {
    let item = parse(GROUP4.as_bytes()).unwrap();
    assert_eq!(identity(&item), "uid:urn:uuid:group-1");
    // A colon is not file-safe: the name is a hash.
    assert_eq!(file_name(&identity(&item)).len(), 40);
    let profile = Profile {
        vcard_versions: vec!["3.0".into()],
        schedule_agent_client: false,
        require_uid: false,
    };
    let (out, _) = prepare(&item, &profile);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        text,
        "BEGIN:VCARD\r\nVERSION:3.0\r\nN:;;;;\r\nX-ADDRESSBOOKSERVER-KIND:group\r\nFN:Team\r\n\
         X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:card-3\r\nX-ADDRESSBOOKSERVER-MEMBER:urn:uuid:card-4\r\n\
         PHOTO;VALUE=uri:https://example.com/team.png\r\nUID:urn:uuid:group-1\r\nEND:VCARD\r\n"
    );
}

#[test]
fn utf8_split_across_a_fold_is_read_whole() {
    // "Zoë" with the two bytes of "ë" on both sides of the fold.
    let mut data = b"BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Zo".to_vec();
    data.extend_from_slice(&[0xC3, b'\r', b'\n', b' ', 0xAB]);
    data.extend_from_slice(b" Quinn\r\nUID:zq\r\nEND:VCARD\r\n");
    let item = parse(&data).unwrap();
    assert_eq!(item.summary.as_deref(), Some("Zoë Quinn"));
    assert_eq!(item.data, data);
}

#[test]
fn without_uid_the_identity_is_the_content_hash() {
    let a = b"BEGIN:VCARD\nVERSION:3.0\nFN:No Uid\nN:Uid;No;;;\nEND:VCARD\n";
    let b =
        b"BEGIN:VCARD\r\nversion:3.0\r\nN:Uid;No;;;\r\nFN:No Uid\r\nREV:2030-01-01\r\nEND:VCARD";
    let (ia, ib) = (parse(a).unwrap(), parse(b).unwrap());
    assert_eq!(ia.uid, None);
    assert!(identity(&ia).starts_with("sha256:"));
    assert_eq!(identity(&ia), identity(&ib));
    assert_eq!(file_name(&identity(&ia)).len(), 40);
}

#[test]
fn all_day_events_and_lf_only_bodies_parse() {
    let data = b"BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:x\nBEGIN:VEVENT\nUID:day\nDTSTART;VALUE=DATE:20240101\nDTEND;VALUE=DATE:20240102\nSUMMARY:New year\nEND:VEVENT\nEND:VCALENDAR";
    let item = parse(data).unwrap();
    assert_eq!(item.summary.as_deref(), Some("New year"));
    assert_eq!(item.data, data.to_vec());
}

#[test]
fn malformed_bodies_are_refused_with_their_line() {
    let cases: &[(&[u8], usize, &str)] = &[
        (b"", 1, "no BEGIN"),
        (b"hello\n", 1, "not a content line"),
        (b"BEGIN:VCARD\nFN:x\n", 1, "END:VCARD"),
        (b"BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:a\nEND:VCALENDAR\n", 2, "END:VEVENT"),
        (
            b"BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:a\nEND:VEVENT\nBEGIN:VEVENT\nUID:b\nEND:VEVENT\nEND:VCALENDAR\n",
            5,
            "several objects",
        ),
        (b"BEGIN:VCARD\nFN:a\nEND:VCARD\nBEGIN:VCARD\nFN:b\nEND:VCARD\n", 4, "second"),
        (b"BEGIN:VCALENDAR\nVERSION:2.0\nEND:VCALENDAR\n", 1, "holds no"),
        (b"BEGIN:VEVENT\nUID:a\nEND:VEVENT\n", 1, "top level"),
        (b"BEGIN:VCARD\nFN;CN=\"x:y\n END:VCARD\n", 2, "closing"),
        (b"BEGIN:VCARD\nEND:VEVENT\nEND:VCARD\n", 2, "without a BEGIN"),
    ];
    for (data, line, words) in cases {
        let e = parse(data).unwrap_err();
        assert_eq!(e.line, *line, "{e} for {:?}", String::from_utf8_lossy(data));
        assert!(e.message.contains(words), "{e}");
        assert!(e.to_string().starts_with(&format!("line {line}: ")));
    }
}

#[test]
fn split_groups_by_uid_with_the_timezones_used_and_goes_on_after_bad_items() {
    let file = format!(
        "{}{}",
        RECURRING.replace(
            "END:VCALENDAR\n",
            "BEGIN:VEVENT\nUID:other\nDTSTART;VALUE=DATE:20240301\nSUMMARY:Day off\nEND:VEVENT\n\
             BEGIN:VEVENT\nUID:broken\nSUMMARY:no end\n\
             BEGIN:VALARM\nTRIGGER:-PT5M\nEND:VEVENT\n\
             BEGIN:VFREEBUSY\nUID:fb\nEND:VFREEBUSY\nEND:VCALENDAR\n"
        ),
        TASK
    );
    let data = crlf(&file);
    let (items, errors) = split_file(&data);
    let uids: Vec<_> = items.iter().map(|(_, i)| i.uid.clone().unwrap()).collect();
    assert_eq!(uids, ["weekly-1@example.com", "other", "task-1"]);
    assert_eq!(items[0].0, 19);
    assert_eq!(items[1].0, 44);
    let lines: Vec<_> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [52, 55], "{errors:?}");
    assert!(errors[0].message.contains("BEGIN:VALARM has no END:VALARM"));
    assert!(errors[1].message.contains("VFREEBUSY"));

    let weekly = String::from_utf8(items[0].1.data.clone()).unwrap();
    assert_eq!(weekly.matches("BEGIN:VEVENT").count(), 3);
    assert_eq!(weekly.matches("BEGIN:VTIMEZONE").count(), 1);
    assert!(weekly.starts_with("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//Test//EN\r\n"));
    let other = String::from_utf8(items[1].1.data.clone()).unwrap();
    assert!(!other.contains("VTIMEZONE"), "unused time zones stay out");
    // The task sits alone in its VCALENDAR: taken as it is.
    assert_eq!(items[2].1.data, crlf(TASK));
    assert_eq!(items[2].1.component, Component::Task);
    for (_, item) in &items {
        assert_eq!(&parse(&item.data).unwrap(), item);
    }
}

#[test]
fn split_of_a_vcf_keeps_each_card_byte_for_byte() {
    let bad = "BEGIN:VCARD\nVERSION:3.0\nFN:Broken\n";
    let file = format!("{CARD3}{bad}{}", GROUP4.replace('\r', ""));
    let (items, errors) = split_file(file.as_bytes());
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].1.data, CARD3.as_bytes());
    assert_eq!(items[1].0, 19);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].line, 16);
}

#[test]
fn join_then_split_gives_the_items_back() {
    let win = crlf(WINDOWS_TZ);
    let recurring = crlf(RECURRING);
    // Another object in the same time zone: its VTIMEZONE must be written once.
    let second = RECURRING
        .replace("weekly-1@example.com", "weekly-2@example.com")
        .replace("PRODID:-//Test//Test//EN", "PRODID:-//Other//EN");
    let inputs: Vec<Vec<u8>> = vec![
        recurring,
        win,
        second.into_bytes(),
        TASK.as_bytes().to_vec(),
    ];
    let refs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
    let joined = join_file(&refs);
    let text = String::from_utf8_lossy(&joined);
    assert_eq!(text.matches("TZID:Europe/Paris").count(), 1);
    assert_eq!(text.matches("BEGIN:VCALENDAR").count(), 1);
    let (items, errors) = split_file(&joined);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(items.len(), inputs.len());
    for ((_, got), want) in items.iter().zip(&inputs) {
        let want = parse(want).unwrap();
        assert_eq!(identity(got), identity(&want));
        assert_eq!(got.component, want.component);
        // METHOD and PRODID are left out of the comparison, the rest is the same.
        assert_eq!(
            content_hash(&got.data),
            content_hash(&want.data),
            "{}\n----\n{}",
            String::from_utf8_lossy(&got.data),
            String::from_utf8_lossy(&want.data)
        );
    }

    let cards: Vec<&[u8]> = vec![CARD3.as_bytes(), GROUP4.as_bytes()];
    let joined = join_file(&cards);
    let (items, errors) = split_file(&joined);
    assert!(errors.is_empty());
    assert_eq!(items[0].1.data, CARD3.as_bytes());
    assert_eq!(items[1].1.data, GROUP4.as_bytes());
    assert!(join_file(&[]).is_empty());
}

#[test]
fn the_content_hash_survives_what_radicale_and_xandikos_were_seen_to_write() {
    // Radicale 3.1.8 (vobject) sent CARD3 back like this: properties sorted, TYPE merged,
    // ORG's empty last component dropped, GEO's `;` escaped, PHOTO unfolded, LF.
    let radicale = "BEGIN:VCARD
VERSION:3.0
PRODID:-//Apple Inc.//Mac OS X 10.15//EN
item1.EMAIL;TYPE=INTERNET,WORK,pref:jm@example.com
FN:Jürgen Müller
GEO:52.52\\;13.40
N:Müller;Jürgen;;;
ORG:Ex\\, Inc.
PHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEx8dGh8eHRocHCAkLicgIiwjHBwoNyksMDE0NDQfJzk9ODI8LjM0Mv/AAAsIAAEAAQEBEQD/xAAfAAABBQEBAQEBAQAAAAAAAAAAAQIDBAUGBwgJCgv/2gAIAQEAAD8A+f8A/9k=
REV:2024-01-01T00:00:00Z
TEL;TYPE=CELL,VOICE:+49 170 000000
UID:card-3
END:VCARD
";
    assert_eq!(
        content_hash(CARD3.as_bytes()),
        content_hash(radicale.as_bytes())
    );
    // But an escaped comma inside a structured value is not a separator.
    let org = CARD3.replace("ORG:Ex\\, Inc.;", "ORG:Ex, Inc.;");
    assert_ne!(content_hash(CARD3.as_bytes()), content_hash(org.as_bytes()));

    // Xandikos 0.2.8 (Python icalendar) reorders the parts of a recurrence rule.
    let xandikos = RECURRING
        .replace("BYMONTH=10;BYDAY=-1SU", "BYDAY=-1SU;BYMONTH=10")
        .replace("RRULE:FREQ=WEEKLY;COUNT=10", "RRULE:COUNT=10;FREQ=WEEKLY");
    assert_eq!(
        content_hash(RECURRING.as_bytes()),
        content_hash(xandikos.as_bytes())
    );

    // Radicale 3.1.8 cuts a vCard 4.0 data: URI at its comma (the photo is lost): a change.
    let cut = "BEGIN:VCARD\nVERSION:4.0\nFN:x\nPHOTO:data:image/jpeg\\;base64\nUID:p\nEND:VCARD\n";
    let whole =
        "BEGIN:VCARD\nVERSION:4.0\nFN:x\nPHOTO:data:image/jpeg;base64,/9j/4AAQ\nUID:p\nEND:VCARD\n";
    assert_ne!(content_hash(cut.as_bytes()), content_hash(whole.as_bytes()));
}

#[test]
fn a_windows_vtimezone_that_becomes_a_duplicate_is_dropped_and_lf_stays_lf() {
    let data = "BEGIN:VCALENDAR
VERSION:2.0
PRODID:x
BEGIN:VTIMEZONE
TZID:Europe/Paris
X-LIC-LOCATION:Europe/Paris
END:VTIMEZONE
BEGIN:VTIMEZONE
TZID:(UTC+01:00) Brussels, Copenhagen, Madrid, Paris
END:VTIMEZONE
BEGIN:VEVENT
UID:dup-tz
DTSTART;TZID=\"(UTC+01:00) Brussels, Copenhagen, Madrid, Paris\":20240101T100000
DTEND;TZID=Europe/Paris:20240101T110000
END:VEVENT
END:VCALENDAR
";
    let item = parse(data.as_bytes()).unwrap();
    let (out, rewrites) = prepare(&item, &Profile::default());
    assert_eq!(rewrites.len(), 1);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        text,
        "BEGIN:VCALENDAR
VERSION:2.0
PRODID:x
BEGIN:VTIMEZONE
TZID:Europe/Paris
X-LIC-LOCATION:Europe/Paris
END:VTIMEZONE
BEGIN:VEVENT
UID:dup-tz
DTSTART;TZID=\"Europe/Paris\":20240101T100000
DTEND;TZID=Europe/Paris:20240101T110000
END:VEVENT
END:VCALENDAR
"
    );
}

/// Every function on damaged copies of the corpus: cut short, and with bytes that mean
/// something to the grammar put in many places. None may panic; what parses must split and
/// rewrite to something that parses again.
#[test]
fn damaged_objects_never_panic() {
    let corpus: Vec<Vec<u8>> = vec![
        crlf(RECURRING),
        crlf(WINDOWS_TZ),
        TASK.as_bytes().to_vec(),
        CARD3.as_bytes().to_vec(),
        GROUP4.as_bytes().to_vec(),
    ];
    let profiles = [
        Profile::default(),
        Profile {
            vcard_versions: vec!["4.0".into()],
            schedule_agent_client: true,
            require_uid: false,
        },
        Profile {
            vcard_versions: vec!["3.0".into()],
            schedule_agent_client: true,
            require_uid: false,
        },
    ];
    let inserts: &[&[u8]] = &[
        b":",
        b";",
        b"\"",
        b"\r\n",
        b"\n ",
        b"\n",
        b"=",
        b",",
        &[0xC3],
        b"\\",
        b"END:VEVENT\n",
        b"BEGIN:VCARD\n",
    ];
    // A fixed linear congruential sequence: the same damage on every run.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |n: usize| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize % n.max(1)
    };
    for original in &corpus {
        for round in 0..300 {
            let mut data = original.clone();
            if round % 3 == 0 {
                data.truncate(next(data.len() + 1));
            } else {
                for _ in 0..1 + round % 4 {
                    let at = next(data.len() + 1);
                    let what = inserts[next(inserts.len())];
                    data.splice(at..at, what.iter().copied());
                }
            }
            let _ = content_hash(&data);
            let (items, _) = split_file(&data);
            let refs: Vec<&[u8]> = items.iter().map(|(_, i)| i.data.as_slice()).collect();
            let (again, _) = split_file(&join_file(&refs));
            assert_eq!(
                again.len(),
                items.len(),
                "{}",
                String::from_utf8_lossy(&data)
            );
            if let Ok(item) = parse(&data) {
                let _ = identity(&item);
                let _ = file_name(&identity(&item));
                for profile in &profiles {
                    let (out, _) = prepare(&item, profile);
                    let back = parse(&out).unwrap_or_else(|e| {
                        panic!(
                            "{e}\n{}\n----\n{}",
                            String::from_utf8_lossy(&data),
                            String::from_utf8_lossy(&out)
                        )
                    });
                    assert_eq!(back.uid, item.uid);
                }
            }
        }
    }
}

#[test]
fn a_fold_inside_a_utf8_character_is_moved_between_characters() {
    let mut data = b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:zq\r\nFN:Zo".to_vec();
    data.extend_from_slice(&[0xC3, b'\r', b'\n', b' ', 0xAB]);
    data.extend_from_slice(" Quinn\r\nN:Quinn;Zoë;;;\r\nEND:VCARD\r\n".as_bytes());
    let item = parse(&data).unwrap();
    let (out, rewrites) = prepare(&item, &Profile::default());
    assert_eq!(rewrites, [Rewrite::Refolded]);
    assert_eq!(
        String::from_utf8(out.clone()).unwrap(),
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:zq\r\nFN:Zoë Quinn\r\nN:Quinn;Zoë;;;\r\nEND:VCARD\r\n"
    );
    assert_eq!(content_hash(&out), content_hash(&data));
    // Body that is not UTF-8 at all (Latin-1): nothing to refold.
    let latin1 = b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:l1\r\nFN:Zo\xEB\r\nEND:VCARD\r\n";
    let item = parse(latin1).unwrap();
    assert_eq!(
        prepare(&item, &Profile::default()),
        (latin1.to_vec(), Vec::new())
    );
}

#[test]
fn unescaped_commas_in_text_are_escaped_but_lists_are_left_alone() {
    let data = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:esc\r\n\
                SUMMARY;LANGUAGE=fr:F\u{ea}te, bal; feu\\, d'artifice\r\n\
                CATEGORIES:Holiday,Public\r\nLOCATION;VALUE=URI:http://x/a,b\r\n\
                END:VEVENT\r\nEND:VCALENDAR\r\n";
    let item = parse(data.as_bytes()).unwrap();
    let (out, rewrites) = prepare(&item, &Profile::default());
    assert_eq!(rewrites, [Rewrite::TextEscaped]);
    assert_eq!(
        String::from_utf8(out.clone()).unwrap(),
        data.replace("te, bal; feu", "te\\, bal\\; feu")
    );
    assert_eq!(content_hash(&out), content_hash(data.as_bytes()));
    // Already escaped: nothing to do.
    let (again, rewrites) = prepare(&parse(&out).unwrap(), &Profile::default());
    assert!(rewrites.is_empty());
    assert_eq!(again, out);
}

#[test]
fn a_phone_export_in_vcard_21_with_a_bom_and_quoted_printable_is_read() {
    let file = b"\xEF\xBB\xBFBEGIN:VCARD\r\nVERSION:2.1\r\n\
        N;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:=C3=89lo=\r\n=C3=AFse;Anne;;;\r\n\
        NOTE:met in Lyon, 2019\r\n\
        FN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:Anne =C3=89lo=\r\n=C3=AFse\r\n\
        TEL;CELL;PREF:+33600000000\r\nEND:VCARD\r\n\
        BEGIN:VCARD\r\nVERSION:2.1\r\nN:Smith;Bob;;;\r\nFN:Bob Smith\r\nEND:VCARD\r\n";
    let (items, errors) = split_file(file);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(items.len(), 2);
    assert_eq!(items[1].0, 10);
    assert!(items[0].1.data.starts_with(b"BEGIN:VCARD"));
    assert!(identity(&items[0].1).starts_with("sha256:"));
    // 2.1 is not converted: it goes as it is.
    let profile = Profile {
        vcard_versions: vec!["3.0".into()],
        schedule_agent_client: false,
        require_uid: false,
    };
    let (out, rewrites) = prepare(&items[0].1, &profile);
    assert!(rewrites.is_empty());
    assert_eq!(out, items[0].1.data);
}

#[test]
fn an_apple_group_in_3_becomes_a_4_group_with_version_first() {
    let data = "BEGIN:VCARD\r\nN:Team\r\nFN:Team\r\nVERSION:3.0\r\n\
                X-ADDRESSBOOKSERVER-KIND:group\r\n\
                X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:card-3\r\nUID:g3\r\nEND:VCARD\r\n";
    let item = parse(data.as_bytes()).unwrap();
    let profile = Profile {
        vcard_versions: vec!["4.0".into()],
        schedule_agent_client: false,
        require_uid: false,
    };
    let (out, _) = prepare(&item, &profile);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "BEGIN:VCARD\r\nVERSION:4.0\r\nN:Team\r\nFN:Team\r\nKIND:group\r\n\
         MEMBER:urn:uuid:card-3\r\nUID:g3\r\nEND:VCARD\r\n"
    );
}

#[test]
fn an_object_without_uid_gets_one_derived_from_its_content_that_stands_for_it() {
    let card = b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:No Uid\r\nN:Uid;No;;;\r\nEND:VCARD\r\n";
    let item = parse(card).unwrap();
    let source_identity = identity(&item);
    assert!(source_identity.starts_with("sha256:"));
    let profile = Profile {
        require_uid: true,
        ..Profile::default()
    };
    let (out, rewrites) = prepare(&item, &profile);
    assert!(matches!(rewrites.as_slice(), [Rewrite::UidAdded(_)]));
    let written = parse(&out).unwrap();
    assert!(
        written
            .uid
            .as_deref()
            .unwrap()
            .starts_with(DERIVED_UID_PREFIX)
    );
    // Read back from the destination, it is the same object as the source's.
    assert_eq!(identity(&written), source_identity);
    // The same content always gets the same UID; a file keeps the card as it is.
    assert_eq!(prepare(&item, &profile).0, out);
    assert_eq!(prepare(&item, &Profile::default()).0, card.to_vec());
    // An event's component gets it, the time zone does not.
    let event = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VTIMEZONE\r\nTZID:X\r\nEND:VTIMEZONE\r\n\
BEGIN:VEVENT\r\nDTSTART:20270101T000000Z\r\nSUMMARY:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let item = parse(event).unwrap();
    let (out, _) = prepare(&item, &profile);
    let text = String::from_utf8(out.clone()).unwrap();
    assert_eq!(text.matches("UID:").count(), 1, "{text}");
    assert!(text.find("UID:").unwrap() > text.find("BEGIN:VEVENT").unwrap());
    assert_eq!(identity(&parse(&out).unwrap()), identity(&item));
}
