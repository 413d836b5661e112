//! `mailshift apply` and `verify` against two real Dovecot servers: every message exactly
//! once, byte for byte, with flags and dates; incremental runs; resets; kill -9 at random
//! moments; filters; servers without the extensions we prefer; transport refusals.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::dovecot::{Dovecot, DovecotConfig};
use crate::support::imap::ImapClient;

const OLD_PW: &str = "old-Pa55word";
const NEW_PW: &str = "new-Pa55word";

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

fn mailshift(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_mailshift"))
        .args(args)
        .current_dir(dir)
        .env("ALICE_OLD", OLD_PW)
        .env("ALICE_NEW", NEW_PW)
        .output()
        .expect("run mailshift");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn servers(dest_caps: Option<&str>) -> (Dovecot, Dovecot) {
    let src = Dovecot::start(DovecotConfig {
        separator: '/',
        users: &[("alice", OLD_PW)],
        ..DovecotConfig::default()
    });
    let dst = Dovecot::start(DovecotConfig {
        separator: '.',
        users: &[("alice", NEW_PW)],
        capabilities_override: dest_caps,
        ..DovecotConfig::default()
    });
    (src, dst)
}

/// A plan between two local servers: `imap` settings per side (`security: none`...), text
/// before `platforms` (plan options), and accounts as (login, source env, destination env).
fn plan_yaml(
    src: (u16, &str),
    dst: (u16, &str),
    top: &str,
    accounts: &[(&str, &str, &str)],
) -> String {
    let mut plan = format!(
        "version: 1\n{top}platforms:\n  old: {{type: imap, imap: {{host: 127.0.0.1, port: {}, {}}}}}\n  new: {{type: imap, imap: {{host: 127.0.0.1, port: {}, {}}}}}\naccounts:\n",
        src.0, src.1, dst.0, dst.1
    );
    for (login, src_env, dst_env) in accounts {
        plan.push_str(&format!(
            "  - address: {login}@example.com\n    from: old\n    to: new\n    source: {{login: {login}, password: {{env: {src_env}}}}}\n    destination: {{login: {login}, password: {{env: {dst_env}}}}}\n"
        ));
    }
    plan
}

const ALICE: (&str, &str, &str) = ("alice", "ALICE_OLD", "ALICE_NEW");
const PLAIN: &str = "security: none";

/// The usual plan: alice between the two servers; `extra` is appended (an account's
/// `    options:` or a plan-level `options:`).
fn write_plan(dir: &Path, src: &Dovecot, dst: &Dovecot, extra: &str) {
    let plan = plan_yaml((src.port(), PLAIN), (dst.port(), PLAIN), "", &[ALICE]) + extra;
    std::fs::write(dir.join("plan.yaml"), plan).unwrap();
}

/// `mailshift apply` in the background, output discarded or captured.
fn spawn_apply(dir: &Path, capture: bool) -> std::process::Child {
    let out = || {
        if capture {
            Stdio::piped()
        } else {
            Stdio::null()
        }
    };
    Command::new(env!("CARGO_BIN_EXE_mailshift"))
        .args(["apply", "plan.yaml"])
        .current_dir(dir)
        .env("ALICE_OLD", OLD_PW)
        .env("ALICE_NEW", NEW_PW)
        .stdout(out())
        .stderr(out())
        .spawn()
        .unwrap()
}

fn message(n: usize, size: usize) -> Vec<u8> {
    let mut m = format!(
        "From: Bob <bob@example.org>\r\nTo: alice@example.com\r\nSubject: message {n}\r\nMessage-ID: <m{n}@example.org>\r\n\r\n"
    )
    .into_bytes();
    while m.len() < size {
        m.extend_from_slice(
            format!("line {n} of a longer body, to reach the size wanted\r\n").as_bytes(),
        );
    }
    m
}

/// The awkward cases: bare LF, 8-bit headers, no Message-ID, byte-identical duplicates.
fn awkward() -> Vec<Vec<u8>> {
    let mut bare = Vec::new();
    bare.extend_from_slice(b"From: =?utf-8?q?Ren=C3=A9?= <rene@example.org>\n");
    bare.extend_from_slice("Subject: Café crème, no Message-ID\n".as_bytes());
    bare.extend_from_slice(
        b"X-Latin1: caf\xe9\n\nBody with bare LF.\n* 1 EXISTS looks like IMAP\n",
    );
    let dup = b"From: a@example.org\r\nSubject: duplicate\r\nMessage-ID: <same@example.org>\r\n\r\nsame\r\n".to_vec();
    vec![bare, dup.clone(), dup]
}

/// Folder → messages (digest of CRLF-normalised bytes with the subject, flags, date), as a
/// comparable snapshot that prints readably when a test fails.
type Snapshot = BTreeMap<String, Vec<(String, Vec<String>, String)>>;

fn digest(bytes: &[u8]) -> String {
    let h = mailshift::transfer::imap::copy::content_hash(&crlf(bytes));
    let subject = String::from_utf8_lossy(bytes)
        .lines()
        .find(|l| l.starts_with("Subject:"))
        .unwrap_or("")
        .to_string();
    format!(
        "{:02x}{:02x}{:02x}{:02x} {} bytes {subject}",
        h[0],
        h[1],
        h[2],
        h[3],
        bytes.len()
    )
}

fn crlf(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut prev = 0u8;
    for &c in b {
        if c == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(c);
        prev = c;
    }
    out
}

fn snapshot(server: &Dovecot, pass: &str) -> Snapshot {
    let mut c = server.login("alice", pass);
    let mut out = Snapshot::new();
    for (f, msgs) in c.mailboxes().unwrap() {
        let mut msgs: Vec<_> = msgs
            .into_iter()
            .map(|m| (digest(&m.bytes), m.flags, m.internal_date))
            .collect();
        msgs.sort();
        out.insert(f, msgs);
    }
    out
}

fn seed(c: &mut ImapClient) -> usize {
    for f in [
        "Archive",
        "Archive/2024",
        "Sent Items",
        "Specs v1.2",
        "&AMk-t&AOk-",
    ] {
        c.create(f).unwrap();
    }
    let mut n = 0;
    for (fi, f) in [
        "INBOX",
        "Archive",
        "Archive/2024",
        "Sent Items",
        "Specs v1.2",
        "&AMk-t&AOk-",
    ]
    .iter()
    .enumerate()
    {
        for i in 0..6 {
            n += 1;
            let flags: &[&str] = match i % 3 {
                0 => &[],
                1 => &["\\Seen", "$Important"],
                _ => &["\\Seen", "\\Flagged", "\\Answered"],
            };
            let date = format!("{:02}-Mar-2024 1{}:00:00 +0000", i + 1, fi);
            c.append(f, flags, Some(&date), &message(n, 300 + 700 * i))
                .unwrap();
        }
    }
    for m in awkward() {
        n += 1;
        c.append("INBOX", &["\\Seen"], Some("05-Jan-2023 08:00:00 +0000"), &m)
            .unwrap();
    }
    n
}

/// Equal snapshots, or a panic listing only what differs.
fn assert_same(got: &Snapshot, want: &Snapshot) {
    let mut diffs = Vec::new();
    for folder in got
        .keys()
        .chain(want.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (g, w) = (
            got.get(folder).cloned().unwrap_or_default(),
            want.get(folder).cloned().unwrap_or_default(),
        );
        for m in &g {
            if g.iter().filter(|x| *x == m).count() > w.iter().filter(|x| *x == m).count() {
                diffs.push(format!("{folder}: extra or changed {m:?}"));
            }
        }
        for m in &w {
            if w.iter().filter(|x| *x == m).count() > g.iter().filter(|x| *x == m).count() {
                diffs.push(format!("{folder}: missing {m:?}"));
            }
        }
    }
    diffs.dedup();
    assert!(
        diffs.is_empty(),
        "destination differs from source:\n{}",
        diffs.join("\n")
    );
}

/// Source folder names as the destination (separator `.`) is expected to hold them.
fn expected_dest(src: &Snapshot) -> Snapshot {
    src.iter()
        .map(|(k, v)| {
            let name = match k.as_str() {
                "Archive/2024" => "Archive.2024".to_string(),
                "Sent Items" => "Sent".to_string(),
                "Specs v1.2" => "Specs v1_2".to_string(),
                other => other.to_string(),
            };
            (name, v.clone())
        })
        .collect()
}

#[test]
fn copies_everything_exactly_once_with_flags_and_dates() {
    let (src, dst) = servers(None);
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), &src, &dst, "");
    let total = seed(&mut src.login("alice", OLD_PW));

    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(
        run.stdout.contains(&format!(
            "Apply complete: 1 step, 0 failed, 0 manual; {total} messages"
        )),
        "{}",
        run.text()
    );
    let want = expected_dest(&snapshot(&src, OLD_PW));
    assert_eq!(snapshot(&dst, NEW_PW), want);

    let verify = mailshift(dir.path(), &["verify", "plan.yaml"]);
    assert_eq!(verify.code, 0, "{}", verify.text());
    assert!(
        verify.stdout.contains("Verify: 1 of 1 accounts match."),
        "{}",
        verify.text()
    );

    // A second run copies nothing and changes nothing.
    let again = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(again.code, 0, "{}", again.text());
    assert!(again.stdout.contains("; 0 messages"), "{}", again.text());
    assert_eq!(snapshot(&dst, NEW_PW), want);

    // Nothing on the source changed (EXAMINE and BODY.PEEK only).
    assert_eq!(expected_dest(&snapshot(&src, OLD_PW)), want);
    // No password in anything mailshift printed.
    for r in [&run, &verify, &again] {
        assert!(!r.text().contains(OLD_PW) && !r.text().contains(NEW_PW));
    }
}

