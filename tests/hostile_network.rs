//! `mailshift apply` through fault proxies on both sides of a copy: connections cut every few
//! hundred KB or tens of MB, stalled links, refused connections, a folder the destination keeps
//! refusing and a message it will not take. Every case ends exact against an independent
//! client (bytes, flags, keywords, internal dates, no duplicates), and every case checks from
//! the proxies' logs that the faults it provoked really happened.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::support::dovecot::{Dovecot, DovecotConfig};
use crate::support::faultproxy::{Direction, Fault, FaultProxy};
use crate::support::imap::ImapClient;

const OLD_PW: &str = "old-Pa55word";
const NEW_PW: &str = "new-Pa55word";
/// Tests write thousands of messages: no fsync per message on a shared CI disk.
const FAST: &str = "mail_fsync = never\n";
const KB: u64 = 1024;
const MB: u64 = 1024 * 1024;

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

fn apply(dir: &Path) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_mailshift"))
        .args(["apply", "plan.yaml"])
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

fn servers(dest_extra: &str) -> (Dovecot, Dovecot) {
    let src = Dovecot::start(DovecotConfig {
        users: &[("alice", OLD_PW)],
        extra: FAST,
        ..DovecotConfig::default()
    });
    let dst = Dovecot::start(DovecotConfig {
        separator: '.',
        users: &[("alice", NEW_PW)],
        extra: dest_extra,
        ..DovecotConfig::default()
    });
    (src, dst)
}

/// A plan copying alice from `src_port` to `dst_port` (the proxies), each command allowed
/// `timeout`, `options` appended to the account.
fn write_plan(dir: &Path, src_port: u16, dst_port: u16, timeout: &str, options: &str) {
    let side = |port: u16| {
        format!(
            "{{type: imap, imap: {{host: 127.0.0.1, port: {port}, security: none, timeout: {timeout}}}}}"
        )
    };
    let plan = format!(
        "version: 1\nplatforms:\n  old: {}\n  new: {}\naccounts:\n  - address: alice@example.com\n    from: old\n    to: new\n    source: {{login: alice, password: {{env: ALICE_OLD}}}}\n    destination: {{login: alice, password: {{env: ALICE_NEW}}}}\n{options}",
        side(src_port),
        side(dst_port)
    );
    std::fs::write(dir.join("plan.yaml"), plan).unwrap();
}

/// A message of about `size` bytes, different for every `n`.
fn message(n: usize, size: usize) -> Vec<u8> {
    let mut m = format!(
        "From: Bob <bob@example.org>\r\nTo: alice@example.com\r\nSubject: message {n}\r\nMessage-ID: <m{n}@example.org>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\n"
    )
    .into_bytes();
    let mut x = (n as u32).wrapping_mul(0x9e37_79b9) | 1;
    while m.len() < size {
        for _ in 0..72 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            m.push(b'a' + (x % 26) as u8);
        }
        m.extend_from_slice(b"\r\n");
    }
    m
}

/// Seeds `counts` messages of `size(n)` bytes into each folder, with a mix of flags, keywords
/// and internal dates. Returns how many.
fn seed(c: &mut ImapClient, folders: &[(&str, usize)], size: impl Fn(usize) -> usize) -> usize {
    let mut n = 0;
    for (folder, count) in folders {
        if *folder != "INBOX" {
            c.create(folder).unwrap();
        }
        for _ in 0..*count {
            let flags: &[&str] = match n % 5 {
                0 => &["\\Seen"],
                1 => &["\\Seen", "\\Flagged"],
                2 => &["$Label1"],
                3 => &["\\Answered", "$Work"],
                _ => &[],
            };
            let date = format!("{:02}-Mar-2023 09:{:02}:00 +0100", 1 + n % 28, n % 60);
            c.append(folder, flags, Some(&date), &message(n, size(n)))
                .unwrap();
            n += 1;
        }
    }
    n
}

/// Folder → sorted (content digest, flags, internal date) of each message, as the
/// independent client reads them: equal snapshots mean the same messages exactly once.
type Snapshot = BTreeMap<String, Vec<(String, Vec<String>, String)>>;

