//! A stand-in for Microsoft Graph v1.0, for the tests of mailshift's Graph engine: the real
//! service cannot be reached from them, and a mock that accepts anything would prove
//! nothing.
//!
//! It serves `/v1.0/users/{user}/…` on a loopback port:
//! - every request is checked against the vendored definition (`schema/`, extracted from
//!   Microsoft's `msgraph-metadata`): path, method, query options, body properties, types
//!   and enum values; so is every answer; each mismatch is a [`Violation`] (`schema`);
//! - mailboxes with contact folders and contacts (and photos), calendars and events, To Do
//!   lists and tasks, inbox message rules and the mail folders they file into (no
//!   messages); default and immutable ids, change keys and `If-Match`, extended properties
//!   and the `$filter` on them, paging, delta queries (`store`, `ops`); the invitations Graph
//!   would have sent ([`Invitation`]);
//! - recurring series expanded into occurrences, exceptions and cancellations
//!   (`recurrence`, `store`);
//! - Bearer tokens per mailbox, or whatever a test's OAuth server issued (a resolver
//!   hook); 4 concurrent requests per mailbox (the 5th gets 429); injected 429/503
//!   answers and cut connections; a count (and optional limit) of requests per mailbox
//!   per 10 minutes (`http`).
//!
//! [`GraphSim`] is the handle a test starts, seeds and inspects. This crate depends on no
//! mailshift crate: it is a test double, never part of the product.

mod http;
mod ops;
mod recurrence;
mod schema;
mod store;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::oneshot;

pub use schema::Violation;
pub use store::{Invitation, InvitationKind, Kind};

use http::Shared;
use schema::Side;
use store::Mailbox;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimError {
    /// The simulator cannot run: no port.
    Io(String),
    /// A seeding call named a mailbox or container that does not exist, or an item the
    /// published definition would refuse.
    Seed(String),
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::Io(m) => write!(f, "Microsoft Graph simulator: {m}"),
            SimError::Seed(m) => write!(f, "Microsoft Graph simulator seed: {m}"),
        }
    }
}

impl std::error::Error for SimError {}

/// An answer forced on the next request of a mailbox (before the concurrency check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// An error status (429, 503, …) with `Retry-After` in seconds.
    Status { status: u16, retry_after: u32 },
    /// Headers, then the connection dropped in the middle of the body.
    Cut,
}

/// One request the simulator received, with the status it answered (refused ones too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub method: String,
    /// The path as sent, `/v1.0/users/…`.
    pub path: String,
    /// The raw query string.
    pub query: String,
    pub status: u16,
}

impl Logged {
    /// Whether the request asked to change something (what a second, idempotent run must
    /// not send).
    pub fn is_write(&self) -> bool {
        matches!(self.method.as_str(), "POST" | "PATCH" | "PUT" | "DELETE")
    }
}

/// What a token opens, as a token resolver says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// One mailbox (a delegated token).
    Mailbox(String),
    /// Every mailbox (an application token).
    App,
}

/// Where seeded items go and listed items come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Collection {
    /// Contact folders under the root Contacts folder.
    ContactFolders,
    /// Contacts of a folder (immutable id), or of the default Contacts folder.
    Contacts(Option<String>),
    Calendars,
    /// Events of a calendar (immutable id), or of the default calendar.
    Events(Option<String>),
    TaskLists,
    /// Tasks of a list (immutable id), or of the default list.
    Tasks(Option<String>),
    /// Inbox message rules.
    Rules,
}

