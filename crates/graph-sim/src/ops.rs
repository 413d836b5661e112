//! The operations: what a request that passed the definition's checks does to a mailbox.
//! The path template it matched names the target (a collection, an item, a delta query,
//! a photo), so the dispatch reads like the list of vendored paths. Lists are paged with
//! `@odata.nextLink`; delta queries hand out a `@odata.deltaLink` whose token is the
//! mailbox's change sequence, and return only what changed after it (`@removed` for
//! deletions); `If-Match` is compared with the item's current etag (412 when stale).

use chrono::{NaiveDate, NaiveDateTime};
use serde_json::{Value, json};

use crate::http::{State, error};
use crate::recurrence;
use crate::store::{self, INBOX, Invitation, InvitationKind, Item, Kind, Mailbox};

pub(crate) enum Reply {
    Json(u16, Value),
    Empty(u16),
    Bytes(Vec<u8>),
}

pub(crate) struct Call<'a> {
    pub method: &'a str,
    /// The matched template under `/users/{user-id}/`.
    pub template: &'a str,
    /// The values of the template's `{…}` segments after the user.
    pub params: &'a [String],
    pub query: &'a [(String, String)],
    pub body: Option<&'a Value>,
    pub raw_body: &'a [u8],
    pub immutable: bool,
    pub max_page: Option<usize>,
    pub if_match: Option<&'a str>,
    /// The request URL without its query: nextLink and deltaLink start from it.
    pub base: String,
}

impl Call<'_> {
    fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a template addresses.
enum Target {
    Collection(Kind, String),
    Item(Kind, String),
    /// Kind, and the container (None: every container of that kind, for folder deltas).
    Delta(Kind, Option<String>),
    Photo(String),
    PhotoValue(String),
    /// A series' occurrence not yet changed: the series' immutable id and the date.
    Occurrence(String, NaiveDate),
    /// A series' occurrences over a window, or its exceptions.
    Instances(String),
    Exceptions(String),
    /// A calendar view's delta: single events and the occurrences of series, in a window.
    ViewDelta(String),
}

fn unsupported(what: &str) -> Reply {
    error(
        501,
        "NotImplemented",
        &format!("the Graph simulator does not implement {what}"),
    )
}

fn not_found() -> Reply {
    error(
        404,
        "ErrorItemNotFound",
        "The specified object was not found in the store.",
    )
}

