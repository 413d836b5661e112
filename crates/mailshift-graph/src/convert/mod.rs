//! Graph's JSON to vCard/iCalendar and back: contacts ([`contact`]), events ([`event`]) and
//! To Do tasks ([`task`]). Objects are read with the engine's own content-line reader
//! ([`mailshift_dav::object::tree`]) and time zones mapped with its CLDR table, so a TZID means
//! the same here as in the rest of the copy.
//!
//! What Graph cannot hold is refused with the reason ([`Unsupported`]), never dropped in
//! silence; what Graph holds and vCard/iCalendar do not say (a contact's spouse, a To Do
//! task's "waiting on others") is mapped to the nearest value, as the module of each kind says.

pub mod contact;
pub mod event;
pub mod task;
pub mod vtimezone;

use mailshift_dav::object::{Node, Prop};

/// Why an object cannot be written to Graph as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The one top-level component of a body (`VCARD` or `VCALENDAR`).
pub fn root(data: &[u8], name: &str) -> Result<Node, Unsupported> {
    let tree = mailshift_dav::object::tree(data);
    let root = tree
        .roots
        .into_iter()
        .find(|r| r.name == name)
        .ok_or_else(|| Unsupported(format!("no BEGIN:{name} in the object")))?;
    if let Some(e) = &root.error {
        return Err(Unsupported(e.to_string()));
    }
    Ok(root)
}

/// Every property of that name (upper case) of a component.
pub fn props<'n>(node: &'n Node, name: &'n str) -> impl Iterator<Item = &'n Prop> + 'n {
    node.props
        .iter()
        .map(|(_, p)| p)
        .filter(move |p| p.name() == name)
}

/// The first property of that name, its value as text (unescaped).
pub fn text(node: &Node, name: &str) -> Option<String> {
    node.prop(name)
        .map(|p| unescape(&String::from_utf8_lossy(&p.value)))
        .filter(|s| !s.is_empty())
}

/// A parameter's first value, upper case.
pub fn param(prop: &Prop, name: &str) -> Option<String> {
    prop.param(name)
        .map(|v| String::from_utf8_lossy(v).trim().to_ascii_uppercase())
}

/// Every value of every occurrence of a parameter, upper case (`TYPE=WORK,VOICE;TYPE=PREF`).
pub fn param_values(prop: &Prop, name: &str) -> Vec<String> {
    prop.params
        .iter()
        .filter(|p| p.name.eq_ignore_ascii_case(name.as_bytes()))
        .flat_map(|p| p.values.iter())
        .flat_map(|v| {
            String::from_utf8_lossy(v)
                .split(',')
                .map(|s| s.trim().to_ascii_uppercase())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A TEXT value as written (RFC 5545 §3.3.11, RFC 6350 §3.4): `\n` is a line break.
pub fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'N') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Text as a TEXT value.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ',' => out.push_str("\\,"),
            ';' => out.push_str("\\;"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c if c.is_control() && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// A structured value's components (`N`, `ADR`, `ORG`), split on unescaped `;` and unescaped.
pub fn components(value: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(value);
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                current.push('\\');
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            ';' => parts.push(unescape(&std::mem::take(&mut current))),
            c => current.push(c),
        }
    }
    parts.push(unescape(&current));
    parts
}

/// A list value (`CATEGORIES`, `EXDATE`), split on unescaped `,` and unescaped; empty items
/// left out.
pub fn components_list(value: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(value);
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                current.push('\\');
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            ',' => parts.push(unescape(&std::mem::take(&mut current))),
            c => current.push(c),
        }
    }
    parts.push(unescape(&current));
    parts
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Writes content lines: CRLF, folded at 75 octets (never inside a UTF-8 sequence).
#[derive(Default)]
pub struct Lines(String);

impl Lines {
    pub fn new() -> Lines {
        Lines(String::new())
    }

    /// A line `NAME[;params]:value`, the value written as given (escape TEXT first).
    pub fn raw(&mut self, line: &str) {
        let mut width = 0;
        for c in line.chars() {
            let len = c.len_utf8();
            if width + len > 75 {
                self.0.push_str("\r\n ");
                width = 1;
            }
            self.0.push(c);
            width += len;
        }
        self.0.push_str("\r\n");
    }

    /// `NAME:escaped text`, when there is text.
    pub fn text(&mut self, name: &str, value: Option<&str>) {
        if let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) {
            self.raw(&format!("{name}:{}", escape(value)));
        }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0.into_bytes()
    }
}

/// A parameter value, quoted when it holds `:`, `;` or `,` (RFC 5545 §3.2); `"` cannot be
/// written in one and is dropped.
pub fn param_value(value: &str) -> String {
    let clean: String = value
        .chars()
        .filter(|c| *c != '"' && !c.is_control())
        .collect();
    if clean.contains([':', ';', ',']) {
        format!("\"{clean}\"")
    } else {
        clean
    }
}

/// A JSON string field, trimmed, when not empty.
pub fn field<'v>(value: &'v serde_json::Value, name: &str) -> Option<&'v str> {
    value[name]
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A date or date-time as its parts: `(y, m, d, Some((h, min, s)), utc)`, from iCalendar's
/// `20240115`, `20240115T090000`, `20240115T090000Z` or Graph's `2024-01-15T09:00:00.0000000`
/// and `2024-01-15`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub y: i64,
    pub m: u32,
    pub d: u32,
    pub time: Option<(u32, u32, u32)>,
    pub utc: bool,
}

