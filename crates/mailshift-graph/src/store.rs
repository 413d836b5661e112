//! [`GraphStore`]: one Microsoft 365 mailbox's contact folders, calendars and To Do lists as a
//! [`Store`].
//!
//! **Hrefs.** The engine chooses an object's href (`href_for(collection, name)`); Graph chooses
//! ids. Every item mailshift creates carries the engine's name (and the source UID, which Graph
//! cannot store as such): contacts and events in single-value extended properties of our own
//! GUID ([`KEY_PROP`], looked up by `$filter`; [`DATA_PROP`], read with the item: one
//! property per request, the form Graph documents for `$expand`), To Do tasks (which have no extended properties in v1.0)
//! in a `linkedResource` whose `applicationName` is `mailshift`. An item's href is
//! `KIND/COLLECTION/NAME` when it carries a name, else `KIND/COLLECTION/id:ID`; its etag is
//! Graph's `@odata.etag`.
//!
//! **Exactly once.** `put(Absent)` first looks the name up (a `$filter` on the extended
//! property; for tasks the list's names, read once per run) and answers `PreconditionFailed`
//! when it is there, so a run cut between the create and its record adopts the item instead of
//! creating a second one; `put(Matches)` is a PATCH with `If-Match` (412: PreconditionFailed).
//! A series' cancelled and modified occurrences are written after the series (DELETE and PATCH
//! of its instances); doing that again finds them done, so an update after a cut completes it.
//!
//! **Attendees.** Graph invites every attendee of an event it creates or an update adds
//! ([`crate::Attendees`]): events are written as the plan chose, by default without attendees.
//!
//! **Losses.** What an object holds that Microsoft 365 cannot (a contact's fourth e-mail,
//! `X-` properties, event attachments) is written without it and kept in
//! [`GraphStore::losses`], one line per object and field, for apply's report.
//!
//! **Incremental runs.** Contacts and To Do tasks by delta query: a full listing starts with a
//! delta round of ids (`…/contacts/delta`, `…/tasks/delta`, `$select=id`) whose deltaLink the
//! engine records ([`Store::list_with_token`]); the next run follows that link and reads only
//! the items it names (`@removed` ones are removals). Delta rounds take no `$expand` (v1.0's
//! published definition declares none), so a changed item is read once by id for its name.
//! A 410 (`syncStateNotFound`, `resyncRequired`) or a link of another service URL makes the
//! engine list again. A removed item carrying our name that this process never saw is named
//! by its id, so it is counted as kept (removals are never carried). Events are listed and
//! compared by etag every run: v1.0 offers event delta only on `calendarView`, which returns
//! the occurrences of a window rather than series, and the engine copies a series as one unit.
//!
//! **Not yet:** contact folders nested in other folders (only top-level ones and the default
//! one are listed).

use std::collections::HashMap;

use futures_util::{StreamExt, stream};
use mailshift_dav::error::ErrorKind;
use mailshift_dav::store::{
    Collection, Component, Delta, Fetched, Listed, Listing, Precondition, PutOutcome, Store,
    StoreError, StoreResult,
};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

use crate::client::{Answer, Call, GraphClient, error, unexpected};
use crate::config::{Attendees, GraphConfig};
use crate::convert::{self, Stamp, contact, event, task};

mod rules;
pub use rules::MailFolder;

/// The property set of mailshift's extended properties: a GUID of ours, fixed forever (items
/// written by an earlier version must still be found).
pub const PROPERTY_SET: &str = "{6f1c0b8e-3a52-4d8b-9f1e-2c7a5d94b3e1}";
/// The engine's name of an item mailshift created.
pub const KEY_PROP: &str = "String {6f1c0b8e-3a52-4d8b-9f1e-2c7a5d94b3e1} Name mailshift-key";
/// The source's UID of an item mailshift created.
/// What else mailshift keeps on an item it created, as JSON: the source's UID (`uid`) and,
/// for an event written without its attendees, their ORGANIZER and ATTENDEE lines
/// (`attendees`).
pub const DATA_PROP: &str = "String {6f1c0b8e-3a52-4d8b-9f1e-2c7a5d94b3e1} Name mailshift-data";
/// The `applicationName` of the linked resource that names a task mailshift created.
pub const TASK_APP: &str = "mailshift";

/// The default contact folder, which Graph does not list among `contactFolders`.
const DEFAULT_CONTACTS: &str = "default";

/// Fetches in flight at once (the client's own gate keeps Graph's limit whatever this is).
const FETCH_PARALLEL: usize = 4;

/// What may be left unescaped in a path segment or a query value.
const SAFE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn enc(text: &str) -> String {
    utf8_percent_encode(text, SAFE).to_string()
}

/// Which of Graph's three item families a collection holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Contacts,
    Calendars,
    Todo,
}

impl Kind {
    fn of(component: Component) -> Option<Kind> {
        match component {
            Component::Card => Some(Kind::Contacts),
            Component::Event => Some(Kind::Calendars),
            Component::Task => Some(Kind::Todo),
            Component::Journal => None,
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Kind::Contacts => "contacts",
            Kind::Calendars => "calendars",
            Kind::Todo => "todo",
        }
    }

    fn from_prefix(prefix: &str) -> Option<Kind> {
        [Kind::Contacts, Kind::Calendars, Kind::Todo]
            .into_iter()
            .find(|k| k.prefix() == prefix)
    }

