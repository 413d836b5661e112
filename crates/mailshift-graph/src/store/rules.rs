//! Message rules of a [`GraphStore`]'s mailbox, for the rules engine (the main crate's
//! `apply::content::rules::graph`): the inbox's `messageRules` listed (paged like every
//! listing), created, updated and deleted as the `serde_json` values that
//! `mailshift_core::rules::graph` reads and builds; and the mail folders a rule's
//! `moveToFolder` names, as paths from the top of the mailbox (`INBOX/Bills`: display names
//! joined by `/`, the inbox named `INBOX` as IMAP names it), created level by level when a
//! rule files into a folder the mailbox lacks. Throttling, `Retry-After` and immutable ids are
//! the client's, as for every other call.

use mailshift_dav::error::ErrorKind;
use mailshift_dav::store::StoreResult;
use reqwest::Method;
use serde_json::{Value, json};

use super::{GraphStore, enc};
use crate::client::{Call, error, unexpected};

/// A mail folder of the mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailFolder {
    pub id: String,
    /// From the top of the mailbox, `/` between levels; the inbox is `INBOX`.
    pub path: String,
}

/// How deep folders are followed (a mailbox deeper than this is not one a rule files into).
const MAX_DEPTH: usize = 16;

impl GraphStore {
    fn rules_path(&self) -> String {
        format!("{}/mailFolders/inbox/messageRules", self.user)
    }

    /// The inbox's message rules, as Graph gives them (in no particular order: each has its
    /// `sequence`).
    pub async fn list_rules(&self) -> StoreResult<Vec<Value>> {
        let what = format!("listing the message rules of {}", self.user);
        Ok(self.client.list_all(&self.rules_path(), &what).await?.0)
    }

    /// Creates a rule; returns it as Graph stored it (with its `id`).
    pub async fn create_rule(&self, rule: &Value) -> StoreResult<Value> {
        let what = format!("creating a message rule in {}", self.user);
        let call = Call::new(Method::POST, self.rules_path()).json(rule.clone());
        self.client.json(&call, &what).await
    }

    /// Replaces what `rule` sets of the rule `id`.
    pub async fn update_rule(&self, id: &str, rule: &Value) -> StoreResult<()> {
        let what = format!("updating the message rule {id} of {}", self.user);
        let call = Call::new(Method::PATCH, format!("{}/{}", self.rules_path(), enc(id)))
            .json(rule.clone());
        self.client.json(&call, &what).await.map(|_| ())
    }

    /// Deletes the rule `id`; one already gone is fine (a run cut after its delete).
    pub async fn delete_rule(&self, id: &str) -> StoreResult<()> {
        let what = format!("deleting the message rule {id} of {}", self.user);
        let call = Call::new(Method::DELETE, format!("{}/{}", self.rules_path(), enc(id)));
        let answer = self.client.send(&call).await?;
        if answer.is_success() || answer.status == 404 {
            return Ok(());
        }
        Err(unexpected(&what, &answer))
    }

    /// The mailbox's mail folders with their paths.
    pub async fn mail_folders(&self) -> StoreResult<Vec<MailFolder>> {
        let what = format!("reading the inbox of {}", self.user);
        let inbox = self
            .client
            .json(
                &Call::get(format!("{}/mailFolders/inbox", self.user)),
                &what,
            )
            .await?;
        let inbox_id = inbox["id"].as_str().unwrap_or_default().to_string();
        let mut out = Vec::new();
        // (listing, path of its parent)
        let mut pending = vec![(format!("{}/mailFolders", self.user), String::new(), 0)];
        while let Some((target, parent, depth)) = pending.pop() {
            let what = format!("listing the mail folders of {}", self.user);
            let (folders, _) = self.client.list_all(&target, &what).await?;
            for f in folders {
                let Some(id) = f["id"].as_str().map(str::to_string) else {
                    continue;
                };
                let name = if id == inbox_id {
                    "INBOX".to_string()
                } else {
                    f["displayName"].as_str().unwrap_or(&id).to_string()
                };
                let path = if parent.is_empty() {
                    name
                } else {
                    format!("{parent}/{name}")
                };
                if f["childFolderCount"].as_u64().unwrap_or(1) > 0 && depth < MAX_DEPTH {
                    pending.push((
                        format!("{}/mailFolders/{}/childFolders", self.user, enc(&id)),
                        path.clone(),
                        depth + 1,
                    ));
                }
                out.push(MailFolder { id, path });
            }
        }
        Ok(out)
    }

    /// The folder at `path`, created (with any missing parent) when the mailbox lacks it.
    pub async fn ensure_mail_folder(&self, path: &str) -> StoreResult<MailFolder> {
        let folders = self.mail_folders().await?;
        if let Some(f) = folders.iter().find(|f| f.path == path) {
            return Ok(f.clone());
        }
        let mut parent: Option<String> = None;
        let mut at = String::new();
        for level in path.split('/') {
            if level.is_empty() {
                return Err(error(
                    ErrorKind::Config,
                    format!("the folder path {path:?} has an empty level"),
                ));
            }
            if !at.is_empty() {
                at.push('/');
            }
            at.push_str(level);
            if let Some(f) = folders.iter().find(|f| f.path == at) {
                parent = Some(f.id.clone());
                continue;
            }
            let target = match &parent {
                None => format!("{}/mailFolders", self.user),
                Some(p) => format!("{}/mailFolders/{}/childFolders", self.user, enc(p)),
            };
            let what = format!("creating the folder {at:?} in {}", self.user);
            let call = Call::new(Method::POST, target).json(json!({ "displayName": level }));
            let created = self.client.json(&call, &what).await?;
            parent = created["id"].as_str().map(str::to_string);
            if parent.is_none() {
                return Err(error(
                    ErrorKind::Network,
                    format!("{what}: Graph answered without the folder's id"),
                ));
            }
        }
        Ok(MailFolder {
            id: parent.unwrap_or_default(),
            path: path.to_string(),
        })
    }
}
