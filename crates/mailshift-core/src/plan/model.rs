//! The plan's typed model: what a plan file may say, as serde types.
//!
//! These types are the single source of the plan language: the JSON Schema
//! (`mailshift schema`, `schema/plan.schema.json`) is derived from them, the loader checks a
//! document's shape against that schema (so every shape error is reported, not only the
//! first), and only then deserializes into them. Rules that span several fields (references
//! between platforms, duplicates, what a platform can do) live in `plan::validate`.
//!
//! No `#[serde(flatten)]` here: it defeats `deny_unknown_fields` and makes the schema lie.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::secret::SecretRef;
pub use super::value::{ByteSize, Date, Duration, Interval, Timestamp};

/// A mailshift plan: where every mailbox must end up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "mailshift plan")]
pub struct Plan {
    /// Plan language version; only `1` exists.
    pub version: u32,
    /// Path of the state file, relative to the plan's directory.
    /// Default: `.mailshift/state.redb` beside the plan.
    /// `{shard}` in it is replaced by the shard's index (`--shard I/N`), so shards on one
    /// machine each have a file (`state/state-{shard}.redb`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Where OAuth2 refresh tokens obtained by `mailshift auth login` are kept (a JSON file,
    /// mode 0600, never the state), relative to the plan's directory. Default: the
    /// `MAILSHIFT_TOKEN_STORE` environment variable, else `.mailshift/tokens.json` beside the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_store: Option<String>,
    /// Accept literal passwords in this file. Off by default: secrets belong in env vars,
    /// files or commands. When on, every literal secret is warned about.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_inline_secrets: bool,
    /// What to do with steps that no API can perform (groups on Email Pro, anything on a
    /// plain IMAP server): `allow` lists them as manual steps, `forbid` makes them errors.
    #[serde(default, skip_serializing_if = "is_default")]
    pub manual_steps: ManualSteps,
    /// API credentials, by name; platforms refer to them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub providers: BTreeMap<String, Provider>,
    /// Mail platforms, by name; accounts, domains and groups refer to them.
    pub platforms: BTreeMap<String, Platform>,
    /// Domains to attach on a platform for the move.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<Domain>,
    /// Defaults for every account's migration; each account may override them.
    #[serde(default, skip_serializing_if = "is_default")]
    pub options: MigrationOptions,
    /// The mailboxes to move.
    #[serde(default)]
    pub accounts: Vec<Account>,
    /// Distribution groups (mailing lists) to recreate on a platform.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Group>,
    /// External contacts to recreate on a platform.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_contacts: Vec<ExternalContact>,
    /// Per-domain footers (disclaimers) to set on a platform.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub footers: Vec<Footer>,
    /// Who is told about the migration's progress (e-mail over SMTP, signed webhooks), and
    /// of which events. A notification that cannot be delivered never fails the migration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<NotifyTarget>,
    /// Pause every account's copies (mail, contacts, calendars, tasks): a copy under way stops
    /// at its next checkpoint, none starts, and setting it back to `false` (or removing it)
    /// resumes each from where it stood. Creations, renames and other API steps still run.
    /// Not a daily-limit pause (`limits:`), which ends by itself.
    #[serde(default, skip_serializing_if = "is_false")]
    pub paused: bool,
    /// When and how every domain with a `dns:` block is cut over (its records switched to the
    /// destination, then its accounts marked cut over); a domain's own `cutover:` overrides
    /// these field by field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutover: Option<Cutover>,
    /// When the plan runs as shards (`--shard I/N`): where each shard's status is read, so a
    /// step that depends on another shard's (shard 0's groups on the accounts they list) waits
    /// until it is done there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<Shards>,
}

/// How the shards of a plan read each other's progress: every shard runs `mailshift watch`,
/// whose `/api/status` says which of its steps are done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Shards {
    /// The base URL of shard `{shard}`'s `mailshift watch` (its `--listen`), with `{shard}`
    /// standing for the shard's index: `http://mailshift-{shard}.mailshift-shards:8470` (a
    /// Kubernetes headless Service). `/api/status` is read there.
    pub status: String,
    /// The shards' status token (`watch --token`), as a secret reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<SecretRef>,
    /// How often a step waiting for another shard is tried again in watch mode. Default: 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<Duration>,
}

impl Shards {
    pub const DEFAULT_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

    /// The status URL of shard `index`.
    pub fn status_url(&self, index: u32) -> String {
        let base = self.status.replace("{shard}", &index.to_string());
        format!("{}/api/status", base.trim_end_matches('/'))
    }

    pub fn every(&self) -> std::time::Duration {
        self.every
            .as_ref()
            .and_then(Duration::get)
            .unwrap_or(Self::DEFAULT_EVERY)
    }
}

/// One recipient of notifications: exactly one of `email` and `webhook`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyTarget {
    /// Send an e-mail over SMTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailNotify>,
    /// POST a JSON document, signed with HMAC-SHA256, to a URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookNotify>,
    /// Which events this target receives. Default: all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<NotifyEvent>,
}

impl NotifyTarget {
    /// Whether this target wants `event` (no list: every event).
    pub fn wants(&self, event: NotifyEvent) -> bool {
        self.events.is_empty() || self.events.contains(&event)
    }
}

