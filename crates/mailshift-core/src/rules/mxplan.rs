//! Inbox rules ↔ legacy MX Plan filters (`/email/domain/{domain}/account/{accountName}/filter`
//! of OVHcloud's API: a filter has a name, a priority, an `active` switch, one action
//! (`domain.DomainFilterActionEnum`: accept, account, delete, redirect, with `actionParam`)
//! and rules (`email.domain.Rule`: header, operand of `domain.DomainFilterOperandEnum`:
//! contains, noContains, checkspf, and a value), which must all hold. Pure data in and out:
//! the OVHcloud client (`mailshift-ovh`, `ops/filter.rs`) owns the calls.
//!
//! What OVHcloud's guide ("Creating filters for your email addresses", legacy MX Plan) says,
//! and this module relies on: filters run in order of priority (1 first); every rule of a
//! filter must hold; the header is From (the sender), To (the recipient), the subject, or any
//! other header by name; accept leaves the message in the inbox, account redirects it to
//! another address of the same domain, redirect to any address, delete deletes it "without
//! further notice". (inferred) The action of the first filter that matches is final: accept
//! would mean nothing otherwise; so every filter reads as a rule that ends with stop, and a
//! redirect keeps no copy (the guide names no copy): it reads as redirect then discard.
//!
//! What filters cannot hold comes back as [`Untranslatable`], never dropped: a folder, a
//! flag, an importance, a forward, a move to the deleted items, a redirect that keeps a copy,
//! any one of several conditions, a size, an exact address, a To-or-Cc test, a rule with no
//! condition; and read from MX Plan, what the model cannot hold: `noContains`, `checkspf`,
//! a filter without rules, an action the schema does not list.

use std::fmt;

use super::{Action, Condition, Rule, Translated, Untranslatable};

/// What a filter does with the message (`action` and `actionParam`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterAction {
    /// `accept`: leave it in the inbox.
    Accept,
    /// `account`: redirect it to another account of the domain (the parameter as the API
    /// holds it: an address, or an account name).
    Account(String),
    /// `delete`: delete it for good.
    Delete,
    /// `redirect`: redirect it to this address.
    Redirect(String),
}

impl FilterAction {
    /// The API's `action` and `actionParam`.
    pub fn api(&self) -> (&'static str, Option<&str>) {
        match self {
            FilterAction::Accept => ("accept", None),
            FilterAction::Account(a) => ("account", Some(a)),
            FilterAction::Delete => ("delete", None),
            FilterAction::Redirect(a) => ("redirect", Some(a)),
        }
    }

    /// From the API's `action` and `actionParam`; an unknown action or a redirect without
    /// its address is an error naming it.
    pub fn from_api(action: Option<&str>, param: Option<&str>) -> Result<FilterAction, String> {
        let param = param.map(str::trim).filter(|p| !p.is_empty());
        match (action, param) {
            (Some("accept"), _) => Ok(FilterAction::Accept),
            (Some("delete"), _) => Ok(FilterAction::Delete),
            (Some("account"), Some(p)) => Ok(FilterAction::Account(p.to_string())),
            (Some("redirect"), Some(p)) => Ok(FilterAction::Redirect(p.to_string())),
            (Some(a @ ("account" | "redirect")), None) => {
                Err(format!("the action {a} has no address (actionParam)"))
            }
            (Some(other), _) => Err(format!("the action {other:?} is not one MX Plan lists")),
            (None, _) => Err("the filter has no action".into()),
        }
    }
}

/// How a filter rule compares (`domain.DomainFilterOperandEnum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    Contains,
    NoContains,
    CheckSpf,
}

impl Operand {
    pub fn as_str(self) -> &'static str {
        match self {
            Operand::Contains => "contains",
            Operand::NoContains => "noContains",
            Operand::CheckSpf => "checkspf",
        }
    }

    pub fn parse(s: &str) -> Option<Operand> {
        match s {
            "contains" => Some(Operand::Contains),
            "noContains" => Some(Operand::NoContains),
            "checkspf" => Some(Operand::CheckSpf),
            _ => None,
        }
    }
}