#[test]
fn incremental_runs_copy_new_mail_and_carry_flag_changes() {
    let (src, dst) = servers(None);
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), &src, &dst, "");
    let mut c = src.login("alice", OLD_PW);
    seed(&mut c);
    assert_eq!(mailshift(dir.path(), &["apply", "plan.yaml"]).code, 0);

    for n in 0..3 {
        c.append("Archive", &[], None, &message(1000 + n, 500))
            .unwrap();
    }
    c.select("INBOX").unwrap();
    c.command("UID STORE 1 +FLAGS.SILENT (\\Flagged $Later)")
        .unwrap();
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(run.stdout.contains("; 3 messages"), "{}", run.text());
    assert_same(
        &snapshot(&dst, NEW_PW),
        &expected_dest(&snapshot(&src, OLD_PW)),
    );
}

#[test]
fn uidvalidity_resets_rematch_instead_of_duplicating() {
    let (src, dst) = servers(None);
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), &src, &dst, "");
    let mut c = src.login("alice", OLD_PW);
    seed(&mut c);
    assert_eq!(mailshift(dir.path(), &["apply", "plan.yaml"]).code, 0);

    // Source: the folder is recreated with the same messages (new UIDVALIDITY).
    let before = c.uid_fetch_all("Archive").unwrap();
    // Dovecot drops a connection whose selected folder is deleted: select another first.
    c.select("INBOX").unwrap();
    c.command("DELETE Archive/2024").unwrap();
    c.command("DELETE Archive").unwrap();
    c.create("Archive").unwrap();
    c.create("Archive/2024").unwrap();
    for m in &before {
        let flags: Vec<&str> = m.flags.iter().map(String::as_str).collect();
        c.append("Archive", &flags, Some(&m.internal_date), &m.bytes)
            .unwrap();
    }
    // Destination: a folder emptied by recreation.
    let mut d = dst.login("alice", NEW_PW);
    d.command("DELETE Sent").unwrap();
    d.create("Sent").unwrap();

    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(run.stderr.contains("UIDVALIDITY changed"), "{}", run.text());
    let got = snapshot(&dst, NEW_PW);
    let mut want = expected_dest(&snapshot(&src, OLD_PW));
    // Archive/2024 was emptied on the source; what was copied earlier stays on the destination.
    want.insert("Archive.2024".into(), got["Archive.2024"].clone());
    assert_same(&got, &want);
    assert_eq!(
        got["Archive"].len(),
        before.len(),
        "no duplicates in Archive"
    );
}

