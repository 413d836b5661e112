//! What the state knows of a domain's accounts, for the switch's safety check: an account is
//! whole when every kind of content it copies has a finished last sync and the destination
//! refused none of its messages. `verify` compares live and records nothing, so the check
//! reads the state only: a copy that failed, did not finish, never ran, or left refused
//! messages (missing on the destination, as `verify` would show) keeps the switch back.

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

/// Watch mode's final sync, which the accounts' own units run: the accounts whose copies
/// have not all completed a run numbered above `after` (one that started after the final
/// sync became due).
pub fn not_synced_since(
    store: &StateStore,
    accounts: &[String],
    after: u64,
) -> Result<Vec<String>, StepError> {
    let records = store
        .resources()
        .map_err(|e| StepError::state(e.to_string()))?;
    Ok(accounts
        .iter()
        .filter(|account| {
            let mut copies = records.values().filter(|r| {
                r.account.as_deref() == Some(account.as_str())
                    && ResourceKind::parse(&r.kind).is_some_and(ResourceKind::is_content)
            });
            !copies.all(|r| r.status == Status::Done && r.sync_point.is_some_and(|p| p > after))
        })
        .cloned()
        .collect())
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
    fn watch_mode_final_sync_waits_for_a_run_started_after_it_was_due() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("state.redb")).unwrap();
        let mut mail = record("mail", "a@x.com", Status::Done);
        mail.sync_point = Some(3);
        store.put_resource("account/a@x.com/mail", &mail).unwrap();
        let mut contacts = record("contacts", "a@x.com", Status::Done);
        contacts.sync_point = Some(4);
        store
            .put_resource("account/a@x.com/contacts", &contacts)
            .unwrap();
        let a = vec!["a@x.com".to_string()];
        assert_eq!(
            not_synced_since(&store, &a, 3).unwrap(),
            a,
            "mail's run 3 is not after"
        );
        mail.sync_point = Some(4);
        store.put_resource("account/a@x.com/mail", &mail).unwrap();
        assert!(not_synced_since(&store, &a, 3).unwrap().is_empty());
        mail.status = Status::Failed;
        store.put_resource("account/a@x.com/mail", &mail).unwrap();
        assert_eq!(
            not_synced_since(&store, &a, 3).unwrap(),
            a,
            "a failed run is no sync"
        );
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
