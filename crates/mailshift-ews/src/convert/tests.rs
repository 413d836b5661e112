//! Each mapping both ways: vCard/iCalendar → the EWS request (checked against the published
//! schema) → the item as Exchange would return it → vCard/iCalendar again, keeping the fields.

use super::*;
use crate::client::envelope;
use crate::requests::{Id, create_item, update_item};

fn violations(request: (&str, String)) -> Vec<String> {
    let report = ews_sim::check::check_request(&envelope("Exchange2013_SP1", &request.1));
    assert_eq!(report.operation.as_deref(), Some(request.0));
    report.violations.iter().map(ToString::to_string).collect()
}

/// The item element as the server would store it: the create markup read back as a tree
/// (what GetItem returns for the fields we set).
fn stored(item_xml: &str) -> Node {
    let doc = format!("<r xmlns:t=\"{}\">{item_xml}</r>", crate::xml::TYPES);
    xml::parse(&doc).unwrap().children.remove(0)
}

const CARD: &str = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:ann-1\r\nFN:Ann Doe\r\nN:Doe;Ann;Marie;Dr.;Jr.\r\nNICKNAME:Annie\r\nORG:Acme\\, Inc.;Sales\r\nTITLE:Director\r\nEMAIL;TYPE=work:ann@acme.example\r\nEMAIL:ann@home.example\r\nEMAIL:a3@x.example\r\nEMAIL:a4@x.example\r\nTEL;TYPE=work:+33 1 00\r\nTEL;TYPE=cell:+33 6 00\r\nTEL;TYPE=home,fax:+33 1 99\r\nADR;TYPE=work:;;1 rue X;Paris;IDF;75001;France\r\nBDAY:1980-01-15\r\nURL:https://acme.example\r\nNOTE:line one\\nline two\r\nPHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQ\r\nX-CUSTOM:kept out\r\nGEO:geo:1,2\r\nEND:VCARD\r\n";

#[test]
fn a_contact_goes_to_exchange_in_schema_order_and_comes_back() {
    let out = contact::to_ews(CARD.as_bytes()).unwrap();
    let xml = out.create_xml("ann-1");
    assert_eq!(
        violations(create_item("contacts", &xml, false)),
        Vec::<String>::new()
    );
    assert_eq!(out.photo.as_deref(), Some("/9j/4AAQ"));
    let lost = out.lost.join("\n");
    assert!(lost.contains("a4@x.example"), "{lost}");
    assert!(lost.contains("Dr."), "{lost}");
    assert!(lost.contains("GEO"), "{lost}");
    let item = stored(&xml);
    assert_eq!(read_key(&item).as_deref(), Some("ann-1"));
    let card = String::from_utf8(contact::from_ews(&item, out.photo.as_deref(), "x")).unwrap();
    for expected in [
        "UID:ann-1",
        "FN:Ann Doe",
        "N:Doe;Ann;Marie;;Jr.",
        "NICKNAME:Annie",
        "ORG:Acme\\, Inc.;Sales",
        "TITLE:Director",
        "EMAIL:ann@acme.example",
        "EMAIL:a3@x.example",
        "TEL;VALUE=uri;TYPE=\"work,voice\":tel:+33 1 00",
        "TEL;VALUE=uri;TYPE=\"cell\":tel:+33 6 00",
        "TEL;VALUE=uri;TYPE=\"fax,home\":tel:+33 1 99",
        "ADR;TYPE=work:;;1 rue X;Paris;IDF;75001;France",
        "BDAY:19800115",
        "URL:https://acme.example",
        "NOTE:line one\\nline two",
        "PHOTO:data:image/jpeg;base64,/9j/4AAQ",
    ] {
        assert!(
            card.contains(&format!("{expected}\r\n")),
            "{expected} in\n{card}"
        );
    }
    // Exchange → vCard → Exchange keeps the fields.
    let again = contact::to_ews(card.as_bytes()).unwrap();
    assert_eq!(again.fields, out.fields);
    assert_eq!(again.item_fields, out.item_fields);
    assert_eq!(again.uid, out.uid);
}