/// Maps a template and its ids onto the mailbox; ids are checked to exist and to sit in
/// the container the path names.
fn target(mb: &Mailbox, template: &str, params: &[String]) -> Result<Target, Reply> {
    let live = |id: &str, kind: Kind| -> Result<String, Reply> {
        let imm = mb.resolve(id).ok_or_else(not_found)?;
        if mb.items[&imm].kind == kind {
            Ok(imm)
        } else {
            Err(not_found())
        }
    };
    let within = |id: &str, kind: Kind, parent: &str| -> Result<String, Reply> {
        let imm = live(id, kind)?;
        if mb.items[&imm].parent == parent {
            Ok(imm)
        } else {
            Err(not_found())
        }
    };
    let p = |i: usize| params.get(i).map(String::as_str).unwrap_or_default();
    // Only a series master has occurrences to list.
    let series = |imm: String| -> Result<String, Reply> {
        let ty = mb.items[&imm].props.get("type").and_then(Value::as_str);
        if ty == Some("seriesMaster") {
            Ok(imm)
        } else {
            Err(error(
                400,
                "ErrorInvalidRequest",
                "the event is not a recurring series",
            ))
        }
    };
    use Kind::*;
    Ok(match template {
        "contactFolders" => Target::Collection(ContactFolder, mb.default_contacts.clone()),
        "contactFolders/{contactFolder-id}" => {
            Target::Item(ContactFolder, live(p(0), ContactFolder)?)
        }
        "contactFolders/delta()" => Target::Delta(ContactFolder, None),
        "contactFolders/{contactFolder-id}/childFolders" => {
            Target::Collection(ContactFolder, live(p(0), ContactFolder)?)
        }
        "contactFolders/{contactFolder-id}/childFolders/{contactFolder-id1}" => {
            let parent = live(p(0), ContactFolder)?;
            Target::Item(ContactFolder, within(p(1), ContactFolder, &parent)?)
        }
        "contactFolders/{contactFolder-id}/contacts" => {
            Target::Collection(Contact, live(p(0), ContactFolder)?)
        }
        "contactFolders/{contactFolder-id}/contacts/{contact-id}" => {
            let parent = live(p(0), ContactFolder)?;
            Target::Item(Contact, within(p(1), Contact, &parent)?)
        }
        "contactFolders/{contactFolder-id}/contacts/delta()" => {
            Target::Delta(Contact, Some(live(p(0), ContactFolder)?))
        }
        "contactFolders/{contactFolder-id}/contacts/{contact-id}/photo" => {
            let parent = live(p(0), ContactFolder)?;
            Target::Photo(within(p(1), Contact, &parent)?)
        }
        "contactFolders/{contactFolder-id}/contacts/{contact-id}/photo/$value" => {
            let parent = live(p(0), ContactFolder)?;
            Target::PhotoValue(within(p(1), Contact, &parent)?)
        }
        "contacts" => Target::Collection(Contact, mb.default_contacts.clone()),
        "contacts/{contact-id}" => Target::Item(Contact, live(p(0), Contact)?),
        "contacts/delta()" => Target::Delta(Contact, Some(mb.default_contacts.clone())),
        "contacts/{contact-id}/photo" => Target::Photo(live(p(0), Contact)?),
        "contacts/{contact-id}/photo/$value" => Target::PhotoValue(live(p(0), Contact)?),
        "calendars" => Target::Collection(Calendar, String::new()),
        "calendars/{calendar-id}" => Target::Item(Calendar, live(p(0), Calendar)?),
        "calendars/{calendar-id}/events" => Target::Collection(Event, live(p(0), Calendar)?),
        "calendars/{calendar-id}/events/{event-id}" => {
            let parent = live(p(0), Calendar)?;
            match mb.occurrence(p(1)).filter(|_| mb.resolve(p(1)).is_none()) {
                Some((master, date)) if mb.items[&master].parent == parent => {
                    Target::Occurrence(master, date)
                }
                _ => Target::Item(Event, within(p(1), Event, &parent)?),
            }
        }
        "calendars/{calendar-id}/events/{event-id}/instances"
        | "calendars/{calendar-id}/events/{event-id}/exceptionOccurrences" => {
            let parent = live(p(0), Calendar)?;
            let master = series(within(p(1), Event, &parent)?)?;
            if template.ends_with("instances") {
                Target::Instances(master)
            } else {
                Target::Exceptions(master)
            }
        }
        "events/{event-id}/instances" => Target::Instances(series(live(p(0), Event)?)?),
        "events/{event-id}/exceptionOccurrences" => Target::Exceptions(series(live(p(0), Event)?)?),
        "calendars/{calendar-id}/events/delta()" => {
            Target::Delta(Event, Some(live(p(0), Calendar)?))
        }
        "calendars/{calendar-id}/calendarView/delta()" => Target::ViewDelta(live(p(0), Calendar)?),
        "events" => Target::Collection(Event, mb.default_calendar.clone()),
        // `/events/{id}` reaches an event of any calendar of the mailbox.
        "events/{event-id}" => match mb.occurrence(p(0)).filter(|_| mb.resolve(p(0)).is_none()) {
            Some((master, date)) => Target::Occurrence(master, date),
            None => Target::Item(Event, live(p(0), Event)?),
        },
        "events/delta()" => Target::Delta(Event, Some(mb.default_calendar.clone())),
        "calendarView/delta()" => Target::ViewDelta(mb.default_calendar.clone()),
        "todo/lists" => Target::Collection(TaskList, String::new()),
        "todo/lists/{todoTaskList-id}" => Target::Item(TaskList, live(p(0), TaskList)?),
        "todo/lists/delta()" => Target::Delta(TaskList, Some(String::new())),
        "todo/lists/{todoTaskList-id}/tasks" => Target::Collection(Task, live(p(0), TaskList)?),
        "todo/lists/{todoTaskList-id}/tasks/{todoTask-id}" => {
            let parent = live(p(0), TaskList)?;
            Target::Item(Task, within(p(1), Task, &parent)?)
        }
        "todo/lists/{todoTaskList-id}/tasks/{todoTask-id}/linkedResources" => {
            let list = live(p(0), TaskList)?;
            Target::Collection(LinkedResource, within(p(1), Task, &list)?)
        }
        "todo/lists/{todoTaskList-id}/tasks/{todoTask-id}/linkedResources/{linkedResource-id}" => {
            let list = live(p(0), TaskList)?;
            let task = within(p(1), Task, &list)?;
            Target::Item(LinkedResource, within(p(2), LinkedResource, &task)?)
        }
        "todo/lists/{todoTaskList-id}/tasks/delta()" => {
            Target::Delta(Task, Some(live(p(0), TaskList)?))
        }
        "mailFolders" => Target::Collection(MailFolder, String::new()),
        // `inbox` is the well-known name of the inbox's folder.
        "mailFolders/{mailFolder-id}" if p(0).eq_ignore_ascii_case(INBOX) => {
            Target::Item(MailFolder, mb.inbox.clone())
        }
        "mailFolders/{mailFolder-id}" => Target::Item(MailFolder, live(p(0), MailFolder)?),
        "mailFolders/{mailFolder-id}/childFolders" if p(0).eq_ignore_ascii_case(INBOX) => {
            Target::Collection(MailFolder, mb.inbox.clone())
        }
        "mailFolders/{mailFolder-id}/childFolders" => {
            Target::Collection(MailFolder, live(p(0), MailFolder)?)
        }
        "mailFolders/{mailFolder-id}/messageRules"
        | "mailFolders/{mailFolder-id}/messageRules/{messageRule-id}"
            if !p(0).eq_ignore_ascii_case(INBOX) =>
        {
            // Only the inbox holds rules (addressed by its well-known name).
            return Err(not_found());
        }
        "mailFolders/{mailFolder-id}/messageRules" => Target::Collection(Rule, INBOX.to_string()),
        "mailFolders/{mailFolder-id}/messageRules/{messageRule-id}" => {
            Target::Item(Rule, within(p(1), Rule, INBOX)?)
        }
        _ => {
            return Err(error(
                501,
                "NotImplemented",
                &format!("the simulator does not serve {template} yet"),
            ));
        }
    })
}

