//! `mailshift watch` end to end: the real binary against real Dovecot servers, driven the way
//! an operator drives it (the plan file replaced by rename, signals, HTTP), and checked through
//! its HTTP API, its logs, the state (`status`) and both mailboxes (`verify`, IMAP counts).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::dovecot::{Dovecot, DovecotConfig};
use crate::support::faultproxy::{Direction, Fault, FaultProxy};

// Distinctive, so that a log line carrying one cannot be missed by the grep below.
pub(crate) const ALICE_OLD: &str = "alice-OLD-pw-7Qx";
pub(crate) const ALICE_NEW: &str = "alice-NEW-pw-9Kz";
pub(crate) const BOB_OLD: &str = "bob-OLD-pw-3Wm";
pub(crate) const BOB_NEW: &str = "bob-NEW-pw-5Jr";
pub(crate) const CAROL_OLD: &str = "carol-OLD-pw-8Ht";
pub(crate) const CAROL_NEW: &str = "carol-NEW-pw-2Ds";
pub(crate) const TOKEN: &str = "watch-T0ken-4bV8";
const SECRETS: [&str; 7] = [
    ALICE_OLD, ALICE_NEW, BOB_OLD, BOB_NEW, CAROL_OLD, CAROL_NEW, TOKEN,
];

pub(crate) fn env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("ALICE_OLD", ALICE_OLD),
        ("ALICE_NEW", ALICE_NEW),
        ("BOB_OLD", BOB_OLD),
        ("BOB_NEW", BOB_NEW),
        ("CAROL_OLD", CAROL_OLD),
        ("CAROL_NEW", CAROL_NEW),
        ("WATCH_TOKEN", TOKEN),
    ]
}

pub(crate) fn servers() -> (Dovecot, Dovecot) {
    let src = Dovecot::start(DovecotConfig {
        users: &[("alice", ALICE_OLD), ("bob", BOB_OLD), ("carol", CAROL_OLD)],
        ..DovecotConfig::default()
    });
    let dst = Dovecot::start(DovecotConfig {
        separator: '.',
        users: &[("alice", ALICE_NEW), ("bob", BOB_NEW), ("carol", CAROL_NEW)],
        ..DovecotConfig::default()
    });
    (src, dst)
}

/// A plan between two local servers for `accounts` (logins; passwords from `LOGIN_OLD` and
/// `LOGIN_NEW` in upper case), with `options` as the plan's options.
pub(crate) fn plan(src_port: u16, dst_port: u16, options: &str, accounts: &[&str]) -> String {
    let mut p = format!(
        "version: 1\noptions: {{{options}}}\nplatforms:\n  \
         old: {{type: imap, imap: {{host: 127.0.0.1, port: {src_port}, security: none}}}}\n  \
         new: {{type: imap, imap: {{host: 127.0.0.1, port: {dst_port}, security: none}}}}\n\
         accounts:\n"
    );
    for login in accounts {
        let up = login.to_ascii_uppercase();
        p.push_str(&format!(
            "  - address: {login}@example.com\n    from: old\n    to: new\n    \
             source: {{login: {login}, password: {{env: {up}_OLD}}}}\n    \
             destination: {{login: {login}, password: {{env: {up}_NEW}}}}\n"
        ));
    }
    p
}

