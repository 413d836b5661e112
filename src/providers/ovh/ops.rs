//! The migration steps as OVHcloud API calls, one service at a time.
//!
//! Every operation reads first and writes only what differs, so running it again after a crash
//! (or after a retried POST that had in fact landed) converges instead of failing or
//! duplicating. Exchange, Email Pro and the newer MX Plan API share one shape under different
//! roots; the legacy MX Plan API (`/email/domain/{domain}`) differs and is handled apart.
//! Paths and bodies follow the published schema (`crates/ovh-sim/src/api-schema/`); the
//! conformance test checks every call made here against it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::client::{Auth, OvhClient};
use super::error::OvhError;
use super::task::{Task, TaskOutcome, wait_task};
use crate::plan::model::{DomainMode, MxPlanApi, Platform, PlatformKind, Right};

/// Which API family a platform's service lives on, with its identifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Family {
    Exchange {
        organization: String,
        service: String,
    },
    EmailPro {
        service: String,
    },
    MxPlan {
        service: String,
    },
    /// Legacy MX Plan: the service is the domain.
    Legacy {
        domain: String,
    },
}

impl Family {
    /// The API family and service of a plan's platform (`name` is its key, for errors).
    pub fn of(name: &str, p: &Platform) -> Result<Family, String> {
        let service = p
            .service
            .clone()
            .ok_or_else(|| format!("platform `{name}` has no `service`"))?;
        Ok(match p.kind {
            PlatformKind::OvhExchange => Family::Exchange {
                organization: p
                    .organization
                    .clone()
                    .ok_or_else(|| format!("platform `{name}` has no `organization`"))?,
                service,
            },
            PlatformKind::OvhEmailPro => Family::EmailPro { service },
            PlatformKind::OvhMxPlan => match crate::model::capabilities::mx_plan_api(p) {
                MxPlanApi::Mxplan => Family::MxPlan { service },
                MxPlanApi::Legacy => Family::Legacy { domain: service },
            },
            PlatformKind::Imap => {
                return Err(format!("platform `{name}` is plain IMAP: it has no API"));
            }
        })
    }

    /// The service's path under the API root.
    pub fn root(&self) -> String {
        match self {
            Family::Exchange {
                organization,
                service,
            } => format!(
                "/email/exchange/{}/service/{}",
                seg(organization),
                seg(service)
            ),
            Family::EmailPro { service } => format!("/email/pro/{}", seg(service)),
            Family::MxPlan { service } => format!("/email/mxplan/{}", seg(service)),
            Family::Legacy { domain } => format!("/email/domain/{}", seg(domain)),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Family::Exchange { .. } => "Exchange",
            Family::EmailPro { .. } => "Email Pro",
            Family::MxPlan { .. } => "MX Plan",
            Family::Legacy { .. } => "MX Plan (legacy API)",
        }
    }
}

/// How long to wait for OVHcloud's asynchronous work, and how often to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub poll: Duration,
    pub deadline: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        // The control panel re-reads every 5 s; most tasks finish within a minute, account
        // configuration on a busy Exchange cluster can take many.
        Timing {
            poll: Duration::from_secs(5),
            deadline: Duration::from_secs(30 * 60),
        }
    }
}

/// What an operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Whether any write call was made.
    pub wrote: bool,
    /// One line for the step's result.
    pub detail: String,
}

impl Applied {
    pub fn unchanged(detail: impl Into<String>) -> Applied {
        Applied {
            wrote: false,
            detail: detail.into(),
        }
    }
    pub fn changed(detail: impl Into<String>) -> Applied {
        Applied {
            wrote: true,
            detail: detail.into(),
        }
    }
}

/// A domain's DNS diagnostics as the platform sees them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DnsDiagnostics {
    pub mx_valid: Option<bool>,
    pub spf_valid: Option<bool>,
    pub srv_valid: Option<bool>,
    pub mx_records: Vec<String>,
    pub expected_mx: Vec<String>,
}

impl DnsDiagnostics {
    pub fn summary(&self) -> String {
        let word = |v: Option<bool>| match v {
            Some(true) => "valid",
            Some(false) => "not valid",
            None => "not reported",
        };
        let mut s = format!(
            "MX {}, SPF {}, autodiscover SRV {}",
            word(self.mx_valid),
            word(self.spf_valid),
            word(self.srv_valid)
        );
        if self.mx_valid == Some(false) && !self.expected_mx.is_empty() {
            s.push_str(&format!(
                " (MX is {}; expected {})",
                if self.mx_records.is_empty() {
                    "unset".to_string()
                } else {
                    self.mx_records.join(", ")
                },
                self.expected_mx.join(", ")
            ));
        }
        s
    }
}

/// A group as the plan wants it on a platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    pub address: String,
    pub display_name: Option<String>,
    pub members: Vec<String>,
    pub owners: Vec<String>,
}

/// An external contact as the plan wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactSpec {
    pub address: String,
    pub display_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub hidden: bool,
}

/// What the search for a free pre-ordered account found.
/// What [`Service::create`] found or did.
#[derive(Debug)]
pub enum Created {
    /// Made (or its interrupted configuration finished) by this call, with the password.
    Made(Applied),
    /// The address existed already; its password was not touched.
    Exists,
}

enum Slot {
    Free(String),
    /// None is needed: an interrupted run's configuration has just finished as this address.
    Ours,
}

/// One OVHcloud email service (an Exchange service, an Email Pro service, an MX Plan).
pub struct Service {
    client: Arc<OvhClient>,
    family: Family,
    timing: Timing,
    writes: AtomicU64,
    /// Held while a free placeholder is picked and configured: two accounts created at once
    /// must not both pick the same one.
    claim: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("family", &self.family)
            .finish_non_exhaustive()
    }
}

/// Percent-encodes one path segment. `@` stays: addresses are path segments here and the API
/// documents them unencoded.
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn split_address(address: &str) -> Result<(&str, &str), OvhError> {
    address
        .split_once('@')
        .ok_or_else(|| OvhError::Refused(format!("{address} is not an email address")))
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn eq_opt(have: Option<&str>, want: Option<&str>) -> bool {
    have.unwrap_or("") == want.unwrap_or("")
}

fn is_settled(v: &Value) -> bool {
    let state_ok = v
        .get("state")
        .and_then(Value::as_str)
        .is_none_or(|s| s == "ok");
    let pending = v
        .get("taskPendingId")
        .is_some_and(|p| !p.is_null() && p.as_u64() != Some(0));
    state_ok && !pending
}

/// OVHcloud disclaimers are HTML; a plain-text footer is escaped and its line breaks kept.
pub fn footer_html(text: Option<&str>, html: Option<&str>) -> String {
    if let Some(h) = html {
        return h.to_string();
    }
    let text = text.unwrap_or("");
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            out.push_str("<br>\n");
        }
        for c in line.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' => out.push_str("&quot;"),
                c => out.push(c),
            }
        }
    }
    out
}