#[test]
fn kill_9_at_random_moments_never_loses_or_duplicates() {
    let (src, dst) = servers(None);
    let dir = tempfile::tempdir().unwrap();
    write_plan(
        dir.path(),
        &src,
        &dst,
        "options: {connections_per_account: 3}\n",
    );
    let mut c = src.login("alice", OLD_PW);
    for f in ["A", "B", "C"] {
        c.create(f).unwrap();
    }
    let mut n = 0;
    for f in ["INBOX", "A", "B", "C"] {
        for k in 0..120 {
            n += 1;
            // One message per folder goes through the spool file (above 4 MB).
            let size = if k == 60 {
                9 * 1024 * 1024
            } else {
                2_000 + (n * 37) % 20_000
            };
            c.append(f, &["\\Seen"], None, &message(n, size)).unwrap();
        }
    }
    // Deterministic "random" kill points (an LCG), from very early to late.
    let mut seed: u64 = 0x5eed_1234;
    let mut kills = 0;
    for run in 0..10 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let after = Duration::from_millis(30 + (seed >> 33) % 600);
        let mut child = spawn_apply(dir.path(), false);
        if run == 0 {
            // The first run is killed once its first messages are on the server: a fixed
            // delay may outlast a whole copy on a fast machine and then nothing is tested.
            let deadline = Instant::now() + Duration::from_secs(60);
            while dst.stored_messages("alice") == 0
                && Instant::now() < deadline
                && child.try_wait().unwrap().is_none()
            {
                std::thread::sleep(Duration::from_millis(2));
            }
        } else {
            std::thread::sleep(after);
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
    }
    assert!(
        kills > 0,
        "no run was killed: the test did not test anything"
    );
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.text());
    let got = snapshot(&dst, NEW_PW);
    let want = expected_dest(&snapshot(&src, OLD_PW));
    for (folder, msgs) in &want {
        assert_eq!(
            got.get(folder).map(Vec::len),
            Some(msgs.len()),
            "{folder}: count after {kills} kills"
        );
    }
    assert_same(&got, &want);
    let verify = mailshift(dir.path(), &["verify", "plan.yaml"]);
    assert_eq!(verify.code, 0, "{}", verify.text());
    let spool = dir.path().join(".mailshift/spool");
    let left: Vec<_> = std::fs::read_dir(&spool)
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "spool files left behind: {left:?}");
}

