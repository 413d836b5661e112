//! Resource addresses: which resource a step, a state record or a `--target`/`ack` argument
//! names, as a typed value.
//!
//! The text form (`account/john@example.com/alias/j@example.com`) is what the state keys, the
//! CLI and the plan's JSON have always used; it is written and read only here, so the rest of
//! mailshift matches on variants instead of splitting strings. Everything in an address is
//! lower-case, as `compile` makes it.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use super::ResourceKind;
use crate::plan::model::Content;

/// One resource of the model, by what identifies it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ResourceAddr {
    /// `domain/{platform}/{domain}`: a domain attached to a platform.
    Domain { platform: String, domain: String },
    /// `dns/{platform}/{domain}`: the DNS diagnostics of an attached domain.
    DnsCheck { platform: String, domain: String },
    /// `account/{account}/rename`: the source account renamed to its provisional name.
    Rename { account: String },
    /// `account/{account}/create`: the account made on the destination.
    Create { account: String },
    /// `account/{account}/{mail|contacts|calendars|tasks}`: one kind of content copied.
    Content { account: String, content: Content },
    /// `account/{account}/alias/{alias}`.
    Alias { account: String, alias: String },
    /// `account/{account}/redirection/{to}`.
    Redirection { account: String, to: String },
    /// `account/{account}/delegation/{grantee}`.
    Delegation { account: String, grantee: String },
    /// `account/{account}/cleanup`: the provisional source account reset after the cutover.
    Cleanup { account: String },
    /// `group/{address}`.
    Group { address: String },
    /// `contact/{platform}/{address}`: an external contact.
    ExternalContact { platform: String, address: String },
    /// `footer/{platform}/{domain}`.
    Footer { platform: String, domain: String },
}

/// Text that names no resource this version knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrError(pub String);

impl fmt::Display for AddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a resource address (like `account/ADDRESS/mail` or `domain/PLATFORM/DOMAIN`)",
            self.0
        )
    }
}

impl std::error::Error for AddrError {}

impl ResourceAddr {
    pub fn kind(&self) -> ResourceKind {
        match self {
            ResourceAddr::Domain { .. } => ResourceKind::Domain,
            ResourceAddr::DnsCheck { .. } => ResourceKind::DnsCheck,
            ResourceAddr::Rename { .. } => ResourceKind::Rename,
            ResourceAddr::Create { .. } => ResourceKind::Create,
            ResourceAddr::Content { content, .. } => match content {
                Content::Mail => ResourceKind::Mail,
                Content::Contacts => ResourceKind::Contacts,
                Content::Calendars => ResourceKind::Calendars,
                Content::Tasks => ResourceKind::Tasks,
                Content::Rules => ResourceKind::Rules,
            },
            ResourceAddr::Alias { .. } => ResourceKind::Alias,
            ResourceAddr::Redirection { .. } => ResourceKind::Redirection,
            ResourceAddr::Delegation { .. } => ResourceKind::Delegation,
            ResourceAddr::Cleanup { .. } => ResourceKind::Cleanup,
            ResourceAddr::Group { .. } => ResourceKind::Group,
            ResourceAddr::ExternalContact { .. } => ResourceKind::ExternalContact,
            ResourceAddr::Footer { .. } => ResourceKind::Footer,
        }
    }

    /// The address as read under its account's heading (`mail`, `alias/info@example.com`);
    /// the whole text form for a resource of no account.
    pub fn label(&self) -> String {
        let text = self.to_string();
        match self.account() {
            Some(account) => text
                .strip_prefix(&format!("account/{account}/"))
                .map_or_else(|| text.clone(), str::to_string),
            None => text,
        }
    }

    /// The account the resource belongs to, if any.
    pub fn account(&self) -> Option<&str> {
        match self {
            ResourceAddr::Rename { account }
            | ResourceAddr::Create { account }
            | ResourceAddr::Content { account, .. }
            | ResourceAddr::Alias { account, .. }
            | ResourceAddr::Redirection { account, .. }
            | ResourceAddr::Delegation { account, .. }
            | ResourceAddr::Cleanup { account } => Some(account),
            _ => None,
        }
    }

    /// The shard (of `count`) that runs this resource: its account's, or shard 0 for what
    /// belongs to no account (domains, groups, contacts, footers, DNS checks).
    pub fn shard(&self, count: u32) -> u32 {
        match self.account() {
            Some(a) => crate::shard::shard_of(a, count),
            None => 0,
        }
    }

