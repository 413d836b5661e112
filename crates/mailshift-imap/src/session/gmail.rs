//! Gmail's IMAP extensions (X-GM-EXT-1, developers.google.com/workspace/gmail/imap/
//! imap-extensions) as the copy uses them: each message's X-GM-MSGID (one id for a Gmail
//! message in every folder it shows in) and X-GM-LABELS.

use super::wire::uid_set;
use super::{Imap, ImapError};

/// A message's Gmail identity and labels, as FETCH reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GmailMeta {
    pub uid: u32,
    pub msgid: Option<u64>,
    /// Labels as the server writes them: `\Inbox`, `\Sent`, `\Important`, `\Starred`,
    /// user labels by their folder names.
    pub labels: Vec<String>,
}

impl Imap {
    /// X-GM-MSGID and X-GM-LABELS of a UID set of the open folder, in UID order.
    pub async fn fetch_gmail(&mut self, uid_set: &str) -> Result<Vec<GmailMeta>, ImapError> {
        // Read by hand (`uid_fetch_raw`): a throttling NO or BAD must be an error, not an
        // empty answer that would make every message look label-less.
        let mut out = Vec::new();
        self.uid_fetch_raw(uid_set, "(UID X-GM-MSGID X-GM-LABELS)", |f| {
            if let Some(uid) = f.uid {
                out.push(GmailMeta {
                    uid,
                    msgid: f.gmail_msgid,
                    labels: f.gmail_labels,
                });
            }
        })
        .await?;
        out.sort_by_key(|m| m.uid);
        out.dedup_by_key(|m| m.uid);
        Ok(out)
    }

    /// X-GM-MSGIDs of the given UIDs of the open folder (messages gone are absent).
    pub async fn gmail_ids(&mut self, uids: &[u32]) -> Result<Vec<(u32, u64)>, ImapError> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .fetch_gmail(&uid_set(uids))
            .await?
            .into_iter()
            .filter_map(|m| Some((m.uid, m.msgid?)))
            .collect())
    }
}