impl Service {
    pub fn new(client: Arc<OvhClient>, family: Family, timing: Timing) -> Service {
        Service {
            client,
            family,
            timing,
            writes: AtomicU64::new(0),
            claim: tokio::sync::Mutex::new(()),
        }
    }

    pub fn family(&self) -> &Family {
        &self.family
    }

    /// Write calls made so far (a re-run with nothing to do must make none).
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    fn root(&self) -> String {
        self.family.root()
    }

    fn account_path(&self, address: &str) -> String {
        format!("{}/account/{}", self.root(), seg(address))
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, OvhError> {
        self.client.get(path, None).await
    }

    /// GET that maps 404 to `None`.
    async fn get_opt(&self, path: &str) -> Result<Option<Value>, OvhError> {
        match self.client.get::<Value>(path, None).await {
            Ok(v) => Ok(Some(v)),
            Err(OvhError::Api(e)) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn write<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, OvhError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.client
            .call(method, path, body.as_ref(), Auth::Signed)
            .await
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.timing.deadline
    }

    /// A write answered with a task; waits for it to finish.
    async fn task_write(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(), OvhError> {
        let task: Task = self.write(method, path, body).await?;
        let task_path = format!("{}/task/{}", self.root(), task.id);
        match wait_task(
            &self.client,
            &task_path,
            self.deadline(),
            self.timing.poll,
            |_| {},
        )
        .await?
        {
            // A purged task says nothing: callers re-read the object they changed.
            TaskOutcome::Done(_) | TaskOutcome::Gone => Ok(()),
        }
    }

    /// Polls an object until it exists and has settled (`state` ok, no pending task).
    async fn settled(&self, path: &str) -> Result<Value, OvhError> {
        let started = Instant::now();
        let deadline = self.deadline();
        loop {
            let last = match self.get_opt(path).await? {
                Some(v) if is_settled(&v) => return Ok(v),
                Some(v) => format!(
                    "state {}, taskPendingId {}",
                    str_field(&v, "state").unwrap_or("missing"),
                    v.get("taskPendingId").unwrap_or(&Value::Null)
                ),
                None => "not found yet".to_string(),
            };
            if Instant::now() >= deadline {
                return Err(OvhError::Timeout {
                    path: path.to_string(),
                    waited: started.elapsed(),
                    last,
                });
            }
            tokio::time::sleep(self.timing.poll).await;
        }
    }

    /// Like [`Service::settled`], but an object that disappears meanwhile (a pending rename
    /// finishing) ends the wait with `None`.
    async fn settled_or_gone(&self, path: &str) -> Result<Option<Value>, OvhError> {
        let started = Instant::now();
        let deadline = self.deadline();
        loop {
            let v = match self.get_opt(path).await? {
                None => return Ok(None),
                Some(v) if is_settled(&v) => return Ok(Some(v)),
                Some(v) => v,
            };
            if Instant::now() >= deadline {
                return Err(OvhError::Timeout {
                    path: path.to_string(),
                    waited: started.elapsed(),
                    last: format!("state {}", str_field(&v, "state").unwrap_or("missing")),
                });
            }
            tokio::time::sleep(self.timing.poll).await;
        }
    }

    /// Polls until an object is gone (404).
    async fn gone(&self, path: &str) -> Result<(), OvhError> {
        let started = Instant::now();
        let deadline = self.deadline();
        while self.get_opt(path).await?.is_some() {
            if Instant::now() >= deadline {
                return Err(OvhError::Timeout {
                    path: path.to_string(),
                    waited: started.elapsed(),
                    last: "still present".to_string(),
                });
            }
            tokio::time::sleep(self.timing.poll).await;
        }
        Ok(())
    }

    /// After a PUT that changes an account's address: waits until the new address has settled.
    /// If the old one settles again while the new one is still missing, the platform's task
    /// failed and nothing changed.
    async fn moved(&self, old: &str, new: &str, what: &str) -> Result<Value, OvhError> {
        let started = Instant::now();
        let deadline = self.deadline();
        loop {
            if let Some(v) = self.get_opt(new).await?
                && is_settled(&v)
            {
                return Ok(v);
            }
            if started.elapsed() >= self.timing.poll
                && let Some(v) = self.get_opt(old).await?
                && is_settled(&v)
                && self.get_opt(new).await?.is_none()
            {
                return Err(OvhError::NotApplied(format!(
                    "the platform did not apply {what} (its task ended without the change); run apply again"
                )));
            }
            if Instant::now() >= deadline {
                return Err(OvhError::Timeout {
                    path: new.to_string(),
                    waited: started.elapsed(),
                    last: "not found yet".to_string(),
                });
            }
            tokio::time::sleep(self.timing.poll).await;
        }
    }

    /// A legacy MX Plan write: its answer is a task with no status, which vanishes once
    /// finished (done or failed alike, so callers check the effect themselves).
    async fn legacy_write(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        kind: &str,
    ) -> Result<(), OvhError> {
        let task: Value = self.write(method, path, body).await?;
        let id = match task.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Ok(()),
        };
        self.gone(&format!("{}/task/{kind}/{}", self.root(), seg(&id)))
            .await
    }

    fn legacy_name<'a>(&self, address: &'a str) -> Result<&'a str, OvhError> {
        let (local, domain) = split_address(address)?;
        match &self.family {
            Family::Legacy { domain: d } if !d.eq_ignore_ascii_case(domain) => {
                Err(OvhError::Refused(format!(
                    "{address} is not on the MX Plan domain {d}: each legacy MX Plan platform serves one domain"
                )))
            }
            _ => Ok(local),
        }
    }

    fn legacy_account_path(&self, address: &str) -> Result<String, OvhError> {
        Ok(format!(
            "{}/account/{}",
            self.root(),
            seg(self.legacy_name(address)?)
        ))
    }

    fn unsupported(&self, what: &str) -> OvhError {
        OvhError::Refused(format!(
            "{} has no API for {what}: do it in the control panel (the plan should list it as a manual step)",
            self.family.name()
        ))
    }

    // ---- reads -------------------------------------------------------------------------

    /// The account at `address`, if any (`None` also for a legacy account that does not exist).
    pub async fn account(&self, address: &str) -> Result<Option<Value>, OvhError> {
        let path = match self.family {
            Family::Legacy { .. } => self.legacy_account_path(address)?,
            _ => self.account_path(address),
        };
        self.get_opt(&path).await
    }