#[test]
fn size_and_date_filters_and_item_cap() {
    let (src, dst) = servers(None);
    let dir = tempfile::tempdir().unwrap();
    write_plan(
        dir.path(),
        &src,
        &dst,
        "    options: {max_message_size: 5KB, since: \"2024-01-01\"}\n",
    );
    let mut c = src.login("alice", OLD_PW);
    c.append(
        "INBOX",
        &[],
        Some("10-Feb-2024 10:00:00 +0000"),
        &message(1, 1_000),
    )
    .unwrap();
    c.append(
        "INBOX",
        &[],
        Some("10-Feb-2024 10:00:00 +0000"),
        &message(2, 9_000),
    )
    .unwrap();
    c.append(
        "INBOX",
        &[],
        Some("10-Feb-2019 10:00:00 +0000"),
        &message(3, 1_000),
    )
    .unwrap();
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(
        run.stdout.contains("skipped: larger than max_message_size"),
        "{}",
        run.text()
    );
    let got = snapshot(&dst, NEW_PW);
    assert_eq!(got["INBOX"].len(), 1);
    assert!(got["INBOX"][0].0.ends_with("Subject: message 1"), "{got:?}");
    // verify applies the same filters: what was skipped on purpose is not "missing".
    assert_eq!(mailshift(dir.path(), &["verify", "plan.yaml"]).code, 0);
    // Raising the cap takes in what it skipped, though its UID is below those already copied.
    let text = std::fs::read_to_string(dir.path().join("plan.yaml"))
        .unwrap()
        .replace("max_message_size: 5KB", "max_message_size: 50KB");
    std::fs::write(dir.path().join("plan.yaml"), text).unwrap();
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(run.stdout.contains("; 1 message ("), "{}", run.text());
    assert_eq!(snapshot(&dst, NEW_PW)["INBOX"].len(), 2);

    // Item cap, newest first: only the newest source messages.
    let dir2 = tempfile::tempdir().unwrap();
    let (src2, dst2) = servers(None);
    write_plan(
        dir2.path(),
        &src2,
        &dst2,
        "    options: {max_items: 2, newest_first: true}\n",
    );
    let mut c2 = src2.login("alice", OLD_PW);
    for n in 1..=5 {
        c2.append("INBOX", &[], None, &message(n, 500)).unwrap();
    }
    assert_eq!(mailshift(dir2.path(), &["apply", "plan.yaml"]).code, 0);
    let got = snapshot(&dst2, NEW_PW);
    let subjects: Vec<String> = got["INBOX"].iter().map(|m| m.0.clone()).collect();
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(
        subjects
            .iter()
            .all(|s| s.contains("message 4") || s.contains("message 5")),
        "{subjects:?}"
    );
}

#[test]
fn servers_without_uidplus_multiappend_or_literal_plus() {
    let (src, dst) = servers(Some(
        "IMAP4rev1 SASL-IR ID ENABLE IDLE NAMESPACE AUTH=PLAIN AUTH=LOGIN",
    ));
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), &src, &dst, "");
    seed(&mut src.login("alice", OLD_PW));
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.text());
    assert_same(
        &snapshot(&dst, NEW_PW),
        &expected_dest(&snapshot(&src, OLD_PW)),
    );
    assert_eq!(mailshift(dir.path(), &["verify", "plan.yaml"]).code, 0);

    // Without UIDPLUS the copies' destination UIDs are unknown: a folder map change cannot
    // move them, and says what to do instead of copying them a second time.
    let before = snapshot(&dst, NEW_PW);
    write_plan(
        dir.path(),
        &src,
        &dst,
        "    folders:\n      map: {Archive/2024: Old 2024}\n",
    );
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 1, "{}", run.text());
    assert!(
        run.text().contains(
            "cannot move what it copied: move those messages there by hand, then run `mailshift state forget account/alice@example.com/mail`"
        ),
        "{}",
        run.text()
    );
    let after = snapshot(&dst, NEW_PW);
    assert_eq!(
        after.get("Old 2024").map_or(0, Vec::len),
        0,
        "nothing copied again"
    );
    assert_eq!(after["Archive.2024"], before["Archive.2024"]);
}

