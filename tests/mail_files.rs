//! `mailshift apply` and `verify` with a `files` source: an account's tree of `.mbox` and
//! `.eml` files imported into a real Dovecot, exactly once: again adds nothing, an appended
//! mbox sends only the new message, a rewritten one nothing, kill -9 at random moments loses
//! and duplicates nothing, and a corrupt file is named while the rest is imported.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::dovecot::{Dovecot, DovecotConfig};

const PW: &str = "new-Pa55word";

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
        .env("ALICE_NEW", PW)
        .output()
        .expect("run mailshift");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn server() -> Dovecot {
    Dovecot::start(DovecotConfig {
        separator: '/',
        users: &[("alice", PW)],
        ..DovecotConfig::default()
    })
}

/// A plan importing alice's files (under `mail/alice@example.com/`) into the server.
fn write_plan(dir: &Path, dst: &Dovecot) {
    write_plan_with(dir, dst, "");
}

/// [`write_plan`] with more lines for the account (`    folders: ...`).
fn write_plan_with(dir: &Path, dst: &Dovecot, extra: &str) {
    let plan = format!(
        "version: 1\nplatforms:\n  disk: {{type: files, path: mail}}\n  new: {{type: imap, imap: {{host: 127.0.0.1, port: {}, security: none}}}}\naccounts:\n  - address: alice@example.com\n    from: disk\n    to: new\n    content: [mail]\n    destination: {{login: alice, password: {{env: ALICE_NEW}}}}\n{extra}",
        dst.port()
    );
    std::fs::write(dir.join("plan.yaml"), plan).unwrap();
}

