//! Conformance: every call the provider operations make, on each API family (Exchange, Email
//! Pro, new MX Plan, legacy MX Plan), matches an operation of the published schema (method,
//! path template, body fields and enums). The simulator refuses and records anything else;
//! here every operation runs twice (the second run must write nothing) and is then undone.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use mailshift::plan::model::{DomainMode, Right};
use mailshift::plan::secret::Secret;
use mailshift::providers::ovh::ops::{ContactSpec, Created, Family, GroupSpec, Service, Timing};
use mailshift::providers::ovh::{Credentials, OvhClient};
use ovh_sim::{SimHandle, Simulator, World};

const AK: &str = "confApplicationKey";
const AS: &str = "confApplicationSecret0123456789a";
const CK: &str = "confConsumerKey0123456789abcdefg";

fn world() -> World {
    World::from_yaml(&format!(
        r#"
applications: [{{key: {AK}, secret: {AS}}}]
consumer_keys: [{{key: {CK}, application: {AK}}}]
task_delay_ms: 10
fresh_password: {{refusals: 1}}
exchange:
  - organization: org-1
    service: hosted-1
    offer: hosted
    domains: [{{name: example.com, type: nonAuthoritative, mx_relay: mx.elsewhere.example}}]
    accounts:
      - {{email: alice@example.com, password: pw, current_usage: 1234}}
      - {{email: bob@example.com, password: pw}}
    placeholders: 1
  - organization: org-2
    service: dedicated-1
    offer: dedicated
    domains: [{{name: dedicated.example, type: authoritative}}]
pro:
  - service: pro-1
    accounts: [{{email: carol@pro.example, password: pw}}, {{email: dan@pro.example, password: pw}}]
    domains: [{{name: pro.example, type: authoritative}}]
    placeholders: 1
mxplan:
  - service: mxplan-1
    domains: [{{name: mx.example, type: authoritative}}]
    accounts: [{{email: erin@mx.example, password: pw}}, {{email: fred@mx.example, password: pw}}]
    placeholders: 1
legacy_domains:
  - domain: legacy.example
    accounts: [{{account_name: gina, password: pw}}]
"#
    ))
    .unwrap()
}

fn service(sim: &SimHandle, family: Family) -> Service {
    let client = OvhClient::new(
        &sim.base_url(),
        Credentials {
            application_key: Secret::new(AK),
            application_secret: Secret::new(AS),
            consumer_key: Secret::new(CK),
        },
    )
    .unwrap();
    Service::new(
        Arc::new(client),
        family,
        Timing {
            poll: Duration::from_millis(10),
            deadline: Duration::from_secs(20),
        },
    )
}

/// Runs `op` twice: the first may write, the second must find nothing to do.
macro_rules! twice {
    ($svc:expr, $op:expr) => {{
        let first = $op
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", stringify!($op)));
        let writes = $svc.writes();
        let second = $op
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", stringify!($op)));
        assert!(
            !second.wrote && $svc.writes() == writes,
            "{} wrote again: {second:?}",
            stringify!($op)
        );
        first
    }};
}