    /// The step that makes an account exist under this address or renames it away: an
    /// account freshly made or renamed by a run may take a while to accept logins.
    pub fn makes_account(&self) -> bool {
        matches!(
            self,
            ResourceAddr::Create { .. } | ResourceAddr::Rename { .. }
        )
    }
}

impl fmt::Display for ResourceAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResourceAddr::Domain { platform, domain } => write!(f, "domain/{platform}/{domain}"),
            ResourceAddr::DnsCheck { platform, domain } => write!(f, "dns/{platform}/{domain}"),
            ResourceAddr::Rename { account } => write!(f, "account/{account}/rename"),
            ResourceAddr::Create { account } => write!(f, "account/{account}/create"),
            ResourceAddr::Content { account, content } => {
                write!(f, "account/{account}/{}", content.as_str())
            }
            ResourceAddr::Alias { account, alias } => write!(f, "account/{account}/alias/{alias}"),
            ResourceAddr::Redirection { account, to } => {
                write!(f, "account/{account}/redirection/{to}")
            }
            ResourceAddr::Delegation { account, grantee } => {
                write!(f, "account/{account}/delegation/{grantee}")
            }
            ResourceAddr::Cleanup { account } => write!(f, "account/{account}/cleanup"),
            ResourceAddr::Group { address } => write!(f, "group/{address}"),
            ResourceAddr::ExternalContact { platform, address } => {
                write!(f, "contact/{platform}/{address}")
            }
            ResourceAddr::Footer { platform, domain } => write!(f, "footer/{platform}/{domain}"),
        }
    }
}

impl FromStr for ResourceAddr {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<ResourceAddr, AddrError> {
        parse(s).ok_or_else(|| AddrError(s.to_string()))
    }
}

/// Serialized as its text form: the plan's JSON and the state keys keep their strings.
impl Serialize for ResourceAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

fn nonempty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// `{platform}/{domain}`: a domain holds no `/`, so the platform is all before the last one.
fn platform_domain(rest: &str) -> Option<(String, String)> {
    let (platform, domain) = rest.rsplit_once('/')?;
    Some((nonempty(platform)?, nonempty(domain)?))
}