    /// Bytes used by the mailbox, as the platform reports it.
    pub async fn mailbox_usage(&self, address: &str) -> Result<Option<u64>, OvhError> {
        if let Family::Legacy { .. } = self.family {
            let path = format!("{}/usage", self.legacy_account_path(address)?);
            return Ok(self
                .get_opt(&path)
                .await?
                .and_then(|u| u.get("quota").and_then(Value::as_u64)));
        }
        Ok(self
            .account(address)
            .await?
            .and_then(|a| a.get("currentUsage").and_then(Value::as_u64)))
    }

    async fn account_id(&self, address: &str, role: &str) -> Result<u64, OvhError> {
        let account = self.account(address).await?.ok_or_else(|| {
            OvhError::Refused(format!(
                "{role} {address} has no account on this {} service: create it first (or add it to the plan's accounts)",
                self.family.name()
            ))
        })?;
        account.get("id").and_then(Value::as_u64).ok_or_else(|| {
            OvhError::Refused(format!("the API shows no id for the account {address}"))
        })
    }

    // ---- domains -----------------------------------------------------------------------

    pub async fn domain(&self, name: &str) -> Result<Option<Value>, OvhError> {
        match self.family {
            Family::Legacy { .. } => self.get_opt(&self.root()).await,
            _ => {
                self.get_opt(&format!("{}/domain/{}", self.root(), seg(name)))
                    .await
            }
        }
    }

    fn domain_matches(d: &Value, mode: DomainMode, relay: Option<&str>) -> bool {
        let want = match mode {
            DomainMode::Authoritative => "authoritative",
            DomainMode::NonAuthoritative => "nonAuthoritative",
        };
        str_field(d, "type") == Some(want)
            && (mode == DomainMode::Authoritative
                || str_field(d, "mxRelay")
                    .unwrap_or("")
                    .eq_ignore_ascii_case(relay.unwrap_or("")))
    }

    /// Attaches the domain in the given mode, or switches its mode.
    pub async fn ensure_domain(
        &self,
        name: &str,
        mode: DomainMode,
        relay: Option<&str>,
    ) -> Result<Applied, OvhError> {
        if let Family::Legacy { .. } = self.family {
            return Ok(Applied::unchanged("the legacy MX Plan domain is fixed"));
        }
        let path = format!("{}/domain/{}", self.root(), seg(name));
        let kind = match mode {
            DomainMode::Authoritative => "authoritative",
            DomainMode::NonAuthoritative => "nonAuthoritative",
        };
        let mut body = json!({ "type": kind });
        if mode == DomainMode::NonAuthoritative {
            body["mxRelay"] = json!(relay.unwrap_or_default());
        }
        let shown = match mode {
            DomainMode::Authoritative => "authoritative".to_string(),
            DomainMode::NonAuthoritative => {
                format!("non-authoritative, relay {}", relay.unwrap_or("?"))
            }
        };
        match self.get_opt(&path).await? {
            None => {
                if let Family::MxPlan { .. } = self.family {
                    return Err(OvhError::Refused(format!(
                        "{name} is not this MX Plan service's domain: an MX Plan serves one fixed domain, so point the plan's domain at the right platform"
                    )));
                }
                body["name"] = json!(name);
                // mailshift never lets the platform rewrite DNS: during a move the MX must keep
                // pointing where mail is read until the person doing the cutover decides.
                body["configureMx"] = json!(false);
                body["configureAutodiscover"] = json!(false);
                body["configureSPF"] = json!(false);
                let posted = self
                    .task_write(Method::POST, &format!("{}/domain", self.root()), Some(body))
                    .await;
                if let Err(e) = posted {
                    // A retried POST may have landed the first time.
                    match self.get_opt(&path).await? {
                        Some(d) if Self::domain_matches(&d, mode, relay) => {}
                        _ => return Err(e),
                    }
                }
                self.settled(&path).await?;
                Ok(Applied::changed(format!("attached {name} ({shown})")))
            }
            Some(d) if Self::domain_matches(&d, mode, relay) => {
                Ok(Applied::unchanged(format!("{name} already {shown}")))
            }
            Some(_) => {
                self.settled(&path).await?;
                self.write::<Value>(Method::PUT, &path, Some(body)).await?;
                let d = self.settled(&path).await?;
                if !Self::domain_matches(&d, mode, relay) {
                    return Err(OvhError::NotApplied(format!(
                        "the platform did not switch {name} to {shown}"
                    )));
                }
                Ok(Applied::changed(format!("switched {name} to {shown}")))
            }
        }
    }