#[test]
fn an_update_sets_what_is_there_and_deletes_what_went() {
    let before = contact::to_ews(CARD.as_bytes()).unwrap();
    let item = stored(&before.create_xml("ann-1"));
    let changed = CARD
        .replace("TITLE:Director\r\n", "")
        .replace("NICKNAME:Annie", "NICKNAME:Nan");
    let after = contact::to_ews(changed.as_bytes()).unwrap();
    let updates = after.updates_xml(&contact::present(&item));
    let id = Id {
        id: "AAMkAD1".into(),
        change_key: Some("CQAAAB".into()),
    };
    assert_eq!(
        violations(update_item(&id, &updates, false)),
        Vec::<String>::new()
    );
    assert!(
        updates.contains(
            "<t:DeleteItemField><t:FieldURI FieldURI=\"contacts:JobTitle\"/></t:DeleteItemField>"
        ),
        "{updates}"
    );
    assert!(updates.contains("<t:Nickname>Nan</t:Nickname>"));
    assert!(updates.contains("<t:IndexedFieldURI FieldURI=\"contacts:PhysicalAddress:City\" FieldIndex=\"Business\"/><t:Contact><t:PhysicalAddresses><t:Entry Key=\"Business\"><t:City>Paris</t:City></t:Entry>"), "{updates}");
}

#[test]
fn a_group_becomes_a_distribution_list_and_back() {
    let group = "BEGIN:VCARD\r\nVERSION:4.0\r\nKIND:group\r\nUID:team\r\nFN:Team\r\nMEMBER:mailto:a@x.example\r\nMEMBER:urn:uuid:123\r\nEND:VCARD\r\n";
    let out = contact::to_ews(group.as_bytes()).unwrap();
    let xml = out.create_xml("team");
    assert_eq!(
        violations(create_item("contacts", &xml, false)),
        Vec::<String>::new()
    );
    assert!(out.lost[0].contains("urn:uuid:123"), "{:?}", out.lost);
    let card = String::from_utf8(contact::from_ews(&stored(&xml), None, "x")).unwrap();
    assert!(
        card.contains("KIND:group\r\n")
            && card.contains("MEMBER:mailto:a@x.example\r\n")
            && card.contains("UID:team\r\n"),
        "{card}"
    );
}

/// The check above can fail: a contact with its fields out of order is reported.
#[test]
fn the_schema_check_sees_a_misordered_contact() {
    let xml = "<t:Contact><t:Surname>Doe</t:Surname><t:GivenName>Ann</t:GivenName></t:Contact>";
    assert_eq!(violations(create_item("contacts", xml, false)).len(), 1);
}

const TODO: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//y//EN\r\nBEGIN:VTODO\r\nUID:taxes-2027\r\nDTSTAMP:20261128T100000Z\r\nSUMMARY:File taxes\r\nDESCRIPTION:Forms\\, receipts\r\nPRIORITY:1\r\nCATEGORIES:Home,Admin\r\nDTSTART;VALUE=DATE:20270401\r\nDUE;VALUE=DATE:20270415\r\nCOMPLETED:20270410T120000Z\r\nPERCENT-COMPLETE:100\r\nSTATUS:COMPLETED\r\nGEO:1;2\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\nEND:VTODO\r\nEND:VCALENDAR\r\n";

#[test]
fn a_task_goes_to_exchange_and_comes_back() {
    let out = task::to_ews(TODO.as_bytes()).unwrap();
    let xml = out.create_xml("taxes-2027");
    assert_eq!(
        violations(create_item("tasks", &xml, true)),
        Vec::<String>::new()
    );
    let lost = out.lost.join("\n");
    assert!(lost.contains("GEO") && lost.contains("VALARM"), "{lost}");
    let ical = String::from_utf8(task::from_ews(&stored(&xml), "x")).unwrap();
    for expected in [
        "UID:taxes-2027",
        "SUMMARY:File taxes",
        "DESCRIPTION:Forms\\, receipts",
        "PRIORITY:1",
        "CATEGORIES:Home,Admin",
        "DTSTART;VALUE=DATE:20270401",
        "DUE;VALUE=DATE:20270415",
        "COMPLETED:20270410T120000Z",
        "PERCENT-COMPLETE:100",
        "STATUS:COMPLETED",
    ] {
        assert!(
            ical.contains(&format!("{expected}\r\n")),
            "{expected} in\n{ical}"
        );
    }
    let again = task::to_ews(ical.as_bytes()).unwrap();
    assert_eq!(
        (again.item_fields, again.fields, again.uid),
        (out.item_fields.clone(), out.fields.clone(), out.uid.clone())
    );
    let updates = out.updates_xml(&task::present(&stored(&xml)));
    let id = Id {
        id: "AAMkAD1".into(),
        change_key: Some("CQAAAB".into()),
    };
    assert_eq!(
        violations(update_item(&id, &updates, true)),
        Vec::<String>::new()
    );
}

