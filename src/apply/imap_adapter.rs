//! The one place where the plan's words become the mail engine's: endpoints and logins, folder
//! rules, copy options, and (back the other way) the engine's error kinds. The engine (`transfer::imap`)
//! knows no plan type and no `crate::error`; everything that calls it from the product goes
//! through here.

use std::path::Path;

use crate::plan::Loaded;

use crate::error::{ErrorKind, StepError};
use crate::plan::model::{self, Credentials, ImapEndpoint, Platform};
use crate::transfer::imap::copy::{CopyError, CopyOptions};
use crate::transfer::imap::folders::{FolderRules, Gmail};
use crate::transfer::imap::session::{Auth, Endpoint, Secret, Security, Target, Tokens};
use crate::transfer::imap::{self as imap, session::ImapError};

/// Default IMAP connections per account and side; servers cap them per user (Dovecot 10).
const DEFAULT_CONNECTIONS: u32 = 4;

/// Where and how to log in on one side of an account; secrets are read now. A side that
/// logs in with OAuth2 (its own `oauth2` block, else its platform's) gets the run's shared
/// token cache for that login (`crate::auth::tokens_for`): every connection of the account
/// asks it, so tokens are fetched once per lifetime and renewed before they expire.
pub fn target(
    loaded: &Loaded,
    platform: &Platform,
    creds: &Credentials,
    login: String,
) -> Result<Target, String> {
    let endpoint = platform.imap_server()?;
    let auth = auth(loaded, platform, creds, login)?;
    Ok(Target::new(
        self::endpoint(&endpoint, loaded.base_dir.as_path()),
        auth,
    ))
}

/// The POP3 server of a `pop3:` platform (a source), with the login as for IMAP: the same
/// password, token or `oauth2` block (XOAUTH2).
pub fn pop3_target(
    loaded: &Loaded,
    platform: &Platform,
    creds: &Credentials,
    login: String,
) -> Result<Target, String> {
    let ep = platform
        .pop3
        .as_ref()
        .ok_or("the platform has no `pop3` endpoint")?;
    let auth = auth(loaded, platform, creds, login)?;
    let mut endpoint = self::endpoint(ep, loaded.base_dir.as_path());
    endpoint.port = ep.effective_pop3_port();
    Ok(Target::new(endpoint, auth))
}

/// The ManageSieve server of a platform with a `sieve:` endpoint (inbox rules), with the login
/// as for IMAP; an omitted host is the platform's IMAP server's.
pub fn sieve_target(
    loaded: &Loaded,
    platform: &Platform,
    creds: &Credentials,
    login: String,
) -> Result<Target, String> {
    let ep = platform
        .sieve
        .as_ref()
        .ok_or("the platform has no `sieve` endpoint")?;
    let imap = if ep.host.is_empty() {
        Some(platform.imap_server()?)
    } else {
        None
    };
    let ep = ep.resolve(imap.as_deref())?;
    let auth = auth(loaded, platform, creds, login)?;
    Ok(Target::new(
        self::endpoint(&ep, loaded.base_dir.as_path()),
        auth,
    ))
}

fn auth(
    loaded: &Loaded,
    platform: &Platform,
    creds: &Credentials,
    login: String,
) -> Result<Auth, String> {
    let base = loaded.base_dir.as_path();
    Ok(
        if let Some(tokens) = crate::auth::tokens_for(loaded, platform, creds, &login)? {
            Auth::XOAuth2 { login, tokens }
        } else {
            match (&creds.password, &creds.oauth2_token) {
                (_, Some(token)) => Auth::XOAuth2 {
                    login,
                    tokens: Tokens::fixed(secret(token.resolve(base).map_err(|e| e.to_string())?)),
                },
                (Some(pw), None) => Auth::Password {
                    login,
                    password: secret(pw.resolve(base).map_err(|e| e.to_string())?),
                },
                (None, None) => {
                    return Err(
                    "no password, token or `oauth2` block (the plan validator should have refused this)"
                        .into(),
                );
                }
            }
        },
    )
}

/// A plan endpoint with its defaults filled in (port, timeout) and its CA file resolved
/// against the plan's directory.
pub fn endpoint(ep: &ImapEndpoint, base_dir: &Path) -> Endpoint {
    Endpoint {
        host: ep.host.clone(),
        port: ep.effective_port(),
        security: match ep.security {
            model::Security::Tls => Security::Tls,
            model::Security::Starttls => Security::Starttls,
            model::Security::None => Security::None,
        },
        ca_file: ep.ca_file.as_ref().map(|ca| base_dir.join(ca)),
        insecure_skip_verify: ep.insecure_skip_verify,
        timeout: ep.command_timeout(),
    }
}

fn secret(s: crate::plan::secret::Secret) -> Secret {
    Secret::new(s.expose())
}

/// An account's `folders:` (none: every folder, special uses mapped).
pub fn folder_rules(rules: Option<&model::FolderRules>) -> FolderRules {
    match rules {
        Some(r) => FolderRules {
            include: r.include.clone(),
            exclude: r.exclude.clone(),
            map: r.map.clone(),
            gmail: Gmail::default(),
        },
        None => FolderRules::default(),
    }
}

/// Which sides of an account are Gmail by the plan's platform types (the engine also trusts
/// a server that offers X-GM-EXT-1), and where Gmail's archived mail goes
/// (`options.gmail_archive_folder`; none: the destination's `\Archive` folder, else
/// `Archive`).
pub fn gmail_sides(source: &Platform, dest: &Platform, opts: &model::MigrationOptions) -> Gmail {
    Gmail {
        source: source.kind == model::PlatformKind::Gmail,
        dest: dest.kind == model::PlatformKind::Gmail,
        archive_folder: opts.gmail_archive_folder.clone(),
    }
}