async fn new_api_family(svc: &Service, domain: &str, a: &str, b: &str, groups: bool) {
    let rights: BTreeSet<Right> = [Right::SendAs, Right::FullAccess, Right::SendOnBehalf].into();
    let new = format!("new@{domain}");
    let contact = ContactSpec {
        address: "partner@outside.example".into(),
        display_name: Some("Partner".into()),
        first_name: Some("Pat".into()),
        last_name: None,
        hidden: false,
    };
    let relay = Some("mx.elsewhere.example");
    // The IMAP server is the service's `hostname` (a read, checked against the schema too).
    let host = svc.imap_host().await.unwrap();
    assert!(host.ends_with(".mail.ovh.net"), "{host}");
    twice!(
        svc,
        svc.ensure_domain(domain, DomainMode::NonAuthoritative, relay)
    );
    svc.dns(domain).await.unwrap();
    twice!(svc, svc.rename(a, &format!("old.{a}")));
    let a = format!("old.{a}");
    twice!(svc, svc.ensure_alias(&a, &format!("alias@{domain}")));
    twice!(svc, svc.delete_alias(&a, &format!("alias@{domain}")));
    twice!(svc, svc.ensure_delegation(b, &a, &rights));
    twice!(svc, svc.ensure_delegation(b, &a, &[Right::SendAs].into()));
    twice!(svc, svc.delete_delegation(b, &a));
    twice!(svc, svc.ensure_external_contact(&contact));
    let renamed = ContactSpec {
        hidden: true,
        ..contact.clone()
    };
    twice!(svc, svc.ensure_external_contact(&renamed));
    twice!(svc, svc.ensure_footer(domain, "<p>Footer</p>", true));
    twice!(svc, svc.ensure_footer(domain, "<p>Footer 2</p>", false));
    // Creating sets the password; once the account exists, it is left alone.
    let created = svc
        .create(&new, "New-Pa55word", Some("New"), &|| Ok(()))
        .await
        .unwrap();
    assert!(
        matches!(&created, Created::Made(applied) if applied.wrote),
        "{created:?}"
    );
    assert!(svc.account(&new).await.unwrap().is_some());
    let again = svc
        .create(&new, "New-Pa55word", Some("New"), &|| {
            panic!("nothing to write for an existing account")
        })
        .await
        .unwrap();
    assert!(matches!(again, Created::Exists), "{again:?}");
    if groups {
        let team = GroupSpec {
            address: format!("team@{domain}"),
            display_name: Some("Team".into()),
            members: vec![new.clone(), b.to_string(), contact.address.clone()],
            owners: vec![b.to_string()],
        };
        twice!(svc, svc.ensure_group(&team));
        let smaller = GroupSpec {
            members: vec![new.clone()],
            owners: vec![new.clone()],
            ..team.clone()
        };
        twice!(svc, svc.ensure_group(&smaller));
        assert_eq!(
            svc.group(&team.address).await.unwrap(),
            Some(GroupSpec {
                address: team.address.clone(),
                ..smaller.clone()
            })
        );
        twice!(svc, svc.delete_group(&team.address));
        twice!(svc, svc.ensure_redirection(b, "away@outside.example", true));
        twice!(svc, svc.delete_redirection(b, "away@outside.example"));
    }
    twice!(svc, svc.delete_external_contact(&contact.address));
    twice!(svc, svc.delete_footer(domain));
    assert!(svc.mailbox_usage(&a).await.unwrap().is_some());
    twice!(svc, svc.reset(&a));
    twice!(
        svc,
        svc.ensure_domain(domain, DomainMode::Authoritative, None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_of_every_family_matches_the_published_schema() {
    let sim = Simulator::start(world()).await.unwrap();

    let exchange = service(
        &sim,
        Family::Exchange {
            organization: "org-1".into(),
            service: "hosted-1".into(),
        },
    );
    new_api_family(
        &exchange,
        "example.com",
        "alice@example.com",
        "bob@example.com",
        true,
    )
    .await;

    // Dedicated Exchange creates accounts with a POST instead of configuring a placeholder.
    let dedicated = service(
        &sim,
        Family::Exchange {
            organization: "org-2".into(),
            service: "dedicated-1".into(),
        },
    );
    let Created::Made(made) = dedicated
        .create("zoe@dedicated.example", "Zoe-Pa55word", None, &|| Ok(()))
        .await
        .unwrap()
    else {
        panic!("a new account is made")
    };
    assert!(made.detail.starts_with("created"), "{made:?}");

    let pro = service(
        &sim,
        Family::EmailPro {
            service: "pro-1".into(),
        },
    );
    pro.ensure_domain("pro.example", DomainMode::Authoritative, None)
        .await
        .unwrap();
    new_api_family(
        &pro,
        "pro.example",
        "carol@pro.example",
        "dan@pro.example",
        false,
    )
    .await;

    let mxplan = service(
        &sim,
        Family::MxPlan {
            service: "mxplan-1".into(),
        },
    );
    new_api_family(
        &mxplan,
        "mx.example",
        "erin@mx.example",
        "fred@mx.example",
        false,
    )
    .await;

    let legacy = service(
        &sim,
        Family::Legacy {
            domain: "legacy.example".into(),
        },
    );
    assert_eq!(legacy.imap_host().await.unwrap(), "ssl0.ovh.net");
    let Created::Made(made) = legacy
        .create("hank@legacy.example", "Hank-Pa55word", None, &|| Ok(()))
        .await
        .unwrap()
    else {
        panic!("a new account is made")
    };
    assert!(made.wrote);
    twice!(
        legacy,
        legacy.ensure_redirection("gina@legacy.example", "hank@legacy.example", true)
    );
    twice!(
        legacy,
        legacy.delete_redirection("gina@legacy.example", "hank@legacy.example")
    );
    let club = GroupSpec {
        address: "club@legacy.example".into(),
        display_name: None,
        members: vec!["gina@legacy.example".into(), "hank@legacy.example".into()],
        owners: vec!["gina@legacy.example".into()],
    };
    twice!(legacy, legacy.ensure_group(&club));
    let moderated = GroupSpec {
        members: vec!["hank@legacy.example".into()],
        owners: vec!["gina@legacy.example".into(), "hank@legacy.example".into()],
        ..club.clone()
    };
    twice!(legacy, legacy.ensure_group(&moderated));
    assert_eq!(
        legacy.group(&club.address).await.unwrap(),
        Some(moderated.clone())
    );
    twice!(legacy, legacy.ensure_group(&club));
    twice!(legacy, legacy.delete_group(&club.address));
    legacy.dns("legacy.example").await.unwrap();
    assert!(
        legacy
            .mailbox_usage("gina@legacy.example")
            .await
            .unwrap()
            .is_some()
    );
    twice!(legacy, legacy.reset("hank@legacy.example"));

    let violations = sim.violations();
    assert!(
        violations.is_empty(),
        "calls outside the schema: {violations:#?}"
    );
    // Every call matched a published operation; list which ones were used, by family, so a
    // lost operation (a refactor that stops exercising it) is visible in the failure.
    let mut used: HashMap<String, BTreeSet<String>> = HashMap::new();
    for r in sim.requests() {
        let op = r
            .operation
            .unwrap_or_else(|| panic!("{} {} matched no operation", r.method, r.path));
        let family = op.split('/').nth(2).unwrap_or("").to_string();
        used.entry(family)
            .or_default()
            .insert(format!("{} {op}", r.method));
    }
    for (family, minimum) in [
        ("exchange", 30),
        ("pro", 20),
        ("mxplan", 20),
        ("domain", 10),
    ] {
        let n = used.get(family).map_or(0, BTreeSet::len);
        assert!(
            n >= minimum,
            "only {n} {family} operations exercised: {:#?}",
            used.get(family)
        );
    }
}

/// A run killed right after its PUT leaves a rename or a placeholder configuration pending;
/// the next run must wait for it and take it as done, not start a second one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_changes_from_an_interrupted_run_are_taken_as_done() {
    let mut w = world();
    w.task_delay_ms = 400;
    let sim = Simulator::start(w).await.unwrap();
    let pro = service(
        &sim,
        Family::EmailPro {
            service: "pro-1".into(),
        },
    );
    let client = OvhClient::new(
        &sim.base_url(),
        Credentials {
            application_key: Secret::new(AK),
            application_secret: Secret::new(AS),
            consumer_key: Secret::new(CK),
        },
    )
    .unwrap();
    // The interrupted run's calls, made behind the service's back.
    let _: serde_json::Value = client
        .put(
            "/email/pro/pro-1/account/carol@pro.example",
            Some(&serde_json::json!({"login": "carol.old", "domain": "pro.example"})),
        )
        .await
        .unwrap();
    let placeholders: Vec<String> = client
        .get(
            "/email/pro/pro-1/account?primaryEmailAddress=%25configureme.me%25",
            None,
        )
        .await
        .unwrap();
    let _: serde_json::Value = client
        .put(
            &format!("/email/pro/pro-1/account/{}", placeholders[0]),
            Some(&serde_json::json!({"login": "new", "domain": "pro.example"})),
        )
        .await
        .unwrap();

    let Created::Made(created) = pro
        .create("new@pro.example", "New-Pa55word", None, &|| Ok(()))
        .await
        .unwrap()
    else {
        panic!("a new account is made")
    };
    assert!(
        created.detail.contains("configured by an interrupted run"),
        "{created:?}"
    );
    // The rename's task is slower to settle (checked after the create), or already done.
    let renamed = pro
        .rename("carol@pro.example", "carol.old@pro.example")
        .await
        .unwrap();
    assert!(!renamed.wrote, "{renamed:?}");
    let world = sim.world();
    let configured: Vec<&str> = world.pro[0]
        .accounts
        .iter()
        .filter(|a| a.configured)
        .map(|a| a.email.as_str())
        .collect();
    assert_eq!(
        configured,
        [
            "carol.old@pro.example",
            "dan@pro.example",
            "new@pro.example"
        ]
    );
    assert!(sim.violations().is_empty(), "{:#?}", sim.violations());
}

/// Legacy MX Plan filters: created with their first rule, rules added and removed, activity
/// and priority changed, an action changed by deleting and creating again, deleted; every
/// call in the published schema, every operation twice with nothing written the second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_filters_match_the_published_schema_and_converge() {
    use mailshift::rules::mxplan::{Filter, FilterAction, FilterRule, Operand};
    let sim = Simulator::start(world()).await.unwrap();
    let legacy = service(
        &sim,
        Family::Legacy {
            domain: "legacy.example".into(),
        },
    );
    let gina = "gina@legacy.example";
    let rule = |header: &str, value: &str| FilterRule {
        header: header.into(),
        operand: Operand::Contains,
        value: value.into(),
    };
    let spam = Filter {
        name: "No spam, please".into(),
        priority: 2,
        active: true,
        action: FilterAction::Delete,
        rules: vec![rule("Subject", "[SPAM]"), rule("X-Mailer", "bulk")],
    };
    assert_eq!(legacy.filters(gina).await.unwrap(), []);
    twice!(legacy, legacy.ensure_filter(gina, &spam));
    assert_eq!(
        legacy.filters(gina).await.unwrap(),
        std::slice::from_ref(&spam)
    );
    // Rules, activity and priority changed in place.
    let changed = Filter {
        priority: 1,
        active: false,
        rules: vec![
            rule("X-Mailer", "bulk"),
            FilterRule {
                header: "From".into(),
                operand: Operand::NoContains,
                value: "boss@".into(),
            },
        ],
        ..spam.clone()
    };
    twice!(legacy, legacy.ensure_filter(gina, &changed));
    let read = legacy.filters(gina).await.unwrap();
    assert!(
        read.len() == 1 && mailshift::providers::ovh::ops::same_filter(&read[0], &changed),
        "{read:?}"
    );
    // A new action: the filter is made again, under the same name.
    let redirect = Filter {
        action: FilterAction::Redirect("away@outside.example".into()),
        ..changed.clone()
    };
    twice!(legacy, legacy.ensure_filter(gina, &redirect));
    let local = Filter {
        name: "To Hank".into(),
        priority: 3,
        active: true,
        action: FilterAction::Account("gina@legacy.example".into()),
        rules: vec![rule("To", "orders@")],
    };
    twice!(legacy, legacy.ensure_filter(gina, &local));
    let names: Vec<String> = legacy
        .filters(gina)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(names, ["No spam, please", "To Hank"]);
    twice!(legacy, legacy.delete_filter(gina, &spam.name));
    twice!(legacy, legacy.delete_filter(gina, &local.name));
    assert_eq!(legacy.filters(gina).await.unwrap(), []);

    // What the platform refuses names the filter and the fix.
    let bad = Filter {
        action: FilterAction::Account("nobody".into()),
        ..local.clone()
    };
    let e = legacy
        .ensure_filter(gina, &bad)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("\"To Hank\"") && e.contains(gina) && e.contains("control panel"),
        "{e}"
    );
    // Other families have no filter calls.
    let pro = service(
        &sim,
        Family::EmailPro {
            service: "pro-1".into(),
        },
    );
    assert!(pro.filters("carol@pro.example").await.is_err());

    let violations = sim.violations();
    assert!(
        violations.is_empty(),
        "calls outside the schema: {violations:#?}"
    );
    let used: BTreeSet<String> = sim
        .requests()
        .into_iter()
        .filter_map(|r| r.operation.map(|op| format!("{} {op}", r.method)))
        .filter(|op| op.contains("filter"))
        .collect();
    let root = "/email/domain/{domain}";
    let filter = format!("{root}/account/{{accountName}}/filter");
    for op in [
        format!("GET {filter}"),
        format!("POST {filter}"),
        format!("GET {filter}/{{name}}"),
        format!("DELETE {filter}/{{name}}"),
        format!("POST {filter}/{{name}}/changeActivity"),
        format!("POST {filter}/{{name}}/changePriority"),
        format!("GET {filter}/{{name}}/rule"),
        format!("POST {filter}/{{name}}/rule"),
        format!("GET {filter}/{{name}}/rule/{{id}}"),
        format!("DELETE {filter}/{{name}}/rule/{{id}}"),
        format!("GET {root}/task/filter"),
        format!("GET {root}/task/filter/{{id}}"),
    ] {
        assert!(used.contains(&op), "{op} not exercised: {used:#?}");
    }
}

