//! The running world: services, accounts, tasks and the request log, behind the simulator's
//! one mutex. Built from a [`World`] and exported back to one.
//!
//! Objects are referred to by service index and id rather than by reference, because a task
//! finishes later, through a closure that gets the whole state back (`Task::on_end`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::SimError;
use super::control::{Fault, RequestRecord, Violation};
use super::dovecot::Passwd;
use super::nameserver::NameServer;
use super::world::{self, DomainType, ExchangeOffer, FreshPassword, World};
use super::zone::{DnsZone, NAME_SERVERS, Served, rdata};

pub(super) const PLACEHOLDER_DOMAIN: &str = "configureme.me";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    Exchange,
    Pro,
    MxPlan,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Exchange => "Exchange",
            Family::Pro => "Email Pro",
            Family::MxPlan => "MX Plan",
        }
    }

    /// What `state` shows while a change is under way. The published enums have no
    /// "modifying": these are the values they do have that no steady object shows.
    pub fn busy_state(self) -> &'static str {
        match self {
            Family::Exchange => "internalMigration",
            Family::Pro | Family::MxPlan => "unknown",
        }
    }
}

/// A sub-object (alias, delegation, member) with its own pending task.
#[derive(Debug, Clone)]
pub(super) struct Entry<T> {
    pub value: T,
    pub created: String,
    pub pending: Option<u64>,
}

impl<T> Entry<T> {
    pub fn new(value: T, created: String, pending: Option<u64>) -> Self {
        Entry {
            value,
            created,
            pending,
        }
    }
}

#[derive(Debug, Clone)]
pub(super) enum Fresh {
    Settled,
    Until(Instant),
    Refusals(u32),
}

#[derive(Debug, Clone)]
pub(super) struct Acct {
    pub id: u64,
    pub email: String,
    pub login: String,
    pub domain: String,
    pub password: String,
    pub configured: bool,
    pub display_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub initials: Option<String>,
    pub current_usage: Option<u64>,
    pub forwarding_email: Option<String>,
    pub store_copy: bool,
    pub license: String,
    pub hidden_from_gal: bool,
    pub aliases: Vec<Entry<String>>,
    pub send_as: Vec<Entry<u64>>,
    pub full_access: Vec<Entry<u64>>,
    pub send_on_behalf: Vec<Entry<u64>>,
    pub state: &'static str,
    pub pending: Option<u64>,
    /// The address a pending rename or configuration will give it: taken already.
    pub pending_email: Option<String>,
    pub created: String,
    pub password_updated: Option<String>,
    pub fresh: Fresh,
}

impl Acct {
    pub fn delegations(&self, kind: Delegation) -> &Vec<Entry<u64>> {
        match kind {
            Delegation::SendAs => &self.send_as,
            Delegation::FullAccess => &self.full_access,
            Delegation::SendOnBehalfTo => &self.send_on_behalf,
        }
    }

