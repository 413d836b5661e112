//! vCards and iCalendar objects as the copy sees them: one unit per contact, or per UID of a
//! calendar (a recurring master with its RECURRENCE-ID overrides is one unit), with the
//! identity, the content hash and the few rewrites a destination may need.
//!
//! We work on content lines (RFC 5545 §3.1, RFC 6350 §3.2: unfolding, name, parameters with
//! quoted values, value) instead of parsing into a model with a crate such as `calcard` or
//! `icalendar`: a model and its serializer would rewrite every object (folding, parameter
//! quoting and order, escaping, property order, dropped unknown properties), so nothing could be
//! copied byte for byte, and every object would look "changed" to the next comparison. Here an
//! object that needs no rewrite goes out with exactly the bytes that came in, and a rewrite
//! ([`prepare`]) replaces only the lines it must, leaving every other byte as it was.
//!
//! - [`parse`]: one DAV resource body into an [`Item`];
//! - [`identity`], [`file_name`]: what keys the object in the journal and names it on disk;
//! - [`content_hash`]: equal for "the same object" after a server re-serialized it;
//! - [`prepare`]: the minimum rewrite for a destination ([`Rewrite`]);
//! - [`split_file`], [`join_file`]: `.vcf` / `.ics` files holding many objects.

mod file;
mod line;
mod normalize;
mod rewrite;
mod windows_zones;

use std::collections::HashMap;
use std::fmt;

use sha2::{Digest, Sha256};

use crate::store::Component;
pub use file::{join_calendar, join_file, split_file};
pub use normalize::content_hash;
// For the converters of other ends (Graph, EWS, PST), which read objects into their own
// models: the same content-line reader and Windows zone map as this engine, not a second one.
pub use line::{Line, Node, Param, Prop, Tree};
pub use rewrite::{Profile, Rewrite, prepare};

/// One unit of the copy: a vCard, or every component of one UID of an iCalendar object with
/// the VTIMEZONEs they use, as a standalone resource (a VCALENDAR with VERSION and PRODID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub component: Component,
    /// The UID, trimmed; `None` when the object has none.
    pub uid: Option<String>,
    /// The resource body.
    pub data: Vec<u8>,
    /// FN or SUMMARY (of the master, for a recurring event), for reports.
    pub summary: Option<String>,
}

/// What is wrong with an object, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line within the data given to the function that failed (the file for
    /// [`split_file`]); 0 when the problem is the whole file (it cannot be read).
    pub line: usize,
    /// What is wrong and, when we know it, how to fix it.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

impl std::error::Error for ParseError {}

/// Parses one DAV resource body: a single VCARD, or a VCALENDAR whose components share one UID
/// (with the VTIMEZONEs it needs). The item's `data` is `data`, untouched.
pub fn parse(data: &[u8]) -> Result<Item, ParseError> {
    let tree = line::tree(data);
    if let Some(e) = tree.stray.into_iter().next() {
        return Err(e);
    }
    let root = match tree.roots.as_slice() {
        [] => {
            return Err(ParseError {
                line: 1,
                message:
                    "no BEGIN:VCARD or BEGIN:VCALENDAR: this is not a vCard or an iCalendar object"
                        .into(),
            });
        }
        [root] => root,
        [_, second, ..] => {
            return Err(ParseError {
                line: tree.lines[second.begin].lineno,
                message: format!(
                    "a second top-level BEGIN:{}: a resource holds one object",
                    second.name
                ),
            });
        }
    };
    if let Some(e) = &root.error {
        return Err(e.clone());
    }
    match root.name.as_str() {
        "VCARD" => Ok(card_item(root, data.to_vec())),
        "VCALENDAR" => {
            let grouped = group_calendars(&[root], &tree.lines);
            if let Some((e, _)) = grouped.errors.into_iter().next() {
                return Err(e);
            }
            match grouped.units.as_slice() {
                [] => Err(ParseError {
                    line: tree.lines[root.begin].lineno,
                    message: "the VCALENDAR holds no VEVENT, VTODO or VJOURNAL".into(),
                }),
                [unit] => Ok(cal_item(unit, data.to_vec())),
                [first, second, ..] => Err(ParseError {
                    line: tree.lines[second.comps[0].begin].lineno,
                    message: format!(
                        "the resource holds several objects ({} and {}): a resource holds one UID",
                        first.label(),
                        second.label()
                    ),
                }),
            }
        }
        other => Err(ParseError {
            line: tree.lines[root.begin].lineno,
            message: format!("BEGIN:{other} at the top level: a VCARD or a VCALENDAR was expected"),
        }),
    }
}