fn snapshot(server: &Dovecot, pass: &str) -> Snapshot {
    let mut c = server.login("alice", pass);
    let mut out = Snapshot::new();
    for (f, msgs) in c.mailboxes().unwrap() {
        let mut msgs: Vec<_> = msgs
            .into_iter()
            .map(|m| {
                let h = mailshift::transfer::imap::copy::content_hash(&m.bytes);
                let digest: String = h[..8].iter().map(|b| format!("{b:02x}")).collect();
                (
                    format!("{digest} {} bytes", m.bytes.len()),
                    m.flags,
                    m.internal_date,
                )
            })
            .collect();
        msgs.sort();
        // The destination's separator is '.', the source's '/'.
        out.insert(f.replace('.', "/"), msgs);
    }
    out
}

/// Asserts both sides hold the same messages, folder by folder, and says what differs.
fn assert_exact(src: &Snapshot, dst: &Snapshot) {
    for (folder, want) in src {
        let got = dst.get(folder).map(Vec::as_slice).unwrap_or_default();
        if got != want.as_slice() {
            let missing = want.iter().filter(|m| !got.contains(m)).count();
            let extra = got.len() + missing - want.len();
            panic!(
                "{folder:?}: {} on the source, {} on the destination ({missing} missing, {extra} extra or changed)",
                want.len(),
                got.len()
            );
        }
    }
    assert_eq!(src.len(), dst.len(), "folders differ: {src:?} vs {dst:?}");
}

/// How many faults of this kind a proxy fired.
fn fired(proxy: &FaultProxy, kind: &str) -> usize {
    proxy.fired().iter().filter(|l| l.contains(kind)).count()
}

/// Runs apply until it succeeds, at most `runs` times; the last run's output.
fn apply_until_done(dir: &Path, runs: usize) -> Run {
    let mut last = apply(dir);
    for _ in 1..runs {
        if last.code == 0 {
            break;
        }
        last = apply(dir);
    }
    last
}

#[test]
fn harsh_cuts_every_few_hundred_kb_still_copy_every_message_once() {
    let (src, dst) = servers(FAST);
    let folders = [
        ("INBOX", 600),
        ("Archive", 600),
        ("Archive/2023", 500),
        ("Sent", 500),
        ("Lists", 400),
        ("Lists/Rust", 400),
    ];
    let total = seed(&mut src.login("alice", OLD_PW), &folders, |n| {
        1_500 + (n * 37) % 3_000
    });
    assert_eq!(total, 3_000);
    let (sp, dp) = (
        FaultProxy::to_port(src.port()),
        FaultProxy::to_port(dst.port()),
    );
    for (proxy, seed) in [(&sp, 7), (&dp, 11)] {
        for direction in [Direction::ToClient, Direction::ToServer] {
            proxy.add(Fault::CutRandom {
                direction,
                min_bytes: 128 * KB,
                max_bytes: 512 * KB,
                seed,
            });
        }
    }
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), sp.port(), dp.port(), "10s", "");
    let run = apply_until_done(dir.path(), 4);
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(fired(&sp, "CutRandom") >= 10, "{:?}", sp.fired());
    assert!(fired(&dp, "CutRandom") >= 10, "{:?}", dp.fired());
    sp.clear();
    dp.clear();
    assert_exact(&snapshot(&src, OLD_PW), &snapshot(&dst, NEW_PW));
}

#[test]
fn moderate_cuts_every_tens_of_mb_finish_in_one_apply() {
    let (src, dst) = servers(FAST);
    // Three messages past the spool threshold (fetched in slices, sent from a file) among
    // 250 of 80 KB: ~50 MB each way over one connection pair, so each side is cut at least once.
    let total = seed(
        &mut src.login("alice", OLD_PW),
        &[("INBOX", 130), ("Archive", 123)],
        |n| {
            if n % 84 == 40 {
                10 * MB as usize
            } else {
                80 * KB as usize
            }
        },
    );
    assert_eq!(total, 253);
    let (sp, dp) = (
        FaultProxy::to_port(src.port()),
        FaultProxy::to_port(dst.port()),
    );
    sp.add(Fault::CutRandom {
        direction: Direction::ToClient,
        min_bytes: 12 * MB,
        max_bytes: 48 * MB,
        seed: 3,
    });
    dp.add(Fault::CutRandom {
        direction: Direction::ToServer,
        min_bytes: 12 * MB,
        max_bytes: 48 * MB,
        seed: 5,
    });
    let dir = tempfile::tempdir().unwrap();
    write_plan(
        dir.path(),
        sp.port(),
        dp.port(),
        "20s",
        "    options: {connections_per_account: 1}\n",
    );
    let run = apply(dir.path());
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(fired(&sp, "CutRandom") >= 1, "{:?}", sp.fired());
    assert!(fired(&dp, "CutRandom") >= 1, "{:?}", dp.fired());
    sp.clear();
    dp.clear();
    assert_exact(&snapshot(&src, OLD_PW), &snapshot(&dst, NEW_PW));
    let spool = dir.path().join(".mailshift/spool");
    let left: Vec<_> = std::fs::read_dir(&spool)
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "spool files left behind: {left:?}");
}

