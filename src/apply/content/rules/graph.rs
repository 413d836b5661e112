//! The Microsoft Graph end of the rules copy: a Microsoft 365 mailbox's inbox message rules
//! through `mailshift-graph`, translated by `crate::rules::graph`. Folders a rule files into
//! are Graph ids, read as paths from the top of the mailbox (see
//! `mailshift_graph::store::MailFolder`) and created when a rule written needs one. Graph has
//! no batch of rule changes: deletes go first, then creates, so a run cut between them is
//! completed by the next one (rules already created are found equal and adopted).

use std::collections::BTreeMap;

use mailshift_graph::store::MailFolder;
use mailshift_graph::{GraphConfig, GraphStore};
use serde_json::{Value, json};

use super::listed::{Held, RuleList, move_targets, read_back};
use crate::apply::content::dav::store_error;
use crate::error::{ErrorKind, StepError};
use crate::rules::graph::{from_graph, to_graph};
use crate::rules::{Rule, Untranslatable};

pub(super) struct GraphRules {
    store: GraphStore,
    /// Read when a rule names a folder, once per run (again after creating one).
    folders: Option<Vec<MailFolder>>,
    /// Each rule's id and `sequence` at the last reading.
    sequences: Vec<(String, i64)>,
}

impl GraphRules {
    pub(super) fn open(config: &GraphConfig) -> Result<GraphRules, StepError> {
        Ok(GraphRules {
            store: GraphStore::connect(config.clone()).map_err(store_error)?,
            folders: None,
            sequences: Vec::new(),
        })
    }

    async fn folders(&mut self) -> Result<Vec<MailFolder>, StepError> {
        if self.folders.is_none() {
            self.folders = Some(self.store.mail_folders().await.map_err(store_error)?);
        }
        Ok(self.folders.clone().unwrap_or_default())
    }
}

/// Whether a rule names a folder (a move or a copy).
fn names_folder(rule: &Value) -> bool {
    ["moveToFolder", "copyToFolder"]
        .iter()
        .any(|k| rule["actions"][k].as_str().is_some_and(|s| !s.is_empty()))
}

impl RuleList for GraphRules {
    async fn held(&mut self) -> Result<Vec<Held>, StepError> {
        let mut rules = self.store.list_rules().await.map_err(store_error)?;
        rules.sort_by_key(|r| r["sequence"].as_i64().unwrap_or(i64::MAX));
        self.sequences = rules
            .iter()
            .map(|r| {
                (
                    r["id"].as_str().unwrap_or_default().to_string(),
                    r["sequence"].as_i64().unwrap_or(0),
                )
            })
            .collect();
        let folders = if rules.iter().any(names_folder) {
            self.folders().await?
        } else {
            Vec::new()
        };
        let path = |id: &str| folders.iter().find(|f| f.id == id).map(|f| f.path.clone());
        Ok(rules
            .iter()
            .map(|v| {
                let mut t = from_graph(std::slice::from_ref(v), &path);
                let rule = match t.rules.pop() {
                    Some(r) => Ok(r),
                    None => Err(t.untranslatable.pop().unwrap_or_else(|| Untranslatable {
                        text: v.to_string(),
                        reason: "Graph's rule cannot be read".into(),
                    })),
                };
                Held {
                    id: v["id"].as_str().unwrap_or_default().to_string(),
                    rule,
                }
            })
            .collect())
    }

    fn canonical(rule: &Rule) -> Result<Rule, String> {
        let (json, mut left) = to_graph(std::slice::from_ref(rule), &|p| Some(p.to_string()));
        if let Some(u) = left.pop() {
            return Err(u.reason);
        }
        let read = from_graph(&json, &|id| Some(id.to_string()));
        read_back(read, "Microsoft 365")
    }

    async fn write(
        &mut self,
        delete: &[String],
        create: &[Rule],
    ) -> Result<Vec<String>, StepError> {
        let mut ids: BTreeMap<String, String> = BTreeMap::new();
        for path in move_targets(create) {
            let folder = self
                .store
                .ensure_mail_folder(path)
                .await
                .map_err(store_error)?;
            ids.insert(path.to_string(), folder.id);
            self.folders = None;
        }
        let (bodies, left) = to_graph(create, &|p| ids.get(p).cloned());
        if let Some(u) = left.first() {
            return Err(StepError::new(
                ErrorKind::Bug,
                format!(
                    "a rule checked before cannot be written: {} ({})",
                    u.text, u.reason
                ),
            ));
        }
        for id in delete {
            self.store.delete_rule(id).await.map_err(store_error)?;
        }
        // After every rule the mailbox keeps.
        let last = self
            .sequences
            .iter()
            .filter(|(id, _)| !delete.contains(id))
            .map(|(_, s)| *s)
            .max()
            .unwrap_or(0);
        for (n, mut body) in bodies.into_iter().enumerate() {
            body["sequence"] = json!(last + 1 + n as i64);
            self.store.create_rule(&body).await.map_err(store_error)?;
        }
        Ok(Vec::new())
    }
}
