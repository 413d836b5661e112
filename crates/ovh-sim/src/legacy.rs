//! The legacy MX Plan API (`/email/domain/{domain}`): accounts named by their local part,
//! redirections, Mailman lists. Its tasks carry no status: they sit in
//! `/task/{account|redirection|mailinglist}` while under way and vanish when finished, which
//! is when the change becomes visible (a new account appears, a password works). An
//! account's filters and their rules are in `filter`.

mod filter;

use serde_json::{Value, json};

use super::reply::{ApiErr, Reply, Req};
use super::state::{LAcct, LList, LegacyKind, Owner, Redir, State};

/// Account sizes the simulated offer allows, in bytes. (inferred: the real list depends on
/// the offer; the client must read `allowedAccountSize` rather than assume these.)
const ALLOWED_SIZES: [u64; 7] = [
    25_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
];

const ROOT: &str = "/email/domain/{domain}";

pub(super) fn handle(st: &mut State, r: &Req<'_>) -> Option<Reply> {
    if (r.method, r.template) == ("GET", "/email/domain") {
        return Some(Ok(json!(
            st.legacy.iter().map(|l| &l.domain).collect::<Vec<_>>()
        )));
    }
    let rest = r.template.strip_prefix(ROOT)?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let name = r.param("domain").to_ascii_lowercase();
    let Some(l) = st.legacy.iter().position(|l| l.domain == name) else {
        return Some(Err(ApiErr::missing("domain", &name)));
    };
    Some(match (r.method, rest) {
        ("GET", "") => Ok(domain_json(st, l)),
        ("GET", "/account") => {
            let name = r.query("accountName");
            let description = r.query("description");
            let names: Vec<&String> = st.legacy[l]
                .accounts
                .iter()
                .filter(|a| name.is_none_or(|n| n == a.name))
                .filter(|a| description.is_none_or(|d| d == a.description))
                .map(|a| &a.name)
                .collect();
            Ok(json!(names))
        }
        ("POST", "/account") => account_create(st, l, r),
        ("GET", "/account/{accountName}") => account(st, l, r).map(|a| account_json(st, l, a)),
        ("PUT", "/account/{accountName}") => account_put(st, l, r),
        ("DELETE", "/account/{accountName}") => account_delete(st, l, r),
        ("POST", "/account/{accountName}/changePassword") => change_password(st, l, r),
        ("GET", "/account/{accountName}/usage") => account(st, l, r).map(|a| {
            let acct = &st.legacy[l].accounts[a];
            json!({"date": st.now_str(), "emailCount": null, "quota": acct.current_usage.unwrap_or(0)})
        }),
        ("GET", "/redirection") => {
            let from = r.query("from").map(str::to_ascii_lowercase);
            let to = r.query("to").map(str::to_ascii_lowercase);
            let ids: Vec<&String> = st.legacy[l]
                .redirections
                .iter()
                .filter(|x| from.as_ref().is_none_or(|f| *f == x.from))
                .filter(|x| to.as_ref().is_none_or(|t| *t == x.to))
                .map(|x| &x.id)
                .collect();
            Ok(json!(ids))
        }
        ("POST", "/redirection") => redirection_create(st, l, r),
        ("GET", "/redirection/{id}") => redirection(st, l, r).map(|i| {
            let x = &st.legacy[l].redirections[i];
            json!({"from": x.from, "id": x.id, "to": x.to})
        }),
        ("DELETE", "/redirection/{id}") => redirection_delete(st, l, r),
        ("POST", "/redirection/{id}/changeRedirection") => redirection_change(st, l, r),
        ("GET", "/mailingList") => {
            let name = r.query("name");
            let names: Vec<&String> = st.legacy[l]
                .lists
                .iter()
                .filter(|m| name.is_none_or(|n| n == m.name))
                .map(|m| &m.name)
                .collect();
            Ok(json!(names))
        }
        ("POST", "/mailingList") => list_create(st, l, r),
        ("GET", "/mailingList/{name}") => list(st, l, r).map(|m| list_json(&st.legacy[l].lists[m])),
        ("DELETE", "/mailingList/{name}") => list_delete(st, l, r),
        ("GET", "/mailingList/{name}/subscriber") => people(st, l, r, Role::Subscriber),
        ("GET", "/mailingList/{name}/subscriber/{email}") => person(st, l, r, Role::Subscriber),
        ("POST", "/mailingList/{name}/subscriber") => member_change(st, l, r, true, Role::Subscriber),
        ("DELETE", "/mailingList/{name}/subscriber/{email}") => member_change(st, l, r, false, Role::Subscriber),
        ("GET", "/mailingList/{name}/moderator") => people(st, l, r, Role::Moderator),
        ("GET", "/mailingList/{name}/moderator/{email}") => person(st, l, r, Role::Moderator),
        ("POST", "/mailingList/{name}/moderator") => member_change(st, l, r, true, Role::Moderator),
        ("DELETE", "/mailingList/{name}/moderator/{email}") => member_change(st, l, r, false, Role::Moderator),
        ("GET", "/task/account") => Ok(task_ids(st, l, LegacyKind::Account, r.query("name"), false)),
        ("GET", "/task/redirection") => Ok(task_ids(st, l, LegacyKind::Redirection, r.query("account"), true)),
        ("GET", "/task/mailinglist") => Ok(task_ids(st, l, LegacyKind::MailingList, r.query("account"), false)),
        (_, rest) if rest.starts_with("/account/{accountName}/filter") || rest.starts_with("/task/filter") => {
            return filter::handle(st, l, r, rest);
        }
        ("GET", "/task/account/{id}") => task_get(st, l, r, LegacyKind::Account),
        ("GET", "/task/redirection/{id}") => task_get(st, l, r, LegacyKind::Redirection),
        ("GET", "/task/mailinglist/{id}") => task_get(st, l, r, LegacyKind::MailingList),
        _ => return None,
    })
}

