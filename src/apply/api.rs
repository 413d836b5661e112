//! Control-plane steps: each API resource of the plan mapped onto an OVHcloud operation.
//!
//! The operations read before they write (see `providers::ovh::ops`), so a step re-run after a
//! crash, a failed task or a lost answer converges. A step's record keeps the platform it acted
//! on, because a feature removed from the plan must still be deleted from the right service.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use tokio::sync::Mutex;

use super::imap_adapter::IntoStepError;
use super::{Ctx, Outcome, account_of, now, record_failure};
use crate::diff::{Action, Change};
use crate::error::{ErrorKind, StepError};
use crate::model::capabilities::{Feature, Support, support};
use crate::model::{Resource, ResourceKind};
use crate::plan::Loaded;
use crate::plan::model::{Account, PlatformKind};
use crate::providers::ovh::ops::{
    Applied, ContactSpec, Created, Family, GroupSpec, Service, Timing, footer_html,
};
use crate::providers::ovh::{ClientOptions, Credentials, OvhClient, OvhError};
use crate::state::{ResourceRecord, Status};
use crate::transfer::imap::session::Imap;

/// Largest mailbox each destination accepts in a move (reference/ovh-api.md).
const MX_PLAN_LIMIT: u64 = 5_000_000_000;
const EMAIL_PRO_LIMIT: u64 = 10_000_000_000;
/// How often a long control-plane step says it is still waiting.
const STILL_WAITING_EVERY: std::time::Duration = std::time::Duration::from_secs(20);

/// API clients and services, built on first use and shared by every step of a run.
#[derive(Default)]
pub struct Providers {
    clients: Mutex<HashMap<String, Arc<OvhClient>>>,
    services: Mutex<HashMap<String, Arc<Service>>>,
    /// Told about every API call, for latency metrics.
    hooks: Option<Arc<dyn super::Hooks>>,
}

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

impl Providers {
    pub fn with_hooks(hooks: Arc<dyn super::Hooks>) -> Providers {
        Providers {
            hooks: Some(hooks),
            ..Providers::default()
        }
    }

    /// Write calls made by this run, all services together.
    pub async fn writes(&self) -> u64 {
        self.services
            .lock()
            .await
            .values()
            .map(|s| s.writes())
            .sum()
    }
}

