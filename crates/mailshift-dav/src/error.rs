//! What kind of failure the contacts/calendars engine met, decided where the reply is
//! understood (the HTTP client, the file reader) and carried as data to whoever acts on it
//! (mailshift maps these kinds onto its own in `apply::content::dav`).

use std::fmt;

/// What went wrong, in few enough words to label a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The server refused the credentials (401/403 on the account's own collections).
    Auth,
    /// A TLS connection cannot be set up: an untrusted certificate.
    Tls,
    /// No usable answer: refused or dropped connections, timeouts, 5xx.
    Network,
    /// The server asked to slow down (429, 503 with Retry-After).
    Throttled,
    /// The server refused one thing it was asked (an object, a collection).
    Refused,
    /// The destination is full (507), or a server limit is reached.
    Quota,
    /// The copy cannot be carried out as asked: no DAV service at the URL, a CA file that
    /// cannot be read, a mapping that cannot hold, a file that cannot be read.
    Config,
    /// The journal cannot be read or written.
    State,
    /// The engine itself went wrong.
    Bug,
}

impl ErrorKind {
    /// Worth another attempt within the same run.
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorKind::Network | ErrorKind::Throttled)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Auth => "auth",
            ErrorKind::Tls => "tls",
            ErrorKind::Network => "network",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Refused => "refused",
            ErrorKind::Quota => "quota",
            ErrorKind::Config => "config",
            ErrorKind::State => "state",
            ErrorKind::Bug => "bug",
        })
    }
}