fn domain_json(st: &State, l: usize) -> Value {
    let d = &st.legacy[l];
    let diag = |ok: bool| if ok { "valid" } else { "invalid" };
    json!({
        "allowedAccountSize": ALLOWED_SIZES,
        "creationDate": null,
        "domain": d.domain,
        "filerz": 1,
        "iam": null,
        "isMXValid": diag(d.mx_valid),
        "isSPFValid": diag(d.spf_valid),
        "linkTo": null,
        "migratedMXPlanServiceName": null,
        "offer": "MXPLAN",
        "status": "ok",
    })
}

fn account_json(st: &State, l: usize, a: usize) -> Value {
    let d = &st.legacy[l];
    let acct = &d.accounts[a];
    json!({
        "accountName": acct.name,
        "description": acct.description,
        "domain": d.domain,
        "email": format!("{}@{}", acct.name, d.domain),
        "isBlocked": false,
        "size": acct.size,
    })
}

fn account(st: &State, l: usize, r: &Req<'_>) -> Result<usize, ApiErr> {
    let name = r.param("accountName").to_ascii_lowercase();
    st.legacy[l]
        .accounts
        .iter()
        .position(|a| a.name == name)
        .ok_or_else(|| ApiErr::missing("accountName", &name))
}

/// A task of this kind still under way for `name`: the account is busy.
fn pending(st: &State, l: usize, kind: LegacyKind, name: &str) -> bool {
    st.tasks.values().any(|t| {
        t.owner == Owner::Legacy(l)
            && t.legacy
                .as_ref()
                .is_some_and(|(k, n)| *k == kind && n == name)
    })
}

fn task_pop(st: &State, l: usize, id: u64) -> Value {
    match st.tasks.get(&id) {
        Some(t) => json!({
            "action": t.function,
            "date": t.todo_date,
            "domain": st.legacy[l].domain,
            "id": t.id,
            "name": t.legacy.as_ref().map(|(_, n)| n.clone()).unwrap_or_default(),
        }),
        None => Value::Null,
    }
}