/// Replaces the plan the way editors and `git pull` do: a new file renamed over the old one.
pub(crate) fn replace_plan(dir: &Path, text: &str) {
    let tmp = dir.join(".plan.yaml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join("plan.yaml")).unwrap();
}

pub(crate) fn message(n: usize, size: usize) -> Vec<u8> {
    let mut m = format!(
        "From: Carol <carol@example.org>\r\nTo: x@example.com\r\nSubject: watch {n}\r\n\
         Message-ID: <w{n}@example.org>\r\n\r\n"
    )
    .into_bytes();
    while m.len() < size {
        m.extend_from_slice(format!("line {n} of a body long enough\r\n").as_bytes());
    }
    m
}

pub(crate) fn seed(
    server: &Dovecot,
    user: &str,
    pass: &str,
    from: usize,
    count: usize,
    size: usize,
) {
    let mut c = server.login(user, pass);
    for n in from..from + count {
        c.append("INBOX", &[], None, &message(n, size)).unwrap();
    }
}

pub(crate) fn inbox_count(server: &Dovecot, user: &str, pass: &str) -> u32 {
    server.login(user, pass).examine("INBOX").unwrap().exists
}

/// One HTTP/1.1 GET; returns status, headers (lower-cased names) and body.
pub(crate) fn http_get(addr: &str, path: &str, auth: Option<&str>) -> (u16, String, String) {
    http_request(
        "GET",
        addr,
        path,
        auth.map(|a| format!("Authorization: {a}")).as_deref(),
    )
}

/// One HTTP/1.1 request with an empty body and an optional extra header line.
pub(crate) fn http_request(
    method: &str,
    addr: &str,
    path: &str,
    header: Option<&str>,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let extra = header.map(|h| format!("{h}\r\n")).unwrap_or_default();
    let length = if method == "GET" {
        ""
    } else {
        "Content-Length: 0\r\n"
    };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{length}{extra}\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let head = head.to_ascii_lowercase();
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_string()
    };
    (code, head, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

/// A running `mailshift watch`, killed if the test ends without stopping it.
pub(crate) struct Watch {
    child: Child,
    log: PathBuf,
    pub(crate) addr: String,
    auth: Option<String>,
}

impl Watch {
    pub(crate) fn start(dir: &Path, log_name: &str, args: &[&str]) -> Watch {
        Watch::start_at(dir, log_name, "127.0.0.1:0", args)
    }

    /// As `start`, listening on `listen` (a port others must know beforehand: shards).
    pub(crate) fn start_at(dir: &Path, log_name: &str, listen: &str, args: &[&str]) -> Watch {
        let mut all = vec!["watch", "plan.yaml", "--listen", listen];
        all.extend_from_slice(args);
        Watch::spawn(dir, log_name, &all)
    }

    /// Any `mailshift` daemon that logs `listening on http://ADDR` (the aggregator too), run
    /// with exactly `args`.
    pub(crate) fn spawn(dir: &Path, log_name: &str, args: &[&str]) -> Watch {
        let log = dir.join(log_name);
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mailshift"));
        cmd.args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        for (k, v) in env() {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let mut w = Watch {
            child,
            log,
            addr: String::new(),
            auth: None,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = w.log_text();
            if let Some(i) = text.find("listening on http://") {
                let rest = &text[i + "listening on http://".len()..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == ':'))
                    .unwrap_or(rest.len());
                w.addr = rest[..end].to_string();
                return w;
            }
            if let Ok(Some(status)) = w.child.try_wait() {
                panic!("watch exited ({status}) before listening:\n{text}");
            }
            assert!(Instant::now() < deadline, "watch did not listen:\n{text}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn with_token(mut self) -> Watch {
        self.auth = Some(format!("Bearer {TOKEN}"));
        self
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) fn get(&self, path: &str) -> (u16, String) {
        let (code, _, body) = http_get(&self.addr, path, self.auth.as_deref());
        (code, body)
    }

    pub(crate) fn status(&self) -> Value {
        let (code, body) = self.get("/api/status");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Polls `/api/status` until `cond` holds; on timeout, fails with the status and the log.
    pub(crate) fn wait_for(&self, what: &str, secs: u64, cond: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.status();
            if cond(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {secs}s\n--- status\n{s:#}\n--- log\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig}");
    }

    /// Waits for the process to exit; its exit code, or a failure after `secs`.
    pub(crate) fn wait_exit(&mut self, secs: u64) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "watch did not exit within {secs}s:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn account<'a>(status: &'a Value, address: &str) -> Option<&'a Value> {
    status["accounts"]
        .as_array()?
        .iter()
        .find(|a| a["address"] == address)
}

pub(crate) fn resource<'a>(status: &'a Value, id: &str) -> Option<&'a Value> {
    status["resources"]
        .as_array()?
        .iter()
        .find(|r| r["id"] == id)
}

/// The account's mail is recorded as copied, `messages` of them, and no run is in flight.
pub(crate) fn migrated(status: &Value, address: &str, messages: u64) -> bool {
    let mail = resource(status, &format!("account/{address}/mail"));
    account(status, address).is_some_and(|a| {
        a["messages_migrated"] == messages && a["state"] == "idle" && a["health"] == "synced"
    }) && mail.is_some_and(|m| m["status"] == "done")
}

/// A copy has started and has a full batch (100 messages, slowed down by the proxy) or more
/// to go: a signal sent now lands in the middle of it.
pub(crate) fn copy_under_way(a: &Value) -> bool {
    let copied = a["copy"]["copied"].as_u64().unwrap_or(0);
    let to_copy = a["copy"]["to_copy"].as_u64().unwrap_or(0);
    a["state"] == "running" && copied > 0 && copied + 100 <= to_copy
}

pub(crate) fn mailshift(dir: &Path, args: &[&str]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mailshift"));
    cmd.args(args).current_dir(dir);
    for (k, v) in env() {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

pub(crate) fn assert_no_secret_in(logs: &[String]) {
    for (i, log) in logs.iter().enumerate() {
        assert!(!log.is_empty(), "log {i} is empty");
        for secret in SECRETS {
            assert!(
                !log.contains(secret),
                "log {i} contains the secret {secret:?}:\n{log}"
            );
        }
    }
}

/// The "done when": an account added by atomic rename is migrated and listed within
/// seconds; SIGTERM in the middle of an added account's copy exits 0 at a checkpoint; a restart
/// finishes the copy and `verify` finds every message exactly once. Along the way: an invalid
/// plan change is refused and the running plan kept, the interval re-sync picks up new mail,
/// the logs are JSON lines, and no log holds a secret.
#[test]
fn added_account_is_migrated_sigterm_mid_copy_resumes_and_verify_passes() {
    let (src, dst) = servers();
    // The destination behind a proxy that can slow the copy down to catch it mid-way.
    let proxy = FaultProxy::to_port(dst.port());
    seed(&src, "alice", ALICE_OLD, 0, 20, 2_000);
    seed(&src, "bob", BOB_OLD, 0, 10, 2_000);
    seed(&src, "carol", CAROL_OLD, 0, 600, 4_000);
    let dir = tempfile::tempdir().unwrap();
    let options = "sync_interval: 2s, connections_per_account: 1";
    let port = proxy.port();
    replace_plan(dir.path(), &plan(src.port(), port, options, &["alice"]));

    let mut first = Watch::start(
        dir.path(),
        "watch-1.jsonl",
        &["--log-format", "json", "--token", "{env: WATCH_TOKEN}"],
    )
    .with_token();
    let s = first.wait_for("alice migrated", 30, |s| {
        migrated(s, "alice@example.com", 20)
    });
    assert_eq!(s["plan"]["generation"], 1);
    // The token is needed on every route but /healthz.
    assert_eq!(http_get(&first.addr, "/api/status", None).0, 401);
    assert_eq!(http_get(&first.addr, "/healthz", None).0, 200);

    // An invalid change is reported and ignored.
    let mut broken = plan(src.port(), port, options, &["alice", "bob"]);
    broken = broken.replacen("to: new", "to: nowhere", 2);
    replace_plan(dir.path(), &broken);
    let s = first.wait_for("the invalid plan reported", 10, |s| {
        s["plan"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("unknown platform `nowhere`"))
    });
    assert_eq!(s["plan"]["generation"], 1, "{s:#}");
    assert!(account(&s, "bob@example.com").is_none(), "{s:#}");
    assert!(
        first.get("/").1.contains("id=\"plan-error\""),
        "the page shows the refusal"
    );

    // bob added by rename: listed, then migrated, within seconds.
    let added = Instant::now();
    replace_plan(
        dir.path(),
        &plan(src.port(), port, options, &["alice", "bob"]),
    );
    first.wait_for("bob listed", 5, |s| {
        account(s, "bob@example.com").is_some() && s["plan"]["error"].is_null()
    });
    let s = first.wait_for("bob migrated", 15, |s| migrated(s, "bob@example.com", 10));
    eprintln!("bob added and migrated in {:?}", added.elapsed());
    assert_eq!(s["plan"]["generation"], 2);

    let (code, metrics) = first.get("/metrics");
    assert_eq!(code, 200);
    for line in [
        "mailshift_messages_copied_total{account=\"alice@example.com\"} 20",
        "mailshift_messages_copied_total{account=\"bob@example.com\"} 10",
        "mailshift_plan_reloads_total{result=\"rejected\"} 1",
        "mailshift_errors_total{resource=\"plan\",kind=\"invalid-plan\"} 1",
        "mailshift_account_sync_lag_seconds{account=\"bob@example.com\"}",
        "# TYPE mailshift_api_call_duration_seconds histogram",
        "mailshift_step_duration_seconds_count{kind=\"mail\"}",
    ] {
        assert!(metrics.contains(line), "no {line:?} in\n{metrics}");
    }

    // The interval re-sync brings new mail.
    seed(&src, "alice", ALICE_OLD, 20, 5, 2_000);
    first.wait_for("alice's new mail synced", 15, |s| {
        migrated(s, "alice@example.com", 25)
    });

    // carol's 600 messages, slowed down on their way: SIGTERM lands in the middle of the copy.
    proxy.set(Fault::Delay { per_chunk_ms: 30 });
    replace_plan(
        dir.path(),
        &plan(src.port(), port, options, &["alice", "bob", "carol"]),
    );
    let s = first.wait_for("carol's copy under way", 30, |s| {
        account(s, "carol@example.com").is_some_and(copy_under_way)
    });
    let copied_before = account(&s, "carol@example.com").unwrap()["copy"]["copied"].clone();
    let stop = Instant::now();
    first.signal("TERM");
    assert_eq!(first.wait_exit(30), 0, "{}", first.log_text());
    eprintln!(
        "stopped {:?} after SIGTERM, {copied_before} messages into the copy",
        stop.elapsed()
    );
    let first_log = first.log_text();
    assert!(
        first_log.contains("stopping at the next checkpoint")
            && first_log.contains("stopped at a checkpoint: stopped after"),
        "{first_log}"
    );
    let (_, status) = mailshift(dir.path(), &["status", "plan.yaml"]);
    assert!(
        status.contains("in-progress"),
        "the copy was interrupted, so the state says in-progress:\n{status}"
    );

    // A restart finishes the copy.
    proxy.clear();
    let mut second = Watch::start(dir.path(), "watch-2.log", &[]);
    second.wait_for("carol's copy finished", 60, |s| {
        migrated(s, "carol@example.com", 600)
    });
    second.signal("TERM");
    assert_eq!(second.wait_exit(30), 0, "{}", second.log_text());

    let (code, out) = mailshift(dir.path(), &["verify", "plan.yaml"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(inbox_count(&dst, "carol", CAROL_NEW), 600, "no duplicate");
    assert_eq!(inbox_count(&dst, "bob", BOB_NEW), 10);
    assert_eq!(inbox_count(&dst, "alice", ALICE_NEW), 25);

    let logs = vec![first_log, second.log_text()];
    for line in logs[0].lines() {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string(),
            "{line}"
        );
    }
    assert_no_secret_in(&logs);
}

/// SIGHUP re-reads the plan (here the only way: `--no-file-watch`); a second SIGTERM exits at
/// once, mid-copy, and the state it leaves is valid: `apply` finishes and `verify` passes.
#[test]
fn sighup_rereads_the_plan_and_a_second_sigterm_exits_at_once() {
    let (src, dst) = servers();
    let proxy = FaultProxy::to_port(dst.port());
    let source_proxy = FaultProxy::to_port(src.port());
    seed(&src, "alice", ALICE_OLD, 0, 5, 1_000);
    seed(&src, "bob", BOB_OLD, 0, 400, 4_000);
    let dir = tempfile::tempdir().unwrap();
    let options = "connections_per_account: 1";
    replace_plan(
        dir.path(),
        &plan(source_proxy.port(), proxy.port(), options, &["alice"]),
    );
    let mut w = Watch::start(dir.path(), "watch-1.log", &["--no-file-watch"]);
    w.wait_for("alice migrated", 30, |s| {
        migrated(s, "alice@example.com", 5)
    });

    replace_plan(
        dir.path(),
        &plan(
            source_proxy.port(),
            proxy.port(),
            options,
            &["alice", "bob"],
        ),
    );
    std::thread::sleep(Duration::from_millis(1500));
    let s = w.status();
    assert!(
        account(&s, "bob@example.com").is_none(),
        "the file is not followed:\n{s:#}"
    );
    proxy.set(Fault::Delay { per_chunk_ms: 30 });
    w.signal("HUP");
    w.wait_for("bob's copy under way after SIGHUP", 20, |s| {
        account(s, "bob@example.com").is_some_and(copy_under_way)
    });
    // Hold every reply of both servers, then give the copy time to block on one: from
    // then on no batch can reach a checkpoint, so only the second signal can end the run.
    // (With a delay alone, the first signal sometimes found the copy between two batches and
    // stopped it cleanly, exit 0.)
    for p in [&proxy, &source_proxy] {
        p.set(Fault::Stall {
            direction: Direction::ToClient,
            after_bytes: 0,
            once: false,
        });
    }
    std::thread::sleep(Duration::from_millis(500));
    let stop = Instant::now();
    w.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    w.signal("TERM");
    assert_eq!(w.wait_exit(10), 130, "{}", w.log_text());
    assert!(
        stop.elapsed() < Duration::from_secs(3),
        "the second signal exits at once: {:?}",
        stop.elapsed()
    );
    let log = w.log_text();
    assert!(log.contains("SIGTERM again: exiting now"), "{log}");
    assert!(log.contains("re-read on SIGHUP"), "{log}");

    proxy.clear();
    source_proxy.clear();
    let (code, out) = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = mailshift(dir.path(), &["verify", "plan.yaml"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(inbox_count(&dst, "bob", BOB_NEW), 400);
    assert_no_secret_in(&[log, out]);
}

/// Off loopback a token is required before anything starts; with a token, every route but
/// /healthz needs it (bearer or Basic password), and SIGHUP re-reads it. A failing account
/// shows as such, with its error, a growing failure count and a next run in the future.
#[test]
fn http_token_listen_policy_and_a_failing_account() {
    let dir = tempfile::tempdir().unwrap();
    // dave's passwords are in no variable: every run fails at once, before connecting.
    replace_plan(dir.path(), &plan(1, 1, "sync_interval: 1h", &["dave"]));
    let (code, out) = mailshift(dir.path(), &["watch", "plan.yaml", "--listen", "0.0.0.0:0"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("not a loopback address") && out.contains("--token"),
        "{out}"
    );
    let (code, out) = mailshift(dir.path(), &["watch", "plan.yaml", "--token", TOKEN]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("visible to every user"), "{out}");
    assert!(
        !out.contains(TOKEN),
        "the refusal does not echo the token: {out}"
    );

    std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
    let mut w = Watch::start(
        dir.path(),
        "watch.log",
        &["--token", "{file: token}", "--log-level", "debug"],
    );
    let addr = w.addr.clone();
    let (code, _, body) = http_get(&addr, "/healthz", None);
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    for path in ["/", "/api/status", "/metrics"] {
        let (code, head, _) = http_get(&addr, path, None);
        assert_eq!(code, 401, "{path}");
        assert!(head.contains("www-authenticate: basic"), "{head}");
        assert_eq!(http_get(&addr, path, Some("Bearer wrong")).0, 401, "{path}");
        assert_eq!(
            http_get(&addr, path, Some(&format!("Bearer {TOKEN}"))).0,
            200,
            "{path}"
        );
    }
    let basic = base64_encode(format!("anyone:{TOKEN}").as_bytes());
    assert_eq!(http_get(&addr, "/", Some(&format!("Basic {basic}"))).0, 200);

    w = w.with_token();
    // A secret that cannot be read is not retried on a timer: it waits for SIGHUP.
    let s = w.wait_for("a failed run", 30, |s| {
        account(s, "dave@example.com")
            .is_some_and(|a| a["failures"].as_u64() >= Some(1) && a["state"] == "idle")
    });
    let a = account(&s, "dave@example.com").unwrap();
    assert_eq!(a["health"], "failing", "{s:#}");
    assert_eq!(a["error_kind"], "config", "{s:#}");
    assert!(
        a["last_error"].as_str().is_some_and(|e| e.starts_with(
            "waiting for a plan change or SIGHUP: the plan cannot be carried out as written: "
        ) && e
            .contains("cannot read secret from env DAVE_OLD: the variable is not set")),
        "{s:#}"
    );
    assert!(a["next_run"].is_null(), "{s:#}");
    let mail = resource(&s, "account/dave@example.com/mail").unwrap();
    assert_eq!(mail["status"], "failed", "{s:#}");
    let (_, metrics) = w.get("/metrics");
    assert!(
        metrics.contains("mailshift_errors_total{resource=\"mail\",kind=\"config\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mailshift_steps{status=\"failed\"} 1"),
        "{metrics}"
    );

    // A new token on SIGHUP; the old one stops working.
    std::fs::write(dir.path().join("token"), "rotated-token\n").unwrap();
    w.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while http_get(&addr, "/api/status", Some("Bearer rotated-token")).0 != 200 {
        assert!(Instant::now() < deadline, "{}", w.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        http_get(&addr, "/api/status", Some(&format!("Bearer {TOKEN}"))).0,
        401
    );
    // ... and SIGHUP ran dave again.
    w.auth = Some("Bearer rotated-token".into());
    w.wait_for("dave run again on SIGHUP", 10, |s| {
        account(s, "dave@example.com").is_some_and(|a| a["failures"].as_u64() >= Some(2))
    });
    w.signal("TERM");
    assert_eq!(w.wait_exit(20), 0, "{}", w.log_text());
    let log = w.log_text();
    assert!(log.contains("run failed"), "{log}");
    assert_no_secret_in(std::slice::from_ref(&log));
    assert!(!log.contains("rotated-token"), "{log}");
}

fn base64_encode(bytes: &[u8]) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The status page in a real browser (Debian's headless Chromium): its rows are the accounts
/// of `/api/status`, in the same order (failures first) with the same status, and a screenshot
/// is kept for people to look at. Without Chromium the test says so loudly and passes, except
/// under CI (`CI` set), where a missing browser is a failure: `.ci/run` installs it.
#[test]
fn status_page_in_headless_chromium_matches_the_api() {
    let Some(chromium) = ["chromium", "chromium-browser"].into_iter().find(|b| {
        Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "Chromium is missing under CI: scripts/install-deps.sh installs it"
        );
        eprintln!(
            "\n!!!!!!!! SKIPPED status_page_in_headless_chromium_matches_the_api: no `chromium` \
             on PATH (apt-get install chromium, or run scripts/install-deps.sh) !!!!!!!!\n"
        );
        return;
    };
    // bob has no account on the destination: his runs fail, and his row comes first.
    let src = Dovecot::start(DovecotConfig {
        users: &[("alice", ALICE_OLD), ("bob", BOB_OLD)],
        ..DovecotConfig::default()
    });
    let dst = Dovecot::start(DovecotConfig {
        users: &[("alice", ALICE_NEW)],
        ..DovecotConfig::default()
    });
    seed(&src, "alice", ALICE_OLD, 0, 12, 3_000);
    let dir = tempfile::tempdir().unwrap();
    // carol is paused in the plan: her row says so, and no server is asked about her.
    let text = plan(
        src.port(),
        dst.port(),
        "sync_interval: 1h",
        &["alice", "bob", "carol"],
    )
    .replace(
        "- address: carol@example.com\n",
        "- address: carol@example.com\n    paused: true\n",
    );
    replace_plan(dir.path(), &text);
    let mut w = Watch::start(dir.path(), "watch.log", &[]);
    let api = w.wait_for("alice synced, bob failing, carol paused", 30, |s| {
        migrated(s, "alice@example.com", 12)
            && account(s, "bob@example.com").is_some_and(|a| a["health"] == "failing")
            && account(s, "carol@example.com").is_some_and(|a| a["health"] == "paused-by-user")
    });
    let url = format!("http://{}/", w.addr);
    let profile = tempfile::tempdir().unwrap();
    let browser = |extra: &[&str]| {
        let out = Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                &format!("--user-data-dir={}", profile.path().display()),
            ])
            .args(extra)
            .arg(&url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Virtual time lets the page's refresh timer fire without waiting for it.
    let dom = browser(&["--virtual-time-budget=4000", "--dump-dom"]);
    assert!(
        dom.contains("data-live=\"1\"") && !dom.contains("data-refreshes=\"0\""),
        "the page's script ran (the CSP allows it) and refreshed the content\n{dom}"
    );
    let rows: Vec<(String, String)> = dom
        .split("<tr class=\"account ")
        .skip(1)
        .map(|row| {
            let attr = |name: &str| {
                let start = row.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                row[start..start + row[start..].find('"').unwrap()].to_string()
            };
            (attr("data-account"), attr("data-health"))
        })
        .collect();
    let want: Vec<(String, String)> = api["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["address"].as_str().unwrap().to_string(),
                a["health"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(rows, want, "page rows vs /api/status\n{dom}");
    assert_eq!(rows[0], ("bob@example.com".into(), "failing".into()));
    assert_eq!(
        rows[1],
        ("carol@example.com".into(), "paused-by-user".into())
    );
    assert!(
        dom.contains(">paused</span> <span class=\"meta\">by the plan (edit it to resume)"),
        "carol's row says paused, and by whom\n{dom}"
    );
    assert!(
        dom.contains("<title>(1 failing) mailshift: 3 accounts</title>"),
        "{dom}"
    );
    assert!(
        dom.contains("login as bob on 127.0.0.1"),
        "bob's error is shown\n{dom}"
    );

    let artifacts = Path::new(env!("CARGO_BIN_EXE_mailshift"))
        .ancestors()
        .nth(2)
        .unwrap()
        .join("test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("watch-status-page.png");
    let _ = std::fs::remove_file(&shot);
    browser(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1280,720",
    ]);
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{}",
        shot.display()
    );
    eprintln!("status page screenshot: {}", shot.display());
    w.signal("TERM");
    assert_eq!(w.wait_exit(20), 0);
}

/// A manual step (the rename of a plain IMAP source) holds its account back until it is
/// acknowledged; while the daemon holds the state, that is done over its HTTP API.
#[test]
fn a_manual_step_acknowledged_over_http_lets_its_account_go_on() {
    let (src, dst) = servers();
    seed(&src, "alice", ALICE_OLD, 0, 3, 200);
    let dir = tempfile::tempdir().unwrap();
    let text = plan(src.port(), dst.port(), "", &["alice"]).replace(
        "    from: old\n",
        "    from: old\n    rename_to: alice.old@example.com\n",
    );
    std::fs::write(dir.path().join("plan.yaml"), text).unwrap();
    let w = Watch::start(dir.path(), "watch.log", &[]);
    let id = "account/alice@example.com/rename";
    w.wait_for("the rename listed as a manual step", 20, |s| {
        resource(s, id).is_some()
    });
    assert!(!migrated(&w.status(), "alice@example.com", 3));

    // Held by the daemon: `mailshift ack` says where to go instead.
    let (code, out) = mailshift(dir.path(), &["ack", "plan.yaml", id]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("POST /api/ack/{id}")), "{out}");

    let (code, _, body) = http_request(
        "POST",
        &w.addr,
        &format!("/api/ack/{id}"),
        Some("Origin: http://evil.example"),
    );
    assert_eq!(code, 403, "a web page may not acknowledge: {body}");
    let (code, _, body) = http_request(
        "POST",
        &w.addr,
        "/api/ack/account/alice@example.com/mail",
        None,
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("is not a manual step"), "{body}");
    let (code, _, body) = http_request("POST", &w.addr, &format!("/api/ack/{id}"), None);
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with(&format!("Acknowledged {id}")), "{body}");
    w.wait_for("alice migrated once the rename is acknowledged", 20, |s| {
        migrated(s, "alice@example.com", 3)
    });
    assert_eq!(inbox_count(&dst, "alice", ALICE_NEW), 3);
}

/// A refused password is not retried every few seconds: the account waits for a plan change
/// or SIGHUP, and the status page and `/api/status` say why. Fixing the plan lets it go on.
#[test]
fn a_refused_password_waits_for_a_plan_change_and_says_why() {
    let (src, dst) = servers();
    seed(&src, "alice", ALICE_OLD, 0, 3, 1_000);
    let dir = tempfile::tempdir().unwrap();
    let good = plan(src.port(), dst.port(), "sync_interval: 1h", &["alice"]);
    // bob's destination password for alice: the destination refuses it.
    let wrong = good.replace("{env: ALICE_NEW}", "{env: BOB_NEW}");
    assert_ne!(good, wrong);
    replace_plan(dir.path(), &wrong);
    let w = Watch::start(dir.path(), "watch.log", &[]);
    let s = w.wait_for("the refused login reported", 20, |s| {
        account(s, "alice@example.com").is_some_and(|a| a["failures"] == 1 && a["state"] == "idle")
    });
    let a = account(&s, "alice@example.com").unwrap();
    let error = a["last_error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("waiting for a plan change or SIGHUP: the password was refused: ")
            && error.contains("login as alice on 127.0.0.1"),
        "{s:#}"
    );
    assert_eq!(a["error_kind"], "auth", "{s:#}");
    assert!(a["next_run"].is_null(), "{s:#}");
    let (_, page) = w.get("/");
    assert!(
        page.contains("waiting for a plan change or SIGHUP: the password was refused"),
        "{page}"
    );
    let (_, metrics) = w.get("/metrics");
    assert!(
        metrics.contains("mailshift_errors_total{resource=\"mail\",kind=\"auth\"} 1"),
        "{metrics}"
    );

    // A failure backing off would have been retried within 5 s.
    std::thread::sleep(Duration::from_secs(6));
    let a = account(&w.status(), "alice@example.com").unwrap().clone();
    assert_eq!(
        a["failures"],
        1,
        "retried on a timer: {a:#}\n{}",
        w.log_text()
    );
    assert_eq!(
        w.log_text().matches("run failed").count(),
        1,
        "{}",
        w.log_text()
    );

    replace_plan(dir.path(), &good);
    w.wait_for("alice migrated once the plan has her password", 20, |s| {
        migrated(s, "alice@example.com", 3)
    });
    assert_eq!(inbox_count(&dst, "alice", ALICE_NEW), 3);
    assert_no_secret_in(&[w.log_text()]);
}
