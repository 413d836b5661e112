//! Events both ways: Graph JSON → iCalendar → Graph fields, recurrence patterns ↔ RRULE,
//! cancelled occurrences and exceptions, attendees under each plan choice.

use serde_json::json;

use super::*;

fn weekly_series() -> Value {
    json!({
        "id": "AAMkSeries",
        "type": "seriesMaster",
        "subject": "Standup",
        "body": {"contentType": "text", "content": "Daily sync, short"},
        "start": {"dateTime": "2026-01-05T09:00:00.0000000", "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": "2026-01-05T09:15:00.0000000", "timeZone": "W. Europe Standard Time"},
        "isAllDay": false,
        "location": {"displayName": "Room 1"},
        "recurrence": {
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday", "wednesday"],
                        "firstDayOfWeek": "sunday"},
            "range": {"type": "endDate", "startDate": "2026-01-05", "endDate": "2026-03-30",
                      "recurrenceTimeZone": "W. Europe Standard Time"}
        },
        "cancelledOccurrences": ["OID.AAMkSeries.2026-01-07"],
        "exceptionOccurrences": [{
            "id": "AAMkExc",
            "type": "exception",
            "originalStart": "2026-01-12T08:00:00Z",
            "subject": "Standup (moved)",
            "start": {"dateTime": "2026-01-12T10:00:00.0000000", "timeZone": "W. Europe Standard Time"},
            "end": {"dateTime": "2026-01-12T10:15:00.0000000", "timeZone": "W. Europe Standard Time"}
        }],
        "organizer": {"emailAddress": {"name": "Ada", "address": "ada@example.org"}},
        "attendees": [
            {"type": "required", "status": {"response": "accepted"},
             "emailAddress": {"name": "Bob, Jr", "address": "bob@example.org"}},
            {"type": "optional", "status": {"response": "none"},
             "emailAddress": {"address": "carol@example.org"}}
        ],
        "isReminderOn": true,
        "reminderMinutesBeforeStart": 15,
        "sensitivity": "private",
        "lastModifiedDateTime": "2026-01-01T10:00:00Z"
    })
}

/// The object unfolded, so that lines compare whole.
fn text_of(data: &[u8]) -> String {
    String::from_utf8(data.to_vec())
        .unwrap()
        .replace("\r\n ", "")
}

#[test]
fn a_series_with_its_exceptions_becomes_one_calendar_unit() {
    let ical = to_ical(&weekly_series(), "series-uid", None);
    let text = text_of(&ical);
    for line in [
        "DTSTART;TZID=Europe/Berlin:20260105T090000",
        "DTEND;TZID=Europe/Berlin:20260105T091500",
        "RRULE:FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20260330T235959Z;WKST=SU",
        "EXDATE;TZID=Europe/Berlin:20260107T090000",
        "RECURRENCE-ID:20260112T080000Z",
        "SUMMARY:Standup (moved)",
        "ORGANIZER;CN=Ada:mailto:ada@example.org",
        "ATTENDEE;CN=\"Bob, Jr\";ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED:mailto:bob@example.org",
        "ATTENDEE;ROLE=OPT-PARTICIPANT;PARTSTAT=NEEDS-ACTION:mailto:carol@example.org",
        "TRIGGER:-PT15M",
        "CLASS:PRIVATE",
    ] {
        assert!(text.contains(&format!("{line}\r\n")), "{line} in\n{text}");
    }
    assert_eq!(text.matches("BEGIN:VEVENT").count(), 2, "{text}");
    assert_eq!(text.matches("UID:series-uid").count(), 2, "{text}");
    // The engine's own reader takes it as one unit.
    let item = mailshift_dav::object::parse(&ical).unwrap();
    assert_eq!(item.uid.as_deref(), Some("series-uid"));
}

