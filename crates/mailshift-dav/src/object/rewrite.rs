//! The minimum rewrite of an object for a destination, and its list for the report.
//!
//! Only the lines that must change are replaced (re-folded at 75 octets, with the line end the
//! original line had); every other byte is copied as it was. An object that needs nothing goes
//! out untouched.
//!
//! 1. Windows time-zone ids (`TZID=W. Europe Standard Time`, written by Exchange and Outlook;
//!    also their English display names, `(UTC+01:00) Amsterdam, Berlin, ...`) become IANA ids
//!    (`Europe/Berlin`), in VTIMEZONE's TZID, in every `TZID=` parameter and in
//!    `X-WR-TIMEZONE` / `X-LIC-LOCATION`: always, since no DAV server or client knows Windows
//!    ids (table: [`super::windows_zones`]). The VTIMEZONE's rules are kept; a VTIMEZONE whose
//!    new id another one in the object already has is dropped.
//! 2. With [`Profile::schedule_agent_client`] (the destination schedules on its own, RFC 6638),
//!    every ATTENDEE and ORGANIZER gets `SCHEDULE-AGENT=CLIENT` (replacing SERVER or NONE, and
//!    dropping `SCHEDULE-FORCE-SEND`, which only applies to server scheduling), so that writing
//!    the object never sends an invitation or a cancellation. Some servers ignore NONE
//!    (nextcloud/server #22197), hence CLIENT.
//! 3. vCard 3.0 ↔ 4.0 when the address book lists the versions it accepts and the card's is not
//!    one of them (RFC 6350 appendix A, RFC 6352 §5.1.1):
//!    - `VERSION` (moved right after BEGIN, where 4.0 wants it);
//!    - inline `PHOTO`, `LOGO`, `SOUND`, `KEY`: `;ENCODING=b;TYPE=JPEG:<base64>` ↔
//!      `:data:image/jpeg;base64,<base64>` (the base64 itself is not touched); a 4.0 URI gets
//!      `VALUE=uri` in 3.0;
//!    - `TYPE` values: upper case in 3.0, lower case in 4.0; `TYPE=PREF` ↔ `PREF=1`;
//!    - groups: 4.0 `KIND` / `MEMBER` ↔ Apple's `X-ADDRESSBOOKSERVER-KIND` /
//!      `X-ADDRESSBOOKSERVER-MEMBER`, which 3.0 servers and clients use;
//!    - `GEO`: `lat;lon` ↔ `geo:lat,lon`;
//!    - 3.0 requires `N`: an empty `N:;;;;` is added to a 4.0 card without one.
//!
//!    Kept as they are (servers store properties they do not know): 3.0's `LABEL`, `CLASS`,
//!    `NAME`, `MAILER`, `SORT-STRING`, `AGENT`; 4.0's `ANNIVERSARY`, `GENDER`, `LANG`,
//!    `CLIENTPIDMAP`, `ALTID`/`PID` parameters; date formats; `TEL` and `UID` values (text or
//!    URI are valid in both). vCard 2.1 cards are not converted.
//! 4. A comma or semicolon left unescaped in a single text value (iCalendar `SUMMARY`,
//!    `DESCRIPTION`, `LOCATION`, `COMMENT`, `CONTACT`; vCard 3.0 and 4.0 `FN`, `NOTE`,
//!    `TITLE`, `ROLE`; not an encoded value),
//!    which both RFCs forbid, is escaped (`\,`, `\;`): Radicale reads such a SUMMARY as a list
//!    and keeps only its first item. Always, as the content hash reads both forms the same.
//!    List values (`CATEGORIES`, `NICKNAME`, `RESOURCES`) and structured ones (`N`, `ADR`,
//!    `ORG`) are left alone: there the comma or semicolon is a separator.
//! 6. With [`Profile::require_uid`] (a CardDAV/CalDAV server: RFC 6352 §5.1 and RFC 4791
//!    §4.1 require a UID, and Radicale refuses a card without one), an object without UID gets
//!    `UID:mailshift-sha256-<hex of its content hash>`: derived from the content, so every run
//!    writes the same one, and read back by [`super::identity`] as the source's own identity
//!    (`sha256:<hex>`), so adoption and verify match it like any other object.
//! 5. A line folded in the middle of a UTF-8 sequence (RFC 5545 §3.1 allows it; simple
//!    exporters do it) makes the body invalid UTF-8, and Radicale then reads the whole body as
//!    Latin-1 and stores every accented letter garbled. Such lines are folded again between
//!    characters: always, as the content does not change (the content hash is the same).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

