//! Smoke tests of the Dovecot test harness itself (tests/support): real servers start, hold
//! awkward messages and folder names exactly, run side by side, and leave nothing behind.
//! Every other IMAP integration test trusts this harness, so it must be trustworthy first.

use crate::support::dovecot::{Dovecot, DovecotConfig, process_alive};
use crate::support::imap::{ImapClient, Message};

/// "Été" in modified UTF-7 (RFC 3501 5.1.3), encoded by hand: É = U+00C9 → "&AMk-",
/// é = U+00E9 → "&AOk-".
const ETE: &str = "&AMk-t&AOk-";

fn plain_message() -> Vec<u8> {
    b"From: Alice <alice@example.org>\r\n\
To: Bob <bob@example.org>\r\n\
Subject: plain\r\n\
Message-ID: <plain-1@example.org>\r\n\
Date: Thu, 01 Feb 2024 10:00:00 +0000\r\n\
\r\n\
Hello.\r\n"
        .to_vec()
}

/// Bare LF line endings, raw 8-bit bytes in headers (UTF-8 and Latin-1), no Message-ID, and
/// body lines that look like IMAP protocol.
fn awkward_message() -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(b"From: =?utf-8?q?Ren=C3=A9?= <rene@example.org>\n");
    m.extend_from_slice("Subject: Café crème\n".as_bytes());
    m.extend_from_slice(b"X-Latin1: caf\xe9\n");
    m.extend_from_slice(b"Date: Fri, 02 Feb 2024 11:00:00 +0100\n\n");
    m.extend_from_slice(b"* 1 FETCH (BODY[] {12}\n");
    m.extend_from_slice(b"T3 OK FETCH completed\n");
    m.extend_from_slice(b"+ go ahead\n)\n{5}\n");
    m.extend_from_slice(b"8-bit body: \xc3\xa9t\xc3\xa9 \xff\xfe\n");
    m
}

/// ~3 MB, deterministic: a big attachment-like body.
fn big_message() -> Vec<u8> {
    let mut m = b"From: big@example.org\r\nSubject: big\r\nMessage-ID: <big@example.org>\r\n\
MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: base64\r\n\r\n"
        .to_vec();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x: u32 = 0x1234_5678;
    while m.len() < 3 * 1024 * 1024 {
        for _ in 0..76 {
            // xorshift: cheap pseudo-random bytes that do not compress into a pattern.
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            m.push(alphabet[(x % 64) as usize]);
        }
        m.extend_from_slice(b"\r\n");
    }
    m
}

/// What an IMAP server hands back for a message stored with bare LFs: CRLF everywhere.
fn crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 20);
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' && (i == 0 || bytes[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

struct Seed {
    folder: String,
    flags: &'static [&'static str],
    date: Option<&'static str>,
    bytes: Vec<u8>,
}

fn seeds(sep: char) -> Vec<Seed> {
    let nested = if sep == '/' {
        "Projects/Specs v1.2".to_string()
    } else {
        "Projects.Specs v1_2".to_string()
    };
    vec![
        Seed {
            folder: "INBOX".into(),
            flags: &["\\Seen", "\\Flagged"],
            date: Some("01-Feb-2024 10:00:00 +0000"),
            bytes: plain_message(),
        },
        Seed {
            folder: "INBOX".into(),
            flags: &[],
            date: Some("02-Feb-2024 10:00:00 +0000"),
            bytes: awkward_message(),
        },
        Seed {
            folder: ETE.into(),
            flags: &["\\Answered", "$Forwarded", "project_x"],
            date: Some("03-Mar-2023 23:59:59 +0000"),
            bytes: awkward_message(),
        },
        Seed {
            folder: format!("{ETE}{sep}2024"),
            flags: &["\\Seen"],
            date: None,
            bytes: plain_message(),
        },
        Seed {
            folder: nested,
            flags: &["\\Seen", "\\Draft"],
            date: Some("29-Feb-2024 12:30:00 +0000"),
            bytes: big_message(),
        },
    ]
}

