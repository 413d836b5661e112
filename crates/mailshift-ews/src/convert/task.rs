//! Tasks: a VTODO ↔ an Exchange `Task`. Carried: SUMMARY, DESCRIPTION, PRIORITY (as
//! Importance: 1–4 high, 5 normal, 6–9 low), CATEGORIES, CLASS (Sensitivity), UID (our
//! extended property), COMPLETED, DUE, DTSTART, PERCENT-COMPLETE and STATUS (NEEDS-ACTION
//! NotStarted, IN-PROCESS InProgress, COMPLETED Completed, CANCELLED Deferred). Exchange's
//! task dates are dates: a time of day is sent, and read back as a DATE when it is midnight.
//! A recurring task, alarms and other properties are reported as lost.

use mailshift_dav::object::{Block, components};

use super::time::{IcalTime, ical_date, ical_utc};
use super::{Field, Outgoing, Uri, escape, fold, read_uid, text_xml, uid_field, unescape};
use crate::xml::{self, Node};

/// The VTODO of a calendar object.
fn todo(data: &[u8]) -> Result<Block, String> {
    let blocks = components(data).map_err(|e| format!("line {}: {}", e.line, e.message))?;
    let calendar = blocks
        .into_iter()
        .find(|b| b.name == "VCALENDAR")
        .ok_or("no VCALENDAR")?;
    let mut todos = calendar.children.into_iter().filter(|c| c.name == "VTODO");
    let first = todos.next().ok_or("no VTODO")?;
    if todos.next().is_some() {
        return Err("a recurring task with overridden instances (Exchange tasks have none)".into());
    }
    Ok(first)
}

/// The item fields shared by tasks and calendar items: Subject, Sensitivity, Body,
/// Categories, Importance, in ItemType's order.
pub fn item_fields(c: &Block, out: &mut Outgoing) {
    let text = |name: &str| c.line(name).map(|l| unescape(&l.value));
    if let Some(summary) = text("SUMMARY") {
        out.item_fields
            .push(Field::plain("item:Subject", "Subject", &summary));
    }
    if let Some(class) = c.line("CLASS") {
        let sensitivity = match class.value.trim().to_ascii_uppercase().as_str() {
            "PRIVATE" => "Private",
            "CONFIDENTIAL" => "Confidential",
            _ => "Normal",
        };
        out.item_fields.push(Field {
            uri: Uri::Plain("item:Sensitivity"),
            container: None,
            entry: None,
            xml: text_xml("Sensitivity", sensitivity),
        });
    }
    if let Some(description) = text("DESCRIPTION").filter(|d| !d.is_empty()) {
        out.item_fields.push(Field {
            uri: Uri::Plain("item:Body"),
            container: None,
            entry: None,
            xml: format!(
                "<t:Body BodyType=\"Text\">{}</t:Body>",
                xml::escape(&description)
            ),
        });
    }
    let categories: Vec<String> = c
        .all("CATEGORIES")
        .flat_map(|l| split_list(&l.value))
        .collect();
    if !categories.is_empty() {
        let inner: String = categories.iter().map(|c| text_xml("String", c)).collect();
        out.item_fields.push(Field {
            uri: Uri::Plain("item:Categories"),
            container: None,
            entry: None,
            xml: format!("<t:Categories>{inner}</t:Categories>"),
        });
    }
    if let Some(priority) = c
        .line("PRIORITY")
        .and_then(|p| p.value.trim().parse::<u8>().ok())
    {
        let importance = match priority {
            0 => None,
            1..=4 => Some("High"),
            5 => Some("Normal"),
            _ => Some("Low"),
        };
        if let Some(importance) = importance {
            out.item_fields.push(Field {
                uri: Uri::Plain("item:Importance"),
                container: None,
                entry: None,
                xml: text_xml("Importance", importance),
            });
        }
    }
}

/// A comma-separated TEXT list, each unescaped.
fn split_list(value: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut escaped = false;
    for ch in value.chars() {
        if escaped {
            out.last_mut().expect("one").extend(['\\', ch]);
            escaped = false;
        } else if ch == '\\' {
            escaped = true;
        } else if ch == ',' {
            out.push(String::new());
        } else {
            out.last_mut().expect("one").push(ch);
        }
    }
    out.iter()
        .map(|s| unescape(s.trim()))
        .filter(|s| !s.is_empty())
        .collect()
}