use super::Item;
use super::line::{self, Line, Node, Param, Prop};
use super::windows_zones;

/// What a destination collection accepts and does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// The vCard versions the address book accepts (`"3.0"`, `"4.0"`); empty: any.
    pub vcard_versions: Vec<String>,
    /// The server schedules on its own: mark attendees and organizer `SCHEDULE-AGENT=CLIENT`.
    pub schedule_agent_client: bool,
    /// Objects must have a UID (a DAV server; files need none).
    pub require_uid: bool,
}

/// One rewrite made to an object, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rewrite {
    /// A Windows time-zone id replaced by the IANA one.
    WindowsTimeZone { from: String, to: String },
    /// Attendees and organizer marked `SCHEDULE-AGENT=CLIENT`.
    ScheduleAgentClient,
    /// The card converted between vCard versions.
    VcardVersion { from: String, to: String },
    /// Lines folded inside a UTF-8 character folded again between characters.
    Refolded,
    /// Commas and semicolons escaped in single text values.
    TextEscaped,
    /// A UID derived from the content given to an object without one.
    UidAdded(String),
}

impl fmt::Display for Rewrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rewrite::WindowsTimeZone { from, to } => {
                write!(f, "Windows time zone \"{from}\" written as \"{to}\"")
            }
            Rewrite::ScheduleAgentClient => f.write_str(
                "attendees and organizer marked SCHEDULE-AGENT=CLIENT (the server sends no invitation)",
            ),
            Rewrite::Refolded => f.write_str(
                "lines folded inside a UTF-8 character folded again between characters (a server that reads the body as UTF-8, Radicale among them, would garble every accented letter)",
            ),
            Rewrite::TextEscaped => f.write_str(
                "commas and semicolons escaped in text (SUMMARY, DESCRIPTION, FN, NOTE...) as the RFCs require (Radicale cuts such a text at its first comma)",
            ),
            Rewrite::UidAdded(uid) => write!(
                f,
                "no UID: given {uid} (derived from its content; the server requires one)"
            ),
            Rewrite::VcardVersion { from, to } => {
                write!(f, "vCard {from} converted to {to} (the address book does not accept {from})")
            }
        }
    }
}

/// The body to write to a destination described by `profile`, and what was changed. Without a
/// change, `item.data` itself and an empty list.
pub fn prepare(item: &Item, profile: &Profile) -> (Vec<u8>, Vec<Rewrite>) {
    let tree = line::tree(&item.data);
    if !tree.stray.is_empty() || tree.roots.iter().any(|r| r.error.is_some()) {
        return (item.data.clone(), Vec::new());
    }
    let mut edits = Edits::default();
    let mut rewrites = Vec::new();
    for root in &tree.roots {
        match root.name.as_str() {
            "VCALENDAR" => {
                windows_time_zones(root, &mut edits, &mut rewrites);
                if profile.schedule_agent_client
                    && schedule_agent_client(root, &mut edits)
                    && !rewrites.contains(&Rewrite::ScheduleAgentClient)
                {
                    rewrites.push(Rewrite::ScheduleAgentClient);
                }
            }
            "VCARD" => {
                if let Some(rewrite) = vcard_version(root, profile, &mut edits)
                    && !rewrites.contains(&rewrite)
                {
                    rewrites.push(rewrite);
                }
            }
            _ => {}
        }
    }
    if profile.require_uid && item.uid.is_none() {
        let uid = format!(
            "{}{}",
            super::DERIVED_UID_PREFIX,
            super::hex(&super::content_hash(&item.data))
        );
        let mut added = false;
        for root in &tree.roots {
            // The card itself, or each component of the calendar (VTIMEZONE needs none).
            let owners: Vec<&Node> = if root.name == "VCARD" {
                vec![root]
            } else {
                root.children
                    .iter()
                    .filter(|c| c.name != "VTIMEZONE")
                    .collect()
            };
            for owner in owners {
                let after = owner
                    .props
                    .iter()
                    .find(|(_, p)| p.name() == "VERSION")
                    .map_or(owner.begin, |(i, _)| *i);
                edits.inserted_after.entry(after).or_default().push(Prop {
                    raw_name: b"UID".to_vec(),
                    params: Vec::new(),
                    value: uid.clone().into_bytes(),
                });
                added = true;
            }
        }
        if added {
            rewrites.push(Rewrite::UidAdded(uid));
        }
    }
    for root in &tree.roots {
        if escape_text(root, &mut edits) && !rewrites.contains(&Rewrite::TextEscaped) {
            rewrites.push(Rewrite::TextEscaped);
        }
    }
    if std::str::from_utf8(&item.data).is_err() {
        for (i, line) in tree.lines.iter().enumerate() {
            let raw = &item.data[line.start..line.end];
            if std::str::from_utf8(raw).is_err() && std::str::from_utf8(&line.text).is_ok() {
                edits.refolded.insert(i);
            }
        }
        if !edits.refolded.is_empty() {
            rewrites.push(Rewrite::Refolded);
        }
    }
    if edits.is_empty() {
        return (item.data.clone(), Vec::new());
    }
    (edits.apply(&item.data, &tree.lines), rewrites)
}