fn seed_and_check(server: &Dovecot, user: &str, pass: &str) {
    let sep = server.separator();
    let seeds = seeds(sep);
    let mut client = server.login(user, pass);
    let mut created = Vec::new();
    for seed in &seeds {
        if seed.folder != "INBOX" && !created.contains(&seed.folder) {
            client.create(&seed.folder).unwrap();
            created.push(seed.folder.clone());
        }
    }
    let mut appended_uids = Vec::new();
    for seed in &seeds {
        let uid = client
            .append(&seed.folder, seed.flags, seed.date, &seed.bytes)
            .unwrap_or_else(|e| panic!("append to {}: {e}\n{}", seed.folder, server.log()));
        appended_uids.push(uid);
    }

    // Fetch on a second connection: nothing may depend on the appending session's state.
    let mut reader = server.login(user, pass);
    let mut folders: Vec<&str> = seeds.iter().map(|s| s.folder.as_str()).collect();
    folders.dedup();
    for folder in folders {
        let expected: Vec<(&Seed, Option<u32>)> = seeds
            .iter()
            .zip(appended_uids.iter().copied())
            .filter(|(s, _)| s.folder == folder)
            .collect();
        let got: Vec<Message> = reader.uid_fetch_all(folder).unwrap();
        assert_eq!(got.len(), expected.len(), "message count in {folder}");
        for (message, (seed, appended_uid)) in got.iter().zip(&expected) {
            // Dovecot stores and serves CRLF line endings whatever the client sent: bare LFs
            // come back as CRLF, every other byte (8-bit included) untouched.
            let want = crlf(&seed.bytes);
            assert!(
                message.bytes == want,
                "{folder} uid {}: body differs ({} bytes, want {})",
                message.uid,
                message.bytes.len(),
                want.len()
            );
            let mut want_flags: Vec<String> = seed.flags.iter().map(|f| f.to_string()).collect();
            want_flags.sort();
            assert_eq!(
                message.flags, want_flags,
                "{folder} uid {} flags",
                message.uid
            );
            match seed.date {
                Some(date) => assert_eq!(message.internal_date, date, "{folder} internal date"),
                None => assert!(!message.internal_date.is_empty()),
            }
            // Dovecot offers UIDPLUS, so every APPEND reported the new message's UID.
            assert_eq!(Some(message.uid), *appended_uid, "{folder} APPENDUID");
        }
        let mailbox = reader.select(folder).unwrap();
        assert_eq!(mailbox.exists as usize, expected.len());
        assert_eq!(mailbox.uidnext, got.last().unwrap().uid + 1);
        assert_ne!(mailbox.uidvalidity, 0);
    }

    let list = reader.list().unwrap();
    let names: Vec<&str> = list.iter().map(|(_, _, name)| name.as_str()).collect();
    for seed in &seeds {
        assert!(
            names.contains(&seed.folder.as_str()),
            "{} not in LIST {names:?}",
            seed.folder
        );
    }
    assert!(
        list.iter().all(|(_, delimiter, _)| *delimiter == Some(sep)),
        "{list:?}"
    );
    let (attrs, _, _) = list
        .iter()
        .find(|(_, _, n)| n == "Projects")
        .expect("implicit parent Projects");
    assert!(attrs.iter().any(|a| a == "\\HasChildren"), "{attrs:?}");

    client.logout().unwrap();
    reader.logout().unwrap();
}

#[test]
fn two_servers_keep_messages_and_folders_exact() {
    let slash = Dovecot::start(DovecotConfig {
        separator: '/',
        users: &[("alice", "alice-pw")],
        capabilities_override: None,
        ..DovecotConfig::default()
    });
    let dot = Dovecot::start(DovecotConfig {
        separator: '.',
        users: &[("bob", "bob-pw")],
        capabilities_override: None,
        ..DovecotConfig::default()
    });
    assert_ne!(slash.port(), dot.port());
    assert!(!slash.processes().is_empty() && !dot.processes().is_empty());
    assert_ne!(slash.master_pid(), dot.master_pid());

    let mut client = slash.login("alice", "alice-pw");
    let caps = client.capabilities().unwrap();
    eprintln!(
        "greeting: {}\ncapabilities: {}",
        client.greeting,
        caps.join(" ")
    );
    for cap in ["IMAP4rev1", "UIDPLUS", "MULTIAPPEND", "LITERAL+"] {
        assert!(caps.iter().any(|c| c == cap), "{cap} missing from {caps:?}");
    }
    client.logout().unwrap();

    seed_and_check(&slash, "alice", "alice-pw");
    seed_and_check(&dot, "bob", "bob-pw");

    // Users are confined to their own server.
    assert!(
        ImapClient::connect(dot.port())
            .unwrap()
            .login("alice", "alice-pw")
            .is_err()
    );
}

