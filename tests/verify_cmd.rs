//! `mailshift verify` against two real Dovecot servers: after an apply, the destination is
//! altered behind mailshift's back (a message deleted, one replaced by an altered copy, one
//! added, a flag added, keywords changed, an internal date changed) and verify must name
//! each, in text and JSON, and exit 1; flags the destination holds only for a session
//! (`\Recent`) are no difference.

use std::path::Path;

use crate::common::{Output, mailshift_env};
use crate::support::dovecot::{Dovecot, DovecotConfig};
use crate::support::imap::ImapClient;

const OLD_PW: &str = "old-Pa55word";
const NEW_PW: &str = "new-Pa55word";

fn run(dir: &Path, args: &[&str]) -> Output {
    mailshift_env(dir, args, &[("ALICE_OLD", OLD_PW), ("ALICE_NEW", NEW_PW)])
}

fn servers() -> (Dovecot, Dovecot) {
    let start = |pw| {
        Dovecot::start(DovecotConfig {
            users: &[("alice", pw)],
            ..DovecotConfig::default()
        })
    };
    (start(OLD_PW), start(NEW_PW))
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

/// Message `n` with the given Subject header text (as it goes on the wire) and body line.
fn message(n: u32, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Bob <bob@example.org>\r\nTo: alice@example.com\r\nSubject: {subject}\r\nDate: Fri, 01 Mar 2024 10:0{n}:00 +0000\r\nMessage-ID: <m{n}@example.org>\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// The destination UID of the message whose Message-ID is `<m{n}@example.org>`.
fn dest_uid(c: &mut ImapClient, folder: &str, n: u32) -> u32 {
    let id = format!("<m{n}@example.org>");
    let found: Vec<u32> = c
        .uid_fetch_all(folder)
        .unwrap()
        .into_iter()
        .filter(|m| String::from_utf8_lossy(&m.bytes).contains(&id))
        .map(|m| m.uid)
        .collect();
    assert_eq!(found.len(), 1, "{id} in {folder}: {found:?}");
    found[0]
}

fn delete(c: &mut ImapClient, folder: &str, uid: u32) {
    c.select(folder).unwrap();
    c.command(&format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"))
        .unwrap();
    c.command(&format!("UID EXPUNGE {uid}")).unwrap();
}

#[test]
fn verify_names_each_difference_in_text_and_json() {
    let (src, dst) = servers();
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), &src, &dst);
    let mut s = src.login("alice", OLD_PW);
    s.create("Archive").unwrap();
    let date = |n: u32| format!("0{n}-Mar-2024 10:00:00 +0000");
    let seeded: [(&str, u32, &[&str], &str); 7] = [
        ("INBOX", 1, &["\\Seen"], "plain"),
        ("INBOX", 2, &[], "=?utf-8?q?Caf=C3=A9_cr=C3=A8me?="),
        ("INBOX", 3, &["\\Seen", "$Important"], "to be altered"),
        // A subject that would recolour a terminal if printed raw.
        ("INBOX", 4, &["\\Seen"], "evil \u{1b}[31mred"),
        ("Archive", 5, &["\\Seen", "$Important"], "keywords"),
        ("Archive", 6, &["\\Answered"], "re-dated"),
        ("Archive", 7, &[], "untouched"),
    ];
    for (folder, n, flags, subject) in seeded {
        s.append(folder, flags, Some(&date(n)), &message(n, subject, "body"))
            .unwrap();
    }
    let applied = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(applied.code, 0, "{}", applied.transcript());
    let clean = run(dir.path(), &["verify", "plan.yaml"]);
    assert_eq!(clean.code, 0, "{}", clean.transcript());
    assert!(
        clean.stdout.contains("Verify: 1 of 1 accounts match.") && !clean.stdout.contains("differ"),
        "{}",
        clean.transcript()
    );

    let mut d = dst.login("alice", NEW_PW);
    // Deleted.
    let uid2 = dest_uid(&mut d, "INBOX", 2);
    delete(&mut d, "INBOX", uid2);
    // Altered: a changed copy appended, the original deleted.
    let uid3 = dest_uid(&mut d, "INBOX", 3);
    let altered = d
        .append(
            "INBOX",
            &["\\Seen", "$Important"],
            Some(&date(3)),
            &message(3, "to be altered", "body, altered by a gateway"),
        )
        .unwrap()
        .unwrap();
    delete(&mut d, "INBOX", uid3);
    // Two extra, so `--limit 1` has something to leave out.
    let extra8 = d
        .append("INBOX", &[], Some(&date(8)), &message(8, "extra one", "x"))
        .unwrap()
        .unwrap();
    let extra9 = d
        .append("INBOX", &[], Some(&date(9)), &message(9, "extra two", "y"))
        .unwrap()
        .unwrap();
    // \Flagged added.
    let uid4 = dest_uid(&mut d, "INBOX", 4);
    d.select("INBOX").unwrap();
    d.command(&format!("UID STORE {uid4} +FLAGS.SILENT (\\Flagged)"))
        .unwrap();
    // Keywords changed.
    let uid5 = dest_uid(&mut d, "Archive", 5);
    d.select("Archive").unwrap();
    d.command(&format!("UID STORE {uid5} FLAGS.SILENT (\\Seen $Later)"))
        .unwrap();
    // Same bytes and flags, another internal date: appended anew (so `\Recent` in verify's
    // session, which must not count as a flag difference), the original deleted.
    let uid6 = dest_uid(&mut d, "Archive", 6);
    let redated = d
        .append(
            "Archive",
            &["\\Answered"],
            Some("16-Mar-2024 10:00:00 +0000"),
            &message(6, "re-dated", "body"),
        )
        .unwrap()
        .unwrap();
    delete(&mut d, "Archive", uid6);

    let text = run(dir.path(), &["verify", "plan.yaml"]);
    assert_eq!(text.code, 1, "{}", text.transcript());
    let out = &text.stdout;
    let expect = [
        "MISMATCH alice@example.com".to_string(),
        "        missing  INBOX UID 2  <m2@example.org>  Fri, 01 Mar 2024 10:02:00 +0000  \"Café crème\"".to_string(),
        format!("        extra    UID {extra8}  <m8@example.org>  Fri, 01 Mar 2024 10:08:00 +0000  \"extra one\""),
        format!("        extra    UID {extra9}  <m9@example.org>  Fri, 01 Mar 2024 10:09:00 +0000  \"extra two\""),
        format!("        changed  INBOX UID 3  <m3@example.org>  Fri, 01 Mar 2024 10:03:00 +0000  \"to be altered\"; destination UID {altered} has other content (175 bytes, source 153)"),
        format!("        flags    INBOX UID 4  <m4@example.org>  Fri, 01 Mar 2024 10:04:00 +0000  \"evil \u{FFFD}[31mred\"; destination UID {uid4} adds \\Flagged"),
        format!("        flags    Archive UID 1  <m5@example.org>  Fri, 01 Mar 2024 10:05:00 +0000  \"keywords\"; destination UID {uid5} lacks $Important, adds $Later"),
        format!("        date     Archive UID 2  <m6@example.org>  Fri, 01 Mar 2024 10:06:00 +0000  \"re-dated\"; internal date 06-Mar-2024 10:00:00 +0000 on the source, 16-Mar-2024 10:00:00 +0000 on destination UID {redated}"),
        "Verify: 0 of 1 accounts match.".to_string(),
        "Content differs: 1 missing, 2 extra, 1 changed, 0 skipped by the copy.".to_string(),
        "Same content, other metadata: 2 with other flags or keywords, 1 with another internal date.".to_string(),
    ];
    for line in &expect {
        assert!(
            out.lines().any(|l| l == line),
            "no line {line:?} in\n{}",
            text.transcript()
        );
    }
    // Nothing else is named: untouched messages, and the `\Recent` of the re-dated copy.
    let named = out.lines().filter(|l| l.starts_with("        ")).count();
    assert_eq!(named, 7, "{}", text.transcript());
    assert!(!out.contains('\u{1b}'), "a raw escape reached the terminal");
    let folder_line = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("    {name} ")))
            .unwrap_or_else(|| panic!("no {name} line in {out}"))
            .to_string()
    };
    assert!(
        folder_line("INBOX").ends_with("  missing 1  extra 2  changed 1  flags 1"),
        "{out}"
    );
    assert!(
        folder_line("Archive").ends_with("  flags 1  dates 1"),
        "{out}"
    );

    // JSON: the same, with every field, and the list cap said.
    let json = run(
        dir.path(),
        &["verify", "plan.yaml", "--json", "--limit", "1"],
    );
    assert_eq!(json.code, 1, "{}", json.transcript());
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["format_version"], 2);
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["content_ok"], false);
    assert_eq!(doc["list_limit"], 1);
    let folders = doc["accounts"][0]["folders"].as_array().unwrap();
    let folder = |name: &str| {
        folders
            .iter()
            .find(|f| f["folder"] == name)
            .unwrap_or_else(|| panic!("no {name} in {doc}"))
    };
    let inbox = folder("INBOX");
    assert_eq!(
        inbox["missing"],
        serde_json::json!({"count": 1, "listed": [{
            "folder": "INBOX", "uid": 2, "message_id": "<m2@example.org>",
            "date": "Fri, 01 Mar 2024 10:02:00 +0000", "subject": "Café crème",
            "size": 172, "internal_date": "02-Mar-2024 10:00:00 +0000", "flags": [],
        }]})
    );
    assert_eq!(inbox["extra"]["count"], 2);
    assert_eq!(inbox["extra"]["listed"].as_array().unwrap().len(), 1);
    assert_eq!(inbox["extra"]["listed"][0]["uid"], extra8);
    assert_eq!(inbox["changed"]["count"], 1);
    assert_eq!(inbox["changed"]["listed"][0]["source"]["uid"], 3);
    assert_eq!(inbox["changed"]["listed"][0]["destination"]["uid"], altered);
    assert_eq!(
        inbox["flags"]["listed"][0]["added"],
        serde_json::json!(["\\Flagged"])
    );
    assert_eq!(inbox["flags"]["listed"][0]["lost"], serde_json::json!([]));
    assert_eq!(
        inbox["skipped"],
        serde_json::json!({"count": 0, "listed": []})
    );
    let archive = folder("Archive");
    assert_eq!(archive["flags"]["count"], 1);
    assert_eq!(
        archive["flags"]["listed"][0]["lost"],
        serde_json::json!(["$Important"])
    );
    assert_eq!(
        archive["flags"]["listed"][0]["added"],
        serde_json::json!(["$Later"])
    );
    assert_eq!(archive["internal_dates"]["count"], 1);
    assert_eq!(
        archive["internal_dates"]["listed"][0]["destination"]["internal_date"],
        "16-Mar-2024 10:00:00 +0000"
    );
    assert_eq!(
        archive["internal_dates"]["listed"][0]["destination"]["flags"],
        serde_json::json!(["\\Answered"]),
        "\\Recent is a session's, not the message's"
    );

    // The text says when a list stops.
    let capped = run(dir.path(), &["verify", "plan.yaml", "--limit", "1"]);
    assert_eq!(capped.code, 1);
    assert!(
        capped.stdout.contains("        ... and 1 more extra\n")
            && capped
                .stdout
                .contains("Lists stop at 1 messages per folder"),
        "{}",
        capped.transcript()
    );
}

#[test]
fn only_flag_differences_still_exit_1_with_their_own_summary() {
    let (src, dst) = servers();
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), &src, &dst);
    let mut s = src.login("alice", OLD_PW);
    s.append("INBOX", &["\\Seen"], None, &message(1, "one", "body"))
        .unwrap();
    assert_eq!(run(dir.path(), &["apply", "plan.yaml"]).code, 0);
    let mut d = dst.login("alice", NEW_PW);
    d.select("INBOX").unwrap();
    d.command("UID STORE 1 -FLAGS.SILENT (\\Seen)").unwrap();

    let out = run(dir.path(), &["verify", "plan.yaml"]);
    assert_eq!(out.code, 1, "{}", out.transcript());
    assert!(
        out.stdout.contains("destination UID 1 lacks \\Seen")
            && out.stdout.contains(
                "Same content, other metadata: 1 with other flags or keywords, 0 with another internal date."
            )
            && !out.stdout.contains("Content differs"),
        "{}",
        out.transcript()
    );
    let json = run(dir.path(), &["verify", "plan.yaml", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        (doc["ok"].clone(), doc["content_ok"].clone()),
        (false.into(), true.into())
    );
}
