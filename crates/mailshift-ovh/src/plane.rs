//! The OVHcloud control plane: each resource spec of the plan mapped onto the operations of
//! `ops` (Exchange, Email Pro, MX Plan), for the executor's [`ControlPlane`].
//!
//! The operations read before they write, so a step re-run after a crash, a failed task or a
//! lost answer converges. API clients are built once per provider of the plan and shared by
//! the platforms (services) behind it.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::ops::{
    Applied, ContactSpec, Created, Family, GroupSpec, OvhZone, Service, Timing, footer_html,
};
use crate::{ClientOptions, Credentials, OvhClient, OvhError};
use mailshift_core::error::{ErrorKind, StepError};
use mailshift_core::model::{Resource, ResourceAddr, Spec};
use mailshift_core::plan::Loaded;
use mailshift_core::plan::model::{DomainMode, Platform, PlatformKind, Right};
use mailshift_core::plane::{
    ApiCalls, ControlPlane, Done, Ensured, Observed, PlaneKind, PlaneResult, SizeLimit, StepState,
};

/// Largest mailbox each destination accepts in a move (reference/ovh-api.md).
const MX_PLAN_LIMIT: u64 = 5_000_000_000;
const EMAIL_PRO_LIMIT: u64 = 10_000_000_000;

/// The output of a Create step's record that says this mailshift began making the account
/// and may not have set its password yet (a kill between the configuration and the password).
const PASSWORD_PENDING: &str = "password_pending";

/// A call's path without the values in it (`/email/pro/{}/account/{}`), so that metrics have
/// one series per kind of call, not per account.
fn path_template(path: &str) -> String {
    let path = path.split('?').next().unwrap_or("");
    let segments: Vec<&str> = path.split('/').collect();
    let mut out = Vec::with_capacity(segments.len());
    for (i, seg) in segments.iter().enumerate() {
        // A segment that follows a collection name is a value (a service, an address, an id).
        let previous = if i > 0 { segments[i - 1] } else { "" };
        let is_value = matches!(
            previous,
            "pro"
                | "mxplan"
                | "exchange"
                | "service"
                | "domain"
                | "account"
                | "alias"
                | "sendAs"
                | "fullAccess"
                | "sendOnBehalfTo"
                | "externalContact"
                | "mailingList"
                | "redirection"
                | "subscriber"
                | "moderator"
                | "filter"
                | "rule"
        ) || (previous == "task" && seg.chars().all(|c| c.is_ascii_digit()));
        let is_collection = matches!(*seg, "account" | "task" | "domain" | "alias");
        out.push(if is_value && !is_collection && !seg.is_empty() {
            "{}"
        } else {
            seg
        });
    }
    out.join("/")
}

/// OVHcloud platforms (Exchange, Email Pro, MX Plan), with one API client per provider.
#[derive(Default)]
pub struct OvhPlanes {
    clients: Mutex<HashMap<String, Arc<OvhClient>>>,
}

impl PlaneKind for OvhPlanes {
    fn serves(&self, platform: &Platform) -> bool {
        platform.kind.is_ovh()
    }

    fn size_limit(&self, platform: &Platform) -> Option<SizeLimit> {
        OvhPlanes::limit_of(platform.kind)
    }

    fn connect(
        &self,
        name: &str,
        platform: &Platform,
        loaded: &Loaded,
        api_calls: Option<&ApiCalls>,
    ) -> Result<Arc<dyn ControlPlane>, StepError> {
        let family = Family::of(name, platform).map_err(StepError::config)?;
        let (provider_name, provider) = provider_of(name, platform, loaded)?;
        let client = {
            let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
            match clients.get(provider_name) {
                Some(c) => c.clone(),
                None => {
                    let mut client = client_for(provider_name, provider, loaded)?;
                    if let Some(calls) = api_calls {
                        let calls = calls.clone();
                        client = client.observe(Arc::new(move |method, path, elapsed, ok| {
                            calls(
                                "ovh",
                                &format!("{method} {}", path_template(path)),
                                elapsed,
                                ok,
                            )
                        }));
                    }
                    let client = Arc::new(client);
                    clients.insert(provider_name.to_string(), client.clone());
                    client
                }
            }
        };
        let timing = timing_of(provider);
        Ok(Arc::new(OvhPlane {
            name: name.to_string(),
            service: Service::new(client, family, timing),
            base_dir: loaded.base_dir.clone(),
        }))
    }
}