/// The product's kind of an engine failure: the same words, so outputs, metrics and retries
/// stay what they were.
pub fn error_kind(kind: imap::ErrorKind) -> ErrorKind {
    match kind {
        imap::ErrorKind::Auth => ErrorKind::Auth,
        imap::ErrorKind::Tls => ErrorKind::Tls,
        imap::ErrorKind::Network => ErrorKind::Network,
        imap::ErrorKind::Throttled => ErrorKind::Throttled,
        imap::ErrorKind::Refused => ErrorKind::Refused,
        imap::ErrorKind::Quota => ErrorKind::Quota,
        // A copy pauses on it (`apply::quota`); elsewhere (a verify, a size) it waits long.
        imap::ErrorKind::DailyLimit => ErrorKind::Quota,
        imap::ErrorKind::Config => ErrorKind::Config,
        imap::ErrorKind::State => ErrorKind::State,
        imap::ErrorKind::Bug => ErrorKind::Bug,
    }
}

/// An engine failure as a step's (`StepError::from` cannot be written for the engine's types
/// once the engine and the error type live in other crates than this one).
pub trait IntoStepError {
    fn into_step_error(self) -> StepError;
}

impl IntoStepError for ImapError {
    fn into_step_error(self) -> StepError {
        step_error(self.kind, self.message)
    }
}

impl IntoStepError for CopyError {
    fn into_step_error(self) -> StepError {
        step_error(self.kind, self.message)
    }
}

/// The step's error, with the pause a throttling server suggested in its words (Exchange
/// Online: `Suggested Backoff Time: 500 milliseconds`), read by the engine that knows them.
fn step_error(kind: imap::ErrorKind, message: String) -> StepError {
    let pause = imap::error::suggested_backoff(&message);
    StepError::new(error_kind(kind), message).with_retry_after(pause)
}

/// The copy settings of an account (its options with the plan's defaults filled in).
pub fn copy_options(opts: &model::MigrationOptions) -> CopyOptions {
    CopyOptions {
        connections: opts.connections_per_account.unwrap_or(DEFAULT_CONNECTIONS) as usize,
        max_message_size: opts.max_message_size.as_ref().and_then(|s| s.bytes()),
        since: opts.since.as_ref().and_then(|d| d.ymd()),
        before: opts.before.as_ref().and_then(|d| d.ymd()),
        newest_first: opts.newest_first.unwrap_or(false),
        max_items: opts.max_items,
        expect_empty: !opts.adopt_existing.unwrap_or(true),
        // Set per run from the state's ledger (`apply::quota`).
        budget: Default::default(),
    }
}

/// An account's folder rules and copy options as every mail engine of the product takes them
/// (IMAP and files sources alike): the plan's folders with Gmail's sides, the options within
/// the platforms' limits.
pub fn rules_and_options(account: &crate::model::AccountSpec) -> (FolderRules, CopyOptions) {
    let rules = FolderRules {
        gmail: gmail_sides(&account.source, &account.dest, &account.options),
        ..folder_rules(account.account.folders.as_ref())
    };
    let options = within_platform_limits(
        copy_options(&account.options),
        &account.source,
        &account.dest,
    );
    (rules, options)
}

/// `options` within what the two platforms allow: messages above the destination's size limit
/// are skipped and reported (rather than each refused by the server), and an account never
/// holds more connections than its platforms' `limits.connections`. The plan's own
/// `max_message_size`, when lower, stays.
pub fn within_platform_limits(
    mut options: CopyOptions,
    source: &Platform,
    dest: &Platform,
) -> CopyOptions {
    if let Some(max) = dest.max_message_size() {
        options.max_message_size = Some(options.max_message_size.map_or(max, |m| m.min(max)));
    }
    for cap in [source.limits.connections, dest.limits.connections]
        .into_iter()
        .flatten()
    {
        options.connections = options.connections.min(cap.max(1) as usize);
    }
    options
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_throttling_servers_pause_reaches_the_step_and_nothing_else_carries_one() {
        let words = "[THROTTLED] Request is throttled. Suggested Backoff Time: 500 milliseconds";
        let e = ImapError::new(imap::ErrorKind::Throttled, words).into_step_error();
        assert_eq!(e.kind, ErrorKind::Throttled);
        assert_eq!(e.retry_after, Some(Duration::from_millis(500)));
        assert_eq!(e.message, words);
        let e = ImapError::new(imap::ErrorKind::Network, words).into_step_error();
        assert_eq!(e.retry_after, None);
    }

    fn platform(yaml: &str) -> Platform {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn platform_limits_cap_the_copy_options() {
        let gmail = platform("type: gmail\nlimits: {connections: 2}");
        let imap = platform("type: imap\nimap: {host: h}");
        let opts = copy_options(&model::MigrationOptions::default());
        let capped = within_platform_limits(opts.clone(), &imap, &gmail);
        assert_eq!(capped.max_message_size, Some(35_000_000));
        assert_eq!(capped.connections, 2);
        let to_imap = within_platform_limits(opts.clone(), &gmail, &imap);
        assert_eq!(
            to_imap.max_message_size, None,
            "a source's limit is not the copy's"
        );
        assert_eq!(to_imap.connections, 2);
        let mut small = opts;
        small.max_message_size = Some(1_000);
        assert_eq!(
            within_platform_limits(small, &imap, &gmail).max_message_size,
            Some(1_000)
        );
    }
}
