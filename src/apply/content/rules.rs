//! Inbox rules between two IMAP platforms' ManageSieve servers (`content: [..., rules]`): the
//! source's active Sieve script read into the rule model (`crate::rules`), written back as
//! Sieve into one destination script named `mailshift`, and made to run beside whatever the
//! destination already runs.
//!
//! Exactly once without records of its own: the destination's `mailshift` script is the
//! state. A run reads it and writes only when its text differs from what the source's rules
//! give now (a second apply writes nothing; a changed source rewrites it), and PUTSCRIPT
//! replaces a script whole, so a run cut at any point leaves either the old text or the new.
//!
//! The destination's own rules are kept: with no active script, `mailshift` becomes the active
//! one; with one (say `roundcube`), a third script `mailshift-combined` holding
//! `include :personal "roundcube"; include :personal "mailshift";` (RFC 6609) becomes active,
//! so the destination's rules run first, then the source's. A server without `include` keeps
//! its active script, and the step says what to add to it by hand.
//!
//! `verify` compares the rules themselves: the source's, as the destination would hold them,
//! against those of the destination's script, and whether that script runs.
//!
//! What cannot be carried (a part of the source's script outside the model, a rule Sieve cannot
//! hold) is never dropped: the step ends as a conflict that names each one with its text and
//! the reason. Once a person has carried them by hand, `mailshift ack PLAN ID` records that
//! list as done (its [`conflict_key`] under the record's [`ACKNOWLEDGED`] output), and the next
//! run completes the step while the list stays the same; a new or changed one fails it again.

use std::collections::BTreeMap;

use super::{
    Checked, ContentReport, ContentResult, ContentSync, FailedParts, Prepared, Preview, SyncRun,
    Synced,
};
use crate::apply::imap_adapter::{IntoStepError, sieve_target};
use crate::error::{ErrorKind, StepError};
use crate::model::{AccountSpec, dest_login, source_login};
use crate::plan::Loaded;
use crate::plan::diagnostic::plural;
use crate::rules::sieve::{from_sieve, to_sieve};
use crate::rules::{Action, Translated, Untranslatable};
use crate::state::StateReader;
use crate::transfer::imap::session::Target;
use crate::transfer::imap::sieve::ManageSieve;

/// The destination script that holds the source's rules.
pub const SCRIPT: &str = "mailshift";
/// The destination script that runs its earlier active script, then [`SCRIPT`].
pub const COMBINED: &str = "mailshift-combined";
/// The record's output holding the [`conflict_key`] of what a person carried by hand.
pub const ACKNOWLEDGED: &str = "rules_carried_by_hand";

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
        let source = sieve_target(loaded, &account.source, &a.source, source_login(a))
            .map_err(|e| StepError::config(format!("source: {e}")))?;
        let dest = sieve_target(loaded, &account.dest, &a.destination, dest_login(a))
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

struct Sides {
    address: String,
    source: Target,
    dest: Target,
    /// The account's `folders.map`: a rule filing into a mapped folder files into its new name.
    folder_map: BTreeMap<String, String>,
}

/// What a run of the rules copy did, for the apply report.
#[derive(Debug, Clone, Default)]
pub struct RulesCopy {
    pub account: String,
    /// Rules read from the source and written (or found already written).
    pub rules: usize,
    /// Whether this run wrote the destination's script.
    pub written: bool,
    /// The script this run made active on the destination, if it changed which one is.
    pub activated: Option<String>,
    /// What could not be carried: each shown, with its reason, as a manual step.
    pub untranslatable: Vec<Untranslatable>,
}

/// `verify`'s comparison of an account's rules: the source's, as the destination would hold
/// them, against the destination's script `mailshift`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RulesCheck {
    pub account: String,
    /// Rules of the source that the destination can hold.
    pub source_rules: usize,
    /// Of those, the ones the destination's script does not hold as they are (one line each).
    pub missing: Vec<String>,
    /// Rules of the destination's script that the source does not have (any more).
    pub extra: Vec<String>,
    /// Whether the destination runs the script (active itself, or through the combined one).
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

fn source_err(e: crate::transfer::imap::session::ImapError) -> StepError {
    e.into_step_error().context("source")
}

fn dest_err(e: crate::transfer::imap::session::ImapError) -> StepError {
    e.into_step_error().context("destination")
}

impl Sides {
    /// The source's active script, read into rules (none active: no rules).
    async fn read_source(&self) -> Result<Translated, StepError> {
        let mut s = ManageSieve::connect(&self.source)
            .await
            .map_err(source_err)?;
        let listed = s.list_scripts().await.map_err(source_err)?;
        let out = match listed.iter().find(|l| l.active) {
            Some(active) => from_sieve(&s.get_script(&active.name).await.map_err(source_err)?),
            None => Translated::default(),
        };
        s.logout().await;
        Ok(out)
    }

    /// The destination's script for `translated`, and everything that stays behind.
    fn script(&self, translated: Translated) -> (String, usize, Vec<Untranslatable>) {
        let mut rules = translated.rules;
        for rule in &mut rules {
            for action in &mut rule.actions {
                if let Action::MoveTo(folder) = action
                    && let Some(to) = self.folder_map.get(folder.as_str())
                {
                    *folder = to.clone();
                }
            }
        }
        let (script, left) = to_sieve(&rules);
        let written = rules.len() - left.len();
        let mut untranslatable = translated.untranslatable;
        untranslatable.extend(left);
        (script, written, untranslatable)
    }
}

