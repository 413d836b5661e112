//! What the state knows of a domain's accounts, for the switch's safety check: an account is
//! whole when every kind of content it copies has a finished last sync and the destination
//! refused none of its messages. `verify` compares live and records nothing, so the check
//! reads the state only: a copy that failed, did not finish, never ran, or left refused
//! messages (missing on the destination, as `verify` would show) keeps the switch back.

use std::sync::Arc;

use mailshift_core::error::StepError;
use mailshift_core::model::ResourceKind;
use mailshift_core::state::{StateStore, Status};

use super::NotWhole;

/// The accounts among `accounts` that are not whole, as `store` records them.
pub fn not_whole(store: &StateStore, accounts: &[String]) -> Result<Vec<NotWhole>, StepError> {
    let state = |e: mailshift_core::state::StateError| StepError::state(e.to_string());
    let records = store.resources().map_err(state)?;
    let mut out = Vec::new();
    for account in accounts {
        let mut copies = 0;
        let mut why: Vec<String> = Vec::new();
        for (id, r) in records
            .iter()
            .filter(|(_, r)| r.account.as_deref() == Some(account.as_str()))
        {
            let Some(kind) = ResourceKind::parse(&r.kind).filter(|k| k.is_content()) else {
                continue;
            };
            copies += 1;
            match r.status {
                Status::Failed => why.push(format!(
                    "failed its last {} sync ({})",
                    kind.as_str(),
                    r.last_error.as_deref().unwrap_or("no reason recorded")
                )),
                Status::InProgress => {
                    why.push(format!("has a {} copy that did not finish", kind.as_str()))
                }
                Status::Done | Status::Acknowledged => {}
            }
            let refused = store.all_refused(id).map_err(state)?.len();
            if refused > 0 {
                why.push(format!(
                    "has {refused} message(s) the destination refused, missing there (`mailshift verify` lists them)"
                ));
            }
        }
        if copies == 0 {
            why.push("has never been copied".into());
        }
        if !why.is_empty() {
            out.push(NotWhole {
                account: account.clone(),
                why: why.join(", "),
            });
        }
    }
    Ok(out)
}

/// [`super::Accounts`] over the state, with the final sync given by the caller (the
/// executor's own sync steps).
pub struct StateAccounts<F> {
    pub store: Arc<StateStore>,
    pub final_sync: F,
}

impl<F> super::Accounts for StateAccounts<F>
where
    F: for<'a> Fn(&'a [String]) -> mailshift_core::plane::PlaneResult<'a, ()> + Send + Sync,
{
    fn not_whole(&self, accounts: &[String]) -> Result<Vec<NotWhole>, StepError> {
        not_whole(&self.store, accounts)
    }

    fn final_sync<'a>(
        &'a self,
        accounts: &'a [String],
    ) -> mailshift_core::plane::PlaneResult<'a, ()> {
        (self.final_sync)(accounts)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use mailshift_core::state::{RefusedRecord, ResourceRecord};

    use super::*;

    fn record(kind: &str, account: &str, status: Status) -> ResourceRecord {
        ResourceRecord {
            kind: kind.into(),
            account: Some(account.into()),
            fingerprint: String::new(),
            identity: String::new(),
            status,
            summary: String::new(),
            outputs: BTreeMap::new(),
            last_error: Some("connection refused".into()),
            sync_point: Some(1),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn failed_unfinished_refused_and_never_copied_accounts_are_not_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("state.redb")).unwrap();
        let put = |id: &str, r: ResourceRecord| store.put_resource(id, &r).unwrap();
        put(
            "account/ok@x.com/mail",
            record("mail", "ok@x.com", Status::Done),
        );
        put(
            "account/ok@x.com/create",
            record("create", "ok@x.com", Status::Failed),
        );
        put(
            "account/f@x.com/mail",
            record("mail", "f@x.com", Status::Failed),
        );
        put(
            "account/p@x.com/contacts",
            record("contacts", "p@x.com", Status::InProgress),
        );
        put(
            "account/r@x.com/mail",
            record("mail", "r@x.com", Status::Done),
        );
        store
            .put_refused(
                "account/r@x.com/mail",
                "INBOX",
                &[(
                    7,
                    RefusedRecord {
                        reason: "too large".into(),
                        size: 1,
                        attempts: 1,
                        sync_point: 1,
                    },
                )],
            )
            .unwrap();
        let all: Vec<String> = ["ok", "f", "p", "r", "n"]
            .iter()
            .map(|a| format!("{a}@x.com"))
            .collect();
        let found = not_whole(&store, &all).unwrap();
        let by: BTreeMap<&str, &str> = found
            .iter()
            .map(|n| (n.account.as_str(), n.why.as_str()))
            .collect();
        assert_eq!(by.len(), 4, "{by:?}");
        assert!(
            !by.contains_key("ok@x.com"),
            "a failed API step is not a copy"
        );
        assert!(by["f@x.com"].contains("failed its last mail sync (connection refused)"));
        assert!(by["p@x.com"].contains("contacts copy that did not finish"));
        assert!(by["r@x.com"].contains("1 message(s) the destination refused"));
        assert!(by["n@x.com"].contains("never been copied"));
    }
}
