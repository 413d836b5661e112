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
        self.next_tag += 1;
        let tag = format!("MS{}", self.next_tag);
        let literal_plus = self.caps.literal_plus;
        let host = self.host.clone();
        let total: u64 = msgs.iter().map(|m| m.body.len()).sum();
        // A generous allowance: 1 MB/s at worst on top of the base timeout.
        let budget = host.timeout + Duration::from_secs(total / 1_000_000);
        let fut = async {
            let mut head = format!("{tag} APPEND ").into_bytes();
            match names::encode(folder.as_bytes()) {
                Encoded::Quoted(q) => head.extend_from_slice(&q),
                Encoded::Literal(bytes) => {
                    head.extend(names::literal_head(bytes.len(), literal_plus));
                    let stream = self.session.get_mut();
                    stream.write_all(&head).await?;
                    if !literal_plus {
                        stream.flush().await?;
                        self.wait_continuation(&tag).await?;
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
                    self.wait_continuation(&tag).await?;
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
            self.session.get_mut().flush().await?;
            self.read_tagged(&tag).await
        };
        let answer = tokio::time::timeout(budget, fut)
            .await
            .map_err(|_| ImapError::transient(format!("APPEND to {host} timed out")))?;
        let (ok, code, info) = match answer {
            Ok(a) => a,
            Err(AppendIo::Refused(text)) => (false, None, Some(text)),
            Err(e) => return Err(e.into_error(&host)),
        };
        if ok {
            return Ok(Appended::Stored(match code {
                Some(OwnedCode::AppendUid(uids)) if uids.len() == msgs.len() => Some(uids),
                _ => None,
            }));
        }
        let text = info.unwrap_or_default();
        // `[LIMIT]` on APPEND is about this message (too large for the server): a refusal to
        // skip. Throttling, a daily limit reached and what refuses the whole folder are errors.
        if matches!(
            refusal_kind(&text),
            ErrorKind::Throttled | ErrorKind::DailyLimit
        ) || refuses_folder(&text)
        {
            return Err(refusal(
                format!("server {host} refused APPEND to {folder:?}: {text}"),
                &text,
            ));
        }
        Ok(Appended::Refused(text))
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

    pub(super) async fn read_tagged(
        &mut self,
        tag: &str,
    ) -> Result<(bool, Option<OwnedCode>, Option<String>), AppendIo> {
        loop {
            let resp = self
                .session
                .read_response()
                .await?
                .ok_or(AppendIo::Closed)?;
            if let Response::Done {
                tag: t,
                status,
                outcome,
            } = resp.parsed()
                && t.0 == tag
            {
                let information = &outcome.information;
                let code = match &outcome.code {
                    Some(ResponseCode::AppendUid(_, set)) => {
                        Some(OwnedCode::AppendUid(expand_uid_set(set)))
                    }
                    _ => None,
                };
                return Ok((
                    matches!(status, Status::Ok),
                    code,
                    information.as_ref().map(|s| s.to_string()),
                ));
            }
        }
    }
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
