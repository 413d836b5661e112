//! The EWS end of the rules copy: an Exchange mailbox's inbox rules (GetInboxRules,
//! UpdateInboxRules) through `mailshift-ews`, translated by `crate::rules::ews`. Folders a
//! rule files into are Exchange ids, read as paths from the top of the mailbox (see
//! `mailshift_ews::store::MailFolder`) and created when a rule written needs one. One
//! UpdateInboxRules carries a run's deletes and creates: Exchange applies all or none.

use std::collections::BTreeMap;

use mailshift_ews::store::MailFolder;
use mailshift_ews::{EwsConfig, EwsStore};

use super::listed::{Held, RuleList, move_targets, read_back};
use crate::apply::content::dav::store_error;
use crate::error::{ErrorKind, StepError};
use crate::rules::ews::{FolderRef, from_ews, to_ews, to_ews_from, update_inbox_rules};
use crate::rules::{Rule, Untranslatable};

pub(super) struct EwsRules {
    store: EwsStore,
    /// Read when a rule names a folder, once per run (again after creating one).
    folders: Option<Vec<MailFolder>>,
    /// How many rules the mailbox held at the last reading.
    held: usize,
    /// Whether it had Outlook's client-side rules blob then.
    blob: bool,
}

impl EwsRules {
    pub(super) async fn open(config: &EwsConfig) -> Result<EwsRules, StepError> {
        Ok(EwsRules {
            store: EwsStore::connect(config.clone())
                .await
                .map_err(store_error)?,
            folders: None,
            held: 0,
            blob: false,
        })
    }

    async fn folders(&mut self) -> Result<Vec<MailFolder>, StepError> {
        if self.folders.is_none() {
            self.folders = Some(self.store.mail_folders().await.map_err(store_error)?);
        }
        Ok(self.folders.clone().unwrap_or_default())
    }
}

impl RuleList for EwsRules {
    async fn held(&mut self) -> Result<Vec<Held>, StepError> {
        let (rules, blob) = self.store.get_inbox_rules().await.map_err(store_error)?;
        self.held = rules.len();
        self.blob = blob;
        let folders = if rules.iter().any(|r| r.xml.contains("FolderId")) {
            self.folders().await?
        } else {
            Vec::new()
        };
        let path = |r: &FolderRef| {
            folders
                .iter()
                .find(|f| match r {
                    FolderRef::Id(id) => f.id == *id,
                    FolderRef::Distinguished(d) => f.distinguished.as_deref() == Some(d.as_str()),
                })
                .map(|f| f.path.clone())
        };
        Ok(rules
            .into_iter()
            .map(|h| {
                let mut t = from_ews(&h.xml, &path);
                let rule = match t.rules.pop() {
                    Some(r) => Ok(r),
                    None => Err(t.untranslatable.pop().unwrap_or(Untranslatable {
                        text: h.xml.clone(),
                        reason: "Exchange's rule cannot be read".into(),
                    })),
                };
                Held { id: h.id, rule }
            })
            .collect())
    }

    fn canonical(rule: &Rule) -> Result<Rule, String> {
        let (mut xml, mut left) = to_ews(std::slice::from_ref(rule), &|p| {
            Some(FolderRef::Id(p.to_string()))
        });
        if let Some(u) = left.pop() {
            return Err(u.reason);
        }
        let read = from_ews(&xml.pop().unwrap_or_default(), &|r| match r {
            FolderRef::Id(p) => Some(p.clone()),
            FolderRef::Distinguished(d) => Some(d.clone()),
        });
        read_back(read, "Exchange")
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
        // After every rule the mailbox keeps.
        let first = self.held.saturating_sub(delete.len()) + 1;
        let (xml, left) = to_ews_from(create, first, &|p| {
            ids.get(p).map(|id| FolderRef::Id(id.clone()))
        });
        if let Some(u) = left.first() {
            return Err(StepError::new(
                ErrorKind::Bug,
                format!(
                    "a rule checked before cannot be written: {} ({})",
                    u.text, u.reason
                ),
            ));
        }
        let mut undone = Vec::new();
        if let Some(body) = update_inbox_rules(delete, &xml) {
            self.store
                .update_inbox_rules(&body)
                .await
                .map_err(store_error)?;
            // Exchange writes no rule while Outlook's client-side rules blob is there: the
            // request removes it, and the rules only Outlook ran with it go too.
            if std::mem::take(&mut self.blob) {
                undone.push(
                    "Exchange removed the mailbox's Outlook client-side rules (their blob) to \
                     take rules through EWS: recreate in Outlook those that ran only there"
                        .to_string(),
                );
            }
        }
        Ok(undone)
    }
}