/// Line-level changes, applied in one pass.
#[derive(Default)]
struct Edits {
    replaced: BTreeMap<usize, Prop>,
    deleted: HashSet<usize>,
    inserted_after: BTreeMap<usize, Vec<Prop>>,
    /// Lines written again as they are, folded between characters.
    refolded: BTreeSet<usize>,
}

impl Edits {
    fn is_empty(&self) -> bool {
        self.replaced.is_empty()
            && self.deleted.is_empty()
            && self.inserted_after.is_empty()
            && self.refolded.is_empty()
    }

    /// The current version of a line's property (an earlier rewrite's, if any).
    fn current(&self, index: usize, prop: &Prop) -> Prop {
        self.replaced.get(&index).unwrap_or(prop).clone()
    }

    fn replace(&mut self, index: usize, original: &Prop, new: Prop) {
        if &new == original {
            self.replaced.remove(&index);
        } else {
            self.replaced.insert(index, new);
        }
    }

    fn apply(&self, data: &[u8], lines: &[Line]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + 256);
        let mut cursor = 0;
        for (i, line) in lines.iter().enumerate() {
            out.extend_from_slice(&data[cursor..line.start]);
            cursor = line.end;
            let eol = eol_of(&data[line.start..line.end]);
            if !self.deleted.contains(&i) {
                match self.replaced.get(&i) {
                    Some(prop) => push_folded(&mut out, &prop.to_bytes(), eol),
                    None if self.refolded.contains(&i) => push_folded(&mut out, &line.text, eol),
                    None => out.extend_from_slice(&data[line.start..line.end]),
                }
            }
            if let Some(props) = self.inserted_after.get(&i) {
                // After a last line without line end, the new line needs one before it.
                let eol = if eol.is_empty() {
                    out.extend_from_slice(b"\r\n");
                    &b"\r\n"[..]
                } else {
                    eol
                };
                for prop in props {
                    push_folded(&mut out, &prop.to_bytes(), eol);
                }
            }
        }
        out.extend_from_slice(&data[cursor..]);
        out
    }
}

fn eol_of(raw: &[u8]) -> &'static [u8] {
    if raw.ends_with(b"\r\n") {
        b"\r\n"
    } else if raw.ends_with(b"\n") {
        b"\n"
    } else {
        b""
    }
}

/// Folds a line at 75 octets (RFC 5545 §3.1), never inside a UTF-8 sequence.
pub(crate) fn push_folded(out: &mut Vec<u8>, text: &[u8], eol: &[u8]) {
    let eol: &[u8] = if eol.is_empty() { b"\r\n" } else { eol };
    let mut start = 0;
    let mut limit = 75;
    while text.len() - start > limit {
        let mut cut = start + limit;
        while cut > start + 1 && (text[cut] & 0xC0) == 0x80 {
            cut -= 1;
        }
        out.extend_from_slice(&text[start..cut]);
        out.extend_from_slice(eol);
        out.push(b' ');
        start = cut;
        limit = 74;
    }
    out.extend_from_slice(&text[start..]);
    out.extend_from_slice(eol);
}

