//! A Graph `event` (a single event, or a series master with its exceptions and cancelled
//! occurrences) ↔ one iCalendar unit: the VEVENT, its RRULE and EXDATEs, and one VEVENT with a
//! RECURRENCE-ID per modified occurrence, all under one UID (RFC 4791 §4.1).
//!
//! Carried: subject, body (as text), location, start and end with their time zone (Windows ids
//! to IANA and back through the engine's CLDR table) or all-day dates, recurrence (Graph's
//! patterns are exactly RRULE's daily / weekly / monthly / yearly with BYDAY, BYMONTHDAY,
//! BYMONTH, BYSETPOS-like index, COUNT, UNTIL, INTERVAL, WKST; anything else is refused with the
//! rule named), cancelled occurrences ↔ EXDATE, exceptions ↔ RECURRENCE-ID, organizer and
//! attendees (role, participation), sensitivity ↔ CLASS, free/busy ↔ TRANSP, importance ↔
//! PRIORITY, the reminder ↔ a display VALARM, categories.
//!
//! Attendees written to Microsoft 365 follow [`crate::Attendees`]: by default the event is
//! written without them (Graph would invite each one) and they are kept in the body, as a
//! readable list after [`ATTENDEES_MARK`], and in an extended property holding their iCalendar
//! lines, from which [`to_ical`] restores them when the event is read back.

use serde_json::{Map, Value, json};

use super::{
    Lines, Stamp, Unsupported, components_list, escape, field, graph_zone, ical_zone, param,
    param_value, props, root, text,
};
use crate::config::Attendees;

/// Where the readable list of attendees begins in the body of an event written without them.
pub const ATTENDEES_MARK: &str = "-- Attendees (copied by mailshift, not invited) --";

const DAYS: [(&str, &str); 7] = [
    ("monday", "MO"),
    ("tuesday", "TU"),
    ("wednesday", "WE"),
    ("thursday", "TH"),
    ("friday", "FR"),
    ("saturday", "SA"),
    ("sunday", "SU"),
];

const INDEXES: [(&str, i32); 5] = [
    ("first", 1),
    ("second", 2),
    ("third", 3),
    ("fourth", 4),
    ("last", -1),
];

/// A Graph event (a series master's `exceptionOccurrences` expanded in it, when it has some) as
/// an iCalendar object with this UID. `kept_attendees` is the extended property mailshift wrote
/// when it left the attendees out (their iCalendar lines).
pub fn to_ical(event: &Value, uid: &str, kept_attendees: Option<&str>) -> Vec<u8> {
    let mut out = Lines::new();
    out.raw("BEGIN:VCALENDAR");
    out.raw("VERSION:2.0");
    out.raw("PRODID:-//mailshift//Microsoft Graph//EN");
    // Every TZID written needs its VTIMEZONE (RFC 5545 §3.2.19); a zone whose rule cannot
    // be read here (no tzdata) keeps its TZID alone, which most servers complete themselves.
    let mut zones: Vec<String> = Vec::new();
    for e in std::iter::once(event).chain(
        event["exceptionOccurrences"]
            .as_array()
            .into_iter()
            .flatten(),
    ) {
        for end in ["start", "end"] {
            if let Some(zone) = ical_zone(field(&e[end], "timeZone").unwrap_or("UTC"))
                && !zones.contains(&zone)
            {
                zones.push(zone);
            }
        }
    }
    super::vtimezone::write_all(&mut out, &zones);
    write_vevent(&mut out, event, uid, None, kept_attendees);
    for exception in event["exceptionOccurrences"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let Some(original) = field(exception, "originalStart").and_then(Stamp::parse) else {
            continue;
        };
        write_vevent(&mut out, exception, uid, Some(original), None);
    }
    out.raw("END:VCALENDAR");
    out.into_bytes()
}

