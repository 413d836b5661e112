//! A legacy MX Plan account's filters (`/email/domain/{domain}/account/{accountName}/filter`):
//! each has a name (its key), a priority, an `active` switch, one action and rules. Every
//! change is a task of the domain's `/task/filter` list, named by the account, that vanishes
//! once finished: the change shows only then, as with the other legacy families. A filter is
//! created with its first rule; more rules are added one at a time.

use serde_json::{Value, json};

use super::super::reply::{ApiErr, Reply, Req};
use super::super::state::{FILTER_ACTIONS, LAcct, LFilter, LRule, LegacyKind, Owner, State};
use super::{account, task_get, task_ids};

pub(super) fn handle(st: &mut State, l: usize, r: &Req<'_>, rest: &str) -> Option<Reply> {
    const F: &str = "/account/{accountName}/filter";
    Some(match (r.method, rest) {
        ("GET", "/task/filter") => Ok(task_ids(
            st,
            l,
            LegacyKind::Filter,
            r.query("account"),
            false,
        )),
        ("GET", "/task/filter/{id}") => task_get(st, l, r, LegacyKind::Filter),
        ("GET", F) => account(st, l, r).map(|a| {
            json!(
                st.legacy[l].accounts[a]
                    .filters
                    .iter()
                    .map(|f| &f.name)
                    .collect::<Vec<_>>()
            )
        }),
        ("POST", F) => create(st, l, r),
        _ => {
            let rest = rest.strip_prefix(F)?.strip_prefix("/{name}")?;
            let (a, f) = match filter(st, l, r) {
                Ok(found) => found,
                Err(e) => return Some(Err(e)),
            };
            match (r.method, rest) {
                ("GET", "") => Ok(filter_json(st, l, a, f)),
                ("DELETE", "") => change(st, l, r, "delete", |acct, name| {
                    acct.filters.retain(|f| f.name != name)
                })
                .map(|t| json!([t])),
                ("POST", "/changeActivity") => {
                    let active = r.bool("activity").unwrap_or(true);
                    change(st, l, r, "changeActivity", move |acct, name| {
                        if let Some(f) = acct.filters.iter_mut().find(|f| f.name == name) {
                            f.active = active;
                        }
                    })
                }
                ("POST", "/changePriority") => {
                    let priority = r.i64("priority").unwrap_or(0);
                    if priority < 1 {
                        return Some(Err(ApiErr::bad(format!(
                            "priority {priority} must be 1 or more"
                        ))));
                    }
                    change(st, l, r, "changePriority", move |acct, name| {
                        if let Some(f) = acct.filters.iter_mut().find(|f| f.name == name) {
                            f.priority = priority;
                        }
                    })
                }
                ("GET", "/rule") => Ok(json!(
                    st.legacy[l].accounts[a].filters[f]
                        .rules
                        .iter()
                        .map(|x| x.id)
                        .collect::<Vec<_>>()
                )),
                ("POST", "/rule") => {
                    let rule = match new_rule(st, r) {
                        Ok(rule) => rule,
                        Err(e) => return Some(Err(e)),
                    };
                    change(st, l, r, "addRule", move |acct, name| {
                        if let Some(f) = acct.filters.iter_mut().find(|f| f.name == name) {
                            f.rules.push(rule);
                        }
                    })
                }
                ("GET", "/rule/{id}") => rule(st, l, r, a, f).map(|i| {
                    let x = &st.legacy[l].accounts[a].filters[f].rules[i];
                    json!({"header": x.header, "id": x.id, "operand": x.operand, "value": x.value})
                }),
                ("DELETE", "/rule/{id}") => {
                    let id = match rule(st, l, r, a, f) {
                        Ok(i) => st.legacy[l].accounts[a].filters[f].rules[i].id,
                        Err(e) => return Some(Err(e)),
                    };
                    change(st, l, r, "deleteRule", move |acct, name| {
                        if let Some(f) = acct.filters.iter_mut().find(|f| f.name == name) {
                            f.rules.retain(|x| x.id != id);
                        }
                    })
                    .map(|t| json!([t]))
                }
                _ => return None,
            }
        }
    })
}

/// `email.domain.TaskFilter`.
pub(super) fn task_json(st: &State, l: usize, id: u64) -> Value {
    match st.tasks.get(&id) {
        Some(t) => json!({
            "account": t.legacy.as_ref().map(|(_, n)| n.clone()).unwrap_or_default(),
            "action": t.function,
            "domain": st.legacy[l].domain,
            "id": t.id,
            "timestamp": t.todo_date,
        }),
        None => Value::Null,
    }
}

fn filter_json(st: &State, l: usize, a: usize, f: usize) -> Value {
    let acct = &st.legacy[l].accounts[a];
    let x = &acct.filters[f];
    json!({
        "action": x.action,
        "actionParam": x.action_param,
        "active": x.active,
        "domain": st.legacy[l].domain,
        "name": x.name,
        "pop": acct.name,
        "priority": x.priority,
    })
}

