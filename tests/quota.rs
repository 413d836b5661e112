//! Daily limits (Gmail's IMAP bandwidth) end to end, on real Dovecot servers: a copy that
//! reaches the plan's `limits.daily_upload` pauses with its time and exit code 75, a run before
//! that time writes nothing and contacts no server, a run after it (the clock moved with
//! `MAILSHIFT_TEST_NOW`, read by debug builds only) finishes exactly; Gmail's own
//! `[OVERQUOTA] Account exceeded command or bandwidth limits` pauses the account the same way;
//! a full mailbox still fails; `watch` resumes a paused account at its time.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::dovecot::{Dovecot, DovecotConfig};
use crate::support::imap::ImapClient;
use crate::support::quotaproxy::QuotaProxy;

const OLD_PW: &str = "old-Qu0ta-pw";
const NEW_PW: &str = "new-Qu0ta-pw";
const MAIL_ID: &str = "account/alice@example.com/mail";
/// What `apply` exits with when a copy paused and nothing failed (sysexits' EX_TEMPFAIL).
const PAUSED: i32 = 75;
/// Messages of 20,000 bytes: 15 fit in a 300,000-byte day.
const SIZE: usize = 20_000;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn text(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn mailshift(dir: &Path, args: &[&str], now: Option<&str>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mailshift"));
    cmd.args(args)
        .current_dir(dir)
        .env("ALICE_OLD", OLD_PW)
        .env("ALICE_NEW", NEW_PW);
    if let Some(now) = now {
        cmd.env("MAILSHIFT_TEST_NOW", now);
    }
    let out = cmd.output().expect("run mailshift");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn apply(dir: &Path, now: Option<&str>) -> Run {
    mailshift(dir, &["apply", "plan.yaml"], now)
}

fn servers(dest: DovecotConfig<'_>) -> (Dovecot, Dovecot) {
    let src = Dovecot::start(DovecotConfig {
        users: &[("alice", OLD_PW)],
        extra: "mail_fsync = never\n",
        ..DovecotConfig::default()
    });
    let dst = Dovecot::start(DovecotConfig {
        separator: '.',
        users: &[("alice", NEW_PW)],
        ..dest
    });
    (src, dst)
}

/// Alice from `src_port` to `dst_port`; `limits` is the destination platform's `limits:`.
fn write_plan(dir: &Path, src_port: u16, dst_port: u16, limits: &str) {
    let plan = format!(
        "version: 1\nplatforms:\n  \
         old: {{type: imap, imap: {{host: 127.0.0.1, port: {src_port}, security: none}}}}\n  \
         new: {{type: imap, imap: {{host: 127.0.0.1, port: {dst_port}, security: none}}{limits}}}\n\
         accounts:\n  - address: alice@example.com\n    from: old\n    to: new\n    \
         source: {{login: alice, password: {{env: ALICE_OLD}}}}\n    \
         destination: {{login: alice, password: {{env: ALICE_NEW}}}}\n"
    );
    std::fs::write(dir.join("plan.yaml"), plan).unwrap();
}

/// A message of `size` bytes exactly (CRLF lines), different for every `n`.
fn message(n: usize, size: usize) -> Vec<u8> {
    let mut m = format!(
        "From: Bob <bob@example.org>\r\nTo: alice@example.com\r\nSubject: quota {n}\r\n\
         Message-ID: <q{n}@example.org>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\n"
    )
    .into_bytes();
    let mut x = (n as u32).wrapping_mul(0x9e37_79b9) | 1;
    let mut letter = || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b'a' + (x % 26) as u8
    };
    while m.len() < size {
        let line = (size - m.len()).saturating_sub(2).clamp(1, 72);
        for _ in 0..line {
            m.push(letter());
        }
        m.extend_from_slice(b"\r\n");
    }
    assert_eq!(m.len(), size);
    m
}

fn seed(server: &Dovecot, folders: &[(&str, usize)]) -> usize {
    let mut c = server.login("alice", OLD_PW);
    let mut n = 0;
    for (folder, count) in folders {
        if *folder != "INBOX" {
            c.create(folder).unwrap();
        }
        for _ in 0..*count {
            let flags: &[&str] = if n % 3 == 0 { &["\\Seen"] } else { &[] };
            c.append(folder, flags, None, &message(n, SIZE)).unwrap();
            n += 1;
        }
    }
    c.logout().unwrap();
    n
}

/// Folder → sorted content digests: equal maps mean the same messages, each exactly once.
fn snapshot(server: &Dovecot, pass: &str) -> BTreeMap<String, Vec<String>> {
    let mut c: ImapClient = server.login("alice", pass);
    let mut out = BTreeMap::new();
    for (folder, msgs) in c.mailboxes().unwrap() {
        let mut digests: Vec<String> = msgs
            .iter()
            .map(|m| {
                let h = mailshift::transfer::imap::copy::content_hash(&m.bytes);
                h[..8].iter().map(|b| format!("{b:02x}")).collect()
            })
            .collect();
        digests.sort();
        out.insert(folder.replace('.', "/"), digests);
    }
    out
}

fn count(s: &BTreeMap<String, Vec<String>>) -> usize {
    s.values().map(Vec::len).sum()
}

/// Logins Dovecot has accepted so far.
fn logins(server: &Dovecot) -> usize {
    server.log().matches("Login: user=<alice>").count()
}

/// The pause the state records for alice's copy: (until, reason).
fn pause(dir: &Path) -> Option<(u64, String)> {
    let reader = mailshift::state::StateReader::open(&dir.join(".mailshift/state.redb")).unwrap();
    reader.pause(MAIL_ID).unwrap().map(|p| (p.until, p.reason))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn a_daily_upload_limit_pauses_the_copy_and_the_next_window_finishes_it_exactly() {
    let (src, dst) = servers(DovecotConfig::default());
    let total = seed(&src, &[("INBOX", 14), ("Archive", 10)]);
    let dir = tempfile::tempdir().unwrap();
    write_plan(
        dir.path(),
        src.port(),
        dst.port(),
        ", limits: {daily_upload: 300000}",
    );

    // `plan --refresh` says how long the first copy takes at this limit.
    let plan = mailshift(dir.path(), &["plan", "plan.yaml", "--refresh"], None);
    assert!(
        plan.stdout.contains(
            "480.0 KB to copy: about 2 days at platform `new`'s daily upload limit of 300.0 KB"
        ),
        "{}",
        plan.text()
    );

    let first = apply(dir.path(), None);
    assert_eq!(first.code, PAUSED, "{}", first.text());
    assert!(
        first.stdout.contains("paused  account/alice@example.com/mail: ")
            && first.stdout.contains(
                " UTC (platform `new`'s daily upload limit of 300.0 KB): run `mailshift apply` again after that"
            )
            && first.stdout.contains("Apply paused: "),
        "{}",
        first.text()
    );
    let got = snapshot(&dst, NEW_PW);
    let copied = count(&got);
    assert_eq!(copied, 15, "exactly what fits in 300,000 bytes: {got:?}");
    let (until, reason) = pause(dir.path()).expect("a pause is recorded");
    let now = unix_now();
    assert!(
        until > now + 23 * 3600 && until <= now + 25 * 3600,
        "a day's window: {until} vs {now}"
    );
    assert_eq!(reason, "platform `new`'s daily upload limit of 300.0 KB");

    // Right away: nothing written, no server contacted, the same time given.
    let (src_logins, dst_logins) = (logins(&src), logins(&dst));
    assert!(src_logins > 0 && dst_logins > 0, "Dovecot logs its logins");
    let again = apply(dir.path(), None);
    assert_eq!(again.code, PAUSED, "{}", again.text());
    assert!(
        again
            .stdout
            .contains("paused  account/alice@example.com/mail: paused until ")
            && again.stdout.contains("0 messages"),
        "{}",
        again.text()
    );
    assert_eq!(count(&snapshot(&dst, NEW_PW)), copied);
    assert_eq!(
        (logins(&src), logins(&dst) - 1),
        (src_logins, dst_logins),
        "the paused run logged in nowhere (the one login more is the snapshot's)"
    );
    let status = mailshift(dir.path(), &["status", "plan.yaml"], None);
    assert!(
        status.stdout.contains(
            "300.0 KB of platform `new`'s daily upload limit of 300.0 KB used in the last 24 hours"
        ) && status.stdout.contains("paused until "),
        "{}",
        status.text()
    );

    // A day later: the rest, each message once.
    let day = (until - now + 60).to_string();
    let last = apply(dir.path(), Some(&format!("+{day}")));
    assert_eq!(last.code, 0, "{}", last.text());
    assert!(last.stdout.contains("Apply complete"), "{}", last.text());
    assert_eq!(pause(dir.path()), None);
    let want = snapshot(&src, OLD_PW);
    assert_eq!(count(&want), total);
    assert_eq!(snapshot(&dst, NEW_PW), want);
}

#[test]
fn gmails_own_bandwidth_refusal_pauses_the_account_and_a_later_run_finishes_exactly() {
    // Like Gmail: no MULTIAPPEND, no LITERAL+ (the proxy needs synchronizing literals).
    let (src, dst) = servers(DovecotConfig {
        capabilities_override: Some(
            "IMAP4rev1 SASL-IR ID ENABLE IDLE UNSELECT CHILDREN NAMESPACE UIDPLUS \
             LIST-EXTENDED CONDSTORE ESEARCH LIST-STATUS MOVE SPECIAL-USE",
        ),
        ..DovecotConfig::default()
    });
    let total = seed(&src, &[("INBOX", 12), ("Sent", 8)]);
    // The server's count runs out after 10 messages; the plan sets no limit of its own.
    let proxy = QuotaProxy::start(dst.port(), 10 * SIZE as u64);
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), src.port(), proxy.port(), "");

    let first = apply(dir.path(), None);
    assert_eq!(first.code, PAUSED, "{}", first.text());
    assert!(proxy.refused() >= 1, "the limit was hit");
    assert!(
        first
            .stdout
            .contains("paused  account/alice@example.com/mail: ")
            && first
                .stdout
                .contains("Account exceeded command or bandwidth limits")
            && first
                .stdout
                .contains("run `mailshift apply` again after that")
            && !first.stdout.contains("FAILED"),
        "{}",
        first.text()
    );
    // What the server took before its count ran out (two workers may both have started an
    // APPEND under the limit), each once.
    let got = snapshot(&dst, NEW_PW);
    assert!(count(&got) >= 10, "{got:?}");
    assert_eq!(
        count(&got) as u64,
        proxy.appended() / SIZE as u64,
        "{got:?}"
    );
    let (until, _) = pause(dir.path()).expect("a pause is recorded");
    let now = unix_now();
    assert!(
        until >= now + 23 * 3600 && until <= now + 24 * 3600 + 60,
        "{until} vs {now}"
    );

    // The next day Gmail takes uploads again.
    proxy.lift();
    let last = apply(dir.path(), Some(&format!("+{}", until - now + 60)));
    assert_eq!(last.code, 0, "{}", last.text());
    let want = snapshot(&src, OLD_PW);
    assert_eq!(count(&want), total);
    assert_eq!(snapshot(&dst, NEW_PW), want);
}