#[test]
fn refusals_are_clear_and_recorded() {
    let (src, dst) = servers(None);
    let dir = tempfile::tempdir().unwrap();
    // STARTTLS that the server does not offer is an error, never a silent downgrade.
    let plan = plan_yaml(
        (src.port(), "security: starttls"),
        (dst.port(), PLAIN),
        "",
        &[("alice", "ALICE_OLD", "WRONG")],
    );
    std::fs::write(dir.path().join("plan.yaml"), plan).unwrap();
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 1, "{}", run.text());
    assert!(
        run.stdout
            .contains("cannot read secret from env WRONG: the variable is not set"),
        "{}",
        run.text()
    );
    let status = mailshift(dir.path(), &["status", "plan.yaml"]);
    assert!(status.stdout.contains("failed"), "{}", status.text());

    let text = std::fs::read_to_string(dir.path().join("plan.yaml"))
        .unwrap()
        .replace("env: WRONG", "env: ALICE_NEW");
    std::fs::write(dir.path().join("plan.yaml"), text).unwrap();
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 1, "{}", run.text());
    assert!(
        run.stdout.contains("does not offer STARTTLS"),
        "{}",
        run.text()
    );
    assert!(
        run.stdout
            .contains("refusing to send the password in clear"),
        "{}",
        run.text()
    );

    // A wrong password names the login and server, never a password.
    write_plan(dir.path(), &src, &dst, "");
    let out = Command::new(env!("CARGO_BIN_EXE_mailshift"))
        .args(["apply", "plan.yaml"])
        .current_dir(dir.path())
        .env("ALICE_OLD", "not-the-password")
        .env("ALICE_NEW", NEW_PW)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "login as alice on 127.0.0.1:{} was refused: [AUTHENTICATIONFAILED] Authentication failed.",
            src.port()
        )),
        "{text}"
    );
    assert!(
        !text.contains("not-the-password") && !text.contains(NEW_PW),
        "{text}"
    );
}

#[test]
fn dropped_connections_mid_literal_converge_exactly_once() {
    use crate::support::faultproxy::{Direction, Fault, FaultProxy};
    let (src, dst) = servers(None);
    let src_proxy = FaultProxy::to_port(src.port());
    let dst_proxy = FaultProxy::to_port(dst.port());
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_yaml(
        (src_proxy.port(), PLAIN),
        (dst_proxy.port(), PLAIN),
        "options: {connections_per_account: 2}\n",
        &[ALICE],
    );
    std::fs::write(dir.path().join("plan.yaml"), plan).unwrap();
    seed(&mut src.login("alice", OLD_PW));
    // Cut inside a FETCH literal on the source, and inside an APPEND literal on the destination,
    // a few times each: the run reconnects and resumes.
    src_proxy.set(Fault::CutOnPattern {
        direction: Direction::ToClient,
        pattern: b"BODY[] {".to_vec(),
        extra_bytes: 200,
        once: true,
    });
    dst_proxy.set(Fault::CutOnPattern {
        direction: Direction::ToServer,
        pattern: b"APPEND".to_vec(),
        extra_bytes: 400,
        once: true,
    });
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(
        !src_proxy.fired().is_empty() && !dst_proxy.fired().is_empty(),
        "faults did not fire"
    );
    assert!(run.stderr.contains("reconnecting"), "{}", run.text());
    assert_same(
        &snapshot(&dst, NEW_PW),
        &expected_dest(&snapshot(&src, OLD_PW)),
    );
}

