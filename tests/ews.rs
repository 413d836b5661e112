//! Contacts, calendars and tasks to and from Exchange over EWS, through the `mailshift`
//! binary, against the EWS simulator (built from Microsoft's published WSDL and schemas) and
//! Radicale: both directions, Exchange to Exchange with a series holding a deleted and a
//! modified occurrence and attendees, a second apply that writes nothing, kill -9 during the
//! copy, `verify` finding both sides equal. In every test the simulator saw no request outside the published definitions and no
//! invitation was sent.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use ews_sim::EwsSim;
use mailshift_dav::dav::DavStore;
use mailshift_dav::store::{Component, Store};
use mailshift_dav::testserver::DavServer;
use mailshift_ews::{Auth, EwsConfig, EwsStore, Secret};

use crate::common::{Output, repo_root};

const ALICE: &str = "alice@example.com";

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn ews_store(sim: &EwsSim, password: &str) -> EwsConfig {
    EwsConfig::new(
        sim.url(),
        ALICE,
        Auth::Basic {
            login: ALICE.into(),
            password: Secret::new(password),
        },
    )
}

/// Every collection of a store holding `component`, with the UIDs of its objects of that
/// component, sorted: duplicates show.
async fn uids<S: Store>(store: &S, component: Component) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for c in store.collections(component).await.unwrap() {
        let hrefs: Vec<String> = store
            .list(&c)
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.href)
            .collect();
        let mut ids = Vec::new();
        for f in store.fetch(&c, &hrefs).await.unwrap() {
            let item = mailshift_dav::object::parse(&f.data).unwrap();
            if item.component == component {
                ids.push(item.uid.unwrap_or_default());
            }
        }
        ids.sort();
        out.insert(c.name.clone(), ids);
    }
    out
}

/// Every calendar object of a store, by UID (the bytes as the store gives them).
async fn events<S: Store>(store: &S) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for c in store.collections(Component::Event).await.unwrap() {
        let hrefs: Vec<String> = store
            .list(&c)
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.href)
            .collect();
        for f in store.fetch(&c, &hrefs).await.unwrap() {
            let item = mailshift_dav::object::parse(&f.data).unwrap();
            if item.component == Component::Event {
                out.insert(
                    item.uid.unwrap_or_default(),
                    String::from_utf8(f.data).unwrap(),
                );
            }
        }
    }
    out
}

fn exchange_events(sim: &EwsSim, password: &str) -> BTreeMap<String, String> {
    block_on(async {
        let store = EwsStore::connect(ews_store(sim, password)).await.unwrap();
        events(&store).await
    })
}

fn dav_events(server: &DavServer) -> BTreeMap<String, String> {
    block_on(async {
        let store = DavStore::connect(server.dav_config(ALICE)).await.unwrap();
        events(&store).await
    })
}

pub(crate) fn exchange_uids(
    sim: &EwsSim,
    password: &str,
    component: Component,
) -> BTreeMap<String, Vec<String>> {
    block_on(async {
        let store = EwsStore::connect(ews_store(sim, password)).await.unwrap();
        uids(&store, component).await
    })
}

fn dav_uids(server: &DavServer, component: Component) -> BTreeMap<String, Vec<String>> {
    block_on(async {
        let store = DavStore::connect(server.dav_config(ALICE)).await.unwrap();
        uids(&store, component).await
    })
}

fn plan(dir: &Path, platforms: &str, content: &str) {
    let text = format!(
        "version: 1\nplatforms:\n{platforms}\
         accounts:\n  - address: {ALICE}\n    from: old\n    to: new\n    content: {content}\n\
         \x20   source: {{password: {{env: OLD_PW}}}}\n    destination: {{password: {{env: NEW_PW}}}}\n"
    );
    std::fs::write(dir.join("plan.yaml"), text).unwrap();
}

pub(crate) fn exchange_platform(name: &str, sim: &EwsSim) -> String {
    format!(
        "  {name}: {{type: exchange, imap: {{host: 127.0.0.1, security: none}}, ews: {{url: \"{}\"}}}}\n",
        sim.url()
    )
}

fn dav_platform(name: &str, server: &DavServer) -> String {
    format!(
        "  {name}: {{type: imap, imap: {{host: 127.0.0.1, security: none}}, dav: {{url: \"{}\"}}}}\n",
        server.dav_config(ALICE).url
    )
}

fn run(dir: &Path, args: &[&str]) -> Output {
    crate::common::mailshift_env(dir, args, &[("OLD_PW", "old"), ("NEW_PW", "new")])
}

/// No request outside the published definitions, and no meeting request or cancellation.
pub(crate) fn assert_clean(sim: &EwsSim) {
    assert_eq!(sim.violations(), Vec::<String>::new());
    assert_eq!(sim.invitations_sent(), 0, "{:?}", sim.invitation_modes());
}

/// `mailshift verify` finds every collection equal but the objects `known` names (changed):
/// Exchange renders each object its own way, and the comparison must see through it
/// (`Store::canonical`).
fn assert_verified(dir: &Path, known: &[&str]) {
    let verify = run(dir, &["verify", "plan.yaml"]);
    let changed: Vec<&str> = verify
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("uid:"))
        .collect();
    assert_eq!(changed.len(), known.len(), "{}", verify.transcript());
    for (line, uid) in changed.iter().zip(known) {
        assert!(
            line.starts_with(&format!("uid:{uid} ")),
            "{}",
            verify.transcript()
        );
    }
    assert!(
        verify.stdout.contains(&format!(
            "(0 item(s) missing, 0 extra, {} changed, ",
            known.len()
        )),
        "{}",
        verify.transcript()
    );
    if known.is_empty() {
        assert_eq!(verify.code, 0, "{}", verify.transcript());
    }
}

fn writes(sim: &EwsSim) -> usize {
    [
        "CreateItem",
        "UpdateItem",
        "DeleteItem",
        "CreateFolder",
        "CreateAttachment",
    ]
    .iter()
    .map(|op| sim.request_count(op))
    .sum()
}