#[test]
fn a_large_message_fetch_resumes_where_it_was_cut() {
    // 6 MB through a source link cut every 1–2 MB: fetched again from its start after each
    // cut, it could never arrive; resumed at the slice where it stopped, it does.
    let (src, dst) = servers(FAST);
    seed(&mut src.login("alice", OLD_PW), &[("INBOX", 3)], |n| {
        if n == 1 { 6 * MB as usize } else { 5_000 }
    });
    let sp = FaultProxy::to_port(src.port());
    sp.add(Fault::CutRandom {
        direction: Direction::ToClient,
        min_bytes: MB,
        max_bytes: 2 * MB,
        seed: 9,
    });
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), sp.port(), dst.port(), "10s", "");
    let run = apply(dir.path());
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(fired(&sp, "CutRandom") >= 3, "{:?}", sp.fired());
    sp.clear();
    assert_exact(&snapshot(&src, OLD_PW), &snapshot(&dst, NEW_PW));
}

#[test]
fn a_stalled_link_times_out_and_the_copy_resumes() {
    let (src, dst) = servers(FAST);
    seed(
        &mut src.login("alice", OLD_PW),
        &[("INBOX", 300), ("Archive", 200)],
        |_| 3_000,
    );
    let (sp, dp) = (
        FaultProxy::to_port(src.port()),
        FaultProxy::to_port(dst.port()),
    );
    // The source goes silent in the middle of a FETCH, the destination in an APPEND.
    sp.add(Fault::Stall {
        direction: Direction::ToClient,
        after_bytes: 300 * KB,
        once: true,
    });
    dp.add(Fault::Stall {
        direction: Direction::ToServer,
        after_bytes: 200 * KB,
        once: true,
    });
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), sp.port(), dp.port(), "2s", "");
    let started = std::time::Instant::now();
    let run = apply(dir.path());
    assert_eq!(run.code, 0, "{}", run.text());
    // The plan's 2 s timeout fired, not the 2 min default.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(fired(&sp, "Stall"), 1, "{:?}", sp.fired());
    assert_eq!(fired(&dp, "Stall"), 1, "{:?}", dp.fired());
    assert!(run.stderr.contains("timed out"), "{}", run.text());
    assert_exact(&snapshot(&src, OLD_PW), &snapshot(&dst, NEW_PW));
}

#[test]
fn refused_connections_are_retried() {
    let (src, dst) = servers(FAST);
    seed(
        &mut src.login("alice", OLD_PW),
        &[("INBOX", 150), ("Archive", 100), ("Sent", 100)],
        |_| 2_000,
    );
    let (sp, dp) = (
        FaultProxy::to_port(src.port()),
        FaultProxy::to_port(dst.port()),
    );
    for (proxy, seed) in [(&sp, 1), (&dp, 2)] {
        proxy.add(Fault::RefuseShare { percent: 30, seed });
        // Cuts force reconnections, so refusals meet the copy in the middle too.
        proxy.add(Fault::CutRandom {
            direction: Direction::ToClient,
            min_bytes: 256 * KB,
            max_bytes: 512 * KB,
            seed,
        });
    }
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), sp.port(), dp.port(), "10s", "");
    let run = apply(dir.path());
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(fired(&sp, "RefuseShare") >= 1, "{:?}", sp.fired());
    assert!(fired(&dp, "RefuseShare") >= 1, "{:?}", dp.fired());
    sp.clear();
    dp.clear();
    assert_exact(&snapshot(&src, OLD_PW), &snapshot(&dst, NEW_PW));
}

