//! The Sieve end of the rules copy: a ManageSieve server (RFC 5804). As a source, its active
//! script read into rules; as a destination, one script named [`SCRIPT`] holding the
//! source's rules, run beside whatever the destination already runs.
//!
//! Exactly once without records of its own: the destination's `mailshift` script is the
//! state. A run reads it and writes only when its text differs from what the source's rules
//! give now (a second apply writes nothing; a changed source rewrites it), and PUTSCRIPT
//! replaces a script whole, so a run cut at any point leaves either the old text or the new.
//!
//! The destination's own rules are kept: with no active script, `mailshift` becomes the active
//! one; with one (say `roundcube`), a third script [`COMBINED`] holding
//! `include :personal "roundcube"; include :personal "mailshift";` (RFC 6609) becomes active,
//! so the destination's rules run first, then the source's. A server without `include` keeps
//! its active script, and the step says what to add to it by hand.

use super::{RulesCheck, RulesCopy};
use crate::apply::imap_adapter::IntoStepError;
use crate::error::StepError;
use crate::rules::sieve::{from_sieve, to_sieve};
use crate::rules::{Rule, Translated, Untranslatable};
use crate::transfer::imap::session::{ImapError, Target};
use crate::transfer::imap::sieve::ManageSieve;

/// The destination script that holds the source's rules.
pub const SCRIPT: &str = "mailshift";
/// The destination script that runs its earlier active script, then [`SCRIPT`].
pub const COMBINED: &str = "mailshift-combined";

fn err(e: ImapError) -> StepError {
    e.into_step_error()
}

/// The active script, read into rules (none active: no rules).
pub(super) async fn read(target: &Target) -> Result<Translated, StepError> {
    let mut s = ManageSieve::connect(target).await.map_err(err)?;
    let listed = s.list_scripts().await.map_err(err)?;
    let out = match listed.iter().find(|l| l.active) {
        Some(active) => from_sieve(&s.get_script(&active.name).await.map_err(err)?),
        None => Translated::default(),
    };
    s.logout().await;
    Ok(out)
}

/// Writes `rules` as the script [`SCRIPT`] (when its text changed) and makes it run.
pub(super) async fn write(target: &Target, rules: Vec<Rule>) -> Result<RulesCopy, StepError> {
    let (script, left) = to_sieve(&rules);
    let count = rules.len() - left.len();
    let mut d = ManageSieve::connect(target).await.map_err(err)?;
    let listed = d.list_scripts().await.map_err(err)?;
    let existing = match listed.iter().any(|l| l.name == SCRIPT) {
        true => Some(d.get_script(SCRIPT).await.map_err(err)?),
        false => None,
    };
    let mut report = RulesCopy {
        rules: count,
        untranslatable: left,
        ..RulesCopy::default()
    };
    // Nothing to carry and nothing carried before: the destination is left alone.
    let wanted = existing.is_some() || count > 0;
    if wanted && existing.as_deref() != Some(script.as_str()) {
        // CHECKSCRIPT first: a refusal names the server's reason before anything is replaced.
        d.check_script(&script).await.map_err(|e| {
            err(e).context("the rules as Sieve are refused by the destination".to_string())
        })?;
        d.put_script(SCRIPT, &script).await.map_err(err)?;
        report.written = true;
    }
    let active = listed.iter().find(|l| l.active).map(|l| l.name.clone());
    match active.as_deref() {
        _ if !wanted => {}
        Some(SCRIPT) | Some(COMBINED) => {}
        None => {
            d.set_active(Some(SCRIPT)).await.map_err(err)?;
            report.activated = Some(SCRIPT.to_string());
        }
        Some(other) if d.caps.extensions.iter().any(|e| e == "include") => {
            let combined = combined(other);
            d.check_script(&combined).await.map_err(err)?;
            d.put_script(COMBINED, &combined).await.map_err(err)?;
            d.set_active(Some(COMBINED)).await.map_err(err)?;
            report.activated = Some(COMBINED.to_string());
        }
        Some(other) => report.untranslatable.push(Untranslatable {
            text: script.clone(),
            reason: format!(
                "the destination runs its own script {other:?} and its server has no Sieve \
                 `include` to run both: the rules are stored as script {SCRIPT:?}, not active; \
                 add them to {other:?} by hand"
            ),
        }),
    }
    d.logout().await;
    Ok(report)
}

/// The source's `rules`, as the destination would hold them, against its script [`SCRIPT`].
pub(super) async fn compare(target: &Target, rules: Vec<Rule>) -> Result<RulesCheck, StepError> {
    let (script, left) = to_sieve(&rules);
    // The rules as the destination reads them back: what `apply` would leave there.
    let expected = from_sieve(&script).rules;
    let mut d = ManageSieve::connect(target).await.map_err(err)?;
    let listed = d.list_scripts().await.map_err(err)?;
    let held = match listed.iter().any(|l| l.name == SCRIPT) {
        true => from_sieve(&d.get_script(SCRIPT).await.map_err(err)?).rules,
        false => Vec::new(),
    };
    d.logout().await;
    Ok(RulesCheck {
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
        untranslatable: left.len(),
        ..RulesCheck::default()
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_combined_script_runs_the_destinations_rules_first() {
        assert_eq!(
            combined("my \"rules\""),
            "# Written by mailshift: the rules this mailbox had, then those of the mailbox it moved from.\n\
             require [\"include\"];\ninclude :personal \"my \\\"rules\\\"\";\ninclude :personal \"mailshift\";\n"
        );
    }
}