/// What is worth telling people about.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum NotifyEvent {
    /// An account's first full copy finished (once per account).
    FirstCopy,
    /// A step failed (once per failure: not again while it keeps failing the same way).
    Failed,
    /// A manual step waits for a person (`mailshift ack`), once per step.
    Manual,
    /// Every step of the plan is done: nothing failed, nothing waits.
    Converged,
    /// Watch mode: one summary a day.
    DailySummary,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 5] = [
        NotifyEvent::FirstCopy,
        NotifyEvent::Failed,
        NotifyEvent::Manual,
        NotifyEvent::Converged,
        NotifyEvent::DailySummary,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::FirstCopy => "first-copy",
            NotifyEvent::Failed => "failed",
            NotifyEvent::Manual => "manual",
            NotifyEvent::Converged => "converged",
            NotifyEvent::DailySummary => "daily-summary",
        }
    }
}

/// E-mail notifications.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailNotify {
    /// Recipients, e.g. `[it@example.com]`.
    pub to: Vec<String>,
    /// The sender address, e.g. `mailshift@example.com`.
    pub from: String,
    /// The SMTP server that sends the mail.
    pub smtp: SmtpEndpoint,
}

/// An SMTP submission server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SmtpEndpoint {
    /// Host name, e.g. `smtp.mail.ovh.net`.
    pub host: String,
    /// Port. Default: 465 with `tls`, 587 with `starttls`, 25 with `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `tls` (implicit TLS, default), `starttls`, or `none` (loopback only unless
    /// `allow_plaintext`). The certificate is verified.
    #[serde(default, skip_serializing_if = "is_default")]
    pub security: Security,
    /// Login for SMTP AUTH. Default: none (no authentication).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    /// Password for SMTP AUTH, as a secret reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretRef>,
    /// PEM file of extra CA certificates to trust for this server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Allow `security: none` to a host that is not loopback.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_plaintext: bool,
}

impl SmtpEndpoint {
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            Security::Tls => 465,
            Security::Starttls => 587,
            Security::None => 25,
        })
    }
}

/// Webhook notifications: a JSON POST whose body is signed with HMAC-SHA256 under `secret`,
/// hex in the `X-Mailshift-Signature: sha256=...` header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookNotify {
    /// `https://` URL (`http://` only to a loopback host).
    pub url: String,
    /// The HMAC key, as a secret reference.
    pub secret: SecretRef,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ManualSteps {
    /// Steps with no API are listed as manual steps, to do by hand and acknowledge.
    #[default]
    Allow,
    /// Steps with no API are errors: everything must be automated.
    Forbid,
}

/// OVHcloud API credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// Provider kind; only `ovh` exists.
    #[serde(rename = "type")]
    pub kind: ProviderKind,
    /// `ovh-eu`, `ovh-ca`, `ovh-us`, or an `https://` base URL (e.g. a local simulator).
    pub endpoint: String,
    /// Application key (sent in clear on every call, but keep it out of the plan anyway).
    pub application_key: SecretRef,
    /// Application secret.
    pub application_secret: SecretRef,
    /// Consumer key (see `mailshift ovh credentials`).
    pub consumer_key: SecretRef,
    /// How often to re-read a pending task or object, e.g. `5s` (default) or `250ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval: Option<Duration>,
    /// How long one task may take before the step fails, e.g. `30m` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_timeout: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    Ovh,
}

/// A mail platform: an IMAP server, possibly with an OVHcloud control plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Platform {
    /// What the platform is; decides which steps have an API.
    #[serde(rename = "type")]
    pub kind: PlatformKind,
    /// Name of the entry in `providers` holding the API credentials (OVH types).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Exchange organization name (`ovh-exchange` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// Service name: Exchange service, Email Pro service, MX Plan service or domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Which MX Plan API the service lives on (`ovh-mx-plan` only). Default `mxplan`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mx_plan_api: Option<MxPlanApi>,
    /// The IMAP endpoint mail is read from or written to. Optional on `gmail` and
    /// `microsoft-365` (their public servers) and on OVHcloud types, whose server is read from
    /// the API (the service's `hostname`; `ssl0.ovh.net` on the legacy MX Plan API), port 993
    /// over TLS; an `imap:` block there without `host` keeps that detection and sets the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imap: Option<ImapEndpoint>,
    /// A POP3 endpoint mail is read from instead (a source only: POP3 cannot write). Its one
    /// mailbox is copied into the destination's `INBOX`, or where the account's `folders`
    /// rules map `INBOX`. Same fields as `imap`; the port defaults to 995 with `security:
    /// tls`, 110 otherwise (STLS, or plain with `allow_plaintext`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pop3: Option<ImapEndpoint>,
    /// The CardDAV/CalDAV endpoint contacts, calendars and tasks are read from or written to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dav: Option<DavEndpoint>,
    /// The ManageSieve endpoint (RFC 5804) inbox rules are read from or written to, as Sieve
    /// scripts, on an IMAP platform: `sieve: {}` is the IMAP host on port 4190 with STARTTLS.
    /// Same fields as `imap`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sieve: Option<SieveEndpoint>,
    /// The Exchange Web Services endpoint contacts, calendars, tasks and inbox rules are read
    /// from or written to (`exchange` and `ovh-exchange`). Optional on `ovh-exchange`, whose
    /// URL is `https://HOST/EWS/Exchange.asmx` with the service's hostname read from the API;
    /// on `exchange` without `url`, the URL is found by Autodiscover from the account's domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ews: Option<EwsEndpoint>,
    /// The Microsoft Graph endpoint contacts, calendars, To Do tasks and message rules are
    /// read from or written to (`microsoft-365`). Default `https://graph.microsoft.com/v1.0`;
    /// set it for a national cloud or a local stand-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<HttpEndpoint>,
    /// How accounts of this platform get OAuth2 access tokens (XOAUTH2), unless an account
    /// side says otherwise: one app for every mailbox of a tenant or a Workspace domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<OAuth2>,
    /// The platform's limits, overriding its type's defaults (Gmail: 35 MB per message,
    /// 500 MB uploaded and 2,500 MB downloaded per account and day; Microsoft 365: 35 MB).
    #[serde(default, skip_serializing_if = "is_default")]
    pub limits: PlatformLimits,
    /// The directory of a `files` platform (relative to the plan's directory): each account's
    /// files are under `PATH/ADDRESS/` (`.vcf` address books, `.ics` calendars, `.mbox` files
    /// and directories of `.eml` messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The IMAP host read from the platform's API at the start of a command that connects
    /// (`mailshift::apply::servers`), or why it could not be: never in a plan file.
    #[serde(skip)]
    #[schemars(skip)]
    pub detected_imap_host: Option<Result<String, String>>,
}

