//! Contacts: a vCard ↔ an Exchange `Contact`, and a vCard 4 group (`KIND:group` with
//! `MEMBER`s) ↔ a `DistributionList`.
//!
//! Carried: FN (DisplayName), N (Surname, GivenName, MiddleName, suffix as Generation),
//! NICKNAME, ORG (CompanyName, Department), TITLE (JobTitle), up to three EMAILs, TELs by type
//! (Exchange has one slot per kind, two for home and work), ADR by type (home, work, other),
//! BDAY, URL (BusinessHomePage), NOTE (the body), PHOTO (an attachment with IsContactPhoto),
//! UID (our extended property). What has no slot left (a fourth e-mail, a third work phone,
//! a name prefix, other properties) is listed as lost.

use mailshift_dav::object::{Block, ContentLine, components};

use super::{
    Field, Outgoing, Uri, escape, fold, parts, read_uid, text_xml, uid_field, unescape, vcard_date,
};
use crate::xml::{self, Node};

/// TEL slots: the vCard types a number has, the Exchange keys tried in order.
const PHONES: &[(&[&str], &[&str])] = &[
    (&["fax", "work"], &["BusinessFax"]),
    (&["fax", "home"], &["HomeFax"]),
    (&["fax"], &["OtherFax"]),
    (&["pager"], &["Pager"]),
    (&["cell", "work"], &["BusinessMobile", "MobilePhone"]),
    (&["cell"], &["MobilePhone"]),
    (&["work"], &["BusinessPhone", "BusinessPhone2"]),
    (&["home"], &["HomePhone", "HomePhone2"]),
    (&[], &["OtherTelephone", "PrimaryPhone", "CarPhone"]),
];

/// Every Exchange phone key we write or read, with the vCard TYPE it is read back as.
const PHONE_TYPES: &[(&str, &str)] = &[
    ("BusinessPhone", "work,voice"),
    ("BusinessPhone2", "work,voice"),
    ("HomePhone", "home,voice"),
    ("HomePhone2", "home,voice"),
    ("MobilePhone", "cell"),
    ("BusinessMobile", "cell,work"),
    ("BusinessFax", "fax,work"),
    ("HomeFax", "fax,home"),
    ("OtherFax", "fax"),
    ("Pager", "pager"),
    ("OtherTelephone", "voice"),
    ("PrimaryPhone", "voice"),
    ("CarPhone", "voice"),
];

const ADDRESS_PARTS: &[&str] = &["Street", "City", "State", "CountryOrRegion", "PostalCode"];

fn types(line: &ContentLine) -> Vec<String> {
    line.params
        .iter()
        .filter(|(n, _)| n == "TYPE")
        .flat_map(|(_, v)| v.iter())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect()
}

