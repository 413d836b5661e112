//! The validated desired state: a plan compiled into resources with stable ids, fingerprints
//! and dependencies.
//!
//! A resource is one idempotent step's target (a domain attachment, a rename, a mailbox's
//! mail, one alias...). Its address ([`ResourceAddr`]) is stable and reads as text
//! (`account/john@example.com/mail`) so the state can be keyed by it and a person can name it
//! on the command line. It carries its [`Spec`]: everything the executor needs to carry the
//! step out, so nothing downstream goes back to the plan or splits the address. Two
//! fingerprints are kept: `identity` covers what cannot change in place once applied (a
//! rename's target, where mail goes), `fingerprint` covers everything that matters. Neither
//! ever includes a secret: credentials are hashed by where they point, not by value.

mod addr;
pub mod capabilities;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::shard::Shard;

use crate::plan::model::{
    Account, Content, DomainMode, MigrationOptions, Plan, Platform, PlatformKind, Right,
};
pub use addr::{AddrError, ResourceAddr};
use capabilities::{Feature, Support, support};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResourceKind {
    Domain,
    Rename,
    Create,
    Mail,
    Contacts,
    Calendars,
    Tasks,
    /// Inbox rules (`content: [..., rules]`).
    Rules,
    Alias,
    Redirection,
    Delegation,
    Group,
    ExternalContact,
    Footer,
    /// Reading a domain's DNS diagnostics on the destination.
    DnsCheck,
    /// Resetting the provisional source account after a verified copy.
    Cleanup,
}

impl ResourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Domain => "domain",
            ResourceKind::Rename => "rename",
            ResourceKind::Create => "create",
            ResourceKind::Mail => "mail",
            ResourceKind::Contacts => "contacts",
            ResourceKind::Calendars => "calendars",
            ResourceKind::Tasks => "tasks",
            ResourceKind::Rules => "rules",
            ResourceKind::Alias => "alias",
            ResourceKind::Redirection => "redirection",
            ResourceKind::Delegation => "delegation",
            ResourceKind::Group => "group",
            ResourceKind::ExternalContact => "external-contact",
            ResourceKind::Footer => "footer",
            ResourceKind::DnsCheck => "dns-check",
            ResourceKind::Cleanup => "cleanup",
        }
    }

    pub fn parse(s: &str) -> Option<ResourceKind> {
        ALL_KINDS.iter().copied().find(|k| k.as_str() == s)
    }

    /// Features are removed from the destination when they leave the plan: the plan is the
    /// truth for them. Accounts, mail and domains are never destroyed by omission.
    pub fn is_feature(self) -> bool {
        matches!(
            self,
            ResourceKind::Alias
                | ResourceKind::Redirection
                | ResourceKind::Delegation
                | ResourceKind::Group
                | ResourceKind::ExternalContact
                | ResourceKind::Footer
        )
    }

    pub fn is_content(self) -> bool {
        matches!(
            self,
            ResourceKind::Mail
                | ResourceKind::Contacts
                | ResourceKind::Calendars
                | ResourceKind::Tasks
                | ResourceKind::Rules
        )
    }
}

const ALL_KINDS: [ResourceKind; 16] = [
    ResourceKind::Domain,
    ResourceKind::Rename,
    ResourceKind::Create,
    ResourceKind::Mail,
    ResourceKind::Contacts,
    ResourceKind::Calendars,
    ResourceKind::Tasks,
    ResourceKind::Rules,
    ResourceKind::Alias,
    ResourceKind::Redirection,
    ResourceKind::Delegation,
    ResourceKind::Group,
    ResourceKind::ExternalContact,
    ResourceKind::Footer,
    ResourceKind::DnsCheck,
    ResourceKind::Cleanup,
];

/// How a resource's step is carried out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum Execution {
    /// A control-plane API call.
    Api,
    /// By hand, following the instructions, then `mailshift ack PLAN ID`.
    Manual { instructions: String },
    /// Content copied, then kept in sync until the account is cut over.
    Sync { cut_over: bool },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub addr: ResourceAddr,
    /// The address's text form, rendered once by `compile`: the state key, and the order of
    /// every listing.
    pub(crate) id: String,
    pub kind: ResourceKind,
    /// The account the resource belongs to (for grouping and `--target`).
    pub account: Option<String>,
    /// The platform the step acts on.
    pub platform: String,
    /// One line saying what the resource should be; safe to print (no secrets).
    pub summary: String,
    pub fingerprint: String,
    pub identity: String,
    pub execution: Execution,
    pub depends_on: Vec<ResourceAddr>,
    /// What the resource should be, as data for the executor.
    pub spec: Spec,
}

