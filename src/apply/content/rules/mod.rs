//! Inbox rules (`content: [..., rules]`): the source's rules read from one end into the rule
//! model (`crate::rules`), written to the destination's end, made to run after whatever the
//! destination already runs.
//!
//! **Ends.** Each platform's rules are reached through one end, a file here:
//! - [`sieve`]: a ManageSieve server (IMAP platforms with `sieve:`); the source's active
//!   script, and a destination script `mailshift` run beside the destination's own;
//! - [`ews`]: Exchange's inbox rules through EWS (`exchange`, `ovh-exchange` with `ews:`),
//!   reached as contacts are (`ews.url`, the OVHcloud service's host, Autodiscover);
//! - [`graph`]: Microsoft 365's message rules through Microsoft Graph (the account's `oauth2`);
//! - [`mxplan`]: a legacy MX Plan account's filters through the OVHcloud API (the platform's
//!   `provider`).
//!
//! The Exchange-like ends hold a list of rules with ids, and share one way of writing them
//! ([`listed`]): an end implements [`listed::RuleList`] (read the rules with their ids, say
//! how a rule reads back once written, delete and create; reading a source comes with it).
//! **A new end** is one file implementing [`listed::RuleList`] plus
//! one variant of [`End`], chosen in [`End::of`], whose arm in [`End::read`],
//! [`Sides::write`], [`Sides::compare`] and [`Sides::fit`] is a one-line call into
//! [`listed`]: the algorithm, the records, the manual steps and `verify` come with it.
//!
//! **Exactly once.** A Sieve destination needs no records of its own: its script `mailshift`
//! is the state (see [`sieve`]). A list destination keeps, in the step record's output
//! [`WRITTEN`], the id and fingerprint of each rule mailshift wrote; a rule there equal to a
//! source rule (as the destination reads it back) is adopted instead of written again, so a
//! run cut after its write, or one whose state was deleted, adds nothing; a second apply
//! writes nothing; rules mailshift wrote that the source no longer has are removed; the
//! destination's own rules (and one of ours that a person edited since) are kept, and the
//! source's are added after them.
//!
//! `verify` compares the rules themselves: the source's, as the destination would hold them,
//! against those of the destination.
//!
//! What cannot be carried (a part of the source's rules outside the model, a rule the
//! destination cannot hold) is never dropped: the step ends as a conflict that names each one
//! with its text and the reason. Once a person has carried them by hand, `mailshift ack PLAN
//! ID` records that list as done (its [`conflict_key`] under the record's [`ACKNOWLEDGED`]
//! output), and the next run completes the step while the list stays the same; a new or
//! changed one fails it again.

mod ews;
mod graph;
pub(crate) mod listed;
mod mxplan;
mod sieve;

use std::collections::BTreeMap;

use self::listed::RuleList;
use super::{
    Checked, ContentReport, ContentResult, ContentSync, FailedParts, Prepared, Preview, SyncRun,
    Synced,
};
use crate::apply::content::dav::{Groupware, groupware_end};
use crate::apply::imap_adapter::sieve_target;
use crate::error::{ErrorKind, StepError};
use crate::model::{AccountSpec, dest_login, source_login};
use crate::plan::Loaded;
use crate::plan::diagnostic::plural;
use crate::plan::model::{Credentials, MigrationOptions, Platform};
use crate::rules::{Action, Translated, Untranslatable};
use crate::state::StateReader;
use crate::transfer::imap::session::Target;

pub use sieve::{COMBINED, SCRIPT};

/// The record's output holding the [`conflict_key`] of what a person carried by hand.
pub const ACKNOWLEDGED: &str = "rules_carried_by_hand";
/// The record's output listing the rules mailshift wrote on a list destination (EWS, Graph):
/// JSON, `[{"id": …, "fingerprint": …}]`.
pub const WRITTEN: &str = "rules_written";

/// How a conflict's detail (the record's `last_error`) begins: what `mailshift ack` looks for.
const BY_HAND: &str = " to carry by hand: ";

/// Whether a record's `last_error` is a list of rules to carry by hand (not a failure to reach
/// a server).
pub fn is_conflict(last_error: &str) -> bool {
    last_error.contains(BY_HAND)
}