/// A filter task that fails leaves nothing behind, and the operation says so instead of
/// reporting success; the next run makes the filter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_filter_task_is_reported_and_the_next_run_converges() {
    use mailshift::rules::mxplan::{Filter, FilterAction, FilterRule, Operand};
    use ovh_sim::Fault;
    let sim = Simulator::start(world()).await.unwrap();
    let legacy = service(
        &sim,
        Family::Legacy {
            domain: "legacy.example".into(),
        },
    );
    let gina = "gina@legacy.example";
    let want = Filter {
        name: "Invoices".into(),
        priority: 1,
        active: true,
        action: FilterAction::Accept,
        rules: vec![FilterRule {
            header: "Subject".into(),
            operand: Operand::Contains,
            value: "invoice".into(),
        }],
    };
    sim.inject(Fault::fail_task("POST", "/email/domain/*/account/*/filter").times(1))
        .unwrap();
    let e = legacy
        .ensure_filter(gina, &want)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("\"Invoices\"") && e.contains("run apply again"),
        "{e}"
    );
    assert_eq!(legacy.filters(gina).await.unwrap(), []);
    twice!(legacy, legacy.ensure_filter(gina, &want));
    assert_eq!(legacy.filters(gina).await.unwrap(), [want]);
    assert!(sim.violations().is_empty(), "{:#?}", sim.violations());
}