#[test]
fn tls_certificates_are_verified_against_the_plans_ca() {
    let src = Dovecot::start(DovecotConfig {
        separator: '/',
        users: &[("alice", OLD_PW)],
        tls: true,
        ..DovecotConfig::default()
    });
    let dst = Dovecot::start(DovecotConfig {
        separator: '/',
        users: &[("alice", NEW_PW)],
        tls: true,
        ..DovecotConfig::default()
    });
    src.login("alice", OLD_PW)
        .append("INBOX", &[], None, &message(1, 800))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |src_ca: &str| {
        let plan = format!(
            "version: 1\nplatforms:\n  old: {{type: imap, imap: {{host: 127.0.0.1, port: {}, security: tls{src_ca}}}}}\n  new: {{type: imap, imap: {{host: localhost, port: {}, security: starttls, ca_file: {}}}}}\naccounts:\n  - address: alice@example.com\n    from: old\n    to: new\n    source: {{login: alice, password: {{env: ALICE_OLD}}}}\n    destination: {{login: alice, password: {{env: ALICE_NEW}}}}\n",
            src.tls_port(),
            dst.port(),
            dst.ca_pem_path().display()
        );
        std::fs::write(dir.path().join("plan.yaml"), plan).unwrap();
    };
    // Without the CA, the self-signed source is refused.
    write("");
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 1, "{}", run.text());
    assert!(
        run.stdout.contains("TLS handshake with 127.0.0.1"),
        "{}",
        run.text()
    );
    assert!(run.stdout.contains("set `ca_file:`"), "{}", run.text());
    // With it (implicit TLS on one side, STARTTLS on the other), the copy goes through.
    write(&format!(", ca_file: {}", src.ca_pem_path().display()));
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.text());
    assert_eq!(snapshot(&dst, NEW_PW)["INBOX"].len(), 1);
    // Verification can be turned off only explicitly, and the plan is warned about.
    src.login("alice", OLD_PW)
        .append("INBOX", &[], None, &message(2, 800))
        .unwrap();
    write(", insecure_skip_verify: true");
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(
        run.stderr
            .contains("warning: TLS certificates of 127.0.0.1 will not be verified"),
        "{}",
        run.text()
    );
    assert_eq!(snapshot(&dst, NEW_PW)["INBOX"].len(), 2);
}

#[test]
fn large_messages_are_spooled_in_slices_and_arrive_whole() {
    let (src, dst) = servers(None);
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), &src, &dst, "");
    let mut c = src.login("alice", OLD_PW);
    // Above the 4 MB threshold, not a multiple of the 4 MB slice, with bare LFs across slices.
    let mut big = message(1, 0);
    let mut i = 0u64;
    while big.len() < 20 * 1024 * 1024 + 12_345 {
        i += 1;
        big.extend_from_slice(format!("{i:08} spooled line\n").as_bytes());
    }
    c.append(
        "INBOX",
        &["\\Seen"],
        Some("07-Jul-2024 07:07:07 +0000"),
        &big,
    )
    .unwrap();
    c.append("INBOX", &[], None, &message(2, 3_000)).unwrap();
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.text());
    assert_same(
        &snapshot(&dst, NEW_PW),
        &expected_dest(&snapshot(&src, OLD_PW)),
    );
    let spool = dir.path().join(".mailshift/spool");
    let left: Vec<_> = std::fs::read_dir(&spool)
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "spool files left behind: {left:?}");
    assert_eq!(mailshift(dir.path(), &["verify", "plan.yaml"]).code, 0);
}

#[test]
fn batches_around_a_large_message_all_arrive() {
    let (src, dst) = servers(None);
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), &src, &dst, "");
    let mut c = src.login("alice", OLD_PW);
    for n in 0..60 {
        c.append("INBOX", &[], None, &message(n, 1_000)).unwrap();
    }
    c.append("INBOX", &[], None, &message(100, 9 * 1024 * 1024))
        .unwrap();
    for n in 200..320 {
        c.append("INBOX", &[], None, &message(n, 1_000)).unwrap();
    }
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(run.stdout.contains("; 181 messages"), "{}", run.text());
    assert_eq!(snapshot(&dst, NEW_PW)["INBOX"].len(), 181);
}

#[test]
fn a_connection_cap_means_fewer_workers_not_a_failure() {
    let src = Dovecot::start(DovecotConfig {
        separator: '/',
        users: &[("alice", OLD_PW)],
        max_connections: 2,
        ..DovecotConfig::default()
    });
    let dst = Dovecot::start(DovecotConfig {
        separator: '.',
        users: &[("alice", NEW_PW)],
        ..DovecotConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    write_plan(
        dir.path(),
        &src,
        &dst,
        "    options: {connections_per_account: 6}\n",
    );
    seed(&mut src.login("alice", OLD_PW));
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(
        run.stderr.contains("an extra connection was refused"),
        "{}",
        run.text()
    );
    assert_same(
        &snapshot(&dst, NEW_PW),
        &expected_dest(&snapshot(&src, OLD_PW)),
    );
}

#[test]
fn sigterm_stops_at_a_checkpoint_and_the_next_apply_finishes() {
    let (src, dst) = servers(None);
    let dir = tempfile::tempdir().unwrap();
    write_plan(
        dir.path(),
        &src,
        &dst,
        "options: {connections_per_account: 1}\n",
    );
    let mut c = src.login("alice", OLD_PW);
    for n in 0..1500 {
        c.append("INBOX", &[], None, &message(n, 3_000)).unwrap();
    }
    let child = spawn_apply(dir.path(), true);
    // Once copying has started (the state shows the step in progress), ask it to stop.
    let state = dir.path().join(".mailshift/state.redb");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let status = mailshift(dir.path(), &["status", "plan.yaml"]);
        if status.stdout.contains("in-progress") || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(state.exists());
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stderr.contains("Stopping at the next checkpoint"),
        "{stderr}"
    );
    assert!(stdout.contains("Apply stopped"), "{stdout}");
    assert_eq!(out.status.code(), Some(1));
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.text());
    assert_same(
        &snapshot(&dst, NEW_PW),
        &expected_dest(&snapshot(&src, OLD_PW)),
    );
}