fn walk<'t>(node: &'t Node, f: &mut impl FnMut(&'t Node)) {
    f(node);
    for child in &node.children {
        walk(child, f);
    }
}

fn windows_time_zones(root: &Node, edits: &mut Edits, rewrites: &mut Vec<Rewrite>) {
    let mut seen_tzids: BTreeSet<String> = BTreeSet::new();
    let note = |from: &str, to: &str, rewrites: &mut Vec<Rewrite>| {
        let rewrite = Rewrite::WindowsTimeZone {
            from: from.to_string(),
            to: to.to_string(),
        };
        if !rewrites.contains(&rewrite) {
            rewrites.push(rewrite);
        }
    };
    walk(root, &mut |node| {
        if node.name == "VTIMEZONE"
            && let Some(tzid) = node.value("TZID")
        {
            let mapped = windows_zones::to_iana(&tzid).unwrap_or(&tzid).to_string();
            if !seen_tzids.insert(mapped) {
                let (first, last) = (node.begin, node.end.unwrap_or(node.begin));
                edits.deleted.extend(first..=last);
            }
        }
        for (index, prop) in &node.props {
            let mut new = edits.current(*index, prop);
            let name = prop.name();
            if matches!(name.as_str(), "TZID" | "X-WR-TIMEZONE" | "X-LIC-LOCATION") {
                let value = String::from_utf8_lossy(&prop.value);
                if let Some(iana) = windows_zones::to_iana(&value) {
                    note(value.trim(), iana, rewrites);
                    new.value = iana.as_bytes().to_vec();
                }
            }
            for param in &mut new.params {
                if param.name.eq_ignore_ascii_case(b"TZID") {
                    for value in &mut param.values {
                        let text = String::from_utf8_lossy(value).into_owned();
                        if let Some(iana) = windows_zones::to_iana(&text) {
                            note(text.trim(), iana, rewrites);
                            *value = iana.as_bytes().to_vec();
                        }
                    }
                }
            }
            edits.replace(*index, prop, new);
        }
    });
}

/// True when a line was changed.
fn schedule_agent_client(root: &Node, edits: &mut Edits) -> bool {
    let mut changed = false;
    walk(root, &mut |node| {
        for (index, prop) in &node.props {
            if !matches!(prop.name().as_str(), "ATTENDEE" | "ORGANIZER") {
                continue;
            }
            let is_client = prop
                .param("SCHEDULE-AGENT")
                .is_some_and(|v| v.eq_ignore_ascii_case(b"CLIENT"));
            if is_client {
                continue;
            }
            let mut new = edits.current(*index, prop);
            new.params.retain(|p| {
                !p.name.eq_ignore_ascii_case(b"SCHEDULE-AGENT")
                    && !p.name.eq_ignore_ascii_case(b"SCHEDULE-FORCE-SEND")
            });
            new.params.push(Param {
                name: b"SCHEDULE-AGENT".to_vec(),
                values: vec![b"CLIENT".to_vec()],
                has_eq: true,
                quoted: false,
            });
            edits.replace(*index, prop, new);
            changed = true;
        }
    });
    changed
}