/// One rule of a filter (`email.domain.Rule` without its id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterRule {
    pub header: String,
    pub operand: Operand,
    pub value: String,
}

/// One MX Plan filter with its rules, in the order the API lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Its key in the API (`/filter/{name}`).
    pub name: String,
    /// 1 runs first.
    pub priority: i64,
    pub active: bool,
    pub action: FilterAction,
    pub rules: Vec<FilterRule>,
}

/// The header names this module writes for the model's From, To and Subject tests, as the
/// control panel offers them.
const FROM: &str = "From";
const TO: &str = "To";
const SUBJECT: &str = "Subject";

/// The filters for `rules`, priorities 1, 2... in order among the filters written; and the
/// rules that could not be. Redirects are written as `redirect` with the full address
/// (`account` is only ever read).
pub fn to_mxplan(rules: &[Rule]) -> (Vec<Filter>, Vec<Untranslatable>) {
    let mut out: Vec<Filter> = Vec::new();
    let mut left = Vec::new();
    for rule in rules {
        let priority = out.len() as i64 + 1;
        match filter_of(rule, priority) {
            // The name is the filter's key: a second rule of the same name would replace the
            // first one.
            Ok(f) if out.iter().any(|o| o.name.eq_ignore_ascii_case(&f.name)) => left.push(
                rule.untranslatable(format!(
                    "another rule is already named {:?}, and MX Plan names filters uniquely: rename one",
                    f.name
                )),
            ),
            Ok(f) => out.push(f),
            Err(reason) => left.push(rule.untranslatable(reason)),
        }
    }
    (out, left)
}

fn filter_of(rule: &Rule, priority: i64) -> Result<Filter, String> {
    if rule.name.trim().is_empty() {
        return Err("the rule has no name, and an MX Plan filter is known by its name".into());
    }
    if rule.name.chars().any(char::is_control) {
        return Err("its name holds a control character".into());
    }
    if rule.conditions.is_empty() {
        return Err("it applies to every message, and an MX Plan filter needs a rule".into());
    }
    if !rule.match_all && rule.conditions.len() > 1 {
        return Err(
            "any one of its conditions is enough, and every rule of an MX Plan filter must hold"
                .into(),
        );
    }
    let rules = rule
        .conditions
        .iter()
        .map(filter_rule)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Filter {
        name: rule.name.clone(),
        priority,
        active: rule.enabled,
        action: filter_action(&rule.actions)?,
        rules,
    })
}

fn filter_rule(c: &Condition) -> Result<FilterRule, String> {
    let contains = |header: &str, value: &str| {
        if value.chars().any(char::is_control) {
            return Err(format!("the test {c} holds a control character"));
        }
        Ok(FilterRule {
            header: header.to_string(),
            operand: Operand::Contains,
            value: value.to_string(),
        })
    };
    match c {
        Condition::From(v) => contains(FROM, v),
        Condition::To(v) => contains(TO, v),
        Condition::SubjectContains(v) => contains(SUBJECT, v),
        Condition::HeaderContains { header, value } => {
            let h = header.trim();
            if h.is_empty() || h.contains(|ch: char| ch == ':' || ch.is_whitespace()) {
                Err(format!("{header:?} is not a header name"))
            } else if h.eq_ignore_ascii_case(SUBJECT) {
                contains(SUBJECT, value)
            } else if h.eq_ignore_ascii_case(FROM) || h.eq_ignore_ascii_case(TO) {
                // MX Plan's From and To are the sender and the recipient: the model keeps the
                // whole header text apart from its address.
                Err(format!(
                    "MX Plan tests the {h} address, not the whole {h} header text"
                ))
            } else {
                contains(h, value)
            }
        }
        Condition::FromAddress(_) => Err(
            "MX Plan can only test that the sender contains a text, not that it is one address"
                .into(),
        ),
        Condition::SentTo(_) | Condition::RecipientContains(_) => {
            Err("MX Plan tests the To header only, not To and Cc".into())
        }
        Condition::HeadersContain(_) => {
            Err("MX Plan tests one named header, not the text of all of them".into())
        }
        Condition::SizeOver(_) | Condition::SizeUnder(_) => {
            Err("MX Plan filters cannot test a message's size".into())
        }
    }
}

