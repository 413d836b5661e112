//! A PST mail item rebuilt as an RFC 5322 message, with its IMAP flags and internal date.
//!
//! # What is kept
//! - Header: PR_TRANSPORT_MESSAGE_HEADERS when the item came from the Internet (its
//!   MIME fields dropped: the body is rebuilt below); otherwise From, To, Cc, Subject, Date
//!   and Message-ID made from the MAPI properties and the recipient table (Bcc is left out,
//!   as a sent message shows it).
//! - Body: PR_BODY as text/plain and PR_HTML as text/html (multipart/alternative when both).
//!   A body kept only as compressed RTF (PR_RTF_COMPRESSED with neither a plain nor an HTML
//!   copy: rare, Outlook writes PR_BODY alongside) is not decompressed: the message gets an
//!   empty text part and the item a note saying so.
//! - Attachments by value with their file name, MIME type and Content-ID; an embedded
//!   message as message/rfc822 (its own attachments are not carried: outlook-pst opens
//!   attachments only from a top-level message). Attachments of an ANSI (pre-2003) file are
//!   not read.
//! - An attachment that cannot be read is named in an `X-Mailshift-Note` header field of the
//!   message and in [`MailItem::notes`]; the message is imported without it.
//! - Flags: MSGFLAG_READ → `\Seen`, MSGFLAG_UNSENT → `\Draft`, PR_FLAG_STATUS 2 → `\Flagged`,
//!   PR_LAST_VERB_EXECUTED reply → `\Answered`. Internal date: PR_MESSAGE_DELIVERY_TIME, else
//!   PR_CLIENT_SUBMIT_TIME.
//!
//! The result is a pure function of the item's properties (the MIME boundary comes from the
//! item's NID), so reading the file again gives the same bytes and the same content hash.

use std::rc::Rc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use outlook_pst::messaging::attachment::{Attachment, AttachmentData, UnicodeAttachment};
use outlook_pst::messaging::message::UnicodeMessage;
use outlook_pst::ndb::node_id::NodeId;

use crate::Pst;
use crate::props::{Props, Value, civil};

/// One rebuilt message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailItem {
    /// RFC 5322 bytes, CRLF line ends.
    pub bytes: Vec<u8>,
    pub flags: Vec<String>,
    /// Unix seconds, when the item has a delivery or submit time.
    pub date: Option<i64>,
    pub message_id: Option<String>,
    /// Parts that could not be read (an attachment of a damaged file), named; the message
    /// is imported without them.
    pub notes: Vec<String>,
}

const MIME_FIELDS: [&str; 4] = [
    "content-type",
    "content-transfer-encoding",
    "mime-version",
    "content-disposition",
];

impl Pst {
    /// Item `nid` of a mail folder, rebuilt. `folder` names it in errors.
    pub fn mail(&self, folder: &str, nid: u32) -> Result<MailItem, String> {
        let name = self.name();
        let what = format!("{name}: folder {folder}: item {nid:#x}");
        self.guarded(&what, || {
            let (props, atts) = match &self.unicode {
                Some(store) => {
                    let id = self
                        .store
                        .properties()
                        .make_entry_id(NodeId::from(nid))
                        .map_err(|e| format!("{what}: {e}"))?;
                    let m = UnicodeMessage::read(store.clone(), &id, None)
                        .map_err(|e| format!("{what}: cannot be read: {e}"))?;
                    let props = Props::of_message(m.as_ref(), &self.named);
                    let atts = props
                        .attachments
                        .iter()
                        .map(|a| (*a, attachment(&m, *a, &self.named)))
                        .collect();
                    (props, atts)
                }
                None => (
                    self.props(nid)
                        .map_err(|e| format!("{what}: cannot be read: {e}"))?,
                    Vec::new(),
                ),
            };
            let mut missing = Vec::new();
            let mut parts = Vec::new();
            for (sub, a) in atts {
                match a {
                    Ok(p) => parts.push(p),
                    Err(e) => missing.push(format!("attachment {sub:#x}: {e}")),
                }
            }
            let mut item = build(&props, nid, parts, &missing);
            item.notes = missing
                .iter()
                .map(|m| format!("{what}: {m}; left out"))
                .chain(item.notes)
                .collect();
            Ok(item)
        })
    }
}

/// One attachment as a MIME part.
struct Part {
    content_type: String,
    name: Option<String>,
    content_id: Option<String>,
    body: Vec<u8>,
    /// message/rfc822: sent as is (7bit/8bit), never base64 (RFC 2046 §5.2.1).
    message: bool,
}