pub(crate) fn run(st: &mut State, user: &str, call: &Call) -> Reply {
    let reply = operate(st, user, call);
    match (call.method, call.query("$select"), reply) {
        ("GET", Some(select), Reply::Json(200, mut v)) => {
            let fields: Vec<&str> = select.split(',').map(str::trim).collect();
            match v.get_mut("value").and_then(Value::as_array_mut) {
                Some(items) => items.iter_mut().for_each(|i| keep(i, &fields)),
                None => keep(&mut v, &fields),
            }
            Reply::Json(200, v)
        }
        (_, _, reply) => reply,
    }
}

/// `$select`: the named properties, with the id and the annotations the service always
/// sends.
fn keep(item: &mut Value, fields: &[&str]) {
    if let Some(map) = item.as_object_mut() {
        map.retain(|k, _| k == "id" || k.contains('@') || fields.contains(&k.as_str()));
    }
}

fn operate(st: &mut State, user: &str, call: &Call) -> Reply {
    let page_size = call.max_page.unwrap_or(st.page_size).max(1);
    let State {
        counter,
        mailboxes,
        invitations,
        ..
    } = st;
    let Some(mb) = mailboxes.get_mut(user) else {
        return not_found();
    };
    let t = match target(mb, call.template, call.params) {
        Ok(t) => t,
        Err(reply) => return reply,
    };
    // Options the definition allows but the simulator does not implement are refused by
    // name rather than ignored, so a client never believes it got what it asked for.
    let is_delta = matches!(t, Target::Delta(..) | Target::ViewDelta(_));
    for option in ["$orderby", "$search", "$count"] {
        if call.query(option).is_some() {
            return unsupported(option);
        }
    }
    if is_delta && call.query("$filter").is_some() {
        return unsupported("$filter on a delta query");
    }
    // `$expand`: the single-value extended properties (of Outlook items), or a task's
    // linked resources.
    let tasks = matches!(
        t,
        Target::Collection(Kind::Task, _) | Target::Item(Kind::Task, _)
    );
    let (expand, linked) = match call.query("$expand") {
        None => (None, false),
        Some(e) if e.trim() == "linkedResources" && tasks => (None, true),
        Some(e) => match store::parse_extended_expand(e) {
            Some(filter) if !tasks => (Some(filter), false),
            _ => {
                return unsupported(
                    "$expand other than singleValueExtendedProperties, or linkedResources on tasks",
                );
            }
        },
    };
    let render = |mb: &Mailbox, item: &Item| {
        let mut v = mb.render(item, call.immutable, expand.as_deref());
        if linked {
            mb.expand_linked(item, call.immutable, &mut v);
        }
        v
    };
    match (call.method, t) {
        ("GET", Target::Collection(kind, parent)) => {
            let mut items = mb.list(kind, &parent);
            if kind == Kind::Event {
                // A calendar's event list shows single events and series masters; the
                // occurrences and exceptions are read through the series.
                items.retain(|i| i.props.get("type").and_then(Value::as_str) != Some("exception"));
            }
            if let Some(filter) = call.query("$filter") {
                let Some((id, value)) = store::parse_extended_filter(filter) else {
                    return error(
                        400,
                        "ErrorInvalidRestriction",
                        "the simulator only filters on singleValueExtendedProperties",
                    );
                };
                items.retain(|i| {
                    i.extended
                        .iter()
                        .any(|(k, v)| k.eq_ignore_ascii_case(&id) && *v == value)
                });
            }
            let from: usize = call
                .query("$skip")
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            let rendered: Vec<Value> = items.iter().skip(from).map(|i| render(mb, i)).collect();
            let top = call
                .query("$top")
                .and_then(|t| t.parse().ok())
                .unwrap_or(page_size);
            let skip: usize = call
                .query("$skiptoken")
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            page(call, rendered, skip, top.max(1), None)
        }
        ("POST", Target::Collection(kind, parent)) => {
            let body = call.body.cloned().unwrap_or(json!({}));
            let id = mb.insert(counter, kind, &parent, body);
            let item = &mb.items[&id];
            if kind == Kind::Event {
                invite(invitations, user, item, InvitationKind::Request);
            }
            Reply::Json(201, mb.render(item, call.immutable, None))
        }
        ("GET", Target::Item(_, id)) => Reply::Json(200, render(mb, &mb.items[&id])),
        ("PATCH", Target::Item(kind, id)) => {
            if let Some(stale) = precondition(&mb.items[&id], call.if_match) {
                return stale;
            }
            // Linked resources are changed at their own address, not through the task.
            if kind == Kind::Task
                && call
                    .body
                    .is_some_and(|b| b.get("linkedResources").is_some())
            {
                return error(
                    400,
                    "invalidRequest",
                    "linkedResources cannot be updated through the task; use its linkedResources",
                );
            }
            mb.update(&id, call.body.cloned().unwrap_or(json!({})));
            let item = &mb.items[&id];
            if kind == Kind::Event {
                invite(invitations, user, item, InvitationKind::Update);
            }
            Reply::Json(200, mb.render(item, call.immutable, None))
        }
        ("DELETE", Target::Item(kind, id)) => {
            if let Some(stale) = precondition(&mb.items[&id], call.if_match) {
                return stale;
            }
            if kind == Kind::Event {
                invite(
                    invitations,
                    user,
                    &mb.items[&id],
                    InvitationKind::Cancellation,
                );
            }
            let exception_of = mb.items[&id]
                .props
                .get("seriesMasterId")
                .and_then(Value::as_str)
                .map(str::to_string);
            mb.remove(&id);
            // A deleted exception is a deleted occurrence of its series.
            if let Some(master) = exception_of
                && let Some(date) = id
                    .rsplit_once(store::OCCURRENCE)
                    .and_then(|(_, d)| NaiveDate::parse_from_str(d, "%Y%m%d").ok())
            {
                mb.cancel(&master, date);
            }
            Reply::Empty(204)
        }
        ("GET", Target::Occurrence(master, date)) => {
            Reply::Json(200, mb.render_occurrence(&master, date, call.immutable))
        }
        ("PATCH", Target::Occurrence(master, date)) => {
            if let Some(stale) = precondition(&mb.items[&master], call.if_match) {
                return stale;
            }
            let id = mb.make_exception(
                counter,
                &master,
                date,
                call.body.cloned().unwrap_or(json!({})),
            );
            let item = &mb.items[&id];
            invite(invitations, user, item, InvitationKind::Update);
            Reply::Json(200, mb.render(item, call.immutable, None))
        }
        ("DELETE", Target::Occurrence(master, date)) => {
            if let Some(stale) = precondition(&mb.items[&master], call.if_match) {
                return stale;
            }
            invite(
                invitations,
                user,
                &mb.items[&master],
                InvitationKind::Cancellation,
            );
            mb.cancel(&master, date);
            Reply::Empty(204)
        }
        ("GET", Target::Instances(master)) => {
            let (from, to) = match window(call) {
                Ok(w) => w,
                Err(reply) => return reply,
            };
            let out = instances(mb, &master, from, to, call.immutable);
            let skip: usize = call
                .query("$skiptoken")
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            page(call, out, skip, page_size, None)
        }
        ("GET", Target::Exceptions(master)) => {
            let out: Vec<Value> = mb
                .items
                .values()
                .filter(|i| {
                    !i.removed
                        && i.props.get("seriesMasterId").and_then(Value::as_str)
                            == Some(master.as_str())
                })
                .map(|i| mb.render(i, call.immutable, None))
                .collect();
            page(call, out, 0, usize::MAX, None)
        }
        ("GET", Target::Delta(kind, scope)) => delta(mb, call, kind, scope, None, page_size),
        ("GET", Target::ViewDelta(calendar)) => match window(call) {
            Ok(w) => delta(mb, call, Kind::Event, Some(calendar), Some(w), page_size),
            Err(reply) => reply,
        },
        ("GET", Target::Photo(id)) => match mb.items[&id].photo {
            Some(_) => Reply::Json(200, json!({"id": "default", "height": 0, "width": 0})),
            None => not_found(),
        },
        ("GET", Target::PhotoValue(id)) => match &mb.items[&id].photo {
            Some(bytes) => Reply::Bytes(bytes.clone()),
            None => not_found(),
        },
        ("PUT", Target::PhotoValue(id)) => {
            if let Some(item) = mb.items.get_mut(&id) {
                item.photo = Some(call.raw_body.to_vec());
            }
            mb.touch(&id);
            Reply::Empty(204)
        }
        _ => error(
            405,
            "ErrorInvalidRequest",
            "method not supported on this target",
        ),
    }
}

