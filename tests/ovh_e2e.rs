//! The OVHcloud procedure end to end: `examples/ovh-exchange-to-email-pro.yaml`, pointed at
//! the API simulator, which drives two real Dovecot servers (the Exchange and Email Pro IMAP
//! endpoints). A rename or an account configured through the API really changes who can log
//! in, so the copy only works if the steps ran in the right order with the right logins.

use std::path::Path;
use std::time::{Duration, Instant};

use mailshift::plan::secret::Secret;
use mailshift::providers::ovh::{Credentials, OvhClient};
use ovh_sim::world::{Account, Service, World};
use ovh_sim::{Fault, SimHandle};
use serde_json::json;

use crate::common::{Output, mailshift_env, repo_root};
use crate::support::dovecot::{Dovecot, DovecotConfig};
use crate::support::imap::ImapClient;

const AK: &str = "e2eApplicationKey";
const AS: &str = "e2eApplicationSecret0123456789ab";
const CK: &str = "e2eConsumerKey0123456789abcdefgh";
const JOHN_EX: &str = "john-Exchange-pw1";
const ASSISTANT_EX: &str = "assistant-Exchange-pw1";
const JOHN_PRO: &str = "john-Pro-pw2";
const ASSISTANT_PRO: &str = "assistant-Pro-pw2";

const ORG: &str = "hosted-ab12345-1";
const PRO: &str = "emailpro-ab12345-1";

struct Setup {
    dir: tempfile::TempDir,
    src: Dovecot,
    dst: Dovecot,
    sim: SimHandle,
}

fn mailshift(dir: &Path, args: &[&str]) -> Output {
    mailshift_env(dir, args, &ENV)
}

/// The secrets the test plans refer to, as the environment gives them.
const ENV: [(&str, &str); 6] = [
    ("OVH_APPLICATION_KEY", AK),
    ("OVH_APPLICATION_SECRET", AS),
    ("OVH_CONSUMER_KEY", CK),
    ("JOHN_EXCHANGE_PASSWORD", JOHN_EX),
    ("ASSISTANT_EXCHANGE_PASSWORD", ASSISTANT_EX),
    ("JOHN_PRO_PASSWORD", JOHN_PRO),
];

/// The test API keys a world knows; `granted`: with the consumer key already validated.
fn keys_yaml(granted: bool) -> String {
    let mut y = format!("applications: [{{key: {AK}, secret: {AS}}}]\n");
    if granted {
        y.push_str(&format!(
            "consumer_keys: [{{key: {CK}, application: {AK}}}]\n"
        ));
    }
    y
}

/// A simulator with the test keys, quick tasks and these services (YAML).
fn small_world(services: &str, granted: bool) -> SimHandle {
    let text = format!("{}task_delay_ms: 20\n{services}", keys_yaml(granted));
    SimHandle::spawn(World::from_yaml(&text).expect("test world")).expect("simulator starts")
}

/// A plan's `providers` section for `sim`, the consumer key read from `consumer_key`.
fn providers_yaml(sim: &SimHandle, consumer_key: &str) -> String {
    format!(
        "providers:\n  ovh: {{type: ovh, endpoint: \"{}\", application_key: {{env: OVH_APPLICATION_KEY}}, \
         application_secret: {{env: OVH_APPLICATION_SECRET}}, consumer_key: {consumer_key}, poll_interval: 20ms}}\n",
        sim.base_url()
    )
}