fn attachment(
    m: &Rc<UnicodeMessage>,
    sub: u32,
    named: &crate::props::Named,
) -> Result<Part, String> {
    let a =
        UnicodeAttachment::read(m.clone(), NodeId::from(sub), None).map_err(|e| e.to_string())?;
    let p = a.properties();
    let s = |id: u16| match p.get(id).and_then(crate::props::value) {
        Some(Value::Str(s)) if !s.is_empty() => Some(s),
        _ => None,
    };
    let name = s(0x3707).or_else(|| s(0x3704)).or_else(|| s(0x3001));
    let content_id = s(0x3712);
    match a.data() {
        Some(AttachmentData::Binary(b)) => Ok(Part {
            content_type: s(0x370E).unwrap_or_else(|| "application/octet-stream".into()),
            name,
            content_id,
            body: b.buffer().to_vec(),
            message: false,
        }),
        Some(AttachmentData::Message(inner)) => {
            let props = Props::of_message(inner.as_ref(), named);
            let item = build(&props, sub, Vec::new(), &[]);
            Ok(Part {
                content_type: "message/rfc822".into(),
                name,
                content_id,
                body: item.bytes,
                message: true,
            })
        }
        _ => Err("not stored in the file (a link or an OLE object)".into()),
    }
}

/// The message from its properties and its attachments' parts.
/// `missing` names the attachments that could not be read: each becomes an
/// `X-Mailshift-Note` field of the message, so the reader sees what is gone (the text names
/// no path: the bytes, hence the identity, do not depend on where the file lies).
fn build(p: &Props, nid: u32, parts: Vec<Part>, missing: &[String]) -> MailItem {
    let mut notes = Vec::new();
    let date = p.time(0x0E06).or_else(|| p.time(0x0039));
    let message_id = p.str(0x1035);
    let mut head = String::new();
    match p.str(0x007D) {
        Some(h) if h.contains(':') => {
            // Unfolded field by field; the MIME fields of the original go (a new body follows).
            let mut keep = false;
            for line in h.split("\r\n").flat_map(|l| l.split('\n')) {
                if line.is_empty() {
                    continue;
                }
                if line.starts_with([' ', '\t']) {
                    if keep {
                        head.push_str(line);
                        head.push_str("\r\n");
                    }
                    continue;
                }
                let field = line
                    .split(':')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                keep = !MIME_FIELDS.contains(&field.as_str());
                if keep {
                    head.push_str(line);
                    head.push_str("\r\n");
                }
            }
        }
        _ => {
            let from = mailbox(
                p.str(0x0C1A).or_else(|| p.str(0x0042)),
                p.str(0x5D01)
                    .or_else(|| p.str(0x0C1F).filter(|a| a.contains('@')))
                    .or_else(|| p.str(0x0065).filter(|a| a.contains('@'))),
            );
            if let Some(from) = from {
                head.push_str(&format!("From: {from}\r\n"));
            }
            for (kind, field) in [(1, "To"), (2, "Cc")] {
                let list: Vec<String> = p
                    .recipients
                    .iter()
                    .filter(|r| r.kind == kind)
                    .filter_map(|r| mailbox(r.name.clone(), r.address.clone()))
                    .collect();
                if !list.is_empty() {
                    head.push_str(&format!("{field}: {}\r\n", list.join(",\r\n ")));
                }
            }
            if let Some(s) = p.subject() {
                head.push_str(&format!("Subject: {}\r\n", encode_word(&s)));
            }
            if let Some(d) = date {
                head.push_str(&format!("Date: {}\r\n", rfc5322_date(d)));
            }
            if let Some(id) = &message_id {
                head.push_str(&format!("Message-ID: {id}\r\n"));
            }
        }
    }
    for m in missing {
        let m: String = m.chars().filter(|c| !c.is_control()).collect();
        head.push_str(&format!(
            "X-Mailshift-Note: {}\r\n",
            encode_word(&format!("{m}; not carried from the PST file"))
        ));
    }
    head.push_str("MIME-Version: 1.0\r\n");

    let text = p.body();
    let html = match p.get(0x1013) {
        Some(Value::Str(s)) => Some(s.clone()),
        // Bytes in the item's code page (PR_INTERNET_CPID); UTF-8 and ASCII read as is,
        // another code page is kept as Latin-1-ish text rather than lost.
        Some(Value::Bin(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    };
    if text.is_none() && html.is_none() && p.get(0x1009).is_some() {
        notes.push(format!(
            "item {nid:#x}: its body is only compressed RTF, which is not carried; imported \
             with an empty body"
        ));
    }
    let boundary = |n: u32| format!("=_mailshift_pst_{nid:x}_{n}");
    let text_part = |ct: &str, s: &str| {
        format!(
            "Content-Type: {ct}; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
            wrap64(s.as_bytes())
        )
    };
    let body = match (&text, &html) {
        (Some(t), Some(h)) => {
            let b = boundary(1);
            format!(
                "Content-Type: multipart/alternative; boundary=\"{b}\"\r\n\r\n--{b}\r\n{}\r\n--{b}\r\n{}\r\n--{b}--\r\n",
                text_part("text/plain", t),
                text_part("text/html", h)
            )
        }
        (None, Some(h)) => text_part("text/html", h),
        (t, None) => text_part("text/plain", t.as_deref().unwrap_or("")),
    };
    let mut out = head.into_bytes();
    if parts.is_empty() {
        out.extend_from_slice(body.as_bytes());
    } else {
        let b = boundary(0);
        out.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=\"{b}\"\r\n\r\n--{b}\r\n{body}")
                .as_bytes(),
        );
        for part in parts {
            out.extend_from_slice(format!("\r\n--{b}\r\n").as_bytes());
            let mut h = format!("Content-Type: {}", part.content_type);
            if let Some(n) = &part.name {
                h.push_str(&format!("; name=\"{}\"", encode_word(n).replace('"', "'")));
            }
            h.push_str("\r\n");
            if let Some(id) = &part.content_id {
                h.push_str(&format!(
                    "Content-ID: <{}>\r\n",
                    id.trim_matches(['<', '>'])
                ));
            }
            let disp = if part.content_id.is_some() {
                "inline"
            } else {
                "attachment"
            };
            match &part.name {
                Some(n) => h.push_str(&format!(
                    "Content-Disposition: {disp}; filename=\"{}\"\r\n",
                    encode_word(n).replace('"', "'")
                )),
                None => h.push_str(&format!("Content-Disposition: {disp}\r\n")),
            }
            if part.message {
                h.push_str("\r\n");
                out.extend_from_slice(h.as_bytes());
                out.extend_from_slice(&part.body);
            } else {
                h.push_str("Content-Transfer-Encoding: base64\r\n\r\n");
                out.extend_from_slice(h.as_bytes());
                out.extend_from_slice(wrap64(&part.body).as_bytes());
            }
        }
        out.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
    }

    let mut flags = Vec::new();
    let mf = p.int(0x0E07).unwrap_or(0);
    if mf & 0x1 != 0 {
        flags.push("\\Seen".to_string());
    }
    if mf & 0x8 != 0 {
        flags.push("\\Draft".to_string());
    }
    if p.int(0x1090) == Some(2) {
        flags.push("\\Flagged".to_string());
    }
    // PR_LAST_VERB_EXECUTED: 102 reply, 103 reply all.
    if matches!(p.int(0x1081), Some(102 | 103)) {
        flags.push("\\Answered".to_string());
    }
    flags.sort();
    MailItem {
        bytes: out,
        flags,
        date,
        message_id,
        notes,
    }
}