#[test]
fn a_series_comes_back_with_its_pattern_cancellations_and_exceptions() {
    let ical = to_ical(&weekly_series(), "series-uid", None);
    let back = from_ical(&ical, Attendees::Send).unwrap();
    let f = &back.fields;
    assert_eq!(f["subject"], "Standup");
    assert_eq!(
        f["start"],
        json!({"dateTime": "2026-01-05T09:00:00", "timeZone": "W. Europe Standard Time"})
    );
    assert_eq!(f["recurrence"]["pattern"]["type"], "weekly");
    assert_eq!(
        f["recurrence"]["pattern"]["daysOfWeek"],
        json!(["monday", "wednesday"])
    );
    assert_eq!(f["recurrence"]["pattern"]["firstDayOfWeek"], "sunday");
    assert_eq!(f["recurrence"]["range"]["type"], "endDate");
    assert_eq!(f["recurrence"]["range"]["endDate"], "2026-03-30");
    assert_eq!(back.cancelled, [Stamp::parse("20260107T090000").unwrap()]);
    assert_eq!(back.exceptions.len(), 1);
    assert_eq!(back.exceptions[0].fields["subject"], "Standup (moved)");
    assert_eq!(f["attendees"][0]["emailAddress"]["name"], "Bob, Jr");
    assert_eq!(f["attendees"][1]["type"], "optional");
    assert_eq!(f["reminderMinutesBeforeStart"], 15);
    assert_eq!(f["sensitivity"], "private");
}

#[test]
fn attendees_are_kept_without_invitations_and_restored_on_the_way_back() {
    let ical = to_ical(&weekly_series(), "series-uid", None);
    let written = from_ical(&ical, Attendees::KeepWithoutInvitations).unwrap();
    assert_eq!(
        written.fields["attendees"],
        json!([]),
        "no attendee, no invitation"
    );
    let body = written.fields["body"]["content"].as_str().unwrap();
    assert!(body.starts_with("Daily sync, short\n\n"), "{body}");
    assert!(body.contains(ATTENDEES_MARK), "{body}");
    assert!(
        body.contains("Bob, Jr <bob@example.org> (accepted)"),
        "{body}"
    );
    assert!(body.contains("Organizer: Ada <ada@example.org>"), "{body}");
    let kept = written.kept_attendees.clone().unwrap();

    // Read back from Graph: no attendees there, the property restores them, the list leaves
    // the description.
    let mut stored = weekly_series();
    stored["attendees"] = json!([]);
    stored["body"]["content"] = body.into();
    let read = text_of(&to_ical(&stored, "series-uid", Some(&kept)));
    assert!(
        read.contains("DESCRIPTION:Daily sync\\, short\r\n"),
        "{read}"
    );
    assert!(read.contains("mailto:bob@example.org"), "{read}");
    assert!(
        read.contains("ORGANIZER;CN=Ada:mailto:ada@example.org"),
        "{read}"
    );

    let dropped = from_ical(&ical, Attendees::Drop).unwrap();
    assert_eq!(dropped.fields["attendees"], json!([]));
    assert!(dropped.kept_attendees.is_none());
    assert!(
        dropped.dropped.iter().any(|d| d.contains("2 attendee")),
        "{:?}",
        dropped.dropped
    );
}

#[test]
fn all_day_events_stay_dates() {
    let event = json!({
        "subject": "Holiday",
        "isAllDay": true,
        "start": {"dateTime": "2026-05-01T00:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2026-05-02T00:00:00.0000000", "timeZone": "UTC"},
        "showAs": "free"
    });
    let text = text_of(&to_ical(&event, "h", None));
    assert!(text.contains("DTSTART;VALUE=DATE:20260501\r\n"), "{text}");
    assert!(text.contains("DTEND;VALUE=DATE:20260502\r\n"), "{text}");
    assert!(text.contains("TRANSP:TRANSPARENT\r\n"), "{text}");
    let back = from_ical(text.as_bytes(), Attendees::Send).unwrap();
    assert_eq!(back.fields["isAllDay"], true);
    assert_eq!(back.fields["start"]["dateTime"], "2026-05-01T00:00:00");
    assert_eq!(back.fields["end"]["dateTime"], "2026-05-02T00:00:00");
    assert_eq!(back.fields["showAs"], "free");
}

