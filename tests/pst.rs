//! `mailshift apply` with a `files` source holding Outlook `.pst` files (tests/data/pst): the
//! mail folders into a real Dovecot with flags and dates, the contacts and calendars into a
//! real Radicale, exactly once (again adds nothing, a lost state adopts, kill -9 at any moment
//! loses and duplicates nothing), and a damaged file names each item it cannot read while the
//! others are imported.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

/// Every collection of alice's on `server` holding `component`, with its objects' UIDs.
fn dav_contents(
    server: &mailshift_dav::testserver::DavServer,
    component: mailshift_dav::store::Component,
) -> BTreeMap<String, Vec<String>> {
    use mailshift_dav::store::Store;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = mailshift_dav::dav::DavStore::connect(server.dav_config(ALICE))
            .await
            .unwrap();
        let mut out = BTreeMap::new();
        for c in store.collections(component).await.unwrap() {
            let hrefs: Vec<String> = store
                .list(&c)
                .await
                .unwrap()
                .into_iter()
                .map(|l| l.href)
                .collect();
            let mut ids = Vec::new();
            for f in store.fetch(&c, &hrefs).await.unwrap() {
                let item = mailshift_dav::object::parse(&f.data).unwrap();
                if item.component == component {
                    ids.push(item.uid.unwrap_or_default());
                }
            }
            ids.sort();
            out.insert(c.name.clone(), ids);
        }
        out
    })
}

const ALICE: &str = "alice@example.com";

#[test]
fn a_pst_s_contacts_and_calendars_reach_radicale_once() {
    use mailshift_dav::store::Component;
    let dst = mailshift_dav::testserver::DavServer::radicale();
    let dir = tempfile::tempdir().unwrap();
    let account = dir.path().join("export").join(ALICE);
    std::fs::create_dir_all(&account).unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pst");
    std::fs::copy(data.join("aspose-outlook.pst"), account.join("outlook.pst")).unwrap();
    std::fs::copy(
        data.join("java-libpst-dist-list.pst"),
        account.join("lists.pst"),
    )
    .unwrap();
    let plan = format!(
        "version: 1\nplatforms:\n  files: {{type: files, path: ./export}}\n  new: {{type: imap, imap: {{host: 127.0.0.1, security: none}}, dav: {{url: \"{}\"}}}}\naccounts:\n  - address: {ALICE}\n    from: files\n    to: new\n    content: [contacts, calendars, tasks]\n    destination: {{password: {{env: NEW_PW}}}}\n",
        dst.dav_config(ALICE).url
    );
    std::fs::write(dir.path().join("plan.yaml"), plan).unwrap();
    let run =
        || crate::common::mailshift_env(dir.path(), &["apply", "plan.yaml"], &[("NEW_PW", "new")]);
    let first = run();
    assert_eq!(first.code, 0, "{}", first.transcript());
    // The distribution list is not carried, and says so.
    assert!(
        first.stdout.contains("IPM.DistList, which is not carried"),
        "{}",
        first.transcript()
    );
    let cards = dav_contents(&dst, Component::Card);
    let events = dav_contents(&dst, Component::Event);
    assert_eq!(
        cards.values().map(Vec::len).sum::<usize>(),
        2,
        "{cards:?}\n{}",
        first.transcript()
    );
    assert_eq!(
        events.values().map(Vec::len).sum::<usize>(),
        2,
        "{events:?}\n{}",
        first.transcript()
    );

    let again = run();
    assert_eq!(again.code, 0, "{}", again.transcript());
    assert_eq!(dav_contents(&dst, Component::Card), cards);
    assert_eq!(dav_contents(&dst, Component::Event), events);
}

#[test]
fn a_damaged_pst_names_the_items_it_cannot_read_and_imports_the_rest() {
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
    let mut bytes = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pst/aspose-outlook.pst"),
    )
    .unwrap();
    // 16 bytes flipped in the page three Inbox items are reached through (the offset
    // crates/mailshift-pst/tests/read.rs uses).
    for b in &mut bytes[0x9000..0x9010] {
        *b ^= 0xFF;
    }
    std::fs::write(account.join("damaged.pst"), &bytes).unwrap();

    let (code, out) = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(code, 1, "{out}");
    for nid in ["0x200224", "0x200244", "0x200264"] {
        assert!(
            out.contains(&format!(
                "damaged.pst: folder INBOX: item {nid}: cannot be read"
            )),
            "{out}"
        );
    }
    let want: BTreeMap<String, usize> = [("INBOX".to_string(), 5), ("Sent".to_string(), 6)].into();
    assert_eq!(counts(&dst), want, "{out}");
    // Again: the damaged items are named again, nothing is sent twice.
    let (code, out) = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(counts(&dst), want, "{out}");
}

#[test]
fn kill_9_mid_pst_import_then_apply_imports_each_message_once() {
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
    let mut seed: u64 = 0x9e37_79b9;
    let mut kills = 0;
    for run in 0..5 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut child = Command::new(env!("CARGO_BIN_EXE_mailshift"))
            .args(["apply", "plan.yaml"])
            .current_dir(dir.path())
            .env("ALICE_NEW", PW)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        if run == 0 {
            // Killed once its first message is on the server: a fixed delay may outlast the
            // whole import of 14 messages.
            let deadline = Instant::now() + Duration::from_secs(60);
            while dst.stored_messages("alice") == 0
                && Instant::now() < deadline
                && child.try_wait().unwrap().is_none()
            {
                std::thread::sleep(Duration::from_millis(1));
            }
        } else {
            std::thread::sleep(Duration::from_millis(20 + (seed >> 33) % 300));
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
    let (code, out) = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(code, 0, "{out}");
    let want: BTreeMap<String, usize> = [("INBOX".to_string(), 8), ("Sent".to_string(), 6)].into();
    assert_eq!(counts(&dst), want, "after {kills} kills\n{out}");
    let (code, out) = mailshift(dir.path(), &["verify", "plan.yaml"]);
    assert_eq!(code, 0, "{out}");
}
