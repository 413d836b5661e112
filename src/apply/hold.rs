//! Pauses a person asks for: `paused: true` on the plan or on an account, and watch mode's
//! `POST /api/pause/ACCOUNT` (kept in the state's `holds` table so it outlives a restart).
//! Called holds here to keep them apart from the pauses of daily limits (`quota`), which a
//! platform imposes and which end by themselves at a time; a hold ends only when a person
//! lifts it, and says who put it.
//!
//! A hold stops an account's copies (mail, contacts, calendars, tasks): `plan` shows them as
//! paused, `apply` does not start them and what waits for them waits, and in watch mode a copy
//! under way is stopped between two batches (its stop flag, the same checkpoint as Ctrl-C),
//! then resumes from its records. Creations, renames and other API steps of the account are
//! not held: they prepare the destination and move no mail.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::plan::model::Plan;
use crate::state::HoldRecord;

/// Who paused an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// `paused: true` in the plan: on the account, or (`whole`) on the plan itself.
    Plan { whole: bool },
    /// `POST /api/pause/ACCOUNT` (the status page), at `since` (Unix seconds).
    Api { since: u64 },
}

impl Hold {
    /// Who paused it, as `/api/status` says: `plan` or `api`.
    pub fn by(&self) -> &'static str {
        match self {
            Hold::Plan { .. } => "plan",
            Hold::Api { .. } => "api",
        }
    }

    /// What `plan`, `apply`, `status` and the logs say of it.
    pub fn text(&self) -> String {
        match self {
            Hold::Plan { whole: false } => "paused by the plan (`paused: true` on the account): \
                 remove it to resume the copy"
                .to_string(),
            Hold::Plan { whole: true } => "paused by the plan (`paused: true` for the whole \
                 plan): remove it to resume the copies"
                .to_string(),
            Hold::Api { since } => format!(
                "paused from the status page (POST /api/pause) at {}: resume it there \
                 (POST /api/resume)",
                crate::render::time::human(*since)
            ),
        }
    }
}

/// The hold on `account` (lower case), if any: the plan's first, then a person's over the API.
pub fn hold_of(
    plan: &Plan,
    recorded: &BTreeMap<String, HoldRecord>,
    account: &str,
) -> Option<Hold> {
    plan_hold(plan, account).or_else(|| recorded.get(account).map(|r| Hold::Api { since: r.since }))
}

/// The plan's hold on `account` (lower case), if any.
pub fn plan_hold(plan: &Plan, account: &str) -> Option<Hold> {
    if plan.paused {
        return Some(Hold::Plan { whole: true });
    }
    plan.accounts
        .iter()
        .any(|a| a.paused && a.address.eq_ignore_ascii_case(account))
        .then_some(Hold::Plan { whole: false })
}

/// Every held account of the plan (and of the state's holds), by lower-case address.
pub fn holds(plan: &Plan, recorded: &BTreeMap<String, HoldRecord>) -> BTreeMap<String, Hold> {
    let mut out: BTreeMap<String, Hold> = recorded
        .iter()
        .map(|(a, r)| (a.clone(), Hold::Api { since: r.since }))
        .collect();
    // Each account's own flag, not `plan_hold` (which looks the address up among all the
    // accounts): that made this quadratic, 130 s at 100,000 accounts. Addresses are unique.
    for a in &plan.accounts {
        if plan.paused || a.paused {
            out.insert(
                a.address.to_ascii_lowercase(),
                Hold::Plan { whole: plan.paused },
            );
        }
    }
    out
}

/// A hold put on a run already under way (watch mode, when the plan or the API pauses the
/// account it copies): the daemon writes it here, then raises the run's stop flag; the copy
/// stops at its next checkpoint and reports the hold rather than "stopped".
pub type HoldCell = Arc<Mutex<Option<Hold>>>;

/// What a hold cell says now.
pub fn read_cell(cell: &HoldCell) -> Option<Hold> {
    cell.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(whole: bool, alice: bool) -> Plan {
        let text = format!(
            "version: 1\npaused: {whole}\nplatforms:\n  \
             old: {{type: imap, imap: {{host: h, security: none}}}}\n  \
             new: {{type: imap, imap: {{host: h, security: none}}}}\naccounts:\n  \
             - address: Alice@example.com\n    from: old\n    to: new\n    paused: {alice}\n    \
             source: {{password: {{env: X}}}}\n    destination: {{password: {{env: X}}}}\n  \
             - address: bob@example.com\n    from: old\n    to: new\n    \
             source: {{password: {{env: X}}}}\n    destination: {{password: {{env: X}}}}\n"
        );
        serde_saphyr::from_str(&text).unwrap()
    }

    #[test]
    fn the_plan_holds_first_then_the_api_and_each_says_who() {
        let api: BTreeMap<String, HoldRecord> =
            [("bob@example.com".to_string(), HoldRecord { since: 60 })].into();
        let p = plan(false, true);
        assert_eq!(
            hold_of(&p, &api, "alice@example.com"),
            Some(Hold::Plan { whole: false })
        );
        assert_eq!(
            hold_of(&p, &api, "bob@example.com"),
            Some(Hold::Api { since: 60 })
        );
        assert_eq!(hold_of(&p, &BTreeMap::new(), "bob@example.com"), None);
        let all = holds(&plan(true, false), &api);
        assert_eq!(all["bob@example.com"], Hold::Plan { whole: true });
        assert_eq!(all["alice@example.com"], Hold::Plan { whole: true });
        assert!(holds(&plan(false, false), &BTreeMap::new()).is_empty());
        let text = Hold::Api { since: 60 }.text();
        assert!(text.starts_with("paused from the status page"), "{text}");
        assert!(!text.contains("daily limit"), "{text}");
        assert_eq!(Hold::Plan { whole: true }.by(), "plan");
    }
}