/// The VTODO in `data` as an Exchange item.
pub fn to_ews(data: &[u8]) -> Result<Outgoing, String> {
    let c = todo(data)?;
    let mut out = Outgoing {
        element: "Task",
        item_fields: Vec::new(),
        uid: c
            .line("UID")
            .map(|l| l.value.trim().to_string())
            .filter(|u| !u.is_empty())
            .map(|u| uid_field(&u)),
        fields: Vec::new(),
        photo: None,
        zone: None,
        lost: Vec::new(),
    };
    item_fields(&c, &mut out);
    // Local dates are read by Exchange in the request's time-zone context.
    out.zone = ["DUE", "DTSTART", "COMPLETED"]
        .iter()
        .filter_map(|n| c.line(n))
        .filter_map(|l| l.param("TZID"))
        .find_map(super::calendar::windows_zone);
    let date = |name: &str, uri: &'static str, element: &str, out: &mut Outgoing| {
        if let Some(line) = c.line(name) {
            match IcalTime::read(line) {
                Some(t) => out.fields.push(Field {
                    uri: Uri::Plain(uri),
                    container: None,
                    entry: None,
                    xml: text_xml(element, &t.to_xs()),
                }),
                None => out.lost.push(format!("{name} {} (not a date)", line.value)),
            }
        }
    };
    date("COMPLETED", "task:CompleteDate", "CompleteDate", &mut out);
    date("DUE", "task:DueDate", "DueDate", &mut out);
    if let Some(percent) = c
        .line("PERCENT-COMPLETE")
        .and_then(|p| p.value.trim().parse::<u8>().ok())
    {
        out.fields.push(Field {
            uri: Uri::Plain("task:PercentComplete"),
            container: None,
            entry: None,
            xml: text_xml("PercentComplete", &percent.min(100).to_string()),
        });
    }
    date("DTSTART", "task:StartDate", "StartDate", &mut out);
    if let Some(status) = c.line("STATUS") {
        let value = match status.value.trim().to_ascii_uppercase().as_str() {
            "IN-PROCESS" => "InProgress",
            "COMPLETED" => "Completed",
            "CANCELLED" => "Deferred",
            _ => "NotStarted",
        };
        out.fields.push(Field {
            uri: Uri::Plain("task:Status"),
            container: None,
            entry: None,
            xml: text_xml("Status", value),
        });
    }
    let carried = [
        "UID",
        "SUMMARY",
        "DESCRIPTION",
        "PRIORITY",
        "CATEGORIES",
        "CLASS",
        "COMPLETED",
        "DUE",
        "DTSTART",
        "PERCENT-COMPLETE",
        "STATUS",
        "DTSTAMP",
        "CREATED",
        "LAST-MODIFIED",
        "SEQUENCE",
    ];
    for line in &c.lines {
        if !carried.contains(&line.name.as_str()) && !line.name.starts_with("X-") {
            out.lost.push(format!(
                "{} (Exchange tasks have no field for it)",
                line.name
            ));
        }
    }
    for child in &c.children {
        out.lost.push(format!(
            "{} (Exchange tasks keep no {})",
            child.name, child.name
        ));
    }
    Ok(out)
}

/// The fields an Exchange task has now, as UpdateItem names them.
pub fn present(item: &Node) -> Vec<Uri> {
    let mut out = present_item(item);
    for (element, uri) in [
        ("CompleteDate", "task:CompleteDate"),
        ("DueDate", "task:DueDate"),
        ("PercentComplete", "task:PercentComplete"),
        ("StartDate", "task:StartDate"),
        ("Status", "task:Status"),
    ] {
        if item.text_of(element).is_some() {
            out.push(Uri::Plain(uri));
        }
    }
    out
}

