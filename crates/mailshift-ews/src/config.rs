//! How to reach and log in to an Exchange server's EWS endpoint: what the caller (mailshift's
//! plan, `ews:` on an `exchange` or `ovh-exchange` platform) gives [`crate::EwsStore::connect`].
//! Credentials are mailshift-dav's ([`Auth`], [`Secret`]): one redacted type for every groupware end.

use std::path::PathBuf;
use std::time::Duration;

pub use mailshift_dav::dav::{Auth, Secret};

/// The `RequestServerVersion` sent when the plan does not name one. Every request this crate
/// builds is valid from Exchange 2010 SP1 on (FindFolder Deep, extended-property restrictions,
/// CalendarItem UID, contact photos need 2010); 2013 SP1 is what OVHcloud Hosted/Private
/// Exchange and Exchange Online answer to, and the schema we check against.
pub const DEFAULT_VERSION: &str = "Exchange2013_SP1";

/// The `RequestServerVersion` values this client accepts from a plan: the published
/// `ExchangeVersionType` values from Exchange 2010 SP1 on (earlier ones lack the contact
/// photo and time zone elements the copy writes).
pub const VERSIONS: &[&str] = &[
    "Exchange2010_SP1",
    "Exchange2010_SP2",
    "Exchange2013",
    "Exchange2013_SP1",
    "Exchange2015",
    "Exchange2016",
    "V2015_10_05",
    "V2016_01_06",
];

/// How the password of [`Auth::Basic`] is presented (the plan's `ews.auth`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AuthScheme {
    /// HTTP Basic only.
    Basic,
    /// NTLMv2 only ([MS-NLMP] over HTTP, [MS-NTHT]): never a Basic header. What OVHcloud's
    /// Hosted/Private Exchange and many on-premises servers (Basic turned off) accept.
    Ntlm,
    /// Basic first; a 401 offering NTLM (or Negotiate) but not Basic switches the session to
    /// NTLM, once.
    #[default]
    Auto,
}

/// Where the server is and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EwsConfig {
    /// The EWS endpoint (`https://HOST/EWS/Exchange.asmx`); empty to find it by Autodiscover
    /// from `mailbox`'s domain. `http://` only to loopback hosts.
    pub url: String,
    /// The account's SMTP address (Autodiscover, messages).
    pub mailbox: String,
    /// `RequestServerVersion` (one of [`VERSIONS`]).
    pub version: String,
    pub auth: Auth,
    /// How a login and password are presented (Bearer tokens are always sent as such).
    pub auth_scheme: AuthScheme,
    /// An extra CA certificate (PEM, one or more) trusted besides the platform's roots.
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate. Only when the plan says so.
    pub insecure_skip_verify: bool,
    /// Whole-request timeout, per attempt.
    pub timeout: Duration,
    /// Attempts per request for transient failures (the first included; 1 disables retries).
    pub attempts: u32,
    /// Wait before the second attempt, doubled for each further one, unless the server says
    /// how long (Retry-After, or ErrorServerBusy's BackOffMilliseconds).
    pub backoff: Duration,
}

impl EwsConfig {
    pub fn new(url: impl Into<String>, mailbox: impl Into<String>, auth: Auth) -> EwsConfig {
        EwsConfig {
            url: url.into(),
            mailbox: mailbox.into(),
            auth,
            ..EwsConfig::default()
        }
    }
}

impl Default for EwsConfig {
    fn default() -> EwsConfig {
        EwsConfig {
            url: String::new(),
            mailbox: String::new(),
            version: DEFAULT_VERSION.into(),
            auth: Auth::None,
            auth_scheme: AuthScheme::Auto,
            ca_file: None,
            insecure_skip_verify: false,
            timeout: Duration::from_secs(100),
            attempts: 5,
            backoff: Duration::from_secs(1),
        }
    }
}