/// The Radicale fixtures (contacts with photos and groups, events in Windows zones, a weekly
/// series, a meeting, tasks).
fn load_fixtures(server: &DavServer) {
    for (dir, calendar) in [("contacts", false), ("calendar", true)] {
        let path = format!("/{ALICE}/{dir}/");
        if calendar {
            server.create_calendar(ALICE, &path);
        } else {
            server.create_addressbook(ALICE, &path);
        }
        let mut files: Vec<_> = std::fs::read_dir(repo_root().join("tests/fixtures/dav").join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files {
            let body = std::fs::read_to_string(&f).unwrap();
            let name = f.file_name().unwrap().to_str().unwrap();
            assert!(matches!(
                server.put_raw(&format!("{path}{name}"), &body),
                201 | 204
            ));
        }
    }
}

#[test]
fn radicale_to_exchange_once_and_a_second_apply_writes_nothing() {
    let src = DavServer::radicale();
    load_fixtures(&src);
    let sim = EwsSim::spawn().unwrap();
    sim.add_mailbox(ALICE, "new");
    let dir = tempfile::tempdir().unwrap();
    plan(
        dir.path(),
        &(dav_platform("old", &src) + &exchange_platform("new", &sim)),
        "[contacts, calendars, tasks]",
    );
    let first = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(first.code, 0, "{}", first.transcript());
    for component in [Component::Card, Component::Event, Component::Task] {
        let from: Vec<String> = dav_uids(&src, component).into_values().flatten().collect();
        let to: Vec<String> = exchange_uids(&sim, "new", component)
            .into_values()
            .flatten()
            .collect();
        let (mut from, mut to) = (from, to);
        from.sort();
        to.sort();
        assert_eq!(to, from, "{component:?}");
    }
    // The weekly series in Europe/Paris, with its exceptions on both sides of the change to
    // summer time, comes back equal.
    assert_verified(dir.path(), &[]);
    let before = writes(&sim);
    let second = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(second.code, 0, "{}", second.transcript());
    assert_eq!(
        writes(&sim),
        before,
        "a second apply writes nothing: {}",
        second.stdout
    );
    assert_clean(&sim);
}

/// A weekly series with a deleted and a modified occurrence and attendees, in UTC (the
/// simulator places occurrences from a Start with an offset), a contact and a task, written
/// into Exchange by the client itself.
fn seed_exchange(sim: &EwsSim) {
    sim.add_mailbox(ALICE, "old");
    let series = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//y//EN\r\n\
BEGIN:VEVENT\r\nUID:standup-1\r\nDTSTAMP:20261128T100000Z\r\nSUMMARY:Stand-up\r\n\
DTSTART:20261202T080000Z\r\nDTEND:20261202T081500Z\r\n\
RRULE:FREQ=WEEKLY;BYDAY=MO,WE,FR;COUNT=10\r\nEXDATE:20261207T080000Z\r\n\
ORGANIZER:mailto:alice@example.com\r\n\
ATTENDEE;CN=Bob;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED:mailto:bob@example.com\r\n\
ATTENDEE;ROLE=OPT-PARTICIPANT:mailto:carl@example.com\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:standup-1\r\nDTSTAMP:20261128T100000Z\r\nRECURRENCE-ID:20261209T080000Z\r\n\
SUMMARY:Stand-up (long)\r\nDTSTART:20261209T090000Z\r\nDTEND:20261209T100000Z\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";
    let card = "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:ann-1\r\nFN:Ann Doe\r\nN:Doe;Ann;;;\r\nEMAIL:ann@example.com\r\nEND:VCARD\r\n";
    let todo = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//y//EN\r\nBEGIN:VTODO\r\nUID:taxes\r\nDTSTAMP:20261128T100000Z\r\nSUMMARY:File taxes\r\nDUE;VALUE=DATE:20270415\r\nEND:VTODO\r\nEND:VCALENDAR\r\n";
    block_on(async {
        let store = EwsStore::connect(ews_store(sim, "old")).await.unwrap();
        for (component, name, data) in [
            (Component::Event, "standup-1", series),
            (Component::Card, "ann-1", card),
            (Component::Task, "taxes", todo),
        ] {
            let c = store.collections(component).await.unwrap().remove(0);
            let href = store.href_for(&c, name, component);
            let out = store
                .put(
                    &c,
                    &href,
                    data.as_bytes(),
                    mailshift_dav::store::Precondition::Absent,
                )
                .await
                .unwrap();
            assert!(
                matches!(out, mailshift_dav::store::PutOutcome::Written { .. }),
                "{out:?}"
            );
        }
        assert_eq!(store.losses(), Vec::<String>::new());
    });
}

#[test]
fn exchange_to_radicale_keeps_the_series_as_one_unit() {
    let sim = EwsSim::spawn().unwrap();
    seed_exchange(&sim);
    let dst = DavServer::radicale();
    let dir = tempfile::tempdir().unwrap();
    plan(
        dir.path(),
        &(exchange_platform("old", &sim) + &dav_platform("new", &dst)),
        "[contacts, calendars, tasks]",
    );
    let first = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(first.code, 0, "{}", first.transcript());
    let events: Vec<String> = dav_uids(&dst, Component::Event)
        .into_values()
        .flatten()
        .collect();
    assert_eq!(events, vec!["standup-1".to_string()]);
    let cards: Vec<String> = dav_uids(&dst, Component::Card)
        .into_values()
        .flatten()
        .collect();
    assert_eq!(cards, vec!["ann-1".to_string()]);
    let tasks: Vec<String> = dav_uids(&dst, Component::Task)
        .into_values()
        .flatten()
        .collect();
    assert_eq!(tasks, vec!["taxes".to_string()]);
    let second = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(second.code, 0, "{}", second.transcript());
    assert!(!second.stdout.contains("written"), "{}", second.stdout);
    assert_clean(&sim);
}

/// An Exchange that accepts NTLM only (OVHcloud Hosted/Private Exchange, on-premises with
/// Basic off), with `ews.auth` as given (None: the default, `auto`).
fn ntlm_exchange_platform(name: &str, sim: &EwsSim, auth: Option<&str>) -> String {
    let auth = auth.map(|a| format!(", auth: {a}")).unwrap_or_default();
    format!(
        "  {name}: {{type: exchange, imap: {{host: 127.0.0.1, security: none}}, ews: {{url: \"{}\"{auth}}}}}\n",
        sim.url()
    )
}

#[test]
fn an_ntlm_only_exchange_is_copied_with_ews_auth_ntlm_or_auto() {
    for auth in [Some("ntlm"), None] {
        let sim = EwsSim::spawn().unwrap();
        seed_exchange(&sim);
        sim.require_ntlm(true);
        let dst = DavServer::radicale();
        let dir = tempfile::tempdir().unwrap();
        plan(
            dir.path(),
            &(ntlm_exchange_platform("old", &sim, auth) + &dav_platform("new", &dst)),
            "[contacts, calendars, tasks]",
        );
        let first = run(dir.path(), &["apply", "plan.yaml"]);
        assert_eq!(first.code, 0, "{auth:?}: {}", first.transcript());
        for (component, uid) in [
            (Component::Event, "standup-1"),
            (Component::Card, "ann-1"),
            (Component::Task, "taxes"),
        ] {
            let got: Vec<String> = dav_uids(&dst, component).into_values().flatten().collect();
            assert_eq!(got, vec![uid.to_string()], "{auth:?} {component:?}");
        }
        let second = run(dir.path(), &["apply", "plan.yaml"]);
        assert_eq!(second.code, 0, "{auth:?}: {}", second.transcript());
        assert!(!second.stdout.contains("written"), "{}", second.stdout);
        let logins = sim.ntlm_logins();
        assert!(!logins.is_empty());
        assert!(logins.iter().all(|l| l.mailbox == ALICE), "{logins:?}");
        let basic = sim
            .ntlm_refusals()
            .iter()
            .filter(|r| r.contains("Basic refused"))
            .count();
        if auth == Some("ntlm") {
            assert_eq!(
                basic,
                0,
                "`ntlm` never sends Basic: {:?}",
                sim.ntlm_refusals()
            );
        } else {
            assert!(
                basic >= 1,
                "`auto` starts with Basic: {:?}",
                sim.ntlm_refusals()
            );
        }
        assert_clean(&sim);
    }
}

#[test]
fn a_wrong_ntlm_password_names_the_account_and_the_fix_not_the_secret() {
    let sim = EwsSim::spawn().unwrap();
    seed_exchange(&sim);
    sim.require_ntlm(true);
    let dst = DavServer::radicale();
    let dir = tempfile::tempdir().unwrap();
    plan(
        dir.path(),
        &(ntlm_exchange_platform("old", &sim, Some("ntlm")) + &dav_platform("new", &dst)),
        "[contacts]",
    );
    let out = crate::common::mailshift_env(
        dir.path(),
        &["apply", "plan.yaml"],
        &[("OLD_PW", "wr0ng-s3cret"), ("NEW_PW", "new")],
    );
    assert_ne!(out.code, 0, "{}", out.transcript());
    let text = out.transcript();
    assert!(text.contains(ALICE), "{text}");
    assert!(text.contains("NTLM"), "{text}");
    assert!(text.contains("password"), "{text}");
    assert!(!text.contains("wr0ng-s3cret"), "{text}");
    assert!(sim.ntlm_logins().is_empty());
    assert!(
        sim.ntlm_refusals()
            .iter()
            .any(|r| r.contains("wrong password")),
        "{:?}",
        sim.ntlm_refusals()
    );
    assert_clean(&sim);
}

#[test]
fn exchange_to_exchange_carries_the_series_without_an_invitation() {
    let old = EwsSim::spawn().unwrap();
    seed_exchange(&old);
    let new = EwsSim::spawn().unwrap();
    new.add_mailbox(ALICE, "new");
    let dir = tempfile::tempdir().unwrap();
    plan(
        dir.path(),
        &(exchange_platform("old", &old) + &exchange_platform("new", &new)),
        "[contacts, calendars, tasks]",
    );
    let first = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(first.code, 0, "{}", first.transcript());
    let items = new.items(ALICE, "calendar");
    assert_eq!(items.len(), 1, "{items:#?}");
    let series = &items[0];
    // The modified occurrence (its own item, moved an hour later) and the deleted one.
    for expected in [
        "<t:UID>standup-1</t:UID>",
        "<t:OriginalStart>2026-12-09T08:00:00Z</t:OriginalStart>",
        "<t:Start>2026-12-09T09:00:00Z</t:Start>",
        "<t:DeletedOccurrence><t:Start>2026-12-07T08:00:00Z</t:Start>",
        "bob@example.com",
        "carl@example.com",
    ] {
        assert!(series.contains(expected), "{expected} in {series}");
    }
    assert_verified(dir.path(), &[]);
    let before = writes(&new);
    let second = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(second.code, 0, "{}", second.transcript());
    assert_eq!(writes(&new), before, "{}", second.stdout);
    assert_clean(&old);
    assert_clean(&new);
}

#[test]
fn kill_9_during_a_copy_into_exchange_leaves_every_object_once() {
    let src = DavServer::radicale();
    let book = format!("/{ALICE}/people/");
    src.create_addressbook(ALICE, &book);
    for n in 0..200 {
        let card = format!(
            "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:card-{n}\r\nFN:Person {n}\r\nN:{n};Person;;;\r\nEMAIL:p{n}@example.com\r\nEND:VCARD\r\n"
        );
        assert_eq!(src.put_raw(&format!("{book}c{n}.vcf"), &card), 201);
    }
    let sim = EwsSim::spawn().unwrap();
    sim.add_mailbox(ALICE, "new");
    let dir = tempfile::tempdir().unwrap();
    plan(
        dir.path(),
        &(dav_platform("old", &src) + &exchange_platform("new", &sim)),
        "[contacts]",
    );
    let mut seed: u64 = 0xe75_5eed;
    let mut kills = 0;
    for _ in 0..6 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        // Killed once the run has created a seeded number of items more: in the middle of
        // the copy whatever this machine's speed, never by the clock.
        let target = sim.request_count("CreateItem") + 1 + (seed >> 33) as usize % 40;
        let mut child = Command::new(env!("CARGO_BIN_EXE_mailshift"))
            .args(["apply", "plan.yaml"])
            .current_dir(dir.path())
            .env("OLD_PW", "old")
            .env("NEW_PW", "new")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        while child.try_wait().unwrap().is_none() {
            if sim.request_count("CreateItem") >= target {
                child.kill().unwrap(); // SIGKILL
                kills += 1;
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        child.wait().unwrap();
    }
    assert!(
        kills > 0,
        "no run was killed: the test did not test anything"
    );
    let last = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(last.code, 0, "{}", last.transcript());
    let cards: Vec<String> = exchange_uids(&sim, "new", Component::Card)
        .into_values()
        .flatten()
        .collect();
    let mut expected: Vec<String> = (0..200).map(|n| format!("card-{n}")).collect();
    expected.sort();
    assert_eq!(cards, expected, "after {kills} kills");
    assert_clean(&sim);
}

/// An OVHcloud Exchange platform with `ews: {}` and no `imap` host, copying contacts only: the
/// EWS URL's host is read from the API (the service's `hostname`) as it is for mail.
#[test]
fn ovh_exchange_with_ews_and_no_mail_reads_its_host_from_the_api() {
    const AK: &str = "ewsApplicationKey";
    const AS: &str = "ewsApplicationSecret0123456789ab";
    const CK: &str = "ewsConsumerKey0123456789abcdefgh";
    const ORG: &str = "hosted-ab12345-1";
    let world = format!(
        "applications: [{{key: {AK}, secret: {AS}}}]\n\
         consumer_keys: [{{key: {CK}, application: {AK}}}]\ntask_delay_ms: 20\n\
         exchange:\n  - organization: {ORG}\n    service: {ORG}\n    hostname: 127.0.0.1\n\
         \x20   offer: hosted\n    domains: [{{name: example.com, type: authoritative}}]\n\
         \x20   accounts:\n      - {{email: {ALICE}, password: old}}\n"
    );
    let api = ovh_sim::SimHandle::spawn(ovh_sim::world::World::from_yaml(&world).unwrap())
        .expect("simulator starts");
    let dst = DavServer::radicale();
    let dir = tempfile::tempdir().unwrap();
    let platforms = format!(
        "  old: {{type: ovh-exchange, provider: ovh, organization: {ORG}, service: {ORG}, ews: {{}}}}\n{}",
        dav_platform("new", &dst)
    );
    plan(dir.path(), &platforms, "[contacts]");
    let text = std::fs::read_to_string(dir.path().join("plan.yaml")).unwrap();
    let providers = format!(
        "providers:\n  ovh: {{type: ovh, endpoint: \"{}\", application_key: {{env: OVH_AK}}, \
         application_secret: {{env: OVH_AS}}, consumer_key: {{env: OVH_CK}}}}\n",
        api.base_url()
    );
    std::fs::write(
        dir.path().join("plan.yaml"),
        text.replacen("platforms:\n", &format!("{providers}platforms:\n"), 1),
    )
    .unwrap();
    let env = [
        ("OLD_PW", "old"),
        ("NEW_PW", "new"),
        ("OVH_AK", AK),
        ("OVH_AS", AS),
        ("OVH_CK", CK),
    ];
    let refreshed =
        crate::common::mailshift_env(dir.path(), &["plan", "plan.yaml", "--refresh"], &env);
    assert_eq!(refreshed.code, 0, "{}", refreshed.transcript());
    assert!(
        refreshed
            .stdout
            .contains("platform `old`: IMAP server 127.0.0.1:993 (read from the OVHcloud API)"),
        "{}",
        refreshed.transcript()
    );
    // The URL the copy then uses, https://HOST/EWS/Exchange.asmx with that host, is
    // `apply::content::dav`'s unit test (nothing listens on 127.0.0.1:443 here, and a refused
    // connection is retried for a minute).
}

/// EWS over HTTPS trusts what DAV trusts: the platform's roots plus the plan's `ca_file`; a
/// server whose certificate no trusted CA signed is refused with a TLS error, unless the plan
/// says `insecure_skip_verify`.
#[test]
fn https_ews_is_verified_against_the_plans_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    crate::support::dovecot::make_tls_material(&tls);
    let sim = EwsSim::spawn_with(Some(ews_sim::Tls {
        cert_pem: tls.join("server.pem"),
        key_pem: tls.join("server.key"),
    }))
    .unwrap();
    sim.add_mailbox(ALICE, "pw");
    assert!(sim.url().starts_with("https://"), "{}", sim.url());
    let collections = |config: EwsConfig| {
        block_on(async {
            let store = EwsStore::connect(config).await?;
            store.collections(Component::Card).await
        })
    };

    let refused = collections(ews_store(&sim, "pw")).unwrap_err();
    assert!(
        refused.message.to_lowercase().contains("certificate"),
        "{}",
        refused.message
    );
    let mut trusted = ews_store(&sim, "pw");
    trusted.ca_file = Some(tls.join("ca.pem"));
    assert!(!collections(trusted).unwrap().is_empty());
    let mut skipped = ews_store(&sim, "pw");
    skipped.insecure_skip_verify = true;
    assert!(!collections(skipped).unwrap().is_empty());
    assert_clean(&sim);
}

/// NTLM goes over connections of its own (not reqwest's): they trust servers exactly as the
/// rest of the client does, and bind the NTLM response to the TLS channel.
#[test]
fn https_ntlm_is_verified_against_the_plans_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    crate::support::dovecot::make_tls_material(&tls);
    let sim = EwsSim::spawn_with(Some(ews_sim::Tls {
        cert_pem: tls.join("server.pem"),
        key_pem: tls.join("server.key"),
    }))
    .unwrap();
    sim.add_mailbox(ALICE, "pw");
    sim.require_ntlm(true);
    // Extended Protection: the NTLM response must carry this TLS connection's bindings.
    sim.require_channel_bindings(true);
    let ntlm = || {
        let mut config = ews_store(&sim, "pw");
        config.auth_scheme = mailshift_ews::AuthScheme::Ntlm;
        config.attempts = 1;
        config
    };
    let collections = |config: EwsConfig| {
        block_on(async {
            let store = EwsStore::connect(config).await?;
            store.collections(Component::Card).await
        })
    };

    let refused = collections(ntlm()).unwrap_err();
    assert_eq!(
        refused.kind,
        mailshift_dav::error::ErrorKind::Tls,
        "{refused:?}"
    );
    assert!(
        refused.message.to_lowercase().contains("certificate"),
        "{}",
        refused.message
    );
    assert!(sim.ntlm_logins().is_empty());
    let mut trusted = ntlm();
    trusted.ca_file = Some(tls.join("ca.pem"));
    assert!(!collections(trusted).unwrap().is_empty());
    let mut skipped = ntlm();
    skipped.insecure_skip_verify = true;
    assert!(!collections(skipped).unwrap().is_empty());
    assert_eq!(sim.ntlm_logins().len(), 2, "{:?}", sim.ntlm_refusals());
    assert_clean(&sim);
}