impl Sides {
    /// Both sides' rules now, as `verify` shows them.
    async fn compare(&self) -> Result<RulesCheck, StepError> {
        let (script, _, untranslatable) = self.script(self.read_source().await?);
        // The rules as the destination reads them back: what `apply` would leave there.
        let expected = from_sieve(&script).rules;
        let mut d = ManageSieve::connect(&self.dest).await.map_err(dest_err)?;
        let listed = d.list_scripts().await.map_err(dest_err)?;
        let held = match listed.iter().any(|l| l.name == SCRIPT) {
            true => from_sieve(&d.get_script(SCRIPT).await.map_err(dest_err)?).rules,
            false => Vec::new(),
        };
        d.logout().await;
        Ok(RulesCheck {
            account: self.address.clone(),
            source_rules: expected.len(),
            missing: expected
                .iter()
                .filter(|r| !held.contains(r))
                .map(|r| r.to_string())
                .collect(),
            extra: held
                .iter()
                .filter(|r| !expected.contains(r))
                .map(|r| r.to_string())
                .collect(),
            active: listed
                .iter()
                .any(|l| l.active && (l.name == SCRIPT || l.name == COMBINED)),
            untranslatable: untranslatable.len(),
            error: None,
        })
    }
}

impl Prepared for Sides {
    fn sync<'a>(&'a self, run: SyncRun<'a>) -> ContentResult<'a, Result<Synced, StepError>> {
        Box::pin(async move {
            let acknowledged = run
                .store
                .resource(run.id)
                .map_err(StepError::from)?
                .and_then(|r| r.outputs.get(ACKNOWLEDGED).cloned());
            let (script, count, untranslatable) = self.script(self.read_source().await?);
            let mut d = ManageSieve::connect(&self.dest).await.map_err(dest_err)?;
            let listed = d.list_scripts().await.map_err(dest_err)?;
            let existing = match listed.iter().any(|l| l.name == SCRIPT) {
                true => Some(d.get_script(SCRIPT).await.map_err(dest_err)?),
                false => None,
            };
            let mut report = RulesCopy {
                account: self.address.clone(),
                rules: count,
                untranslatable,
                ..RulesCopy::default()
            };
            // Nothing to carry and nothing carried before: the destination is left alone.
            let wanted = existing.is_some() || count > 0;
            if wanted && existing.as_deref() != Some(script.as_str()) {
                // CHECKSCRIPT first: a refusal names the server's reason before anything is
                // replaced.
                d.check_script(&script).await.map_err(|e| {
                    dest_err(e).context(format!(
                        "the rules of {} as Sieve are refused by the destination",
                        self.address
                    ))
                })?;
                d.put_script(SCRIPT, &script).await.map_err(dest_err)?;
                report.written = true;
            }
            let active = listed.iter().find(|l| l.active).map(|l| l.name.clone());
            match active.as_deref() {
                _ if !wanted => {}
                Some(SCRIPT) | Some(COMBINED) => {}
                None => {
                    d.set_active(Some(SCRIPT)).await.map_err(dest_err)?;
                    report.activated = Some(SCRIPT.to_string());
                }
                Some(other) if d.caps.extensions.iter().any(|e| e == "include") => {
                    let combined = combined(other);
                    d.check_script(&combined).await.map_err(dest_err)?;
                    d.put_script(COMBINED, &combined).await.map_err(dest_err)?;
                    d.set_active(Some(COMBINED)).await.map_err(dest_err)?;
                    report.activated = Some(COMBINED.to_string());
                }
                Some(other) => report.untranslatable.push(Untranslatable {
                    text: script.clone(),
                    reason: format!(
                        "the destination runs its own script {other:?} and its server has no \
                         Sieve `include` to run both: the rules are stored as script \
                         {SCRIPT:?}, not active; add them to {other:?} by hand"
                    ),
                }),
            }
            d.logout().await;
            Ok(synced(report, acknowledged.as_deref()))
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
        // A few hundred bytes of script: nothing a quota notices.
        Box::pin(async { Ok(0) })
    }

    fn preview<'a>(
        &'a self,
        _state: &'a StateReader,
        _id: &'a str,
    ) -> ContentResult<'a, Result<Preview, StepError>> {
        Box::pin(async move {
            let (_, count, untranslatable) = self.script(self.read_source().await?);
            let mut lines = vec![format!(
                "{} on the source to write as the destination's Sieve script {SCRIPT:?}",
                plural(count, "rule")
            )];
            for u in &untranslatable {
                lines.push(format!("manual step: {} ({})", u.text.trim(), u.reason));
            }
            Ok(lines.into())
        })
    }
}

/// The script that runs the destination's earlier active script, then the source's rules.
fn combined(other: &str) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    format!(
        "# Written by mailshift: the rules this mailbox had, then those of the mailbox it moved from.\n\
         require [\"include\"];\ninclude :personal {};\ninclude :personal {};\n",
        quote(other),
        quote(SCRIPT)
    )
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
        report: ContentReport::Rules(report),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn the_combined_script_runs_the_destinations_rules_first() {
        assert_eq!(
            combined("my \"rules\""),
            "# Written by mailshift: the rules this mailbox had, then those of the mailbox it moved from.\n\
             require [\"include\"];\ninclude :personal \"my \\\"rules\\\"\";\ninclude :personal \"mailshift\";\n"
        );
    }
}