/// Writes a file of alice's tree.
fn put(dir: &Path, rel: &str, bytes: &[u8]) {
    let path = dir.join("mail/alice@example.com").join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// A message with LF line ends, `size` bytes or a little more.
fn message(n: usize, size: usize) -> String {
    let mut m = format!(
        "From: Bob <bob@example.org>\nTo: alice@example.com\nSubject: message {n}\nMessage-ID: <m{n}@example.org>\nDate: Mon, 4 Mar 2024 10:{:02}:00 +0000\n\n",
        n % 60
    );
    while m.len() < size {
        m.push_str(&format!(
            "line {n} of a longer body, to reach the size wanted\n"
        ));
    }
    m
}

/// Messages as an mboxrd file: `From ` lines, body lines quoted, an empty line after each.
fn mbox(messages: &[String]) -> Vec<u8> {
    let mut out = String::new();
    for m in messages {
        out.push_str("From bob@example.org Mon Mar  4 10:00:00 2024\n");
        for line in m.split_inclusive('\n') {
            let quoted = line.trim_start_matches('>').starts_with("From ");
            if quoted {
                out.push('>');
            }
            out.push_str(line);
        }
        out.push('\n');
    }
    out.into_bytes()
}

/// (folder → message bodies, sorted) on the server.
fn contents(dst: &Dovecot) -> BTreeMap<String, Vec<Vec<u8>>> {
    let mut c = dst.login("alice", PW);
    c.mailboxes()
        .unwrap()
        .into_iter()
        .map(|(f, msgs)| {
            let mut bodies: Vec<Vec<u8>> = msgs.into_iter().map(|m| m.bytes).collect();
            bodies.sort();
            (f, bodies)
        })
        .collect()
}

fn counts(dst: &Dovecot) -> BTreeMap<String, usize> {
    contents(dst)
        .into_iter()
        .map(|(f, m)| (f, m.len()))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn crlf(s: &str) -> Vec<u8> {
    s.replace('\n', "\r\n").into_bytes()
}

#[test]
fn a_tree_is_imported_once_and_again_adds_nothing() {
    let dst = server();
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), &dst);
    let quoted = "From: Carol <carol@example.org>\nSubject: quoting\nMessage-ID: <q@example.org>\nStatus: RO\nX-Status: F\n\nFrom the start of a line\n>From already quoted once\nend\n".to_string();
    let same = message(2, 300);
    let inbox = vec![quoted.clone(), same.clone(), same.clone()];
    put(dir.path(), "Inbox.mbox", &mbox(&inbox));
    // CRLF, and a last message without a final newline.
    let mut archive = crlf(&String::from_utf8(mbox(&[message(3, 900)])).unwrap());
    archive
        .extend_from_slice(b"From x Tue Mar  5 10:00:00 2024\r\nSubject: last\r\n\r\nno newline");
    put(dir.path(), "Archive/2019.mbox", &archive);
    put(
        dir.path(),
        "Projets été/a.eml:2,S",
        message(5, 200).as_bytes(),
    );
    put(dir.path(), "Projets été/b.eml", message(6, 5000).as_bytes());

    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.text());
    let want: BTreeMap<String, usize> = [
        ("Archive/2019".to_string(), 2),
        ("INBOX".to_string(), 3),
        ("Projets &AOk-t&AOk-".to_string(), 2),
    ]
    .into();
    assert_eq!(counts(&dst), want, "{}", run.text());
    let mut c = dst.login("alice", PW);
    let got = c.uid_fetch_all("INBOX").unwrap();
    let first = got
        .iter()
        .find(|m| m.bytes.starts_with(b"From: Carol"))
        .expect("the quoting message");
    assert_eq!(first.bytes, crlf(&quoted));
    assert_eq!(first.flags, vec!["\\Flagged", "\\Seen"]);
    assert_eq!(first.internal_date, "04-Mar-2024 10:00:00 +0000");
    let archive = c.uid_fetch_all("Archive/2019").unwrap();
    assert!(
        archive
            .iter()
            .any(|m| m.bytes.ends_with(b"\r\n\r\nno newline")),
        "{:?}",
        archive
            .iter()
            .map(|m| String::from_utf8_lossy(&m.bytes))
            .collect::<Vec<_>>()
    );
    let projets = c.uid_fetch_all("Projets &AOk-t&AOk-").unwrap();
    assert_eq!(projets.iter().filter(|m| m.flags == ["\\Seen"]).count(), 1);

    let verify = mailshift(dir.path(), &["verify", "plan.yaml"]);
    assert_eq!(verify.code, 0, "{}", verify.text());

    // Again: nothing new on the server.
    let before = contents(&dst);
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.text());
    assert_eq!(contents(&dst), before);

    // An mbox that grew: only the new message.
    let mut grown = inbox.clone();
    grown.push(message(7, 400));
    put(dir.path(), "Inbox.mbox", &mbox(&grown));
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.text());
    assert_eq!(counts(&dst)["INBOX"], 4, "{}", run.text());

    // Rewritten (one copy of the duplicate removed, the rest reordered): nothing sent; the
    // removed copy stays on the server, and brought back it is not sent again either.
    let rewritten = vec![message(7, 400), same.clone(), quoted.clone()];
    put(dir.path(), "Inbox.mbox", &mbox(&rewritten));
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.text());
    assert_eq!(counts(&dst)["INBOX"], 4, "{}", run.text());
    put(dir.path(), "Inbox.mbox", &mbox(&grown));
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.text());
    assert_eq!(contents(&dst), {
        let mut after = before.clone();
        let inbox = after.get_mut("INBOX").unwrap();
        inbox.push(crlf(&message(7, 400)));
        inbox.sort();
        after
    });

    // A lost state: what is on the server is adopted, nothing is sent.
    std::fs::remove_dir_all(dir.path().join(".mailshift")).unwrap();
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.text());
    assert_eq!(counts(&dst)["INBOX"], 4, "{}", run.text());
    assert_eq!(counts(&dst)["Projets &AOk-t&AOk-"], 2, "{}", run.text());
}

