//! Builds the plan from checked rows: names each platform once per side and endpoint,
//! notes what the user should check, and turns passwords into environment references.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::server::{Server, ServerType, cloud_product, is_loopback, ovh_product};
use super::{EnvVar, Imported, comment_safe};
use crate::plan::model::{
    Account, Credentials, ManualSteps, MigrationOptions, OAuth2, OAuth2Flow, Plan, Platform,
    PlatformKind, Provider, ProviderKind, Security,
};
use crate::plan::secret::{EnvRef, Secret, SecretRef};
use crate::plan::validate::{M365_CLIENT_ID_PLACEHOLDER, M365_TENANT_PLACEHOLDER};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Side {
    Source,
    Destination,
}

impl Side {
    fn as_str(self) -> &'static str {
        match self {
            Side::Source => "source",
            Side::Destination => "destination",
        }
    }
}

pub(super) struct Builder {
    command: &'static str,
    source_name: String,
    platforms: BTreeMap<String, Platform>,
    by_endpoint: HashMap<(Side, String, u16, u8), String>,
    notes: BTreeMap<String, BTreeSet<String>>,
    accounts: Vec<Account>,
    /// Lower-cased address → row, to name both rows of a duplicate.
    addresses: HashMap<String, u64>,
    env_names: HashSet<String>,
    env_vars: Vec<EnvVar>,
    secrets: Vec<(String, Secret)>,
    /// The API endpoint of the plan's `ovh` provider, once a platform needs it.
    ovh_endpoint: Option<String>,
}

impl Builder {
    pub(super) fn new(command: &'static str, source_name: &str) -> Self {
        Builder {
            command,
            source_name: source_name.to_string(),
            platforms: BTreeMap::new(),
            by_endpoint: HashMap::new(),
            notes: BTreeMap::new(),
            accounts: Vec::new(),
            addresses: HashMap::new(),
            env_names: HashSet::new(),
            env_vars: Vec::new(),
            secrets: Vec::new(),
            ovh_endpoint: None,
        }
    }

    /// The platform of an OVHcloud service (`--dest-ovh`), added on first sight with the
    /// plan's `ovh` provider: no `imap:`, the server is read from the API at each run.
    pub(super) fn ovh_platform(&mut self, d: &super::OvhDest) -> String {
        let name = format!("destination-{}", slug(&d.service));
        if self.platforms.contains_key(&name) {
            return name;
        }
        if self.ovh_endpoint.is_none() {
            self.ovh_endpoint = Some(d.endpoint.clone());
            for (var, what) in [
                ("OVH_APPLICATION_KEY", "application key"),
                ("OVH_APPLICATION_SECRET", "application secret"),
                ("OVH_CONSUMER_KEY", "consumer key"),
            ] {
                if self.env_names.insert(var.to_string()) {
                    self.env_vars.push(EnvVar {
                        name: var.to_string(),
                        description: format!(
                            "OVHcloud API {what} (`mailshift ovh credentials` makes the consumer key); set it yourself"
                        ),
                        in_file: false,
                    });
                }
            }
        }
        self.platforms.insert(
            name.clone(),
            Platform {
                kind: d.kind,
                provider: Some("ovh".to_string()),
                organization: d.organization.clone(),
                service: Some(d.service.clone()),
                mx_plan_api: None,
                imap: None,
                pop3: None,
                dav: None,
                oauth2: None,
                limits: Default::default(),
                path: None,
                detected_imap_host: None,
                ews: None,
                graph: None,
                sieve: None,
            },
        );
        self.note(
            &name,
            "hosted by OVHcloud: its IMAP server is read from the API at each run (`mailshift plan --refresh` shows it)".to_string(),
        );
        name
    }

