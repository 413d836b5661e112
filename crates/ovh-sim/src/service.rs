//! Exchange, Email Pro and new MX Plan: one set of operations on the three service roots
//! (`/email/exchange/{org}/service/{svc}`, `/email/pro/{svc}`, `/email/mxplan/{svc}`),
//! since the platforms share their object model. The schema check has already refused
//! anything a family does not publish (no `POST /account` on Email Pro, no mailing lists
//! outside Exchange), so a handler here is only reached through a published operation.
//!
//! Writes follow the real API's rhythm: the call answers at once with a task (or nothing,
//! for `PUT`), the object shows a non-`ok` state and `taskPendingId` meanwhile, and the
//! change itself (Dovecot's passwd-file included) happens when the task is done. A failed
//! task leaves things as they were.

use serde_json::{Value, json};

use super::control::glob;
use super::reply::{ApiErr, Reply, Req};
use super::state::{
    Acct, Contact, Delegation, Dom, Entry, Family, MList, Owner, PLACEHOLDER_DOMAIN, State, Svc,
    new_account,
};
use super::world::{DomainType, ExchangeOffer};

const ROOTS: [(Family, &str); 3] = [
    (
        Family::Exchange,
        "/email/exchange/{organizationName}/service/{exchangeService}",
    ),
    (Family::Pro, "/email/pro/{service}"),
    (Family::MxPlan, "/email/mxplan/{service}"),
];

/// Handles a call on a service family; `None` for a published operation not modelled.
pub(super) fn handle(st: &mut State, r: &Req<'_>) -> Option<Reply> {
    let names = |st: &State, f: Family| -> Value {
        json!(
            st.services
                .iter()
                .filter(|s| s.family == f)
                .map(|s| s.name.clone())
                .collect::<Vec<_>>()
        )
    };
    match (r.method, r.template) {
        ("GET", "/email/exchange") => {
            let mut orgs: Vec<String> = st.services.iter().filter_map(|s| s.org.clone()).collect();
            orgs.sort();
            orgs.dedup();
            return Some(Ok(json!(orgs)));
        }
        ("GET", "/email/exchange/{organizationName}/service") => {
            let org = r.param("organizationName");
            let list: Vec<&str> = st
                .services
                .iter()
                .filter(|s| s.org.as_deref() == Some(org))
                .map(|s| s.name.as_str())
                .collect();
            return Some(if list.is_empty() {
                Err(ApiErr::missing("organizationName", org))
            } else {
                Ok(json!(list))
            });
        }
        ("GET", "/email/pro") => return Some(Ok(names(st, Family::Pro))),
        ("GET", "/email/mxplan") => return Some(Ok(names(st, Family::MxPlan))),
        _ => {}
    }
    let (family, root) = ROOTS.into_iter().find(|(_, root)| {
        r.template
            .strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })?;
    // Exchange names the account parameter differently; one name keeps the table below short.
    let rest = r.template[root.len()..].replace("{primaryEmailAddress}", "{email}");
    let s = match find_service(st, family, r) {
        Ok(s) => s,
        Err(e) => return Some(Err(e)),
    };
    dispatch(st, s, &rest, r)
}

fn find_service(st: &State, family: Family, r: &Req<'_>) -> Result<usize, ApiErr> {
    let (param, name) = match family {
        Family::Exchange => ("exchangeService", r.param("exchangeService")),
        Family::Pro | Family::MxPlan => ("service", r.param("service")),
    };
    let org = r.params.get("organizationName");
    st.services
        .iter()
        .position(|s| s.family == family && s.name == name && s.org.as_ref() == org)
        .ok_or_else(|| ApiErr::missing(param, name))
}

fn dispatch(st: &mut State, s: usize, rest: &str, r: &Req<'_>) -> Option<Reply> {
    let reply = match (r.method, rest) {
        ("GET", "") => Ok(service_json(&st.services[s])),
        ("GET", "/billingMigrated") => Ok(json!(true)),
        ("GET", "/domain") => Ok(domain_list(&st.services[s], r)),
        ("POST", "/domain") => domain_attach(st, s, r),
        ("GET", "/domain/{domainName}") => {
            domain(st, s, r).map(|d| domain_json(&st.services[s], &st.services[s].domains[d]))
        }
        ("PUT", "/domain/{domainName}") => domain_put(st, s, r),
        ("DELETE", "/domain/{domainName}") => domain_delete(st, s, r),
        (_, "/domain/{domainName}/disclaimer") => disclaimer(st, s, r),
        ("GET", "/account") => Ok(account_list(&st.services[s], r)),
        ("POST", "/account") => account_create(st, s, r),
        ("GET", "/account/{email}") => {
            account(st, s, r).map(|a| account_json(&st.services[s], &st.services[s].accounts[a]))
        }
        ("PUT", "/account/{email}") => account_put(st, s, r),
        ("DELETE", "/account/{email}") => account_delete(st, s, r),
        ("POST", "/account/{email}/changePassword") => change_password(st, s, r),
        (_, "/account/{email}/alias") | (_, "/account/{email}/alias/{alias}") => alias(st, s, r),
        ("GET", "/account/{email}/tasks") | ("GET", "/account/{email}/task") => account(st, s, r)
            .map(|a| {
                let id = st.services[s].accounts[a].id;
                let ids: Vec<u64> = st
                    .tasks
                    .values()
                    .filter(|t| t.owner == Owner::Service(s) && t.account == Some(id))
                    .map(|t| t.id)
                    .collect();
                json!(ids)
            }),
        ("GET", "/account/{email}/tasks/{id}") | ("GET", "/account/{email}/task/{id}") => {
            account(st, s, r).and_then(|a| {
                let acct = st.services[s].accounts[a].id;
                match st.tasks.get(&r.param_id("id")) {
                    Some(t) if t.owner == Owner::Service(s) && t.account == Some(acct) => {
                        Ok(st.task_json(t.id))
                    }
                    _ => Err(ApiErr::missing("id", r.param("id"))),
                }
            })
        }
        ("GET", "/task") => {
            let ids: Vec<u64> = st
                .tasks
                .values()
                .filter(|t| t.owner == Owner::Service(s))
                .map(|t| t.id)
                .collect();
            Ok(json!(ids))
        }
        ("GET", "/task/{id}") => match st.tasks.get(&r.param_id("id")) {
            Some(t) if t.owner == Owner::Service(s) => Ok(st.task_json(t.id)),
            _ => Err(ApiErr::missing("id", r.param("id"))),
        },
        ("GET", "/externalContact") => Ok(contact_list(&st.services[s], r)),
        ("POST", "/externalContact") => contact_create(st, s, r),
        (_, "/externalContact/{externalEmailAddress}") => contact(st, s, r),
        ("GET", "/mailingList") => Ok(list_list(&st.services[s], r)),
        ("POST", "/mailingList") => list_create(st, s, r),
        (_, "/mailingList/{mailingListAddress}") => mailing_list(st, s, r),
        _ => {
            if let Some(tail) = rest.strip_prefix("/account/{email}/") {
                let (kind, one) = match tail.split_once('/') {
                    Some((k, _)) => (k, true),
                    None => (tail, false),
                };
                let kind = match kind {
                    "sendAs" => Delegation::SendAs,
                    "fullAccess" => Delegation::FullAccess,
                    "sendOnBehalfTo" => Delegation::SendOnBehalfTo,
                    _ => return None,
                };
                delegation(st, s, r, kind, one)
            } else if let Some(tail) = rest.strip_prefix("/mailingList/{mailingListAddress}/") {
                let which = match tail.split('/').take(2).collect::<Vec<_>>()[..] {
                    ["member", "account"] => Which::MemberAccount,
                    ["member", "contact"] => Which::MemberContact,
                    ["manager", "account"] => Which::Manager,
                    _ => return None,
                };
                list_entry(st, s, r, which, tail.matches('/').count() == 2)
            } else {
                return None;
            }
        }
    };
    Some(reply)
}

