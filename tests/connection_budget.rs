//! The connection budget of a server shared by every account of a run (issue 15, item 0):
//! several accounts on one pair of Dovecot servers that allow each user few connections, a
//! budget smaller than the accounts' number, connections counted at a proxy in front of each
//! server: the run never holds more than the budget, and every message arrives once.

use std::collections::BTreeMap;
use std::process::Command;

use crate::support::dovecot::{Dovecot, DovecotConfig};
use crate::support::faultproxy::FaultProxy;

const OLD_PW: &str = "old-Pa55word";
const NEW_PW: &str = "new-Pa55word";
const USERS: [&str; 6] = ["ann", "ben", "cat", "dan", "eve", "fay"];
const FOLDERS: [&str; 4] = ["INBOX", "Archive", "Sent", "Projects"];

fn message(user: &str, folder: &str, n: usize) -> Vec<u8> {
    format!(
        "From: {user}@example.com\r\nTo: x@example.com\r\nSubject: {folder} {n}\r\n\
         Message-ID: <{user}.{n}@example.com>\r\n\r\n{}\r\n",
        "body line\r\n".repeat(n % 7 + 1)
    )
    .into_bytes()
}

/// Each user's folders, each message by its bytes, sorted.
fn contents(server: &Dovecot, pass: &str) -> BTreeMap<String, BTreeMap<String, Vec<Vec<u8>>>> {
    USERS
        .iter()
        .map(|u| {
            let mut c = server.login(u, pass);
            let folders = c
                .mailboxes()
                .unwrap()
                .into_iter()
                .map(|(f, msgs)| {
                    let mut bytes: Vec<Vec<u8>> = msgs.into_iter().map(|m| m.bytes).collect();
                    bytes.sort();
                    (f, bytes)
                })
                .collect();
            (u.to_string(), folders)
        })
        .collect()
}

#[test]
fn accounts_share_each_servers_budget_and_every_message_arrives_once() {
    let src_users: Vec<(&str, &str)> = USERS.iter().map(|u| (*u, OLD_PW)).collect();
    let dst_users: Vec<(&str, &str)> = USERS.iter().map(|u| (*u, NEW_PW)).collect();
    // Two connections per user: the accounts' default of 4 would be refused above it.
    let src = Dovecot::start(DovecotConfig {
        separator: '/',
        users: &src_users,
        max_connections: 2,
        ..DovecotConfig::default()
    });
    let dst = Dovecot::start(DovecotConfig {
        separator: '/',
        users: &dst_users,
        max_connections: 2,
        ..DovecotConfig::default()
    });
    for (i, u) in USERS.iter().enumerate() {
        let mut c = src.login(u, OLD_PW);
        for f in &FOLDERS[1..] {
            c.create(f).unwrap();
        }
        // Uneven accounts: the first has the most folders' worth of mail.
        for f in FOLDERS {
            for n in 0..(30 - 4 * i) {
                c.append(f, &["\\Seen"], None, &message(u, f, n)).unwrap();
            }
        }
    }
    let (src_proxy, dst_proxy) = (
        FaultProxy::to_port(src.port()),
        FaultProxy::to_port(dst.port()),
    );
    let budget = 3;
    let mut plan = format!(
        "version: 1\nplatforms:\n  old: {{type: imap, imap: {{host: 127.0.0.1, port: {}, security: none}}, limits: {{server_connections: {budget}}}}}\n  new: {{type: imap, imap: {{host: 127.0.0.1, port: {}, security: none}}, limits: {{server_connections: {budget}}}}}\naccounts:\n",
        src_proxy.port(),
        dst_proxy.port()
    );
    for u in USERS {
        plan.push_str(&format!(
            "  - address: {u}@example.com\n    from: old\n    to: new\n    source: {{login: {u}, password: {{env: OLD}}}}\n    destination: {{login: {u}, password: {{env: NEW}}}}\n"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plan.yaml"), plan).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_mailshift"))
            .args(args)
            .current_dir(dir.path())
            .env("OLD", OLD_PW)
            .env("NEW", NEW_PW)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let (code, text) = run(&["plan", "plan.yaml"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!(
            "127.0.0.1:{}: {budget} connections shared by 6 accounts",
            src_proxy.port()
        )),
        "plan shows the budget: {text}"
    );
    let (code, text) = run(&["apply", "plan.yaml"]);
    assert_eq!(code, Some(0), "{text}");
    for (side, proxy) in [("source", &src_proxy), ("destination", &dst_proxy)] {
        assert!(
            proxy.peak() <= budget,
            "the {side} saw {} connections at once, over its budget of {budget}\n{text}",
            proxy.peak()
        );
    }
    assert_eq!(contents(&dst, NEW_PW), contents(&src, OLD_PW), "{text}");
    // A second run copies nothing more.
    let (code, text) = run(&["apply", "plan.yaml"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(contents(&dst, NEW_PW), contents(&src, OLD_PW), "{text}");
    assert!(src_proxy.peak() <= budget && dst_proxy.peak() <= budget);
}