#[test]
fn utc_and_duration_events_convert() {
    let ical = b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:u\r\nDTSTART:20260301T233000Z\r\n\
DURATION:PT1H\r\nSUMMARY:late\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let back = from_ical(ical, Attendees::Send).unwrap();
    assert_eq!(
        back.fields["start"],
        json!({"dateTime": "2026-03-01T23:30:00", "timeZone": "UTC"})
    );
    assert_eq!(
        back.fields["end"],
        json!({"dateTime": "2026-03-02T00:30:00", "timeZone": "UTC"})
    );
    let graph = json!({"start": {"dateTime": "2026-03-01T23:30:00.0000000", "timeZone": "UTC"},
                       "end": {"dateTime": "2026-03-02T00:30:00.0000000", "timeZone": "UTC"}});
    assert!(text_of(&to_ical(&graph, "u", None)).contains("DTSTART:20260301T233000Z\r\n"));
}

#[test]
fn private_properties_and_attachments_are_named_as_dropped_once() {
    let ical = b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:u\r\nDTSTART:20260301T090000Z\r\n\
DTEND:20260301T100000Z\r\nX-APPLE-TRAVEL-DURATION:PT10M\r\nATTACH:https://example.com/a\r\n\
ATTACH:https://example.com/b\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let back = from_ical(ical, Attendees::Send).unwrap();
    assert_eq!(back.dropped.len(), 2, "{:?}", back.dropped);
    assert!(back.dropped.iter().any(|d| d.starts_with("attachments")));
    assert!(
        back.dropped
            .iter()
            .any(|d| d.starts_with("X-APPLE-TRAVEL-DURATION"))
    );
}

#[test]
fn recurrence_patterns_map_both_ways() {
    let start = Stamp::parse("20260115T100000").unwrap(); // a Thursday
    for (rule, pattern_type) in [
        ("FREQ=DAILY;INTERVAL=2;COUNT=10", "daily"),
        ("FREQ=WEEKLY", "weekly"),
        ("FREQ=MONTHLY;BYMONTHDAY=15", "absoluteMonthly"),
        ("FREQ=MONTHLY;BYDAY=3TH", "relativeMonthly"),
        ("FREQ=MONTHLY;BYDAY=TH;BYSETPOS=-1", "relativeMonthly"),
        ("FREQ=YEARLY;BYMONTH=1;BYMONTHDAY=15", "absoluteYearly"),
        ("FREQ=YEARLY;BYMONTH=1;BYDAY=3TH", "relativeYearly"),
    ] {
        let graph = recurrence(rule, start, "UTC").unwrap();
        assert_eq!(graph["pattern"]["type"], pattern_type, "{rule}: {graph}");
        let again = rrule(&graph, start, false).unwrap();
        let graph_again = recurrence(&again, start, "UTC").unwrap();
        assert_eq!(graph, graph_again, "{rule} → {again}");
    }
    let weekly = recurrence("FREQ=WEEKLY", start, "UTC").unwrap();
    assert_eq!(
        weekly["pattern"]["daysOfWeek"],
        json!(["thursday"]),
        "the start's day"
    );
    let last = recurrence("FREQ=MONTHLY;BYDAY=-1TH", start, "UTC").unwrap();
    assert_eq!(last["pattern"]["index"], "last");
    for refused in [
        "FREQ=HOURLY",
        "FREQ=MONTHLY;BYMONTHDAY=1,15",
        "FREQ=MONTHLY;BYDAY=5TH",
        "FREQ=DAILY;BYHOUR=9",
        "FREQ=MONTHLY;BYMONTHDAY=-1",
    ] {
        let e = recurrence(refused, start, "UTC").unwrap_err();
        assert!(e.0.contains(refused), "{refused}: {e}");
    }
}