fn vcard_version(card: &Node, profile: &Profile, edits: &mut Edits) -> Option<Rewrite> {
    let from = card.value("VERSION")?;
    if profile.vcard_versions.is_empty() || profile.vcard_versions.contains(&from) {
        return None;
    }
    let accepts = |v: &str| profile.vcard_versions.iter().any(|a| a == v);
    let to = match from.as_str() {
        "3.0" if accepts("4.0") => "4.0",
        "4.0" if accepts("3.0") => "3.0",
        _ => return None,
    };
    let up = to == "4.0";
    let mut first_prop = true;
    for (index, prop) in &card.props {
        let mut new = edits.current(*index, prop);
        let name = prop.name();
        match name.as_str() {
            "VERSION" => {
                new.value = to.as_bytes().to_vec();
                if up && !first_prop {
                    edits.deleted.insert(*index);
                    edits
                        .inserted_after
                        .entry(card.begin)
                        .or_default()
                        .insert(0, new);
                    first_prop = false;
                    continue;
                }
            }
            "PHOTO" | "LOGO" | "SOUND" | "KEY" => {
                if up {
                    binary_to_data_uri(&mut new, &name);
                } else {
                    data_uri_to_binary(&mut new);
                }
            }
            "KIND" if !up => rename(&mut new, "X-ADDRESSBOOKSERVER-KIND"),
            "MEMBER" if !up => rename(&mut new, "X-ADDRESSBOOKSERVER-MEMBER"),
            "X-ADDRESSBOOKSERVER-KIND" if up => rename(&mut new, "KIND"),
            "X-ADDRESSBOOKSERVER-MEMBER" if up => rename(&mut new, "MEMBER"),
            "GEO" => geo(&mut new, up),
            _ => {}
        }
        type_params(&mut new, up);
        first_prop = false;
        edits.replace(*index, prop, new);
    }
    if !up && card.prop("N").is_none() {
        let after = card
            .props
            .iter()
            .find(|(_, p)| p.name() == "VERSION")
            .map_or(card.begin, |(i, _)| *i);
        edits.inserted_after.entry(after).or_default().push(Prop {
            raw_name: b"N".to_vec(),
            params: Vec::new(),
            value: b";;;;".to_vec(),
        });
    }
    Some(Rewrite::VcardVersion {
        from,
        to: to.to_string(),
    })
}

/// Escapes `,` and `;` in single text values (see the module doc). True when a line changed.
fn escape_text(root: &Node, edits: &mut Edits) -> bool {
    let mut changed = false;
    let vcard = root.name == "VCARD";
    // vCard 2.1 escapes only `;`, and only in compound values: its text is left alone.
    if vcard && !matches!(root.value("VERSION").as_deref(), Some("3.0" | "4.0")) {
        return false;
    }
    walk(root, &mut |node| {
        for (index, prop) in &node.props {
            let name = prop.name();
            let text = if vcard {
                matches!(name.as_str(), "FN" | "NOTE" | "TITLE" | "ROLE")
            } else {
                matches!(
                    name.as_str(),
                    "SUMMARY" | "DESCRIPTION" | "LOCATION" | "COMMENT" | "CONTACT"
                )
            };
            // An encoded value (quoted-printable, base64) holds no raw separator to escape.
            if !text
                || prop.param("ENCODING").is_some()
                || prop
                    .param("VALUE")
                    .is_some_and(|v| !v.eq_ignore_ascii_case(b"TEXT"))
            {
                continue;
            }
            let mut new = edits.current(*index, prop);
            let mut value = Vec::with_capacity(new.value.len() + 8);
            let mut escaped = false;
            for &b in &new.value {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b',' || b == b';' {
                    value.push(b'\\');
                }
                value.push(b);
            }
            if value != new.value {
                new.value = value;
                edits.replace(*index, prop, new);
                changed = true;
            }
        }
    });
    changed
}

fn rename(prop: &mut Prop, name: &str) {
    let group = match prop.raw_name.iter().rposition(|&b| b == b'.') {
        Some(dot) => prop.raw_name[..=dot].to_vec(),
        None => Vec::new(),
    };
    prop.raw_name = [group, name.as_bytes().to_vec()].concat();
}

/// TYPE values in the case each version writes; PREF between `TYPE=PREF` (3.0) and `PREF=1`.
fn type_params(prop: &mut Prop, up: bool) {
    let mut pref = false;
    for param in &mut prop.params {
        if param.has_eq && param.name.eq_ignore_ascii_case(b"TYPE") {
            let before = param.values.len();
            if up {
                param.values.retain(|v| !v.eq_ignore_ascii_case(b"PREF"));
                pref |= param.values.len() != before;
            }
            for value in &mut param.values {
                if up {
                    value.make_ascii_lowercase();
                } else {
                    value.make_ascii_uppercase();
                }
            }
        }
    }
    prop.params.retain(|p| !(p.has_eq && p.values.is_empty()));
    if up && pref {
        prop.params.push(Param {
            name: b"PREF".to_vec(),
            values: vec![b"1".to_vec()],
            has_eq: true,
            quoted: false,
        });
    }
    if !up
        && let Some(i) = prop
            .params
            .iter()
            .position(|p| p.name.eq_ignore_ascii_case(b"PREF"))
    {
        prop.params.remove(i);
        match prop
            .params
            .iter_mut()
            .find(|p| p.has_eq && p.name.eq_ignore_ascii_case(b"TYPE"))
        {
            Some(param) => param.values.push(b"PREF".to_vec()),
            None => prop.params.push(Param {
                name: b"TYPE".to_vec(),
                values: vec![b"PREF".to_vec()],
                has_eq: true,
                quoted: false,
            }),
        }
    }
}

