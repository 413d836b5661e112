//! UID FETCH, read by hand. async-imap's FETCH stream ends at the command's tagged answer
//! without looking at it, so a NO or BAD reads as an empty answer: Exchange Online's `BAD
//! Request is throttled` would say "no messages" (a source folder that looks empty, a
//! destination with nothing to match) and its suggested backoff would go unheard. Here the
//! tagged answer decides: OK is the data, NO/BAD an error in the server's words.

use async_imap::imap_proto::{AttributeValue, Response, Status};

use super::error::{ImapError, refusal};
use super::{Imap, wire};

/// What one FETCH response said of a message (the items asked for; one body section at most).
#[derive(Debug, Default)]
pub(super) struct Item {
    pub uid: Option<u32>,
    pub size: Option<u32>,
    pub flags: Vec<String>,
    /// As `DD-Mon-YYYY HH:MM:SS +ZZZZ` (day zero-padded), if the server's was well formed.
    pub internal_date: Option<String>,
    pub modseq: Option<u64>,
    pub body: Option<Vec<u8>>,
    /// Gmail's X-GM-MSGID and X-GM-LABELS, when asked for.
    pub gmail_msgid: Option<u64>,
    pub gmail_labels: Vec<String>,
}

impl Item {
    fn from_attributes(attrs: &[AttributeValue<'_>]) -> Item {
        let mut item = Item::default();
        for a in attrs {
            match a {
                AttributeValue::Uid(u) => item.uid = Some(*u),
                AttributeValue::Rfc822Size(s) => item.size = Some(*s),
                AttributeValue::Flags(f) => item.flags = f.iter().map(|f| flag(f)).collect(),
                AttributeValue::InternalDate(d) => item.internal_date = internal_date(d),
                AttributeValue::ModSeq(m) => item.modseq = Some(*m),
                AttributeValue::GmailMsgId(id) => item.gmail_msgid = Some(*id),
                AttributeValue::GmailLabels(labels) => {
                    item.gmail_labels = labels.iter().map(|l| l.to_string()).collect();
                }
                AttributeValue::BodySection { data, .. }
                | AttributeValue::Rfc822(data)
                | AttributeValue::Rfc822Header(data) => {
                    item.body = Some(data.as_deref().unwrap_or_default().to_vec());
                }
                _ => {}
            }
        }
        item
    }

    /// The internal date as Unix seconds.
    pub fn timestamp(&self) -> Option<i64> {
        self.internal_date.as_deref().and_then(timestamp)
    }
}

impl Imap {
    /// `UID FETCH set query`, each message's response handed to `each` as it arrives (so a
    /// caller keeps what came before a failure). Ends with the tagged answer: NO or BAD is an
    /// error (a suggested backoff holds the account's gate), and so is a lost connection.
    pub(super) async fn uid_fetch_raw(
        &mut self,
        set: &str,
        query: &str,
        mut each: impl FnMut(Item) + Send,
    ) -> Result<(), ImapError> {
        self.ready().await;
        let host = self.host.clone();
        let fut = async {
            let tag = self
                .session
                .run_command(format!("UID FETCH {set} {query}"))
                .await
                .map_err(|e| super::error::imap_error(&host, "FETCH", e))?;
            loop {
                let resp = self
                    .session
                    .read_response()
                    .await
                    .map_err(|e| ImapError::transient(format!("FETCH on {host} failed: {e}")))?
                    .ok_or_else(|| {
                        ImapError::transient(format!("{host} closed the connection during FETCH"))
                    })?;
                match resp.parsed() {
                    Response::Fetch(_, attrs) => each(Item::from_attributes(attrs)),
                    Response::Done {
                        tag: t,
                        status,
                        outcome,
                    } if *t == tag => {
                        if matches!(status, Status::Ok) {
                            return Ok(());
                        }
                        let text = outcome
                            .information
                            .as_deref()
                            .map_or_else(|| format!("{status:?}"), str::to_string);
                        return Err(refusal(
                            format!("FETCH on {host}: server said {text}"),
                            &text,
                        ));
                    }
                    other => {
                        if let Some(text) = wire::bye_text(other) {
                            self.bye = Some(text);
                        }
                    }
                }
            }
        };
        match tokio::time::timeout(host.timeout, fut).await {
            Err(_) => Err(ImapError::transient(format!("FETCH on {host} timed out"))),
            Ok(result) => result.map_err(|e| host.heard(e)),
        }
    }
}

/// System flags in their usual spelling (servers may answer `\seen`); keywords as they are.
fn flag(f: &str) -> String {
    for system in [
        "\\Seen",
        "\\Answered",
        "\\Flagged",
        "\\Deleted",
        "\\Draft",
        "\\Recent",
    ] {
        if f.eq_ignore_ascii_case(system) {
            return system.to_string();
        }
    }
    f.to_string()
}

/// `DD-Mon-YYYY HH:MM:SS +ZZZZ` with the day zero-padded, or `None` when malformed (a date
/// the server could not take back in an APPEND is better left out).
fn internal_date(raw: &str) -> Option<String> {
    let t = raw.trim();
    let t = if t.find('-') == Some(1) {
        format!("0{t}")
    } else {
        t.to_string()
    };
    timestamp(&t).map(|_| t)
}

/// Unix seconds of `DD-Mon-YYYY HH:MM:SS +ZZZZ`.
fn timestamp(date: &str) -> Option<i64> {
    let b = date.as_bytes();
    if b.len() != 26 || b[2] != b'-' || b[6] != b'-' || b[11] != b' ' || b[20] != b' ' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = date.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())
            .flatten()
    };
    let (y, m, d) = crate::copy::date_key(date)?;
    let (hh, mm, ss) = (num(12..14)?, num(15..17)?, num(18..20)?);
    let sign = match b[21] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let zone = sign * (num(22..24)? * 3600 + num(24..26)? * 60);
    if !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m, d) = (i64::from(y), i64::from(m), i64::from(d));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss - zone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_dates_are_normalised_and_read_as_unix_seconds() {
        assert_eq!(
            internal_date(" 1-Feb-2024 10:00:00 +0000").as_deref(),
            Some("01-Feb-2024 10:00:00 +0000")
        );
        assert_eq!(timestamp("01-Jan-1970 00:00:00 +0000"), Some(0));
        assert_eq!(timestamp("01-Jan-1970 01:00:00 +0100"), Some(0));
        assert_eq!(timestamp("01-Mar-2023 09:05:00 +0100"), Some(1_677_657_900));
        assert_eq!(timestamp("29-Feb-2024 23:59:59 -0500"), Some(1_709_269_199));
        assert_eq!(internal_date("yesterday"), None);
        assert_eq!(internal_date("01-Foo-2024 10:00:00 +0000"), None);
    }

    #[test]
    fn system_flags_are_spelled_as_usual() {
        assert_eq!(flag("\\seen"), "\\Seen");
        assert_eq!(flag("$Label1"), "$Label1");
    }
}
