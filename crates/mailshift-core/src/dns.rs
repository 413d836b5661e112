//! DNS zones as a cutover sees them: record sets read and written through whatever holds the
//! zone (OVHcloud's domain zone API, RFC 2136 dynamic updates, a person for `manual`), and the
//! answers of each authoritative server. Providers implement [`Zone`]; the cutover steps in the
//! `mailshift` crate read before they write and compare in these terms. Nothing here talks to
//! a server.

use std::fmt;

use crate::plane::PlaneResult;

/// The record types a mail cutover touches.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum RecordType {
    A,
    Aaaa,
    Cname,
    Mx,
    Txt,
    Srv,
    Ns,
}

impl RecordType {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::A => "A",
            RecordType::Aaaa => "AAAA",
            RecordType::Cname => "CNAME",
            RecordType::Mx => "MX",
            RecordType::Txt => "TXT",
            RecordType::Srv => "SRV",
            RecordType::Ns => "NS",
        }
    }

    pub fn parse(text: &str) -> Option<RecordType> {
        Some(match text.to_ascii_uppercase().as_str() {
            "A" => RecordType::A,
            "AAAA" => RecordType::Aaaa,
            "CNAME" => RecordType::Cname,
            "MX" => RecordType::Mx,
            "TXT" => RecordType::Txt,
            "SRV" => RecordType::Srv,
            "NS" => RecordType::Ns,
            _ => return None,
        })
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// All the records of one name and type (an RRset), as the zone holds them.
///
/// `name` is absolute, lower-case, without the trailing dot (`example.com`,
/// `autodiscover.example.com`). Each of `data` is the record's data in presentation format
/// (RFC 1035 §5.1), normalized by [`normalize_data`] so that two sets compare equal exactly
/// when the zone would serve the same answer: `10 mx1.example.net` (target absolute, no
/// trailing dot, lower-case), `"v=spf1 include:mx.ovh.com ~all"` (TXT as its quoted strings),
/// `0 5 443 autodiscover.mail.ovh.net` (SRV). `data` is sorted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct RecordSet {
    pub name: String,
    pub rtype: RecordType,
    pub ttl: u32,
    pub data: Vec<String>,
}

impl RecordSet {
    pub fn new(name: &str, rtype: RecordType, ttl: u32, data: Vec<String>) -> RecordSet {
        let mut data: Vec<String> = data.iter().map(|d| normalize_data(rtype, d)).collect();
        data.sort();
        data.dedup();
        RecordSet {
            name: normalize_name(name),
            rtype,
            ttl,
            data,
        }
    }

    /// Same answer, whatever the TTL.
    pub fn same_data(&self, other: &RecordSet) -> bool {
        self.name == other.name && self.rtype == other.rtype && self.data == other.data
    }
}

