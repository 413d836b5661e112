//! Recording that a manual step was done by hand (`mailshift ack`, and `POST /api/ack/ID` of
//! watch mode, which holds the state while it runs).
//!
//! Manual steps (a group on Email Pro, anything on a plain IMAP server) have no API; once a
//! person has done one, it is recorded as applied with the plan's current fingerprint, so the
//! next `plan` stops listing it until the plan changes it again. A manual removal (a feature
//! done by hand and then dropped from the plan) is acknowledged by forgetting the record.

use super::record::Records;
use crate::diff::{Action, diff};
use crate::model::compile;
use crate::plan::Loaded;
use crate::state::StateStore;

/// What was acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledged {
    /// One line for the person who acknowledged it.
    pub message: String,
    /// The account the step belongs to, if any: its later steps can run now.
    pub account: Option<String>,
}

pub fn acknowledge(loaded: &Loaded, store: &StateStore, id: &str) -> Result<Acknowledged, String> {
    let state = store.resources().map_err(|e| e.to_string())?;
    let resources = compile(&loaded.plan);
    let changes = diff(&resources, &state);
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
        return Err(format!(
            "`{id}` is not a pending step of {}: {hint}",
            loaded.file_name()
        ));
    };
    if change.action != Action::Manual {
        return Err(format!(
            "`{id}` is not a manual step (it is `{}`): `apply` carries it out",
            change.action.as_str()
        ));
    }
    let resource = change
        .addr
        .as_ref()
        .and_then(|a| resources.iter().find(|r| r.addr == *a));
    let message = match resource {
        // Done by hand: record it as applied, with what the plan says now.
        Some(r) => {
            let created_at = state.get(id).map(|s| s.created_at);
            Records::new(store)
                .acknowledged(r, created_at)
                .map_err(|e| e.to_string())?;
            format!("Acknowledged {id}: {}", r.summary)
        }
        // Removed by hand: nothing left to remember.
        None => {
            Records::new(store).forget(id).map_err(|e| e.to_string())?;
            format!("Acknowledged the removal of {id}")
        }
    };
    Ok(Acknowledged {
        message,
        account: change.account.clone(),
    })
}