/// A signed client with the test application and `consumer_key`, as another API user would
/// have, and a runtime to drive it from a plain test.
fn signed_client(sim: &SimHandle, consumer_key: &str) -> (OvhClient, tokio::runtime::Runtime) {
    let client = OvhClient::new(
        &sim.base_url(),
        Credentials {
            application_key: Secret::new(AK),
            application_secret: Secret::new(AS),
            consumer_key: Secret::new(consumer_key),
        },
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    (client, rt)
}

fn world(src: &Dovecot, dst: &Dovecot, extra: &str) -> World {
    let text = format!(
        r#"
{keys}task_delay_ms: 40
fresh_password: {{refusals: 1}}
exchange:
  - organization: {ORG}
    service: {ORG}
    hostname: 127.0.0.1
    offer: hosted
    domains: [{{name: mydomain.ovh, type: authoritative}}]
    accounts:
      - {{email: john@mydomain.ovh, password: {JOHN_EX}, aliases: [j.smith@mydomain.ovh, contact@mydomain.ovh], current_usage: 2000000}}
      - {{email: assistant@mydomain.ovh, password: {ASSISTANT_EX}}}
    dovecot: {{users_file: {}/users, mail_root: {}/mail}}
pro:
  - service: {PRO}
    hostname: 127.0.0.1
    placeholders: 3
    dovecot: {{users_file: {}/users, mail_root: {}/mail}}
{extra}"#,
        src.dir().display(),
        src.dir().display(),
        dst.dir().display(),
        dst.dir().display(),
        keys = keys_yaml(true),
    );
    World::from_yaml(&text).expect("test world")
}

/// The example plan, pointed at the simulator and the local servers. Each replacement must
/// hit, so the test fails loudly if the example changes shape.
fn plan_text(setup_dir: &Path, sim: &SimHandle, src: &Dovecot, dst: &Dovecot) -> String {
    let mut text =
        std::fs::read_to_string(repo_root().join("examples/ovh-exchange-to-email-pro.yaml"))
            .unwrap();
    let mut rep = |old: &str, new: &str| {
        assert!(text.contains(old), "the example no longer has {old:?}");
        text = text.replace(old, new);
    };
    // The domain's DNS cutover waits for its date (tests/cutover_ovh.rs runs it): left out
    // here, where the procedure up to the cutover is what is tested.
    rep(
        "    dns: {provider: ovh}\n    cutover: {at: 2030-06-01T22:00:00+02:00, lower_ttl_ahead: 1d}\n",
        "",
    );
    rep(
        "endpoint: ovh-eu",
        &format!(
            "endpoint: {}\n    poll_interval: 30ms\n    task_timeout: 20s",
            sim.base_url()
        ),
    );
    rep(
        "{host: ex5.mail.ovh.net, port: 993, security: tls}",
        &format!("{{host: 127.0.0.1, port: {}, security: none}}", src.port()),
    );
    rep(
        "{host: pro1.mail.ovh.net, port: 993, security: tls}",
        &format!("{{host: 127.0.0.1, port: {}, security: none}}", dst.port()),
    );
    rep(
        "{command: [pass, show, mail/john]}",
        "{env: JOHN_PRO_PASSWORD}",
    );
    std::fs::create_dir_all(setup_dir.join("secrets")).unwrap();
    std::fs::write(setup_dir.join("secrets/assistant-pro"), ASSISTANT_PRO).unwrap();
    text
}

fn message(n: usize, folder: &str) -> Vec<u8> {
    format!(
        "From: sender{n}@example.org\r\nTo: john@mydomain.ovh\r\nSubject: {folder} message {n}\r\nMessage-ID: <{folder}-{n}@example.org>\r\nDate: Mon, 2 Sep 2024 10:00:00 +0000\r\n\r\nBody {n} of {folder}.\r\n"
    )
    .into_bytes()
}

/// Logs in, retrying while Dovecot has not re-read its passwd-file (at most once a second).
fn login_eventually(d: &Dovecot, user: &str, pass: &str) -> ImapClient {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let attempt =
            ImapClient::connect(d.port()).and_then(|mut c| c.login(user, pass).map(|()| c));
        match attempt {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("{user} cannot log in: {e}\n{}", d.log()),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn setup(extra_world: &str) -> Setup {
    let src = Dovecot::start(DovecotConfig::default());
    let dst = Dovecot::start(DovecotConfig {
        separator: '.',
        ..DovecotConfig::default()
    });
    let sim = SimHandle::spawn(world(&src, &dst, extra_world)).expect("simulator starts");
    let mut john = login_eventually(&src, "john@mydomain.ovh", JOHN_EX);
    for folder in ["Sent Items", "Junk E-mail"] {
        john.create(folder).unwrap();
    }
    for (folder, count) in [("INBOX", 5), ("Sent Items", 2), ("Junk E-mail", 1)] {
        for n in 0..count {
            john.append(folder, &["\\Seen"], None, &message(n, folder))
                .unwrap();
        }
    }
    john.logout().unwrap();
    let mut assistant = login_eventually(&src, "assistant@mydomain.ovh", ASSISTANT_EX);
    for n in 0..2 {
        assistant
            .append("INBOX", &[], None, &message(n, "assistant"))
            .unwrap();
    }
    assistant.logout().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = plan_text(dir.path(), &sim, &src, &dst);
    std::fs::write(dir.path().join("plan.yaml"), text).unwrap();
    Setup { dir, src, dst, sim }
}

fn service<'a>(world: &'a World, kind: &str) -> &'a Service {
    match kind {
        "exchange" => &world.exchange[0],
        _ => &world.pro[0],
    }
}

fn account<'a>(world: &'a World, kind: &str, email: &str) -> Option<&'a Account> {
    service(world, kind)
        .accounts
        .iter()
        .find(|a| a.email == email && a.configured)
}

fn subjects(d: &Dovecot, user: &str, pass: &str, folder: &str) -> Vec<String> {
    let mut c = login_eventually(d, user, pass);
    let mut out: Vec<String> = c
        .uid_fetch_all(folder)
        .unwrap()
        .iter()
        .map(|m| {
            let text = String::from_utf8_lossy(&m.bytes).into_owned();
            text.lines()
                .find_map(|l| l.strip_prefix("Subject: ").map(str::to_string))
                .unwrap_or_default()
        })
        .collect();
    c.logout().unwrap();
    out.sort();
    out
}