/// An account of the plan with what its steps share: built once per account and shared (not
/// copied) by all of its resources.
#[derive(Debug, PartialEq)]
pub struct AccountSpec {
    /// The address, lower-case.
    pub address: String,
    /// The account as the plan writes it (credentials are references, never values).
    pub account: Account,
    /// The source and destination platforms (`account.from`, `account.to`).
    pub source: Arc<Platform>,
    pub dest: Arc<Platform>,
    /// Migration options with the plan's defaults filled in.
    pub options: MigrationOptions,
}

impl Resource {
    /// The address's text form (`account/john@example.com/mail`): the resource's state key.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl AccountSpec {
    /// The spec of one account of the plan, as `compile` builds it (`None` when a platform it
    /// names is not in the plan: the validator refuses such a plan).
    pub fn of(plan: &Plan, a: &Account) -> Option<AccountSpec> {
        Some(AccountSpec {
            address: a.address.to_ascii_lowercase(),
            account: a.clone(),
            source: Arc::new(plan.platforms.get(&a.from)?.clone()),
            dest: Arc::new(plan.platforms.get(&a.to)?.clone()),
            options: effective_options(plan, a),
        })
    }

    /// The provisional name the source account is renamed to, lower-case.
    pub fn provisional(&self) -> Option<String> {
        self.account
            .rename_to
            .as_ref()
            .map(|r| r.to_ascii_lowercase())
    }
}

/// What a resource should be. Names are lower-case, as in its address.
#[derive(Debug, Clone, PartialEq)]
pub enum Spec {
    Domain {
        domain: String,
        mode: DomainMode,
        mx_relay: Option<String>,
    },
    DnsCheck {
        domain: String,
        /// MX must point to the platform now (else only at the cutover).
        authoritative: bool,
    },
    Rename {
        account: Arc<AccountSpec>,
        /// The provisional name.
        to: String,
    },
    Create {
        account: Arc<AccountSpec>,
    },
    Content {
        account: Arc<AccountSpec>,
        content: Content,
    },
    Alias {
        account: Arc<AccountSpec>,
        alias: String,
    },
    Redirection {
        account: Arc<AccountSpec>,
        to: String,
        local_copy: bool,
    },
    Delegation {
        account: Arc<AccountSpec>,
        grantee: String,
        rights: BTreeSet<Right>,
    },
    Cleanup {
        account: Arc<AccountSpec>,
        provisional: String,
    },
    Group {
        address: String,
        display_name: Option<String>,
        /// As the plan writes them.
        members: Vec<String>,
        owners: Vec<String>,
    },
    ExternalContact {
        address: String,
        display_name: Option<String>,
        first_name: Option<String>,
        last_name: Option<String>,
        hidden: bool,
    },
    Footer {
        domain: String,
        text: Option<String>,
        html: Option<String>,
        outside_only: bool,
    },
}

impl Spec {
    /// The account the resource belongs to, when it belongs to one.
    pub fn account(&self) -> Option<&Arc<AccountSpec>> {
        match self {
            Spec::Rename { account, .. }
            | Spec::Create { account }
            | Spec::Content { account, .. }
            | Spec::Alias { account, .. }
            | Spec::Redirection { account, .. }
            | Spec::Delegation { account, .. }
            | Spec::Cleanup { account, .. } => Some(account),
            _ => None,
        }
    }
}

/// Hashes a value's canonical JSON into a short hex fingerprint.
pub fn fingerprint<T: Serialize>(value: &T) -> String {
    let json = serde_json::to_vec(value).expect("fingerprint input serializes");
    let digest = Sha256::digest(&json);
    digest[..10].iter().map(|b| format!("{b:02x}")).collect()
}

/// Compiles the share of a plan one shard runs (`--shard I/N`): the resources of the accounts
/// it owns, and (shard 0) those that belong to no account. Dependencies keep naming resources
/// of other shards, so a step can wait for them there (`ResourceAddr::shard`).
pub fn compile_shard(plan: &Plan, shard: Shard) -> Vec<Resource> {
    let mut out = compile_some(plan, shard);
    if !shard.is_whole() {
        out.retain(|r| r.addr.shard(shard.count) == shard.index);
    }
    out
}

/// Compiles a validated plan into its resources, in a stable order (by id).
pub fn compile(plan: &Plan) -> Vec<Resource> {
    compile_some(plan, Shard::WHOLE)
}