    fn component(self) -> Component {
        match self {
            Kind::Contacts => Component::Card,
            Kind::Calendars => Component::Event,
            Kind::Todo => Component::Task,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Kind::Contacts => "contact",
            Kind::Calendars => "event",
            Kind::Todo => "task",
        }
    }
}

/// An href taken apart: `KIND/COLLECTION/NAME` or `KIND/COLLECTION/id:ID`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Href {
    kind: Kind,
    collection: String,
    item: Item,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Name(String),
    Id(String),
}

impl Href {
    fn parse(href: &str) -> Option<Href> {
        let mut parts = href.splitn(3, '/');
        let kind = Kind::from_prefix(parts.next()?)?;
        let collection = parts.next().filter(|c| !c.is_empty())?.to_string();
        let rest = parts.next().filter(|r| !r.is_empty() && !r.contains('/'))?;
        let item = match rest.strip_prefix("id:") {
            Some(id) => Item::Id(id.to_string()),
            None => Item::Name(rest.to_string()),
        };
        Some(Href {
            kind,
            collection,
            item,
        })
    }
}

fn collection_href(kind: Kind, id: &str) -> String {
    format!("{}/{id}/", kind.prefix())
}

/// One Microsoft 365 mailbox as a [`Store`].
#[derive(Debug)]
pub struct GraphStore {
    client: GraphClient,
    /// `users/{mailbox}`.
    user: String,
    attendees: Attendees,
    /// Href → Graph id, as learnt from listings and creates (saves a lookup per fetch).
    ids: Mutex<HashMap<String, String>>,
    /// Per To Do list: the names of the tasks mailshift created there → their ids, read once.
    task_names: Mutex<HashMap<String, HashMap<String, String>>>,
    /// The kind the engine last listed collections of: a source calendar holds events and
    /// tasks, and `create_collection` makes the one Graph collection (calendar or To Do list)
    /// of the kind being copied (one store serves one kind of content: see apply's DAV
    /// content, which opens its sides per kind).
    asked: std::sync::Mutex<Option<Kind>>,
    /// What the objects written so far held that Microsoft 365 cannot, one line per object
    /// and field (see [`GraphStore::losses`]).
    lost: std::sync::Mutex<Vec<String>>,
}