/// Everything the procedure must leave behind, on the API side and on the IMAP side.
fn assert_procedure_done(s: &Setup) {
    let w = s.sim.world();
    // Domain: non-authoritative on both sides, each relaying to the other.
    let ex_domain = &service(&w, "exchange").domains[0];
    assert_eq!(
        (ex_domain.kind.as_str(), ex_domain.mx_relay.as_deref()),
        ("nonAuthoritative", Some("pro1.mail.ovh.net"))
    );
    let pro_domain = service(&w, "pro")
        .domains
        .iter()
        .find(|d| d.name == "mydomain.ovh")
        .expect("domain attached to Email Pro");
    assert_eq!(
        (pro_domain.kind.as_str(), pro_domain.mx_relay.as_deref()),
        ("nonAuthoritative", Some("ex5.mail.ovh.net"))
    );
    // Renamed on the source, aliases moved off it.
    let old = account(&w, "exchange", "john.old@mydomain.ovh").expect("john renamed");
    assert!(
        old.aliases.is_empty(),
        "aliases left on the source: {:?}",
        old.aliases
    );
    assert!(account(&w, "exchange", "john@mydomain.ovh").is_none());
    assert!(account(&w, "exchange", "assistant.old@mydomain.ovh").is_some());
    // Created on Email Pro, with the features.
    let john = account(&w, "pro", "john@mydomain.ovh").expect("john created on Email Pro");
    let mut aliases = john.aliases.clone();
    aliases.sort();
    assert_eq!(aliases, ["contact@mydomain.ovh", "j.smith@mydomain.ovh"]);
    assert_eq!(john.send_as, ["assistant@mydomain.ovh"]);
    assert_eq!(john.full_access, ["assistant@mydomain.ovh"]);
    assert!(john.send_on_behalf_to.is_empty());
    assert!(account(&w, "pro", "assistant@mydomain.ovh").is_some());
    let contacts = &service(&w, "pro").external_contacts;
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(
        (
            contacts[0].email.as_str(),
            contacts[0].display_name.as_deref()
        ),
        ("partner@example.org", Some("Our partner"))
    );
    let footer = pro_domain.disclaimer.as_ref().expect("footer set");
    assert_eq!(footer.content, "MyDomain SAS - 1 rue de l'Exemple, Paris");
    assert!(footer.outside_only);
    // Mail: on the destination under the address, the source still readable under the
    // provisional name with the old password; Junk excluded, Sent Items mapped to Sent.
    assert_eq!(
        subjects(&s.dst, "john@mydomain.ovh", JOHN_PRO, "INBOX").len(),
        5
    );
    assert_eq!(
        subjects(&s.dst, "john@mydomain.ovh", JOHN_PRO, "Sent"),
        ["Sent Items message 0", "Sent Items message 1"]
    );
    assert_eq!(
        subjects(&s.dst, "assistant@mydomain.ovh", ASSISTANT_PRO, "INBOX").len(),
        2
    );
    assert_eq!(
        subjects(&s.src, "john.old@mydomain.ovh", JOHN_EX, "INBOX").len(),
        5
    );
    let violations = s.sim.violations();
    assert!(
        violations.is_empty(),
        "calls outside the published schema: {violations:#?}"
    );
}

#[test]
fn exchange_to_email_pro_whole_procedure_then_nothing_to_write() {
    let s = setup("");
    let dir = s.dir.path();

    let plan = mailshift(dir, &["plan", "plan.yaml"]);
    assert_eq!(plan.code, 0, "{}", plan.transcript());
    assert!(
        plan.stdout.contains("+ account/john@mydomain.ovh/rename"),
        "{}",
        plan.transcript()
    );

    let first = mailshift(dir, &["apply", "plan.yaml"]);
    assert_eq!(first.code, 0, "{}", first.transcript());
    assert!(first.stdout.contains("API write"), "{}", first.transcript());
    // Email Pro has no API for groups: a manual step with instructions.
    assert!(
        first.stdout.contains("manual  group/team@mydomain.ovh"),
        "{}",
        first.transcript()
    );
    assert_procedure_done(&s);

    let verify = mailshift(dir, &["verify", "plan.yaml"]);
    assert_eq!(verify.code, 0, "{}", verify.transcript());
    let status = mailshift(dir, &["status", "plan.yaml"]);
    assert_eq!(status.code, 0, "{}", status.transcript());
    for line in [
        "john@mydomain.ovh  6/6 steps done",
        "    alias/contact@mydomain.ovh     done",
        "platforms  5/6 steps done",
        "    group/team@mydomain.ovh (manual) pending",
        "    dns/pro/mydomain.ovh           done, ",
    ] {
        assert!(status.stdout.contains(line), "{line:?}:\n{}", status.stdout);
    }
    assert!(
        status.stdout.contains(": mydomain.ovh: MX "),
        "the DNS diagnosis is shown: {}",
        status.stdout
    );

    // Nothing changed: the second run reads, copies nothing and writes nothing.
    let writes = s.sim.writes().len();
    let second = mailshift(dir, &["apply", "plan.yaml"]);
    assert_eq!(second.code, 0, "{}", second.transcript());
    assert_eq!(s.sim.writes().len(), writes, "{}", second.transcript());
    assert!(
        !second.stdout.contains("API write"),
        "{}",
        second.transcript()
    );
    assert!(
        second.stdout.contains("0 messages"),
        "{}",
        second.transcript()
    );

    // Drift: an alias deleted in the control panel shows up with --refresh, and is put back.
    delete_alias_behind_our_back(&s, "john@mydomain.ovh", "contact@mydomain.ovh");
    let offline = mailshift(dir, &["plan", "--detailed-exitcode", "plan.yaml"]);
    assert!(
        !offline.stdout.contains("drift"),
        "{}",
        offline.transcript()
    );
    let refreshed = mailshift(dir, &["plan", "--refresh", "plan.yaml"]);
    assert_eq!(refreshed.code, 0, "{}", refreshed.transcript());
    assert!(
        refreshed
            .stdout
            .contains("drift: alias contact@mydomain.ovh is gone from john@mydomain.ovh"),
        "{}",
        refreshed.transcript()
    );
    let repair = mailshift(dir, &["apply", "--refresh", "plan.yaml"]);
    assert_eq!(repair.code, 0, "{}", repair.transcript());
    assert_procedure_done(&s);

    // A feature removed from the plan is removed from the platform.
    let path = dir.join("plan.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let without = text.replace(
        "external_contacts:\n  - address: partner@example.org\n    platform: pro\n    display_name: Our partner\n",
        "",
    );
    assert_ne!(text, without, "the example's external contact moved");
    std::fs::write(&path, without).unwrap();
    // A failed removal stays a removal: the next plan still lists it, with the reason.
    s.sim
        .inject(Fault::fail_task("DELETE", "/email/pro/*/externalContact/*").times(1))
        .unwrap();
    let failed = mailshift(dir, &["apply", "plan.yaml"]);
    assert_eq!(failed.code, 1, "{}", failed.transcript());
    let pending = mailshift(dir, &["plan", "plan.yaml"]);
    assert!(
        pending.stdout.contains("- contact/pro/partner@example.org"),
        "{}",
        pending.transcript()
    );
    let removed = mailshift(dir, &["apply", "plan.yaml"]);
    assert_eq!(removed.code, 0, "{}", removed.transcript());
    assert!(
        removed
            .stdout
            .contains("removed contact partner@example.org"),
        "{}",
        removed.transcript()
    );
    assert!(s.sim.world().pro[0].external_contacts.is_empty());
}

