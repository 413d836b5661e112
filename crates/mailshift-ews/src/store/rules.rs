//! Inbox rules of an [`EwsStore`]'s mailbox, for the rules engine (the main crate's
//! `apply::content::rules::ews`): GetInboxRules (each `t:Rule` with its RuleId, as XML that
//! `mailshift_core::rules::ews::from_ews` reads), UpdateInboxRules (the operation element
//! `mailshift_core::rules::ews::update_inbox_rules` builds: this crate only carries it), and
//! the mail folders a rule's MoveToFolder names, as paths from the top of the mailbox
//! (`INBOX/Bills`: display names joined by `/`, the inbox named `INBOX` as IMAP names it),
//! created level by level when a rule files into a folder the mailbox lacks.

use mailshift_dav::error::ErrorKind;
use mailshift_dav::store::StoreResult;

use super::EwsStore;
use crate::http::error;
use crate::requests;
use crate::xml::{self, Node};

/// A rule the mailbox holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldRule {
    /// Exchange's RuleId: what UpdateInboxRules deletes or sets.
    pub id: String,
    /// The `t:Rule` element as Exchange gave it (prefix `t:`, no namespace declaration).
    pub xml: String,
}

/// A mail folder of the mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailFolder {
    pub id: String,
    /// From the top of the mailbox, `/` between levels; the inbox is `INBOX`.
    pub path: String,
    /// `inbox`, `deleteditems`, `junkemail` when it is one of those.
    pub distinguished: Option<String>,
}

/// The distinguished folders a rule may name by their distinguished id.
const DISTINGUISHED: [&str; 3] = ["inbox", "deleteditems", "junkemail"];

