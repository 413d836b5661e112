//! [`EwsStore`]: one Exchange mailbox as a [`Store`] of mailshift-dav's engine, so that
//! contacts, calendars and tasks are copied to and from Exchange by the same exactly-once
//! protocol as CardDAV/CalDAV.
//!
//! Collections are the mailbox's contact, calendar and task folders (FindFolder Deep from
//! msgfolderroot, by exact FolderClass, the default folders included), named by DisplayName;
//! new ones are created under the default folder of their kind.
//!
//! Hrefs: the engine chooses an object's name, Exchange its ItemId. Every item mailshift
//! creates carries our extended property `mailshift-key` with that name, so its href is
//! `FOLDER/NAME`; an item without one (created by someone else) is `FOLDER/id:ITEMID`. Ids are
//! written with `%` and `/` percent-encoded, so an href splits at its one `/`. The ETag is the
//! ChangeKey. A create first looks the name up (FindItem restricted on the key property) and
//! answers PreconditionFailed when it is there: an item created just before a crash is then
//! adopted, never duplicated. An update is UpdateItem at the recorded ChangeKey
//! (NeverOverwrite: a changed item fails ErrorIrresolvableConflict → PreconditionFailed).
//!
//! Incremental runs: a source folder is listed by SyncFolderItems from an empty state (pages
//! of up to 512, until `IncludesLastItemInRange`), which gives with the listing the SyncState
//! the engine records ([`Store::list_with_token`]); the next run asks SyncFolderItems from it
//! and reads only what was created, updated or deleted. A change to an occurrence of a series
//! is reported by Exchange as an Update of its master (exceptions live in the master), which
//! is the unit the engine copies. A refused state (`ErrorInvalidSyncStateData`: expired, or of
//! another folder) makes the engine list again. A Delete names only an ItemId: an item
//! carrying our name that this process never saw is reported by id and counted as kept
//! (removals are never carried, so only the report's count is affected).
//!
//! No write ever sends a meeting request or cancellation (`SendToNone` on every CreateItem,
//! UpdateItem and DeleteItem). What Exchange cannot carry is kept in [`EwsStore::losses`] for
//! the caller to report.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;

use mailshift_dav::error::ErrorKind;
use mailshift_dav::store::{
    Collection, Component, Delta, Fetched, Listed, Listing, Precondition, PutOutcome, Store,
    StoreResult,
};
use sha2::{Digest, Sha256};

use crate::client::{Client, Message};
use crate::config::EwsConfig;
use crate::convert::{self, calendar::Series};
use crate::http::error;
use crate::requests::{self, Id, Kind};
use crate::xml::Node;

mod rules;
pub use rules::{HeldRule, MailFolder};

/// Items read per GetItem.
const GET_BATCH: usize = 50;

/// Where an href points.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// An item carrying our key property with this name.
    Named(String),
    /// An item without our key, by ItemId.
    Item(String),
}

fn enc(id: &str) -> String {
    id.replace('%', "%25").replace('/', "%2F")
}

fn dec(id: &str) -> String {
    id.replace("%2F", "/")
        .replace("%2f", "/")
        .replace("%25", "%")
}

/// Splits an href into its folder id and target.
fn split(href: &str) -> Option<(String, Target)> {
    let (folder, rest) = href.split_once('/')?;
    if folder.is_empty() || rest.is_empty() {
        return None;
    }
    let target = match rest.strip_prefix("id:") {
        Some(id) => Target::Item(dec(id)),
        None => Target::Named(rest.to_string()),
    };
    Some((dec(folder), target))
}

fn item_href(folder: &str, item: &Node) -> Option<(String, Id)> {
    let id = item_id(item)?;
    let href = match convert::read_key(item) {
        Some(name) => format!("{}/{name}", enc(folder)),
        None => format!("{}/id:{}", enc(folder), enc(&id.id)),
    };
    Some((href, id))
}

fn item_id(item: &Node) -> Option<Id> {
    let node = item.child("ItemId")?;
    Some(Id {
        id: node.attr("Id")?.to_string(),
        change_key: node.attr("ChangeKey").map(str::to_string),
    })
}

/// A UID for an item that carries none of its own or of ours: derived from its ItemId, so the
/// same item gets the same UID at every read.
fn fallback_uid(item: &Node) -> String {
    item_id(item)
        .map(|id| {
            let digest = Sha256::digest(id.id.as_bytes());
            let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
            format!("ews-{hex}")
        })
        .unwrap_or_default()
}

