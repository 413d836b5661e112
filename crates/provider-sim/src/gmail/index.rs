//! The Gmail view of a Dovecot account: which physical copies make one Gmail message, its
//! X-GM-MSGID and its labels, read in one FETCH over the virtual All Mail (Dovecot's
//! `X-MAILBOX` and `X-REAL-UID` name each copy's folder and UID there).

use std::collections::{BTreeSet, HashMap};
use std::io;

use super::backend::Backend;
use super::wire::{self, Tok};
use super::{VIRTUAL_ALL, mailbox_label, msgid};

/// One physical copy seen through the virtual All Mail.
#[derive(Debug, Clone)]
pub(super) struct Copy {
    /// Its UID in the virtual All Mail.
    pub vuid: u32,
    /// The physical folder holding it.
    pub mailbox: String,
    pub real_uid: u32,
    pub flags: Vec<String>,
    /// What makes copies one Gmail message: the Message-ID, else the copy itself.
    pub key: String,
}

/// Every copy in All Mail, and what they make as Gmail messages.
#[derive(Debug, Clone, Default)]
pub(super) struct Index {
    pub uidvalidity: u32,
    pub copies: Vec<Copy>,
    by_key: HashMap<String, Vec<usize>>,
    by_vuid: HashMap<u32, usize>,
}

/// The key of a message with this Message-ID (or none: then its own copy).
pub(super) fn key(message_id: Option<&str>, mailbox: &str, uid: u32) -> String {
    match message_id {
        Some(id) => format!("mid:{id}"),
        None => format!("copy:{mailbox}\0{uid}"),
    }
}

impl Index {
    /// Reads the index on a side connection.
    pub async fn read(side: &mut Backend) -> io::Result<Index> {
        let uidvalidity = side.select(VIRTUAL_ALL).await?;
        let rows = side
            .fetch(
                "1:*",
                "(UID FLAGS X-MAILBOX X-REAL-UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])",
            )
            .await?;
        let mut index = Index {
            uidvalidity,
            ..Index::default()
        };
        for row in rows {
            let (Some(vuid), Some(mailbox), Some(real_uid)) = (
                row.uid(),
                row.items.get("X-MAILBOX").map(Tok::text_lossy),
                row.num("X-REAL-UID"),
            ) else {
                continue;
            };
            let mid = row.text_of("BODY[HEADER.FIELDS").and_then(wire::message_id);
            let flags = match row.items.get("FLAGS") {
                Some(Tok::List(f)) => f.iter().map(Tok::text_lossy).collect(),
                _ => Vec::new(),
            };
            let key = key(mid.as_deref(), &mailbox, real_uid as u32);
            index.push(Copy {
                vuid,
                mailbox,
                real_uid: real_uid as u32,
                flags,
                key,
            });
        }
        Ok(index)
    }

    /// Only the copies of the message with this Message-ID (a SEARCH, not a whole read):
    /// what an APPEND needs to know.
    pub async fn read_one(side: &mut Backend, message_id: &str) -> io::Result<Index> {
        let uidvalidity = side.select(VIRTUAL_ALL).await?;
        let mut index = Index {
            uidvalidity,
            ..Index::default()
        };
        let found = side
            .search(&[
                Tok::atom("HEADER"),
                Tok::atom("Message-ID"),
                Tok::string(message_id.as_bytes()),
            ])
            .await?;
        if found.is_empty() {
            return Ok(index);
        }
        let set = found
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let rows = side
            .fetch(
                &set,
                "(UID FLAGS X-MAILBOX X-REAL-UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])",
            )
            .await?;
        for row in rows {
            let (Some(vuid), Some(mailbox), Some(real_uid)) = (
                row.uid(),
                row.items.get("X-MAILBOX").map(Tok::text_lossy),
                row.num("X-REAL-UID"),
            ) else {
                continue;
            };
            // SEARCH HEADER matches substrings: keep the exact Message-ID only.
            let mid = row.text_of("BODY[HEADER.FIELDS").and_then(wire::message_id);
            if mid.as_deref() != Some(message_id) {
                continue;
            }
            let flags = match row.items.get("FLAGS") {
                Some(Tok::List(f)) => f.iter().map(Tok::text_lossy).collect(),
                _ => Vec::new(),
            };
            index.push(Copy {
                vuid,
                mailbox,
                real_uid: real_uid as u32,
                flags,
                key: key(Some(message_id), "", 0),
            });
        }
        Ok(index)
    }

    fn push(&mut self, c: Copy) {
        let i = self.copies.len();
        self.by_key.entry(c.key.clone()).or_default().push(i);
        self.by_vuid.insert(c.vuid, i);
        self.copies.push(c);
    }

    pub fn by_vuid(&self, vuid: u32) -> Option<&Copy> {
        self.by_vuid.get(&vuid).map(|&i| &self.copies[i])
    }

    /// The copies of one Gmail message.
    pub fn holders(&self, key: &str) -> Vec<&Copy> {
        self.by_key
            .get(key)
            .map(|v| v.iter().map(|&i| &self.copies[i]).collect())
            .unwrap_or_default()
    }

    /// The copy All Mail shows for a message: its lowest virtual UID.
    pub fn canonical(&self, key: &str) -> Option<u32> {
        self.holders(key).iter().map(|c| c.vuid).min()
    }

    /// X-GM-LABELS of a message: its folders' labels, and `\Starred` when flagged.
    pub fn labels(&self, key: &str, extra_flags: &[String]) -> Vec<String> {
        let holders = self.holders(key);
        let mut out: BTreeSet<String> = holders
            .iter()
            .filter_map(|c| mailbox_label(&c.mailbox))
            .collect();
        let flagged = holders
            .iter()
            .flat_map(|c| c.flags.iter())
            .chain(extra_flags)
            .any(|f| f.eq_ignore_ascii_case("\\Flagged"));
        if flagged {
            out.insert("\\Starred".to_string());
        }
        out.into_iter().collect()
    }

    /// Every Gmail message: (key, its copies).
    pub fn messages(&self) -> Vec<(&str, Vec<&Copy>)> {
        let mut keys: Vec<&String> = self.by_key.keys().collect();
        keys.sort();
        keys.into_iter()
            .map(|k| (k.as_str(), self.holders(k)))
            .collect()
    }
}

/// X-GM-MSGID of a key.
pub(super) fn key_msgid(key: &str) -> u64 {
    msgid(key)
}