/// Where to reach a CardDAV/CalDAV server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DavEndpoint {
    /// Base URL (`https://`; `http://` only to a loopback host), e.g. `https://dav.example.com/`.
    pub url: String,
    /// PEM file of extra CA certificates to trust for this server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Accept any certificate. Dangerous: only for a server you reach over a trusted network.
    #[serde(default, skip_serializing_if = "is_false")]
    pub insecure_skip_verify: bool,
}

/// Where to reach Exchange Web Services.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EwsEndpoint {
    /// `https://HOST/EWS/Exchange.asmx` (`http://` only to a loopback host). Default: from the
    /// OVHcloud API (`ovh-exchange`), else Autodiscover (`exchange`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The schema version sent as `RequestServerVersion` (e.g. `Exchange2013_SP1`, the
    /// default, which Exchange 2013, 2016, 2019 and Exchange Online all accept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// PEM file of extra CA certificates to trust for this server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Accept any certificate. Dangerous: only for a server you reach over a trusted network.
    #[serde(default, skip_serializing_if = "is_false")]
    pub insecure_skip_verify: bool,
    /// How the account's password is presented: `basic`, `ntlm` (NTLMv2; OVHcloud
    /// Hosted/Private Exchange, on-premises servers with Basic off), or `auto` (the default:
    /// Basic, switching to NTLM when the server refuses Basic and offers NTLM). OAuth tokens
    /// are sent as such whatever this says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<EwsAuth>,
}

/// `ews.auth`: how a password is presented to Exchange Web Services.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EwsAuth {
    /// HTTP Basic only.
    Basic,
    /// NTLMv2 only: never a Basic header.
    Ntlm,
    /// Basic first; NTLM once the server refuses Basic and offers NTLM.
    #[default]
    Auto,
}

/// Where to reach an HTTPS API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpEndpoint {
    /// Base URL (`https://`; `http://` only to a loopback host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// PEM file of extra CA certificates to trust for this server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Accept any certificate. Dangerous: only for a server you reach over a trusted network.
    #[serde(default, skip_serializing_if = "is_false")]
    pub insecure_skip_verify: bool,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum PlatformKind {
    /// Any IMAP server; no control plane (account steps are manual or preconditions).
    Imap,
    /// Any Exchange server (2013 or later, on-premises or hosted): mail over IMAP (`imap:`),
    /// contacts, calendars, tasks and inbox rules over EWS (`ews:`); no control plane.
    Exchange,
    /// OVHcloud Hosted/Private Exchange.
    OvhExchange,
    /// OVHcloud Email Pro.
    OvhEmailPro,
    /// OVHcloud MX Plan.
    OvhMxPlan,
    /// A directory of files: vCard/iCalendar files (a source or an export) and mbox/eml mail
    /// (a source).
    Files,
    /// Gmail or Google Workspace: `imap.gmail.com`, labels shown as folders, XOAUTH2.
    Gmail,
    /// Microsoft 365 (Exchange Online): `outlook.office365.com`, XOAUTH2 only.
    #[serde(rename = "microsoft-365")]
    Microsoft365,
}

impl PlatformKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PlatformKind::Imap => "imap",
            PlatformKind::Exchange => "exchange",
            PlatformKind::OvhExchange => "ovh-exchange",
            PlatformKind::OvhEmailPro => "ovh-email-pro",
            PlatformKind::OvhMxPlan => "ovh-mx-plan",
            PlatformKind::Files => "files",
            PlatformKind::Gmail => "gmail",
            PlatformKind::Microsoft365 => "microsoft-365",
        }
    }

    pub fn is_ovh(self) -> bool {
        matches!(
            self,
            PlatformKind::OvhExchange | PlatformKind::OvhEmailPro | PlatformKind::OvhMxPlan
        )
    }

    /// The IMAP endpoint this kind of platform has when the plan names none.
    pub fn default_imap(self) -> Option<ImapEndpoint> {
        let host = match self {
            PlatformKind::Gmail => "imap.gmail.com",
            PlatformKind::Microsoft365 => "outlook.office365.com",
            _ => return None,
        };
        Some(ImapEndpoint::tls(host))
    }
}