/// 3.0 `PHOTO;ENCODING=b;TYPE=JPEG:<b64>` to 4.0 `PHOTO:data:image/jpeg;base64,<b64>`.
fn binary_to_data_uri(prop: &mut Prop, name: &str) {
    let inline = prop
        .param("ENCODING")
        .is_some_and(|e| e.eq_ignore_ascii_case(b"b") || e.eq_ignore_ascii_case(b"BASE64"));
    if !inline {
        return;
    }
    let media = match prop.param("TYPE") {
        Some(t) if t.contains(&b'/') => String::from_utf8_lossy(t).to_ascii_lowercase(),
        Some(t) => {
            let sub = String::from_utf8_lossy(t).to_ascii_lowercase();
            let sub = if sub == "jpg" {
                "jpeg".to_string()
            } else {
                sub
            };
            let major = match name {
                "SOUND" => "audio",
                "KEY" => "application",
                _ => "image",
            };
            format!("{major}/{sub}")
        }
        None => sniff(&prop.value).to_string(),
    };
    prop.params.retain(|p| {
        !p.name.eq_ignore_ascii_case(b"ENCODING") && !p.name.eq_ignore_ascii_case(b"TYPE")
    });
    prop.value = [
        format!("data:{media};base64,").into_bytes(),
        prop.value.clone(),
    ]
    .concat();
}

/// The media type of base64 data from its first bytes, for a 3.0 photo without TYPE.
fn sniff(b64: &[u8]) -> &'static str {
    if b64.starts_with(b"/9j/") {
        "image/jpeg"
    } else if b64.starts_with(b"iVBORw0KGgo") {
        "image/png"
    } else if b64.starts_with(b"R0lGOD") {
        "image/gif"
    } else {
        "application/octet-stream"
    }
}

/// 4.0 `PHOTO:data:image/jpeg;base64,<b64>` to 3.0 `PHOTO;ENCODING=b;TYPE=JPEG:<b64>`; a URI
/// gets `VALUE=uri`.
fn data_uri_to_binary(prop: &mut Prop) {
    let value = prop.value.clone();
    if value.len() >= 5 && value[..5].eq_ignore_ascii_case(b"data:") {
        let Some(comma) = value.iter().position(|&b| b == b',') else {
            return;
        };
        let header = String::from_utf8_lossy(&value[5..comma]).to_ascii_lowercase();
        let Some(media) = header.strip_suffix(";base64") else {
            return;
        };
        let sub = media.rsplit('/').next().unwrap_or("").to_ascii_uppercase();
        prop.params.retain(|p| {
            !p.name.eq_ignore_ascii_case(b"MEDIATYPE") && !p.name.eq_ignore_ascii_case(b"VALUE")
        });
        prop.params.push(Param {
            name: b"ENCODING".to_vec(),
            values: vec![b"b".to_vec()],
            has_eq: true,
            quoted: false,
        });
        if !sub.is_empty() {
            prop.params.push(Param {
                name: b"TYPE".to_vec(),
                values: vec![sub.into_bytes()],
                has_eq: true,
                quoted: false,
            });
        }
        prop.value = value[comma + 1..].to_vec();
    } else if prop.param("VALUE").is_none() && value.contains(&b':') {
        prop.params.push(Param {
            name: b"VALUE".to_vec(),
            values: vec![b"uri".to_vec()],
            has_eq: true,
            quoted: false,
        });
    }
}

fn geo(prop: &mut Prop, up: bool) {
    let value = String::from_utf8_lossy(&prop.value).into_owned();
    if up {
        if let Some((lat, lon)) = value.split_once(';') {
            prop.value = format!("geo:{},{}", lat.trim(), lon.trim()).into_bytes();
        }
    } else if let Some(rest) = value.strip_prefix("geo:")
        && let Some((lat, lon)) = rest.split_once(',')
    {
        let lon = lon.split(';').next().unwrap_or(lon);
        prop.value = format!("{lat};{lon}").into_bytes();
    }
}