fn service_json(svc: &Svc) -> Value {
    let spam = json!({"checkDKIM": false, "checkSPF": true, "deleteSpam": false,
        "deleteVirus": true, "putInJunk": true, "tagSpam": true, "tagVirus": false});
    let host = svc.hostname.as_deref().unwrap_or(match svc.family {
        Family::Exchange => "ex.mail.ovh.net",
        Family::Pro => "pro1.mail.ovh.net",
        Family::MxPlan => "pro2.mail.ovh.net",
    });
    let mut v = json!({
        "complexityEnabled": true,
        "displayName": svc.name,
        "domain": svc.name,
        "hostname": host,
        "lastUpdateDate": null,
        "lockoutDuration": 30,
        "lockoutObservationWindow": 30,
        "lockoutThreshold": null,
        "maxPasswordAge": null,
        "maxReceiveSize": 100,
        "maxSendSize": 100,
        "minPasswordAge": null,
        "minPasswordLength": null,
        "spamAndVirusConfiguration": spam,
        "state": "ok",
        "taskPendingId": 0,
        "webUrl": format!("https://{host}/owa"),
        "iam": null,
    });
    match svc.family {
        Family::Exchange => {
            v["offer"] = json!(svc.offer.as_str());
            v["adfsChangePassword"] = json!(false);
            v["passwordHistoryCount"] = Value::Null;
            v["sslExpirationDate"] = Value::Null;
        }
        Family::Pro => v["offer"] = json!("emailpro"),
        Family::MxPlan => {
            v["offer"] = json!("MXPLAN");
            v["isZimbra"] = json!(false);
        }
    }
    v
}

// ---- tasks that create or delete one object ----

/// An object a task creates or deletes: it shows the task (and, for whole objects, a
/// transitional state) until the task ends.
trait Tracked {
    /// Back at rest: the task that held it ended.
    fn settle(&mut self);
}

impl Tracked for Dom {
    fn settle(&mut self) {
        self.state = "ok";
        self.pending = None;
    }
}

impl Tracked for Contact {
    fn settle(&mut self) {
        self.state = "ok";
        self.pending = None;
    }
}

impl Tracked for MList {
    fn settle(&mut self) {
        self.state = "ok";
        self.pending = None;
    }
}

impl<T> Tracked for Entry<T> {
    fn settle(&mut self) {
        self.pending = None;
    }
}

/// What the task does to its object: a creation keeps it when done and drops it on error; a
/// deletion drops it when done and leaves it as it was on error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lifecycle {
    Create,
    Delete,
}

/// Starts a service task that creates or deletes the objects of `objects` that `is_it`
/// picks (found again when the task ends: indexes move in between). The caller adds or marks
/// the object with the task's id it gets back.
fn start_lifecycle_task<T: Tracked>(
    st: &mut State,
    s: usize,
    function: &'static str,
    account: Option<u64>,
    lifecycle: Lifecycle,
    objects: impl Fn(&mut State) -> Option<&mut Vec<T>> + Send + 'static,
    is_it: impl Fn(&T) -> bool + Send + 'static,
) -> u64 {
    st.start_task(
        Owner::Service(s),
        function,
        account,
        None,
        move |st, ok, _| {
            if let Some(v) = objects(st) {
                if ok == (lifecycle == Lifecycle::Create) {
                    v.iter_mut().filter(|o| is_it(o)).for_each(T::settle);
                } else {
                    v.retain(|o| !is_it(o));
                }
            }
            Ok(())
        },
    )
}

/// Starts a service task that changes the object `is_it` picks: when it ends the object is
/// at rest again, and `change` applies only if the task is done.
fn start_change_task<T: Tracked>(
    st: &mut State,
    s: usize,
    function: &'static str,
    objects: impl Fn(&mut State) -> Option<&mut Vec<T>> + Send + 'static,
    is_it: impl Fn(&T) -> bool + Send + 'static,
    change: impl FnOnce(&mut T) + Send + 'static,
) -> u64 {
    st.start_task(Owner::Service(s), function, None, None, move |st, ok, _| {
        if let Some(o) = objects(st).and_then(|v| v.iter_mut().find(|o| is_it(o))) {
            o.settle();
            if ok {
                change(o);
            }
        }
        Ok(())
    })
}

// ---- domains ----

fn expected_mx(family: Family) -> Vec<&'static str> {
    match family {
        Family::Exchange => vec!["ex.mail.ovh.net"],
        Family::Pro | Family::MxPlan => {
            vec!["mx1.mail.ovh.net", "mx2.mail.ovh.net", "mx3.mail.ovh.net"]
        }
    }
}

fn domain_json(svc: &Svc, d: &Dom) -> Value {
    let expected = expected_mx(svc.family);
    let mx_record: Vec<String> = if d.mx_valid {
        expected.iter().map(|s| s.to_string()).collect()
    } else {
        vec![format!("mx.previous-provider.invalid")]
    };
    let srv = format!("0 0 443 {}", expected[0]);
    let mut v = json!({
        "cnameToCheck": null,
        "domainAliases": [],
        "domainValidated": true,
        "expectedMX": expected,
        "isAliasDomain": false,
        "mxIsValid": d.mx_valid,
        "mxRecord": mx_record,
        "mxRelay": d.mx_relay,
        "name": d.name,
        "srvIsValid": d.srv_valid,
        "srvRecord": if d.srv_valid { vec![srv.clone()] } else { vec![] },
        "state": d.state,
        "taskPendingId": d.pending.unwrap_or(0),
        "type": d.kind.as_str(),
    });
    if svc.family != Family::MxPlan {
        v["expectedAutodiscoverSRV"] = json!(format!("_autodiscover._tcp.{} SRV {srv}", d.name));
        v["expectedSPF"] = json!("v=spf1 include:mx.ovh.com ~all");
        v["spfIsValid"] = json!(d.spf_valid);
        v["spfRecord"] = if d.spf_valid {
            json!(["v=spf1 include:mx.ovh.com ~all"])
        } else {
            json!([])
        };
    }
    if svc.family == Family::Exchange {
        v["dkimDiagnostics"] = json!({"errorCode": null, "message": null, "state": "disabled"});
        v["main"] = Value::Null;
        v["organization2010"] = Value::Null;
        v["sbrDefault"] = Value::Null;
        v["sendConnectorIdDefault"] = Value::Null;
    }
    v
}