/// The fields of an item as Exchange keeps them, in a fixed order: what Exchange gives every
/// item (Sensitivity and Importance `Normal`) is left out, a text body loses its trailing
/// newlines (Exchange ends bodies its own way), and the order is sorted (Exchange returns
/// phone numbers and addresses in its dictionary's order, not in the source's).
fn kept_fields(o: &convert::Outgoing) -> String {
    const DEFAULTS: [&str; 2] = [
        "<t:Sensitivity>Normal</t:Sensitivity>",
        "<t:Importance>Normal</t:Importance>",
    ];
    let mut fields: Vec<String> = o
        .item_fields
        .iter()
        .chain(o.uid.iter())
        .chain(o.fields.iter())
        .filter(|f| !DEFAULTS.contains(&f.xml.as_str()))
        .map(|f| {
            let xml = match f.xml.strip_suffix("</t:Body>") {
                Some(body) => format!("{}</t:Body>", body.trim_end()),
                None => f.xml.clone(),
            };
            format!("{:?} {:?} {:?} {xml:?}", f.uri, f.container, f.entry)
        })
        .collect();
    fields.sort();
    format!("{:?}", (o.element, fields, &o.photo, &o.zone))
}

fn kind_of(component: Component) -> Option<Kind> {
    match component {
        Component::Card => Some(Kind::Contacts),
        Component::Event => Some(Kind::Calendar),
        Component::Task => Some(Kind::Tasks),
        Component::Journal => None,
    }
}

/// One Exchange mailbox.
pub struct EwsStore {
    client: Client,
    mailbox: String,
    /// href → ItemId, learnt from listings and writes (saves a FindItem per object).
    ids: Mutex<HashMap<String, String>>,
    lost: Mutex<Vec<String>>,
    /// The components this store was asked collections of: the engine opens a store per kind
    /// of content and lists its collections first, so a folder created "like" a source
    /// calendar holding both events and tasks is made of the kind being copied.
    asked: Mutex<Vec<Component>>,
}

impl std::fmt::Debug for EwsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EwsStore")
            .field("client", &self.client)
            .field("mailbox", &self.mailbox)
            .finish()
    }
}

impl EwsStore {
    /// Connects to the mailbox of `config` (finding its EWS URL by Autodiscover when
    /// `config.url` is empty). Nothing is sent until the first operation.
    pub async fn connect(mut config: EwsConfig) -> StoreResult<EwsStore> {
        if config.url.trim().is_empty() {
            config.url = crate::autodiscover::discover(&config).await?;
        }
        Ok(EwsStore {
            client: Client::new(&config)?,
            mailbox: config.mailbox.clone(),
            ids: Mutex::new(HashMap::new()),
            lost: Mutex::new(Vec::new()),
            asked: Mutex::new(Vec::new()),
        })
    }