impl Platform {
    /// The IMAP endpoint: the plan's, else the platform type's default (Gmail, Microsoft 365).
    pub fn imap_endpoint(&self) -> Option<std::borrow::Cow<'_, ImapEndpoint>> {
        match (&self.imap, self.kind.default_imap()) {
            (Some(ep), Some(default)) if ep.host.is_empty() => {
                Some(std::borrow::Cow::Owned(ImapEndpoint {
                    host: default.host,
                    ..ep.clone()
                }))
            }
            (Some(ep), _) => Some(std::borrow::Cow::Borrowed(ep)),
            (None, default) => default.map(std::borrow::Cow::Owned),
        }
    }

    /// Whether the IMAP host is to be read from the platform's API (an OVHcloud platform
    /// whose plan names no host).
    pub fn detects_imap_host(&self) -> bool {
        self.kind.is_ovh() && self.imap.as_ref().is_none_or(|ep| ep.host.is_empty())
    }

    /// The IMAP server to connect to: the plan's (or the type's) endpoint, with the host
    /// read from the API where the plan names none.
    pub fn imap_server(&self) -> Result<std::borrow::Cow<'_, ImapEndpoint>, String> {
        if !self.detects_imap_host() {
            return self
                .imap_endpoint()
                .ok_or_else(|| "the platform has no `imap` endpoint".to_string());
        }
        match &self.detected_imap_host {
            Some(Ok(host)) => Ok(std::borrow::Cow::Owned(ImapEndpoint {
                host: host.clone(),
                ..self.imap.clone().unwrap_or_else(|| ImapEndpoint::tls(""))
            })),
            Some(Err(e)) => Err(format!(
                "its IMAP server could not be read from the OVHcloud API ({e}); write it in the platform's `imap: {{host: ...}}`"
            )),
            None => Err(
                "its IMAP server is read from the OVHcloud API, which was not asked".to_string(),
            ),
        }
    }

    /// The largest message the platform accepts: the plan's `limits`, else the type's default.
    pub fn max_message_size(&self) -> Option<u64> {
        self.limits
            .max_message_size
            .as_ref()
            .and_then(ByteSize::bytes)
            .or(match self.kind {
                PlatformKind::Gmail | PlatformKind::Microsoft365 => Some(35 * 1_000_000),
                _ => None,
            })
    }

    /// The connection budget of each of this platform's IMAP servers, shared by every account
    /// of a run: the plan's `limits.server_connections`, else the type's default.
    pub fn server_connections(&self) -> u32 {
        self.limits
            .server_connections
            .unwrap_or(match self.kind {
                PlatformKind::Gmail | PlatformKind::Microsoft365 => 8,
                _ => DEFAULT_SERVER_CONNECTIONS,
            })
            .max(1)
    }

    /// Bytes one account may download (read over IMAP) per day, if the platform caps it.
    pub fn daily_download(&self) -> Option<u64> {
        self.limits
            .daily_download
            .as_ref()
            .and_then(ByteSize::bytes)
            .or((self.kind == PlatformKind::Gmail).then_some(2_500 * 1_000_000))
    }

    /// Bytes one account may upload (APPEND over IMAP) per day, if the platform caps it.
    pub fn daily_upload(&self) -> Option<u64> {
        self.limits
            .daily_upload
            .as_ref()
            .and_then(ByteSize::bytes)
            .or((self.kind == PlatformKind::Gmail).then_some(500 * 1_000_000))
    }
}

/// A generic IMAP server's connection budget, all accounts together: enough for ten
/// accounts at once with room for the big ones, under Dovecot's and Courier's defaults.
pub const DEFAULT_SERVER_CONNECTIONS: u32 = 12;

/// A platform's limits; each unset one is the platform type's default (none for plain IMAP).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlatformLimits {
    /// The largest message the platform accepts, e.g. `35MB` (Gmail, and Microsoft 365's
    /// default; Microsoft 365 goes up to `150MB` once the mailbox's MaxReceiveSize is raised).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_size: Option<ByteSize>,
    /// Bytes one account may read over IMAP per day (Gmail: `2500MB`). Reaching it pauses the
    /// account until the next day instead of failing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_download: Option<ByteSize>,
    /// Bytes one account may append over IMAP per day (Gmail: `500MB`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_upload: Option<ByteSize>,
    /// IMAP connections one account may hold on this platform at once, all runs together
    /// (Gmail about 15, Microsoft 365 about 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u32>,
    /// IMAP connections all the accounts of a run may hold at once on each of this platform's
    /// servers (a server is a host and port): the server's budget, spent where the mail is.
    /// Default 12 (Gmail and Microsoft 365: 8, which throttle many connections from one
    /// client address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_connections: Option<u32>,
}