impl EwsStore {
    /// The mailbox's rules in the order of their Priority, and whether it has Outlook's
    /// client-side rules blob (which UpdateInboxRules must remove, rules that only Outlook
    /// runs with it).
    pub async fn get_inbox_rules(&self) -> StoreResult<(Vec<HeldRule>, bool)> {
        let what = format!("reading the inbox rules of {}", self.mailbox);
        let message = self
            .one(requests::get_inbox_rules(&self.mailbox), &what)
            .await?;
        if !message.is_success() {
            return Err(message.to_error(&what));
        }
        let mut out: Vec<(i64, HeldRule)> = message
            .node
            .child("InboxRules")
            .map(|list| {
                list.all("Rule")
                    .map(|r| {
                        let priority = r
                            .text_of("Priority")
                            .and_then(|p| p.trim().parse().ok())
                            .unwrap_or(i64::MAX);
                        let id = r.text_of("RuleId").unwrap_or_default().trim().to_string();
                        (priority, HeldRule { id, xml: xml_of(r) })
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by_key(|(p, _)| *p);
        let blob = message
            .node
            .text_of("OutlookRuleBlobExists")
            .is_some_and(|b| b.trim() == "true");
        Ok((out.into_iter().map(|(_, r)| r).collect(), blob))
    }

    /// Sends one UpdateInboxRules (`body` is its `m:UpdateInboxRules` element). Exchange
    /// applies all of its operations or none, so a run cut here leaves the old rules or the
    /// new ones.
    pub async fn update_inbox_rules(&self, body: &str) -> StoreResult<()> {
        let what = format!("writing the inbox rules of {}", self.mailbox);
        let messages = self.client.call("UpdateInboxRules", body).await?;
        let Some(message) = messages.first() else {
            return Err(error(
                ErrorKind::Network,
                format!("{what}: Exchange answered with no response message"),
            ));
        };
        if message.is_success() {
            return Ok(());
        }
        // Name what Exchange refused in each operation, not only its summary.
        let mut e = message.to_error(&what);
        let details: Vec<String> = message
            .node
            .child("RuleOperationErrors")
            .map(|list| {
                list.all("RuleOperationError")
                    .flat_map(|op| {
                        let index = op.text_of("OperationIndex").unwrap_or("?").to_string();
                        op.child("ValidationErrors")
                            .map(|v| v.all("Error").cloned().collect::<Vec<_>>())
                            .unwrap_or_default()
                            .into_iter()
                            .map(move |err| {
                                format!(
                                    "operation {index}: {} {} ({})",
                                    err.text_of("FieldURI").unwrap_or_default(),
                                    err.text_of("ErrorCode").unwrap_or_default(),
                                    err.text_of("ErrorMessage").unwrap_or_default()
                                )
                            })
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !details.is_empty() {
            e.message.push_str(&format!(": {}", details.join("; ")));
        }
        Err(e)
    }

    /// The mailbox's mail folders (contacts, calendars and tasks folders left out), with
    /// their paths.
    pub async fn mail_folders(&self) -> StoreResult<Vec<MailFolder>> {
        let all = self.all_folders().await?;
        let what = format!("reading the inbox and deleted items of {}", self.mailbox);
        let messages = self
            .client
            .call(
                "GetFolder",
                &requests::get_distinguished_folders(&DISTINGUISHED).1,
            )
            .await?;
        let mut distinguished = Vec::new();
        for (name, message) in DISTINGUISHED.iter().zip(&messages) {
            if !message.is_success() {
                if message.code == "ErrorFolderNotFound" {
                    continue;
                }
                return Err(message.to_error(&what));
            }
            if let Some(id) = message
                .node
                .at(&["Folders"])
                .and_then(|f| f.children.first())
                .and_then(|f| f.child("FolderId"))
                .and_then(|f| f.attr("Id"))
            {
                distinguished.push((id.to_string(), name.to_string()));
            }
        }
        Ok(paths(&all, &distinguished))
    }

    /// The folder at `path`, created (with any missing parent) when the mailbox lacks it.
    pub async fn ensure_mail_folder(&self, path: &str) -> StoreResult<MailFolder> {
        let mut folders = self.mail_folders().await?;
        if let Some(f) = folders.iter().find(|f| f.path == path) {
            return Ok(f.clone());
        }
        let mut parent = "msgfolderroot".to_string();
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
                parent = f.id.clone();
                continue;
            }
            let what = format!("creating the folder {at:?} in {}", self.mailbox);
            let message = self
                .one(requests::create_mail_folder(&parent, level), &what)
                .await?;
            if !message.is_success() && message.code != "ErrorFolderExists" {
                return Err(message.to_error(&what));
            }
            folders = self.mail_folders().await?;
            parent = folders
                .iter()
                .find(|f| f.path == at)
                .map(|f| f.id.clone())
                .ok_or_else(|| {
                    error(
                        ErrorKind::Network,
                        format!("{what}: created, but not listed afterwards"),
                    )
                })?;
        }
        folders.into_iter().find(|f| f.path == path).ok_or_else(|| {
            error(
                ErrorKind::Network,
                format!(
                    "the folder {path:?} of {} is not listed after its creation",
                    self.mailbox
                ),
            )
        })
    }
}

/// Each mail folder's path, from the ParentFolderIds of a deep FindFolder (a folder whose
/// parent is not listed is at the top).
fn paths(all: &[Node], distinguished: &[(String, String)]) -> Vec<MailFolder> {
    let id_of = |f: &Node| {
        f.child("FolderId")
            .and_then(|i| i.attr("Id"))
            .map(str::to_string)
    };
    let parent_of = |f: &Node| {
        f.child("ParentFolderId")
            .and_then(|i| i.attr("Id"))
            .map(str::to_string)
    };
    let by_id: std::collections::HashMap<String, &Node> =
        all.iter().filter_map(|f| Some((id_of(f)?, f))).collect();
    let is_mail = |f: &Node| {
        f.text_of("FolderClass")
            .is_none_or(|c| c == "IPF.Note" || c.starts_with("IPF.Note."))
    };
    let name_of = |id: &str, f: &Node| -> String {
        match distinguished.iter().find(|(i, _)| i == id) {
            Some((_, d)) if d == "inbox" => "INBOX".to_string(),
            _ => f.text_of("DisplayName").unwrap_or(id).to_string(),
        }
    };
    let mut out = Vec::new();
    for f in all.iter().filter(|f| is_mail(f)) {
        let Some(id) = id_of(f) else { continue };
        let mut levels = vec![name_of(&id, f)];
        let mut up = parent_of(f);
        // Bounded: a loop in the parents (a broken answer) cannot hang the run.
        for _ in 0..64 {
            let Some(p) = up
                .as_ref()
                .and_then(|p| by_id.get(p).map(|n| (p.clone(), *n)))
            else {
                break;
            };
            levels.push(name_of(&p.0, p.1));
            up = parent_of(p.1);
        }
        levels.reverse();
        out.push(MailFolder {
            distinguished: distinguished
                .iter()
                .find(|(i, _)| *i == id)
                .map(|(_, d)| d.clone()),
            id,
            path: levels.join("/"),
        });
    }
    out
}

/// An element of an answer written back as XML, every element prefixed `t:` (a `t:Rule`
/// and all it holds are in the types namespace).
fn xml_of(node: &Node) -> String {
    let mut out = format!("<t:{}", node.name);
    for (k, v) in &node.attrs {
        out.push_str(&format!(" {k}=\"{}\"", xml::escape(v)));
    }
    out.push('>');
    out.push_str(&xml::escape(&node.text));
    for c in &node.children {
        out.push_str(&xml_of(c));
    }
    out.push_str(&format!("</t:{}>", node.name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(id: &str, parent: &str, name: &str, class: &str) -> Node {
        let mut n = xml::parse(&format!(
            "<Folder><FolderId Id=\"{id}\"/><ParentFolderId Id=\"{parent}\"/>\
             <DisplayName>{name}</DisplayName><FolderClass>{class}</FolderClass></Folder>"
        ))
        .unwrap();
        n.ns.clear();
        n
    }

    #[test]
    fn paths_follow_the_parents_and_name_the_inbox_as_imap_does() {
        let all = vec![
            folder("I", "ROOT", "Boîte de réception", "IPF.Note"),
            folder("B", "I", "Bills", "IPF.Note"),
            folder("C", "ROOT", "Contacts", "IPF.Contact"),
            folder("A", "ROOT", "Archive", "IPF.Note"),
        ];
        let got = paths(&all, &[("I".into(), "inbox".into())]);
        let shown: Vec<(&str, &str)> = got
            .iter()
            .map(|f| (f.id.as_str(), f.path.as_str()))
            .collect();
        assert_eq!(
            shown,
            vec![("I", "INBOX"), ("B", "INBOX/Bills"), ("A", "Archive")]
        );
        assert_eq!(got[0].distinguished.as_deref(), Some("inbox"));
    }

    #[test]
    fn a_rule_reads_back_as_the_xml_it_came_as() {
        let node = xml::parse(
            "<x:Rule xmlns:x=\"urn:t\"><x:DisplayName>A &amp; B</x:DisplayName>\
             <x:Actions><x:MoveToFolder><x:FolderId Id=\"F&quot;1\"/></x:MoveToFolder></x:Actions></x:Rule>",
        )
        .unwrap();
        assert_eq!(
            xml_of(&node),
            "<t:Rule><t:DisplayName>A &amp; B</t:DisplayName><t:Actions><t:MoveToFolder>\
             <t:FolderId Id=\"F&quot;1\"></t:FolderId></t:MoveToFolder></t:Actions></t:Rule>"
        );
    }
}