#[test]
fn one_failing_account_does_not_stop_the_others() {
    let src = Dovecot::start(DovecotConfig {
        users: &[("alice", OLD_PW), ("bob", "bob-old")],
        ..DovecotConfig::default()
    });
    let dst = Dovecot::start(DovecotConfig {
        separator: '.',
        users: &[("alice", NEW_PW), ("bob", "bob-new")],
        ..DovecotConfig::default()
    });
    seed(&mut src.login("alice", OLD_PW));
    src.login("bob", "bob-old")
        .append("INBOX", &[], None, &message(1, 500))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plan = plan_yaml(
        (src.port(), PLAIN),
        (dst.port(), PLAIN),
        "options: {parallel_accounts: 2}\n",
        &[ALICE, ("bob", "ALICE_OLD", "ALICE_NEW")],
    );
    std::fs::write(dir.path().join("plan.yaml"), plan).unwrap();
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 1, "{}", run.text());
    assert!(
        run.stdout
            .contains("done    account/alice@example.com/mail"),
        "{}",
        run.text()
    );
    assert!(
        run.stdout.contains(&format!(
            "FAILED  account/bob@example.com/mail: login as bob on 127.0.0.1:{} was refused",
            src.port()
        )),
        "{}",
        run.text()
    );
    assert_same(
        &snapshot(&dst, NEW_PW),
        &expected_dest(&snapshot(&src, OLD_PW)),
    );
    let status = mailshift(dir.path(), &["status", "plan.yaml"]);
    assert_eq!(status.code, 1);
    assert!(
        status.stdout.contains("bob@example.com  0/1 steps done"),
        "{}",
        status.text()
    );
}

/// Puts on the destination what another tool that keeps the bytes (dsync, imapsync) would:
/// every `keep`-th message of each source folder, same bytes and date, but no flags. Returns
/// how many were put there.
fn prefill_like_another_tool(src: &Dovecot, dst: &Dovecot, keep: impl Fn(usize) -> bool) -> usize {
    let mut s = src.login("alice", OLD_PW);
    let mut d = dst.login("alice", NEW_PW);
    let want = expected_dest(&snapshot(src, OLD_PW));
    let mut n = 0;
    for (folder, dest) in [
        ("INBOX", "INBOX"),
        ("Archive", "Archive"),
        ("Archive/2024", "Archive.2024"),
        ("Sent Items", "Sent"),
        ("Specs v1.2", "Specs v1_2"),
        ("&AMk-t&AOk-", "&AMk-t&AOk-"),
    ] {
        assert!(want.contains_key(dest), "{dest} is where {folder} goes");
        if dest != "INBOX" {
            let _ = d.create(dest);
        }
        for (i, m) in s.uid_fetch_all(folder).unwrap().iter().enumerate() {
            if keep(i) {
                d.append(dest, &[], Some(&m.internal_date), &m.bytes)
                    .unwrap();
                n += 1;
            }
        }
    }
    n
}

#[test]
fn a_lost_state_adopts_what_is_there_instead_of_copying_it_again() {
    let (src, dst) = servers(None);
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), &src, &dst, "");
    let total = seed(&mut src.login("alice", OLD_PW));
    assert_eq!(mailshift(dir.path(), &["apply", "plan.yaml"]).code, 0);
    let want = expected_dest(&snapshot(&src, OLD_PW));
    assert_same(&snapshot(&dst, NEW_PW), &want);

    // A fresh CI runner, a pod without its volume: the state is gone.
    std::fs::remove_dir_all(dir.path().join(".mailshift")).unwrap();
    let plan = mailshift(dir.path(), &["plan", "plan.yaml"]);
    assert!(
        plan.stdout.contains("adopted, not copied"),
        "{}",
        plan.text()
    );
    let refresh = mailshift(dir.path(), &["plan", "--refresh", "plan.yaml"]);
    assert!(
        refresh.stdout.contains(&format!(
            "the destination already holds {total} messages in 6 folders the state knows nothing of"
        )),
        "{}",
        refresh.text()
    );

    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(
        run.stdout.contains("; 0 messages") && run.stdout.contains(&format!("{total} adopted")),
        "{}",
        run.text()
    );
    assert_same(&snapshot(&dst, NEW_PW), &want);
    let verify = mailshift(dir.path(), &["verify", "plan.yaml"]);
    assert_eq!(verify.code, 0, "{}", verify.text());

    // Adopted messages are in the map like copied ones: the next run has nothing to do.
    let again = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(again.code, 0, "{}", again.text());
    assert!(again.stdout.contains("; 0 messages"), "{}", again.text());
    assert!(!again.stdout.contains("adopted"), "{}", again.text());
    assert_same(&snapshot(&dst, NEW_PW), &want);
}

