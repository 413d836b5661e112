//! The transport under the SOAP client, with the DAV client's conventions (crates/mailshift-dav
//! `dav/client.rs`): rustls on ring with the platform's roots plus the plan's `ca_file`, or no
//! verification only when the plan says `insecure_skip_verify`; URLs checked (https, or http to
//! this machine only; no credentials in them); errors told apart (TLS, network) and shown
//! without credentials.

use std::error::Error as _;

use mailshift_dav::error::ErrorKind;
use mailshift_dav::store::StoreError;
use reqwest::Url;

use crate::config::EwsConfig;

pub fn error(kind: ErrorKind, message: impl Into<String>) -> StoreError {
    StoreError {
        kind,
        message: message.into(),
        retry_after: None,
    }
}

/// The HTTP client for one configuration: its TLS trust, timeouts, no redirects followed
/// (credentials must not follow one to another host).
pub fn http_client(config: &EwsConfig) -> Result<reqwest::Client, StoreError> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config(config)?)
        .timeout(config.timeout)
        .connect_timeout(config.timeout.min(std::time::Duration::from_secs(30)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("mailshift/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| {
            error(
                ErrorKind::Config,
                format!("cannot build the HTTP client: {e}"),
            )
        })
}

/// The reason, when a failure comes from TLS (a rustls error somewhere in its sources), so
/// that a certificate problem is told apart from an unreachable host without reading words.
pub fn tls_failure(e: &reqwest::Error) -> Option<String> {
    e.source().and_then(find_rustls)
}

pub fn find_rustls(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return Some(tls.to_string());
    }
    // hyper-util and tokio-rustls wrap it in io::Errors, whose `source()` skips the wrapped
    // error itself: look inside them too.
    if let Some(inner) = e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        && let Some(found) = find_rustls(inner)
    {
        return Some(found);
    }
    e.source().and_then(find_rustls)
}

/// An error and its sources on one line (reqwest's own message is only the outer layer).
pub fn chain(e: &reqwest::Error) -> String {
    let mut message = strip_url(e);
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    message
}

/// reqwest's message without the URL (the caller's message names it already).
pub fn strip_url(e: &reqwest::Error) -> String {
    let text = e.to_string();
    match e.url() {
        Some(url) => text
            .replace(&format!(" ({url})"), "")
            .replace(&format!(" for url ({url})"), ""),
        None => text,
    }
}

/// A URL as shown in messages: never its credentials.
pub fn shown(url: &Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

/// Checks the caller's URL as the DAV client does: http(s), no credentials in it, plain http
/// only to this machine.
pub fn check_url(text: &str) -> Result<Url, StoreError> {
    mailshift_dav::dav::check_service_url(text, "EWS URL")
}

/// The DAV client's TLS set-up (rustls with ring, the platform's roots plus the caller's CA
/// file, or no verification at all when asked): EWS trusts servers exactly as DAV does.
fn tls_config(config: &EwsConfig) -> Result<rustls::ClientConfig, StoreError> {
    mailshift_dav::dav::tls_config(&mailshift_dav::dav::DavConfig {
        url: config.url.clone(),
        ca_file: config.ca_file.clone(),
        insecure_skip_verify: config.insecure_skip_verify,
        ..mailshift_dav::dav::DavConfig::default()
    })
}