/// 412 when `If-Match` names another version than the item's current one.
fn precondition(item: &Item, if_match: Option<&str>) -> Option<Reply> {
    let tag = if_match?.trim();
    if tag == "*" || tag == Mailbox::etag(item) {
        return None;
    }
    Some(error(
        412,
        "ErrorIrresolvableConflict",
        "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.",
    ))
}

/// Records the mail Graph would send for a write to an event with attendees: it sends on
/// create whatever the body says, and updates and cancellations for meetings.
fn invite(invitations: &mut Vec<Invitation>, user: &str, item: &Item, kind: InvitationKind) {
    let attendees: Vec<String> = item
        .props
        .get("attendees")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| {
            a.pointer("/emailAddress/address")?
                .as_str()
                .map(str::to_string)
        })
        .collect();
    if !attendees.is_empty() {
        invitations.push(Invitation {
            mailbox: user.to_string(),
            event_id: item.immutable_id.clone(),
            kind,
            attendees,
        });
    }
}

fn link(call: &Call, name: &str, value: &str) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in call.query {
        if k != "$skiptoken" && k != "$deltatoken" {
            q.append_pair(k, v);
        }
    }
    q.append_pair(name, value);
    format!("{}?{}", call.base, q.finish())
}

/// One page of `items` from `skip`; the last page carries `last` (a deltaLink) if given.
fn page(
    call: &Call,
    items: Vec<Value>,
    skip: usize,
    top: usize,
    last: Option<(String, String)>,
) -> Reply {
    let total = items.len();
    let value: Vec<Value> = items.into_iter().skip(skip).take(top).collect();
    let mut out = json!({"value": value});
    if skip + top < total {
        let token = match &last {
            // A delta's intermediate pages keep the window they enumerate.
            Some((_, window)) => format!("{}.{window}", skip + top),
            None => (skip + top).to_string(),
        };
        out["@odata.nextLink"] = json!(link(call, "$skiptoken", &token));
    } else if let Some((deltatoken, _)) = last {
        out["@odata.deltaLink"] = json!(link(call, "$deltatoken", &deltatoken));
    }
    Reply::Json(200, out)
}

