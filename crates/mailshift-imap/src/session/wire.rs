//! The raw command path and what travels on the wire: commands written with every mailbox
//! name through [`names::encode`], responses read back into owned values, LIST and STATUS
//! answers decoded from their raw bytes, UID sets, flags.

use std::collections::HashMap;
use std::io;

use async_imap::imap_proto::rfc4315::UidSetMember;
use async_imap::imap_proto::{MailboxDatum, Response, ResponseCode, Status};
use tokio::io::AsyncWriteExt;

use super::error::refusal;
use super::{FolderInfo, Imap, ImapError};
use crate::folders::RemoteFolder;
use crate::names::{self, Encoded};

impl Imap {
    pub(super) fn new_tag(&mut self) -> String {
        self.next_tag += 1;
        format!("MS{}", self.next_tag)
    }

    /// Sends one command ourselves (rather than through async-imap, which cannot send a name
    /// as a literal) and returns its untagged responses; a NO or BAD is an error in the
    /// server's words.
    pub(super) async fn run(
        &mut self,
        what: &str,
        args: &[Arg<'_>],
    ) -> Result<Vec<Untagged>, ImapError> {
        self.ready().await;
        let host = self.host.clone();
        let tag = self.new_tag();
        let fut = async {
            let mut seen = Vec::new();
            self.write_command(&tag, args, &mut seen).await?;
            self.session.get_mut().flush().await?;
            self.finish(std::slice::from_ref(&tag), seen).await
        };
        let (untagged, mut done) = tokio::time::timeout(host.timeout, fut)
            .await
            .map_err(|_| ImapError::transient(format!("{what} on {host} timed out")))?
            .map_err(|e| e.into_error(&host, what))?;
        match done.remove(&tag) {
            Some(Ok(())) => Ok(untagged),
            Some(Err(text)) => {
                let text: String = text;
                Err(host.heard(refusal(
                    format!("{what} on {host}: server said {text}"),
                    &text,
                )))
            }
            None => Err(RawIo::Closed.into_error(&host, what)),
        }
    }

    /// Writes one command, not flushing its end. Each mailbox name goes through
    /// [`names::encode`]; a literal without LITERAL+ waits for the server's `+` (responses
    /// read meanwhile go to `seen`). Stops early if the server ends the command first.
    pub(super) async fn write_command(
        &mut self,
        tag: &str,
        args: &[Arg<'_>],
        seen: &mut Vec<Reply>,
    ) -> Result<(), RawIo> {
        let literal_plus = self.caps.literal_plus;
        let mut line = tag.as_bytes().to_vec();
        for arg in args {
            match arg {
                Arg::Text("") => continue,
                Arg::Text(t) => {
                    line.push(b' ');
                    line.extend_from_slice(t.as_bytes());
                }
                Arg::Mailbox(m) => {
                    line.push(b' ');
                    match names::encode(m.as_bytes()) {
                        Encoded::Quoted(q) => line.extend_from_slice(&q),
                        Encoded::Literal(bytes) => {
                            line.extend(names::literal_head(bytes.len(), literal_plus));
                            let stream = self.session.get_mut();
                            stream.write_all(&line).await?;
                            line.clear();
                            if !literal_plus {
                                stream.flush().await?;
                                if !self.wait_continuation_raw(tag, seen).await? {
                                    return Ok(());
                                }
                            }
                            line.extend_from_slice(&bytes);
                        }
                    }
                }
            }
        }
        line.extend_from_slice(b"\r\n");
        self.session.get_mut().write_all(&line).await?;
        Ok(())
    }

    /// Reads until `+` (true) or until the server ends `tag` (false: it refused the literal).
    pub(super) async fn wait_continuation_raw(
        &mut self,
        tag: &str,
        seen: &mut Vec<Reply>,
    ) -> Result<bool, RawIo> {
        loop {
            let reply = self.read_reply().await?;
            if matches!(reply, Reply::Continue) {
                return Ok(true);
            }
            let ours = matches!(&reply, Reply::Done { tag: t, .. } if t == tag);
            seen.push(reply);
            if ours {
                return Ok(false);
            }
        }
    }

    /// The next response, classified and owned.
    pub(super) async fn read_reply(&mut self) -> Result<Reply, RawIo> {
        let resp = self.session.read_response().await?.ok_or(RawIo::Closed)?;
        if let Some(text) = bye_text(resp.parsed()) {
            self.bye = Some(text);
        }
        Ok(reply(resp.parsed(), resp.borrow_owner()))
    }

    /// Reads until every tag is done: the untagged responses, and each tag's outcome (Err
    /// with the server's text for NO/BAD).
    #[allow(clippy::type_complexity)]
    pub(super) async fn finish(
        &mut self,
        tags: &[String],
        seen: Vec<Reply>,
    ) -> Result<(Vec<Untagged>, HashMap<String, Result<(), String>>), RawIo> {
        let mut untagged = Vec::new();
        let mut done = HashMap::new();
        let mut seen = seen.into_iter();
        while done.len() < tags.len() {
            let reply = match seen.next() {
                Some(r) => r,
                None => match self.read_reply().await {
                    Ok(r) => r,
                    // A server that refuses one command of a pipelined batch and hangs up
                    // (Exchange's throttling) has said why: that answer is kept, the commands
                    // it never answered stay missing.
                    Err(_) if done.values().any(Result::is_err) => break,
                    Err(e) => return Err(e),
                },
            };
            match reply {
                Reply::Done {
                    tag,
                    outcome,
                    copied,
                } if tags.contains(&tag) => {
                    if !copied.is_empty() {
                        untagged.push(Untagged::CopyUid(copied));
                    }
                    done.insert(tag, outcome);
                }
                // A stray `+` (never expected here) or another command's end: not ours.
                Reply::Continue | Reply::Done { .. } => {}
                Reply::Untagged(u) => untagged.push(u),
            }
        }
        Ok((untagged, done))
    }
}

pub(super) fn expand_uid_set(set: &[UidSetMember]) -> Vec<u32> {
    let mut out = Vec::new();
    for m in set {
        match m {
            UidSetMember::Uid(u) => out.push(*u),
            UidSetMember::UidRange(r) => out.extend(r.clone()),
        }
    }
    out
}

/// One argument of a command we send ourselves.
pub(super) enum Arg<'a> {
    /// Sent as it is (empty: left out).
    Text(&'a str),
    /// A mailbox name: through [`names::encode`], the one encoder of names.
    Mailbox(&'a str),
}

/// One response to a command we sent ourselves, owned (async-imap's response type cannot
/// be named outside it).
pub(super) enum Reply {
    Continue,
    Done {
        tag: String,
        /// Err with the server's text for NO and BAD.
        outcome: Result<(), String>,
        /// COPYUID pairs of the tagged OK, if any.
        copied: Vec<(u32, u32)>,
    },
    Untagged(Untagged),
}

/// What we use of an untagged response. LIST and STATUS keep their raw bytes: the names in
/// them are read by [`names`], never from imap-proto's parse.
pub(super) enum Untagged {
    List(Vec<u8>),
    Status(Vec<u8>),
    Exists(u32),
    UidValidity(u32),
    UidNext(u32),
    HighestModSeq(u64),
    PermanentFlags(Vec<String>),
    /// COPYUID (RFC 4315) of a COPY or MOVE: (old UID, new UID) pairs.
    CopyUid(Vec<(u32, u32)>),
    /// A CAPABILITY response: the names, in capitals (`AUTH=PLAIN`, `LITERAL+`).
    Capabilities(Vec<String>),
    /// A QUOTA response's STORAGE resource (RFC 9208 §5.1), in the protocol's units of 1024
    /// octets: (usage, limit).
    StorageQuota(u64, u64),
    Other,
}

pub(super) fn reply(parsed: &Response<'_>, raw: &[u8]) -> Reply {
    use async_imap::imap_proto::Outcome;
    let u = match parsed {
        Response::Continue { .. } => return Reply::Continue,
        Response::Done {
            tag,
            status,
            outcome,
        } => {
            let outcome = match status {
                Status::Ok => Ok(()),
                other => Err(outcome
                    .information
                    .as_deref()
                    .map_or_else(|| format!("{other:?}"), str::to_string)),
            };
            let copied = match &outcome {
                Ok(()) => match &parsed_code(parsed) {
                    Some(ResponseCode::CopyUid(_, from, into)) => copy_pairs(from, into),
                    _ => Vec::new(),
                },
                Err(_) => Vec::new(),
            };
            return Reply::Done {
                tag: tag.0.to_string(),
                outcome,
                copied,
            };
        }
        Response::MailboxData(MailboxDatum::List(_)) => Untagged::List(raw.to_vec()),
        Response::MailboxData(MailboxDatum::Status { .. }) => Untagged::Status(raw.to_vec()),
        Response::MailboxData(MailboxDatum::Exists(n)) => Untagged::Exists(*n),
        Response::Capabilities(caps) => Untagged::Capabilities(
            caps.iter()
                .map(|c| {
                    use async_imap::imap_proto::Capability;
                    match c {
                        Capability::Imap4rev1 => "IMAP4REV1".to_string(),
                        Capability::Auth(a) => format!("AUTH={}", a.to_ascii_uppercase()),
                        Capability::Atom(a) => a.to_ascii_uppercase(),
                    }
                })
                .collect(),
        ),
        Response::Quota(q) => {
            use async_imap::imap_proto::rfc2087::QuotaResourceName;
            match q
                .resources
                .iter()
                .find(|r| r.name == QuotaResourceName::Storage)
            {
                Some(r) => Untagged::StorageQuota(r.usage, r.limit),
                // A root that limits only the count of messages says nothing of bytes.
                None => Untagged::Other,
            }
        }
        Response::Data {
            status: Status::Ok,
            outcome: Outcome {
                code: Some(code), ..
            },
        } => match code {
            ResponseCode::UidValidity(v) => Untagged::UidValidity(*v),
            ResponseCode::UidNext(v) => Untagged::UidNext(*v),
            ResponseCode::HighestModSeq(v) => Untagged::HighestModSeq(*v),
            ResponseCode::PermanentFlags(flags) => {
                Untagged::PermanentFlags(flags.iter().map(|f| f.to_string()).collect())
            }
            ResponseCode::CopyUid(_, from, into) => Untagged::CopyUid(copy_pairs(from, into)),
            _ => Untagged::Other,
        },
        _ => Untagged::Other,
    };
    Reply::Untagged(u)
}

/// The text of a BYE (`* BYE Session invalidated - AccessTokenExpired`), kept to tell why
/// the connection ended.
pub(super) fn bye_text(parsed: &Response<'_>) -> Option<String> {
    match parsed {
        Response::Data {
            status: Status::Bye,
            outcome,
        } => Some(outcome.information.as_deref().unwrap_or("BYE").to_string()),
        _ => None,
    }
}

pub(super) fn parsed_code<'a>(parsed: &'a Response<'a>) -> Option<&'a ResponseCode<'a>> {
    match parsed {
        Response::Done { outcome, .. } | Response::Data { outcome, .. } => outcome.code.as_ref(),
        _ => None,
    }
}

pub(super) fn copy_pairs(from: &[UidSetMember], into: &[UidSetMember]) -> Vec<(u32, u32)> {
    expand_uid_set(from)
        .into_iter()
        .zip(expand_uid_set(into))
        .collect()
}

/// A raw exchange that broke before the server answered.
pub(super) enum RawIo {
    Io(io::Error),
    Closed,
}

impl From<io::Error> for RawIo {
    fn from(e: io::Error) -> Self {
        RawIo::Io(e)
    }
}

impl From<async_imap::error::Error> for RawIo {
    fn from(e: async_imap::error::Error) -> Self {
        RawIo::Io(io::Error::other(e))
    }
}

impl RawIo {
    pub(super) fn into_error(self, host: &str, what: &str) -> ImapError {
        match self {
            RawIo::Io(e) => ImapError::transient(format!("{what} on {host} failed: {e}")),
            RawIo::Closed => {
                ImapError::transient(format!("{host} closed the connection during {what}"))
            }
        }
    }
}

/// INBOX is case-insensitive (RFC 3501 §5.1): every spelling is `INBOX` to us.
pub(super) fn canonical(name: &str) -> std::borrow::Cow<'_, str> {
    if name.eq_ignore_ascii_case("INBOX") {
        "INBOX".into()
    } else {
        name.into()
    }
}

/// A name's bytes as our `String`. Servers send modified UTF-7 or UTF-8; anything else
/// cannot be sent back byte for byte from a `String`: it is kept (lossily, so that folder
/// fails alone when opened, in the server's words) and said in the log.
pub(super) fn name_text(host: &str, bytes: Vec<u8>) -> String {
    let text = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
            tracing::warn!(
                host,
                folder = %lossy,
                "a folder name is neither modified UTF-7 nor UTF-8: rename it on the server to copy it"
            );
            lossy
        }
    };
    canonical(&text).into_owned()
}

