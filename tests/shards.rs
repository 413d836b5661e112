//! Shards (`--shard I/N`, issue 15): each process runs the accounts whose address hashes to
//! it, shard 0 also the platform-level steps, and together the shards run the whole plan,
//! each step exactly once.

use std::collections::BTreeSet;
use std::path::Path;

use crate::common::{mailshift, mailshift_env, repo_root};

/// A plan of `n` IMAP accounts (`user{i}@example.com`), never contacted by `plan`.
fn imap_plan(dir: &Path, n: usize) {
    let mut text = String::from(
        "version: 1\nplatforms:\n  old: {type: imap, imap: {host: 127.0.0.1, port: 10143, security: none}}\n  \
         new: {type: imap, imap: {host: 127.0.0.1, port: 10144, security: none}}\naccounts:\n",
    );
    for i in 0..n {
        text.push_str(&format!(
            "  - {{address: user{i}@example.com, from: old, to: new, source: {{login: user{i}, password: {{env: PW}}}}, destination: {{login: user{i}, password: {{env: PW}}}}}}\n"
        ));
    }
    std::fs::write(dir.join("plan.yaml"), text).unwrap();
}

fn plan_json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["plan", "--json", "plan.yaml"];
    all.extend_from_slice(args);
    let out = mailshift(dir, &all);
    assert_eq!(out.code, 0, "{}", out.transcript());
    serde_json::from_str(&out.stdout).unwrap()
}

