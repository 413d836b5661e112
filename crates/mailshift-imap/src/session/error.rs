//! What went wrong on a connection, classified where the server's reply is understood: a NO
//! or BAD by its response code (RFC 5530) or known words, a dropped link as transient, a
//! refused login as `Auth` unless the server is only busy. The text people read keeps the
//! server's own words (async-imap hands them over in a debug form, unpicked here).

use std::fmt;

use super::Target;
use crate::error::ErrorKind;

/// A failure on an IMAP connection, classified here where the reply is understood. `transient`
/// ones (network, timeouts, throttling) are worth a reconnect and retry; the others (bad
/// login, refused TLS) are not. `transient` and `throttled` follow from `kind`.
#[derive(Debug, Clone)]
pub struct ImapError {
    pub message: String,
    pub transient: bool,
    /// The server asked us to slow down (`[THROTTLED]`, "Suggested Backoff Time").
    pub throttled: bool,
    pub kind: ErrorKind,
}

impl ImapError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ImapError {
            message: message.into(),
            transient: kind.is_transient(),
            throttled: kind == ErrorKind::Throttled,
            kind,
        }
    }

    /// The server refused what it was asked, and asking again will not change its mind.
    pub(crate) fn fatal(message: impl Into<String>) -> Self {
        ImapError::new(ErrorKind::Refused, message)
    }

    pub(crate) fn transient(message: impl Into<String>) -> Self {
        ImapError::new(ErrorKind::Network, message)
    }
}

impl fmt::Display for ImapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ImapError {}

pub(super) fn imap_error(host: &str, what: &str, e: async_imap::error::Error) -> ImapError {
    use async_imap::error::Error as E;
    match e {
        E::No(text) | E::Bad(text) => {
            let text = server_text(&text);
            refusal(format!("{what} on {host}: server said {text}"), &text)
        }
        other => ImapError::transient(format!("{what} on {host} failed: {other}")),
    }
}

pub(super) fn login_error(target: &Target, e: async_imap::error::Error) -> ImapError {
    use async_imap::error::Error as E;
    match e {
        E::No(text) | E::Bad(text) => {
            let text = server_text(&text);
            // A NO to LOGIN is a refused password unless the server says it is only busy, or
            // that the account used up its day's allowance.
            let kind = match refusal_kind(&text) {
                k @ (ErrorKind::Throttled | ErrorKind::DailyLimit) => k,
                _ => ErrorKind::Auth,
            };
            ImapError::new(
                kind,
                format!(
                    "login as {} on {}:{} was refused: {text}",
                    target.auth.login(),
                    target.endpoint.host,
                    target.endpoint.port
                ),
            )
        }
        other => ImapError::transient(format!("login to {} failed: {other}", target.describe())),
    }
}

/// The server's own words from async-imap's refusal text, which arrives as the debug form of
/// its response: `code: None, info: Some("[AUTHENTICATIONFAILED] ...")` from some commands,
/// `outcome: Outcome { code: None, information: Some("...") }` from others. People read it.
pub(super) fn server_text(text: &str) -> String {
    for key in ["information: Some(\"", "info: Some(\""] {
        if let Some(start) = text.find(key) {
            return debug_str(&text[start + key.len()..]);
        }
    }
    // No text: the response code is all there is (`code: Some(TryCreate)`).
    if let Some(start) = text.find("code: Some(") {
        let rest = &text[start + "code: Some(".len()..];
        let code = rest.split([')', '(', ',']).next().unwrap_or_default();
        return format!("[{}]", code.to_ascii_uppercase());
    }
    if text.contains("code: None") {
        return "no reason given".to_string();
    }
    text.to_string()
}

/// The contents of a Rust debug string literal, up to its closing quote, unescaped.
pub(super) fn debug_str(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some('0') => out.push('\0'),
                Some('u') => {
                    // `\u{1b}`
                    let hex: String = chars
                        .by_ref()
                        .skip_while(|&c| c == '{')
                        .take_while(|&c| c != '}')
                        .collect();
                    if let Some(c) = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                        out.push(c);
                    }
                }
                Some(other) => out.push(other),
                None => break,
            },
            c => out.push(c),
        }
    }
    out
}