impl GraphStore {
    /// A store for one mailbox; fails with a Config error when the configuration cannot work
    /// (the URL, the CA file). Nothing is sent until the first operation.
    pub fn connect(config: GraphConfig) -> Result<GraphStore, StoreError> {
        let client = GraphClient::new(&config)?;
        if config.mailbox.trim().is_empty() {
            return Err(error(
                ErrorKind::Config,
                "no mailbox to open on Microsoft Graph: the account's address is empty",
            ));
        }
        Ok(GraphStore {
            client,
            user: format!("users/{}", enc(config.mailbox.trim())),
            attendees: config.attendees,
            ids: Mutex::new(HashMap::new()),
            task_names: Mutex::new(HashMap::new()),
            asked: std::sync::Mutex::new(None),
            lost: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// What could not be carried so far, one line per object and field, for the report: the
    /// object was written without it.
    pub fn losses(&self) -> Vec<String> {
        self.lost.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn note_lost(&self, href: &str, lost: &[String]) {
        if let Ok(mut all) = self.lost.lock() {
            all.extend(lost.iter().map(|l| format!("{href}: {l}, not carried")));
        }
    }

    /// Where a collection's items are listed and created.
    fn items_path(&self, kind: Kind, collection: &str) -> String {
        let c = enc(collection);
        match kind {
            Kind::Contacts if collection == DEFAULT_CONTACTS => format!("{}/contacts", self.user),
            Kind::Contacts => format!("{}/contactFolders/{c}/contacts", self.user),
            Kind::Calendars => format!("{}/calendars/{c}/events", self.user),
            Kind::Todo => format!("{}/todo/lists/{c}/tasks", self.user),
        }
    }

    /// Where one item is.
    fn item_path(&self, kind: Kind, collection: &str, id: &str) -> String {
        match kind {
            Kind::Contacts => format!("{}/contacts/{}", self.user, enc(id)),
            Kind::Calendars => format!("{}/events/{}", self.user, enc(id)),
            Kind::Todo => format!("{}/{}", self.items_path(kind, collection), enc(id)),
        }
    }

    /// `$expand` of one of our extended properties.
    fn expand_prop(id: &str) -> String {
        format!(
            "singleValueExtendedProperties($filter={})",
            enc(&format!("id eq '{id}'"))
        )
    }

    /// The href of a listed item, from the name it carries or its id.
    fn href_of(kind: Kind, collection: &str, item: &Value) -> Option<(String, String)> {
        let id = item["id"].as_str()?.to_string();
        let name = match kind {
            Kind::Todo => task_name(item),
            _ => ext_prop(item, KEY_PROP),
        };
        let last = match name {
            Some(name) if !name.contains('/') && !name.starts_with("id:") => name,
            _ => format!("id:{id}"),
        };
        Some((format!("{}{last}", collection_href(kind, collection)), id))
    }

    /// The Graph id at an href; `None` when no item is there.
    async fn resolve(&self, href: &Href, full: &str) -> StoreResult<Option<String>> {
        let name = match &href.item {
            Item::Id(id) => return Ok(Some(id.clone())),
            Item::Name(name) => name,
        };
        if let Some(id) = self.ids.lock().await.get(full) {
            return Ok(Some(id.clone()));
        }
        let id = match href.kind {
            Kind::Todo => self.task_index(&href.collection).await?.get(name).cloned(),
            kind => self.find_by_key(kind, &href.collection, name).await?,
        };
        if let Some(id) = &id {
            self.ids.lock().await.insert(full.to_string(), id.clone());
        }
        Ok(id)
    }

    /// The contact or event of a collection carrying this name, by a `$filter` on our
    /// extended property.
    async fn find_by_key(
        &self,
        kind: Kind,
        collection: &str,
        name: &str,
    ) -> StoreResult<Option<String>> {
        let filter = format!(
            "singleValueExtendedProperties/Any(ep: ep/id eq '{KEY_PROP}' and ep/value eq '{}')",
            name.replace('\'', "''")
        );
        let target = format!(
            "{}?$filter={}&$select=id",
            self.items_path(kind, collection),
            enc(&filter)
        );
        let found = self
            .client
            .json(
                &Call::get(target),
                &format!("looking up the {} named {name}", kind.what()),
            )
            .await?;
        Ok(found["value"]
            .as_array()
            .and_then(|v| v.first())
            .and_then(|i| i["id"].as_str())
            .map(str::to_string))
    }

    /// The names of the tasks mailshift created in a To Do list → their ids (read once per
    /// run: To Do cannot filter on linked resources).
    async fn task_index(&self, list: &str) -> StoreResult<HashMap<String, String>> {
        let mut all = self.task_names.lock().await;
        if let Some(index) = all.get(list) {
            return Ok(index.clone());
        }
        let target = format!(
            "{}?$expand=linkedResources",
            self.items_path(Kind::Todo, list)
        );
        let (items, _) = self
            .client
            .list_all(&target, &format!("listing the To Do list {list}"))
            .await?;
        let index: HashMap<String, String> = items
            .iter()
            .filter_map(|t| Some((task_name(t)?, t["id"].as_str()?.to_string())))
            .collect();
        all.insert(list.to_string(), index.clone());
        Ok(index)
    }

    async fn remember_task(&self, list: &str, name: &str, id: &str) {
        if let Some(index) = self.task_names.lock().await.get_mut(list) {
            index.insert(name.to_string(), id.to_string());
        }
    }

    /// One item's href (from the name it carries) and etag, read by its id; `None` when it
    /// is gone.
    async fn named(&self, kind: Kind, collection: &str, id: &str) -> StoreResult<Option<Listed>> {
        let path = self.item_path(kind, collection, id);
        let target = match kind {
            Kind::Todo => format!("{path}?$expand=linkedResources"),
            Kind::Contacts | Kind::Calendars => {
                format!("{path}?$expand={}", Self::expand_prop(KEY_PROP))
            }
        };
        let answer = self.client.send(&Call::get(&target)).await?;
        if answer.status == 404 {
            return Ok(None);
        }
        if !answer.is_success() {
            return Err(unexpected(
                &format!("reading the {} {id} of {collection}", kind.what()),
                &answer,
            ));
        }
        let item = answer.json();
        let Some((href, graph_id)) = Self::href_of(kind, collection, &item) else {
            return Ok(None);
        };
        if kind == Kind::Todo
            && let Some(name) = task_name(&item)
        {
            self.remember_task(collection, &name, &graph_id).await;
        }
        self.ids.lock().await.insert(href.clone(), graph_id);
        Ok(Some(Listed {
            href,
            etag: etag_of(&item),
        }))
    }

    /// One item as vCard/iCalendar; `None` when it is gone.
    async fn fetch_one(&self, href: &str) -> StoreResult<Option<Fetched>> {
        let Some(parsed) = Href::parse(href) else {
            return Ok(None);
        };
        let Some(id) = self.resolve(&parsed, href).await? else {
            return Ok(None);
        };
        let kind = parsed.kind;
        let path = self.item_path(kind, &parsed.collection, &id);
        let what = format!("reading the {} {href}", kind.what());
        let target = match kind {
            Kind::Todo => format!("{path}?$expand=linkedResources"),
            Kind::Contacts => format!("{path}?$expand={}", Self::expand_prop(DATA_PROP)),
            Kind::Calendars => format!("{path}?$expand={}", Self::expand_prop(DATA_PROP)),
        };
        let call = Call::get(&target).header("prefer", r#"outlook.body-content-type="text""#);
        let answer = self.client.send(&call).await?;
        if answer.status == 404 {
            return Ok(None);
        }
        if !answer.is_success() {
            return Err(unexpected(&what, &answer));
        }
        let mut item = answer.json();
        let data = match kind {
            Kind::Contacts => {
                let uid = our_data(&item, "uid").unwrap_or_else(|| format!("graph-{id}"));
                let photo = self.photo(&id).await?;
                contact::to_vcard(&item, &uid, photo.as_deref())
            }
            Kind::Todo => {
                let uid = task_uid(&item).unwrap_or_else(|| format!("graph-{id}"));
                task::to_ical(&item, &uid)
            }
            Kind::Calendars => {
                if item["type"].as_str() == Some("seriesMaster") {
                    item = self.series(&target, &item, &what).await?;
                }
                let uid = our_data(&item, "uid")
                    .or_else(|| item["iCalUId"].as_str().map(str::to_string))
                    .unwrap_or_else(|| format!("graph-{id}"));
                let kept = our_data(&item, "attendees");
                event::to_ical(&item, &uid, kept.as_deref())
            }
        };
        Ok(Some(Fetched {
            href: href.to_string(),
            etag: etag_of(&item),
            data,
        }))
    }

    /// A series master again, in its own time zone (so that its RRULE keeps its wall-clock
    /// time across daylight-saving changes), with its modified occurrences
    /// (`exceptionOccurrences`, read on their own: one `$expand` per request).
    async fn series(&self, target: &str, master: &Value, what: &str) -> StoreResult<Value> {
        let zone = master["originalStartTimeZone"]
            .as_str()
            .filter(|z| convert::ical_zone(z).is_some())
            .map(|z| format!("outlook.timezone=\"{z}\""));
        let with_prefs = |call: Call| {
            let call = call.header("prefer", r#"outlook.body-content-type="text""#);
            match &zone {
                Some(zone) => call.header("prefer", zone.clone()),
                None => call,
            }
        };
        let mut item = self
            .client
            .json(&with_prefs(Call::get(target)), what)
            .await?;
        let Some(id) = master["id"].as_str() else {
            return Ok(item);
        };
        let mut exceptions = Vec::new();
        let mut next = format!("{}/events/{}/exceptionOccurrences", self.user, enc(id));
        loop {
            let page = self
                .client
                .json(
                    &with_prefs(Call::get(&next)),
                    &format!("{what} (its modified occurrences)"),
                )
                .await?;
            exceptions.extend(page["value"].as_array().cloned().unwrap_or_default());
            match page["@odata.nextLink"].as_str() {
                Some(link) => next = link.to_string(),
                None => break,
            }
        }
        item["exceptionOccurrences"] = Value::Array(exceptions);
        Ok(item)
    }

    /// A contact's photo; `None` when it has none.
    async fn photo(&self, id: &str) -> StoreResult<Option<Vec<u8>>> {
        let call = Call::get(format!("{}/contacts/{}/photo/$value", self.user, enc(id)));
        let answer = self.client.send(&call).await?;
        match answer.status {
            200 => Ok(Some(answer.body)),
            404 => Ok(None),
            _ => Err(unexpected(
                &format!("reading the photo of contact {id}"),
                &answer,
            )),
        }
    }

    /// The current etag of an item (after writes that follow its create or update).
    async fn current_etag(&self, path: &str, what: &str) -> StoreResult<Option<String>> {
        let item = self
            .client
            .json(&Call::get(format!("{path}?$select=id")), what)
            .await?;
        Ok(etag_of(&item))
    }

    async fn put_item(
        &self,
        href: &str,
        parsed: &Href,
        data: &[u8],
        condition: Precondition,
    ) -> StoreResult<PutOutcome> {
        let kind = parsed.kind;
        let name = match &parsed.item {
            Item::Name(name) => name.clone(),
            Item::Id(_) => String::new(),
        };
        let uid = mailshift_dav::object::parse(data)
            .ok()
            .and_then(|i| i.uid)
            .unwrap_or_default();
        // What the object becomes on Graph, or why it cannot.
        let (mut fields, photo, event_parts, dropped) = match kind {
            Kind::Contacts => match contact::from_vcard(data) {
                Ok(c) => (c.fields, c.photo, None, c.dropped),
                Err(e) => return Ok(refused_object(href, &e)),
            },
            Kind::Todo => match task::from_ical(data) {
                Ok(f) => (f, None, None, Vec::new()),
                Err(e) => return Ok(refused_object(href, &e)),
            },
            Kind::Calendars => match event::from_ical(data, self.attendees) {
                Ok(mut e) => {
                    let fields = std::mem::take(&mut e.fields);
                    let dropped = std::mem::take(&mut e.dropped);
                    (fields, None, Some(e), dropped)
                }
                Err(e) => return Ok(refused_object(href, &e)),
            },
        };
        let mut props = vec![];
        if !name.is_empty() {
            props.push(json!({ "id": KEY_PROP, "value": name }));
        }
        let mut data = Map::new();
        if !uid.is_empty() {
            data.insert("uid".into(), uid.clone().into());
        }
        if let Some(kept) = event_parts.as_ref().and_then(|e| e.kept_attendees.clone()) {
            data.insert("attendees".into(), kept.into());
        }
        // Always written, so that an update also clears what the source no longer has.
        props.push(json!({ "id": DATA_PROP, "value": Value::Object(data).to_string() }));
        match kind {
            Kind::Todo if !name.is_empty() => {
                // Only on create: a PATCH of linkedResources is not how To Do updates them.
                if condition == Precondition::Absent {
                    fields.insert(
                        "linkedResources".into(),
                        json!([{
                            "applicationName": TASK_APP,
                            "externalId": name,
                            "displayName": format!("UID:{uid}"),
                        }]),
                    );
                }
            }
            Kind::Todo => {}
            _ => {
                fields.insert("singleValueExtendedProperties".into(), Value::Array(props));
            }
        }
        let (path, created) = match condition {
            Precondition::Absent => {
                let existing = match &parsed.item {
                    Item::Name(_) => self.resolve(parsed, href).await?,
                    Item::Id(_) => None,
                };
                if existing.is_some() {
                    return Ok(PutOutcome::PreconditionFailed);
                }
                let call = Call::new(Method::POST, self.items_path(kind, &parsed.collection))
                    .json(Value::Object(fields.clone()));
                let answer = self.client.send(&call).await?;
                if !answer.is_success() {
                    return write_refusal(href, kind, &answer);
                }
                let item = answer.json();
                let Some(id) = item["id"].as_str().map(str::to_string) else {
                    return Err(error(
                        ErrorKind::Refused,
                        format!("creating {href}: Graph's answer names no id"),
                    ));
                };
                self.ids.lock().await.insert(href.to_string(), id.clone());
                if kind == Kind::Todo && !name.is_empty() {
                    self.remember_task(&parsed.collection, &name, &id).await;
                }
                let path = self.item_path(kind, &parsed.collection, &id);
                (path, Some(etag_of(&item)))
            }
            Precondition::Matches(etag) => {
                let Some(id) = self.resolve(parsed, href).await? else {
                    return Ok(PutOutcome::PreconditionFailed);
                };
                let path = self.item_path(kind, &parsed.collection, &id);
                let call = Call::new(Method::PATCH, &path)
                    .header("if-match", etag)
                    .json(Value::Object(fields.clone()));
                let answer = self.client.send(&call).await?;
                match answer.status {
                    412 | 409 => return Ok(PutOutcome::PreconditionFailed),
                    404 => {
                        self.ids.lock().await.remove(href);
                        return Ok(PutOutcome::PreconditionFailed);
                    }
                    s if (200..300).contains(&s) => {}
                    _ => return write_refusal(href, kind, &answer),
                }
                (path, Some(etag_of(&answer.json())))
            }
        };
        let mut touched = false;
        if let Some(photo) = photo {
            self.put_photo(&path, href, photo).await?;
            touched = true;
        }
        if let Some(parts) = &event_parts
            && (!parts.cancelled.is_empty() || !parts.exceptions.is_empty())
        {
            if let Some(outcome) = self.write_occurrences(&path, href, &fields, parts).await? {
                return Ok(outcome);
            }
            touched = true;
        }
        let etag = match (touched, created) {
            (false, Some(etag)) => etag,
            _ => {
                self.current_etag(&path, &format!("reading back {href}"))
                    .await?
            }
        };
        self.note_lost(href, &dropped);
        Ok(PutOutcome::Written { etag })
    }

    async fn put_photo(&self, path: &str, href: &str, photo: Vec<u8>) -> StoreResult<()> {
        let call = Call::new(Method::PUT, format!("{path}/photo/$value"))
            .header("content-type", "image/jpeg")
            .bytes(photo);
        let answer = self.client.send(&call).await?;
        if !answer.is_success() {
            return Err(unexpected(&format!("writing the photo of {href}"), &answer));
        }
        Ok(())
    }

    /// Removes the cancelled occurrences of a series and writes its modified ones, matching
    /// instances by their start in the series' time zone. Occurrences already removed or
    /// written are found so, which makes this safe to repeat. `Some(outcome)` when the series
    /// cannot be completed (an occurrence that the series does not have).
    async fn write_occurrences(
        &self,
        path: &str,
        href: &str,
        master: &Map<String, Value>,
        parts: &event::GraphEvent,
    ) -> StoreResult<Option<PutOutcome>> {
        let zone = master["start"]["timeZone"]
            .as_str()
            .unwrap_or("UTC")
            .to_string();
        let wanted: Vec<Stamp> = parts
            .cancelled
            .iter()
            .chain(parts.exceptions.iter().map(|e| &e.recurrence_id))
            .copied()
            .collect();
        let first = wanted.iter().map(Stamp::days).min().unwrap_or_default();
        let last = wanted.iter().map(Stamp::days).max().unwrap_or_default();
        let window = |days: i64| {
            let (y, m, d) = convert::civil_from_days(days);
            format!("{y:04}-{m:02}-{d:02}T00:00:00")
        };
        let target = format!(
            "{path}/instances?startDateTime={}&endDateTime={}&$select=id,start,originalStart,type",
            window(first - 1),
            window(last + 2)
        );
        let what = format!("listing the occurrences of {href}");
        let call_zone = format!("outlook.timezone=\"{zone}\"");
        let mut instances = Vec::new();
        let mut next = target;
        loop {
            let page = self
                .client
                .json(&Call::get(&next).header("prefer", call_zone.clone()), &what)
                .await?;
            instances.extend(page["value"].as_array().cloned().unwrap_or_default());
            match page["@odata.nextLink"].as_str() {
                Some(link) => next = link.to_string(),
                None => break,
            }
        }
        let find = |at: &Stamp| {
            instances.iter().find(|i| {
                let start = i["start"]["dateTime"].as_str().and_then(Stamp::parse);
                let original = i["originalStart"].as_str().and_then(Stamp::parse);
                [start, original]
                    .into_iter()
                    .flatten()
                    .any(|s| same_occurrence(&s, at))
            })
        };
        for at in &parts.cancelled {
            let Some(instance) = find(at) else {
                // Already removed (a repeat after a cut), or never an occurrence.
                continue;
            };
            let id = instance["id"].as_str().unwrap_or_default();
            let call = Call::new(Method::DELETE, format!("{}/events/{}", self.user, enc(id)));
            let answer = self.client.send(&call).await?;
            if !answer.is_success() && answer.status != 404 {
                return Err(unexpected(
                    &format!("removing the cancelled occurrence {} of {href}", at.ical()),
                    &answer,
                ));
            }
        }
        for exception in &parts.exceptions {
            let Some(instance) = find(&exception.recurrence_id) else {
                return Ok(Some(PutOutcome::Refused {
                    status: 422,
                    reason: format!(
                        "the series has no occurrence at {} for its modified occurrence \
                         (RECURRENCE-ID) there",
                        exception.recurrence_id.ical()
                    ),
                }));
            };
            let id = instance["id"].as_str().unwrap_or_default();
            let mut fields = exception.fields.clone();
            // An occurrence keeps the series' recurrence and attendees.
            fields.remove("recurrence");
            let call = Call::new(Method::PATCH, format!("{}/events/{}", self.user, enc(id)))
                .json(Value::Object(fields));
            let answer = self.client.send(&call).await?;
            if !answer.is_success() {
                return Err(unexpected(
                    &format!(
                        "writing the modified occurrence {} of {href}",
                        exception.recurrence_id.ical()
                    ),
                    &answer,
                ));
            }
        }
        Ok(None)
    }
}

/// Two starts of one occurrence: equal, or on the same date when one of them is a date or
/// they are in different forms (UTC against local time).
fn same_occurrence(a: &Stamp, b: &Stamp) -> bool {
    if a.time.is_none() || b.time.is_none() || a.utc != b.utc {
        return a.days() == b.days();
    }
    a.days() == b.days() && a.time == b.time
}

/// The value of one of our extended properties on an item read with them expanded.
fn ext_prop(item: &Value, id: &str) -> Option<String> {
    item["singleValueExtendedProperties"]
        .as_array()?
        .iter()
        .find(|p| p["id"].as_str().is_some_and(|i| i.eq_ignore_ascii_case(id)))
        .and_then(|p| p["value"].as_str())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// A field of the JSON mailshift keeps in [`DATA_PROP`].
fn our_data(item: &Value, field: &str) -> Option<String> {
    let data: Value = serde_json::from_str(&ext_prop(item, DATA_PROP)?).ok()?;
    data[field]
        .as_str()
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// The name mailshift gave a task (its linked resource).
fn task_name(item: &Value) -> Option<String> {
    our_link(item)
        .and_then(|l| l["externalId"].as_str())
        .filter(|n| !n.is_empty())
        .map(str::to_string)
}

fn task_uid(item: &Value) -> Option<String> {
    our_link(item)
        .and_then(|l| l["displayName"].as_str())
        .and_then(|d| d.strip_prefix("UID:"))
        .filter(|u| !u.is_empty())
        .map(str::to_string)
}

fn our_link(item: &Value) -> Option<&Value> {
    item["linkedResources"]
        .as_array()?
        .iter()
        .find(|l| l["applicationName"].as_str() == Some(TASK_APP))
}

fn etag_of(item: &Value) -> Option<String> {
    item["@odata.etag"]
        .as_str()
        .or_else(|| item["changeKey"].as_str())
        .map(str::to_string)
}

/// An object Graph cannot hold, refused with the reason (only this object is affected).
fn refused_object(href: &str, why: &convert::Unsupported) -> PutOutcome {
    PutOutcome::Refused {
        status: 422,
        reason: format!("{href} cannot be written to Microsoft 365: {why}"),
    }
}

/// A write Graph refused: this object's refusal when it is about the object (400, 413, 422…),
/// the whole side's error otherwise (credentials, throttling, outage).
fn write_refusal(href: &str, kind: Kind, answer: &Answer) -> StoreResult<PutOutcome> {
    match answer.status {
        400 | 405 | 409 | 413 | 415 | 422 => Ok(PutOutcome::Refused {
            status: answer.status,
            reason: format!(
                "Graph refused the {} {href}: {}",
                kind.what(),
                answer.reason()
            ),
        }),
        _ => Err(unexpected(
            &format!("writing the {} {href}", kind.what()),
            answer,
        )),
    }
}

impl Store for GraphStore {
    async fn collections(&self, component: Component) -> StoreResult<Vec<Collection>> {
        let Some(kind) = Kind::of(component) else {
            return Ok(Vec::new());
        };
        *self.asked.lock().unwrap_or_else(|e| e.into_inner()) = Some(kind);
        let (target, what) = match kind {
            Kind::Contacts => (format!("{}/contactFolders", self.user), "contact folders"),
            Kind::Calendars => (format!("{}/calendars", self.user), "calendars"),
            Kind::Todo => (format!("{}/todo/lists", self.user), "To Do lists"),
        };
        let (items, _) = self
            .client
            .list_all(&target, &format!("listing the {what} of {}", self.user))
            .await?;
        let mut out = Vec::new();
        if kind == Kind::Contacts {
            out.push(collection(kind, DEFAULT_CONTACTS, "Contacts", None));
        }
        for item in &items {
            let Some(id) = item["id"].as_str() else {
                continue;
            };
            let name = item["displayName"]
                .as_str()
                .or_else(|| item["name"].as_str())
                .unwrap_or(id);
            let color = item["hexColor"]
                .as_str()
                .filter(|c| c.starts_with('#') && c.len() >= 7)
                .map(str::to_string);
            out.push(collection(kind, id, name, color));
        }
        Ok(out)
    }

    async fn create_collection(&self, name: &str, like: &Collection) -> StoreResult<Collection> {
        let asked = *self.asked.lock().unwrap_or_else(|e| e.into_inner());
        let kind = asked
            .filter(|k| like.components.contains(&k.component()))
            .or_else(|| like.components.iter().find_map(|c| Kind::of(*c)));
        let Some(kind) = kind else {
            return Err(error(
                ErrorKind::Config,
                format!("{name}: Microsoft 365 has no collection for journal entries"),
            ));
        };
        let display = like
            .display_name
            .clone()
            .unwrap_or_else(|| name.to_string());
        let existing = self.collections(kind.component()).await?;
        if let Some(found) = existing
            .iter()
            .find(|c| c.name == display || c.name == name)
        {
            return Ok(found.clone());
        }
        let (target, body) = match kind {
            Kind::Contacts => (
                format!("{}/contactFolders", self.user),
                json!({ "displayName": display }),
            ),
            Kind::Calendars => {
                let mut body = json!({ "name": display });
                if let Some(color) = like.color.as_deref().filter(|c| c.len() >= 7) {
                    body["hexColor"] = color[..7].into();
                }
                (format!("{}/calendars", self.user), body)
            }
            Kind::Todo => (
                format!("{}/todo/lists", self.user),
                json!({ "displayName": display }),
            ),
        };
        let created = self
            .client
            .json(
                &Call::new(Method::POST, target).json(body),
                &format!("creating the {} collection {display:?}", kind.prefix()),
            )
            .await?;
        let id = created["id"].as_str().ok_or_else(|| {
            error(
                ErrorKind::Refused,
                format!("creating {display:?}: Graph's answer names no id"),
            )
        })?;
        Ok(collection(kind, id, &display, like.color.clone()))
    }

    async fn list(&self, collection: &Collection) -> StoreResult<Vec<Listed>> {
        let (kind, id) = parse_collection(collection)?;
        let path = self.items_path(kind, &id);
        let target = match kind {
            Kind::Todo => format!("{path}?$expand=linkedResources"),
            // Whole items, not `$select`: what is expanded must come back whatever a service
            // does with a selection.
            Kind::Contacts | Kind::Calendars => {
                format!("{path}?$expand={}", Self::expand_prop(KEY_PROP))
            }
        };
        let (items, _) = self
            .client
            .list_all(&target, &format!("listing {}", collection.href))
            .await?;
        let mut ids = self.ids.lock().await;
        let mut out = Vec::new();
        for item in &items {
            // Occurrences and exceptions belong to their series master's unit.
            if matches!(item["type"].as_str(), Some("occurrence" | "exception")) {
                continue;
            }
            let Some((href, graph_id)) = Self::href_of(kind, &id, item) else {
                continue;
            };
            ids.insert(href.clone(), graph_id);
            out.push(Listed {
                href,
                etag: etag_of(item),
            });
        }
        Ok(out)
    }

    /// Contacts and tasks: a delta round (ids only) first, for its deltaLink, then the
    /// listing: the link was made before the listing, so it covers it (a change in between
    /// is listed and reported again next time, never missed). Delta rounds take no `$expand`
    /// (the published definition declares none), and the listing's is what names our items.
    /// Events: the listing alone (module doc).
    async fn list_with_token(&self, collection: &Collection) -> StoreResult<Listing> {
        let (kind, id) = parse_collection(collection)?;
        let token = match kind {
            Kind::Calendars => None,
            Kind::Contacts | Kind::Todo => self
                .client
                .delta_round(
                    &format!("{}/delta?$select=id", self.items_path(kind, &id)),
                    &format!("starting a delta round of {}", collection.href),
                )
                .await?
                .map(|(_, link)| link),
        };
        Ok(Listing {
            objects: self.list(collection).await?,
            token,
        })
    }

    fn listing_token(&self) -> bool {
        true
    }

    /// The round from the recorded deltaLink. Its items are ids only: each changed one is
    /// read once for its name (our extended property, or the task's linked resource) and its
    /// etag; a removed one is named from what this store has seen, else by its id.
    async fn changes(&self, collection: &Collection, token: &str) -> StoreResult<Option<Delta>> {
        let (kind, coll) = parse_collection(collection)?;
        if kind == Kind::Calendars {
            return Ok(None);
        }
        let what = format!("reading the changes of {}", collection.href);
        let Some((items, link)) = self.client.delta_round(token, &what).await? else {
            return Ok(None);
        };
        let mut delta = Delta {
            changed: Vec::new(),
            removed: Vec::new(),
            token: link,
        };
        let mut changed_ids = Vec::new();
        for item in &items {
            let Some(graph_id) = item["id"].as_str() else {
                continue;
            };
            if item.get("@removed").is_none() {
                changed_ids.push(graph_id);
                continue;
            }
            let mut ids = self.ids.lock().await;
            let known = ids
                .iter()
                .find(|(_, v)| v.as_str() == graph_id)
                .map(|(k, _)| k.clone());
            let href =
                known.unwrap_or_else(|| format!("{}id:{graph_id}", collection_href(kind, &coll)));
            ids.remove(&href);
            delta.removed.push(href);
        }
        // A few at a time, as fetches are (Graph's limit is kept by the client's gate); the
        // futures made first for the same reason as in `fetch`.
        let reads: Vec<_> = changed_ids
            .iter()
            .map(|id| self.named(kind, &coll, id))
            .collect();
        let named: Vec<StoreResult<Option<Listed>>> =
            stream::iter(reads).buffered(FETCH_PARALLEL).collect().await;
        for listed in named {
            // Gone again since the round: its removal comes with the next one.
            if let Some(listed) = listed? {
                delta.removed.retain(|h| *h != listed.href);
                delta.changed.retain(|l| l.href != listed.href);
                delta.changed.push(listed);
            }
        }
        Ok(Some(delta))
    }

    async fn fetch(&self, _collection: &Collection, hrefs: &[String]) -> StoreResult<Vec<Fetched>> {
        // The futures made first, then run a few at a time (a closure in the stream would be
        // generic over the hrefs' lifetime, which `Send` futures of the trait cannot be).
        let calls: Vec<_> = hrefs.iter().map(|href| self.fetch_one(href)).collect();
        let results: Vec<StoreResult<Option<Fetched>>> =
            stream::iter(calls).buffered(FETCH_PARALLEL).collect().await;
        let mut out = Vec::new();
        for result in results {
            if let Some(fetched) = result? {
                out.push(fetched);
            }
        }
        Ok(out)
    }

    async fn put(
        &self,
        _collection: &Collection,
        href: &str,
        data: &[u8],
        condition: Precondition,
    ) -> StoreResult<PutOutcome> {
        let Some(parsed) = Href::parse(href) else {
            return Err(error(
                ErrorKind::Bug,
                format!("{href} is not an href of Microsoft 365 (KIND/COLLECTION/NAME)"),
            ));
        };
        self.put_item(href, &parsed, data, condition).await
    }

    async fn delete(&self, href: &str, etag: Option<&str>) -> StoreResult<bool> {
        let Some(parsed) = Href::parse(href) else {
            return Ok(false);
        };
        let Some(id) = self.resolve(&parsed, href).await? else {
            return Ok(false);
        };
        let mut call = Call::new(
            Method::DELETE,
            self.item_path(parsed.kind, &parsed.collection, &id),
        );
        if let Some(etag) = etag {
            call = call.header("if-match", etag);
        }
        let answer = self.client.send(&call).await?;
        match answer.status {
            404 | 412 => Ok(false),
            s if (200..300).contains(&s) => {
                self.ids.lock().await.remove(href);
                Ok(true)
            }
            _ => Err(unexpected(&format!("deleting {href}"), &answer)),
        }
    }

    fn schedules(&self) -> bool {
        // Graph is no CalDAV server: what it does with attendees is decided in `put`, by the
        // plan's choice, not by SCHEDULE-AGENT.
        false
    }

    fn href_for(&self, collection: &Collection, name: &str, _component: Component) -> String {
        format!("{}{name}", collection.href)
    }

    async fn flush(&self) -> StoreResult<()> {
        Ok(())
    }
}

fn collection(kind: Kind, id: &str, name: &str, color: Option<String>) -> Collection {
    Collection {
        name: name.to_string(),
        href: collection_href(kind, id),
        display_name: Some(name.to_string()),
        color,
        description: None,
        components: vec![kind.component()],
        sync_token: None,
        ctag: None,
        vcard_versions: vec!["3.0".into(), "4.0".into()],
        max_size: None,
    }
}

fn parse_collection(collection: &Collection) -> StoreResult<(Kind, String)> {
    let mut parts = collection.href.trim_end_matches('/').splitn(2, '/');
    let kind = parts.next().and_then(Kind::from_prefix);
    let id = parts.next().filter(|i| !i.is_empty() && !i.contains('/'));
    match (kind, id) {
        (Some(kind), Some(id)) => Ok((kind, id.to_string())),
        _ => Err(error(
            ErrorKind::Bug,
            format!("{} is not a Microsoft 365 collection", collection.href),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrefs_name_the_kind_the_collection_and_the_item() {
        assert_eq!(
            Href::parse("contacts/AAMk=/ada-uid"),
            Some(Href {
                kind: Kind::Contacts,
                collection: "AAMk=".into(),
                item: Item::Name("ada-uid".into()),
            })
        );
        assert_eq!(
            Href::parse("todo/L1/id:T-1").map(|h| h.item),
            Some(Item::Id("T-1".into()))
        );
        assert_eq!(Href::parse("mail/x/y"), None);
        assert_eq!(Href::parse("contacts//y"), None);
        let item = json!({"id": "E1", "singleValueExtendedProperties": [
            {"id": KEY_PROP.to_ascii_lowercase(), "value": "k1"}]});
        assert_eq!(
            GraphStore::href_of(Kind::Calendars, "C", &item),
            Some(("calendars/C/k1".to_string(), "E1".to_string()))
        );
        let bare = json!({"id": "E2"});
        assert_eq!(
            GraphStore::href_of(Kind::Calendars, "C", &bare).map(|h| h.0),
            Some("calendars/C/id:E2".to_string())
        );
        let task = json!({"id": "T", "linkedResources": [
            {"applicationName": "mailshift", "externalId": "n", "displayName": "UID:u"}]});
        assert_eq!(task_name(&task).as_deref(), Some("n"));
        assert_eq!(task_uid(&task).as_deref(), Some("u"));
    }

    #[test]
    fn occurrences_match_by_start_or_by_date_across_forms() {
        let local = Stamp::parse("20260107T090000").unwrap();
        assert!(same_occurrence(
            &local,
            &Stamp::parse("2026-01-07T09:00:00.0000000").unwrap()
        ));
        assert!(!same_occurrence(
            &local,
            &Stamp::parse("2026-01-07T10:00:00").unwrap()
        ));
        assert!(same_occurrence(
            &local,
            &Stamp::parse("20260107T080000Z").unwrap()
        ));
        assert!(!same_occurrence(&local, &Stamp::parse("20260108").unwrap()));
    }
}
