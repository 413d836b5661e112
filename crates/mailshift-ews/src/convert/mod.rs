//! Exchange items ↔ the engine's payloads (vCard, iCalendar). Each direction goes through a
//! list of [`Field`]s in the order types.xsd requires, so one conversion serves both writes:
//! CreateItem (the fields inside the item element, dictionary entries grouped) and UpdateItem
//! (one SetItemField per field, and a DeleteItemField for each field the item has and the new
//! version lacks). What a side cannot carry is listed in `lost`, never dropped silently: the
//! store reports it.
//!
//! vCard and iCalendar lines are read with mailshift-dav's content-line reader
//! ([`mailshift_dav::object::components`]), so folding, parameters and quoting are read the same
//! way as by the rest of the engine.

pub mod calendar;
pub mod contact;
pub mod task;
pub mod time;
pub mod zone;

use crate::requests;
use crate::xml::{self, Node, Writer};

/// Where a field is, as UpdateItem names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    /// `<t:FieldURI FieldURI="item:Subject"/>`
    Plain(&'static str),
    /// `<t:IndexedFieldURI FieldURI="contacts:EmailAddress" FieldIndex="EmailAddress1"/>`
    Indexed(&'static str, String),
    /// Our extended property holding the object's own UID (vCard/VTODO UIDs have no EWS
    /// field).
    Uid,
}

/// One field of an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub uri: Uri,
    /// The dictionary element the entry belongs in (`EmailAddresses`), for indexed fields.
    pub container: Option<&'static str>,
    /// For fields inside a shared entry (a physical address's `Street` in the entry keyed
    /// `Home`), that entry's key.
    pub entry: Option<String>,
    /// The markup: `<t:Subject>…</t:Subject>`, `<t:Entry Key="…">…</t:Entry>`, `<t:Street>…`.
    pub xml: String,
}

impl Field {
    pub fn plain(uri: &'static str, element: &str, text: &str) -> Field {
        let mut w = Writer::new();
        w.text(&format!("t:{element}"), text);
        Field {
            uri: Uri::Plain(uri),
            container: None,
            entry: None,
            xml: w.finish(),
        }
    }
}

/// The name of our extended property holding the object's own UID.
pub const UID_NAME: &str = "mailshift-uid";

fn uid_uri(w: &mut Writer) {
    w.empty(
        "t:ExtendedFieldURI",
        &[
            ("PropertySetId", requests::KEY_SET),
            ("PropertyName", UID_NAME),
            ("PropertyType", "String"),
        ],
    );
}

/// The UID field (an extended property).
pub fn uid_field(uid: &str) -> Field {
    let mut w = Writer::new();
    w.open("t:ExtendedProperty", &[]);
    uid_uri(&mut w);
    w.text("t:Value", uid).close("t:ExtendedProperty");
    Field {
        uri: Uri::Uid,
        container: None,
        entry: None,
        xml: w.finish(),
    }
}

/// An item to write: its element name and fields in schema order (the key property goes
/// where ItemType puts ExtendedProperty: after the fields of ItemType that come before it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// `Contact`, `CalendarItem`, `Task`, `DistributionList`.
    pub element: &'static str,
    /// Fields of ItemType before ExtendedProperty (Subject, Sensitivity, Body, Categories,
    /// Importance, Reminder*).
    pub item_fields: Vec<Field>,
    /// Our UID property, when the object has a UID EWS has no field for.
    pub uid: Option<Field>,
    /// The fields of the item's own type, in order.
    pub fields: Vec<Field>,
    /// A contact photo to attach (JPEG/PNG bytes, base64).
    pub photo: Option<String>,
    /// The Windows time zone its local times are in (sent as the request's TimeZoneContext).
    pub zone: Option<String>,
    /// What the destination cannot carry: "EMAIL #4 (Exchange keeps three)".
    pub lost: Vec<String>,
}

impl Outgoing {
    pub(crate) fn all(&self) -> impl Iterator<Item = &Field> {
        self.item_fields
            .iter()
            .chain(self.uid.iter())
            .chain(self.fields.iter())
    }

    /// The item element for CreateItem, carrying the engine's `key`.
    pub fn create_xml(&self, key: &str) -> String {
        let mut w = Writer::new();
        let element = format!("t:{}", self.element);
        w.open(&element, &[]);
        write_fields(&mut w, &self.item_fields);
        requests::key_property(&mut w, key);
        if let Some(uid) = &self.uid {
            w.raw(&uid.xml);
        }
        write_fields(&mut w, &self.fields);
        w.close(&element);
        w.finish()
    }