#[test]
fn drop_leaves_no_process_behind() {
    let server = Dovecot::start(DovecotConfig {
        users: &[("carol", "pw")],
        ..Default::default()
    });
    let master = server.master_pid().expect("master.pid");
    // An open session means an imap process too: it must die with the server.
    let mut session = server.login("carol", "pw");
    session.select("INBOX").unwrap();
    let pids = server.processes();
    assert!(pids.contains(&master), "master {master} not among {pids:?}");
    assert!(
        pids.len() >= 4,
        "expected master, log, config, auth, imap...: {pids:?}"
    );
    let dir = server.dir().to_path_buf();

    drop(server);

    assert!(!process_alive(master), "master {master} survived");
    let survivors: Vec<u32> = pids.into_iter().filter(|&p| process_alive(p)).collect();
    assert!(
        survivors.is_empty(),
        "Dovecot processes survived: {survivors:?}"
    );
    assert!(!dir.exists(), "{} not removed", dir.display());
    assert!(session.select("INBOX").is_err(), "session still answered");
}

#[test]
fn stop_is_explicit_and_idempotent() {
    let mut server = Dovecot::start(DovecotConfig::default());
    let port = server.port();
    server.stop();
    assert!(server.processes().is_empty());
    assert!(
        ImapClient::connect(port).is_err(),
        "port {port} still answers"
    );
    server.stop();
}

#[test]
fn add_user_takes_effect_on_a_running_server() {
    let server = Dovecot::start(DovecotConfig::default());
    assert!(
        ImapClient::connect(server.port())
            .unwrap()
            .login("dave", "pw-one")
            .is_err()
    );
    server.add_user("dave", "pw-one");
    server.login("dave", "pw-one").logout().unwrap();
    // Same length, same second: only the mtime bump makes Dovecot notice.
    server.add_user("dave", "pw-two");
    server.login("dave", "pw-two").logout().unwrap();
    let err = ImapClient::connect(server.port())
        .unwrap()
        .login("dave", "pw-one")
        .unwrap_err();
    assert!(err.contains("NO"), "{err}");
}

#[test]
fn capabilities_can_be_reduced() {
    let server = Dovecot::start(DovecotConfig {
        users: &[("erin", "pw")],
        capabilities_override: Some("IMAP4rev1 IDLE NAMESPACE"),
        ..Default::default()
    });
    let mut client = server.login("erin", "pw");
    let caps = client.capabilities().unwrap();
    assert_eq!(
        caps,
        ["IMAP4rev1", "IDLE", "NAMESPACE"],
        "greeting: {}",
        client.greeting
    );
    // The pre-login greeting is reduced too: a client must not see LITERAL+ anywhere.
    assert!(
        client.greeting.contains("IMAP4rev1 IDLE NAMESPACE AUTH=")
            && !client.greeting.contains("LITERAL+"),
        "{}",
        client.greeting
    );
    // Synchronizing literals work without LITERAL+.
    client.append("INBOX", &[], None, &plain_message()).unwrap();
    let got = client.uid_fetch_all("INBOX").unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].bytes, plain_message());
}

#[test]
fn server_refusals_come_back_as_errors_with_the_server_line() {
    let server = Dovecot::start(DovecotConfig {
        users: &[("frank", "pw")],
        ..Default::default()
    });
    let mut client = server.login("frank", "pw");
    let err = client.uid_fetch_all("No such folder").unwrap_err();
    assert!(err.contains("NO") && err.contains("exist"), "{err}");
    let err = client
        .append("No such folder", &[], None, b"x\r\n")
        .unwrap_err();
    assert!(err.contains("NO"), "{err}");
    // The connection is still usable after refusals.
    assert!(client.list().unwrap().iter().any(|(_, _, n)| n == "INBOX"));
}
