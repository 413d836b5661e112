//! Server cells (`host`, `host:port` or a URL) and command-line endpoints, and what a host
//! name says about its OVHcloud product.

use super::quoted;
use crate::plan::model::{ImapEndpoint, PlatformKind, Security};

/// An IMAP endpoint from command-line settings: `host` or `host:port`, the explicit port
/// winning, security defaulting to what the port implies (143: `starttls`, else `tls`).
pub fn endpoint(
    host: &str,
    port: Option<u16>,
    security: Option<Security>,
) -> Result<ImapEndpoint, String> {
    let server = parse_server(host.trim())?;
    let mut ep = server.endpoint;
    if let Some(p) = port {
        if p == 0 {
            return Err("port 0 is not a port; use e.g. 993 (TLS) or 143 (STARTTLS)".into());
        }
        ep.port = Some(p);
    }
    let port = ep.port;
    if let Some(s) = security {
        ep.security = s;
    } else if port == Some(143) {
        ep.security = Security::Starttls;
    }
    // Keep the file short: write the port only when it is not the security's default.
    if ep.port == Some(default_port(ep.security)) {
        ep.port = None;
    }
    Ok(ep)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ServerType {
    Imap,
    Exchange,
    /// A POP3 server (OMM's `POP` source type): the platform gets a `pop3:` endpoint.
    Pop3,
}

pub(super) struct Server {
    pub(super) endpoint: ImapEndpoint,
    /// The file gave a web address (OMM's Exchange rows give the EWS URL).
    pub(super) web_url: bool,
}

fn default_port(security: Security) -> u16 {
    match security {
        Security::Tls => 993,
        Security::Starttls | Security::None => 143,
    }
}

/// Reads a server cell: `host`, `host:port`, or a URL (`imaps://`, `imap://`, `https://`).
pub(super) fn parse_server(text: &str) -> Result<Server, String> {
    let (scheme, host, port) = host_port(text)?;
    let (security, port, web_url) = match scheme.as_deref() {
        None => (
            if port == Some(143) {
                Security::Starttls
            } else {
                Security::Tls
            },
            port,
            false,
        ),
        Some("imaps") => (Security::Tls, port, false),
        Some("imap") => (Security::Starttls, port, false),
        // A web URL's port is the web server's, not IMAP's.
        Some("https" | "http") => (Security::Tls, None, true),
        Some(other) => {
            return Err(format!(
                "{} has the scheme {}; write a host name, or an imaps://, imap:// or https:// \
                 URL",
                quoted(text),
                quoted(other)
            ));
        }
    };
    let port = port.filter(|&p| p != default_port(security));
    Ok(Server {
        endpoint: endpoint_of(host, port, security),
        web_url,
    })
}

/// Reads a POP3 server cell: `host` (POP3 over TLS, 995), `host:110` (STLS), `host:port`, or
/// a `pop3s://` (TLS) or `pop3://` / `pop://` (STLS) URL.
pub(super) fn parse_pop3_server(text: &str) -> Result<Server, String> {
    let (scheme, host, port) = host_port(text)?;
    let security = match scheme.as_deref() {
        None if port == Some(110) => Security::Starttls,
        None | Some("pop3s" | "pops") => Security::Tls,
        Some("pop3" | "pop") => Security::Starttls,
        Some(other) => {
            return Err(format!(
                "{} has the scheme {} for a POP source; write a host name, or a pop3s:// or \
                 pop3:// URL",
                quoted(text),
                quoted(other)
            ));
        }
    };
    let default = if security == Security::Tls { 995 } else { 110 };
    Ok(Server {
        endpoint: endpoint_of(host, port.filter(|&p| p != default), security),
        web_url: false,
    })
}

fn endpoint_of(host: &str, port: Option<u16>, security: Security) -> ImapEndpoint {
    ImapEndpoint {
        host: host.to_lowercase(),
        port,
        security,
        ca_file: None,
        insecure_skip_verify: false,
        allow_plaintext: false,
        timeout: None,
    }
}

/// A server cell's scheme (lower-cased), host and port.
fn host_port(text: &str) -> Result<(Option<String>, &str, Option<u16>), String> {
    let (scheme, rest) = match text.split_once("://") {
        Some((scheme, rest)) => (Some(scheme.to_ascii_lowercase()), rest),
        None => (None, text),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(format!(
            "{} looks like an address; this column is the server's host name, e.g. \
             imap.example.com",
            quoted(text)
        ));
    }
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        // An IPv6 literal: `[::1]` or `[::1]:993`.
        let (host, after) = inner
            .split_once(']')
            .ok_or_else(|| format!("{} has an unclosed `[`", quoted(text)))?;
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return Err(format!("{} is not a host name", quoted(text))),
        }
    } else {
        match authority.split_once(':') {
            Some((host, p)) => (host, Some(p)),
            None => (authority, None),
        }
    };
    let valid_host = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if !valid_host || (host.contains(':') && !authority.starts_with('[')) {
        return Err(format!(
            "{} is not a host name; write e.g. imap.example.com or imap.example.com:993",
            quoted(text)
        ));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p != 0 => Some(p),
            _ => return Err(format!("{} has a bad port number", quoted(text))),
        },
    };
    Ok((scheme, host, port))
}

/// The OVHcloud product a host belongs to, from OVHcloud's published server names.
pub(super) fn ovh_product(host: &str) -> Option<PlatformKind> {
    let prefix = host
        .strip_suffix(".mail.ovh.net")
        .or_else(|| host.strip_suffix(".mail.ovh.ca"));
    match prefix {
        Some(p) if p.starts_with("ex") => Some(PlatformKind::OvhExchange),
        Some(p) if p.starts_with("pro") => Some(PlatformKind::OvhEmailPro),
        _ if matches!(host, "ssl0.ovh.net" | "ssl0.ovh.ca") => Some(PlatformKind::OvhMxPlan),
        _ => None,
    }
}

/// Gmail's and Microsoft 365's IMAP hosts: their platform types know the rest (port, TLS,
/// limits, OAuth2 endpoints).
pub(super) fn cloud_product(host: &str) -> Option<PlatformKind> {
    match host.to_ascii_lowercase().as_str() {
        "imap.gmail.com" | "imap.googlemail.com" => Some(PlatformKind::Gmail),
        "outlook.office365.com" | "outlook.office.com" => Some(PlatformKind::Microsoft365),
        _ => None,
    }
}

pub(super) fn is_loopback(host: &str) -> bool {
    host == "localhost" || host == "::1" || host.starts_with("127.")
}