/// The one MX Plan action a rule's actions amount to. Every filter's action is final, so a
/// trailing stop changes nothing; a discard ends delivery wherever it stands.
fn filter_action(actions: &[Action]) -> Result<FilterAction, String> {
    let acts: Vec<&Action> = actions.iter().filter(|a| **a != Action::Stop).collect();
    let stop = actions.contains(&Action::Stop);
    match acts.as_slice() {
        [] if stop => Ok(FilterAction::Accept),
        [Action::Discard] => Ok(FilterAction::Delete),
        [Action::Redirect(to), Action::Discard] | [Action::Discard, Action::Redirect(to)] => {
            if to.contains('@') {
                Ok(FilterAction::Redirect(to.clone()))
            } else {
                Err(format!("{to:?} is not an email address"))
            }
        }
        [Action::Redirect(_)] => Err(
            "it redirects and keeps a copy, and an MX Plan filter's redirect keeps none: \
             a redirection with a local copy does (the plan's `redirections`)"
                .into(),
        ),
        [] => Err("a rule without actions".into()),
        _ => {
            let other = acts
                .iter()
                .find(|a| !matches!(a, Action::Redirect(_) | Action::Discard))
                .copied();
            Err(match other {
                Some(Action::MoveTo(_)) => {
                    "MX Plan filters cannot file into a folder (accept, redirect and delete only)"
                        .to_string()
                }
                Some(Action::MarkRead | Action::Flag | Action::MarkImportance(_)) => {
                    "MX Plan filters cannot mark a message (read, flagged or important)".into()
                }
                Some(Action::Forward(_)) => {
                    "MX Plan filters redirect the message itself, they cannot forward it as a new one"
                        .into()
                }
                Some(Action::Delete) => {
                    "MX Plan's delete is for good, the rule moves to the deleted items".into()
                }
                _ => "an MX Plan filter does one thing: accept, redirect to one address, or delete"
                    .into(),
            })
        }
    }
}

/// Reads an account's filters (`domain` is the account's, to complete an `account` action
/// given as an account name) in order of priority, name breaking ties.
pub fn from_mxplan(filters: &[Filter], domain: &str) -> Translated {
    let mut sorted: Vec<&Filter> = filters.iter().collect();
    sorted.sort_by(|a, b| a.priority.cmp(&b.priority).then(a.name.cmp(&b.name)));
    let mut out = Translated::default();
    for f in sorted {
        match rule_of(f, domain) {
            Ok(r) => out.rules.push(r),
            Err(reason) => out.untranslatable.push(Untranslatable {
                text: f.to_string(),
                reason,
            }),
        }
    }
    out
}

fn rule_of(f: &Filter, domain: &str) -> Result<Rule, String> {
    if f.rules.is_empty() {
        return Err("a filter without rules, whose effect MX Plan does not document".into());
    }
    let conditions = f
        .rules
        .iter()
        .map(condition_of)
        .collect::<Result<Vec<_>, _>>()?;
    let actions = match &f.action {
        FilterAction::Accept => vec![Action::Stop],
        FilterAction::Delete => vec![Action::Discard, Action::Stop],
        FilterAction::Redirect(to) => {
            vec![Action::Redirect(to.clone()), Action::Discard, Action::Stop]
        }
        FilterAction::Account(to) => {
            let to = if to.contains('@') {
                to.clone()
            } else {
                format!("{to}@{domain}")
            };
            vec![Action::Redirect(to), Action::Discard, Action::Stop]
        }
    };
    Ok(Rule {
        name: f.name.clone(),
        enabled: f.active,
        conditions,
        match_all: true,
        actions,
    })
}