/// What identifies a list of rules carried by hand.
pub fn conflict_key(detail: &str) -> String {
    crate::model::fingerprint(&detail)
}

pub(super) struct RulesSync;

impl ContentSync for RulesSync {
    fn prepare(
        &self,
        account: &AccountSpec,
        loaded: &Loaded,
    ) -> Result<Box<dyn Prepared>, StepError> {
        let a = &account.account;
        let source = End::of(
            &a.from,
            loaded,
            &account.source,
            &a.source,
            source_login(a),
            &account.address,
            &account.options,
        )
        .map_err(|e| StepError::config(format!("source: {e}")))?;
        let dest = End::of(
            &a.to,
            loaded,
            &account.dest,
            &a.destination,
            dest_login(a),
            &account.address,
            &account.options,
        )
        .map_err(|e| StepError::config(format!("destination: {e}")))?;
        Ok(Box::new(Sides {
            address: account.address.clone(),
            source,
            dest,
            folder_map: a
                .folders
                .as_ref()
                .map(|f| f.map.clone().into_iter().collect())
                .unwrap_or_default(),
        }))
    }
}

/// Where one side's rules are, as the plan says to reach them; connected when used.
enum End {
    /// The ManageSieve server, and the IMAP server that tells which hierarchy separator the
    /// mailbox names in its `fileinto`s use (when the plan gives one).
    Sieve(Box<Target>, Option<Box<Target>>),
    Ews(Box<mailshift_ews::EwsConfig>),
    Graph(Box<mailshift_graph::GraphConfig>),
    MxPlan(Box<mxplan::MxPlanEnd>),
}

impl End {
    /// The end of a side (`name` its platform's key): its `sieve:` when it has one, a legacy
    /// MX Plan's filters, else its Exchange groupware.
    fn of(
        name: &str,
        loaded: &Loaded,
        platform: &Platform,
        creds: &Credentials,
        login: String,
        address: &str,
        options: &MigrationOptions,
    ) -> Result<End, String> {
        if platform.sieve.is_some() {
            let imap = crate::apply::imap_adapter::target(loaded, platform, creds, login.clone());
            return sieve_target(loaded, platform, creds, login)
                .map(|t| End::Sieve(Box::new(t), imap.ok().map(Box::new)));
        }
        if platform.kind == crate::plan::model::PlatformKind::OvhMxPlan {
            return match crate::model::capabilities::mx_plan_api(platform) {
                crate::plan::model::MxPlanApi::Legacy => {
                    mxplan::MxPlanEnd::of(name, platform, loaded, &login)
                        .map(|e| End::MxPlan(Box::new(e)))
                }
                crate::plan::model::MxPlanApi::Mxplan => Err(format!(
                    "platform `{name}` is on the newer MX Plan API, whose inbox rules are in the mailbox (Outlook on the web), which mailshift cannot reach"
                )),
            };
        }
        match groupware_end(loaded, platform, creds, login, address, options)? {
            Some(Groupware::Ews(config)) => Ok(End::Ews(config)),
            Some(Groupware::Graph(config)) => Ok(End::Graph(config)),
            None => Err(format!(
                "platform kind {} has no end mailshift reads or writes inbox rules through",
                platform.kind.as_str()
            )),
        }
    }

    /// The rules of this side, as a source gives them.
    async fn read(&self) -> Result<Translated, StepError> {
        match self {
            End::Sieve(target, _) => sieve::read(target).await,
            End::Ews(config) => ews::EwsRules::open(config).await?.read().await,
            End::Graph(config) => graph::GraphRules::open(config)?.read().await,
            End::MxPlan(end) => end.open().read().await,
        }
    }

    /// How this side's rules are named for people.
    fn noun(&self) -> &'static str {
        match self {
            End::Sieve(..) => "the destination's Sieve script \"mailshift\"",
            End::Ews(_) => "Exchange inbox rules",
            End::Graph(_) => "Microsoft 365 message rules",
            End::MxPlan(_) => "MX Plan filters",
        }
    }
}

struct Sides {
    address: String,
    source: End,
    dest: End,
    /// The account's `folders.map`: a rule filing into a mapped folder files into its new name.
    folder_map: BTreeMap<String, String>,
}