fn parse(s: &str) -> Option<ResourceAddr> {
    let (head, rest) = s.split_once('/')?;
    Some(match head {
        "domain" => {
            let (platform, domain) = platform_domain(rest)?;
            ResourceAddr::Domain { platform, domain }
        }
        "dns" => {
            let (platform, domain) = platform_domain(rest)?;
            ResourceAddr::DnsCheck { platform, domain }
        }
        "footer" => {
            let (platform, domain) = platform_domain(rest)?;
            ResourceAddr::Footer { platform, domain }
        }
        "group" => ResourceAddr::Group {
            address: nonempty(rest)?,
        },
        // A platform name holds no `/`; an address may (in its local part).
        "contact" => {
            let (platform, address) = rest.split_once('/')?;
            ResourceAddr::ExternalContact {
                platform: nonempty(platform)?,
                address: nonempty(address)?,
            }
        }
        "account" => {
            // The account's domain holds no `/`: the address ends at the first `/` after its `@`.
            let at = rest.find('@').unwrap_or(0);
            let end = at + rest[at..].find('/')?;
            let account = nonempty(&rest[..end])?;
            let suffix = &rest[end + 1..];
            match suffix {
                "rename" => ResourceAddr::Rename { account },
                "create" => ResourceAddr::Create { account },
                "cleanup" => ResourceAddr::Cleanup { account },
                "mail" => ResourceAddr::Content {
                    account,
                    content: Content::Mail,
                },
                "contacts" => ResourceAddr::Content {
                    account,
                    content: Content::Contacts,
                },
                "calendars" => ResourceAddr::Content {
                    account,
                    content: Content::Calendars,
                },
                "tasks" => ResourceAddr::Content {
                    account,
                    content: Content::Tasks,
                },
                "rules" => ResourceAddr::Content {
                    account,
                    content: Content::Rules,
                },
                _ => {
                    let (what, target) = suffix.split_once('/')?;
                    let target = nonempty(target)?;
                    match what {
                        "alias" => ResourceAddr::Alias {
                            account,
                            alias: target,
                        },
                        "redirection" => ResourceAddr::Redirection {
                            account,
                            to: target,
                        },
                        "delegation" => ResourceAddr::Delegation {
                            account,
                            grantee: target,
                        },
                        _ => return None,
                    }
                }
            }
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLATFORMS: [&str; 3] = ["ovh", "old_exchange", "p2"];
    const DOMAINS: [&str; 3] = ["example.com", "a.b-c.example", "x"];
    const ADDRESSES: [&str; 6] = [
        "john@example.com",
        "j.doe+tag@sub.example.org",
        "odd/local@example.com",
        "a/b/c@x.y",
        "mail@rename.example",
        "alias@create",
    ];

    /// Every address of every kind, over names that stress the separators.
    fn all() -> Vec<ResourceAddr> {
        let mut out = Vec::new();
        for p in PLATFORMS {
            for d in DOMAINS {
                out.push(ResourceAddr::Domain {
                    platform: p.into(),
                    domain: d.into(),
                });
                out.push(ResourceAddr::DnsCheck {
                    platform: p.into(),
                    domain: d.into(),
                });
                out.push(ResourceAddr::Footer {
                    platform: p.into(),
                    domain: d.into(),
                });
            }
            for a in ADDRESSES {
                out.push(ResourceAddr::ExternalContact {
                    platform: p.into(),
                    address: a.into(),
                });
            }
        }
        for a in ADDRESSES {
            out.push(ResourceAddr::Group { address: a.into() });
            out.push(ResourceAddr::Rename { account: a.into() });
            out.push(ResourceAddr::Create { account: a.into() });
            out.push(ResourceAddr::Cleanup { account: a.into() });
            for content in [
                Content::Mail,
                Content::Contacts,
                Content::Calendars,
                Content::Tasks,
                Content::Rules,
            ] {
                out.push(ResourceAddr::Content {
                    account: a.into(),
                    content,
                });
            }
            for b in ADDRESSES {
                out.push(ResourceAddr::Alias {
                    account: a.into(),
                    alias: b.into(),
                });
                out.push(ResourceAddr::Redirection {
                    account: a.into(),
                    to: b.into(),
                });
                out.push(ResourceAddr::Delegation {
                    account: a.into(),
                    grantee: b.into(),
                });
            }
        }
        out
    }

    #[test]
    fn every_kind_round_trips_through_its_text() {
        let all = all();
        let kinds: std::collections::BTreeSet<_> = all.iter().map(|a| a.kind()).collect();
        assert_eq!(
            kinds.len(),
            super::super::ALL_KINDS.len(),
            "every kind is covered"
        );
        for a in all {
            let text = a.to_string();
            assert_eq!(text.parse::<ResourceAddr>(), Ok(a.clone()), "{text}");
        }
    }

    #[test]
    fn a_label_is_the_address_under_its_account() {
        let alias = ResourceAddr::Alias {
            account: "john@example.com".into(),
            alias: "j@example.com".into(),
        };
        assert_eq!(alias.label(), "alias/j@example.com");
        let mail = ResourceAddr::Content {
            account: "a/b@example.com".into(),
            content: Content::Mail,
        };
        assert_eq!(mail.label(), "mail");
        for a in all() {
            match a.account() {
                Some(account) => {
                    assert_eq!(format!("account/{account}/{}", a.label()), a.to_string())
                }
                None => assert_eq!(a.label(), a.to_string()),
            }
        }
    }

    #[test]
    fn the_text_form_is_the_historic_id() {
        let cases = [
            (
                "account/john@example.com/alias/j@example.com",
                ResourceAddr::Alias {
                    account: "john@example.com".into(),
                    alias: "j@example.com".into(),
                },
            ),
            (
                "account/john@example.com/mail",
                ResourceAddr::Content {
                    account: "john@example.com".into(),
                    content: Content::Mail,
                },
            ),
            (
                "domain/ovh/example.com",
                ResourceAddr::Domain {
                    platform: "ovh".into(),
                    domain: "example.com".into(),
                },
            ),
            (
                "group/team@example.com",
                ResourceAddr::Group {
                    address: "team@example.com".into(),
                },
            ),
        ];
        for (text, addr) in cases {
            assert_eq!(addr.to_string(), text);
            assert_eq!(text.parse::<ResourceAddr>().as_ref(), Ok(&addr));
            assert_eq!(serde_json::to_string(&addr).unwrap(), format!("\"{text}\""));
        }
    }

    #[test]
    fn text_that_names_no_resource_is_refused() {
        for bad in [
            "",
            "account",
            "account/john@example.com",
            "account/john@example.com/",
            "account/john@example.com/mailbox",
            "account/john@example.com/alias/",
            "account//mail",
            "domain/example.com",
            "domain//example.com",
            "group/",
            "contact/ovh",
            "volume/x/y",
        ] {
            assert!(bad.parse::<ResourceAddr>().is_err(), "{bad:?}");
        }
    }
}