#[test]
fn a_full_mailbox_still_fails_and_says_so() {
    let (src, dst) = servers(DovecotConfig {
        extra: "mail_plugins = $mail_plugins quota\nplugin {\n  quota = count:User quota\n  \
                quota_vsizes = yes\n  quota_rule = *:storage=100k\n}\n",
        ..DovecotConfig::default()
    });
    seed(&src, &[("INBOX", 10)]);
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), src.port(), dst.port(), "");
    let run = apply(dir.path(), None);
    assert_eq!(run.code, 1, "{}", run.text());
    assert!(
        run.stdout
            .contains("FAILED  alice@example.com: folder \"INBOX\"")
            && run.stdout.contains("uota exceeded")
            && !run.stdout.contains("paused"),
        "{}",
        run.text()
    );
    assert_eq!(pause(dir.path()), None);
}

#[test]
fn watch_resumes_a_paused_account_when_its_window_reopens() {
    let (src, dst) = servers(DovecotConfig::default());
    let total = seed(&src, &[("INBOX", 18)]);
    let dir = tempfile::tempdir().unwrap();
    write_plan(
        dir.path(),
        src.port(),
        dst.port(),
        ", limits: {daily_upload: 300000}",
    );
    let first = apply(dir.path(), None);
    assert_eq!(first.code, PAUSED, "{}", first.text());
    let (until, _) = pause(dir.path()).unwrap();

    // The daemon starts 4 seconds before the window reopens (its clock, not the machine's).
    let log = dir.path().join("watch.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailshift"))
        .args(["watch", "plan.yaml", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env("ALICE_OLD", OLD_PW)
        .env("ALICE_NEW", NEW_PW)
        .env("MAILSHIFT_TEST_NOW", (until - 4).to_string())
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    let mut seen_paused = false;
    let done = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if !seen_paused && text.contains("paused at a daily limit; next run in") {
            seen_paused = true;
            // Told when, and nothing copied before then.
            assert_eq!(count(&snapshot(&dst, NEW_PW)), 15, "{text}");
        }
        if count(&snapshot(&dst, NEW_PW)) == total {
            break text;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("not resumed within 60 s:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen_paused, "{done}");
    // Not before the time: the skipped run said when, then the copy came at least 3 s later.
    assert!(
        done.contains("next run in 3s") || done.contains("next run in 4s"),
        "{done}"
    );
    assert!(started.elapsed() >= Duration::from_secs(3), "{done}");
    assert_eq!(snapshot(&dst, NEW_PW), snapshot(&src, OLD_PW));
}
