//! Rules across fields that a schema cannot express: references between sections,
//! duplicates, what each platform can do, transport safety and secret handling.
//!
//! Runs after the shape check, on the typed plan, and points back into the file through the
//! document tree. Every rule adds a diagnostic and goes on, so one run shows all problems.

use std::collections::{BTreeMap, HashMap};

use super::diagnostic::{Diagnostic, did_you_mean, line_col};
use super::model::{
    Account, ByteSize, CalendarAttendees, Content, Credentials, DomainMode, EwsAuth, HttpEndpoint,
    ManualSteps, MigrationOptions, OAuth2, OAuth2Flow, Plan, Platform, PlatformKind,
    PlatformLimits, Security,
};
use super::node::{Node, PathSeg, Span, path_string};
use super::secret::SecretRef;
// The parsers stay reachable here, where they were first published.
pub use super::value::{parse_date, parse_duration, parse_millis};
use crate::model::capabilities::{Feature, Support, support};

// The cutover's rules (`dns`, `records`, `cutover`), in a file of their own.
mod cutover;

/// What `import` writes where a Microsoft 365 app's id and tenant belong: validation refuses
/// them until the user writes the real ones.
pub const M365_CLIENT_ID_PLACEHOLDER: &str = "APPLICATION-CLIENT-ID";
pub const M365_TENANT_PLACEHOLDER: &str = "TENANT";

/// Checks the plan's cross-field rules. Returns errors and warnings.
/// `source` is the file's text, for cross-references by line number.
pub fn validate(plan: &Plan, tree: &Node, source: &str) -> Vec<Diagnostic> {
    let mut v = Validator {
        plan,
        tree,
        source,
        out: Vec::new(),
    };
    v.version();
    v.providers();
    v.platforms();
    v.domains();
    v.options(&plan.options, &[PathSeg::Key("options".into())], true);
    v.accounts();
    v.groups();
    v.contacts();
    v.footers();
    v.notify();
    v.cutover();
    v.shards();
    v.secrets();
    v.out
}

struct Validator<'a> {
    plan: &'a Plan,
    tree: &'a Node,
    source: &'a str,
    out: Vec<Diagnostic>,
}

/// Which end of an account's move a platform is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    From,
    To,
}

fn key(k: &str) -> PathSeg {
    PathSeg::Key(k.to_string())
}

fn idx(i: usize) -> PathSeg {
    PathSeg::Index(i)
}

fn join(base: &[PathSeg], more: &[PathSeg]) -> Vec<PathSeg> {
    let mut p = base.to_vec();
    p.extend_from_slice(more);
    p
}

impl<'a> Validator<'a> {
    /// The span of the value at `path`, or of its deepest existing ancestor.
    fn span(&self, path: &[PathSeg]) -> Span {
        self.tree.locate(path).span
    }

    fn error(&mut self, path: &[PathSeg], message: impl Into<String>, help: impl Into<String>) {
        let d =
            Diagnostic::error(path_string(path), Some(self.span(path)), message).with_help(help);
        self.out.push(d);
    }

    fn warn(&mut self, path: &[PathSeg], message: impl Into<String>, help: impl Into<String>) {
        let d =
            Diagnostic::warning(path_string(path), Some(self.span(path)), message).with_help(help);
        self.out.push(d);
    }

    fn version(&mut self) {
        if self.plan.version != 1 {
            self.error(
                &[key("version")],
                format!("unsupported plan version {}", self.plan.version),
                "this mailshift reads `version: 1`",
            );
        }
    }

