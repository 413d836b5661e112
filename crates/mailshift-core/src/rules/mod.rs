//! Inbox rules as data, the one model every platform's rules are read into and written from:
//! Sieve scripts (`sieve`, for IMAP platforms through ManageSieve), Exchange rules (`ews`,
//! `t:Rule` of GetInboxRules/UpdateInboxRules), Microsoft Graph message rules (`graph`) and
//! legacy MX Plan filters (`mxplan`, OVHcloud's API).
//! Each translation is pure (no I/O: the ManageSieve, EWS and Graph clients call them) and
//! returns what it cannot express as [`Untranslatable`] with the rule's text and the reason,
//! so that the caller shows it as a manual step: a rule is never dropped silently.
//!
//! The model holds only what at least two platforms say the same way, and keeps apart what
//! looks alike but behaves differently, rather than widen a rule in translation: a Sieve
//! `address "to"` test looks at To only, Exchange's recipient strings at To and Cc; Sieve
//! tests one named header, Exchange the text of all headers; Exchange's forward sends a new
//! message from the mailbox, a Sieve redirect resends the original. Each such pair is two
//! conditions or actions here, and a platform that has only one of them reports the other as
//! untranslatable, with the reason.
//!
//! A rule set is a `Vec<Rule>` in the order rules run (Exchange's `Priority`, Graph's
//! `sequence`, the order of a Sieve script).

use std::fmt;

pub mod ews;
mod exchange;
pub mod graph;
pub mod mxplan;
pub mod sieve;

/// One rule: when its conditions hold (all of them, or any one), its actions run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Shown to people (Exchange's `DisplayName`, a `# rule:` comment in Sieve).
    pub name: String,
    /// A disabled rule is carried too, and stays disabled.
    pub enabled: bool,
    /// No conditions: the rule applies to every message.
    pub conditions: Vec<Condition>,
    /// `true`: every condition must hold; `false`: any one. With fewer than two conditions it
    /// means nothing, and a rule read back says `true`.
    pub match_all: bool,
    /// In the order of [`rank`] once read back: within one rule, the platforms run actions in
    /// an order of their own, so the order written means nothing.
    pub actions: Vec<Action>,
}

/// What a rule tests. Text tests are case-insensitive; "contains" is a substring match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// The From address contains this text.
    From(String),
    /// The From address is this address.
    FromAddress(String),
    /// A To address contains this text (To only: Sieve).
    To(String),
    /// A To or Cc address contains this text.
    RecipientContains(String),
    /// The message was sent to this address (To or Cc).
    SentTo(String),
    SubjectContains(String),
    /// One named header field contains this text (Sieve).
    HeaderContains {
        header: String,
        value: String,
    },
    /// The text of the header block, any field, contains this (Exchange, Graph).
    HeadersContain(String),
    /// Larger than this many octets.
    SizeOver(u64),
    /// Smaller than this many octets.
    SizeUnder(u64),
}

/// An importance Exchange and Graph can stamp on a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Importance {
    Low,
    Normal,
    High,
}

impl Importance {
    pub fn as_str(self) -> &'static str {
        match self {
            Importance::Low => "low",
            Importance::Normal => "normal",
            Importance::High => "high",
        }
    }
}

/// What a rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    MoveTo(String),
    MarkRead,
    /// The `\Flagged` flag (Sieve). Exchange and Graph rules cannot flag.
    Flag,
    /// Exchange and Graph; Sieve has no importance.
    MarkImportance(Importance),
    /// Send the original message on to this address, its sender unchanged; the mailbox keeps
    /// it unless another action says otherwise (Sieve `redirect :copy`, Exchange redirect).
    Redirect(String),
    /// Forward as a new message from the mailbox (Exchange, Graph). Sieve cannot.
    Forward(String),
    /// Move to the deleted items (Exchange, Graph). Sieve has no such folder of its own: a
    /// caller that knows the destination's trash writes it as [`Action::MoveTo`] first.
    Delete,
    /// Drop the message for good (Sieve `discard`, Exchange and Graph permanent delete).
    Discard,
    /// Do not apply the rules after this one.
    Stop,
}

/// A rule, or a part of a script, that a platform cannot hold: its text, as the source shows
/// it, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untranslatable {
    pub text: String,
    pub reason: String,
}

/// What a source's rules read as: the rules understood, in order, and the parts that are not.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Translated {
    pub rules: Vec<Rule>,
    pub untranslatable: Vec<Untranslatable>,
}

/// Where an action goes within its rule once read back: Sieve's flags apply to the fileinto
/// or keep that follows them, so they go first, and stop last.
pub fn rank(action: &Action) -> u8 {
    match action {
        Action::MarkRead | Action::Flag | Action::MarkImportance(_) => 0,
        Action::MoveTo(_) => 1,
        Action::Redirect(_) | Action::Forward(_) => 2,
        Action::Delete | Action::Discard => 3,
        Action::Stop => 4,
    }
}

impl Rule {
    /// This rule as a manual step shows it, when a platform cannot hold it.
    pub fn untranslatable(&self, reason: impl Into<String>) -> Untranslatable {
        Untranslatable {
            text: self.to_string(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::From(v) => write!(f, "from contains {v:?}"),
            Condition::FromAddress(v) => write!(f, "from is {v:?}"),
            Condition::To(v) => write!(f, "to contains {v:?}"),
            Condition::RecipientContains(v) => write!(f, "to or cc contains {v:?}"),
            Condition::SentTo(v) => write!(f, "sent to {v:?}"),
            Condition::SubjectContains(v) => write!(f, "subject contains {v:?}"),
            Condition::HeaderContains { header, value } => {
                write!(f, "header {header:?} contains {value:?}")
            }
            Condition::HeadersContain(v) => write!(f, "headers contain {v:?}"),
            Condition::SizeOver(n) => write!(f, "size over {n} bytes"),
            Condition::SizeUnder(n) => write!(f, "size under {n} bytes"),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::MoveTo(v) => write!(f, "move to {v:?}"),
            Action::MarkRead => f.write_str("mark read"),
            Action::Flag => f.write_str("flag"),
            Action::MarkImportance(i) => write!(f, "mark importance {}", i.as_str()),
            Action::Redirect(v) => write!(f, "redirect to {v:?}"),
            Action::Forward(v) => write!(f, "forward to {v:?}"),
            Action::Delete => f.write_str("delete"),
            Action::Discard => f.write_str("delete for good"),
            Action::Stop => f.write_str("stop processing rules"),
        }
    }
}

/// `rule "Name" (disabled): if from contains "a" and size over 10 bytes then mark read, stop`.
impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rule {:?}", self.name)?;
        if !self.enabled {
            f.write_str(" (disabled)")?;
        }
        f.write_str(": ")?;
        if self.conditions.is_empty() {
            f.write_str("for every message")?;
        } else {
            let join = if self.match_all { " and " } else { " or " };
            let tests: Vec<String> = self.conditions.iter().map(|c| c.to_string()).collect();
            write!(f, "if {}", tests.join(join))?;
        }
        let actions: Vec<String> = self.actions.iter().map(|a| a.to_string()).collect();
        write!(f, " then {}", actions.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_reads_as_one_line() {
        let r = Rule {
            name: "Bills".into(),
            enabled: false,
            conditions: vec![Condition::From("billing@".into()), Condition::SizeOver(10)],
            match_all: false,
            actions: vec![Action::MarkRead, Action::MoveTo("Compta".into())],
        };
        assert_eq!(
            r.to_string(),
            "rule \"Bills\" (disabled): if from contains \"billing@\" or size over 10 bytes \
             then mark read, move to \"Compta\""
        );
    }
}