/// The provider a platform names, as the plan holds it.
fn provider_of<'a>(
    name: &str,
    platform: &'a Platform,
    loaded: &'a Loaded,
) -> Result<(&'a str, &'a mailshift_core::plan::model::Provider), StepError> {
    let provider_name = platform.provider.as_deref().ok_or_else(|| {
        StepError::bug(format!(
            "platform `{name}` names no `provider` (the plan validator should have refused this)"
        ))
    })?;
    let provider =
        loaded.plan.providers.get(provider_name).ok_or_else(|| {
            StepError::bug(format!("provider `{provider_name}` is not in the plan"))
        })?;
    Ok((provider_name, provider))
}

/// An API client for a provider of the plan, its secrets read.
fn client_for(
    provider_name: &str,
    provider: &mailshift_core::plan::model::Provider,
    loaded: &Loaded,
) -> Result<OvhClient, StepError> {
    let base = &loaded.base_dir;
    let resolve = |r: &mailshift_core::plan::secret::SecretRef| {
        r.resolve(base)
            .map_err(|e| StepError::config(format!("provider `{provider_name}`: {e}")))
    };
    let credentials = Credentials {
        application_key: resolve(&provider.application_key)?,
        application_secret: resolve(&provider.application_secret)?,
        consumer_key: resolve(&provider.consumer_key)?,
    };
    OvhClient::with_options(&provider.endpoint, credentials, ClientOptions::default())
        .map_err(|e| StepError::from(e).context(format!("provider `{provider_name}`")))
}

/// How long and how often the provider's tasks are waited for.
fn timing_of(provider: &mailshift_core::plan::model::Provider) -> Timing {
    let mut timing = Timing::default();
    if let Some(p) = provider.poll_interval.as_ref().and_then(|d| d.get()) {
        timing.poll = p;
    }
    if let Some(t) = provider.task_timeout.as_ref().and_then(|d| d.get()) {
        timing.deadline = t;
    }
    timing
}

impl OvhPlanes {
    /// The OVHcloud service behind the plan's platform `name`, with an API client of its own:
    /// for a step that reaches a service outside the control plane's resources (a legacy
    /// MX Plan account's filters, the inbox rules there).
    pub fn service(name: &str, platform: &Platform, loaded: &Loaded) -> Result<Service, StepError> {
        let family = Family::of(name, platform).map_err(StepError::config)?;
        let (provider_name, provider) = provider_of(name, platform, loaded)?;
        let client = client_for(provider_name, provider, loaded)?;
        Ok(Service::new(Arc::new(client), family, timing_of(provider)))
    }

    /// The DNS zone `zone` (`example.com`) hosted at OVHcloud, reached with the credentials
    /// of the plan's provider `provider_name` (a cutover's `dns: {provider: ovh, zone: ...}`).
    pub fn zone(provider_name: &str, zone: &str, loaded: &Loaded) -> Result<OvhZone, StepError> {
        let provider = loaded.plan.providers.get(provider_name).ok_or_else(|| {
            StepError::config(format!(
                "the DNS zone {zone} names provider `{provider_name}`, which the plan does not have"
            ))
        })?;
        let client = client_for(provider_name, provider, loaded)?;
        Ok(OvhZone::new(Arc::new(client), zone))
    }
}

/// One OVHcloud service of the plan (a platform).
pub struct OvhPlane {
    /// The platform's key in the plan.
    name: String,
    service: Service,
    /// Where the plan's relative secret paths are read from.
    base_dir: PathBuf,
}