const SERIES: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//y//EN\r\n\
BEGIN:VEVENT\r\nUID:standup-1\r\nDTSTAMP:20261128T100000Z\r\nSUMMARY:Stand-up\r\n\
DTSTART;TZID=Europe/Berlin:20261202T090000\r\nDTEND;TZID=Europe/Berlin:20261202T091500\r\n\
RRULE:FREQ=WEEKLY;BYDAY=MO,WE,FR;COUNT=10\r\nEXDATE;TZID=Europe/Berlin:20261207T090000\r\n\
LOCATION:Room 1\r\nORGANIZER;CN=Ann:mailto:ann@example.com\r\n\
ATTENDEE;CN=Bob;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED:mailto:bob@example.com\r\n\
ATTENDEE;ROLE=OPT-PARTICIPANT:mailto:carl@example.com\r\n\
BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT10M\r\nEND:VALARM\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:standup-1\r\nDTSTAMP:20261128T100000Z\r\nRECURRENCE-ID;TZID=Europe/Berlin:20261209T090000\r\n\
SUMMARY:Stand-up (long)\r\nDTSTART;TZID=Europe/Berlin:20261209T100000\r\nDTEND;TZID=Europe/Berlin:20261209T110000\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";

#[test]
fn a_series_with_a_deleted_and_a_modified_occurrence_is_one_unit() {
    let series = calendar::to_ews(SERIES.as_bytes(), "ann@example.com").unwrap();
    assert_eq!(
        series.master.zone.as_deref(),
        Some("W. Europe Standard Time")
    );
    // Wed 2, Fri 4, Mon 7 (deleted), Wed 9 (modified).
    assert_eq!(series.deleted, vec![3]);
    assert_eq!(
        series.modified.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        vec![4]
    );
    assert_eq!(series.master.lost, Vec::<String>::new());
    let xml = series.master.create_xml("standup-1");
    assert!(
        xml.contains("<t:Start>2026-12-02T09:00:00</t:Start>"),
        "{xml}"
    );
    assert!(
        xml.contains("<t:DaysOfWeek>Monday Wednesday Friday</t:DaysOfWeek>"),
        "{xml}"
    );
    let create = create_item("calendar", &xml, true);
    let report = ews_sim::check::check_request(&crate::client::envelope_in(
        "Exchange2013_SP1",
        series.master.zone.as_deref(),
        &create.1,
    ));
    assert_eq!(report.violations, vec![]);
    let (_, occurrence) = &series.modified[0];
    let updates = occurrence.updates_xml(&[]);
    assert!(!updates.contains("calendar:UID"), "{updates}");
    assert_eq!(
        violations(crate::requests::update_occurrence("AAMkM", 4, &updates)),
        Vec::<String>::new()
    );
    assert_eq!(
        violations(crate::requests::delete_occurrences(
            "AAMkM",
            &series.deleted
        )),
        Vec::<String>::new()
    );

    // Exchange → iCalendar: the item as Exchange returns it in its zone's context, with the
    // deleted and the modified occurrence.
    let item = stored(
        &(xml
            .replace("</t:CalendarItem>", "")
            .replace(
                "<t:Start>2026-12-02T09:00:00</t:Start>",
                "<t:Start>2026-12-02T09:00:00+01:00</t:Start>",
            )
            .replace(
                "<t:End>2026-12-02T09:15:00</t:End>",
                "<t:End>2026-12-02T09:15:00+01:00</t:End>",
            )
            + "<t:Organizer><t:Mailbox><t:Name>Ann</t:Name><t:EmailAddress>ann@example.com</t:EmailAddress></t:Mailbox></t:Organizer>"
            + "<t:DeletedOccurrences><t:DeletedOccurrence><t:Start>2026-12-07T09:00:00+01:00</t:Start></t:DeletedOccurrence></t:DeletedOccurrences>"
            + "</t:CalendarItem>"),
    );
    let occ = stored(
        "<t:CalendarItem><t:Subject>Stand-up (long)</t:Subject><t:Start>2026-12-09T10:00:00+01:00</t:Start><t:End>2026-12-09T11:00:00+01:00</t:End><t:OriginalStart>2026-12-09T09:00:00+01:00</t:OriginalStart></t:CalendarItem>",
    );
    let ical = String::from_utf8(calendar::from_ews(&item, &[occ], "x")).unwrap();
    // Compared unfolded: long lines are folded at 75 octets.
    let ical = ical.replace("\r\n ", "");
    for expected in [
        "UID:standup-1",
        "DTSTART;TZID=Europe/Berlin:20261202T090000",
        "DTEND;TZID=Europe/Berlin:20261202T091500",
        "RRULE:FREQ=WEEKLY;BYDAY=MO,WE,FR;COUNT=10",
        "EXDATE;TZID=Europe/Berlin:20261207T090000",
        "LOCATION:Room 1",
        "ORGANIZER:mailto:ann@example.com",
        "ATTENDEE;CN=\"Bob\";ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED:mailto:bob@example.com",
        "ATTENDEE;ROLE=OPT-PARTICIPANT:mailto:carl@example.com",
        "TRIGGER:-PT10M",
        "RECURRENCE-ID;TZID=Europe/Berlin:20261209T090000",
        "DTSTART;TZID=Europe/Berlin:20261209T100000",
        "SUMMARY:Stand-up (long)",
    ] {
        assert!(
            ical.contains(&format!("{expected}\r\n")),
            "{expected} in\n{ical}"
        );
    }
    // … and back: the same Exchange series.
    let again = calendar::to_ews(ical.as_bytes(), "ann@example.com").unwrap();
    assert_eq!(again.master.fields, series.master.fields);
    assert_eq!(again.master.item_fields, series.master.item_fields);
    assert_eq!(again.deleted, series.deleted);
    assert_eq!(again.modified.len(), 1);
}