/// A delta query: the first round lists what exists (as of the first page), a round from
/// a deltaLink lists what changed after it, deletions as `@removed`.
fn delta(
    mb: &Mailbox,
    call: &Call,
    kind: Kind,
    scope: Option<String>,
    view: Option<(NaiveDateTime, NaiveDateTime)>,
    page_size: usize,
) -> Reply {
    // $skiptoken = "offset.since.upto"; $deltatoken = "since".
    let (skip, since, upto) = match (call.query("$skiptoken"), call.query("$deltatoken")) {
        (Some(t), _) => {
            let parts: Vec<u64> = t.split('.').filter_map(|p| p.parse().ok()).collect();
            match parts[..] {
                [skip, since, upto] => (skip as usize, since, upto),
                _ => return error(400, "SyncStateInvalid", "invalid $skiptoken"),
            }
        }
        (None, Some(t)) => match t.parse::<u64>() {
            Ok(since) if since <= mb.seq && since >= mb.delta_floor => (0, since, mb.seq),
            _ => {
                return error(
                    410,
                    "SyncStateNotFound",
                    "The sync state is invalid; start over.",
                );
            }
        },
        (None, None) => (0, 0, mb.seq),
    };
    let in_scope = |i: &&Item| {
        i.kind == kind
            && match &scope {
                Some(parent) => &i.parent == parent,
                // Contact folder deltas cover every folder but the root one.
                None => i.immutable_id != mb.default_contacts,
            }
    };
    let items: Vec<Value> = mb
        .items
        .values()
        .filter(in_scope)
        .filter(|i| i.seq > since && i.seq <= upto)
        .filter(|i| since > 0 || !i.removed)
        .flat_map(|i| {
            if i.removed {
                return vec![json!({"id": Mailbox::shown_id(i, call.immutable), "@removed": {"reason": "deleted"}})];
            }
            let Some((from, to)) = view else {
                return vec![mb.render(i, call.immutable, None)];
            };
            // A calendar view shows a series as its occurrences in the window (its
            // exceptions' changes touch the series), and single events in the window.
            match i.props.get("type").and_then(Value::as_str) {
                Some("seriesMaster") => instances(mb, &i.immutable_id, from, to, call.immutable),
                Some("exception") => Vec::new(),
                _ => {
                    let at = |f: &str| i.props.get(f)?.get("dateTime")?.as_str().and_then(recurrence::parse_local);
                    match (at("start"), at("end")) {
                        (Some(start), Some(end)) if start >= to || end <= from => Vec::new(),
                        _ => vec![mb.render(i, call.immutable, None)],
                    }
                }
            }
        })
        .collect();
    page(
        call,
        items,
        skip,
        page_size,
        Some((upto.to_string(), format!("{since}.{upto}"))),
    )
}