impl ControlPlane for OvhPlane {
    fn ensure<'a>(&'a self, r: &'a Resource, state: StepState<'a>) -> PlaneResult<'a, Ensured> {
        Box::pin(async move {
            let applied = self.ensure_spec(r, state).await?;
            Ok(match applied {
                Some(a) => Ensured::Done(done(a)),
                None => Ensured::AccountExists,
            })
        })
    }

    fn observe<'a>(&'a self, r: &'a Resource) -> PlaneResult<'a, Observed> {
        Box::pin(async move {
            Ok(match self.drift(r).await {
                Ok(Some(what)) => Observed::Drift(what),
                Ok(None) => Observed::Matches,
                Err(e) => {
                    return Err(StepError::from(e).context(format!("{}: cannot read it", r.addr)));
                }
            })
        })
    }

    fn delete<'a>(&'a self, addr: &'a ResourceAddr) -> PlaneResult<'a, Done> {
        Box::pin(async move {
            let svc = &self.service;
            let applied = match addr {
                ResourceAddr::Alias { account, alias } => svc.delete_alias(account, alias).await,
                ResourceAddr::Redirection { account, to } => {
                    svc.delete_redirection(account, to).await
                }
                ResourceAddr::Delegation { account, grantee } => {
                    svc.delete_delegation(account, grantee).await
                }
                ResourceAddr::Group { address } => svc.delete_group(address).await,
                ResourceAddr::ExternalContact { address, .. } => {
                    svc.delete_external_contact(address).await
                }
                ResourceAddr::Footer { domain, .. } => svc.delete_footer(domain).await,
                other => {
                    return Err(StepError::bug(format!(
                        "{other}: a {} is never removed by omission",
                        other.kind().as_str()
                    )));
                }
            };
            Ok(done(applied.map_err(StepError::from)?))
        })
    }

    fn has_api(&self) -> bool {
        true
    }

    fn mailbox_usage<'a>(&'a self, address: &'a str) -> PlaneResult<'a, Option<u64>> {
        Box::pin(async move {
            self.service
                .mailbox_usage(address)
                .await
                .map_err(StepError::from)
        })
    }

    fn mailbox_quota<'a>(&'a self, address: &'a str) -> PlaneResult<'a, Option<(u64, u64)>> {
        Box::pin(async move {
            self.service
                .mailbox_quota(address)
                .await
                .map_err(StepError::from)
        })
    }

    fn imap_host(&self) -> PlaneResult<'_, Option<String>> {
        Box::pin(async move {
            self.service
                .imap_host()
                .await
                .map(Some)
                .map_err(StepError::from)
        })
    }

    fn writes(&self) -> u64 {
        self.service.writes()
    }
}

impl OvhPlanes {
    fn limit_of(kind: PlatformKind) -> Option<SizeLimit> {
        match kind {
            PlatformKind::OvhMxPlan => Some(SizeLimit {
                bytes: MX_PLAN_LIMIT,
                offer: "MX Plan",
                instead: "Exchange or Email Pro",
            }),
            PlatformKind::OvhEmailPro => Some(SizeLimit {
                bytes: EMAIL_PRO_LIMIT,
                offer: "Email Pro",
                instead: "Exchange",
            }),
            _ => None,
        }
    }
}

fn done(a: Applied) -> Done {
    Done {
        detail: a.detail,
        wrote: a.wrote,
    }
}

