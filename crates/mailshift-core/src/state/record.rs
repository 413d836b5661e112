//! What the state store holds: records per resource, per migrated folder and per message.
//!
//! These are plain data (serde) so the store can version and migrate them; no secret ever
//! goes in here. The store (`state::store`) persists them in redb tables; `diff` reads
//! [`ResourceRecord`]s; the IMAP transfer reads and writes folder and message records.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where a resource's step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The step ran to completion; the fingerprint is what it applied.
    Done,
    /// The step was started and not finished (a crash, a Ctrl-C): resume it.
    InProgress,
    /// The step failed; `last_error` says why. The next apply retries it.
    Failed,
    /// A manual step that a person said they did (`mailshift ack`).
    Acknowledged,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Done => "done",
            Status::InProgress => "in-progress",
            Status::Failed => "failed",
            Status::Acknowledged => "acknowledged",
        }
    }

    /// Whether what the record describes exists on the target (as far as we know).
    pub fn is_applied(self) -> bool {
        matches!(self, Status::Done | Status::Acknowledged)
    }
}

/// One resource's last known step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceRecord {
    /// Resource kind, as `model::ResourceKind::as_str` spells it.
    pub kind: String,
    /// The account the resource belongs to, if any.
    #[serde(default)]
    pub account: Option<String>,
    /// Fingerprint of the spec that was applied (or attempted).
    pub fingerprint: String,
    /// Fingerprint of the fields that cannot change in place (a rename's target...).
    pub identity: String,
    pub status: Status,
    /// Human one-line description of what was applied; shown as "before" in diffs.
    pub summary: String,
    /// Values returned by the target (API ids, task ids), by name.
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
    #[serde(default)]
    pub last_error: Option<String>,
    /// For sync resources: the last sync point that completed.
    #[serde(default)]
    pub sync_point: Option<u64>,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    pub updated_at: u64,
}

/// Progress of one migrated folder of one sync resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FolderRecord {
    /// Destination folder name (as sent to the server).
    pub dest_folder: String,
    pub source_uidvalidity: u32,
    /// Highest source UID copied (or skipped on purpose).
    pub highest_uid: u32,
    /// Highest source MODSEQ whose flag changes were carried (CONDSTORE).
    #[serde(default)]
    pub highest_modseq: Option<u64>,
    pub dest_uidvalidity: u32,
    /// Destination UIDNEXT read just before the batch in flight; `None` when no batch is in flight.
    #[serde(default)]
    pub dest_uidnext_in_flight: Option<u32>,
    /// Source UIDNEXT and message count when the folder was last fully synced: when STATUS
    /// still says the same (and HIGHESTMODSEQ too), a no-op run skips the folder.
    #[serde(default)]
    pub source_uidnext: u32,
    #[serde(default)]
    pub source_messages: u32,
    /// Messages and bytes copied so far.
    pub messages: u64,
    pub bytes: u64,
    /// Unix seconds of the last completed batch.
    pub updated_at: u64,
}

/// One copied message: source UID → destination UID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MessageRecord {
    pub dest_uid: u32,
    /// SHA-256 of the message bytes as sent; all zeros when unknown (a message adopted from
    /// the destination on its header fingerprint alone, whose body was never fetched).
    pub hash: [u8; 32],
    pub size: u64,
    /// The sync point (numbered run) that copied it; 0 for a message adopted from the
    /// destination (it was there already: no run of ours copied it, so none may remove it).
    pub sync_point: u64,
    /// X-GM-MSGID of the source message when the source is Gmail; 0 when none.
    #[serde(default)]
    pub source_msgid: u64,
    /// X-GM-MSGID of the destination message when the destination is Gmail; 0 when none.
    #[serde(default)]
    pub dest_msgid: u64,
}

/// A source message the destination refused (a NO to its APPEND: too large for the server, a
/// line too long...). Kept so `verify` and `status` can name it, and so it is tried again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedRecord {
    /// The destination's words.
    pub reason: String,
    pub size: u64,
    /// How many runs it was refused in.
    pub attempts: u32,
    /// The sync point (numbered run) of the last refusal.
    pub sync_point: u64,
}