/// `DTSTART…:value` for a Graph `dateTimeTimeZone`.
fn time_line(name: &str, value: &Value, all_day: bool) -> Option<String> {
    let stamp = Stamp::parse(field(value, "dateTime")?)?;
    if all_day {
        return Some(format!(
            "{name};VALUE=DATE:{}",
            Stamp {
                time: None,
                ..stamp
            }
            .ical()
        ));
    }
    let stamp = Stamp {
        time: Some(stamp.time.unwrap_or((0, 0, 0))),
        ..stamp
    };
    Some(match ical_zone(field(value, "timeZone").unwrap_or("UTC")) {
        None => format!("{name}:{}", Stamp { utc: true, ..stamp }.ical()),
        Some(zone) => format!("{name};TZID={}:{}", param_value(&zone), stamp.ical()),
    })
}

fn write_vevent(
    out: &mut Lines,
    event: &Value,
    uid: &str,
    recurrence_id: Option<Stamp>,
    kept_attendees: Option<&str>,
) {
    let all_day = event["isAllDay"].as_bool() == Some(true);
    out.raw("BEGIN:VEVENT");
    out.raw(&format!("UID:{}", escape(uid)));
    if let Some(stamp) = field(event, "lastModifiedDateTime").and_then(Stamp::parse) {
        out.raw(&format!(
            "DTSTAMP:{}",
            Stamp {
                utc: true,
                time: Some(stamp.time.unwrap_or((0, 0, 0))),
                ..stamp
            }
            .ical()
        ));
    }
    if let Some(original) = recurrence_id {
        if all_day {
            out.raw(&format!(
                "RECURRENCE-ID;VALUE=DATE:{}",
                Stamp {
                    time: None,
                    ..original
                }
                .ical()
            ));
        } else {
            out.raw(&format!(
                "RECURRENCE-ID:{}",
                Stamp {
                    utc: true,
                    time: Some(original.time.unwrap_or((0, 0, 0))),
                    ..original
                }
                .ical()
            ));
        }
    }
    if let Some(line) = time_line("DTSTART", &event["start"], all_day) {
        out.raw(&line);
    }
    if let Some(line) = time_line("DTEND", &event["end"], all_day) {
        out.raw(&line);
    }
    out.text("SUMMARY", field(event, "subject"));
    let body = field(&event["body"], "content").map(|b| match kept_attendees {
        // The readable list mailshift added is not part of the event's description.
        Some(_) => b
            .split(ATTENDEES_MARK)
            .next()
            .unwrap_or_default()
            .trim_end()
            .to_string(),
        None => b.to_string(),
    });
    out.text("DESCRIPTION", body.as_deref());
    out.text("LOCATION", field(&event["location"], "displayName"));
    if recurrence_id.is_none()
        && let Some(start) = field(&event["start"], "dateTime").and_then(Stamp::parse)
        && let Some(rule) = rrule(&event["recurrence"], start, all_day)
    {
        out.raw(&format!("RRULE:{rule}"));
        for cancelled in event["cancelledOccurrences"]
            .as_array()
            .into_iter()
            .flatten()
        {
            // `OID.{series id}.{yyyy-MM-dd}`: the occurrence's date, at the series' time.
            let Some(date) = cancelled
                .as_str()
                .and_then(|c| c.rsplit('.').next())
                .and_then(Stamp::parse)
            else {
                continue;
            };
            let at = Stamp {
                time: start.time,
                ..date
            };
            match time_line(
                "EXDATE",
                &json!({"dateTime": at.graph(),
                "timeZone": event["start"]["timeZone"]}),
                all_day,
            ) {
                Some(line) => out.raw(&line),
                None => continue,
            }
        }
    }
    match field(event, "sensitivity") {
        Some("private") => out.raw("CLASS:PRIVATE"),
        Some("confidential") => out.raw("CLASS:CONFIDENTIAL"),
        _ => {}
    }
    if field(event, "showAs") == Some("free") {
        out.raw("TRANSP:TRANSPARENT");
    }
    match field(event, "importance") {
        Some("high") => out.raw("PRIORITY:1"),
        Some("low") => out.raw("PRIORITY:9"),
        _ => {}
    }
    if event["isCancelled"].as_bool() == Some(true) {
        out.raw("STATUS:CANCELLED");
    }
    let attendees = event["attendees"].as_array().filter(|a| !a.is_empty());
    match (attendees, kept_attendees) {
        (Some(attendees), _) => {
            if let Some(organizer) = event["organizer"]["emailAddress"].as_object() {
                let organizer = Value::Object(organizer.clone());
                if let Some(address) = field(&organizer, "address") {
                    out.raw(&format!(
                        "ORGANIZER{}:mailto:{address}",
                        cn(field(&organizer, "name"))
                    ));
                }
            }
            for attendee in attendees {
                if let Some(line) = attendee_line(attendee) {
                    out.raw(&line);
                }
            }
        }
        (None, Some(kept)) => {
            for line in kept.lines().filter(|l| !l.trim().is_empty()) {
                out.raw(line.trim_end());
            }
        }
        (None, None) => {}
    }
    if event["isReminderOn"].as_bool() == Some(true)
        && let Some(minutes) = event["reminderMinutesBeforeStart"].as_i64()
    {
        out.raw("BEGIN:VALARM");
        out.raw("ACTION:DISPLAY");
        out.raw("DESCRIPTION:Reminder");
        out.raw(&format!("TRIGGER:-PT{minutes}M"));
        out.raw("END:VALARM");
    }
    let categories: Vec<String> = event["categories"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(escape)
        .collect();
    if !categories.is_empty() {
        out.raw(&format!("CATEGORIES:{}", categories.join(",")));
    }
    out.raw("END:VEVENT");
}

fn cn(name: Option<&str>) -> String {
    name.map(|n| format!(";CN={}", param_value(n)))
        .unwrap_or_default()
}

fn attendee_line(attendee: &Value) -> Option<String> {
    let email = &attendee["emailAddress"];
    let address = field(email, "address")?;
    let (role, cutype) = match field(attendee, "type") {
        Some("optional") => ("OPT-PARTICIPANT", ""),
        Some("resource") => ("NON-PARTICIPANT", ";CUTYPE=RESOURCE"),
        _ => ("REQ-PARTICIPANT", ""),
    };
    let partstat = match field(&attendee["status"], "response") {
        Some("accepted") | Some("organizer") => "ACCEPTED",
        Some("tentativelyAccepted") => "TENTATIVE",
        Some("declined") => "DECLINED",
        _ => "NEEDS-ACTION",
    };
    Some(format!(
        "ATTENDEE{}{cutype};ROLE={role};PARTSTAT={partstat}:mailto:{address}",
        cn(field(email, "name"))
    ))
}

/// Graph's `patternedRecurrence` as an RRULE value; `None` when the event does not recur.
pub fn rrule(recurrence: &Value, start: Stamp, all_day: bool) -> Option<String> {
    let pattern = recurrence["pattern"].as_object()?;
    let pattern = Value::Object(pattern.clone());
    let range = &recurrence["range"];
    let days: Vec<&str> = pattern["daysOfWeek"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|d| DAYS.iter().find(|(n, _)| n.eq_ignore_ascii_case(d)))
        .map(|(_, code)| *code)
        .collect();
    let index = field(&pattern, "index")
        .and_then(|i| INDEXES.iter().find(|(n, _)| *n == i))
        .map_or(1, |(_, n)| *n);
    let mut parts = Vec::new();
    match field(&pattern, "type")? {
        "daily" => parts.push("FREQ=DAILY".to_string()),
        "weekly" => {
            parts.push("FREQ=WEEKLY".into());
            if !days.is_empty() {
                parts.push(format!("BYDAY={}", days.join(",")));
            }
        }
        "absoluteMonthly" => {
            parts.push("FREQ=MONTHLY".into());
            if let Some(day) = pattern["dayOfMonth"].as_i64().filter(|d| *d > 0) {
                parts.push(format!("BYMONTHDAY={day}"));
            }
        }
        "relativeMonthly" => {
            parts.push("FREQ=MONTHLY".into());
            parts.push(format!("BYDAY={}", days.join(",")));
            parts.push(format!("BYSETPOS={index}"));
        }
        "absoluteYearly" => {
            parts.push("FREQ=YEARLY".into());
            if let Some(month) = pattern["month"].as_i64().filter(|m| *m > 0) {
                parts.push(format!("BYMONTH={month}"));
            }
            if let Some(day) = pattern["dayOfMonth"].as_i64().filter(|d| *d > 0) {
                parts.push(format!("BYMONTHDAY={day}"));
            }
        }
        "relativeYearly" => {
            parts.push("FREQ=YEARLY".into());
            if let Some(month) = pattern["month"].as_i64().filter(|m| *m > 0) {
                parts.push(format!("BYMONTH={month}"));
            }
            parts.push(format!("BYDAY={}", days.join(",")));
            parts.push(format!("BYSETPOS={index}"));
        }
        _ => return None,
    }
    if let Some(interval) = pattern["interval"].as_i64().filter(|i| *i > 1) {
        parts.push(format!("INTERVAL={interval}"));
    }
    match field(range, "type") {
        Some("numbered") => {
            if let Some(count) = range["numberOfOccurrences"].as_i64().filter(|c| *c > 0) {
                parts.push(format!("COUNT={count}"));
            }
        }
        Some("endDate") => {
            if let Some(end) = field(range, "endDate").and_then(Stamp::parse) {
                // Inclusive of the end date's occurrence, whatever its time (UNTIL is UTC
                // for a timed start: RFC 5545 §3.3.10).
                parts.push(if all_day || start.time.is_none() {
                    format!("UNTIL={}", Stamp { time: None, ..end }.ical())
                } else {
                    format!(
                        "UNTIL={}",
                        Stamp {
                            time: Some((23, 59, 59)),
                            utc: true,
                            ..end
                        }
                        .ical()
                    )
                });
            }
        }
        _ => {}
    }
    if let Some(first) = field(&pattern, "firstDayOfWeek")
        .and_then(|d| DAYS.iter().find(|(n, _)| n.eq_ignore_ascii_case(d)))
        .filter(|(n, _)| *n != "monday" && field(&pattern, "type") == Some("weekly"))
    {
        parts.push(format!("WKST={}", first.1));
    }
    Some(parts.join(";"))
}

/// An RRULE value as Graph's `patternedRecurrence`, for a series starting at `start` in
/// `zone` (Graph's time zone id).
pub fn recurrence(rule: &str, start: Stamp, zone: &str) -> Result<Value, Unsupported> {
    let refuse = |why: &str| {
        Err(Unsupported(format!(
            "the recurrence RRULE:{rule} {why}: Microsoft 365 cannot hold it"
        )))
    };
    let mut freq = None;
    let (mut interval, mut count, mut until) = (1i64, None, None);
    let (mut by_day, mut by_month_day, mut by_month, mut by_set_pos, mut wkst) =
        (None, None, None, None, None);
    for part in rule.split(';').filter(|p| !p.is_empty()) {
        let Some((key, value)) = part.split_once('=') else {
            return refuse(&format!("has a part {part:?} without `=`"));
        };
        let value = value.trim().to_ascii_uppercase();
        match key.trim().to_ascii_uppercase().as_str() {
            "FREQ" => freq = Some(value),
            "INTERVAL" => interval = value.parse().unwrap_or(1),
            "COUNT" => count = value.parse::<i64>().ok(),
            "UNTIL" => until = Stamp::parse(&value),
            "BYDAY" => by_day = Some(value),
            "BYMONTHDAY" => by_month_day = Some(value),
            "BYMONTH" => by_month = Some(value),
            "BYSETPOS" => by_set_pos = Some(value),
            "WKST" => wkst = Some(value),
            other => return refuse(&format!("uses {other}")),
        }
    }
    let day_name = |code: &str| DAYS.iter().find(|(_, c)| *c == code).map(|(n, _)| *n);
    // BYDAY as (ordinal, day): `2TU`, `-1SU`, `MO`.
    let mut days = Vec::new();
    let mut ordinal = None;
    for item in by_day
        .as_deref()
        .unwrap_or("")
        .split(',')
        .filter(|s| !s.is_empty())
    {
        let split = item.len().saturating_sub(2);
        let (number, code) = item.split_at(split);
        let Some(name) = day_name(code) else {
            return refuse(&format!("names a day {item:?}"));
        };
        if !number.is_empty() {
            let n: i32 = number.trim_start_matches('+').parse().unwrap_or(0);
            if ordinal.is_some_and(|o| o != n) {
                return refuse("has several ordinals in BYDAY");
            }
            ordinal = Some(n);
        }
        days.push(name);
    }
    if let Some(pos) = &by_set_pos {
        let n: i32 = pos.parse().unwrap_or(0);
        if ordinal.is_some_and(|o| o != n) {
            return refuse("has both a BYDAY ordinal and a different BYSETPOS");
        }
        ordinal = Some(n);
    }
    let index = match ordinal {
        None => None,
        Some(n) => match INDEXES.iter().find(|(_, i)| *i == n) {
            Some((name, _)) => Some(*name),
            None => return refuse(&format!("takes occurrence {n} of the month")),
        },
    };
    let single = |value: &Option<String>, what: &str| -> Result<Option<i64>, Unsupported> {
        match value {
            None => Ok(None),
            Some(v) if !v.contains(',') => Ok(v.parse().ok()),
            Some(_) => Err(Unsupported(format!(
                "the recurrence RRULE:{rule} has several {what}: Microsoft 365 cannot hold it"
            ))),
        }
    };
    let month_day = single(&by_month_day, "BYMONTHDAY")?;
    let month = single(&by_month, "BYMONTH")?;
    if month_day.is_some_and(|d| d < 1) {
        return refuse("counts days from the end of the month");
    }
    let start_day = DAYS[start.weekday()].0;
    let mut pattern = Map::new();
    let kind = match freq.as_deref() {
        Some("DAILY") if days.is_empty() => "daily",
        Some("DAILY") | Some("WEEKLY") if index.is_none() => {
            if days.is_empty() {
                days.push(start_day);
            }
            "weekly"
        }
        Some("MONTHLY") if index.is_some() && !days.is_empty() => "relativeMonthly",
        Some("MONTHLY") if days.is_empty() && index.is_none() => {
            pattern.insert(
                "dayOfMonth".into(),
                month_day.unwrap_or(start.d as i64).into(),
            );
            "absoluteMonthly"
        }
        Some("YEARLY") if index.is_some() && !days.is_empty() => {
            pattern.insert("month".into(), month.unwrap_or(start.m as i64).into());
            "relativeYearly"
        }
        Some("YEARLY") if days.is_empty() && index.is_none() => {
            pattern.insert("month".into(), month.unwrap_or(start.m as i64).into());
            pattern.insert(
                "dayOfMonth".into(),
                month_day.unwrap_or(start.d as i64).into(),
            );
            "absoluteYearly"
        }
        Some(other @ ("DAILY" | "WEEKLY" | "MONTHLY" | "YEARLY")) => {
            return refuse(&format!("combines FREQ={other} with these BY parts"));
        }
        Some(other) => return refuse(&format!("repeats with FREQ={other}")),
        None => return refuse("has no FREQ"),
    };
    pattern.insert("type".into(), kind.into());
    pattern.insert("interval".into(), interval.max(1).into());
    if !days.is_empty() {
        pattern.insert("daysOfWeek".into(), json!(days));
    }
    if let Some(index) = index {
        pattern.insert("index".into(), index.into());
    }
    if let Some(wkst) = wkst.as_deref().and_then(day_name) {
        pattern.insert("firstDayOfWeek".into(), wkst.into());
    }
    let mut range = Map::new();
    range.insert("startDate".into(), start.graph_date().into());
    range.insert("recurrenceTimeZone".into(), zone.into());
    match (count, until) {
        (Some(count), _) => {
            range.insert("type".into(), "numbered".into());
            range.insert("numberOfOccurrences".into(), count.into());
        }
        (None, Some(until)) => {
            range.insert("type".into(), "endDate".into());
            range.insert("endDate".into(), until.graph_date().into());
        }
        (None, None) => {
            range.insert("type".into(), "noEnd".into());
        }
    }
    Ok(json!({ "pattern": pattern, "range": range }))
}

/// One modified occurrence of a series: which one (its RECURRENCE-ID) and what it becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct Exception {
    pub recurrence_id: Stamp,
    pub fields: Map<String, Value>,
}

