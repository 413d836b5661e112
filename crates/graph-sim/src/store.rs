//! What the simulated mailboxes hold: contact folders and contacts, calendars and events,
//! To Do lists and tasks, inbox message rules, each an item with two ids (the default one
//! and the immutable one Graph gives under `Prefer: IdType="ImmutableId"`), a change key
//! that every write bumps (the `@odata.etag` checked by `If-Match`), a change sequence
//! that delta queries read, and its single-value extended properties. Deleted items stay
//! as tombstones so a delta query can report them as `@removed`. A task's linked resources
//! are items of their own under the task (Graph addresses them under it), created inline
//! with the task or one by one, and shown in the task only under `$expand=linkedResources`.
//! Mail folders (the inbox, and those a client creates) hold no messages: they are what a
//! message rule's `moveToFolder` names.

use std::collections::BTreeMap;

use chrono::{NaiveDate, NaiveDateTime};
use serde_json::{Map, Value, json};

use crate::recurrence;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    ContactFolder,
    Contact,
    Calendar,
    Event,
    TaskList,
    Task,
    /// A To Do task's linked resource: its parent is the task.
    LinkedResource,
    Rule,
    /// A mail folder (only as a rule's target: the simulator holds no messages).
    MailFolder,
}

impl Kind {
    /// Whether the kind's schema (an `outlookItem`, or `calendar`) carries `changeKey`.
    fn has_change_key(self) -> bool {
        matches!(self, Kind::Contact | Kind::Event | Kind::Calendar)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub kind: Kind,
    /// The container's immutable id (folder, calendar, list, `inbox`), or "" at the top.
    pub parent: String,
    pub immutable_id: String,
    pub default_id: String,
    /// The properties as stored, without ids, etag or extended properties.
    pub props: Map<String, Value>,
    pub extended: Vec<(String, String)>,
    pub change: u64,
    pub seq: u64,
    pub removed: bool,
    pub photo: Option<Vec<u8>>,
}

/// An invitation (or update, or cancellation) the real service would have mailed to
/// attendees because of a write: Graph has no switch to suppress them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub mailbox: String,
    /// The event's immutable id.
    pub event_id: String,
    pub kind: InvitationKind,
    pub attendees: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationKind {
    Request,
    Update,
    Cancellation,
}

#[derive(Debug, Default)]
pub(crate) struct Mailbox {
    pub items: BTreeMap<String, Item>,
    /// Default id → immutable id.
    pub by_default: BTreeMap<String, String>,
    pub seq: u64,
    /// Delta tokens below this are refused with 410 (see `GraphSim::invalidate_delta_tokens`).
    pub delta_floor: u64,
    pub default_contacts: String,
    pub default_calendar: String,
    pub default_tasks: String,
    /// The inbox's mail folder (`mailFolders/inbox`).
    pub inbox: String,
}

pub(crate) const INBOX: &str = "inbox";

impl Mailbox {
    pub fn new(counter: &mut u64) -> Mailbox {
        let mut mb = Mailbox::default();
        mb.default_contacts = mb.insert(
            counter,
            Kind::ContactFolder,
            "",
            json!({"displayName": "Contacts"}),
        );
        mb.default_calendar = mb.insert(
            counter,
            Kind::Calendar,
            "",
            json!({"name": "Calendar", "isDefaultCalendar": true}),
        );
        mb.default_tasks = mb.insert(
            counter,
            Kind::TaskList,
            "",
            json!({"displayName": "Tasks", "wellknownListName": "defaultList"}),
        );
        mb.inbox = mb.insert(
            counter,
            Kind::MailFolder,
            "",
            json!({"displayName": "Inbox"}),
        );
        mb
    }

    /// Resolves either id form to the immutable id of a live item.
    pub fn resolve(&self, id: &str) -> Option<String> {
        let imm = if self.items.contains_key(id) {
            id.to_string()
        } else {
            self.by_default.get(id)?.clone()
        };
        (!self.items.get(&imm)?.removed).then_some(imm)
    }

