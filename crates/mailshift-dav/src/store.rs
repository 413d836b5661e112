//! The two ends of a contacts/calendars copy, as the engine sees them: a CardDAV/CalDAV server
//! (`dav`) or a directory of vCard/iCalendar files (`files`), behind one set of operations.
//!
//! The engine ([`crate::sync`]) is written against [`Store`] only, so the exactly-once protocol
//! is the same whatever the ends are, and can be tested with faults injected between any two
//! operations. Hrefs are paths on the server (`/user/contacts/work/abc.vcf`) or, for files, a
//! file's path relative to the account's directory plus the object's position.

use std::borrow::Cow;
use std::future::Future;

/// What a collection holds, and what an object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    /// A vCard (address book).
    Card,
    /// A VEVENT with its overridden instances.
    Event,
    /// A VTODO with its overridden instances.
    Task,
    /// A VJOURNAL (kept when a calendar holds them; never the target of a plan's content).
    Journal,
}

/// An address book or a calendar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collection {
    /// Its name: the last segment of its href, percent-decoded (the file stem for files). Plans
    /// include, exclude and map collections by this name or by the display name.
    pub name: String,
    /// Where it is (path on the server, relative path for files), ending with `/` for DAV.
    pub href: String,
    pub display_name: Option<String>,
    /// `#RRGGBB` or `#RRGGBBAA` (Apple's calendar-color), if set.
    pub color: Option<String>,
    pub description: Option<String>,
    /// What it may hold: `[Card]` for an address book; the calendar's
    /// supported-calendar-component-set for a calendar (every component when it does not say).
    pub components: Vec<Component>,
    /// The sync token (RFC 6578) now, if the store offers sync-collection. A store whose
    /// tokens come with a listing instead ([`Store::listing_token`]) leaves it `None`.
    pub sync_token: Option<String>,
    /// The CTag (or the file's fingerprint) now, if the store offers one.
    pub ctag: Option<String>,
    /// The vCard versions an address book accepts (`supported-address-data`, RFC 6352:
    /// `"3.0"`, `"4.0"`); empty when it does not say (any).
    pub vcard_versions: Vec<String>,
    /// The largest object it accepts, in bytes (`max-resource-size`), when it says.
    pub max_size: Option<u64>,
}

/// An object as listed: where it is and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub href: String,
    pub etag: Option<String>,
}

/// An object with its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub href: String,
    pub etag: Option<String>,
    pub data: Vec<u8>,
}

/// What changed in a collection since a sync token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    /// Created or modified objects.
    pub changed: Vec<Listed>,
    /// Hrefs of removed objects.
    pub removed: Vec<String>,
    /// The token to ask from next time.
    pub token: String,
}

/// A full listing with the token that asks [`Store::changes`] for what changed after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub objects: Vec<Listed>,
    /// Covers at least every change the listing shows (a change made while listing may be
    /// both listed and reported again after the token, never neither); `None` when the
    /// store has none to give.
    pub token: Option<String>,
}

/// The condition a write is sent under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// Create only: `If-None-Match: *`.
    Absent,
    /// Replace only this version: `If-Match: "etag"`.
    Matches(String),
}

/// How a write ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// Written; the new ETag when the server said it.
    Written { etag: Option<String> },
    /// The precondition failed (412): on a create, something is already at that href; on an
    /// update, the destination's version changed since it was recorded.
    PreconditionFailed,
    /// The store already holds an object with this UID elsewhere (Radicale's 409
    /// `no-uid-conflict`, RFC 4791 §5.3.2.1 / RFC 6352 §6.3.2.1), at this href when it said.
    UidConflict { href: Option<String> },
    /// The store refused this object (too large, invalid for it): the status and its words.
    /// Only this object is affected.
    Refused { status: u16, reason: String },
}

/// A store's failure that is not about one object: the whole collection or side is affected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    pub kind: crate::error::ErrorKind,
    pub message: String,
    /// How long a throttling server asked to wait (Retry-After), if it said.
    pub retry_after: Option<std::time::Duration>,
}

pub type StoreResult<T> = Result<T, StoreError>;