/// What an iCalendar unit becomes on Graph.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphEvent {
    /// The event's (or the series master's) fields, attendees as [`Attendees`] says.
    pub fields: Map<String, Value>,
    /// Occurrences removed from the series (EXDATE), at their original start.
    pub cancelled: Vec<Stamp>,
    /// Occurrences modified (VEVENTs with a RECURRENCE-ID).
    pub exceptions: Vec<Exception>,
    /// The ORGANIZER and ATTENDEE lines left out of the event (to keep in an extended property);
    /// `None` when there were none or they were written as attendees.
    pub kept_attendees: Option<String>,
    /// What the object held that Graph cannot keep, for the report.
    pub dropped: Vec<String>,
}

/// An iCalendar unit (VEVENTs of one UID) as Graph fields.
pub fn from_ical(data: &[u8], attendees: Attendees) -> Result<GraphEvent, Unsupported> {
    let calendar = root(data, "VCALENDAR")?;
    let events: Vec<_> = calendar
        .children
        .iter()
        .filter(|c| c.name == "VEVENT")
        .collect();
    if events.is_empty() {
        return Err(Unsupported("the object holds no VEVENT".into()));
    }
    let master = events
        .iter()
        .find(|e| e.prop("RECURRENCE-ID").is_none())
        .ok_or_else(|| {
            Unsupported(
                "only modified occurrences of a series whose master is elsewhere: Microsoft 365 \
                 keeps occurrences under their series"
                    .into(),
            )
        })?;
    let mut dropped = Vec::new();
    let (mut fields, start) = event_fields(master, &mut dropped)?;
    let mut kept = None;
    let lines: Vec<String> = ["ORGANIZER", "ATTENDEE"]
        .iter()
        .flat_map(|name| props(master, name))
        .map(|p| String::from_utf8_lossy(&p.to_bytes()).into_owned())
        .collect();
    let attendee_values: Vec<Value> = props(master, "ATTENDEE")
        .filter_map(graph_attendee)
        .collect();
    match attendees {
        Attendees::Send => {
            fields.insert("attendees".into(), Value::Array(attendee_values));
        }
        Attendees::KeepWithoutInvitations if !attendee_values.is_empty() => {
            let readable: Vec<String> = props(master, "ATTENDEE")
                .filter_map(readable_attendee)
                .collect();
            let organizer = master.prop("ORGANIZER").and_then(readable_attendee);
            let body = fields["body"]["content"].as_str().unwrap_or("").to_string();
            let mut list = format!("{body}\n\n{ATTENDEES_MARK}\n");
            if let Some(organizer) = organizer {
                list.push_str(&format!("Organizer: {organizer}\n"));
            }
            for line in readable {
                list.push_str(&format!("{line}\n"));
            }
            fields.insert(
                "body".into(),
                json!({ "contentType": "text", "content": list.trim_start() }),
            );
            fields.insert("attendees".into(), json!([]));
            kept = Some(lines.join("\n"));
        }
        Attendees::KeepWithoutInvitations => {
            fields.insert("attendees".into(), json!([]));
        }
        Attendees::Drop => {
            if !attendee_values.is_empty() {
                dropped.push(format!(
                    "{} attendee(s): the plan drops attendees on Microsoft 365",
                    attendee_values.len()
                ));
            }
            fields.insert("attendees".into(), json!([]));
        }
    }
    let zone = fields["start"]["timeZone"]
        .as_str()
        .unwrap_or("UTC")
        .to_string();
    let mut cancelled = Vec::new();
    match master.prop("RRULE") {
        Some(rule) => {
            let rule = String::from_utf8_lossy(&rule.value).trim().to_string();
            fields.insert("recurrence".into(), recurrence(&rule, start, &zone)?);
            for exdate in props(master, "EXDATE") {
                for value in components_list(&exdate.value) {
                    if let Some(at) = Stamp::parse(&value) {
                        cancelled.push(at);
                    }
                }
            }
            if master.prop("RDATE").is_some() {
                return Err(Unsupported(
                    "extra occurrences (RDATE): Microsoft 365 series have none".into(),
                ));
            }
        }
        None => {
            fields.insert("recurrence".into(), Value::Null);
        }
    }
    let mut exceptions = Vec::new();
    for event in events.iter().filter(|e| e.prop("RECURRENCE-ID").is_some()) {
        let id = event.prop("RECURRENCE-ID").expect("filtered on it");
        let Some(recurrence_id) = Stamp::parse(&String::from_utf8_lossy(&id.value)) else {
            return Err(Unsupported("a RECURRENCE-ID that is not a date".into()));
        };
        let (mut f, _) = event_fields(event, &mut dropped)?;
        f.remove("attendees");
        exceptions.push(Exception {
            recurrence_id,
            fields: f,
        });
    }
    Ok(GraphEvent {
        fields,
        cancelled,
        exceptions,
        kept_attendees: kept,
        dropped,
    })
}