/// Deletes an alias with a signed call, as someone in the control panel would.
/// OVH Mail Migrator's "Hosted by OVHcloud (Autodetect)": the platforms name no IMAP host;
/// mailshift reads each service's `hostname` from the API (the simulator says 127.0.0.1), and
/// the whole procedure runs as with the hosts written out.
#[test]
fn imap_hosts_left_out_are_read_from_the_api() {
    let s = setup("");
    let dir = s.dir.path();
    let text = std::fs::read_to_string(dir.join("plan.yaml")).unwrap();
    let mut without = text.clone();
    for port in [s.src.port(), s.dst.port()] {
        let old = format!("{{host: 127.0.0.1, port: {port}, security: none}}");
        assert!(without.contains(&old), "{text}");
        // Plain IMAP to the test servers: validation cannot know the host will be loopback.
        without = without.replace(
            &old,
            &format!("{{port: {port}, security: none, allow_plaintext: true}}"),
        );
    }
    std::fs::write(dir.join("plan.yaml"), &without).unwrap();

    let plan = mailshift(dir, &["plan", "plan.yaml"]);
    assert_eq!(plan.code, 0, "{}", plan.transcript());
    assert!(
        plan.stdout.contains(
            "platform `pro`: IMAP server read from the OVHcloud API when mailshift connects"
        ),
        "{}",
        plan.transcript()
    );
    let refreshed = mailshift(dir, &["plan", "plan.yaml", "--refresh"]);
    assert_eq!(refreshed.code, 0, "{}", refreshed.transcript());
    for (platform, port) in [("exchange", s.src.port()), ("pro", s.dst.port())] {
        let line = format!(
            "platform `{platform}`: IMAP server 127.0.0.1:{port} (read from the OVHcloud API)"
        );
        assert!(
            refreshed.stdout.contains(&line),
            "{}",
            refreshed.transcript()
        );
    }

    let first = mailshift(dir, &["apply", "plan.yaml"]);
    assert_eq!(first.code, 0, "{}", first.transcript());
    assert!(
        first
            .stderr
            .contains("platform `exchange`: IMAP server 127.0.0.1"),
        "{}",
        first.transcript()
    );
    assert_procedure_done(&s);
    let verify = mailshift(dir, &["verify", "plan.yaml"]);
    assert_eq!(verify.code, 0, "{}", verify.transcript());

    // Writing the hosts out later is the same copy (it is the service's mailbox): nothing to
    // do, nothing copied twice.
    std::fs::write(
        dir.join("plan.yaml"),
        text.replace("security: none}", "security: none, allow_plaintext: true}"),
    )
    .unwrap();
    let again = mailshift(dir, &["apply", "plan.yaml"]);
    assert_eq!(again.code, 0, "{}", again.transcript());
    assert!(
        again.stdout.contains("0 messages (0 B) copied"),
        "{}",
        again.transcript()
    );
    assert_procedure_done(&s);
}

fn delete_alias_behind_our_back(s: &Setup, account: &str, alias: &str) {
    use mailshift::providers::ovh::{Task, TaskOutcome, wait_task};
    let (client, rt) = signed_client(&s.sim, CK);
    rt.block_on(async {
        let task: Task = client
            .delete(
                &format!("/email/pro/{PRO}/account/{account}/alias/{alias}"),
                None,
            )
            .await
            .unwrap();
        let outcome = wait_task(
            &client,
            &format!("/email/pro/{PRO}/task/{}", task.id),
            tokio::time::Instant::now() + Duration::from_secs(10),
            Duration::from_millis(20),
            |_| {},
        )
        .await
        .unwrap();
        assert!(matches!(outcome, TaskOutcome::Done(_)), "{outcome:?}");
    });
}

