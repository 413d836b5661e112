//! `.vcf` and `.ics` files that hold many objects: split into units (one per vCard, one per
//! UID of a calendar with the VTIMEZONEs it uses) and joined back.
//!
//! A bad object is reported with its line and left out; the rest of the file is still read.
//! Objects are cut out of the file byte for byte; a calendar unit gets a VCALENDAR of its own
//! around its components, with the VERSION, PRODID and CALSCALE lines of the VCALENDAR it came
//! from (METHOD is left out: CalDAV resources must not hold it, RFC 4791 §4.1). When a
//! VCALENDAR of the file holds exactly one unit and no METHOD, that VCALENDAR is the unit, as
//! it is (a directory of one-event files is read byte for byte).

use super::line::{Line, Node, Tree};
use super::{CalUnit, Item, ParseError, cal_item, card_item, group_calendars, tree};

/// The items of a `.vcf` or `.ics` file, each with the 1-based line where it starts (its BEGIN
/// line: the VCARD's, the VCALENDAR's when it is the whole VCALENDAR, else its first
/// component's), in the file's order; and what was wrong with the rest.
pub fn split_file(data: &[u8]) -> (Vec<(usize, Item)>, Vec<ParseError>) {
    let tree = tree(data);
    let lines = &tree.lines;
    let mut items: Vec<(usize, Item)> = Vec::new();
    let mut errors = tree.stray.clone();
    let mut cals: Vec<&Node> = Vec::new();
    for root in &tree.roots {
        match root.name.as_str() {
            "VCARD" => match &root.error {
                Some(e) => errors.push(e.clone()),
                None => {
                    let (start, end) = root.range(lines);
                    items.push((
                        lines[root.begin].lineno,
                        card_item(root, data[start..end].to_vec()),
                    ));
                }
            },
            "VCALENDAR" => {
                // Its own problem (not one of a component's, which grouping reports with the
                // component): said, and its complete components still read.
                if let Some(e) = own_error(root) {
                    errors.push(e);
                }
                cals.push(root);
            }
            other => errors.push(ParseError {
                line: lines[root.begin].lineno,
                message: format!(
                    "BEGIN:{other} at the top level: a VCARD, or a component inside a VCALENDAR, was expected"
                ),
            }),
        }
    }
    let grouped = group_calendars(&cals, lines);
    errors.extend(grouped.errors.into_iter().map(|(e, _)| e));
    for unit in &grouped.units {
        let (begin, bytes) = match whole_calendar(unit, &cals) {
            Some(cal) => {
                let (start, end) = cal.range(lines);
                (cal.begin, data[start..end].to_vec())
            }
            None => (
                unit.comps[0].begin,
                unit_calendar(data, &tree, unit, &cals, &grouped.timezones),
            ),
        };
        items.push((lines[begin].lineno, cal_item(unit, bytes)));
    }
    items.sort_by_key(|(line, _)| *line);
    errors.sort_by_key(|e| e.line);
    (items, errors)
}

fn own_error(root: &Node) -> Option<ParseError> {
    let error = root.error.as_ref()?;
    let from_child = root
        .children
        .iter()
        .any(|c| c.error.as_ref() == Some(error));
    (!from_child).then(|| error.clone())
}

fn calendar_of<'t>(comp: &Node, cals: &[&'t Node]) -> Option<&'t Node> {
    cals.iter()
        .find(|cal| cal.begin < comp.begin && cal.end.is_none_or(|end| comp.begin < end))
        .copied()
}

/// The VCALENDAR that holds this unit and nothing else, if there is one.
fn whole_calendar<'t>(unit: &CalUnit<'_>, cals: &[&'t Node]) -> Option<&'t Node> {
    let cal = calendar_of(unit.comps[0], cals)?;
    let others = cal
        .children
        .iter()
        .filter(|c| c.name != "VTIMEZONE")
        .count();
    let all_here = unit
        .comps
        .iter()
        .all(|c| calendar_of(c, cals).is_some_and(|k| std::ptr::eq(k, cal)));
    (cal.error.is_none() && others == unit.comps.len() && all_here && cal.prop("METHOD").is_none())
        .then_some(cal)
}

/// The line end a file uses (that of its first line).
fn eol(data: &[u8], lines: &[Line]) -> &'static [u8] {
    match lines.first() {
        Some(l)
            if !data[l.start..l.end].ends_with(b"\r\n")
                && data[l.start..l.end].ends_with(b"\n") =>
        {
            b"\n"
        }
        _ => b"\r\n",
    }
}