fn domain_list(svc: &Svc, r: &Req<'_>) -> Value {
    let state = r.query("state");
    json!(
        svc.domains
            .iter()
            .filter(|d| state.is_none_or(|s| s == d.state))
            .map(|d| d.name.clone())
            .collect::<Vec<_>>()
    )
}

fn domain(st: &State, s: usize, r: &Req<'_>) -> Result<usize, ApiErr> {
    let name = r.param("domainName");
    st.services[s]
        .domain_index(name)
        .ok_or_else(|| ApiErr::missing("domainName", name))
}

fn domain_type(text: Option<&str>, current: DomainType) -> DomainType {
    match text {
        Some("authoritative") => DomainType::Authoritative,
        Some("nonAuthoritative") => DomainType::NonAuthoritative,
        _ => current,
    }
}

/// An authoritative domain on one service blocks it everywhere else: during a move both
/// sides must hold it as non-authoritative (relaying to each other). Legacy MX Plan
/// domains do not take part: they have no such setting.
fn check_authority(
    st: &State,
    s: usize,
    name: &str,
    kind: DomainType,
    attaching: bool,
) -> Result<(), ApiErr> {
    let holders = st.holders(name, s);
    if (attaching || kind == DomainType::Authoritative)
        && holders.iter().any(|(_, k)| *k == DomainType::Authoritative)
    {
        return Err(ApiErr::bad(format!(
            "The domain {name} is authoritative on another service: it must be non-authoritative \
             on both services during a move"
        )));
    }
    if attaching && kind == DomainType::Authoritative && !holders.is_empty() {
        return Err(ApiErr::bad(format!(
            "The domain {name} is attached to another service: attach it as non-authoritative \
             (with an mxRelay) during a move"
        )));
    }
    Ok(())
}

fn domain_attach(st: &mut State, s: usize, r: &Req<'_>) -> Reply {
    let name = r.str("name").unwrap_or_default().to_ascii_lowercase();
    if !valid_domain(&name) {
        return Err(ApiErr::bad(format!("{name:?} is not a valid domain name")));
    }
    let kind = domain_type(r.str("type"), DomainType::Authoritative);
    let relay = r
        .str("mxRelay")
        .filter(|x| !x.is_empty())
        .map(str::to_string);
    if st.services[s].domain_index(&name).is_some() {
        return Err(ApiErr::bad(format!(
            "The domain {name} is already attached to this service"
        )));
    }
    if kind == DomainType::NonAuthoritative && relay.is_none() {
        return Err(ApiErr::bad("A non-authoritative domain needs an mxRelay"));
    }
    check_authority(st, s, &name, kind, true)?;
    let dns = |key: &str| r.bool(key).unwrap_or(false);
    let (mx, spf, srv) = (
        dns("configureMx"),
        dns("configureSPF"),
        dns("configureAutodiscover"),
    );
    let key = name.clone();
    let tid = start_lifecycle_task(
        st,
        s,
        "addDomain",
        None,
        Lifecycle::Create,
        move |st| Some(&mut st.services[s].domains),
        move |d| d.name == key,
    );
    st.services[s].domains.push(Dom {
        name,
        kind,
        mx_relay: relay,
        mx_valid: mx,
        spf_valid: spf,
        srv_valid: srv,
        state: "creating",
        pending: Some(tid),
        disclaimer: None,
    });
    Ok(st.task_json(tid))
}

fn domain_put(st: &mut State, s: usize, r: &Req<'_>) -> Reply {
    let di = domain(st, s, r)?;
    let d = &st.services[s].domains[di];
    if d.pending.is_some() {
        return Err(ApiErr::busy("domain"));
    }
    let kind = domain_type(r.str("type"), d.kind);
    let relay = match r.nullable("mxRelay") {
        Some(v) => v.filter(|x| !x.is_empty()),
        None => d.mx_relay.clone(),
    };
    if kind == DomainType::NonAuthoritative && relay.is_none() {
        return Err(ApiErr::bad("A non-authoritative domain needs an mxRelay"));
    }
    let name = d.name.clone();
    if kind == DomainType::Authoritative && d.kind != DomainType::Authoritative {
        check_authority(st, s, &name, kind, false)?;
    }
    let key = name.clone();
    let tid = start_change_task(
        st,
        s,
        "setDomain",
        move |st| Some(&mut st.services[s].domains),
        move |d| d.name == key,
        move |d| {
            d.kind = kind;
            d.mx_relay = relay;
        },
    );
    let svc = &mut st.services[s];
    let busy = svc.family.busy_state();
    let d = &mut svc.domains[di];
    d.state = busy;
    d.pending = Some(tid);
    Ok(Value::Null)
}

fn domain_delete(st: &mut State, s: usize, r: &Req<'_>) -> Reply {
    let di = domain(st, s, r)?;
    let svc = &st.services[s];
    let d = &svc.domains[di];
    if d.pending.is_some() {
        return Err(ApiErr::busy("domain"));
    }
    let suffix = format!("@{}", d.name);
    let in_use = svc.accounts.iter().any(|a| {
        (a.configured && a.email.ends_with(&suffix))
            || a.aliases.iter().any(|x| x.value.ends_with(&suffix))
    }) || svc.lists.iter().any(|l| l.address.ends_with(&suffix));
    if in_use {
        return Err(ApiErr::bad(format!(
            "The domain {} still has accounts, aliases or groups",
            d.name
        )));
    }
    let key = d.name.clone();
    let tid = start_lifecycle_task(
        st,
        s,
        "deleteDomain",
        None,
        Lifecycle::Delete,
        move |st| Some(&mut st.services[s].domains),
        move |d| d.name == key,
    );
    let d = &mut st.services[s].domains[di];
    d.state = "deleting";
    d.pending = Some(tid);
    Ok(st.task_json(tid))
}

