//! OAuth2 logins that last a migration, end to end: `mailshift` against a local OAuth2
//! server (`provider_sim::oauth`) and a Dovecot that checks every XOAUTH2 token through the
//! server's introspection, so a token works only while the server says it is active. Each
//! flow is driven as a user would (`mailshift auth login`, then `apply`), and the secrets
//! involved are looked for where they must never be: output, the state, `plan`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use provider_sim::oauth::{
    Client, GRANT_CLIENT_CREDENTIALS, GRANT_DEVICE_CODE, GRANT_JWT_BEARER, GRANT_REFRESH_TOKEN,
    OAuthConfig, OAuthServer, ServiceAccount, TEST_OTHER_KEY, TEST_SERVICE_ACCOUNT_KEY,
    TEST_SERVICE_ACCOUNT_PUBLIC_KEY,
};

use crate::common::{Output, mailshift_env};
use crate::support::dovecot::{Dovecot, DovecotConfig};
use crate::support::faultproxy::{Fault, FaultProxy};

const USER: &str = "alice@example.test";
const SRC_PW: &str = "src-Pa55word";
const DST_PW: &str = "dst-Pa55word";
const APP_ID: &str = "mailshift-app";
const APP_SECRET: &str = "app-secret-value-1234";
const PUBLIC_ID: &str = "mailshift-public";
const SA_EMAIL: &str = "migrator@project.iam.gserviceaccount.test";

/// The source (passwords) and a destination that takes only what the OAuth2 server vouches
/// for (passwords too, for the test's own checks).
fn servers(introspection: &str) -> (Dovecot, Dovecot) {
    let src = Dovecot::start(DovecotConfig {
        users: &[(USER, SRC_PW)],
        ..DovecotConfig::default()
    });
    let dst = Dovecot::start(DovecotConfig {
        users: &[(USER, DST_PW)],
        oauth2: Some(introspection),
        ..DovecotConfig::default()
    });
    (src, dst)
}

fn config(lifetime: Duration) -> OAuthConfig {
    OAuthConfig {
        token_lifetime: lifetime,
        clients: vec![
            Client::app_only(APP_ID, APP_SECRET, "example.test"),
            Client::public(PUBLIC_ID),
        ],
        service_accounts: vec![
            ServiceAccount::from_pem(SA_EMAIL, TEST_SERVICE_ACCOUNT_PUBLIC_KEY).unwrap(),
        ],
        users: vec![USER.to_string()],
        ..OAuthConfig::default()
    }
}

fn message(n: usize, size: usize) -> Vec<u8> {
    let mut m = format!(
        "From: Bob <bob@example.org>\r\nTo: {USER}\r\nSubject: message {n}\r\nMessage-ID: <m{n}@example.org>\r\n\r\n"
    )
    .into_bytes();
    while m.len() < size {
        m.extend_from_slice(
            format!("line {n} of a body long enough to take a while\r\n").as_bytes(),
        );
    }
    m
}

fn seed(src: &Dovecot, range: std::ops::Range<usize>, size: usize) {
    let mut c = src.login(USER, SRC_PW);
    for n in range {
        c.append("INBOX", &[], None, &message(n, size)).unwrap();
    }
    c.logout().unwrap();
}

/// The Message-IDs in the destination's INBOX, sorted (duplicates kept).
fn dest_ids(dst: &Dovecot) -> Vec<String> {
    let mut c = dst.login(USER, DST_PW);
    let mut ids: Vec<String> = c
        .uid_fetch_all("INBOX")
        .unwrap()
        .iter()
        .map(|m| {
            let text = String::from_utf8_lossy(&m.bytes).into_owned();
            text.lines()
                .find_map(|l| l.strip_prefix("Message-ID: ").map(str::to_string))
                .unwrap_or_default()
        })
        .collect();
    c.logout().unwrap();
    ids.sort();
    ids
}

fn expected_ids(n: usize) -> Vec<String> {
    let mut ids: Vec<String> = (0..n).map(|i| format!("<m{i}@example.org>")).collect();
    ids.sort();
    ids
}