#[test]
fn every_step_failing_once_then_apply_again_converges() {
    let s = setup("");
    let dir = s.dir.path();
    let fail = |method: &str, path: &str| {
        s.sim
            .inject(Fault::fail_task(method, path).times(1))
            .unwrap()
    };
    fail("PUT", "/email/exchange/*/domain/mydomain.ovh");
    fail("POST", "/email/pro/*/domain");
    fail("PUT", "/email/exchange/*/account/john@mydomain.ovh");
    fail("PUT", "/email/pro/*/account/*@configureme.me");
    fail("POST", "/email/pro/*/account/*/changePassword");
    fail("DELETE", "/email/exchange/*/account/*/alias/*");
    fail("POST", "/email/pro/*/account/*/alias");
    fail("POST", "/email/pro/*/account/*/sendAs");
    fail("POST", "/email/pro/*/account/*/fullAccess");
    fail("POST", "/email/pro/*/externalContact");
    fail("POST", "/email/pro/*/domain/*/disclaimer");
    // Answers the client retries within the same run: busy, and a server error on a read.
    s.sim
        .inject(
            Fault::reply(
                "POST",
                "/email/pro/*/account/*/alias",
                409,
                json!({"message": "This account is already being processed, please try later"}),
            )
            .times(1),
        )
        .unwrap();
    s.sim
        .inject(
            Fault::reply(
                "GET",
                "/email/pro/*/account/assistant@mydomain.ovh",
                503,
                json!({"message": "Service unavailable"}),
            )
            .times(1),
        )
        .unwrap();

    let mut runs = Vec::new();
    loop {
        let run = mailshift(dir, &["apply", "plan.yaml"]);
        let done = run.code == 0;
        if !done {
            assert_eq!(run.code, 1, "{}", run.transcript());
            assert!(run.stdout.contains("FAILED"), "{}", run.transcript());
            // Every failure names the call or the task that failed.
            assert!(
                run.stdout.contains("OVHcloud task") || run.stdout.contains("did not apply"),
                "{}",
                run.transcript()
            );
        }
        runs.push(run);
        if done {
            break;
        }
        assert!(
            runs.len() < 12,
            "no convergence after {} runs; last:\n{}",
            runs.len(),
            runs.last().unwrap().transcript()
        );
    }
    assert!(
        runs.len() >= 3,
        "the faults did not bite: {}",
        runs[0].transcript()
    );
    assert_procedure_done(&s);

    // Converged means converged: no write on the next run, and verify agrees, with every
    // message exactly once despite the interrupted runs.
    let writes = s.sim.writes().len();
    let again = mailshift(dir, &["apply", "plan.yaml"]);
    assert_eq!(again.code, 0, "{}", again.transcript());
    assert_eq!(s.sim.writes().len(), writes, "{}", again.transcript());
    let verify = mailshift(dir, &["verify", "plan.yaml"]);
    assert_eq!(verify.code, 0, "{}", verify.transcript());
}

/// Email Pro → MX Plan: calendars are refused by validation, and a mailbox above MX Plan's
/// 5 GB is refused before anything changes on either platform.
#[test]
fn onto_mx_plan_calendars_and_large_mailboxes_are_refused() {
    let sim = small_world(
        &format!(
            r#"
pro:
  - service: {PRO}
    domains: [{{name: mydomain.ovh, type: nonAuthoritative, mx_relay: ssl0.ovh.net}}]
    accounts:
      - {{email: sales@mydomain.ovh, password: pw, current_usage: 6200000000}}
      - {{email: small@mydomain.ovh, password: pw, current_usage: 1000}}
mxplan:
  - service: mxplan-ab12345-1
    domains: [{{name: mydomain.ovh, type: nonAuthoritative, mx_relay: pro1.mail.ovh.net}}]
    placeholders: 2
"#
        ),
        true,
    );
    let dir = tempfile::tempdir().unwrap();
    let plan = |content: &str| {
        format!(
            r#"version: 1
{providers}platforms:
  pro: {{type: ovh-email-pro, provider: ovh, service: {PRO}, imap: {{host: 127.0.0.1, port: 9, security: none}}}}
  mxplan: {{type: ovh-mx-plan, provider: ovh, service: mxplan-ab12345-1, imap: {{host: 127.0.0.1, port: 9, security: none}}}}
accounts:
  - address: sales@mydomain.ovh
    from: pro
    to: mxplan
    rename_to: sales.old@mydomain.ovh
    source: {{password: {{env: JOHN_EXCHANGE_PASSWORD}}}}
    destination: {{password: {{env: JOHN_PRO_PASSWORD}}}}
    {content}
"#,
            providers = providers_yaml(&sim, "{env: OVH_CONSUMER_KEY}")
        )
    };
    std::fs::write(
        dir.path().join("calendars.yaml"),
        plan("content: [mail, calendars]"),
    )
    .unwrap();
    let refused = mailshift(dir.path(), &["plan", "calendars.yaml"]);
    assert_eq!(refused.code, 1, "{}", refused.transcript());
    assert!(
        refused.stderr.contains("MX Plan has no calendars"),
        "{}",
        refused.transcript()
    );

    std::fs::write(dir.path().join("plan.yaml"), plan("")).unwrap();
    let before = sim.world();
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(
        run.stdout.contains(
            "the mailbox sales@mydomain.ovh holds 6.2 GB on `pro`, above the MX Plan limit of 5.0 GB per account"
        ),
        "{}",
        run.transcript()
    );
    assert!(sim.writes().is_empty(), "{:#?}", sim.writes());
    assert_eq!(sim.world(), before);
}

