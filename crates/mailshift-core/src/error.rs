//! What kind of failure a step met, and what to do about it: retry soon, retry later, or wait
//! for a person.
//!
//! The kind (and a throttling server's suggested pause) is decided where the failure is
//! understood (an IMAP reply in the mail engine, mapped by `apply::imap_adapter`; an API answer
//! in `mailshift_ovh::error`; a secret in `apply`), carried up as data, and read by whoever acts
//! on it: `watch`'s scheduler, the metrics. Nothing above the source reads the message's words
//! to find out. This module sits at the bottom of the core, beside no one: every layer may
//! name it, and it names no layer.

use std::fmt;
use std::time::Duration;

/// What went wrong, in few enough words to label a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// A server or an API refused the credentials (a password, a token, API keys).
    Auth,
    /// A TLS connection cannot be set up: an untrusted certificate, no STARTTLS.
    Tls,
    /// No usable answer: refused or dropped connections, timeouts, 5xx answers.
    Network,
    /// The server asked to slow down (`[THROTTLED]`, `[UNAVAILABLE]`, HTTP 429, a busy object).
    Throttled,
    /// The server refused one thing it was asked (a message, a folder, a call).
    Refused,
    /// The destination is full, or a platform limit is reached.
    Quota,
    /// The plan cannot be carried out as written: a secret that cannot be read, a value the
    /// platform rejects, a feature the platform lacks.
    Config,
    /// The state file cannot be read or written.
    State,
    /// The platform holds something else than the plan says, and only a person can decide.
    Conflict,
    /// mailshift itself went wrong (a task panicked, an answer it cannot read).
    Bug,
}

/// When to try a failed step again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Retry {
    /// Soon, backing off: the cause may pass by itself (a dropped link, a restart).
    Backoff,
    /// Later, backing off longer: the server is protecting itself; hammering it makes it worse.
    SlowBackoff,
    /// Not on a timer: only a change of the plan (or of the platform, signalled by SIGHUP)
    /// can help, and retrying a refused password can lock the account.
    AwaitChange,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::Auth,
        ErrorKind::Tls,
        ErrorKind::Network,
        ErrorKind::Throttled,
        ErrorKind::Refused,
        ErrorKind::Quota,
        ErrorKind::Config,
        ErrorKind::State,
        ErrorKind::Conflict,
        ErrorKind::Bug,
    ];

    /// The label of `mailshift_errors_total` and of logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Auth => "auth",
            ErrorKind::Tls => "tls",
            ErrorKind::Network => "network",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Refused => "refused",
            ErrorKind::Quota => "quota",
            ErrorKind::Config => "config",
            ErrorKind::State => "state",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Bug => "bug",
        }
    }

    pub fn retry(self) -> Retry {
        match self {
            ErrorKind::Auth | ErrorKind::Tls | ErrorKind::Config | ErrorKind::Conflict => {
                Retry::AwaitChange
            }
            // Space can be freed on the platform without touching the plan.
            ErrorKind::Throttled | ErrorKind::Quota => Retry::SlowBackoff,
            ErrorKind::Network | ErrorKind::Refused | ErrorKind::State | ErrorKind::Bug => {
                Retry::Backoff
            }
        }
    }

    /// Worth a reconnect and another attempt within the same run (the copy's own loop).
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorKind::Network | ErrorKind::Throttled)
    }

    /// Why nothing is retried until a change, for people ("waiting for a plan change or
    /// SIGHUP: the password was refused").
    pub fn waiting_reason(self) -> &'static str {
        match self {
            ErrorKind::Auth => "the password was refused",
            ErrorKind::Tls => "the TLS connection cannot be set up",
            ErrorKind::Config => "the plan cannot be carried out as written",
            ErrorKind::Conflict => "a conflict needs a decision",
            _ => "retrying cannot help",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A step's failure: its kind, and the text people read (unchanged from the days of strings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepError {
    pub kind: ErrorKind,
    pub message: String,
    /// How long the server asked to be left alone, when it said.
    pub retry_after: Option<Duration>,
}

impl StepError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> StepError {
        StepError {
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The pause the server asked for, as its source read it (only throttling carries one).
    pub fn with_retry_after(mut self, pause: Option<Duration>) -> StepError {
        if self.kind == ErrorKind::Throttled {
            self.retry_after = pause;
        }
        self
    }

    pub fn config(message: impl Into<String>) -> StepError {
        StepError::new(ErrorKind::Config, message)
    }

    pub fn state(message: impl Into<String>) -> StepError {
        StepError::new(ErrorKind::State, message)
    }

    pub fn bug(message: impl Into<String>) -> StepError {
        StepError::new(ErrorKind::Bug, message)
    }

    pub fn retry(&self) -> Retry {
        self.kind.retry()
    }

    /// The same failure, its text prefixed (`source: …`).
    pub fn context(self, prefix: impl fmt::Display) -> StepError {
        StepError {
            message: format!("{prefix}: {}", self.message),
            ..self
        }
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StepError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_credentials_plans_and_tls_wait_for_a_change() {
        for kind in [
            ErrorKind::Auth,
            ErrorKind::Config,
            ErrorKind::Tls,
            ErrorKind::Conflict,
        ] {
            assert_eq!(kind.retry(), Retry::AwaitChange, "{kind}");
            assert!(!kind.is_transient(), "{kind}");
        }
        assert_eq!(ErrorKind::Auth.waiting_reason(), "the password was refused");
    }

    #[test]
    fn networks_back_off_and_throttling_backs_off_longer() {
        assert_eq!(ErrorKind::Network.retry(), Retry::Backoff);
        assert!(ErrorKind::Network.is_transient());
        assert_eq!(ErrorKind::Throttled.retry(), Retry::SlowBackoff);
        assert!(ErrorKind::Throttled.is_transient());
        assert_eq!(ErrorKind::Quota.retry(), Retry::SlowBackoff);
        for kind in [ErrorKind::Refused, ErrorKind::State, ErrorKind::Bug] {
            assert_eq!(kind.retry(), Retry::Backoff, "{kind}");
            assert!(!kind.is_transient(), "{kind}");
        }
    }

    #[test]
    fn labels_are_distinct_and_lower_case() {
        let labels: std::collections::BTreeSet<&str> =
            ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(labels.len(), ErrorKind::ALL.len());
        assert!(
            labels
                .iter()
                .all(|l| l.chars().all(|c| c.is_ascii_lowercase()))
        );
    }

    #[test]
    fn only_throttling_carries_a_pause() {
        let pause = Some(Duration::from_secs(2));
        let e = StepError::new(ErrorKind::Throttled, "slow down").with_retry_after(pause);
        assert_eq!(e.retry_after, pause);
        let e = StepError::new(ErrorKind::Network, "dropped").with_retry_after(pause);
        assert_eq!(e.retry_after, None);
    }

    #[test]
    fn context_keeps_the_kind_and_display_is_the_message() {
        let e = StepError::config("cannot read secret").context("source");
        assert_eq!(e.kind, ErrorKind::Config);
        assert_eq!(e.to_string(), "source: cannot read secret");
    }
}
