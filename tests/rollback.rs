//! `mailshift rollback` against two real Dovecot servers: two applies with new source mail
//! between them (sync points 1 and 2), user mail appended directly to the destination (one
//! flagged `\Deleted`), and one of run 2's copies flagged `\Deleted` by the user. `--dry-run`
//! and an unanswered question change nothing; `--since 2 --yes` removes exactly run 2's other
//! copies; the next apply copies those again, once. A destination without UIDPLUS, and Gmail
//! (where an expunge only removes a label), are refused; a rollback killed before or after its
//! expunge converges.

use std::path::Path;

use crate::common::{Output, mailshift_env};
use crate::support::dovecot::{Dovecot, DovecotConfig};
use crate::support::imap::ImapClient;

const OLD_PW: &str = "old-Pa55word";
const NEW_PW: &str = "new-Pa55word";

fn run(dir: &Path, args: &[&str]) -> Output {
    mailshift_env(dir, args, &[("ALICE_OLD", OLD_PW), ("ALICE_NEW", NEW_PW)])
}

fn server(pw: &str, capabilities_override: Option<&str>) -> Dovecot {
    Dovecot::start(DovecotConfig {
        users: &[("alice", pw)],
        capabilities_override,
        ..DovecotConfig::default()
    })
}

fn write_plan(dir: &Path, src: &Dovecot, dst: &Dovecot) {
    let plan = format!(
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
",
        src.port(),
        dst.port()
    );
    std::fs::write(dir.join("plan.yaml"), plan).unwrap();
}

/// Message `n` with a body of 5 MB.
fn large_message(n: u32) -> Vec<u8> {
    let mut m = message(n);
    m.extend(
        b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n".repeat(80_000),
    );
    m
}

fn message(n: u32) -> Vec<u8> {
    format!(
        "From: Bob <bob@example.org>\r\nTo: alice@example.com\r\nSubject: message {n}\r\nDate: Fri, 01 Mar 2024 10:0{n}:00 +0000\r\nMessage-ID: <m{n}@example.org>\r\n\r\nbody {n}\r\n"
    )
    .into_bytes()
}

/// Per folder: the message numbers (from their Message-ID) in UID order, each with whether it
/// is flagged `\Deleted`.
fn contents(c: &mut ImapClient, folder: &str) -> Vec<(u32, bool)> {
    c.uid_fetch_all(folder)
        .unwrap()
        .into_iter()
        .map(|m| {
            let text = String::from_utf8_lossy(&m.bytes).into_owned();
            let n = text
                .split("Message-ID: <m")
                .nth(1)
                .and_then(|t| t.split('@').next())
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(|| panic!("no Message-ID in {text:?}"));
            (n, m.flags.iter().any(|f| f == "\\Deleted"))
        })
        .collect()
}

fn sorted(mut v: Vec<(u32, bool)>) -> Vec<(u32, bool)> {
    v.sort();
    v
}