/// The fields of one VEVENT (no recurrence, no attendees), and its start.
fn event_fields(
    event: &mailshift_dav::object::Node,
    dropped: &mut Vec<String>,
) -> Result<(Map<String, Value>, Stamp), Unsupported> {
    let mut f = Map::new();
    let start_prop = event
        .prop("DTSTART")
        .ok_or_else(|| Unsupported("a VEVENT without DTSTART".into()))?;
    let start = Stamp::parse(&String::from_utf8_lossy(&start_prop.value))
        .ok_or_else(|| Unsupported("a DTSTART that is not a date".into()))?;
    let all_day = start.time.is_none();
    let zone = if all_day || start.utc {
        "UTC".to_string()
    } else {
        match start_prop.param("TZID") {
            Some(tzid) => graph_zone(&String::from_utf8_lossy(tzid)),
            // A floating time: Graph has none; UTC keeps the clock time as written.
            None => "UTC".to_string(),
        }
    };
    let end = match event.prop("DTEND") {
        Some(p) => Stamp::parse(&String::from_utf8_lossy(&p.value)),
        None => None,
    }
    .or_else(|| {
        let duration = event.value("DURATION")?;
        Some(add_duration(start, &duration))
    })
    .unwrap_or(if all_day { start.plus_days(1) } else { start });
    f.insert("isAllDay".into(), all_day.into());
    f.insert(
        "start".into(),
        json!({ "dateTime": start.graph(), "timeZone": zone }),
    );
    f.insert(
        "end".into(),
        json!({ "dateTime": end.graph(), "timeZone": zone }),
    );
    f.insert(
        "subject".into(),
        text(event, "SUMMARY").unwrap_or_default().into(),
    );
    f.insert(
        "body".into(),
        json!({ "contentType": "text", "content": text(event, "DESCRIPTION").unwrap_or_default() }),
    );
    f.insert(
        "location".into(),
        json!({ "displayName": text(event, "LOCATION").unwrap_or_default() }),
    );
    let sensitivity = match event
        .value("CLASS")
        .map(|c| c.to_ascii_uppercase())
        .as_deref()
    {
        Some("PRIVATE") => "private",
        Some("CONFIDENTIAL") => "confidential",
        _ => "normal",
    };
    f.insert("sensitivity".into(), sensitivity.into());
    let transparent = event
        .value("TRANSP")
        .is_some_and(|t| t.eq_ignore_ascii_case("TRANSPARENT"));
    f.insert(
        "showAs".into(),
        if transparent { "free" } else { "busy" }.into(),
    );
    let importance = match event.value("PRIORITY").and_then(|p| p.parse::<u8>().ok()) {
        Some(1..=4) => "high",
        Some(6..=9) => "low",
        _ => "normal",
    };
    f.insert("importance".into(), importance.into());
    let reminder = event
        .children
        .iter()
        .filter(|c| c.name == "VALARM")
        .find_map(|alarm| {
            let trigger = alarm.value("TRIGGER")?;
            minutes_before(&trigger)
        });
    f.insert("isReminderOn".into(), reminder.is_some().into());
    if let Some(minutes) = reminder {
        f.insert("reminderMinutesBeforeStart".into(), minutes.into());
    }
    let categories: Vec<Value> = props(event, "CATEGORIES")
        .flat_map(|p| components_list(&p.value))
        .map(Value::String)
        .collect();
    f.insert("categories".into(), Value::Array(categories));
    if event.prop("ATTACH").is_some() {
        let attach = "attachments (ATTACH): not copied to Microsoft 365 yet";
        if !dropped.iter().any(|d| d == attach) {
            dropped.push(attach.into());
        }
    }
    // Private properties (X-...) have no Graph field; an occurrence repeats its series'.
    for unknown in event
        .props
        .iter()
        .map(|(_, p)| p.name())
        .filter(|n| n.starts_with("X-"))
    {
        if !dropped.iter().any(|d| d.contains(&unknown)) {
            dropped.push(format!("{unknown}: Graph has no field for it"));
        }
    }
    Ok((f, start))
}