    /// What could not be carried so far, one line per object and field.
    pub fn losses(&self) -> Vec<String> {
        self.lost.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn note_lost(&self, href: &str, lost: &[String]) {
        if lost.is_empty() {
            return;
        }
        if let Ok(mut all) = self.lost.lock() {
            all.extend(lost.iter().map(|l| format!("{href}: {l} not carried")));
        }
    }

    fn remember(&self, href: &str, id: &str) {
        if let Ok(mut ids) = self.ids.lock() {
            ids.insert(href.to_string(), id.to_string());
        }
    }

    fn forget(&self, href: &str) {
        if let Ok(mut ids) = self.ids.lock() {
            ids.remove(href);
        }
    }

    /// One call whose single response message must succeed.
    async fn one(&self, request: (&str, String), what: &str) -> StoreResult<Message> {
        self.one_in(request, None, what).await
    }

    /// [`EwsStore::one`] in a time-zone context (a Windows id).
    async fn one_in(
        &self,
        request: (&str, String),
        zone: Option<&str>,
        what: &str,
    ) -> StoreResult<Message> {
        let (operation, body) = request;
        let mut messages = self.client.call_in(operation, zone, &body).await?;
        if messages.is_empty() {
            return Err(error(
                ErrorKind::Network,
                format!("{what}: Exchange answered {operation} with no response message"),
            ));
        }
        Ok(messages.remove(0))
    }

    async fn default_folders(&self) -> StoreResult<Vec<(Kind, Node)>> {
        let what = format!("reading the default folders of {}", self.mailbox);
        let (operation, body) = requests::get_default_folders();
        let messages = self.client.call(operation, &body).await?;
        let mut out = Vec::new();
        for (kind, message) in [Kind::Contacts, Kind::Calendar, Kind::Tasks]
            .into_iter()
            .zip(messages)
        {
            if !message.is_success() {
                // A mailbox without, say, a tasks folder has simply none.
                if message.code == "ErrorFolderNotFound" {
                    continue;
                }
                return Err(message.to_error(&what));
            }
            if let Some(folder) = message
                .node
                .child("Folders")
                .and_then(|f| f.children.first())
            {
                out.push((kind, folder.clone()));
            }
        }
        Ok(out)
    }

    async fn all_folders(&self) -> StoreResult<Vec<Node>> {
        let what = format!("listing the folders of {}", self.mailbox);
        let mut out = Vec::new();
        loop {
            let message = self.one(requests::find_folders(out.len()), &what).await?;
            if !message.is_success() {
                return Err(message.to_error(&what));
            }
            let root = message.node.child("RootFolder");
            let page: Vec<Node> = root
                .and_then(|r| r.child("Folders"))
                .map(|f| f.children.clone())
                .unwrap_or_default();
            let last = root
                .and_then(|r| r.attr("IncludesLastItemInRange"))
                .is_none_or(|v| v == "true");
            let empty = page.is_empty();
            out.extend(page);
            if last || empty {
                return Ok(out);
            }
        }
    }

    fn collection(folder: &Node, component: Component) -> Option<Collection> {
        let id = folder.child("FolderId")?.attr("Id")?;
        let display = folder.text_of("DisplayName").unwrap_or(id).to_string();
        Some(Collection {
            name: display.clone(),
            href: format!("{}/", enc(id)),
            display_name: Some(display),
            color: None,
            description: None,
            components: vec![component],
            sync_token: None,
            ctag: None,
            vcard_versions: vec!["4.0".into(), "3.0".into()],
            max_size: None,
        })
    }

    /// The ItemId (and current ChangeKey) of an href, None when no such item is there.
    async fn resolve(&self, href: &str) -> StoreResult<Option<Id>> {
        let Some((folder, target)) = split(href) else {
            return Err(error(
                ErrorKind::Bug,
                format!("{href:?} is not an href of an Exchange item"),
            ));
        };
        let name = match target {
            Target::Item(id) => {
                return Ok(Some(Id {
                    id,
                    change_key: None,
                }));
            }
            Target::Named(name) => name,
        };
        let what = format!("looking up {href} in {}", self.mailbox);
        let message = self
            .one(requests::find_items(&folder, 0, Some(&name)), &what)
            .await?;
        if !message.is_success() {
            if message.code == "ErrorItemNotFound" || message.code == "ErrorFolderNotFound" {
                return Ok(None);
            }
            return Err(message.to_error(&what));
        }
        let found = message
            .node
            .at(&["RootFolder", "Items"])
            .and_then(|items| items.children.iter().find_map(item_id));
        if let Some(id) = &found {
            self.remember(href, &id.id);
        }
        Ok(found)
    }

    async fn get_items(&self, ids: &[Id], what: &str) -> StoreResult<Vec<Option<Node>>> {
        self.get_items_in(ids, None, what).await
    }

    async fn get_items_in(
        &self,
        ids: &[Id],
        zone: Option<&str>,
        what: &str,
    ) -> StoreResult<Vec<Option<Node>>> {
        let (operation, body) = requests::get_items(ids);
        let messages = self.client.call_in(operation, zone, &body).await?;
        let mut out = Vec::new();
        for message in messages {
            if !message.is_success() {
                if message.code == "ErrorItemNotFound" {
                    out.push(None);
                    continue;
                }
                return Err(message.to_error(what));
            }
            out.push(
                message
                    .node
                    .child("Items")
                    .and_then(|i| i.children.first())
                    .cloned(),
            );
        }
        Ok(out)
    }

    /// The base64 of a contact's photo, when it has one.
    async fn photo(&self, item: &Node, what: &str) -> StoreResult<Option<String>> {
        let Some(id) = item
            .child("Attachments")
            .into_iter()
            .flat_map(|a| a.children.iter())
            .find(|a| a.text_of("IsContactPhoto") == Some("true"))
            .and_then(|a| a.child("AttachmentId"))
            .and_then(|a| a.attr("Id"))
        else {
            return Ok(None);
        };
        let message = self.one(requests::get_attachments(&[id]), what).await?;
        if !message.is_success() {
            return Err(message.to_error(what));
        }
        Ok(message
            .node
            .find("Content")
            .map(|c| c.text.trim().to_string()))
    }

    fn convert_out(&self, component: Component, data: &[u8]) -> Result<Series, String> {
        let single = |master| Series {
            master,
            deleted: Vec::new(),
            modified: Vec::new(),
        };
        match component {
            Component::Card => convert::contact::to_ews(data).map(single),
            Component::Task => convert::task::to_ews(data).map(single),
            Component::Event => convert::calendar::to_ews(data, &self.mailbox),
            Component::Journal => Err("Exchange keeps no journal entries".into()),
        }
    }

    /// A calendar item read in its own zone, with its modified occurrences.
    async fn read_series(&self, item: Node, what: &str) -> StoreResult<Vec<u8>> {
        let zone = convert::calendar::item_zone(&item);
        let occurrence_ids: Vec<Id> = item
            .child("ModifiedOccurrences")
            .iter()
            .flat_map(|m| m.all("Occurrence"))
            .filter_map(item_id)
            .collect();
        let (master, occurrences) = match (&zone, item_id(&item)) {
            (Some(z), Some(id)) => {
                let mut ids = vec![id];
                ids.extend(occurrence_ids);
                let mut read = self.get_items_in(&ids, Some(z), what).await?;
                let master = read.remove(0).unwrap_or(item);
                (master, read.into_iter().flatten().collect::<Vec<_>>())
            }
            _ if occurrence_ids.is_empty() => (item, Vec::new()),
            _ => {
                let read = self.get_items(&occurrence_ids, what).await?;
                (item, read.into_iter().flatten().collect())
            }
        };
        let master = self.zone_defined(master).await?;
        Ok(convert::calendar::from_ews(
            &master,
            &occurrences,
            &fallback_uid(&master),
        ))
    }

    /// The item with its zone's definition: when its StartTimeZone came back as an Id alone,
    /// the one Exchange publishes for it (GetServerTimeZones), from which its times are read
    /// and its VTIMEZONE made. Without one, its times stay in UTC.
    async fn zone_defined(&self, mut item: Node) -> StoreResult<Node> {
        let Some(id) = convert::calendar::item_zone(&item) else {
            return Ok(item);
        };
        if item
            .child("StartTimeZone")
            .is_some_and(|z| z.child("Periods").is_some())
        {
            return Ok(item);
        }
        let (operation, body) = requests::server_time_zone(&id);
        let messages = self.client.call(operation, &body).await?;
        let published = messages
            .iter()
            .filter(|m| m.is_success())
            .find_map(|m| m.node.find("TimeZoneDefinition"));
        if let Some(def) = published {
            let mut def = def.clone();
            def.name = "StartTimeZone".into();
            item.children.retain(|c| c.name != "StartTimeZone");
            item.children.push(def);
        }
        Ok(item)
    }

    /// Deletes and modifies the occurrences of a series just written, then answers its
    /// ChangeKey now (each change of an occurrence changes the master's).
    async fn exceptions(
        &self,
        href: &str,
        master: &Id,
        series: &Series,
    ) -> StoreResult<Option<String>> {
        let zone = series.master.zone.as_deref();
        let mut lost = Vec::new();
        if !series.deleted.is_empty() {
            let what = format!("deleting occurrences of {href} in {}", self.mailbox);
            let (operation, body) = requests::delete_occurrences(&master.id, &series.deleted);
            // By position: no times, so no time-zone context (DeleteItem takes none).
            let messages = self.client.call(operation, &body).await?;
            for (n, message) in series.deleted.iter().zip(messages) {
                // Deleted by an earlier, interrupted write: nothing left to do.
                let done = message.is_success()
                    || message.code == "ErrorCalendarOccurrenceIsDeletedFromRecurrence"
                    || message.code == "ErrorItemNotFound";
                if !done {
                    let failure = message.to_error(&what);
                    if failure.kind != ErrorKind::Refused {
                        return Err(failure);
                    }
                    lost.push(format!("the deletion of occurrence {n} ({})", message.code));
                }
            }
        }
        for (n, occurrence) in &series.modified {
            let what = format!("modifying occurrence {n} of {href} in {}", self.mailbox);
            let message = self
                .one_in(
                    requests::update_occurrence(
                        &master.id,
                        *n,
                        &occurrence.updates_xml(&convert::calendar::inherited(&series.master)),
                    ),
                    zone,
                    &what,
                )
                .await?;
            if !message.is_success() {
                let failure = message.to_error(&what);
                if failure.kind != ErrorKind::Refused {
                    return Err(failure);
                }
                lost.push(format!("the changes of occurrence {n} ({})", message.code));
            }
        }
        self.note_lost(href, &lost);
        if series.deleted.is_empty() && series.modified.is_empty() {
            return Ok(master.change_key.clone());
        }
        Ok(self.resolve(href).await?.and_then(|id| id.change_key))
    }

    fn convert_in(&self, item: &Node, photo: Option<&str>) -> Vec<u8> {
        let fallback = fallback_uid(item);
        match item.name.as_str() {
            "Task" => convert::task::from_ews(item, &fallback),
            _ => convert::contact::from_ews(item, photo, &fallback),
        }
    }

    /// A per-item answer as the engine takes it: refusals of this one object, or failures of
    /// the whole side.
    fn outcome(message: &Message, what: &str) -> StoreResult<PutOutcome> {
        match message.code.as_str() {
            "ErrorIrresolvableConflict" | "ErrorItemNotFound" | "ErrorStaleObject" => {
                Ok(PutOutcome::PreconditionFailed)
            }
            _ => {
                let failure = message.to_error(what);
                if failure.kind == ErrorKind::Refused {
                    Ok(PutOutcome::Refused {
                        status: 400,
                        reason: failure.message,
                    })
                } else {
                    Err(failure)
                }
            }
        }
    }

    async fn create(
        &self,
        folder: &str,
        href: &str,
        name: &str,
        series: &Series,
    ) -> StoreResult<PutOutcome> {
        let out = &series.master;
        let what = format!("creating {href} in {}", self.mailbox);
        let message = self
            .one_in(
                requests::create_item(folder, &out.create_xml(name), true),
                out.zone.as_deref(),
                &what,
            )
            .await?;
        if !message.is_success() {
            return Self::outcome(&message, &what);
        }
        let Some(mut id) = message
            .node
            .child("Items")
            .and_then(|i| i.children.first())
            .and_then(item_id)
        else {
            return Err(error(
                ErrorKind::Network,
                format!("{what}: Exchange named no ItemId for the new item"),
            ));
        };
        self.remember(href, &id.id);
        self.note_lost(href, &out.lost);
        if let Some(photo) = &out.photo {
            let what = format!("attaching the photo of {href} in {}", self.mailbox);
            let message = self
                .one(requests::create_contact_photo(&id, photo), &what)
                .await?;
            if !message.is_success() {
                self.note_lost(href, &[format!("the photo ({})", message.code)]);
            } else if let Some(ck) = message
                .node
                .find("AttachmentId")
                .and_then(|a| a.attr("RootItemChangeKey"))
            {
                id.change_key = Some(ck.to_string());
            }
        }
        let etag = self.exceptions(href, &id, series).await?;
        Ok(PutOutcome::Written { etag })
    }

    async fn update(&self, href: &str, id: Id, series: &Series) -> StoreResult<PutOutcome> {
        let out = &series.master;
        let what = format!("updating {href} in {}", self.mailbox);
        let current = match self
            .get_items(std::slice::from_ref(&id), &what)
            .await?
            .pop()
        {
            Some(Some(item)) => item,
            _ => return Ok(PutOutcome::PreconditionFailed),
        };
        if item_id(&current).and_then(|i| i.change_key) != id.change_key {
            return Ok(PutOutcome::PreconditionFailed);
        }
        let present = match current.name.as_str() {
            "Task" => convert::task::present(&current),
            "CalendarItem" => convert::calendar::present(&current),
            _ => convert::contact::present(&current),
        };
        let message = self
            .one_in(
                requests::update_item(&id, &out.updates_xml(&present), true),
                out.zone.as_deref(),
                &what,
            )
            .await?;
        if !message.is_success() {
            return Self::outcome(&message, &what);
        }
        let mut lost = out.lost.clone();
        if out.photo.is_some() {
            lost.push("a changed photo (photos are copied when the contact is created)".into());
        }
        self.note_lost(href, &lost);
        let updated = Id {
            id: id.id.clone(),
            change_key: message
                .node
                .child("Items")
                .and_then(|i| i.children.first())
                .and_then(item_id)
                .and_then(|i| i.change_key),
        };
        let etag = self.exceptions(href, &updated, series).await?;
        Ok(PutOutcome::Written { etag })
    }
    /// SyncFolderItems of a folder from `state` (None: from the start) to the end, page by
    /// page; `None` when Exchange refuses the state (expired, corrupt, of another folder).
    async fn sync_items(
        &self,
        collection: &Collection,
        state: Option<&str>,
    ) -> StoreResult<Option<Delta>> {
        let folder = dec(collection.href.trim_end_matches('/'));
        let what = format!(
            "reading the changes of {} of {}",
            collection.name, self.mailbox
        );
        let mut state = state.map(str::to_string);
        let mut delta = Delta {
            changed: Vec::new(),
            removed: Vec::new(),
            token: String::new(),
        };
        loop {
            let message = self
                .one(
                    requests::sync_folder_items(&folder, state.as_deref()),
                    &what,
                )
                .await?;
            if !message.is_success() {
                // An expired or foreign state: the engine lists instead.
                if message.code == "ErrorInvalidSyncStateData" {
                    return Ok(None);
                }
                return Err(message.to_error(&what));
            }
            for change in message
                .node
                .child("Changes")
                .iter()
                .flat_map(|c| c.children.iter())
            {
                match change.name.as_str() {
                    // A series is one item: a change to one of its occurrences (modified,
                    // deleted) changes the master, which Exchange reports as its Update.
                    "Create" | "Update" => {
                        if let Some((href, id)) =
                            change.children.first().and_then(|i| item_href(&folder, i))
                        {
                            self.remember(&href, &id.id);
                            delta.removed.retain(|r| *r != href);
                            delta.changed.retain(|l| l.href != href);
                            delta.changed.push(Listed {
                                href,
                                etag: id.change_key,
                            });
                        }
                    }
                    "Delete" => {
                        // Only the ItemId is given: the href of an item carrying our name is
                        // found in what this store has seen (an item of someone else's has
                        // its href from its id). A named item deleted before this process saw
                        // it is reported by id, so it is counted as kept, never as a change.
                        if let Some(id) = change.child("ItemId").and_then(|i| i.attr("Id")) {
                            let known = self.ids.lock().ok().and_then(|ids| {
                                ids.iter().find(|(_, v)| *v == id).map(|(k, _)| k.clone())
                            });
                            let href =
                                known.unwrap_or_else(|| format!("{}/id:{}", enc(&folder), enc(id)));
                            self.forget(&href);
                            delta.changed.retain(|l| l.href != href);
                            delta.removed.push(href);
                        }
                    }
                    // ReadFlagChange is of messages only: contacts, calendar items and tasks
                    // carry no read flag, and nothing else is reported for them.
                    _ => {}
                }
            }
            let next = message
                .node
                .text_of("SyncState")
                .unwrap_or_default()
                .to_string();
            let last = message.node.text_of("IncludesLastItemInRange") != Some("false");
            if last {
                delta.token = next;
                return Ok(Some(delta));
            }
            if state.as_deref() == Some(next.as_str()) {
                return Err(error(
                    ErrorKind::Network,
                    format!("{what}: Exchange gave the same SyncState again without the last item"),
                ));
            }
            state = Some(next);
        }
    }
}

impl Store for EwsStore {
    async fn collections(&self, component: Component) -> StoreResult<Vec<Collection>> {
        let Some(kind) = kind_of(component) else {
            return Ok(Vec::new());
        };
        if let Ok(mut asked) = self.asked.lock() {
            asked.push(component);
        }
        let mut out: Vec<Collection> = Vec::new();
        for (k, folder) in self.default_folders().await? {
            if k == kind
                && let Some(c) = Self::collection(&folder, component)
            {
                out.push(c);
            }
        }
        for folder in self.all_folders().await? {
            // The exact class: subclasses are Exchange's own hidden folders (Recipient Cache
            // `IPF.Contact.RecipientCache`, Birthdays `IPF.Appointment.Birthday`, Skype's
            // `IPF.Contact.MOC.*`), which are not the user's.
            let wanted = folder.text_of("FolderClass") == Some(kind.folder_class());
            if wanted
                && let Some(c) = Self::collection(&folder, component)
                && !out.iter().any(|o| o.href == c.href)
            {
                out.push(c);
            }
        }
        Ok(out)
    }