#[test]
fn rollback_removes_exactly_the_later_sync_points_copies() {
    let (src, dst) = (server(OLD_PW, None), server(NEW_PW, None));
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), &src, &dst);
    let mut s = src.login("alice", OLD_PW);
    s.create("Archive").unwrap();
    for (folder, n) in [("INBOX", 1), ("INBOX", 2), ("Archive", 3)] {
        s.append(folder, &[], None, &message(n)).unwrap();
    }
    let first = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(first.code, 0, "{}", first.transcript());
    for (folder, n) in [("INBOX", 4), ("INBOX", 6), ("Archive", 5)] {
        s.append(folder, &[], None, &message(n)).unwrap();
    }
    // Above the size hashed in slices.
    s.append("Archive", &[], None, &large_message(7)).unwrap();
    let second = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(second.code, 0, "{}", second.transcript());

    // The user's own mail on the destination, one of it deleted but not expunged, and one of
    // run 2's copies flagged \Deleted by the user: none of it is mailshift's to remove.
    let mut d = dst.login("alice", NEW_PW);
    d.append("INBOX", &[], None, &message(8)).unwrap();
    d.append("INBOX", &["\\Deleted"], None, &message(9))
        .unwrap();
    let six = d
        .uid_fetch_all("INBOX")
        .unwrap()
        .into_iter()
        .find(|m| String::from_utf8_lossy(&m.bytes).contains("<m6@"))
        .unwrap()
        .uid;
    d.select("INBOX").unwrap();
    d.command(&format!("UID STORE {six} +FLAGS.SILENT (\\Deleted)"))
        .unwrap();

    let status = run(dir.path(), &["status", "plan.yaml"]);
    assert_eq!(status.code, 0, "{}", status.transcript());
    // Each sync point with its date and what it copied.
    for (point, count) in [(1, "3 messages"), (2, "4 messages")] {
        let line = status
            .stdout
            .lines()
            .find(|l| l.contains(&format!("sync point {point} (")))
            .unwrap_or_else(|| panic!("no sync point {point}: {}", status.transcript()));
        assert!(
            line.contains(&format!(" UTC): {count} (")),
            "{}",
            status.transcript()
        );
    }

    let before = (contents(&mut d, "INBOX"), contents(&mut d, "Archive"));
    assert_eq!(
        sorted(before.0.clone()),
        vec![
            (1, false),
            (2, false),
            (4, false),
            (6, true),
            (8, false),
            (9, true)
        ]
    );
    let dry = run(
        dir.path(),
        &[
            "rollback",
            "plan.yaml",
            "--since",
            "2",
            "--dry-run",
            "--limit",
            "1",
        ],
    );
    assert_eq!(dry.code, 0, "{}", dry.transcript());
    // Archive holds two to delete, one listed; the counts stay complete.
    assert!(
        dry.stdout.contains("Dry run: 3 messages would be deleted")
            && dry.stdout.contains("flagged \\Deleted by someone else")
            && dry.stdout.contains("\"Archive\": 2 messages to delete")
            && dry.stdout.contains("    - and 1 more"),
        "{}",
        dry.transcript()
    );
    assert_eq!(
        (contents(&mut d, "INBOX"), contents(&mut d, "Archive")),
        before,
        "a dry run changed the destination"
    );

    // Without --yes it asks; no answer (stdin is empty here) is no.
    let asked = run(dir.path(), &["rollback", "plan.yaml", "--since", "2"]);
    assert_eq!(asked.code, 1, "{}", asked.transcript());
    assert!(
        asked
            .stdout
            .contains("Delete 3 messages from the destination?")
            && asked.stdout.contains("Nothing was deleted."),
        "{}",
        asked.transcript()
    );
    assert_eq!(
        (contents(&mut d, "INBOX"), contents(&mut d, "Archive")),
        before,
        "an unanswered question changed the destination"
    );

    let rolled = run(
        dir.path(),
        &["rollback", "plan.yaml", "--since", "2", "--yes"],
    );
    assert_eq!(rolled.code, 0, "{}", rolled.transcript());
    assert!(
        rolled.stdout.contains("Rolled back: 3 messages deleted"),
        "{}",
        rolled.transcript()
    );
    assert_eq!(
        sorted(contents(&mut d, "INBOX")),
        vec![(1, false), (2, false), (6, true), (8, false), (9, true)]
    );
    assert_eq!(contents(&mut d, "Archive"), vec![(3, false)]);
    // Nothing of sync point 2 is left to remove (the kept copy is the user's now).
    let again = run(
        dir.path(),
        &["rollback", "plan.yaml", "--since", "2", "--dry-run"],
    );
    assert!(
        again
            .stdout
            .contains("Dry run: 0 messages would be deleted"),
        "{}",
        again.transcript()
    );

    let third = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(third.code, 0, "{}", third.transcript());
    assert_eq!(
        sorted(contents(&mut d, "INBOX")),
        vec![
            (1, false),
            (2, false),
            (4, false),
            (6, true),
            (8, false),
            (9, true)
        ]
    );
    assert_eq!(
        sorted(contents(&mut d, "Archive")),
        vec![(3, false), (5, false), (7, false)]
    );
}

