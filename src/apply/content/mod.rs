//! Content engines: what the executor asks of the engine that moves one kind of content (mail
//! through the IMAP engine; contacts, calendars and tasks through the CardDAV/CalDAV and files
//! engine; inbox rules through ManageSieve), and the one place that says which engine moves which kind ([`engine`]).
//!
//! The executor owns the step around a copy (the record that says it started, the sync point,
//! the outcome and the record that says how it ended); an engine owns the copy itself and its
//! per-item records, which it keeps in the state through a journal of its own. An engine is
//! asked in two moves: [`ContentSync::prepare`] reads both sides' endpoints and secrets (a
//! secret that cannot be read fails the step before it is marked as started), then the
//! [`Prepared`] sides copy ([`Prepared::sync`]: everything on the first run, what changed since
//! on the next ones), compare ([`Prepared::verify`]) and measure ([`Prepared::size`]).

pub mod dav;
mod mail;
pub use mail::budget_lines;
mod mail_files;
mod mail_pop3;
pub mod rules;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::Hooks;
use crate::error::{ErrorKind, StepError};
use crate::model::{AccountSpec, ResourceKind};
use crate::plan::Loaded;
use crate::state::{StateReader, StateStore};
use crate::transfer::imap::copy::{CopyReport, StopFlag};
use crate::verify::AccountCheck;

/// An engine's answer, later.
pub type ContentResult<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The one registration point: the engine that moves each kind of content, if this version has
/// one.
pub fn engine(kind: ResourceKind) -> Option<&'static dyn ContentSync> {
    match kind {
        ResourceKind::Mail => Some(&mail::MailSync),
        ResourceKind::Contacts => Some(&dav::DavSync(ResourceKind::Contacts)),
        ResourceKind::Calendars => Some(&dav::DavSync(ResourceKind::Calendars)),
        ResourceKind::Tasks => Some(&dav::DavSync(ResourceKind::Tasks)),
        ResourceKind::Rules => Some(&rules::RulesSync),
        _ => None,
    }
}

/// An engine that moves one kind of content between the two sides of an account.
pub trait ContentSync: Send + Sync {
    /// Both sides of the account, ready: endpoints resolved, secrets read now (never stored).
    fn prepare(
        &self,
        account: &AccountSpec,
        loaded: &Loaded,
    ) -> Result<Box<dyn Prepared>, StepError>;
}

/// Both sides of one account, as an engine reaches them.
pub trait Prepared: Send + Sync {
    /// Copies what the destination lacks and carries the source's changes since the last run.
    /// Items given up on are reported in [`Synced::failed`], not as an error: what was copied
    /// stays recorded and the next run retries only what is missing.
    fn sync<'a>(&'a self, run: SyncRun<'a>) -> ContentResult<'a, Result<Synced, StepError>>;

    /// Compares both sides now. With `state`, items the destination refused (recorded by the
    /// copy) are reported as skipped; without, they count as missing (before a source is
    /// reset, nothing may be missing). A side that cannot be reached is reported in the
    /// [`Checked`]; the error is for a state that cannot be read.
    fn verify<'a>(
        &'a self,
        state: Option<&'a StateReader>,
        list_limit: usize,
    ) -> ContentResult<'a, Result<Checked, StepError>>;

    /// What the source holds, in bytes: what a destination with a per-account limit would
    /// have to take.
    fn size(&self) -> ContentResult<'_, Result<u64, StepError>>;

    /// What the next sync would find that the plan alone cannot tell (`plan --refresh`): items
    /// the destination holds already, items that will move (one line each), and where the
    /// engine can measure it cheaply, the copy's size. `state` has the copy's records, under
    /// the resource's key `id`.
    fn preview<'a>(
        &'a self,
        state: &'a StateReader,
        id: &'a str,
    ) -> ContentResult<'a, Result<Preview, StepError>>;

    /// The copy's size from its source alone, for a copy whose destination account does not
    /// exist yet (`plan --refresh` before the account is created); `None` when the engine
    /// cannot tell without both sides.
    fn size_source<'a>(
        &'a self,
        _state: &'a StateReader,
        _id: &'a str,
    ) -> ContentResult<'a, Result<Option<Size>, StepError>> {
        Box::pin(async { Ok(None) })
    }
}

/// What `plan --refresh` learnt of a pending copy.
#[derive(Debug, Clone, Default)]
pub struct Preview {
    /// Sentences for the step's reason.
    pub lines: Vec<String>,
    /// The copy's size, when the engine measured it.
    pub size: Option<Size>,
}

impl From<Vec<String>> for Preview {
    fn from(lines: Vec<String>) -> Preview {
        Preview { lines, size: None }
    }
}

