//! How to reach Microsoft Graph for one mailbox: what the caller (mailshift's plan) gives
//! [`crate::GraphStore::connect`].

use std::path::PathBuf;
use std::time::Duration;

use mailshift_dav::dav::Secret;

/// Graph's public endpoint, when the plan's `graph.url` is not set.
pub const DEFAULT_URL: &str = "https://graph.microsoft.com/v1.0";

/// What becomes of an event's attendees written to Microsoft 365.
///
/// Graph sends a meeting request to every attendee of an event it creates, and a meeting
/// update to every attendee a PATCH adds ("An event update that includes only the attendees
/// property in the request body sends a meeting update to only the attendees that have
/// changed", learn.microsoft.com/graph/api/event-update); there is no equivalent of EWS's
/// `SendMeetingInvitations="SendToNone"` (microsoft-graph-docs #2309, confirmed by Microsoft in
/// 2018; #7483, 2020). So no order of requests writes attendees silently: the plan chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Attendees {
    /// The event is written without attendees (so nobody is notified); the organizer and the
    /// attendees are kept in the event's body (a readable list) and in an extended property,
    /// from which a copy out of Microsoft 365 restores them.
    #[default]
    KeepWithoutInvitations,
    /// The event is written without attendees and without a trace of them.
    Drop,
    /// The event is written with its attendees: Microsoft 365 sends each one an invitation.
    Send,
}

/// Where Graph is and how to talk to it, for one mailbox.
#[derive(Debug, Clone)]
pub struct GraphConfig {
    /// The API root (`https://graph.microsoft.com/v1.0`, or a national cloud's, or a test
    /// simulator's on loopback). `http://` only to loopback hosts.
    pub url: String,
    /// An OAuth2 access token for `https://graph.microsoft.com/.default`.
    pub token: Secret,
    /// The mailbox (`users/{mailbox}`): its address or its object id.
    pub mailbox: String,
    /// An extra CA certificate (PEM) trusted besides the platform's roots.
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate. Only when the plan says so.
    pub insecure_skip_verify: bool,
    /// Whole-request timeout, per attempt.
    pub timeout: Duration,
    /// Attempts per request for throttling and transient failures (the first included).
    pub attempts: u32,
    /// Wait before the second attempt when Graph does not say (Retry-After), doubled after.
    pub backoff: Duration,
    /// Requests in flight at once for this mailbox: Graph allows 4 per app per mailbox.
    pub max_in_flight: usize,
    /// What becomes of attendees of events written here.
    pub attendees: Attendees,
}

impl GraphConfig {
    pub fn new(url: Option<&str>, token: Secret, mailbox: impl Into<String>) -> GraphConfig {
        GraphConfig {
            url: url.unwrap_or(DEFAULT_URL).trim_end_matches('/').to_string(),
            token,
            mailbox: mailbox.into(),
            ca_file: None,
            insecure_skip_verify: false,
            timeout: Duration::from_secs(60),
            attempts: 6,
            backoff: Duration::from_secs(1),
            max_in_flight: 4,
            attendees: Attendees::default(),
        }
    }
}
