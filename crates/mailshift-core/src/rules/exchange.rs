//! Exchange's rule model, shared by its two wire forms (EWS `t:Rule` in `ews`, Graph's
//! `messageRule` in `graph`): conditions are lists of one kind each, where any entry of a list
//! may match and every list must; sizes are one range in whole kilobytes; actions are a set,
//! run in Exchange's own order. This module maps that shape to and from [`Rule`], once for
//! both wire forms.

use super::{Action, Condition, Importance, Rule, rank};

/// A rule's conditions in Exchange's shape, each list in the schema's order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Predicates {
    pub header: Vec<String>,
    pub recipient: Vec<String>,
    pub sender: Vec<String>,
    pub subject: Vec<String>,
    pub from_addresses: Vec<String>,
    pub sent_to: Vec<String>,
    /// Kilobytes.
    pub min_kb: Option<u64>,
    pub max_kb: Option<u64>,
}

/// A rule's actions in Exchange's shape.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Actions {
    pub delete: bool,
    pub forward: Vec<String>,
    pub importance: Option<Importance>,
    pub mark_read: bool,
    /// A folder path, as the model names it; the wire form resolves it to an id.
    pub move_to: Option<String>,
    pub permanent_delete: bool,
    pub redirect: Vec<String>,
    pub stop: bool,
}

/// Exchange keeps sizes in kilobytes: a size in bytes is rounded up to the next whole one
/// (the rule then differs by less than a kilobyte, which no user sets a rule by).
fn to_kb(n: u64) -> Result<u64, String> {
    let kb = n.div_ceil(1024);
    if kb > i32::MAX as u64 {
        return Err(format!(
            "a size of {n} bytes is beyond what Exchange holds (2^31 kilobytes)"
        ));
    }
    Ok(kb)
}

pub fn predicates(rule: &Rule) -> Result<Predicates, String> {
    let mut p = Predicates::default();
    let mut sizes = 0;
    for c in &rule.conditions {
        match c {
            Condition::From(v) => p.sender.push(v.clone()),
            Condition::FromAddress(v) => p.from_addresses.push(v.clone()),
            Condition::RecipientContains(v) => p.recipient.push(v.clone()),
            Condition::SentTo(v) => p.sent_to.push(v.clone()),
            Condition::SubjectContains(v) => p.subject.push(v.clone()),
            Condition::HeadersContain(v) => p.header.push(v.clone()),
            Condition::To(_) => {
                return Err(
                    "Exchange tests To and Cc together; a test of To alone cannot be written"
                        .into(),
                );
            }
            Condition::HeaderContains { header, .. } => {
                return Err(format!(
                    "Exchange looks for a text anywhere in the headers, not in the one field \
                     {header:?}: the rule would catch other messages too"
                ));
            }
            Condition::SizeOver(n) => {
                sizes += 1;
                if p.min_kb.replace(to_kb(*n)?).is_some() {
                    return Err("two minimum sizes".into());
                }
            }
            Condition::SizeUnder(n) => {
                sizes += 1;
                if p.max_kb.replace(to_kb(*n)?).is_some() {
                    return Err("two maximum sizes".into());
                }
            }
        }
    }
    let lists = [
        &p.header,
        &p.recipient,
        &p.sender,
        &p.subject,
        &p.from_addresses,
        &p.sent_to,
    ];
    let kinds = lists.iter().filter(|l| !l.is_empty()).count() + usize::from(sizes > 0);
    if rule.match_all || rule.conditions.len() < 2 {
        if lists.iter().any(|l| l.len() > 1) {
            return Err(
                "Exchange reads several texts of one kind as \"any of them\": \
                 two such tests that must both hold cannot be written"
                    .into(),
            );
        }
    } else if kinds > 1 || sizes > 1 {
        return Err(
            "Exchange rules hold conditions that must all hold, or several texts \
             of one kind of which any may match, not any of several kinds"
                .into(),
        );
    }
    Ok(p)
}

/// The model's conditions for Exchange's; `Err` for a mix the model cannot say (any of
/// several texts of one kind, and something else too).
pub fn conditions(p: &Predicates) -> Result<(Vec<Condition>, bool), String> {
    let mut out = Vec::new();
    type Make = fn(String) -> Condition;
    let lists: [(&Vec<String>, Make); 6] = [
        (&p.header, Condition::HeadersContain),
        (&p.recipient, Condition::RecipientContains),
        (&p.sender, Condition::From),
        (&p.subject, Condition::SubjectContains),
        (&p.from_addresses, Condition::FromAddress),
        (&p.sent_to, Condition::SentTo),
    ];
    let mut multi = false;
    for (list, make) in lists {
        multi |= list.len() > 1;
        out.extend(list.iter().cloned().map(make));
    }
    let single_kind = lists_kinds(p) == 1;
    if let Some(kb) = p.min_kb {
        out.push(Condition::SizeOver(kb * 1024));
    }
    if let Some(kb) = p.max_kb {
        out.push(Condition::SizeUnder(kb * 1024));
    }
    if multi {
        if single_kind && p.min_kb.is_none() && p.max_kb.is_none() {
            return Ok((out, false));
        }
        return Err(
            "any of several texts of one kind and other conditions as well: \
             the model holds all-of or any-of, not both in one rule"
                .into(),
        );
    }
    Ok((out, true))
}

fn lists_kinds(p: &Predicates) -> usize {
    [
        &p.header,
        &p.recipient,
        &p.sender,
        &p.subject,
        &p.from_addresses,
        &p.sent_to,
    ]
    .iter()
    .filter(|l| !l.is_empty())
    .count()
}

pub fn actions(rule: &Rule) -> Result<Actions, String> {
    if rule.actions.is_empty() {
        return Err("it has no action".into());
    }
    let mut a = Actions::default();
    for action in &rule.actions {
        match action {
            Action::MoveTo(f) => {
                if a.move_to.as_ref().is_some_and(|m| m != f) {
                    return Err("it moves to two folders; Exchange moves to one".into());
                }
                a.move_to = Some(f.clone());
            }
            Action::MarkRead => a.mark_read = true,
            Action::Flag => {
                return Err(
                    "Exchange rules cannot flag a message (the nearest, marking it \
                     important, is not the same)"
                        .into(),
                );
            }
            Action::MarkImportance(i) => {
                if a.importance.is_some_and(|j| j != *i) {
                    return Err("it marks two importances".into());
                }
                a.importance = Some(*i);
            }
            Action::Redirect(to) => a.redirect.push(to.clone()),
            Action::Forward(to) => a.forward.push(to.clone()),
            Action::Delete => a.delete = true,
            Action::Discard => a.permanent_delete = true,
            Action::Stop => a.stop = true,
        }
    }
    Ok(a)
}

/// The model's actions for Exchange's, in [`rank`] order.
pub fn model_actions(a: &Actions) -> Vec<Action> {
    let mut out = Vec::new();
    if a.mark_read {
        out.push(Action::MarkRead);
    }
    if let Some(i) = a.importance {
        out.push(Action::MarkImportance(i));
    }
    if let Some(f) = &a.move_to {
        out.push(Action::MoveTo(f.clone()));
    }
    out.extend(a.redirect.iter().cloned().map(Action::Redirect));
    out.extend(a.forward.iter().cloned().map(Action::Forward));
    if a.delete {
        out.push(Action::Delete);
    }
    if a.permanent_delete {
        out.push(Action::Discard);
    }
    if a.stop {
        out.push(Action::Stop);
    }
    out.sort_by_key(rank);
    out
}