fn disclaimer(st: &mut State, s: usize, r: &Req<'_>) -> Reply {
    let di = domain(st, s, r)?;
    let d = &st.services[s].domains[di];
    let name = d.name.clone();
    let missing = || ApiErr::missing("domainName", &name);
    match (r.method, &d.disclaimer) {
        ("GET", Some(x)) => Ok(json!({
            "content": x.content,
            "creationDate": x.created,
            "name": name,
            "outsideOnly": x.outside_only,
            "taskPendingId": x.pending.unwrap_or(0),
        })),
        ("POST", Some(_)) => Err(ApiErr::bad(format!(
            "The domain {name} already has a disclaimer"
        ))),
        ("POST", None) => {
            if d.pending.is_some() {
                return Err(ApiErr::busy("domain"));
            }
            let content = r.str("content").unwrap_or_default().to_string();
            let outside_only = r.bool("outsideOnly").unwrap_or(false);
            let key = name.clone();
            let tid = st.start_task(
                Owner::Service(s),
                "addDomainDisclaimer",
                None,
                None,
                move |st, ok, _| {
                    if let Some(d) = st.services[s].domains.iter_mut().find(|d| d.name == key) {
                        if ok {
                            if let Some(x) = d.disclaimer.as_mut() {
                                x.pending = None;
                            }
                        } else {
                            d.disclaimer = None;
                        }
                    }
                    Ok(())
                },
            );
            let created = st.now_str();
            st.services[s].domains[di].disclaimer = Some(super::state::Disclaimer {
                content,
                outside_only,
                created,
                pending: Some(tid),
            });
            Ok(st.task_json(tid))
        }
        ("PUT" | "DELETE", Some(x)) => {
            if x.pending.is_some() {
                return Err(ApiErr::busy("disclaimer"));
            }
            let delete = r.method == "DELETE";
            let content = r.str("content").map(str::to_string);
            let outside_only = r.bool("outsideOnly");
            let key = name.clone();
            let function = if delete {
                "deleteDomainDisclaimer"
            } else {
                "setDomainDisclaimer"
            };
            let tid = st.start_task(Owner::Service(s), function, None, None, move |st, ok, _| {
                let Some(d) = st.services[s].domains.iter_mut().find(|d| d.name == key) else {
                    return Ok(());
                };
                if ok && delete {
                    d.disclaimer = None;
                } else if let Some(x) = d.disclaimer.as_mut() {
                    x.pending = None;
                    if ok {
                        if let Some(c) = content {
                            x.content = c;
                        }
                        if let Some(o) = outside_only {
                            x.outside_only = o;
                        }
                    }
                }
                Ok(())
            });
            if let Some(x) = st.services[s].domains[di].disclaimer.as_mut() {
                x.pending = Some(tid);
            }
            Ok(if delete {
                st.task_json(tid)
            } else {
                Value::Null
            })
        }
        _ => Err(missing()),
    }
}

// ---- accounts ----

fn account_json(svc: &Svc, a: &Acct) -> Value {
    let mut v = json!({
        "SAMAccountName": null,
        "configured": a.configured,
        "creationDate": a.created,
        "currentUsage": a.current_usage,
        "deleteAtExpiration": null,
        "displayName": a.display_name,
        "domain": a.domain,
        "expirationDate": null,
        "firstName": a.first_name,
        "hiddenFromGAL": a.hidden_from_gal,
        "id": a.id,
        "initial": a.initials,
        "lastLogoffDate": null,
        "lastLogonDate": null,
        "lastName": a.last_name,
        "login": a.login,
        "passwordLastUpdate": a.password_updated,
        "primaryEmailAddress": a.email,
        "spamDetected": false,
        "spamTicketNumber": null,
        "state": a.state,
        "taskPendingId": a.pending.unwrap_or(0),
    });
    match svc.family {
        Family::Exchange => {
            v["quota"] = json!(50);
            v["accountLicense"] = json!(a.license);
            v["forwardingEmail"] = json!(a.forwarding_email);
            v["storeCopyOfEmail"] = json!(a.store_copy);
            v["numberOfAliases"] = json!(a.aliases.len());
            v["outlookLicense"] = json!(false);
            v["litigation"] = json!(false);
            v["owaLimited"] = json!(false);
        }
        Family::Pro => v["quota"] = json!(10),
        Family::MxPlan => v["quota"] = json!(5.0),
    }
    v
}

/// `%` is the API's wildcard in list filters (`%configureme.me%`).
fn like(pattern: &str, text: &str) -> bool {
    glob(
        &pattern.to_ascii_lowercase().replace('%', "*"),
        &text.to_ascii_lowercase(),
    )
}

fn account_list(svc: &Svc, r: &Req<'_>) -> Value {
    let address = r.query("primaryEmailAddress");
    let id = r.query("id").and_then(|i| i.parse::<u64>().ok());
    let license = r.query("accountLicense");
    // No account of the simulator has a company.
    let company = r.query("company");
    json!(
        svc.accounts
            .iter()
            .filter(|a| address.is_none_or(|p| like(p, &a.email)))
            .filter(|a| id.is_none_or(|i| i == a.id))
            .filter(|a| license.is_none_or(|l| l == a.license))
            .filter(|_| company.is_none())
            .map(|a| a.email.clone())
            .collect::<Vec<_>>()
    )
}

fn account(st: &State, s: usize, r: &Req<'_>) -> Result<usize, ApiErr> {
    let svc = &st.services[s];
    let (param, email) = match svc.family {
        Family::Exchange => ("primaryEmailAddress", r.param("primaryEmailAddress")),
        _ => ("email", r.param("email")),
    };
    svc.account_index(email)
        .ok_or_else(|| ApiErr::missing(param, email))
}

fn valid_local_part(login: &str) -> bool {
    !login.is_empty()
        && !login.starts_with('.')
        && !login.ends_with('.')
        && login
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c))
}