    async fn create_collection(&self, name: &str, like: &Collection) -> StoreResult<Collection> {
        let asked = self.asked.lock().map(|a| a.clone()).unwrap_or_default();
        let component = asked
            .iter()
            .rev()
            .find(|c| like.components.contains(c))
            .or(like.components.first())
            .copied()
            .unwrap_or(Component::Card);
        let Some(kind) = kind_of(component) else {
            return Err(error(
                ErrorKind::Config,
                format!("Exchange has no folder for journals (creating {name})"),
            ));
        };
        let existing = |all: Vec<Collection>| all.into_iter().find(|c| c.name == name);
        if let Some(found) = existing(self.collections(component).await?) {
            return Ok(found);
        }
        let what = format!("creating the folder {name:?} in {}", self.mailbox);
        let message = self.one(requests::create_folder(kind, name), &what).await?;
        if !message.is_success() && message.code != "ErrorFolderExists" {
            return Err(message.to_error(&what));
        }
        existing(self.collections(component).await?).ok_or_else(|| {
            error(
                ErrorKind::Network,
                format!("{what}: created, but not listed afterwards"),
            )
        })
    }

    async fn list(&self, collection: &Collection) -> StoreResult<Vec<Listed>> {
        let folder = dec(collection.href.trim_end_matches('/'));
        let what = format!("listing {} of {}", collection.name, self.mailbox);
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let message = self
                .one(requests::find_items(&folder, offset, None), &what)
                .await?;
            if !message.is_success() {
                return Err(message.to_error(&what));
            }
            let root = message.node.child("RootFolder");
            let page: Vec<Node> = root
                .and_then(|r| r.child("Items"))
                .map(|i| i.children.clone())
                .unwrap_or_default();
            offset += page.len();
            for item in &page {
                if let Some((href, id)) = item_href(&folder, item) {
                    self.remember(&href, &id.id);
                    out.push(Listed {
                        href,
                        etag: id.change_key,
                    });
                }
            }
            let last = root
                .and_then(|r| r.attr("IncludesLastItemInRange"))
                .is_none_or(|v| v == "true");
            if last || page.is_empty() {
                return Ok(out);
            }
        }
    }