/// What a run of the rules copy did, for the apply report.
#[derive(Debug, Clone, Default)]
pub struct RulesCopy {
    pub account: String,
    /// Rules read from the source and written (or found already written).
    pub rules: usize,
    /// Whether this run wrote to the destination.
    pub written: bool,
    /// The script this run made active on the destination, if it changed which one is.
    pub activated: Option<String>,
    /// What could not be carried: each shown, with its reason, as a manual step.
    pub untranslatable: Vec<Untranslatable>,
    /// What people should know of this run's write (said once, in the summary).
    pub notes: Vec<String>,
}

/// `verify`'s comparison of an account's rules: the source's, as the destination would hold
/// them, against the destination's.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RulesCheck {
    pub account: String,
    /// Rules of the source that the destination can hold.
    pub source_rules: usize,
    /// Of those, the ones the destination does not hold as they are (one line each).
    pub missing: Vec<String>,
    /// Rules of the destination's script `mailshift` that the source does not have (any
    /// more); a list destination's own rules are not counted.
    pub extra: Vec<String>,
    /// Whether the destination runs them (a Sieve script active itself, or through the
    /// combined one; a list's rules always run).
    pub active: bool,
    /// Parts of the source that cannot be carried: shown by `apply`, not compared.
    pub untranslatable: usize,
    /// Why the sides could not be compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RulesCheck {
    pub fn unreachable(account: &str, error: String) -> RulesCheck {
        RulesCheck {
            account: account.to_string(),
            error: Some(error),
            ..RulesCheck::default()
        }
    }

    pub fn equal(&self) -> bool {
        self.error.is_none()
            && self.missing.is_empty()
            && self.extra.is_empty()
            && (self.active || self.source_rules == 0)
    }
}

impl Sides {
    /// The source's rules, their folders renamed by `folders.map`.
    async fn read_source(&self) -> Result<Translated, StepError> {
        let mut translated = self.source.read().await.map_err(|e| e.context("source"))?;
        for rule in &mut translated.rules {
            for action in &mut rule.actions {
                if let Action::MoveTo(folder) = action
                    && let Some(to) = self.folder_map.get(folder.as_str())
                {
                    *folder = to.clone();
                }
            }
        }
        // Between a Sieve end and another kind, folder paths change separator: a `fileinto`
        // names a mailbox with its server's separator, EWS and Graph paths use `/`.
        let files = translated
            .rules
            .iter()
            .any(|r| r.actions.iter().any(|a| matches!(a, Action::MoveTo(_))));
        let (from, to) = match (&self.source, &self.dest) {
            (End::Sieve(_, imap), End::Ews(_) | End::Graph(_)) if files => (
                separator(imap.as_deref())
                    .await
                    .map_err(|e| e.context("source"))?,
                '/',
            ),
            (End::Ews(_) | End::Graph(_), End::Sieve(_, imap)) if files => (
                '/',
                separator(imap.as_deref())
                    .await
                    .map_err(|e| e.context("destination"))?,
            ),
            _ => ('/', '/'),
        };
        if from != to {
            for rule in &mut translated.rules {
                for action in &mut rule.actions {
                    if let Action::MoveTo(folder) = action {
                        *folder = resep(folder, from, to);
                    }
                }
            }
        }
        Ok(translated)
    }

    /// Writes `source` to the destination; the outputs to keep in the step record.
    async fn write(
        &self,
        source: Translated,
        recorded: Vec<listed::Written>,
    ) -> Result<(RulesCopy, Option<Vec<listed::Written>>), StepError> {
        let (mut report, written) = match &self.dest {
            End::Sieve(target, _) => (sieve::write(target, source.rules).await?, None),
            End::Ews(config) => {
                let mut end = ews::EwsRules::open(config).await?;
                let (r, w) = listed::sync(&mut end, source.rules, &recorded).await?;
                (r, Some(w))
            }
            End::Graph(config) => {
                let mut end = graph::GraphRules::open(config)?;
                let (r, w) = listed::sync(&mut end, source.rules, &recorded).await?;
                (r, Some(w))
            }
            End::MxPlan(end) => {
                let (r, w) = listed::sync(&mut end.open(), source.rules, &recorded).await?;
                (r, Some(w))
            }
        };
        report.account = self.address.clone();
        // What the source itself could not give comes first, in its order.
        let mut untranslatable = source.untranslatable;
        untranslatable.append(&mut report.untranslatable);
        report.untranslatable = untranslatable;
        Ok((report, written))
    }