fn valid_domain(name: &str) -> bool {
    name.contains('.')
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

/// The address must be well formed, in a domain of the service, and free.
fn check_new_address(svc: &Svc, address: &str) -> Result<(), ApiErr> {
    let Some((local, domain)) = address.split_once('@') else {
        return Err(ApiErr::bad(format!("{address:?} is not an email address")));
    };
    if !valid_local_part(local) {
        return Err(ApiErr::bad(format!("{local:?} is not a valid login")));
    }
    match svc.domain_index(domain) {
        Some(d) if svc.domains[d].state != "creating" => {}
        _ => {
            return Err(ApiErr::bad(format!(
                "The domain {domain} is not attached to this service"
            )));
        }
    }
    if svc.address_taken(address) || svc.contacts.iter().any(|c| c.email == address) {
        return Err(ApiErr::address_used());
    }
    Ok(())
}

/// Fields of a `PUT` on an account, applied when its task is done.
#[derive(Default)]
struct AccountUpdate {
    display_name: Option<Option<String>>,
    first_name: Option<Option<String>>,
    last_name: Option<Option<String>>,
    initials: Option<Option<String>>,
    hidden_from_gal: Option<bool>,
    forwarding_email: Option<Option<String>>,
    store_copy: Option<bool>,
    license: Option<String>,
}

impl AccountUpdate {
    fn from(r: &Req<'_>) -> AccountUpdate {
        AccountUpdate {
            display_name: r.nullable("displayName"),
            first_name: r.nullable("firstName"),
            last_name: r.nullable("lastName"),
            initials: r.nullable("initial"),
            hidden_from_gal: r.bool("hiddenFromGAL"),
            forwarding_email: r.nullable("forwardingEmail"),
            store_copy: r.bool("storeCopyOfEmail"),
            license: r.str("accountLicense").map(str::to_string),
        }
    }

    fn apply(self, a: &mut Acct) {
        if let Some(v) = self.display_name {
            a.display_name = v;
        }
        if let Some(v) = self.first_name {
            a.first_name = v;
        }
        if let Some(v) = self.last_name {
            a.last_name = v;
        }
        if let Some(v) = self.initials {
            a.initials = v;
        }
        if let Some(v) = self.hidden_from_gal {
            a.hidden_from_gal = v;
        }
        if let Some(v) = self.forwarding_email {
            a.forwarding_email = v.filter(|x| !x.is_empty());
        }
        if let Some(v) = self.store_copy {
            a.store_copy = v;
        }
        if let Some(v) = self.license {
            a.license = v;
        }
    }
}

/// `PUT /account/{email}`: there is no rename call, a new `login`/`domain` is the rename.
/// On an ordered placeholder it is how the account gets its real address.
fn account_put(st: &mut State, s: usize, r: &Req<'_>) -> Reply {
    let ai = account(st, s, r)?;
    let svc = &st.services[s];
    let a = &svc.accounts[ai];
    if a.pending.is_some() {
        return Err(ApiErr::busy("account"));
    }
    let login = r
        .str("login")
        .map_or(a.login.clone(), str::to_ascii_lowercase);
    let domain = r
        .str("domain")
        .map_or(a.domain.clone(), str::to_ascii_lowercase);
    let new_email = format!("{login}@{domain}");
    let renaming = new_email != a.email;
    let configuring = renaming && !a.configured;
    if renaming {
        if domain == PLACEHOLDER_DOMAIN {
            return Err(ApiErr::bad(format!(
                "The domain {domain} is not attached to this service"
            )));
        }
        check_new_address(svc, &new_email)?;
    }
    let update = AccountUpdate::from(r);
    let (id, old_email) = (a.id, a.email.clone());
    let target = new_email.clone();
    let tid = st.start_task(
        Owner::Service(s),
        "setAccount",
        Some(id),
        None,
        move |st, ok, _| {
            let fresh = st.mark_fresh();
            let svc = &mut st.services[s];
            let Some(a) = svc.accounts.iter_mut().find(|a| a.id == id) else {
                return Ok(());
            };
            a.state = "ok";
            a.pending = None;
            a.pending_email = None;
            if !ok {
                return Ok(());
            }
            update.apply(a);
            if renaming {
                a.email = target;
                a.login = login;
                a.domain = domain;
            }
            if configuring {
                a.configured = true;
                a.current_usage = Some(0);
                a.fresh = fresh;
            }
            if let Some(passwd) = &svc.dovecot {
                if configuring {
                    passwd.add(&a.email, &a.password)?;
                } else if renaming {
                    passwd.rename(&old_email, &a.email, &a.password)?;
                }
            }
            Ok(())
        },
    );
    let svc = &mut st.services[s];
    let busy = svc.family.busy_state();
    let a = &mut svc.accounts[ai];
    a.pending = Some(tid);
    a.state = if configuring { "creating" } else { busy };
    if renaming {
        a.pending_email = Some(new_email);
    }
    Ok(Value::Null)
}

/// `POST /account`: Exchange dedicated and provider offers only (the schema has it on no
/// other family); hosted offers sell accounts as orders.
fn account_create(st: &mut State, s: usize, r: &Req<'_>) -> Reply {
    let svc = &st.services[s];
    if svc.offer == ExchangeOffer::Hosted {
        return Err(ApiErr::bad(
            "Accounts of a hosted offer are ordered, not created: configure an ordered \
             account (…@configureme.me) instead",
        ));
    }
    let login = r.str("login").unwrap_or_default().to_ascii_lowercase();
    let domain = r.str("domain").unwrap_or_default().to_ascii_lowercase();
    let email = format!("{login}@{domain}");
    check_new_address(svc, &email)?;
    let password = r.str("password").unwrap_or_default().to_string();
    check_password(svc, &password)?;
    let id = st.id();
    let now = st.now_str();
    let mut acct = new_account(id, &email, &password, true, &now);
    acct.license = r.str("license").unwrap_or("standard").to_string();
    AccountUpdate::from(r).apply(&mut acct);
    let tid = st.start_task(
        Owner::Service(s),
        "addAccount",
        Some(id),
        None,
        move |st, ok, _| {
            let fresh = st.mark_fresh();
            let svc = &mut st.services[s];
            if !ok {
                svc.accounts.retain(|a| a.id != id);
                return Ok(());
            }
            let Some(a) = svc.accounts.iter_mut().find(|a| a.id == id) else {
                return Ok(());
            };
            a.state = "ok";
            a.pending = None;
            a.fresh = fresh;
            if let Some(passwd) = &svc.dovecot {
                passwd.add(&a.email, &a.password)?;
            }
            Ok(())
        },
    );
    acct.state = "creating";
    acct.pending = Some(tid);
    st.services[s].accounts.push(acct);
    Ok(st.task_json(tid))
}

fn check_password(svc: &Svc, password: &str) -> Result<(), ApiErr> {
    if password.is_empty() {
        return Err(ApiErr::bad("The password cannot be empty"));
    }
    if svc.dovecot.is_some() && password.contains([':', '\n']) {
        return Err(ApiErr::bad(
            "The simulator's Dovecot backend cannot store a password with ':' or a newline",
        ));
    }
    Ok(())
}

fn change_password(st: &mut State, s: usize, r: &Req<'_>) -> Reply {
    let ai = account(st, s, r)?;
    let password = r.str("password").unwrap_or_default().to_string();
    check_password(&st.services[s], &password)?;
    let svc = &mut st.services[s];
    let busy = svc.family.busy_state();
    let a = &mut svc.accounts[ai];
    if a.pending.is_some() {
        return Err(ApiErr::busy("account"));
    }
    if !a.configured {
        return Err(ApiErr::bad("This account is not configured yet"));
    }
    // The real platform needs a moment after creating a mailbox before it takes a password.
    match &mut a.fresh {
        super::state::Fresh::Until(t) if std::time::Instant::now() < *t => {
            return Err(ApiErr::busy("account"));
        }
        super::state::Fresh::Refusals(n) if *n > 0 => {
            *n -= 1;
            return Err(ApiErr::busy("account"));
        }
        _ => a.fresh = super::state::Fresh::Settled,
    }
    let id = a.id;
    let tid = st.start_task(
        Owner::Service(s),
        "changePassword",
        Some(id),
        None,
        move |st, ok, _| {
            let now = st.now_str();
            let svc = &mut st.services[s];
            let Some(a) = svc.accounts.iter_mut().find(|a| a.id == id) else {
                return Ok(());
            };
            a.state = "ok";
            a.pending = None;
            if ok {
                a.password = password;
                a.password_updated = Some(now);
                if let Some(passwd) = &svc.dovecot {
                    passwd.ensure(&a.email, &a.password)?;
                }
            }
            Ok(())
        },
    );
    let a = &mut st.services[s].accounts[ai];
    a.pending = Some(tid);
    a.state = busy;
    Ok(st.task_json(tid))
}

/// Hosted Exchange, Email Pro and MX Plan keep the paid slot: deleting resets it to a fresh
/// placeholder. Dedicated and provider Exchange remove the account.
fn account_delete(st: &mut State, s: usize, r: &Req<'_>) -> Reply {
    let ai = account(st, s, r)?;
    let svc = &st.services[s];
    let a = &svc.accounts[ai];
    if a.pending.is_some() {
        return Err(ApiErr::busy("account"));
    }
    let reset = svc.family != Family::Exchange || svc.offer == ExchangeOffer::Hosted;
    let (id, email, had_mailbox) = (a.id, a.email.clone(), a.configured);
    let tid = st.start_task(
        Owner::Service(s),
        "deleteAccount",
        Some(id),
        None,
        move |st, ok, _| {
            if !ok {
                if let Some(a) = st.acct_mut(s, id) {
                    a.state = "ok";
                    a.pending = None;
                }
                return Ok(());
            }
            let replacement = if reset {
                let address = st.placeholder_address();
                let new_id = st.id();
                let now = st.now_str();
                let password = placeholder_password(st);
                Some(new_account(new_id, &address, &password, false, &now))
            } else {
                None
            };
            let svc = &mut st.services[s];
            svc.accounts.retain(|a| a.id != id);
            forget_account(svc, id);
            svc.accounts.extend(replacement);
            if had_mailbox && let Some(passwd) = &svc.dovecot {
                passwd.remove(&email)?;
            }
            Ok(())
        },
    );
    let a = &mut st.services[s].accounts[ai];
    a.state = "deleting";
    a.pending = Some(tid);
    Ok(st.task_json(tid))
}

/// Drops every delegation, membership and management that points at a removed account.
fn forget_account(svc: &mut Svc, id: u64) {
    for a in &mut svc.accounts {
        for kind in [
            Delegation::SendAs,
            Delegation::FullAccess,
            Delegation::SendOnBehalfTo,
        ] {
            a.delegations_mut(kind).retain(|e| e.value != id);
        }
    }
    for l in &mut svc.lists {
        l.member_accounts.retain(|e| e.value != id);
        l.managers.retain(|e| e.value != id);
    }
}

pub(super) fn placeholder_password(st: &mut State) -> String {
    format!("{:016x}{:016x}", st.random(), st.random())
}

// ---- aliases and delegations ----

fn alias(st: &mut State, s: usize, r: &Req<'_>) -> Reply {
    let ai = account(st, s, r)?;
    let svc = &st.services[s];
    let a = &svc.accounts[ai];
    let id = a.id;
    let one = r.template.ends_with("{alias}");
    let name = r.param("alias").to_ascii_lowercase();
    let entry = a.aliases.iter().find(|e| e.value == name);
    match (r.method, one) {
        ("GET", false) => Ok(json!(
            a.aliases.iter().map(|e| &e.value).collect::<Vec<_>>()
        )),
        ("GET", true) => match entry {
            Some(e) => Ok(json!({
                "alias": e.value,
                "creationDate": e.created,
                "taskPendingId": e.pending.unwrap_or(0),
            })),
            None => Err(ApiErr::missing("alias", &name)),
        },
        ("POST", false) => {
            if a.pending.is_some() {
                return Err(ApiErr::busy("account"));
            }
            if !a.configured {
                return Err(ApiErr::bad("This account is not configured yet"));
            }
            let alias = r.str("alias").unwrap_or_default().to_ascii_lowercase();
            check_new_address(svc, &alias)?;
            let key = alias.clone();
            let tid = start_lifecycle_task(
                st,
                s,
                "addAlias",
                Some(id),
                Lifecycle::Create,
                move |st| st.acct_mut(s, id).map(|a| &mut a.aliases),
                move |e| e.value == key,
            );
            let now = st.now_str();
            st.services[s].accounts[ai]
                .aliases
                .push(Entry::new(alias, now, Some(tid)));
            Ok(st.task_json(tid))
        }
        ("DELETE", true) => {
            match entry {
                None => return Err(ApiErr::missing("alias", &name)),
                Some(e) if e.pending.is_some() => return Err(ApiErr::busy("alias")),
                Some(_) => {}
            }
            let key = name.clone();
            let tid = start_lifecycle_task(
                st,
                s,
                "deleteAlias",
                Some(id),
                Lifecycle::Delete,
                move |st| st.acct_mut(s, id).map(|a| &mut a.aliases),
                move |e| e.value == key,
            );
            if let Some(e) = st.services[s].accounts[ai]
                .aliases
                .iter_mut()
                .find(|e| e.value == name)
            {
                e.pending = Some(tid);
            }
            Ok(st.task_json(tid))
        }
        _ => Err(ApiErr::unmodelled(r.method, r.template)),
    }
}

fn delegation(st: &mut State, s: usize, r: &Req<'_>, kind: Delegation, one: bool) -> Reply {
    let ai = account(st, s, r)?;
    let a = &st.services[s].accounts[ai];
    let id = a.id;
    let (body_key, add, remove) = match kind {
        Delegation::SendAs => ("allowAccountId", "addSendAs", "deleteSendAs"),
        Delegation::FullAccess => ("allowedAccountId", "addFullAccess", "deleteFullAccess"),
        Delegation::SendOnBehalfTo => (
            "allowAccountId",
            "addSendOnBehalfTo",
            "deleteSendOnBehalfTo",
        ),
    };
    let holder = Holder::Account(id, kind);
    match (r.method, one) {
        ("GET", false) => Ok(json!(
            a.delegations(kind)
                .iter()
                .map(|e| e.value)
                .collect::<Vec<_>>()
        )),
        ("GET", true) => {
            let allowed = r.param_id("allowedAccountId");
            match a.delegations(kind).iter().find(|e| e.value == allowed) {
                Some(e) => Ok(json!({
                    "allowedAccountId": e.value,
                    "creationDate": e.created,
                    "taskPendingId": e.pending.unwrap_or(0),
                })),
                None => Err(ApiErr::missing(
                    "allowedAccountId",
                    r.param("allowedAccountId"),
                )),
            }
        }
        ("POST", false) => {
            if a.pending.is_some() {
                return Err(ApiErr::busy("account"));
            }
            let allowed = r
                .i64(body_key)
                .and_then(|v| u64::try_from(v).ok())
                .unwrap_or(0);
            if st.services[s]
                .account_by_id(allowed)
                .is_none_or(|o| !o.configured)
            {
                return Err(ApiErr::bad(format!(
                    "The account with id {allowed} does not exist"
                )));
            }
            entry_add(st, s, holder, allowed, add, Some(id))
        }
        ("DELETE", true) => entry_remove(
            st,
            s,
            holder,
            r.param_id("allowedAccountId"),
            remove,
            Some(id),
            "allowedAccountId",
        ),
        _ => Err(ApiErr::unmodelled(r.method, r.template)),
    }
}

/// Where a list of id entries lives: delegations of an account, members and managers of a
/// group. Closures keep these (not references) until their task ends.
#[derive(Debug, Clone, Copy)]
enum Holder {
    Account(u64, Delegation),
    List(u64, Which),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    MemberAccount,
    MemberContact,
    Manager,
}

fn entries(svc: &mut Svc, holder: Holder) -> Option<&mut Vec<Entry<u64>>> {
    match holder {
        Holder::Account(id, kind) => svc
            .accounts
            .iter_mut()
            .find(|a| a.id == id)
            .map(|a| a.delegations_mut(kind)),
        Holder::List(id, which) => svc
            .lists
            .iter_mut()
            .find(|l| l.id == id)
            .map(|l| match which {
                Which::MemberAccount => &mut l.member_accounts,
                Which::MemberContact => &mut l.member_contacts,
                Which::Manager => &mut l.managers,
            }),
    }
}

fn entry_add(
    st: &mut State,
    s: usize,
    holder: Holder,
    value: u64,
    function: &'static str,
    account: Option<u64>,
) -> Reply {
    let exists =
        entries(&mut st.services[s], holder).is_some_and(|v| v.iter().any(|e| e.value == value));
    if exists {
        return Err(ApiErr::bad(format!(
            "The id {value} is already in this list"
        )));
    }
    let tid = start_lifecycle_task(
        st,
        s,
        function,
        account,
        Lifecycle::Create,
        move |st| entries(&mut st.services[s], holder),
        move |e| e.value == value,
    );
    let now = st.now_str();
    if let Some(v) = entries(&mut st.services[s], holder) {
        v.push(Entry::new(value, now, Some(tid)));
    }
    Ok(st.task_json(tid))
}

fn entry_remove(
    st: &mut State,
    s: usize,
    holder: Holder,
    value: u64,
    function: &'static str,
    account: Option<u64>,
    param: &str,
) -> Reply {
    match entries(&mut st.services[s], holder).and_then(|v| v.iter().find(|e| e.value == value)) {
        None => return Err(ApiErr::missing(param, &value.to_string())),
        Some(e) if e.pending.is_some() => return Err(ApiErr::busy("object")),
        Some(_) => {}
    }
    let tid = start_lifecycle_task(
        st,
        s,
        function,
        account,
        Lifecycle::Delete,
        move |st| entries(&mut st.services[s], holder),
        move |e| e.value == value,
    );
    if let Some(e) =
        entries(&mut st.services[s], holder).and_then(|v| v.iter_mut().find(|e| e.value == value))
    {
        e.pending = Some(tid);
    }
    Ok(st.task_json(tid))
}

// ---- external contacts ----

fn contact_json(svc: &Svc, c: &Contact) -> Value {
    let mut v = json!({
        "creationDate": c.created,
        "displayName": c.display_name.clone().unwrap_or_else(|| c.email.clone()),
        "externalEmailAddress": c.email,
        "firstName": c.first_name,
        "hiddenFromGAL": c.hidden_from_gal,
        "id": c.id,
        "initials": c.initials,
        "lastName": c.last_name,
        "state": c.state,
        "taskPendingId": c.pending.unwrap_or(0),
    });
    if svc.family == Family::Exchange {
        v["organization2010"] = Value::Null;
    }
    v
}

fn contact_list(svc: &Svc, r: &Req<'_>) -> Value {
    let text = |name: &str, value: Option<&str>| {
        r.query(name)
            .is_none_or(|p| value.is_some_and(|v| like(p, v)))
    };
    let id = r.query("id").and_then(|i| i.parse::<u64>().ok());
    json!(
        svc.contacts
            .iter()
            .filter(|c| text("externalEmailAddress", Some(&c.email)))
            .filter(|c| text("displayName", c.display_name.as_deref()))
            .filter(|c| text("firstName", c.first_name.as_deref()))
            .filter(|c| text("lastName", c.last_name.as_deref()))
            .filter(|c| id.is_none_or(|i| i == c.id))
            .map(|c| c.email.clone())
            .collect::<Vec<_>>()
    )
}

fn contact_create(st: &mut State, s: usize, r: &Req<'_>) -> Reply {
    let email = r
        .str("externalEmailAddress")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let svc = &st.services[s];
    match email.split_once('@') {
        Some((local, domain)) if valid_local_part(local) && valid_domain(domain) => {}
        _ => return Err(ApiErr::bad(format!("{email:?} is not an email address"))),
    }
    if svc.address_taken(&email) || svc.contacts.iter().any(|c| c.email == email) {
        return Err(ApiErr::address_used());
    }
    let id = st.id();
    let created = st.now_str();
    let tid = start_lifecycle_task(
        st,
        s,
        "addExternalContact",
        None,
        Lifecycle::Create,
        move |st| Some(&mut st.services[s].contacts),
        move |c| c.id == id,
    );
    st.services[s].contacts.push(Contact {
        id,
        email,
        display_name: r.str("displayName").map(str::to_string),
        first_name: r.str("firstName").map(str::to_string),
        last_name: r.str("lastName").map(str::to_string),
        initials: r.str("initials").map(str::to_string),
        hidden_from_gal: r.bool("hiddenFromGAL").unwrap_or(false),
        state: "creating",
        pending: Some(tid),
        created,
    });
    Ok(st.task_json(tid))
}

fn contact(st: &mut State, s: usize, r: &Req<'_>) -> Reply {
    let email = r.param("externalEmailAddress").to_ascii_lowercase();
    let svc = &st.services[s];
    let Some(ci) = svc.contacts.iter().position(|c| c.email == email) else {
        return Err(ApiErr::missing("externalEmailAddress", &email));
    };
    let c = &svc.contacts[ci];
    if r.method == "GET" {
        return Ok(contact_json(svc, c));
    }
    if c.pending.is_some() {
        return Err(ApiErr::busy("external contact"));
    }
    let id = c.id;
    if r.method == "DELETE" {
        let tid = st.start_task(
            Owner::Service(s),
            "deleteExternalContact",
            None,
            None,
            move |st, ok, _| {
                let svc = &mut st.services[s];
                if ok {
                    svc.contacts.retain(|c| c.id != id);
                    for l in &mut svc.lists {
                        l.member_contacts.retain(|e| e.value != id);
                    }
                } else if let Some(c) = svc.contacts.iter_mut().find(|c| c.id == id) {
                    c.state = "ok";
                    c.pending = None;
                }
                Ok(())
            },
        );
        let c = &mut st.services[s].contacts[ci];
        c.state = "deleting";
        c.pending = Some(tid);
        return Ok(st.task_json(tid));
    }
    // PUT: a new address must be free like any other.
    let new_email = r.str("externalEmailAddress").map(str::to_ascii_lowercase);
    if let Some(e) = new_email.as_deref().filter(|e| *e != email)
        && (svc.address_taken(e) || svc.contacts.iter().any(|c| c.email == e))
    {
        return Err(ApiErr::address_used());
    }
    let display_name = r.str("displayName").map(str::to_string);
    let first_name = r.nullable("firstName");
    let last_name = r.nullable("lastName");
    let initials = r.nullable("initials");
    let hidden = r.bool("hiddenFromGAL");
    let tid = start_change_task(
        st,
        s,
        "setExternalContact",
        move |st| Some(&mut st.services[s].contacts),
        move |c| c.id == id,
        move |c| {
            if let Some(e) = new_email {
                c.email = e;
            }
            if let Some(v) = display_name {
                c.display_name = Some(v);
            }
            if let Some(v) = first_name {
                c.first_name = v;
            }
            if let Some(v) = last_name {
                c.last_name = v;
            }
            if let Some(v) = initials {
                c.initials = v;
            }
            if let Some(v) = hidden {
                c.hidden_from_gal = v;
            }
        },
    );
    let svc = &mut st.services[s];
    let busy = svc.family.busy_state();
    let c = &mut svc.contacts[ci];
    c.state = busy;
    c.pending = Some(tid);
    Ok(Value::Null)
}

// ---- Exchange mailing lists ----

fn list_json(l: &MList) -> Value {
    json!({
        "company": null,
        "creationDate": l.created,
        "departRestriction": l.depart,
        "displayName": l.display_name,
        "hiddenFromGAL": l.hidden_from_gal,
        "joinRestriction": l.join,
        "lastUpdateDate": null,
        "mailingListAddress": l.address,
        "maxReceiveSize": l.max_receive,
        "maxSendSize": l.max_send,
        "senderAuthentification": l.sender_auth,
        "spamDetected": false,
        "spamTicketNumber": null,
        "state": l.state,
        "taskPendingId": l.pending.unwrap_or(0),
    })
}

fn list_list(svc: &Svc, r: &Req<'_>) -> Value {
    let address = r.query("mailingListAddress");
    let company = r.query("company");
    json!(
        svc.lists
            .iter()
            .filter(|l| address.is_none_or(|p| like(p, &l.address)))
            .filter(|_| company.is_none())
            .map(|l| l.address.clone())
            .collect::<Vec<_>>()
    )
}

fn list_create(st: &mut State, s: usize, r: &Req<'_>) -> Reply {
    let address = r
        .str("mailingListAddress")
        .unwrap_or_default()
        .to_ascii_lowercase();
    check_new_address(&st.services[s], &address)?;
    let id = st.id();
    let created = st.now_str();
    let tid = start_lifecycle_task(
        st,
        s,
        "addDistributionGroup",
        None,
        Lifecycle::Create,
        move |st| Some(&mut st.services[s].lists),
        move |l| l.id == id,
    );
    st.services[s].lists.push(MList {
        id,
        address,
        display_name: r.str("displayName").map(str::to_string),
        depart: r.str("departRestriction").unwrap_or("open").to_string(),
        join: r.str("joinRestriction").unwrap_or("open").to_string(),
        hidden_from_gal: r.bool("hiddenFromGAL").unwrap_or(false),
        sender_auth: r.bool("senderAuthentification").unwrap_or(false),
        max_receive: r.i64("maxReceiveSize"),
        max_send: r.i64("maxSendSize"),
        member_accounts: Vec::new(),
        member_contacts: Vec::new(),
        managers: Vec::new(),
        state: "creating",
        pending: Some(tid),
        created,
    });
    Ok(st.task_json(tid))
}

fn find_list(st: &State, s: usize, r: &Req<'_>) -> Result<usize, ApiErr> {
    let address = r.param("mailingListAddress").to_ascii_lowercase();
    st.services[s]
        .lists
        .iter()
        .position(|l| l.address == address)
        .ok_or_else(|| ApiErr::missing("mailingListAddress", &address))
}

fn mailing_list(st: &mut State, s: usize, r: &Req<'_>) -> Reply {
    let li = find_list(st, s, r)?;
    let l = &st.services[s].lists[li];
    if r.method == "GET" {
        return Ok(list_json(l));
    }
    if l.pending.is_some() {
        return Err(ApiErr::busy("mailing list"));
    }
    let id = l.id;
    if r.method == "DELETE" {
        let tid = start_lifecycle_task(
            st,
            s,
            "deleteDistributionGroup",
            None,
            Lifecycle::Delete,
            move |st| Some(&mut st.services[s].lists),
            move |l| l.id == id,
        );
        let l = &mut st.services[s].lists[li];
        l.state = "deleting";
        l.pending = Some(tid);
        return Ok(st.task_json(tid));
    }
    let new_address = r.str("mailingListAddress").map(str::to_ascii_lowercase);
    if let Some(a) = new_address.as_deref().filter(|a| *a != l.address) {
        check_new_address(&st.services[s], a)?;
    }
    let display_name = r.nullable("displayName");
    let depart = r.str("departRestriction").map(str::to_string);
    let join = r.str("joinRestriction").map(str::to_string);
    let hidden = r.bool("hiddenFromGAL");
    let sender_auth = r.bool("senderAuthentification");
    let tid = start_change_task(
        st,
        s,
        "setDistributionGroup",
        move |st| Some(&mut st.services[s].lists),
        move |l| l.id == id,
        move |l| {
            if let Some(a) = new_address {
                l.address = a;
            }
            if let Some(v) = display_name {
                l.display_name = v;
            }
            if let Some(v) = depart {
                l.depart = v;
            }
            if let Some(v) = join {
                l.join = v;
            }
            if let Some(v) = hidden {
                l.hidden_from_gal = v;
            }
            if let Some(v) = sender_auth {
                l.sender_auth = v;
            }
        },
    );
    let l = &mut st.services[s].lists[li];
    l.state = Family::Exchange.busy_state();
    l.pending = Some(tid);
    Ok(Value::Null)
}

fn list_entry(st: &mut State, s: usize, r: &Req<'_>, which: Which, one: bool) -> Reply {
    let li = find_list(st, s, r)?;
    let svc = &st.services[s];
    let l = &svc.lists[li];
    let holder = Holder::List(l.id, which);
    let (param, list, add, remove) = match which {
        Which::MemberAccount => (
            "memberAccountId",
            &l.member_accounts,
            "addDistributionGroupMember",
            "deleteDistributionGroupMember",
        ),
        Which::MemberContact => (
            "memberContactId",
            &l.member_contacts,
            "addDistributionGroupMember",
            "deleteDistributionGroupMember",
        ),
        Which::Manager => (
            "managerAccountId",
            &l.managers,
            "addDistributionGroupManager",
            "deleteDistributionGroupManager",
        ),
    };
    let address_of = |id: u64| match which {
        Which::MemberContact => svc
            .contacts
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.email.clone()),
        _ => svc.account_by_id(id).map(|a| a.email.clone()),
    };
    match (r.method, one) {
        ("GET", false) => Ok(json!(list.iter().map(|e| e.value).collect::<Vec<_>>())),
        ("GET", true) => {
            let id = r.param_id(param);
            let Some(e) = list.iter().find(|e| e.value == id) else {
                return Err(ApiErr::missing(param, r.param(param)));
            };
            let address = address_of(id).unwrap_or_default();
            Ok(match which {
                Which::Manager => json!({
                    "creationDate": e.created,
                    "managerAccountId": id,
                    "managerEmailAddress": address,
                    "taskPendingId": e.pending.unwrap_or(0),
                }),
                _ => json!({
                    "creationDate": e.created,
                    "memberAccountId": (which == Which::MemberAccount).then_some(id),
                    "memberContactId": (which == Which::MemberContact).then_some(id),
                    "memberEmailAddress": address,
                    "taskPendingId": e.pending.unwrap_or(0),
                }),
            })
        }
        ("POST", false) => {
            if l.pending.is_some() {
                return Err(ApiErr::busy("mailing list"));
            }
            let Some(id) = r.i64(param).and_then(|v| u64::try_from(v).ok()) else {
                return Err(ApiErr::bad(format!("{param} is required")));
            };
            if address_of(id).is_none() {
                return Err(ApiErr::bad(format!(
                    "The object with id {id} does not exist"
                )));
            }
            entry_add(st, s, holder, id, add, None)
        }
        ("DELETE", true) => entry_remove(st, s, holder, r.param_id(param), remove, None, param),
        _ => Err(ApiErr::unmodelled(r.method, r.template)),
    }
}