    /// The `t:SetItemField` / `t:DeleteItemField` elements turning `current` (the item as
    /// GetItem returned it, read with the same converter) into this one.
    pub fn updates_xml(&self, current: &[Uri]) -> String {
        let mut w = Writer::new();
        let element = format!("t:{}", self.element);
        for field in self.all() {
            w.open("t:SetItemField", &[]);
            write_uri(&mut w, &field.uri);
            w.open(&element, &[]);
            if let Some(container) = field.container {
                w.open(&format!("t:{container}"), &[]);
            }
            if let Some(key) = &field.entry {
                w.open("t:Entry", &[("Key", key)]);
            }
            w.raw(&field.xml);
            if field.entry.is_some() {
                w.close("t:Entry");
            }
            if let Some(container) = field.container {
                w.close(&format!("t:{container}"));
            }
            w.close(&element).close("t:SetItemField");
        }
        for uri in current {
            if !self.all().any(|f| &f.uri == uri) {
                w.open("t:DeleteItemField", &[]);
                write_uri(&mut w, uri);
                w.close("t:DeleteItemField");
            }
        }
        w.finish()
    }
}

fn write_uri(w: &mut Writer, uri: &Uri) {
    match uri {
        Uri::Plain(name) => {
            w.empty("t:FieldURI", &[("FieldURI", name)]);
        }
        Uri::Indexed(name, index) => {
            w.empty(
                "t:IndexedFieldURI",
                &[("FieldURI", name), ("FieldIndex", index)],
            );
        }
        Uri::Uid => uid_uri(w),
    }
}

/// Writes fields in order, grouping consecutive entries of one dictionary in their container
/// and consecutive sub-fields of one entry in that entry.
fn write_fields(w: &mut Writer, fields: &[Field]) {
    let mut i = 0;
    while i < fields.len() {
        let Some(container) = fields[i].container else {
            w.raw(&fields[i].xml);
            i += 1;
            continue;
        };
        w.open(&format!("t:{container}"), &[]);
        while i < fields.len() && fields[i].container == Some(container) {
            match fields[i].entry.clone() {
                None => {
                    w.raw(&fields[i].xml);
                    i += 1;
                }
                Some(key) => {
                    w.open("t:Entry", &[("Key", &key)]);
                    while i < fields.len()
                        && fields[i].container == Some(container)
                        && fields[i].entry.as_ref() == Some(&key)
                    {
                        w.raw(&fields[i].xml);
                        i += 1;
                    }
                    w.close("t:Entry");
                }
            }
        }
        w.close(&format!("t:{container}"));
    }
}

/// The value of our UID property on an item read by GetItem.
pub fn read_uid(item: &Node) -> Option<String> {
    extended(item, UID_NAME)
}

/// The value of our key property on an item.
pub fn read_key(item: &Node) -> Option<String> {
    extended(item, requests::KEY_NAME)
}

fn extended(item: &Node, name: &str) -> Option<String> {
    item.all("ExtendedProperty")
        .find(|p| {
            p.child("ExtendedFieldURI")
                .is_some_and(|u| u.attr("PropertyName") == Some(name))
        })
        .and_then(|p| p.text_of("Value"))
        .map(str::to_string)
}

/// A TEXT value of vCard/iCalendar, unescaped (`\n`, `\,`, `\;`, `\\`).
pub fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
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

/// Text made into a TEXT value.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Splits a structured value (`N`, `ADR`, `ORG`) on unescaped `;`, each part unescaped.
pub fn parts(value: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            out.last_mut().expect("one part").extend(['\\', c]);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ';' {
            out.push(String::new());
        } else {
            out.last_mut().expect("one part").push(c);
        }
    }
    out.iter().map(|p| unescape(p)).collect()
}

/// Content lines folded at 75 octets (RFC 5545 §3.1, RFC 6350 §3.2), CRLF-ended.
pub fn fold(lines: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines {
        let mut width = 0;
        for c in line.chars() {
            let len = c.len_utf8();
            if width + len > 75 {
                out.extend_from_slice(b"\r\n ");
                width = 1;
            }
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            width += len;
        }
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// `19800115`, `1980-01-15` or `--0115` (no year) to `1980-01-15`; None when not a date.
pub fn vcard_date(value: &str) -> Option<String> {
    let digits: String = value
        .trim()
        .chars()
        .take_while(|c| *c != 'T')
        .filter(char::is_ascii_digit)
        .collect();
    (digits.len() == 8 && !value.starts_with("--"))
        .then(|| format!("{}-{}-{}", &digits[..4], &digits[4..6], &digits[6..8]))
}

/// Markup for an element's text, escaped (for field builders).
pub fn text_xml(element: &str, text: &str) -> String {
    format!("<t:{element}>{}</t:{element}>", xml::escape(text))
}

#[cfg(test)]
mod tests;