fn condition_of(r: &FilterRule) -> Result<Condition, String> {
    match r.operand {
        Operand::Contains => {}
        Operand::NoContains => {
            return Err(format!(
                "the rule \"{} does not contain {:?}\": the model holds no negative test",
                r.header, r.value
            ));
        }
        Operand::CheckSpf => {
            return Err(
                "an SPF check, which only MX Plan's own servers make (no other platform's rules test SPF)"
                    .into(),
            );
        }
    }
    let h = r.header.trim();
    let v = r.value.clone();
    Ok(if h.eq_ignore_ascii_case(FROM) {
        Condition::From(v)
    } else if h.eq_ignore_ascii_case(TO) {
        Condition::To(v)
    } else if h.eq_ignore_ascii_case(SUBJECT) {
        Condition::SubjectContains(v)
    } else if h.is_empty() {
        return Err("a rule without a header".into());
    } else {
        Condition::HeaderContains {
            header: h.to_string(),
            value: v,
        }
    })
}

impl fmt::Display for FilterRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {:?}",
            self.header,
            self.operand.as_str(),
            self.value
        )
    }
}

impl fmt::Display for FilterAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.api() {
            (a, Some(p)) => write!(f, "{a} {p:?}"),
            (a, None) => f.write_str(a),
        }
    }
}