fn ids(doc: &serde_json::Value) -> Vec<String> {
    doc["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn shards_split_the_plan_each_step_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    // Domains, accounts, a manual group and an external contact.
    std::fs::copy(
        repo_root().join("examples/ovh-exchange-to-email-pro.yaml"),
        dir.path().join("plan.yaml"),
    )
    .unwrap();
    let whole = plan_json(dir.path(), &[]);
    assert!(whole.get("shard").is_none(), "{whole}");
    let whole: Vec<String> = ids(&whole);
    let mut seen = BTreeSet::new();
    for i in 0..3 {
        let doc = plan_json(dir.path(), &["--shard", &format!("{i}/3")]);
        assert_eq!(doc["shard"]["index"], i);
        assert_eq!(doc["shard"]["count"], 3);
        for c in doc["changes"].as_array().unwrap() {
            let id = c["id"].as_str().unwrap().to_string();
            match c["account"].as_str() {
                Some(a) => assert_eq!(
                    mailshift_core::shard::shard_of(a, 3),
                    i,
                    "{id} is in shard {i}"
                ),
                None => assert_eq!(i, 0, "platform-level {id} is in shard {i}"),
            }
            assert!(seen.insert(id.clone()), "{id} is in two shards");
        }
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), whole);
    // john@ hashes to shard 1 of 3 (pinned by the hash's own tests).
    let out = mailshift(
        dir.path(),
        &[
            "plan",
            "plan.yaml",
            "--shard",
            "0/3",
            "--target",
            "john@mydomain.ovh",
        ],
    );
    assert_eq!(out.code, 1, "{}", out.transcript());
    assert!(
        out.stderr.contains("belongs to shard 1/3")
            && out.stderr.contains("run the command with --shard 1/3"),
        "{}",
        out.stderr
    );
    let out = mailshift(
        dir.path(),
        &[
            "plan",
            "plan.yaml",
            "--shard",
            "1/3",
            "--target",
            "john@mydomain.ovh",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert!(
        out.stdout.contains("account john@mydomain.ovh"),
        "{}",
        out.stdout
    );
}

#[test]
fn plan_says_which_share_it_shows_and_the_environment_selects_it() {
    let dir = tempfile::tempdir().unwrap();
    imap_plan(dir.path(), 50);
    let mut total = 0;
    for i in 0..4u32 {
        // As a Kubernetes Indexed Job runs it.
        let index = i.to_string();
        let out = mailshift_env(
            dir.path(),
            &["plan", "plan.yaml"],
            &[("JOB_COMPLETION_INDEX", &index), ("MAILSHIFT_SHARDS", "4")],
        );
        assert_eq!(out.code, 0, "{}", out.transcript());
        let owned = (0..50)
            .filter(|n| mailshift_core::shard::shard_of(&format!("user{n}@example.com"), 4) == i)
            .count();
        assert!(
            out.stdout
                .contains(&format!("shard {i}/4: {owned} of 50 accounts")),
            "{}",
            out.stdout
        );
        // One copy per account owned, and no other account's.
        assert_eq!(
            out.stdout.matches("# account user").count(),
            owned,
            "{}",
            out.stdout
        );
        total += owned;
    }
    assert_eq!(total, 50);
}

/// Two ports `base` and `base + 1`, `base` a multiple of 10, free now: shard I listens on
/// `base + I`, so `http://127.0.0.1:{prefix}{shard}` reaches every shard.
fn shard_ports() -> u16 {
    for _ in 0..100 {
        let p = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let base = p - p % 10;
        if base >= 10_000
            && (base..base + 2).all(|q| std::net::TcpListener::bind(("127.0.0.1", q)).is_ok())
        {
            return base;
        }
    }
    panic!("no two free ports in a row");
}

#[test]
fn a_step_waits_for_what_another_shard_runs_then_runs_once_it_is_done() {
    use crate::support::dovecot::{Dovecot, DovecotConfig};
    use crate::watch_cmd::{ALICE_NEW, ALICE_OLD, Watch, env, http_request, inbox_count, resource};
    let users: Vec<String> = (0..6).map(|i| format!("u{i}")).collect();
    let shard_of = |u: &str| mailshift_core::shard::shard_of(&format!("{u}@example.com"), 2);
    assert!(users.iter().any(|u| shard_of(u) == 1) && users.iter().any(|u| shard_of(u) == 0));
    let src_users: Vec<(&str, &str)> = users.iter().map(|u| (u.as_str(), ALICE_OLD)).collect();
    let dst_users: Vec<(&str, &str)> = users.iter().map(|u| (u.as_str(), ALICE_NEW)).collect();
    let src = Dovecot::start(DovecotConfig {
        users: &src_users,
        ..DovecotConfig::default()
    });
    let dst = Dovecot::start(DovecotConfig {
        users: &dst_users,
        ..DovecotConfig::default()
    });
    for u in &users {
        crate::watch_cmd::seed(&src, u, ALICE_OLD, 0, 2, 500);
    }
    let base = shard_ports();
    let prefix = base / 10;
    // The destination's domain is a manual step (no API on a plain IMAP server): shard 0's,
    // and every account's copy depends on it, shard 1's too.
    let mut plan = format!(
        "version: 1\nshards: {{status: \"http://127.0.0.1:{prefix}{{shard}}\", every: 1s}}\n\
         platforms:\n  old: {{type: imap, imap: {{host: 127.0.0.1, port: {}, security: none}}}}\n  \
         new: {{type: imap, imap: {{host: 127.0.0.1, port: {}, security: none}}}}\n\
         domains:\n  - {{name: example.com, platform: new, mode: authoritative}}\naccounts:\n",
        src.port(),
        dst.port()
    );
    for u in &users {
        plan.push_str(&format!(
            "  - {{address: {u}@example.com, from: old, to: new, source: {{login: {u}, password: {{env: ALICE_OLD}}}}, destination: {{login: {u}, password: {{env: ALICE_NEW}}}}}}\n"
        ));
    }
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    for d in &dirs {
        std::fs::write(d.path().join("plan.yaml"), &plan).unwrap();
    }
    let copied = |u: &str| inbox_count(&dst, u, ALICE_NEW);
    let domain = "domain/new/example.com";

    // Shard 0 is not up: shard 1's copies wait (exit 75), nothing is copied, nothing failed.
    let out = mailshift_env(
        dirs[1].path(),
        &["apply", "plan.yaml", "--shard", "1/2"],
        &env(),
    );
    assert_eq!(out.code, 75, "{}", out.transcript());
    assert!(
        out.stdout.contains("its status cannot be read") && out.stdout.contains("waiting"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("0 failed"), "{}", out.stdout);

    let shard0 = Watch::start_at(
        dirs[0].path(),
        "watch0.log",
        &format!("127.0.0.1:{base}"),
        &["--shard", "0/2"],
    );
    shard0.wait_for("the domain waits for a person", 30, |s| {
        resource(s, domain).is_some_and(|r| r["status"] == "manual")
    });
    // Shard 1 as a daemon: its copies show as waiting for shard 0, not as failed.
    let shard1 = Watch::start_at(
        dirs[1].path(),
        "watch1.log",
        &format!("127.0.0.1:{}", base + 1),
        &["--shard", "1/2"],
    );
    let mine: Vec<&String> = users.iter().filter(|u| shard_of(u) == 1).collect();
    let mail = |u: &str| format!("account/{u}@example.com/mail");
    let s = shard1.wait_for("shard 1's copies wait for shard 0", 30, |s| {
        mine.iter()
            .all(|u| resource(s, &mail(u)).is_some_and(|r| r["status"] == "waiting"))
    });
    assert!(
        resource(&s, &mail(mine[0]))
            .unwrap()
            .to_string()
            .contains("(there: manual)"),
        "{s:#}"
    );
    // Shard 1 lists none of shard 0's steps, and shard 0 none of shard 1's.
    assert!(resource(&s, domain).is_none(), "{s:#}");
    assert!(resource(&shard0.status(), &mail(mine[0])).is_none());
    for u in &users {
        assert_eq!(copied(u), 0, "{u}");
    }

    // The person does the manual step on shard 0: both shards' copies go on by themselves.
    let (code, _, body) = http_request("POST", &shard0.addr, &format!("/api/ack/{domain}"), None);
    assert_eq!(code, 200, "{body}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while users.iter().any(|u| copied(u) != 2) {
        assert!(
            std::time::Instant::now() < deadline,
            "not every account copied: {:?}\n--- shard 0\n{}\n--- shard 1\n{}",
            users.iter().map(|u| (u, copied(u))).collect::<Vec<_>>(),
            shard0.log_text(),
            shard1.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    shard1.wait_for("shard 1's copies are done", 30, |s| {
        mine.iter()
            .all(|u| resource(s, &mail(u)).is_some_and(|r| r["status"] == "done"))
    });
}