#[test]
fn a_destination_half_filled_by_another_tool_gets_only_the_missing_half() {
    let (src, dst) = servers(None);
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), &src, &dst, "");
    let total = seed(&mut src.login("alice", OLD_PW));
    // Every other message, including one of the two byte-identical duplicates and the
    // message without a Message-ID: those are matched by content, one copy for one copy.
    let there = prefill_like_another_tool(&src, &dst, |i| i % 2 == 1);
    assert!(there > 0 && there < total);

    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(
        run.stdout
            .contains(&format!("; {} messages", total - there))
            && run.stdout.contains(&format!("{there} adopted")),
        "{}",
        run.text()
    );
    // Exactly the source, flags included: the adopted copies got the source's flags.
    assert_same(
        &snapshot(&dst, NEW_PW),
        &expected_dest(&snapshot(&src, OLD_PW)),
    );
    assert_eq!(mailshift(dir.path(), &["verify", "plan.yaml"]).code, 0);
}

#[test]
fn adopt_existing_false_refuses_a_destination_that_is_not_empty() {
    let (src, dst) = servers(None);
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), &src, &dst, "options: {adopt_existing: false}\n");
    seed(&mut src.login("alice", OLD_PW));
    let mut d = dst.login("alice", NEW_PW);
    d.append("INBOX", &[], None, &message(9999, 400)).unwrap();

    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 1, "{}", run.text());
    assert!(
        run.text().contains("already holds 1 message")
            && run.text().contains("adopt_existing: true"),
        "{}",
        run.text()
    );
    assert_eq!(
        d.uid_fetch_all("INBOX").unwrap().len(),
        1,
        "nothing was added to INBOX"
    );
}

#[test]
fn a_changed_folder_map_moves_copied_messages_instead_of_uploading_them_again() {
    let (src, dst) = servers(None);
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), &src, &dst, "");
    seed(&mut src.login("alice", OLD_PW));
    assert_eq!(mailshift(dir.path(), &["apply", "plan.yaml"]).code, 0);
    let before = snapshot(&dst, NEW_PW);

    write_plan(
        dir.path(),
        &src,
        &dst,
        "    folders:\n      map: {Archive: Old Archive}\n",
    );
    let plan = mailshift(dir.path(), &["plan", "--refresh", "plan.yaml"]);
    for (folder, to) in [
        ("Archive", "Old Archive"),
        ("Archive/2024", "Old Archive/2024"),
    ] {
        assert!(
            plan.stdout.contains(&format!(
                "{folder}: the folder mapping now sends it to {to:?}: 6 messages copied will move"
            )),
            "{}",
            plan.text()
        );
    }
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(run.stdout.contains("; 0 messages"), "{}", run.text());
    assert!(run.stdout.contains("moved"), "{}", run.text());
    // Archive and its subfolder now live under Old Archive; the old folders stay, empty
    // (mailshift never deletes a folder).
    let mut want = before.clone();
    want.insert("Old Archive".into(), before["Archive"].clone());
    want.insert("Old Archive.2024".into(), before["Archive.2024"].clone());
    want.insert("Archive".into(), Vec::new());
    want.insert("Archive.2024".into(), Vec::new());
    assert_same(&snapshot(&dst, NEW_PW), &want);
    assert_eq!(
        snapshot(&dst, NEW_PW).keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    let verify = mailshift(dir.path(), &["verify", "plan.yaml"]);
    assert_eq!(verify.code, 0, "{}", verify.text());

    // The map follows the messages: flag changes still reach them, nothing moves again.
    let mut c = src.login("alice", OLD_PW);
    c.select("Archive").unwrap();
    c.command("UID STORE 1 +FLAGS.SILENT (\\Flagged)").unwrap();
    let again = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(again.code, 0, "{}", again.text());
    assert!(!again.stdout.contains("moved"), "{}", again.text());
    let got = snapshot(&dst, NEW_PW);
    assert_eq!(got["Old Archive"].len(), before["Archive"].len());
    let flagged = |s: &Snapshot| {
        s["Old Archive"]
            .iter()
            .filter(|(_, flags, _)| flags.iter().any(|f| f == "\\Flagged"))
            .count()
    };
    assert_eq!(flagged(&got), flagged(&want) + 1, "{got:?}");
}