    /// Both sides' rules now, as `verify` shows them.
    async fn compare(&self) -> Result<RulesCheck, StepError> {
        let source = self.read_source().await?;
        let mut check = match &self.dest {
            End::Sieve(target, _) => sieve::compare(target, source.rules).await?,
            End::Ews(config) => {
                listed::compare(&mut ews::EwsRules::open(config).await?, source.rules).await?
            }
            End::Graph(config) => {
                listed::compare(&mut graph::GraphRules::open(config)?, source.rules).await?
            }
            End::MxPlan(end) => listed::compare(&mut end.open(), source.rules).await?,
        };
        check.account = self.address.clone();
        check.untranslatable += source.untranslatable.len();
        Ok(check)
    }

    /// How many of `source`'s rules the destination can hold, and those it cannot.
    fn fit(&self, source: Translated) -> (usize, Vec<Untranslatable>) {
        let mut untranslatable = source.untranslatable;
        let left = match &self.dest {
            End::Sieve(..) => crate::rules::sieve::to_sieve(&source.rules).1,
            End::Ews(_) => listed::fit::<ews::EwsRules>(&source.rules),
            End::Graph(_) => listed::fit::<graph::GraphRules>(&source.rules),
            End::MxPlan(_) => listed::fit::<mxplan::MxPlanRules>(&source.rules),
        };
        let count = source.rules.len() - left.len();
        untranslatable.extend(left);
        (count, untranslatable)
    }
}

/// The hierarchy separator of an IMAP server (its INBOX's, else the first folder's); `/`
/// when the plan gives no IMAP server or the server names none.
async fn separator(imap: Option<&Target>) -> Result<char, StepError> {
    use crate::apply::imap_adapter::IntoStepError;
    let Some(target) = imap else {
        return Ok('/');
    };
    let mut session = crate::transfer::imap::session::Imap::connect(target)
        .await
        .map_err(|e| e.into_step_error())?;
    let folders = session.list().await.map_err(|e| e.into_step_error())?;
    session.logout().await;
    Ok(folders
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case("INBOX"))
        .or(folders.first())
        .and_then(|f| f.delimiter)
        .unwrap_or('/'))
}

/// A folder path with separator `from` written with `to`. A level whose name holds `to`
/// itself reads as two levels on the other side (rare, and not told apart here).
fn resep(path: &str, from: char, to: char) -> String {
    path.split(from).collect::<Vec<_>>().join(&to.to_string())
}

impl Prepared for Sides {
    fn sync<'a>(&'a self, run: SyncRun<'a>) -> ContentResult<'a, Result<Synced, StepError>> {
        Box::pin(async move {
            let record = run.store.resource(run.id).map_err(StepError::from)?;
            let acknowledged = record
                .as_ref()
                .and_then(|r| r.outputs.get(ACKNOWLEDGED).cloned());
            let recorded: Vec<listed::Written> = record
                .as_ref()
                .and_then(|r| r.outputs.get(WRITTEN))
                .and_then(|w| serde_json::from_str(w).ok())
                .unwrap_or_default();
            let source = self.read_source().await?;
            let (report, written) = self
                .write(source, recorded)
                .await
                .map_err(|e| e.context("destination"))?;
            let mut synced = synced(report, acknowledged.as_deref());
            if let Some(written) = written {
                synced.outputs.insert(
                    WRITTEN.to_string(),
                    serde_json::to_string(&written).unwrap_or_default(),
                );
            }
            Ok(synced)
        })
    }

