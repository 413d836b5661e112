//! What a message read from a file says of itself in its header: the flags mail clients keep
//! there (`Status`, `X-Status`, `X-Mozilla-Status`), its Message-ID, and the dates that become
//! its IMAP internal date (the mbox `From ` line's, else the `Date` header's), rewritten in the
//! form APPEND takes (`01-Jan-2024 10:00:00 +0000`).
//!
//! Dates are parsed here rather than with a date crate: the engine has none, the two forms are
//! small (RFC 5322 `Date` and the asctime of `From ` lines), and only a calendar-free rewrite
//! is needed, never arithmetic. A date that does not parse is `None`: the server then uses the
//! time of the APPEND, and the message is still imported.

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The header fields a file message is read for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderInfo {
    /// How many header fields the block holds: none means it is not a message.
    pub fields: usize,
    pub message_id: Option<String>,
    /// Internal date from the `Date` header, in APPEND's form.
    pub date: Option<String>,
    /// IMAP system flags from `Status`, `X-Status` and `X-Mozilla-Status`, sorted.
    pub flags: Vec<String>,
    /// Thunderbird's "expunged" mark (`X-Mozilla-Status` 0x0008): the user deleted it, and
    /// it stays in the file only until the folder is compacted.
    pub expunged: bool,
}

/// Reads a header block (the bytes up to the first empty line; more is ignored).
pub fn read_header(block: &[u8]) -> HeaderInfo {
    let fields = crate::adopt::header_fields(header_only(block));
    let get = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let mut flags = Vec::new();
    // mbox clients (mutt, Dovecot's mbox, Pine): R read, O old (no IMAP flag), A answered,
    // F flagged, T draft, D deleted (not carried: importing a message is not deleting it).
    let letters = format!(
        "{}{}",
        get("status").unwrap_or(""),
        get("x-status").unwrap_or("")
    );
    for c in letters.chars() {
        match c {
            'R' => flags.push("\\Seen"),
            'A' => flags.push("\\Answered"),
            'F' => flags.push("\\Flagged"),
            'T' => flags.push("\\Draft"),
            _ => {}
        }
    }
    // Thunderbird: 0x1 read, 0x2 replied, 0x4 marked (flagged), 0x8 expunged.
    let mozilla = get("x-mozilla-status").and_then(|v| u32::from_str_radix(v.trim(), 16).ok());
    if let Some(bits) = mozilla {
        for (bit, flag) in [(1, "\\Seen"), (2, "\\Answered"), (4, "\\Flagged")] {
            if bits & bit != 0 {
                flags.push(flag);
            }
        }
    }
    let mut flags: Vec<String> = flags.into_iter().map(str::to_string).collect();
    flags.sort();
    flags.dedup();
    HeaderInfo {
        fields: fields.len(),
        message_id: get("message-id")
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        date: get("date").and_then(rfc5322_date),
        flags,
        expunged: mozilla.is_some_and(|b| b & 8 != 0),
    }
}

/// The bytes before the first empty line.
fn header_only(block: &[u8]) -> &[u8] {
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', block) {
        let line = &block[start..end];
        if line.is_empty() || line == b"\r" {
            return &block[..start];
        }
        start = end + 1;
    }
    block
}

/// Flags of a Maildir-style file name (`1234.host:2,FS` or `name:2,S.eml`): S seen,
/// R replied, F flagged, D draft; T (trashed) is not carried.
pub fn maildir_flags(name: &str) -> Vec<String> {
    let Some(at) = name.rfind(":2,") else {
        return Vec::new();
    };
    let letters = &name[at + 3..];
    let letters = letters.split('.').next().unwrap_or("");
    let mut out: Vec<String> = letters
        .chars()
        .filter_map(|c| match c {
            'S' => Some("\\Seen"),
            'R' => Some("\\Answered"),
            'F' => Some("\\Flagged"),
            'D' => Some("\\Draft"),
            _ => None,
        })
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    out
}

fn month(s: &str) -> Option<usize> {
    MONTHS
        .iter()
        .position(|m| s.len() >= 3 && m.eq_ignore_ascii_case(&s[..3]))
}

/// `+hhmm`, `-hhmm`, or an RFC 5322 obsolete zone name; unknown names are UTC (RFC 5322 says
/// to treat them as `-0000`).
fn zone(s: Option<&str>) -> Option<String> {
    let Some(s) = s else {
        return Some("+0000".into());
    };
    let b = s.as_bytes();
    if b.len() == 5 && (b[0] == b'+' || b[0] == b'-') && b[1..].iter().all(u8::is_ascii_digit) {
        let hh: u32 = s[1..3].parse().ok()?;
        let mm: u32 = s[3..5].parse().ok()?;
        return (hh < 24 && mm < 60).then(|| s.to_string());
    }
    let named = match s.to_ascii_uppercase().as_str() {
        "EST" => "-0500",
        "EDT" => "-0400",
        "CST" => "-0600",
        "CDT" => "-0500",
        "MST" => "-0700",
        "MDT" => "-0600",
        "PST" => "-0800",
        "PDT" => "-0700",
        _ => "+0000",
    };
    Some(named.to_string())
}