/// The service behind a platform of the plan.
pub async fn service(
    loaded: &Loaded,
    providers: &Providers,
    platform_name: &str,
) -> Result<Arc<Service>, StepError> {
    // Held until the service is in the map: two accounts starting at once must share one
    // service (its placeholder claim lock and its write count).
    let mut services = providers.services.lock().await;
    if let Some(s) = services.get(platform_name) {
        return Ok(s.clone());
    }
    let platform =
        loaded.plan.platforms.get(platform_name).ok_or_else(|| {
            StepError::bug(format!("platform `{platform_name}` is not in the plan"))
        })?;
    let family = Family::of(platform_name, platform).map_err(StepError::config)?;
    let provider_name = platform.provider.as_deref().ok_or_else(|| {
        StepError::bug(format!("platform `{platform_name}` names no `provider` (the plan validator should have refused this)"))
    })?;
    let provider =
        loaded.plan.providers.get(provider_name).ok_or_else(|| {
            StepError::bug(format!("provider `{provider_name}` is not in the plan"))
        })?;
    let client = {
        let mut clients = providers.clients.lock().await;
        match clients.get(provider_name) {
            Some(c) => c.clone(),
            None => {
                let base = &loaded.base_dir;
                let resolve = |r: &crate::plan::secret::SecretRef| {
                    r.resolve(base)
                        .map_err(|e| StepError::config(format!("provider `{provider_name}`: {e}")))
                };
                let credentials = Credentials {
                    application_key: resolve(&provider.application_key)?,
                    application_secret: resolve(&provider.application_secret)?,
                    consumer_key: resolve(&provider.consumer_key)?,
                };
                let mut client = OvhClient::with_options(
                    &provider.endpoint,
                    credentials,
                    ClientOptions::default(),
                )
                .map_err(|e| StepError::from(e).context(format!("provider `{provider_name}`")))?;
                if let Some(hooks) = &providers.hooks {
                    let hooks = hooks.clone();
                    client = client.observe(Arc::new(move |method, path, elapsed, ok| {
                        hooks.api_call(
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
    let mut timing = Timing::default();
    if let Some(p) = provider.poll_interval.as_ref().and_then(|d| d.get()) {
        timing.poll = p;
    }
    if let Some(t) = provider.task_timeout.as_ref().and_then(|d| d.get()) {
        timing.deadline = t;
    }
    let service = Arc::new(Service::new(client, family, timing));
    services.insert(platform_name.to_string(), service.clone());
    Ok(service)
}

/// Runs one API change and records its result.
pub(super) async fn run(ctx: &Arc<Ctx>, change: &Change) -> Outcome {
    // OVHcloud tasks (and measuring a large IMAP source) can take minutes: say now and then
    // that the step is still running.
    let ticker = {
        let hooks = ctx.hooks.clone();
        let who = change.account.clone().unwrap_or_else(|| change.id.clone());
        let id = change.id.clone();
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(STILL_WAITING_EVERY).await;
                hooks.note(
                    &who,
                    &format!(
                        "{id}: still running ({}s: OVHcloud tasks, or measuring the source)",
                        started.elapsed().as_secs()
                    ),
                );
            }
        })
    };
    let result = match change.action {
        Action::Delete => delete(ctx, change).await,
        _ => ensure(ctx, change).await,
    };
    ticker.abort();
    match result {
        Ok((applied, platform)) => {
            if change.action == Action::Delete {
                if let Err(e) = ctx.store.forget(&change.id) {
                    return Outcome::Failed(StepError::state(format!(
                        "{} (but the state could not record it: {e})",
                        applied.detail
                    )));
                }
            } else if let Some(r) = ctx.resources.get(&change.id) {
                let mut rec = r.record(Status::Done, now());
                if let Ok(Some(prev)) = ctx.store.resource(&r.id) {
                    rec.created_at = prev.created_at;
                }
                rec.outputs.insert("platform".into(), platform);
                // What the platform said (a DNS diagnosis, which placeholder was used), for `status`.
                rec.outputs.insert("result".into(), applied.detail.clone());
                if let Err(e) = ctx.store.put_resource(&r.id, &rec) {
                    return Outcome::Failed(StepError::state(format!(
                        "{} (but the state could not record it: {e})",
                        applied.detail
                    )));
                }
            }
            Outcome::Done(applied.detail)
        }
        Err(e) => {
            let outcome = Outcome::Failed(e);
            record_failure(ctx, change, &outcome).await;
            outcome
        }
    }
}

/// The part of a resource id after `marker`, e.g. the alias of `account/a@x/alias/b@x`.
fn tail<'a>(id: &'a str, marker: &str) -> Option<&'a str> {
    id.split_once(marker).map(|(_, t)| t)
}

async fn ensure(ctx: &Arc<Ctx>, change: &Change) -> Result<(Applied, String), StepError> {
    let r: &Resource = ctx
        .resources
        .get(&change.id)
        .ok_or_else(|| StepError::bug(format!("{} is not in the plan", change.id)))?;
    let plan = &ctx.loaded.plan;
    let svc = service(&ctx.loaded, &ctx.providers, &r.platform).await?;
    let err = StepError::from;
    let account = || {
        account_of(ctx, change)
            .ok_or_else(|| StepError::bug(format!("{}: no such account in the plan", change.id)))
    };
    let applied = match r.kind {
        ResourceKind::Domain => {
            let name = r.id.rsplit('/').next().unwrap_or_default();
            let d = plan
                .domains
                .iter()
                .find(|d| d.platform == r.platform && d.name.eq_ignore_ascii_case(name))
                .ok_or_else(|| StepError::bug(format!("{}: no such domain in the plan", r.id)))?;
            svc.ensure_domain(name, d.mode, d.mx_relay.as_deref())
                .await
                .map_err(err)?
        }
        ResourceKind::Rename => {
            let a = account()?;
            // Before anything changes on the source: a move the destination cannot take
            // must not leave the account renamed.
            check_size(ctx, a, &a.to).await?;
            let to = a
                .rename_to
                .as_deref()
                .ok_or_else(|| StepError::bug("the account has no `rename_to`"))?;
            svc.rename(&a.address.to_ascii_lowercase(), &to.to_ascii_lowercase())
                .await
                .map_err(err)?
        }
        ResourceKind::Create => {
            let a = account()?;
            check_size(ctx, a, &r.platform).await?;
            let password = a
                .destination
                .password
                .as_ref()
                .ok_or_else(|| {
                    StepError::config(
                        "creating an account needs `destination.password` (the password to set)",
                    )
                })?
                .resolve(&ctx.loaded.base_dir)
                .map_err(|e| StepError::config(format!("destination password: {e}")))?;
            create(ctx, r, a, &svc, &password).await?
        }
        ResourceKind::Alias => {
            let a = account()?;
            let alias = tail(&r.id, "/alias/").unwrap_or_default();
            let address = a.address.to_ascii_lowercase();
            // A renamed account keeps its aliases on the source; an address can only be
            // used once, so it leaves the provisional account first.
            if let Some(provisional) = &a.rename_to
                && let Some(from) = plan.platforms.get(&a.from)
                && support(from, Feature::Alias) == Support::Api
            {
                let source = service(&ctx.loaded, &ctx.providers, &a.from).await?;
                source
                    .delete_alias(&provisional.to_ascii_lowercase(), alias)
                    .await
                    .map_err(err)?;
            }
            svc.ensure_alias(&address, alias).await.map_err(err)?
        }
        ResourceKind::Redirection => {
            let a = account()?;
            let target = tail(&r.id, "/redirection/").unwrap_or_default();
            let red = a
                .redirections
                .iter()
                .find(|x| x.to.eq_ignore_ascii_case(target))
                .ok_or_else(|| {
                    StepError::bug(format!("{}: no such redirection in the plan", r.id))
                })?;
            svc.ensure_redirection(&a.address.to_ascii_lowercase(), target, red.local_copy)
                .await
                .map_err(err)?
        }
        ResourceKind::Delegation => {
            let a = account()?;
            let grantee = tail(&r.id, "/delegation/").unwrap_or_default();
            let d = a
                .delegations
                .iter()
                .find(|x| x.grantee.eq_ignore_ascii_case(grantee))
                .ok_or_else(|| {
                    StepError::bug(format!("{}: no such delegation in the plan", r.id))
                })?;
            let rights: BTreeSet<_> = d.rights.iter().copied().collect();
            svc.ensure_delegation(&a.address.to_ascii_lowercase(), grantee, &rights)
                .await
                .map_err(err)?
        }
        ResourceKind::Group => {
            let address = tail(&r.id, "group/").unwrap_or_default();
            let g = plan
                .groups
                .iter()
                .find(|g| g.address.eq_ignore_ascii_case(address))
                .ok_or_else(|| StepError::bug(format!("{}: no such group in the plan", r.id)))?;
            svc.ensure_group(&GroupSpec {
                address: address.to_string(),
                display_name: g.display_name.clone(),
                members: g.members.clone(),
                owners: g.owners.clone(),
            })
            .await
            .map_err(err)?
        }
        ResourceKind::ExternalContact => {
            let address = r.id.rsplit('/').next().unwrap_or_default();
            let c = plan
                .external_contacts
                .iter()
                .find(|c| c.platform == r.platform && c.address.eq_ignore_ascii_case(address))
                .ok_or_else(|| StepError::bug(format!("{}: no such contact in the plan", r.id)))?;
            svc.ensure_external_contact(&ContactSpec {
                address: address.to_string(),
                display_name: c.display_name.clone(),
                first_name: c.first_name.clone(),
                last_name: c.last_name.clone(),
                hidden: c.hidden,
            })
            .await
            .map_err(err)?
        }
        ResourceKind::Footer => {
            let domain = r.id.rsplit('/').next().unwrap_or_default();
            let f = plan
                .footers
                .iter()
                .find(|f| f.platform == r.platform && f.domain.eq_ignore_ascii_case(domain))
                .ok_or_else(|| StepError::bug(format!("{}: no such footer in the plan", r.id)))?;
            let content = footer_html(f.text.as_deref(), f.html.as_deref());
            svc.ensure_footer(domain, &content, f.outside_only)
                .await
                .map_err(err)?
        }
        ResourceKind::DnsCheck => {
            let name = r.id.rsplit('/').next().unwrap_or_default();
            let authoritative = plan.domains.iter().any(|d| {
                d.platform == r.platform
                    && d.name.eq_ignore_ascii_case(name)
                    && d.mode == crate::plan::model::DomainMode::Authoritative
            });
            let diag = svc.dns(name).await.map_err(err)?;
            if authoritative && diag.mx_valid == Some(false) {
                // Retried on a timer: the fix is made at the DNS host, not in the plan.
                return Err(StepError::new(
                    ErrorKind::Refused,
                    format!(
                        "{name} is authoritative on `{}` but its DNS does not point there: {}. Fix the MX records at the domain's DNS host, then run apply again",
                        r.platform,
                        diag.summary()
                    ),
                ));
            }
            Applied::unchanged(format!("{name}: {}", diag.summary()))
        }
        ResourceKind::Cleanup => {
            let a = account()?;
            let provisional = a
                .rename_to
                .as_deref()
                .ok_or_else(|| StepError::bug("the account has no `rename_to`"))?
                .to_ascii_lowercase();
            let address = a.address.to_ascii_lowercase();
            // Resetting deletes the source's copy: compare both sides again right now, so a
            // message that arrived after the last sync is never lost.
            let (source, dest) = super::account_targets(&ctx.loaded, a)?;
            let check = crate::verify::verify_account(
                &address,
                &source,
                &dest,
                &super::imap_adapter::folder_rules(a.folders.as_ref()),
                &super::copy_options(plan, a),
                0,
                // A refused message is not on the destination either: it blocks the reset
                // as missing, listed or not.
                &crate::verify::Refused::new(),
            )
            .await;
            if let Some(e) = &check.error {
                return Err(StepError::new(
                    ErrorKind::Refused,
                    format!("not resetting {provisional}: cannot compare the mailboxes: {e}"),
                ));
            }
            // Extra messages on the destination are expected after the cutover: new mail
            // lands there. Only a missing one blocks the reset.
            let missing: u64 = check
                .folders
                .iter()
                .map(crate::verify::FolderCheck::not_on_destination)
                .sum();
            if missing > 0 {
                return Err(StepError::new(
                    ErrorKind::Refused,
                    format!(
                        "not resetting {provisional}: {missing} message(s) of the source are not on the destination; run apply (or `mailshift verify`) to see which, and reset once they match"
                    ),
                ));
            }
            svc.reset(&provisional).await.map_err(err)?
        }
        ResourceKind::Mail
        | ResourceKind::Contacts
        | ResourceKind::Calendars
        | ResourceKind::Tasks => {
            return Err(StepError::bug(format!(
                "{} is a copy, not an API step",
                r.id
            )));
        }
    };
    Ok((applied, r.platform.clone()))
}

/// The output of a Create step's record that says this mailshift began making the account
/// and may not have set its password yet (a kill between the configuration and the password).
const PASSWORD_PENDING: &str = "password_pending";

/// Makes the account, or leaves an existing one as it is. The one write a create step would
/// repeat without knowing better is the password, and that could undo a password the user
/// changed since: an existing account gets the plan's password only when the state shows this
/// mailshift made it and was interrupted before setting it. Otherwise the plan's password is
/// tried over IMAP: it works, nothing to do; it is refused, the step says so and changes
/// nothing.
async fn create(
    ctx: &Arc<Ctx>,
    r: &Resource,
    a: &Account,
    svc: &Service,
    password: &crate::plan::secret::Secret,
) -> Result<Applied, StepError> {
    let address = a.address.to_ascii_lowercase();
    let prev = ctx.store.resource(&r.id)?;
    let interrupted = prev
        .as_ref()
        .is_some_and(|p| p.outputs.contains_key(PASSWORD_PENDING));
    // Recorded before the write that makes the account, so a kill right after it is known.
    let state_error = std::sync::Mutex::new(None);
    let mark = || {
        let mut rec = prev
            .clone()
            .unwrap_or_else(|| r.record(Status::InProgress, now()));
        rec.outputs.insert(PASSWORD_PENDING.into(), "true".into());
        rec.updated_at = now();
        ctx.store.put_resource(&r.id, &rec).map_err(|e| {
            let text = format!("the state cannot record that {address} is being made: {e}");
            *state_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            OvhError::Refused(text)
        })
    };
    let created = svc.create(&address, password.expose(), None, &mark).await;
    if let Some(e) = state_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(e.into());
    }
    match created.map_err(StepError::from)? {
        Created::Made(applied) => Ok(applied),
        Created::Exists if interrupted => {
            svc.set_password(&address, password.expose())
                .await
                .map_err(StepError::from)?;
            Ok(Applied::changed(format!(
                "{address} exists (made by an interrupted run), password set"
            )))
        }
        Created::Exists => keep_password(ctx, a, &address).await,
    }
}

/// An account that exists and that this mailshift did not just make: logs in with the plan's
/// password, or is reported, never reset.
async fn keep_password(ctx: &Ctx, a: &Account, address: &str) -> Result<Applied, StepError> {
    let platform = ctx
        .loaded
        .plan
        .platforms
        .get(&a.to)
        .ok_or_else(|| StepError::bug(format!("platform `{}` is not in the plan", a.to)))?;
    let target = super::target(
        &ctx.loaded,
        platform,
        &a.destination,
        crate::model::dest_login(a),
    )
    .map_err(|e| {
        StepError::config(format!(
            "{address} already exists on `{}`, and its password cannot be checked: {e}",
            a.to
        ))
    })?;
    match Imap::connect(&target).await {
        Ok(imap) => {
            imap.logout().await;
            Ok(Applied::unchanged(format!(
                "{address} exists and accepts the plan's password (left as it is)"
            )))
        }
        Err(e) if e.kind == crate::transfer::imap::ErrorKind::Auth => Err(StepError::new(
            ErrorKind::Auth,
            format!(
                "{address} already exists on `{}` with another password than the plan's \
                 (probably changed since it was created), and mailshift will not reset it: put \
                 its current password in the plan's `destination.password`, or reset it in the \
                 OVHcloud Control Panel to the plan's, then run apply again ({})",
                a.to, e.message
            ),
        )),
        Err(e) => Err(e.into_step_error().context(format!(
            "{address} already exists on `{}`; cannot check that it accepts the plan's password",
            a.to
        ))),
    }
}

/// Refuses a move onto a platform whose per-account limit the source mailbox exceeds, before
/// anything is created for it.
async fn check_size(ctx: &Arc<Ctx>, a: &Account, to: &str) -> Result<(), StepError> {
    let plan = &ctx.loaded.plan;
    let Some(dest) = plan.platforms.get(to) else {
        return Ok(());
    };
    let (limit, name) = match dest.kind {
        PlatformKind::OvhMxPlan => (MX_PLAN_LIMIT, "MX Plan"),
        PlatformKind::OvhEmailPro => (EMAIL_PRO_LIMIT, "Email Pro"),
        _ => return Ok(()),
    };
    let Some(from) = plan.platforms.get(&a.from) else {
        return Ok(());
    };
    let address = a.address.to_ascii_lowercase();
    let usage = if from.kind.is_ovh() {
        let source = service(&ctx.loaded, &ctx.providers, &a.from).await?;
        let provisional = a.rename_to.as_ref().map(|r| r.to_ascii_lowercase());
        let mut usage = None;
        for candidate in provisional.iter().chain(std::iter::once(&address)) {
            usage = source
                .mailbox_usage(candidate)
                .await
                .map_err(StepError::from)?;
            if usage.is_some() {
                break;
            }
        }
        usage
    } else {
        // No API to ask: add up the source's messages over IMAP (once, before creating).
        let (source, _) = super::account_targets(&ctx.loaded, a)?;
        Some(
            crate::transfer::imap::mailbox_bytes(&source)
                .await
                .map_err(|e| {
                    e.into_step_error()
                        .context("cannot measure the source mailbox")
                })?,
        )
    };
    match usage {
        Some(bytes) if bytes > limit => Err(StepError::config(format!(
            "the mailbox {address} holds {} on `{}`, above the {} limit of {} per account: \
             move it to Exchange{} instead, or make it smaller on the source first",
            super::human_bytes(bytes),
            a.from,
            name,
            super::human_bytes(limit),
            if dest.kind == PlatformKind::OvhMxPlan {
                " or Email Pro"
            } else {
                ""
            }
        ))),
        _ => Ok(()),
    }
}

async fn delete(ctx: &Arc<Ctx>, change: &Change) -> Result<(Applied, String), StepError> {
    let rec = ctx
        .store
        .resource(&change.id)?
        .ok_or_else(|| StepError::bug(format!("{} is not in the state", change.id)))?;
    let platform = match rec.outputs.get("platform") {
        Some(p) => p.clone(),
        None => account_of(ctx, change)
            .map(|a| a.to.clone())
            .ok_or_else(|| StepError::config(format!(
                "the state does not say which platform {} was applied on: remove it by hand, then run `mailshift state forget {}`",
                change.id, change.id
            )))?,
    };
    let svc = service(&ctx.loaded, &ctx.providers, &platform).await?;
    let err = StepError::from;
    let id = change.id.as_str();
    let account = rec.account.clone().unwrap_or_default();
    let kind = ResourceKind::parse(&rec.kind)
        .ok_or_else(|| StepError::bug(format!("{id}: unknown kind {}", rec.kind)))?;
    let applied = match kind {
        ResourceKind::Alias => svc
            .delete_alias(&account, tail(id, "/alias/").unwrap_or_default())
            .await
            .map_err(err)?,
        ResourceKind::Redirection => svc
            .delete_redirection(&account, tail(id, "/redirection/").unwrap_or_default())
            .await
            .map_err(err)?,
        ResourceKind::Delegation => svc
            .delete_delegation(&account, tail(id, "/delegation/").unwrap_or_default())
            .await
            .map_err(err)?,
        ResourceKind::Group => svc
            .delete_group(tail(id, "group/").unwrap_or_default())
            .await
            .map_err(err)?,
        ResourceKind::ExternalContact => svc
            .delete_external_contact(id.rsplit('/').next().unwrap_or_default())
            .await
            .map_err(err)?,
        ResourceKind::Footer => svc
            .delete_footer(id.rsplit('/').next().unwrap_or_default())
            .await
            .map_err(err)?,
        other => {
            return Err(StepError::bug(format!(
                "{id}: a {} is never removed by omission",
                other.as_str()
            )));
        }
    };
    Ok((applied, platform))
}

/// Reads the live platforms and says, for each API resource the state calls applied, how the
/// platform differs from the plan (an alias deleted in the control panel, a domain switched
/// back to authoritative). Resources that match are left out.
pub async fn observe_drift(
    loaded: &Loaded,
    providers: &Providers,
    desired: &[Resource],
    state: &std::collections::BTreeMap<String, ResourceRecord>,
) -> Result<std::collections::BTreeMap<String, String>, StepError> {
    let plan = &loaded.plan;
    let mut drift = std::collections::BTreeMap::new();
    for r in desired {
        if r.execution != crate::model::Execution::Api {
            continue;
        }
        let Some(rec) = state.get(&r.id) else {
            continue;
        };
        if rec.status != Status::Done || rec.fingerprint != r.fingerprint {
            continue;
        }
        let svc = service(loaded, providers, &r.platform).await?;
        let read = |e: crate::providers::ovh::OvhError| {
            StepError::from(e).context(format!("{}: cannot read it", r.id))
        };
        let account = r.account.as_deref().and_then(|addr| {
            plan.accounts
                .iter()
                .find(|a| a.address.eq_ignore_ascii_case(addr))
        });
        let address = r.account.clone().unwrap_or_default();
        let found: Option<String> = match r.kind {
            ResourceKind::Domain => {
                let name = r.id.rsplit('/').next().unwrap_or_default();
                let d = plan
                    .domains
                    .iter()
                    .find(|d| d.platform == r.platform && d.name.eq_ignore_ascii_case(name));
                match (svc.domain(name).await.map_err(read)?, d) {
                    (None, _) => Some(format!("{name} is no longer attached to `{}`", r.platform)),
                    (Some(live), Some(d)) => {
                        let want = match d.mode {
                            crate::plan::model::DomainMode::Authoritative => "authoritative",
                            crate::plan::model::DomainMode::NonAuthoritative => "nonAuthoritative",
                        };
                        let have = live.get("type").and_then(|t| t.as_str()).unwrap_or("");
                        (!have.is_empty() && have != want).then(|| {
                            format!("{name} is {have} on the platform, the plan says {want}")
                        })
                    }
                    _ => None,
                }
            }
            // Once the cleanup has reset the provisional account, its absence is the plan's doing.
            ResourceKind::Rename
                if state
                    .get(&format!("account/{address}/cleanup"))
                    .is_some_and(|c| c.status == Status::Done) =>
            {
                None
            }
            ResourceKind::Rename => {
                let to = account
                    .and_then(|a| a.rename_to.clone())
                    .unwrap_or_default();
                svc.account(&to.to_ascii_lowercase())
                    .await
                    .map_err(read)?
                    .is_none()
                    .then(|| format!("no account {to} on `{}` any more", r.platform))
            }
            ResourceKind::Create => svc
                .account(&address)
                .await
                .map_err(read)?
                .is_none()
                .then(|| format!("no account {address} on `{}` any more", r.platform)),
            ResourceKind::Alias => {
                let alias = tail(&r.id, "/alias/").unwrap_or_default();
                let present = svc.account(&address).await.map_err(read)?.is_some()
                    && svc
                        .aliases(&address)
                        .await
                        .map_err(read)?
                        .iter()
                        .any(|a| a == alias);
                (!present).then(|| format!("alias {alias} is gone from {address}"))
            }
            ResourceKind::Redirection => {
                let target = tail(&r.id, "/redirection/").unwrap_or_default();
                let want = account
                    .and_then(|a| {
                        a.redirections
                            .iter()
                            .find(|x| x.to.eq_ignore_ascii_case(target))
                    })
                    .map(|x| x.local_copy);
                let have = svc.redirection(&address, target).await.map_err(read)?;
                match (have, want) {
                    (None, _) => Some(format!("{address} no longer forwards to {target}")),
                    (Some(h), Some(w)) if h != w => Some(format!(
                        "the forwarding of {address} to {target} {} a local copy",
                        if h { "keeps" } else { "does not keep" }
                    )),
                    _ => None,
                }
            }
            ResourceKind::Delegation => {
                let grantee = tail(&r.id, "/delegation/").unwrap_or_default();
                let want: BTreeSet<_> = account
                    .and_then(|a| {
                        a.delegations
                            .iter()
                            .find(|d| d.grantee.eq_ignore_ascii_case(grantee))
                    })
                    .map(|d| d.rights.iter().copied().collect())
                    .unwrap_or_default();
                let have = svc.delegation(&address, grantee).await.map_err(read)?;
                (have != want).then(|| {
                    let list = |s: &BTreeSet<crate::plan::model::Right>| {
                        if s.is_empty() {
                            "none".to_string()
                        } else {
                            s.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
                        }
                    };
                    format!(
                        "{grantee} has {} on {address}, the plan says {}",
                        list(&have),
                        list(&want)
                    )
                })
            }
            ResourceKind::Group => {
                let addr = tail(&r.id, "group/").unwrap_or_default();
                let g = plan
                    .groups
                    .iter()
                    .find(|g| g.address.eq_ignore_ascii_case(addr));
                match (svc.group(addr).await.map_err(read)?, g) {
                    (None, _) => Some(format!("group {addr} is gone")),
                    (Some(live), Some(g)) => {
                        let lower = |v: &[String]| {
                            let set: BTreeSet<String> =
                                v.iter().map(|s| s.to_ascii_lowercase()).collect();
                            set.into_iter().collect::<Vec<_>>()
                        };
                        (live.members != lower(&g.members) || live.owners != lower(&g.owners)).then(
                            || {
                                format!(
                                    "group {addr} has members {} and owners {}",
                                    if live.members.is_empty() {
                                        "none".into()
                                    } else {
                                        live.members.join(", ")
                                    },
                                    if live.owners.is_empty() {
                                        "none".into()
                                    } else {
                                        live.owners.join(", ")
                                    }
                                )
                            },
                        )
                    }
                    _ => None,
                }
            }
            ResourceKind::ExternalContact => {
                let addr = r.id.rsplit('/').next().unwrap_or_default();
                svc.external_contact(addr)
                    .await
                    .map_err(read)?
                    .is_none()
                    .then(|| format!("contact {addr} is gone"))
            }
            ResourceKind::Footer => {
                let domain = r.id.rsplit('/').next().unwrap_or_default();
                let f = plan
                    .footers
                    .iter()
                    .find(|f| f.platform == r.platform && f.domain.eq_ignore_ascii_case(domain));
                match (svc.footer(domain).await.map_err(read)?, f) {
                    (None, _) => Some(format!("the footer of {domain} is gone")),
                    (Some(live), Some(f)) => {
                        let want = footer_html(f.text.as_deref(), f.html.as_deref());
                        (live.get("content").and_then(|c| c.as_str()) != Some(want.as_str()))
                            .then(|| format!("the footer of {domain} was edited on the platform"))
                    }
                    _ => None,
                }
            }
            // A DNS check and a cleanup are one-off observations and actions: nothing to drift.
            _ => None,
        };
        if let Some(what) = found {
            drift.insert(r.id.clone(), what);
        }
    }
    Ok(drift)
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
        assert_eq!(path_template("/auth/time"), "/auth/time");
    }
}