/// How to obtain OAuth2 access tokens for XOAUTH2. Secrets (client secret, service-account
/// key, refresh token) are secret references; tokens obtained are kept in the token store,
/// never in the state, the plan's output or logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuth2 {
    /// How tokens are obtained.
    pub flow: OAuth2Flow,
    /// The application (client) id: the Azure app registration's, or the Google OAuth
    /// client's (not needed with `service-account`, whose key names its client).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The client secret, as a secret reference (client credentials; Google's installed apps
    /// have one too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<SecretRef>,
    /// Microsoft Entra tenant: its id or a domain (`contoso.onmicrosoft.com`). Needed by
    /// `client-credentials`; `device-code` defaults to `organizations`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Google service-account key (the JSON file Google Cloud gives), as a secret reference
    /// (`{file: key.json}`). With `service-account`, each mailbox is impersonated (`sub`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_key: Option<SecretRef>,
    /// A refresh token, as a secret reference, instead of the token store (obtained elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<SecretRef>,
    /// Scopes to ask for. Default: the platform type's (Microsoft 365:
    /// `https://outlook.office365.com/.default` app-only, `https://outlook.office.com/IMAP.AccessAsUser.All offline_access`
    /// delegated; Gmail: `https://mail.google.com/`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Token endpoint. Default: the platform type's (Microsoft identity platform for the
    /// tenant, Google's `https://oauth2.googleapis.com/token`); required on other platforms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// Device authorization endpoint (`device-code`). Default: the platform type's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_authorization_url: Option<String>,
    /// Authorization endpoint (`loopback`). Default: the platform type's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_url: Option<String>,
    /// PEM file of extra CA certificates to trust for the OAuth2 endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OAuth2Flow {
    /// App-only client credentials (Microsoft 365 `IMAP.AccessAsApp`): one app for every
    /// mailbox of the tenant; no login step.
    ClientCredentials,
    /// Delegated device code (RFC 8628): `mailshift auth login` shows a code to enter in a
    /// browser once per account; the refresh token is kept.
    DeviceCode,
    /// Google Workspace service account with domain-wide delegation: an RS256-signed JWT per
    /// mailbox (RFC 7523), re-signed when the token expires; no login step.
    ServiceAccount,
    /// Installed-app authorization code with PKCE, redirected to a loopback port
    /// (consumer Gmail): `mailshift auth login` opens the browser once per account.
    Loopback,
    /// Only refresh a refresh token given as `refresh_token` (obtained by another tool).
    RefreshToken,
}

impl OAuth2Flow {
    pub fn as_str(self) -> &'static str {
        match self {
            OAuth2Flow::ClientCredentials => "client-credentials",
            OAuth2Flow::DeviceCode => "device-code",
            OAuth2Flow::ServiceAccount => "service-account",
            OAuth2Flow::Loopback => "loopback",
            OAuth2Flow::RefreshToken => "refresh-token",
        }
    }

    /// Whether the flow needs a person once (`mailshift auth login`) before runs can refresh.
    pub fn is_interactive(self) -> bool {
        matches!(self, OAuth2Flow::DeviceCode | OAuth2Flow::Loopback)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MxPlanApi {
    /// The newer `/email/mxplan/{service}` API.
    Mxplan,
    /// The legacy `/email/domain/{domain}` API.
    Legacy,
}

/// Where and how to reach an IMAP server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImapEndpoint {
    /// Host name or IP address. May be left out on OVHcloud platforms (read from the API) and
    /// on `gmail`/`microsoft-365` (their public servers).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// TCP port. Default: 993 with `tls`, 143 otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `tls` (implicit TLS), `starttls` (required, never downgraded) or `none`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub security: Security,
    /// PEM file of extra CA certificates to trust for this server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Accept any certificate. Dangerous: only for a server you reach over a trusted network.
    #[serde(default, skip_serializing_if = "is_false")]
    pub insecure_skip_verify: bool,
    /// Allow `security: none` to a host that is not loopback (passwords cross the network in clear).
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_plaintext: bool,
    /// How long one IMAP command may go without an answer before the connection is declared
    /// dead and reconnected, e.g. `30s` or `5m`. Default: `2m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

impl ImapEndpoint {
    /// `host` on port 993 over TLS, certificates verified: what public servers offer.
    pub fn tls(host: &str) -> ImapEndpoint {
        ImapEndpoint {
            host: host.to_string(),
            port: None,
            security: Security::Tls,
            ca_file: None,
            insecure_skip_verify: false,
            allow_plaintext: false,
            timeout: None,
        }
    }

    /// The per-command timeout when the plan sets none: long enough for a slow server's big
    /// FETCH or SEARCH, short enough that a stalled link is noticed within minutes.
    pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

    /// The per-command timeout (`timeout:`, validated by the plan validator).
    pub fn command_timeout(&self) -> std::time::Duration {
        self.timeout
            .as_ref()
            .and_then(Duration::get)
            .unwrap_or(Self::DEFAULT_TIMEOUT)
    }

    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            Security::Tls => 993,
            Security::Starttls | Security::None => 143,
        })
    }

    /// The port as a `pop3:` endpoint: the plan's, else 995 (TLS) or 110.
    pub fn effective_pop3_port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            Security::Tls => 995,
            Security::Starttls | Security::None => 110,
        })
    }
}

/// Where and how to reach a ManageSieve server: `imap`'s fields, with defaults of its own
/// (the IMAP host, port 4190, STARTTLS: RFC 5804 has no implicit-TLS port).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SieveEndpoint {
    /// Host name or IP address. Default: the platform's IMAP host.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// TCP port. Default: 4190.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `starttls` (the default; required, never downgraded), `tls` (implicit TLS, for a
    /// server behind a TLS proxy) or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<Security>,
    /// PEM file of extra CA certificates to trust. Default: the IMAP endpoint's, when the
    /// host is the IMAP host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Accept any certificate. Dangerous: only for a server you reach over a trusted network.
    #[serde(default, skip_serializing_if = "is_false")]
    pub insecure_skip_verify: bool,
    /// Allow `security: none` to a host that is not loopback (passwords cross the network in clear).
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_plaintext: bool,
    /// How long one command may go without an answer, e.g. `30s`. Default: `2m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