    pub fn delegations_mut(&mut self, kind: Delegation) -> &mut Vec<Entry<u64>> {
        match kind {
            Delegation::SendAs => &mut self.send_as,
            Delegation::FullAccess => &mut self.full_access,
            Delegation::SendOnBehalfTo => &mut self.send_on_behalf,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Delegation {
    SendAs,
    FullAccess,
    SendOnBehalfTo,
}

#[derive(Debug, Clone)]
pub(super) struct Disclaimer {
    pub content: String,
    pub outside_only: bool,
    pub created: String,
    pub pending: Option<u64>,
}

#[derive(Debug, Clone)]
pub(super) struct Dom {
    pub name: String,
    pub kind: DomainType,
    pub mx_relay: Option<String>,
    pub mx_valid: bool,
    pub spf_valid: bool,
    pub srv_valid: bool,
    pub state: &'static str,
    pub pending: Option<u64>,
    pub disclaimer: Option<Disclaimer>,
}

#[derive(Debug, Clone)]
pub(super) struct Contact {
    pub id: u64,
    pub email: String,
    pub display_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub initials: Option<String>,
    pub hidden_from_gal: bool,
    pub state: &'static str,
    pub pending: Option<u64>,
    pub created: String,
}

#[derive(Debug, Clone)]
pub(super) struct MList {
    pub id: u64,
    pub address: String,
    pub display_name: Option<String>,
    pub depart: String,
    pub join: String,
    pub hidden_from_gal: bool,
    pub sender_auth: bool,
    pub max_receive: Option<i64>,
    pub max_send: Option<i64>,
    pub member_accounts: Vec<Entry<u64>>,
    pub member_contacts: Vec<Entry<u64>>,
    pub managers: Vec<Entry<u64>>,
    pub state: &'static str,
    pub pending: Option<u64>,
    pub created: String,
}

pub(super) struct Svc {
    pub family: Family,
    pub org: Option<String>,
    pub name: String,
    pub hostname: Option<String>,
    pub offer: ExchangeOffer,
    pub domains: Vec<Dom>,
    pub accounts: Vec<Acct>,
    pub contacts: Vec<Contact>,
    pub lists: Vec<MList>,
    pub dovecot: Option<Passwd>,
}

impl Svc {
    /// Every address this service answers for, pending ones included: primary addresses,
    /// addresses accounts are being renamed to, aliases, group addresses.
    pub fn address_taken(&self, address: &str) -> bool {
        let a = address.to_ascii_lowercase();
        self.accounts.iter().any(|acct| {
            acct.email == a
                || acct.pending_email.as_deref() == Some(a.as_str())
                || acct.aliases.iter().any(|e| e.value == a)
        }) || self.lists.iter().any(|l| l.address == a)
    }

    pub fn account_index(&self, email: &str) -> Option<usize> {
        let email = email.to_ascii_lowercase();
        self.accounts.iter().position(|a| a.email == email)
    }

    pub fn account_by_id(&self, id: u64) -> Option<&Acct> {
        self.accounts.iter().find(|a| a.id == id)
    }

    pub fn domain_index(&self, name: &str) -> Option<usize> {
        let name = name.to_ascii_lowercase();
        self.domains.iter().position(|d| d.name == name)
    }
}

#[derive(Debug, Clone)]
pub(super) struct LAcct {
    pub name: String,
    pub password: String,
    pub size: u64,
    pub description: String,
    pub current_usage: Option<u64>,
    /// Its filters, in the order they were made (the API lists names, not priorities).
    pub filters: Vec<LFilter>,
}

/// A legacy account's filter (`email.domain.Filter`) with its rules.
#[derive(Debug, Clone)]
pub(super) struct LFilter {
    pub name: String,
    pub priority: i64,
    pub active: bool,
    pub action: String,
    pub action_param: Option<String>,
    pub rules: Vec<LRule>,
}

/// One rule of a filter (`email.domain.Rule`).
#[derive(Debug, Clone)]
pub(super) struct LRule {
    pub id: u64,
    pub header: String,
    pub operand: String,
    pub value: String,
}

#[derive(Debug, Clone)]
pub(super) struct Redir {
    pub id: String,
    pub from: String,
    pub to: String,
    pub local_copy: bool,
}

#[derive(Debug, Clone)]
pub(super) struct LList {
    pub id: u64,
    pub name: String,
    pub owner: String,
    pub language: String,
    pub reply_to: Option<String>,
    pub moderator_message: bool,
    pub subscribe_by_moderator: bool,
    pub users_post_only: bool,
    pub subscribers: Vec<String>,
    pub moderators: Vec<String>,
}

pub(super) struct Legacy {
    pub domain: String,
    pub accounts: Vec<LAcct>,
    pub redirections: Vec<Redir>,
    pub lists: Vec<LList>,
    pub mx_valid: bool,
    pub spf_valid: bool,
    pub dovecot: Option<Passwd>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TaskStatus {
    Todo,
    Doing,
    Done,
    Error,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Todo => "todo",
            TaskStatus::Doing => "doing",
            TaskStatus::Done => "done",
            TaskStatus::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Owner {
    Service(usize),
    Legacy(usize),
}

/// The task lists of the legacy API the simulator fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LegacyKind {
    Account,
    Redirection,
    MailingList,
    /// Named by the account the filter belongs to (`/task/filter?account=`).
    Filter,
}

type OnEnd = Box<dyn FnOnce(&mut State, bool, u64) -> Result<(), String> + Send>;

pub(super) struct Task {
    pub id: u64,
    pub owner: Owner,
    pub function: &'static str,
    pub status: TaskStatus,
    pub todo_date: String,
    pub finish_date: Option<String>,
    /// The account a service task concerns (`/account/{email}/tasks`).
    pub account: Option<u64>,
    /// Legacy tasks: which list, the account or list name, and the action.
    pub legacy: Option<(LegacyKind, String)>,
    fail: bool,
    /// Applies the change (`true`) or undoes the pending marks (`false`) when the task ends.
    on_end: Option<OnEnd>,
}

pub(super) struct Settings {
    pub task_delay: Duration,
    pub manual_tasks: bool,
    pub fresh_password: FreshPassword,
    pub clock_offset: i64,
}

pub(super) struct App {
    pub id: u64,
    pub key: String,
    pub secret: String,
}

pub(super) struct Ck {
    pub id: u64,
    pub key: String,
    /// What the validation URL carries: like the real `credentialToken`, not the key itself,
    /// which must never travel in a URL.
    pub token: String,
    pub app: String,
    pub rules: Vec<world::AccessRule>,
    pub validated: bool,
    pub expired: bool,
    pub redirection: Option<String>,
    pub created: String,
    pub last_use: Option<String>,
}

pub(super) struct State {
    pub settings: Settings,
    pub apps: Vec<App>,
    pub cks: Vec<Ck>,
    pub services: Vec<Svc>,
    pub legacy: Vec<Legacy>,
    pub tasks: BTreeMap<u64, Task>,
    next_task: u64,
    next_id: u64,
    rng: u64,
    pub requests: Vec<RequestRecord>,
    pub violations: Vec<Violation>,
    pub faults: Vec<Fault>,
    pub next_query: u64,
    /// Tasks created by the call being handled: the HTTP layer schedules them.
    pub new_tasks: Vec<u64>,
    /// A `fail_task` fault matched the call being handled.
    pub fail_tasks: bool,
    /// DNS zones (`/domain/zone`).
    pub zones: Vec<DnsZone>,
    /// Per name server: the zones it keeps answering while held back, `None` when it answers
    /// the zones as last refreshed.
    pub dns_held: Vec<Option<Vec<Served>>>,
    /// The running name servers, once started.
    pub dns_servers: Vec<NameServer>,
}

impl State {
    pub fn from_world(w: &World) -> Result<State, SimError> {
        let mut st = State {
            settings: Settings {
                task_delay: Duration::from_millis(w.task_delay_ms),
                manual_tasks: w.manual_tasks,
                fresh_password: w.fresh_password,
                clock_offset: w.clock_offset_secs,
            },
            apps: Vec::new(),
            cks: Vec::new(),
            services: Vec::new(),
            legacy: Vec::new(),
            tasks: BTreeMap::new(),
            next_task: 1,
            next_id: 1,
            rng: w.seed | 1,
            requests: Vec::new(),
            violations: Vec::new(),
            faults: Vec::new(),
            next_query: 1,
            new_tasks: Vec::new(),
            fail_tasks: false,
            zones: Vec::new(),
            dns_held: vec![None; NAME_SERVERS.len()],
            dns_servers: Vec::new(),
        };
        let now = st.now_str();
        for (i, a) in w.applications.iter().enumerate() {
            st.apps.push(App {
                id: 1000 + i as u64,
                key: a.key.clone(),
                secret: a.secret.clone(),
            });
        }
        for ck in &w.consumer_keys {
            if !st.apps.iter().any(|a| a.key == ck.application) {
                return Err(bad_world(format!(
                    "consumer key {}…: unknown application {}",
                    prefix(&ck.key),
                    ck.application
                )));
            }
            let id = st.id();
            st.cks.push(Ck {
                id,
                key: ck.key.clone(),
                token: format!("world-{id}"),
                app: ck.application.clone(),
                rules: ck.rules.clone(),
                validated: ck.validated,
                expired: false,
                redirection: None,
                created: now.clone(),
                last_use: None,
            });
        }
        // Explicit ids first, so generated ones never collide with them.
        let explicit = w
            .exchange
            .iter()
            .chain(&w.pro)
            .chain(&w.mxplan)
            .flat_map(|s| {
                s.accounts
                    .iter()
                    .filter_map(|a| a.id)
                    .chain(s.external_contacts.iter().filter_map(|c| c.id))
            })
            .max();
        st.next_id = st.next_id.max(explicit.map_or(1, |m| m + 1));
        for (family, list) in [
            (Family::Exchange, &w.exchange),
            (Family::Pro, &w.pro),
            (Family::MxPlan, &w.mxplan),
        ] {
            for s in list {
                let svc = st.build_service(family, s)?;
                if st
                    .services
                    .iter()
                    .any(|o| o.family == family && o.name == svc.name && o.org == svc.org)
                {
                    return Err(bad_world(format!(
                        "{} service {} is listed twice",
                        family.name(),
                        svc.name
                    )));
                }
                st.services.push(svc);
            }
        }
        // The rule attaching enforces must hold from the start: a domain on several
        // services is non-authoritative on all of them.
        for (i, svc) in st.services.iter().enumerate() {
            for d in svc
                .domains
                .iter()
                .filter(|d| d.kind == DomainType::Authoritative)
            {
                if let Some((other, _)) = st.holders(&d.name, i).first() {
                    return Err(bad_world(format!(
                        "{} service {} holds {} as authoritative, but {} service {} holds it too",
                        svc.family.name(),
                        svc.name,
                        d.name,
                        st.services[*other].family.name(),
                        st.services[*other].name
                    )));
                }
            }
        }
        for d in &w.legacy_domains {
            let legacy = st.build_legacy(d)?;
            st.legacy.push(legacy);
        }
        for z in &w.zones {
            let now = st.now_str();
            let zone = DnsZone::from_world(z, &mut || st.id(), now);
            if st.zones.iter().any(|other| other.name == zone.name) {
                return Err(bad_world(format!("zone {} is listed twice", zone.name)));
            }
            for r in &zone.records {
                rdata(&r.field_type, &r.target).map_err(|e| {
                    bad_world(format!(
                        "zone {}: record {:?} {} {:?}: {e}",
                        zone.name, r.sub, r.field_type, r.target
                    ))
                })?;
            }
            st.zones.push(zone);
        }
        Ok(st)
    }

    fn build_service(&mut self, family: Family, s: &world::Service) -> Result<Svc, SimError> {
        let what = format!("{} service {}", family.name(), s.service);
        let exchange = family == Family::Exchange;
        if exchange && s.organization.is_none() {
            return Err(bad_world(format!("{what}: organization is required")));
        }
        if !exchange && (s.organization.is_some() || s.offer.is_some()) {
            return Err(bad_world(format!(
                "{what}: organization and offer exist on Exchange only"
            )));
        }
        if !exchange && !s.mailing_lists.is_empty() {
            return Err(bad_world(format!(
                "{what}: mailing lists exist on Exchange only"
            )));
        }
        let now = self.now_str();
        let mut svc = Svc {
            family,
            org: s.organization.clone(),
            name: s.service.clone(),
            hostname: s.hostname.clone(),
            offer: s.offer.unwrap_or(ExchangeOffer::Hosted),
            domains: Vec::new(),
            accounts: Vec::new(),
            contacts: Vec::new(),
            lists: Vec::new(),
            dovecot: None,
        };
        for d in &s.domains {
            let name = d.name.to_ascii_lowercase();
            if svc.domain_index(&name).is_some() {
                return Err(bad_world(format!("{what}: domain {name} is listed twice")));
            }
            if d.kind == DomainType::NonAuthoritative && d.mx_relay.is_none() {
                return Err(bad_world(format!(
                    "{what}: non-authoritative domain {name} needs mx_relay"
                )));
            }
            svc.domains.push(Dom {
                name,
                kind: d.kind,
                mx_relay: d.mx_relay.clone(),
                mx_valid: d.mx_valid,
                spf_valid: d.spf_valid,
                srv_valid: d.srv_valid,
                state: "ok",
                pending: None,
                disclaimer: d.disclaimer.as_ref().map(|x| Disclaimer {
                    content: x.content.clone(),
                    outside_only: x.outside_only,
                    created: now.clone(),
                    pending: None,
                }),
            });
        }
        for a in &s.accounts {
            let email = a.email.to_ascii_lowercase();
            let Some((_, domain)) = email.split_once('@') else {
                return Err(bad_world(format!("{what}: {email} is not an address")));
            };
            if a.configured && svc.domain_index(domain).is_none() {
                return Err(bad_world(format!(
                    "{what}: account {email}: {domain} is not one of its domains"
                )));
            }
            if svc.address_taken(&email) {
                return Err(bad_world(format!("{what}: {email} is used twice")));
            }
            let id = match a.id {
                Some(id) => id,
                None => self.id(),
            };
            let mut acct = new_account(id, &email, &a.password, a.configured, &now);
            acct.display_name = a.display_name.clone();
            acct.first_name = a.first_name.clone();
            acct.last_name = a.last_name.clone();
            acct.current_usage = a.current_usage.or(acct.current_usage);
            acct.forwarding_email = a.forwarding_email.clone();
            acct.store_copy = a.store_copy_of_email;
            acct.hidden_from_gal = a.hidden_from_gal;
            if let Some(l) = &a.license {
                acct.license = l.clone();
            }
            for alias in &a.aliases {
                let alias = alias.to_ascii_lowercase();
                if svc.address_taken(&alias) || alias == email {
                    return Err(bad_world(format!("{what}: {alias} is used twice")));
                }
                acct.aliases.push(Entry::new(alias, now.clone(), None));
            }
            svc.accounts.push(acct);
        }
        for _ in 0..s.placeholders {
            let email = self.placeholder_address();
            let id = self.id();
            let password = super::service::placeholder_password(self);
            svc.accounts
                .push(new_account(id, &email, &password, false, &now));
        }
        // Delegations name accounts that may come later in the list.
        for a in &s.accounts {
            let email = a.email.to_ascii_lowercase();
            for (kind, list) in [
                (Delegation::SendAs, &a.send_as),
                (Delegation::FullAccess, &a.full_access),
                (Delegation::SendOnBehalfTo, &a.send_on_behalf_to),
            ] {
                for other in list {
                    let Some(allowed) = svc.account_index(other).map(|i| svc.accounts[i].id) else {
                        return Err(bad_world(format!(
                            "{what}: account {email}: delegate {other} is not an account of this service"
                        )));
                    };
                    if let Some(i) = svc.account_index(&email) {
                        svc.accounts[i].delegations_mut(kind).push(Entry::new(
                            allowed,
                            now.clone(),
                            None,
                        ));
                    }
                }
            }
        }
        for c in &s.external_contacts {
            let id = match c.id {
                Some(id) => id,
                None => self.id(),
            };
            svc.contacts.push(Contact {
                id,
                email: c.email.to_ascii_lowercase(),
                display_name: c.display_name.clone(),
                first_name: c.first_name.clone(),
                last_name: c.last_name.clone(),
                initials: None,
                hidden_from_gal: c.hidden_from_gal,
                state: "ok",
                pending: None,
                created: now.clone(),
            });
        }
        for l in &s.mailing_lists {
            let address = l.address.to_ascii_lowercase();
            if svc.address_taken(&address) {
                return Err(bad_world(format!("{what}: {address} is used twice")));
            }
            let mut list = MList {
                id: self.id(),
                address,
                display_name: l.display_name.clone(),
                depart: l.depart_restriction.clone(),
                join: l.join_restriction.clone(),
                hidden_from_gal: false,
                sender_auth: false,
                max_receive: None,
                max_send: None,
                member_accounts: Vec::new(),
                member_contacts: Vec::new(),
                managers: Vec::new(),
                state: "ok",
                pending: None,
                created: now.clone(),
            };
            for m in &l.members {
                let m = m.to_ascii_lowercase();
                if let Some(i) = svc.account_index(&m) {
                    let id = svc.accounts[i].id;
                    list.member_accounts.push(Entry::new(id, now.clone(), None));
                } else if let Some(c) = svc.contacts.iter().find(|c| c.email == m) {
                    list.member_contacts
                        .push(Entry::new(c.id, now.clone(), None));
                } else {
                    return Err(bad_world(format!(
                        "{what}: group {}: member {m} is neither an account nor a contact",
                        list.address
                    )));
                }
            }
            for m in &l.managers {
                let Some(i) = svc.account_index(m) else {
                    return Err(bad_world(format!(
                        "{what}: group {}: manager {m} is not an account",
                        list.address
                    )));
                };
                list.managers
                    .push(Entry::new(svc.accounts[i].id, now.clone(), None));
            }
            svc.lists.push(list);
        }
        if let Some(backend) = &s.dovecot {
            let passwd = Passwd::open(backend).map_err(|e| bad_world(format!("{what}: {e}")))?;
            for a in svc.accounts.iter().filter(|a| a.configured) {
                passwd
                    .ensure(&a.email, &a.password)
                    .map_err(|e| bad_world(format!("{what}: {e}")))?;
            }
            svc.dovecot = Some(passwd);
        }
        Ok(svc)
    }

    fn build_legacy(&mut self, d: &world::LegacyDomain) -> Result<Legacy, SimError> {
        let domain = d.domain.to_ascii_lowercase();
        let what = format!("legacy MX Plan domain {domain}");
        if self.legacy.iter().any(|l| l.domain == domain) {
            return Err(bad_world(format!("{what} is listed twice")));
        }
        let mut legacy = Legacy {
            domain: domain.clone(),
            accounts: Vec::new(),
            redirections: Vec::new(),
            lists: Vec::new(),
            mx_valid: d.mx_valid,
            spf_valid: d.spf_valid,
            dovecot: None,
        };
        for a in &d.accounts {
            let name = a.account_name.to_ascii_lowercase();
            if legacy.accounts.iter().any(|x| x.name == name) {
                return Err(bad_world(format!("{what}: account {name} is listed twice")));
            }
            let mut filters: Vec<LFilter> = Vec::new();
            for f in &a.filters {
                let filter = self.build_filter(f).map_err(|e| {
                    bad_world(format!("{what}: account {name}: filter {:?}: {e}", f.name))
                })?;
                if filters.iter().any(|x| x.name == filter.name) {
                    return Err(bad_world(format!(
                        "{what}: account {name}: filter {:?} is listed twice",
                        f.name
                    )));
                }
                filters.push(filter);
            }
            legacy.accounts.push(LAcct {
                name,
                password: a.password.clone(),
                size: a.size,
                description: a.description.clone(),
                current_usage: a.current_usage,
                filters,
            });
        }
        for r in &d.redirections {
            let id = match &r.id {
                Some(id) => id.clone(),
                None => self.id().to_string(),
            };
            legacy.redirections.push(Redir {
                id,
                from: r.from.to_ascii_lowercase(),
                to: r.to.to_ascii_lowercase(),
                local_copy: r.local_copy,
            });
        }
        for l in &d.mailing_lists {
            legacy.lists.push(LList {
                id: self.id(),
                name: l.name.to_ascii_lowercase(),
                owner: l.owner_email.clone(),
                language: l.language.clone(),
                reply_to: l.reply_to.clone(),
                moderator_message: l.moderator_message,
                subscribe_by_moderator: l.subscribe_by_moderator,
                users_post_only: l.users_post_only,
                subscribers: l.subscribers.clone(),
                moderators: l.moderators.clone(),
            });
        }
        if let Some(backend) = &d.dovecot {
            let passwd = Passwd::open(backend).map_err(|e| bad_world(format!("{what}: {e}")))?;
            for a in &legacy.accounts {
                passwd
                    .ensure(&format!("{}@{domain}", a.name), &a.password)
                    .map_err(|e| bad_world(format!("{what}: {e}")))?;
            }
            legacy.dovecot = Some(passwd);
        }
        Ok(legacy)
    }

    /// A filter of the world file, its action and operands checked against the schema's enums.
    fn build_filter(&mut self, f: &world::LegacyFilter) -> Result<LFilter, String> {
        if !FILTER_ACTIONS.contains(&f.action.as_str()) {
            return Err(format!(
                "action {:?} is not one of {FILTER_ACTIONS:?}",
                f.action
            ));
        }
        let mut rules = Vec::new();
        for r in &f.rules {
            if !FILTER_OPERANDS.contains(&r.operand.as_str()) {
                return Err(format!(
                    "operand {:?} is not one of {FILTER_OPERANDS:?}",
                    r.operand
                ));
            }
            rules.push(LRule {
                id: r.id.unwrap_or_else(|| self.id()),
                header: r.header.clone(),
                operand: r.operand.clone(),
                value: r.value.clone(),
            });
        }
        Ok(LFilter {
            name: f.name.clone(),
            priority: f.priority,
            active: f.active,
            action: f.action.clone(),
            action_param: f.action_param.clone(),
            rules,
        })
    }

    /// The current state in the world file's shape.
    pub fn to_world(&self) -> World {
        let mut w = World {
            applications: self
                .apps
                .iter()
                .map(|a| world::Application {
                    key: a.key.clone(),
                    secret: a.secret.clone(),
                })
                .collect(),
            consumer_keys: self
                .cks
                .iter()
                .filter(|c| !c.expired)
                .map(|c| world::ConsumerKey {
                    key: c.key.clone(),
                    application: c.app.clone(),
                    rules: c.rules.clone(),
                    validated: c.validated,
                })
                .collect(),
            task_delay_ms: self.settings.task_delay.as_millis() as u64,
            manual_tasks: self.settings.manual_tasks,
            fresh_password: self.settings.fresh_password,
            clock_offset_secs: self.settings.clock_offset,
            seed: self.rng,
            ..World::default()
        };
        for s in &self.services {
            let email_of = |id: &u64| s.account_by_id(*id).map(|a| a.email.clone());
            let service = world::Service {
                organization: s.org.clone(),
                service: s.name.clone(),
                hostname: s.hostname.clone(),
                offer: (s.family == Family::Exchange).then_some(s.offer),
                domains: s
                    .domains
                    .iter()
                    .map(|d| world::Domain {
                        name: d.name.clone(),
                        kind: d.kind,
                        mx_relay: d.mx_relay.clone(),
                        mx_valid: d.mx_valid,
                        spf_valid: d.spf_valid,
                        srv_valid: d.srv_valid,
                        disclaimer: d.disclaimer.as_ref().map(|x| world::Disclaimer {
                            content: x.content.clone(),
                            outside_only: x.outside_only,
                        }),
                    })
                    .collect(),
                accounts: s
                    .accounts
                    .iter()
                    .map(|a| world::Account {
                        email: a.email.clone(),
                        password: a.password.clone(),
                        id: Some(a.id),
                        configured: a.configured,
                        display_name: a.display_name.clone(),
                        first_name: a.first_name.clone(),
                        last_name: a.last_name.clone(),
                        current_usage: a.current_usage,
                        aliases: a.aliases.iter().map(|e| e.value.clone()).collect(),
                        forwarding_email: a.forwarding_email.clone(),
                        store_copy_of_email: a.store_copy,
                        license: (s.family == Family::Exchange).then(|| a.license.clone()),
                        hidden_from_gal: a.hidden_from_gal,
                        send_as: a
                            .send_as
                            .iter()
                            .filter_map(|e| email_of(&e.value))
                            .collect(),
                        full_access: a
                            .full_access
                            .iter()
                            .filter_map(|e| email_of(&e.value))
                            .collect(),
                        send_on_behalf_to: a
                            .send_on_behalf
                            .iter()
                            .filter_map(|e| email_of(&e.value))
                            .collect(),
                    })
                    .collect(),
                placeholders: 0,
                mailing_lists: s
                    .lists
                    .iter()
                    .map(|l| world::MailingList {
                        address: l.address.clone(),
                        display_name: l.display_name.clone(),
                        depart_restriction: l.depart.clone(),
                        join_restriction: l.join.clone(),
                        members: l
                            .member_accounts
                            .iter()
                            .filter_map(|e| email_of(&e.value))
                            .chain(l.member_contacts.iter().filter_map(|e| {
                                s.contacts
                                    .iter()
                                    .find(|c| c.id == e.value)
                                    .map(|c| c.email.clone())
                            }))
                            .collect(),
                        managers: l
                            .managers
                            .iter()
                            .filter_map(|e| email_of(&e.value))
                            .collect(),
                    })
                    .collect(),
                external_contacts: s
                    .contacts
                    .iter()
                    .map(|c| world::ExternalContact {
                        email: c.email.clone(),
                        id: Some(c.id),
                        display_name: c.display_name.clone(),
                        first_name: c.first_name.clone(),
                        last_name: c.last_name.clone(),
                        hidden_from_gal: c.hidden_from_gal,
                    })
                    .collect(),
                dovecot: s.dovecot.as_ref().map(|p| p.backend().clone()),
            };
            match s.family {
                Family::Exchange => w.exchange.push(service),
                Family::Pro => w.pro.push(service),
                Family::MxPlan => w.mxplan.push(service),
            }
        }
        w.zones = self.zones.iter().map(DnsZone::to_world).collect();
        for l in &self.legacy {
            w.legacy_domains.push(world::LegacyDomain {
                domain: l.domain.clone(),
                accounts: l
                    .accounts
                    .iter()
                    .map(|a| world::LegacyAccount {
                        account_name: a.name.clone(),
                        password: a.password.clone(),
                        size: a.size,
                        description: a.description.clone(),
                        current_usage: a.current_usage,
                        filters: a
                            .filters
                            .iter()
                            .map(|f| world::LegacyFilter {
                                name: f.name.clone(),
                                priority: f.priority,
                                active: f.active,
                                action: f.action.clone(),
                                action_param: f.action_param.clone(),
                                rules: f
                                    .rules
                                    .iter()
                                    .map(|r| world::LegacyFilterRule {
                                        header: r.header.clone(),
                                        operand: r.operand.clone(),
                                        value: r.value.clone(),
                                        id: Some(r.id),
                                    })
                                    .collect(),
                            })
                            .collect(),
                    })
                    .collect(),
                redirections: l
                    .redirections
                    .iter()
                    .map(|r| world::Redirection {
                        from: r.from.clone(),
                        to: r.to.clone(),
                        local_copy: r.local_copy,
                        id: Some(r.id.clone()),
                    })
                    .collect(),
                mailing_lists: l
                    .lists
                    .iter()
                    .map(|m| world::LegacyMailingList {
                        name: m.name.clone(),
                        owner_email: m.owner.clone(),
                        language: m.language.clone(),
                        reply_to: m.reply_to.clone(),
                        moderator_message: m.moderator_message,
                        subscribe_by_moderator: m.subscribe_by_moderator,
                        users_post_only: m.users_post_only,
                        subscribers: m.subscribers.clone(),
                        moderators: m.moderators.clone(),
                    })
                    .collect(),
                mx_valid: l.mx_valid,
                spf_valid: l.spf_valid,
                dovecot: l.dovecot.as_ref().map(|p| p.backend().clone()),
            });
        }
        w
    }

    /// The simulated server's clock.
    pub fn now(&self) -> DateTime<Utc> {
        let real = DateTime::<Utc>::from(SystemTime::now());
        // An absurd offset in a world file must not panic a request: it is ignored instead.
        chrono::TimeDelta::try_seconds(self.settings.clock_offset)
            .and_then(|d| real.checked_add_signed(d))
            .unwrap_or(real)
    }

    /// Holds name server `index` at the zones it answers now (`hold`), or lets it answer
    /// each zone's last refresh again.
    pub fn hold_name_server(&mut self, index: usize, hold: bool) -> Result<(), String> {
        let Some(slot) = self.dns_held.get_mut(index) else {
            return Err(format!(
                "there is no name server {index}: there are {}",
                NAME_SERVERS.len()
            ));
        };
        *slot = match (hold, slot.take()) {
            // Held already: stays at what it answered, not at the latest refresh.
            (true, Some(held)) => Some(held),
            (true, None) => Some(self.zones.iter().map(|z| z.served.clone()).collect()),
            (false, _) => None,
        };
        Ok(())
    }

    pub fn now_str(&self) -> String {
        self.now().to_rfc3339_opts(SecondsFormat::Secs, false)
    }

    /// A fresh id for an account, contact, group or legacy object.
    pub fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// xorshift64: reproducible "random" values from the world's seed.
    pub fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// A new ordered-account address, shaped like the real ones (`xx12345678.001@…`).
    pub fn placeholder_address(&mut self) -> String {
        loop {
            let n = self.random();
            let address = format!(
                "ph{:08}.{:03}@{PLACEHOLDER_DOMAIN}",
                n % 100_000_000,
                (n >> 32) % 1000
            );
            if !self.services.iter().any(|s| s.address_taken(&address)) {
                return address;
            }
        }
    }

    /// Registers a task; `on_end` runs when it finishes, with `true` for `done` and `false`
    /// for `error`, and gets the task's id.
    pub fn start_task(
        &mut self,
        owner: Owner,
        function: &'static str,
        account: Option<u64>,
        legacy: Option<(LegacyKind, String)>,
        on_end: impl FnOnce(&mut State, bool, u64) -> Result<(), String> + Send + 'static,
    ) -> u64 {
        let id = self.next_task;
        self.next_task += 1;
        let task = Task {
            id,
            owner,
            function,
            status: TaskStatus::Todo,
            todo_date: self.now_str(),
            finish_date: None,
            account,
            legacy,
            fail: self.fail_tasks,
            on_end: Some(Box::new(on_end)),
        };
        self.tasks.insert(id, task);
        self.new_tasks.push(id);
        id
    }

    /// One step of a task: `todo` → `doing` → `done` (or `error`). Returns whether it moved.
    /// Legacy tasks vanish once finished, as the real ones do.
    pub fn advance(&mut self, id: u64) -> bool {
        let now = self.now_str();
        let Some(task) = self.tasks.get_mut(&id) else {
            return false;
        };
        match task.status {
            TaskStatus::Todo => {
                task.status = TaskStatus::Doing;
                true
            }
            TaskStatus::Doing => {
                let ok = !task.fail;
                task.status = if ok {
                    TaskStatus::Done
                } else {
                    TaskStatus::Error
                };
                task.finish_date = Some(now);
                let function = task.function;
                let legacy = task.legacy.is_some();
                if let Some(on_end) = task.on_end.take()
                    && let Err(e) = on_end(self, ok, id)
                {
                    eprintln!("OVHcloud simulator: task {id} ({function}) failed: {e}");
                    if let Some(task) = self.tasks.get_mut(&id) {
                        task.status = TaskStatus::Error;
                    }
                }
                if legacy {
                    self.tasks.remove(&id);
                }
                true
            }
            TaskStatus::Done | TaskStatus::Error => false,
        }
    }

    /// Moves every unfinished task one step, oldest first.
    pub fn advance_all(&mut self) -> usize {
        let ids: Vec<u64> = self.tasks.keys().copied().collect();
        ids.into_iter().filter(|id| self.advance(*id)).count()
    }

    /// The account's password lock after creation: the real API refuses a password change on
    /// an account that was just made usable, for about a second.
    pub fn mark_fresh(&self) -> Fresh {
        match self.settings.fresh_password {
            FreshPassword::DelayMs(0) | FreshPassword::Refusals(0) => Fresh::Settled,
            FreshPassword::DelayMs(ms) => Fresh::Until(Instant::now() + Duration::from_millis(ms)),
            FreshPassword::Refusals(n) => Fresh::Refusals(n),
        }
    }

    pub fn acct_mut(&mut self, svc: usize, id: u64) -> Option<&mut Acct> {
        self.services
            .get_mut(svc)?
            .accounts
            .iter_mut()
            .find(|a| a.id == id)
    }

    /// Every service (other than `except`) holding the domain, with its type.
    pub fn holders(&self, domain: &str, except: usize) -> Vec<(usize, DomainType)> {
        self.services
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != except)
            .filter_map(|(i, s)| s.domain_index(domain).map(|d| (i, s.domains[d].kind)))
            .collect()
    }

    pub fn task_json(&self, id: u64) -> Value {
        match self.tasks.get(&id) {
            Some(t) => json!({
                "id": t.id,
                "function": t.function,
                "status": t.status.as_str(),
                "todoDate": t.todo_date,
                "finishDate": t.finish_date,
            }),
            None => Value::Null,
        }
    }
}

pub(super) fn new_account(
    id: u64,
    email: &str,
    password: &str,
    configured: bool,
    now: &str,
) -> Acct {
    let (login, domain) = email.split_once('@').unwrap_or((email, ""));
    Acct {
        id,
        email: email.to_string(),
        login: login.to_string(),
        domain: domain.to_string(),
        password: password.to_string(),
        configured,
        display_name: None,
        first_name: None,
        last_name: None,
        initials: None,
        current_usage: configured.then_some(0),
        forwarding_email: None,
        store_copy: false,
        license: "standard".into(),
        hidden_from_gal: false,
        aliases: Vec::new(),
        send_as: Vec::new(),
        full_access: Vec::new(),
        send_on_behalf: Vec::new(),
        state: "ok",
        pending: None,
        pending_email: None,
        created: now.to_string(),
        password_updated: None,
        fresh: Fresh::Settled,
    }
}

/// `domain.DomainFilterActionEnum` and `domain.DomainFilterOperandEnum` of the schema.
pub(super) const FILTER_ACTIONS: [&str; 4] = ["accept", "account", "delete", "redirect"];
pub(super) const FILTER_OPERANDS: [&str; 3] = ["checkspf", "contains", "noContains"];

fn bad_world(msg: String) -> SimError {
    SimError::World(msg)
}

fn prefix(key: &str) -> &str {
    key.get(..4).unwrap_or(key)
}