/// One end of a copy, bound to one account.
pub trait Store: Send + Sync {
    /// Every collection of the account that may hold `component`.
    fn collections(
        &self,
        component: Component,
    ) -> impl Future<Output = StoreResult<Vec<Collection>>> + Send;

    /// Creates a collection named `name` like `like` (display name, colour, description,
    /// components) and returns it as now listed. Creating one that exists returns it.
    fn create_collection(
        &self,
        name: &str,
        like: &Collection,
    ) -> impl Future<Output = StoreResult<Collection>> + Send;

    /// Every object of a collection, with its ETag (no content).
    fn list(
        &self,
        collection: &Collection,
    ) -> impl Future<Output = StoreResult<Vec<Listed>>> + Send;

    /// Every object of a collection with the token to ask [`Store::changes`] from next time.
    /// By default [`Store::list`] and the collection's `sync_token` (read before the listing,
    /// so it covers it). A store whose token is a by-product of a full enumeration (EWS
    /// SyncFolderItems from an empty state, a Graph delta round) lists that way and gives its
    /// token here.
    fn list_with_token(
        &self,
        collection: &Collection,
    ) -> impl Future<Output = StoreResult<Listing>> + Send {
        async move {
            Ok(Listing {
                objects: self.list(collection).await?,
                token: collection.sync_token.clone(),
            })
        }
    }

    /// True when this store's tokens come from [`Store::list_with_token`] rather than with its
    /// collections: a recorded token is then asked for changes although the collection lists
    /// none. False (the default) for DAV and files, whose collections carry their token.
    fn listing_token(&self) -> bool {
        false
    }

    /// What changed since `token`; `None` when the store cannot say (no sync-collection, or
    /// the token is no longer valid): the caller then lists and compares ETags.
    fn changes(
        &self,
        collection: &Collection,
        token: &str,
    ) -> impl Future<Output = StoreResult<Option<Delta>>> + Send;

    /// The content of these objects (a multiget); objects gone meanwhile are left out.
    fn fetch(
        &self,
        collection: &Collection,
        hrefs: &[String],
    ) -> impl Future<Output = StoreResult<Vec<Fetched>>> + Send;

    /// Writes an object at `href` under `condition`.
    fn put(
        &self,
        collection: &Collection,
        href: &str,
        data: &[u8],
        condition: Precondition,
    ) -> impl Future<Output = StoreResult<PutOutcome>> + Send;

    /// Removes an object (only if it still has `etag`, when given). `Ok(false)` when it was not
    /// there or had changed.
    fn delete(
        &self,
        href: &str,
        etag: Option<&str>,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// True when the server schedules on its own (`calendar-auto-schedule` in its DAV
    /// header, RFC 6638): objects with attendees are then written with `SCHEDULE-AGENT=CLIENT`
    /// so that no invitation is ever sent.
    fn schedules(&self) -> bool;

    /// True when every object must carry a UID (CardDAV and CalDAV servers, RFC 6352 §5.1 and
    /// RFC 4791 §4.1): one without is given a UID derived from its content.
    fn requires_uid(&self) -> bool {
        true
    }

    /// An object's content as this store keeps it, for comparing what is about to be written
    /// with what the store holds. A store that keeps objects as they are sent (DAV servers,
    /// files) returns them unchanged; one that keeps them in its own model (Exchange, Graph)
    /// returns the fields it keeps, rendered the same way whichever bytes they came from, so
    /// that an object read back from it compares equal to the one written there. Both sides of
    /// a comparison go through the same store's `canonical`; content it cannot read is returned
    /// as is.
    fn canonical<'a>(&self, component: Component, data: &'a [u8]) -> Cow<'a, [u8]> {
        let _ = component;
        Cow::Borrowed(data)
    }

    /// The href a new object with this file-safe name (from its identity) gets in a collection.
    fn href_for(&self, collection: &Collection, name: &str, component: Component) -> String;

    /// Makes what was written durable (files: rewrites the collection files that changed;
    /// servers: nothing).
    fn flush(&self) -> impl Future<Output = StoreResult<()>> + Send;
}