fn task_special(st: &State, l: usize, id: u64) -> Value {
    match st.tasks.get(&id) {
        Some(t) => json!({
            "account": t.legacy.as_ref().map(|(_, n)| n.clone()).unwrap_or_default(),
            "action": t.function,
            "date": t.todo_date,
            "domain": st.legacy[l].domain,
            "id": t.id.to_string(),
            "type": "forward",
        }),
        None => Value::Null,
    }
}

fn task_ml(st: &State, l: usize, id: u64) -> Value {
    match st.tasks.get(&id) {
        Some(t) => json!({
            "account": t.legacy.as_ref().map(|(_, n)| n.clone()).unwrap_or_default(),
            "action": t.function,
            "date": t.todo_date,
            "domain": st.legacy[l].domain,
            "id": t.id,
        }),
        None => Value::Null,
    }
}

fn task_ids(st: &State, l: usize, kind: LegacyKind, name: Option<&str>, as_text: bool) -> Value {
    let name = name.map(str::to_ascii_lowercase);
    let ids = st.tasks.values().filter(|t| {
        t.owner == Owner::Legacy(l)
            && t.legacy
                .as_ref()
                .is_some_and(|(k, n)| *k == kind && name.as_ref().is_none_or(|q| q == n))
    });
    if as_text {
        json!(ids.map(|t| t.id.to_string()).collect::<Vec<_>>())
    } else {
        json!(ids.map(|t| t.id).collect::<Vec<_>>())
    }
}

