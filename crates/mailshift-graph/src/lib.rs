//! mailshift's Microsoft 365 groupware end: contacts (contact folders), calendars (events) and
//! To Do lists (tasks) of one mailbox through Microsoft Graph, as a
//! [`mailshift_dav::store::Store`], so that the contacts/calendars engine copies them exactly
//! once like any CardDAV/CalDAV server.
//!
//! - [`client`]: the HTTP side (Bearer token, `Prefer: IdType="ImmutableId"`, paging, Graph's
//!   throttling: Retry-After and at most 4 requests in flight per mailbox);
//! - [`convert`]: Graph's JSON to vCard/iCalendar and back;
//! - [`store`]: [`GraphStore`], the engine's operations over both.
//!   It also lists, creates, updates and deletes the inbox's message rules and the mail
//!   folders they file into, for the rules engine.
//!
//! Graph chooses item ids and never keeps a vCard/iCalendar UID, so every item mailshift
//! creates carries the engine's name and the source UID (see [`store`]); that is what lets a
//! run cut between a create and its record adopt the item instead of creating it twice.

pub mod client;
pub mod config;
pub mod convert;
pub mod store;

pub use config::{Attendees, FixedToken, GraphConfig, TokenSource};
pub use store::GraphStore;
