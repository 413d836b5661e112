//! The simulated world as a file: API credentials, timing, and the mail services with their
//! domains and accounts. Loaded from YAML or JSON at start; the running simulator exports
//! its current state in the same shape (`SimHandle::world_json`, `GET /_sim/world`), so a
//! test can read what its calls changed and a demo can save and reload a world.
//!
//! Field names are snake_case like the plan file; the API's own names (`primaryEmailAddress`,
//! `taskPendingId`…) appear only in what the simulated API answers.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::SimError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct World {
    /// API applications: calls must carry one of these keys in `X-Ovh-Application`.
    #[serde(default)]
    pub applications: Vec<Application>,
    /// Consumer keys that exist from the start (more can be asked for through
    /// `POST /auth/credential`).
    #[serde(default)]
    pub consumer_keys: Vec<ConsumerKey>,
    /// Time a task takes from `todo` to `done` (half of it in `todo`, half in `doing`).
    #[serde(default = "default_task_delay_ms")]
    pub task_delay_ms: u64,
    /// Tasks move only when told to (`SimHandle::advance_tasks`, `POST /_sim/tasks/advance`),
    /// one step per call: for tests that must not depend on timing.
    #[serde(default)]
    pub manual_tasks: bool,
    /// How an account that was just configured or created refuses password changes.
    #[serde(default)]
    pub fresh_password: FreshPassword,
    /// The simulated server's clock minus the real one, to exercise clock-skew handling.
    #[serde(default)]
    pub clock_offset_secs: i64,
    /// Seed of the placeholder names (`…@configureme.me`): fixed, so runs are reproducible.
    #[serde(default = "default_seed")]
    pub seed: u64,
    #[serde(default)]
    pub exchange: Vec<Service>,
    #[serde(default)]
    pub pro: Vec<Service>,
    #[serde(default)]
    pub mxplan: Vec<Service>,
    #[serde(default)]
    pub legacy_domains: Vec<LegacyDomain>,
    /// DNS zones hosted at OVHcloud (`/domain/zone`), answered by the simulator's two name
    /// servers as last refreshed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<Zone>,
}

impl Default for World {
    fn default() -> Self {
        World {
            applications: Vec::new(),
            consumer_keys: Vec::new(),
            task_delay_ms: default_task_delay_ms(),
            manual_tasks: false,
            fresh_password: FreshPassword::default(),
            clock_offset_secs: 0,
            seed: default_seed(),
            exchange: Vec::new(),
            pro: Vec::new(),
            mxplan: Vec::new(),
            legacy_domains: Vec::new(),
            zones: Vec::new(),
        }
    }
}

fn default_task_delay_ms() -> u64 {
    200
}

fn default_seed() -> u64 {
    0x5eed
}