fn lower_sorted(v: &[String]) -> Vec<String> {
    let set: BTreeSet<String> = v.iter().map(|s| s.to_ascii_lowercase()).collect();
    set.into_iter().collect()
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

impl OvhPlane {
    /// `None`: the account to create exists and was not made by this mailshift.
    async fn ensure_spec(
        &self,
        r: &Resource,
        state: StepState<'_>,
    ) -> Result<Option<Applied>, StepError> {
        let svc = &self.service;
        let err = StepError::from;
        Ok(Some(match &r.spec {
            Spec::Domain {
                domain,
                mode,
                mx_relay,
            } => svc
                .ensure_domain(domain, *mode, mx_relay.as_deref())
                .await
                .map_err(err)?,
            Spec::Rename { account, to } => svc.rename(&account.address, to).await.map_err(err)?,
            Spec::Create { account } => {
                let password = account
                    .account
                    .destination
                    .password
                    .as_ref()
                    .ok_or_else(|| {
                        StepError::config(
                            "creating an account needs `destination.password` (the password to set)",
                        )
                    })?
                    .resolve(&self.base_dir)
                    .map_err(|e| StepError::config(format!("destination password: {e}")))?;
                return self.create(&account.address, &password, state).await;
            }
            Spec::Alias { account, alias } => svc
                .ensure_alias(&account.address, alias)
                .await
                .map_err(err)?,
            Spec::Redirection {
                account,
                to,
                local_copy,
            } => svc
                .ensure_redirection(&account.address, to, *local_copy)
                .await
                .map_err(err)?,
            Spec::Delegation {
                account,
                grantee,
                rights,
            } => svc
                .ensure_delegation(&account.address, grantee, rights)
                .await
                .map_err(err)?,
            Spec::Group {
                address,
                display_name,
                members,
                owners,
            } => svc
                .ensure_group(&GroupSpec {
                    address: address.clone(),
                    display_name: display_name.clone(),
                    members: members.clone(),
                    owners: owners.clone(),
                })
                .await
                .map_err(err)?,
            Spec::ExternalContact {
                address,
                display_name,
                first_name,
                last_name,
                hidden,
            } => svc
                .ensure_external_contact(&ContactSpec {
                    address: address.clone(),
                    display_name: display_name.clone(),
                    first_name: first_name.clone(),
                    last_name: last_name.clone(),
                    hidden: *hidden,
                })
                .await
                .map_err(err)?,
            Spec::Footer {
                domain,
                text,
                html,
                outside_only,
            } => {
                let content = footer_html(text.as_deref(), html.as_deref());
                svc.ensure_footer(domain, &content, *outside_only)
                    .await
                    .map_err(err)?
            }
            Spec::DnsCheck {
                domain,
                authoritative,
            } => {
                let diag = svc.dns(domain).await.map_err(err)?;
                if *authoritative && diag.mx_valid == Some(false) {
                    // Retried on a timer: the fix is made at the DNS host, not in the plan.
                    return Err(StepError::new(
                        ErrorKind::Refused,
                        format!(
                            "{domain} is authoritative on `{}` but its DNS does not point there: {}. Fix the MX records at the domain's DNS host, then run apply again",
                            self.name,
                            diag.summary()
                        ),
                    ));
                }
                Applied::unchanged(format!("{domain}: {}", diag.summary()))
            }
            Spec::Cleanup { provisional, .. } => svc.reset(provisional).await.map_err(err)?,
            Spec::Content { .. } => {
                return Err(StepError::bug(format!(
                    "{} is a copy, not an API step",
                    r.addr
                )));
            }
        }))
    }

    /// Makes the account, or leaves an existing one as it is. The one write a create step
    /// would repeat without knowing better is the password, and that could undo a password
    /// the user changed since: an existing account gets the plan's password only when the
    /// state shows this mailshift made it and was interrupted before setting it. Otherwise the
    /// caller checks the plan's password (`Ok(None)`).
    async fn create(
        &self,
        address: &str,
        password: &mailshift_core::plan::secret::Secret,
        state: StepState<'_>,
    ) -> Result<Option<Applied>, StepError> {
        let svc = &self.service;
        let interrupted = state
            .before
            .is_some_and(|p| p.outputs.contains_key(PASSWORD_PENDING));
        // Recorded before the write that makes the account, so a kill right after it is known.
        let state_error = Mutex::new(None);
        let mark = || {
            (state.mark)(PASSWORD_PENDING).map_err(|e| {
                let text = format!(
                    "the state cannot record that {address} is being made: {}",
                    e.message
                );
                *state_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                OvhError::Refused(text)
            })
        };
        let created = svc.create(address, password.expose(), None, &mark).await;
        if let Some(e) = state_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(e);
        }
        match created.map_err(StepError::from)? {
            Created::Made(applied) => Ok(Some(applied)),
            Created::Exists if interrupted => {
                svc.set_password(address, password.expose())
                    .await
                    .map_err(StepError::from)?;
                Ok(Some(Applied::changed(format!(
                    "{address} exists (made by an interrupted run), password set"
                ))))
            }
            Created::Exists => Ok(None),
        }
    }

    /// How the platform differs from the resource's spec, in words; `None` when it matches.
    async fn drift(&self, r: &Resource) -> Result<Option<String>, OvhError> {
        let svc = &self.service;
        let platform = &self.name;
        Ok(match &r.spec {
            Spec::Domain { domain, mode, .. } => match svc.domain(domain).await? {
                None => Some(format!("{domain} is no longer attached to `{platform}`")),
                Some(live) => {
                    let want = match mode {
                        DomainMode::Authoritative => "authoritative",
                        DomainMode::NonAuthoritative => "nonAuthoritative",
                    };
                    let have = live.get("type").and_then(|t| t.as_str()).unwrap_or("");
                    (!have.is_empty() && have != want).then(|| {
                        format!("{domain} is {have} on the platform, the plan says {want}")
                    })
                }
            },
            Spec::Rename { account, .. } => {
                let to = account.account.rename_to.clone().unwrap_or_default();
                svc.account(&to.to_ascii_lowercase())
                    .await?
                    .is_none()
                    .then(|| format!("no account {to} on `{platform}` any more"))
            }
            Spec::Create { account } => {
                let address = &account.address;
                svc.account(address)
                    .await?
                    .is_none()
                    .then(|| format!("no account {address} on `{platform}` any more"))
            }
            Spec::Alias { account, alias } => {
                let address = &account.address;
                let present = svc.account(address).await?.is_some()
                    && svc.aliases(address).await?.iter().any(|a| a == alias);
                (!present).then(|| format!("alias {alias} is gone from {address}"))
            }
            Spec::Redirection {
                account,
                to,
                local_copy,
            } => {
                let address = &account.address;
                match svc.redirection(address, to).await? {
                    None => Some(format!("{address} no longer forwards to {to}")),
                    Some(h) if h != *local_copy => Some(format!(
                        "the forwarding of {address} to {to} {} a local copy",
                        if h { "keeps" } else { "does not keep" }
                    )),
                    _ => None,
                }
            }
            Spec::Delegation {
                account,
                grantee,
                rights,
            } => {
                let address = &account.address;
                let have = svc.delegation(address, grantee).await?;
                (have != *rights).then(|| {
                    let list = |s: &BTreeSet<Right>| {
                        if s.is_empty() {
                            "none".to_string()
                        } else {
                            s.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
                        }
                    };
                    format!(
                        "{grantee} has {} on {address}, the plan says {}",
                        list(&have),
                        list(rights)
                    )
                })
            }
            Spec::Group {
                address,
                members,
                owners,
                ..
            } => match svc.group(address).await? {
                None => Some(format!("group {address} is gone")),
                Some(live) => (live.members != lower_sorted(members)
                    || live.owners != lower_sorted(owners))
                .then(|| {
                    format!(
                        "group {address} has members {} and owners {}",
                        list_or_none(&live.members),
                        list_or_none(&live.owners)
                    )
                }),
            },
            Spec::ExternalContact { address, .. } => svc
                .external_contact(address)
                .await?
                .is_none()
                .then(|| format!("contact {address} is gone")),
            Spec::Footer {
                domain, text, html, ..
            } => match svc.footer(domain).await? {
                None => Some(format!("the footer of {domain} is gone")),
                Some(live) => {
                    let want = footer_html(text.as_deref(), html.as_deref());
                    (live.get("content").and_then(|c| c.as_str()) != Some(want.as_str()))
                        .then(|| format!("the footer of {domain} was edited on the platform"))
                }
            },
            // A DNS check and a cleanup are one-off observations and actions: nothing to drift.
            Spec::DnsCheck { .. } | Spec::Cleanup { .. } | Spec::Content { .. } => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::path_template;

    #[test]
    fn metric_paths_keep_the_call_and_drop_the_values() {
        assert_eq!(
            path_template("/email/pro/svc-1/account/john@x.org/alias?x=1"),
            "/email/pro/{}/account/{}/alias"
        );
        assert_eq!(
            path_template("/email/exchange/org/service/svc/task/42"),
            "/email/exchange/{}/service/{}/task/{}"
        );
        assert_eq!(
            path_template("/email/domain/legacy.example/mailingList/club/subscriber"),
            "/email/domain/{}/mailingList/{}/subscriber"
        );
        assert_eq!(
            path_template("/email/domain/d.example/account/gina/filter/No%20spam/rule/7"),
            "/email/domain/{}/account/{}/filter/{}/rule/{}"
        );
        assert_eq!(
            path_template("/email/domain/d.example/task/filter/42?account=gina"),
            "/email/domain/{}/task/filter/{}"
        );
        assert_eq!(path_template("/auth/time"), "/auth/time");
    }
}