    fn bump(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Stores a new item from a client body (already checked against the schema) and
    /// returns its immutable id.
    pub fn insert(&mut self, counter: &mut u64, kind: Kind, parent: &str, body: Value) -> String {
        *counter += 1;
        let n = *counter;
        let immutable_id = format!("AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A{n:08x}");
        let default_id = format!("AAMkAGI2THVSAAA{n:08x}=");
        let mut props = body.as_object().cloned().unwrap_or_default();
        let extended = take_extended(&mut props);
        // A navigation property in a create body creates those entities with the task.
        let linked = match (kind, props.remove("linkedResources")) {
            (Kind::Task, Some(Value::Array(list))) => list,
            _ => Vec::new(),
        };
        let now = now();
        match kind {
            Kind::Contact | Kind::Event => {
                props.insert("createdDateTime".into(), json!(now));
                props.insert("lastModifiedDateTime".into(), json!(now));
            }
            Kind::Task => {
                props.insert("createdDateTime".into(), json!(now));
                props.insert("lastModifiedDateTime".into(), json!(now));
            }
            _ => {}
        }
        if kind == Kind::Event {
            // Exchange assigns the iCalendar UID; a client cannot choose it.
            props.insert(
                "iCalUId".into(),
                json!(format!(
                    "040000008200E00074C5B7101A82E00800000000SIM{n:08X}"
                )),
            );
            let ty = if props.get("recurrence").is_some_and(|r| !r.is_null()) {
                "seriesMaster"
            } else {
                "singleInstance"
            };
            props.entry("type").or_insert(json!(ty));
        }
        let seq = self.bump();
        self.by_default
            .insert(default_id.clone(), immutable_id.clone());
        self.items.insert(
            immutable_id.clone(),
            Item {
                kind,
                parent: parent.to_string(),
                immutable_id: immutable_id.clone(),
                default_id,
                props,
                extended,
                change: 1,
                seq,
                removed: false,
                photo: None,
            },
        );
        for resource in linked {
            self.insert(counter, Kind::LinkedResource, &immutable_id, resource);
        }
        immutable_id
    }

    /// `$expand=linkedResources`: a task's linked resources, in creation order.
    pub fn expand_linked(&self, item: &Item, immutable: bool, out: &mut Value) {
        if item.kind == Kind::Task {
            let linked: Vec<Value> = self
                .list(Kind::LinkedResource, &item.immutable_id)
                .into_iter()
                .map(|l| self.render(l, immutable, None))
                .collect();
            out["linkedResources"] = Value::Array(linked);
        }
    }

    /// Applies a PATCH body: top-level properties replace the stored ones.
    pub fn update(&mut self, id: &str, body: Value) {
        let seq = self.bump();
        if let Some(item) = self.items.get_mut(id) {
            let mut patch = body.as_object().cloned().unwrap_or_default();
            let extended = take_extended(&mut patch);
            for (k, v) in extended {
                item.extended.retain(|(id, _)| !id.eq_ignore_ascii_case(&k));
                item.extended.push((k, v));
            }
            for (k, v) in patch {
                item.props.insert(k, v);
            }
            if matches!(item.kind, Kind::Contact | Kind::Event | Kind::Task) {
                let now = now();
                item.props.insert("lastModifiedDateTime".into(), json!(now));
            }
            item.change += 1;
            item.seq = seq;
        }
    }

    pub fn touch(&mut self, id: &str) {
        let seq = self.bump();
        if let Some(item) = self.items.get_mut(id) {
            item.change += 1;
            item.seq = seq;
        }
    }

    /// Marks an item and everything under it removed.
    pub fn remove(&mut self, id: &str) {
        let children: Vec<String> = self
            .items
            .values()
            .filter(|i| {
                // A series' exceptions go with it.
                let exception_of =
                    i.props.get("seriesMasterId").and_then(Value::as_str) == Some(id);
                (i.parent == id || exception_of) && !i.removed
            })
            .map(|i| i.immutable_id.clone())
            .collect();
        for child in children {
            self.remove(&child);
        }
        let seq = self.bump();
        if let Some(item) = self.items.get_mut(id) {
            item.removed = true;
            item.seq = seq;
        }
    }

    /// The series and date an occurrence id (`{series id}_OCC{yyyymmdd}`, either id form)
    /// names, if that date is one of the series' and not cancelled.
    pub fn occurrence(&self, id: &str) -> Option<(String, NaiveDate)> {
        let (series, date) = id.rsplit_once(OCCURRENCE)?;
        let date = NaiveDate::parse_from_str(date, "%Y%m%d").ok()?;
        let master = self.resolve(series)?;
        let item = &self.items[&master];
        let dates = recurrence::dates(item.props.get("recurrence")?)?;
        (dates.contains(&date) && !self.is_cancelled(item, date)).then_some((master, date))
    }

    pub fn is_cancelled(&self, master: &Item, date: NaiveDate) -> bool {
        let tag = cancelled_tag(master, date);
        master
            .props
            .get("cancelledOccurrences")
            .and_then(Value::as_array)
            .is_some_and(|c| c.iter().any(|v| v.as_str() == Some(tag.as_str())))
    }

    /// Records an occurrence as deleted in its series.
    pub fn cancel(&mut self, master: &str, date: NaiveDate) {
        if let Some(item) = self.items.get_mut(master) {
            let tag = cancelled_tag(item, date);
            let list = item
                .props
                .entry("cancelledOccurrences")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Some(list) = list.as_array_mut() {
                list.push(json!(tag));
            }
        }
        self.touch(master);
    }

    /// The occurrence of `master` on `date` as the service shows it.
    pub fn render_occurrence(&self, master: &str, date: NaiveDate, immutable: bool) -> Value {
        let item = &self.items[master];
        let mut v = self.render(item, immutable, None);
        let (start, end) = occurrence_times(item, date);
        let tz = |field: &str| {
            item.props
                .get(field)
                .and_then(|s| s.get("timeZone"))
                .cloned()
        };
        v["id"] = json!(format!(
            "{}{OCCURRENCE}{}",
            Mailbox::shown_id(item, immutable),
            date.format("%Y%m%d")
        ));
        v["type"] = json!("occurrence");
        v["seriesMasterId"] = json!(Mailbox::shown_id(item, immutable));
        v["recurrence"] = Value::Null;
        v["cancelledOccurrences"] = json!([]);
        v["originalStart"] = json!(format!("{}Z", start.format("%Y-%m-%dT%H:%M:%S")));
        v["start"] = json!({"dateTime": start.format("%Y-%m-%dT%H:%M:%S.0000000").to_string(), "timeZone": tz("start").unwrap_or(json!("UTC"))});
        v["end"] = json!({"dateTime": end.format("%Y-%m-%dT%H:%M:%S.0000000").to_string(), "timeZone": tz("end").unwrap_or(json!("UTC"))});
        v
    }

    /// Turns an occurrence into an exception item holding `patch` (its ids are the
    /// occurrence's, as in Exchange) and returns its immutable id.
    pub fn make_exception(
        &mut self,
        counter: &mut u64,
        master: &str,
        date: NaiveDate,
        patch: Value,
    ) -> String {
        let item = self.items[master].clone();
        let (start, _) = occurrence_times(&item, date);
        let shown = self.render_occurrence(master, date, true);
        let mut body = item.props.clone();
        for k in [
            "recurrence",
            "cancelledOccurrences",
            "createdDateTime",
            "lastModifiedDateTime",
            "iCalUId",
            "type",
        ] {
            body.remove(k);
        }
        for k in ["start", "end"] {
            body.insert(k.into(), shown[k].clone());
        }
        let imm = self.insert(counter, Kind::Event, &item.parent, Value::Object(body));
        // The exception keeps the occurrence's ids and the series' iCalendar UID.
        let mut exception = self.items.remove(&imm).unwrap_or_else(|| item.clone());
        self.by_default.remove(&exception.default_id);
        let day = date.format("%Y%m%d");
        exception.immutable_id = format!("{}{OCCURRENCE}{day}", item.immutable_id);
        exception.default_id = format!("{}{OCCURRENCE}{day}", item.default_id);
        exception.props.insert("type".into(), json!("exception"));
        exception
            .props
            .insert("seriesMasterId".into(), json!(item.immutable_id));
        exception.props.insert(
            "originalStart".into(),
            json!(format!("{}Z", start.format("%Y-%m-%dT%H:%M:%S"))),
        );
        if let Some(uid) = item.props.get("iCalUId") {
            exception.props.insert("iCalUId".into(), uid.clone());
        }
        let id = exception.immutable_id.clone();
        self.by_default
            .insert(exception.default_id.clone(), id.clone());
        self.items.insert(id.clone(), exception);
        self.update(&id, patch);
        self.touch(master);
        id
    }

    /// Live items of a kind in a container, in creation order.
    pub fn list(&self, kind: Kind, parent: &str) -> Vec<&Item> {
        self.items
            .values()
            .filter(|i| i.kind == kind && i.parent == parent && !i.removed)
            .collect()
    }

    pub fn etag(item: &Item) -> String {
        format!("W/\"{}\"", change_key(item))
    }

    /// The JSON the service answers for an item, with ids in the form asked for.
    pub fn render(&self, item: &Item, immutable: bool, expand_extended: Option<&str>) -> Value {
        let mut out = Map::new();
        out.insert("@odata.etag".into(), json!(Mailbox::etag(item)));
        let id = if immutable {
            &item.immutable_id
        } else {
            &item.default_id
        };
        out.insert("id".into(), json!(id));
        if item.kind.has_change_key() {
            out.insert("changeKey".into(), json!(change_key(item)));
        }
        for (k, v) in &item.props {
            out.insert(k.clone(), v.clone());
        }
        // Contacts and contact folders name their folder, in the id form asked for.
        if matches!(item.kind, Kind::Contact | Kind::ContactFolder)
            && let Some(parent) = self.items.get(&item.parent)
        {
            out.insert(
                "parentFolderId".into(),
                json!(Mailbox::shown_id(parent, immutable)),
            );
        }
        if let Some(master) = item.props.get("seriesMasterId").and_then(Value::as_str)
            && let Some(m) = self.items.get(master)
        {
            let shown = if immutable {
                &m.immutable_id
            } else {
                &m.default_id
            };
            out.insert("seriesMasterId".into(), json!(shown));
        }
        if let Some(filter) = expand_extended {
            let props: Vec<Value> = item
                .extended
                .iter()
                .filter(|(id, _)| filter.is_empty() || id.eq_ignore_ascii_case(filter))
                .map(|(id, value)| json!({"id": id, "value": value}))
                .collect();
            if !props.is_empty() {
                out.insert("singleValueExtendedProperties".into(), Value::Array(props));
            }
        }
        Value::Object(out)
    }

    /// The id shown for an item in the form asked for.
    pub fn shown_id(item: &Item, immutable: bool) -> &str {
        if immutable {
            &item.immutable_id
        } else {
            &item.default_id
        }
    }
}

/// The current time as Graph writes it. From `SystemTime`, so chrono needs no clock (and
/// no time-zone database) of its own.
fn now() -> String {
    chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// What separates a series id from an occurrence's date in an occurrence id.
pub(crate) const OCCURRENCE: &str = "_OCC";

fn cancelled_tag(master: &Item, date: NaiveDate) -> String {
    format!("OID.{}.{}", master.default_id, date.format("%Y-%m-%d"))
}

/// Local start and end of a series' occurrence on `date`: the series' times of day and
/// duration.
pub(crate) fn occurrence_times(master: &Item, date: NaiveDate) -> (NaiveDateTime, NaiveDateTime) {
    let at = |field: &str| {
        master
            .props
            .get(field)
            .and_then(|s| s.get("dateTime"))
            .and_then(Value::as_str)
            .and_then(recurrence::parse_local)
    };
    let start = at("start").unwrap_or_else(|| date.and_hms_opt(0, 0, 0).unwrap_or_default());
    let end = at("end").unwrap_or(start);
    let begin = date.and_time(start.time());
    (begin, begin + (end - start))
}

fn change_key(item: &Item) -> String {
    format!(
        "CQAAABYAAA{}{:06}",
        &item.immutable_id[item.immutable_id.len() - 8..],
        item.change
    )
}

/// Moves `singleValueExtendedProperties` out of a body into (id, value) pairs.
fn take_extended(props: &mut Map<String, Value>) -> Vec<(String, String)> {
    match props.remove("singleValueExtendedProperties") {
        Some(Value::Array(list)) => list
            .into_iter()
            .filter_map(|p| {
                Some((
                    p.get("id")?.as_str()?.to_string(),
                    p.get("value")?.as_str().unwrap_or_default().to_string(),
                ))
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The one `$filter` form the Graph engine uses, and the only one the simulator knows:
/// `singleValueExtendedProperties/Any(ep: ep/id eq 'ID' and ep/value eq 'VALUE')`.
/// Returns (id, value), or None for any other filter.
pub(crate) fn parse_extended_filter(filter: &str) -> Option<(String, String)> {
    let rest = filter
        .trim()
        .strip_prefix("singleValueExtendedProperties/")?;
    let rest = rest
        .strip_prefix("Any(")
        .or_else(|| rest.strip_prefix("any("))?;
    let (var, rest) = rest.split_once(':')?;
    let var = var.trim();
    let rest = rest.trim().strip_suffix(')')?;
    let (id_part, value_part) = rest.split_once(" and ")?;
    let quoted = |part: &str, field: &str| -> Option<String> {
        let part = part.trim().strip_prefix(&format!("{var}/{field}"))?.trim();
        let q = part.strip_prefix("eq")?.trim();
        let inner = q.strip_prefix('\'')?.strip_suffix('\'')?;
        Some(inner.replace("''", "'"))
    };
    Some((quoted(id_part, "id")?, quoted(value_part, "value")?))
}

/// `$expand=singleValueExtendedProperties($filter=id eq 'ID')`: Some("") for all, Some(id)
/// for one, None when not asked.
pub(crate) fn parse_extended_expand(expand: &str) -> Option<String> {
    let rest = expand
        .trim()
        .strip_prefix("singleValueExtendedProperties")?;
    if rest.is_empty() {
        return Some(String::new());
    }
    let inner = rest.strip_prefix("($filter=")?.strip_suffix(')')?;
    let q = inner
        .trim()
        .strip_prefix("id")?
        .trim()
        .strip_prefix("eq")?
        .trim();
    Some(q.strip_prefix('\'')?.strip_suffix('\'')?.replace("''", "'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extended_property_filter_and_expand_are_read() {
        let f = "singleValueExtendedProperties/Any(ep: ep/id eq 'String {66f5a359-4659-4830-9070-00047ec6ac6e} Name src' and ep/value eq 'a''b')";
        assert_eq!(
            parse_extended_filter(f),
            Some((
                "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name src".into(),
                "a'b".into()
            ))
        );
        assert_eq!(parse_extended_filter("displayName eq 'x'"), None);
        assert_eq!(
            parse_extended_expand("singleValueExtendedProperties($filter=id eq 'X')"),
            Some("X".into())
        );
        assert_eq!(parse_extended_expand("attachments"), None);
    }

    #[test]
    fn writes_bump_the_change_key_and_both_ids_resolve_until_removed() {
        let mut counter = 0;
        let mut mb = Mailbox::new(&mut counter);
        let id = mb.insert(
            &mut counter,
            Kind::Contact,
            &mb.default_contacts.clone(),
            json!({"givenName": "A"}),
        );
        let before = Mailbox::etag(&mb.items[&id]);
        mb.update(&id, json!({"givenName": "B"}));
        assert_ne!(before, Mailbox::etag(&mb.items[&id]));
        let default_id = mb.items[&id].default_id.clone();
        assert_eq!(mb.resolve(&default_id), Some(id.clone()));
        mb.remove(&id);
        assert_eq!(mb.resolve(&id), None);
    }
}
