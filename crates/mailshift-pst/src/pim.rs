//! PST contacts, appointments and tasks as vCard 3.0 and iCalendar 2.0 objects, the form the
//! contacts/calendars engine (`mailshift-dav`) copies.
//!
//! # UID
//! A contact or task gets `pst-` and the hex of its PR_SEARCH_KEY (kept by Outlook across
//! export and import, unlike the NID); an appointment gets its PidLidGlobalObjectId in hex
//! (the id Outlook and Exchange give the meeting everywhere). Without either, the file's name
//! and the NID. So a PST exported again adopts what a previous run wrote (the engine matches
//! by UID).
//!
//! # What is carried
//! - IPM.Contact: name parts, display name, up to three e-mail addresses, business / home /
//!   mobile phones, work and home addresses, company, title, birthday, notes.
//! - IPM.Appointment: subject, body, start and end (UTC, or dates when all-day), location,
//!   organizer and attendees from the recipient table (`SCHEDULE-AGENT=CLIENT`: no server
//!   sends invitations for an import). A recurring appointment gets its RRULE, EXDATEs and
//!   modified occurrences (RECURRENCE-ID overrides in the same object) from the
//!   PidLidAppointmentRecur blob ([`crate::recur`]); a pattern that cannot be read leaves the
//!   first occurrence with an `X-MAILSHIFT-NOTE` saying why.
//! - IPM.Task: subject, body, start, due, completion, percent complete, status.
//!
//! Distribution lists (IPM.DistList) are not carried yet.

use crate::Pst;
use crate::props::{
    PSETID_ADDRESS, PSETID_APPOINTMENT, PSETID_COMMON, PSETID_TASK, Props, Value, civil,
};

/// What one item became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PimItem {
    /// A vCard 3.0 (CRLF line ends).
    Contact { uid: String, vcard: String },
    /// A VCALENDAR holding one VEVENT or VTODO.
    Calendar { uid: String, ical: String },
    /// An item this crate does not carry (a distribution list, a note…): its class.
    Skipped(String),
}

impl Pst {
    /// Item `nid` of a contacts, calendar or tasks folder, converted. `folder` names it in
    /// errors.
    pub fn pim(&self, folder: &str, nid: u32) -> Result<PimItem, String> {
        let what = format!("{}: folder {folder}: item {nid:#x}", self.name());
        self.guarded(&what, || {
            let p = self
                .props(nid)
                .map_err(|e| format!("{what}: cannot be read: {e}"))?;
            let class = p.str(0x001A).unwrap_or_default();
            let fallback = format!("pst-{}-{nid:x}", hex(self.file_name().as_bytes()));
            Ok(if class.starts_with("IPM.Contact") {
                let uid = search_key_uid(&p).unwrap_or(fallback);
                PimItem::Contact {
                    vcard: vcard(&p, &uid),
                    uid,
                }
            } else if class.starts_with("IPM.Appointment") {
                let uid = match p.named(PSETID_MEETING, 0x0003) {
                    Some(Value::Bin(b)) if !b.is_empty() => hex(b),
                    _ => search_key_uid(&p).unwrap_or(fallback),
                };
                PimItem::Calendar {
                    ical: vevent(&p, &uid),
                    uid,
                }
            } else if class.starts_with("IPM.Task") {
                let uid = search_key_uid(&p).unwrap_or(fallback);
                PimItem::Calendar {
                    ical: vtodo(&p, &uid),
                    uid,
                }
            } else {
                PimItem::Skipped(class)
            })
        })
    }

    fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// PSETID_Meeting (`6ED8DA90-450B-101B-98DA-00AA003F1305`), for PidLidGlobalObjectId.
const PSETID_MEETING: u32 = 0x6ED8_DA90;

fn search_key_uid(p: &Props) -> Option<String> {
    match p.get(0x300B) {
        Some(Value::Bin(b)) if !b.is_empty() => Some(format!("pst-{}", hex(b))),
        _ => None,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Text escaped for a vCard / iCalendar value (RFC 6350 §3.4, RFC 5545 §3.3.11).
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace(';', "\\;")
        .replace(',', "\\,")
        .replace("\r\n", "\\n")
        .replace('\n', "\\n")
        .replace('\r', "")
}

/// Lines folded at 75 octets (on char boundaries), CRLF ends.
fn fold(lines: &[String]) -> String {
    let mut out = String::new();
    for line in lines {
        let mut n = 0;
        for c in line.chars() {
            if n + c.len_utf8() > 75 {
                out.push_str("\r\n ");
                n = 1;
            }
            out.push(c);
            n += c.len_utf8();
        }
        out.push_str("\r\n");
    }
    out
}

fn utc(secs: i64) -> String {
    let (y, m, d, hh, mm, ss) = civil(secs);
    format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z")
}

fn date(secs: i64) -> String {
    let (y, m, d, ..) = civil(secs);
    format!("{y:04}{m:02}{d:02}")
}

fn vcard(p: &Props, uid: &str) -> String {
    let mut l = vec!["BEGIN:VCARD".to_string(), "VERSION:3.0".to_string()];
    l.push(format!("UID:{}", esc(uid)));
    let given = p.str(0x3A06).unwrap_or_default();
    let family = p.str(0x3A11).unwrap_or_default();
    let middle = p.str(0x3A44).unwrap_or_default();
    let prefix = p.str(0x3A45).unwrap_or_default();
    let suffix = p.str(0x3A05).unwrap_or_default();
    let fn_ = p
        .str(0x3001)
        .or_else(|| p.subject())
        .unwrap_or_else(|| format!("{given} {family}").trim().to_string());
    l.push(format!("FN:{}", esc(&fn_)));
    l.push(format!(
        "N:{};{};{};{};{}",
        esc(&family),
        esc(&given),
        esc(&middle),
        esc(&prefix),
        esc(&suffix)
    ));
    // PidLidEmail1/2/3EmailAddress (PSETID_Address 0x8083, 0x8093, 0x80A3).
    for lid in [0x8083, 0x8093, 0x80A3] {
        if let Some(a) = p.named_str(PSETID_ADDRESS, lid).filter(|a| a.contains('@')) {
            l.push(format!("EMAIL;TYPE=INTERNET:{}", esc(&a)));
        }
    }
    for (tag, ty) in [
        (0x3A08, "WORK,VOICE"),
        (0x3A09, "HOME,VOICE"),
        (0x3A1C, "CELL"),
        (0x3A24, "WORK,FAX"),
    ] {
        if let Some(t) = p.str(tag) {
            l.push(format!("TEL;TYPE={ty}:{}", esc(&t)));
        }
    }
    // Work address (PSETID_Address street 0x8045, city 0x8046, state 0x8047, postal code
    // 0x8048, country 0x8049); home address (PR_HOME_ADDRESS_*).
    let work: Vec<String> = [0x8045, 0x8046, 0x8047, 0x8048, 0x8049]
        .iter()
        .map(|lid| p.named_str(PSETID_ADDRESS, *lid).unwrap_or_default())
        .collect();
    let home: Vec<String> = [0x3A5D, 0x3A59, 0x3A5C, 0x3A5B, 0x3A5A]
        .iter()
        .map(|t| p.str(*t).unwrap_or_default())
        .collect();
    for (ty, a) in [("WORK", work), ("HOME", home)] {
        if a.iter().any(|s| !s.is_empty()) {
            l.push(format!(
                "ADR;TYPE={ty}:;;{};{};{};{};{}",
                esc(&a[0]),
                esc(&a[1]),
                esc(&a[2]),
                esc(&a[3]),
                esc(&a[4])
            ));
        }
    }
    if let Some(c) = p.str(0x3A16) {
        l.push(format!("ORG:{}", esc(&c)));
    }
    if let Some(t) = p.str(0x3A17) {
        l.push(format!("TITLE:{}", esc(&t)));
    }
    if let Some(b) = p.time(0x3A42) {
        let (y, m, d, ..) = civil(b);
        l.push(format!("BDAY:{y:04}-{m:02}-{d:02}"));
    }
    if let Some(n) = p.body().filter(|b| !b.trim().is_empty()) {
        l.push(format!("NOTE:{}", esc(n.trim_end())));
    }
    l.push("END:VCARD".to_string());
    fold(&l)
}

fn calendar(body: Vec<String>) -> String {
    let mut l = vec![
        "BEGIN:VCALENDAR".to_string(),
        "VERSION:2.0".to_string(),
        "PRODID:-//mailshift//PST import//EN".to_string(),
    ];
    l.extend(body);
    l.push("END:VCALENDAR".to_string());
    fold(&l)
}

fn stamp(p: &Props) -> String {
    utc(p.time(0x3008).or_else(|| p.time(0x3007)).unwrap_or(0))
}

fn vevent(p: &Props, uid: &str) -> String {
    let mut l = vec!["BEGIN:VEVENT".to_string(), format!("UID:{}", esc(uid))];
    l.push(format!("DTSTAMP:{}", stamp(p)));
    // PidLidAppointmentStartWhole 0x820D, EndWhole 0x820E, SubType (all day) 0x8215.
    let start = p
        .named_time(PSETID_APPOINTMENT, 0x820D)
        .or_else(|| p.named_time(PSETID_COMMON, 0x8516));
    let end = p
        .named_time(PSETID_APPOINTMENT, 0x820E)
        .or_else(|| p.named_time(PSETID_COMMON, 0x8517));
    let all_day = p.named_bool(PSETID_APPOINTMENT, 0x8215).unwrap_or(false);
    if let Some(s) = start {
        if all_day {
            l.push(format!("DTSTART;VALUE=DATE:{}", date(s)));
        } else {
            l.push(format!("DTSTART:{}", utc(s)));
        }
    }
    if let Some(e) = end {
        if all_day {
            l.push(format!("DTEND;VALUE=DATE:{}", date(e)));
        } else {
            l.push(format!("DTEND:{}", utc(e)));
        }
    }
    if let Some(s) = p.subject() {
        l.push(format!("SUMMARY:{}", esc(&s)));
    }
    if let Some(loc) = p.named_str(PSETID_APPOINTMENT, 0x8208) {
        l.push(format!("LOCATION:{}", esc(&loc)));
    }
    if let Some(b) = p.body().filter(|b| !b.trim().is_empty()) {
        l.push(format!("DESCRIPTION:{}", esc(b.trim_end())));
    }
    let organizer = p
        .str(0x0C1F)
        .filter(|a| a.contains('@'))
        .or_else(|| p.str(0x0065).filter(|a| a.contains('@')));
    if !p.recipients.is_empty() {
        if let Some(o) = &organizer {
            l.push(format!("ORGANIZER;SCHEDULE-AGENT=CLIENT:mailto:{o}"));
        }
        for r in &p.recipients {
            if let Some(a) = &r.address {
                let role = if r.kind == 2 {
                    "OPT-PARTICIPANT"
                } else {
                    "REQ-PARTICIPANT"
                };
                let cn = r
                    .name
                    .as_deref()
                    .map(|n| format!(";CN=\"{}\"", n.replace('"', "'")))
                    .unwrap_or_default();
                l.push(format!(
                    "ATTENDEE;ROLE={role}{cn};SCHEDULE-AGENT=CLIENT:mailto:{a}"
                ));
            }
        }
    }
    // PidLidRecurring 0x8223, PidLidAppointmentRecur 0x8216.
    let mut overrides = Vec::new();
    if p.named_bool(PSETID_APPOINTMENT, 0x8223) == Some(true) {
        let recurrence = match (p.named(PSETID_APPOINTMENT, 0x8216), start) {
            (Some(Value::Bin(blob)), Some(s)) => crate::recur::read(blob, s),
            _ => Err("no recurrence pattern".to_string()),
        };
        match recurrence {
            Ok(r) => {
                l.push(format!("RRULE:{}", r.rule));
                for d in &r.deleted {
                    l.push(format!("EXDATE:{}", utc(*d)));
                }
                let summary = p.subject();
                let location = p.named_str(PSETID_APPOINTMENT, 0x8208);
                for m in r.modified {
                    let mut o = vec!["BEGIN:VEVENT".to_string(), format!("UID:{}", esc(uid))];
                    o.push(format!("DTSTAMP:{}", stamp(p)));
                    o.push(format!("RECURRENCE-ID:{}", utc(m.original)));
                    o.push(format!("DTSTART:{}", utc(m.start)));
                    o.push(format!("DTEND:{}", utc(m.end)));
                    if let Some(s) = m.subject.or_else(|| summary.clone()) {
                        o.push(format!("SUMMARY:{}", esc(&s)));
                    }
                    if let Some(loc) = m.location.or_else(|| location.clone()) {
                        o.push(format!("LOCATION:{}", esc(&loc)));
                    }
                    o.push("END:VEVENT".to_string());
                    overrides.extend(o);
                }
            }
            Err(e) => l.push(format!(
                "X-MAILSHIFT-NOTE:{}",
                esc(&format!(
                    "recurring in Outlook; only the first occurrence is carried ({e})"
                ))
            )),
        }
    }
    l.push("END:VEVENT".to_string());
    l.extend(overrides);
    calendar(l)
}

fn vtodo(p: &Props, uid: &str) -> String {
    let mut l = vec!["BEGIN:VTODO".to_string(), format!("UID:{}", esc(uid))];
    l.push(format!("DTSTAMP:{}", stamp(p)));
    if let Some(s) = p.subject() {
        l.push(format!("SUMMARY:{}", esc(&s)));
    }
    if let Some(b) = p.body().filter(|b| !b.trim().is_empty()) {
        l.push(format!("DESCRIPTION:{}", esc(b.trim_end())));
    }
    // PidLidTaskStartDate 0x8104, TaskDueDate 0x8105 (dates), TaskDateCompleted 0x810F,
    // TaskComplete 0x811C, PercentComplete 0x8102 (0.0–1.0).
    if let Some(s) = p.named_time(PSETID_TASK, 0x8104) {
        l.push(format!("DTSTART;VALUE=DATE:{}", date(s)));
    }
    if let Some(d) = p.named_time(PSETID_TASK, 0x8105) {
        l.push(format!("DUE;VALUE=DATE:{}", date(d)));
    }
    let done = p.named_bool(PSETID_TASK, 0x811C) == Some(true);
    if let Some(Value::Float(f)) = p.named(PSETID_TASK, 0x8102) {
        l.push(format!("PERCENT-COMPLETE:{}", (f * 100.0).round() as i64));
    }
    if done {
        l.push("STATUS:COMPLETED".to_string());
        if let Some(c) = p.named_time(PSETID_TASK, 0x810F) {
            l.push(format!("COMPLETED:{}", utc(c)));
        }
    } else {
        l.push("STATUS:NEEDS-ACTION".to_string());
    }
    l.push("END:VTODO".to_string());
    calendar(l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::props::{Named, Value};

    /// FILETIME of a Unix time.
    fn ft(unix: i64) -> Value {
        Value::Time((unix + 11_644_473_600) * 10_000_000)
    }

    fn props(tags: &[(u16, Value)], named: &[((u32, u32), u16, Value)]) -> Props {
        let mut map = std::collections::HashMap::new();
        let mut all: std::collections::BTreeMap<u16, Value> = tags.iter().cloned().collect();
        for (key, id, v) in named {
            map.insert(*key, *id);
            all.insert(*id, v.clone());
        }
        Props::for_tests(all, Named::from_map(map))
    }

    #[test]
    fn a_task_becomes_a_vtodo() {
        let p = props(
            &[
                (0x001A, Value::Str("IPM.Task".into())),
                (0x0037, Value::Str("Renew the domain".into())),
                (0x1000, Value::Str("Before it expires, please".into())),
                (0x3008, ft(1_700_000_000)),
            ],
            &[
                ((PSETID_TASK, 0x8104), 0x8001, ft(1_700_006_400)),
                ((PSETID_TASK, 0x8105), 0x8002, ft(1_700_697_600)),
                ((PSETID_TASK, 0x811C), 0x8003, Value::Bool(true)),
                ((PSETID_TASK, 0x810F), 0x8004, ft(1_700_100_000)),
                ((PSETID_TASK, 0x8102), 0x8005, Value::Float(1.0)),
            ],
        );
        let ical = vtodo(&p, "pst-1");
        for line in [
            "BEGIN:VTODO",
            "UID:pst-1",
            "SUMMARY:Renew the domain",
            "DESCRIPTION:Before it expires\\, please",
            "DTSTART;VALUE=DATE:20231115",
            "DUE;VALUE=DATE:20231123",
            "PERCENT-COMPLETE:100",
            "STATUS:COMPLETED",
            "COMPLETED:20231116T020000Z",
        ] {
            assert!(ical.contains(&format!("{line}\r\n")), "{line} in {ical}");
        }
    }

    #[test]
    fn a_contact_keeps_its_addresses_and_birthday() {
        let p = props(
            &[
                (0x3001, Value::Str("Ann Lee".into())),
                (0x3A06, Value::Str("Ann".into())),
                (0x3A11, Value::Str("Lee".into())),
                (0x3A42, ft(446_774_400)),
                (0x3A5D, Value::Str("1 Rue de la Paix".into())),
                (0x3A59, Value::Str("Paris".into())),
                (0x3A5A, Value::Str("France".into())),
            ],
            &[
                (
                    (PSETID_ADDRESS, 0x8083),
                    0x8001,
                    Value::Str("ann@example.com".into()),
                ),
                ((PSETID_ADDRESS, 0x8046), 0x8002, Value::Str("Lyon".into())),
            ],
        );
        let card = vcard(&p, "pst-2");
        for line in [
            "FN:Ann Lee",
            "N:Lee;Ann;;;",
            "EMAIL;TYPE=INTERNET:ann@example.com",
            "ADR;TYPE=WORK:;;;Lyon;;;",
            "ADR;TYPE=HOME:;;1 Rue de la Paix;Paris;;;France",
            "BDAY:1984-02-28",
        ] {
            assert!(card.contains(&format!("{line}\r\n")), "{line} in {card}");
        }
    }
}
