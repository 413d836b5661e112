//! Gmail's IMAP extensions (X-GM-EXT-1, developers.google.com/workspace/gmail/imap/
//! imap-extensions) as the copy uses them: each message's X-GM-MSGID (one id for a Gmail
//! message in every folder it shows in) and X-GM-LABELS.

use futures_util::TryStreamExt;

use super::wire::uid_set;
use super::{Imap, ImapError, timed};

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
        let host = self.host.clone();
        let fut = async {
            let stream = self
                .session
                .uid_fetch(uid_set, "(UID X-GM-MSGID X-GM-LABELS)")
                .await?;
            let fetches: Vec<_> = stream.try_collect().await?;
            Ok::<_, async_imap::error::Error>(fetches)
        };
        let fetches = timed(&host, "FETCH", fut).await?;
        let mut out: Vec<GmailMeta> = fetches
            .iter()
            .filter_map(|f| {
                Some(GmailMeta {
                    uid: f.uid?,
                    msgid: f.gmail_msg_id().copied(),
                    labels: f
                        .gmail_labels()
                        .map(|l| l.iter().map(|s| s.to_string()).collect())
                        .unwrap_or_default(),
                })
            })
            .collect();
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