/// `Example.COM.` → `example.com`.
pub fn normalize_name(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// One record's data in the form [`RecordSet`] compares: whitespace collapsed, domain names in
/// it lower-case without a trailing dot; TXT data as its character strings, each quoted (see
/// [`txt_strings`] and [`txt_presentation`]), so text given unquoted, or longer than one
/// string may hold (a DKIM key), compares equal to what a server answers for it.
pub fn normalize_data(rtype: RecordType, data: &str) -> String {
    let data = data.trim();
    match rtype {
        RecordType::Txt => txt_presentation(&txt_strings(data)),
        _ => data
            .split_whitespace()
            .map(|w| w.trim_end_matches('.').to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// The character strings (RFC 1035 §3.3.14) of TXT data in presentation format: quoted strings
/// (`"v=spf1 ~all"`, `"part one" "part two"`, with `\"`, `\\` and `\DDD` escapes) or, when the
/// text does not start with a quote, the whole text as written. A string longer than the 255
/// bytes DNS allows is split into 255-byte strings, as servers and providers do with long keys.
pub fn txt_strings(data: &str) -> Vec<Vec<u8>> {
    let data = data.trim();
    let mut strings: Vec<Vec<u8>> = Vec::new();
    if !data.starts_with('"') {
        strings.push(data.as_bytes().to_vec());
    } else {
        let bytes = data.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i].is_ascii_whitespace() {
                i += 1;
                continue;
            }
            // Inside or outside quotes, a string runs to its closing quote or, unquoted, to
            // the next blank.
            let quoted = bytes[i] == b'"';
            if quoted {
                i += 1;
            }
            let mut s = Vec::new();
            while i < bytes.len() {
                let b = bytes[i];
                if quoted && b == b'"' {
                    i += 1;
                    break;
                }
                if !quoted && b.is_ascii_whitespace() {
                    break;
                }
                if b == b'\\' && i + 1 < bytes.len() {
                    let digits = &bytes[i + 1..bytes.len().min(i + 4)];
                    if digits.len() == 3 && digits.iter().all(u8::is_ascii_digit) {
                        let value = digits
                            .iter()
                            .fold(0u32, |v, d| v * 10 + u32::from(d - b'0'));
                        s.push(u8::try_from(value).unwrap_or(u8::MAX));
                        i += 4;
                    } else {
                        s.push(bytes[i + 1]);
                        i += 2;
                    }
                    continue;
                }
                s.push(b);
                i += 1;
            }
            strings.push(s);
        }
    }
    let mut out = Vec::new();
    for s in strings {
        if s.is_empty() {
            out.push(s);
            continue;
        }
        out.extend(s.chunks(255).map(<[u8]>::to_vec));
    }
    if out.is_empty() {
        out.push(Vec::new());
    }
    out
}

/// TXT character strings in the one presentation form [`RecordSet`] holds: each quoted,
/// separated by one space, `"` and `\` escaped, bytes outside printable ASCII as `\DDD`.
pub fn txt_presentation(strings: &[Vec<u8>]) -> String {
    let mut out = String::new();
    for (n, s) in strings.iter().enumerate() {
        if n > 0 {
            out.push(' ');
        }
        out.push('"');
        for &b in s {
            match b {
                b'"' | b'\\' => {
                    out.push('\\');
                    out.push(char::from(b));
                }
                0x20..=0x7e => out.push(char::from(b)),
                _ => out.push_str(&format!("\\{b:03}")),
            }
        }
        out.push('"');
    }
    out
}

/// Where a zone lives and how to change it: one per `dns:` block of the plan.
///
/// Every method reads or writes the zone's own copy (the provider's API, the primary server),
/// not what resolvers see; what each authoritative server answers is the propagation check's
/// business, not the zone's.
pub trait Zone: Send + Sync {
    /// The zone's apex (`example.com`).
    fn apex(&self) -> &str;

    /// The record set of `name` and `rtype`, or `None` when the zone has none.
    fn read<'a>(&'a self, name: &'a str, rtype: RecordType) -> PlaneResult<'a, Option<RecordSet>>;

    /// Makes the zone hold exactly `set` for its name and type (records added, removed, TTL
    /// set), then has the change served (OVHcloud: the zone's refresh; RFC 2136: the update is
    /// served when accepted). Idempotent: writing what the zone holds changes nothing.
    fn write<'a>(&'a self, set: &'a RecordSet) -> PlaneResult<'a, ()>;

    /// Removes every record of `name` and `rtype` (a rollback to "there was none").
    fn remove<'a>(&'a self, name: &'a str, rtype: RecordType) -> PlaneResult<'a, ()>;

    /// Whether writes happen through this provider (`manual`: no, a person makes them and the
    /// step waits for them to appear).
    fn writable(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_compare_as_the_zone_would_answer() {
        let a = RecordSet::new(
            "Example.com.",
            RecordType::Mx,
            3600,
            vec!["10 MX1.mail.ovh.net.".into(), "1  mx0.mail.ovh.net".into()],
        );
        let b = RecordSet::new(
            "example.com",
            RecordType::Mx,
            60,
            vec!["1 mx0.mail.ovh.net".into(), "10 mx1.mail.ovh.net".into()],
        );
        assert!(a.same_data(&b));
        assert_ne!(a, b);
        let t = RecordSet::new(
            "example.com",
            RecordType::Txt,
            60,
            vec!["v=spf1 ~all".into()],
        );
        assert_eq!(t.data, vec!["\"v=spf1 ~all\"".to_string()]);
    }

    #[test]
    fn txt_compares_by_its_strings() {
        let txt = |d: &str| normalize_data(RecordType::Txt, d);
        assert_eq!(txt("v=spf1 ~all"), txt("\"v=spf1 ~all\""));
        assert_eq!(txt("\"a\"   \"b\""), "\"a\" \"b\"");
        assert_eq!(txt("say \"hi\" \\o/"), "\"say \\\"hi\\\" \\\\o/\"");
        assert_eq!(txt("\"caf\\195\\169\""), txt("café"));
        // A DKIM key longer than one string: split as a server stores it.
        let key = "k".repeat(300);
        assert_eq!(
            txt(&key),
            format!("\"{}\" \"{}\"", "k".repeat(255), "k".repeat(45))
        );
        assert_eq!(
            txt_strings(&txt(&key)),
            vec![vec![b'k'; 255], vec![b'k'; 45]]
        );
    }
}
