//! APPEND, written by hand: MULTIAPPEND batches (RFC 3502), LITERAL+ (no round trip per
//! literal), bodies streamed from memory or from a spool file, and the APPENDUID of UIDPLUS
//! servers, which is what makes a crash after an APPEND recoverable without duplicates.

use std::io;
use std::time::Duration;

use async_imap::imap_proto::{Response, ResponseCode, Status};
use tokio::io::AsyncWriteExt;

use super::error::{refusal, refusal_kind, refuses_folder};
use super::wire::expand_uid_set;
use super::{Imap, ImapError};
use crate::error::ErrorKind;
use crate::names::{self, Encoded};

/// One message to APPEND.
pub struct Outgoing<'a> {
    pub flags: &'a [String],
    pub internal_date: Option<&'a str>,
    pub body: Body<'a>,
}

/// A message's bytes: in memory, or spooled to a file (large messages, so memory stays bounded).
#[derive(Clone, Copy)]
pub enum Body<'a> {
    Mem(&'a [u8]),
    File { path: &'a std::path::Path, len: u64 },
}

impl Body<'_> {
    pub fn len(&self) -> u64 {
        match self {
            Body::Mem(b) => b.len() as u64,
            Body::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How the destination answered an APPEND it read to the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Stored; the new UIDs in order when the server says them (UIDPLUS).
    Stored(Option<Vec<u32>>),
    /// The server said NO to the message itself (too large, a line too long, bad content):
    /// its words. A NO to a MULTIAPPEND refuses every message of the command (RFC 3502).
    Refused(String),
}

/// How much of a spooled message is read into memory at a time while sending it.
pub(super) const SEND_CHUNK: usize = 1024 * 1024;

impl Imap {
    /// Appends messages to `folder`: one command with MULTIAPPEND (all stored or none), else
    /// one per message, stopping at the first refusal. A NO that is about the account rather
    /// than the messages (throttling, quota) is an error, not a refusal.
    pub async fn append(
        &mut self,
        folder: &str,
        msgs: &[Outgoing<'_>],
    ) -> Result<Appended, ImapError> {
        if msgs.is_empty() {
            return Ok(Appended::Stored(Some(Vec::new())));
        }
        if self.caps.multiappend || msgs.len() == 1 {
            return self.append_command(folder, msgs).await;
        }
        let mut uids = Some(Vec::with_capacity(msgs.len()));
        for m in msgs {
            let got = match self.append_command(folder, std::slice::from_ref(m)).await? {
                Appended::Stored(got) => got,
                refused => return Ok(refused),
            };
            uids = match (uids, got) {
                (Some(mut all), Some(one)) => {
                    all.extend(one);
                    Some(all)
                }
                _ => None,
            };
        }
        Ok(Appended::Stored(uids))
    }

    pub(super) async fn append_command(
        &mut self,
        folder: &str,
        msgs: &[Outgoing<'_>],
    ) -> Result<Appended, ImapError> {
        self.ready().await;
        let tag = self.new_tag();
        let host = self.host.clone();
        let fut = async {
            self.write_append(&tag, folder, msgs).await?;
            self.session.get_mut().flush().await?;
            self.read_tagged(&tag).await
        };
        let answer = tokio::time::timeout(append_budget(&host.timeout, msgs), fut)
            .await
            .map_err(|_| ImapError::transient(format!("APPEND to {host} timed out")))?;
        let (ok, code, info) = match answer {
            Ok(a) => a,
            Err(AppendIo::Refused(text)) => (false, None, Some(text)),
            Err(e) => return Err(host.heard(e.into_error(&host))),
        };
        answered(&host, folder, msgs.len(), ok, code, info)
    }

    /// One APPEND per message, pipelined: with LITERAL+ every command is written without
    /// waiting for the server (no round trip per message, what a server without MULTIAPPEND
    /// such as Exchange Online or Gmail allows), then the answers are read. Returns each
    /// answered message's outcome by index, in order, and the first error: a throttling reply
    /// or a refusal of the whole folder, or the connection lost. Answers that arrive after an
    /// error are still read and returned, so every stored message gets recorded. Without
    /// LITERAL+ each literal waits for the server's `+`, so the messages go one at a time.
    /// The account's pause (see [`super::Gate`]) is obeyed between commands: the pipeline
    /// waits there once what was sent is answered.
    pub async fn append_each(
        &mut self,
        folder: &str,
        msgs: &[Outgoing<'_>],
    ) -> (Vec<(usize, Appended)>, Option<ImapError>) {
        let mut out = Vec::with_capacity(msgs.len());
        if !self.caps.literal_plus {
            for (i, m) in msgs.iter().enumerate() {
                match self.append_command(folder, std::slice::from_ref(m)).await {
                    Ok(a) => out.push((i, a)),
                    Err(e) => return (out, Some(e)),
                }
            }
            return (out, None);
        }
        let host = self.host.clone();
        let mut first_error = None;
        let mut sent = 0;
        while sent < msgs.len() && first_error.is_none() {
            self.ready().await;
            let budget = append_budget(&host.timeout, &msgs[sent..]);
            let mut tags: Vec<(String, usize)> = Vec::new();
            let fut = async {
                let mut io = None;
                while sent < msgs.len() && self.host.gate.until().is_none() {
                    let tag = self.new_tag();
                    if let Err(e) = self
                        .write_append(&tag, folder, std::slice::from_ref(&msgs[sent]))
                        .await
                    {
                        // The answers to what went before may still be readable.
                        io = Some(e);
                        break;
                    }
                    tags.push((tag, sent));
                    sent += 1;
                }
                if io.is_none()
                    && let Err(e) = self.session.get_mut().flush().await
                {
                    io = Some(e.into());
                }
                let answers = self.read_answers(&tags).await;
                (answers, io)
            };
            let Ok(((answers, read_error), write_error)) = tokio::time::timeout(budget, fut).await
            else {
                first_error = Some(ImapError::transient(format!("APPEND to {host} timed out")));
                break;
            };
            for (i, (ok, code, info)) in answers {
                match answered(&host, folder, 1, ok, code, info) {
                    Ok(a) => out.push((i, a)),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = read_error.or(write_error) {
                first_error.get_or_insert(host.heard(e.into_error(&host)));
            }
        }
        (out, first_error)
    }

    /// Reads until every tag of `tags` is answered or the connection ends: each answered
    /// command's index with its outcome, and why the reading stopped early.
    async fn read_answers(
        &mut self,
        tags: &[(String, usize)],
    ) -> (Vec<(usize, TaggedAnswer)>, Option<AppendIo>) {
        let mut out = Vec::with_capacity(tags.len());
        while out.len() < tags.len() {
            let resp = match self.session.read_response().await {
                Ok(Some(r)) => r,
                Ok(None) => return (out, Some(AppendIo::Closed)),
                Err(e) => return (out, Some(e.into())),
            };
            if let Some(text) = super::wire::bye_text(resp.parsed()) {
                self.bye = Some(text);
            }
            if let Response::Done {
                tag: t,
                status,
                outcome,
            } = resp.parsed()
                && let Some((_, i)) = tags.iter().find(|(tag, _)| *tag == t.0)
            {
                out.push((*i, tagged_answer(status, outcome)));
            }
        }
        (out, None)
    }

    /// Writes one APPEND command (one message, or several with MULTIAPPEND), not flushing its
    /// end; without LITERAL+ each literal waits for the server's `+`.
    async fn write_append(
        &mut self,
        tag: &str,
        folder: &str,
        msgs: &[Outgoing<'_>],
    ) -> Result<(), AppendIo> {
        let literal_plus = self.caps.literal_plus;
        let mut head = format!("{tag} APPEND ").into_bytes();
        match names::encode(folder.as_bytes()) {
            Encoded::Quoted(q) => head.extend_from_slice(&q),
            Encoded::Literal(bytes) => {
                head.extend(names::literal_head(bytes.len(), literal_plus));
                let stream = self.session.get_mut();
                stream.write_all(&head).await?;
                if !literal_plus {
                    stream.flush().await?;
                    self.wait_continuation(tag).await?;
                }
                head = bytes;
            }
        }
        for (i, m) in msgs.iter().enumerate() {
            let flags: Vec<&str> = m.flags.iter().map(String::as_str).collect();
            head.extend_from_slice(format!(" ({})", flags.join(" ")).as_bytes());
            if let Some(d) = m.internal_date {
                head.extend_from_slice(format!(" \"{d}\"").as_bytes());
            }
            head.extend_from_slice(
                format!(
                    " {{{}{}}}\r\n",
                    m.body.len(),
                    if literal_plus { "+" } else { "" }
                )
                .as_bytes(),
            );
            let stream = self.session.get_mut();
            stream.write_all(&head).await?;
            head.clear();
            if !literal_plus {
                stream.flush().await?;
                self.wait_continuation(tag).await?;
            }
            let stream = self.session.get_mut();
            match m.body {
                Body::Mem(bytes) => stream.write_all(bytes).await?,
                Body::File { path, len } => {
                    use tokio::io::AsyncReadExt;
                    let mut file = tokio::fs::File::open(path).await?;
                    let mut buf = vec![0u8; SEND_CHUNK];
                    let mut left = len;
                    while left > 0 {
                        let want = (left as usize).min(SEND_CHUNK);
                        file.read_exact(&mut buf[..want]).await?;
                        stream.write_all(&buf[..want]).await?;
                        left -= want as u64;
                    }
                }
            }
            if i + 1 == msgs.len() {
                stream.write_all(b"\r\n").await?;
            }
        }
        Ok(())
    }

    pub(super) async fn wait_continuation(&mut self, tag: &str) -> Result<(), AppendIo> {
        loop {
            let resp = self
                .session
                .read_response()
                .await?
                .ok_or(AppendIo::Closed)?;
            match resp.parsed() {
                Response::Continue { .. } => return Ok(()),
                Response::Done {
                    tag: t,
                    status,
                    outcome,
                } if t.0 == tag => {
                    return Err(AppendIo::Refused(format!(
                        "{status:?} {}",
                        outcome.information.as_deref().unwrap_or("")
                    )));
                }
                _ => continue,
            }
        }
    }

    pub(super) async fn read_tagged(&mut self, tag: &str) -> Result<TaggedAnswer, AppendIo> {
        loop {
            let resp = self
                .session
                .read_response()
                .await?
                .ok_or(AppendIo::Closed)?;
            if let Some(text) = super::wire::bye_text(resp.parsed()) {
                self.bye = Some(text);
            }
            if let Response::Done {
                tag: t,
                status,
                outcome,
            } = resp.parsed()
                && t.0 == tag
            {
                return Ok(tagged_answer(status, outcome));
            }
        }
    }
}

/// How a tagged answer to an APPEND went: OK or not, its APPENDUID, its text.
pub(super) type TaggedAnswer = (bool, Option<OwnedCode>, Option<String>);

fn tagged_answer(status: &Status, outcome: &async_imap::imap_proto::Outcome<'_>) -> TaggedAnswer {
    let code = match &outcome.code {
        Some(ResponseCode::AppendUid(_, set)) => Some(OwnedCode::AppendUid(expand_uid_set(set))),
        _ => None,
    };
    (
        matches!(status, Status::Ok),
        code,
        outcome.information.as_ref().map(|s| s.to_string()),
    )
}

/// A generous allowance for sending `msgs`: 1 MB/s at worst on top of the base timeout.
fn append_budget(base: &Duration, msgs: &[Outgoing<'_>]) -> Duration {
    let total: u64 = msgs.iter().map(|m| m.body.len()).sum();
    *base + Duration::from_secs(total / 1_000_000)
}

/// What an APPEND's tagged answer means for `count` messages sent to `folder`. `[LIMIT]` on
/// APPEND is about the message (too large for the server): a refusal to skip. Throttling, a
/// daily limit reached and what refuses the whole folder are errors.
fn answered(
    host: &super::Peer,
    folder: &str,
    count: usize,
    ok: bool,
    code: Option<OwnedCode>,
    info: Option<String>,
) -> Result<Appended, ImapError> {
    if ok {
        return Ok(Appended::Stored(match code {
            Some(OwnedCode::AppendUid(uids)) if uids.len() == count => Some(uids),
            _ => None,
        }));
    }
    let text = info.unwrap_or_default();
    if matches!(
        refusal_kind(&text),
        ErrorKind::Throttled | ErrorKind::DailyLimit
    ) || refuses_folder(&text)
    {
        return Err(host.heard(refusal(
            format!("server {} refused APPEND to {folder:?}: {text}", host.name),
            &text,
        )));
    }
    Ok(Appended::Refused(text))
}

pub(super) enum OwnedCode {
    AppendUid(Vec<u32>),
}

/// Errors inside the raw APPEND path before they get the server's name.
pub(super) enum AppendIo {
    Io(io::Error),
    Closed,
    Refused(String),
}

impl From<io::Error> for AppendIo {
    fn from(e: io::Error) -> Self {
        AppendIo::Io(e)
    }
}

impl AppendIo {
    pub(super) fn into_error(self, host: &str) -> ImapError {
        match self {
            AppendIo::Io(e) => {
                ImapError::transient(format!("connection to {host} failed during APPEND: {e}"))
            }
            AppendIo::Closed => {
                ImapError::transient(format!("{host} closed the connection during APPEND"))
            }
            AppendIo::Refused(t) => refusal(format!("{host} refused APPEND: {t}"), &t),
        }
    }
}