fn push_range(out: &mut Vec<u8>, chunk: &[u8], eol: &[u8]) {
    out.extend_from_slice(chunk);
    if !chunk.ends_with(b"\n") {
        out.extend_from_slice(eol);
    }
}

fn unit_calendar(
    data: &[u8],
    tree: &Tree,
    unit: &CalUnit<'_>,
    cals: &[&Node],
    timezones: &std::collections::HashMap<String, &Node>,
) -> Vec<u8> {
    let lines = &tree.lines;
    let eol = eol(data, lines);
    let mut out = Vec::new();
    out.extend_from_slice(b"BEGIN:VCALENDAR");
    out.extend_from_slice(eol);
    let cal = calendar_of(unit.comps[0], cals);
    let mut has_version = false;
    let mut has_prodid = false;
    if let Some(cal) = cal {
        for (index, prop) in &cal.props {
            let name = prop.name();
            if matches!(name.as_str(), "VERSION" | "PRODID" | "CALSCALE") {
                has_version |= name == "VERSION";
                has_prodid |= name == "PRODID";
                let line = &lines[*index];
                push_range(&mut out, &data[line.start..line.end], eol);
            }
        }
    }
    if !has_version {
        out.extend_from_slice(b"VERSION:2.0");
        out.extend_from_slice(eol);
    }
    if !has_prodid {
        out.extend_from_slice(PRODID);
        out.extend_from_slice(eol);
    }
    for tzid in unit.tzids() {
        if let Some(tz) = timezones.get(&tzid) {
            let (start, end) = tz.range(lines);
            push_range(&mut out, &data[start..end], eol);
        }
    }
    for comp in &unit.comps {
        let (start, end) = comp.range(lines);
        push_range(&mut out, &data[start..end], eol);
    }
    out.extend_from_slice(b"END:VCALENDAR");
    out.extend_from_slice(eol);
    out
}

pub(crate) const PRODID: &[u8] = b"PRODID:-//mailshift//mailshift//EN";

/// One file holding these objects: the vCards one after the other (a `.vcf`), or one VCALENDAR
/// with every calendar object's components and their VTIMEZONEs, each TZID once (a `.ics`).
/// Each object is copied byte for byte, line ends included.
pub fn join_file(items: &[&[u8]]) -> Vec<u8> {
    join_calendar(items, &[])
}

/// Like [`join_file`], with calendar-level properties (`X-WR-CALNAME:Work`, as whole lines
/// without line end) written after VERSION and PRODID when the file is a calendar.
pub fn join_calendar(items: &[&[u8]], calendar_lines: &[Vec<u8>]) -> Vec<u8> {
    let mut cards = Vec::new();
    let mut timezones: Vec<u8> = Vec::new();
    let mut tzids: Vec<String> = Vec::new();
    let mut comps: Vec<u8> = Vec::new();
    let mut any_calendar = false;
    for data in items {
        let tree = tree(data);
        let lines = &tree.lines;
        let eol = eol(data, lines);
        for root in &tree.roots {
            let (start, end) = root.range(lines);
            match root.name.as_str() {
                "VCALENDAR" => {
                    any_calendar = true;
                    for child in &root.children {
                        let (start, end) = child.range(lines);
                        if child.name == "VTIMEZONE" {
                            let tzid = child.value("TZID").unwrap_or_default();
                            if tzids.contains(&tzid) {
                                continue;
                            }
                            tzids.push(tzid);
                            push_range(&mut timezones, &data[start..end], eol);
                        } else {
                            push_range(&mut comps, &data[start..end], eol);
                        }
                    }
                }
                _ => push_range(&mut cards, &data[start..end], eol),
            }
        }
    }
    let mut out = cards;
    if any_calendar || !calendar_lines.is_empty() {
        out.extend_from_slice(b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n");
        out.extend_from_slice(PRODID);
        out.extend_from_slice(b"\r\n");
        for line in calendar_lines {
            super::rewrite::push_folded(&mut out, line, b"\r\n");
        }
        out.extend_from_slice(&timezones);
        out.extend_from_slice(&comps);
        out.extend_from_slice(b"END:VCALENDAR\r\n");
    }
    out
}