fn yes() -> bool {
    true
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_true(b: &bool) -> bool {
    *b
}

impl World {
    /// Reads a world file: JSON if the name ends in `.json`, YAML otherwise.
    pub fn load(path: &Path) -> Result<World, SimError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SimError::World(format!("cannot read {}: {e}", path.display())))?;
        let parsed = if path.extension().is_some_and(|e| e == "json") {
            World::from_json(&text)
        } else {
            World::from_yaml(&text)
        };
        let mut world = parsed.map_err(|e| match e {
            SimError::World(msg) => SimError::World(format!("{}: {msg}", path.display())),
            other => other,
        })?;
        // Like a plan's paths: relative to the file that names them, not to where it runs.
        let base = path.parent().unwrap_or(Path::new("."));
        let backends = world
            .exchange
            .iter_mut()
            .chain(&mut world.pro)
            .chain(&mut world.mxplan)
            .filter_map(|s| s.dovecot.as_mut())
            .chain(
                world
                    .legacy_domains
                    .iter_mut()
                    .filter_map(|d| d.dovecot.as_mut()),
            );
        for b in backends {
            b.users_file = base.join(&b.users_file);
            b.mail_root = base.join(&b.mail_root);
        }
        Ok(world)
    }

    pub fn from_yaml(text: &str) -> Result<World, SimError> {
        serde_saphyr::from_str(text).map_err(|e| SimError::World(e.to_string()))
    }

    pub fn from_json(text: &str) -> Result<World, SimError> {
        serde_json::from_str(text).map_err(|e| SimError::World(e.to_string()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    pub key: String,
    pub secret: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerKey {
    pub key: String,
    /// The application key it belongs to.
    pub application: String,
    /// What it may call; by default every method on every path.
    #[serde(default = "AccessRule::everything")]
    pub rules: Vec<AccessRule>,
    /// A key asked for but not yet validated by its owner is refused (`NOT_CREDENTIAL`).
    #[serde(default = "yes")]
    pub validated: bool,
}

/// `{method, path}` as in `auth.AccessRule`; `*` in the path matches any run of characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRule {
    pub method: String,
    pub path: String,
}

impl AccessRule {
    pub fn everything() -> Vec<AccessRule> {
        ["GET", "POST", "PUT", "DELETE"]
            .into_iter()
            .map(|m| AccessRule {
                method: m.into(),
                path: "/*".into(),
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FreshPassword {
    /// Refused for this long after the account became usable (the real API's way).
    DelayMs(u64),
    /// Refused this many times, then accepted: deterministic, for tests.
    Refusals(u32),
}

impl Default for FreshPassword {
    fn default() -> Self {
        FreshPassword::DelayMs(1000)
    }
}

/// An Exchange service (`exchange:`), an Email Pro one (`pro:`) or a new MX Plan one
/// (`mxplan:`). `organization`, `offer` and `mailing_lists` exist on Exchange only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    pub service: String,
    /// The service's `hostname` as the API reports it (the IMAP/EWS server its mailboxes
    /// live on). Default: the family's usual one (`ex.mail.ovh.net`, `pro1.mail.ovh.net`,
    /// `pro2.mail.ovh.net`); a test sets `127.0.0.1` to have mailshift detect its Dovecot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer: Option<ExchangeOffer>,
    #[serde(default)]
    pub domains: Vec<Domain>,
    #[serde(default)]
    pub accounts: Vec<Account>,
    /// Ordered accounts not configured yet, created with random `…@configureme.me` names.
    #[serde(default)]
    pub placeholders: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mailing_lists: Vec<MailingList>,
    #[serde(default)]
    pub external_contacts: Vec<ExternalContact>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dovecot: Option<DovecotBackend>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExchangeOffer {
    /// Accounts come from orders (placeholders); `POST /account` is refused.
    Hosted,
    Dedicated,
    Provider,
}

impl ExchangeOffer {
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeOffer::Hosted => "hosted",
            ExchangeOffer::Dedicated => "dedicated",
            ExchangeOffer::Provider => "provider",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DomainType {
    #[default]
    Authoritative,
    NonAuthoritative,
}

impl DomainType {
    pub fn as_str(self) -> &'static str {
        match self {
            DomainType::Authoritative => "authoritative",
            DomainType::NonAuthoritative => "nonAuthoritative",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Domain {
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: DomainType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mx_relay: Option<String>,
    /// What the DNS check reports (`mxIsValid`, `spfIsValid`, `srvIsValid`).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub mx_valid: bool,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub spf_valid: bool,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub srv_valid: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disclaimer: Option<Disclaimer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disclaimer {
    pub content: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub outside_only: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub email: String,
    #[serde(default)]
    pub password: String,
    /// Assigned when absent; kept across renames, as delegations refer to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// `false` for an ordered placeholder.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub configured: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Mailbox size in bytes, as `currentUsage` shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_usage: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Exchange only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarding_email: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub store_copy_of_email: bool,
    /// Exchange only: `basic`, `standard` or `enterprise`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub hidden_from_gal: bool,
    /// Addresses of the accounts allowed to send as this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub send_as: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub full_access: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub send_on_behalf_to: Vec<String>,
}

impl Account {
    pub fn new(email: impl Into<String>, password: impl Into<String>) -> Account {
        Account {
            email: email.into(),
            password: password.into(),
            id: None,
            configured: true,
            display_name: None,
            first_name: None,
            last_name: None,
            current_usage: None,
            aliases: Vec::new(),
            forwarding_email: None,
            store_copy_of_email: false,
            license: None,
            hidden_from_gal: false,
            send_as: Vec::new(),
            full_access: Vec::new(),
            send_on_behalf_to: Vec::new(),
        }
    }
}

/// An Exchange distribution group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailingList {
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// `open` or `closed`.
    #[serde(default = "open")]
    pub depart_restriction: String,
    /// `open`, `closed` or `approvalRequired`.
    #[serde(default = "open")]
    pub join_restriction: String,
    /// Addresses of member accounts or external contacts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    /// Addresses of manager accounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managers: Vec<String>,
}

fn open() -> String {
    "open".into()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalContact {
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub hidden_from_gal: bool,
}

/// A real Dovecot whose passwd-file the simulator keeps in step with the accounts, so that
/// IMAP logins follow renames, password changes and deletions made through the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DovecotBackend {
    /// `user:{PLAIN}password:uid:gid::home::` lines.
    pub users_file: PathBuf,
    /// Where new accounts get their home (`mail_root/ADDRESS`).
    pub mail_root: PathBuf,
    /// Owner of new lines and homes; by default that of an existing line, else of
    /// `mail_root`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
}

/// A legacy MX Plan domain (`/email/domain/{domain}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegacyDomain {
    pub domain: String,
    #[serde(default)]
    pub accounts: Vec<LegacyAccount>,
    #[serde(default)]
    pub redirections: Vec<Redirection>,
    #[serde(default)]
    pub mailing_lists: Vec<LegacyMailingList>,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub mx_valid: bool,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub spf_valid: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dovecot: Option<DovecotBackend>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegacyAccount {
    /// The local part; the address is `account_name@domain`.
    pub account_name: String,
    #[serde(default)]
    pub password: String,
    /// Quota in bytes.
    #[serde(default = "default_legacy_size")]
    pub size: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Bytes in use, as `…/usage` reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_usage: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<LegacyFilter>,
}

/// A filter of a legacy account (`…/account/{accountName}/filter`), fields as the API names
/// them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegacyFilter {
    pub name: String,
    #[serde(default = "first")]
    pub priority: i64,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub active: bool,
    /// `accept`, `account`, `delete` or `redirect`.
    pub action: String,
    /// The address of `redirect` and `account`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_param: Option<String>,
    #[serde(default)]
    pub rules: Vec<LegacyFilterRule>,
}

fn first() -> i64 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegacyFilterRule {
    pub header: String,
    /// `contains`, `noContains` or `checkspf`.
    #[serde(default = "contains")]
    pub operand: String,
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
}

fn contains() -> String {
    "contains".into()
}

pub(crate) fn default_legacy_size() -> u64 {
    5_000_000_000
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redirection {
    pub from: String,
    pub to: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub local_copy: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegacyMailingList {
    pub name: String,
    pub owner_email: String,
    #[serde(default = "default_language")]
    pub language: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub moderator_message: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub subscribe_by_moderator: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub users_post_only: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscribers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moderators: Vec<String>,
}

fn default_language() -> String {
    "en".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_world_with_defaults() {
        let world = World::from_yaml(
            r#"
applications: [{key: ak, secret: as}]
consumer_keys: [{key: ck, application: ak}]
pro:
- service: pro-1
  domains:
  - {name: example.com}
  - {name: old.example, type: nonAuthoritative, mx_relay: mx.old.example}
  accounts: [{email: john@example.com, password: pw, current_usage: 1000}]
  placeholders: 2
legacy_domains:
- domain: legacy.example
  accounts: [{account_name: bob, password: pw}]
fresh_password: {refusals: 2}
"#,
        )
        .unwrap();
        assert_eq!(world.task_delay_ms, 200);
        assert_eq!(world.consumer_keys[0].rules.len(), 4);
        assert!(world.consumer_keys[0].validated);
        let pro = &world.pro[0];
        assert_eq!(pro.domains[1].kind, DomainType::NonAuthoritative);
        assert!(pro.domains[0].mx_valid);
        assert_eq!(pro.accounts[0].current_usage, Some(1000));
        assert_eq!(world.legacy_domains[0].accounts[0].size, 5_000_000_000);
        assert_eq!(world.fresh_password, FreshPassword::Refusals(2));
    }

    #[test]
    fn dovecot_paths_are_relative_to_the_world_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("world.yaml");
        std::fs::write(
            &file,
            "pro: [{service: s, dovecot: {users_file: d/users, mail_root: /abs/mail}}]\n",
        )
        .unwrap();
        let world = World::load(&file).unwrap();
        let backend = world.pro[0].dovecot.as_ref().unwrap();
        assert_eq!(backend.users_file, dir.path().join("d/users"));
        assert_eq!(backend.mail_root, Path::new("/abs/mail"));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = World::from_yaml("pro: [{service: s, acounts: []}]").unwrap_err();
        assert!(e.to_string().contains("acounts"), "{e}");
    }

    #[test]
    fn json_round_trip() {
        let mut world = World::default();
        world.exchange.push(Service {
            organization: Some("org".into()),
            service: "svc".into(),
            hostname: Some("127.0.0.1".into()),
            offer: Some(ExchangeOffer::Dedicated),
            domains: vec![],
            accounts: vec![Account::new("a@b.c", "pw")],
            placeholders: 0,
            mailing_lists: vec![],
            external_contacts: vec![],
            dovecot: None,
        });
        let text = serde_json::to_string(&world).unwrap();
        assert_eq!(World::from_json(&text).unwrap(), world);
    }
}

/// A DNS zone (`/domain/zone/{zoneName}`) with its records. The records are served as they
/// are here from the start (the zone was refreshed before the world was saved); changes made
/// through the API are served after `POST .../refresh`, as on OVHcloud.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    pub name: String,
    /// The SOA's TTL: what a record whose `ttl` is 0 is served with.
    #[serde(default = "default_zone_ttl")]
    pub default_ttl: u32,
    #[serde(default)]
    pub records: Vec<ZoneRecord>,
}

fn default_zone_ttl() -> u32 {
    3600
}

/// One record as the API shows it: `sub_domain` relative to the zone (`""` for the apex),
/// `field_type` one of `domain.zone.RecordTypeEnum` (`SPF`, `DKIM` and `DMARC` are served as
/// TXT), `target` in presentation format (`1 mx1.mail.ovh.net.`, `"v=spf1 ..."`), `ttl` 0 for
/// the zone's default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneRecord {
    #[serde(default)]
    pub sub_domain: String,
    pub field_type: String,
    pub target: String,
    #[serde(default)]
    pub ttl: u32,
}