/// The vCard in `data` as an Exchange item.
pub fn to_ews(data: &[u8]) -> Result<Outgoing, String> {
    let blocks = components(data).map_err(|e| format!("line {}: {}", e.line, e.message))?;
    let card = match blocks.as_slice() {
        [card] if card.name == "VCARD" => card,
        _ => return Err("not one vCard".into()),
    };
    let kind = card
        .line("KIND")
        .map(|l| l.value.trim().to_ascii_lowercase());
    if kind.as_deref() == Some("group") {
        return Ok(group_to_ews(card));
    }
    let mut out = Outgoing {
        element: "Contact",
        item_fields: Vec::new(),
        uid: None,
        fields: Vec::new(),
        photo: None,
        zone: None,
        lost: Vec::new(),
    };
    let text = |name: &str| card.line(name).map(|l| unescape(&l.value));
    if let Some(note) = text("NOTE").filter(|n| !n.is_empty()) {
        out.item_fields.push(Field {
            uri: Uri::Plain("item:Body"),
            container: None,
            entry: None,
            xml: format!("<t:Body BodyType=\"Text\">{}</t:Body>", xml::escape(&note)),
        });
    }
    out.uid = card
        .line("UID")
        .map(|l| l.value.trim().to_string())
        .filter(|u| !u.is_empty())
        .map(|u| uid_field(&u));
    let n = card.line("N").map(|l| parts(&l.value)).unwrap_or_default();
    let part = |i: usize| {
        n.get(i)
            .map(String::as_str)
            .unwrap_or("")
            .trim()
            .to_string()
    };
    let fields = &mut out.fields;
    let fn_ = text("FN").unwrap_or_default();
    if !fn_.is_empty() {
        fields.push(Field::plain("contacts:DisplayName", "DisplayName", &fn_));
    }
    if !part(1).is_empty() {
        fields.push(Field::plain("contacts:GivenName", "GivenName", &part(1)));
    }
    if !part(2).is_empty() {
        fields.push(Field::plain("contacts:MiddleName", "MiddleName", &part(2)));
    }
    if let Some(nick) = text("NICKNAME").filter(|s| !s.is_empty()) {
        fields.push(Field::plain("contacts:Nickname", "Nickname", &nick));
    }
    let org = card
        .line("ORG")
        .map(|l| parts(&l.value))
        .unwrap_or_default();
    if let Some(company) = org.first().filter(|s| !s.is_empty()) {
        fields.push(Field::plain("contacts:CompanyName", "CompanyName", company));
    }
    for (i, email) in card.all("EMAIL").enumerate() {
        let value = unescape(email.value.trim());
        if i >= 3 {
            out.lost
                .push(format!("EMAIL {value} (Exchange keeps three addresses)"));
            continue;
        }
        let key = format!("EmailAddress{}", i + 1);
        out.fields.push(Field {
            uri: Uri::Indexed("contacts:EmailAddress", key.clone()),
            container: Some("EmailAddresses"),
            entry: None,
            xml: format!("<t:Entry Key=\"{key}\">{}</t:Entry>", xml::escape(&value)),
        });
    }
    for (kind, line) in card.all("ADR").map(|l| (address_key(&types(l)), l)) {
        let values = parts(&line.value);
        let street = [values.get(1), values.get(2)]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join("\n");
        let mut any = false;
        for (element, value) in ADDRESS_PARTS.iter().zip([
            street,
            values.get(3).cloned().unwrap_or_default(),
            values.get(4).cloned().unwrap_or_default(),
            values.get(6).cloned().unwrap_or_default(),
            values.get(5).cloned().unwrap_or_default(),
        ]) {
            if value.is_empty() {
                continue;
            }
            if out.fields.iter().any(|f| {
                f.entry.as_deref() == Some(kind) && f.container == Some("PhysicalAddresses")
            }) && !any
            {
                out.lost.push(format!(
                    "ADR {} (Exchange keeps one {kind} address)",
                    line.value
                ));
                break;
            }
            any = true;
            out.fields.push(Field {
                uri: Uri::Indexed(address_uri(element), kind.to_string()),
                container: Some("PhysicalAddresses"),
                entry: Some(kind.to_string()),
                xml: text_xml(element, &value),
            });
        }
    }
    let mut used: Vec<&str> = Vec::new();
    let mut phones = Vec::new();
    for line in card.all("TEL") {
        let have = types(line);
        let value = line.value.trim().trim_start_matches("tel:").to_string();
        let slot = PHONES
            .iter()
            .find(|(want, _)| want.iter().all(|w| have.iter().any(|h| h == w)))
            .and_then(|(_, keys)| keys.iter().find(|k| !used.contains(k)));
        match slot {
            Some(key) => {
                used.push(key);
                phones.push(Field {
                    uri: Uri::Indexed("contacts:PhoneNumber", key.to_string()),
                    container: Some("PhoneNumbers"),
                    entry: None,
                    xml: format!("<t:Entry Key=\"{key}\">{}</t:Entry>", xml::escape(&value)),
                });
            }
            None => out.lost.push(format!(
                "TEL {value} (Exchange has no free slot for this kind of number)"
            )),
        }
    }
    out.fields.extend(phones);
    if let Some(bday) = card.line("BDAY") {
        match vcard_date(&bday.value) {
            Some(date) => out.fields.push(Field {
                uri: Uri::Plain("contacts:Birthday"),
                container: None,
                entry: None,
                xml: text_xml("Birthday", &format!("{date}T00:00:00Z")),
            }),
            None => out
                .lost
                .push(format!("BDAY {} (Exchange needs a full date)", bday.value)),
        }
    }
    if let Some(url) = card.line("URL") {
        out.fields.push(Field::plain(
            "contacts:BusinessHomePage",
            "BusinessHomePage",
            url.value.trim(),
        ));
    }
    if let Some(dept) = org.get(1).filter(|s| !s.is_empty()) {
        out.fields
            .push(Field::plain("contacts:Department", "Department", dept));
    }
    if !part(4).is_empty() {
        out.fields
            .push(Field::plain("contacts:Generation", "Generation", &part(4)));
    }
    if let Some(title) = text("TITLE").filter(|s| !s.is_empty()) {
        out.fields
            .push(Field::plain("contacts:JobTitle", "JobTitle", &title));
    }
    if !part(0).is_empty() {
        out.fields
            .push(Field::plain("contacts:Surname", "Surname", &part(0)));
    }
    if !part(3).is_empty() {
        out.lost.push(format!(
            "the name prefix {:?} (Exchange has no field for it)",
            part(3)
        ));
    }
    if let Some(photo) = card.line("PHOTO") {
        match photo_base64(photo) {
            Some(b64) => out.photo = Some(b64),
            None => out
                .lost
                .push("PHOTO given by URL (only embedded photos are copied)".into()),
        }
    }
    for line in &card.lines {
        let carried = [
            "VERSION", "UID", "FN", "N", "NICKNAME", "ORG", "TITLE", "EMAIL", "TEL", "ADR", "BDAY",
            "URL", "NOTE", "PHOTO", "PRODID", "REV", "KIND",
        ];
        if !carried.contains(&line.name.as_str()) && !line.name.starts_with("X-") {
            out.lost.push(format!(
                "{} (Exchange contacts have no field for it)",
                line.name
            ));
        }
    }
    order(&mut out.fields);
    Ok(out)
}