#[test]
fn rollback_refuses_a_destination_without_uidplus() {
    let src = server(OLD_PW, None);
    let dst = server(
        NEW_PW,
        Some("IMAP4rev1 SASL-IR ID ENABLE IDLE NAMESPACE AUTH=PLAIN"),
    );
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), &src, &dst);
    let mut s = src.login("alice", OLD_PW);
    s.append("INBOX", &[], None, &message(1)).unwrap();
    let applied = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(applied.code, 0, "{}", applied.transcript());
    let mut d = dst.login("alice", NEW_PW);
    let before = contents(&mut d, "INBOX");
    assert_eq!(before, vec![(1, false)]);
    let typo = run(
        dir.path(),
        &[
            "rollback",
            "plan.yaml",
            "--account",
            "bob@example.com",
            "--since",
            "1",
        ],
    );
    assert_eq!(typo.code, 1, "{}", typo.transcript());
    assert!(
        typo.stderr
            .contains("--account bob@example.com: no such account in plan.yaml"),
        "{}",
        typo.transcript()
    );
    let rolled = run(
        dir.path(),
        &["rollback", "plan.yaml", "--since", "1", "--yes"],
    );
    assert_eq!(rolled.code, 1, "{}", rolled.transcript());
    assert!(
        rolled.stdout.contains("does not offer UIDPLUS")
            && rolled.stdout.contains("a plain EXPUNGE would also remove"),
        "{}",
        rolled.transcript()
    );
    assert_eq!(contents(&mut d, "INBOX"), before);
}

/// Killed (kill -9) between the expunge and the state update: the state still records the
/// deleted copies. `apply` refuses until the rollback is run again, which finishes it from
/// the pending record; then `apply` copies the messages again, once.
#[test]
fn rollback_killed_after_the_expunge_converges() {
    let (src, dst) = (server(OLD_PW, None), server(NEW_PW, None));
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), &src, &dst);
    let mut s = src.login("alice", OLD_PW);
    s.append("INBOX", &[], None, &message(1)).unwrap();
    let first = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(first.code, 0, "{}", first.transcript());
    s.append("INBOX", &[], None, &message(2)).unwrap();
    s.append("INBOX", &[], None, &message(3)).unwrap();
    let second = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(second.code, 0, "{}", second.transcript());
    let mut d = dst.login("alice", NEW_PW);
    d.append("INBOX", &["\\Deleted"], None, &message(9))
        .unwrap();

    let killed = mailshift_env(
        dir.path(),
        &["rollback", "plan.yaml", "--since", "2", "--yes"],
        &[
            ("ALICE_OLD", OLD_PW),
            ("ALICE_NEW", NEW_PW),
            ("MAILSHIFT_TEST_CRASH", "rollback-after-expunge"),
        ],
    );
    assert_ne!(killed.code, 0, "{}", killed.transcript());
    assert_eq!(
        sorted(contents(&mut d, "INBOX")),
        vec![(1, false), (9, true)],
        "the expunge happened before the kill"
    );

    let refused = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(refused.code, 1, "{}", refused.transcript());
    assert!(
        refused
            .transcript()
            .contains("rollback of folder \"INBOX\" was interrupted: run `mailshift rollback PLAN --account alice@example.com --since 2` again"),
        "{}",
        refused.transcript()
    );
    assert_eq!(
        sorted(contents(&mut d, "INBOX")),
        vec![(1, false), (9, true)]
    );

    let finished = run(
        dir.path(),
        &["rollback", "plan.yaml", "--since", "2", "--yes"],
    );
    assert_eq!(finished.code, 0, "{}", finished.transcript());
    assert!(
        finished
            .stdout
            .contains("2 records already deleted by an interrupted rollback"),
        "{}",
        finished.transcript()
    );
    let third = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(third.code, 0, "{}", third.transcript());
    assert_eq!(
        sorted(contents(&mut d, "INBOX")),
        vec![(1, false), (2, false), (3, false), (9, true)]
    );
}