    /// The platform's name for this side and endpoint, added on first sight. Names are
    /// `side-host`, plus the port or security only when two endpoints share a host, so
    /// re-importing an edited file keeps the names the user may have referred to.
    pub(super) fn platform(&mut self, side: Side, server: &Server, declared: ServerType) -> String {
        let ep = &server.endpoint;
        let security = match ep.security {
            Security::Tls => 0,
            Security::Starttls => 1,
            Security::None => 2,
        };
        let pop3 = declared == ServerType::Pop3;
        // A POP3 and an IMAP endpoint of one host are two platforms.
        let (port, security) = if pop3 {
            (ep.effective_pop3_port(), security + 3)
        } else {
            (ep.effective_port(), security)
        };
        let key = (side, ep.host.clone(), port, security);
        let name = match self.by_endpoint.get(&key) {
            Some(name) => name.clone(),
            None => {
                let base = format!("{}-{}", side.as_str(), slug(&ep.host));
                let base = if pop3 { format!("{base}-pop3") } else { base };
                let mut candidates = vec![base.clone(), format!("{base}-{port}")];
                let sec = match ep.security {
                    Security::Tls => "tls",
                    Security::Starttls => "starttls",
                    Security::None => "plain",
                };
                candidates.push(format!("{base}-{port}-{sec}"));
                let name = candidates
                    .into_iter()
                    .find(|c| !self.platforms.contains_key(c))
                    .unwrap_or_else(|| format!("{base}-{}", self.platforms.len() + 1));
                let mut imap = ep.clone();
                if imap.security == Security::None && !is_loopback(&imap.host) {
                    // The user asked for no encryption; the plan would be refused without this.
                    imap.allow_plaintext = true;
                    self.note(
                        &name,
                        format!(
                            "security is none: passwords cross the network in clear to {}",
                            imap.host
                        ),
                    );
                }
                // A POP3 source is a plain `imap` platform reading through `pop3:` (Gmail's
                // POP3 host is not its IMAP type's).
                let kind = if pop3 {
                    PlatformKind::Imap
                } else {
                    cloud_product(&imap.host).unwrap_or(PlatformKind::Imap)
                };
                let (imap, pop3_ep) = if pop3 {
                    self.note(
                        &name,
                        format!(
                            "{} is read over POP3: its one mailbox goes to the destination's INBOX \
                             (map `INBOX` in the account's `folders` to put it elsewhere), unflagged",
                            imap.host
                        ),
                    );
                    (None, Some(imap))
                } else {
                    (Some(imap), None)
                };
                // Gmail's and Microsoft 365's own endpoint is their type's default: leave it out.
                let imap = match (kind.default_imap(), imap) {
                    (Some(default), Some(imap))
                        if default.host.eq_ignore_ascii_case(&imap.host)
                            && default.effective_port() == imap.effective_port()
                            && default.security == imap.security =>
                    {
                        None
                    }
                    (_, imap) => imap,
                };
                let oauth2 =
                    (kind == PlatformKind::Microsoft365).then(|| self.m365_app(&name, side));
                self.platforms.insert(
                    name.clone(),
                    Platform {
                        kind,
                        provider: None,
                        organization: None,
                        service: None,
                        mx_plan_api: None,
                        imap,
                        pop3: pop3_ep,
                        dav: None,
                        oauth2,
                        limits: Default::default(),
                        path: None,
                        detected_imap_host: None,
                        ews: None,
                        graph: None,
                        sieve: None,
                    },
                );
                self.by_endpoint.insert(key, name.clone());
                name
            }
        };
        if let Some(kind) = ovh_product(&ep.host) {
            self.note(
                &name,
                format!(
                    "{} is OVHcloud {}; written as type imap, so account creation, aliases and \
                     the like are manual steps; to automate them, set type: {} with \
                     provider{} service",
                    ep.host,
                    match kind {
                        PlatformKind::OvhExchange => "Exchange",
                        PlatformKind::OvhEmailPro => "Email Pro",
                        _ => "MX Plan",
                    },
                    kind.as_str(),
                    if kind == PlatformKind::OvhExchange {
                        ", organization and"
                    } else {
                        " and"
                    },
                ),
            );
        } else if declared == ServerType::Exchange || server.web_url {
            self.note(
                &name,
                format!(
                    "the file {}; mailshift uses IMAP on {}:{}, which must be enabled there",
                    if server.web_url {
                        "gives a web URL"
                    } else {
                        "says Exchange"
                    },
                    ep.host,
                    ep.effective_port()
                ),
            );
        }
        name
    }

    /// Microsoft 365 refuses passwords over IMAP: its side logs in with the tenant's app
    /// (client credentials), which the file cannot name. The placeholder `client_id` fails
    /// validation until the user writes the app's id; the secret is an environment variable.
    fn m365_app(&mut self, platform: &str, side: Side) -> OAuth2 {
        let env = format!("MAILSHIFT_{}_CLIENT_SECRET", env_slug(platform)).to_uppercase();
        if self.env_names.insert(env.clone()) {
            self.env_vars.push(EnvVar {
                name: env.clone(),
                description: format!(
                    "client secret of the Microsoft 365 app registration of platform {platform}; \
                     not in the file: set it yourself"
                ),
                in_file: false,
            });
        }
        self.note(
            platform,
            format!(
                "Microsoft 365 refuses passwords over IMAP, so the {} side logs in with an app \
                 registration (client credentials): write its tenant and application (client) \
                 id in `oauth2` and grant it IMAP access (README, \"Microsoft 365\")",
                side.as_str()
            ),
        );
        OAuth2 {
            flow: OAuth2Flow::ClientCredentials,
            client_id: Some(M365_CLIENT_ID_PLACEHOLDER.to_string()),
            client_secret: Some(SecretRef::Env(EnvRef { env })),
            tenant: Some(M365_TENANT_PLACEHOLDER.to_string()),
            service_account_key: None,
            refresh_token: None,
            scopes: Vec::new(),
            token_url: None,
            device_authorization_url: None,
            authorization_url: None,
            ca_file: None,
        }
    }

    fn note(&mut self, platform: &str, note: String) {
        self.notes
            .entry(platform.to_string())
            .or_default()
            .insert(note);
    }