    /// A full listing by SyncFolderItems from an empty state: every item as a Create, and
    /// the state to ask the changes from next time, which covers exactly what was listed.
    async fn list_with_token(&self, collection: &Collection) -> StoreResult<Listing> {
        match self.sync_items(collection, None).await? {
            Some(delta) => Ok(Listing {
                objects: delta.changed,
                token: Some(delta.token).filter(|t| !t.is_empty()),
            }),
            // Refused from the start: nothing to resume from, so the plain listing.
            None => Ok(Listing {
                objects: self.list(collection).await?,
                token: None,
            }),
        }
    }

    fn listing_token(&self) -> bool {
        true
    }

    async fn changes(&self, collection: &Collection, token: &str) -> StoreResult<Option<Delta>> {
        self.sync_items(collection, Some(token)).await
    }

    async fn fetch(&self, collection: &Collection, hrefs: &[String]) -> StoreResult<Vec<Fetched>> {
        let what = format!("reading {} of {}", collection.name, self.mailbox);
        let mut wanted: Vec<(String, Id)> = Vec::new();
        for href in hrefs {
            let cached = self.ids.lock().ok().and_then(|ids| ids.get(href).cloned());
            let id = match cached {
                Some(id) => Some(Id {
                    id,
                    change_key: None,
                }),
                None => self.resolve(href).await?,
            };
            if let Some(id) = id {
                wanted.push((href.clone(), id));
            }
        }
        let mut out = Vec::new();
        for batch in wanted.chunks(GET_BATCH) {
            let ids: Vec<Id> = batch.iter().map(|(_, id)| id.clone()).collect();
            let items = self.get_items(&ids, &what).await?;
            for ((href, _), item) in batch.iter().zip(items) {
                let Some(item) = item else {
                    self.forget(href);
                    continue;
                };
                let etag = item_id(&item).and_then(|i| i.change_key);
                let data = if item.name == "CalendarItem" {
                    self.read_series(item, &what).await?
                } else {
                    let photo = self.photo(&item, &what).await?;
                    self.convert_in(&item, photo.as_deref())
                };
                out.push(Fetched {
                    href: href.clone(),
                    etag,
                    data,
                });
            }
        }
        Ok(out)
    }