/// The folders in LIST responses, read from their raw bytes (see [`names`] for why).
pub(super) fn list_entries(
    host: &str,
    responses: &[Untagged],
) -> Result<Vec<RemoteFolder>, ImapError> {
    let mut out = Vec::new();
    for r in responses {
        let Untagged::List(raw) = r else { continue };
        let entry = names::parse_list(raw).map_err(|e| {
            ImapError::fatal(format!(
                "cannot read a LIST response of {host} ({e}): {}",
                String::from_utf8_lossy(raw).trim_end()
            ))
        })?;
        out.push(RemoteFolder {
            name: name_text(host, entry.name),
            delimiter: entry.delimiter,
            attributes: entry.attributes,
        });
    }
    Ok(out)
}

/// Folder → status from STATUS responses, read from their raw bytes.
pub(super) fn status_entries(
    host: &str,
    responses: &[Untagged],
) -> Result<HashMap<String, FolderInfo>, ImapError> {
    let mut out = HashMap::new();
    for r in responses {
        let Untagged::Status(raw) = r else { continue };
        let entry = names::parse_status(raw).map_err(|e| {
            ImapError::fatal(format!(
                "cannot read a STATUS response of {host} ({e}): {}",
                String::from_utf8_lossy(raw).trim_end()
            ))
        })?;
        let mut info = FolderInfo::default();
        for (item, value) in entry.items {
            let small = u32::try_from(value).unwrap_or(u32::MAX);
            match item.as_str() {
                "MESSAGES" => info.exists = small,
                "UIDNEXT" => info.uidnext = small,
                "UIDVALIDITY" => info.uidvalidity = small,
                "HIGHESTMODSEQ" => info.highest_modseq = Some(value),
                _ => {}
            }
        }
        out.insert(name_text(host, entry.name), info);
    }
    Ok(out)
}

/// A folder name in a message: between backticks, control characters escaped.
pub(super) fn shown(name: &str) -> String {
    let mut out = String::from("`");
    for c in name.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out.push('`');
    out
}

/// A compact UID set: `1:5,8,10:12`.
pub fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}:{end}")
        });
        i += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_are_compact() {
        assert_eq!(uid_set(&[5, 1, 2, 3, 8, 10, 11, 12, 3]), "1:3,5,8,10:12");
        assert_eq!(uid_set(&[7]), "7");
    }
}