/// The ManageSieve port (RFC 5804 section 1.8).
pub const SIEVE_PORT: u16 = 4190;

impl SieveEndpoint {
    /// The endpoint to connect to, as an `ImapEndpoint` (the sessions share their TLS and
    /// login code): omitted fields from the defaults and from `imap`, the platform's IMAP
    /// server.
    pub fn resolve(&self, imap: Option<&ImapEndpoint>) -> Result<ImapEndpoint, String> {
        let same_host = self.host.is_empty();
        let host = match (same_host, imap) {
            (false, _) => self.host.clone(),
            (true, Some(i)) if !i.host.is_empty() => i.host.clone(),
            _ => {
                return Err(
                    "the `sieve` endpoint names no host and the platform has no IMAP host to take"
                        .to_string(),
                );
            }
        };
        Ok(ImapEndpoint {
            host,
            port: Some(self.port.unwrap_or(SIEVE_PORT)),
            security: self.security.unwrap_or(Security::Starttls),
            ca_file: self.ca_file.clone().or_else(|| {
                same_host
                    .then(|| imap.and_then(|i| i.ca_file.clone()))
                    .flatten()
            }),
            insecure_skip_verify: self.insecure_skip_verify,
            allow_plaintext: self.allow_plaintext,
            timeout: self.timeout.clone(),
        })
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Security {
    #[default]
    Tls,
    Starttls,
    None,
}

/// A domain to attach to a platform during the move.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Domain {
    /// The domain name, e.g. `example.com`.
    pub name: String,
    /// Platform (key of `platforms`) the domain is attached to.
    pub platform: String,
    /// `non-authoritative` while both platforms serve the domain (the move), `authoritative` after.
    pub mode: DomainMode,
    /// Server that receives mail for addresses this platform does not host
    /// (required with `non-authoritative`), e.g. `mx1.mail.ovh.net`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mx_relay: Option<String>,
    /// Where the domain's DNS zone lives, for the cutover: mailshift switches the records
    /// (`records`) there, checks that every authoritative server answers them, then marks the
    /// domain's accounts cut over. On the domain entry of the platform mail moves to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsZone>,
    /// The records the cutover writes. Default: the platform's published records (Gmail,
    /// Microsoft 365), or for an OVHcloud platform the ones its DNS diagnosis expects (MX,
    /// SPF, autodiscover SRV), read when the cutover runs. Each listed name and type is
    /// replaced whole (its RRset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<Vec<DnsRecord>>,
    /// This domain's cutover settings, overriding the plan's `cutover` field by field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutover: Option<Cutover>,
}

/// Where a domain's zone lives and how mailshift changes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsZone {
    /// `ovh` (OVHcloud's domain zone API), `rfc2136` (TSIG-signed dynamic updates: BIND,
    /// PowerDNS, Knot...), or `manual` (mailshift shows the records and waits for them).
    pub provider: DnsProvider,
    /// The zone's apex, e.g. `example.com`. Default: the domain itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// `ovh`: the `providers` entry whose credentials sign the zone's API calls. Default: the
    /// domain's platform's provider, else the plan's only `ovh` provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<String>,
    /// `rfc2136`: the primary server that takes updates, `host:port`, e.g. `ns1.example.com:53`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// `rfc2136`: the TSIG key that signs updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsig: Option<Tsig>,
    /// The authoritative servers the propagation check asks, `host:port`. Default: the zone's
    /// NS records (port 53).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// How long one DNS query or update may take, e.g. `5s`. Default `5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DnsProvider {
    /// OVHcloud's domain zone API (`/domain/zone/{zone}/record` and `/refresh`).
    Ovh,
    /// RFC 2136 dynamic updates, TSIG-signed.
    Rfc2136,
    /// A person changes the zone; mailshift shows the records and waits until they are served.
    Manual,
}

impl DnsProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            DnsProvider::Ovh => "ovh",
            DnsProvider::Rfc2136 => "rfc2136",
            DnsProvider::Manual => "manual",
        }
    }
}

/// A TSIG key (RFC 8945).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tsig {
    /// The key's name, as the server knows it, e.g. `mailshift-key`.
    pub name: String,
    /// `hmac-sha256` (default), `hmac-sha384`, `hmac-sha512`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    /// The key, base64 as in BIND's `secret "..."`, as a secret reference.
    pub secret: SecretRef,
}

/// One record set the cutover writes: every record of `name` and `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsRecord {
    /// The name, relative to the domain (`@` for the domain itself, `autodiscover`,
    /// `selector1._domainkey`) or absolute with a final dot.
    pub name: String,
    /// `MX`, `TXT`, `SRV` or `CNAME`.
    #[serde(rename = "type")]
    pub rtype: DnsRecordType,
    /// The records' data, e.g. `10 mx1.mail.ovh.net.` (MX), `v=spf1 include:mx.ovh.com ~all`
    /// (TXT), `0 0 443 mailconfig.ovh.net.` (SRV).
    pub values: Vec<String>,
    /// The TTL once the cutover is over, in seconds. Default: the TTL the zone had for it,
    /// else 3600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
}

/// The record types a cutover writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum DnsRecordType {
    Mx,
    Txt,
    Srv,
    Cname,
}

impl DnsRecordType {
    pub fn as_str(self) -> &'static str {
        match self {
            DnsRecordType::Mx => "MX",
            DnsRecordType::Txt => "TXT",
            DnsRecordType::Srv => "SRV",
            DnsRecordType::Cname => "CNAME",
        }
    }
}