/// `-PT15M`, `-P1D`, `-PT1H30M` as minutes before the start; `None` for a trigger after it.
fn minutes_before(trigger: &str) -> Option<i64> {
    let trigger = trigger.trim();
    let rest = trigger.strip_prefix('-')?;
    duration_minutes(rest)
}

fn duration_minutes(text: &str) -> Option<i64> {
    let text = text.strip_prefix('+').unwrap_or(text).strip_prefix('P')?;
    let (mut minutes, mut number, mut in_time) = (0i64, 0i64, false);
    for c in text.chars() {
        match c {
            'T' => in_time = true,
            d if d.is_ascii_digit() => number = number * 10 + (d as i64 - '0' as i64),
            'W' => (minutes, number) = (minutes + number * 7 * 24 * 60, 0),
            'D' => (minutes, number) = (minutes + number * 24 * 60, 0),
            'H' if in_time => (minutes, number) = (minutes + number * 60, 0),
            'M' if in_time => (minutes, number) = (minutes + number, 0),
            'S' if in_time => number = 0,
            _ => return None,
        }
    }
    Some(minutes)
}

/// The end of an event given by DURATION.
fn add_duration(start: Stamp, duration: &str) -> Stamp {
    let minutes = duration_minutes(duration.trim()).unwrap_or(0);
    match start.time {
        None => start.plus_days(minutes / (24 * 60)),
        Some((h, m, s)) => {
            let total = h as i64 * 60 + m as i64 + minutes;
            let day = total.div_euclid(24 * 60);
            let rest = total.rem_euclid(24 * 60);
            Stamp {
                time: Some(((rest / 60) as u32, (rest % 60) as u32, s)),
                ..start.plus_days(day)
            }
        }
    }
}