/// A destination that refuses any message over 100 KB (`[LIMIT]`, from the quota plugin) and
/// lets alice read but not write the folder `Blocked` (`[NOPERM]`, from a global ACL file).
fn restrictive(acl: &Path) -> String {
    std::fs::write(acl, "Blocked owner lr\n").unwrap();
    format!(
        "mail_fsync = never
mail_plugins = $mail_plugins quota acl
plugin {{
  quota = count:User quota
  quota_vsizes = yes
  quota_rule = *:storage=1G
  quota_max_mail_size = 100k
  acl = vfile:{}
}}
",
        acl.display()
    )
}

#[test]
fn a_failing_folder_and_a_refused_message_do_not_stop_the_rest() {
    let acl = tempfile::tempdir().unwrap();
    let (src, dst) = servers(&restrictive(&acl.path().join("global-acl")));
    let mut c = src.login("alice", OLD_PW);
    seed(
        &mut c,
        &[("INBOX", 40), ("Blocked", 5), ("Sent", 30)],
        |n| if n == 7 { 300_000 } else { 2_000 },
    );
    c.logout().unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), src.port(), dst.port(), "10s", "");
    let run = apply(dir.path());
    assert_eq!(run.code, 1, "{}", run.text());
    assert!(
        run.stdout
            .contains("FAILED  alice@example.com: folder \"Blocked\"")
            && run.stdout.contains("NOPERM"),
        "{}",
        run.text()
    );
    assert!(
        run.stdout.contains("message UID 8 in \"INBOX\"")
            && run.stdout.contains("refused by the destination"),
        "{}",
        run.text()
    );
    assert!(run.stdout.contains("; 69 messages"), "{}", run.text());

    // Everything else arrived exactly once; the refused message and the blocked folder did not.
    let want = snapshot(&src, OLD_PW);
    let got = snapshot(&dst, NEW_PW);
    assert_eq!(got["Blocked"].len(), 0);
    assert_eq!(got["Sent"], want["Sent"]);
    let missing: Vec<_> = want["INBOX"]
        .iter()
        .filter(|m| !got["INBOX"].contains(m))
        .collect();
    assert_eq!(missing.len(), 1, "{missing:?}");
    let size: usize = missing[0].0.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(size > 100 * 1024, "{missing:?}");
    assert_eq!(got["INBOX"].len(), 39);
    assert!(got["INBOX"].iter().all(|m| want["INBOX"].contains(m)));

    // The next run retries only what is missing: nothing is copied twice. New mail in INBOX
    // makes it sync INBOX again, and with it try the refused message once more.
    src.login("alice", OLD_PW)
        .append("INBOX", &[], None, &message(1000, 2_000))
        .unwrap();
    let again = apply(dir.path());
    assert_eq!(again.code, 1, "{}", again.text());
    assert!(again.stdout.contains("; 1 message "), "{}", again.text());
    assert!(
        again.stdout.contains("message UID 8 in \"INBOX\""),
        "{}",
        again.text()
    );
    let last = snapshot(&dst, NEW_PW);
    assert_eq!(last["INBOX"].len(), 40);
    assert_eq!(last["Sent"], got["Sent"]);
    assert!(got["INBOX"].iter().all(|m| last["INBOX"].contains(m)));
    // `status` says what the state holds of the copy and lists the refused message.
    let status = Command::new(env!("CARGO_BIN_EXE_mailshift"))
        .args(["status", "plan.yaml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("1 message refused by the destination")
            && status.contains("\"INBOX\" UID 8 (")
            && status.contains("[LIMIT]"),
        "{status}"
    );
    // `verify` tells the refused message apart from a lost one, with the destination's words.
    let verify = Command::new(env!("CARGO_BIN_EXE_mailshift"))
        .args(["verify", "plan.yaml"])
        .current_dir(dir.path())
        .env("ALICE_OLD", OLD_PW)
        .env("ALICE_NEW", NEW_PW)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&verify.stdout);
    assert_eq!(verify.status.code(), Some(1), "{text}");
    let skipped: Vec<&str> = text.lines().filter(|l| l.contains("skipped")).collect();
    assert!(
        skipped
            .iter()
            .any(|l| l.contains("UID 8") && l.contains("[LIMIT]")),
        "{text}"
    );
    // The blocked folder's messages are really missing; INBOX's refused one is not.
    assert!(text.contains("missing  Blocked UID 1"), "{text}");
    assert!(!text.contains("missing  INBOX"), "{text}");
    assert!(text.contains("1 skipped by the copy"), "{text}");
}