/// The key of an object in the journal: `uid:<UID>`, or `sha256:<hex of content_hash>` for an
/// object without UID.
pub fn identity(item: &Item) -> String {
    match &item.uid {
        // A UID mailshift derived for an object that had none stands for that object.
        Some(uid) => match uid.strip_prefix(DERIVED_UID_PREFIX) {
            Some(hash) if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
                format!("sha256:{hash}")
            }
            _ => format!("uid:{uid}"),
        },
        None => format!("sha256:{}", hex(&content_hash(&item.data))),
    }
}

/// What begins the UID given to an object that had none (see [`prepare`]).
pub const DERIVED_UID_PREFIX: &str = "mailshift-sha256-";

/// A name safe in an href and as a file name for an identity: the UID itself when it is short
/// (≤ 100 bytes) and only `[A-Za-z0-9._@-]` (and does not start with `.`, which would hide the
/// file), else the first 40 hex digits of the identity's SHA-256.
pub fn file_name(identity: &str) -> String {
    if let Some(uid) = identity.strip_prefix("uid:")
        && !uid.is_empty()
        && uid.len() <= 100
        && !uid.starts_with('.')
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'))
    {
        return uid.to_string();
    }
    let mut name = hex(&Sha256::digest(identity.as_bytes()));
    name.truncate(40);
    name
}

/// A TEXT value as a person reads it (RFC 5545 §3.3.11), on one line for a report: `\,` `\;`
/// `\\` unescaped, `\n` as a space.
pub(crate) fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'N') => out.push(' '),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Text as a TEXT value (RFC 5545 §3.3.11): a display name can never break out of its line.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ',' => out.push_str("\\,"),
            ';' => out.push_str("\\;"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn card_item(node: &Node, data: Vec<u8>) -> Item {
    Item {
        component: Component::Card,
        uid: node.value("UID").filter(|u| !u.is_empty()),
        data,
        summary: node
            .value("FN")
            .map(|s| unescape(&s))
            .filter(|s| !s.is_empty()),
    }
}

/// The components of one calendar unit.
pub(crate) struct CalUnit<'t> {
    pub uid: Option<String>,
    pub comps: Vec<&'t Node>,
}

impl CalUnit<'_> {
    fn label(&self) -> String {
        match &self.uid {
            Some(uid) => format!("UID {uid}"),
            None => format!("a {} without UID", self.comps[0].name),
        }
    }

    /// The TZIDs its properties name, in order of first use.
    pub fn tzids(&self) -> Vec<String> {
        fn walk(node: &Node, out: &mut Vec<String>) {
            for (_, prop) in &node.props {
                if let Some(tzid) = prop.param("TZID") {
                    let tzid = String::from_utf8_lossy(tzid).into_owned();
                    if !out.contains(&tzid) {
                        out.push(tzid);
                    }
                }
            }
            for child in &node.children {
                walk(child, out);
            }
        }
        let mut out = Vec::new();
        for comp in &self.comps {
            walk(comp, &mut out);
        }
        out
    }

    pub fn component(&self) -> Component {
        match self.comps[0].name.as_str() {
            "VTODO" => Component::Task,
            "VJOURNAL" => Component::Journal,
            _ => Component::Event,
        }
    }

    /// SUMMARY of the master (the component without RECURRENCE-ID), else of the first.
    pub fn summary(&self) -> Option<String> {
        self.comps
            .iter()
            .find(|c| c.prop("RECURRENCE-ID").is_none())
            .or(self.comps.first())
            .and_then(|c| c.value("SUMMARY"))
            .map(|s| unescape(&s))
            .filter(|s| !s.is_empty())
    }
}

fn cal_item(unit: &CalUnit<'_>, data: Vec<u8>) -> Item {
    Item {
        component: unit.component(),
        uid: unit.uid.clone(),
        data,
        summary: unit.summary(),
    }
}

/// The units of one or more VCALENDARs, grouped by UID across all of them.
pub(crate) struct Grouped<'t> {
    pub units: Vec<CalUnit<'t>>,
    /// VTIMEZONEs by TZID (the first definition wins).
    pub timezones: HashMap<String, &'t Node>,
    /// Problems, each with the UID it spoils (the whole unit is then left out) if any.
    pub errors: Vec<(ParseError, Option<String>)>,
}