/// The `startDateTime`/`endDateTime` window of a calendar view or an instances read.
fn window(call: &Call) -> Result<(NaiveDateTime, NaiveDateTime), Reply> {
    let at = |name: &str| call.query(name).and_then(recurrence::parse_local);
    match (at("startDateTime"), at("endDateTime")) {
        (Some(from), Some(to)) => Ok((from, to)),
        _ => Err(error(
            400,
            "ErrorInvalidParameter",
            "startDateTime and endDateTime must be date-times",
        )),
    }
}

/// A series' occurrences in a window, changed ones as their exceptions, deleted ones left
/// out.
fn instances(
    mb: &Mailbox,
    master: &str,
    from: NaiveDateTime,
    to: NaiveDateTime,
    immutable: bool,
) -> Vec<Value> {
    let item = &mb.items[master];
    let dates = item
        .props
        .get("recurrence")
        .and_then(recurrence::dates)
        .unwrap_or_default();
    let mut out = Vec::new();
    for date in dates {
        let (start, end) = store::occurrence_times(item, date);
        if start >= to || end <= from || mb.is_cancelled(item, date) {
            continue;
        }
        let exception = format!("{master}{}{}", store::OCCURRENCE, date.format("%Y%m%d"));
        match mb.items.get(&exception).filter(|e| !e.removed) {
            Some(e) => out.push(mb.render(e, immutable, None)),
            None => out.push(mb.render_occurrence(master, date, immutable)),
        }
    }
    out
}