/// `hh:mm[:ss]`.
fn time(s: &str) -> Option<(u32, u32, u32)> {
    let mut p = s.split(':');
    let h: u32 = p.next()?.parse().ok()?;
    let m: u32 = p.next()?.parse().ok()?;
    let sec: u32 = match p.next() {
        Some(x) => x.parse().ok()?,
        None => 0,
    };
    (p.next().is_none() && h < 24 && m < 60 && sec < 61).then_some((h, m, sec.min(59)))
}

/// APPEND's date form, from parts; `None` for dates a server may refuse.
fn imap_date(day: &str, mon: usize, year: &str, t: &str, z: Option<&str>) -> Option<String> {
    let d: u32 = day.parse().ok()?;
    let mut y: u32 = year.parse().ok()?;
    if year.len() == 2 {
        y += if y < 50 { 2000 } else { 1900 };
    }
    let (h, m, s) = time(t)?;
    if !(1..=31).contains(&d) || !(1970..=2200).contains(&y) {
        return None;
    }
    let z = zone(z)?;
    Some(format!(
        "{d:02}-{}-{y:04} {h:02}:{m:02}:{s:02} {z}",
        MONTHS[mon]
    ))
}

/// An RFC 5322 `Date` value (`Mon, 1 Jan 2024 10:00:00 +0000 (UTC)`) in APPEND's form.
pub fn rfc5322_date(v: &str) -> Option<String> {
    let v = v.split('(').next().unwrap_or(v);
    let v = match v.split_once(',') {
        Some((_, rest)) => rest,
        None => v,
    };
    let t: Vec<&str> = v.split_whitespace().collect();
    if t.len() < 4 {
        return None;
    }
    imap_date(t[0], month(t[1])?, t[2], t[3], t.get(4).copied())
}

/// The date of an mbox `From ` line (`From sender Wed Jan  3 01:05:34 1996 [zone]`, the
/// asctime form every writer uses) in APPEND's form.
pub fn from_line_date(line: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(line.strip_prefix(b"From ")?).ok()?;
    let t: Vec<&str> = text.split_whitespace().collect();
    // The sender is one word, but some writers leave it out or quote a space in it: the date
    // starts at the first month name followed by a day and a time.
    let at = (0..t.len()).find(|&i| {
        month(t[i]).is_some_and(|_| t[i].len() == 3)
            && t.get(i + 1).is_some_and(|d| d.parse::<u32>().is_ok())
            && t.get(i + 2).is_some_and(|x| time(x).is_some())
    })?;
    let year = *t.get(at + 3)?;
    imap_date(
        t[at + 1],
        month(t[at])?,
        year,
        t[at + 2],
        t.get(at + 4).copied(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_headers_give_flags_but_never_deleted() {
        let h = read_header(
            b"Status: RO\r\nX-Status: AFD\r\nMessage-ID: <a@b>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0100\r\n\r\nStatus: F\r\n",
        );
        assert_eq!(h.flags, vec!["\\Answered", "\\Flagged", "\\Seen"]);
        assert_eq!(h.message_id.as_deref(), Some("<a@b>"));
        assert_eq!(h.date.as_deref(), Some("01-Jan-2024 10:00:00 +0100"));
        assert_eq!(h.fields, 4);
        let t = read_header(b"X-Mozilla-Status: 0005\nSubject: x\n\n");
        assert_eq!(t.flags, vec!["\\Flagged", "\\Seen"]);
        assert!(!t.expunged);
        assert!(read_header(b"X-Mozilla-Status: 0009\nSubject: x\n\n").expunged);
        assert_eq!(read_header(b"just text, no header\n").fields, 0);
    }

    #[test]
    fn maildir_suffixes_give_flags() {
        assert_eq!(
            maildir_flags("1.host:2,FRST.eml"),
            ["\\Answered", "\\Flagged", "\\Seen"]
        );
        assert_eq!(maildir_flags("m.eml:2,D"), ["\\Draft"]);
        assert!(maildir_flags("plain.eml").is_empty());
    }

    #[test]
    fn dates_are_rewritten_for_append() {
        assert_eq!(
            rfc5322_date("Tue, 3 Sep 19 07:08:09 EST (Eastern)").as_deref(),
            Some("03-Sep-2019 07:08:09 -0500")
        );
        assert_eq!(
            rfc5322_date("3 Sep 2019 07:08 GMT").as_deref(),
            Some("03-Sep-2019 07:08:00 +0000")
        );
        assert_eq!(rfc5322_date("yesterday"), None);
        assert_eq!(rfc5322_date("Mon, 1 Jan 1800 10:00:00 +0000"), None);
        assert_eq!(
            from_line_date(b"From MAILER-DAEMON Fri Jul  8 12:08:34 2011").as_deref(),
            Some("08-Jul-2011 12:08:34 +0000")
        );
        assert_eq!(
            from_line_date(b"From - Sat Jan  3 01:05:34 1996 -0800").as_deref(),
            Some("03-Jan-1996 01:05:34 -0800")
        );
        assert_eq!(from_line_date(b"From here on, we talk"), None);
    }
}