/// What a copy has to move, measured on its source before it runs (`apply::sizing` turns it
/// into the quota check and the estimate).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Size {
    /// What an item is ("message", "mail file").
    pub unit: &'static str,
    /// Items (and bytes) of the source the copy takes, after the plan's rules and options.
    pub items: u64,
    pub bytes: u64,
    /// Of those, what no earlier run copied: what the next run moves.
    pub to_move_items: u64,
    pub to_move_bytes: u64,
    /// How the source was measured, for people ("UID FETCH RFC822.SIZE").
    pub method: &'static str,
    /// The destination's storage quota as its server reports it, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dest_quota: Option<ReportedQuota>,
}

/// The storage quota of a destination mailbox, from GETQUOTAROOT INBOX (for engines whose
/// own look does not log in there already).
pub(super) async fn dest_quota(
    dest: &crate::transfer::imap::session::Target,
) -> Result<Option<ReportedQuota>, StepError> {
    use crate::apply::imap_adapter::IntoStepError;
    let ctx =
        |e: crate::transfer::imap::session::ImapError| e.into_step_error().context("destination");
    let mut imap = crate::transfer::imap::session::Imap::connect(dest)
        .await
        .map_err(ctx)?;
    let quota = imap.storage_quota("INBOX").await.map_err(ctx)?;
    imap.logout().await;
    Ok(quota.map(|(used, limit)| ReportedQuota { used, limit }))
}

/// A storage quota a server reported (GETQUOTAROOT, RFC 9208).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReportedQuota {
    pub used: u64,
    pub limit: u64,
}

/// What the executor hands an engine for one run of a copy.
pub struct SyncRun<'a> {
    /// The resource's state key (`account/alice@example.com/mail`): the engine's journal is
    /// bound to it.
    pub id: &'a str,
    pub store: &'a Arc<StateStore>,
    /// Where large items wait between source and destination.
    pub spool_dir: std::path::PathBuf,
    /// This run's sync point: every item copied now is tagged with it.
    pub sync_point: u64,
    /// False when the last run finished with the same settings: the engine may then read
    /// only what is newer than what it recorded.
    pub full_scan: bool,
    /// How long to keep retrying a refused login (an account just created or renamed).
    pub login_grace: Duration,
    pub hooks: Arc<dyn Hooks>,
    pub stop: StopFlag,
    /// The IMAP servers' connection budgets, shared by every account of the run.
    pub connections: &'a Arc<crate::transfer::imap::broker::Broker>,
}

/// What a copy did.
pub struct Synced {
    /// What was copied, for people ("5 messages (5.0 KB) copied, 2 adopted").
    pub summary: String,
    /// Items copied by this run (the record's `last_copied` output).
    pub copied: u64,
    /// The parts of the account given up on in this run, if any.
    pub failed: Option<FailedParts>,
    /// The copy stopped at a platform's daily limit: recorded in the state, the account waits
    /// until then.
    pub paused: Option<crate::state::PauseRecord>,
    /// Outputs the engine keeps in the step's record (the rules copy's ids of what it wrote),
    /// set over those of the last run.
    pub outputs: std::collections::BTreeMap<String, String>,
    /// The engine's own report, for the apply report's details.
    pub report: ContentReport,
}

/// The parts of an account (folders, collections) a copy gave up on.
pub struct FailedParts {
    /// For the state's record: each part with its reason.
    pub detail: String,
    /// For the step's outcome: the parts' names.
    pub names: Vec<String>,
    /// What a part is called, singular ("folder").
    pub unit: &'static str,
    /// Of several failures, the one whose retry is most eager: it decides when to try again.
    pub kind: ErrorKind,
    /// The longest pause a throttling server asked for, if it said.
    pub retry_after: Option<Duration>,
}

/// An engine's own report of a copy.
pub enum ContentReport {
    Mail(CopyReport),
    Dav(dav::DavCopy),
    Rules(rules::RulesCopy),
}

/// An engine's comparison of both sides.
pub enum Checked {
    Mail(AccountCheck),
    Dav(dav::DavCheck),
    Rules(rules::RulesCheck),
}

impl Checked {
    /// Source items not on the destination (refusals included unless the state was given).
    pub fn missing(&self) -> u64 {
        match self {
            Checked::Mail(c) => c
                .folders
                .iter()
                .map(crate::verify::FolderCheck::not_on_destination)
                .sum(),
            // Refusals are counted apart by the engine: add them back when the state was not
            // given, as for mail (see `verify`).
            Checked::Dav(c) => c
                .check
                .collections
                .iter()
                .map(|c| c.missing_count + c.skipped_count)
                .sum(),
            Checked::Rules(c) => c.missing.len() as u64,
        }
    }

    /// Why the sides could not be compared, if they could not.
    pub fn error(&self) -> Option<&str> {
        match self {
            Checked::Mail(c) => c.error.as_deref(),
            Checked::Dav(c) => c
                .check
                .error
                .as_deref()
                .or_else(|| c.check.collections.iter().find_map(|c| c.error.as_deref())),
            Checked::Rules(c) => c.error.as_deref(),
        }
    }
}
