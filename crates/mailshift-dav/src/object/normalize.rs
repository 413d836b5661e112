//! The content hash: equal for "the same object" after a round trip through a server that
//! parses and re-serializes what it stores (Radicale does, through vobject), so a re-run knows
//! an object is unchanged without comparing bytes.
//!
//! The normal form, hashed with SHA-256:
//! - lines unfolded, ended with CRLF, blank lines dropped;
//! - property and parameter names in upper case (a vCard group prefix too);
//! - parameters sorted by name, repeated ones merged (`TYPE=A;TYPE=B` is `TYPE=A,B`), values
//!   unquoted; vCard 2.1 bare parameters (`TEL;WORK:`) read as `TYPE=WORK`; the values of
//!   `TYPE`, `VALUE` and `ENCODING`, which both RFCs define as case-insensitive, in upper case,
//!   and those of `TYPE` sorted (a set);
//! - values as they are, but for what re-serializers are seen doing (vobject, for Radicale):
//!   in structured values (`N`, `ADR`, `ORG`, `CLIENTPIDMAP`, `GENDER`, `REQUEST-STATUS`)
//!   trailing empty components are dropped (`ORG:Ex;` is `ORG:Ex`, `N:Doe;John` is
//!   `N:Doe;John;;;`); elsewhere `\;` and `\,` read as `;` and `,` (vobject escapes them in
//!   text, `GEO:52.5;13.4` comes back as `GEO:52.5\;13.4`) and `\N` as `\n`; the parts of
//!   a recurrence rule (`RRULE`, `EXRULE`) in upper case and sorted (Xandikos, through the
//!   Python `icalendar` package, writes `BYMONTH=10;BYDAY=-1SU` as `BYDAY=-1SU;BYMONTH=10`);
//! - properties sorted within each component, components sorted within their parent (servers
//!   reorder both; order carries no meaning in either format).
//!
//! Left out, because servers, clients and exporters rewrite them without the object changing:
//! - `PRODID`, everywhere: names the last program that wrote the object;
//! - iCalendar `DTSTAMP`: the time the object was last serialized (RFC 5545 §3.8.7.2), which
//!   servers and exporters set on every write;
//! - every property of the VCALENDAR itself but `VERSION`: `METHOD` (CalDAV resources must not
//!   hold it, RFC 4791 §4.1, so some servers drop it), `CALSCALE` (GREGORIAN is the default,
//!   which some servers add), and what exporters say about the calendar they exported
//!   (`X-WR-CALNAME`, `X-WR-TIMEZONE`, `X-APPLE-CALENDAR-COLOR`, RFC 7986 `NAME`/`COLOR`...):
//!   the object is its components, and a unit split out of a file carries the file's lines;
//! - vCard `REV`: the time of the last revision, set by servers on write.
//!
//! The vCard `VERSION` is kept: a 3.0 and a 4.0 card differ. `LAST-MODIFIED` and `SEQUENCE` are
//! kept: they change only when the object is edited. A body whose BEGIN/END do not balance is
//! hashed as its unfolded lines, in order.

use sha2::{Digest, Sha256};

use super::line::{self, Node, Prop, push_param_value};

/// SHA-256 of the normal form of `data` (see the module doc).
pub fn content_hash(data: &[u8]) -> [u8; 32] {
    let tree = line::tree(data);
    let mut hasher = Sha256::new();
    if !tree.stray.is_empty() || tree.roots.iter().any(|r| r.error.is_some()) {
        for line in &tree.lines {
            hasher.update(&line.text);
            hasher.update(b"\r\n");
        }
    } else {
        let mut roots: Vec<Vec<u8>> = tree
            .roots
            .iter()
            .map(|root| canonical(root, root.name == "VCARD"))
            .collect();
        roots.sort();
        for root in roots {
            hasher.update(&root);
        }
    }
    hasher.finalize().into()
}

fn ignored(prop: &Prop, vcard: bool, in_calendar: bool) -> bool {
    let name = prop.name();
    if in_calendar {
        return name != "VERSION";
    }
    match name.as_str() {
        "PRODID" => true,
        "REV" => vcard,
        "DTSTAMP" => !vcard,
        _ => false,
    }
}

fn canonical(node: &Node, vcard: bool) -> Vec<u8> {
    let mut props: Vec<Vec<u8>> = node
        .props
        .iter()
        .filter(|(_, p)| !ignored(p, vcard, node.name == "VCALENDAR"))
        .map(|(_, p)| normal_line(p))
        .collect();
    props.sort();
    let mut children: Vec<Vec<u8>> = node.children.iter().map(|c| canonical(c, vcard)).collect();
    children.sort();
    let mut out = format!("BEGIN:{}\r\n", node.name).into_bytes();
    for p in props {
        out.extend_from_slice(&p);
        out.extend_from_slice(b"\r\n");
    }
    for c in children {
        out.extend_from_slice(&c);
    }
    out.extend_from_slice(format!("END:{}\r\n", node.name).as_bytes());
    out
}

fn normal_line(prop: &Prop) -> Vec<u8> {
    let mut params: Vec<(Vec<u8>, Vec<Vec<u8>>)> = Vec::new();
    for param in &prop.params {
        let (name, values) = if param.has_eq {
            (param.name.to_ascii_uppercase(), param.values.clone())
        } else {
            (b"TYPE".to_vec(), vec![param.name.clone()])
        };
        let case_free = matches!(name.as_slice(), b"TYPE" | b"VALUE" | b"ENCODING");
        let values = values
            .into_iter()
            .map(|v| if case_free { v.to_ascii_uppercase() } else { v });
        match params.iter_mut().find(|(n, _)| *n == name) {
            Some((_, existing)) => existing.extend(values),
            None => params.push((name, values.collect())),
        }
    }
    for (name, values) in &mut params {
        if name == b"TYPE" {
            values.sort();
            values.dedup();
        }
    }
    params.sort();
    let mut out = prop.raw_name.to_ascii_uppercase();
    for (name, values) in params {
        out.push(b';');
        out.extend_from_slice(&name);
        out.push(b'=');
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_param_value(&mut out, v);
        }
    }
    out.push(b':');
    out.extend_from_slice(&normal_value(&prop.name(), &prop.value));
    out
}

/// See the module doc.
fn normal_value(name: &str, value: &[u8]) -> Vec<u8> {
    if matches!(name, "RRULE" | "EXRULE") {
        let upper = value.to_ascii_uppercase();
        let mut parts: Vec<&[u8]> = upper
            .split(|&b| b == b';')
            .filter(|p| !p.is_empty())
            .collect();
        parts.sort();
        return parts.join(&b';');
    }
    let structured = matches!(
        name,
        "N" | "ADR" | "ORG" | "CLIENTPIDMAP" | "GENDER" | "REQUEST-STATUS"
    );
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        if value[i] == b'\\' && i + 1 < value.len() {
            match value[i + 1] {
                b';' | b',' if !structured => out.push(value[i + 1]),
                b'N' => out.extend_from_slice(b"\\n"),
                other => out.extend_from_slice(&[b'\\', other]),
            }
            i += 2;
        } else {
            out.push(value[i]);
            i += 1;
        }
    }
    if structured {
        // Drop trailing separators, but not an escaped `\;` (the byte before each `;` is
        // then a backslash that is not itself escaped).
        while out.last() == Some(&b';') && !ends_escaped(&out[..out.len() - 1]) {
            out.pop();
        }
    }
    out
}

/// True when `text` ends with an odd number of backslashes (its next byte is escaped).
fn ends_escaped(text: &[u8]) -> bool {
    text.iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1
}