    /// Adds an account; `(platform, login, password)` per side, an empty password meaning
    /// the file has none (the user sets the variable). A duplicate address errs with the
    /// row that had it first.
    pub(super) fn account(
        &mut self,
        row: u64,
        address: &str,
        source: (String, Option<String>, &str),
        destination: (String, Option<String>, &str),
    ) -> Result<(), u64> {
        if let Some(&prev) = self.addresses.get(&address.to_lowercase()) {
            return Err(prev);
        }
        self.addresses.insert(address.to_lowercase(), row);
        let source_creds = self.credentials(row, address, Side::Source, &source);
        let destination_creds = self.credentials(row, address, Side::Destination, &destination);
        self.accounts.push(Account {
            address: address.to_string(),
            from: source.0,
            to: destination.0,
            rename_to: None,
            reset_provisional: false,
            source: source_creds,
            destination: destination_creds,
            content: None,
            folders: None,
            collections: None,
            aliases: Vec::new(),
            redirections: Vec::new(),
            delegations: Vec::new(),
            options: MigrationOptions::default(),
            paused: false,
        });
        Ok(())
    }

    fn credentials(
        &mut self,
        row: u64,
        address: &str,
        side: Side,
        (platform, login, password): &(String, Option<String>, &str),
    ) -> Credentials {
        let (login, password) = (login.clone(), *password);
        if self.platforms[platform].oauth2.is_some() {
            // The platform's app logs every mailbox in; a password in the file is of no use
            // there and is left out of the plan and of the variables to set.
            return Credentials::default();
        }
        let base = format!("MAILSHIFT_{}_{}", env_slug(address), side.as_str()).to_uppercase();
        // `a.b@x` and `a_b@x` share a slug; the later row gets a numbered name.
        let mut name = base.clone();
        let mut n = 2;
        while !self.env_names.insert(name.clone()) {
            name = format!("{base}_{n}");
            n += 1;
        }
        let in_file = !password.is_empty();
        self.env_vars.push(EnvVar {
            name: name.clone(),
            description: format!(
                "{} password of {} (row {row}){}",
                side.as_str(),
                comment_safe(address),
                if in_file {
                    ""
                } else {
                    "; not in the file: set it yourself"
                }
            ),
            in_file,
        });
        if in_file {
            self.secrets.push((name.clone(), Secret::new(password)));
        }
        Credentials {
            login,
            password: Some(SecretRef::Env(EnvRef { env: name })),
            oauth2_token: None,
            oauth2: None,
        }
    }

    pub(super) fn finish(self) -> Imported {
        let notes = self
            .notes
            .into_iter()
            .flat_map(|(platform, notes)| {
                notes
                    .into_iter()
                    .map(move |n| format!("platform {platform}: {n}."))
            })
            .collect();
        Imported {
            rows: self.accounts.len(),
            plan: Plan {
                cutover: None,
                version: 1,
                state: None,
                token_store: None,
                allow_inline_secrets: false,
                manual_steps: ManualSteps::default(),
                providers: self
                    .ovh_endpoint
                    .map(|endpoint| {
                        let env = |name: &str| {
                            SecretRef::Env(EnvRef {
                                env: name.to_string(),
                            })
                        };
                        let provider = Provider {
                            kind: ProviderKind::Ovh,
                            endpoint,
                            application_key: env("OVH_APPLICATION_KEY"),
                            application_secret: env("OVH_APPLICATION_SECRET"),
                            consumer_key: env("OVH_CONSUMER_KEY"),
                            poll_interval: None,
                            task_timeout: None,
                        };
                        BTreeMap::from([("ovh".to_string(), provider)])
                    })
                    .unwrap_or_default(),
                platforms: self.platforms,
                domains: Vec::new(),
                options: MigrationOptions::default(),
                accounts: self.accounts,
                groups: Vec::new(),
                external_contacts: Vec::new(),
                footers: Vec::new(),
                notify: Vec::new(),
                paused: false,
                shards: None,
            },
            env_vars: self.env_vars,
            secrets: self.secrets,
            notes,
            command: self.command,
            source_name: self.source_name,
        }
    }
}

/// `imap.example.com` → `imap-example-com`.
fn slug(host: &str) -> String {
    separated(host, '-', |c| c.to_ascii_lowercase())
}

/// `alice.smith@example.com` → `ALICE_SMITH_EXAMPLE_COM`: readable, and valid in any shell.
fn env_slug(address: &str) -> String {
    let s = separated(address, '_', |c| c.to_ascii_uppercase());
    if s.is_empty() { "ACCOUNT".into() } else { s }
}

/// Keeps ASCII letters and digits, joins the runs in between with one `sep`.
fn separated(s: &str, sep: char, case: impl Fn(char) -> char) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(case(c));
        } else if !out.is_empty() && !out.ends_with(sep) {
            out.push(sep);
        }
    }
    while out.ends_with(sep) {
        out.pop();
    }
    out
}