/// `mailshift ovh credentials` asks for a consumer key limited to the plan's services; once
/// granted at the validation URL, it can run the plan's steps and nothing else.
#[test]
fn consumer_key_is_limited_to_the_plans_services() {
    let sim = small_world(
        &format!(
            r#"
pro:
  - service: {PRO}
    domains: [{{name: pro.example, type: authoritative}}]
  - service: someone-elses-pro
    domains: [{{name: other.example, type: authoritative}}]
"#
        ),
        false,
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("plan.yaml"),
        format!(
            r#"version: 1
{providers}platforms:
  pro: {{type: ovh-email-pro, provider: ovh, service: {PRO}, imap: {{host: 127.0.0.1, port: 9, security: none}}}}
domains:
  - {{name: moved.example, platform: pro, mode: non-authoritative, mx_relay: mx.old.example}}
"#,
            providers = providers_yaml(&sim, "{file: ck.txt}")
        ),
    )
    .unwrap();

    let asked = mailshift(
        dir.path(),
        &["ovh", "credentials", "plan.yaml", "--output", "ck.txt"],
    );
    assert_eq!(asked.code, 0, "{}", asked.transcript());
    for rule in [
        format!("GET    /email/pro/{PRO}\n"),
        format!("DELETE /email/pro/{PRO}/*\n"),
        format!("POST   /email/pro/{PRO}/*\n"),
    ] {
        assert!(
            asked.stdout.contains(&rule),
            "{rule:?} missing:\n{}",
            asked.transcript()
        );
    }
    let key_file = dir.path().join("ck.txt");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert!(
        !asked.stdout.contains(key.trim()),
        "the key was printed too"
    );
    let url = asked
        .stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("http://"))
        .expect("a validation URL")
        .to_string();

    // Not granted yet: refused, with the API's own reason.
    let early = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(early.code, 1, "{}", early.transcript());
    assert!(
        early.stdout.contains("NOT_CREDENTIAL"),
        "{}",
        early.transcript()
    );

    let (status, _) = crate::ovh_sim::http_get(&url);
    assert!(status < 400, "validation answered {status}");
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        sim.world().pro[0]
            .domains
            .iter()
            .any(|d| d.name == "moved.example"),
        "{}",
        run.transcript()
    );

    // The same key cannot read a service the plan does not name.
    let (client, rt) = signed_client(&sim, key.trim());
    let refused = rt
        .block_on(client.get::<serde_json::Value>("/email/pro/someone-elses-pro", None))
        .unwrap_err();
    let mailshift::providers::ovh::OvhError::Api(e) = refused else {
        panic!("{refused}")
    };
    assert_eq!(e.error_code.as_deref(), Some("NOT_GRANTED_CALL"), "{e}");
}