/// Every card of a DAV server by UID, with its data.
pub(crate) fn dav_cards(server: &DavServer) -> BTreeMap<String, String> {
    block_on(async {
        let store = DavStore::connect(server.dav_config(ALICE)).await.unwrap();
        let mut out = BTreeMap::new();
        for c in store.collections(Component::Card).await.unwrap() {
            let hrefs: Vec<String> = store
                .list(&c)
                .await
                .unwrap()
                .into_iter()
                .map(|l| l.href)
                .collect();
            for f in store.fetch(&c, &hrefs).await.unwrap() {
                let item = mailshift_dav::object::parse(&f.data).unwrap();
                let uid = item.uid.unwrap_or_default();
                let data = String::from_utf8_lossy(&f.data).into_owned();
                assert!(out.insert(uid.clone(), data).is_none(), "{uid} twice");
            }
        }
        out
    })
}

/// Changes on the Exchange side through the client itself: `edit` (an href's last segment)
/// gets a new FN, `create` is added, `delete` (an href's last segment) is deleted.
fn change_contacts(sim: &EwsSim, edit: &str, create: &str, delete: &str) {
    let card = |uid: &str, name: &str| {
        format!(
            "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\nEMAIL:{uid}@example.com\r\nEND:VCARD\r\n"
        )
    };
    block_on(async {
        let store = EwsStore::connect(ews_store(sim, "old")).await.unwrap();
        let c = store.collections(Component::Card).await.unwrap().remove(0);
        let listed = store.list(&c).await.unwrap();
        let find = |last: &str| {
            listed
                .iter()
                .find(|l| l.href.ends_with(&format!("/{last}")))
                .unwrap_or_else(|| panic!("{last} in {listed:?}"))
                .clone()
        };
        let edited = find(edit);
        let data = store.fetch(&c, std::slice::from_ref(&edited.href)).await;
        let uid = mailshift_dav::object::parse(&data.unwrap()[0].data)
            .unwrap()
            .uid
            .unwrap();
        let out = store
            .put(
                &c,
                &edited.href,
                card(&uid, "Edited Name").as_bytes(),
                mailshift_dav::store::Precondition::Matches(edited.etag.unwrap()),
            )
            .await
            .unwrap();
        assert!(
            matches!(out, mailshift_dav::store::PutOutcome::Written { .. }),
            "{out:?}"
        );
        let href = store.href_for(&c, create, Component::Card);
        let out = store
            .put(
                &c,
                &href,
                card(create, "New Person").as_bytes(),
                mailshift_dav::store::Precondition::Absent,
            )
            .await
            .unwrap();
        assert!(
            matches!(out, mailshift_dav::store::PutOutcome::Written { .. }),
            "{out:?}"
        );
        assert!(store.delete(&find(delete).href, None).await.unwrap());
    });
}