/// A plan from the source to the destination (at `dst_port`), the destination logging in
/// with `oauth2` (a YAML block, indented for the platform).
fn write_plan(dir: &Path, src: &Dovecot, dst_port: u16, oauth2: &str) {
    let plan = format!(
        "version: 1
platforms:
  old: {{type: imap, imap: {{host: 127.0.0.1, port: {}, security: none}}}}
  new:
    type: imap
    imap: {{host: 127.0.0.1, port: {dst_port}, security: none}}
    oauth2:
{oauth2}
accounts:
  - address: {USER}
    from: old
    to: new
    source: {{login: {USER}, password: {{env: SRC_PW}}}}
    destination: {{login: {USER}}}
",
        src.port()
    );
    std::fs::write(dir.join("plan.yaml"), plan).unwrap();
}

fn run(dir: &Path, args: &[&str]) -> Output {
    mailshift_env(
        dir,
        args,
        &[
            ("SRC_PW", SRC_PW),
            ("APP_SECRET", APP_SECRET),
            ("MAILSHIFT_TOKEN_STORE", ""),
        ],
    )
}

fn spawn(dir: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_mailshift"))
        .args(args)
        .current_dir(dir)
        .env("SRC_PW", SRC_PW)
        .env("APP_SECRET", APP_SECRET)
        .env_remove("MAILSHIFT_TOKEN_STORE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Lines of the child's stdout as they come, and its stderr collected at the end.
fn stdout_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_line(
    rx: &mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    pred: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                seen.push(line.clone());
                if pred(&line) {
                    return line;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    panic!("the line never came; output so far:\n{}", seen.join("\n"));
}

fn finish(mut child: Child, rx: mpsc::Receiver<String>, mut seen: Vec<String>) -> Output {
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the command did not end");
        std::thread::sleep(Duration::from_millis(50));
    };
    seen.extend(rx.try_iter());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    Output {
        code: status.code().unwrap_or(-1),
        stdout: seen.join("\n") + "\n",
        stderr,
    }
}

/// Every secret the server handed out, and the client's: none may show anywhere.
fn secrets(server: &OAuthServer) -> Vec<String> {
    let mut s = vec![APP_SECRET.to_string()];
    for i in server.issued() {
        s.push(i.access_token);
        s.extend(i.refresh_token);
    }
    s
}

fn assert_no_secret(server: &OAuthServer, what: &str, text: &str) {
    for s in secrets(server) {
        assert!(!text.contains(&s), "a secret shows in {what}:\n{text}");
    }
}

fn assert_state_has_no_secret(server: &OAuthServer, dir: &Path) {
    let state = std::fs::read(dir.join(".mailshift/state.redb")).unwrap();
    for s in secrets(server) {
        assert!(
            !state.windows(s.len()).any(|w| w == s.as_bytes()),
            "a secret is in the state file"
        );
    }
}

fn grants(server: &OAuthServer, grant: &str) -> usize {
    server.issued().iter().filter(|i| i.grant == grant).count()
}

const CLIENT_CREDENTIALS: &str = "      flow: client-credentials
      client_id: mailshift-app
      client_secret: {env: APP_SECRET}
      scopes: [\"https://outlook.office365.com/.default\"]";

fn endpoints(server: &OAuthServer) -> String {
    format!(
        "      token_url: {}\n      device_authorization_url: {}\n      authorization_url: {}",
        server.token_url(),
        server.device_authorization_url(),
        server.authorization_url()
    )
}

#[test]
fn client_credentials_tokens_expiring_during_a_copy_are_renewed_and_the_copy_is_exact() {
    let server = OAuthServer::start(config(Duration::from_secs(2))).unwrap();
    let (src, dst) = servers(&server.introspection_url());
    // Slow enough that the copy outlives tokens; connections cut after an expiry log in again.
    let proxy = FaultProxy::to_port(dst.port());
    proxy.set(Fault::Delay { per_chunk_ms: 60 });
    const N: usize = 300;
    seed(&src, 0..N, 3000);
    let dir = tempfile::tempdir().unwrap();
    write_plan(
        dir.path(),
        &src,
        proxy.port(),
        &format!("{CLIENT_CREDENTIALS}\n{}", endpoints(&server)),
    );

    let started = Instant::now();
    let mut child = spawn(dir.path(), &["apply", "plan.yaml"]);
    let rx = stdout_lines(&mut child);
    // After each of the first two expiries, cut every destination connection while the
    // copy runs: the reconnections must log in with a new token. (More cuts only slow the
    // test down.)
    let mut cuts_after_expiry = 0;
    let mut cut_for = None;
    while child.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(100));
        let Some(newest) = server.issued().last().cloned() else {
            continue;
        };
        let landed = dst.stored_messages(USER);
        if cuts_after_expiry < 2
            && newest.expires_at < std::time::SystemTime::now()
            && cut_for.as_ref() != Some(&newest.access_token)
            && landed > 0
            && landed < N
            && proxy.cut_all() > 0
        {
            cuts_after_expiry += 1;
            cut_for = Some(newest.access_token);
        }
    }
    let out = finish(child, rx, Vec::new());
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert!(
        cuts_after_expiry >= 1,
        "the copy ended before a token expired: nothing was tested ({})",
        out.transcript()
    );
    assert_eq!(
        dest_ids(&dst),
        expected_ids(N),
        "every message exactly once"
    );
    // A token per lifetime at most, not one per connection: the first, and the renewals.
    let issued = grants(&server, GRANT_CLIENT_CREDENTIALS);
    assert!(issued >= 2, "no renewal: {issued} token(s)");
    let elapsed = started.elapsed().as_secs() as usize;
    assert!(
        issued <= elapsed / 2 + 2,
        "{issued} tokens in {elapsed} s: one per connection?"
    );
    // Dovecot asked the server at each login and refused nothing it should have taken.
    assert!(server.introspections().len() >= issued);
    assert_no_secret(&server, "apply's output", &out.transcript());
    assert_state_has_no_secret(&server, dir.path());
    let plan = run(dir.path(), &["plan", "plan.yaml"]);
    assert_no_secret(&server, "plan's output", &plan.transcript());
}

#[test]
fn a_token_the_server_stops_accepting_is_replaced_at_the_next_login() {
    // Tokens last an hour: only the server's word ends them, so the cache still holds one
    // that the next login is refused with.
    let server = OAuthServer::start(config(Duration::from_secs(3600))).unwrap();
    let (src, dst) = servers(&server.introspection_url());
    let proxy = FaultProxy::to_port(dst.port());
    proxy.set(Fault::Delay { per_chunk_ms: 15 });
    const N: usize = 200;
    seed(&src, 0..N, 3000);
    let dir = tempfile::tempdir().unwrap();
    write_plan(
        dir.path(),
        &src,
        proxy.port(),
        &format!("{CLIENT_CREDENTIALS}\n{}", endpoints(&server)),
    );
    let mut child = spawn(dir.path(), &["apply", "plan.yaml"]);
    let rx = stdout_lines(&mut child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while dst.stored_messages(USER) == 0 {
        assert!(Instant::now() < deadline, "nothing was copied");
        std::thread::sleep(Duration::from_millis(50));
    }
    server.expire_access_tokens();
    let cut = proxy.cut_all();
    let out = finish(child, rx, Vec::new());
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert!(cut > 0);
    assert!(
        dst.stored_messages(USER) == N && dest_ids(&dst) == expected_ids(N),
        "every message exactly once"
    );
    // The refused login made the cache drop its token and get another.
    assert!(
        server.introspections().iter().any(|i| !i.active),
        "no login was refused: the expiry was not tested"
    );
    assert_eq!(grants(&server, GRANT_CLIENT_CREDENTIALS), 2);
}

/// Runs `mailshift auth login` for a device code, approving it through the server as the
/// person would in a browser. Returns the command's output.
fn device_login(dir: &Path, server: &OAuthServer) -> Output {
    let mut child = spawn(dir, &["auth", "login", "plan.yaml", USER]);
    let rx = stdout_lines(&mut child);
    let mut seen = Vec::new();
    let line = wait_line(&rx, &mut seen, |l| l.contains("enter the code"));
    let code = line.rsplit(' ').next().unwrap().to_string();
    assert!(line.contains(&format!("{}/device", server.url())), "{line}");
    // The person takes a moment: the command polls meanwhile and is told to wait.
    let pending = |s: &OAuthServer| {
        s.refusals()
            .iter()
            .filter(|r| r.error == "authorization_pending")
            .count()
    };
    let before = pending(server);
    let deadline = Instant::now() + Duration::from_secs(20);
    while pending(server) == before {
        assert!(Instant::now() < deadline, "the command does not poll");
        std::thread::sleep(Duration::from_millis(50));
    }
    server.approve_device(&code, USER).unwrap();
    finish(child, rx, seen)
}

const DEVICE_CODE: &str = "      flow: device-code
      client_id: mailshift-public
      scopes: [IMAP.AccessAsUser.All, offline_access]";

#[test]
fn device_code_signs_in_once_then_apply_runs_alone_and_a_revoked_grant_says_how_to_fix_it() {
    let server = OAuthServer::start(OAuthConfig {
        // Each refresh makes the previous refresh token useless: only the stored newest works.
        strict_rotation: true,
        ..config(Duration::from_secs(3600))
    })
    .unwrap();
    let (src, dst) = servers(&server.introspection_url());
    seed(&src, 0..20, 2000);
    let dir = tempfile::tempdir().unwrap();
    write_plan(
        dir.path(),
        &src,
        dst.port(),
        &format!("{DEVICE_CODE}\n{}", endpoints(&server)),
    );

    // Before signing in, apply names the fix.
    let before = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(before.code, 1, "{}", before.transcript());
    assert!(
        before
            .transcript()
            .contains(&format!("mailshift auth login plan.yaml {USER}")),
        "{}",
        before.transcript()
    );

    let login = device_login(dir.path(), &server);
    assert_eq!(login.code, 0, "{}", login.transcript());
    assert!(
        login.stdout.contains("Signed in as"),
        "{}",
        login.transcript()
    );
    let store = dir.path().join(".mailshift/tokens.json");
    let mode = std::fs::metadata(&store).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let stored = std::fs::read_to_string(&store).unwrap();
    let first_rt = server.issued()[0].refresh_token.clone().unwrap();
    assert!(stored.contains(&first_rt), "the refresh token is kept");
    assert!(
        server
            .refusals()
            .iter()
            .any(|r| r.error == "authorization_pending")
    );

    let status = run(dir.path(), &["auth", "status", "plan.yaml"]);
    assert_eq!(status.code, 0, "{}", status.transcript());
    assert!(
        status.stdout.contains("signed in"),
        "{}",
        status.transcript()
    );

    // No person from here on: two runs, each refreshing with the newest refresh token.
    for _ in 0..2 {
        let out = run(dir.path(), &["apply", "plan.yaml"]);
        assert_eq!(out.code, 0, "{}", out.transcript());
        assert_no_secret(&server, "apply's output", &out.transcript());
    }
    assert_eq!(dest_ids(&dst), expected_ids(20));
    assert_eq!(grants(&server, GRANT_REFRESH_TOKEN), 2);
    assert_eq!(grants(&server, GRANT_DEVICE_CODE), 1);
    assert_state_has_no_secret(&server, dir.path());

    // An administrator revokes the sessions: the next run stops with the fix, exit 1,
    // and keeps what was copied.
    server.revoke_refresh_tokens(USER);
    seed(&src, 20..30, 2000);
    let revoked = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(revoked.code, 1, "{}", revoked.transcript());
    let text = revoked.transcript();
    assert!(
        text.contains(&format!(
            "the refresh token for {USER} was revoked or has expired: run `mailshift auth login plan.yaml {USER}`"
        )),
        "{text}"
    );
    assert!(text.contains("AADSTS50173"), "{text}");
    assert_no_secret(&server, "the failed run's output", &text);
    assert_eq!(
        dest_ids(&dst),
        expected_ids(20),
        "nothing lost, nothing added"
    );

    // Signing in again resumes: the new messages only, each once.
    let again = device_login(dir.path(), &server);
    assert_eq!(again.code, 0, "{}", again.transcript());
    let out = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert_eq!(dest_ids(&dst), expected_ids(30));
}

fn write_key(dir: &Path, name: &str, private_key: &str) {
    let key = serde_json::json!({
        "type": "service_account",
        "project_id": "project",
        "private_key_id": "test-key-1",
        "private_key": private_key,
        "client_email": SA_EMAIL,
        "client_id": "1234567890",
        "token_uri": "https://oauth2.googleapis.com/token",
    });
    std::fs::write(dir.join(name), key.to_string()).unwrap();
}

#[test]
fn a_service_account_impersonates_the_mailbox_and_a_wrong_key_is_a_clear_error() {
    let server = OAuthServer::start(config(Duration::from_secs(3600))).unwrap();
    let (src, dst) = servers(&server.introspection_url());
    seed(&src, 0..10, 2000);
    let dir = tempfile::tempdir().unwrap();
    write_key(dir.path(), "sa.json", TEST_SERVICE_ACCOUNT_KEY);
    write_key(dir.path(), "wrong.json", TEST_OTHER_KEY);
    let block = |file: &str| {
        format!(
            "      flow: service-account\n      service_account_key: {{file: {file}}}\n      scopes: [\"https://mail.google.com/\"]\n      token_url: {}",
            server.token_url()
        )
    };

    write_plan(dir.path(), &src, dst.port(), &block("wrong.json"));
    let wrong = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(wrong.code, 1, "{}", wrong.transcript());
    let text = wrong.transcript();
    assert!(text.contains("Invalid JWT Signature"), "{text}");
    assert!(
        text.contains("check that `service_account_key` is a current key"),
        "{text}"
    );
    assert_eq!(dst.stored_messages(USER), 0);

    // `auth login` checks a setup without a person: one token, nothing stored.
    write_plan(dir.path(), &src, dst.port(), &block("sa.json"));
    let check = run(dir.path(), &["auth", "login", "plan.yaml", USER]);
    assert_eq!(check.code, 0, "{}", check.transcript());
    assert!(
        check.stdout.contains("the service-account setup works"),
        "{}",
        check.transcript()
    );
    assert!(!dir.path().join(".mailshift/tokens.json").exists());

    let out = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert_eq!(dest_ids(&dst), expected_ids(10));
    let jwt = server.issued();
    let jwt: Vec<_> = jwt.iter().filter(|i| i.grant == GRANT_JWT_BEARER).collect();
    assert_eq!(jwt.len(), 2, "the check's token and the run's");
    assert!(jwt.iter().all(|i| i.user.as_deref() == Some(USER)));
    // Dovecot checked the run's token with the server at login.
    assert!(
        server
            .introspections()
            .iter()
            .any(|i| i.active && i.user.as_deref() == Some(USER))
    );
    assert_no_secret(&server, "apply's output", &out.transcript());
}

/// A GET as a browser makes it: the status and the `Location` header.
fn browser_get(url: &str) -> (u16, Option<String>) {
    let rest = url.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut s = TcpStream::connect(authority).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n",
        if path.is_empty() { "/" } else { path }
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let location = answer.lines().find_map(|l| {
        l.split_once(':')
            .filter(|(k, _)| k.eq_ignore_ascii_case("location"))
            .map(|(_, v)| v.trim().to_string())
    });
    (status, location)
}

#[test]
fn the_loopback_flow_comes_back_from_the_browser_and_is_kept() {
    let server = OAuthServer::start(config(Duration::from_secs(3600))).unwrap();
    let (src, dst) = servers(&server.introspection_url());
    seed(&src, 0..5, 2000);
    let dir = tempfile::tempdir().unwrap();
    write_plan(
        dir.path(),
        &src,
        dst.port(),
        &format!(
            "      flow: loopback\n      client_id: {PUBLIC_ID}\n      scopes: [\"https://mail.google.com/\"]\n{}",
            endpoints(&server)
        ),
    );
    let mut child = spawn(dir.path(), &["auth", "login", "plan.yaml", USER]);
    let rx = stdout_lines(&mut child);
    let mut seen = Vec::new();
    let url = wait_line(&rx, &mut seen, |l| {
        l.starts_with(&server.authorization_url())
    });
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    // The test is the browser: the server redirects to the loopback port, which answers.
    let (status, location) = browser_get(&url);
    assert_eq!(status, 302);
    let location = location.unwrap();
    assert!(location.starts_with("http://127.0.0.1:"), "{location}");
    let (status, _) = browser_get(&location);
    assert_eq!(status, 200);
    let out = finish(child, rx, seen);
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert!(out.stdout.contains("Signed in as"), "{}", out.transcript());

    let apply = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(apply.code, 0, "{}", apply.transcript());
    assert_eq!(dest_ids(&dst), expected_ids(5));
    assert_eq!(grants(&server, GRANT_REFRESH_TOKEN), 1);
    assert_no_secret(
        &server,
        "the outputs",
        &(out.transcript() + &apply.transcript()),
    );
}

#[test]
fn a_token_store_others_can_read_is_refused() {
    let server = OAuthServer::start(config(Duration::from_secs(3600))).unwrap();
    let (src, dst) = servers(&server.introspection_url());
    let dir = tempfile::tempdir().unwrap();
    write_plan(
        dir.path(),
        &src,
        dst.port(),
        &format!("{DEVICE_CODE}\n{}", endpoints(&server)),
    );
    let login = device_login(dir.path(), &server);
    assert_eq!(login.code, 0, "{}", login.transcript());
    let store = dir.path().join(".mailshift/tokens.json");
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(out.code, 1, "{}", out.transcript());
    assert!(
        out.transcript().contains("chmod 600"),
        "{}",
        out.transcript()
    );
    assert_no_secret(&server, "apply's output", &out.transcript());
}

#[test]
fn one_app_only_token_serves_every_mailbox_of_the_tenant() {
    // An app-only token is the app's: three mailboxes, one token request, not three.
    let users = ["ann@example.test", "bob@example.test", "cat@example.test"];
    let server = OAuthServer::start(OAuthConfig {
        users: users.iter().map(|u| u.to_string()).collect(),
        ..config(Duration::from_secs(3600))
    })
    .unwrap();
    let src = Dovecot::start(DovecotConfig {
        users: &[(users[0], SRC_PW), (users[1], SRC_PW), (users[2], SRC_PW)],
        ..DovecotConfig::default()
    });
    let dst = Dovecot::start(DovecotConfig {
        users: &[(users[0], DST_PW), (users[1], DST_PW), (users[2], DST_PW)],
        oauth2: Some(&server.introspection_url()),
        ..DovecotConfig::default()
    });
    for (k, u) in users.iter().enumerate() {
        let mut c = src.login(u, SRC_PW);
        for n in 0..5 {
            c.append("INBOX", &[], None, &message(k * 100 + n, 500))
                .unwrap();
        }
        c.logout().unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let accounts: String = users
        .iter()
        .map(|u| {
            format!(
                "  - address: {u}\n    from: old\n    to: new\n    source: {{password: {{env: SRC_PW}}}}\n"
            )
        })
        .collect();
    let plan = format!(
        "version: 1
platforms:
  old: {{type: imap, imap: {{host: 127.0.0.1, port: {}, security: none}}}}
  new:
    type: imap
    imap: {{host: 127.0.0.1, port: {}, security: none}}
    oauth2:
{CLIENT_CREDENTIALS}
{}
accounts:
{accounts}",
        src.port(),
        dst.port(),
        endpoints(&server)
    );
    std::fs::write(dir.path().join("plan.yaml"), plan).unwrap();
    let out = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(out.code, 0, "{}", out.transcript());
    for u in users {
        let mut c = dst.login(u, DST_PW);
        let boxes = c.mailboxes().unwrap();
        let inbox = boxes
            .iter()
            .find(|(f, _)| f.as_str() == "INBOX")
            .map(|(_, m)| m.len());
        assert_eq!(inbox, Some(5), "{u}: {}", out.transcript());
    }
    assert_eq!(grants(&server, GRANT_CLIENT_CREDENTIALS), 1);
    assert!(server.introspections().len() >= users.len());
}
