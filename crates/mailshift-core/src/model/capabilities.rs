//! What each platform family can do through an API, what must be done by hand, and what
//! cannot be done at all. Facts from `shared/reference/ovh-api.md`.
//!
//! Validation uses this to refuse impossible plans and to flag manual steps; compilation uses
//! it to mark resources as API-driven or manual.

use crate::plan::model::{MxPlanApi, Platform, PlatformKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    AttachDomain,
    Rename,
    Create,
    Alias,
    Redirection,
    Delegation,
    Group,
    ExternalContact,
    Footer,
}

impl Feature {
    pub fn noun(self) -> &'static str {
        match self {
            Feature::AttachDomain => "domain attachment",
            Feature::Rename => "account rename",
            Feature::Create => "account creation",
            Feature::Alias => "aliases",
            Feature::Redirection => "redirections",
            Feature::Delegation => "delegations",
            Feature::Group => "groups",
            Feature::ExternalContact => "external contacts",
            Feature::Footer => "footers",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// An API call does it.
    Api,
    /// No API: a person does it in a control panel, then acknowledges it.
    Manual,
    /// Nothing to do as a step (an IMAP destination account must simply exist).
    Precondition,
    /// The platform has no such thing; the reason says what to do instead.
    Impossible(&'static str),
}

pub fn mx_plan_api(p: &Platform) -> MxPlanApi {
    p.mx_plan_api.unwrap_or(MxPlanApi::Mxplan)
}

pub fn support(platform: &Platform, feature: Feature) -> Support {
    use Feature::*;
    match platform.kind {
        // Mailboxes, aliases and groups are managed in the Google Admin console or the
        // Microsoft 365 admin center (mailshift has no API of theirs for them yet): the
        // accounts must exist; the rest is a manual step.
        PlatformKind::Imap
        | PlatformKind::Exchange
        | PlatformKind::Gmail
        | PlatformKind::Microsoft365 => match feature {
            Create => Support::Precondition,
            _ => Support::Manual,
        },
        PlatformKind::Files => match feature {
            // The account's directory: read from, or created by the export.
            Create => Support::Precondition,
            _ => Support::Impossible(
                "a `files` platform is a directory of exported content: it has no accounts, \
                 addresses or settings to set up; remove this, or move the account to a mail platform",
            ),
        },
        PlatformKind::OvhExchange => Support::Api,
        PlatformKind::OvhEmailPro => match feature {
            Redirection | Group => Support::Manual,
            _ => Support::Api,
        },
        PlatformKind::OvhMxPlan => match mx_plan_api(platform) {
            MxPlanApi::Mxplan => match feature {
                Redirection | Group => Support::Manual,
                _ => Support::Api,
            },
            MxPlanApi::Legacy => match feature {
                AttachDomain => Support::Precondition,
                Rename => Support::Impossible(
                    "legacy MX Plan accounts cannot be renamed (the account name is read-only): move the \
                     address without `rename_to`, or move the service to the newer MX Plan API first",
                ),
                Alias => Support::Impossible(
                    "legacy MX Plan has no aliases: use a redirection from the alias to the account instead",
                ),
                Delegation => {
                    Support::Impossible("MX Plan has no delegated rights: remove the delegation")
                }
                ExternalContact => {
                    Support::Impossible("legacy MX Plan has no address book: remove the contact")
                }
                Footer => Support::Impossible("legacy MX Plan has no footers: remove the footer"),
                Create | Redirection | Group => Support::Api,
            },
        },
    }
}