/// The account and the filter a call names.
fn filter(st: &State, l: usize, r: &Req<'_>) -> Result<(usize, usize), ApiErr> {
    let a = account(st, l, r)?;
    let name = r.param("name");
    st.legacy[l].accounts[a]
        .filters
        .iter()
        .position(|f| f.name == name)
        .map(|f| (a, f))
        .ok_or_else(|| ApiErr::missing("name", name))
}

fn rule(st: &State, l: usize, r: &Req<'_>, a: usize, f: usize) -> Result<usize, ApiErr> {
    let id = r.param_id("id");
    st.legacy[l].accounts[a].filters[f]
        .rules
        .iter()
        .position(|x| x.id == id)
        .ok_or_else(|| ApiErr::missing("id", r.param("id")))
}

fn new_rule(st: &mut State, r: &Req<'_>) -> Result<LRule, ApiErr> {
    let header = r.str("header").unwrap_or_default().trim().to_string();
    if header.is_empty() {
        return Err(ApiErr::bad("A rule needs a header"));
    }
    Ok(LRule {
        id: st.id(),
        header,
        // The schema check has made sure the operand is one of the enum's.
        operand: r.str("operand").unwrap_or("contains").to_string(),
        value: r.str("value").unwrap_or_default().to_string(),
    })
}

fn create(st: &mut State, l: usize, r: &Req<'_>) -> Reply {
    let a = account(st, l, r)?;
    let name = r.str("name").unwrap_or_default().to_string();
    if name.trim().is_empty() {
        return Err(ApiErr::bad("A filter needs a name"));
    }
    if st.legacy[l].accounts[a]
        .filters
        .iter()
        .any(|f| f.name == name)
    {
        return Err(ApiErr::bad(format!("The filter {name} already exists")));
    }
    let priority = r.i64("priority").unwrap_or(0);
    if priority < 1 {
        return Err(ApiErr::bad(format!(
            "priority {priority} must be 1 or more"
        )));
    }
    let action = r.str("action").unwrap_or_default().to_string();
    debug_assert!(FILTER_ACTIONS.contains(&action.as_str()));
    let param = r
        .str("actionParam")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string);
    let domain = st.legacy[l].domain.clone();
    match (action.as_str(), &param) {
        ("redirect", Some(p)) if p.contains('@') => {}
        ("redirect", _) => {
            return Err(ApiErr::bad(
                "A redirect filter needs an email address in actionParam",
            ));
        }
        ("account", Some(p)) => {
            // (inferred) the local account is named by its address or its account name.
            let local = p
                .strip_suffix(&format!("@{domain}"))
                .unwrap_or(p)
                .to_ascii_lowercase();
            if !st.legacy[l].accounts.iter().any(|x| x.name == local) {
                return Err(ApiErr::bad(format!("{p} is not an account of {domain}")));
            }
        }
        ("account", None) => {
            return Err(ApiErr::bad(
                "An account filter needs an account in actionParam",
            ));
        }
        _ => {}
    }
    let first = new_rule(st, r)?;
    let filter = LFilter {
        name,
        priority,
        active: r.bool("active").unwrap_or(true),
        action,
        action_param: param,
        rules: vec![first],
    };
    let owner = st.legacy[l].accounts[a].name.clone();
    let key = owner.clone();
    let tid = st.start_task(
        Owner::Legacy(l),
        "add",
        None,
        Some((LegacyKind::Filter, owner)),
        move |st, ok, _| {
            if !ok {
                return Ok(());
            }
            let acct = st.legacy[l]
                .accounts
                .iter_mut()
                .find(|x| x.name == key)
                .ok_or("the account went away")?;
            // Two creations of one name raced: the second task fails, as a unique key would.
            if acct.filters.iter().any(|f| f.name == filter.name) {
                return Err(format!("the filter {} already exists", filter.name));
            }
            acct.filters.push(filter);
            Ok(())
        },
    );
    Ok(task_json(st, l, tid))
}

/// A change to an existing filter, applied by a task when it ends.
fn change(
    st: &mut State,
    l: usize,
    r: &Req<'_>,
    action: &'static str,
    apply: impl FnOnce(&mut LAcct, &str) + Send + 'static,
) -> Reply {
    let (a, f) = filter(st, l, r)?;
    let owner = st.legacy[l].accounts[a].name.clone();
    let name = st.legacy[l].accounts[a].filters[f].name.clone();
    let key = owner.clone();
    let tid = st.start_task(
        Owner::Legacy(l),
        action,
        None,
        Some((LegacyKind::Filter, owner)),
        move |st, ok, _| {
            if ok && let Some(acct) = st.legacy[l].accounts.iter_mut().find(|x| x.name == key) {
                apply(acct, &name);
            }
            Ok(())
        },
    );
    Ok(task_json(st, l, tid))
}
