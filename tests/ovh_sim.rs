//! The OVHcloud API simulator (`ovh-sim`) in front of a real Dovecot, where changes made
//! through the API must really move IMAP logins. (The `ovh-sim` process itself is tested in
//! its own crate, `crates/ovh-sim/tests`.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mailshift::plan::secret::Secret;
use mailshift::providers::ovh::{
    ClientOptions, Credentials, OvhClient, RetryPolicy, TaskOutcome, wait_task,
};
use ovh_sim::world::{
    AccessRule, Account, Application, ConsumerKey, Domain, DomainType, DovecotBackend,
    FreshPassword, Service,
};
use ovh_sim::{SimHandle, World};
use serde_json::{Value, json};

use crate::support::dovecot::{Dovecot, DovecotConfig};
use crate::support::imap::ImapClient;

const AK: &str = "demoAppKey";
const AS: &str = "demoAppSecret0123456789abcdefghi";
const CK: &str = "demoConsumerKey0123456789abcdefg";

const MESSAGE: &[u8] = b"From: alice@example.org\r\nTo: john@example.com\r\n\
Subject: follows the account\r\nMessage-ID: <follow-1@example.org>\r\n\r\nHello.\r\n";

fn world(dovecot: &Dovecot) -> World {
    World {
        applications: vec![Application {
            key: AK.into(),
            secret: AS.into(),
        }],
        consumer_keys: vec![ConsumerKey {
            key: CK.into(),
            application: AK.into(),
            rules: AccessRule::everything(),
            validated: true,
        }],
        task_delay_ms: 50,
        fresh_password: FreshPassword::Refusals(1),
        pro: vec![Service {
            organization: None,
            service: "pro-1".into(),
            hostname: None,
            offer: None,
            domains: vec![Domain {
                name: "example.com".into(),
                kind: DomainType::Authoritative,
                mx_relay: None,
                mx_valid: true,
                spf_valid: true,
                srv_valid: true,
                disclaimer: None,
            }],
            accounts: vec![Account::new("john@example.com", "pw-1")],
            placeholders: 1,
            mailing_lists: vec![],
            external_contacts: vec![],
            dovecot: Some(DovecotBackend {
                users_file: dovecot.dir().join("users"),
                mail_root: dovecot.dir().join("mail"),
                uid: None,
                gid: None,
            }),
        }],
        ..World::default()
    }
}

fn client(sim: &SimHandle) -> OvhClient {
    let credentials = Credentials {
        application_key: Secret::new(AK),
        application_secret: Secret::new(AS),
        consumer_key: Secret::new(CK),
    };
    let options = ClientOptions {
        timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(10),
        // Enough to ride out the simulated "new mailbox not ready" refusal.
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(50),
        },
    };
    OvhClient::with_options(&sim.base_url(), credentials, options).unwrap()
}

/// Waits for the task an object shows as pending, then for the object to settle.
async fn settle(client: &OvhClient, object: &str) {
    let pending: Value = client.get(object, None).await.unwrap();
    let id = pending["taskPendingId"].as_u64().unwrap();
    assert_ne!(id, 0, "{object} shows no pending task: {pending}");
    wait(client, id).await;
}

async fn wait(client: &OvhClient, task: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let path = format!("/email/pro/pro-1/task/{task}");
    let outcome = wait_task(client, &path, deadline, Duration::from_millis(10), |_| {})
        .await
        .unwrap();
    assert!(matches!(outcome, TaskOutcome::Done(_)), "{outcome:?}");
}

/// Dovecot stats its passwd-file at most once a second: poll the login rather than guess.
fn login_eventually(dovecot: &Dovecot, user: &str, pass: &str) -> ImapClient {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = ImapClient::connect(dovecot.port()).unwrap();
        match c.login(user, pass) {
            Ok(()) => return c,
            Err(e) if Instant::now() > deadline => {
                panic!("{user} cannot log in: {e}\n{}", dovecot.log())
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn login_fails(dovecot: &Dovecot, user: &str, pass: &str) -> bool {
    let mut c = ImapClient::connect(dovecot.port()).unwrap();
    c.login(user, pass).is_err()
}

#[test]
fn api_changes_move_real_imap_logins() {
    let dovecot = Dovecot::start(DovecotConfig {
        users: &[("john@example.com", "pw-1"), ("bystander", "pw-b")],
        ..Default::default()
    });
    let mut seed = dovecot.login("john@example.com", "pw-1");
    seed.append("INBOX", &[], None, MESSAGE).unwrap();
    seed.logout().unwrap();

    let sim = SimHandle::spawn(world(&dovecot)).unwrap();
    let client = client(&sim);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let old = "/email/pro/pro-1/account/john@example.com";
        let () = client
            .put(old, Some(&json!({"login": "johnny"})))
            .await
            .unwrap();
        settle(&client, old).await;
        let new = "/email/pro/pro-1/account/johnny@example.com";
        let task: Value = client
            .post(
                &format!("{new}/changePassword"),
                Some(&json!({"password": "pw-2"})),
            )
            .await
            .unwrap();
        wait(&client, task["id"].as_u64().unwrap()).await;

        let ordered: Vec<String> = client
            .get(
                "/email/pro/pro-1/account?primaryEmailAddress=%25configureme.me%25",
                None,
            )
            .await
            .unwrap();
        let placeholder = format!("/email/pro/pro-1/account/{}", ordered[0]);
        let () = client
            .put(
                &placeholder,
                Some(&json!({"login": "fresh", "domain": "example.com"})),
            )
            .await
            .unwrap();
        settle(&client, &placeholder).await;
        // Refused once as too new, then retried by the client.
        let task: Value = client
            .post(
                "/email/pro/pro-1/account/fresh@example.com/changePassword",
                Some(&json!({"password": "pw-f"})),
            )
            .await
            .unwrap();
        wait(&client, task["id"].as_u64().unwrap()).await;
    });

    // The mailbox followed the account: same home, new login, new password.
    let mut johnny = login_eventually(&dovecot, "johnny@example.com", "pw-2");
    let messages = johnny.uid_fetch_all("INBOX").unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].bytes, MESSAGE);
    johnny.logout().unwrap();
    assert!(login_fails(&dovecot, "john@example.com", "pw-1"));
    assert!(login_fails(&dovecot, "johnny@example.com", "pw-1"));
    // The configured placeholder is a new, empty mailbox.
    let mut fresh = login_eventually(&dovecot, "fresh@example.com", "pw-f");
    assert_eq!(fresh.uid_fetch_all("INBOX").unwrap(), vec![]);
    fresh.logout().unwrap();
    // Lines the simulator does not own are left alone.
    dovecot.login("bystander", "pw-b").logout().unwrap();

    let refused = sim
        .requests()
        .iter()
        .filter(|r| r.status == 409 && r.path.ends_with("/changePassword"))
        .count();
    assert_eq!(
        refused, 1,
        "the new mailbox refused its first password once"
    );
    assert_eq!(sim.violations(), vec![]);
}

/// A tiny HTTP/1.1 GET: the answer's status and body.
pub(crate) fn http_get(url: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = TcpStream::connect(host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_string())
}