/// The ItemType fields this crate writes that an item has now.
pub fn present_item(item: &Node) -> Vec<Uri> {
    let mut out = Vec::new();
    for (element, uri) in [
        ("Subject", "item:Subject"),
        ("Sensitivity", "item:Sensitivity"),
        ("Body", "item:Body"),
        ("Importance", "item:Importance"),
    ] {
        if item.text_of(element).is_some() {
            out.push(Uri::Plain(uri));
        }
    }
    if item
        .child("Categories")
        .is_some_and(|c| !c.children.is_empty())
    {
        out.push(Uri::Plain("item:Categories"));
    }
    if read_uid(item).is_some() {
        out.push(Uri::Uid);
    }
    out
}

/// The iCalendar lines of the ItemType fields (SUMMARY, CLASS, DESCRIPTION, CATEGORIES,
/// PRIORITY).
pub fn item_lines(item: &Node, lines: &mut Vec<String>) {
    if let Some(subject) = item.text_of("Subject") {
        lines.push(format!("SUMMARY:{}", escape(subject)));
    }
    match item.text_of("Sensitivity") {
        Some("Private") => lines.push("CLASS:PRIVATE".into()),
        Some("Confidential") => lines.push("CLASS:CONFIDENTIAL".into()),
        _ => {}
    }
    if let Some(body) = item
        .text_of("Body")
        .map(str::trim)
        .filter(|b| !b.is_empty())
    {
        lines.push(format!("DESCRIPTION:{}", escape(body)));
    }
    let categories: Vec<String> = item
        .child("Categories")
        .iter()
        .flat_map(|c| c.all("String"))
        .map(|s| escape(s.text.trim()))
        .collect();
    if !categories.is_empty() {
        lines.push(format!("CATEGORIES:{}", categories.join(",")));
    }
    match item.text_of("Importance") {
        Some("High") => lines.push("PRIORITY:1".into()),
        Some("Low") => lines.push("PRIORITY:9".into()),
        _ => {}
    }
}

/// An Exchange `Task` as a VCALENDAR with one VTODO.
pub fn from_ews(item: &Node, fallback_uid: &str) -> Vec<u8> {
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_string(),
        "VERSION:2.0".into(),
        "PRODID:-//mailshift//EWS//EN".into(),
        "BEGIN:VTODO".into(),
    ];
    let uid = read_uid(item).unwrap_or_else(|| fallback_uid.to_string());
    lines.push(format!("UID:{uid}"));
    // DTSTAMP is required; the last modification keeps the object stable between reads.
    let stamp = item
        .text_of("LastModifiedTime")
        .or_else(|| item.text_of("DateTimeCreated"))
        .and_then(ical_utc)
        .unwrap_or_else(|| "19700101T000000Z".into());
    lines.push(format!("DTSTAMP:{stamp}"));
    item_lines(item, &mut lines);
    let date = |name: &str, element: &str, lines: &mut Vec<String>| {
        let Some(value) = item.text_of(element) else {
            return;
        };
        let midnight = crate::convert::time::xs_utc(value).is_some_and(|(_, t)| t == "00:00:00");
        match (midnight, ical_date(value), ical_utc(value)) {
            (true, Some(d), _) => lines.push(format!("{name};VALUE=DATE:{d}")),
            (_, _, Some(t)) => lines.push(format!("{name}:{t}")),
            _ => {}
        }
    };
    date("DTSTART", "StartDate", &mut lines);
    date("DUE", "DueDate", &mut lines);
    // COMPLETED is a DATE-TIME in UTC (RFC 5545 §3.8.2.1).
    if let Some(t) = item.text_of("CompleteDate").and_then(ical_utc) {
        lines.push(format!("COMPLETED:{t}"));
    }
    if let Some(p) = item.text_of("PercentComplete") {
        let p = p.trim().split('.').next().unwrap_or("0");
        if p != "0" {
            lines.push(format!("PERCENT-COMPLETE:{p}"));
        }
    }
    let status = match item.text_of("Status") {
        Some("InProgress") | Some("WaitingOnOthers") => Some("IN-PROCESS"),
        Some("Completed") => Some("COMPLETED"),
        Some("Deferred") => Some("CANCELLED"),
        Some("NotStarted") => Some("NEEDS-ACTION"),
        _ => None,
    };
    if let Some(status) = status {
        lines.push(format!("STATUS:{status}"));
    }
    lines.extend(["END:VTODO".to_string(), "END:VCALENDAR".to_string()]);
    fold(&lines)
}