fn mailbox(name: Option<String>, addr: Option<String>) -> Option<String> {
    match (name, addr) {
        (Some(n), Some(a)) if n != a => Some(format!("{} <{a}>", phrase(&n))),
        (_, Some(a)) => Some(format!("<{a}>")),
        (Some(n), None) => Some(format!("{}:;", phrase(&n))),
        (None, None) => None,
    }
}

/// A display name as a phrase: quoted when it holds specials, an encoded word when not ASCII.
fn phrase(s: &str) -> String {
    if !s.is_ascii() {
        encode_word(s)
    } else if s.chars().any(|c| "()<>[]:;@\\,.\"".contains(c)) {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        s.to_string()
    }
}

/// RFC 2047 B-encoding when not ASCII (one word per 45 bytes, cut on char boundaries).
fn encode_word(s: &str) -> String {
    if s.is_ascii() && !s.contains(['\r', '\n']) {
        return s.to_string();
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in s.chars().filter(|c| *c != '\r' && *c != '\n') {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(format!("=?UTF-8?B?{}?=", B64.encode(&chunk)));
            chunk.clear();
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(format!("=?UTF-8?B?{}?=", B64.encode(&chunk)));
    }
    words.join("\r\n ")
}

fn wrap64(b: &[u8]) -> String {
    let enc = B64.encode(b);
    let mut out = String::with_capacity(enc.len() + enc.len() / 76 * 2 + 2);
    for chunk in enc.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or(""));
        out.push_str("\r\n");
    }
    out
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `Mon, 2 Jan 2006 15:04:05 +0000`.
pub fn rfc5322_date(secs: i64) -> String {
    let (y, m, d, hh, mm, ss) = civil(secs);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]
        [secs.div_euclid(86_400).rem_euclid(7) as usize];
    format!(
        "{wd}, {d} {} {y} {hh:02}:{mm:02}:{ss:02} +0000",
        MONTHS[(m - 1) as usize]
    )
}

/// IMAP APPEND's date-time: `02-Jan-2006 15:04:05 +0000`.
pub fn imap_date(secs: i64) -> String {
    let (y, m, d, hh, mm, ss) = civil(secs);
    format!(
        "{d:02}-{}-{y:04} {hh:02}:{mm:02}:{ss:02} +0000",
        MONTHS[(m - 1) as usize]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_as_written() {
        // 2011-06-22 09:11:07 UTC, a Wednesday.
        assert_eq!(
            rfc5322_date(1_308_733_867),
            "Wed, 22 Jun 2011 09:11:07 +0000"
        );
        assert_eq!(imap_date(1_308_733_867), "22-Jun-2011 09:11:07 +0000");
    }

    #[test]
    fn names_are_encoded_when_they_must_be() {
        assert_eq!(phrase("Ann Lee"), "Ann Lee");
        assert_eq!(phrase("Lee, Ann"), "\"Lee, Ann\"");
        assert_eq!(encode_word("été"), "=?UTF-8?B?w6l0w6k=?=");
    }
}