/// ContactItemType's element order.
fn order(fields: &mut [Field]) {
    const ORDER: &[&str] = &[
        "contacts:DisplayName",
        "contacts:GivenName",
        "contacts:MiddleName",
        "contacts:Nickname",
        "contacts:CompanyName",
        "contacts:EmailAddress",
        "contacts:PhysicalAddress",
        "contacts:PhoneNumber",
        "contacts:Birthday",
        "contacts:BusinessHomePage",
        "contacts:Department",
        "contacts:Generation",
        "contacts:JobTitle",
        "contacts:Surname",
    ];
    let rank = |f: &Field| match &f.uri {
        Uri::Plain(u) | Uri::Indexed(u, _) => ORDER
            .iter()
            .position(|o| u.starts_with(o))
            .unwrap_or(ORDER.len()),
        Uri::Uid => 0,
    };
    fields.sort_by_key(rank);
}

fn address_key(types: &[String]) -> &'static str {
    if types.iter().any(|t| t == "work") {
        "Business"
    } else if types.iter().any(|t| t == "home") {
        "Home"
    } else {
        "Other"
    }
}

fn address_uri(element: &str) -> &'static str {
    match element {
        "Street" => "contacts:PhysicalAddress:Street",
        "City" => "contacts:PhysicalAddress:City",
        "State" => "contacts:PhysicalAddress:State",
        "CountryOrRegion" => "contacts:PhysicalAddress:CountryOrRegion",
        _ => "contacts:PhysicalAddress:PostalCode",
    }
}

/// An embedded photo's base64: vCard 4 `data:image/jpeg;base64,…`, vCard 3 `ENCODING=b`.
fn photo_base64(line: &ContentLine) -> Option<String> {
    let value = line.value.trim();
    if let Some(rest) = value.strip_prefix("data:") {
        return rest.split_once(";base64,").map(|(_, b)| b.to_string());
    }
    let encoding = line.param("ENCODING").unwrap_or_default();
    (encoding.eq_ignore_ascii_case("b") || encoding.eq_ignore_ascii_case("base64"))
        .then(|| value.to_string())
}