/// When and how a domain is cut over. Unset fields fall back to the plan's `cutover`, then to
/// the defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cutover {
    /// When the records may be switched, RFC 3339, e.g. `2026-12-05T22:00:00+01:00` (a
    /// maintenance window). Without it the steps are planned but never due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Timestamp>,
    /// How long before `at` the TTL of the records that change is lowered, e.g. `2d`.
    /// Default `1d`; at least the records' current TTL, or resolvers keep the old answer
    /// past `at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower_ttl_ahead: Option<Interval>,
    /// The TTL, in seconds, of those records from then until the cutover is over. Default 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_ttl: Option<u32>,
    /// Switch even though an account of the domain failed its last sync or misses messages.
    /// Mail may then reach the destination before its history: said loudly by `plan` and
    /// `apply`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
}

impl Cutover {
    /// This domain's settings over the plan's.
    pub fn over(&self, plan: Option<&Cutover>) -> Cutover {
        let d = plan.cloned().unwrap_or_default();
        Cutover {
            at: self.at.clone().or(d.at),
            lower_ttl_ahead: self.lower_ttl_ahead.clone().or(d.lower_ttl_ahead),
            low_ttl: self.low_ttl.or(d.low_ttl),
            force: self.force.or(d.force),
        }
    }
}

/// The default `cutover.lower_ttl_ahead`: one day, the longest TTL commonly set on MX records.
pub const DEFAULT_LOWER_TTL_AHEAD: u64 = 86_400;
/// The default `cutover.low_ttl`, in seconds.
pub const DEFAULT_LOW_TTL: u32 = 300;

impl Domain {
    /// The cutover settings in force for this domain (its own over the plan's).
    pub fn cutover_settings(&self, plan: &Plan) -> Cutover {
        match &self.cutover {
            Some(c) => c.over(plan.cutover.as_ref()),
            None => plan.cutover.clone().unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DomainMode {
    Authoritative,
    NonAuthoritative,
}

/// One mailbox to move.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// The address that moves, e.g. `john@example.com`.
    pub address: String,
    /// Source platform (key of `platforms`).
    pub from: String,
    /// Destination platform (key of `platforms`).
    pub to: String,
    /// Provisional name given to the source account so the address can be created on the
    /// destination, e.g. `john.old@example.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rename_to: Option<String>,
    /// Once the account is cut over and a fresh comparison shows every message on the
    /// destination, reset the provisional (renamed) source account: this deletes what it still
    /// holds and frees the slot. Needs `rename_to`, `cut_over: true` and an OVHcloud source.
    #[serde(default, skip_serializing_if = "is_false")]
    pub reset_provisional: bool,
    /// How to log in to the source mailbox (IMAP and CardDAV/CalDAV). Not needed for a
    /// `files` platform.
    #[serde(default, skip_serializing_if = "Credentials::is_empty")]
    pub source: Credentials,
    /// How to log in to the destination mailbox (and the password to set when creating it).
    /// Not needed for a `files` platform.
    #[serde(default, skip_serializing_if = "Credentials::is_empty")]
    pub destination: Credentials,
    /// What to copy. Default: `[mail]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<Content>>,
    /// Which folders to copy, and where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folders: Option<FolderRules>,
    /// Which address books and calendars to copy, and where (contacts, calendars, tasks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collections: Option<CollectionRules>,
    /// Extra addresses delivering to this mailbox, recreated on the destination.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Forwarding of this mailbox's mail, recreated on the destination.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirections: Vec<Redirection>,
    /// Rights other accounts have on this mailbox, recreated on the destination.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delegations: Vec<Delegation>,
    /// Overrides of the plan's `options` for this account.
    #[serde(default, skip_serializing_if = "is_default")]
    pub options: MigrationOptions,
    /// Pause this account's copies: a copy under way stops at its next checkpoint, none
    /// starts, and setting it back to `false` (or removing it) resumes from where it stood.
    /// Its creation, rename and other API steps still run; steps that wait for the copy wait.
    #[serde(default, skip_serializing_if = "is_false")]
    pub paused: bool,
}

/// Login to one side of a migration. Exactly one of `password` and `oauth2_token`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// Login (IMAP, and CardDAV/CalDAV). Default: the account's address (the provisional one on a renamed source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    /// Password (LOGIN / AUTH=PLAIN), as a secret reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretRef>,
    /// OAuth2 access token (AUTH=XOAUTH2), as a secret reference: a fixed token, for a short
    /// run (they expire within the hour); `oauth2` obtains and refreshes them instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2_token: Option<SecretRef>,
    /// How to obtain OAuth2 access tokens for this side, overriding the platform's `oauth2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<OAuth2>,
}

impl Credentials {
    /// Nothing given: what a `files` platform's side says (or a side whose platform's
    /// `oauth2` logs every account in).
    pub fn is_empty(&self) -> bool {
        self.login.is_none()
            && self.password.is_none()
            && self.oauth2_token.is_none()
            && self.oauth2.is_none()
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Content {
    Mail,
    Contacts,
    Calendars,
    Tasks,
    /// Inbox rules (Sieve scripts over ManageSieve on IMAP platforms). Never in the default
    /// content: a rule acts on new mail, and while both mailboxes receive mail during a move,
    /// a forward or a redirect copied early would fire on both.
    Rules,
}

impl Content {
    pub fn as_str(self) -> &'static str {
        match self {
            Content::Mail => "mail",
            Content::Contacts => "contacts",
            Content::Calendars => "calendars",
            Content::Tasks => "tasks",
            Content::Rules => "rules",
        }
    }

    /// Copied by the CardDAV/CalDAV engine (contacts, calendars, tasks).
    pub fn is_dav(self) -> bool {
        matches!(
            self,
            Content::Contacts | Content::Calendars | Content::Tasks
        )
    }
}

/// Folder selection and mapping. Globs use `*` (any run of characters, including the
/// hierarchy separator) and `?`; names are written with `/` as separator whatever the server uses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FolderRules {
    /// Copy only folders matching one of these globs (default: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Skip folders matching one of these globs (applied after `include`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Explicit source folder → destination folder names, overriding special-use mapping.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub map: BTreeMap<String, String>,
}

/// Address book and calendar selection and mapping. A collection is named by the last segment
/// of its URL (`work` for `/alice/work/`; the file's path without extension for `files`) and
/// matched by that name or by its display name; globs use `*` and `?`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectionRules {
    /// Copy only collections matching one of these globs (default: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Skip collections matching one of these globs (applied after `include`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Source collection → destination collection names (created when missing).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub map: BTreeMap<String, String>,
}

