//! Notifications (`notify:` in the plan): a real SMTP server (Debian's aiosmtpd) on loopback
//! receives the e-mails over implicit TLS or STARTTLS verified against a test CA, with SMTP
//! AUTH where the test asks for it; a local HTTP receiver checks every webhook's HMAC-SHA256
//! signature; each event is told once across runs, a failure once however often it is retried;
//! delivery is per target (one that failed gets the notice at the next run, the others never
//! again); secrets never reach a mail, a webhook body or the output; a receiver that is down
//! or hangs never fails the migration nor, in watch mode, delays a copy.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mailshift::notify::Notice;
use mailshift::plan::model::{EmailNotify, NotifyEvent, Security, SmtpEndpoint};
use mailshift::plan::secret::SecretRef;

use crate::common::{Output, mailshift_env};
use crate::support::dovecot::{Dovecot, DovecotConfig, make_tls_material};

const OLD_PW: &str = "old-Pa55word-x9";
const NEW_PW: &str = "new-Pa55word-y8";
const HOOK_SECRET: &str = "hook-s3cret-z7";

/// aiosmtpd's debugging handler on a loopback port: it prints every message it receives.
struct SmtpSink {
    child: Child,
    port: u16,
    out: Arc<Mutex<String>>,
}

/// aiosmtpd with SMTP AUTH (PLAIN, LOGIN) required for one user, over implicit TLS (`tls`)
/// or STARTTLS (`starttls`, required before AUTH), which its own command line cannot set up;
/// it prints what the debugging handler prints, and each login.
///
/// A refusal must say `handled=False`: `AuthResult`'s `handled` defaults to true, which tells
/// aiosmtpd that the authenticator already answered, so it sends nothing and the client waits
/// for a reply that never comes (what stalled this test before).
const AUTH_SINK: &str = r#"
import ssl, sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Debugging
from aiosmtpd.smtp import AuthResult

mode, port, cert, key, user, password = sys.argv[1:7]
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login.decode() == user and auth_data.password.decode() == password
    print("AUTH", mechanism, "ok" if ok else "refused", flush=True)
    return AuthResult(success=ok, handled=False)

if mode == "tls":
    # aiosmtpd 1.4 counts only STARTTLS as TLS for `auth_require_tls`.
    tls = dict(ssl_context=ctx, auth_require_tls=False)
else:
    tls = dict(tls_context=ctx, require_starttls=True, auth_require_tls=True)
c = Controller(Debugging(sys.stdout), hostname="127.0.0.1", port=int(port),
               server_hostname="localhost", authenticator=authenticator,
               auth_required=True, **tls)
c.start()
while True:
    time.sleep(3600)
"#;