/// Killed after the STORE of `\Deleted` and before the expunge (the STORE is done here by
/// hand, the rollback being killed just before it): the next rollback still deletes its own
/// copies although they now carry `\Deleted`, and leaves the user's `\Deleted` mail alone.
#[test]
fn rollback_killed_before_the_expunge_still_knows_its_own_deleted_flags() {
    let (src, dst) = (server(OLD_PW, None), server(NEW_PW, None));
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), &src, &dst);
    let mut s = src.login("alice", OLD_PW);
    s.append("INBOX", &[], None, &message(1)).unwrap();
    let first = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(first.code, 0, "{}", first.transcript());
    s.append("INBOX", &[], None, &message(2)).unwrap();
    let second = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(second.code, 0, "{}", second.transcript());
    let mut d = dst.login("alice", NEW_PW);
    d.append("INBOX", &["\\Deleted"], None, &message(9))
        .unwrap();

    let killed = mailshift_env(
        dir.path(),
        &["rollback", "plan.yaml", "--since", "2", "--yes"],
        &[
            ("ALICE_OLD", OLD_PW),
            ("ALICE_NEW", NEW_PW),
            ("MAILSHIFT_TEST_CRASH", "rollback-before-expunge"),
        ],
    );
    assert_ne!(killed.code, 0, "{}", killed.transcript());
    d.select("INBOX").unwrap();
    d.command("UID STORE 1:* +FLAGS.SILENT (\\Deleted)")
        .unwrap();
    assert_eq!(
        sorted(contents(&mut d, "INBOX")),
        vec![(1, true), (2, true), (9, true)]
    );

    let finished = run(
        dir.path(),
        &["rollback", "plan.yaml", "--since", "2", "--yes"],
    );
    assert_eq!(finished.code, 0, "{}", finished.transcript());
    assert!(
        finished.stdout.contains("Rolled back: 1 message deleted"),
        "{}",
        finished.transcript()
    );
    // Message 1 (sync point 1, flagged by "the user" here) and 9 stay.
    assert_eq!(
        sorted(contents(&mut d, "INBOX")),
        vec![(1, true), (9, true)]
    );
}

/// Into Gmail, expunging from a folder only removes a label: refused, nothing touched.
#[test]
fn rollback_refuses_a_gmail_destination() {
    let src = server(OLD_PW, None);
    let dst = Dovecot::start(DovecotConfig {
        users: &[("alice", NEW_PW)],
        gmail: true,
        ..DovecotConfig::default()
    });
    let sim = dst.gmail();
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), &src, &dst);
    // Through the Gmail simulator (X-GM-EXT-1 in front of Dovecot), the plan saying Gmail.
    let plan = std::fs::read_to_string(dir.path().join("plan.yaml"))
        .unwrap()
        .replace(
            &format!(
                "new: {{type: imap, imap: {{host: 127.0.0.1, port: {},",
                dst.port()
            ),
            &format!(
                "new: {{type: gmail, imap: {{host: 127.0.0.1, port: {},",
                sim.port()
            ),
        );
    assert!(plan.contains("type: gmail"), "{plan}");
    std::fs::write(dir.path().join("plan.yaml"), plan).unwrap();
    let mut s = src.login("alice", OLD_PW);
    s.append("INBOX", &[], None, &message(1)).unwrap();
    let applied = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(applied.code, 0, "{}", applied.transcript());
    let before = dst.stored_messages("alice");
    assert!(before > 0);
    let rolled = run(
        dir.path(),
        &["rollback", "plan.yaml", "--since", "1", "--yes"],
    );
    assert_eq!(rolled.code, 1, "{}", rolled.transcript());
    assert!(
        rolled.stdout.contains("the destination is Gmail"),
        "{}",
        rolled.transcript()
    );
    assert_eq!(dst.stored_messages("alice"), before);
    // A plan calling it plain IMAP: the server's X-GM-EXT-1 says Gmail.
    let plain = std::fs::read_to_string(dir.path().join("plan.yaml"))
        .unwrap()
        .replace("new: {type: gmail,", "new: {type: imap,");
    std::fs::write(dir.path().join("plan.yaml"), plain).unwrap();
    let rolled = run(
        dir.path(),
        &["rollback", "plan.yaml", "--since", "1", "--yes"],
    );
    assert_eq!(rolled.code, 1, "{}", rolled.transcript());
    assert!(
        rolled.stdout.contains("the destination is Gmail"),
        "{}",
        rolled.transcript()
    );
    assert_eq!(dst.stored_messages("alice"), before);
}