/// A source without an API (plain IMAP) is measured over IMAP before a move onto a platform
/// with a per-account limit: every selectable folder's messages, byte for byte.
#[test]
fn imap_sources_are_measured_message_by_message() {
    use mailshift::transfer::imap::session::{Auth, Endpoint, Secret, Security, Target};
    let d = Dovecot::start(DovecotConfig {
        users: &[("gmail-user", "pw-1")],
        ..DovecotConfig::default()
    });
    let mut c = login_eventually(&d, "gmail-user", "pw-1");
    c.create("Archive").unwrap();
    let mut expected = 0u64;
    for (n, folder) in ["INBOX", "INBOX", "Archive"].iter().enumerate() {
        let m = message(n, folder);
        expected += m.len() as u64;
        c.append(folder, &[], None, &m).unwrap();
    }
    c.logout().unwrap();
    let target = Target::new(
        Endpoint {
            host: "127.0.0.1".into(),
            port: d.port(),
            security: Security::None,
            ca_file: None,
            insecure_skip_verify: false,
            timeout: Duration::from_secs(120),
        },
        Auth::Password {
            login: "gmail-user".into(),
            password: Secret::new("pw-1"),
        },
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bytes = rt
        .block_on(mailshift::transfer::imap::mailbox_bytes(&target))
        .unwrap();
    assert_eq!(bytes, expected);
}

/// The cleanup: once the plan says the account is cut over and asks for it, the provisional
/// source account is reset, but only if a fresh comparison finds every source message on the
/// destination. A message that reached the old account after the last copy blocks it.
#[test]
fn the_provisional_account_is_reset_only_when_nothing_would_be_lost() {
    let s = setup("");
    let dir = s.dir.path();
    let first = mailshift(dir, &["apply", "plan.yaml"]);
    assert_eq!(first.code, 0, "{}", first.transcript());

    // Cut over: sync stops. Then a late message lands on the old (provisional) account.
    let path = dir.join("plan.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let cut = text.replace(
        "    rename_to: john.old@mydomain.ovh\n",
        "    rename_to: john.old@mydomain.ovh\n    reset_provisional: true\n    options: {cut_over: true}\n",
    );
    assert_ne!(text, cut);
    std::fs::write(&path, cut).unwrap();
    let mut old = login_eventually(&s.src, "john.old@mydomain.ovh", JOHN_EX);
    old.append("INBOX", &[], None, &message(99, "late"))
        .unwrap();
    old.logout().unwrap();

    let refused = mailshift(dir, &["apply", "plan.yaml"]);
    assert_eq!(refused.code, 1, "{}", refused.transcript());
    assert!(
        refused.stdout.contains(
            "not resetting john.old@mydomain.ovh: 1 message(s) of the source are not on the destination"
        ),
        "{}",
        refused.transcript()
    );
    assert!(account(&s.sim.world(), "exchange", "john.old@mydomain.ovh").is_some());

    // The late message is moved by hand (here: appended to the destination); now nothing
    // would be lost, and the old account goes back to being a free slot.
    let mut new = login_eventually(&s.dst, "john@mydomain.ovh", JOHN_PRO);
    new.append("INBOX", &[], None, &message(99, "late"))
        .unwrap();
    new.logout().unwrap();
    let reset = mailshift(dir, &["apply", "plan.yaml"]);
    assert_eq!(reset.code, 0, "{}", reset.transcript());
    assert!(
        reset
            .stdout
            .contains("done    account/john@mydomain.ovh/cleanup: reset john.old@mydomain.ovh"),
        "{}",
        reset.transcript()
    );
    let w = s.sim.world();
    assert!(account(&w, "exchange", "john.old@mydomain.ovh").is_none());
    assert!(
        w.exchange[0].accounts.iter().any(|a| !a.configured),
        "hosted Exchange turns a deleted account back into a placeholder"
    );
    // The IMAP login of the old account is gone with it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while ImapClient::connect(s.src.port())
        .and_then(|mut c| c.login("john.old@mydomain.ovh", JOHN_EX))
        .is_ok()
    {
        assert!(Instant::now() < deadline, "john.old can still log in");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Nothing left to do, and the reset account is not drift: the plan asked for it.
    let again = mailshift(dir, &["apply", "--refresh", "plan.yaml"]);
    assert_eq!(again.code, 0, "{}", again.transcript());
    assert!(
        !again.stdout.contains("API write"),
        "{}",
        again.transcript()
    );
}

/// Watch mode runs the same procedure: the platform unit (domains, contacts, footers) and the
/// account units (rename, create, copy, aliases, delegation) all reach done through the
/// simulated API, and the API calls show up in the metrics, one series per kind of call.
#[test]
fn watch_mode_runs_the_ovhcloud_procedure() {
    let s = setup("");
    let dir = s.dir.path();
    let log_path = dir.join("watch.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mailshift"))
        .args(["watch", "plan.yaml", "--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .envs(ENV)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let text = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(60);
    let addr = loop {
        if let Some(i) = text().find("listening on http://") {
            let rest = &text()[i + "listening on http://".len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
                .unwrap_or(rest.len());
            break rest[..end].to_string();
        }
        assert!(
            Instant::now() < deadline,
            "watch did not start:\n{}",
            text()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let all_done = loop {
        let (code, body) = crate::ovh_sim::http_get(&format!("http://{addr}/api/status"));
        assert_eq!(code, 200, "{body}");
        let status: serde_json::Value = serde_json::from_str(&body).unwrap();
        let resources = status["resources"].as_array().cloned().unwrap_or_default();
        let pending: Vec<String> = resources
            .iter()
            .filter(|r| r["status"] != "done" && r["id"] != "group/team@mydomain.ovh")
            .map(|r| format!("{} {}", r["id"], r["status"]))
            .collect();
        if !resources.is_empty() && pending.is_empty() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "not done within 60 s: {pending:?}\n{}",
            text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(all_done["summary"]["failing"], 0, "{all_done:#}");
    let (_, metrics) = crate::ovh_sim::http_get(&format!("http://{addr}/metrics"));
    assert!(
        metrics.contains(
            r#"mailshift_api_call_duration_seconds_count{shard="0",api="ovh",operation="PUT /email/exchange/{}/service/{}/account/{}"}"#
        ),
        "{metrics}"
    );
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit}\n{}", text());
    assert_procedure_done(&s);
    for secret in [JOHN_EX, JOHN_PRO, ASSISTANT_EX, ASSISTANT_PRO, AS, CK] {
        assert!(
            !text().contains(secret),
            "a secret reached the log:\n{}",
            text()
        );
    }
}

/// Two refusals a person must act on, each naming what to do: no free pre-ordered account
/// left on the destination, and a domain the plan makes authoritative while its MX points
/// elsewhere.
#[test]
fn no_free_account_and_dns_not_switched_are_clear_errors() {
    let sim = small_world(
        &format!(
            r#"
pro:
  - service: {PRO}
    domains: [{{name: pro.example, type: authoritative, mx_valid: false}}]
    placeholders: 0
"#
        ),
        true,
    );
    // The source is measured over IMAP before anything is created for it.
    let src = Dovecot::start(DovecotConfig {
        users: &[("new", JOHN_EX)],
        ..DovecotConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("plan.yaml"),
        format!(
            r#"version: 1
{providers}platforms:
  old: {{type: imap, imap: {{host: 127.0.0.1, port: {}, security: none}}}}
  pro: {{type: ovh-email-pro, provider: ovh, service: {PRO}, imap: {{host: 127.0.0.1, port: 9, security: none}}}}
domains:
  - {{name: pro.example, platform: pro, mode: authoritative}}
accounts:
  - address: new@pro.example
    from: old
    to: pro
    source: {{login: new, password: {{env: JOHN_EXCHANGE_PASSWORD}}}}
    destination: {{password: {{env: JOHN_PRO_PASSWORD}}}}
"#,
            src.port(),
            providers = providers_yaml(&sim, "{env: OVH_CONSUMER_KEY}"),
        ),
    )
    .unwrap();
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(
        run.stdout.contains("no free account left on this Email Pro service: order more accounts in the OVHcloud Control Panel"),
        "{}",
        run.transcript()
    );
    assert!(
        run.stdout.contains(
            "pro.example is authoritative on `pro` but its DNS does not point there: MX not valid"
        ) && run
            .stdout
            .contains("Fix the MX records at the domain's DNS host"),
        "{}",
        run.transcript()
    );
    assert!(sim.violations().is_empty(), "{:#?}", sim.violations());
}

/// The password writes the simulator received for `address`.
fn password_writes(s: &Setup, address: &str) -> usize {
    s.sim
        .writes()
        .iter()
        .filter(|r| {
            r.path
                .ends_with(&format!("/account/{address}/changePassword"))
        })
        .count()
}

/// Changes an Email Pro account's password with a signed call, as its user would in the
/// control panel, and waits until Dovecot takes it.
fn change_password_behind_our_back(s: &Setup, account: &str, password: &str) {
    use mailshift::providers::ovh::{Task, TaskOutcome, wait_task};
    let (client, rt) = signed_client(&s.sim, CK);
    rt.block_on(async {
        let task: Task = client
            .post(
                &format!("/email/pro/{PRO}/account/{account}/changePassword"),
                Some(&json!({ "password": password })),
            )
            .await
            .unwrap();
        let outcome = wait_task(
            &client,
            &format!("/email/pro/{PRO}/task/{}", task.id),
            tokio::time::Instant::now() + Duration::from_secs(10),
            Duration::from_millis(20),
            |_| {},
        )
        .await
        .unwrap();
        assert!(matches!(outcome, TaskOutcome::Done(_)), "{outcome:?}");
    });
    login_eventually(&s.dst, account, password)
        .logout()
        .unwrap();
}

/// Without its state, an apply finds the accounts it made: one that still logs in with the
/// plan's password is left alone (no password write) and its copy goes on; one whose password
/// was changed since is reported, never reset.
#[test]
fn lost_state_leaves_existing_passwords_alone_and_reports_a_changed_one() {
    let s = setup("");
    let dir = s.dir.path();
    let first = mailshift(dir, &["apply", "plan.yaml"]);
    assert_eq!(first.code, 0, "{}", first.transcript());
    // (The simulator refuses a fresh account's first password write: retried.)
    assert!(password_writes(&s, "john@mydomain.ovh") >= 1);

    std::fs::remove_dir_all(dir.join(".mailshift")).unwrap();
    s.sim.clear_requests();
    let again = mailshift(dir, &["apply", "plan.yaml"]);
    assert_eq!(again.code, 0, "{}", again.transcript());
    assert_eq!(
        password_writes(&s, "john@mydomain.ovh"),
        0,
        "{}",
        again.transcript()
    );
    assert_eq!(password_writes(&s, "assistant@mydomain.ovh"), 0);
    assert!(
        again
            .stdout
            .contains("john@mydomain.ovh exists and accepts the plan's password"),
        "{}",
        again.transcript()
    );
    assert!(
        again
            .stdout
            .contains("done    account/john@mydomain.ovh/mail"),
        "the copy goes on: {}",
        again.transcript()
    );

    // john changes his password in the control panel; the state is lost again.
    const CHANGED: &str = "john-changed-by-himself-7";
    change_password_behind_our_back(&s, "john@mydomain.ovh", CHANGED);
    std::fs::remove_dir_all(dir.join(".mailshift")).unwrap();
    s.sim.clear_requests();
    let reported = mailshift(dir, &["apply", "plan.yaml"]);
    assert_eq!(reported.code, 1, "{}", reported.transcript());
    assert_eq!(
        password_writes(&s, "john@mydomain.ovh"),
        0,
        "{}",
        reported.transcript()
    );
    for words in [
        "FAILED  account/john@mydomain.ovh/create: john@mydomain.ovh already exists on `pro` \
         with another password than the plan's (probably changed since it was created), and \
         mailshift will not reset it",
        "put its current password in the plan's `destination.password`, or reset it in the \
         OVHcloud Control Panel",
        "skipped account/john@mydomain.ovh/mail",
    ] {
        assert!(
            reported.stdout.contains(words),
            "{words:?}:\n{}",
            reported.transcript()
        );
    }
    assert!(!reported.transcript().contains(CHANGED));
    assert!(!reported.transcript().contains(JOHN_PRO));
    // His password is still his, and the other account went on.
    login_eventually(&s.dst, "john@mydomain.ovh", CHANGED)
        .logout()
        .unwrap();
    assert!(
        reported
            .stdout
            .contains("done    account/assistant@mydomain.ovh/mail"),
        "{}",
        reported.transcript()
    );
}

/// `mailshift apply` killed (SIGKILL) right after it configured an account and before it set
/// its password: the next run knows from the state that the account is its own and sets it.
#[test]
fn a_kill_between_configuration_and_password_converges() {
    let s = setup("");
    let dir = s.dir.path();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mailshift"))
        .args(["apply", "plan.yaml"])
        .current_dir(dir)
        .envs(ENV.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let configured = |s: &Setup| {
        s.sim
            .writes()
            .iter()
            .any(|r| r.method == "PUT" && r.path.contains("@configureme.me"))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !configured(&s) {
        assert!(
            Instant::now() < deadline,
            "no account configured: {:#?}",
            s.sim.writes()
        );
        assert!(child.try_wait().unwrap().is_none(), "apply ended first");
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let set: usize = ["john@mydomain.ovh", "assistant@mydomain.ovh"]
        .iter()
        .map(|a| password_writes(&s, a))
        .sum();
    assert_eq!(set, 0, "killed too late: a password was already set");

    let mut runs = Vec::new();
    loop {
        let run = mailshift(dir, &["apply", "plan.yaml"]);
        let done = run.code == 0;
        runs.push(run);
        if done {
            break;
        }
        assert!(
            runs.len() < 4,
            "no convergence: {}",
            runs.last().unwrap().transcript()
        );
    }
    assert!(
        !runs
            .iter()
            .any(|r| r.stdout.contains("another password than the plan's")),
        "{}",
        runs.last().unwrap().transcript()
    );
    assert_procedure_done(&s);
}