    /// DNS diagnostics of a domain attached to this service.
    pub async fn dns(&self, name: &str) -> Result<DnsDiagnostics, OvhError> {
        let d = self
            .domain(name)
            .await?
            .ok_or_else(|| OvhError::Refused(format!("{name} is not attached to this service")))?;
        let strings = |key: &str| -> Vec<String> {
            d.get(key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let flag = |key: &str| -> Option<bool> {
            match d.get(key)? {
                Value::Bool(b) => Some(*b),
                Value::String(s) => Some(s == "valid"),
                _ => None,
            }
        };
        Ok(match self.family {
            Family::Legacy { .. } => DnsDiagnostics {
                mx_valid: flag("isMXValid"),
                spf_valid: flag("isSPFValid"),
                ..Default::default()
            },
            _ => DnsDiagnostics {
                mx_valid: flag("mxIsValid"),
                spf_valid: flag("spfIsValid"),
                srv_valid: flag("srvIsValid"),
                mx_records: strings("mxRecord"),
                expected_mx: strings("expectedMX"),
            },
        })
    }

    // ---- accounts ----------------------------------------------------------------------

    /// Renames `from` to `to` (a PUT of login and domain; the account keeps its id and mail).
    pub async fn rename(&self, from: &str, to: &str) -> Result<Applied, OvhError> {
        if let Family::Legacy { .. } = self.family {
            return Err(OvhError::Refused(
                "legacy MX Plan accounts cannot be renamed (the account name is read-only)".into(),
            ));
        }
        let (login, domain) = split_address(to)?;
        let old = self.account(from).await?;
        let new = self.account(to).await?;
        match (old, new) {
            (None, Some(_)) => Ok(Applied::unchanged(format!("{from} is already {to}"))),
            (Some(_), Some(_)) => Err(OvhError::Refused(format!(
                "cannot rename {from} to {to}: {to} is already used by another account; choose another `rename_to`"
            ))),
            (None, None) => Err(OvhError::Refused(format!(
                "cannot rename {from}: no such account on this {} service (check the address and the platform's service)",
                self.family.name()
            ))),
            (Some(_), None) => {
                let path = self.account_path(from);
                // A rename left pending by an interrupted run may finish while we wait.
                if self.settled_or_gone(&path).await?.is_none() {
                    return match self.account(to).await? {
                        Some(_) => Ok(Applied::unchanged(format!("{from} is already {to}"))),
                        None => Err(OvhError::Refused(format!(
                            "{from} disappeared while waiting to rename it; check the account in the control panel"
                        ))),
                    };
                }
                self.write::<Value>(
                    Method::PUT,
                    &path,
                    Some(json!({ "login": login, "domain": domain })),
                )
                .await?;
                // Usable once the new address answers with a settled state.
                let what = format!("the rename of {from} to {to}");
                self.moved(&path, &self.account_path(to), &what).await?;
                Ok(Applied::changed(format!("renamed {from} to {to}")))
            }
        }
    }

    /// Makes the account exist with this password. Where the platform pre-provisions accounts
    /// (`…@configureme.me` placeholders) a free one is configured; Exchange dedicated and
    /// provider offers and legacy MX Plan create one. `before_writing` runs right before the
    /// write that makes the account, so the caller can record that it is making it.
    ///
    /// An address that exists already is [`Created::Exists`]: its password may be one the user
    /// chose since, which only the caller can tell (and it is the one write that would undo a
    /// person's change), so it is left alone.
    pub async fn create(
        &self,
        address: &str,
        password: &str,
        display_name: Option<&str>,
        before_writing: &(dyn Fn() -> Result<(), OvhError> + Sync),
    ) -> Result<Created, OvhError> {
        let (login, domain) = split_address(address)?;
        if let Family::Legacy { .. } = self.family {
            return self.legacy_create(address, password, before_writing).await;
        }
        let path = self.account_path(address);
        let detail = match self.account(address).await? {
            Some(_) => return Ok(Created::Exists),
            None => {
                let posts = match &self.family {
                    Family::Exchange { .. } => {
                        let svc: Value = self.get(&self.root()).await?;
                        str_field(&svc, "offer").is_some_and(|o| o != "hosted")
                    }
                    _ => false,
                };
                if posts {
                    let mut body = json!({
                        "login": login, "domain": domain, "password": password, "license": "standard",
                    });
                    if let Some(n) = display_name {
                        body["displayName"] = json!(n);
                    }
                    before_writing()?;
                    let posted = self
                        .task_write(
                            Method::POST,
                            &format!("{}/account", self.root()),
                            Some(body),
                        )
                        .await;
                    if let Err(e) = posted
                        && self.account(address).await?.is_none()
                    {
                        return Err(e);
                    }
                    self.settled(&path).await?;
                    // The POST carried the password.
                    return Ok(Created::Made(Applied::changed(format!(
                        "created {address}"
                    ))));
                }
                let _claim = self.claim.lock().await;
                let placeholder = match self.free_placeholder(address).await? {
                    Slot::Free(p) => p,
                    Slot::Ours => {
                        self.settled(&path).await?;
                        self.set_password(address, password).await?;
                        return Ok(Created::Made(Applied::changed(format!(
                            "{address} exists (configured by an interrupted run), password set"
                        ))));
                    }
                };
                let mut body = json!({ "login": login, "domain": domain });
                if let Some(n) = display_name {
                    body["displayName"] = json!(n);
                }
                let placeholder_path = self.account_path(&placeholder);
                before_writing()?;
                self.write::<Value>(Method::PUT, &placeholder_path, Some(body))
                    .await?;
                let what = format!("the configuration of {placeholder} as {address}");
                self.moved(&placeholder_path, &path, &what).await?;
                format!("configured {placeholder} as {address}")
            }
        };
        self.set_password(address, password).await?;
        Ok(Created::Made(Applied::changed(format!(
            "{detail}, password set"
        ))))
    }

    async fn free_placeholder(&self, address: &str) -> Result<Slot, OvhError> {
        let list: Vec<String> = self
            .get(&format!(
                "{}/account?primaryEmailAddress=%25configureme.me%25",
                self.root()
            ))
            .await?;
        let mut list = list;
        list.sort();
        for candidate in list {
            let Some(mut a) = self.account(&candidate).await? else {
                continue;
            };
            if !is_settled(&a) {
                // Left pending by an interrupted run: it may be becoming this very address.
                match self.settled_or_gone(&self.account_path(&candidate)).await? {
                    Some(settled) => a = settled,
                    None if self.account(address).await?.is_some() => return Ok(Slot::Ours),
                    None => continue,
                }
            }
            if a.get("configured").and_then(Value::as_bool) == Some(false) {
                return Ok(Slot::Free(candidate));
            }
        }
        Err(OvhError::Limit(format!(
            "no free account left on this {} service: order more accounts in the OVHcloud Control Panel (Web Cloud > Emails > the service > Email accounts > Order accounts), then run apply again",
            self.family.name()
        )))
    }

    /// Sets an account's password. A freshly configured account refuses it for a moment, so
    /// a refusal is retried a few times, one poll interval apart.
    pub async fn set_password(&self, address: &str, password: &str) -> Result<(), OvhError> {
        let path = match self.family {
            Family::Legacy { .. } => {
                format!("{}/changePassword", self.legacy_account_path(address)?)
            }
            _ => format!("{}/changePassword", self.account_path(address)),
        };
        let body = json!({ "password": password });
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = match self.family {
                Family::Legacy { .. } => {
                    self.legacy_write(Method::POST, &path, Some(body.clone()), "account")
                        .await
                }
                _ => {
                    self.task_write(Method::POST, &path, Some(body.clone()))
                        .await
                }
            };
            match result {
                Ok(()) => return Ok(()),
                Err(OvhError::Api(e))
                    if attempt < 10 && (e.status == 400 || e.status == 409 || e.status == 404) =>
                {
                    tokio::time::sleep(self.timing.poll.max(Duration::from_millis(200))).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn legacy_create(
        &self,
        address: &str,
        password: &str,
        before_writing: &(dyn Fn() -> Result<(), OvhError> + Sync),
    ) -> Result<Created, OvhError> {
        let name = self.legacy_name(address)?;
        if self.account(address).await?.is_some() {
            return Ok(Created::Exists);
        }
        let service: Value = self.get(&self.root()).await?;
        let size = service
            .get("allowedAccountSize")
            .and_then(Value::as_array)
            .and_then(|sizes| sizes.iter().filter_map(Value::as_u64).max());
        let mut body = json!({ "accountName": name, "password": password });
        if let Some(size) = size {
            body["size"] = json!(size);
        }
        before_writing()?;
        let posted = self
            .legacy_write(
                Method::POST,
                &format!("{}/account", self.root()),
                Some(body),
                "account",
            )
            .await;
        if let Err(e) = posted
            && self.account(address).await?.is_none()
        {
            return Err(e);
        }
        if self.account(address).await?.is_none() {
            return Err(OvhError::NotApplied(format!(
                "the platform did not create {address}"
            )));
        }
        Ok(Created::Made(Applied::changed(format!(
            "created {address}"
        ))))
    }

    /// Deletes an account (hosted platforms reset it to a free placeholder).
    pub async fn reset(&self, address: &str) -> Result<Applied, OvhError> {
        if self.account(address).await?.is_none() {
            return Ok(Applied::unchanged(format!("{address} no longer exists")));
        }
        match self.family {
            Family::Legacy { .. } => {
                let path = self.legacy_account_path(address)?;
                self.legacy_write(Method::DELETE, &path, None, "account")
                    .await?;
                if self.get_opt(&path).await?.is_some() {
                    return Err(OvhError::NotApplied(format!(
                        "the platform did not delete {address}; run apply again"
                    )));
                }
            }
            _ => {
                let path = self.account_path(address);
                self.settled(&path).await?;
                self.task_write(Method::DELETE, &path, None).await?;
                self.gone(&path).await?;
            }
        }
        Ok(Applied::changed(format!("reset {address}")))
    }

    // ---- aliases -----------------------------------------------------------------------

    pub async fn aliases(&self, address: &str) -> Result<Vec<String>, OvhError> {
        if let Family::Legacy { .. } = self.family {
            return Err(self.unsupported("aliases"));
        }
        let list: Vec<String> = self
            .get(&format!("{}/alias", self.account_path(address)))
            .await?;
        Ok(list.into_iter().map(|a| a.to_ascii_lowercase()).collect())
    }

    pub async fn ensure_alias(&self, address: &str, alias: &str) -> Result<Applied, OvhError> {
        if self.aliases(address).await?.iter().any(|a| a == alias) {
            return Ok(Applied::unchanged(format!(
                "{alias} already routes to {address}"
            )));
        }
        let path = format!("{}/alias", self.account_path(address));
        let posted = self
            .task_write(Method::POST, &path, Some(json!({ "alias": alias })))
            .await;
        if let Err(e) = posted
            && !self.aliases(address).await?.iter().any(|a| a == alias)
        {
            return Err(e);
        }
        Ok(Applied::changed(format!(
            "added alias {alias} to {address}"
        )))
    }

    pub async fn delete_alias(&self, address: &str, alias: &str) -> Result<Applied, OvhError> {
        if self.account(address).await?.is_none()
            || !self.aliases(address).await?.iter().any(|a| a == alias)
        {
            return Ok(Applied::unchanged(format!("{alias} is not on {address}")));
        }
        let path = format!("{}/alias/{}", self.account_path(address), seg(alias));
        self.task_write(Method::DELETE, &path, None).await?;
        Ok(Applied::changed(format!(
            "removed alias {alias} from {address}"
        )))
    }

    // ---- redirections ------------------------------------------------------------------

    /// Whether `address` forwards to `to` (and with which local-copy setting).
    pub async fn redirection(&self, address: &str, to: &str) -> Result<Option<bool>, OvhError> {
        match self.family {
            Family::Exchange { .. } => {
                let Some(a) = self.account(address).await? else {
                    return Ok(None);
                };
                if str_field(&a, "forwardingEmail").is_some_and(|f| f.eq_ignore_ascii_case(to)) {
                    Ok(Some(
                        a.get("storeCopyOfEmail")
                            .and_then(Value::as_bool)
                            .unwrap_or(false),
                    ))
                } else {
                    Ok(None)
                }
            }
            Family::Legacy { .. } => Ok(self
                .legacy_redirections(address, to)
                .await?
                .first()
                .map(|_| true)),
            _ => Err(self.unsupported("redirections")),
        }
    }

    async fn legacy_redirections(&self, address: &str, to: &str) -> Result<Vec<String>, OvhError> {
        self.get(&format!(
            "{}/redirection?from={}&to={}",
            self.root(),
            seg(address),
            seg(to)
        ))
        .await
    }

    pub async fn ensure_redirection(
        &self,
        address: &str,
        to: &str,
        local_copy: bool,
    ) -> Result<Applied, OvhError> {
        let current = self.redirection(address, to).await?;
        match self.family {
            Family::Exchange { .. } => {
                if current == Some(local_copy) {
                    return Ok(Applied::unchanged(format!(
                        "{address} already forwards to {to}"
                    )));
                }
                let path = self.account_path(address);
                self.settled(&path).await?;
                self.write::<Value>(
                    Method::PUT,
                    &path,
                    Some(json!({ "forwardingEmail": to, "storeCopyOfEmail": local_copy })),
                )
                .await?;
                self.settled(&path).await?;
                if self.redirection(address, to).await? != Some(local_copy) {
                    return Err(OvhError::NotApplied(format!(
                        "the platform did not set the forwarding of {address}; run apply again"
                    )));
                }
            }
            _ => {
                if current.is_some() {
                    return Ok(Applied::unchanged(format!(
                        "{address} already forwards to {to}"
                    )));
                }
                let posted = self
                    .legacy_write(
                        Method::POST,
                        &format!("{}/redirection", self.root()),
                        Some(json!({ "from": address, "to": to, "localCopy": local_copy })),
                        "redirection",
                    )
                    .await;
                let landed = self.redirection(address, to).await?.is_some();
                match posted {
                    Err(e) if !landed => return Err(e),
                    Ok(()) if !landed => {
                        return Err(OvhError::NotApplied(format!(
                            "the platform did not create the redirection of {address} to {to}; run apply again"
                        )));
                    }
                    _ => {}
                }
            }
        }
        Ok(Applied::changed(format!("{address} now forwards to {to}")))
    }

    pub async fn delete_redirection(&self, address: &str, to: &str) -> Result<Applied, OvhError> {
        if self.redirection(address, to).await?.is_none() {
            return Ok(Applied::unchanged(format!(
                "{address} does not forward to {to}"
            )));
        }
        match self.family {
            Family::Exchange { .. } => {
                let path = self.account_path(address);
                self.settled(&path).await?;
                self.write::<Value>(
                    Method::PUT,
                    &path,
                    Some(json!({ "forwardingEmail": "", "storeCopyOfEmail": false })),
                )
                .await?;
                self.settled(&path).await?;
            }
            _ => {
                for id in self.legacy_redirections(address, to).await? {
                    self.legacy_write(
                        Method::DELETE,
                        &format!("{}/redirection/{}", self.root(), seg(&id)),
                        None,
                        "redirection",
                    )
                    .await?;
                }
            }
        }
        Ok(Applied::changed(format!(
            "{address} no longer forwards to {to}"
        )))
    }

    // ---- delegations -------------------------------------------------------------------

    fn right_paths(right: Right) -> (&'static str, &'static str) {
        match right {
            Right::SendAs => ("sendAs", "allowAccountId"),
            Right::SendOnBehalf => ("sendOnBehalfTo", "allowAccountId"),
            Right::FullAccess => ("fullAccess", "allowedAccountId"),
        }
    }

    const RIGHTS: [Right; 3] = [Right::SendAs, Right::SendOnBehalf, Right::FullAccess];

    /// The rights `grantee` holds on `address`.
    pub async fn delegation(
        &self,
        address: &str,
        grantee: &str,
    ) -> Result<BTreeSet<Right>, OvhError> {
        if let Family::Legacy { .. } = self.family {
            return Err(self.unsupported("delegations"));
        }
        let mut held = BTreeSet::new();
        if self.account(address).await?.is_none() {
            return Ok(held);
        }
        let Ok(id) = self.account_id(grantee, "grantee").await else {
            return Ok(held);
        };
        for right in Self::RIGHTS {
            let (list, _) = Self::right_paths(right);
            let ids: Vec<u64> = self
                .get(&format!("{}/{list}", self.account_path(address)))
                .await?;
            if ids.contains(&id) {
                held.insert(right);
            }
        }
        Ok(held)
    }

    /// Gives `grantee` exactly `rights` on `address` (rights not listed are taken away).
    pub async fn ensure_delegation(
        &self,
        address: &str,
        grantee: &str,
        rights: &BTreeSet<Right>,
    ) -> Result<Applied, OvhError> {
        let id = self.account_id(grantee, "grantee").await?;
        let held = self.delegation(address, grantee).await?;
        if &held == rights {
            return Ok(Applied::unchanged(format!(
                "{grantee} already has these rights on {address}"
            )));
        }
        for right in Self::RIGHTS {
            let (list, field) = Self::right_paths(right);
            let base = format!("{}/{list}", self.account_path(address));
            match (held.contains(&right), rights.contains(&right)) {
                (false, true) => {
                    let posted = self
                        .task_write(Method::POST, &base, Some(json!({ field: id })))
                        .await;
                    if let Err(e) = posted {
                        let ids: Vec<u64> = self.get(&base).await?;
                        if !ids.contains(&id) {
                            return Err(e);
                        }
                    }
                }
                (true, false) => {
                    self.task_write(Method::DELETE, &format!("{base}/{id}"), None)
                        .await?;
                }
                _ => {}
            }
        }
        Ok(Applied::changed(format!(
            "set {grantee}'s rights on {address}"
        )))
    }

    pub async fn delete_delegation(
        &self,
        address: &str,
        grantee: &str,
    ) -> Result<Applied, OvhError> {
        let held = self.delegation(address, grantee).await?;
        if held.is_empty() {
            return Ok(Applied::unchanged(format!(
                "{grantee} has no rights on {address}"
            )));
        }
        self.ensure_delegation(address, grantee, &BTreeSet::new())
            .await
            .map(|_| Applied::changed(format!("removed {grantee}'s rights on {address}")))
    }

    // ---- external contacts -------------------------------------------------------------

    fn contact_path(&self, address: &str) -> String {
        format!("{}/externalContact/{}", self.root(), seg(address))
    }

    pub async fn external_contact(&self, address: &str) -> Result<Option<Value>, OvhError> {
        if let Family::Legacy { .. } = self.family {
            return Err(self.unsupported("external contacts"));
        }
        self.get_opt(&self.contact_path(address)).await
    }

    fn contact_differs(c: &Value, spec: &ContactSpec) -> bool {
        !eq_opt(str_field(c, "displayName"), spec.display_name.as_deref())
            || !eq_opt(str_field(c, "firstName"), spec.first_name.as_deref())
            || !eq_opt(str_field(c, "lastName"), spec.last_name.as_deref())
            || c.get("hiddenFromGAL")
                .and_then(Value::as_bool)
                .unwrap_or(false)
                != spec.hidden
    }

    fn contact_body(spec: &ContactSpec) -> Value {
        let mut body = json!({ "hiddenFromGAL": spec.hidden });
        for (key, value) in [
            ("displayName", &spec.display_name),
            ("firstName", &spec.first_name),
            ("lastName", &spec.last_name),
        ] {
            if let Some(v) = value {
                body[key] = json!(v);
            }
        }
        body
    }

    pub async fn ensure_external_contact(&self, spec: &ContactSpec) -> Result<Applied, OvhError> {
        let path = self.contact_path(&spec.address);
        match self.external_contact(&spec.address).await? {
            Some(c) if !Self::contact_differs(&c, spec) => Ok(Applied::unchanged(format!(
                "contact {} is up to date",
                spec.address
            ))),
            Some(_) => {
                self.settled(&path).await?;
                self.write::<Value>(Method::PUT, &path, Some(Self::contact_body(spec)))
                    .await?;
                if Self::contact_differs(&self.settled(&path).await?, spec) {
                    return Err(OvhError::NotApplied(format!(
                        "the platform did not update the contact {}; run apply again",
                        spec.address
                    )));
                }
                Ok(Applied::changed(format!(
                    "updated contact {}",
                    spec.address
                )))
            }
            None => {
                let mut body = Self::contact_body(spec);
                body["externalEmailAddress"] = json!(spec.address);
                let posted = self
                    .task_write(
                        Method::POST,
                        &format!("{}/externalContact", self.root()),
                        Some(body),
                    )
                    .await;
                if let Err(e) = posted
                    && self.external_contact(&spec.address).await?.is_none()
                {
                    return Err(e);
                }
                self.settled(&path).await?;
                Ok(Applied::changed(format!("added contact {}", spec.address)))
            }
        }
    }

    pub async fn delete_external_contact(&self, address: &str) -> Result<Applied, OvhError> {
        if self.external_contact(address).await?.is_none() {
            return Ok(Applied::unchanged(format!(
                "contact {address} is not there"
            )));
        }
        let path = self.contact_path(address);
        self.settled(&path).await?;
        self.task_write(Method::DELETE, &path, None).await?;
        self.gone(&path).await?;
        Ok(Applied::changed(format!("removed contact {address}")))
    }

    // ---- footers -----------------------------------------------------------------------

    fn footer_path(&self, domain: &str) -> String {
        format!("{}/domain/{}/disclaimer", self.root(), seg(domain))
    }

    pub async fn footer(&self, domain: &str) -> Result<Option<Value>, OvhError> {
        if let Family::Legacy { .. } = self.family {
            return Err(self.unsupported("footers"));
        }
        self.get_opt(&self.footer_path(domain)).await
    }

    pub async fn ensure_footer(
        &self,
        domain: &str,
        content: &str,
        outside_only: bool,
    ) -> Result<Applied, OvhError> {
        let path = self.footer_path(domain);
        let body = json!({ "content": content, "outsideOnly": outside_only });
        match self.footer(domain).await? {
            Some(f)
                if str_field(&f, "content") == Some(content)
                    && f.get("outsideOnly")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                        == outside_only =>
            {
                Ok(Applied::unchanged(format!(
                    "footer of {domain} is up to date"
                )))
            }
            Some(_) => {
                self.settled(&path).await?;
                self.write::<Value>(Method::PUT, &path, Some(body)).await?;
                let now = self.settled(&path).await?;
                if str_field(&now, "content") != Some(content) {
                    return Err(OvhError::NotApplied(format!(
                        "the platform did not update the footer of {domain}; run apply again"
                    )));
                }
                Ok(Applied::changed(format!("updated the footer of {domain}")))
            }
            None => {
                let posted = self.task_write(Method::POST, &path, Some(body)).await;
                if let Err(e) = posted
                    && self.footer(domain).await?.is_none()
                {
                    return Err(e);
                }
                self.settled(&path).await?;
                Ok(Applied::changed(format!("set the footer of {domain}")))
            }
        }
    }

    pub async fn delete_footer(&self, domain: &str) -> Result<Applied, OvhError> {
        if self.footer(domain).await?.is_none() {
            return Ok(Applied::unchanged(format!("{domain} has no footer")));
        }
        let path = self.footer_path(domain);
        self.settled(&path).await?;
        self.task_write(Method::DELETE, &path, None).await?;
        self.gone(&path).await?;
        Ok(Applied::changed(format!("removed the footer of {domain}")))
    }

    // ---- groups ------------------------------------------------------------------------

    fn list_path(&self, address: &str) -> Result<String, OvhError> {
        match self.family {
            Family::Exchange { .. } => Ok(format!("{}/mailingList/{}", self.root(), seg(address))),
            Family::Legacy { .. } => Ok(format!(
                "{}/mailingList/{}",
                self.root(),
                seg(self.legacy_name(address)?)
            )),
            _ => Err(self.unsupported("groups")),
        }
    }

    /// The group's members and owners as the platform has them, or `None` if it does not exist.
    pub async fn group(&self, address: &str) -> Result<Option<GroupSpec>, OvhError> {
        let path = self.list_path(address)?;
        let Some(list) = self.get_opt(&path).await? else {
            return Ok(None);
        };
        let mut spec = GroupSpec {
            address: address.to_string(),
            display_name: str_field(&list, "displayName").map(str::to_string),
            members: Vec::new(),
            owners: Vec::new(),
        };
        match self.family {
            Family::Legacy { .. } => {
                let subs: Vec<String> = self.get(&format!("{path}/subscriber")).await?;
                let mods: Vec<String> = self.get(&format!("{path}/moderator")).await?;
                spec.members = lower_sorted(subs);
                let mut owners = mods;
                if let Some(o) = str_field(&list, "ownerEmail") {
                    owners.push(o.to_string());
                }
                spec.owners = lower_sorted(owners);
            }
            _ => {
                let accounts: Vec<u64> = self.get(&format!("{path}/member/account")).await?;
                let contacts: Vec<u64> = self.get(&format!("{path}/member/contact")).await?;
                let managers: Vec<u64> = self.get(&format!("{path}/manager/account")).await?;
                let mut members = Vec::new();
                for id in accounts {
                    members.push(self.account_address_by_id(id).await?);
                }
                for id in contacts {
                    members.push(self.contact_address_by_id(id).await?);
                }
                let mut owners = Vec::new();
                for id in managers {
                    owners.push(self.account_address_by_id(id).await?);
                }
                spec.members = lower_sorted(members);
                spec.owners = lower_sorted(owners);
            }
        }
        Ok(Some(spec))
    }

    async fn account_address_by_id(&self, id: u64) -> Result<String, OvhError> {
        let list: Vec<String> = self
            .get(&format!("{}/account?id={id}", self.root()))
            .await?;
        Ok(list
            .into_iter()
            .next()
            .unwrap_or_else(|| format!("account #{id}")))
    }

    async fn contact_address_by_id(&self, id: u64) -> Result<String, OvhError> {
        let list: Vec<String> = self
            .get(&format!("{}/externalContact?id={id}", self.root()))
            .await?;
        Ok(list
            .into_iter()
            .next()
            .unwrap_or_else(|| format!("contact #{id}")))
    }

    /// Makes the group exist with exactly the given members and owners.
    pub async fn ensure_group(&self, want: &GroupSpec) -> Result<Applied, OvhError> {
        let path = self.list_path(&want.address)?;
        let mut wrote = false;
        let have = match self.group(&want.address).await? {
            Some(g) => g,
            None => {
                wrote = true;
                self.create_group(want, &path).await?;
                self.group(&want.address).await?.ok_or_else(|| {
                    OvhError::NotApplied(format!("the platform did not create {}", want.address))
                })?
            }
        };
        let members = lower_sorted(want.members.clone());
        let owners = lower_sorted(want.owners.clone());
        if let Family::Legacy { .. } = self.family {
            for m in members.iter().filter(|m| !have.members.contains(m)) {
                wrote = true;
                self.legacy_list_write(
                    Method::POST,
                    &format!("{path}/subscriber"),
                    Some(json!({ "email": m })),
                    &want.address,
                )
                .await?;
            }
            for m in have.members.iter().filter(|m| !members.contains(m)) {
                wrote = true;
                self.legacy_list_write(
                    Method::DELETE,
                    &format!("{path}/subscriber/{}", seg(m)),
                    None,
                    &want.address,
                )
                .await?;
            }
            // The list's owner is fixed at creation; every other owner is a moderator.
            let list: Value = self.get(&path).await?;
            let owner = str_field(&list, "ownerEmail")
                .unwrap_or("")
                .to_ascii_lowercase();
            let mods: Vec<String> = self.get(&format!("{path}/moderator")).await?;
            let mods = lower_sorted(mods);
            for o in owners.iter().filter(|o| **o != owner && !mods.contains(o)) {
                wrote = true;
                self.legacy_list_write(
                    Method::POST,
                    &format!("{path}/moderator"),
                    Some(json!({ "email": o })),
                    &want.address,
                )
                .await?;
            }
            for m in mods.iter().filter(|m| !owners.contains(m)) {
                wrote = true;
                self.legacy_list_write(
                    Method::DELETE,
                    &format!("{path}/moderator/{}", seg(m)),
                    None,
                    &want.address,
                )
                .await?;
            }
        } else {
            if !eq_opt(have.display_name.as_deref(), want.display_name.as_deref())
                && want.display_name.is_some()
            {
                wrote = true;
                self.settled(&path).await?;
                self.write::<Value>(
                    Method::PUT,
                    &path,
                    Some(json!({ "displayName": want.display_name })),
                )
                .await?;
                self.settled(&path).await?;
            }
            for m in members.iter().filter(|m| !have.members.contains(m)) {
                wrote = true;
                match self.account(m).await? {
                    Some(a) => {
                        let id = a.get("id").and_then(Value::as_u64).unwrap_or(0);
                        self.task_write(
                            Method::POST,
                            &format!("{path}/member/account"),
                            Some(json!({ "memberAccountId": id })),
                        )
                        .await?;
                    }
                    None => {
                        let contact = self.external_contact(m).await?.ok_or_else(|| {
                            OvhError::Refused(format!(
                                "group member {m} is neither an account nor an external contact on this service: add it to the plan's `external_contacts` (or accounts)"
                            ))
                        })?;
                        let id = contact.get("id").and_then(Value::as_u64).unwrap_or(0);
                        self.task_write(
                            Method::POST,
                            &format!("{path}/member/contact"),
                            Some(json!({ "memberContactId": id })),
                        )
                        .await?;
                    }
                }
            }
            for m in have.members.iter().filter(|m| !members.contains(m)) {
                wrote = true;
                match self.account(m).await? {
                    Some(a) => {
                        let id = a.get("id").and_then(Value::as_u64).unwrap_or(0);
                        self.task_write(
                            Method::DELETE,
                            &format!("{path}/member/account/{id}"),
                            None,
                        )
                        .await?;
                    }
                    None => {
                        if let Some(c) = self.external_contact(m).await? {
                            let id = c.get("id").and_then(Value::as_u64).unwrap_or(0);
                            self.task_write(
                                Method::DELETE,
                                &format!("{path}/member/contact/{id}"),
                                None,
                            )
                            .await?;
                        }
                    }
                }
            }
            for o in owners.iter().filter(|o| !have.owners.contains(o)) {
                wrote = true;
                let id = self.account_id(o, "group owner").await?;
                self.task_write(
                    Method::POST,
                    &format!("{path}/manager/account"),
                    Some(json!({ "managerAccountId": id })),
                )
                .await?;
            }
            for o in have.owners.iter().filter(|o| !owners.contains(o)) {
                wrote = true;
                let id = self.account_id(o, "group owner").await?;
                self.task_write(
                    Method::DELETE,
                    &format!("{path}/manager/account/{id}"),
                    None,
                )
                .await?;
            }
        }
        Ok(if wrote {
            Applied::changed(format!("group {} set", want.address))
        } else {
            Applied::unchanged(format!("group {} is up to date", want.address))
        })
    }

    async fn create_group(&self, want: &GroupSpec, path: &str) -> Result<(), OvhError> {
        match self.family {
            Family::Legacy { .. } => {
                let owner = want.owners.first().or(want.members.first()).ok_or_else(|| {
                    OvhError::Refused(format!(
                        "a legacy MX Plan mailing list needs an owner: give the group {} an `owners` entry",
                        want.address
                    ))
                })?;
                let body = json!({
                    "name": self.legacy_name(&want.address)?,
                    "ownerEmail": owner,
                    "language": "en",
                    "options": { "moderatorMessage": false, "subscribeByModerator": true, "usersPostOnly": false },
                });
                self.legacy_list_write(
                    Method::POST,
                    &format!("{}/mailingList", self.root()),
                    Some(body),
                    &want.address,
                )
                .await
            }
            _ => {
                let mut body = json!({
                    "mailingListAddress": want.address,
                    "departRestriction": "closed",
                    "joinRestriction": "closed",
                });
                if let Some(n) = &want.display_name {
                    body["displayName"] = json!(n);
                }
                let posted = self
                    .task_write(
                        Method::POST,
                        &format!("{}/mailingList", self.root()),
                        Some(body),
                    )
                    .await;
                if let Err(e) = posted
                    && self.get_opt(path).await?.is_none()
                {
                    return Err(e);
                }
                self.settled(path).await?;
                Ok(())
            }
        }
    }

    async fn legacy_list_write(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        list: &str,
    ) -> Result<(), OvhError> {
        self.legacy_name(list)?;
        self.legacy_write(method, path, body, "mailinglist").await
    }

    pub async fn delete_group(&self, address: &str) -> Result<Applied, OvhError> {
        let path = self.list_path(address)?;
        if self.get_opt(&path).await?.is_none() {
            return Ok(Applied::unchanged(format!("group {address} is not there")));
        }
        match self.family {
            Family::Legacy { .. } => {
                self.legacy_list_write(Method::DELETE, &path, None, address)
                    .await?
            }
            _ => {
                self.settled(&path).await?;
                self.task_write(Method::DELETE, &path, None).await?;
            }
        }
        self.gone(&path).await?;
        Ok(Applied::changed(format!("removed group {address}")))
    }
}

fn lower_sorted(v: Vec<String>) -> Vec<String> {
    let set: BTreeSet<String> = v.into_iter().map(|s| s.to_ascii_lowercase()).collect();
    set.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_keep_addresses_and_encode_the_rest() {
        assert_eq!(seg("john@example.com"), "john@example.com");
        assert_eq!(seg("a b/c%"), "a%20b%2Fc%25");
        assert_eq!(seg("élan"), "%C3%A9lan");
    }

    #[test]
    fn text_footers_become_escaped_html() {
        assert_eq!(
            footer_html(Some("Acme & Co\n<b>not bold</b>"), None),
            "Acme &amp; Co<br>\n&lt;b&gt;not bold&lt;/b&gt;"
        );
        assert_eq!(footer_html(Some("x"), Some("<p>h</p>")), "<p>h</p>");
    }

    #[test]
    fn settled_means_state_ok_and_no_pending_task() {
        assert!(is_settled(&json!({"state": "ok", "taskPendingId": 0})));
        assert!(is_settled(&json!({"state": "ok", "taskPendingId": null})));
        assert!(is_settled(&json!({"content": "x"})));
        assert!(!is_settled(
            &json!({"state": "modifying", "taskPendingId": 0})
        ));
        assert!(!is_settled(&json!({"state": "ok", "taskPendingId": 12})));
    }

    #[test]
    fn dns_summary_names_the_expected_mx_when_invalid() {
        let d = DnsDiagnostics {
            mx_valid: Some(false),
            spf_valid: Some(true),
            srv_valid: None,
            mx_records: vec!["mx.old.example.".into()],
            expected_mx: vec!["mx1.mail.ovh.net.".into()],
        };
        assert_eq!(
            d.summary(),
            "MX not valid, SPF valid, autodiscover SRV not reported (MX is mx.old.example.; expected mx1.mail.ovh.net.)"
        );
    }
}
