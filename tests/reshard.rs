//! `mailshift state reshard` (issue 15, item 1): a plan applied as 2 shards, each with its own
//! state file (`{shard}` in the `state:` path), re-split into 3; the 3 new shards find every
//! account's records in their own file, so a third apply copies nothing and `plan` shows no
//! changes. Each shard runs with `--target` on the accounts it owns, so the test says the same
//! whether or not `--shard` also filters the plan's accounts.

use std::collections::BTreeMap;
use std::process::Command;

use mailshift_core::shard::shard_of;

use crate::support::dovecot::{Dovecot, DovecotConfig};

const OLD_PW: &str = "old-Pa55word";
const NEW_PW: &str = "new-Pa55word";
const USERS: [&str; 8] = ["ann", "ben", "cat", "dan", "eve", "fay", "gus", "hal"];

fn message(user: &str, n: usize) -> Vec<u8> {
    format!(
        "From: {user}@example.com\r\nTo: x@example.com\r\nSubject: {n}\r\n\
         Message-ID: <{user}.{n}@example.com>\r\n\r\nbody {n}\r\n"
    )
    .into_bytes()
}

fn contents(server: &Dovecot, pass: &str) -> BTreeMap<String, Vec<Vec<u8>>> {
    USERS
        .iter()
        .map(|u| {
            let mut bytes: Vec<Vec<u8>> = server
                .login(u, pass)
                .mailboxes()
                .unwrap()
                .into_values()
                .flat_map(|msgs| msgs.into_iter().map(|m| m.bytes))
                .collect();
            bytes.sort();
            (u.to_string(), bytes)
        })
        .collect()
}

#[test]
fn two_shards_resharded_into_three_copy_nothing_again() {
    let src_users: Vec<(&str, &str)> = USERS.iter().map(|u| (*u, OLD_PW)).collect();
    let dst_users: Vec<(&str, &str)> = USERS.iter().map(|u| (*u, NEW_PW)).collect();
    let src = Dovecot::start(DovecotConfig {
        users: &src_users,
        ..DovecotConfig::default()
    });
    let dst = Dovecot::start(DovecotConfig {
        users: &dst_users,
        ..DovecotConfig::default()
    });
    for (i, u) in USERS.iter().enumerate() {
        let mut c = src.login(u, OLD_PW);
        for n in 0..(3 + i) {
            c.append("INBOX", &["\\Seen"], None, &message(u, n))
                .unwrap();
        }
    }
    let mut plan = format!(
        "version: 1\nstate: state/state-{{shard}}.redb\nplatforms:\n  old: {{type: imap, imap: {{host: 127.0.0.1, port: {}, security: none}}}}\n  new: {{type: imap, imap: {{host: 127.0.0.1, port: {}, security: none}}}}\naccounts:\n",
        src.port(),
        dst.port()
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
            .env_remove("MAILSHIFT_SHARD")
            .env_remove("JOB_COMPLETION_INDEX")
            .env_remove("MAILSHIFT_SHARDS")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    // `cmd PLAN --shard I/N --target A...` for the accounts shard I of N owns.
    let as_shard = |cmd: &str, index: u32, count: u32, extra: &[&str]| {
        let shard = format!("{index}/{count}");
        let targets: Vec<String> = USERS
            .iter()
            .map(|u| format!("{u}@example.com"))
            .filter(|a| shard_of(a, count) == index)
            .collect();
        assert!(!targets.is_empty(), "shard {shard} owns no account");
        let mut args = vec![cmd, "plan.yaml", "--shard", shard.as_str()];
        args.extend_from_slice(extra);
        for t in &targets {
            args.extend(["--target", t.as_str()]);
        }
        run(&args)
    };

    for i in 0..2 {
        let (code, text) = as_shard("apply", i, 2, &[]);
        assert_eq!(code, Some(0), "apply as shard {i}/2: {text}");
    }
    assert_eq!(contents(&dst, NEW_PW), contents(&src, OLD_PW));
    let state = dir.path().join("state");
    assert!(state.join("state-0.redb").is_file() && state.join("state-1.redb").is_file());
    // Three shards before the reshard are refused, with the fix.
    let (code, text) = as_shard("plan", 2, 3, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("belongs to shard 0/2"), "{text}");
    assert!(
        text.contains("mailshift state reshard PLAN --to 3"),
        "{text}"
    );

    let (code, text) = run(&["state", "reshard", "plan.yaml", "--to", "3"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("Resharded the state from 2 to 3 shards"),
        "{text}"
    );
    assert!(state.join("state-2.redb").is_file());
    let leftovers: Vec<_> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("reshard"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // The old split is refused now, with the fix.
    let (code, text) = as_shard("plan", 0, 2, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("belongs to shard 0/3"), "{text}");

    // Each new shard finds its accounts' records: `plan` has nothing to add or change, only
    // the incremental sync a copied account always has, and `apply` copies nothing again.
    let owned = |i: u32, n: u32| {
        USERS
            .iter()
            .filter(|u| shard_of(&format!("{u}@example.com"), n) == i)
            .count()
    };
    let settled = |text: &str, i: u32, n: u32, point: u64| {
        text.contains(&format!(
            "Plan: 0 to add, 0 to change, 0 to remove, {} to sync, 0 manual.",
            owned(i, n)
        )) && text
            .matches(&format!(
                "(incremental: copy what is new since sync point {point})"
            ))
            .count()
            == owned(i, n)
    };
    for i in 0..3 {
        let (code, text) = as_shard("plan", i, 3, &[]);
        assert_eq!(code, Some(0), "{text}");
        assert!(settled(&text, i, 3, 1), "plan as shard {i}/3: {text}");
        let (code, text) = as_shard("apply", i, 3, &[]);
        assert_eq!(code, Some(0), "apply as shard {i}/3: {text}");
        assert!(
            text.contains("; 0 messages ("),
            "shard {i}/3 copied again: {text}"
        );
        assert!(
            !text.contains("adopted"),
            "shard {i}/3 lost records: {text}"
        );
    }
    // Every message once.
    assert_eq!(contents(&dst, NEW_PW), contents(&src, OLD_PW));

    // Back to one file for the whole plan: nothing to do either.
    let (code, text) = run(&["state", "reshard", "plan.yaml", "--to", "1"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(!state.join("state-1.redb").exists());
    let (code, text) = run(&["plan", "plan.yaml"]);
    assert_eq!(code, Some(0), "{text}");
    // The three shards' runs were sync point 2 (the counter carried over is the highest).
    assert!(
        settled(&text, 0, 1, 2),
        "the whole plan after the reshard to 1: {text}"
    );
}
