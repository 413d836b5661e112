//! Folder names users really make (`Quote "this"`, `Back\slash`, `100% *done*`, spaces at
//! the ends, accents, 200 characters) copied by `mailshift apply` under their exact names, and
//! arbitrary names round-tripped through mailshift's name codec and a real Dovecot.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mailshift::transfer::imap::mutf7;
use mailshift::transfer::imap::session::{Auth, Endpoint, Imap, Secret, Security, Target};
use proptest::prelude::*;

use crate::support::dovecot::{Dovecot, DovecotConfig};

const OLD_PW: &str = "old-Pa55word";
const NEW_PW: &str = "new-Pa55word";

fn mailshift(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mailshift"))
        .args(args)
        .current_dir(dir)
        .env("ALICE_OLD", OLD_PW)
        .env("ALICE_NEW", NEW_PW)
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

/// A 200-character name that also holds the characters that need escaping.
fn long_name() -> String {
    let mut name = String::from("Long \"quoted\\\" ");
    while name.len() < 200 {
        name.push_str("abcdefghij");
    }
    name.truncate(200);
    name
}

/// (source name, destination name), both on the wire (modified UTF-7). The source separates
/// levels with `/`, the destination with `.`.
fn folders() -> Vec<(String, String)> {
    let accented_parent = mutf7::encode("Éléments");
    vec![
        ("Quote \"this\"".into(), "Quote \"this\"".into()),
        ("Back\\slash".into(), "Back\\slash".into()),
        ("100% *done*".into(), "100% *done*".into()),
        (" lead and trail ".into(), " lead and trail ".into()),
        (accented_parent.clone(), accented_parent),
        (mutf7::encode("Éléments/Año"), mutf7::encode("Éléments.Año")),
        (long_name(), long_name()),
    ]
}

/// Folder → sorted (bytes, flags, internal date) of its messages.
type Contents = BTreeMap<String, Vec<(Vec<u8>, Vec<String>, String)>>;

/// What a server holds, read with the independent test client.
fn contents(server: &Dovecot, pass: &str) -> Contents {
    let mut c = server.login("alice", pass);
    c.mailboxes()
        .unwrap()
        .into_iter()
        .map(|(name, msgs)| {
            let mut msgs: Vec<_> = msgs
                .into_iter()
                .map(|m| (m.bytes, m.flags, m.internal_date))
                .collect();
            msgs.sort();
            (name, msgs)
        })
        .collect()
}

#[test]
fn hostile_folder_names_are_copied_under_their_exact_names() {
    let src = Dovecot::start(DovecotConfig {
        separator: '/',
        users: &[("alice", OLD_PW)],
        ..DovecotConfig::default()
    });
    let dst = Dovecot::start(DovecotConfig {
        separator: '.',
        users: &[("alice", NEW_PW)],
        ..DovecotConfig::default()
    });
    let mut c = src.login("alice", OLD_PW);
    for (i, (name, _)) in folders().iter().enumerate() {
        c.create(name)
            .unwrap_or_else(|e| panic!("creating {name:?}: {e}\n{}", src.log()));
        for j in 0..=i % 3 {
            let body = format!(
                "From: bob@example.org\r\nSubject: folder {i} message {j}\r\nMessage-ID: <f{i}m{j}@example.org>\r\n\r\nin {name}\r\n"
            );
            c.append(
                name,
                &["\\Seen"],
                Some("02-Mar-2024 10:00:00 +0000"),
                body.as_bytes(),
            )
            .unwrap();
        }
    }
    c.logout().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let plan = format!(
        "version: 1\nplatforms:\n  old: {{type: imap, imap: {{host: 127.0.0.1, port: {}, security: none}}}}\n  new: {{type: imap, imap: {{host: 127.0.0.1, port: {}, security: none}}}}\naccounts:\n  - address: alice@example.com\n    from: old\n    to: new\n    source: {{login: alice, password: {{env: ALICE_OLD}}}}\n    destination: {{login: alice, password: {{env: ALICE_NEW}}}}\n",
        src.port(),
        dst.port()
    );
    std::fs::write(dir.path().join("plan.yaml"), plan).unwrap();

    let (code, out) = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(code, 0, "{out}");

    let source = contents(&src, OLD_PW);
    let dest = contents(&dst, NEW_PW);
    for (s, d) in folders() {
        let want = &source[&s];
        assert!(!want.is_empty(), "{s:?} was seeded");
        assert_eq!(
            dest.get(&d),
            Some(want),
            "destination folder {d:?} (from {s:?}); destination has {:?}\n{out}",
            dest.keys().collect::<Vec<_>>()
        );
    }
    // Nothing else was made on the way (a doubly escaped `Back\\slash`...).
    let expected: Vec<String> = std::iter::once("INBOX".to_string())
        .chain(folders().into_iter().map(|(_, d)| d))
        .collect();
    let mut got: Vec<&String> = dest.keys().collect();
    got.sort();
    let mut want: Vec<&String> = expected.iter().collect();
    want.sort();
    assert_eq!(got, want, "{out}");

    let (code, out) = mailshift(dir.path(), &["verify", "plan.yaml"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Verify: 1 of 1 accounts match."), "{out}");

    let (code, out) = mailshift(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("; 0 messages"), "{out}");
    assert_eq!(contents(&dst, NEW_PW), dest);
}

fn target(server: &Dovecot) -> Target {
    Target::new(
        Endpoint {
            host: "127.0.0.1".into(),
            port: server.port(),
            security: Security::None,
            ca_file: None,
            insecure_skip_verify: false,
            timeout: Duration::from_secs(120),
        },
        Auth::Password {
            login: "alice".into(),
            password: Secret::new(NEW_PW),
        },
    )
}

/// One level of a folder name: anything printable, the characters that need escaping or a
/// literal made likely. Dovecot itself refuses a few shapes (empty, `.`-led levels on its
/// file layout, `~` first, the separator); those are left out, not skipped at run time.
fn level() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("\"".to_string()),
        Just("\\".to_string()),
        Just("%".to_string()),
        Just("*".to_string()),
        Just(" ".to_string()),
        Just("&".to_string()),
        Just("é".to_string()),
        Just("日本".to_string()),
        "[a-zA-Z0-9]{1,8}",
        "[!-~&&[^/]]{1,4}",
        "[\u{a0}-\u{2fff}]{1,3}",
    ];
    proptest::collection::vec(piece, 1..12)
        .prop_map(|p| p.concat())
        .prop_filter("Dovecot refuses these names", |s| {
            !s.is_empty()
                && !s.starts_with(['.', '~'])
                && !s.contains('/')
                && !s.eq_ignore_ascii_case("INBOX")
                && s.trim() != ""
        })
}

/// Our encoder → a real server (CREATE, STATUS, LIST) → our parser gives back the exact name.
#[test]
fn arbitrary_names_round_trip_through_dovecot() {
    let server = Dovecot::start(DovecotConfig {
        separator: '/',
        users: &[("alice", NEW_PW)],
        ..DovecotConfig::default()
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // proptest's body is a `Fn`: the one connection is borrowed per case.
    let imap = std::cell::RefCell::new(rt.block_on(Imap::connect(&target(&server))).unwrap());
    let config = ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(name in level())| {
        let raw = mutf7::encode(&name);
        let mut imap = imap.borrow_mut();
        rt.block_on(imap.create(&raw))
            .unwrap_or_else(|e| panic!("CREATE {name:?} ({raw:?}): {e}\n{}", server.log()));
        let info = rt.block_on(imap.status(&raw)).unwrap();
        prop_assert!(info.uidvalidity > 0, "STATUS of {:?}", raw);
        let listed = rt.block_on(imap.list()).unwrap();
        prop_assert!(
            listed.iter().any(|f| f.name == raw),
            "{:?} not in {:?}",
            raw,
            listed.iter().map(|f| &f.name).collect::<Vec<_>>()
        );
        prop_assert_eq!(mutf7::decode(&raw).unwrap(), name);
        let statuses = rt.block_on(imap.statuses(std::slice::from_ref(&raw))).unwrap();
        prop_assert!(statuses.contains_key(&raw));
    });
}

/// Names a quoted string cannot carry go as literals, synchronizing ones when the server does
/// not offer LITERAL+: the server's answer reads as its words and the connection stays in step.
#[test]
fn names_sent_as_literals_keep_the_connection_in_step() {
    let server = Dovecot::start(DovecotConfig {
        separator: '/',
        users: &[("alice", NEW_PW)],
        capabilities_override: Some("IMAP4rev1 SASL-IR ID ENABLE IDLE NAMESPACE AUTH=PLAIN"),
        ..DovecotConfig::default()
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut imap = rt.block_on(Imap::connect(&target(&server))).unwrap();
    assert!(!imap.caps.literal_plus);
    // Dovecot takes modified UTF-7 only: both are refused, in its words.
    for name in ["Año", "line\r\nbreak"] {
        let err = rt.block_on(imap.create(name)).unwrap_err();
        assert!(
            err.message
                .contains("server said Mailbox name is not valid mUTF-7"),
            "{err:?}"
        );
        assert!(!err.message.contains("Outcome"), "{err:?}");
    }
    rt.block_on(imap.create("After \"literals\"")).unwrap();
    let listed = rt.block_on(imap.list()).unwrap();
    let mut names: Vec<&str> = listed.iter().map(|f| f.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["After \"literals\"", "INBOX"]);
}

/// Pipelined STATUS over more folders than one window, hostile names among them: every
/// folder answered under its own name, a missing one simply absent.
#[test]
fn pipelined_status_answers_every_folder_by_name() {
    let server = Dovecot::start(DovecotConfig {
        separator: '/',
        users: &[("alice", NEW_PW)],
        capabilities_override: Some("IMAP4rev1 SASL-IR ID ENABLE IDLE NAMESPACE AUTH=PLAIN"),
        ..DovecotConfig::default()
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut imap = rt.block_on(Imap::connect(&target(&server))).unwrap();
    assert!(!imap.caps.list_status);
    let mut names: Vec<String> = (0..150).map(|i| format!("F{i:03} \"q\\{i}\"")).collect();
    for n in &names {
        rt.block_on(imap.create(n)).unwrap();
    }
    names.push("INBOX".into());
    names.push("Not there".into());
    let got = rt.block_on(imap.statuses(&names)).unwrap();
    assert_eq!(got.len(), 151);
    for n in &names[..151] {
        assert!(got[n].uidvalidity > 0, "{n:?}: {:?}", got.get(n));
    }
    assert!(!got.contains_key("Not there"));
    // Still in step after the refused one.
    assert_eq!(rt.block_on(imap.list()).unwrap().len(), 151);
}