impl Stamp {
    pub fn parse(text: &str) -> Option<Stamp> {
        let text = text.trim();
        let digits: String = text
            .chars()
            .take_while(|c| *c != '.' && *c != '+')
            .filter(|c| c.is_ascii_digit() || *c == 'T' || *c == 'Z')
            .collect();
        let utc = digits.ends_with('Z');
        let digits = digits.trim_end_matches('Z');
        let (date, time) = match digits.split_once('T') {
            Some((d, t)) => (d, Some(t)),
            None => (digits, None),
        };
        if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let y = date[..4].parse().ok()?;
        let m = date[4..6].parse().ok()?;
        let d = date[6..8].parse().ok()?;
        if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
            return None;
        }
        let time = match time {
            None => None,
            Some(t) if t.len() >= 4 && t.bytes().all(|b| b.is_ascii_digit()) => Some((
                t[..2].parse().ok()?,
                t[2..4].parse().ok()?,
                t.get(4..6).and_then(|s| s.parse().ok()).unwrap_or(0),
            )),
            Some(_) => return None,
        };
        Some(Stamp { y, m, d, time, utc })
    }

    /// `20240115` or `20240115T090000` (with `Z` when UTC).
    pub fn ical(&self) -> String {
        let date = format!("{:04}{:02}{:02}", self.y, self.m, self.d);
        match self.time {
            None => date,
            Some((h, mi, s)) => format!(
                "{date}T{h:02}{mi:02}{s:02}{}",
                if self.utc { "Z" } else { "" }
            ),
        }
    }

    /// Graph's `2024-01-15T09:00:00` (midnight for a date).
    pub fn graph(&self) -> String {
        let (h, mi, s) = self.time.unwrap_or((0, 0, 0));
        format!(
            "{:04}-{:02}-{:02}T{h:02}:{mi:02}:{s:02}",
            self.y, self.m, self.d
        )
    }

    /// Graph's `2024-01-15`.
    pub fn graph_date(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.y, self.m, self.d)
    }

    pub fn days(&self) -> i64 {
        days_from_civil(self.y, self.m, self.d)
    }

    /// 0 = Monday … 6 = Sunday.
    pub fn weekday(&self) -> usize {
        (self.days() + 3).rem_euclid(7) as usize
    }

    /// The same time of day, `days` later.
    pub fn plus_days(&self, days: i64) -> Stamp {
        let (y, m, d) = civil_from_days(self.days() + days);
        Stamp { y, m, d, ..*self }
    }
}

/// An iCalendar TZID as Graph's `timeZone`: the Windows id CLDR maps an IANA id to; a Windows
/// id as is; otherwise the TZID itself (Graph also takes IANA ids it knows).
pub fn graph_zone(tzid: &str) -> String {
    let tzid = tzid.trim();
    if mailshift_dav::object::windows_to_iana(tzid).is_some() && !tzid.contains('/') {
        return tzid.to_string();
    }
    mailshift_dav::object::iana_to_windows(tzid)
        .map(str::to_string)
        .unwrap_or_else(|| tzid.to_string())
}

/// Graph's `timeZone` as an iCalendar TZID: the IANA id of a Windows id, `None` for UTC.
pub fn ical_zone(zone: &str) -> Option<String> {
    let zone = zone.trim();
    if zone.is_empty() || zone.eq_ignore_ascii_case("UTC") || zone == "Etc/UTC" {
        return None;
    }
    Some(
        mailshift_dav::object::windows_to_iana(zone)
            .map(str::to_string)
            .unwrap_or_else(|| zone.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_know_their_weekday() {
        let s = Stamp::parse("20240115T090000").unwrap();
        assert_eq!(s.graph(), "2024-01-15T09:00:00");
        assert_eq!(s.weekday(), 0, "2024-01-15 is a Monday");
        assert_eq!(
            Stamp::parse("2024-01-15T09:00:00.0000000").unwrap().ical(),
            "20240115T090000"
        );
        assert_eq!(
            Stamp::parse("20240229").unwrap().plus_days(1).ical(),
            "20240301"
        );
        assert_eq!(
            civil_from_days(days_from_civil(1999, 12, 31)),
            (1999, 12, 31)
        );
        assert!(Stamp::parse("2024-13-01").is_none());
    }

    #[test]
    fn zones_map_both_ways() {
        assert_eq!(graph_zone("Europe/Berlin"), "W. Europe Standard Time");
        assert_eq!(
            graph_zone("W. Europe Standard Time"),
            "W. Europe Standard Time"
        );
        assert_eq!(
            ical_zone("W. Europe Standard Time").as_deref(),
            Some("Europe/Berlin")
        );
        assert_eq!(ical_zone("UTC"), None);
    }

    #[test]
    fn long_lines_fold_and_text_escapes() {
        let mut lines = Lines::new();
        lines.text("NOTE", Some(&format!("a,b;c\n{}", "é".repeat(60))));
        let out = String::from_utf8(lines.into_bytes()).unwrap();
        assert!(out.starts_with("NOTE:a\\,b\\;c\\n"), "{out}");
        assert!(out.lines().all(|l| l.len() <= 75), "{out}");
        assert_eq!(components(b"Doe;John\\;Jr;;"), ["Doe", "John;Jr", "", ""]);
    }
}