/// An ATTENDEE line as a Graph `attendee`.
fn graph_attendee(prop: &mailshift_dav::object::Prop) -> Option<Value> {
    let value = String::from_utf8_lossy(&prop.value);
    let address = value
        .trim()
        .strip_prefix("mailto:")
        .or_else(|| value.trim().strip_prefix("MAILTO:"))?
        .to_string();
    let name = prop
        .param("CN")
        .map(|n| String::from_utf8_lossy(n).to_string());
    let kind = match (
        param(prop, "CUTYPE").as_deref(),
        param(prop, "ROLE").as_deref(),
    ) {
        (Some("RESOURCE" | "ROOM"), _) => "resource",
        (_, Some("OPT-PARTICIPANT" | "NON-PARTICIPANT")) => "optional",
        _ => "required",
    };
    let mut email = json!({ "address": address });
    if let Some(name) = name {
        email["name"] = name.into();
    }
    Some(json!({ "type": kind, "emailAddress": email }))
}

/// An ATTENDEE or ORGANIZER line as a person reads it: `Name <address> (accepted)`.
fn readable_attendee(prop: &mailshift_dav::object::Prop) -> Option<String> {
    let value = String::from_utf8_lossy(&prop.value);
    let address = value
        .trim()
        .trim_start_matches("mailto:")
        .trim_start_matches("MAILTO:");
    if address.is_empty() {
        return None;
    }
    let who = match prop.param("CN") {
        Some(name) => format!("{} <{address}>", String::from_utf8_lossy(name)),
        None => address.to_string(),
    };
    Some(match param(prop, "PARTSTAT").as_deref() {
        Some("ACCEPTED") => format!("{who} (accepted)"),
        Some("DECLINED") => format!("{who} (declined)"),
        Some("TENTATIVE") => format!("{who} (tentative)"),
        _ => who,
    })
}

#[cfg(test)]
mod tests;