    async fn put(
        &self,
        collection: &Collection,
        href: &str,
        data: &[u8],
        condition: Precondition,
    ) -> StoreResult<PutOutcome> {
        let component = collection
            .components
            .first()
            .copied()
            .unwrap_or(Component::Card);
        let out = match self.convert_out(component, data) {
            Ok(out) => out,
            Err(why) => {
                return Ok(PutOutcome::Refused {
                    status: 422,
                    reason: format!("cannot be made into an Exchange item: {why}"),
                });
            }
        };
        let Some((folder, target)) = split(href) else {
            return Err(error(
                ErrorKind::Bug,
                format!("{href:?} is not an href of an Exchange item"),
            ));
        };
        match condition {
            Precondition::Absent => {
                let Target::Named(name) = target else {
                    return Ok(PutOutcome::PreconditionFailed);
                };
                if self.resolve(href).await?.is_some() {
                    return Ok(PutOutcome::PreconditionFailed);
                }
                self.create(&folder, href, &name, &out).await
            }
            Precondition::Matches(change_key) => match self.resolve(href).await? {
                None => Ok(PutOutcome::PreconditionFailed),
                Some(mut id) => {
                    id.change_key = Some(change_key);
                    self.update(href, id, &out).await
                }
            },
        }
    }

    async fn delete(&self, href: &str, etag: Option<&str>) -> StoreResult<bool> {
        let Some(mut id) = self.resolve(href).await? else {
            return Ok(false);
        };
        id.change_key = etag.map(str::to_string);
        let what = format!("deleting {href} in {}", self.mailbox);
        let message = self.one(requests::delete_item(&id, true), &what).await?;
        if message.is_success() {
            self.forget(href);
            return Ok(true);
        }
        match message.code.as_str() {
            "ErrorItemNotFound" | "ErrorIrresolvableConflict" | "ErrorStaleObject" => Ok(false),
            _ => Err(message.to_error(&what)),
        }
    }

