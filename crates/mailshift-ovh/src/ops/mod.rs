//! The migration steps as OVHcloud API calls, one service at a time.
//!
//! Every operation reads first and writes only what differs, so running it again after a crash
//! (or after a retried POST that had in fact landed) converges instead of failing or
//! duplicating. Exchange, Email Pro and the newer MX Plan API share one shape under different
//! roots; the legacy MX Plan API (`/email/domain/{domain}`) differs and is handled apart.
//! Paths and bodies follow the published schema (`crates/ovh-sim/src/api-schema/`); the
//! conformance test checks every call made here against it.
//!
//! One file per resource family, each an `impl Service` block: `domain`, `dns`, `account`,
//! `alias`, `redirection`, `delegation`, `contact`, `footer`, `group`, `filter` (legacy MX Plan
//! filters, inbox rules there), and `zone` (a DNS zone hosted at OVHcloud, `/domain/zone`). `calls` holds what they
//! share: the reads and writes, task waits and polling until an object settles or goes.

mod account;
mod alias;
mod calls;
mod contact;
mod delegation;
mod dns;
mod domain;
mod filter;
mod footer;
mod group;
mod redirection;
mod zone;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

use super::client::OvhClient;
use super::error::OvhError;
use mailshift_core::plan::model::{MxPlanApi, Platform, PlatformKind};

pub use account::Created;
pub use contact::ContactSpec;
pub use dns::{DnsDiagnostics, OVH_SPF, with_spf};
pub use filter::same as same_filter;
pub use footer::footer_html;
pub use group::GroupSpec;
pub use zone::OvhZone;

/// The IMAP server of every mailbox on the legacy MX Plan API.
pub const LEGACY_MX_PLAN_IMAP: &str = "ssl0.ovh.net";

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
            PlatformKind::OvhMxPlan => match mailshift_core::model::capabilities::mx_plan_api(p) {
                MxPlanApi::Mxplan => Family::MxPlan { service },
                MxPlanApi::Legacy => Family::Legacy { domain: service },
            },
            PlatformKind::Imap => {
                return Err(format!("platform `{name}` is plain IMAP: it has no API"));
            }
            PlatformKind::Exchange | PlatformKind::Gmail | PlatformKind::Microsoft365 => {
                return Err(format!(
                    "platform `{name}` is {}: it has no OVHcloud API",
                    p.kind.as_str()
                ));
            }
            PlatformKind::Files => {
                return Err(format!(
                    "platform `{name}` is a directory of files: it has no API"
                ));
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

    /// The IMAP server of the service's mailboxes: the service's `hostname` as the API reports
    /// it (`exN.mail.ovh.net`, `proN.mail.ovh.net`). The legacy MX Plan API has no such field:
    /// its mailboxes are all on `ssl0.ovh.net`, the server OVHcloud's guides give for MX Plan.
    pub async fn imap_host(&self) -> Result<String, OvhError> {
        if let Family::Legacy { .. } = self.family {
            return Ok(LEGACY_MX_PLAN_IMAP.to_string());
        }
        let v: Value = self.get(&self.root()).await?;
        match str_field(&v, "hostname").map(str::trim) {
            Some(h) if !h.is_empty() => Ok(h.to_string()),
            _ => Err(OvhError::Refused(format!(
                "the API shows no hostname for this {} service; write the platform's `imap: {{host: ...}}`",
                self.family.name()
            ))),
        }
    }

    fn account_path(&self, address: &str) -> String {
        format!("{}/account/{}", self.root(), seg(address))
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

    /// Refuses `what` on the legacy MX Plan API, which has no calls for it.
    fn not_on_legacy(&self, what: &str) -> Result<(), OvhError> {
        match self.family {
            Family::Legacy { .. } => Err(self.unsupported(what)),
            _ => Ok(()),
        }
    }

    fn unsupported(&self, what: &str) -> OvhError {
        OvhError::Refused(format!(
            "{} has no API for {what}: do it in the control panel (the plan should list it as a manual step)",
            self.family.name()
        ))
    }
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
}