/// A NO about the folder or the account rather than the message (RFC 5530 codes): a full
/// mailbox, a folder we may not write to or that is gone refuses every message alike, so it
/// fails the folder instead of skipping each message as refused.
pub(super) fn refuses_folder(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "[overquota]",
        "quota exceeded",
        "[noperm]",
        "[trycreate]",
        "[nonexistent]",
        "[serverbug]",
        "[inuse]",
    ]
    .iter()
    .any(|code| t.contains(code))
}

/// A NO or BAD reply, `message` for people, classified by the server's `text`.
pub(super) fn refusal(message: String, text: &str) -> ImapError {
    ImapError::new(refusal_kind(text), message)
}

/// What a NO or BAD reply means, from its response code (RFC 5530) or, for servers that put
/// none, the words they are known to use.
pub(crate) fn refusal_kind(text: &str) -> ErrorKind {
    let t = text.to_ascii_lowercase();
    // Gmail's daily IMAP bandwidth, whatever the code it comes with (`[OVERQUOTA]` to FETCH
    // and APPEND, seen in ha-email-sensor#16 and chatwoot#6082, where the account was blocked
    // for a day): a pause, not a full mailbox and not a short throttle.
    if is_daily_limit(&t) {
        return ErrorKind::DailyLimit;
    }
    // Exchange Online says `[THROTTLED]`, and "Server Unavailable" when it sheds load; others
    // "Suggested Backoff Time" or `[UNAVAILABLE]`.
    if t.contains("[throttled]")
        || t.contains("suggested backoff")
        || t.contains("[unavailable]")
        || t.contains("server unavailable")
        || t.contains("too many")
    {
        ErrorKind::Throttled
    } else if t.contains("[overquota]")
        || t.contains("[limit]")
        || t.contains("quota")
        || t.contains("mailbox is full")
        || t.contains("mailbox full")
    {
        ErrorKind::Quota
    } else if t.contains("[authenticationfailed]")
        || t.contains("[authorizationfailed]")
        || t.contains("[expired]")
    {
        ErrorKind::Auth
    } else {
        ErrorKind::Refused
    }
}

