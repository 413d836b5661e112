//! The pure diff: desired resources × recorded state → the changes `apply` must make.
//!
//! Every (desired, recorded) combination is matched explicitly below, each case commented,
//! so the semantics of DESIGN.md can be read off the code: create what is missing, update in
//! place what can change, report as a conflict what cannot, sync content until cut-over,
//! remove features that left the plan, and never destroy accounts, mail or domains by
//! omission (they are reported as orphaned).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::{Execution, Resource, ResourceAddr, ResourceKind};
use crate::state::record::{ResourceRecord, Status};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Make it exist (an API call).
    Create,
    /// Change it in place.
    Update,
    /// Remove it from the destination (features only).
    Delete,
    /// Copy content: the first full copy, a resumed one, or an incremental run.
    Sync,
    /// A step with no API: a person does it, then `mailshift ack ID`.
    Manual,
    /// Applied with something that cannot change in place; needs a decision.
    Conflict,
    /// In the state, not in the plan, and never destroyed by omission.
    Orphaned,
    /// A copy a person paused (`paused: true` in the plan, or watch mode's
    /// `POST /api/pause/ACCOUNT`): apply leaves it where it stands until it is resumed. Not a
    /// daily-limit pause, which the diff never sees.
    Paused,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Sync => "sync",
            Action::Manual => "manual",
            Action::Conflict => "conflict",
            Action::Orphaned => "orphaned",
            Action::Paused => "paused",
        }
    }

    pub fn symbol(self) -> char {
        match self {
            Action::Create => '+',
            Action::Update => '~',
            Action::Delete => '-',
            Action::Sync => '>',
            Action::Manual => '!',
            Action::Conflict => 'x',
            Action::Orphaned => '?',
            Action::Paused => '|',
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The address's text form (what people, the JSON view and the state keys read).
    pub id: String,
    /// The address; `None` only for a state key this version cannot read (an orphan).
    #[serde(skip)]
    pub addr: Option<ResourceAddr>,
    pub action: Action,
    pub kind: ResourceKind,
    pub account: Option<String>,
    pub platform: Option<String>,
    /// Why this change, in words (for people; machines read `action`).
    pub reason: String,
    /// What the state says was applied.
    pub before: Option<String>,
    /// What the plan wants.
    pub after: Option<String>,
    /// For manual steps: what to do by hand.
    pub instructions: Option<String>,
    pub depends_on: Vec<ResourceAddr>,
}

impl Change {
    /// Whether this change would make `apply` do something.
    pub fn is_pending(&self) -> bool {
        !matches!(self.action, Action::Orphaned | Action::Paused)
    }
}

/// Counts of changes by action, for the closing summary line and the JSON view.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub remove: usize,
    pub sync: usize,
    pub manual: usize,
    pub conflict: usize,
    pub orphaned: usize,
    /// Copies a person paused: not work for `apply` until they are resumed.
    pub paused: usize,
}

impl Summary {
    pub fn of(changes: &[Change]) -> Summary {
        let mut s = Summary::default();
        for c in changes {
            match c.action {
                Action::Create => s.add += 1,
                Action::Update => s.change += 1,
                Action::Delete => s.remove += 1,
                Action::Sync => s.sync += 1,
                Action::Manual => s.manual += 1,
                Action::Conflict => s.conflict += 1,
                Action::Orphaned => s.orphaned += 1,
                Action::Paused => s.paused += 1,
            }
        }
        s
    }

    /// Whether `apply` has anything to do (orphans and paused copies are information, not
    /// work).
    pub fn has_changes(&self) -> bool {
        self.add + self.change + self.remove + self.sync + self.manual + self.conflict > 0
    }
}

/// Compares the desired resources with the state. The result is sorted by id.
pub fn diff(desired: &[Resource], state: &BTreeMap<String, ResourceRecord>) -> Vec<Change> {
    let mut changes = Vec::new();
    for r in desired {
        if let Some(c) = diff_one(r, r.id(), state.get(r.id())) {
            changes.push(c);
        }
    }
    let wanted: std::collections::HashSet<&str> = if state.is_empty() {
        Default::default()
    } else {
        desired.iter().map(|r| r.id()).collect()
    };
    for (id, rec) in state {
        if wanted.contains(id.as_str()) {
            continue;
        }
        changes.push(gone(id, rec));
    }
    changes.sort_by(|a, b| a.id.cmp(&b.id));
    changes
}

fn change(
    r: &Resource,
    id: &str,
    action: Action,
    reason: impl Into<String>,
    before: Option<&ResourceRecord>,
) -> Change {
    Change {
        id: id.to_string(),
        addr: Some(r.addr.clone()),
        action,
        kind: r.kind,
        account: r.account.clone(),
        platform: Some(r.platform.clone()),
        reason: reason.into(),
        before: before.map(|b| b.summary.clone()),
        after: Some(r.summary.clone()),
        instructions: match &r.execution {
            Execution::Manual { instructions } if action == Action::Manual => Some(format!(
                "{instructions} Then run `mailshift ack PLAN {id}`."
            )),
            _ => None,
        },
        depends_on: r.depends_on.clone(),
    }
}