fn group_to_ews(card: &Block) -> Outgoing {
    let mut out = Outgoing {
        element: "DistributionList",
        item_fields: Vec::new(),
        uid: card
            .line("UID")
            .map(|l| l.value.trim().to_string())
            .filter(|u| !u.is_empty())
            .map(|u| uid_field(&u)),
        fields: Vec::new(),
        photo: None,
        zone: None,
        lost: Vec::new(),
    };
    let name = card
        .line("FN")
        .map(|l| unescape(&l.value))
        .unwrap_or_default();
    out.fields
        .push(Field::plain("contacts:DisplayName", "DisplayName", &name));
    let mut members = String::new();
    for member in card.all("MEMBER") {
        let value = member.value.trim();
        match value.strip_prefix("mailto:") {
            Some(address) => members.push_str(&format!(
                "<t:Member><t:Mailbox><t:EmailAddress>{}</t:EmailAddress></t:Mailbox></t:Member>",
                xml::escape(address)
            )),
            None => out.lost.push(format!(
                "MEMBER {value} (only members given by e-mail address are copied)"
            )),
        }
    }
    if !members.is_empty() {
        out.fields.push(Field {
            uri: Uri::Plain("distributionlist:Members"),
            container: None,
            entry: None,
            xml: format!("<t:Members>{members}</t:Members>"),
        });
    }
    out
}

/// The fields an Exchange contact has now, as UpdateItem names them (for DeleteItemField).
pub fn present(item: &Node) -> Vec<Uri> {
    let mut out = Vec::new();
    if item.text_of("Body").is_some() {
        out.push(Uri::Plain("item:Body"));
    }
    if read_uid(item).is_some() {
        out.push(Uri::Uid);
    }
    for (element, uri) in [
        ("DisplayName", "contacts:DisplayName"),
        ("GivenName", "contacts:GivenName"),
        ("MiddleName", "contacts:MiddleName"),
        ("Nickname", "contacts:Nickname"),
        ("CompanyName", "contacts:CompanyName"),
        ("Birthday", "contacts:Birthday"),
        ("BusinessHomePage", "contacts:BusinessHomePage"),
        ("Department", "contacts:Department"),
        ("Generation", "contacts:Generation"),
        ("JobTitle", "contacts:JobTitle"),
        ("Surname", "contacts:Surname"),
    ] {
        if item.text_of(element).is_some() {
            out.push(Uri::Plain(uri));
        }
    }
    for (container, uri) in [
        ("EmailAddresses", "contacts:EmailAddress"),
        ("PhoneNumbers", "contacts:PhoneNumber"),
    ] {
        for entry in item.child(container).iter().flat_map(|c| c.all("Entry")) {
            if let Some(key) = entry.attr("Key")
                && !entry.text.trim().is_empty()
            {
                out.push(Uri::Indexed(uri, key.to_string()));
            }
        }
    }
    for entry in item
        .child("PhysicalAddresses")
        .iter()
        .flat_map(|c| c.all("Entry"))
    {
        let Some(key) = entry.attr("Key") else {
            continue;
        };
        for part in &entry.children {
            if ADDRESS_PARTS.contains(&part.name.as_str()) && !part.text.is_empty() {
                out.push(Uri::Indexed(address_uri(&part.name), key.to_string()));
            }
        }
    }
    if item.child("Members").is_some() {
        out.push(Uri::Plain("distributionlist:Members"));
    }
    out
}