/// Filters seeded in the world file read back through the operations, as rules of the
/// model, the one MX Plan holds beyond the model shown with its reason; the world as the
/// simulator reports it keeps them; a filter with an action outside the schema's enum is
/// refused when the world loads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_filters_read_as_rules() {
    use mailshift::rules::mxplan::from_mxplan;
    use mailshift::rules::{Action, Condition};
    let mut w = world();
    let seeded = World::from_yaml(
        r#"
legacy_domains:
  - domain: legacy.example
    accounts:
      - account_name: gina
        password: pw
        filters:
          - {name: Spam, priority: 2, action: delete, rules: [{header: Subject, value: "[SPAM]"}]}
          - name: Boss
            priority: 1
            active: false
            action: account
            action_param: hank
            rules: [{header: From, value: boss@}, {header: To, operand: noContains, value: list@}]
          - {name: Keep, priority: 3, action: accept, rules: [{header: X-Priority, value: "1"}]}
      - {account_name: hank, password: pw}
"#,
    )
    .unwrap();
    w.legacy_domains = seeded.legacy_domains;
    let sim = Simulator::start(w).await.unwrap();
    let legacy = service(
        &sim,
        Family::Legacy {
            domain: "legacy.example".into(),
        },
    );
    let filters = legacy.filters("gina@legacy.example").await.unwrap();
    let t = from_mxplan(&filters, "legacy.example");
    assert_eq!(t.untranslatable.len(), 1, "{t:?}");
    assert!(t.untranslatable[0].text.starts_with("filter \"Boss\""));
    assert!(t.untranslatable[0].reason.contains("negative"));
    let read: Vec<(&str, &[Condition], &[Action])> = t
        .rules
        .iter()
        .map(|r| (r.name.as_str(), &r.conditions[..], &r.actions[..]))
        .collect();
    assert_eq!(
        read,
        [
            (
                "Spam",
                &[Condition::SubjectContains("[SPAM]".into())][..],
                &[Action::Discard, Action::Stop][..]
            ),
            (
                "Keep",
                &[Condition::HeaderContains {
                    header: "X-Priority".into(),
                    value: "1".into()
                }][..],
                &[Action::Stop][..]
            ),
        ]
    );
    let world = sim.world();
    let gina = &world.legacy_domains[0].accounts[0];
    assert_eq!(gina.filters.len(), 3);
    assert_eq!(gina.filters[1].action_param.as_deref(), Some("hank"));
    assert!(sim.violations().is_empty(), "{:#?}", sim.violations());

    let bad = World::from_yaml(
        "legacy_domains: [{domain: x.example, accounts: [{account_name: a, filters: [{name: f, action: bounce}]}]}]",
    )
    .unwrap();
    let e = Simulator::start(bad).await.err().unwrap().to_string();
    assert!(e.contains("bounce") && e.contains("filter \"f\""), "{e}");
}