/// A running simulator. Dropping it stops the server.
pub struct GraphSim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for GraphSim {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl GraphSim {
    /// Starts a simulator on a free loopback port, on the current tokio runtime.
    pub async fn start() -> Result<GraphSim, SimError> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .map_err(|e| SimError::Io(format!("cannot listen on loopback: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| SimError::Io(format!("cannot read the listening address: {e}")))?;
        let shared = Arc::new(Shared::new());
        let app = http::router(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            // Serving ends only at shutdown or on a listener error, which a test then sees
            // as refused connections.
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await;
        });
        Ok(GraphSim {
            shared,
            addr,
            stop: Some(stop),
        })
    }

    /// The service root, as the Graph client takes it: `http://127.0.0.1:PORT/v1.0`.
    pub fn url(&self) -> String {
        format!("http://{}/v1.0", self.addr)
    }

    /// Adds a mailbox (with its default Contacts folder, Calendar and Tasks list) and a
    /// Bearer token that opens it and only it.
    pub fn add_mailbox(&self, address: &str, token: &str) {
        let mut st = self.shared.lock();
        let key = address.to_ascii_lowercase();
        if !st.mailboxes.contains_key(&key) {
            let mb = Mailbox::new(&mut st.counter);
            st.mailboxes.insert(key.clone(), mb);
        }
        st.tokens.insert(token.to_string(), Some(key));
    }

    /// A token that opens every mailbox, as an application permission does.
    pub fn add_app_token(&self, token: &str) {
        self.shared.lock().tokens.insert(token.to_string(), None);
    }

    /// Asks `resolve` about tokens not added with [`GraphSim::add_mailbox`] or
    /// [`GraphSim::add_app_token`]: how a test accepts the tokens its OAuth server issued
    /// (None from the resolver: 401, as for an unknown or expired token).
    pub fn set_token_resolver(
        &self,
        resolve: impl Fn(&str) -> Option<Grant> + Send + Sync + 'static,
    ) {
        let mut slot = self
            .shared
            .resolver
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *slot = Some(Box::new(resolve));
    }

    /// Sets the default page size of lists and delta rounds (10 unless set).
    pub fn set_page_size(&self, n: usize) {
        self.shared.lock().page_size = n.max(1);
    }

    /// Refuses a mailbox's requests past `limit` in a 10-minute window with 429 and the
    /// seconds left in the window as `Retry-After`; None (the default) counts only.
    pub fn set_window_limit(&self, limit: Option<u64>) {
        self.shared.lock().window_limit = limit;
    }

    /// Stores an item as a client POST would (checked against the definition) and returns
    /// its immutable id.
    pub fn insert(&self, mailbox: &str, into: Collection, item: Value) -> Result<String, SimError> {
        let (template, kind) = match &into {
            Collection::ContactFolders => ("/users/{user-id}/contactFolders", Kind::ContactFolder),
            Collection::Contacts(_) => ("/users/{user-id}/contacts", Kind::Contact),
            Collection::Calendars => ("/users/{user-id}/calendars", Kind::Calendar),
            Collection::Events(_) => ("/users/{user-id}/events", Kind::Event),
            Collection::TaskLists => ("/users/{user-id}/todo/lists", Kind::TaskList),
            Collection::Tasks(_) => (
                "/users/{user-id}/todo/lists/{todoTaskList-id}/tasks",
                Kind::Task,
            ),
            Collection::Rules => (
                "/users/{user-id}/mailFolders/{mailFolder-id}/messageRules",
                Kind::Rule,
            ),
        };
        let s = schema::schema();
        if let Some(body) = s
            .operation(template, "POST")
            .and_then(|op| op.body.as_ref())
        {
            let problems = s.check_value(&item, body, Side::Request);
            if let Some((at, message)) = problems.first() {
                return Err(SimError::Seed(format!("{at}: {message}")));
            }
        }
        let mut st = self.shared.lock();
        let http::State {
            counter, mailboxes, ..
        } = &mut *st;
        let mb = mailboxes
            .get_mut(&mailbox.to_ascii_lowercase())
            .ok_or_else(|| SimError::Seed(format!("no mailbox {mailbox}; add it first")))?;
        let parent = parent_of(mb, &into)?;
        // Seeded events were already there: they invite nobody.
        Ok(mb.insert(counter, kind, &parent, item))
    }

    /// The live items of a collection as the service shows them (immutable ids, extended
    /// properties expanded).
    pub fn list(&self, mailbox: &str, of: Collection) -> Result<Vec<Value>, SimError> {
        let st = self.shared.lock();
        let mb = st
            .mailboxes
            .get(&mailbox.to_ascii_lowercase())
            .ok_or_else(|| SimError::Seed(format!("no mailbox {mailbox}")))?;
        let kind = match of {
            Collection::ContactFolders => Kind::ContactFolder,
            Collection::Contacts(_) => Kind::Contact,
            Collection::Calendars => Kind::Calendar,
            Collection::Events(_) => Kind::Event,
            Collection::TaskLists => Kind::TaskList,
            Collection::Tasks(_) => Kind::Task,
            Collection::Rules => Kind::Rule,
        };
        let parent = parent_of(mb, &of)?;
        Ok(mb
            .list(kind, &parent)
            .into_iter()
            .map(|i| mb.render(i, true, Some("")))
            .collect())
    }

    /// The mailbox's mail folders: (immutable id, path from the top with `/` between
    /// levels), in creation order.
    pub fn mail_folders(&self, mailbox: &str) -> Vec<(String, String)> {
        let st = self.shared.lock();
        let Some(mb) = st.mailboxes.get(&mailbox.to_ascii_lowercase()) else {
            return Vec::new();
        };
        let name = |i: &store::Item| {
            i.props
                .get("displayName")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        mb.items
            .values()
            .filter(|i| i.kind == Kind::MailFolder && !i.removed)
            .map(|i| {
                let mut path = name(i);
                let mut up = i.parent.clone();
                while let Some(p) = mb.items.get(&up) {
                    path = format!("{}/{path}", name(p));
                    up = p.parent.clone();
                }
                (i.immutable_id.clone(), path)
            })
            .collect()
    }

    /// The photo stored for a contact (either id form).
    pub fn photo(&self, mailbox: &str, contact: &str) -> Option<Vec<u8>> {
        let st = self.shared.lock();
        let mb = st.mailboxes.get(&mailbox.to_ascii_lowercase())?;
        mb.items.get(&mb.resolve(contact)?)?.photo.clone()
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Logged> {
        self.shared.lock().log.clone()
    }

    /// Every request or answer outside the published definition so far.
    pub fn violations(&self) -> Vec<Violation> {
        self.shared.lock().violations.clone()
    }

    /// Invitations, updates and cancellations Graph would have mailed to attendees.
    pub fn invitations_would_send(&self) -> Vec<Invitation> {
        self.shared.lock().invitations.clone()
    }

    /// Requests refused with 429 because the mailbox already had 4 in flight.
    pub fn throttled(&self, mailbox: &str) -> u64 {
        let st = self.shared.lock();
        st.throttled
            .get(&mailbox.to_ascii_lowercase())
            .copied()
            .unwrap_or(0)
    }

    /// Requests being served for a mailbox right now.
    pub fn in_flight(&self, mailbox: &str) -> usize {
        let st = self.shared.lock();
        st.in_flight
            .get(&mailbox.to_ascii_lowercase())
            .copied()
            .unwrap_or(0)
    }

    /// Requests of the mailbox in the current 10-minute window (Graph counts 10,000).
    pub fn requests_this_window(&self, mailbox: &str) -> u64 {
        let st = self.shared.lock();
        let key = mailbox.to_ascii_lowercase();
        st.windows
            .iter()
            .filter(|((m, _), _)| *m == key)
            .max_by_key(|((_, w), _)| *w)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    }

    /// `METHOD path` of the requests that did not send `Prefer: IdType="ImmutableId"`.
    pub fn requests_without_immutable_ids(&self) -> Vec<String> {
        self.shared.lock().without_immutable.clone()
    }

    /// Makes every delta token handed out so far for the mailbox expired: a round from one
    /// answers 410 SyncStateNotFound (start over), as Graph does when its state is gone.
    pub fn invalidate_delta_tokens(&self, mailbox: &str) {
        let mut st = self.shared.lock();
        if let Some(mb) = st.mailboxes.get_mut(&mailbox.to_ascii_lowercase()) {
            mb.seq += 1;
            mb.delta_floor = mb.seq;
        }
    }

    /// Queues answers forced on the mailbox's next requests, one fault per request.
    pub fn inject(&self, mailbox: &str, faults: impl IntoIterator<Item = Fault>) {
        let mut st = self.shared.lock();
        st.faults
            .entry(mailbox.to_ascii_lowercase())
            .or_default()
            .extend(faults);
    }

    /// Holds authenticated requests after they took their concurrency slot, until
    /// [`GraphSim::release`]: how a test keeps several in flight at once.
    pub fn hold(&self) {
        self.shared.hold.send_replace(true);
    }

    pub fn release(&self) {
        self.shared.hold.send_replace(false);
    }
}

fn parent_of(mb: &Mailbox, of: &Collection) -> Result<String, SimError> {
    let given = |id: &Option<String>, default: &str, kind: Kind| -> Result<String, SimError> {
        match id {
            None => Ok(default.to_string()),
            Some(id) => mb
                .resolve(id)
                .filter(|imm| mb.items[imm].kind == kind)
                .ok_or_else(|| SimError::Seed(format!("no {kind:?} {id} in this mailbox"))),
        }
    };
    Ok(match of {
        Collection::ContactFolders => mb.default_contacts.clone(),
        Collection::Contacts(f) => given(f, &mb.default_contacts, Kind::ContactFolder)?,
        Collection::Calendars | Collection::TaskLists => String::new(),
        Collection::Events(c) => given(c, &mb.default_calendar, Kind::Calendar)?,
        Collection::Tasks(l) => given(l, &mb.default_tasks, Kind::TaskList)?,
        Collection::Rules => store::INBOX.to_string(),
    })
}

#[cfg(test)]
mod tests;