/// An Exchange `Contact` or `DistributionList` (as GetItem returns it) as a vCard 4, with
/// its photo (base64) when it has one; `fallback_uid` when it carries no UID of ours.
pub fn from_ews(item: &Node, photo: Option<&str>, fallback_uid: &str) -> Vec<u8> {
    let mut lines = vec!["BEGIN:VCARD".to_string(), "VERSION:4.0".to_string()];
    let uid = read_uid(item).unwrap_or_else(|| fallback_uid.to_string());
    lines.push(format!("UID:{uid}"));
    let text = |name: &str| item.text_of(name).map(|s| s.trim().to_string());
    let display = text("DisplayName")
        .or_else(|| text("FileAs"))
        .unwrap_or_default();
    if item.name == "DistributionList" {
        lines.push("KIND:group".into());
        lines.push(format!("FN:{}", escape(&display)));
        for member in item.child("Members").iter().flat_map(|m| m.all("Member")) {
            if let Some(address) = member.at(&["Mailbox", "EmailAddress"]) {
                lines.push(format!("MEMBER:mailto:{}", address.text.trim()));
            }
        }
        lines.push("END:VCARD".into());
        return fold(&lines);
    }
    lines.push(format!("FN:{}", escape(&display)));
    let n = [
        text("Surname"),
        text("GivenName"),
        text("MiddleName"),
        None,
        text("Generation"),
    ]
    .map(|p| escape(&p.unwrap_or_default()));
    lines.push(format!("N:{}", n.join(";")));
    if let Some(nick) = text("Nickname") {
        lines.push(format!("NICKNAME:{}", escape(&nick)));
    }
    match (text("CompanyName"), text("Department")) {
        (None, None) => {}
        (company, None) => lines.push(format!("ORG:{}", escape(&company.unwrap_or_default()))),
        (company, Some(dept)) => lines.push(format!(
            "ORG:{};{}",
            escape(&company.unwrap_or_default()),
            escape(&dept)
        )),
    }
    if let Some(title) = text("JobTitle") {
        lines.push(format!("TITLE:{}", escape(&title)));
    }
    let entries = |container: &str| -> Vec<(String, String)> {
        item.child(container)
            .iter()
            .flat_map(|c| c.all("Entry"))
            .filter(|e| !e.text.trim().is_empty())
            .map(|e| {
                (
                    e.attr("Key").unwrap_or_default().to_string(),
                    e.text.trim().to_string(),
                )
            })
            .collect()
    };
    let mut emails = entries("EmailAddresses");
    emails.sort();
    for (_, address) in emails {
        lines.push(format!("EMAIL:{address}"));
    }
    let phones = entries("PhoneNumbers");
    for (key, vtype) in PHONE_TYPES {
        for (_, number) in phones.iter().filter(|(k, _)| k == key) {
            lines.push(format!("TEL;VALUE=uri;TYPE=\"{vtype}\":tel:{number}"));
        }
    }
    for (key, vtype) in [("Home", "home"), ("Business", "work"), ("Other", "")] {
        let Some(entry) = item
            .child("PhysicalAddresses")
            .and_then(|c| c.all("Entry").find(|e| e.attr("Key") == Some(key)))
        else {
            continue;
        };
        let get = |n: &str| escape(entry.text_of(n).unwrap_or_default().trim());
        let value = format!(
            ";;{};{};{};{};{}",
            get("Street"),
            get("City"),
            get("State"),
            get("PostalCode"),
            get("CountryOrRegion")
        );
        if vtype.is_empty() {
            lines.push(format!("ADR:{value}"));
        } else {
            lines.push(format!("ADR;TYPE={vtype}:{value}"));
        }
    }
    if let Some(bday) = text("Birthday") {
        lines.push(format!(
            "BDAY:{}",
            bday.get(..10).unwrap_or(&bday).replace('-', "")
        ));
    }
    if let Some(url) = text("BusinessHomePage") {
        lines.push(format!("URL:{url}"));
    }
    if let Some(body) = text("Body") {
        lines.push(format!("NOTE:{}", escape(&body)));
    }
    if let Some(photo) = photo {
        lines.push(format!("PHOTO:data:image/jpeg;base64,{photo}"));
    }
    lines.push("END:VCARD".into());
    fold(&lines)
}