fn task_get(st: &State, l: usize, r: &Req<'_>, kind: LegacyKind) -> Reply {
    let id: u64 = r.param("id").parse().unwrap_or(0);
    match st.tasks.get(&id) {
        Some(t)
            if t.owner == Owner::Legacy(l)
                && t.legacy.as_ref().is_some_and(|(k, _)| *k == kind) =>
        {
            Ok(match kind {
                LegacyKind::Account => task_pop(st, l, id),
                LegacyKind::Redirection => task_special(st, l, id),
                LegacyKind::MailingList => task_ml(st, l, id),
                LegacyKind::Filter => filter::task_json(st, l, id),
            })
        }
        _ => Err(ApiErr::missing("id", r.param("id"))),
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.ends_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

fn check_password(st: &State, l: usize, password: &str) -> Result<(), ApiErr> {
    if password.is_empty() {
        return Err(ApiErr::bad("The password cannot be empty"));
    }
    if st.legacy[l].dovecot.is_some() && password.contains([':', '\n']) {
        return Err(ApiErr::bad(
            "The simulator's Dovecot backend cannot store a password with ':' or a newline",
        ));
    }
    Ok(())
}

fn account_create(st: &mut State, l: usize, r: &Req<'_>) -> Reply {
    let name = r
        .str("accountName")
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !valid_name(&name) {
        return Err(ApiErr::bad(format!("{name:?} is not a valid account name")));
    }
    let d = &st.legacy[l];
    let taken = d.accounts.iter().any(|a| a.name == name)
        || d.lists.iter().any(|m| m.name == name)
        || pending(st, l, LegacyKind::Account, &name);
    if taken {
        return Err(ApiErr::address_used());
    }
    let password = r.str("password").unwrap_or_default().to_string();
    check_password(st, l, &password)?;
    let size = match r.i64("size") {
        None => super::world::default_legacy_size(),
        Some(s) => match u64::try_from(s).ok().filter(|s| ALLOWED_SIZES.contains(s)) {
            Some(s) => s,
            None => {
                return Err(ApiErr::bad(format!(
                    "size {s} is not one of the allowed sizes {ALLOWED_SIZES:?}"
                )));
            }
        },
    };
    let account = LAcct {
        name: name.clone(),
        password,
        size,
        description: r.str("description").unwrap_or_default().to_string(),
        current_usage: Some(0),
        filters: Vec::new(),
    };
    let key = name.clone();
    let tid = st.start_task(
        Owner::Legacy(l),
        "addAccount",
        None,
        Some((LegacyKind::Account, name)),
        move |st, ok, _| {
            if !ok {
                return Ok(());
            }
            let d = &mut st.legacy[l];
            if let Some(passwd) = &d.dovecot {
                passwd.add(&format!("{key}@{}", d.domain), &account.password)?;
            }
            d.accounts.push(account);
            Ok(())
        },
    );
    Ok(task_pop(st, l, tid))
}

fn account_put(st: &mut State, l: usize, r: &Req<'_>) -> Reply {
    let a = account(st, l, r)?;
    let name = st.legacy[l].accounts[a].name.clone();
    if pending(st, l, LegacyKind::Account, &name) {
        return Err(ApiErr::busy("pop"));
    }
    let description = r.str("description").map(str::to_string);
    let size = match r.i64("size") {
        None => None,
        Some(s) => match u64::try_from(s).ok().filter(|s| ALLOWED_SIZES.contains(s)) {
            Some(s) => Some(s),
            None => {
                return Err(ApiErr::bad(format!(
                    "size {s} is not one of the allowed sizes {ALLOWED_SIZES:?}"
                )));
            }
        },
    };
    let key = name.clone();
    st.start_task(
        Owner::Legacy(l),
        "changeAccount",
        None,
        Some((LegacyKind::Account, name)),
        move |st, ok, _| {
            if let Some(a) = st.legacy[l].accounts.iter_mut().find(|a| a.name == key)
                && ok
            {
                if let Some(d) = description {
                    a.description = d;
                }
                if let Some(s) = size {
                    a.size = s;
                }
            }
            Ok(())
        },
    );
    Ok(Value::Null)
}

fn account_delete(st: &mut State, l: usize, r: &Req<'_>) -> Reply {
    let a = account(st, l, r)?;
    let name = st.legacy[l].accounts[a].name.clone();
    if pending(st, l, LegacyKind::Account, &name) {
        return Err(ApiErr::busy("pop"));
    }
    let key = name.clone();
    let tid = st.start_task(
        Owner::Legacy(l),
        "deleteAccount",
        None,
        Some((LegacyKind::Account, name)),
        move |st, ok, _| {
            if !ok {
                return Ok(());
            }
            let d = &mut st.legacy[l];
            d.accounts.retain(|a| a.name != key);
            if let Some(passwd) = &d.dovecot {
                passwd.remove(&format!("{key}@{}", d.domain))?;
            }
            Ok(())
        },
    );
    Ok(task_pop(st, l, tid))
}

fn change_password(st: &mut State, l: usize, r: &Req<'_>) -> Reply {
    let a = account(st, l, r)?;
    let name = st.legacy[l].accounts[a].name.clone();
    if pending(st, l, LegacyKind::Account, &name) {
        return Err(ApiErr::busy("pop"));
    }
    let password = r.str("password").unwrap_or_default().to_string();
    check_password(st, l, &password)?;
    let key = name.clone();
    let tid = st.start_task(
        Owner::Legacy(l),
        "changePassword",
        None,
        Some((LegacyKind::Account, name)),
        move |st, ok, _| {
            if !ok {
                return Ok(());
            }
            let d = &mut st.legacy[l];
            let domain = d.domain.clone();
            if let Some(a) = d.accounts.iter_mut().find(|a| a.name == key) {
                a.password = password;
                if let Some(passwd) = &d.dovecot {
                    passwd.ensure(&format!("{key}@{domain}"), &a.password)?;
                }
            }
            Ok(())
        },
    );
    Ok(task_pop(st, l, tid))
}

fn redirection(st: &State, l: usize, r: &Req<'_>) -> Result<usize, ApiErr> {
    let id = r.param("id");
    st.legacy[l]
        .redirections
        .iter()
        .position(|x| x.id == id)
        .ok_or_else(|| ApiErr::missing("id", id))
}

fn redirection_create(st: &mut State, l: usize, r: &Req<'_>) -> Reply {
    let from = r.str("from").unwrap_or_default().to_ascii_lowercase();
    let to = r.str("to").unwrap_or_default().to_ascii_lowercase();
    let local_copy = r.bool("localCopy").unwrap_or(false);
    let d = &st.legacy[l];
    if !from.ends_with(&format!("@{}", d.domain)) {
        return Err(ApiErr::bad(format!(
            "{from} is not an address of {}",
            d.domain
        )));
    }
    if !to.contains('@') {
        return Err(ApiErr::bad(format!("{to:?} is not an email address")));
    }
    if d.redirections.iter().any(|x| x.from == from && x.to == to) {
        return Err(ApiErr::bad(format!(
            "A redirection from {from} to {to} already exists"
        )));
    }
    let id = st.id().to_string();
    let tid = st.start_task(
        Owner::Legacy(l),
        "add",
        None,
        Some((LegacyKind::Redirection, from.clone())),
        move |st, ok, _| {
            if ok {
                st.legacy[l].redirections.push(Redir {
                    id,
                    from,
                    to,
                    local_copy,
                });
            }
            Ok(())
        },
    );
    Ok(task_special(st, l, tid))
}

fn redirection_delete(st: &mut State, l: usize, r: &Req<'_>) -> Reply {
    let i = redirection(st, l, r)?;
    let x = &st.legacy[l].redirections[i];
    let (id, from) = (x.id.clone(), x.from.clone());
    let tid = st.start_task(
        Owner::Legacy(l),
        "delete",
        None,
        Some((LegacyKind::Redirection, from)),
        move |st, ok, _| {
            if ok {
                st.legacy[l].redirections.retain(|x| x.id != id);
            }
            Ok(())
        },
    );
    Ok(task_special(st, l, tid))
}

fn redirection_change(st: &mut State, l: usize, r: &Req<'_>) -> Reply {
    let i = redirection(st, l, r)?;
    let x = &st.legacy[l].redirections[i];
    let (id, from) = (x.id.clone(), x.from.clone());
    let to = r.str("to").unwrap_or_default().to_ascii_lowercase();
    let tid = st.start_task(
        Owner::Legacy(l),
        "change",
        None,
        Some((LegacyKind::Redirection, from)),
        move |st, ok, _| {
            if ok && let Some(x) = st.legacy[l].redirections.iter_mut().find(|x| x.id == id) {
                x.to = to;
            }
            Ok(())
        },
    );
    Ok(task_special(st, l, tid))
}

fn list_json(m: &LList) -> Value {
    json!({
        "id": m.id,
        "name": m.name,
        "nbSubscribers": m.subscribers.len(),
        "nbSubscribersUpdateDate": null,
        "options": {
            "moderatorMessage": m.moderator_message,
            "subscribeByModerator": m.subscribe_by_moderator,
            "usersPostOnly": m.users_post_only,
        },
        "ownerEmail": m.owner,
        "replyTo": m.reply_to.clone().unwrap_or_default(),
    })
}

fn list(st: &State, l: usize, r: &Req<'_>) -> Result<usize, ApiErr> {
    let name = r.param("name").to_ascii_lowercase();
    st.legacy[l]
        .lists
        .iter()
        .position(|m| m.name == name)
        .ok_or_else(|| ApiErr::missing("name", &name))
}

fn list_create(st: &mut State, l: usize, r: &Req<'_>) -> Reply {
    let name = r.str("name").unwrap_or_default().to_ascii_lowercase();
    if !valid_name(&name) {
        return Err(ApiErr::bad(format!("{name:?} is not a valid list name")));
    }
    let d = &st.legacy[l];
    if d.lists.iter().any(|m| m.name == name)
        || d.accounts.iter().any(|a| a.name == name)
        || pending(st, l, LegacyKind::MailingList, &name)
    {
        return Err(ApiErr::address_used());
    }
    let option = |key: &str| {
        r.body["options"]
            .get(key)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    let list = LList {
        id: st.id(),
        name: name.clone(),
        owner: r.str("ownerEmail").unwrap_or_default().to_string(),
        language: r.str("language").unwrap_or("en").to_string(),
        reply_to: r.str("replyTo").map(str::to_string),
        moderator_message: option("moderatorMessage"),
        subscribe_by_moderator: option("subscribeByModerator"),
        users_post_only: option("usersPostOnly"),
        subscribers: Vec::new(),
        moderators: Vec::new(),
    };
    let tid = st.start_task(
        Owner::Legacy(l),
        "add",
        None,
        Some((LegacyKind::MailingList, name)),
        move |st, ok, _| {
            if ok {
                st.legacy[l].lists.push(list);
            }
            Ok(())
        },
    );
    Ok(task_ml(st, l, tid))
}

fn list_delete(st: &mut State, l: usize, r: &Req<'_>) -> Reply {
    let m = list(st, l, r)?;
    let name = st.legacy[l].lists[m].name.clone();
    let key = name.clone();
    let tid = st.start_task(
        Owner::Legacy(l),
        "delete",
        None,
        Some((LegacyKind::MailingList, name)),
        move |st, ok, _| {
            if ok {
                st.legacy[l].lists.retain(|m| m.name != key);
            }
            Ok(())
        },
    );
    Ok(task_ml(st, l, tid))
}

/// Subscribers and moderators of a legacy list: same calls, two lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Subscriber,
    Moderator,
}

impl Role {
    fn of(self, m: &LList) -> &Vec<String> {
        match self {
            Role::Subscriber => &m.subscribers,
            Role::Moderator => &m.moderators,
        }
    }

    fn of_mut(self, m: &mut LList) -> &mut Vec<String> {
        match self {
            Role::Subscriber => &mut m.subscribers,
            Role::Moderator => &mut m.moderators,
        }
    }
}

fn people(st: &State, l: usize, r: &Req<'_>, role: Role) -> Reply {
    let m = list(st, l, r)?;
    let email = r.query("email").map(str::to_ascii_lowercase);
    let found: Vec<&String> = role
        .of(&st.legacy[l].lists[m])
        .iter()
        .filter(|s| email.as_ref().is_none_or(|e| e == *s))
        .collect();
    Ok(json!(found))
}

fn person(st: &State, l: usize, r: &Req<'_>, role: Role) -> Reply {
    let m = list(st, l, r)?;
    let list = &st.legacy[l].lists[m];
    let email = r.param("email").to_ascii_lowercase();
    if role.of(list).contains(&email) {
        Ok(json!({"domain": st.legacy[l].domain, "email": email, "mailinglist": list.name}))
    } else {
        Err(ApiErr::missing("email", &email))
    }
}

fn member_change(st: &mut State, l: usize, r: &Req<'_>, add: bool, role: Role) -> Reply {
    let m = list(st, l, r)?;
    let list = &st.legacy[l].lists[m];
    let name = list.name.clone();
    let email = if add {
        r.str("email").unwrap_or_default()
    } else {
        r.param("email")
    }
    .to_ascii_lowercase();
    let present = role.of(list).contains(&email);
    if add && present {
        return Err(ApiErr::bad(format!("{email} is already on the list")));
    }
    if !add && !present {
        return Err(ApiErr::missing("email", &email));
    }
    let key = name.clone();
    let action = match (add, role) {
        (true, Role::Subscriber) => "addSubscriber",
        (false, Role::Subscriber) => "deleteSubscriber",
        (true, Role::Moderator) => "addModerator",
        (false, Role::Moderator) => "deleteModerator",
    };
    let tid = st.start_task(
        Owner::Legacy(l),
        action,
        None,
        Some((LegacyKind::MailingList, name)),
        move |st, ok, _| {
            if let Some(m) = st.legacy[l].lists.iter_mut().find(|m| m.name == key)
                && ok
            {
                let people = role.of_mut(m);
                if add {
                    people.push(email);
                } else {
                    people.retain(|s| *s != email);
                }
            }
            Ok(())
        },
    );
    Ok(task_ml(st, l, tid))
}