/// Adds the steps that repair drift seen on the live platforms (`--refresh`): a resource the
/// state calls applied but the platform no longer shows as the plan has it.
pub fn add_drift(
    changes: &mut Vec<Change>,
    desired: &[Resource],
    state: &BTreeMap<String, ResourceRecord>,
    drift: &BTreeMap<String, String>,
) {
    for (id, what) in drift {
        if changes.iter().any(|c| &c.id == id) {
            continue;
        }
        let Some(r) = desired.iter().find(|r| r.id() == id) else {
            continue;
        };
        let mut c = change(
            r,
            id,
            first_action(r),
            format!("drift: {what}"),
            state.get(id),
        );
        if c.action == Action::Create {
            c.action = Action::Update;
        }
        changes.push(c);
    }
    changes.sort_by(|a, b| a.id.cmp(&b.id));
}

/// The action that makes a resource exist, by how it is carried out.
fn first_action(r: &Resource) -> Action {
    match r.execution {
        Execution::Api => Action::Create,
        Execution::Manual { .. } => Action::Manual,
        Execution::Sync { .. } => Action::Sync,
    }
}

fn diff_one(r: &Resource, id: &str, rec: Option<&ResourceRecord>) -> Option<Change> {
    let Some(rec) = rec else {
        // Never applied: make it exist.
        let reason = match r.execution {
            Execution::Sync { .. } if r.kind == ResourceKind::Rules => {
                "write the source's inbox rules as the destination's Sieve script `mailshift`"
            }
            Execution::Sync { .. } if r.kind == ResourceKind::Mail => {
                "first full copy (messages already on the destination are matched and adopted, not copied again)"
            }
            Execution::Sync { .. } => {
                "first full copy (items already on the destination are matched by UID and adopted, not copied again)"
            }
            Execution::Manual { .. } => "no API on this platform: to do by hand",
            Execution::Api => "not yet applied",
        };
        return Some(change(r, id, first_action(r), reason, None));
    };
    match rec.status {
        // Interrupted (crash, Ctrl-C): run the step again; steps are idempotent and copies resume.
        Status::InProgress => {
            let reason = match r.execution {
                Execution::Sync { .. } => "resume the interrupted copy",
                _ => "resume the interrupted step",
            };
            return Some(change(r, id, first_action(r), reason, Some(rec)));
        }
        // Failed: retry, saying why it failed last time.
        Status::Failed => {
            let err = rec.last_error.as_deref().unwrap_or("unknown error");
            return Some(change(
                r,
                id,
                first_action(r),
                format!("retry: last attempt failed: {err}"),
                Some(rec),
            ));
        }
        Status::Done | Status::Acknowledged => {}
    }
    // Applied with a different identity: changing it in place is impossible (a rename already
    // done to another name, mail already copied elsewhere). Never guess: report the way out.
    if rec.identity != r.identity {
        return Some(change(
            r,
            id,
            Action::Conflict,
            format!(
                "it was applied as \"{}\" and cannot be changed in place: restore that in the plan, \
                 or undo it by hand and run `mailshift state forget {id}`",
                rec.summary
            ),
            Some(rec),
        ));
    }
    let changed = rec.fingerprint != r.fingerprint;
    match (&r.execution, changed) {
        // Content keeps syncing until cut-over; a settings change applies from the next run.
        (Execution::Sync { cut_over: false }, false) if r.kind == ResourceKind::Rules => {
            Some(change(
                r,
                id,
                Action::Sync,
                "read the source's rules again; the destination's script is rewritten only if they changed",
                Some(rec),
            ))
        }
        (Execution::Sync { cut_over: false }, false) => {
            let point = rec
                .sync_point
                .map(|p| format!(" since sync point {p}"))
                .unwrap_or_default();
            Some(change(
                r,
                id,
                Action::Sync,
                format!("incremental: copy what is new{point}"),
                Some(rec),
            ))
        }
        (Execution::Sync { cut_over: false }, true) => Some(change(
            r,
            id,
            Action::Sync,
            "incremental, with changed settings (after a folder mapping change, copied messages move on the destination: nothing is uploaded twice)",
            Some(rec),
        )),
        // Cut over: sync has stopped for good; nothing to do.
        (Execution::Sync { cut_over: true }, _) => None,
        (Execution::Api, true) => Some(change(
            r,
            id,
            Action::Update,
            "changed in the plan",
            Some(rec),
        )),
        (Execution::Manual { .. }, true) => Some(change(
            r,
            id,
            Action::Manual,
            "changed in the plan since it was done by hand: change it by hand too",
            Some(rec),
        )),
        (Execution::Api | Execution::Manual { .. }, false) => None,
    }
}

/// A recorded resource that the plan no longer has.
fn gone(id: &str, rec: &ResourceRecord) -> Change {
    let kind = ResourceKind::parse(&rec.kind).unwrap_or(ResourceKind::Mail);
    let manual = rec.status == Status::Acknowledged;
    let (action, reason, instructions) = if kind.is_feature() && manual {
        // Made by hand, so removed by hand.
        (
            Action::Manual,
            "removed from the plan: remove it by hand".to_string(),
            Some(format!(
                "Remove it: {}. Then run `mailshift ack PLAN {id}`.",
                rec.summary
            )),
        )
    } else if kind.is_feature() {
        // The plan is the truth for features.
        (Action::Delete, "removed from the plan".to_string(), None)
    } else {
        (
            Action::Orphaned,
            format!(
                "not in the plan any more; {} are never removed by omission: run `mailshift state forget {id}` to stop tracking it",
                match kind {
                    ResourceKind::Domain => "domains",
                    _ => "accounts and their content",
                }
            ),
            None,
        )
    };
    Change {
        id: id.to_string(),
        addr: id.parse().ok(),
        action,
        kind,
        account: rec.account.clone(),
        platform: None,
        reason,
        before: Some(rec.summary.clone()),
        after: None,
        instructions,
        depends_on: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