/// A run killed after creating a filter (with its first rule, its task maybe still under
/// way) and before adding its other rules: the next run waits for the task, finds the filter
/// by its name and adds only the missing rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_filter_creation_is_completed_not_repeated() {
    use mailshift::rules::mxplan::{Filter, FilterAction, FilterRule, Operand};
    let mut w = world();
    w.task_delay_ms = 300;
    let sim = Simulator::start(w).await.unwrap();
    let legacy = service(
        &sim,
        Family::Legacy {
            domain: "legacy.example".into(),
        },
    );
    let rule = |header: &str, value: &str| FilterRule {
        header: header.into(),
        operand: Operand::Contains,
        value: value.into(),
    };
    let want = Filter {
        name: "Two rules".into(),
        priority: 1,
        active: true,
        action: FilterAction::Redirect("away@outside.example".into()),
        rules: vec![rule("From", "news@"), rule("Subject", "weekly")],
    };
    let client = OvhClient::new(
        &sim.base_url(),
        Credentials {
            application_key: Secret::new(AK),
            application_secret: Secret::new(AS),
            consumer_key: Secret::new(CK),
        },
    )
    .unwrap();
    // The interrupted run's call, its task not finished yet.
    let _: serde_json::Value = client
        .post(
            "/email/domain/legacy.example/account/gina/filter",
            Some(&serde_json::json!({
                "name": "Two rules", "priority": 1, "active": true, "action": "redirect",
                "actionParam": "away@outside.example",
                "header": "From", "operand": "contains", "value": "news@",
            })),
        )
        .await
        .unwrap();
    let applied = legacy
        .ensure_filter("gina@legacy.example", &want)
        .await
        .unwrap();
    assert!(applied.wrote, "{applied:?}");
    let posts: Vec<String> = sim
        .writes()
        .iter()
        .filter_map(|r| r.operation.clone())
        .collect();
    let filter = "/email/domain/{domain}/account/{accountName}/filter";
    assert_eq!(
        posts,
        [filter.to_string(), format!("{filter}/{{name}}/rule")]
    );
    assert_eq!(legacy.filters("gina@legacy.example").await.unwrap(), [want]);
    assert!(sim.violations().is_empty(), "{:#?}", sim.violations());
}
