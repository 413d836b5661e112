//! How to reach Microsoft Graph for one mailbox: what the caller (mailshift's plan) gives
//! [`crate::GraphStore::connect`].

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use mailshift_dav::dav::Secret;
use mailshift_dav::store::StoreError;

/// Where access tokens come from: mailshift's token cache (which refreshes them before they
/// expire: a copy can outlast a token's hour) or a fixed token. The client asks for one per
/// request and tells the source when Graph refused it (401), then asks again once.
pub trait TokenSource: Send + Sync {
    fn token(&self) -> Pin<Box<dyn Future<Output = Result<Secret, StoreError>> + Send + '_>>;
    fn refused(&self, token: &Secret);
}

/// A token given as is: never refreshed.
pub struct FixedToken(pub Secret);

impl TokenSource for FixedToken {
    fn token(&self) -> Pin<Box<dyn Future<Output = Result<Secret, StoreError>> + Send + '_>> {
        let token = self.0.clone();
        Box::pin(async move { Ok(token) })
    }

    fn refused(&self, _token: &Secret) {}
}

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
#[derive(Clone)]
pub struct GraphConfig {
    /// The API root (`https://graph.microsoft.com/v1.0`, or a national cloud's, or a test
    /// simulator's on loopback). `http://` only to loopback hosts.
    pub url: String,
    /// OAuth2 access tokens for Graph (scope `https://graph.microsoft.com/.default` app-only).
    pub tokens: Arc<dyn TokenSource>,
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
    pub fn new(
        url: Option<&str>,
        tokens: Arc<dyn TokenSource>,
        mailbox: impl Into<String>,
    ) -> GraphConfig {
        GraphConfig {
            url: url.unwrap_or(DEFAULT_URL).trim_end_matches('/').to_string(),
            tokens,
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

impl std::fmt::Debug for GraphConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphConfig")
            .field("url", &self.url)
            .field("mailbox", &self.mailbox)
            .field("attendees", &self.attendees)
            .finish_non_exhaustive()
    }
}