/// `compile`, with the accounts of other shards than `shard` left out (a shard of a 100,000-
/// account plan compiles its tenth), all but the addresses of their creations, which groups
/// depend on.
fn compile_some(plan: &Plan, shard: Shard) -> Vec<Resource> {
    let mut out = Vec::new();
    for d in &plan.domains {
        let Some(p) = plan.platforms.get(&d.platform) else {
            continue;
        };
        let mode = match d.mode {
            DomainMode::Authoritative => "authoritative".to_string(),
            DomainMode::NonAuthoritative => {
                format!(
                    "non-authoritative, relay {}",
                    d.mx_relay.as_deref().unwrap_or("?")
                )
            }
        };
        let name = d.name.to_ascii_lowercase();
        let addr = ResourceAddr::Domain {
            platform: d.platform.clone(),
            domain: name.clone(),
        };
        let Some(execution) = execution_for(p, Feature::AttachDomain, || {
            format!(
                "On platform `{}`, attach domain {name} as {mode}.",
                d.platform
            )
        }) else {
            continue;
        };
        out.push(Resource {
            id: String::new(),
            summary: format!("{name} on {}: {mode}", d.platform),
            fingerprint: fingerprint(&(&d.platform, &name, d.mode, &d.mx_relay)),
            identity: fingerprint(&(&d.platform, &name)),
            kind: ResourceKind::Domain,
            account: None,
            platform: d.platform.clone(),
            execution,
            depends_on: Vec::new(),
            addr,
            spec: Spec::Domain {
                domain: name,
                mode: d.mode,
                mx_relay: d.mx_relay.clone(),
            },
        });
    }
    // A domain moving between platforms is switched on the source before it is attached on the
    // destination: an authoritative domain elsewhere blocks the attachment.
    let sources: BTreeSet<(String, String)> = plan
        .accounts
        .iter()
        .map(|a| {
            let domain = a
                .address
                .rsplit('@')
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            (a.from.clone(), domain)
        })
        .collect();
    // Only domains are in `out` so far.
    let domains: Vec<(ResourceAddr, String, String)> = out
        .iter()
        .filter_map(|r| match &r.addr {
            ResourceAddr::Domain { platform, domain } => {
                Some((r.addr.clone(), platform.clone(), domain.clone()))
            }
            _ => None,
        })
        .collect();
    for (r, (_, platform, name)) in out.iter_mut().zip(&domains) {
        if sources.contains(&(platform.clone(), name.clone())) {
            continue;
        }
        r.depends_on.extend(
            domains
                .iter()
                .filter(|(_, p, n)| {
                    n == name && p != platform && sources.contains(&(p.clone(), n.clone()))
                })
                .map(|(addr, _, _)| addr.clone()),
        );
    }
    let domain_ids: Vec<(String, ResourceAddr)> = domains
        .into_iter()
        .map(|(addr, _, name)| (name, addr))
        .collect();
    let platforms: BTreeMap<&str, Arc<Platform>> = plan
        .platforms
        .iter()
        .map(|(name, p)| (name.as_str(), Arc::new(p.clone())))
        .collect();
    // In the plan's order, whichever shard runs them.
    let mut creates: Vec<(String, ResourceAddr)> = Vec::new();
    for a in &plan.accounts {
        if shard.is_whole() || shard.owns_account(&a.address) {
            let before = out.len();
            compile_account(plan, a, &platforms, &domain_ids, &mut out);
            creates.extend(
                out[before..]
                    .iter()
                    .filter(|r| matches!(r.kind, ResourceKind::Create))
                    .filter_map(|r| r.account.clone().map(|a| (a, r.addr.clone()))),
            );
        } else if plan
            .platforms
            .get(&a.to)
            .is_some_and(|to| execution_for(to, Feature::Create, String::new).is_some())
        {
            let account = a.address.to_ascii_lowercase();
            creates.push((account.clone(), ResourceAddr::Create { account }));
        }
    }
    for g in &plan.groups {
        let Some(p) = plan.platforms.get(&g.platform) else {
            continue;
        };
        let address = g.address.to_ascii_lowercase();
        let members = sorted_lower(&g.members);
        let owners = sorted_lower(&g.owners);
        let Some(execution) = execution_for(p, Feature::Group, || {
            format!(
                "On platform `{}`, make sure the group {address}{} exists with exactly these members: {}; owners: {}.",
                g.platform,
                g.display_name
                    .as_deref()
                    .map(|n| format!(" (\"{n}\")"))
                    .unwrap_or_default(),
                list_or_none(&members),
                list_or_none(&owners)
            )
        }) else {
            continue;
        };
        // Members are accounts or external contacts: both must exist first.
        let depends_on = creates
            .iter()
            .filter(|(a, _)| members.contains(a) || owners.contains(a))
            .map(|(_, addr)| addr.clone())
            .chain(
                plan.external_contacts
                    .iter()
                    .filter(|c| {
                        c.platform == g.platform
                            && members.contains(&c.address.to_ascii_lowercase())
                    })
                    .map(|c| ResourceAddr::ExternalContact {
                        platform: c.platform.clone(),
                        address: c.address.to_ascii_lowercase(),
                    }),
            )
            .collect();
        out.push(Resource {
            id: String::new(),
            addr: ResourceAddr::Group {
                address: address.clone(),
            },
            kind: ResourceKind::Group,
            account: None,
            platform: g.platform.clone(),
            summary: format!(
                "group {address} on {}: members {}; owners {}",
                g.platform,
                list_or_none(&members),
                list_or_none(&owners)
            ),
            fingerprint: fingerprint(&(&g.platform, &address, &g.display_name, &members, &owners)),
            identity: fingerprint(&(&g.platform, &address)),
            execution,
            depends_on,
            spec: Spec::Group {
                address,
                display_name: g.display_name.clone(),
                members: g.members.clone(),
                owners: g.owners.clone(),
            },
        });
    }
    for c in &plan.external_contacts {
        let Some(p) = plan.platforms.get(&c.platform) else {
            continue;
        };
        let address = c.address.to_ascii_lowercase();
        let name = c
            .display_name
            .clone()
            .or_else(|| match (&c.first_name, &c.last_name) {
                (None, None) => None,
                (f, l) => Some(
                    format!(
                        "{} {}",
                        f.as_deref().unwrap_or(""),
                        l.as_deref().unwrap_or("")
                    )
                    .trim()
                    .to_string(),
                ),
            });
        let shown = name
            .as_deref()
            .map(|n| format!(" (\"{n}\")"))
            .unwrap_or_default();
        let Some(execution) = execution_for(p, Feature::ExternalContact, || {
            format!(
                "On platform `{}`, add the external contact {address}{shown}.",
                c.platform
            )
        }) else {
            continue;
        };
        out.push(Resource {
            id: String::new(),
            addr: ResourceAddr::ExternalContact {
                platform: c.platform.clone(),
                address: address.clone(),
            },
            kind: ResourceKind::ExternalContact,
            account: None,
            platform: c.platform.clone(),
            summary: format!(
                "external contact {address}{shown} on {}{}",
                c.platform,
                if c.hidden {
                    ", hidden from the address list"
                } else {
                    ""
                }
            ),
            fingerprint: fingerprint(&(
                &c.platform,
                &address,
                &c.display_name,
                &c.first_name,
                &c.last_name,
                c.hidden,
            )),
            identity: fingerprint(&(&c.platform, &address)),
            execution,
            depends_on: Vec::new(),
            spec: Spec::ExternalContact {
                address,
                display_name: c.display_name.clone(),
                first_name: c.first_name.clone(),
                last_name: c.last_name.clone(),
                hidden: c.hidden,
            },
        });
    }
    for f in &plan.footers {
        let Some(p) = plan.platforms.get(&f.platform) else {
            continue;
        };
        let domain = f.domain.to_ascii_lowercase();
        let (format, body) = match (&f.text, &f.html) {
            (_, Some(h)) => ("HTML", h.as_str()),
            (Some(t), None) => ("text", t.as_str()),
            (None, None) => ("text", ""),
        };
        let scope = if f.outside_only {
            "outgoing mail leaving the organization"
        } else {
            "all outgoing mail"
        };
        let Some(execution) = execution_for(p, Feature::Footer, || {
            format!(
                "On platform `{}`, set the {format} footer of {domain} for {scope}.",
                f.platform
            )
        }) else {
            continue;
        };
        let depends_on = out
            .iter()
            .filter(|r| {
                matches!(&r.addr, ResourceAddr::Domain { platform, domain: d }
                    if *platform == f.platform && *d == domain)
            })
            .map(|r| r.addr.clone())
            .collect();
        out.push(Resource {
            id: String::new(),
            addr: ResourceAddr::Footer {
                platform: f.platform.clone(),
                domain: domain.clone(),
            },
            kind: ResourceKind::Footer,
            account: None,
            platform: f.platform.clone(),
            summary: format!(
                "{format} footer on {domain} ({scope}): \"{}\"",
                excerpt(body)
            ),
            fingerprint: fingerprint(&(&f.platform, &domain, &f.text, &f.html, f.outside_only)),
            identity: fingerprint(&(&f.platform, &domain)),
            execution,
            depends_on,
            spec: Spec::Footer {
                domain,
                text: f.text.clone(),
                html: f.html.clone(),
                outside_only: f.outside_only,
            },
        });
    }
    // DNS diagnostics are read once the domain is attached, and again whenever its mode
    // changes: the switch to authoritative is the cutover, when MX must point here.
    for d in &plan.domains {
        let Some(p) = plan.platforms.get(&d.platform) else {
            continue;
        };
        let name = d.name.to_ascii_lowercase();
        // The source keeps the domain only for the move: its DNS is not where mail must go.
        if !p.kind.is_ovh() || sources.contains(&(d.platform.clone(), name.clone())) {
            continue;
        }
        let domain_id = ResourceAddr::Domain {
            platform: d.platform.clone(),
            domain: name.clone(),
        };
        let mode = match d.mode {
            DomainMode::Authoritative => "authoritative",
            DomainMode::NonAuthoritative => "non-authoritative",
        };
        out.push(Resource {
            id: String::new(),
            addr: ResourceAddr::DnsCheck {
                platform: d.platform.clone(),
                domain: name.clone(),
            },
            kind: ResourceKind::DnsCheck,
            account: None,
            platform: d.platform.clone(),
            summary: format!(
                "check the DNS of {name} on {} ({mode}: MX must point here {})",
                d.platform,
                if d.mode == DomainMode::Authoritative {
                    "now"
                } else {
                    "only at the cutover"
                }
            ),
            fingerprint: fingerprint(&(&d.platform, &name, d.mode)),
            identity: fingerprint(&(&d.platform, &name)),
            execution: Execution::Api,
            depends_on: if out.iter().any(|r| r.addr == domain_id) {
                vec![domain_id]
            } else {
                Vec::new()
            },
            spec: Spec::DnsCheck {
                domain: name,
                authoritative: d.mode == DomainMode::Authoritative,
            },
        });
    }
    for r in &mut out {
        r.id = r.addr.to_string();
    }
    // By the text form: the order people and the JSON view have always seen.
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

fn compile_account(
    plan: &Plan,
    a: &Account,
    platforms: &BTreeMap<&str, Arc<Platform>>,
    domain_ids: &[(String, ResourceAddr)],
    out: &mut Vec<Resource>,
) {
    let (Some(from), Some(to)) = (platforms.get(a.from.as_str()), platforms.get(a.to.as_str()))
    else {
        return;
    };
    let address = a.address.to_ascii_lowercase();
    let domain = address.rsplit('@').next().unwrap_or("").to_string();
    let opts = effective_options(plan, a);
    let spec = Arc::new(AccountSpec {
        address: address.clone(),
        account: a.clone(),
        source: from.clone(),
        dest: to.clone(),
        options: opts.clone(),
    });
    let (from, to) = (&**from, &**to);
    let mut deps: Vec<ResourceAddr> = domain_ids
        .iter()
        .filter(|(d, _)| *d == domain)
        .map(|(_, id)| id.clone())
        .collect();

    if let Some(rename) = &a.rename_to {
        let rename = rename.to_ascii_lowercase();
        let id = ResourceAddr::Rename {
            account: address.clone(),
        };
        if let Some(execution) = execution_for(from, Feature::Rename, || {
            format!(
                "On platform `{}`, rename the account {address} to {rename}.",
                a.from
            )
        }) {
            out.push(Resource {
                id: String::new(),
                addr: id.clone(),
                kind: ResourceKind::Rename,
                account: Some(address.clone()),
                platform: a.from.clone(),
                summary: format!("rename {address} to {rename} on {}", a.from),
                fingerprint: fingerprint(&(&a.from, &address, &rename)),
                identity: fingerprint(&(&a.from, &address, &rename)),
                execution,
                depends_on: deps.clone(),
                spec: Spec::Rename {
                    account: spec.clone(),
                    to: rename,
                },
            });
            deps = vec![id];
        }
    }
    let dest_login = dest_login(a);
    if let Some(execution) = execution_for(to, Feature::Create, || {
        format!(
            "On platform `{}`, create the account {address} with the destination password.",
            a.to
        )
    }) {
        let id = ResourceAddr::Create {
            account: address.clone(),
        };
        out.push(Resource {
            id: String::new(),
            addr: id.clone(),
            kind: ResourceKind::Create,
            account: Some(address.clone()),
            platform: a.to.clone(),
            summary: format!("create {address} on {}", a.to),
            fingerprint: fingerprint(&(&a.to, &address)),
            identity: fingerprint(&(&a.to, &address)),
            execution,
            depends_on: deps.clone(),
            spec: Spec::Create {
                account: spec.clone(),
            },
        });
        deps.push(id);
    }
    let source_login = source_login(a);
    let mut content_ids = Vec::new();
    let content = a.content.clone().unwrap_or_else(|| vec![Content::Mail]);
    for c in BTreeSet::from_iter(content) {
        let kind = match c {
            Content::Mail => ResourceKind::Mail,
            Content::Contacts => ResourceKind::Contacts,
            Content::Calendars => ResourceKind::Calendars,
            Content::Tasks => ResourceKind::Tasks,
            Content::Rules => ResourceKind::Rules,
        };
        let id = ResourceAddr::Content {
            account: address.clone(),
            content: c,
        };
        let endpoints = (endpoint_identity(from, c), endpoint_identity(to, c));
        out.push(Resource {
            id: String::new(),
            addr: id.clone(),
            kind,
            account: Some(address.clone()),
            platform: a.to.clone(),
            summary: format!(
                "copy {} of {address}: {} ({}) → {} ({})",
                c.as_str(),
                a.from,
                side_label(from, &address, &source_login),
                a.to,
                side_label(to, &address, &dest_login),
            ),
            // Mail is selected by folders, the rest by collections: a change to one does not
            // make the other rescan. Rules name folders, so the folder mapping is theirs too.
            fingerprint: if matches!(c, Content::Mail | Content::Rules) {
                fingerprint(&(&endpoints, &source_login, &dest_login, &a.folders, &opts))
            } else {
                fingerprint(&(
                    &endpoints,
                    &source_login,
                    &dest_login,
                    &a.collections,
                    &opts,
                ))
            },
            // Where content goes is its identity; the source side may change (a corrected login,
            // a new host name) and the copy re-matches what it already sent.
            identity: fingerprint(&(&a.to, &endpoints.1, &dest_login)),
            execution: Execution::Sync {
                cut_over: opts.cut_over.unwrap_or(false),
            },
            depends_on: deps.clone(),
            spec: Spec::Content {
                account: spec.clone(),
                content: c,
            },
        });
        content_ids.push(id);
    }
    let feature_deps = if content_ids.is_empty() {
        deps.clone()
    } else {
        content_ids
    };
    for alias in &a.aliases {
        let alias = alias.to_ascii_lowercase();
        if let Some(execution) = execution_for(to, Feature::Alias, || {
            format!(
                "On platform `{}`, add the alias {alias} to the account {address} (remove it from the source account first).",
                a.to
            )
        }) {
            out.push(Resource {
                id: String::new(),
                addr: ResourceAddr::Alias {
                    account: address.clone(),
                    alias: alias.clone(),
                },
                kind: ResourceKind::Alias,
                account: Some(address.clone()),
                platform: a.to.clone(),
                summary: format!("alias {alias} → {address} on {}", a.to),
                fingerprint: fingerprint(&(&a.to, &address, &alias)),
                identity: fingerprint(&(&a.to, &address, &alias)),
                execution,
                depends_on: feature_deps.clone(),
                spec: Spec::Alias {
                    account: spec.clone(),
                    alias,
                },
            });
        }
    }
    for r in &a.redirections {
        let target = r.to.to_ascii_lowercase();
        let copy = if r.local_copy {
            "keeping a local copy"
        } else {
            "without a local copy"
        };
        if let Some(execution) = execution_for(to, Feature::Redirection, || {
            format!(
                "On platform `{}`, redirect the mail of {address} to {target}, {copy}.",
                a.to
            )
        }) {
            out.push(Resource {
                id: String::new(),
                addr: ResourceAddr::Redirection {
                    account: address.clone(),
                    to: target.clone(),
                },
                kind: ResourceKind::Redirection,
                account: Some(address.clone()),
                platform: a.to.clone(),
                summary: format!("redirect {address} → {target}, {copy}"),
                fingerprint: fingerprint(&(&a.to, &address, &target, r.local_copy)),
                identity: fingerprint(&(&a.to, &address, &target)),
                execution,
                depends_on: feature_deps.clone(),
                spec: Spec::Redirection {
                    account: spec.clone(),
                    to: target,
                    local_copy: r.local_copy,
                },
            });
        }
    }
    for d in &a.delegations {
        let grantee = d.grantee.to_ascii_lowercase();
        let rights: BTreeSet<_> = d.rights.iter().copied().collect();
        let rights_text = rights
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        if let Some(execution) = execution_for(to, Feature::Delegation, || {
            format!(
                "On platform `{}`, give {grantee} these rights on {address}: {rights_text}.",
                a.to
            )
        }) {
            let mut depends_on = feature_deps.clone();
            if plan
                .accounts
                .iter()
                .any(|o| o.address.eq_ignore_ascii_case(&grantee))
            {
                depends_on.push(ResourceAddr::Create {
                    account: grantee.clone(),
                });
            }
            out.push(Resource {
                id: String::new(),
                addr: ResourceAddr::Delegation {
                    account: address.clone(),
                    grantee: grantee.clone(),
                },
                kind: ResourceKind::Delegation,
                account: Some(address.clone()),
                platform: a.to.clone(),
                summary: format!("{grantee} may {rights_text} on {address}"),
                fingerprint: fingerprint(&(&a.to, &address, &grantee, &rights)),
                identity: fingerprint(&(&a.to, &address, &grantee)),
                execution,
                depends_on,
                spec: Spec::Delegation {
                    account: spec.clone(),
                    grantee,
                    rights,
                },
            });
        }
    }
    if a.reset_provisional
        && let Some(provisional) = &a.rename_to
    {
        let provisional = provisional.to_ascii_lowercase();
        let depends_on = out
            .iter()
            .filter(|r| {
                r.account.as_deref() == Some(address.as_str())
                    && (r.kind.is_content() || r.kind.is_feature())
            })
            .map(|r| r.addr.clone())
            .collect();
        out.push(Resource {
            id: String::new(),
            addr: ResourceAddr::Cleanup {
                account: address.clone(),
            },
            kind: ResourceKind::Cleanup,
            account: Some(address.clone()),
            platform: a.from.clone(),
            summary: format!(
                "reset the provisional account {provisional} on {} once its copy is verified",
                a.from
            ),
            fingerprint: fingerprint(&(&a.from, &provisional)),
            identity: fingerprint(&(&a.from, &provisional)),
            execution: Execution::Api,
            depends_on,
            spec: Spec::Cleanup {
                account: spec.clone(),
                provisional,
            },
        });
    }
}

/// Which server a content resource talks to: part of its identity (mail copied to one server
/// cannot be "updated" into another).
/// How one side of a copy is shown: the login, or a `files` platform's directory.
fn side_label(p: &Platform, address: &str, login: &str) -> String {
    match (&p.kind, &p.path) {
        (PlatformKind::Files, Some(dir)) => format!("{}/{address}/", dir.trim_end_matches('/')),
        _ => login.to_string(),
    }
}

fn endpoint_identity(p: &Platform, c: Content) -> String {
    if p.kind == PlatformKind::Files {
        return format!("files:{}", p.path.as_deref().unwrap_or_default());
    }
    match c {
        // An OVHcloud mailbox is the service's, whichever host reaches it: the one read from
        // the API at each run, or one written in the plan (so writing it out, leaving it to the
        // API, or a service moved to another cluster is not another copy).
        Content::Mail if p.kind.is_ovh() && p.pop3.is_none() => format!(
            "{}:{}{}",
            p.kind.as_str(),
            p.organization
                .as_deref()
                .map(|o| format!("{o}/"))
                .unwrap_or_default(),
            p.service.as_deref().unwrap_or_default()
        ),
        Content::Mail => p
            .imap_endpoint()
            .map(|i| {
                format!(
                    "imap://{}:{}",
                    i.host.to_ascii_lowercase(),
                    i.effective_port()
                )
            })
            .unwrap_or_default(),
        Content::Rules => p
            .sieve
            .as_ref()
            .and_then(|s| s.resolve(p.imap_endpoint().as_deref()).ok())
            .map(|e| {
                format!(
                    "sieve://{}:{}",
                    e.host.to_ascii_lowercase(),
                    e.effective_port()
                )
            })
            .unwrap_or_else(|| p.kind.as_str().to_string()),
        Content::Contacts | Content::Calendars | Content::Tasks => p
            .dav
            .as_ref()
            .map(|d| d.url.clone())
            .unwrap_or_else(|| p.kind.as_str().to_string()),
    }
}

/// The login on the source: explicit, else the provisional name of a renamed account, else
/// the address.
pub fn source_login(a: &Account) -> String {
    a.source
        .login
        .clone()
        .or_else(|| a.rename_to.as_ref().map(|r| r.to_ascii_lowercase()))
        .unwrap_or_else(|| a.address.to_ascii_lowercase())
}

/// The login on the destination: explicit, else the address.
pub fn dest_login(a: &Account) -> String {
    a.destination
        .login
        .clone()
        .unwrap_or_else(|| a.address.to_ascii_lowercase())
}

/// The account's migration options with the plan's defaults filled in.
pub fn effective_options(plan: &Plan, a: &Account) -> crate::plan::model::MigrationOptions {
    let d = &plan.options;
    let o = &a.options;
    crate::plan::model::MigrationOptions {
        parallel_accounts: None,
        connections_per_account: o.connections_per_account.or(d.connections_per_account),
        max_message_size: o
            .max_message_size
            .clone()
            .or_else(|| d.max_message_size.clone()),
        since: o.since.clone().or_else(|| d.since.clone()),
        before: o.before.clone().or_else(|| d.before.clone()),
        newest_first: o.newest_first.or(d.newest_first),
        max_items: o.max_items.or(d.max_items),
        sync_interval: o.sync_interval.clone().or_else(|| d.sync_interval.clone()),
        cut_over: o.cut_over.or(d.cut_over),
        gmail_archive_folder: o
            .gmail_archive_folder
            .clone()
            .or_else(|| d.gmail_archive_folder.clone()),
        adopt_existing: o.adopt_existing.or(d.adopt_existing),
        calendar_attendees: o.calendar_attendees.or(d.calendar_attendees),
    }
}

/// `None` when the platform needs no step for this feature (a precondition).
fn execution_for(
    p: &Platform,
    f: Feature,
    instructions: impl FnOnce() -> String,
) -> Option<Execution> {
    match support(p, f) {
        Support::Api => Some(Execution::Api),
        Support::Manual => Some(Execution::Manual {
            instructions: instructions(),
        }),
        // Validation refuses impossible features; a precondition is checked live by apply.
        Support::Precondition | Support::Impossible(_) => None,
    }
}

fn sorted_lower(v: &[String]) -> Vec<String> {
    let set: BTreeSet<String> = v.iter().map(|s| s.to_ascii_lowercase()).collect();
    set.into_iter().collect()
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".to_string()
    } else {
        v.join(", ")
    }
}

