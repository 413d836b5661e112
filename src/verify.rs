//! Verification: does each destination folder hold exactly what its source folders hold?
//!
//! Per destination folder, the multiset of content hashes of its source folders (with the
//! plan's size and date filters applied, so skipped messages are not "missing") is compared
//! with the destination's. Duplicates therefore count: two identical source messages must be
//! two destination messages. Nothing is written anywhere; both sides are opened read-only.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::plan::model::FolderRules;
use crate::transfer::imap::copy::{CopyOptions, CrlfHasher, LARGE_MESSAGE, content_hash};
use crate::transfer::imap::folders::map_folders;
use crate::transfer::imap::session::{Imap, ImapError, Target};

/// Bodies fetched per command while hashing: bounds memory on big mailboxes.
const CHUNK: usize = 50;
const SLICE: u64 = 4 * 1024 * 1024;

#[derive(Debug, Clone, Default, Serialize)]
pub struct FolderCheck {
    /// Destination folder (unicode path).
    pub folder: String,
    /// Source folders that land there.
    pub sources: Vec<String>,
    pub source_messages: u64,
    pub source_bytes: u64,
    pub dest_messages: u64,
    pub dest_bytes: u64,
    /// Source messages (by content) not on the destination.
    pub missing: u64,
    /// Destination messages (by content) not on the source.
    pub extra: u64,
}

impl FolderCheck {
    pub fn ok(&self) -> bool {
        self.missing == 0 && self.extra == 0
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AccountCheck {
    pub account: String,
    pub folders: Vec<FolderCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl AccountCheck {
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.folders.iter().all(FolderCheck::ok)
    }
}

struct Side {
    messages: u64,
    bytes: u64,
    hashes: HashMap<[u8; 32], i64>,
}

async fn hash_folder(
    imap: &mut Imap,
    name: &str,
    filter: Option<&CopyOptions>,
) -> Result<Side, ImapError> {
    let info = imap.open(name, false).await?;
    let mut side = Side {
        messages: 0,
        bytes: 0,
        hashes: HashMap::new(),
    };
    if info.exists == 0 {
        return Ok(side);
    }
    let metas = imap.fetch_meta("1:*", None).await?;
    // Large messages are hashed slice by slice, as apply copies them: memory stays bounded.
    let (large, metas): (Vec<_>, Vec<_>) = metas
        .into_iter()
        .partition(|m| u64::from(m.size) > LARGE_MESSAGE);
    for m in large
        .iter()
        .filter(|m| filter.is_none_or(|o| o.size_ok(m) && o.in_date_window(m)))
    {
        let mut hasher = CrlfHasher::default();
        let mut len = 0u64;
        loop {
            let Some(part) = imap.fetch_part(m.uid, len, SLICE).await? else {
                break;
            };
            hasher.update(&part);
            len += part.len() as u64;
            if (part.len() as u64) < SLICE {
                side.messages += 1;
                side.bytes += len;
                *side.hashes.entry(hasher.finish()).or_default() += 1;
                break;
            }
        }
    }
    let wanted: Vec<u32> = metas
        .iter()
        .filter(|m| filter.is_none_or(|o| o.size_ok(m) && o.in_date_window(m)))
        .map(|m| m.uid)
        .collect();
    for chunk in wanted.chunks(CHUNK) {
        for (_, body) in imap.fetch_bodies(chunk).await? {
            side.messages += 1;
            side.bytes += body.len() as u64;
            *side.hashes.entry(content_hash(&body)).or_default() += 1;
        }
    }
    Ok(side)
}

/// Compares one account's mailboxes. Connection problems are reported in `error`.
pub async fn verify_account(
    account: &str,
    source: &Target,
    dest: &Target,
    rules: &FolderRules,
    options: &CopyOptions,
) -> AccountCheck {
    match verify_inner(source, dest, rules, options).await {
        Ok(folders) => AccountCheck {
            account: account.to_string(),
            folders,
            error: None,
        },
        Err(e) => AccountCheck {
            account: account.to_string(),
            folders: Vec::new(),
            error: Some(e),
        },
    }
}

async fn verify_inner(
    source: &Target,
    dest: &Target,
    rules: &FolderRules,
    options: &CopyOptions,
) -> Result<Vec<FolderCheck>, String> {
    let mut src = Imap::connect(source).await.map_err(|e| e.to_string())?;
    let mut dst = Imap::connect(dest).await.map_err(|e| e.to_string())?;
    let sl = src.list().await.map_err(|e| e.to_string())?;
    let dl = dst.list().await.map_err(|e| e.to_string())?;
    let mapping = map_folders(&sl, &dl, rules).map_err(|e| e.to_string())?;
    let mut by_dest: BTreeMap<(String, String), Vec<(String, String)>> = BTreeMap::new();
    for f in &mapping.copy {
        by_dest
            .entry((f.dest_path.clone(), f.dest.clone()))
            .or_default()
            .push((f.path.clone(), f.source.clone()));
    }
    let existing: std::collections::HashSet<&str> = dl.iter().map(|f| f.name.as_str()).collect();
    let mut out = Vec::new();
    for ((dest_path, dest_raw), sources) in by_dest {
        let mut check = FolderCheck {
            folder: dest_path,
            sources: sources.iter().map(|(p, _)| p.clone()).collect(),
            ..FolderCheck::default()
        };
        let mut expected: HashMap<[u8; 32], i64> = HashMap::new();
        for (_, raw) in &sources {
            let side = hash_folder(&mut src, raw, Some(options))
                .await
                .map_err(|e| e.to_string())?;
            check.source_messages += side.messages;
            check.source_bytes += side.bytes;
            for (h, n) in side.hashes {
                *expected.entry(h).or_default() += n;
            }
        }
        if existing.contains(dest_raw.as_str()) {
            let side = hash_folder(&mut dst, &dest_raw, None)
                .await
                .map_err(|e| e.to_string())?;
            check.dest_messages = side.messages;
            check.dest_bytes = side.bytes;
            for (h, n) in side.hashes {
                *expected.entry(h).or_default() -= n;
            }
        }
        for n in expected.values() {
            if *n > 0 {
                check.missing += *n as u64;
            } else {
                check.extra += (-*n) as u64;
            }
        }
        out.push(check);
    }
    src.logout().await;
    dst.logout().await;
    Ok(out)
}