    fn providers(&mut self) {
        for (name, p) in &self.plan.providers {
            let path = [key("providers"), key(name), key("endpoint")];
            let e = p.endpoint.as_str();
            let ok = matches!(e, "ovh-eu" | "ovh-ca" | "ovh-us")
                || e.starts_with("https://")
                || (e.starts_with("http://") && is_loopback(url_host(e)));
            if !ok {
                let help = match did_you_mean(e, ["ovh-eu", "ovh-ca", "ovh-us"]) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "use `ovh-eu`, `ovh-ca`, `ovh-us`, or an `https://` base URL (`http://` only to a loopback host)"
                        .to_string(),
                };
                self.error(&path, format!("unknown API endpoint `{e}`"), help);
            }
            for (field, value) in [
                ("poll_interval", &p.poll_interval),
                ("task_timeout", &p.task_timeout),
            ] {
                if let Some(e) = value.as_ref().and_then(|v| v.error()) {
                    self.error(
                        &[key("providers"), key(name), key(field)],
                        e,
                        "write a duration such as `250ms`, `5s` or `30m`",
                    );
                }
            }
        }
    }

    fn platform_ref(&mut self, path: &[PathSeg], name: &str) -> Option<&'a Platform> {
        if let Some(p) = self.plan.platforms.get(name) {
            return Some(p);
        }
        let known: Vec<&str> = self.plan.platforms.keys().map(String::as_str).collect();
        let help = match did_you_mean(name, known.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None if known.is_empty() => "declare it under `platforms`".to_string(),
            None => format!(
                "declare it under `platforms`, or use one of: {}",
                known
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        self.error(path, format!("unknown platform `{name}`"), help);
        None
    }

    fn platforms(&mut self) {
        for (name, p) in &self.plan.platforms {
            let base = [key("platforms"), key(name)];
            let kind = p.kind.as_str();
            if p.kind.is_ovh() {
                match &p.provider {
                    None => self.error(
                        &base,
                        format!("platform `{name}` ({kind}) has no `provider`"),
                        "add `provider: NAME` naming an entry of `providers` with the OVHcloud API credentials",
                    ),
                    Some(pr) if !self.plan.providers.contains_key(pr) => {
                        let known: Vec<&str> = self.plan.providers.keys().map(String::as_str).collect();
                        let help = match did_you_mean(pr, known.iter().copied()) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => "declare it under `providers`".to_string(),
                        };
                        self.error(&join(&base, &[key("provider")]), format!("unknown provider `{pr}`"), help);
                    }
                    Some(_) => {}
                }
                if p.service.is_none() {
                    let what = match p.kind {
                        PlatformKind::OvhExchange => {
                            "the Exchange service name (e.g. `hosted-ab12345-1`)"
                        }
                        PlatformKind::OvhEmailPro => {
                            "the Email Pro service name (e.g. `emailpro-ab12345-1`)"
                        }
                        _ => "the MX Plan service name (the legacy API: the domain)",
                    };
                    self.error(
                        &base,
                        format!("platform `{name}` ({kind}) has no `service`"),
                        format!("add `service:` with {what}"),
                    );
                }
            } else {
                for field in ["provider", "service", "organization"] {
                    if self.tree.locate(&base).get(field).is_some() {
                        self.error(
                            &join(&base, &[key(field)]),
                            format!("`{field}` does not apply to an `{kind}` platform"),
                            "remove it, or set `type` to an OVHcloud platform type",
                        );
                    }
                }
            }
            if p.kind == PlatformKind::Files {
                match &p.path {
                    None => self.error(
                        &base,
                        format!("platform `{name}` (files) has no `path`"),
                        "add `path: ./DIR` (relative to the plan): each account's files are under DIR/ADDRESS/",
                    ),
                    Some(dir) if dir.trim().is_empty() => self.error(
                        &join(&base, &[key("path")]),
                        "empty `path`",
                        "write the directory, e.g. `path: ./export`",
                    ),
                    Some(_) => {}
                }
                for field in ["imap", "pop3", "dav"] {
                    if self.tree.locate(&base).get(field).is_some() {
                        self.error(
                            &join(&base, &[key(field)]),
                            format!("`{field}` does not apply to a `files` platform"),
                            "remove it: a `files` platform is a directory (`path`)",
                        );
                    }
                }
            } else if p.path.is_some() {
                self.error(
                    &join(&base, &[key("path")]),
                    format!("`path` applies only to `files` platforms, not {kind}"),
                    "remove it, or set `type: files`",
                );
            }
            if p.kind == PlatformKind::OvhExchange && p.organization.is_none() {
                self.error(
                    &base,
                    format!("platform `{name}` (ovh-exchange) has no `organization`"),
                    "add `organization:` with the Exchange organization name (e.g. `hosted-ab12345-1`)",
                );
            }
            if p.kind != PlatformKind::OvhExchange && p.organization.is_some() && p.kind.is_ovh() {
                self.error(
                    &join(&base, &[key("organization")]),
                    format!("`organization` applies only to `ovh-exchange` platforms, not {kind}"),
                    "remove it",
                );
            }
            if p.mx_plan_api.is_some() && p.kind != PlatformKind::OvhMxPlan {
                self.error(
                    &join(&base, &[key("mx_plan_api")]),
                    format!("`mx_plan_api` applies only to `ovh-mx-plan` platforms, not {kind}"),
                    "remove it",
                );
            }
            if p.imap.is_some() && p.pop3.is_some() {
                self.error(
                    &join(&base, &[key("pop3")]),
                    format!("platform `{name}` has both `imap` and `pop3`: mail is read through one of them"),
                    "keep `imap` (it copies every folder, with flags and dates), or keep only `pop3` for a server without IMAP",
                );
            }
            for (field, endpoint) in [("imap", &p.imap), ("pop3", &p.pop3)] {
                let Some(imap) = endpoint else { continue };
                let ipath = join(&base, &[key(field)]);
                let (proto, ports) = if field == "pop3" {
                    ("POP3", "995 for TLS or 110 for STLS")
                } else {
                    ("IMAP", "993 for TLS or 143 for STARTTLS")
                };
                // OVHcloud's server is read from its API, Gmail's and Microsoft 365's are known.
                let host_known = field == "imap"
                    && imap.host.is_empty()
                    && (p.kind.is_ovh() || p.kind.default_imap().is_some());
                if imap.host.trim().is_empty() && !host_known {
                    let at = if imap.host.is_empty() {
                        ipath.clone()
                    } else {
                        join(&ipath, &[key("host")])
                    };
                    self.error(
                        &at,
                        format!("no {proto} host"),
                        if field == "imap" {
                            "set `host:` to the server's name or IP address (only OVHcloud, `gmail` and `microsoft-365` platforms may leave it out)"
                        } else {
                            "set `host:` to the server's name or IP address"
                        },
                    );
                }
                if imap.port == Some(0) {
                    self.error(
                        &join(&ipath, &[key("port")]),
                        format!("port 0 is not a valid {proto} port"),
                        format!("use the server's port, e.g. {ports}"),
                    );
                }
                if imap.security == Security::None
                    && !is_loopback(&imap.host)
                    && !imap.allow_plaintext
                {
                    self.error(
                        &join(&ipath, &[key("security")]),
                        format!(
                            "`security: none` to {} would send passwords and mail in clear",
                            if imap.host.is_empty() { "the server read from the API" } else { &imap.host }
                        ),
                        "use `security: tls` or `starttls`; if the network is trusted, add `allow_plaintext: true`",
                    );
                }
                if let Some(e) = imap.timeout.as_ref().and_then(|t| t.error()) {
                    self.error(
                        &join(&ipath, &[key("timeout")]),
                        e,
                        "write a duration such as `30s` or `5m`",
                    );
                }
                if imap.insecure_skip_verify {
                    self.warn(
                        &join(&ipath, &[key("insecure_skip_verify")]),
                        format!("TLS certificates of {} will not be verified", imap.host),
                        "anyone on the path can read the passwords; prefer `ca_file:` with the server's CA",
                    );
                }
                if imap.security == Security::None
                    && (imap.ca_file.is_some() || imap.insecure_skip_verify)
                {
                    self.warn(
                        &ipath,
                        "TLS settings are ignored with `security: none`",
                        "remove them, or use `security: tls`",
                    );
                }
            }
            if let Some(sieve) = &p.sieve {
                let spath = join(&base, &[key("sieve")]);
                if sieve.port == Some(0) {
                    self.error(
                        &join(&spath, &[key("port")]),
                        "port 0 is not a valid ManageSieve port",
                        "leave `port` out for 4190, or use the server's port",
                    );
                }
                let host = if sieve.host.is_empty() {
                    p.imap.as_ref().map(|i| i.host.clone()).unwrap_or_default()
                } else {
                    sieve.host.clone()
                };
                if sieve.security == Some(Security::None)
                    && !is_loopback(&host)
                    && !sieve.allow_plaintext
                {
                    self.error(
                        &join(&spath, &[key("security")]),
                        format!(
                            "`security: none` to {} would send passwords and rules in clear",
                            if host.is_empty() { "the IMAP server" } else { &host }
                        ),
                        "leave `security` out for STARTTLS; if the network is trusted, add `allow_plaintext: true`",
                    );
                }
                if let Some(e) = sieve.timeout.as_ref().and_then(|t| t.error()) {
                    self.error(
                        &join(&spath, &[key("timeout")]),
                        e,
                        "write a duration such as `30s` or `5m`",
                    );
                }
                if sieve.insecure_skip_verify {
                    self.warn(
                        &join(&spath, &[key("insecure_skip_verify")]),
                        "TLS certificates of the ManageSieve server will not be verified",
                        "anyone on the path can read the password; prefer `ca_file:` with the server's CA",
                    );
                }
            }
            if let Some(dav) = &p.dav {
                let dpath = join(&base, &[key("dav"), key("url")]);
                let ok = dav.url.starts_with("https://")
                    || (dav.url.starts_with("http://") && is_loopback(url_host(&dav.url)));
                if !ok {
                    self.error(
                        &dpath,
                        format!("unsupported DAV URL `{}`", dav.url),
                        "use an `https://` URL (`http://` only to a loopback host)",
                    );
                }
            }
            if let Some(graph) = &p.graph {
                self.graph_endpoint(&base, p, graph);
            }
            if let Some(ews) = &p.ews {
                if !matches!(p.kind, PlatformKind::Exchange | PlatformKind::OvhExchange) {
                    self.error(
                        &join(&base, &[key("ews")]),
                        format!("`ews` applies only to `exchange` and `ovh-exchange` platforms, not {kind}"),
                        "remove it, or set `type: exchange`",
                    );
                } else if let Some(url) = &ews.url {
                    let epath = join(&base, &[key("ews"), key("url")]);
                    let ok = url.starts_with("https://")
                        || (url.starts_with("http://") && is_loopback(url_host(url)));
                    if !ok {
                        self.error(
                            &epath,
                            format!("unsupported EWS URL `{url}`"),
                            "use an `https://` URL such as https://ex3.mail.ovh.net/EWS/Exchange.asmx (`http://` only to a loopback host)",
                        );
                    }
                }
            }
            if let Some(o) = &p.oauth2 {
                let opath = join(&base, &[key("oauth2")]);
                if p.kind == PlatformKind::Files {
                    self.error(
                        &opath,
                        "`oauth2` does not apply to a `files` platform",
                        "remove it: files are read on this machine, with no login",
                    );
                } else {
                    self.oauth2(&opath, o, p.kind);
                }
            }
            self.limits(&base, p);
        }
    }

    /// A platform's `graph:` endpoint (Microsoft Graph, for contacts, calendars and tasks on
    /// Microsoft 365): only there, and an https URL (http only to loopback, for a simulator).
    fn graph_endpoint(&mut self, base: &[PathSeg], p: &Platform, graph: &HttpEndpoint) {
        if p.kind != PlatformKind::Microsoft365 {
            self.error(
                &join(base, &[key("graph")]),
                format!(
                    "`graph` applies to `microsoft-365` platforms, not to `{}`",
                    p.kind.as_str()
                ),
                "remove it",
            );
        }
        if let Some(url) = &graph.url {
            let ok = url.starts_with("https://")
                || (url.starts_with("http://") && is_loopback(url_host(url)));
            if !ok {
                self.error(
                    &join(base, &[key("graph"), key("url")]),
                    format!("unsupported Microsoft Graph URL `{url}`"),
                    "use an `https://` URL such as `https://graph.microsoft.com/v1.0` (`http://` only to a loopback host), or remove it for Microsoft's",
                );
            }
        }
    }

    /// An `oauth2` block: what its flow needs, and what the platform type can do.
    fn oauth2(&mut self, path: &[PathSeg], o: &OAuth2, kind: PlatformKind) {
        let flow = o.flow.as_str();
        let at = |field: &str| join(path, &[key(field)]);
        let need = |v: &mut Self, present: bool, field: &str, help: &str| {
            if !present {
                v.error(
                    path,
                    format!("the `{flow}` flow needs `{field}`"),
                    help.to_string(),
                );
            }
        };
        match (o.flow, kind) {
            (OAuth2Flow::ServiceAccount, PlatformKind::Microsoft365) => self.error(
                &at("flow"),
                "Microsoft 365 has no service-account flow",
                "use `flow: client-credentials` (app-only, `IMAP.AccessAsApp`) or `device-code` (delegated)",
            ),
            (OAuth2Flow::ClientCredentials, PlatformKind::Gmail) => self.error(
                &at("flow"),
                "Google gives Gmail no client-credentials tokens",
                "use `flow: service-account` (Workspace, domain-wide delegation) or `loopback` (consumer accounts)",
            ),
            // developers.google.com/identity/protocols/oauth2/limited-input-device lists the
            // scopes the device flow allows: Gmail's `https://mail.google.com/` is not one.
            (OAuth2Flow::DeviceCode, PlatformKind::Gmail) => self.error(
                &at("flow"),
                "Google's device flow does not allow Gmail's IMAP scope",
                "use `flow: loopback` (a browser on this machine, once per account) or `service-account` (Workspace)",
            ),
            _ => {}
        }
        let known = matches!(kind, PlatformKind::Gmail | PlatformKind::Microsoft365);
        match o.flow {
            OAuth2Flow::ClientCredentials => {
                need(
                    self,
                    o.client_id.is_some(),
                    "client_id",
                    "add `client_id:` with the app registration's application (client) id",
                );
                need(
                    self,
                    o.client_secret.is_some(),
                    "client_secret",
                    "add `client_secret: {env: VARIABLE}` (the app's client secret)",
                );
                if kind == PlatformKind::Microsoft365 && o.tenant.is_none() && o.token_url.is_none()
                {
                    self.error(
                        path,
                        "app-only tokens are issued by one tenant: `tenant` is missing",
                        "add `tenant:` with the tenant id or its domain (e.g. `contoso.onmicrosoft.com`)",
                    );
                }
            }
            OAuth2Flow::DeviceCode => {
                need(
                    self,
                    o.client_id.is_some(),
                    "client_id",
                    "add `client_id:` with the app registration's application (client) id (a public client)",
                );
                if !known && o.device_authorization_url.is_none() {
                    self.error(path, "the `device-code` flow needs `device_authorization_url` on this platform type", "add the server's device authorization endpoint (RFC 8628)");
                }
            }
            OAuth2Flow::ServiceAccount => {
                need(
                    self,
                    o.service_account_key.is_some(),
                    "service_account_key",
                    "add `service_account_key: {file: key.json}` (the JSON key of a service account with domain-wide delegation)",
                );
            }
            OAuth2Flow::Loopback => {
                need(
                    self,
                    o.client_id.is_some(),
                    "client_id",
                    "add `client_id:` with the OAuth client id (type \"Desktop app\")",
                );
                if !known && o.authorization_url.is_none() {
                    self.error(
                        path,
                        "the `loopback` flow needs `authorization_url` on this platform type",
                        "add the server's authorization endpoint",
                    );
                }
            }
            OAuth2Flow::RefreshToken => {
                need(
                    self,
                    o.refresh_token.is_some(),
                    "refresh_token",
                    "add `refresh_token: {env: VARIABLE}`, or use `device-code` / `loopback` and `mailshift auth login`",
                );
                need(
                    self,
                    o.client_id.is_some(),
                    "client_id",
                    "add `client_id:` with the client the refresh token was issued to",
                );
            }
        }
        if !known && o.scopes.is_empty() {
            self.error(
                path,
                format!("no `scopes`: mailshift knows the scopes of `gmail` and `microsoft-365` platforms only, not of {}", kind.as_str()),
                "add `scopes:` with what the server's IMAP access needs (its documentation names them)",
            );
        }
        if !known && o.token_url.is_none() {
            self.error(
                path,
                format!("no `token_url`: mailshift knows the token endpoints of `gmail` and `microsoft-365` platforms only, not of {}", kind.as_str()),
                "add `token_url:` with the server's OAuth2 token endpoint",
            );
        }
        for (field, url) in [
            ("token_url", &o.token_url),
            ("device_authorization_url", &o.device_authorization_url),
            ("authorization_url", &o.authorization_url),
        ] {
            if let Some(u) = url {
                let ok = u.starts_with("https://")
                    || (u.starts_with("http://") && is_loopback(url_host(u)));
                if !ok {
                    self.error(
                        &at(field),
                        format!("unsupported URL `{u}`"),
                        "use an `https://` URL (`http://` only to a loopback host)",
                    );
                }
            }
        }
        for (i, scope) in o.scopes.iter().enumerate() {
            if scope.trim().is_empty() || scope.contains(char::is_whitespace) {
                self.error(
                    &join(path, &[key("scopes"), idx(i)]),
                    format!("`{scope}` is not a scope"),
                    "write one scope per list item, without spaces",
                );
            }
        }
        if o.client_id.as_deref() == Some(M365_CLIENT_ID_PLACEHOLDER) {
            self.error(
                &at("client_id"),
                "the application (client) id is still the import's placeholder",
                "write the app registration's Application (client) ID, a GUID from the Entra admin center (README, \"Microsoft 365\")",
            );
        }
        if o.tenant.as_deref() == Some(M365_TENANT_PLACEHOLDER) {
            self.error(
                &at("tenant"),
                "the tenant is still the import's placeholder",
                "write the tenant id or its domain, e.g. `contoso.onmicrosoft.com`",
            );
        }
        if o.tenant.is_some() && kind == PlatformKind::Gmail {
            self.error(
                &at("tenant"),
                "`tenant` is Microsoft's: Google has none",
                "remove it",
            );
        }
    }

    /// A platform's `limits`: what its type allows.
    fn limits(&mut self, base: &[PathSeg], p: &Platform) {
        let lpath = join(base, &[key("limits")]);
        for (field, size) in [
            ("max_message_size", &p.limits.max_message_size),
            ("daily_download", &p.limits.daily_download),
            ("daily_upload", &p.limits.daily_upload),
        ] {
            let Some(size) = size else { continue };
            match size.parsed() {
                Ok(0) => self.error(
                    &join(&lpath, &[key(field)]),
                    format!("`{field}` is zero: nothing could move"),
                    "remove it for the platform type's default, or give a size such as `500MB`",
                ),
                Ok(_) => {}
                Err(e) => self.error(
                    &join(&lpath, &[key(field)]),
                    e,
                    "write a size such as `500MB`, `35MB`, `512KiB` or a number of bytes",
                ),
            }
        }
        if p.kind == PlatformKind::Files && p.limits != PlatformLimits::default() {
            self.error(
                &lpath,
                "`limits` does not apply to a `files` platform",
                "remove it",
            );
            return;
        }
        // learn.microsoft.com/exchange/mailbox-migration/migrating-imap-mailboxes: 150 MB is
        // the most a Microsoft 365 mailbox receives, whatever MaxReceiveSize says.
        const M365_MAX: u64 = 150 * 1_000_000;
        if p.kind == PlatformKind::Microsoft365
            && let Some(max) = p.limits.max_message_size.as_ref().and_then(ByteSize::bytes)
            && max > M365_MAX
        {
            self.error(
                &join(&lpath, &[key("max_message_size")]),
                "Microsoft 365 accepts no message larger than 150 MB",
                "write at most `150MB` (and raise the mailboxes' MaxReceiveSize to match: README, \"Microsoft 365\")",
            );
        }
        if p.limits.connections == Some(0) {
            self.error(
                &join(&lpath, &[key("connections")]),
                "0 connections would copy nothing",
                "remove it for the platform's default, or write at least 1",
            );
        }
        if p.limits.server_connections == Some(0) {
            self.error(
                &join(&lpath, &[key("server_connections")]),
                "a budget of 0 connections would copy nothing",
                "remove it for the platform's default, or write at least 1",
            );
        }
    }

    fn manual(&mut self, path: &[PathSeg], platform_name: &str, feature: Feature) {
        if self.plan.manual_steps == ManualSteps::Forbid {
            self.error(
                path,
                format!("platform `{platform_name}` has no API for {}: this would be a manual step", feature.noun()),
                "remove it, do it by hand outside mailshift, or set `manual_steps: allow` to have it listed as a manual step",
            );
        }
    }

    /// Checks that `platform` can do `feature`; records manual steps and impossibilities.
    fn feature(
        &mut self,
        path: &[PathSeg],
        platform_name: &str,
        platform: &Platform,
        feature: Feature,
    ) {
        match support(platform, feature) {
            Support::Api | Support::Precondition => {}
            Support::Manual => self.manual(path, platform_name, feature),
            Support::Impossible(why) => self.error(
                path,
                format!(
                    "platform `{platform_name}` ({}) cannot do {}",
                    platform.kind.as_str(),
                    feature.noun()
                ),
                why,
            ),
        }
    }

    fn domains(&mut self) {
        let mut seen: HashMap<(String, String), usize> = HashMap::new();
        let mut by_name: BTreeMap<String, Vec<(usize, DomainMode)>> = BTreeMap::new();
        for (i, d) in self.plan.domains.iter().enumerate() {
            let base = [key("domains"), idx(i)];
            let name = d.name.to_ascii_lowercase();
            if !is_domain(&name) {
                self.error(
                    &join(&base, &[key("name")]),
                    format!("`{}` is not a domain name", d.name),
                    "write the bare domain, e.g. `example.com`",
                );
            }
            if let Some(p) = self.platform_ref(&join(&base, &[key("platform")]), &d.platform) {
                self.feature(&base, &d.platform, p, Feature::AttachDomain);
            }
            if let Some(first) = seen.insert((name.clone(), d.platform.clone()), i) {
                self.error(
                    &join(&base, &[key("name")]),
                    format!(
                        "domain `{}` is listed twice for platform `{}`",
                        d.name, d.platform
                    ),
                    format!("remove this entry or the one at `domains[{first}]`"),
                );
            }
            by_name.entry(name).or_default().push((i, d.mode));
            match (d.mode, &d.mx_relay) {
                (DomainMode::NonAuthoritative, None) => self.error(
                    &join(&base, &[key("mode")]),
                    format!("non-authoritative domain `{}` needs an `mx_relay`", d.name),
                    "add `mx_relay:` with the server that receives mail for addresses not hosted here (the other platform's MX, e.g. `mx1.mail.ovh.net`)",
                ),
                (DomainMode::Authoritative, Some(_)) => self.warn(
                    &join(&base, &[key("mx_relay")]),
                    "`mx_relay` is ignored for an authoritative domain",
                    "remove it, or make the domain `non-authoritative`",
                ),
                _ => {}
            }
            if let Some(relay) = &d.mx_relay
                && !is_domain(&relay.to_ascii_lowercase())
            {
                self.error(
                    &join(&base, &[key("mx_relay")]),
                    format!("`{relay}` is not a host name"),
                    "write the relay's host name, e.g. `mx1.mail.ovh.net`",
                );
            }
        }
        for (name, uses) in by_name {
            let authoritative: Vec<usize> = uses
                .iter()
                .filter(|(_, m)| *m == DomainMode::Authoritative)
                .map(|(i, _)| *i)
                .collect();
            if uses.len() > 1 && !authoritative.is_empty() {
                let i = authoritative[0];
                self.error(
                    &[key("domains"), idx(i), key("mode")],
                    format!("domain `{name}` is attached to several platforms but authoritative on one"),
                    "during a move the domain must be `non-authoritative` on every platform; switch it to authoritative after cut-over",
                );
            }
        }
    }

    fn accounts(&mut self) {
        let mut addresses: HashMap<String, usize> = HashMap::new();
        for (i, a) in self.plan.accounts.iter().enumerate() {
            let base = [key("accounts"), idx(i)];
            let addr = a.address.to_ascii_lowercase();
            if !is_address(&addr) {
                self.error(
                    &join(&base, &[key("address")]),
                    format!("`{}` is not an email address", a.address),
                    "write it as `user@example.com`",
                );
            }
            if let Some(first) = addresses.insert(addr.clone(), i) {
                self.error(
                    &join(&base, &[key("address")]),
                    format!("account `{}` is listed twice", a.address),
                    format!("an address moves once: merge this entry with `accounts[{first}]` (line {})", self.line_of(&[key("accounts"), idx(first)])),
                );
            }
            self.account(i, a);
        }
        // Aliases must not collide with accounts or with each other.
        let mut aliases: HashMap<String, (usize, usize)> = HashMap::new();
        for (i, a) in self.plan.accounts.iter().enumerate() {
            for (j, alias) in a.aliases.iter().enumerate() {
                let path = [key("accounts"), idx(i), key("aliases"), idx(j)];
                let low = alias.to_ascii_lowercase();
                if !is_address(&low) {
                    self.error(
                        &path,
                        format!("alias `{alias}` is not an email address"),
                        "write it as `name@example.com`",
                    );
                    continue;
                }
                if let Some(&k) = addresses.get(&low) {
                    self.error(
                        &path,
                        format!("alias `{alias}` is also an account address"),
                        format!("remove the alias, or the account at `accounts[{k}]`"),
                    );
                }
                if let Some((pi, _)) = aliases.insert(low, (i, j)) {
                    self.error(&path, format!("alias `{alias}` is given twice"), format!("an alias belongs to one account; it is also in `accounts[{pi}].aliases`"));
                }
            }
        }
    }

    fn line_of(&self, path: &[PathSeg]) -> usize {
        line_col(self.source, self.span(path).offset).0
    }

    fn account(&mut self, i: usize, a: &'a Account) {
        let base = [key("accounts"), idx(i)];
        let from = self.platform_ref(&join(&base, &[key("from")]), &a.from);
        let to = self.platform_ref(&join(&base, &[key("to")]), &a.to);
        if a.from == a.to && from.is_some() && a.rename_to.is_none() {
            self.error(
                &join(&base, &[key("to")]),
                format!(
                    "account `{}` moves from platform `{}` to itself",
                    a.address, a.from
                ),
                "set `to:` to the destination platform",
            );
        }
        let content = a.content.clone().unwrap_or_else(|| vec![Content::Mail]);
        // The DAV engine takes a password or a fixed token: an `oauth2` block would reach it
        // with no login at all.
        if content.iter().any(|c| c.is_dav()) {
            for (field, creds, platform) in [
                ("source", &a.source, from),
                ("destination", &a.destination, to),
            ] {
                let Some(p) = platform else { continue };
                // Files need no login; Gmail's and Microsoft 365's groupware is refused below.
                if matches!(
                    p.kind,
                    PlatformKind::Files | PlatformKind::Gmail | PlatformKind::Microsoft365
                ) || creds.password.is_some()
                    || creds.oauth2_token.is_some()
                {
                    continue;
                }
                let path = if creds.oauth2.is_some() {
                    join(&base, &[key(field), key("oauth2")])
                } else if p.oauth2.is_some() {
                    join(&base, &[key(field)])
                } else {
                    continue;
                };
                self.error(
                    &path,
                    "contacts, calendars and tasks cannot log in with an `oauth2` block yet (it serves IMAP)",
                    format!("give the {field} a `password` (an app password) or a fixed `oauth2_token` for CardDAV/CalDAV, or copy mail only"),
                );
            }
        }
        // NTLM proves a password: a side that logs in with a token cannot use it.
        if content.iter().any(|c| c.is_dav()) {
            for (field, creds, platform, name) in [
                ("source", &a.source, from, &a.from),
                ("destination", &a.destination, to, &a.to),
            ] {
                let Some(p) = platform else { continue };
                if p.ews.as_ref().and_then(|e| e.auth) == Some(EwsAuth::Ntlm)
                    && creds.password.is_none()
                    && (creds.oauth2_token.is_some() || creds.oauth2.is_some())
                {
                    self.error(
                        &join(&base, &[key(field)]),
                        format!(
                            "platform `{name}` has `ews.auth: ntlm`, which logs in with the account's password, but the {field} of `{}` has a token",
                            a.address
                        ),
                        format!("give the {field} a `password`, or remove `ews.auth` from platform `{name}` (a token is then sent as Bearer)"),
                    );
                }
            }
        }
        if content.is_empty() {
            self.error(
                &join(&base, &[key("content")]),
                "`content` is empty: nothing would be copied",
                "list what to copy, e.g. `[mail]`, or remove `content` for the default",
            );
        }
        if let Some(rename) = &a.rename_to {
            let rpath = join(&base, &[key("rename_to")]);
            if rename.eq_ignore_ascii_case(&a.address) {
                self.error(
                    &rpath,
                    format!("`rename_to` is the account's own address `{}`", a.address),
                    "give the source account a provisional name that differs, e.g. `john.old@example.com`",
                );
            } else if !is_address(&rename.to_ascii_lowercase()) {
                self.error(
                    &rpath,
                    format!("`rename_to` value `{rename}` is not an email address"),
                    "write it as `john.old@example.com`",
                );
            } else if self
                .plan
                .accounts
                .iter()
                .any(|o| o.address.eq_ignore_ascii_case(rename))
            {
                self.error(
                    &rpath,
                    format!("`rename_to` value `{rename}` is another account's address"),
                    "pick a provisional name no account uses",
                );
            }
            if let Some(p) = from {
                self.feature(&rpath, &a.from, p, Feature::Rename);
            }
        }
        if a.reset_provisional {
            let rpath = join(&base, &[key("reset_provisional")]);
            let cut_over = a
                .options
                .cut_over
                .or(self.plan.options.cut_over)
                .unwrap_or(false);
            if a.rename_to.is_none() {
                self.error(
                    &rpath,
                    "`reset_provisional` needs `rename_to`: only a provisional account is ever reset",
                    "add `rename_to`, or remove `reset_provisional`",
                );
            } else if !cut_over {
                self.error(
                    &rpath,
                    "`reset_provisional` deletes the source's mail, so it waits for the cutover",
                    "set `options: {cut_over: true}` on the account once mail flows to the destination",
                );
            }
            if let Some(p) = from
                && !p.kind.is_ovh()
            {
                self.error(
                    &rpath,
                    format!("platform `{}` has no API to reset an account", a.from),
                    "reset the old account by hand, and remove `reset_provisional`",
                );
            }
        }
        if let Some(p) = from {
            self.endpoint_for_content(&base, a, Side::From, p, &content);
        }
        if let Some(p) = to {
            self.endpoint_for_content(&base, a, Side::To, p, &content);
            if p.kind != PlatformKind::Files {
                self.feature(&base, &a.to, p, Feature::Create);
            }
            for (j, _) in a.aliases.iter().enumerate() {
                self.feature(
                    &join(&base, &[key("aliases"), idx(j)]),
                    &a.to,
                    p,
                    Feature::Alias,
                );
            }
            if p.kind == PlatformKind::OvhExchange && a.redirections.len() > 1 {
                self.error(
                    &join(&base, &[key("redirections"), idx(1)]),
                    format!(
                        "Exchange forwards an account's mail to one address only; `{}` lists {}",
                        a.address,
                        a.redirections.len()
                    ),
                    "keep one redirection, or forward to a group that has the others as members",
                );
            }
            for (j, r) in a.redirections.iter().enumerate() {
                let rp = join(&base, &[key("redirections"), idx(j)]);
                if !is_address(&r.to.to_ascii_lowercase()) {
                    self.error(
                        &join(&rp, &[key("to")]),
                        format!("redirection target `{}` is not an email address", r.to),
                        "write it as `someone@example.com`",
                    );
                }
                if r.to.eq_ignore_ascii_case(&a.address) {
                    self.error(
                        &join(&rp, &[key("to")]),
                        "a redirection to the account itself would loop",
                        "remove it",
                    );
                }
                self.feature(&rp, &a.to, p, Feature::Redirection);
            }
            let mut grantees: HashMap<String, usize> = HashMap::new();
            for (j, d) in a.delegations.iter().enumerate() {
                let dp = join(&base, &[key("delegations"), idx(j)]);
                if d.grantee.eq_ignore_ascii_case(&a.address) {
                    self.error(
                        &join(&dp, &[key("grantee")]),
                        "an account cannot be delegated rights on itself",
                        "name another account as `grantee`",
                    );
                } else if !is_address(&d.grantee.to_ascii_lowercase()) {
                    self.error(
                        &join(&dp, &[key("grantee")]),
                        format!("grantee `{}` is not an email address", d.grantee),
                        "write it as `assistant@example.com`",
                    );
                }
                if d.rights.is_empty() {
                    self.error(
                        &join(&dp, &[key("rights")]),
                        "no rights granted",
                        "list at least one of `send-as`, `send-on-behalf`, `full-access`",
                    );
                }
                if let Some(first) = grantees.insert(d.grantee.to_ascii_lowercase(), j) {
                    self.error(
                        &join(&dp, &[key("grantee")]),
                        format!("grantee `{}` appears twice", d.grantee),
                        format!("merge its rights into `delegations[{first}]`"),
                    );
                }
                self.feature(&dp, &a.to, p, Feature::Delegation);
            }
        }
        // A `files` side is read or written on this machine: no login.
        if from.is_none_or(|p| p.kind != PlatformKind::Files) {
            self.credentials(&join(&base, &[key("source")]), &a.source, from);
        }
        if to.is_none_or(|p| p.kind != PlatformKind::Files) {
            self.credentials(&join(&base, &[key("destination")]), &a.destination, to);
        }
        if let Some(c) = &a.collections {
            let cpath = join(&base, &[key("collections")]);
            if !content.iter().any(|c| c.is_dav()) {
                self.error(
                    &cpath,
                    "`collections` applies to contacts, calendars and tasks, which this account does not copy",
                    "add them to `content`, or remove `collections`",
                );
            }
            for (list, globs) in [("include", &c.include), ("exclude", &c.exclude)] {
                for (j, g) in globs.iter().enumerate() {
                    if g.trim().is_empty() {
                        self.error(
                            &join(&cpath, &[key(list), idx(j)]),
                            "empty collection pattern",
                            "remove it, or write a pattern such as `work*`",
                        );
                    }
                }
            }
            for (src, dst) in &c.map {
                if src.trim().is_empty() || dst.trim().is_empty() || dst.contains('/') {
                    self.error(
                        &join(&cpath, &[key("map"), key(src)]),
                        "a collection name in `collections.map` is empty or holds `/`",
                        "write both names as single path segments, e.g. `work: office`",
                    );
                }
            }
        }
        if let Some(f) = &a.folders {
            for (src, dst) in &f.map {
                let mp = join(&base, &[key("folders"), key("map"), key(src)]);
                if src.trim().is_empty() || dst.trim().is_empty() {
                    self.error(
                        &mp,
                        "empty folder name in `folders.map`",
                        "write both names, e.g. `\"Sent Items\": Sent`",
                    );
                }
            }
            for (list, globs) in [("include", &f.include), ("exclude", &f.exclude)] {
                for (j, g) in globs.iter().enumerate() {
                    if g.trim().is_empty() {
                        self.error(
                            &join(&base, &[key("folders"), key(list), idx(j)]),
                            "empty folder pattern",
                            "remove it, or write a pattern such as `Archive/*`",
                        );
                    }
                }
            }
        }
        self.options(&a.options, &join(&base, &[key("options")]), false);
        // A POP3 source has its own, stronger word on it (below).
        if a.options.gmail_archive_folder.is_some()
            && from.is_some_and(|p| p.kind != PlatformKind::Gmail && p.pop3.is_none())
        {
            self.warn(
                &join(&base, &[key("options"), key("gmail_archive_folder")]),
                format!(
                    "`gmail_archive_folder` does nothing here: platform `{}` is not `gmail`",
                    a.from
                ),
                "remove it; it names where Gmail's label-less mail goes when the source is Gmail",
            );
        }
        if from.is_some_and(|p| p.pop3.is_some()) {
            self.pop3_source_options(&base, a);
        }
    }

    /// What a POP3 source cannot honour, refused rather than ignored: its maildrop is one
    /// folder (copied as `INBOX`) without labels. The other options hold for it as for IMAP:
    /// sizes from `LIST`, dates from each message's `Date` header, order from the maildrop's.
    fn pop3_source_options(&mut self, base: &[PathSeg], a: &Account) {
        if a.options.gmail_archive_folder.is_some() {
            self.error(
                &join(base, &[key("options"), key("gmail_archive_folder")]),
                format!(
                    "`gmail_archive_folder` cannot apply: platform `{}` is read over POP3, which has no labels and no All Mail",
                    a.from
                ),
                "remove it; the POP3 maildrop is copied into INBOX, or where `folders.map` maps `INBOX`",
            );
        }
        if let Some(f) = &a.folders {
            for src in f.map.keys() {
                if !src.eq_ignore_ascii_case("INBOX") {
                    self.error(
                        &join(base, &[key("folders"), key("map"), key(src)]),
                        format!(
                            "platform `{}` is read over POP3, whose one mailbox is `INBOX`: there is no folder `{src}` to map",
                            a.from
                        ),
                        "map `INBOX` instead, e.g. `folders: {map: {INBOX: \"Old POP\"}}`",
                    );
                }
            }
        }
    }

    /// Whether a platform can give (`from`) or receive (`to`) each kind of content the account
    /// copies, and has the endpoint to do it through.
    fn endpoint_for_content(
        &mut self,
        base: &[PathSeg],
        a: &Account,
        side: Side,
        p: &Platform,
        content: &[Content],
    ) {
        let (field, name) = match side {
            Side::From => ("from", &a.from),
            Side::To => ("to", &a.to),
        };
        let side_path = join(base, &[key(field)]);
        // An error about one kind points at its entry of `content` when the plan wrote one.
        let content_path = |i: usize| {
            if a.content.is_some() {
                join(base, &[key("content"), idx(i)])
            } else {
                side_path.clone()
            }
        };
        let mut dav_needed = Vec::new();
        let mut graph_needs_reported = false;
        for (i, c) in content.iter().enumerate() {
            match (c, p.kind) {
                (Content::Mail, PlatformKind::Files) if side == Side::To => self.error(
                    &content_path(i),
                    format!("platform `{name}` is a `files` platform: mail cannot be exported to files"),
                    "copy mail to an IMAP platform; an export to files holds contacts, calendars and tasks (leave `mail` out of `content`)",
                ),
                (Content::Mail, PlatformKind::Files) => {}
                (Content::Mail, _) if p.pop3.is_some() && side == Side::To => self.error(
                    &side_path,
                    format!("platform `{name}` reads mail over POP3 (`pop3:`), which cannot write: it cannot be a destination"),
                    format!("give platform `{name}` an `imap:` endpoint instead, or use it only as a source (`from`)"),
                ),
                (Content::Mail, _) if p.pop3.is_some() => {}
                (Content::Mail, _) => {
                    if p.imap_endpoint().is_none() && !p.detects_imap_host() {
                        self.error(
                            &side_path,
                            format!("platform `{name}` has no `imap` endpoint to copy mail through"),
                            format!("add `imap: {{host: ..., port: ..., security: tls}}` to platform `{name}`"),
                        );
                    }
                }
                (Content::Rules, _) => {
                    let creds = match side {
                        Side::From => &a.source,
                        Side::To => &a.destination,
                    };
                    let oauth2 = creds.oauth2_token.is_some() || creds.oauth2.is_some() || p.oauth2.is_some();
                    self.rules_endpoint(&content_path(i), &side_path, name, side, p, oauth2)
                }
                (_, PlatformKind::Files) => {}
                // Through Microsoft Graph (crates/mailshift-graph).
                (Content::Contacts | Content::Calendars | Content::Tasks, PlatformKind::Microsoft365) => {
                    let creds = match side {
                        Side::From => &a.source,
                        Side::To => &a.destination,
                    };
                    if !graph_needs_reported
                        && creds.oauth2_token.is_none()
                        && creds.oauth2.is_none()
                        && p.oauth2.is_none()
                    {
                        graph_needs_reported = true;
                        self.error(
                            &content_path(i),
                            format!(
                                "Microsoft 365's {} are reached through Microsoft Graph, which takes OAuth2 tokens only, and the account's {} side has none",
                                c.as_str(),
                                if side == Side::From { "source" } else { "destination" },
                            ),
                            format!("add an `oauth2` block to platform `{name}` (README, \"Microsoft 365\"), or copy mail only"),
                        );
                    }
                    if side == Side::To && *c == Content::Calendars {
                        self.calendar_attendees_note(base, a);
                    }
                }
                (_, PlatformKind::Gmail) => self.error(
                    &content_path(i),
                    format!(
                        "Google's CardDAV/CalDAV (separate hosts, their own OAuth scopes) is not supported yet, so platform `{name}` cannot carry {}",
                        c.as_str()
                    ),
                    "remove it from `content`; Google Takeout exports contacts as .vcf and calendars as .ics, which a `files` platform imports",
                ),
                (_, PlatformKind::OvhMxPlan | PlatformKind::OvhEmailPro) => {
                    let family = if p.kind == PlatformKind::OvhMxPlan {
                        "MX Plan"
                    } else {
                        "Email Pro"
                    };
                    let verb = if side == Side::From { "give" } else { "receive" };
                    self.error(
                        &content_path(i),
                        format!(
                            "{family} has no {}: OVHcloud offers no contact or calendar sync on it, so platform `{name}` cannot {verb} them",
                            c.as_str()
                        ),
                        if side == Side::From {
                            "remove it from `content`; to keep them, export them from the webmail as .vcf/.ics files and import those through a `files` platform"
                        } else {
                            "remove it from `content`, or move the account to Exchange (through a DAV gateway) or to a CardDAV/CalDAV platform"
                        },
                    );
                }
                (_, PlatformKind::OvhExchange) if p.dav.is_none() && p.ews.is_none() => self.error(
                    &content_path(i),
                    format!(
                        "platform `{name}` (ovh-exchange) has no `ews` endpoint for {}: Exchange's contacts, calendars and tasks are reached through Exchange Web Services",
                        c.as_str()
                    ),
                    "add `ews: {}` to the platform (the URL is then https://HOST/EWS/Exchange.asmx with the service's host), or `ews: {url: https://exN.mail.ovh.net/EWS/Exchange.asmx}`; a DavMail gateway (`dav:`) works too",
                ),
                // EWS: `ews:`, or Autodiscover when neither `ews:` nor `dav:` is given.
                (_, PlatformKind::Exchange) if p.dav.is_none() => {}
                (_, PlatformKind::OvhExchange) if p.ews.is_some() => {}
                _ => {
                    if p.dav.is_none() {
                        dav_needed.push(c.as_str());
                    }
                }
            }
        }
        if !dav_needed.is_empty() {
            self.error(
                &side_path,
                format!("platform `{name}` has no `dav` endpoint for {}", dav_needed.join(", ")),
                format!("add `dav: {{url: https://...}}` (CardDAV/CalDAV) to platform `{name}`, or copy mail only"),
            );
        }
    }

    /// Graph invites every attendee of an event it creates, and nothing turns that off: the
    /// plan says before anything is written what becomes of attendees (crates/mailshift-graph,
    /// `Attendees`), and `send` is never the default.
    fn calendar_attendees_note(&mut self, base: &[PathSeg], a: &Account) {
        let chosen = a
            .options
            .calendar_attendees
            .or(self.plan.options.calendar_attendees);
        if chosen == Some(CalendarAttendees::Send) {
            // Chosen, but it mails people outside the migration: said again before anything
            // is written.
            self.warn(
                &join(base, &[key("to")]),
                format!(
                    "calendars to Microsoft 365 (`{}`) with `calendar_attendees: send`: Microsoft 365 will send an invitation to every attendee of every event copied",
                    a.to
                ),
                "keep it only if the attendees should be invited again; `keep-without-invitations` copies the events without inviting anyone",
            );
            return;
        }
        if chosen.is_some() {
            return;
        }
        self.warn(
            &join(base, &[key("to")]),
            format!(
                "calendars to Microsoft 365 (`{}`): Microsoft Graph sends an invitation to every attendee of an event it creates, so events are written without attendees (listed in the event's text instead, and restored if copied out again)",
                a.to
            ),
            "set `options: {calendar_attendees: keep-without-invitations}` to say so and silence this, `drop` to leave attendees out entirely, or `send` to write them and let Microsoft 365 invite every attendee",
        );
    }

    /// Whether a platform can carry inbox rules: through ManageSieve (`sieve:`), Exchange's
    /// EWS (`exchange`, `ovh-exchange` with `ews:`, reached as contacts are) or Microsoft
    /// Graph (`microsoft-365` with OAuth2) or the legacy MX Plan API's filters. Email Pro (no
    /// EWS documented) and the newer MX Plan (rules in the mailbox) are refused with what to do
    /// instead.
    fn rules_endpoint(
        &mut self,
        content_path: &[PathSeg],
        side_path: &[PathSeg],
        name: &str,
        side: Side,
        p: &Platform,
        oauth2: bool,
    ) {
        let verb = if side == Side::From { "read" } else { "write" };
        if let Some(s) = &p.sieve {
            // An OVHcloud IMAP host is read from the API at run time: nothing to say yet.
            if let Err(e) = s.resolve(p.imap_endpoint().as_deref())
                && !(s.host.is_empty() && p.detects_imap_host())
            {
                self.error(
                    side_path,
                    format!("platform `{name}`: {e}"),
                    format!(
                        "write the ManageSieve host in platform `{name}`'s `sieve: {{host: ...}}`"
                    ),
                );
            }
            return;
        }
        let (message, help) = match p.kind {
            // Exchange's inbox rules through EWS, reached as its contacts are (`ews.url`, else
            // Autodiscover).
            PlatformKind::Exchange if p.ews.is_some() || p.dav.is_none() => return,
            PlatformKind::OvhExchange if p.ews.is_some() => return,
            // Graph message rules, with the account's OAuth2 tokens.
            PlatformKind::Microsoft365 if oauth2 => return,
            // Legacy MX Plan filters, through the OVHcloud API of the platform's provider.
            PlatformKind::OvhMxPlan
                if crate::model::capabilities::mx_plan_api(p) == crate::plan::model::MxPlanApi::Legacy =>
            {
                return;
            }
            PlatformKind::Exchange => (
                format!("platform `{name}` (exchange) reaches its groupware through `dav` (a DAV gateway), which holds no inbox rules"),
                format!("add `ews: {{}}` to platform `{name}` (its URL found by Autodiscover, or `ews: {{url: https://HOST/EWS/Exchange.asmx}}`), or leave `rules` out of `content`"),
            ),
            PlatformKind::OvhExchange => (
                format!("platform `{name}` (ovh-exchange) has no `ews` endpoint to {verb} inbox rules through: Exchange keeps them, reached through Exchange Web Services"),
                format!("add `ews: {{}}` to platform `{name}` (the service's host is read from the OVHcloud API), or leave `rules` out of `content`"),
            ),
            PlatformKind::Microsoft365 => (
                format!("platform `{name}` (microsoft-365) keeps its inbox rules as Graph message rules, and Microsoft Graph takes OAuth2 tokens only: the account's {} side has none", if side == Side::From { "source" } else { "destination" }),
                format!("add an `oauth2` block to platform `{name}` (README, \"Microsoft 365\"), or leave `rules` out of `content`"),
            ),
            PlatformKind::Imap => (
                format!("platform `{name}` has no `sieve` endpoint to {verb} inbox rules through"),
                format!("add `sieve: {{}}` to platform `{name}` (ManageSieve on the IMAP host, port 4190, STARTTLS), or leave `rules` out of `content`"),
            ),
            PlatformKind::OvhEmailPro => (
                format!("platform `{name}` (ovh-email-pro) keeps its inbox rules in Exchange, and OVHcloud documents no EWS endpoint for Email Pro, so mailshift cannot {verb} them"),
                "leave `rules` out of `content` and recreate the rules by hand in OWA".to_string(),
            ),
            PlatformKind::OvhMxPlan => (
                format!("platform `{name}` (ovh-mx-plan) is on the newer MX Plan API, whose inbox rules are kept in the mailbox (Outlook on the web), which mailshift cannot {verb}"),
                "leave `rules` out of `content` and recreate the rules by hand in Outlook on the web; only the legacy MX Plan API (`mx_plan_api: legacy`) has filters mailshift carries".to_string(),
            ),
            PlatformKind::Gmail => (
                format!("platform `{name}` (gmail): Gmail's filters are not reachable over ManageSieve, and mailshift cannot {verb} them"),
                "leave `rules` out of `content`; Gmail exports and imports filters as XML in its settings".to_string(),
            ),
            PlatformKind::Files => (
                format!("platform `{name}` is a `files` platform, which holds no inbox rules"),
                "leave `rules` out of `content`".to_string(),
            ),
        };
        self.error(content_path, message, help);
    }

    fn credentials(&mut self, path: &[PathSeg], c: &Credentials, platform: Option<&Platform>) {
        let oauth2 = c.oauth2.is_some() || platform.is_some_and(|p| p.oauth2.is_some());
        if let (Some(o), Some(p)) = (&c.oauth2, platform) {
            self.oauth2(&join(path, &[key("oauth2")]), o, p.kind);
        }
        // Microsoft turned basic authentication for IMAP off in every tenant (MC375736): a
        // password is refused there whatever it is.
        if let Some(p) = platform
            && p.kind == PlatformKind::Microsoft365
            && c.password.is_some()
        {
            self.warn(
                &join(path, &[key("password")]),
                "Microsoft 365 refuses passwords over IMAP (basic authentication is off in every tenant)",
                "use `oauth2` (README, \"Microsoft 365\"); a password works only on a server that still accepts it",
            );
        }
        let given = [
            c.password.is_some().then_some("`password`"),
            c.oauth2_token.is_some().then_some("`oauth2_token`"),
            c.oauth2.is_some().then_some("`oauth2`"),
        ];
        let given: Vec<&str> = given.into_iter().flatten().collect();
        if given.is_empty() && !oauth2 {
            self.error(
                path,
                "no `password`, `oauth2_token` or `oauth2` to log in with",
                "add `password: {env: VARIABLE}` (or `{file: ...}`, `{command: [...]}`), or an \
                 `oauth2` block here or on the platform",
            );
        } else if given.len() > 1 {
            self.error(
                path,
                match given.as_slice() {
                    [a, b] => format!("both {a} and {b} are set"),
                    _ => format!("{} are all set", given.join(", ")),
                },
                "keep one: `oauth2` obtains and refreshes tokens, `oauth2_token` is a fixed XOAUTH2 \
                 token, `password` logs in with LOGIN/PLAIN",
            );
        }
        if let Some(login) = &c.login
            && login.trim().is_empty()
        {
            self.error(
                &join(path, &[key("login")]),
                "empty login",
                "remove `login` to log in with the address, or set it",
            );
        }
    }

    fn options(&mut self, o: &MigrationOptions, path: &[PathSeg], plan_level: bool) {
        if !plan_level && o.parallel_accounts.is_some() {
            self.error(
                &join(path, &[key("parallel_accounts")]),
                "`parallel_accounts` is a plan-wide setting",
                "move it to the plan's top-level `options`",
            );
        }
        for (name, v) in [
            ("parallel_accounts", o.parallel_accounts),
            ("connections_per_account", o.connections_per_account),
        ] {
            if v == Some(0) {
                self.error(
                    &join(path, &[key(name)]),
                    format!("`{name}` must be at least 1"),
                    "use 1 or more",
                );
            }
        }
        if let Some(folder) = &o.gmail_archive_folder
            && folder.split('/').any(|seg| seg.trim().is_empty())
        {
            self.error(
                &join(path, &[key("gmail_archive_folder")]),
                format!("`{folder}` is not a folder name"),
                "write a folder such as `Archive` or `Gmail/Archive` (levels separated by `/`, none empty)",
            );
        }
        if o.max_items == Some(0) {
            self.error(
                &join(path, &[key("max_items")]),
                "`max_items: 0` would copy nothing",
                "remove it to copy everything, or give a positive number",
            );
        }
        if let Some(size) = &o.max_message_size {
            match size.parsed() {
                Ok(0) => self.error(
                    &join(path, &[key("max_message_size")]),
                    "`max_message_size` is zero",
                    "remove it, or give a size such as `35MB`",
                ),
                Ok(_) => {}
                Err(e) => self.error(
                    &join(path, &[key("max_message_size")]),
                    e,
                    "write a size such as `35MB`, `512KiB` or a number of bytes",
                ),
            }
        }
        let mut dates = Vec::new();
        for (name, v) in [("since", &o.since), ("before", &o.before)] {
            if let Some(s) = v {
                match s.parsed() {
                    Ok(d) => dates.push(d),
                    Err(e) => self.error(
                        &join(path, &[key(name)]),
                        e,
                        "write it as `YYYY-MM-DD`, e.g. `2024-01-31`",
                    ),
                }
            }
        }
        if let (Some(since), Some(before), [a, b]) = (&o.since, &o.before, dates.as_slice())
            && a >= b
        {
            self.error(
                &join(path, &[key("before")]),
                format!("date window is empty: `since: {since}` is not before `before: {before}`"),
                "swap the dates, or widen the window",
            );
        }
        if let Some(e) = o.sync_interval.as_ref().and_then(|s| s.error()) {
            self.error(
                &join(path, &[key("sync_interval")]),
                e,
                "write a duration such as `90s`, `15m`, `1h` or `1h30m`",
            );
        }
    }

    fn groups(&mut self) {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, g) in self.plan.groups.iter().enumerate() {
            let base = [key("groups"), idx(i)];
            if !is_address(&g.address.to_ascii_lowercase()) {
                self.error(
                    &join(&base, &[key("address")]),
                    format!("`{}` is not an email address", g.address),
                    "write it as `team@example.com`",
                );
            }
            if let Some(first) = seen.insert(g.address.to_ascii_lowercase(), i) {
                self.error(
                    &join(&base, &[key("address")]),
                    format!("group `{}` is listed twice", g.address),
                    format!("merge it with `groups[{first}]`"),
                );
            }
            if self
                .plan
                .accounts
                .iter()
                .any(|a| a.address.eq_ignore_ascii_case(&g.address))
            {
                self.error(
                    &join(&base, &[key("address")]),
                    format!("group address `{}` is also an account", g.address),
                    "a group needs an address of its own",
                );
            }
            for (list, members) in [("members", &g.members), ("owners", &g.owners)] {
                let mut dup: HashMap<String, usize> = HashMap::new();
                for (j, m) in members.iter().enumerate() {
                    let mp = join(&base, &[key(list), idx(j)]);
                    if !is_address(&m.to_ascii_lowercase()) {
                        self.error(
                            &mp,
                            format!("`{m}` is not an email address"),
                            "write it as `name@example.com`",
                        );
                    }
                    if dup.insert(m.to_ascii_lowercase(), j).is_some() {
                        self.warn(
                            &mp,
                            format!("`{m}` is listed twice in `{list}`"),
                            "remove the repeat",
                        );
                    }
                }
            }
            if let Some(p) = self.platform_ref(&join(&base, &[key("platform")]), &g.platform) {
                self.feature(&base, &g.platform, p, Feature::Group);
            }
        }
    }

    fn contacts(&mut self) {
        let mut seen: HashMap<(String, String), usize> = HashMap::new();
        for (i, c) in self.plan.external_contacts.iter().enumerate() {
            let base = [key("external_contacts"), idx(i)];
            if !is_address(&c.address.to_ascii_lowercase()) {
                self.error(
                    &join(&base, &[key("address")]),
                    format!("`{}` is not an email address", c.address),
                    "write it as `partner@example.org`",
                );
            }
            if let Some(first) =
                seen.insert((c.address.to_ascii_lowercase(), c.platform.clone()), i)
            {
                self.error(
                    &join(&base, &[key("address")]),
                    format!(
                        "contact `{}` is listed twice for platform `{}`",
                        c.address, c.platform
                    ),
                    format!("merge it with `external_contacts[{first}]`"),
                );
            }
            if let Some(p) = self.platform_ref(&join(&base, &[key("platform")]), &c.platform) {
                self.feature(&base, &c.platform, p, Feature::ExternalContact);
            }
        }
    }

    fn footers(&mut self) {
        let mut seen: HashMap<(String, String), usize> = HashMap::new();
        for (i, f) in self.plan.footers.iter().enumerate() {
            let base = [key("footers"), idx(i)];
            match (&f.text, &f.html) {
                (None, None) => self.error(
                    &base,
                    "footer has neither `text` nor `html`",
                    "add `text:` (plain) or `html:`",
                ),
                (Some(_), Some(_)) => self.error(
                    &join(&base, &[key("html")]),
                    "footer has both `text` and `html`",
                    "keep one: platforms store a single footer per domain",
                ),
                _ => {}
            }
            if !is_domain(&f.domain.to_ascii_lowercase()) {
                self.error(
                    &join(&base, &[key("domain")]),
                    format!("`{}` is not a domain name", f.domain),
                    "write the bare domain, e.g. `example.com`",
                );
            }
            if let Some(first) = seen.insert((f.domain.to_ascii_lowercase(), f.platform.clone()), i)
            {
                self.error(
                    &join(&base, &[key("domain")]),
                    format!(
                        "domain `{}` has two footers on platform `{}`",
                        f.domain, f.platform
                    ),
                    format!("keep one; the other is `footers[{first}]`"),
                );
            }
            if let Some(p) = self.platform_ref(&join(&base, &[key("platform")]), &f.platform) {
                self.feature(&base, &f.platform, p, Feature::Footer);
            }
        }
    }

    fn notify(&mut self) {
        for (i, t) in self.plan.notify.iter().enumerate() {
            let base = [key("notify"), idx(i)];
            match (&t.email, &t.webhook) {
                (None, None) => self.error(
                    &base,
                    "notification target has neither `email` nor `webhook`",
                    "add `email: {to: [...], from: ..., smtp: {host: ...}}` or `webhook: {url: ..., secret: {env: ...}}`",
                ),
                (Some(_), Some(_)) => self.error(
                    &join(&base, &[key("webhook")]),
                    "notification target has both `email` and `webhook`",
                    "write them as two entries of `notify`",
                ),
                _ => {}
            }
            if let Some(e) = &t.email {
                let epath = join(&base, &[key("email")]);
                if e.to.is_empty() {
                    self.error(
                        &join(&epath, &[key("to")]),
                        "no recipient",
                        "list at least one address in `to`",
                    );
                }
                for (j, a) in e.to.iter().enumerate() {
                    if !is_address(a) {
                        self.error(
                            &join(&epath, &[key("to"), idx(j)]),
                            format!("`{a}` is not an e-mail address"),
                            "write an address such as `it@example.com`",
                        );
                    }
                }
                if !is_address(&e.from) {
                    self.error(
                        &join(&epath, &[key("from")]),
                        format!("`{}` is not an e-mail address", e.from),
                        "write the sender address, e.g. `mailshift@example.com`",
                    );
                }
                let spath = join(&epath, &[key("smtp")]);
                let smtp = &e.smtp;
                if smtp.host.trim().is_empty() {
                    self.error(
                        &join(&spath, &[key("host")]),
                        "empty SMTP host",
                        "set the SMTP server's host name",
                    );
                }
                if smtp.port == Some(0) {
                    self.error(
                        &join(&spath, &[key("port")]),
                        "port 0 is not a valid SMTP port",
                        "use the server's port, e.g. 465 for TLS or 587 for STARTTLS",
                    );
                }
                if smtp.security == Security::None
                    && !is_loopback(&smtp.host)
                    && !smtp.allow_plaintext
                {
                    self.error(
                        &join(&spath, &[key("security")]),
                        format!("`security: none` to {} would send the password and mail in clear", smtp.host),
                        "use `security: tls` or `starttls`; if the network is trusted, add `allow_plaintext: true`",
                    );
                }
                if smtp.login.is_some() != smtp.password.is_some() {
                    self.error(
                        &spath,
                        "SMTP `login` and `password` go together",
                        "give both (SMTP AUTH) or neither (no authentication)",
                    );
                }
            }
            if let Some(w) = &t.webhook {
                let u = &w.url;
                let ok = u.starts_with("https://")
                    || (u.starts_with("http://") && is_loopback(url_host(u)));
                if !ok {
                    self.error(
                        &join(&base, &[key("webhook"), key("url")]),
                        format!("unsupported webhook URL `{u}`"),
                        "use an `https://` URL (`http://` only to a loopback host)",
                    );
                }
            }
        }
    }

    /// `shards.status` must say where each shard is (`{shard}`), over HTTP(S).
    fn shards(&mut self) {
        let Some(s) = &self.plan.shards else {
            return;
        };
        let path = [key("shards"), key("status")];
        let u = &s.status;
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            self.error(
                &path,
                format!("unsupported shard status URL `{u}`"),
                "give the base URL of the shards' `mailshift watch`, such as \
                 `http://mailshift-{shard}.mailshift-shards:8470`",
            );
        } else if !u.contains("{shard}") {
            self.error(
                &path,
                format!("the shard status URL `{u}` names one place for every shard"),
                "write `{shard}` where the shard's index goes: \
                 `http://mailshift-{shard}.mailshift-shards:8470`",
            );
        }
        if s.every.as_ref().and_then(|d| d.get()) == Some(std::time::Duration::ZERO) {
            self.error(
                &[key("shards"), key("every")],
                "`every` must be longer than zero",
                "give a duration such as `30s` or `2m`",
            );
        }
    }

    fn secrets(&mut self) {
        let mut refs: Vec<(Vec<PathSeg>, &SecretRef)> = Vec::new();
        if let Some(t) = self.plan.shards.as_ref().and_then(|s| s.token.as_ref()) {
            refs.push((vec![key("shards"), key("token")], t));
        }
        for (i, t) in self.plan.notify.iter().enumerate() {
            let base = [key("notify"), idx(i)];
            if let Some(p) = t.email.as_ref().and_then(|e| e.smtp.password.as_ref()) {
                refs.push((
                    join(&base, &[key("email"), key("smtp"), key("password")]),
                    p,
                ));
            }
            if let Some(w) = &t.webhook {
                refs.push((join(&base, &[key("webhook"), key("secret")]), &w.secret));
            }
        }
        for (name, p) in &self.plan.providers {
            let base = [key("providers"), key(name)];
            refs.push((join(&base, &[key("application_key")]), &p.application_key));
            refs.push((
                join(&base, &[key("application_secret")]),
                &p.application_secret,
            ));
            refs.push((join(&base, &[key("consumer_key")]), &p.consumer_key));
        }
        for (i, a) in self.plan.accounts.iter().enumerate() {
            for side in ["source", "destination"] {
                let c = if side == "source" {
                    &a.source
                } else {
                    &a.destination
                };
                let base = [key("accounts"), idx(i), key(side)];
                if let Some(p) = &c.password {
                    refs.push((join(&base, &[key("password")]), p));
                }
                if let Some(t) = &c.oauth2_token {
                    refs.push((join(&base, &[key("oauth2_token")]), t));
                }
            }
        }
        for (i, d) in self.plan.domains.iter().enumerate() {
            if let Some(t) = d.dns.as_ref().and_then(|z| z.tsig.as_ref()) {
                refs.push((
                    vec![
                        key("domains"),
                        idx(i),
                        key("dns"),
                        key("tsig"),
                        key("secret"),
                    ],
                    &t.secret,
                ));
            }
        }
        for (path, r) in refs {
            match r {
                SecretRef::Inline(_) if !self.plan.allow_inline_secrets => self.error(
                    &path,
                    "secret written in the plan file",
                    "refer to it instead: `{env: VARIABLE}`, `{file: path}` or `{command: [program, args...]}`; \
                     to accept literal secrets anyway, set `allow_inline_secrets: true` at the top level",
                ),
                SecretRef::Inline(_) => self.warn(
                    &path,
                    "secret written in the plan file",
                    "anyone who can read the plan (or its history in version control) can read it; prefer `{env: VARIABLE}`",
                ),
                SecretRef::Env(e) if !is_env_name(&e.env) => self.error(
                    &path,
                    format!("`{}` is not an environment variable name", e.env),
                    "use letters, digits and `_`, not starting with a digit",
                ),
                SecretRef::File(f) if f.file.trim().is_empty() => self.error(&path, "empty secret file path", "name the file holding the secret"),
                SecretRef::Command(c) if c.command.is_empty() || c.command[0].trim().is_empty() => {
                    self.error(&path, "empty secret command", "write the program and its arguments, e.g. `[pass, show, mail/alice]`")
                }
                _ => {}
            }
        }
    }
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub fn is_address(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !local.contains(char::is_whitespace)
                && !domain.contains('@')
                && is_domain(domain)
        }
        None => false,
    }
}

pub fn is_domain(s: &str) -> bool {
    s.contains('.')
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

pub fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if authority.starts_with('[') {
        authority
            .split_once(']')
            .map_or(authority, |(h, _)| &h[1..])
    } else {
        authority.split(':').next().unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_hosts() {
        assert!(is_address("a.b@example.com"));
        assert!(!is_address("a@b@example.com"));
        assert!(!is_address("example.com"));
        assert!(is_loopback("127.0.0.1") && is_loopback("::1") && is_loopback("localhost"));
        assert!(!is_loopback("10.0.0.1"));
        assert_eq!(url_host("http://127.0.0.1:8080/1.0"), "127.0.0.1");
        assert_eq!(url_host("http://[::1]:80/"), "::1");
    }
}
