//! A Graph `contact` ↔ a vCard 3.0 (RFC 2426; the version every CardDAV server takes).
//!
//! Carried: names (`N`, `FN`, `NICKNAME`), e-mail addresses (Graph keeps at most three, in
//! order), phones (business, home, mobile), the business, home and other addresses, company and
//! department (`ORG`), job title, birthday, notes, web page, categories and the photo. Not
//! carried (Graph has no field for them): any further e-mail address, phones of other kinds
//! (fax, pager: kept as business phones), custom `X-` properties.

use base64::Engine;
use serde_json::{Map, Value, json};

use super::{
    Lines, Stamp, Unsupported, components, escape, field, param_values, props, root, text,
};

/// The most e-mail addresses a Graph contact holds.
const MAX_EMAILS: usize = 3;

/// A contact as a vCard, with this UID and, when it has one, its photo (JPEG bytes).
pub fn to_vcard(contact: &Value, uid: &str, photo: Option<&[u8]>) -> Vec<u8> {
    let mut out = Lines::new();
    out.raw("BEGIN:VCARD");
    out.raw("VERSION:3.0");
    out.raw(&format!("UID:{}", escape(uid)));
    let n = [
        field(contact, "surname"),
        field(contact, "givenName"),
        field(contact, "middleName"),
        field(contact, "title"),
        field(contact, "generation"),
    ];
    let display = field(contact, "displayName")
        .map(str::to_string)
        .or_else(|| {
            let joined = [n[1], n[2], n[0]]
                .iter()
                .flatten()
                .copied()
                .collect::<Vec<_>>()
                .join(" ");
            (!joined.is_empty()).then_some(joined)
        })
        .or_else(|| field(contact, "companyName").map(str::to_string))
        .unwrap_or_default();
    out.raw(&format!("FN:{}", escape(&display)));
    out.raw(&format!(
        "N:{}",
        n.iter()
            .map(|p| escape(p.unwrap_or("")))
            .collect::<Vec<_>>()
            .join(";")
    ));
    out.text("NICKNAME", field(contact, "nickName"));
    for email in contact["emailAddresses"].as_array().into_iter().flatten() {
        if let Some(address) = field(email, "address") {
            out.raw(&format!("EMAIL;TYPE=INTERNET:{}", escape(address)));
        }
    }
    for (key, kind) in [
        ("businessPhones", "WORK,VOICE"),
        ("homePhones", "HOME,VOICE"),
    ] {
        for phone in contact[key].as_array().into_iter().flatten() {
            if let Some(number) = phone.as_str().map(str::trim).filter(|s| !s.is_empty()) {
                out.raw(&format!("TEL;TYPE={kind}:{}", escape(number)));
            }
        }
    }
    if let Some(mobile) = field(contact, "mobilePhone") {
        out.raw(&format!("TEL;TYPE=CELL,VOICE:{}", escape(mobile)));
    }
    for (key, kind) in [
        ("businessAddress", ";TYPE=WORK"),
        ("homeAddress", ";TYPE=HOME"),
        ("otherAddress", ""),
    ] {
        let a = &contact[key];
        let parts = ["street", "city", "state", "postalCode", "countryOrRegion"]
            .map(|f| field(a, f).unwrap_or(""));
        if parts.iter().any(|p| !p.is_empty()) {
            out.raw(&format!("ADR{kind}:;;{}", parts.map(escape).join(";")));
        }
    }
    match (field(contact, "companyName"), field(contact, "department")) {
        (None, None) => {}
        (company, department) => out.raw(&format!(
            "ORG:{};{}",
            escape(company.unwrap_or("")),
            escape(department.unwrap_or(""))
        )),
    }
    out.text("TITLE", field(contact, "jobTitle"));
    if let Some(birthday) = field(contact, "birthday").and_then(Stamp::parse) {
        out.raw(&format!("BDAY;VALUE=DATE:{}", birthday.graph_date()));
    }
    out.text("URL", field(contact, "businessHomePage"));
    out.text("NOTE", field(contact, "personalNotes"));
    let categories: Vec<String> = contact["categories"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(escape)
        .collect();
    if !categories.is_empty() {
        out.raw(&format!("CATEGORIES:{}", categories.join(",")));
    }
    if let Some(photo) = photo.filter(|p| !p.is_empty()) {
        let encoded = base64::engine::general_purpose::STANDARD.encode(photo);
        out.raw(&format!("PHOTO;ENCODING=b;TYPE=JPEG:{encoded}"));
    }
    out.raw("END:VCARD");
    out.into_bytes()
}

/// What a vCard becomes on Graph: the contact's fields, and its photo (bytes) when it has an
/// inline one (uploaded separately, `PUT /photo/$value`).
#[derive(Debug, Clone, PartialEq)]
pub struct GraphContact {
    pub fields: Map<String, Value>,
    pub photo: Option<Vec<u8>>,
    /// What the vCard held that Graph cannot keep, for the report.
    pub dropped: Vec<String>,
}

/// A vCard as Graph contact fields. Every field mailshift writes is set (empty when the vCard
/// has no value), so a PATCH also clears what the source cleared.
pub fn from_vcard(data: &[u8]) -> Result<GraphContact, Unsupported> {
    let card = root(data, "VCARD")?;
    let mut f = Map::new();
    let mut dropped = Vec::new();
    let n = card
        .prop("N")
        .map(|p| components(&p.value))
        .unwrap_or_default();
    let part = |i: usize| {
        n.get(i)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let set = |f: &mut Map<String, Value>, key: &str, value: Option<String>| {
        f.insert(key.into(), value.map_or(Value::Null, Value::String));
    };
    set(&mut f, "surname", part(0));
    set(&mut f, "givenName", part(1));
    set(&mut f, "middleName", part(2));
    set(&mut f, "title", part(3));
    set(&mut f, "generation", part(4));
    set(&mut f, "displayName", text(&card, "FN"));
    set(&mut f, "nickName", text(&card, "NICKNAME"));
    let emails: Vec<String> = props(&card, "EMAIL")
        .map(|p| {
            super::unescape(&String::from_utf8_lossy(&p.value))
                .trim()
                .to_string()
        })
        .filter(|e| !e.is_empty())
        .collect();
    if emails.len() > MAX_EMAILS {
        dropped.push(format!(
            "e-mail addresses beyond the first {MAX_EMAILS} ({}): Graph keeps {MAX_EMAILS}",
            emails[MAX_EMAILS..].join(", ")
        ));
    }
    f.insert(
        "emailAddresses".into(),
        Value::Array(
            emails
                .iter()
                .take(MAX_EMAILS)
                .map(|a| json!({ "address": a }))
                .collect(),
        ),
    );
    let (mut business, mut home, mut mobile) = (Vec::new(), Vec::new(), None);
    for tel in props(&card, "TEL") {
        let number = super::unescape(&String::from_utf8_lossy(&tel.value))
            .trim()
            .trim_start_matches("tel:")
            .to_string();
        if number.is_empty() {
            continue;
        }
        let types = param_values(tel, "TYPE");
        let has = |t: &str| types.iter().any(|x| x == t);
        if has("CELL") && mobile.is_none() {
            mobile = Some(number);
        } else if has("HOME") {
            home.push(Value::String(number));
        } else {
            business.push(Value::String(number));
        }
    }
    f.insert("businessPhones".into(), Value::Array(business));
    f.insert("homePhones".into(), Value::Array(home));
    set(&mut f, "mobilePhone", mobile);
    let (mut work_adr, mut home_adr, mut other_adr) = (None, None, None);
    for adr in props(&card, "ADR") {
        let c = components(&adr.value);
        let get = |i: usize| c.get(i).map(|s| s.trim()).unwrap_or("");
        // Post office box and extended address go with the street, as Outlook shows them.
        let street = [get(0), get(1), get(2)]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("\n");
        let address = json!({
            "street": street,
            "city": get(3),
            "state": get(4),
            "postalCode": get(5),
            "countryOrRegion": get(6),
        });
        let types = param_values(adr, "TYPE");
        let slot = if types.iter().any(|t| t == "WORK") {
            &mut work_adr
        } else if types.iter().any(|t| t == "HOME") {
            &mut home_adr
        } else {
            &mut other_adr
        };
        if slot.is_none() {
            *slot = Some(address);
        } else {
            dropped.push("a second address of the same kind: Graph keeps one".into());
        }
    }
    let empty = json!({});
    f.insert("businessAddress".into(), work_adr.unwrap_or(empty.clone()));
    f.insert("homeAddress".into(), home_adr.unwrap_or(empty.clone()));
    f.insert("otherAddress".into(), other_adr.unwrap_or(empty));
    let org = card
        .prop("ORG")
        .map(|p| components(&p.value))
        .unwrap_or_default();
    let org_part = |i: usize| {
        org.get(i)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    set(&mut f, "companyName", org_part(0));
    set(&mut f, "department", org_part(1));
    set(&mut f, "jobTitle", text(&card, "TITLE"));
    let birthday = card
        .value("BDAY")
        .and_then(|b| Stamp::parse(&b))
        // Graph stores a birthday as a date-time; noon UTC keeps the date in every zone.
        .map(|s| format!("{}T12:00:00Z", s.graph_date()));
    set(&mut f, "birthday", birthday);
    set(&mut f, "businessHomePage", text(&card, "URL"));
    set(&mut f, "personalNotes", text(&card, "NOTE"));
    let categories: Vec<Value> = props(&card, "CATEGORIES")
        .flat_map(|p| super::components_list(&p.value))
        .map(Value::String)
        .collect();
    f.insert("categories".into(), Value::Array(categories));
    let photo = card.prop("PHOTO").and_then(|p| {
        let value = String::from_utf8_lossy(&p.value);
        let encoded = match value.strip_prefix("data:") {
            // vCard 4: a data: URI.
            Some(uri) => uri.split_once(',').map(|(_, b)| b.to_string())?,
            None if value.starts_with("http") => {
                dropped.push("a photo given by URL: mailshift copies inline photos".into());
                return None;
            }
            None => value.to_string(),
        };
        let clean: String = encoded.chars().filter(|c| !c.is_whitespace()).collect();
        base64::engine::general_purpose::STANDARD.decode(clean).ok()
    });
    for unknown in card
        .props
        .iter()
        .map(|(_, p)| p.name())
        .filter(|n| n.starts_with("X-"))
    {
        if !dropped.iter().any(|d| d.contains(&unknown)) {
            dropped.push(format!("{unknown}: Graph has no field for it"));
        }
    }
    Ok(GraphContact {
        fields: f,
        photo,
        dropped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph_contact() -> Value {
        json!({
            "id": "AAMk1",
            "displayName": "Ada Lovelace",
            "givenName": "Ada",
            "surname": "Lovelace",
            "middleName": "King",
            "nickName": "Ada",
            "emailAddresses": [{"name": "Ada", "address": "ada@example.org"},
                               {"address": "countess@example.org"}],
            "businessPhones": ["+44 20 1234"],
            "homePhones": [],
            "mobilePhone": "+44 7700 900",
            "businessAddress": {"street": "1 Analytical Way", "city": "London",
                                "postalCode": "N1", "countryOrRegion": "UK"},
            "homeAddress": {},
            "companyName": "Engines, Ltd; Babbage",
            "department": "Notes",
            "jobTitle": "Analyst",
            "birthday": "1815-12-10T11:59:00Z",
            "personalNotes": "First line\nsecond, with comma",
            "categories": ["Science", "VIP"]
        })
    }

    #[test]
    fn a_graph_contact_becomes_a_vcard_and_comes_back_the_same() {
        let card = to_vcard(&graph_contact(), "uid-1", Some(b"\xff\xd8jpeg"));
        let text = String::from_utf8(card.clone()).unwrap();
        for line in [
            "UID:uid-1",
            "FN:Ada Lovelace",
            "N:Lovelace;Ada;King;;",
            "EMAIL;TYPE=INTERNET:countess@example.org",
            "TEL;TYPE=CELL,VOICE:+44 7700 900",
            "ADR;TYPE=WORK:;;1 Analytical Way;London;;N1;UK",
            "ORG:Engines\\, Ltd\\; Babbage;Notes",
            "BDAY;VALUE=DATE:1815-12-10",
            "NOTE:First line\\nsecond\\, with comma",
            "CATEGORIES:Science,VIP",
        ] {
            assert!(text.contains(&format!("{line}\r\n")), "{line} in\n{text}");
        }
        let back = from_vcard(&card).unwrap();
        let f = &back.fields;
        assert_eq!(f["givenName"], "Ada");
        assert_eq!(f["companyName"], "Engines, Ltd; Babbage");
        assert_eq!(f["personalNotes"], "First line\nsecond, with comma");
        assert_eq!(f["emailAddresses"][1]["address"], "countess@example.org");
        assert_eq!(f["businessAddress"]["city"], "London");
        assert_eq!(f["mobilePhone"], "+44 7700 900");
        assert_eq!(f["birthday"], "1815-12-10T12:00:00Z");
        assert_eq!(f["categories"], json!(["Science", "VIP"]));
        assert_eq!(back.photo.as_deref(), Some(&b"\xff\xd8jpeg"[..]));
        assert!(back.dropped.is_empty(), "{:?}", back.dropped);
    }

    #[test]
    fn what_graph_cannot_hold_is_reported() {
        let card = b"BEGIN:VCARD\r\nVERSION:4.0\r\nFN:X\r\nEMAIL:a@x\r\nEMAIL:b@x\r\n\
EMAIL:c@x\r\nEMAIL:d@x\r\nX-SPOUSE:Y\r\nTEL;TYPE=home:1\r\nEND:VCARD\r\n";
        let back = from_vcard(card).unwrap();
        assert_eq!(back.fields["emailAddresses"].as_array().unwrap().len(), 3);
        assert_eq!(back.fields["homePhones"], json!(["1"]));
        assert!(
            back.dropped.iter().any(|d| d.contains("d@x")),
            "{:?}",
            back.dropped
        );
        assert!(
            back.dropped.iter().any(|d| d.contains("X-SPOUSE")),
            "{:?}",
            back.dropped
        );
    }
}