#[test]
fn what_exchange_cannot_hold_is_reported() {
    let odd = SERIES
        .replace(
            "RRULE:FREQ=WEEKLY;BYDAY=MO,WE,FR;COUNT=10",
            "RRULE:FREQ=MINUTELY",
        )
        .replace("LOCATION:Room 1", "GEO:1;2");
    let series = calendar::to_ews(odd.as_bytes(), "someone@else.example").unwrap();
    let lost = series.master.lost.join("\n");
    assert!(lost.contains("RRULE FREQ=MINUTELY"), "{lost}");
    assert!(lost.contains("GEO"), "{lost}");
    assert!(lost.contains("ORGANIZER ann@example.com"), "{lost}");
    assert!(lost.contains("no series to hold them"), "{lost}");
    assert!(series.deleted.is_empty() && series.modified.is_empty());
}

#[test]
fn a_zone_without_a_windows_id_is_sent_as_the_instants_its_vtimezone_gives() {
    let event = |vtimezone: &str| {
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//y//EN\r\n{vtimezone}\
BEGIN:VEVENT\r\nUID:custom-1\r\nDTSTAMP:20260301T100000Z\r\nSUMMARY:Review\r\n\
DTSTART;TZID=Customized Time Zone:20260330T093000\r\n\
DTEND;TZID=Customized Time Zone:20260330T100000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        )
    };
    // Outlook's export of a zone it has no standard name for: Berlin's rule.
    let outlook = "BEGIN:VTIMEZONE\r\nTZID:Customized Time Zone\r\n\
BEGIN:STANDARD\r\nDTSTART:16010101T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\n\
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10\r\nEND:STANDARD\r\n\
BEGIN:DAYLIGHT\r\nDTSTART:16010101T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\n\
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n";
    let series = calendar::to_ews(event(outlook).as_bytes(), "a@example.com").unwrap();
    let xml = series.master.create_xml("custom-1");
    assert!(
        xml.contains("<t:Start>2026-03-30T07:30:00Z</t:Start>"),
        "{xml}"
    );
    assert!(xml.contains("<t:End>2026-03-30T08:00:00Z</t:End>"), "{xml}");
    assert!(!xml.contains("StartTimeZone"), "{xml}");
    assert_eq!(series.master.zone, None);
    let lost = series.master.lost.join("\n");
    assert!(lost.contains("UTC instants its VTIMEZONE gives"), "{lost}");
    // Without a VTIMEZONE, the times can only be taken as UTC, and that is said.
    let bare = calendar::to_ews(event("").as_bytes(), "a@example.com").unwrap();
    let xml = bare.master.create_xml("custom-1");
    assert!(
        xml.contains("<t:Start>2026-03-30T09:30:00Z</t:Start>"),
        "{xml}"
    );
    assert!(
        bare.master.lost.join("\n").contains("taken as UTC"),
        "{:?}",
        bare.master.lost
    );
}