/// A forwarding of the account's mail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Redirection {
    /// Address mail is forwarded to.
    pub to: String,
    /// Keep a copy in the mailbox too. Default: true.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub local_copy: bool,
}

/// Rights another account has on this mailbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Delegation {
    /// The account receiving the rights (an address on the destination platform).
    pub grantee: String,
    /// The rights granted.
    pub rights: Vec<Right>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Right {
    SendAs,
    SendOnBehalf,
    FullAccess,
}

impl Right {
    pub fn as_str(self) -> &'static str {
        match self {
            Right::SendAs => "send-as",
            Right::SendOnBehalf => "send-on-behalf",
            Right::FullAccess => "full-access",
        }
    }
}

/// How an account's content is copied. Every field is optional: unset fields fall back to
/// the plan's `options`, then to the built-in default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrationOptions {
    /// Accounts migrated at once (plan-level only). Default 16; their copies also wait for a
    /// connection from their servers' budgets (`limits.server_connections`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_accounts: Option<u32>,
    /// IMAP connections per account and side. Default 4 (servers cap them, e.g. Dovecot 10, Gmail 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections_per_account: Option<u32>,
    /// Skip (and report) messages larger than this, e.g. `35MB`, `512KiB`, or bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_size: Option<ByteSize>,
    /// Copy only messages received on or after this date (`YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Date>,
    /// Copy only messages received before this date (`YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Date>,
    /// Copy the newest messages first (useful with `max_items`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_first: Option<bool>,
    /// Copy at most this many messages per account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<u64>,
    /// How often watch mode re-syncs mail, e.g. `15m`, `1h`, `90s`. Default `15m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_interval: Option<Interval>,
    /// The account has been cut over: incremental sync stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_over: Option<bool>,
    /// From Gmail: the folder that receives archived mail (in `All Mail` with no label).
    /// Default `Archive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gmail_archive_folder: Option<String>,
    /// Before the first copy into a destination folder the state knows nothing of, match what
    /// it already holds (a lost state, another tool's partial copy) against the source and
    /// adopt those messages instead of copying them again. Default true. `false` says the
    /// destination is empty: a folder that is not is then an error, never a silent duplicate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopt_existing: Option<bool>,
    /// What becomes of an event's attendees written to Microsoft 365, where Microsoft Graph
    /// invites every attendee of an event it creates (nothing turns that off). Default
    /// `keep-without-invitations`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar_attendees: Option<CalendarAttendees>,
}

/// What becomes of an event's attendees on a destination that would invite them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CalendarAttendees {
    /// Write the event without attendees (nobody is invited); list them in the event's text
    /// and keep them in a hidden property, from which a copy out of Microsoft 365 restores them.
    KeepWithoutInvitations,
    /// Write the event without attendees and without a trace of them.
    Drop,
    /// Write the attendees: Microsoft 365 sends each one an invitation.
    Send,
}

/// A distribution group (mailing list) on a platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// The group's address.
    pub address: String,
    /// Platform (key of `platforms`) the group is created on.
    pub platform: String,
    /// Name shown in address books.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Member addresses (accounts or external contacts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    /// Addresses allowed to manage the group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<String>,
}

/// A contact outside the organization, shown in the platform's address book.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExternalContact {
    /// The contact's (external) address.
    pub address: String,
    /// Platform (key of `platforms`) the contact is created on.
    pub platform: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Hide the contact from the global address list.
    #[serde(default, skip_serializing_if = "is_false")]
    pub hidden: bool,
}

/// A footer (disclaimer) added to mail sent from a domain. Exactly one of `text` and `html`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Footer {
    /// The domain whose outgoing mail gets the footer.
    pub domain: String,
    /// Platform (key of `platforms`) the footer is set on.
    pub platform: String,
    /// Plain-text footer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// HTML footer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// Add the footer only to mail leaving the organization.
    #[serde(default, skip_serializing_if = "is_false")]
    pub outside_only: bool,
}

fn default_true() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_default<T: Default + PartialEq>(t: &T) -> bool {
    *t == T::default()
}
