//! Recording that a manual step was done by hand (`mailshift ack`, and `POST /api/ack/ID` of
//! watch mode, which holds the state while it runs).
//!
//! Manual steps (a group on Email Pro, anything on a plain IMAP server) have no API; once a
//! person has done one, it is recorded as applied with the plan's current fingerprint, so the
//! next `plan` stops listing it until the plan changes it again. A manual removal (a feature
//! done by hand and then dropped from the plan) is acknowledged by forgetting the record.

use std::fmt;

use super::pipeline::Planned;
use super::record::Records;
use crate::diff::Action;
use crate::plan::Loaded;
use crate::state::{StateError, StateStore};

/// What was acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledged {
    /// One line for the person who acknowledged it.
    pub message: String,
    /// The account the step belongs to, if any: its later steps can run now.
    pub account: Option<String>,
}

/// Why a step cannot be acknowledged.
#[derive(Debug)]
pub enum AckError {
    /// No pending step has this id; `hint` names the likely one, or the pending manual steps.
    NotPending {
        id: String,
        plan: String,
        hint: String,
    },
    /// The step is pending but `apply` carries it out.
    NotManual {
        id: String,
        action: Action,
    },
    State(StateError),
}

impl fmt::Display for AckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AckError::NotPending { id, plan, hint } => {
                write!(f, "`{id}` is not a pending step of {plan}: {hint}")
            }
            AckError::NotManual { id, action } => write!(
                f,
                "`{id}` is not a manual step (it is `{}`): `apply` carries it out",
                action.as_str()
            ),
            AckError::State(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for AckError {}

impl From<StateError> for AckError {
    fn from(e: StateError) -> AckError {
        AckError::State(e)
    }
}

/// The answer of watch mode's `POST /api/ack/ID` is text.
impl From<AckError> for String {
    fn from(e: AckError) -> String {
        e.to_string()
    }
}

pub fn acknowledge(
    loaded: &Loaded,
    store: &StateStore,
    id: &str,
) -> Result<Acknowledged, AckError> {
    let state = store.resources()?;
    let Planned { resources, changes } = Planned::new(loaded, &state);
    let Some(change) = changes.iter().find(|c| c.id == id) else {
        let manual: Vec<&str> = changes
            .iter()
            .filter(|c| c.action == Action::Manual)
            .map(|c| c.id.as_str())
            .collect();
        let hint = match crate::plan::diagnostic::did_you_mean(id, manual.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None if manual.is_empty() => "the plan has no pending manual step".to_string(),
            None => format!("pending manual steps: {}", manual.join(", ")),
        };
        return Err(AckError::NotPending {
            id: id.to_string(),
            plan: loaded.file_name(),
            hint,
        });
    };
    // Rules a platform cannot hold, carried by hand: the list is recorded as done, and the
    // rules step's next run completes while the list stays the same.
    if let Some(r) = resources.iter().find(|r| r.id() == id)
        && r.kind == crate::model::ResourceKind::Rules
        && let Some(rec) = state.get(id)
        && let Some(detail) = rec.last_error.as_deref()
        && super::content::rules::is_conflict(detail)
    {
        Records::new(store).output(
            r,
            rec,
            super::content::rules::ACKNOWLEDGED,
            super::content::rules::conflict_key(detail),
        )?;
        return Ok(Acknowledged {
            message: format!(
                "Acknowledged {id}: {}; the next apply completes the step",
                detail
            ),
            account: change.account.clone(),
        });
    }
    if change.action != Action::Manual {
        return Err(AckError::NotManual {
            id: id.to_string(),
            action: change.action,
        });
    }
    let resource = resources.iter().find(|r| r.id() == id);
    let message = match resource {
        // Done by hand: record it as applied, with what the plan says now.
        Some(r) => {
            let created_at = state.get(id).map(|s| s.created_at);
            Records::new(store).acknowledged(r, created_at)?;
            format!("Acknowledged {id}: {}", r.summary)
        }
        // Removed by hand: nothing left to remember.
        None => {
            Records::new(store).forget(id)?;
            format!("Acknowledged the removal of {id}")
        }
    };
    Ok(Acknowledged {
        message,
        account: change.account.clone(),
    })
}
