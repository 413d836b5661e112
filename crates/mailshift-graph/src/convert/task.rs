//! A Graph To Do `todoTask` ↔ a VTODO.
//!
//! Carried: title, notes (text body), status, importance (↔ PRIORITY 1 / 5 / 9), due date,
//! start, completion time, reminder, categories. To Do's statuses are five and iCalendar's four:
//! `waitingOnOthers` is written as IN-PROCESS and `deferred` as NEEDS-ACTION, each with an
//! `X-MAILSHIFT-TODO-STATUS` line that brings it back on the way in; CANCELLED (which To Do does
//! not have) is written as `deferred`. A due date is a date in To Do (its time is dropped).
//! A recurring task's RRULE is not carried yet (refused, never dropped).

use serde_json::{Map, Value, json};

use super::{Lines, Stamp, Unsupported, field, graph_zone, ical_zone, param, root, text};

/// The line that keeps a To Do status iCalendar has no word for.
const STATUS_LINE: &str = "X-MAILSHIFT-TODO-STATUS";

/// A task as a VCALENDAR with one VTODO, with this UID.
pub fn to_ical(task: &Value, uid: &str) -> Vec<u8> {
    let mut out = Lines::new();
    out.raw("BEGIN:VCALENDAR");
    out.raw("VERSION:2.0");
    out.raw("PRODID:-//mailshift//Microsoft Graph//EN");
    out.raw("BEGIN:VTODO");
    out.raw(&format!("UID:{}", super::escape(uid)));
    if let Some(stamp) = field(task, "lastModifiedDateTime").and_then(Stamp::parse) {
        out.raw(&format!("DTSTAMP:{}", utc(stamp).ical()));
    }
    out.text("SUMMARY", field(task, "title"));
    out.text("DESCRIPTION", field(&task["body"], "content"));
    let (status, kept) = match field(task, "status").unwrap_or("notStarted") {
        "completed" => ("COMPLETED", None),
        "inProgress" => ("IN-PROCESS", None),
        "waitingOnOthers" => ("IN-PROCESS", Some("waitingOnOthers")),
        "deferred" => ("NEEDS-ACTION", Some("deferred")),
        _ => ("NEEDS-ACTION", None),
    };
    out.raw(&format!("STATUS:{status}"));
    if let Some(kept) = kept {
        out.raw(&format!("{STATUS_LINE}:{kept}"));
    }
    match field(task, "importance") {
        Some("high") => out.raw("PRIORITY:1"),
        Some("low") => out.raw("PRIORITY:9"),
        _ => {}
    }
    if let Some(due) = stamp_of(&task["dueDateTime"]) {
        out.raw(&format!(
            "DUE;VALUE=DATE:{}",
            Stamp { time: None, ..due }.ical()
        ));
    }
    if let Some(start) = stamp_of(&task["startDateTime"]) {
        out.raw(&format!(
            "DTSTART;VALUE=DATE:{}",
            Stamp {
                time: None,
                ..start
            }
            .ical()
        ));
    }
    if let Some(done) = stamp_of(&task["completedDateTime"]) {
        out.raw(&format!("COMPLETED:{}", utc(done).ical()));
    }
    if task["isReminderOn"].as_bool() == Some(true)
        && let Some(at) = stamp_of(&task["reminderDateTime"])
    {
        out.raw("BEGIN:VALARM");
        out.raw("ACTION:DISPLAY");
        out.raw("DESCRIPTION:Reminder");
        out.raw(&format!("TRIGGER;VALUE=DATE-TIME:{}", utc(at).ical()));
        out.raw("END:VALARM");
    }
    let categories: Vec<String> = task["categories"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(super::escape)
        .collect();
    if !categories.is_empty() {
        out.raw(&format!("CATEGORIES:{}", categories.join(",")));
    }
    out.raw("END:VTODO");
    out.raw("END:VCALENDAR");
    out.into_bytes()
}

/// A Graph `dateTimeTimeZone` as a stamp, UTC when its zone is.
fn stamp_of(value: &Value) -> Option<Stamp> {
    let mut stamp = Stamp::parse(field(value, "dateTime")?)?;
    if stamp.time.is_some() && ical_zone(field(value, "timeZone").unwrap_or("UTC")).is_none() {
        stamp.utc = true;
    }
    Some(stamp)
}

/// A stamp that Graph gave in UTC, marked so.
fn utc(stamp: Stamp) -> Stamp {
    Stamp {
        utc: true,
        time: Some(stamp.time.unwrap_or((0, 0, 0))),
        ..stamp
    }
}

/// A VTODO as Graph `todoTask` fields. Every field mailshift writes is set, so a PATCH also
/// clears what the source cleared.
pub fn from_ical(data: &[u8]) -> Result<Map<String, Value>, Unsupported> {
    let calendar = root(data, "VCALENDAR")?;
    let todos: Vec<_> = calendar
        .children
        .iter()
        .filter(|c| c.name == "VTODO")
        .collect();
    let todo = match todos.as_slice() {
        [] => return Err(Unsupported("the object holds no VTODO".into())),
        [one] => *one,
        _ => {
            return Err(Unsupported(
                "a recurring task with overridden occurrences: Microsoft To Do has no \
                 occurrences of its own to write them to"
                    .into(),
            ));
        }
    };
    if todo.prop("RRULE").is_some() {
        return Err(Unsupported(
            "a recurring task (RRULE): mailshift does not write To Do recurrences yet".into(),
        ));
    }
    let mut f = Map::new();
    f.insert(
        "title".into(),
        Value::String(text(todo, "SUMMARY").unwrap_or_default()),
    );
    f.insert(
        "body".into(),
        json!({ "contentType": "text", "content": text(todo, "DESCRIPTION").unwrap_or_default() }),
    );
    let kept = todo.value(STATUS_LINE);
    let status = match todo
        .value("STATUS")
        .map(|s| s.to_ascii_uppercase())
        .as_deref()
    {
        Some("COMPLETED") => "completed",
        Some("IN-PROCESS") if kept.as_deref() == Some("waitingOnOthers") => "waitingOnOthers",
        Some("IN-PROCESS") => "inProgress",
        Some("CANCELLED") => "deferred",
        _ if kept.as_deref() == Some("deferred") => "deferred",
        _ if todo.prop("COMPLETED").is_some() => "completed",
        _ => "notStarted",
    };
    f.insert("status".into(), status.into());
    let importance = match todo.value("PRIORITY").and_then(|p| p.parse::<u8>().ok()) {
        Some(1..=4) => "high",
        Some(6..=9) => "low",
        _ => "normal",
    };
    f.insert("importance".into(), importance.into());
    f.insert("dueDateTime".into(), date_time_zone(todo, "DUE"));
    f.insert("startDateTime".into(), date_time_zone(todo, "DTSTART"));
    if status == "completed" {
        f.insert(
            "completedDateTime".into(),
            date_time_zone(todo, "COMPLETED"),
        );
    }
    let reminder = todo
        .children
        .iter()
        .filter(|c| c.name == "VALARM")
        .find_map(|alarm| {
            let trigger = alarm.prop("TRIGGER")?;
            (param(trigger, "VALUE").as_deref() == Some("DATE-TIME"))
                .then(|| Stamp::parse(&String::from_utf8_lossy(&trigger.value)))
                .flatten()
        });
    match reminder {
        Some(at) => {
            f.insert("isReminderOn".into(), true.into());
            f.insert(
                "reminderDateTime".into(),
                json!({ "dateTime": at.graph(), "timeZone": "UTC" }),
            );
        }
        None => {
            f.insert("isReminderOn".into(), false.into());
        }
    }
    let categories: Vec<Value> = super::props(todo, "CATEGORIES")
        .flat_map(|p| super::components_list(&p.value))
        .map(Value::String)
        .collect();
    f.insert("categories".into(), Value::Array(categories));
    Ok(f)
}

/// A DUE / DTSTART / COMPLETED line as Graph's `dateTimeTimeZone` (`null` when absent).
fn date_time_zone(node: &mailshift_dav::object::Node, name: &str) -> Value {
    let Some(prop) = node.prop(name) else {
        return Value::Null;
    };
    let Some(stamp) = Stamp::parse(&String::from_utf8_lossy(&prop.value)) else {
        return Value::Null;
    };
    let zone = match (&stamp, param(prop, "TZID")) {
        (Stamp { utc: true, .. }, _) | (_, None) => "UTC".to_string(),
        (_, Some(_)) => graph_zone(&String::from_utf8_lossy(
            prop.param("TZID").unwrap_or_default(),
        )),
    };
    json!({ "dateTime": stamp.graph(), "timeZone": zone })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_todo_task_round_trips_through_a_vtodo() {
        let task = json!({
            "id": "t1",
            "title": "File taxes",
            "body": {"content": "forms, receipts", "contentType": "text"},
            "status": "waitingOnOthers",
            "importance": "high",
            "dueDateTime": {"dateTime": "2026-04-15T00:00:00.0000000", "timeZone": "UTC"},
            "isReminderOn": true,
            "reminderDateTime": {"dateTime": "2026-04-14T08:00:00.0000000", "timeZone": "UTC"},
            "categories": ["Home"],
            "lastModifiedDateTime": "2026-01-02T03:04:05.123Z"
        });
        let ical = to_ical(&task, "t-uid");
        let text = String::from_utf8(ical.clone()).unwrap();
        for line in [
            "UID:t-uid",
            "SUMMARY:File taxes",
            "DESCRIPTION:forms\\, receipts",
            "STATUS:IN-PROCESS",
            "X-MAILSHIFT-TODO-STATUS:waitingOnOthers",
            "PRIORITY:1",
            "DUE;VALUE=DATE:20260415",
            "TRIGGER;VALUE=DATE-TIME:20260414T080000Z",
            "DTSTAMP:20260102T030405Z",
        ] {
            assert!(text.contains(&format!("{line}\r\n")), "{line} in\n{text}");
        }
        let back = from_ical(&ical).unwrap();
        assert_eq!(back["title"], "File taxes");
        assert_eq!(back["body"]["content"], "forms, receipts");
        assert_eq!(back["status"], "waitingOnOthers");
        assert_eq!(back["importance"], "high");
        assert_eq!(back["dueDateTime"]["dateTime"], "2026-04-15T00:00:00");
        assert_eq!(back["reminderDateTime"]["dateTime"], "2026-04-14T08:00:00");
        assert_eq!(back["categories"], json!(["Home"]));
    }

    #[test]
    fn vtodo_statuses_and_zones_map_onto_to_do() {
        let todo = b"BEGIN:VCALENDAR\r\nBEGIN:VTODO\r\nUID:x\r\nSUMMARY:s\r\nSTATUS:COMPLETED\r\n\
COMPLETED:20260101T100000Z\r\nDUE;TZID=Europe/Paris:20260102T170000\r\nPRIORITY:7\r\n\
END:VTODO\r\nEND:VCALENDAR\r\n";
        let f = from_ical(todo).unwrap();
        assert_eq!(f["status"], "completed");
        assert_eq!(f["importance"], "low");
        assert_eq!(f["completedDateTime"]["timeZone"], "UTC");
        assert_eq!(f["dueDateTime"]["timeZone"], "Romance Standard Time");
        let recurring = b"BEGIN:VCALENDAR\r\nBEGIN:VTODO\r\nUID:x\r\nRRULE:FREQ=DAILY\r\n\
END:VTODO\r\nEND:VCALENDAR\r\n";
        assert!(from_ical(recurring).unwrap_err().0.contains("RRULE"));
    }
}