fn excerpt(s: &str) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 40 {
        format!("{}...", one_line.chars().take(40).collect::<String>())
    } else {
        one_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shards of every example, compiled each on its own, are the whole plan's resources,
    /// each in exactly one shard, with the same specs and dependencies (a group of shard 0
    /// still names the creations other shards run).
    #[test]
    fn shards_compile_the_whole_plan_each_resource_once() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            let plan = crate::plan::load_file(&path).unwrap().plan;
            let whole = compile(&plan);
            for n in [2, 3] {
                let mut parts: Vec<Resource> = (0..n)
                    .flat_map(|i| compile_shard(&plan, Shard::new(i, n).unwrap()))
                    .collect();
                parts.sort_by(|a, b| a.id.cmp(&b.id));
                assert_eq!(parts.len(), whole.len(), "{}", path.display());
                for (p, w) in parts.iter().zip(&whole) {
                    assert_eq!(
                        (&p.id, &p.fingerprint, &p.depends_on),
                        (&w.id, &w.fingerprint, &w.depends_on),
                        "{}",
                        path.display()
                    );
                }
            }
        }
    }

    /// Every address `compile` gives (and every dependency) reads back as itself: the state
    /// keys and the `--target`/`ack` arguments written today name the same resources.
    #[test]
    fn every_compiled_address_parses_back() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let mut kinds = BTreeSet::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if !matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "toml")
            ) {
                continue;
            }
            let loaded = crate::plan::load_file(&path)
                .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
            for r in compile(&loaded.plan) {
                kinds.insert(r.kind);
                assert_eq!(r.addr.kind(), r.kind, "{}", r.addr);
                assert_eq!(r.addr.account(), r.account.as_deref(), "{}", r.addr);
                assert_eq!(
                    r.spec.account().map(|a| a.address.as_str()),
                    r.addr.account()
                );
                // What `verify` builds for an account is what its steps carry.
                if let Some(spec) = r.spec.account() {
                    let of = AccountSpec::of(&loaded.plan, &spec.account);
                    assert_eq!(of.as_ref(), Some(&**spec), "{}", r.addr);
                }
                for a in std::iter::once(&r.addr).chain(&r.depends_on) {
                    let text = a.to_string();
                    assert_eq!(text.parse::<ResourceAddr>().as_ref(), Ok(a), "{text}");
                }
            }
        }
        assert!(
            kinds.len() >= 10,
            "the examples cover most kinds: {kinds:?}"
        );
    }
}