#[test]
fn kill_9_mid_import_then_apply_imports_each_message_once() {
    let dst = server();
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), &dst);
    let mut n = 0;
    let mut want = BTreeMap::new();
    for f in ["Inbox", "A", "B/C"] {
        let msgs: Vec<String> = (0..150)
            .map(|_| {
                n += 1;
                message(n, 2_000 + (n * 37) % 30_000)
            })
            .collect();
        put(dir.path(), &format!("{f}.mbox"), &mbox(&msgs));
        let folder = if f == "Inbox" { "INBOX" } else { f };
        want.insert(folder.to_string(), msgs.len());
    }
    let emls: Vec<String> = (0..60)
        .map(|_| {
            n += 1;
            message(n, 3_000)
        })
        .collect();
    for (k, m) in emls.iter().enumerate() {
        put(dir.path(), &format!("D/{k:03}.eml"), m.as_bytes());
    }
    want.insert("D".to_string(), emls.len());
    let mut seed: u64 = 0x5eed_f11e;
    let mut kills = 0;
    for run in 0..8 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let after = Duration::from_millis(40 + (seed >> 33) % 700);
        let mut child = Command::new(env!("CARGO_BIN_EXE_mailshift"))
            .args(["apply", "plan.yaml"])
            .current_dir(dir.path())
            .env("ALICE_NEW", PW)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        if run == 0 {
            // The first run is killed once its first messages are on the server: a fixed
            // delay may outlast a whole import on a fast machine and then nothing is tested.
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
    assert_eq!(counts(&dst), want, "after {kills} kills\n{}", run.text());
    for (folder, bodies) in contents(&dst) {
        let mut unique = bodies.clone();
        unique.dedup();
        assert_eq!(unique.len(), bodies.len(), "{folder}: a message twice");
    }
    let verify = mailshift(dir.path(), &["verify", "plan.yaml"]);
    assert_eq!(verify.code, 0, "{}", verify.text());
}

#[test]
fn a_corrupt_file_is_named_and_the_rest_is_imported() {
    let dst = server();
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), &dst);
    put(
        dir.path(),
        "Good.mbox",
        &mbox(&[message(1, 300), message(2, 300)]),
    );
    put(
        dir.path(),
        "Broken.mbox",
        b"Subject: no From line\n\nthis is not an mbox\n",
    );
    let mut headless = mbox(&[message(3, 300)]);
    headless.extend_from_slice(b"From x Mon Mar  4 10:00:00 2024\nno header at all, just text\n\n");
    headless.extend_from_slice(&mbox(&[message(4, 300)]));
    put(dir.path(), "Mixed.mbox", &headless);
    put(dir.path(), "Notes/ok.eml", message(5, 300).as_bytes());
    put(dir.path(), "Notes/empty.eml", b"");

    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_ne!(run.code, 0, "{}", run.text());
    let text = run.text();
    for needle in [
        "Broken.mbox: line 1 (byte 0): not an mbox file",
        "Mixed.mbox: line 13 (byte",
        "Notes/empty.eml: an empty file",
    ] {
        assert!(text.contains(needle), "{needle:?} not in\n{text}");
    }
    let want: BTreeMap<String, usize> = [
        ("Good".to_string(), 2),
        ("Mixed".to_string(), 2),
        ("Notes".to_string(), 1),
    ]
    .into();
    assert_eq!(counts(&dst), want, "{text}");
    // The next run sends nothing more and names them again.
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_ne!(run.code, 0, "{}", run.text());
    assert!(run.text().contains("Broken.mbox"), "{}", run.text());
    assert_eq!(counts(&dst), want);
}

#[test]
fn the_plan_s_folder_rules_apply_to_files_as_to_imap_folders() {
    let dst = server();
    let dir = tempfile::tempdir().unwrap();
    write_plan_with(
        dir.path(),
        &dst,
        "    folders:\n      exclude: [Junk]\n      map: {Archive/2019: Old/2019}\n",
    );
    put(dir.path(), "Archive/2019.mbox", &mbox(&[message(1, 300)]));
    put(dir.path(), "Junk.mbox", &mbox(&[message(2, 300)]));
    put(dir.path(), "mbox", &mbox(&[message(3, 300)]));
    let plan = mailshift(dir.path(), &["plan", "--refresh", "plan.yaml"]);
    assert!(
        plan.stdout.contains(
            "2 mail files in 2 folders under ./mail/alice@example.com (2 folders never imported)"
        ),
        "{}",
        plan.text()
    );
    let run = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(run.code, 0, "{}", run.text());
    let want: BTreeMap<String, usize> =
        [("INBOX".to_string(), 1), ("Old/2019".to_string(), 1)].into();
    assert_eq!(counts(&dst), want, "{}", run.text());
    let verify = mailshift(dir.path(), &["verify", "plan.yaml"]);
    assert_eq!(verify.code, 0, "{}", verify.text());
}
