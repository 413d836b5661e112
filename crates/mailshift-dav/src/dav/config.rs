//! How to reach and log in to a CardDAV/CalDAV server: what the caller (mailshift's plan)
//! gives [`super::DavStore::connect`].

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A credential that never shows: its `Debug` prints `***`, and it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(value.to_string())
    }
}

/// How requests are authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// HTTP Basic: a login and a (possibly application-specific) password.
    Basic { login: String, password: Secret },
    /// An OAuth2 access token (`Authorization: Bearer`).
    Bearer(Secret),
    /// No credentials (a local test server).
    None,
}

/// Where the server is and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DavConfig {
    /// The platform's DAV URL: a bare `https://host` (RFC 6764 discovery through the
    /// well-known URIs) or a context path / principal URL. `http://` only to loopback hosts.
    pub url: String,
    pub auth: Auth,
    /// An extra CA certificate (PEM, one or more) trusted besides the platform's roots.
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate. Only when the plan says so.
    pub insecure_skip_verify: bool,
    /// Whole-request timeout, per attempt.
    pub timeout: Duration,
    /// Attempts per request for transient failures (the first included; 1 disables retries).
    pub attempts: u32,
    /// Wait before the second attempt, doubled for each further one (unless the server says
    /// how long with Retry-After).
    pub backoff: Duration,
}

impl DavConfig {
    /// A configuration with the default timeout and retries.
    pub fn new(url: impl Into<String>, auth: Auth) -> DavConfig {
        DavConfig {
            url: url.into(),
            auth,
            ..DavConfig::default()
        }
    }
}

impl Default for DavConfig {
    fn default() -> DavConfig {
        DavConfig {
            url: String::new(),
            auth: Auth::None,
            ca_file: None,
            insecure_skip_verify: false,
            timeout: Duration::from_secs(60),
            attempts: 4,
            backoff: Duration::from_secs(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let auth = Auth::Basic {
            login: "alice".into(),
            password: Secret::new("hunter2"),
        };
        let shown = format!("{auth:?} {:?}", Auth::Bearer("tok3n".into()));
        assert!(
            !shown.contains("hunter2") && !shown.contains("tok3n"),
            "{shown}"
        );
        assert!(shown.contains("alice"), "{shown}");
    }
}