    fn verify<'a>(
        &'a self,
        _state: Option<&'a StateReader>,
        _list_limit: usize,
    ) -> ContentResult<'a, Result<Checked, StepError>> {
        Box::pin(async move {
            let check = match self.compare().await {
                Ok(c) => c,
                Err(e) => RulesCheck::unreachable(&self.address, e.message),
            };
            Ok(Checked::Rules(check))
        })
    }

    fn size(&self) -> ContentResult<'_, Result<u64, StepError>> {
        // A few hundred bytes of rules: nothing a quota notices.
        Box::pin(async { Ok(0) })
    }

    fn preview<'a>(
        &'a self,
        _state: &'a StateReader,
        _id: &'a str,
    ) -> ContentResult<'a, Result<Preview, StepError>> {
        Box::pin(async move {
            let (count, untranslatable) = self.fit(self.read_source().await?);
            let mut lines = vec![format!(
                "{} on the source to write as {}",
                plural(count, "rule"),
                self.dest.noun()
            )];
            for u in &untranslatable {
                lines.push(format!("manual step: {} ({})", u.text.trim(), u.reason));
            }
            Ok(lines.into())
        })
    }
}

/// The list of rules to carry by hand, as the record keeps it.
fn detail(untranslatable: &[Untranslatable]) -> String {
    format!(
        "{}{BY_HAND}{}",
        plural(untranslatable.len(), "rule"),
        untranslatable
            .iter()
            .map(|u| format!("{} ({})", u.text.trim(), u.reason))
            .collect::<Vec<_>>()
            .join("; ")
    )
}

fn synced(report: RulesCopy, acknowledged: Option<&str>) -> Synced {
    let mut summary = format!(
        "{} {}{}",
        plural(report.rules, "rule"),
        if report.written {
            "written"
        } else {
            "already on the destination"
        },
        report
            .activated
            .as_ref()
            .map(|a| format!(", script {a:?} made active"))
            .unwrap_or_default()
    );
    for note in &report.notes {
        summary.push_str(&format!("; note: {note}"));
    }
    let mut failed = None;
    if !report.untranslatable.is_empty() {
        let detail = detail(&report.untranslatable);
        if acknowledged == Some(conflict_key(&detail).as_str()) {
            summary.push_str(&format!(
                ", {} carried by hand (acknowledged)",
                plural(report.untranslatable.len(), "rule")
            ));
        } else {
            failed = Some(FailedParts {
                detail,
                names: report
                    .untranslatable
                    .iter()
                    .map(|u| u.text.trim().to_string())
                    .collect(),
                unit: "rule",
                // Only a person can carry these; `mailshift ack` records that they did.
                kind: ErrorKind::Conflict,
                retry_after: None,
            });
        }
    }
    Synced {
        summary,
        copied: u64::from(report.written) * report.rules as u64,
        failed,
        paused: None,
        outputs: BTreeMap::new(),
        report: ContentReport::Rules(report),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_paths_change_separator_between_sieve_and_exchange() {
        assert_eq!(resep("INBOX.Bills.2026", '.', '/'), "INBOX/Bills/2026");
        assert_eq!(resep("INBOX/Bills", '/', '.'), "INBOX.Bills");
        assert_eq!(resep("Archive", '/', '.'), "Archive");
    }

    #[test]
    fn an_acknowledged_list_completes_the_step_and_a_new_one_fails_it_again() {
        let part = |text: &str| Untranslatable {
            text: text.into(),
            reason: "why".into(),
        };
        let report = |parts: Vec<Untranslatable>| RulesCopy {
            account: "a@example.com".into(),
            rules: 1,
            untranslatable: parts,
            ..RulesCopy::default()
        };
        let one = vec![part("vacation;")];
        let detail = detail(&one);
        assert!(is_conflict(&detail), "{detail}");
        let key = conflict_key(&detail);
        let failed = synced(report(one.clone()), None).failed.unwrap();
        assert_eq!(failed.detail, detail);
        assert_eq!(failed.kind, ErrorKind::Conflict);
        let done = synced(report(one.clone()), Some(&key));
        assert!(done.failed.is_none());
        assert!(
            done.summary
                .ends_with("1 rule carried by hand (acknowledged)"),
            "{}",
            done.summary
        );
        let two = vec![part("vacation;"), part("reject \"no\";")];
        assert!(synced(report(two), Some(&key)).failed.is_some());
    }
}