/// The SyncFolderItems requests made since `from` (an index in the simulator's log): how many
/// started from nothing (a full listing) and how many from a recorded state.
fn syncs_since(sim: &EwsSim, from: usize) -> (usize, usize) {
    let states = sim.item_sync_states();
    let fresh = states[from..]
        .iter()
        .filter(|s| s.as_deref().is_none_or(str::is_empty))
        .count();
    (fresh, states.len() - from - fresh)
}

/// Exchange to Radicale, then changes on Exchange: the second run asks SyncFolderItems from
/// the state the first recorded (no listing at all) and carries an edit and a new contact,
/// and counts a deletion; after the states expire, a run lists again and still converges.
#[test]
fn a_second_run_from_exchange_reads_only_the_changes_by_sync_state() {
    let sim = EwsSim::spawn().unwrap();
    seed_exchange(&sim);
    for n in 0..3 {
        sim.insert_item(
            ALICE,
            "contacts",
            &format!("<t:Contact><t:GivenName>F{n}</t:GivenName><t:Surname>Foreign</t:Surname></t:Contact>"),
        )
        .unwrap();
    }
    let dst = DavServer::radicale();
    let dir = tempfile::tempdir().unwrap();
    plan(
        dir.path(),
        &(exchange_platform("old", &sim) + &dav_platform("new", &dst)),
        "[contacts, calendars, tasks]",
    );
    let first = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(first.code, 0, "{}", first.transcript());
    let (fresh, resumed) = syncs_since(&sim, 0);
    assert!(fresh >= 3 && resumed == 0, "{:?}", sim.item_sync_states());
    let cards = dav_cards(&dst);
    assert_eq!(cards.len(), 4, "{cards:#?}");
    let foreign: Vec<&String> = cards.keys().filter(|u| u.starts_with("ews-")).collect();
    assert_eq!(foreign.len(), 3);

    // An edit of ann-1, a new contact, a foreign contact deleted.
    let gone = sim
        .items(ALICE, "contacts")
        .into_iter()
        .find(|i| i.contains("F0"))
        .unwrap();
    let gone_id = gone
        .split("ItemId Id=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let gone_href = format!("id:{}", gone_id.replace('%', "%25").replace('/', "%2F"));
    change_contacts(&sim, "ann-1", "new-1", &gone_href);
    let logged = sim.item_sync_states().len();
    let find_items = sim.request_count("FindItem");
    let second = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(second.code, 0, "{}", second.transcript());
    let (fresh, resumed) = syncs_since(&sim, logged);
    assert_eq!(fresh, 0, "no listing: {:?}", sim.item_sync_states());
    assert!(resumed >= 3, "{:?}", sim.item_sync_states());
    assert_eq!(
        sim.request_count("FindItem"),
        find_items,
        "no FindItem either"
    );
    let cards = dav_cards(&dst);
    assert!(
        cards["ann-1"].contains("FN:Edited Name"),
        "{}",
        cards["ann-1"]
    );
    assert!(cards.contains_key("new-1"), "{cards:#?}");
    // The deleted contact stays on the destination (a migration never deletes), counted.
    assert_eq!(cards.len(), 5, "{cards:#?}");
    assert!(
        second
            .stdout
            .contains("1 object(s) removed on the source since they were copied"),
        "{}",
        second.transcript()
    );

    // Expired states: the next run is refused its states, lists, and converges.
    sim.invalidate_sync_states(ALICE);
    block_on(async {
        let store = EwsStore::connect(ews_store(&sim, "old")).await.unwrap();
        let c = store.collections(Component::Card).await.unwrap().remove(0);
        let href = store.href_for(&c, "new-2", Component::Card);
        let card = "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:new-2\r\nFN:Second New\r\nN:New;Second;;;\r\nEND:VCARD\r\n";
        store
            .put(
                &c,
                &href,
                card.as_bytes(),
                mailshift_dav::store::Precondition::Absent,
            )
            .await
            .unwrap();
    });
    let logged = sim.item_sync_states().len();
    let third = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(third.code, 0, "{}", third.transcript());
    let (fresh, resumed) = syncs_since(&sim, logged);
    assert!(fresh >= 3 && resumed >= 3, "{:?}", sim.item_sync_states());
    let cards = dav_cards(&dst);
    assert_eq!(cards.len(), 6, "{cards:#?}");
    assert!(cards.contains_key("new-2"), "{cards:#?}");
    // And from the new states: nothing to do, nothing written.
    let fourth = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(fourth.code, 0, "{}", fourth.transcript());
    assert!(!fourth.stdout.contains("written"), "{}", fourth.stdout);
    assert_eq!(dav_cards(&dst).len(), 6);
    assert_clean(&sim);
}

/// Runs `apply` and kills it (SIGKILL) once the simulator has answered `more` GetItem
/// requests more than before: during the reading of the source, never by the clock. True when
/// it was killed (a run may end first).
fn apply_killed_after_reads(dir: &Path, sim: &EwsSim, more: usize) -> bool {
    let target = sim.request_count("GetItem") + more;
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailshift"))
        .args(["apply", "plan.yaml"])
        .current_dir(dir)
        .env("OLD_PW", "old")
        .env("NEW_PW", "new")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut killed = false;
    while child.try_wait().unwrap().is_none() {
        if sim.request_count("GetItem") >= target {
            child.kill().unwrap(); // SIGKILL
            killed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.wait().unwrap();
    killed
}

/// Exchange as the source under kill -9: first runs killed while reading, then changes on
/// Exchange and runs killed again (now reading by sync state): every contact ends on Radicale
/// exactly once, the edit and the new one carried, and a last apply writes nothing.
#[test]
fn kill_9_while_reading_exchange_by_sync_state_still_ends_exactly_once() {
    let sim = EwsSim::spawn().unwrap();
    sim.add_mailbox(ALICE, "old");
    for n in 0..300 {
        sim.insert_item(
            ALICE,
            "contacts",
            &format!("<t:Contact><t:GivenName>N{n}</t:GivenName><t:Surname>Person</t:Surname></t:Contact>"),
        )
        .unwrap();
    }
    let dst = DavServer::radicale();
    let dir = tempfile::tempdir().unwrap();
    plan(
        dir.path(),
        &(exchange_platform("old", &sim) + &dav_platform("new", &dst)),
        "[contacts]",
    );
    let mut seed: u64 = 0x05ee_d70c;
    let mut kills = 0;
    for _ in 0..4 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        kills += usize::from(apply_killed_after_reads(
            dir.path(),
            &sim,
            1 + (seed >> 33) as usize % 5,
        ));
    }
    assert!(
        kills > 0,
        "no run was killed: the test did not test anything"
    );
    let done = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(done.code, 0, "{}", done.transcript());
    assert_eq!(dav_cards(&dst).len(), 300);

    let ids: Vec<String> = sim
        .items(ALICE, "contacts")
        .iter()
        .map(|i| {
            i.split("ItemId Id=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap()
                .to_string()
        })
        .collect();
    let href = |id: &str| format!("id:{}", id.replace('%', "%25").replace('/', "%2F"));
    change_contacts(&sim, &href(&ids[7]), "k-new", &href(&ids[9]));
    let logged = sim.item_sync_states().len();
    for _ in 0..3 {
        apply_killed_after_reads(dir.path(), &sim, 1);
    }
    // The first of these read by sync state (the run before completed); apply scans fully
    // after an interrupted run, which lists again and records a new state.
    assert_eq!(
        sim.item_sync_states().get(logged).map(Option::is_some),
        Some(true),
        "{:?}",
        sim.item_sync_states()
    );
    let last = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(last.code, 0, "{}", last.transcript());
    // dav_cards refuses a UID twice.
    let cards = dav_cards(&dst);
    assert_eq!(
        cards.len(),
        301,
        "the deleted one stays, the new one is there"
    );
    assert!(cards.contains_key("k-new"));
    assert_eq!(
        cards
            .values()
            .filter(|c| c.contains("FN:Edited Name"))
            .count(),
        1
    );
    let again = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(again.code, 0, "{}", again.transcript());
    assert!(!again.stdout.contains("written"), "{}", again.stdout);
    // After a complete run, by sync state again.
    let logged = sim.item_sync_states().len();
    change_contacts(&sim, &href(&ids[11]), "k-new-2", &href(&ids[13]));
    let after = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(after.code, 0, "{}", after.transcript());
    let (fresh, resumed) = syncs_since(&sim, logged);
    assert_eq!((fresh, resumed), (0, 1), "{:?}", sim.item_sync_states());
    let cards = dav_cards(&dst);
    assert_eq!(cards.len(), 302);
    assert!(cards.contains_key("k-new-2"));
    assert_clean(&sim);
}

/// Weekly series in two Windows zones, each with occurrences on both sides of a daylight
/// saving change and an occurrence moved after it, and an all-day event over the European
/// change, written into Exchange by the client itself.
fn seed_zoned(sim: &EwsSim) {
    sim.add_mailbox(ALICE, "old");
    let berlin = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//y//EN\r\n\
BEGIN:VEVENT\r\nUID:berlin-weekly\r\nDTSTAMP:20260301T100000Z\r\nSUMMARY:Jour fixe\r\n\
DTSTART;TZID=W. Europe Standard Time:20260316T093000\r\n\
DTEND;TZID=W. Europe Standard Time:20260316T100000\r\n\
RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=6\r\nEXDATE;TZID=W. Europe Standard Time:20260406T093000\r\n\
END:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:berlin-weekly\r\nDTSTAMP:20260301T100000Z\r\n\
RECURRENCE-ID;TZID=W. Europe Standard Time:20260330T093000\r\nSUMMARY:Jour fixe (later)\r\n\
DTSTART;TZID=W. Europe Standard Time:20260330T110000\r\n\
DTEND;TZID=W. Europe Standard Time:20260330T113000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let new_york = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//y//EN\r\n\
BEGIN:VEVENT\r\nUID:ny-weekly\r\nDTSTAMP:20261001T100000Z\r\nSUMMARY:Sync\r\n\
DTSTART;TZID=Eastern Standard Time:20261019T100000\r\n\
DTEND;TZID=Eastern Standard Time:20261019T110000\r\n\
RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=4\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:ny-weekly\r\nDTSTAMP:20261001T100000Z\r\n\
RECURRENCE-ID;TZID=Eastern Standard Time:20261102T100000\r\nSUMMARY:Sync (noon)\r\n\
DTSTART;TZID=Eastern Standard Time:20261102T120000\r\n\
DTEND;TZID=Eastern Standard Time:20261102T130000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let all_day = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//y//EN\r\n\
BEGIN:VEVENT\r\nUID:weekend\r\nDTSTAMP:20260301T100000Z\r\nSUMMARY:Weekend away\r\n\
DTSTART;VALUE=DATE:20260328\r\nDTEND;VALUE=DATE:20260330\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    block_on(async {
        let store = EwsStore::connect(ews_store(sim, "old")).await.unwrap();
        let c = store.collections(Component::Event).await.unwrap().remove(0);
        for (name, data) in [
            ("berlin-weekly", berlin),
            ("ny-weekly", new_york),
            ("weekend", all_day),
        ] {
            let href = store.href_for(&c, name, Component::Event);
            let out = store
                .put(
                    &c,
                    &href,
                    data.as_bytes(),
                    mailshift_dav::store::Precondition::Absent,
                )
                .await
                .unwrap();
            assert!(
                matches!(out, mailshift_dav::store::PutOutcome::Written { .. }),
                "{out:?}"
            );
        }
        assert_eq!(store.losses(), Vec::<String>::new());
    });
}

/// The series' stored item on a simulator, by its UID.
fn series_item(sim: &EwsSim, uid: &str) -> String {
    sim.items(ALICE, "calendar")
        .into_iter()
        .find(|i| i.contains(&format!("<t:UID>{uid}</t:UID>")))
        .unwrap_or_else(|| panic!("{uid} on the simulator"))
}

#[test]
fn series_in_windows_zones_keep_their_wall_clock_time_exchange_radicale_exchange() {
    let old = EwsSim::spawn().unwrap();
    seed_zoned(&old);
    let mid = DavServer::radicale();
    let there = tempfile::tempdir().unwrap();
    plan(
        there.path(),
        &(exchange_platform("old", &old) + &dav_platform("new", &mid)),
        "[calendars]",
    );
    let first = run(there.path(), &["apply", "plan.yaml"]);
    assert_eq!(first.code, 0, "{}", first.transcript());
    // Radicale keeps IANA zones with their VTIMEZONE (it stores the object re-serialized,
    // lines in its own order), and the wall-clock times of every occurrence, moved and
    // deleted ones included, on both sides of the change.
    let stored = dav_events(&mid);
    let berlin = &stored["berlin-weekly"];
    for expected in [
        "BEGIN:VTIMEZONE\r\n",
        "TZID:Europe/Berlin\r\n",
        "TZOFFSETTO:+0200\r\n",
        "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\n",
        "DTSTART;TZID=Europe/Berlin:20260316T093000\r\n",
        "EXDATE;TZID=Europe/Berlin:20260406T093000\r\n",
        "RECURRENCE-ID;TZID=Europe/Berlin:20260330T093000\r\n",
        "DTSTART;TZID=Europe/Berlin:20260330T110000\r\n",
    ] {
        assert!(berlin.contains(expected), "{expected} in {berlin}");
    }
    let new_york = &stored["ny-weekly"];
    for expected in [
        "TZID:America/New_York\r\n",
        "TZOFFSETTO:-0500\r\n",
        "RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU\r\n",
        "DTSTART;TZID=America/New_York:20261019T100000\r\n",
        "RECURRENCE-ID;TZID=America/New_York:20261102T100000\r\n",
        "DTSTART;TZID=America/New_York:20261102T120000\r\n",
    ] {
        assert!(new_york.contains(expected), "{expected} in {new_york}");
    }
    let weekend = &stored["weekend"];
    assert!(
        weekend.contains("DTSTART;VALUE=DATE:20260328\r\n")
            && weekend.contains("DTEND;VALUE=DATE:20260330\r\n")
            && !weekend.contains("VTIMEZONE"),
        "{weekend}"
    );
    assert_verified(there.path(), &[]);

    // And back into another Exchange: the same items, Windows zones again.
    let new = EwsSim::spawn().unwrap();
    new.add_mailbox(ALICE, "new");
    let back = tempfile::tempdir().unwrap();
    plan(
        back.path(),
        &(dav_platform("old", &mid) + &exchange_platform("new", &new)),
        "[calendars]",
    );
    let second = run(back.path(), &["apply", "plan.yaml"]);
    assert_eq!(second.code, 0, "{}", second.transcript());
    assert_verified(back.path(), &[]);
    let berlin = series_item(&new, "berlin-weekly");
    for expected in [
        r#"<t:StartTimeZone Id="W. Europe Standard Time""#,
        // 09:30 in winter and in summer: 08:30 and 07:30 UTC.
        "<t:Start>2026-03-16T08:30:00Z</t:Start>",
        "<t:OriginalStart>2026-03-30T07:30:00Z</t:OriginalStart>",
        "<t:Start>2026-03-30T09:00:00Z</t:Start>",
        "<t:DeletedOccurrence><t:Start>2026-04-06T07:30:00Z</t:Start>",
    ] {
        assert!(berlin.contains(expected), "{expected} in {berlin}");
    }
    let new_york = series_item(&new, "ny-weekly");
    for expected in [
        r#"<t:StartTimeZone Id="Eastern Standard Time""#,
        // 10:00 in summer and in winter: 14:00 and 15:00 UTC.
        "<t:Start>2026-10-19T14:00:00Z</t:Start>",
        "<t:OriginalStart>2026-11-02T15:00:00Z</t:OriginalStart>",
        "<t:Start>2026-11-02T17:00:00Z</t:Start>",
    ] {
        assert!(new_york.contains(expected), "{expected} in {new_york}");
    }
    // What the second Exchange gives is what the first gave.
    let strip = |events: BTreeMap<String, String>| -> BTreeMap<String, String> {
        events
            .into_iter()
            .map(|(uid, data)| {
                let kept: Vec<&str> = data
                    .split("\r\n")
                    .filter(|l| !l.starts_with("DTSTAMP:"))
                    .collect();
                (uid, kept.join("\r\n"))
            })
            .collect()
    };
    assert_eq!(
        strip(exchange_events(&new, "new")),
        strip(exchange_events(&old, "old"))
    );
    assert_clean(&old);
    assert_clean(&new);
}

#[test]
fn series_in_windows_zones_reach_xandikos_with_their_vtimezones() {
    let old = EwsSim::spawn().unwrap();
    seed_zoned(&old);
    let dst = DavServer::xandikos();
    let dir = tempfile::tempdir().unwrap();
    plan(
        dir.path(),
        &(exchange_platform("old", &old) + &dav_platform("new", &dst)),
        "[calendars]",
    );
    let first = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(first.code, 0, "{}", first.transcript());
    let stored = dav_events(&dst);
    for (uid, expected) in [
        ("berlin-weekly", "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\n"),
        (
            "berlin-weekly",
            "RECURRENCE-ID;TZID=Europe/Berlin:20260330T093000\r\n",
        ),
        ("ny-weekly", "BEGIN:VTIMEZONE\r\nTZID:America/New_York\r\n"),
        (
            "ny-weekly",
            "DTSTART;TZID=America/New_York:20261102T120000\r\n",
        ),
    ] {
        assert!(
            stored[uid].contains(expected),
            "{expected} in {}",
            stored[uid]
        );
    }
    assert_verified(dir.path(), &[]);
    assert_clean(&old);
}

/// An item whose StartTimeZone is an Id alone (as Exchange may answer it) gets the zone's
/// published definition from GetServerTimeZones, and its times are read in it.
#[test]
fn a_zone_named_by_its_id_alone_is_asked_of_the_server() {
    let sim = EwsSim::spawn().unwrap();
    sim.add_mailbox(ALICE, "old");
    sim.insert_item(
        ALICE,
        "calendar",
        "<t:CalendarItem><t:Subject>Call</t:Subject><t:UID>call-1</t:UID>\
         <t:Start>2026-11-02T15:00:00Z</t:Start><t:End>2026-11-02T15:30:00Z</t:End>\
         <t:IsAllDayEvent>false</t:IsAllDayEvent>\
         <t:StartTimeZone Id=\"Eastern Standard Time\"/></t:CalendarItem>",
    )
    .unwrap();
    let read = exchange_events(&sim, "old");
    let call = &read["call-1"];
    for expected in [
        "BEGIN:VTIMEZONE\r\nTZID:America/New_York\r\n",
        "DTSTART;TZID=America/New_York:20261102T100000\r\n",
        "DTEND;TZID=America/New_York:20261102T103000\r\n",
    ] {
        assert!(call.contains(expected), "{expected} in {call}");
    }
    assert_eq!(sim.request_count("GetServerTimeZones"), 1);
    assert_clean(&sim);
}