impl SmtpSink {
    /// Implicit TLS with the certificate in `tls` (for 127.0.0.1 and localhost).
    fn start(tls: &Path) -> SmtpSink {
        let port = free_port();
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.args([
            "-u",
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("--smtpscert")
        .arg(tls.join("server.pem"))
        .arg("--smtpskey")
        .arg(tls.join("server.key"));
        Self::spawn(cmd, port)
    }

    /// AUTH required as `user` with `password`, over `mode` (`tls` or `starttls`).
    fn start_auth(mode: &str, tls: &Path, user: &str, password: &str) -> SmtpSink {
        let port = free_port();
        let script = tls.join("sink.py");
        std::fs::write(&script, AUTH_SINK).unwrap();
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg("-u")
            .arg(&script)
            .arg(mode)
            .arg(port.to_string())
            .arg(tls.join("server.pem"))
            .arg(tls.join("server.key"))
            .args([user, password]);
        Self::spawn(cmd, port)
    }

    fn spawn(mut cmd: Command, port: u16) -> SmtpSink {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd (Debian package python3-aiosmtpd, scripts/install-deps.sh)");
        let out = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = out.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        SmtpSink { child, port, out }
    }

    /// What it printed so far, once it contains `wanted` (or after a while, for a failure
    /// message that shows it all).
    fn received_with(&self, wanted: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.out.lock().unwrap().clone();
            if text.contains(wanted) || Instant::now() > deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What it printed so far (what it printed during a finished exchange is there: it prints
    /// a login before it answers it).
    fn so_far(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    fn messages(&self) -> usize {
        self.out
            .lock()
            .unwrap()
            .matches("---------- MESSAGE FOLLOWS ----------")
            .count()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request the webhook receiver got.
#[derive(Debug, Clone)]
struct Hook {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Hook {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A small HTTP/1.1 receiver: records each request and answers the next status from
/// `statuses` (200 once they run out).
struct HookReceiver {
    port: u16,
    got: Arc<Mutex<Vec<Hook>>>,
}

impl HookReceiver {
    fn start(statuses: Vec<u16>) -> HookReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let record = got.clone();
        std::thread::spawn(move || {
            let mut statuses = statuses.into_iter();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { break };
                let Some(hook) = read_request(&mut stream) else {
                    continue;
                };
                record.lock().unwrap().push(hook);
                let status = statuses.next().unwrap_or(200);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        HookReceiver { port, got }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn hooks(&self) -> Vec<Hook> {
        self.got.lock().unwrap().clone()
    }
}

fn read_request(stream: &mut std::net::TcpStream) -> Option<Hook> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Hook { headers, body })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Checks the signature as a receiver would, with ring's HMAC (not mailshift's code).
fn signature_ok(hook: &Hook, secret: &str) -> bool {
    let Some(sig) = hook.header("X-Mailshift-Signature") else {
        return false;
    };
    let Some(hex) = sig.strip_prefix("sha256=") else {
        return false;
    };
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    bytes.is_some_and(|b| ring::hmac::verify(&key, &hook.body, &b).is_ok())
}

fn plan(src: &Dovecot, dst: &Dovecot, smtp_port: u16, hook_url: &str) -> String {
    format!(
        "version: 1
platforms:
  old: {{type: imap, imap: {{host: 127.0.0.1, port: {}, security: none}}}}
  new: {{type: imap, imap: {{host: 127.0.0.1, port: {}, security: none}}}}
accounts:
  - address: alice@example.com
    from: old
    to: new
    source: {{login: alice, password: {{env: ALICE_OLD}}}}
    destination: {{login: alice, password: {{env: ALICE_NEW}}}}
notify:
  - email:
      to: [it@example.com]
      from: mailshift@example.com
      smtp: {{host: localhost, port: {smtp_port}, security: tls, ca_file: tls/ca.pem}}
  - webhook: {{url: '{hook_url}', secret: {{env: HOOK_SECRET}}}}
    events: [first-copy, failed, converged]
",
        src.port(),
        dst.port()
    )
}

fn apply(dir: &Path, dest_pw: &str) -> Output {
    mailshift_env(
        dir,
        &["apply", "plan.yaml"],
        &[
            ("ALICE_OLD", OLD_PW),
            ("ALICE_NEW", dest_pw),
            ("HOOK_SECRET", HOOK_SECRET),
        ],
    )
}

fn events(hooks: &[Hook]) -> Vec<String> {
    hooks
        .iter()
        .map(|h| h.json()["event"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[test]
fn each_event_is_mailed_and_posted_once_signed_and_without_secrets() {
    let src = Dovecot::start(DovecotConfig {
        users: &[("alice", OLD_PW)],
        ..DovecotConfig::default()
    });
    let dst = Dovecot::start(DovecotConfig {
        users: &[("alice", NEW_PW)],
        ..DovecotConfig::default()
    });
    let mut c = src.login("alice", OLD_PW);
    for n in 0..3 {
        let m = format!(
            "From: bob@example.org\r\nSubject: m{n}\r\nMessage-ID: <n{n}@example.org>\r\n\r\nbody {n}\r\n"
        );
        c.append("INBOX", &[], None, m.as_bytes()).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    make_tls_material(&dir.path().join("tls"));
    let smtp = SmtpSink::start(&dir.path().join("tls"));
    let hooks = HookReceiver::start(Vec::new());
    std::fs::write(
        dir.path().join("plan.yaml"),
        plan(&src, &dst, smtp.port, &hooks.url()),
    )
    .unwrap();

    // First run: the first copy, and the plan converged.
    let out = apply(dir.path(), NEW_PW);
    assert!(out.code == 0, "{}", out.transcript());
    let got = hooks.hooks();
    assert_eq!(events(&got), ["first-copy", "converged"], "{got:?}");
    assert_eq!(got[0].json()["step"], "account/alice@example.com/mail");
    assert_eq!(got[0].json()["account"], "alice@example.com");
    for h in &got {
        assert!(signature_ok(h, HOOK_SECRET), "bad signature: {h:?}");
        assert!(!signature_ok(h, "another secret"));
        let body = String::from_utf8_lossy(&h.body);
        for secret in [OLD_PW, NEW_PW, HOOK_SECRET] {
            assert!(!body.contains(secret), "secret in a webhook body: {body}");
        }
    }
    let mail = smtp.received_with("every step of the plan is done");
    assert!(
        mail.contains("first copy of account/alice@example.com/mail finished"),
        "{mail}"
    );
    assert!(mail.contains("every step of the plan is done"), "{mail}");
    assert_eq!(smtp.messages(), 2, "{mail}");
    for secret in [OLD_PW, NEW_PW, HOOK_SECRET] {
        assert!(!mail.contains(secret), "secret in a mail: {mail}");
    }

    // Second run: nothing new happened, nothing is told.
    let out = apply(dir.path(), NEW_PW);
    assert!(out.code == 0, "{}", out.transcript());
    assert_eq!(hooks.hooks().len(), 2, "{:?}", events(&hooks.hooks()));

    // The destination refuses the login, twice: one failure, told once.
    for _ in 0..2 {
        let out = apply(dir.path(), "wrong-password");
        assert!(out.code != 0, "{}", out.transcript());
    }
    let got = hooks.hooks();
    assert_eq!(
        events(&got),
        ["first-copy", "converged", "failed"],
        "{got:?}"
    );
    let failed = got[2].json();
    assert_eq!(failed["step"], "account/alice@example.com/mail");
    assert!(!String::from_utf8_lossy(&got[2].body).contains("wrong-password"));
    let mail = smtp.received_with("account/alice@example.com/mail failed");
    assert!(
        mail.contains("account/alice@example.com/mail failed"),
        "{mail}"
    );
    assert!(!mail.contains("wrong-password"), "{mail}");

    // Fixed: converged again, told again; the failure's record is cleared.
    let out = apply(dir.path(), NEW_PW);
    assert!(out.code == 0, "{}", out.transcript());
    assert_eq!(
        events(&hooks.hooks()),
        ["first-copy", "converged", "failed", "converged"]
    );
}

#[test]
fn a_notification_that_cannot_be_delivered_never_fails_the_migration() {
    let src = Dovecot::start(DovecotConfig {
        users: &[("alice", OLD_PW)],
        ..DovecotConfig::default()
    });
    let dst = Dovecot::start(DovecotConfig {
        users: &[("alice", NEW_PW)],
        ..DovecotConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    make_tls_material(&dir.path().join("tls"));
    // The SMTP server's certificate is not from the plan's CA: the mail is refused by our side
    // (verification) before the login, and the webhook's receiver answers 403.
    const SMTP_PW: &str = "smtp-Pa55-t7";
    let smtp_tls = dir.path().join("other-ca");
    make_tls_material(&smtp_tls);
    let smtp = SmtpSink::start_auth("tls", &smtp_tls, "ops", SMTP_PW);
    let hooks = HookReceiver::start(vec![403, 403, 403, 403]);
    let text = plan(&src, &dst, smtp.port, &hooks.url()).replace(
        "security: tls, ca_file: tls/ca.pem}",
        "security: tls, ca_file: tls/ca.pem, login: ops, password: {env: SMTP_PW}}",
    );
    std::fs::write(dir.path().join("plan.yaml"), text).unwrap();
    let out = mailshift_env(
        dir.path(),
        &["apply", "plan.yaml"],
        &[
            ("ALICE_OLD", OLD_PW),
            ("ALICE_NEW", NEW_PW),
            ("HOOK_SECRET", HOOK_SECRET),
            ("SMTP_PW", SMTP_PW),
        ],
    );
    assert!(out.code == 0, "{}", out.transcript());
    assert_eq!(
        smtp.messages(),
        0,
        "a certificate from an unknown CA was accepted"
    );
    // A 403 is the receiver's refusal: not retried within the run, and the next notice for the
    // same target waits for the next run.
    assert_eq!(events(&hooks.hooks()), ["first-copy"]);
    let text = out.transcript();
    // Said in the report, naming the target and the cause, once per notice (no retry of a
    // certificate that does not verify).
    assert_eq!(
        text.matches("warning notification not delivered: notify[0]")
            .count(),
        2,
        "{text}"
    );
    assert!(text.contains("TLS failed"), "{text}");
    assert_eq!(
        text.matches("warning notification not delivered: notify[1]")
            .count(),
        2,
        "{text}"
    );
    assert!(text.contains("403"), "{text}");
    for secret in [OLD_PW, NEW_PW, HOOK_SECRET, SMTP_PW] {
        assert!(!text.contains(secret), "secret in the output: {text}");
    }
    assert!(!smtp.so_far().contains("AUTH"), "the password was offered");
}

#[test]
fn a_webhook_answering_503_is_retried_with_backoff() {
    let hooks = HookReceiver::start(vec![503, 503]);
    let target = mailshift::plan::model::WebhookNotify {
        url: hooks.url(),
        secret: mailshift::plan::secret::SecretRef::Inline(HOOK_SECRET.into()),
    };
    let notice = mailshift::notify::Notice {
        event: mailshift::plan::model::NotifyEvent::Failed,
        plan: "plan.yaml".into(),
        account: None,
        step: None,
        summary: "test".into(),
        detail: String::new(),
        time: 0,
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sent = rt.block_on(mailshift::notify::webhook::send_with_backoff(
        &target,
        Path::new("."),
        &notice,
        Duration::from_millis(10),
    ));
    assert_eq!(sent, Ok(()));
    let got = hooks.hooks();
    assert_eq!(got.len(), 3, "two 503s, then 200");
    assert!(
        got.iter()
            .all(|h| h.body == got[0].body && signature_ok(h, HOOK_SECRET))
    );
}

/// Watch mode: the first run of the day sends the daily summary, and runs after it (every
/// second here) send no other; the account's first copy is told once though it syncs again.
#[test]
fn watch_mode_sends_one_daily_summary_and_the_first_copy_once() {
    let src = Dovecot::start(DovecotConfig {
        users: &[("alice", OLD_PW)],
        ..DovecotConfig::default()
    });
    let dst = Dovecot::start(DovecotConfig {
        users: &[("alice", NEW_PW)],
        ..DovecotConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    make_tls_material(&dir.path().join("tls"));
    let smtp = SmtpSink::start(&dir.path().join("tls"));
    let hooks = HookReceiver::start(Vec::new());
    let text = plan(&src, &dst, smtp.port, &hooks.url())
        .replace(
            "events: [first-copy, failed, converged]",
            "events: [first-copy, daily-summary]",
        )
        .replace("accounts:\n", "options: {sync_interval: 1s}\naccounts:\n");
    std::fs::write(dir.path().join("plan.yaml"), text).unwrap();
    let log = std::fs::File::create(dir.path().join("watch.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailshift"))
        .args(["watch", "plan.yaml", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env("ALICE_OLD", OLD_PW)
        .env("ALICE_NEW", NEW_PW)
        .env("HOOK_SECRET", HOOK_SECRET)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    // At least three runs of alice's account (one a second) after the summary.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut summary_at = None;
    while Instant::now() < deadline {
        let got = events(&hooks.hooks());
        if summary_at.is_none() && got.iter().any(|e| e == "daily-summary") {
            summary_at = Some(Instant::now());
        }
        if summary_at.is_some_and(|t| t.elapsed() > Duration::from_secs(4)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.path().join("watch.log")).unwrap();
    let got = hooks.hooks();
    let mut names = events(&got);
    names.sort();
    assert_eq!(names, ["daily-summary", "first-copy"], "{got:?}\n{log}");
    let summary = got
        .iter()
        .find(|h| h.json()["event"] == "daily-summary")
        .unwrap();
    assert!(signature_ok(summary, HOOK_SECRET));
    assert!(
        summary.json()["detail"]
            .as_str()
            .unwrap()
            .contains("steps recorded"),
        "{summary:?}"
    );
    assert!(
        smtp.received_with("daily summary for")
            .contains("daily summary for")
    );
    for secret in [OLD_PW, NEW_PW, HOOK_SECRET] {
        assert!(!log.contains(secret), "secret in the log: {log}");
    }
}

/// A manual step (an alias on a plain IMAP server) is told once while it waits; acknowledged,
/// the plan converges and that is told.
#[test]
fn a_waiting_manual_step_is_told_once_then_convergence_after_ack() {
    let src = Dovecot::start(DovecotConfig {
        users: &[("alice", OLD_PW)],
        ..DovecotConfig::default()
    });
    let dst = Dovecot::start(DovecotConfig {
        users: &[("alice", NEW_PW)],
        ..DovecotConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    make_tls_material(&dir.path().join("tls"));
    let smtp = SmtpSink::start(&dir.path().join("tls"));
    let hooks = HookReceiver::start(Vec::new());
    let text = plan(&src, &dst, smtp.port, &hooks.url())
        .replace(
            "events: [first-copy, failed, converged]",
            "events: [manual, converged]",
        )
        .replace(
            "    destination: {login: alice",
            "    aliases: [al@example.com]\n    destination: {login: alice",
        );
    std::fs::write(dir.path().join("plan.yaml"), text).unwrap();
    for _ in 0..2 {
        let out = apply(dir.path(), NEW_PW);
        assert!(out.code == 0, "{}", out.transcript());
    }
    let got = hooks.hooks();
    assert_eq!(events(&got), ["manual"], "{got:?}");
    let step = got[0].json()["step"].as_str().unwrap().to_string();
    assert!(step.contains("alias"), "{step}");
    assert!(
        smtp.received_with("waits for a manual step")
            .contains(&format!("{step} waits for a manual step"))
    );
    let out = mailshift_env(dir.path(), &["ack", "plan.yaml", &step], &[]);
    assert!(out.code == 0, "{}", out.transcript());
    let out = apply(dir.path(), NEW_PW);
    assert!(out.code == 0, "{}", out.transcript());
    assert_eq!(events(&hooks.hooks()), ["manual", "converged"]);
}

/// `notify:` added to a plan whose accounts were copied before: their next (incremental)
/// sync is not a first copy; the plan's convergence is news.
#[test]
fn notify_added_after_the_copy_tells_no_first_copy() {
    let src = Dovecot::start(DovecotConfig {
        users: &[("alice", OLD_PW)],
        ..DovecotConfig::default()
    });
    let dst = Dovecot::start(DovecotConfig {
        users: &[("alice", NEW_PW)],
        ..DovecotConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    make_tls_material(&dir.path().join("tls"));
    let smtp = SmtpSink::start(&dir.path().join("tls"));
    let hooks = HookReceiver::start(Vec::new());
    let full = plan(&src, &dst, smtp.port, &hooks.url());
    let without = &full[..full.find("notify:").unwrap()];
    std::fs::write(dir.path().join("plan.yaml"), without).unwrap();
    let out = apply(dir.path(), NEW_PW);
    assert!(out.code == 0, "{}", out.transcript());
    std::fs::write(dir.path().join("plan.yaml"), &full).unwrap();
    let out = apply(dir.path(), NEW_PW);
    assert!(out.code == 0, "{}", out.transcript());
    assert_eq!(events(&hooks.hooks()), ["converged"]);
}

/// SMTP AUTH (required by the server, over implicit TLS with the certificate verified) with
/// the password from a secret reference; the password reaches the server's AUTH, never the
/// message. A wrong password is said in the report, tried once (not retried in the run), and
/// the notice waits for the e-mail target alone: fixed, the next run sends it, once.
#[test]
fn smtp_auth_with_a_secret_reference() {
    const SMTP_PW: &str = "smtp-Pa55-q4";
    let src = Dovecot::start(DovecotConfig {
        users: &[("alice", OLD_PW)],
        ..DovecotConfig::default()
    });
    let dst = Dovecot::start(DovecotConfig {
        users: &[("alice", NEW_PW)],
        ..DovecotConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    make_tls_material(&dir.path().join("tls"));
    let smtp = SmtpSink::start_auth("tls", &dir.path().join("tls"), "ops", SMTP_PW);
    let hooks = HookReceiver::start(Vec::new());
    let text = plan(&src, &dst, smtp.port, &hooks.url()).replace(
        "security: tls, ca_file: tls/ca.pem}",
        "security: tls, ca_file: tls/ca.pem, login: ops, password: {env: SMTP_PW}}",
    );
    std::fs::write(dir.path().join("plan.yaml"), text).unwrap();
    let run = |dest_pw: &str, smtp_pw: &str| {
        mailshift_env(
            dir.path(),
            &["apply", "plan.yaml"],
            &[
                ("ALICE_OLD", OLD_PW),
                ("ALICE_NEW", dest_pw),
                ("HOOK_SECRET", HOOK_SECRET),
                ("SMTP_PW", smtp_pw),
            ],
        )
    };
    let out = run(NEW_PW, SMTP_PW);
    assert!(out.code == 0, "{}", out.transcript());
    assert!(
        !out.transcript().contains("not delivered"),
        "{}",
        out.transcript()
    );
    let mail = smtp.received_with("every step of the plan is done");
    assert_eq!(mail.matches("AUTH PLAIN ok").count(), 2, "{mail}");
    assert!(!mail.contains("refused"), "{mail}");
    assert_eq!(smtp.messages(), 2, "{mail}");
    let bodies = &mail[mail.find("MESSAGE FOLLOWS").unwrap()..];
    assert!(!bodies.contains(SMTP_PW), "{mail}");

    // The wrong SMTP password (and a failing account: news to tell).
    let out = run("wrong", "not-it");
    assert!(out.code != 0, "{}", out.transcript());
    let text = out.transcript();
    assert!(
        text.contains("warning notification not delivered: notify[0], failed: SMTP server")
            && text.contains("refused the login `ops`")
            && text.contains("check `login` and `password`"),
        "{text}"
    );
    assert!(
        !text.contains("not-it") && !text.contains(SMTP_PW),
        "{text}"
    );
    let mail = smtp.received_with("AUTH PLAIN refused");
    assert_eq!(
        mail.matches("AUTH PLAIN refused").count(),
        1,
        "a refused login was retried: {mail}"
    );
    assert_eq!(smtp.messages(), 2);
    // The webhook had it at once.
    assert_eq!(
        events(&hooks.hooks()),
        ["first-copy", "converged", "failed"]
    );

    // Fixed: the next run (the account still failing the same way: no new event) sends the
    // waiting notice to the e-mail target alone.
    let out = run("wrong", SMTP_PW);
    assert!(out.code != 0, "{}", out.transcript());
    assert!(
        !out.transcript().contains("not delivered"),
        "{}",
        out.transcript()
    );
    let mail = smtp.received_with("account/alice@example.com/mail failed");
    assert!(
        mail.contains("account/alice@example.com/mail failed"),
        "{mail}"
    );
    assert_eq!(smtp.messages(), 3, "{mail}");
    assert_eq!(
        events(&hooks.hooks()),
        ["first-copy", "converged", "failed"]
    );
    // And never again.
    let out = run("wrong", SMTP_PW);
    assert!(out.code != 0, "{}", out.transcript());
    assert_eq!(smtp.messages(), 3);
    assert_eq!(hooks.hooks().len(), 3);
}

fn email_target(port: u16, security: &str, login: Option<&str>, pw: &str) -> EmailNotify {
    EmailNotify {
        to: vec!["it@example.com".into()],
        from: "mailshift@example.com".into(),
        smtp: SmtpEndpoint {
            host: "localhost".into(),
            port: Some(port),
            security: match security {
                "tls" => Security::Tls,
                _ => Security::Starttls,
            },
            login: login.map(str::to_string),
            password: login.map(|_| SecretRef::Inline(pw.into())),
            ca_file: Some("tls/ca.pem".into()),
            allow_plaintext: false,
        },
    }
}

fn notice() -> Notice {
    Notice {
        event: NotifyEvent::Failed,
        plan: "plan.yaml".into(),
        account: Some("alice@example.com".into()),
        step: None,
        summary: "account/alice@example.com/mail failed".into(),
        detail: String::new(),
        time: 0,
    }
}

fn send_mail(dir: &Path, target: &EmailNotify) -> Result<(), String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(mailshift::notify::email::send(target, dir, &notice()))
}

/// STARTTLS (587-style), required by the server before AUTH, with the certificate verified
/// against the plan's CA.
#[test]
fn starttls_with_auth_and_a_verified_certificate() {
    const SMTP_PW: &str = "smtp-Pa55-r5";
    let dir = tempfile::tempdir().unwrap();
    make_tls_material(&dir.path().join("tls"));
    let smtp = SmtpSink::start_auth("starttls", &dir.path().join("tls"), "ops", SMTP_PW);
    let sent = send_mail(
        dir.path(),
        &email_target(smtp.port, "starttls", Some("ops"), SMTP_PW),
    );
    assert_eq!(sent, Ok(()));
    let mail = smtp.received_with("END MESSAGE");
    assert!(mail.contains("AUTH PLAIN ok"), "{mail}");
    assert!(
        mail.contains("Subject: [mailshift plan.yaml] account/alice@example.com/mail failed"),
        "{mail}"
    );
    assert_eq!(smtp.messages(), 1, "{mail}");
    assert!(!mail[mail.find("MESSAGE FOLLOWS").unwrap()..].contains(SMTP_PW));
}

/// STARTTLS to a server whose certificate is not from a trusted CA: refused at once with the
/// cause and the fix, before AUTH (the server never sees the password), not retried.
#[test]
fn starttls_to_a_certificate_that_does_not_verify_is_refused_before_auth() {
    const SMTP_PW: &str = "smtp-Pa55-s6";
    let dir = tempfile::tempdir().unwrap();
    make_tls_material(&dir.path().join("tls"));
    let other = dir.path().join("other-ca");
    make_tls_material(&other);
    let smtp = SmtpSink::start_auth("starttls", &other, "ops", SMTP_PW);
    let err = send_mail(
        dir.path(),
        &email_target(smtp.port, "starttls", Some("ops"), SMTP_PW),
    )
    .unwrap_err();
    assert!(
        err.contains(&format!("SMTP server localhost:{}: TLS failed", smtp.port))
            && err.contains("check `security`, `port` and `ca_file`"),
        "{err}"
    );
    assert!(!err.contains(SMTP_PW), "{err}");
    let out = smtp.so_far();
    assert!(!out.contains("AUTH"), "the password was offered: {out}");
    assert_eq!(smtp.messages(), 0);
}

/// Per target: the webhook refuses the first notice (403, not retried within the run), the
/// e-mail target gets both; at the next run the webhook gets each notice exactly once and the
/// e-mail target nothing more.
#[test]
fn a_target_that_failed_gets_its_notices_at_the_next_run_and_the_others_nothing_again() {
    let src = Dovecot::start(DovecotConfig {
        users: &[("alice", OLD_PW)],
        ..DovecotConfig::default()
    });
    let dst = Dovecot::start(DovecotConfig {
        users: &[("alice", NEW_PW)],
        ..DovecotConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    make_tls_material(&dir.path().join("tls"));
    let smtp = SmtpSink::start(&dir.path().join("tls"));
    let hooks = HookReceiver::start(vec![403]);
    std::fs::write(
        dir.path().join("plan.yaml"),
        plan(&src, &dst, smtp.port, &hooks.url()),
    )
    .unwrap();
    let out = apply(dir.path(), NEW_PW);
    assert!(out.code == 0, "{}", out.transcript());
    let text = out.transcript();
    assert!(
        text.contains("notify[1], first-copy: webhook")
            && text.contains("answered 403")
            && text.contains("notify[1], converged: not tried after the failure above"),
        "{text}"
    );
    assert_eq!(events(&hooks.hooks()), ["first-copy"]);
    smtp.received_with("every step of the plan is done");
    assert_eq!(smtp.messages(), 2);

    let out = apply(dir.path(), NEW_PW);
    assert!(out.code == 0, "{}", out.transcript());
    assert!(
        !out.transcript().contains("not delivered"),
        "{}",
        out.transcript()
    );
    let got = hooks.hooks();
    assert_eq!(events(&got), ["first-copy", "first-copy", "converged"]);
    assert!(got.iter().all(|h| signature_ok(h, HOOK_SECRET)));
    // The notice is the one queued at the event, not a new one.
    assert_eq!(got[0].body, got[1].body);
    assert_eq!(smtp.messages(), 2, "{}", smtp.received_with(""));

    let out = apply(dir.path(), NEW_PW);
    assert!(out.code == 0, "{}", out.transcript());
    assert_eq!(hooks.hooks().len(), 3);
    assert_eq!(smtp.messages(), 2);
}

/// Watch mode: an SMTP server that accepts connections and never answers (each attempt waits
/// for its timeout) holds up neither the webhook nor the next cycle's copy: a message added
/// to the source reaches the destination at the next cycle, a second later.
#[test]
fn watch_mode_copies_on_while_the_smtp_server_hangs() {
    let src = Dovecot::start(DovecotConfig {
        users: &[("alice", OLD_PW)],
        ..DovecotConfig::default()
    });
    let dst = Dovecot::start(DovecotConfig {
        users: &[("alice", NEW_PW)],
        ..DovecotConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    make_tls_material(&dir.path().join("tls"));
    // Never accepted: the kernel completes the connection, then nobody answers.
    let hanging = TcpListener::bind("127.0.0.1:0").unwrap();
    let smtp_port = hanging.local_addr().unwrap().port();
    let hooks = HookReceiver::start(Vec::new());
    let text = plan(&src, &dst, smtp_port, &hooks.url())
        .replace("accounts:\n", "options: {sync_interval: 1s}\naccounts:\n");
    std::fs::write(dir.path().join("plan.yaml"), text).unwrap();
    let log = std::fs::File::create(dir.path().join("watch.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailshift"))
        .args(["watch", "plan.yaml", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env("ALICE_OLD", OLD_PW)
        .env("ALICE_NEW", NEW_PW)
        .env("HOOK_SECRET", HOOK_SECRET)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let inbox = || dst.login("alice", NEW_PW).select("INBOX").unwrap().exists;
    let wait_for = |what: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !what() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        what()
    };
    let first_copy = wait_for(&|| events(&hooks.hooks()).contains(&"first-copy".to_string()));
    // Well within one SMTP attempt's timeout (30 s): the mail is still hanging.
    let mut c = src.login("alice", OLD_PW);
    c.append(
        "INBOX",
        &[],
        None,
        b"From: bob@example.org\r\nSubject: later\r\nMessage-ID: <later@example.org>\r\n\r\nx\r\n",
    )
    .unwrap();
    let copied = wait_for(&|| inbox() == 1);
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.path().join("watch.log")).unwrap();
    assert!(first_copy, "the webhook waited for the SMTP server\n{log}");
    assert!(copied, "the next copy waited for the SMTP server\n{log}");
}