pub(crate) fn group_calendars<'t>(cals: &[&'t Node], lines: &[Line]) -> Grouped<'t> {
    let mut units: Vec<CalUnit<'t>> = Vec::new();
    let mut by_uid: HashMap<String, usize> = HashMap::new();
    let mut timezones = HashMap::new();
    let mut errors = Vec::new();
    for cal in cals {
        for child in &cal.children {
            let uid = child.value("UID").filter(|u| !u.is_empty());
            if let Some(e) = &child.error {
                errors.push((e.clone(), uid));
                continue;
            }
            match child.name.as_str() {
                "VTIMEZONE" => {
                    if let Some(tzid) = child.value("TZID") {
                        timezones.entry(tzid).or_insert(child);
                    }
                }
                "VEVENT" | "VTODO" | "VJOURNAL" => match uid {
                    Some(uid) => match by_uid.get(&uid) {
                        Some(&i) => units[i].comps.push(child),
                        None => {
                            by_uid.insert(uid.clone(), units.len());
                            units.push(CalUnit {
                                uid: Some(uid),
                                comps: vec![child],
                            });
                        }
                    },
                    None => units.push(CalUnit {
                        uid: None,
                        comps: vec![child],
                    }),
                },
                other => errors.push((
                    ParseError {
                        line: lines[child.begin].lineno,
                        message: format!(
                            "BEGIN:{other} is not copied (only VEVENT, VTODO and VJOURNAL are)"
                        ),
                    },
                    None,
                )),
            }
        }
    }
    // A unit one of whose components is broken is left out whole: half a series is worse
    // than a reported one.
    let spoiled: Vec<String> = errors.iter().filter_map(|(_, uid)| uid.clone()).collect();
    units.retain(|u| u.uid.as_ref().is_none_or(|uid| !spoiled.contains(uid)));
    Grouped {
        units,
        timezones,
        errors,
    }
}

/// Reads the component tree of a body (for the sibling modules, and the other ends'
/// converters).
pub fn tree(data: &[u8]) -> Tree {
    line::tree(data)
}

#[cfg(test)]
mod tests;

/// A content line as an owned value, for the ends that convert vCard/iCalendar to another
/// model (EWS): name in upper case without its group, parameters (names in upper case, values
/// unquoted) and the raw value (TEXT escapes left for the caller, who knows the value type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentLine {
    pub name: String,
    pub params: Vec<(String, Vec<String>)>,
    pub value: String,
}

impl ContentLine {
    /// The first value of a parameter (any case).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.first().map(String::as_str))
    }
}

/// A component (`BEGIN:X` … `END:X`) with its own lines and its children, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub name: String,
    pub lines: Vec<ContentLine>,
    pub children: Vec<Block>,
}

impl Block {
    /// The first line of that name (upper case).
    pub fn line(&self, name: &str) -> Option<&ContentLine> {
        self.lines.iter().find(|l| l.name == name)
    }

    /// Every line of that name (upper case).
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a ContentLine> + 'a {
        self.lines.iter().filter(move |l| l.name == name)
    }
}

/// The components of a vCard or iCalendar body, unfolded and split (the same reading as
/// [`parse`]), for converters; the first structural error is returned instead.
pub fn components(data: &[u8]) -> Result<Vec<Block>, ParseError> {
    let tree = line::tree(data);
    if let Some(e) = tree.stray.into_iter().next() {
        return Err(e);
    }
    fn own(node: &Node) -> Result<Block, ParseError> {
        if let Some(e) = &node.error {
            return Err(e.clone());
        }
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        Ok(Block {
            name: node.name.clone(),
            lines: node
                .props
                .iter()
                .map(|(_, p)| ContentLine {
                    name: p.name(),
                    params: p
                        .params
                        .iter()
                        .map(|q| {
                            (
                                text(&q.name).to_ascii_uppercase(),
                                q.values.iter().map(|v| text(v)).collect(),
                            )
                        })
                        .collect(),
                    value: text(&p.value),
                })
                .collect(),
            children: node.children.iter().map(own).collect::<Result<_, _>>()?,
        })
    }
    tree.roots.iter().map(own).collect()
}

/// The IANA zone of a Windows time-zone id (CLDR's windowsZones, territory 001).
pub fn windows_to_iana(tzid: &str) -> Option<&'static str> {
    windows_zones::to_iana(tzid)
}

/// The Windows time-zone id of an IANA zone, when CLDR names one as its golden zone.
pub fn iana_to_windows(iana: &str) -> Option<&'static str> {
    windows_zones::WINDOWS_ZONES
        .iter()
        .find(|(_, zone, _)| zone.eq_ignore_ascii_case(iana.trim()))
        .map(|(windows, _, _)| *windows)
}