/// `filter "Spam" (priority 2, disabled): if Subject contains "[SPAM]" then delete`.
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "filter {:?} (priority {}", self.name, self.priority)?;
        if !self.active {
            f.write_str(", disabled")?;
        }
        f.write_str("): ")?;
        if self.rules.is_empty() {
            f.write_str("without rules")?;
        } else {
            let rules: Vec<String> = self.rules.iter().map(|r| r.to_string()).collect();
            write!(f, "if {}", rules.join(" and "))?;
        }
        write!(f, " then {}", self.action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, conditions: Vec<Condition>, actions: Vec<Action>) -> Rule {
        Rule {
            name: name.into(),
            enabled: true,
            conditions,
            match_all: true,
            actions,
        }
    }

    fn contains(header: &str, value: &str) -> FilterRule {
        FilterRule {
            header: header.into(),
            operand: Operand::Contains,
            value: value.into(),
        }
    }

    #[test]
    fn rules_become_filters_in_order() {
        let mut off = rule(
            "Boss",
            vec![Condition::From("boss@".into()), Condition::To("me@".into())],
            vec![
                Action::Redirect("me@elsewhere.example".into()),
                Action::Discard,
            ],
        );
        off.enabled = false;
        let rules = vec![
            rule(
                "Spam",
                vec![Condition::SubjectContains("[SPAM]".into())],
                vec![Action::Discard, Action::Stop],
            ),
            off,
            rule(
                "Lists",
                vec![Condition::HeaderContains {
                    header: "List-Id".into(),
                    value: "dev".into(),
                }],
                vec![Action::Stop],
            ),
        ];
        let (filters, left) = to_mxplan(&rules);
        assert_eq!(left, []);
        assert_eq!(
            filters,
            [
                Filter {
                    name: "Spam".into(),
                    priority: 1,
                    active: true,
                    action: FilterAction::Delete,
                    rules: vec![contains("Subject", "[SPAM]")],
                },
                Filter {
                    name: "Boss".into(),
                    priority: 2,
                    active: false,
                    action: FilterAction::Redirect("me@elsewhere.example".into()),
                    rules: vec![contains("From", "boss@"), contains("To", "me@")],
                },
                Filter {
                    name: "Lists".into(),
                    priority: 3,
                    active: true,
                    action: FilterAction::Accept,
                    rules: vec![contains("List-Id", "dev")],
                },
            ]
        );
        assert_eq!(
            filters[1].to_string(),
            "filter \"Boss\" (priority 2, disabled): if From contains \"boss@\" and \
             To contains \"me@\" then redirect \"me@elsewhere.example\""
        );
    }

    #[test]
    fn what_filters_cannot_hold_is_a_manual_step_with_its_reason() {
        let from = || vec![Condition::From("a@".into())];
        let cases = [
            (
                rule("Folder", from(), vec![Action::MoveTo("Work".into())]),
                "file into a folder",
            ),
            (rule("Read", from(), vec![Action::MarkRead]), "mark"),
            (
                rule("Copy", from(), vec![Action::Redirect("x@y.example".into())]),
                "keeps a copy",
            ),
            (
                rule(
                    "Fwd",
                    from(),
                    vec![Action::Forward("x@y.example".into()), Action::Discard],
                ),
                "forward",
            ),
            (rule("Trash", from(), vec![Action::Delete]), "deleted items"),
            (
                rule("Every", vec![], vec![Action::Discard]),
                "every message",
            ),
            (
                rule(
                    "Big",
                    vec![Condition::SizeOver(1000)],
                    vec![Action::Discard],
                ),
                "size",
            ),
            (
                rule(
                    "Exact",
                    vec![Condition::FromAddress("a@b.example".into())],
                    vec![Action::Discard],
                ),
                "one address",
            ),
            (
                rule(
                    "Cc",
                    vec![Condition::RecipientContains("a".into())],
                    vec![Action::Discard],
                ),
                "To and Cc",
            ),
            (
                rule(
                    "Raw",
                    vec![Condition::HeaderContains {
                        header: "from".into(),
                        value: "Bob".into(),
                    }],
                    vec![Action::Discard],
                ),
                "whole from header",
            ),
            (rule("", from(), vec![Action::Discard]), "no name"),
        ];
        for (r, why) in cases {
            let (filters, left) = to_mxplan(std::slice::from_ref(&r));
            assert_eq!(filters, [], "{r}");
            assert_eq!(left.len(), 1, "{r}");
            assert_eq!(left[0].text, r.to_string());
            assert!(left[0].reason.contains(why), "{r}: {}", left[0].reason);
        }
        let mut any = rule(
            "Any",
            vec![Condition::From("a".into()), Condition::From("b".into())],
            vec![Action::Discard],
        );
        any.match_all = false;
        let (_, left) = to_mxplan(&[any]);
        assert!(left[0].reason.contains("every rule"), "{left:?}");
    }

    #[test]
    fn a_second_rule_of_the_same_name_is_not_written_over_the_first() {
        let a = rule(
            "Same",
            vec![Condition::From("a".into())],
            vec![Action::Discard],
        );
        let b = rule(
            "same",
            vec![Condition::From("b".into())],
            vec![Action::Discard],
        );
        let (filters, left) = to_mxplan(&[a, b.clone()]);
        assert_eq!(filters.len(), 1);
        assert_eq!(left, [b.untranslatable(left[0].reason.clone())]);
        assert!(left[0].reason.contains("rename one"));
    }

    #[test]
    fn filters_read_as_rules_that_end_processing() {
        let filters = vec![
            Filter {
                name: "Later".into(),
                priority: 5,
                active: true,
                action: FilterAction::Account("archive".into()),
                rules: vec![contains("subject", "invoice")],
            },
            Filter {
                name: "First".into(),
                priority: 1,
                active: false,
                action: FilterAction::Accept,
                rules: vec![contains("X-Mailer", "Thunder"), contains("FROM", "bob")],
            },
        ];
        let t = from_mxplan(&filters, "legacy.example");
        assert_eq!(t.untranslatable, []);
        assert_eq!(
            t.rules,
            [
                Rule {
                    name: "First".into(),
                    enabled: false,
                    conditions: vec![
                        Condition::HeaderContains {
                            header: "X-Mailer".into(),
                            value: "Thunder".into()
                        },
                        Condition::From("bob".into()),
                    ],
                    match_all: true,
                    actions: vec![Action::Stop],
                },
                rule(
                    "Later",
                    vec![Condition::SubjectContains("invoice".into())],
                    vec![
                        Action::Redirect("archive@legacy.example".into()),
                        Action::Discard,
                        Action::Stop
                    ],
                ),
            ]
        );
    }

    #[test]
    fn filters_the_model_cannot_hold_keep_their_text() {
        let base = Filter {
            name: "Neg".into(),
            priority: 1,
            active: true,
            action: FilterAction::Delete,
            rules: vec![
                contains("Subject", "money"),
                FilterRule {
                    header: "From".into(),
                    operand: Operand::NoContains,
                    value: "john@mybank.example".into(),
                },
            ],
        };
        let spf = Filter {
            name: "Spf".into(),
            rules: vec![FilterRule {
                header: "From".into(),
                operand: Operand::CheckSpf,
                value: "none".into(),
            }],
            ..base.clone()
        };
        let empty = Filter {
            name: "Empty".into(),
            rules: vec![],
            ..base.clone()
        };
        let t = from_mxplan(&[base.clone(), spf.clone(), empty.clone()], "d.example");
        assert_eq!(t.rules, []);
        let texts: Vec<&str> = t.untranslatable.iter().map(|u| u.text.as_str()).collect();
        assert_eq!(
            texts,
            [empty.to_string(), base.to_string(), spf.to_string()]
        );
        assert!(t.untranslatable[1].reason.contains("negative"));
        assert!(t.untranslatable[2].reason.contains("SPF"));
        assert!(t.untranslatable[0].reason.contains("without rules"));
        assert_eq!(
            base.to_string(),
            "filter \"Neg\" (priority 1): if Subject contains \"money\" and From noContains \
             \"john@mybank.example\" then delete"
        );
    }

    #[test]
    fn actions_read_from_the_api_and_back() {
        for (a, p, want) in [
            ("accept", None, FilterAction::Accept),
            ("delete", Some(""), FilterAction::Delete),
            (
                "redirect",
                Some("x@y.example"),
                FilterAction::Redirect("x@y.example".into()),
            ),
            ("account", Some("bob"), FilterAction::Account("bob".into())),
        ] {
            let got = FilterAction::from_api(Some(a), p).unwrap();
            assert_eq!(got, want);
            assert_eq!(got.api().0, a);
        }
        assert!(
            FilterAction::from_api(Some("redirect"), None)
                .unwrap_err()
                .contains("no address")
        );
        assert!(FilterAction::from_api(Some("bounce"), None).is_err());
        assert_eq!(Operand::parse("noContains"), Some(Operand::NoContains));
        assert_eq!(Operand::parse("matches"), None);
    }

    #[test]
    fn round_trips_both_ways() {
        // Model → MX Plan → model: the rules MX Plan holds come back as they were.
        let rules = vec![
            rule(
                "Spam",
                vec![Condition::SubjectContains("[SPAM]".into())],
                vec![Action::Discard, Action::Stop],
            ),
            rule(
                "Away",
                vec![
                    Condition::From("news".into()),
                    Condition::HeaderContains {
                        header: "List-Id".into(),
                        value: "x".into(),
                    },
                ],
                vec![
                    Action::Redirect("me@else.example".into()),
                    Action::Discard,
                    Action::Stop,
                ],
            ),
            rule("Keep", vec![Condition::To("me".into())], vec![Action::Stop]),
        ];
        let (filters, left) = to_mxplan(&rules);
        assert_eq!(left, []);
        let back = from_mxplan(&filters, "d.example");
        assert_eq!(back.untranslatable, []);
        assert_eq!(back.rules, rules);
        // MX Plan → model → MX Plan: the same filters (an `account` comes back as a redirect
        // to the full address, which does the same).
        let again = to_mxplan(&back.rules);
        assert_eq!(again, (filters.clone(), vec![]));
        let local = Filter {
            name: "Local".into(),
            priority: 1,
            active: true,
            action: FilterAction::Account("bob@d.example".into()),
            rules: vec![contains("From", "x")],
        };
        let (f, _) = to_mxplan(&from_mxplan(std::slice::from_ref(&local), "d.example").rules);
        assert_eq!(
            f,
            [Filter {
                action: FilterAction::Redirect("bob@d.example".into()),
                ..local
            }]
        );
    }
}