/// The words of a per-period allowance used up (lower-case `t`): Gmail's "Account exceeded
/// command or bandwidth limits", or a throttle that names a daily limit.
fn is_daily_limit(t: &str) -> bool {
    t.contains("bandwidth limit")
        || t.contains("exceeded command or bandwidth")
        || t.contains("daily limit")
        || t.contains("daily quota")
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::time::Duration;

    use super::super::{Auth, Endpoint, Secret, Security};
    use super::*;

    #[test]
    fn refusals_read_as_the_server_wrote_them() {
        assert_eq!(
            server_text(
                r#"code: None, info: Some("[AUTHENTICATIONFAILED] Authentication failed.")"#
            ),
            "[AUTHENTICATIONFAILED] Authentication failed."
        );
        assert_eq!(server_text("plain words"), "plain words");
        assert_eq!(
            server_text(
                r#"outcome: Outcome { code: None, information: Some("Mailbox doesn't exist: Back\\\\slash \"q\" \u{1b}") }"#
            ),
            "Mailbox doesn't exist: Back\\\\slash \"q\" \u{1b}"
        );
        assert_eq!(
            server_text("outcome: Outcome { code: Some(TryCreate), information: None }"),
            "[TRYCREATE]"
        );
        assert_eq!(server_text("code: None, info: None"), "no reason given");
    }

    #[test]
    fn refusals_are_classified_by_their_codes_and_known_words() {
        for (text, kind) in [
            (
                "[THROTTLED] Suggested Backoff Time: 500 milliseconds",
                ErrorKind::Throttled,
            ),
            ("[UNAVAILABLE] Try again later", ErrorKind::Throttled),
            ("Server Unavailable. 15", ErrorKind::Throttled),
            ("[OVERQUOTA] Quota exceeded", ErrorKind::Quota),
            (
                "[OVERQUOTA] Quota exceeded (mailbox for user is full)",
                ErrorKind::Quota,
            ),
            (
                "[OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)",
                ErrorKind::DailyLimit,
            ),
            (
                "[THROTTLED] Account exceeded its daily limit",
                ErrorKind::DailyLimit,
            ),
            ("[LIMIT] Too large", ErrorKind::Quota),
            ("Mailbox is full", ErrorKind::Quota),
            (
                "[AUTHENTICATIONFAILED] Authentication failed.",
                ErrorKind::Auth,
            ),
            ("[NONEXISTENT] Mailbox doesn't exist", ErrorKind::Refused),
            ("Message too large", ErrorKind::Refused),
        ] {
            assert_eq!(refusal_kind(text), kind, "{text}");
        }
        let e = refusal("APPEND on h: server said x".into(), "[OVERQUOTA] full");
        assert_eq!(
            (e.kind, e.transient, e.throttled),
            (ErrorKind::Quota, false, false)
        );
        let e = refusal("x".into(), "[THROTTLED] slow down");
        assert_eq!(
            (e.kind, e.transient, e.throttled),
            (ErrorKind::Throttled, true, true)
        );
    }

    fn target() -> Target {
        Target::new(
            Endpoint {
                host: "h".into(),
                port: 143,
                security: Security::None,
                ca_file: None,
                insecure_skip_verify: false,
                timeout: Duration::from_secs(120),
            },
            Auth::Password {
                login: "bob".into(),
                password: Secret::new("pw"),
            },
        )
    }

    #[test]
    fn a_refused_login_is_auth_unless_the_server_is_only_busy() {
        use async_imap::error::Error as E;
        let refused = login_error(
            &target(),
            E::No(
                r#"code: None, info: Some("[AUTHENTICATIONFAILED] Authentication failed.")"#.into(),
            ),
        );
        assert_eq!(refused.kind, ErrorKind::Auth);
        assert!(!refused.transient);
        assert_eq!(
            refused.message,
            "login as bob on h:143 was refused: [AUTHENTICATIONFAILED] Authentication failed."
        );
        let plain_no = login_error(&target(), E::No("Login failed".into()));
        assert_eq!(plain_no.kind, ErrorKind::Auth);
        let busy = login_error(
            &target(),
            E::No("[UNAVAILABLE] Server Unavailable. 15".into()),
        );
        assert_eq!(busy.kind, ErrorKind::Throttled);
        let spent = login_error(
            &target(),
            E::No("[ALERT] Account exceeded command or bandwidth limits. (Failure)".into()),
        );
        assert_eq!(
            (spent.kind, spent.transient),
            (ErrorKind::DailyLimit, false)
        );
        let dropped = login_error(
            &target(),
            E::Io(io::Error::new(io::ErrorKind::ConnectionReset, "reset")),
        );
        assert_eq!(dropped.kind, ErrorKind::Network);
        assert!(dropped.transient);
    }

    #[test]
    fn command_refusals_and_dropped_connections_keep_their_kinds() {
        use async_imap::error::Error as E;
        let gone = imap_error("h", "SELECT", E::No("[NONEXISTENT] Unknown Mailbox".into()));
        assert_eq!((gone.kind, gone.transient), (ErrorKind::Refused, false));
        let full = imap_error("h", "APPEND", E::No("[OVERQUOTA] Quota exceeded".into()));
        assert_eq!(full.kind, ErrorKind::Quota);
        let cut = imap_error(
            "h",
            "FETCH",
            E::Io(io::Error::new(io::ErrorKind::BrokenPipe, "pipe")),
        );
        assert_eq!((cut.kind, cut.transient), (ErrorKind::Network, true));
    }

    #[test]
    fn refusals_of_the_folder_are_told_from_refusals_of_a_message() {
        assert!(refuses_folder(
            "[OVERQUOTA] Quota exceeded (mailbox for user is full)"
        ));
        assert!(refuses_folder("[NOPERM] Permission denied"));
        assert!(!refuses_folder(
            "[LIMIT] Mail size is larger than the maximum size allowed by server configuration"
        ));
        assert!(!refuses_folder("Message contains invalid header"));
    }
}
