//! What kind of failure the mail engine met, decided where the server's reply is understood
//! (`session`) and carried as data to whoever acts on it: the copy's reconnect loop here, the
//! caller's retry policy and metrics outside (mailshift maps these kinds onto its own in
//! `apply::imap_adapter`).

use std::fmt;
use std::time::Duration;

/// What went wrong, in few enough words to label a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The server refused the credentials.
    Auth,
    /// A TLS connection cannot be set up: an untrusted certificate, no STARTTLS.
    Tls,
    /// No usable answer: refused or dropped connections, timeouts.
    Network,
    /// The server asked to slow down (`[THROTTLED]`, `[UNAVAILABLE]`, a BYE greeting).
    Throttled,
    /// The server refused one thing it was asked (a message, a folder).
    Refused,
    /// The destination is full, or a server limit is reached.
    Quota,
    /// The account used up a platform's allowance for a period of time (Gmail's daily IMAP
    /// bandwidth: `[OVERQUOTA] Account exceeded command or bandwidth limits`): nothing more goes
    /// through until the window reopens, so the copy pauses the account instead of failing it.
    /// Unlike [`ErrorKind::Quota`], nobody has to free anything.
    DailyLimit,
    /// The copy cannot be carried out as asked: a CA file that cannot be read, a folder
    /// mapping that cannot hold, a destination that is not empty when it was said to be.
    Config,
    /// The journal cannot be read or written.
    State,
    /// The engine itself went wrong (a task panicked, a spool file failed).
    Bug,
}

impl ErrorKind {
    /// Worth a reconnect and another attempt within the same run (the copy's own loop).
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorKind::Network | ErrorKind::Throttled)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The pause a throttling server suggests: Exchange Online says
/// `[THROTTLED] Suggested Backoff Time: 500 milliseconds`; seconds are read too.
pub fn suggested_backoff(text: &str) -> Option<Duration> {
    let lower = text.to_ascii_lowercase();
    let at = lower.find("backoff time")? + "backoff time".len();
    let rest = lower[at..].trim_start_matches([':', ' ', '=']);
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let n: u64 = digits.parse().ok()?;
    let unit = rest[digits.len()..].trim_start();
    if unit.starts_with("ms") || unit.starts_with("milli") {
        Some(Duration::from_millis(n))
    } else if unit.starts_with('s') {
        Some(Duration::from_secs(n))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_network_and_throttling_are_worth_a_reconnect() {
        assert!(ErrorKind::Network.is_transient());
        assert!(ErrorKind::Throttled.is_transient());
        for k in [
            ErrorKind::Auth,
            ErrorKind::Tls,
            ErrorKind::Quota,
            ErrorKind::DailyLimit,
            ErrorKind::State,
        ] {
            assert!(!k.is_transient(), "{k}");
        }
    }

    #[test]
    fn suggested_backoffs_are_read_in_both_units() {
        assert_eq!(
            suggested_backoff("[THROTTLED] Suggested Backoff Time: 500 milliseconds"),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            suggested_backoff("suggested backoff time=3s"),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            suggested_backoff("busy. Suggested backoff time: 30 seconds"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(suggested_backoff("slow down"), None);
    }
}
