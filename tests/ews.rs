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
    // The weekly series in Europe/Paris comes back from the simulator without its exceptions
    // (a series in a named zone is the simulator's gap): that difference is real, and shown.
    assert_verified(
        dir.path(),
        &["4f1e2d3c-weekly-standup-7a8b9c0d@example.com"],
    );
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
