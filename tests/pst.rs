//! `mailshift apply` with a `files` source holding an Outlook `.pst` (tests/data/pst): its
//! mail folders imported into a real Dovecot with flags and dates, exactly once (again adds
//! nothing, a lost state adopts what the server holds).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::support::dovecot::{Dovecot, DovecotConfig};

const PW: &str = "new-Pa55word";

fn mailshift(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mailshift"))
        .args(args)
        .current_dir(dir)
        .env("ALICE_NEW", PW)
        .output()
        .expect("run mailshift");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "--- stdout\n{}--- stderr\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn counts(dst: &Dovecot) -> BTreeMap<String, usize> {
    let mut c = dst.login("alice", PW);
    c.mailboxes()
        .unwrap()
        .into_iter()
        .map(|(f, m)| (f, m.len()))
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[test]
fn a_pst_s_mail_is_imported_once_with_flags_and_dates() {
    let dst = Dovecot::start(DovecotConfig {
        separator: '/',
        users: &[("alice", PW)],
        ..DovecotConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let plan = format!(
        "version: 1\nplatforms:\n  disk: {{type: files, path: mail}}\n  new: {{type: imap, imap: {{host: 127.0.0.1, port: {}, security: none}}}}\naccounts:\n  - address: alice@example.com\n    from: disk\n    to: new\n    content: [mail]\n    destination: {{login: alice, password: {{env: ALICE_NEW}}}}\n",
        dst.port()
    );
    std::fs::write(dir.path().join("plan.yaml"), plan).unwrap();
    let account = dir.path().join("mail/alice@example.com");
    std::fs::create_dir_all(&account).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pst/aspose-outlook.pst"),
        account.join("outlook.pst"),
    )
    .unwrap();

    let (code, out) = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(code, 0, "{out}");
    let got = counts(&dst);
    assert_eq!(got.get("INBOX"), Some(&8), "{got:?}\n{out}");
    assert_eq!(got.values().sum::<usize>(), 14, "{got:?}\n{out}");
    let mut c = dst.login("alice", PW);
    let inbox = c.uid_fetch_all("INBOX").unwrap();
    let multi = inbox
        .iter()
        .find(|m| String::from_utf8_lossy(&m.bytes).contains("Subject: Multiple attachments"))
        .expect("the message with attachments");
    assert!(
        multi.flags.contains(&"\\Seen".to_string()),
        "{:?}",
        multi.flags
    );
    // PR_MESSAGE_DELIVERY_TIME.
    assert_eq!(multi.internal_date, "21-Jun-2011 23:51:07 +0000");
    assert_eq!(
        String::from_utf8_lossy(&multi.bytes)
            .matches("Content-Disposition: attachment")
            .count(),
        3
    );

    // Again: nothing new.
    let before = counts(&dst);
    let (_, out) = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(counts(&dst), before, "{out}");
    // A lost state: what the server holds is adopted by content, nothing is sent.
    std::fs::remove_dir_all(dir.path().join(".mailshift")).unwrap();
    let (_, out) = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(counts(&dst), before, "{out}");
}