    fn schedules(&self) -> bool {
        false
    }

    fn requires_uid(&self) -> bool {
        true
    }

    /// The fields Exchange keeps of the object (what `put` would send, less what is lost), on
    /// one line: an object read back from Exchange converts to the same fields as the one that
    /// was written, whereas its iCalendar/vCard rendering differs from the source's.
    fn canonical<'a>(&self, component: Component, data: &'a [u8]) -> Cow<'a, [u8]> {
        let Ok(series) = self.convert_out(component, data) else {
            return Cow::Borrowed(data);
        };
        let modified: Vec<(u32, String)> = series
            .modified
            .iter()
            .map(|(n, o)| (*n, kept_fields(o)))
            .collect();
        let line = format!(
            "X-EWS-KEPT:{:?}\r\n",
            (kept_fields(&series.master), &series.deleted, modified)
        );
        Cow::Owned(line.into_bytes())
    }

    fn href_for(&self, collection: &Collection, name: &str, _component: Component) -> String {
        let mut href = collection.href.clone();
        if !href.ends_with('/') {
            href.push('/');
        }
        format!("{href}{name}")
    }

    async fn flush(&self) -> StoreResult<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrefs_split_at_their_one_slash_whatever_the_ids_hold() {
        let folder = "AAMk/AD+x%y==";
        let href = format!("{}/id:{}", enc(folder), enc("AAMk/I/1"));
        assert_eq!(
            split(&href),
            Some((folder.to_string(), Target::Item("AAMk/I/1".into())))
        );
        assert_eq!(
            split(&format!("{}/ann-1", enc(folder))),
            Some((folder.to_string(), Target::Named("ann-1".into())))
        );
        assert_eq!(split("nofolder"), None);
    }
}
